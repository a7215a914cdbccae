//! The worker's job and the loop running it: every interval, the FNV-1a checksum of the job's
//! sequence number, counted in `worker_jobs_total` and timed in
//! `worker_last_job_timestamp_seconds`. The first job runs at once; the worker is ready after it.
//!
//! The loop only stops between jobs, never in the middle of one, and never waits out the
//! interval once asked to stop.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use service_kit::tracing::{debug, info};
use service_kit::{Metrics, Readiness};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// Counter of jobs completed.
pub const WORKER_JOBS_TOTAL: &str = "worker_jobs_total";
/// Gauge: Unix time, in seconds, at which the last job completed; 0 before the first.
pub const WORKER_LAST_JOB_TIMESTAMP_SECONDS: &str = "worker_last_job_timestamp_seconds";

/// What the loop needs.
pub struct JobLoop {
    /// Period between two jobs.
    pub interval: Duration,
    /// Where the job metrics go.
    pub metrics: Metrics,
    /// Set ready after the first job.
    pub readiness: Readiness,
}

/// Runs jobs until `stop` holds `true` or its sender is gone; returns how many ran.
pub async fn run(job_loop: JobLoop, mut stop: watch::Receiver<bool>) -> u64 {
    let JobLoop {
        interval,
        metrics,
        readiness,
    } = job_loop;
    let jobs_total = metrics.counter(WORKER_JOBS_TOTAL, "Jobs completed.", &[]);
    let last_job_timestamp = metrics.gauge(
        WORKER_LAST_JOB_TIMESTAMP_SECONDS,
        "Unix time at which the last job completed; 0 before the first.",
        &[],
    );
    let mut ticker = tokio::time::interval(interval);
    // After a stall, run one job and start counting the interval again rather than catching up.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sequence: u64 = 0;
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => break,
            _ = ticker.tick() => {}
        }
        let checksum = checksum(sequence);
        jobs_total.inc();
        last_job_timestamp.set(unix_time_seconds(SystemTime::now()));
        readiness.set_ready();
        debug!("job {sequence}: checksum {checksum:016x}");
        sequence += 1;
    }
    info!("job loop stopped; jobs run: {sequence}");
    sequence
}

/// The job: the 64-bit FNV-1a hash of `sequence` as 8 little-endian bytes.
pub fn checksum(sequence: u64) -> u64 {
    fnv1a_64(&sequence.to_le_bytes())
}

fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

fn unix_time_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |since_epoch| since_epoch.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn the_checksum_is_deterministic_and_depends_on_the_sequence() {
        assert_eq!(checksum(0), fnv1a_64(&[0; 8]));
        assert_eq!(checksum(7), checksum(7));
        assert_ne!(checksum(7), checksum(8));
    }

    #[test]
    fn runs_jobs_until_asked_to_stop_and_is_ready_after_the_first() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let metrics = Metrics::new("worker", "0.0.0");
        let readiness = Readiness::new();
        let (stop_sender, stop_receiver) = watch::channel(false);
        let job_loop = JobLoop {
            interval: Duration::from_millis(5),
            metrics: metrics.clone(),
            readiness: readiness.clone(),
        };
        let jobs = runtime.block_on(async {
            let task = tokio::spawn(run(job_loop, stop_receiver));
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while metrics
                .counter(WORKER_JOBS_TOTAL, "Jobs completed.", &[])
                .get()
                < 3
            {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "fewer than 3 jobs in 5 s"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert!(readiness.is_ready());
            stop_sender.send(true).unwrap();
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("the loop did not stop within 5 s")
                .unwrap()
        });
        let jobs_total = metrics
            .counter(WORKER_JOBS_TOTAL, "Jobs completed.", &[])
            .get();
        assert!(jobs >= 3);
        assert_eq!(jobs, jobs_total);
        let last_job = metrics
            .gauge(WORKER_LAST_JOB_TIMESTAMP_SECONDS, "", &[])
            .get();
        let now = unix_time_seconds(SystemTime::now());
        assert!(
            now - 60.0 < last_job && last_job <= now,
            "{last_job} vs {now}"
        );
    }
}

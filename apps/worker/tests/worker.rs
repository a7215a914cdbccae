//! The real `worker` binary on a loopback port: jobs counted in the metrics, readiness after the
//! first job, and a prompt, clean exit on SIGTERM. Every process is killed by its guard if a
//! test fails.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use service_kit::metrics::sample_value;
use service_kit::testing::{ServiceProcess, free_loopback_port};

/// Bound on start-up, from spawn to `/health` answering 200.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on the exit after SIGTERM; well under the default 10 s shutdown grace.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

fn start(envs: &[(&str, &str)]) -> ServiceProcess {
    let port = free_loopback_port().unwrap();
    let mut worker = ServiceProcess::spawn(env!("CARGO_BIN_EXE_worker"), port, envs).unwrap();
    worker
        .wait_for_status("/health", 200, STARTUP_TIMEOUT)
        .unwrap_or_else(|error| panic!("{error}"));
    worker
}

fn jobs_total(worker: &ServiceProcess) -> f64 {
    let metrics = worker.get("/metrics").unwrap();
    assert_eq!(metrics.status, 200);
    sample_value(&metrics.body, "worker_jobs_total")
        .unwrap_or_else(|| panic!("no worker_jobs_total in\n{}", metrics.body))
}

/// Sends SIGTERM and asserts an exit with code 0 within [`EXIT_TIMEOUT`]; returns the stderr.
fn terminate_and_expect_clean_exit(mut worker: ServiceProcess) -> String {
    worker.terminate().unwrap();
    let status = worker
        .wait_for_exit(EXIT_TIMEOUT)
        .unwrap()
        .unwrap_or_else(|| {
            panic!(
                "still running {EXIT_TIMEOUT:?} after SIGTERM; stderr:\n{}",
                worker.stderr()
            )
        });
    let stderr = worker.stderr();
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    stderr
}

#[test]
fn counts_jobs_is_ready_after_the_first_and_exits_0_on_sigterm() {
    let mut worker = start(&[("WORKER_INTERVAL_MS", "20")]);
    let ready = worker
        .wait_for_status("/ready", 200, STARTUP_TIMEOUT)
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(ready.body, r#"{"status":"ready"}"#);

    let metrics = worker.get("/metrics").unwrap();
    assert_eq!(
        metrics.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let text = &metrics.body;
    for line in [
        "# TYPE worker_jobs counter\n",
        "# TYPE worker_last_job_timestamp_seconds gauge\n",
        "# TYPE process_uptime_seconds gauge\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample_value(
            text,
            &format!("app_info{{name=\"worker\",version=\"{version}\"}}")
        ),
        Some(1.0),
        "{text}"
    );
    let first_count = sample_value(text, "worker_jobs_total").unwrap();
    assert!(first_count >= 1.0, "{text}");
    let last_job = sample_value(text, "worker_last_job_timestamp_seconds").unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        now - 60.0 < last_job && last_job <= now + 1.0,
        "{last_job} vs now {now}"
    );

    let deadline = Instant::now() + STARTUP_TIMEOUT;
    while jobs_total(&worker) < first_count + 3.0 {
        assert!(Instant::now() < deadline, "jobs stopped at {first_count}");
        std::thread::sleep(Duration::from_millis(20));
    }

    let stderr = terminate_and_expect_clean_exit(worker);
    for expected in [
        " INFO worker::service: listening on 127.0.0.1:",
        ", one job every 20 ms\n",
        " INFO worker::service: received SIGTERM, stopping the job loop",
        " INFO worker::jobs: job loop stopped; jobs run: ",
        " INFO worker::service: stopped; jobs run: ",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in stderr:\n{stderr}"
        );
    }
}

#[test]
fn sigterm_does_not_wait_for_the_next_job() {
    let mut worker = start(&[("WORKER_INTERVAL_MS", "60000")]);
    worker
        .wait_for_status("/ready", 200, STARTUP_TIMEOUT)
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(
        jobs_total(&worker),
        1.0,
        "the first job runs at once, the next in a minute"
    );

    let stderr = terminate_and_expect_clean_exit(worker);
    assert!(
        stderr.contains(" INFO worker::service: stopped; jobs run: 1\n"),
        "stderr:\n{stderr}"
    );
}

#[test]
fn an_invalid_interval_exits_2_naming_the_variable() {
    for bad in ["0", "1s", "86400001"] {
        let mut worker = ServiceProcess::spawn(
            env!("CARGO_BIN_EXE_worker"),
            free_loopback_port().unwrap(),
            &[("WORKER_INTERVAL_MS", bad)],
        )
        .unwrap();
        let status = worker
            .wait_for_exit(EXIT_TIMEOUT)
            .unwrap()
            .expect("still running with an invalid environment");
        let stderr = worker.stderr();
        assert_eq!(status.code(), Some(2), "stderr:\n{stderr}");
        let expected = format!(
            " ERROR service_kit::server: invalid environment: `WORKER_INTERVAL_MS` must be an integer \
             from 1 to 86400000, got `{bad}`\n"
        );
        assert!(stderr.contains(&expected), "stderr:\n{stderr}");
    }
}

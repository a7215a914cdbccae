//! Timing: runs commands repeatedly, alternating the variants compared so machine noise hits
//! them alike, and reports medians and ratios.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Runs `command` once, failing with its output when it fails; returns the wall time.
pub fn time_once(command: &mut Command) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let output = command
        .output()
        .with_context(|| format!("failed to start {command:?}"))?;
    let took = started.elapsed();
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(took)
}

/// The median of `samples` (which must not be empty).
pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    let n = samples.len();
    if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2
    }
}

/// `a / b` as a float, for "N x faster" lines.
pub fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

/// Flushes every file system's dirty pages (`sync`), so a timed run does not pay for the
/// writeback of what came before it.
pub(crate) fn sync() -> anyhow::Result<()> {
    let status = Command::new("sync")
        .status()
        .map_err(|error| anyhow::anyhow!("failed to run sync: {error}"))?;
    anyhow::ensure!(status.success(), "sync failed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let ms = Duration::from_millis;
        assert_eq!(median(&mut [ms(5), ms(1), ms(3)]), ms(3));
        assert_eq!(
            median(&mut [ms(4), ms(1), ms(3), ms(2)]),
            Duration::from_micros(2500)
        );
        assert!((ratio(ms(10), ms(5)) - 2.0).abs() < 1e-9);
    }
}

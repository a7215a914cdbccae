//! `cargo xtask dev`: builds the workspace's apps through the cached engine, starts them, and
//! on every change to one of their inputs rebuilds and restarts only the apps that depend on
//! it; `cargo xtask bench dev` measures that loop.
//!
//! - [`filter`]: which changed files trigger which app (the graph's dependency closure and
//!   the hash's input discovery rules).
//! - [`settle`]: when a burst of file events becomes a build (at once when an editor's save
//!   is complete, else after the quiet time), a pure state machine.
//! - [`supervisor`]: the loop (watcher, one build at a time plus one queued follow-up, the
//!   workspace model held between builds, restarts after successful builds only, crash
//!   reports, shutdown on SIGINT/SIGTERM).
//! - [`process`]: one app in its own process group, output prefixed, stopped with SIGTERM,
//!   grace period, SIGKILL.
//! - [`bench`]: file write to new process answering its health path, split into phases.
//!
//! Invariants: no process started by `dev` outlives it (except when `dev` itself is
//! SIGKILLed); a failed build never stops a running app; status goes to stderr, the apps'
//! own output to stdout/stderr prefixed with their name.

pub mod apps;
pub mod bench;
pub mod dotenv;
pub mod filter;
pub mod process;
pub mod readiness;
pub mod settle;
pub mod supervisor;

use std::collections::BTreeMap;
use std::time::Duration;

use xtask_engine::{CliResult, Location, Outcome};

pub use bench::{BenchOptions, bench_dev};
pub use supervisor::{DevEvent, DevHandle, Supervisor};

/// Default of `--grace-period`.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(10);
/// Default of `--debounce`.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(30);

/// What `cargo xtask dev` runs.
#[derive(Debug, Clone)]
pub struct DevOptions {
    pub location: Location,
    /// App package names; empty = every app.
    pub apps: Vec<String>,
    /// How long a stopped app's process group may take to exit after SIGTERM before SIGKILL.
    pub grace_period: Duration,
    /// Quiet time that ends a burst of file events that did not settle (see [`settle`]).
    pub debounce: Duration,
    /// Hold each app's listening socket and pass it to every new process (fd 3, `LISTEN_FDS=1`).
    pub socket_handover: bool,
    pub release: bool,
    pub jobs: usize,
    /// Ports instead of the metadata's (for the benchmark; not a CLI flag).
    pub ports: BTreeMap<String, u16>,
}

/// `cargo xtask dev`: runs until SIGINT or SIGTERM, then stops every app.
pub fn dev(options: DevOptions) -> CliResult {
    let supervisor = Supervisor::new(options, None)?;
    let _signals = forward_signals(supervisor.handle())?;
    supervisor.run()?;
    Ok(Outcome::success())
}

/// Forwards SIGINT, SIGTERM and SIGHUP to `handle` as a shutdown request until the returned
/// guard is dropped.
pub fn forward_signals(handle: DevHandle) -> anyhow::Result<SignalGuard> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| anyhow::anyhow!("failed to install the signal handlers: {e}"))?;
    let close = signals.handle();
    std::thread::spawn(move || {
        for signal in signals.forever() {
            let name = match signal {
                SIGINT => "SIGINT",
                SIGTERM => "SIGTERM",
                _ => "SIGHUP",
            };
            handle.shutdown(&format!("{name} received"));
        }
    });
    Ok(SignalGuard(close))
}

/// Stops forwarding signals when dropped.
pub struct SignalGuard(signal_hook::iterator::Handle);

impl Drop for SignalGuard {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Parses `500ms`, `2s`, `1.5s`, `1m` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. `500ms`, `2s`, `1m`)"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        _ => return Err(format!("`{text}` has an unknown unit (use ms, s or m)")),
    };
    if !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("`{text}` is out of range (0 to 24 hours)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(
            parse_duration("fast")
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(parse_duration("3h").unwrap_err().contains("unknown unit"));
    }
}

//! `worker`: the background worker, running a small deterministic job every interval, with the
//! shared `/health`, `/ready` and `/metrics` endpoints.
//!
//! Environment: `WORKER_INTERVAL_MS` (1-86400000, default 1000) plus `PORT` (default 8081),
//! `BIND_ADDR`, `SHUTDOWN_GRACE_MS`, `RUST_LOG` and `LOG_FORMAT`, as documented in `service_kit::config` and
//! `service_kit::log`. Logs go to stderr.
//!
//! `APP --health-check` GETs the running service's own `/health` over loopback and exits 0
//! on 200, else 1 (container health checks; the images have no curl).
//!
//! Exit codes: 0 after a clean shutdown on SIGTERM or SIGINT, 1 when the service fails, 2 when
//! the environment is invalid (every bad variable is logged).

mod jobs;
mod service;

use std::process::ExitCode;
use std::time::Duration;

use service_kit::{Config, EnvReader, LogSettings};

/// The name in `app_info`.
const APP_NAME: &str = env!("CARGO_PKG_NAME");
/// The port when `PORT` is unset; the same as `port` in `[package.metadata.xtask.app]`.
const DEFAULT_PORT: u16 = 8081;
/// Name of the variable holding the period between two jobs, in milliseconds.
const WORKER_INTERVAL_MS: &str = "WORKER_INTERVAL_MS";
/// Default of `WORKER_INTERVAL_MS`.
const DEFAULT_INTERVAL_MS: u64 = 1000;
/// Largest accepted `WORKER_INTERVAL_MS` (one day).
const MAX_INTERVAL_MS: u64 = 86_400_000;

fn main() -> ExitCode {
    let mut env = EnvReader::from_process();
    let config = Config::read(&mut env, DEFAULT_PORT);
    let interval_ms = env.integer(WORKER_INTERVAL_MS, DEFAULT_INTERVAL_MS, 1..=MAX_INTERVAL_MS);
    let log = LogSettings::read(&mut env);
    log.install();
    if service_kit::health_check_requested() {
        return service_kit::run_health_check(&config);
    }
    service_kit::run_main(env.finish(), || {
        service::run(config, Duration::from_millis(interval_ms))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_port_matches_the_deployment_metadata() {
        let manifest = include_str!("../Cargo.toml");
        let port_line = format!("\nport = {}\n", super::DEFAULT_PORT);
        assert!(
            manifest.contains(&port_line),
            "Cargo.toml lacks {port_line:?}"
        );
    }
}

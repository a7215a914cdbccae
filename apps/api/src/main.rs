//! `api`: the HTTP API service, `GET /v1/greeting?name=NAME` plus the shared `/health`,
//! `/ready` and `/metrics` endpoints.
//!
//! Environment: `PORT` (default 8080), `BIND_ADDR`, `SHUTDOWN_GRACE_MS`, `RUST_LOG` and `LOG_FORMAT`, as
//! documented in `service_kit::config` and `service_kit::log`. Logs go to stderr.
//!
//! `APP --health-check` GETs the running service's own `/health` over loopback and exits 0
//! on 200, else 1 (container health checks; the images have no curl).
//!
//! Exit codes: 0 after a clean shutdown on SIGTERM or SIGINT, 1 when the service fails
//! (including connections still open when the grace period ends), 2 when the environment is
//! invalid (every bad variable is logged).

mod greeting;
mod service;

use std::process::ExitCode;

use service_kit::{Config, EnvReader, LogSettings};

/// The name in `app_info`.
const APP_NAME: &str = env!("CARGO_PKG_NAME");
/// The port when `PORT` is unset; the same as `port` in `[package.metadata.xtask.app]`.
const DEFAULT_PORT: u16 = 8080;

fn main() -> ExitCode {
    let mut env = EnvReader::from_process();
    let config = Config::read(&mut env, DEFAULT_PORT);
    let log = LogSettings::read(&mut env);
    log.install();
    if service_kit::health_check_requested() {
        return service_kit::run_health_check(&config);
    }
    service_kit::run_main(env.finish(), || service::run(config))
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

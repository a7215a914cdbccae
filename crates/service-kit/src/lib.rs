//! Shared code of the apps: configuration from the environment, log lines, metrics, the
//! `/health` `/ready` `/metrics` endpoints and serving with graceful shutdown.
//!
//! What it does not do: it never reads the process environment outside
//! [`EnvReader::from_process`], never writes to stdout, never spawns threads in library code
//! (only [`testing`] does, for tests), and never exits the process; the apps decide exit codes.

pub mod config;
pub mod health_check;
pub mod log;
pub mod metrics;
pub mod readiness;
pub mod routes;
pub mod server;
pub mod testing;

pub use config::{Config, ConfigError, EnvReader, InvalidVar};
pub use health_check::{HEALTH_CHECK_FLAG, health_check_requested, probe_health, run_health_check};
pub use log::{LOG_FORMAT, LogFormat, LogSettings, RUST_LOG};
pub use metrics::{Counter, Gauge, Histogram, Metrics};
pub use readiness::{Readiness, ReadinessState};
pub use routes::router;
pub use server::{
    EXIT_INVALID_ENVIRONMENT, ServeError, Signal, bind, run_main, serve, shutdown_signal,
};
/// The logging macros the apps use (`service_kit::tracing::info!`).
pub use tracing;

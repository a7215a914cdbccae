//! Wiring of the api service: routes, metrics and readiness, then serving until a shutdown signal.

use anyhow::Context as _;
use service_kit::tracing::info;
use service_kit::{Config, Metrics, Readiness};

use crate::{APP_NAME, greeting};

/// Serves until SIGTERM or SIGINT, then drains connections; ready as soon as it listens.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let signal = service_kit::shutdown_signal()
        .context("failed to install the SIGTERM and SIGINT handlers")?;
    let metrics = Metrics::new(APP_NAME, env!("CARGO_PKG_VERSION"));
    let readiness = Readiness::new();
    let router = service_kit::router(greeting::routes(), metrics, readiness.clone());

    let listener = service_kit::bind(config.socket_addr()).await?;
    let local_addr = listener
        .local_addr()
        .context("failed to read the listening address")?;
    info!("listening on {local_addr}");
    readiness.set_ready();

    let shutdown = async move {
        let received = signal.await;
        readiness.set_stopping();
        info!(
            "received {received}, draining connections (at most {} ms)",
            config.shutdown_grace.as_millis()
        );
    };
    service_kit::serve(listener, router, shutdown, config.shutdown_grace).await?;
    info!("stopped");
    Ok(())
}

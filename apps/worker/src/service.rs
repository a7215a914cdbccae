//! Wiring of the worker: the job loop and the shared endpoints, both stopped by one signal.

use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use service_kit::tracing::info;
use service_kit::{Config, Metrics, Readiness};
use tokio::sync::watch;

use crate::APP_NAME;
use crate::jobs::{self, JobLoop};

/// Runs jobs every `interval` and serves the shared endpoints until SIGTERM or SIGINT; ready
/// once the first job is done. On the signal the loop stops between jobs and connections drain.
pub async fn run(config: Config, interval: Duration) -> anyhow::Result<()> {
    let signal = service_kit::shutdown_signal()
        .context("failed to install the SIGTERM and SIGINT handlers")?;
    let metrics = Metrics::new(APP_NAME, env!("CARGO_PKG_VERSION"));
    let readiness = Readiness::new();
    let router = service_kit::router(Router::new(), metrics.clone(), readiness.clone());

    let listener = service_kit::bind(config.socket_addr()).await?;
    let local_addr = listener
        .local_addr()
        .context("failed to read the listening address")?;
    info!(
        "listening on {local_addr}, one job every {} ms",
        interval.as_millis()
    );

    // `true` asks the loop to stop; dropping the sender (if serving fails) does too.
    let (stop_sender, stop_receiver) = watch::channel(false);
    let job_loop = JobLoop {
        interval,
        metrics,
        readiness: readiness.clone(),
    };
    let jobs_task = tokio::spawn(jobs::run(job_loop, stop_receiver));

    let shutdown = async move {
        let received = signal.await;
        readiness.set_stopping();
        info!(
            "received {received}, stopping the job loop and draining connections (at most {} ms)",
            config.shutdown_grace.as_millis()
        );
        let _loop_already_gone = stop_sender.send(true);
    };
    let served = service_kit::serve(listener, router, shutdown, config.shutdown_grace).await;
    let jobs_done = jobs_task.await.context("the job loop panicked");
    served?;
    let jobs_done = jobs_done?;
    info!("stopped; jobs run: {jobs_done}");
    Ok(())
}

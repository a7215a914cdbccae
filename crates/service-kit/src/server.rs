//! Listening, serving a router until a shutdown future resolves then draining open connections
//! for at most a grace period, and the SIGTERM/SIGINT future that usually triggers it.

use std::fmt::{self, Display};
use std::future::{Future, IntoFuture as _};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;

/// A signal asking the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM, sent by Kubernetes, Docker and `kill`.
    Terminate,
    /// SIGINT, sent by Ctrl-C.
    Interrupt,
}

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listening socket could not be opened.
    #[error("failed to listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding failed.
        #[source]
        source: io::Error,
    },
    /// `LISTEN_FDS` announced a socket that is not a usable TCP listener.
    #[error("failed to use the listening socket handed over in `LISTEN_FDS`")]
    Inherited(#[source] io::Error),
    /// The server itself failed.
    #[error("the HTTP server failed")]
    Serve(#[source] io::Error),
    /// Connections were still open when the grace period ended; they were dropped.
    #[error("connections were still open {} ms after shutdown began", .grace.as_millis())]
    GraceExpired {
        /// The grace period that ran out.
        grace: Duration,
    },
}

impl Display for Signal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::Terminate => "SIGTERM",
            Self::Interrupt => "SIGINT",
        })
    }
}

/// A future resolving to the first SIGTERM or SIGINT the process receives.
///
/// The handlers are installed by this call, not when the future is first polled, so a signal
/// arriving in between is not lost; from then on these signals no longer kill the process.
///
/// # Panics
///
/// When called outside a tokio runtime.
pub fn shutdown_signal() -> io::Result<impl Future<Output = Signal> + Send + 'static> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => Signal::Terminate,
            _ = interrupt.recv() => Signal::Interrupt,
        }
    })
}

/// Opens the listening socket: the one a supervisor handed over (`LISTEN_FDS=1` and fd 3, the
/// systemd / listenfd protocol that `cargo xtask dev` uses so that a restart refuses no
/// connection) when there is one, else a new socket on `addr`; the error names the address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    if let Some(listener) = inherited_listener().map_err(ServeError::Inherited)? {
        return Ok(listener);
    }
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// The TCP listener passed in `LISTEN_FDS`, if any (the variables are removed once read).
fn inherited_listener() -> io::Result<Option<TcpListener>> {
    let mut fds = listenfd::ListenFd::from_env();
    let Some(listener) = fds.take_tcp_listener(0)? else {
        return Ok(None);
    };
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener).map(Some)
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, closes idle
/// connections and waits for requests in flight, for at most `grace`. Returns
/// [`ServeError::GraceExpired`] if connections were still open then; they are dropped when the
/// caller's runtime ends.
pub async fn serve<F>(
    listener: TcpListener,
    router: Router,
    shutdown: F,
    grace: Duration,
) -> Result<(), ServeError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let (shutdown_began_sender, shutdown_began) = oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _server_already_gone = shutdown_began_sender.send(());
    };
    let server = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .into_future();
    let grace_expired = async move {
        match shutdown_began.await {
            Ok(()) => tokio::time::sleep(grace).await,
            // The server finished without a shutdown; its own branch completes.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        served = server => served.map_err(ServeError::Serve),
        () = grace_expired => Err(ServeError::GraceExpired { grace }),
    }
}

/// Exit code of an app whose environment is invalid.
pub const EXIT_INVALID_ENVIRONMENT: u8 = 2;

/// The common tail of every app's `main`: reports an invalid environment (exit 2), else runs
/// `service` on a current-thread tokio runtime and maps its result to exit 0 or 1, logging
/// the failure.
pub fn run_main<F, E>(
    environment: Result<(), crate::ConfigError>,
    service: impl FnOnce() -> F,
) -> std::process::ExitCode
where
    F: std::future::Future<Output = Result<(), E>>,
    E: Display,
{
    if let Err(error) = environment {
        tracing::error!("{error}");
        return std::process::ExitCode::from(EXIT_INVALID_ENVIRONMENT);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("failed to start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(service()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

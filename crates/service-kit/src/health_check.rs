//! The apps' `--health-check` mode: GET the app's own `/health` over loopback and exit 0 when it
//! answers 200, else 1. Container health checks run it, since a FROM-scratch image has no curl.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use crate::Config;

/// The command-line flag that selects the health-check mode.
pub const HEALTH_CHECK_FLAG: &str = "--health-check";

/// How long the probe waits to connect and for the answer.
pub const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether the process was started as `APP --health-check`.
pub fn health_check_requested() -> bool {
    std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == HEALTH_CHECK_FLAG)
}

/// The probe as an app's `main` runs it: exit 0 when `/health` answers 200, else 1 with the
/// reason logged.
pub fn run_health_check(config: &Config) -> ExitCode {
    match probe_health(config, HEALTH_CHECK_TIMEOUT) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("health check failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// GETs [`crate::routes::HEALTH_PATH`] on the address the service listens on (loopback when it
/// listens on every interface); `Ok` on status 200.
pub fn probe_health(config: &Config, timeout: Duration) -> io::Result<()> {
    let ip = match config.bind_addr {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let addr = SocketAddr::new(ip, config.port);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
        crate::routes::HEALTH_PATH
    )?;
    let mut head = [0u8; 16];
    let mut read = 0;
    while read < head.len() {
        match stream.read(&mut head[read..])? {
            0 => break,
            n => read += n,
        }
    }
    let status_line = String::from_utf8_lossy(&head[..read]);
    let status = status_line.split_whitespace().nth(1).unwrap_or("");
    if status == "200" {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "GET {} on {addr} answered {:?}",
            crate::routes::HEALTH_PATH,
            status_line.trim_end()
        )))
    }
}

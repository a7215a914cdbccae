//! Waiting for a started app to answer `GET <health_path>` with a 2xx status, speaking just
//! enough HTTP/1.1 over `std::net` (the tool does not depend on the apps' HTTP stack).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Pause between attempts while the app is not up yet.
const RETRY: Duration = Duration::from_millis(2);
/// Timeout of one attempt (connect, write, read).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Polls until `GET path` answers 2xx, `alive` returns false (the process exited) or `timeout`
/// passes. The error says what was seen last.
pub fn wait_until_healthy(
    address: SocketAddr,
    path: &str,
    timeout: Duration,
    mut alive: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe(address, path) {
            Ok(status) if (200..300).contains(&status) => return Ok(()),
            Ok(status) => format!("status {status}"),
            Err(error) => error.to_string(),
        };
        if !alive() {
            return Err(format!(
                "it exited before answering `GET {path}` (last: {last})"
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "it did not answer `GET {path}` with 2xx within {timeout:?} (last: {last})"
            ));
        }
        std::thread::sleep(RETRY);
    }
}

/// One `GET path`; the response's status code.
pub fn probe(address: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&address, ATTEMPT_TIMEOUT)?;
    stream.set_read_timeout(Some(ATTEMPT_TIMEOUT))?;
    stream.set_write_timeout(Some(ATTEMPT_TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0_u8; 12];
    stream.read_exact(&mut head)?;
    std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|code| code.parse().ok())
        .filter(|_| head.starts_with(b"HTTP/1."))
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response"))
}

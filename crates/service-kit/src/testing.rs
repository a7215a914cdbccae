//! Helpers for tests that talk to a service: a free loopback port, HTTP/1.1 spoken by hand over
//! `std::net`, and a guard over a spawned service binary that kills it if the test fails.
//!
//! Public so the apps' integration tests share one copy; standard library only, so it adds
//! nothing to the services' dependencies. The HTTP client handles what our services send
//! (`Content-Length` or chunked bodies, UTF-8 text) and nothing more: no TLS, no redirects.

use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Connect, read and write timeout of every request, so a test never hangs on a socket.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between two polls of [`ServiceProcess::wait_for_status`] and
/// [`ServiceProcess::wait_for_exit`].
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// A response read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code, e.g. 200.
    pub status: u16,
    /// Header names (lower-cased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: String,
}

/// A service binary started for a test, with stdin and stdout closed and stderr collected.
/// Dropping it kills the process if it is still running, so a failing test leaves nothing behind.
#[derive(Debug)]
pub struct ServiceProcess {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
}

/// A loopback port that was free a moment ago, for the service the test starts next.
///
/// Picked at random below the kernel's ephemeral range (32768 and up on Linux), never twice in
/// one process, and checked by binding it. Port 0's answer would come from the ephemeral range,
/// where every outgoing connection of every parallel test takes its local port, so another test
/// could take it before the service binds it. (The tool's own crates use `xtask_util::free_port`,
/// the same rule; the apps do not depend on the tool's crates.)
pub fn free_loopback_port() -> io::Result<u16> {
    use std::hash::BuildHasher as _;
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let random = std::collections::hash_map::RandomState::new();
    for attempt in 0..64_u64 {
        let port = 10000 + (random.hash_one(attempt) % 22768) as u16;
        if !handed_out.contains(&port) && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            handed_out.push(port);
            return Ok(port);
        }
    }
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// `GET path` on a new connection closed after the response.
pub fn http_get(addr: SocketAddr, path: &str) -> io::Result<HttpResponse> {
    let mut stream = connect(addr)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    read_response(&mut BufReader::new(stream))
}

/// A connection with [`IO_TIMEOUT`] on connect, reads and writes.
pub fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(stream)
}

/// Reads exactly one response from `reader`, leaving what follows (the next response on a
/// kept-alive connection) unread when the body has a length or is chunked; otherwise the body
/// runs to the end of the stream.
pub fn read_response(reader: &mut impl BufRead) -> io::Result<HttpResponse> {
    let status_line = read_line(reader, "the status line")?;
    let status = parse_status_line(&status_line)?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader, "the response headers")?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid_data(format!("bad header line `{line}`")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut response = HttpResponse {
        status,
        headers,
        body: String::new(),
    };
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|value| value.contains("chunked"));
    let content_length = response
        .header("content-length")
        .map(|value| {
            value
                .parse::<usize>()
                .map_err(|_| invalid_data(format!("bad content-length `{value}`")))
        })
        .transpose()?;
    let body = if chunked {
        read_chunked(reader)?
    } else if let Some(length) = content_length {
        read_exactly(reader, length, "the response body")?
    } else {
        let mut body = Vec::new();
        reader.read_to_end(&mut body)?;
        body
    };
    response.body = String::from_utf8(body)
        .map_err(|_| invalid_data("the response body is not UTF-8".to_owned()))?;
    Ok(response)
}

impl HttpResponse {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header_name, _)| header_name.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

impl ServiceProcess {
    /// Starts `program` with an empty environment plus `PORT=port`, `BIND_ADDR=127.0.0.1`,
    /// `RUST_LOG=info`, then `envs` (which may override those).
    pub fn spawn(program: impl AsRef<OsStr>, port: u16, envs: &[(&str, &str)]) -> io::Result<Self> {
        let mut child = Command::new(program)
            .env_clear()
            .env("PORT", port.to_string())
            .env("BIND_ADDR", "127.0.0.1")
            .env("RUST_LOG", "info")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_reader = child.stderr.take().map(|pipe| {
            let stderr = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut collected = stderr.lock().unwrap_or_else(PoisonError::into_inner);
                    collected.push_str(&line);
                    collected.push('\n');
                }
            })
        });
        Ok(Self {
            child,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            stderr,
            stderr_reader,
        })
    }

    /// Where the service listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `GET path` on the service.
    pub fn get(&self, path: &str) -> io::Result<HttpResponse> {
        http_get(self.addr, path)
    }

    /// Polls `GET path` until it answers `status`, for at most `timeout`. The error says what was
    /// last seen and includes the service's stderr; it is immediate if the process exits.
    pub fn wait_for_status(
        &mut self,
        path: &str,
        status: u16,
        timeout: Duration,
    ) -> Result<HttpResponse, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(exit_status)) = self.child.try_wait() {
                return Err(self.failure(&format!(
                    "exited ({exit_status}) before `GET {path}` answered {status}"
                )));
            }
            let last_seen = match self.get(path) {
                Ok(response) if response.status == status => return Ok(response),
                Ok(response) => format!("status {}, body {:?}", response.status, response.body),
                Err(error) => format!("error: {error}"),
            };
            if Instant::now() >= deadline {
                return Err(self.failure(&format!(
                    "`GET {path}` did not answer {status} within {timeout:?}; last seen {last_seen}"
                )));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Sends SIGTERM with `kill -TERM <pid>`.
    pub fn terminate(&self) -> io::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if status.success() {
            return Ok(());
        }
        Err(io::Error::other(format!(
            "`kill -TERM {}` failed: {status}",
            self.child.id()
        )))
    }

    /// Waits at most `timeout` for the process to exit; `None` if it is still running.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(exit_status) = self.child.try_wait()? {
                self.finish_reading_stderr();
                return Ok(Some(exit_status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// What the service wrote to stderr so far; all of it once [`Self::wait_for_exit`] saw it exit.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn finish_reading_stderr(&mut self) {
        if let Some(reader) = self.stderr_reader.take() {
            let _reader_panicked = reader.join();
        }
    }

    fn failure(&self, what: &str) -> String {
        format!("service {what}\n--- stderr ---\n{}", self.stderr())
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _already_gone = self.child.kill();
            let _reaped = self.child.wait();
        }
    }
}

fn parse_status_line(line: &str) -> io::Result<u16> {
    line.strip_prefix("HTTP/1.1 ")
        .or_else(|| line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid_data(format!("bad status line `{line}`")))
}

/// Decodes a chunked body: size lines in hex (extensions ignored), data, and trailer lines.
fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let size_line = read_line(reader, "a chunk size")?;
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| invalid_data(format!("bad chunk size `{size_line}`")))?;
        if size == 0 {
            while !read_line(reader, "the trailer")?.is_empty() {}
            return Ok(body);
        }
        body.extend(read_exactly(reader, size, "a chunk")?);
        if !read_line(reader, "a chunk")?.is_empty() {
            return Err(invalid_data("a chunk is longer than its size".to_owned()));
        }
    }
}

/// One line without its CRLF; the end of the stream is an error naming what was being read.
fn read_line(reader: &mut impl BufRead, reading: &str) -> io::Result<String> {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    let Some(line) = line.strip_suffix(b"\n") else {
        return Err(closed_while(reading));
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8(line.to_vec()).map_err(|_| invalid_data(format!("{reading} is not UTF-8")))
}

fn read_exactly(reader: &mut impl BufRead, length: usize, reading: &str) -> io::Result<Vec<u8>> {
    let mut data = vec![0_u8; length];
    reader.read_exact(&mut data).map_err(|error| {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            closed_while(reading)
        } else {
            error
        }
    })?;
    Ok(data)
}

fn closed_while(reading: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("connection closed while reading {reading}"),
    )
}

fn invalid_data(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A reader handing out its input a few bytes at a time, as a socket may.
    struct Trickle<'a>(&'a [u8]);

    fn trickle(input: &[u8]) -> BufReader<Trickle<'_>> {
        BufReader::with_capacity(4, Trickle(input))
    }

    fn rest(mut reader: BufReader<Trickle<'_>>) -> String {
        let mut rest = String::new();
        reader.read_to_string(&mut rest).unwrap();
        rest
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
            let count = self.0.len().min(buffer.len()).min(3);
            buffer[..count].copy_from_slice(&self.0[..count]);
            self.0 = &self.0[count..];
            Ok(count)
        }
    }

    #[test]
    fn reads_a_content_length_response_and_stops_at_its_end() {
        let mut reader = trickle(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
              content-length: 21\r\n\r\n{\"status\":\"starting\"}NEXT",
        );
        let response = read_response(&mut reader).unwrap();
        assert_eq!(response.status, 503);
        assert_eq!(response.header("Content-Type"), Some("application/json"));
        assert_eq!(response.body, r#"{"status":"starting"}"#);
        assert_eq!(rest(reader), "NEXT", "the next response is left unread");
    }

    #[test]
    fn decodes_a_chunked_body() {
        let mut reader = trickle(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\nNEXT",
        );
        let response = read_response(&mut reader).unwrap();
        assert_eq!(response.body, "hello, world");
        assert_eq!(rest(reader), "NEXT");
    }

    #[test]
    fn reads_to_the_end_without_a_length() {
        let mut reader = trickle(b"HTTP/1.0 404 Not Found\r\n\r\nno such page");
        let response = read_response(&mut reader).unwrap();
        assert_eq!(
            (response.status, response.body.as_str()),
            (404, "no such page")
        );
    }

    #[test]
    fn truncated_or_garbled_responses_are_errors() {
        let truncated = read_response(&mut trickle(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        ));
        assert_eq!(
            truncated.unwrap_err().to_string(),
            "connection closed while reading the response body"
        );
        let garbled = read_response(&mut trickle(b"SMTP ready\r\n\r\n"));
        assert_eq!(
            garbled.unwrap_err().to_string(),
            "bad status line `SMTP ready`"
        );
    }
}

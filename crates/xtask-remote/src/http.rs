//! HTTP with the policy every remote call shares: one `ureq` agent (rustls, no async runtime),
//! a global timeout per request, retries with exponential backoff for transport errors, 5xx and
//! 429 (honouring a short `Retry-After`), never for other 4xx. Failures are classified so the
//! user sees one clear reason; no message ever contains a header value (tokens live there).

use std::fmt;
use std::thread;
use std::time::Duration;

use crate::bundle::MAX_ARTIFACT_BYTES;
use crate::settings::RemoteSettings;

/// A finished HTTP exchange (any status).
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Why a remote call failed, after retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// 401: the token was refused.
    Unauthorized,
    /// 403: the token may not do this.
    Forbidden,
    /// Any other unexpected status (e.g. 500, 507 disk full, 413 too large).
    Status(u16),
    /// No answer: connection refused, DNS, reset, TLS.
    Transport(String),
    /// No answer in time.
    Timeout(Duration),
}

/// A failed remote call: the server, what was attempted, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub server: String,
    /// e.g. `GET /v8/artifacts/<hash>`.
    pub action: String,
    pub kind: FailureKind,
    /// Whether the failure concerns the whole server (auth, connectivity, server errors) so
    /// the remote cache should be switched off for the rest of the run.
    pub fatal: bool,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::Unauthorized => f.write_str(
                "401 Unauthorized: the server refused the token (check TURBO_TOKEN or XTASK_REMOTE_CACHE_TOKEN)",
            ),
            FailureKind::Forbidden => f.write_str(
                "403 Forbidden: the token may not access this cache (check the team and the token's permissions)",
            ),
            FailureKind::Status(507) => f.write_str("507 Insufficient Storage: the server's disk is full"),
            FailureKind::Status(413) => f.write_str("413 Payload Too Large: the server refused the artifact's size"),
            FailureKind::Status(status) => write!(f, "unexpected HTTP status {status}"),
            FailureKind::Transport(reason) => write!(f, "cannot reach the server: {reason}"),
            FailureKind::Timeout(after) => write!(f, "no answer within {}s", after.as_secs_f32()),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "remote cache {}: {}: {}",
            self.server, self.action, self.kind
        )
    }
}

/// Connections kept open between requests, more than the fetching threads (16). With ureq's
/// default of 3 per host, a fresh machine's 1,008 requests opened about 60 connections (274
/// under strace), each a TCP handshake (and a TLS one over HTTPS); now 16.
const IDLE_CONNECTIONS: usize = 32;

pub(crate) struct Http {
    agent: ureq::Agent,
    pub server: String,
    retries: u32,
    timeout: Duration,
    auth: Option<String>,
}

pub(crate) enum Method {
    Get,
    Head,
    Put,
}

impl Method {
    fn as_str(&self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
        }
    }
}

impl Http {
    pub fn new(settings: &RemoteSettings) -> Http {
        use base64::Engine;
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(settings.timeout))
            .http_status_as_error(false)
            .user_agent(format!("xtask/{}", env!("CARGO_PKG_VERSION")))
            .max_idle_connections(IDLE_CONNECTIONS)
            .max_idle_connections_per_host(IDLE_CONNECTIONS)
            .build();
        let auth = match (&settings.token, &settings.basic_auth) {
            (Some(token), _) => Some(format!("Bearer {}", token.expose())),
            (None, Some(basic)) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(basic.expose())
            )),
            (None, None) => None,
        };
        Http {
            agent: config.into(),
            server: settings.url.clone(),
            retries: settings.retries,
            timeout: settings.timeout,
            auth,
        }
    }

    /// Sends one request, retrying transient failures. `path` starts with `/` and may carry a
    /// query; `label` is the path as shown in messages (without the query).
    pub fn send(
        &self,
        method: Method,
        path: &str,
        label: &str,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Reply, Failure> {
        let url = format!("{}{path}", self.server);
        let action = format!("{} {label}", method.as_str());
        let mut attempt = 0;
        loop {
            let outcome = self.attempt(&method, &url, headers, body);
            // Timeouts are not retried: the request already waited the whole timeout.
            let (retryable, retry_after) = match &outcome {
                Ok(reply) if reply.status >= 500 || reply.status == 429 => (
                    true,
                    reply
                        .header("retry-after")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s.min(5))),
                ),
                Ok(_) | Err(FailureKind::Timeout(_)) => (false, None),
                Err(_) => (true, None),
            };
            if retryable && attempt < self.retries {
                attempt += 1;
                thread::sleep(retry_after.unwrap_or(Duration::from_millis(100 << attempt.min(6))));
                continue;
            }
            return outcome.map_err(|kind| Failure {
                server: self.server.clone(),
                action,
                kind,
                fatal: true,
            });
        }
    }

    fn attempt(
        &self,
        method: &Method,
        url: &str,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Reply, FailureKind> {
        macro_rules! with_headers {
            ($request:expr) => {{
                let mut request = $request;
                if let Some(auth) = &self.auth {
                    request = request.header("Authorization", auth);
                }
                for (name, value) in headers {
                    request = request.header(*name, value);
                }
                request
            }};
        }
        let result = match method {
            Method::Get => with_headers!(self.agent.get(url)).call(),
            Method::Head => with_headers!(self.agent.head(url)).call(),
            Method::Put => with_headers!(self.agent.put(url)).send(body.unwrap_or_default()),
        };
        let mut response = result.map_err(|error| self.classify(error))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                value
                    .to_str()
                    .ok()
                    .map(|value| (name.as_str().to_owned(), value.to_owned()))
            })
            .collect();
        let body = if matches!(method, Method::Head) {
            Vec::new()
        } else {
            response
                .body_mut()
                .with_config()
                .limit(MAX_ARTIFACT_BYTES)
                .read_to_vec()
                .map_err(|error| self.classify(error))?
        };
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    fn classify(&self, error: ureq::Error) -> FailureKind {
        match error {
            ureq::Error::Timeout(_) => FailureKind::Timeout(self.timeout),
            ureq::Error::Io(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                FailureKind::Transport("connection refused".into())
            }
            ureq::Error::Io(error) if error.kind() == std::io::ErrorKind::TimedOut => {
                FailureKind::Timeout(self.timeout)
            }
            other => FailureKind::Transport(other.to_string()),
        }
    }

    /// The failure for an unexpected status of a finished exchange.
    pub fn status_failure(&self, method: Method, label: &str, status: u16) -> Failure {
        let kind = match status {
            401 => FailureKind::Unauthorized,
            403 => FailureKind::Forbidden,
            other => FailureKind::Status(other),
        };
        Failure {
            server: self.server.clone(),
            action: format!("{} {label}", method.as_str()),
            // A 4xx about one artifact (e.g. 413) does not condemn the server; auth and 5xx do.
            fatal: matches!(kind, FailureKind::Unauthorized | FailureKind::Forbidden)
                || status >= 500,
            kind,
        }
    }
}

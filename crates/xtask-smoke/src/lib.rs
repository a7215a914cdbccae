//! The smoke check of running apps: for each app at its base URL, its readiness endpoint
//! (polled until ready or until `ready_within` runs out), its health endpoint, its metrics
//! endpoint (which must expose what the generated alerts and dashboards query), then every
//! request its `[[package.metadata.xtask.app.smoke]]` declares (method, path, expected status,
//! body substring). Each request has its own timeout.
//!
//! Invariants: does no IO but HTTP to the given base URLs; never prints (the caller renders the
//! [`SmokeReport`]); knows nothing of where the apps run (a base URL, `dev`, a
//! `kubectl port-forward` are the caller's).

use std::fmt::Write as _;
use std::io::Read as _;
use std::time::{Duration, Instant};

use xtask_model::AppConfig;

/// Series the metrics endpoint must expose: what the generated rules and dashboards query.
pub const REQUIRED_METRICS: [&str; 2] = [
    "http_requests_total",
    "http_request_duration_seconds_bucket",
];
/// Bodies are read up to this size; a substring beyond it is not found.
const MAX_BODY: u64 = 1024 * 1024;

/// One app to check.
#[derive(Debug, Clone)]
pub struct SmokeTarget {
    pub app: String,
    /// `http://127.0.0.1:8080`, without a trailing slash.
    pub base_url: String,
    pub config: AppConfig,
}

/// Timeouts of a smoke run.
#[derive(Debug, Clone, Copy)]
pub struct SmokeSettings {
    /// Of each request.
    pub request_timeout: Duration,
    /// How long an app may take to become ready (readiness is polled until then).
    pub ready_within: Duration,
    /// Pause between readiness polls.
    pub poll_interval: Duration,
}

impl SmokeSettings {
    /// `--timeout SECS` (at least one second) of each request and `--ready-within SECS`,
    /// with the default poll interval.
    pub fn from_secs(request_timeout: u64, ready_within: u64) -> SmokeSettings {
        SmokeSettings {
            request_timeout: Duration::from_secs(request_timeout.max(1)),
            ready_within: Duration::from_secs(ready_within),
            ..SmokeSettings::default()
        }
    }
}

impl Default for SmokeSettings {
    fn default() -> SmokeSettings {
        SmokeSettings {
            request_timeout: Duration::from_secs(5),
            ready_within: Duration::from_secs(60),
            poll_interval: Duration::from_millis(500),
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub app: String,
    /// `GET /ready`.
    pub request: String,
    /// What was expected (`200`, `200 and body contains "x"`).
    pub expected: String,
    /// `None` when it passed; else what happened instead.
    pub failure: Option<String>,
    pub attempts: u32,
    pub elapsed: Duration,
}

/// Every check of a run, in order.
#[derive(Debug, Clone, Default)]
pub struct SmokeReport {
    pub results: Vec<CheckResult>,
}

impl SmokeReport {
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.failure.is_none())
    }

    pub fn failures(&self) -> usize {
        self.results.iter().filter(|r| r.failure.is_some()).count()
    }

    /// One line per check, then a summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for result in &self.results {
            let retries = if result.attempts > 1 {
                format!(", {} attempts", result.attempts)
            } else {
                String::new()
            };
            let _ = match &result.failure {
                None => writeln!(
                    out,
                    "ok    {} {} ({}ms{retries})",
                    result.app,
                    result.request,
                    result.elapsed.as_millis()
                ),
                Some(failure) => writeln!(
                    out,
                    "FAIL  {} {}: expected {}, {failure}{retries}",
                    result.app, result.request, result.expected
                ),
            };
        }
        let _ = writeln!(
            out,
            "smoke: {} checks, {} failed",
            self.results.len(),
            self.failures()
        );
        out
    }
}

/// Checks every target in order.
pub fn check(targets: &[SmokeTarget], settings: &SmokeSettings) -> SmokeReport {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(settings.request_timeout))
        .http_status_as_error(false)
        .user_agent(format!("xtask-smoke/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut report = SmokeReport::default();
    for target in targets {
        check_app(&agent, target, settings, &mut report);
    }
    report
}

struct Expectation<'a> {
    method: &'a str,
    path: &'a str,
    status: u16,
    body_contains: Vec<&'a str>,
}

impl Expectation<'_> {
    fn describe(&self) -> String {
        let mut text = self.status.to_string();
        for needle in &self.body_contains {
            let _ = write!(text, " and body contains {needle:?}");
        }
        text
    }
}

fn check_app(
    agent: &ureq::Agent,
    target: &SmokeTarget,
    settings: &SmokeSettings,
    report: &mut SmokeReport,
) {
    let config = &target.config;
    let ready = Expectation {
        method: "GET",
        path: &config.ready_path,
        status: 200,
        body_contains: Vec::new(),
    };
    let deadline = Instant::now() + settings.ready_within;
    report.results.push(run_check(
        agent,
        target,
        &ready,
        Some((deadline, settings.poll_interval)),
    ));
    let mut expectations = vec![
        Expectation {
            method: "GET",
            path: &config.health_path,
            status: 200,
            body_contains: Vec::new(),
        },
        Expectation {
            method: "GET",
            path: &config.metrics_path,
            status: 200,
            body_contains: REQUIRED_METRICS.to_vec(),
        },
    ];
    expectations.extend(config.smoke.iter().map(|request| Expectation {
        method: &request.method,
        path: &request.path,
        status: request.status,
        body_contains: request.body_contains.iter().map(String::as_str).collect(),
    }));
    for expectation in &expectations {
        report
            .results
            .push(run_check(agent, target, expectation, None));
    }
}

/// Sends the request; with `poll`, again after each failure until the deadline.
fn run_check(
    agent: &ureq::Agent,
    target: &SmokeTarget,
    expectation: &Expectation<'_>,
    poll: Option<(Instant, Duration)>,
) -> CheckResult {
    let url = format!("{}{}", target.base_url, expectation.path);
    let started = Instant::now();
    let mut attempts = 0;
    let failure = loop {
        attempts += 1;
        let failure = send(agent, &url, expectation).err();
        match (failure, poll) {
            (None, _) => break None,
            (Some(failure), Some((deadline, interval))) if Instant::now() + interval < deadline => {
                let _ = failure;
                std::thread::sleep(interval);
            }
            (Some(failure), _) => break Some(failure),
        }
    };
    CheckResult {
        app: target.app.clone(),
        request: format!("{} {}", expectation.method, expectation.path),
        expected: expectation.describe(),
        failure,
        attempts,
        elapsed: started.elapsed(),
    }
}

/// `Err(what happened)` unless the status and body are as expected.
fn send(agent: &ureq::Agent, url: &str, expectation: &Expectation<'_>) -> Result<(), String> {
    let result = match expectation.method {
        "GET" => agent.get(url).call(),
        "HEAD" => agent.head(url).call(),
        "DELETE" => agent.delete(url).call(),
        "POST" => agent.post(url).send_empty(),
        "PUT" => agent.put(url).send_empty(),
        "PATCH" => agent.patch(url).send_empty(),
        other => return Err(format!("unsupported method {other}")),
    };
    let mut response = result.map_err(|error| match error {
        ureq::Error::Timeout(_) => "timed out".to_string(),
        other => format!("request failed: {other}"),
    })?;
    let status = response.status().as_u16();
    let mut body = String::new();
    if expectation.method != "HEAD" {
        let mut bytes = Vec::new();
        response
            .body_mut()
            .as_reader()
            .take(MAX_BODY)
            .read_to_end(&mut bytes)
            .map_err(|error| format!("reading the body failed: {error}"))?;
        body = String::from_utf8_lossy(&bytes).into_owned();
    }
    if status != expectation.status {
        return Err(format!("got {status}: {}", excerpt(&body)));
    }
    let missing: Vec<&str> = expectation
        .body_contains
        .iter()
        .copied()
        .filter(|needle| !body.contains(needle))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "got {status} without {}: {}",
            missing
                .iter()
                .map(|m| format!("{m:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            excerpt(&body)
        ));
    }
    Ok(())
}

/// The start of a body, on one line, for a failure message.
fn excerpt(body: &str) -> String {
    let line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return "(empty body)".to_string();
    }
    let mut end = line.len().min(200);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    if end < line.len() {
        format!("{:?}...", &line[..end])
    } else {
        format!("{line:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_timeout_is_at_least_one_second() {
        let settings = SmokeSettings::from_secs(0, 0);
        assert_eq!(settings.request_timeout, Duration::from_secs(1));
        assert_eq!(settings.ready_within, Duration::ZERO);
        let settings = SmokeSettings::from_secs(7, 30);
        assert_eq!(settings.request_timeout, Duration::from_secs(7));
        assert_eq!(settings.ready_within, Duration::from_secs(30));
        assert_eq!(
            settings.poll_interval,
            SmokeSettings::default().poll_interval
        );
    }
}

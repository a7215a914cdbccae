//! The real `api` binary on a loopback port: the greeting, the shared endpoints, and a clean
//! exit on SIGTERM. Every process is killed by its guard if a test fails.

use std::io::{BufReader, Write as _};
use std::time::{Duration, Instant};

use service_kit::metrics::sample_value;
use service_kit::testing::{ServiceProcess, connect, free_loopback_port, read_response};

/// Bound on start-up, from spawn to `/health` answering 200.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on the exit after SIGTERM; well under the default 10 s shutdown grace, so an exit that
/// waited for the grace period to run out fails the test.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

fn start() -> ServiceProcess {
    let port = free_loopback_port().unwrap();
    let mut api = ServiceProcess::spawn(env!("CARGO_BIN_EXE_api"), port, &[]).unwrap();
    api.wait_for_status("/health", 200, STARTUP_TIMEOUT)
        .unwrap_or_else(|error| panic!("{error}"));
    api
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let port = free_loopback_port().unwrap();
    let mut api = ServiceProcess::spawn(
        env!("CARGO_BIN_EXE_api"),
        port,
        &[("LOG_FORMAT", "json"), ("RUST_LOG", "warn,api=info")],
    )
    .unwrap();
    api.wait_for_status("/health", 200, STARTUP_TIMEOUT)
        .unwrap_or_else(|error| panic!("{error}"));
    let stderr = terminate_and_expect_clean_exit(api);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    for line in &lines {
        assert!(
            line.starts_with("{\"timestamp\":\"") && line.ends_with("\"target\":\"api::service\"}"),
            "{line}"
        );
    }
    assert!(
        lines[0].contains(&format!(
            "\"level\":\"INFO\",\"fields\":{{\"message\":\"listening on 127.0.0.1:{port}\"}}"
        )),
        "{stderr}"
    );
}

/// Sends SIGTERM and asserts a prompt exit with code 0; returns the api's stderr.
fn terminate_and_expect_clean_exit(mut api: ServiceProcess) -> String {
    api.terminate().unwrap();
    let started = Instant::now();
    let status = api.wait_for_exit(EXIT_TIMEOUT).unwrap().unwrap_or_else(|| {
        panic!(
            "still running {EXIT_TIMEOUT:?} after SIGTERM; stderr:\n{}",
            api.stderr()
        )
    });
    let stderr = api.stderr();
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    assert!(started.elapsed() < EXIT_TIMEOUT);
    stderr
}

#[test]
fn serves_greetings_and_the_shared_endpoints_then_exits_0_on_sigterm() {
    let api = start();

    let health = api.get("/health").unwrap();
    assert_eq!(
        (health.status, health.body.as_str()),
        (200, r#"{"status":"ok"}"#)
    );
    let ready = api.get("/ready").unwrap();
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (200, r#"{"status":"ready"}"#)
    );

    let greeting = api.get("/v1/greeting?name=Ada%20Lovelace").unwrap();
    assert_eq!(greeting.status, 200);
    assert_eq!(greeting.header("content-type"), Some("application/json"));
    assert_eq!(greeting.body, r#"{"message":"hello, Ada Lovelace"}"#);
    let missing = api.get("/v1/greeting").unwrap();
    assert_eq!(missing.status, 400);

    let metrics = api.get("/metrics").unwrap();
    assert_eq!(metrics.status, 200);
    assert_eq!(
        metrics.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let text = &metrics.body;
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample_value(
            text,
            &format!("app_info{{name=\"api\",version=\"{version}\"}}")
        ),
        Some(1.0),
        "{text}"
    );
    assert!(sample_value(text, "process_uptime_seconds").is_some_and(|uptime| uptime >= 0.0));
    for (series, count) in [
        (
            "http_requests_total{path=\"/v1/greeting\",status=\"200\"}",
            1.0,
        ),
        (
            "http_requests_total{path=\"/v1/greeting\",status=\"400\"}",
            1.0,
        ),
        ("http_requests_total{path=\"/ready\",status=\"200\"}", 1.0),
    ] {
        assert_eq!(
            sample_value(text, series),
            Some(count),
            "{series} in\n{text}"
        );
    }

    let stderr = terminate_and_expect_clean_exit(api);
    for expected in [
        " INFO api::service: listening on 127.0.0.1:",
        " INFO api::service: received SIGTERM, draining connections",
        " INFO api::service: stopped\n",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in stderr:\n{stderr}"
        );
    }
}

#[test]
fn bad_greeting_requests_are_400_with_a_json_error() {
    let api = start();
    let too_long = "x".repeat(65);
    let longest_multibyte = "%C3%A9".repeat(64);
    let cases = [
        (
            "/v1/greeting",
            r#"{"error":"query parameter `name` is required"}"#,
        ),
        (
            "/v1/greeting?name=",
            r#"{"error":"query parameter `name` must be 1 to 64 characters, got 0"}"#,
        ),
        (
            &format!("/v1/greeting?name={too_long}"),
            r#"{"error":"query parameter `name` must be 1 to 64 characters, got 65"}"#,
        ),
    ];
    for (path, body) in cases {
        let response = api.get(path).unwrap();
        assert_eq!(response.status, 400, "{path}");
        assert_eq!(
            response.header("content-type"),
            Some("application/json"),
            "{path}"
        );
        assert_eq!(response.body, body, "{path}");
    }

    let duplicated = api.get("/v1/greeting?name=a&name=b").unwrap();
    assert_eq!(duplicated.status, 400);
    assert_eq!(duplicated.header("content-type"), Some("application/json"));
    assert!(
        duplicated
            .body
            .starts_with(r#"{"error":"Failed to deserialize query string"#),
        "{}",
        duplicated.body
    );

    let multibyte = api
        .get(&format!("/v1/greeting?name={longest_multibyte}"))
        .unwrap();
    assert_eq!(
        multibyte.status, 200,
        "64 characters are fine even as 128 bytes"
    );

    terminate_and_expect_clean_exit(api);
}

#[test]
fn sigterm_closes_idle_keep_alive_connections_and_exits_0() {
    let api = start();
    let mut connection = BufReader::new(connect(api.addr()).unwrap());
    for _ in 0..2 {
        write!(
            connection.get_mut(),
            "GET /health HTTP/1.1\r\nHost: {}\r\n\r\n",
            api.addr()
        )
        .unwrap();
        let response = read_response(&mut connection).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.header("connection"), None, "kept alive");
    }

    terminate_and_expect_clean_exit(api);
    let after_shutdown = read_response(&mut connection);
    assert!(after_shutdown.is_err(), "the idle connection was closed");
}

#[test]
fn an_invalid_environment_exits_2_naming_every_bad_variable() {
    let mut api = ServiceProcess::spawn(
        env!("CARGO_BIN_EXE_api"),
        free_loopback_port().unwrap(),
        &[
            ("PORT", "0"),
            ("BIND_ADDR", "everywhere"),
            ("RUST_LOG", "api=chatty"),
        ],
    )
    .unwrap();
    let status = api
        .wait_for_exit(EXIT_TIMEOUT)
        .unwrap()
        .expect("still running with an invalid environment");
    let stderr = api.stderr();
    assert_eq!(status.code(), Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains(
            " ERROR service_kit::server: invalid environment: `PORT` must be an integer from 1 to \
             65535, got `0`; `BIND_ADDR` must be an IP address, got `everywhere`; `RUST_LOG` must \
             be EnvFilter directives such as `info` or `warn,api=debug`, got `api=chatty`\n"
        ),
        "stderr:\n{stderr}"
    );
}

/// `api --health-check` probes a running api: exit 0 while it serves, 1 (with the reason) once
/// nothing listens on its port.
#[test]
fn health_check_mode_answers_for_the_running_service() {
    let api = start();
    let port = api.addr().port().to_string();
    let probe = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_api"))
            .arg("--health-check")
            .env_clear()
            .env("PORT", &port)
            .output()
            .unwrap()
    };
    let healthy = probe();
    assert!(healthy.status.success(), "{healthy:?}");
    terminate_and_expect_clean_exit(api);
    let down = probe();
    assert_eq!(down.status.code(), Some(1), "{down:?}");
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("health check failed"),
        "{down:?}"
    );
}

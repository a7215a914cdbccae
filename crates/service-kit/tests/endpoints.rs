//! The shared endpoints and `serve` run for real on loopback, spoken to over `std::net`.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use service_kit::metrics::sample_value;
use service_kit::testing::{HttpResponse, http_get};
use service_kit::{Metrics, Readiness, ServeError};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server on `127.0.0.1:0` in its own runtime, stopped by [`Server::stop`] or by dropping it.
struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: JoinHandle<Result<(), ServeError>>,
    runtime: Runtime,
}

impl Server {
    fn start(app_routes: Router, metrics: Metrics, readiness: Readiness, grace: Duration) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(service_kit::bind(SocketAddr::from((
                Ipv4Addr::LOCALHOST,
                0,
            ))))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let router = service_kit::router(app_routes, metrics, readiness);
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let served = runtime.spawn(service_kit::serve(listener, router, shutdown, grace));
        Self {
            addr,
            stop: Some(stop),
            served,
            runtime,
        }
    }

    fn get(&self, path: &str) -> HttpResponse {
        http_get(self.addr, path).unwrap_or_else(|error| panic!("GET {path}: {error}"))
    }

    /// Triggers shutdown and waits (at most 10 s) for `serve` to return.
    fn stop(mut self) -> (Result<(), ServeError>, Duration) {
        let started = Instant::now();
        let _ = self.stop.take().unwrap().send(());
        let served = self.runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), &mut self.served)
                .await
                .expect("serve did not return within 10 s of shutdown")
                .expect("the serve task panicked")
        });
        (served, started.elapsed())
    }
}

fn app_info() -> Metrics {
    Metrics::new("test-app", "1.2.3")
}

#[test]
fn health_is_ok_whatever_the_readiness() {
    let server = Server::start(
        Router::new(),
        app_info(),
        Readiness::new(),
        Duration::from_secs(5),
    );
    let response = server.get("/health");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.body, r#"{"status":"ok"}"#);
}

#[test]
fn ready_answers_503_until_ready_then_200_then_503_when_stopping() {
    let readiness = Readiness::new();
    let server = Server::start(
        Router::new(),
        app_info(),
        readiness.clone(),
        Duration::from_secs(5),
    );

    let starting = server.get("/ready");
    assert_eq!(
        (starting.status, starting.body.as_str()),
        (503, r#"{"status":"starting"}"#)
    );
    assert_eq!(starting.header("content-type"), Some("application/json"));

    readiness.set_ready();
    let ready = server.get("/ready");
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (200, r#"{"status":"ready"}"#)
    );

    readiness.set_stopping();
    let stopping = server.get("/ready");
    assert_eq!(
        (stopping.status, stopping.body.as_str()),
        (503, r#"{"status":"stopping"}"#)
    );
}

#[test]
fn metrics_show_app_info_uptime_and_requests_by_route_template() {
    let app_routes = Router::new().route(
        "/items/{id}",
        get(|Path(id): Path<u32>| async move { format!("item {id}") }),
    );
    let server = Server::start(
        app_routes,
        app_info(),
        Readiness::new(),
        Duration::from_secs(5),
    );
    assert_eq!(server.get("/health").status, 200);
    assert_eq!(server.get("/health").status, 200);
    assert_eq!(server.get("/ready").status, 503);
    let item = server.get("/items/42");
    assert_eq!((item.status, item.body.as_str()), (200, "item 42"));
    assert_eq!(server.get("/items/not-a-number").status, 400);
    assert_eq!(server.get("/no/such/page").status, 404);

    let response = server.get("/metrics");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let text = &response.body;
    for line in [
        "# TYPE app_info gauge\n",
        "app_info{name=\"test-app\",version=\"1.2.3\"} 1\n",
        "# HELP process_uptime_seconds Seconds since the service started.\n",
        "# TYPE process_uptime_seconds gauge\n",
        "# HELP http_requests HTTP requests answered, by route and status code.\n",
        "# TYPE http_requests counter\n",
        "# TYPE http_request_duration_seconds histogram\n",
        "# EOF\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let uptime = sample_value(text, "process_uptime_seconds").unwrap();
    assert!((0.0..60.0).contains(&uptime), "uptime {uptime}");
    let requests = |path: &str, status: u16| {
        let series = format!("http_requests_total{{path=\"{path}\",status=\"{status}\"}}");
        sample_value(text, &series)
    };
    assert_eq!(requests("/health", 200), Some(2.0));
    assert_eq!(requests("/ready", 503), Some(1.0));
    assert_eq!(requests("/items/{id}", 200), Some(1.0));
    assert_eq!(requests("/items/{id}", 400), Some(1.0));
    assert_eq!(requests("unmatched", 404), Some(1.0));
    assert_eq!(requests("/metrics", 200), None, "counted after it renders");
    let durations = |path: &str, suffix: &str| {
        sample_value(
            text,
            &format!("http_request_duration_seconds_{suffix}{{path=\"{path}\"}}"),
        )
    };
    assert_eq!(durations("/health", "count"), Some(2.0), "{text}");
    assert_eq!(durations("/items/{id}", "count"), Some(2.0), "{text}");
    assert!(durations("/health", "sum").is_some_and(|sum| sum >= 0.0));
    assert_eq!(
        sample_value(
            text,
            "http_request_duration_seconds_bucket{le=\"+Inf\",path=\"/health\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert!(
        !text.contains("/items/42"),
        "raw paths are never labels:\n{text}"
    );

    let again = server.get("/metrics");
    assert_eq!(
        sample_value(
            &again.body,
            "http_requests_total{path=\"/metrics\",status=\"200\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn serve_returns_ok_soon_after_shutdown_when_idle() {
    let server = Server::start(
        Router::new(),
        app_info(),
        Readiness::new(),
        Duration::from_secs(5),
    );
    assert_eq!(server.get("/health").status, 200);
    let (served, took) = server.stop();
    served.unwrap();
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn serve_gives_up_on_a_request_still_running_after_the_grace_period() {
    let entered = Arc::new(AtomicBool::new(false));
    let app_routes = Router::new().route(
        "/slow",
        get({
            let entered = Arc::clone(&entered);
            move || async move {
                entered.store(true, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(60)).await;
                "too late"
            }
        }),
    );
    let grace = Duration::from_millis(300);
    let server = Server::start(app_routes, app_info(), Readiness::new(), grace);
    let addr = server.addr;
    let client = std::thread::spawn(move || http_get(addr, "/slow"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !entered.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the slow request never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }

    let (served, took) = server.stop();
    match served {
        Err(ServeError::GraceExpired { grace: expired }) => assert_eq!(expired, grace),
        other => panic!("expected GraceExpired, got {other:?}"),
    }
    assert!(
        took >= grace,
        "gave up after {took:?}, before the grace period"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(
        ServeError::GraceExpired { grace }.to_string(),
        "connections were still open 300 ms after shutdown began"
    );
    // The runtime is gone, so the connection was closed without a response.
    assert!(client.join().unwrap().is_err());
}

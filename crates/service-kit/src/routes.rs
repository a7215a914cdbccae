//! The HTTP endpoints every service shares, `/health`, `/ready` and `/metrics`, and the request
//! counter `http_requests_total{path,status}` and duration histogram
//! `http_request_duration_seconds{path}` wrapped around them and the app's own routes.
//!
//! The `path` label is the matched route template (`/items/{id}`, not `/items/42`), or
//! `unmatched` for requests no route matched, so a client cannot grow the number of series.

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::metrics::{self, Metrics};
use crate::readiness::Readiness;

/// Liveness: 200 `{"status":"ok"}` while the process can answer at all.
pub const HEALTH_PATH: &str = "/health";
/// Readiness: 200 `{"status":"ready"}`, or 503 with `starting` or `stopping`.
pub const READY_PATH: &str = "/ready";
/// Metrics in the Prometheus text format.
pub const METRICS_PATH: &str = "/metrics";
/// Counter of answered requests, labelled `path` and `status`.
pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
/// Histogram of the time from receiving a request to its response's head, labelled `path`.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";
/// The `path` label of requests that matched no route.
pub const UNMATCHED_PATH: &str = "unmatched";

/// `app_routes` plus the shared endpoints, every request counted in `metrics`.
///
/// # Panics
///
/// If `app_routes` already has a route at one of the shared paths (axum's `merge` rule).
pub fn router(app_routes: Router, metrics: Metrics, readiness: Readiness) -> Router {
    let shared_routes = Router::new()
        .route(HEALTH_PATH, get(health))
        .route(READY_PATH, get(ready))
        .route(METRICS_PATH, get(render_metrics))
        .with_state(SharedState {
            metrics: metrics.clone(),
            readiness,
        });
    app_routes
        .merge(shared_routes)
        .layer(middleware::from_fn_with_state(metrics, count_requests))
}

#[derive(Clone)]
struct SharedState {
    metrics: Metrics,
    readiness: Readiness,
}

#[derive(Serialize)]
struct Status {
    status: &'static str,
}

async fn health() -> impl IntoResponse {
    axum::Json(Status { status: "ok" })
}

async fn ready(State(state): State<SharedState>) -> impl IntoResponse {
    let readiness = state.readiness.state();
    let status_code = if state.readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status_code,
        axum::Json(Status {
            status: readiness.as_str(),
        }),
    )
}

async fn render_metrics(State(state): State<SharedState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics.render(),
    )
}

async fn count_requests(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_PATH, MatchedPath::as_str)
        .to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    metrics
        .histogram(
            HTTP_REQUEST_DURATION_SECONDS,
            "Time to answer HTTP requests, by route, in seconds.",
            &[("path", &path)],
        )
        .observe(started.elapsed().as_secs_f64());
    metrics
        .counter(
            HTTP_REQUESTS_TOTAL,
            "HTTP requests answered, by route and status code.",
            &[("path", &path), ("status", response.status().as_str())],
        )
        .inc();
    response
}

//! The alert rules of each app, their promtool unit tests and the Prometheus configuration
//! that scrapes the apps and loads the rules.
//!
//! Every alert carries a unit test that it fires on series that should fire it and stays quiet
//! on series just on the good side, derived from the same thresholds as the expression.

use serde_json::{Value, json};

use crate::{
    HTTP_REQUEST_DURATION_SECONDS, HTTP_REQUESTS_TOTAL, MonitoredApp, runbook_url, yaml_file,
};

/// How urgent an alert is (the `severity` label Alertmanager routes on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Users are affected now: page.
    Critical,
    /// Something degrades or will: a ticket for working hours.
    Warning,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
        }
    }
}

/// What an alert is about (what its runbook section tells to look at).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    /// No instance answers: pods, endpoints, crashes.
    Down,
    /// Server errors: logs, the last rollout.
    Errors,
    /// Slow answers: logs, the last rollout, dependencies.
    Latency,
    /// Containers restarting: previous logs, OOM kills.
    Restarts,
    /// The autoscaler at its maximum: capacity.
    Capacity,
}

/// One alert of an app.
#[derive(Debug, Clone)]
pub struct Alert {
    /// `ApiDown`.
    pub name: String,
    pub expr: String,
    /// How long the expression must hold before the alert fires (`2m`), `0s` for at once.
    pub for_duration: &'static str,
    pub severity: Severity,
    pub summary: String,
    /// What it means, with the threshold.
    pub description: String,
    pub kind: AlertKind,
    /// Series on which the alert must fire, and series on which it must not.
    tests: Vec<AlertTest>,
}

#[derive(Debug, Clone)]
struct AlertTest {
    fires: bool,
    series: Vec<(String, String)>,
    eval_time: &'static str,
    /// The labels the expression itself gives the alert (besides the rule's).
    labels: Vec<(&'static str, String)>,
}

/// Namespace label of the synthetic series in the unit tests.
const TEST_NAMESPACE: &str = "test";

/// The alerts of an app, in a fixed order.
pub fn alerts(app: MonitoredApp<'_>) -> Vec<Alert> {
    let prefix = app.alert_prefix();
    let job = app.job();
    let name = app.name;
    let selector = format!("job=\"{job}\"");
    let series_labels = format!("job=\"{job}\",namespace=\"{TEST_NAMESPACE}\",instance=\"pod-a\"");
    let error_percent = app.config.monitoring.error_rate_percent;
    let latency_ms = app.config.monitoring.latency_p99_ms;
    let latency_seconds = seconds(latency_ms);
    let namespace_label = vec![("namespace", TEST_NAMESPACE.to_string())];

    // 1000 requests a minute, 2x the threshold (fires) or half of it (quiet) answered 5xx.
    let requests = |errors_per_mille: u32| {
        vec![
            (
                format!("{HTTP_REQUESTS_TOTAL}{{{series_labels},path=\"/\",status=\"200\"}}"),
                format!("0+{}x40", 1000 - errors_per_mille),
            ),
            (
                format!("{HTTP_REQUESTS_TOTAL}{{{series_labels},path=\"/\",status=\"500\"}}"),
                format!("0+{errors_per_mille}x40"),
            ),
        ]
    };
    // 100 requests a minute, all in the bucket above the threshold (fires) or all well below it.
    let latency = |slow: bool| {
        let bounds = [
            seconds(latency_ms / 2),
            latency_seconds.clone(),
            seconds(latency_ms * 2),
            "+Inf".to_string(),
        ];
        bounds
            .iter()
            .enumerate()
            .map(|(index, le)| {
                let count = if !slow || index >= 2 { 100 } else { 0 };
                (
                    format!(
                        "{HTTP_REQUEST_DURATION_SECONDS}_bucket{{{series_labels},path=\"/\",le=\"{le}\"}}"
                    ),
                    format!("0+{count}x40"),
                )
            })
            .collect::<Vec<_>>()
    };
    let restarts = |per_minute: u32| {
        vec![(
            format!(
                "kube_pod_container_status_restarts_total{{namespace=\"{TEST_NAMESPACE}\",pod=\"{name}-1\",container=\"{name}\"}}"
            ),
            format!("0+{per_minute}x40"),
        )]
    };
    let autoscaler = |current: u32| {
        let labels = format!("namespace=\"{TEST_NAMESPACE}\",horizontalpodautoscaler=\"{name}\"");
        vec![
            (
                format!("kube_horizontalpodautoscaler_status_current_replicas{{{labels}}}"),
                format!("{current}x40"),
            ),
            (
                format!("kube_horizontalpodautoscaler_spec_max_replicas{{{labels}}}"),
                "4x40".to_string(),
            ),
        ]
    };

    vec![
        Alert {
            name: format!("{prefix}Down"),
            expr: format!("sum by (namespace) (up{{{selector}}}) == 0 or absent(up{{{selector}}})"),
            for_duration: "2m",
            severity: Severity::Critical,
            summary: format!("{name} is down"),
            description: format!(
                "No {name} instance has answered Prometheus's scrape of its metrics path for 2 minutes (or there are no targets at all)."
            ),
            kind: AlertKind::Down,
            tests: vec![
                AlertTest {
                    fires: true,
                    series: vec![(format!("up{{{series_labels}}}"), "0x10".into())],
                    eval_time: "5m",
                    labels: namespace_label.clone(),
                },
                AlertTest {
                    fires: true,
                    series: vec![(
                        format!("up{{job=\"{name}-other\",namespace=\"{TEST_NAMESPACE}\"}}"),
                        "1x10".into(),
                    )],
                    eval_time: "5m",
                    labels: vec![("job", job.to_string())],
                },
                AlertTest {
                    fires: false,
                    series: vec![(format!("up{{{series_labels}}}"), "1x10".into())],
                    eval_time: "5m",
                    labels: Vec::new(),
                },
            ],
        },
        Alert {
            name: format!("{prefix}HighErrorRate"),
            expr: format!(
                "sum by (namespace) (rate({HTTP_REQUESTS_TOTAL}{{{selector},status=~\"5..\"}}[5m])) / sum by (namespace) (rate({HTTP_REQUESTS_TOTAL}{{{selector}}}[5m])) > {}",
                ratio(error_percent)
            ),
            for_duration: "5m",
            severity: Severity::Critical,
            summary: format!("{name} answers more than {error_percent}% of requests with 5xx"),
            description: format!(
                "Over the last 5 minutes, more than {error_percent}% of {name}'s responses were server errors (5xx), for 5 minutes."
            ),
            kind: AlertKind::Errors,
            tests: vec![
                AlertTest {
                    fires: true,
                    series: requests(error_percent * 20),
                    eval_time: "20m",
                    labels: namespace_label.clone(),
                },
                AlertTest {
                    fires: false,
                    series: requests(error_percent * 5),
                    eval_time: "20m",
                    labels: Vec::new(),
                },
            ],
        },
        Alert {
            name: format!("{prefix}HighLatency"),
            expr: format!(
                "histogram_quantile(0.99, sum by (namespace, le) (rate({HTTP_REQUEST_DURATION_SECONDS}_bucket{{{selector}}}[5m]))) > {latency_seconds}"
            ),
            for_duration: "10m",
            severity: Severity::Warning,
            summary: format!("{name}'s p99 latency is above {latency_ms}ms"),
            description: format!(
                "The 99th percentile of {name}'s request durations over 5 minutes has been above {latency_ms}ms (`monitoring.latency_p99_ms`) for 10 minutes."
            ),
            kind: AlertKind::Latency,
            tests: vec![
                AlertTest {
                    fires: true,
                    series: latency(true),
                    eval_time: "25m",
                    labels: namespace_label.clone(),
                },
                AlertTest {
                    fires: false,
                    series: latency(false),
                    eval_time: "25m",
                    labels: Vec::new(),
                },
            ],
        },
        Alert {
            name: format!("{prefix}Restarting"),
            expr: format!(
                "sum by (namespace) (increase(kube_pod_container_status_restarts_total{{container=\"{name}\"}}[15m])) > 2"
            ),
            for_duration: "0s",
            severity: Severity::Warning,
            summary: format!("{name} containers restarted more than twice in 15 minutes"),
            description: format!(
                "{name}'s containers were restarted more than twice in the last 15 minutes (crashes, failed liveness probes or OOM kills)."
            ),
            kind: AlertKind::Restarts,
            tests: vec![
                AlertTest {
                    fires: true,
                    series: restarts(1),
                    eval_time: "20m",
                    labels: namespace_label.clone(),
                },
                AlertTest {
                    fires: false,
                    series: restarts(0),
                    eval_time: "20m",
                    labels: Vec::new(),
                },
            ],
        },
        Alert {
            name: format!("{prefix}AtMaxReplicas"),
            expr: format!(
                "max by (namespace) (kube_horizontalpodautoscaler_status_current_replicas{{horizontalpodautoscaler=\"{name}\"}}) >= max by (namespace) (kube_horizontalpodautoscaler_spec_max_replicas{{horizontalpodautoscaler=\"{name}\"}})"
            ),
            for_duration: "15m",
            severity: Severity::Warning,
            summary: format!("{name}'s autoscaler has been at its maximum for 15 minutes"),
            description: format!(
                "The HorizontalPodAutoscaler of {name} has run the maximum number of replicas for 15 minutes: it cannot add capacity if load grows further."
            ),
            kind: AlertKind::Capacity,
            tests: vec![
                AlertTest {
                    fires: true,
                    series: autoscaler(4),
                    eval_time: "20m",
                    labels: namespace_label,
                },
                AlertTest {
                    fires: false,
                    series: autoscaler(2),
                    eval_time: "20m",
                    labels: Vec::new(),
                },
            ],
        },
    ]
}

/// The rule group of an app (`name`, `rules`), as a PrometheusRule's `spec.groups` item and as
/// an item of a rule file's `groups`. Each alert links its runbook section ([`runbook_url`]).
pub fn rule_group(app: MonitoredApp<'_>) -> Value {
    let rules: Vec<Value> = alerts(app)
        .iter()
        .map(|alert| {
            json!({
                "alert": alert.name,
                "expr": alert.expr,
                "for": alert.for_duration,
                "labels": labels(app, alert),
                "annotations": annotations(app, alert),
            })
        })
        .collect();
    json!({ "name": app.name, "rules": rules })
}

/// A Prometheus rule file with every app's group.
pub fn rules_file(header: &[&str], apps: &[MonitoredApp<'_>]) -> String {
    let groups: Vec<Value> = apps.iter().map(|app| rule_group(*app)).collect();
    yaml_file(header, &json!({ "groups": groups }))
}

/// The promtool unit tests (`promtool test rules FILE`) of every alert in `rule_file`
/// (a path relative to the test file): one test per alert and case.
pub fn rules_tests_file(header: &[&str], rule_file: &str, apps: &[MonitoredApp<'_>]) -> String {
    let mut tests = Vec::new();
    for app in apps {
        for alert in alerts(*app) {
            for test in &alert.tests {
                let series: Vec<Value> = test
                    .series
                    .iter()
                    .map(|(series, values)| json!({ "series": series, "values": values }))
                    .collect();
                let expected: Vec<Value> = if test.fires {
                    let mut labels = labels(*app, &alert);
                    for (key, value) in &test.labels {
                        labels[*key] = json!(value);
                    }
                    vec![json!({
                        "exp_labels": labels,
                        "exp_annotations": annotations(*app, &alert),
                    })]
                } else {
                    Vec::new()
                };
                tests.push(json!({
                    "name": format!("{} {}", alert.name, if test.fires { "fires" } else { "stays quiet" }),
                    "interval": "1m",
                    "input_series": series,
                    "alert_rule_test": [{
                        "eval_time": test.eval_time,
                        "alertname": alert.name,
                        "exp_alerts": expected,
                    }],
                }));
            }
        }
    }
    yaml_file(
        header,
        &json!({
            "rule_files": [rule_file],
            "evaluation_interval": "1m",
            "tests": tests,
        }),
    )
}

/// A Prometheus configuration that scrapes every app at `target(app)` (`host:port`) every 15
/// seconds and loads `rule_files`.
pub fn prometheus_config(
    header: &[&str],
    apps: &[MonitoredApp<'_>],
    rule_files: &[&str],
    target: &dyn Fn(MonitoredApp<'_>) -> String,
) -> String {
    let jobs: Vec<Value> = apps
        .iter()
        .map(|app| {
            json!({
                "job_name": app.job(),
                "metrics_path": app.config.metrics_path,
                "static_configs": [{ "targets": [target(*app)] }],
            })
        })
        .collect();
    yaml_file(
        header,
        &json!({
            "global": { "scrape_interval": "15s", "evaluation_interval": "15s" },
            "rule_files": rule_files,
            "scrape_configs": jobs,
        }),
    )
}

fn labels(app: MonitoredApp<'_>, alert: &Alert) -> Value {
    json!({ "severity": alert.severity.name(), "app": app.name })
}

fn annotations(app: MonitoredApp<'_>, alert: &Alert) -> Value {
    json!({
        "summary": alert.summary,
        "description": alert.description,
        "runbook_url": runbook_url(&app, alert),
    })
}

/// `250` ms -> `0.25` (seconds, as Prometheus writes bucket bounds).
fn seconds(millis: u32) -> String {
    let whole = millis / 1000;
    let fraction = millis % 1000;
    if fraction == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{fraction:03}")
            .trim_end_matches('0')
            .to_string()
    }
}

/// `5` percent -> `0.05`.
fn ratio(percent: u32) -> String {
    seconds(percent * 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_render_as_prometheus_numbers() {
        assert_eq!(seconds(500), "0.5");
        assert_eq!(seconds(250), "0.25");
        assert_eq!(seconds(1500), "1.5");
        assert_eq!(seconds(2000), "2");
        assert_eq!(seconds(1), "0.001");
        assert_eq!(ratio(5), "0.05");
        assert_eq!(ratio(50), "0.5");
    }
}

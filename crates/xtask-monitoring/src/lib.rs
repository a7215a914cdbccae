//! Monitoring generated from the workspace model, as pure functions of the apps
//! (`[package.metadata.xtask.app]`): the alert rules of each app ([`alerts`], [`rule_group`],
//! [`rules_file`]), their promtool unit tests ([`rules_tests_file`]), a Grafana dashboard per
//! app ([`dashboard`]) and the Prometheus scrape configuration ([`prometheus_config`]).
//!
//! What the rules and panels query is what `service-kit` exposes on every app's metrics path
//! ([`HTTP_REQUESTS_TOTAL`], [`HTTP_REQUEST_DURATION_SECONDS`]), plus kube-state-metrics and
//! cAdvisor series in Kubernetes (restarts, autoscaler, CPU, memory, replicas).
//!
//! Invariant: no IO, no clock, no processes; the same apps always give the same text (maps
//! are `serde_json` maps, written with sorted keys; lists keep their order). The
//! Kubernetes wrappers (ServiceMonitor, PrometheusRule, dashboard ConfigMap) and the runbooks
//! are `xtask-deploy`'s; compose's Prometheus files are `xtask-container`'s.

mod dashboard;
mod rules;

pub use dashboard::{DASHBOARD_UID_PREFIX, dashboard, dashboard_json, dashboard_queries};
pub use rules::{
    Alert, AlertKind, Severity, alerts, prometheus_config, rule_group, rules_file, rules_tests_file,
};

use xtask_model::AppConfig;

/// Counter of answered requests, labelled `path` (route template) and `status`.
pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
/// Histogram of request durations in seconds, labelled `path`.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";

/// One app as the monitoring generators see it.
#[derive(Debug, Clone, Copy)]
pub struct MonitoredApp<'a> {
    pub name: &'a str,
    pub config: &'a AppConfig,
    /// `[workspace.metadata.xtask.deploy] runbook_base_url`, when set.
    pub runbook_base_url: Option<&'a str>,
}

impl MonitoredApp<'_> {
    /// The Prometheus `job` label of the app's targets: the Service name in Kubernetes (the
    /// ServiceMonitor default), the `job_name` in compose: both are the app's name.
    pub fn job(&self) -> &str {
        self.name
    }

    /// `api` -> `Api`, `order-service` -> `OrderService`: the prefix of the app's alert names.
    pub fn alert_prefix(&self) -> String {
        self.name
            .split(['-', '_'])
            .map(|part| {
                let mut chars = part.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_uppercase().chain(chars).collect()
                })
            })
            .collect()
    }
}

/// Where the runbooks are, relative to the workspace root (`cargo xtask k8s` writes them).
pub const RUNBOOK_DIR: &str = "docs/operations";

/// The runbook section of an alert: `docs/operations/<app>.md#<alert, lower case>`, after the
/// app's `runbook_base_url` when there is one (else a path from the repository root); GitHub
/// renders the anchor of the `## <alert>` heading.
pub fn runbook_url(app: &MonitoredApp<'_>, alert: &Alert) -> String {
    let path = format!(
        "{RUNBOOK_DIR}/{}.md#{}",
        app.name,
        alert.name.to_lowercase()
    );
    match app.runbook_base_url {
        Some(base) => format!("{base}/{path}"),
        None => path,
    }
}

/// YAML text of a JSON value (key order kept), without a header.
pub fn to_yaml(value: &serde_json::Value) -> String {
    // A `serde_json::Value` always serializes.
    yaml_serde::to_string(value).unwrap_or_else(|error| panic!("unserializable YAML: {error}"))
}

/// A file's text: `# HEADER` comment lines, then the YAML of `value`.
pub fn yaml_file(header: &[&str], value: &serde_json::Value) -> String {
    let mut out = String::new();
    for line in header {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&to_yaml(value));
    out
}

/// An app configuration for unit tests: port 8080, the usual paths, small resources.
#[cfg(test)]
pub(crate) fn test_app_config() -> AppConfig {
    AppConfig {
        port: 8080,
        health_path: "/health".into(),
        ready_path: "/ready".into(),
        metrics_path: "/metrics".into(),
        resources: xtask_model::Resources::default(),
        env: Default::default(),
        ingress_path: None,
        talks_to: Vec::new(),
        secrets: Vec::new(),
        services: Vec::new(),
        monitoring: Default::default(),
        smoke: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_prefixes_are_camel_case_app_names() {
        let config = test_app_config();
        for (name, prefix) in [
            ("api", "Api"),
            ("order-service", "OrderService"),
            ("a_b", "AB"),
        ] {
            let app = MonitoredApp {
                name,
                config: &config,
                runbook_base_url: None,
            };
            assert_eq!(app.alert_prefix(), prefix);
            let names: Vec<String> = alerts(app).into_iter().map(|a| a.name).collect();
            assert_eq!(
                names,
                [
                    "Down",
                    "HighErrorRate",
                    "HighLatency",
                    "Restarting",
                    "AtMaxReplicas"
                ]
                .map(|suffix| format!("{prefix}{suffix}"))
            );
        }
    }
}

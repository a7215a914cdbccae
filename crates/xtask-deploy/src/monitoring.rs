//! The Kustomize component `k8s/monitoring/` that every overlay includes: per app a
//! ServiceMonitor (Prometheus Operator) scraping the `http` port at the app's metrics path, a
//! PrometheusRule with the app's alerts (`xtask_monitoring::alerts`, each with a `runbook_url`
//! into `docs/operations/`), and a ConfigMap holding its Grafana dashboard, labelled for
//! Grafana's dashboard sidecar. Pure functions of the [`Project`]; no IO.

use xtask_engine::generated::GeneratedFile;
use xtask_monitoring::MonitoredApp;
use yaml_serde::Value;

use crate::k8s::K8S_HEADER;
use crate::project::{App, Project};
use crate::yaml::{file, map, seq, str, string_map};

/// The directory of the component, relative to the workspace root.
pub const MONITORING_DIR: &str = "k8s/monitoring";
/// The label (and value) Grafana's sidecar loads dashboards from (the grafana Helm chart's
/// default `sidecar.dashboards.label`).
pub const GRAFANA_DASHBOARD_LABEL: (&str, &str) = ("grafana_dashboard", "1");
pub use xtask_monitoring::{RUNBOOK_DIR, runbook_url};

/// The monitoring view of an app.
pub fn monitored(app: &App) -> MonitoredApp<'_> {
    MonitoredApp {
        name: &app.name,
        config: &app.config,
        runbook_base_url: app.runbook_base_url.as_deref(),
    }
}

/// The name of an app's dashboard ConfigMap.
pub fn dashboard_config_map(app: &str) -> String {
    format!("{app}-dashboard")
}

/// The files of `k8s/monitoring/`.
pub(crate) fn files(project: &Project) -> Vec<GeneratedFile> {
    let header = vec![K8S_HEADER.to_string()];
    let mut files = vec![GeneratedFile::new(
        format!("{MONITORING_DIR}/kustomization.yaml"),
        file(
            &[
                K8S_HEADER.to_string(),
                "Needs the Prometheus Operator's CRDs (ServiceMonitor, PrometheusRule) in the cluster."
                    .to_string(),
            ],
            &[component(project)],
        ),
    )];
    for app in &project.apps {
        files.push(GeneratedFile::new(
            format!("{MONITORING_DIR}/{}.yaml", app.name),
            file(
                &header,
                &[
                    service_monitor(project, app),
                    prometheus_rule(project, app),
                    dashboard(project, app),
                ],
            ),
        ));
    }
    files
}

fn component(project: &Project) -> Value {
    map([
        ("apiVersion", str("kustomize.config.k8s.io/v1alpha1")),
        ("kind", str("Component")),
        (
            "resources",
            seq(project.apps.iter().map(|a| str(format!("{}.yaml", a.name)))),
        ),
    ])
}

fn labels(app: &App) -> Value {
    string_map([
        ("app.kubernetes.io/name", app.name.as_str()),
        ("app.kubernetes.io/version", app.version.as_str()),
        ("app.kubernetes.io/managed-by", "cargo-xtask"),
    ])
}

fn service_monitor(project: &Project, app: &App) -> Value {
    map([
        ("apiVersion", str("monitoring.coreos.com/v1")),
        ("kind", str("ServiceMonitor")),
        (
            "metadata",
            map([
                ("name", str(&app.name)),
                ("namespace", str(&project.namespace)),
                ("labels", labels(app)),
            ]),
        ),
        (
            "spec",
            map([
                (
                    "selector",
                    map([(
                        "matchLabels",
                        string_map([("app.kubernetes.io/name", app.name.as_str())]),
                    )]),
                ),
                (
                    "endpoints",
                    seq([map([
                        ("port", str("http")),
                        ("path", str(&app.config.metrics_path)),
                        ("interval", str("15s")),
                    ])]),
                ),
            ]),
        ),
    ])
}

fn prometheus_rule(project: &Project, app: &App) -> Value {
    let group = xtask_monitoring::rule_group(monitored(app));
    map([
        ("apiVersion", str("monitoring.coreos.com/v1")),
        ("kind", str("PrometheusRule")),
        (
            "metadata",
            map([
                ("name", str(&app.name)),
                ("namespace", str(&project.namespace)),
                ("labels", labels(app)),
            ]),
        ),
        ("spec", map([("groups", seq([to_yaml_value(&group)]))])),
    ])
}

fn dashboard(project: &Project, app: &App) -> Value {
    let mut metadata_labels = labels(app);
    if let Value::Mapping(mapping) = &mut metadata_labels {
        mapping.insert(
            Value::from(GRAFANA_DASHBOARD_LABEL.0),
            Value::from(GRAFANA_DASHBOARD_LABEL.1),
        );
    }
    let data_key = format!("{}.json", app.name);
    map([
        ("apiVersion", str("v1")),
        ("kind", str("ConfigMap")),
        (
            "metadata",
            map([
                ("name", str(dashboard_config_map(&app.name))),
                ("namespace", str(&project.namespace)),
                ("labels", metadata_labels),
            ]),
        ),
        (
            "data",
            map([(
                data_key.as_str(),
                str(xtask_monitoring::dashboard_json(monitored(app))),
            )]),
        ),
    ])
}

fn to_yaml_value(value: &serde_json::Value) -> Value {
    // Every JSON value has a YAML form.
    yaml_serde::to_value(value).unwrap_or_else(|error| panic!("unconvertible value: {error}"))
}

//! The generated monitoring against real tools (installed by `bash .ci/install-tools
//! monitoring`): `promtool check rules` accepts compose's rule file and every PrometheusRule
//! of `k8s/monitoring/`; `promtool test rules` runs the generated unit tests of every alert,
//! and fails when a threshold is moved either way (so the tests can fail); a real Prometheus on
//! loopback scrapes the real apps, loads every rule, sees `up == 1` for each app, and accepts
//! every dashboard query, the traffic ones returning data; `cargo xtask smoke`'s checks pass
//! against the real apps and fail, clearly, against one made to fail.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use service_kit::testing::ServiceProcess;
use support::*;
use testkit::servers::free_port;
use testkit::{output_text, workspace_root};
use xtask_deploy::{SmokeOptions, SmokeSettings, SmokeWhere};
use xtask_engine::report::{ReportMode, Reporter};
use xtask_monitoring::MonitoredApp;

fn promtool(args: &[&str], dir: &Path) -> (bool, String) {
    let output = run_tool("promtool", args, dir);
    (output.status.success(), output_text(&output))
}

#[test]
fn every_rule_file_passes_promtool_check_rules() {
    let root = workspace_root();
    let (ok, report) = promtool(
        &["check", "rules", "monitoring/prometheus/rules.yml"],
        &root,
    );
    assert!(ok, "{report}");
    let alerts: usize = project(&root)
        .apps
        .iter()
        .map(|app| xtask_monitoring::alerts(xtask_deploy::monitoring::monitored(app)).len())
        .sum();
    assert!(
        report.contains(&format!("SUCCESS: {alerts} rules found")),
        "{report}"
    );

    // Each PrometheusRule's spec is a rule file of its own.
    let out = temp_dir();
    for app in project(&root).apps {
        let path = root.join(format!("k8s/monitoring/{}.yaml", app.name));
        let documents =
            xtask_deploy::yaml::parse_documents(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let rule = documents
            .iter()
            .find(|d| d.get("kind").and_then(|k| k.as_str()) == Some("PrometheusRule"))
            .expect("a PrometheusRule");
        let file = out.path().join(format!("{}.rules.yml", app.name));
        std::fs::write(
            &file,
            yaml_serde::to_string(rule.get("spec").unwrap()).unwrap(),
        )
        .unwrap();
        let (ok, report) = promtool(&["check", "rules", &file.to_string_lossy()], &root);
        assert!(ok && report.contains("SUCCESS: 5 rules found"), "{report}");
    }
}

#[test]
fn every_alert_fires_when_it_should_and_not_otherwise() {
    let dir = workspace_root().join("monitoring/prometheus");
    let (ok, report) = promtool(&["test", "rules", "rules.test.yml"], &dir);
    assert!(ok, "{report}");

    let tests = std::fs::read_to_string(dir.join("rules.test.yml")).unwrap();
    for app in project(&workspace_root()).apps {
        for alert in xtask_monitoring::alerts(xtask_deploy::monitoring::monitored(&app)) {
            for case in ["fires", "stays quiet"] {
                assert!(
                    tests.contains(&format!("name: {} {case}\n", alert.name)),
                    "no `{case}` test for {}",
                    alert.name
                );
            }
        }
    }

    // Moving a threshold either way must fail the tests: they are not vacuous.
    let rules = std::fs::read_to_string(dir.join("rules.yml")).unwrap();
    for (from, to, failing) in [
        ("> 0.05\n", "> 0.5\n", "ApiHighErrorRate fires"),
        ("> 0.05\n", "> 0.001\n", "ApiHighErrorRate stays quiet"),
        ("> 0.25\n", "> 5\n", "ApiHighLatency fires"),
        ("> 0.25\n", "> 0.01\n", "ApiHighLatency stays quiet"),
        (
            "restarts_total{container=\"api\"}[15m])) > 2",
            "restarts_total{container=\"api\"}[15m])) > 100",
            "ApiRestarting fires",
        ),
        (
            "sum by (namespace) (up{job=\"api\"}) == 0",
            "sum by (namespace) (up{job=\"api\"}) == 1",
            "ApiDown stays quiet",
        ),
    ] {
        let copy = temp_dir();
        assert!(rules.contains(from), "{from:?} not in rules.yml");
        std::fs::write(copy.path().join("rules.yml"), rules.replacen(from, to, 1)).unwrap();
        std::fs::copy(
            dir.join("rules.test.yml"),
            copy.path().join("rules.test.yml"),
        )
        .unwrap();
        let (ok, report) = promtool(&["test", "rules", "rules.test.yml"], copy.path());
        assert!(!ok, "{from} -> {to} went unnoticed:\n{report}");
        assert!(
            report.contains(&format!("name: {failing},")),
            "{from} -> {to}:\n{report}"
        );
    }
}

/// The apps' binaries, built once (dev profile) into the workspace's target directory.
fn app_binaries() -> &'static (PathBuf, PathBuf) {
    static BINARIES: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    BINARIES.get_or_init(|| {
        let root = workspace_root();
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--quiet", "-p", "api", "-p", "worker"])
            .current_dir(&root)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p api -p worker failed");
        let target = workspace(&root).target_dir.join("debug");
        (target.join("api"), target.join("worker"))
    })
}

struct RunningApps {
    api: ServiceProcess,
    worker: ServiceProcess,
}

fn start_apps() -> RunningApps {
    let (api_binary, worker_binary) = app_binaries();
    let mut api = ServiceProcess::spawn(api_binary, free_port(), &[]).unwrap();
    let mut worker =
        ServiceProcess::spawn(worker_binary, free_port(), &[("WORKER_INTERVAL_MS", "100")])
            .unwrap();
    for app in [&mut api, &mut worker] {
        app.wait_for_status("/ready", 200, Duration::from_secs(30))
            .unwrap();
    }
    RunningApps { api, worker }
}

struct Prometheus {
    child: Child,
    url: String,
    _storage: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real Prometheus on loopback with the generated configuration (targets on the test's
/// ports, every interval 1s) and the committed rule file.
fn start_prometheus(apps: &RunningApps) -> Prometheus {
    let root = workspace_root();
    let project = project(&root);
    let monitored: Vec<MonitoredApp<'_>> = project
        .apps
        .iter()
        .map(xtask_deploy::monitoring::monitored)
        .collect();
    let rules = root.join("monitoring/prometheus/rules.yml");
    let rules = rules.to_string_lossy();
    let config = xtask_monitoring::prometheus_config(&[], &monitored, &[&rules], &|app| {
        let port = match app.name {
            "api" => apps.api.addr().port(),
            "worker" => apps.worker.addr().port(),
            other => panic!("unexpected app {other}"),
        };
        format!("127.0.0.1:{port}")
    });
    assert_eq!(config.matches("_interval: 15s").count(), 2, "{config}");
    let config = config.replace("_interval: 15s", "_interval: 1s");
    let storage = temp_dir();
    let config_path = storage.path().join("prometheus.yml");
    std::fs::write(&config_path, &config).unwrap();
    let port = free_port();
    let child = Command::new(testkit::tool("prometheus"))
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            storage.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let prometheus = Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _storage: storage,
    };
    wait_for(Duration::from_secs(30), "prometheus to be ready", || {
        get(&format!("{}/-/ready", prometheus.url), &[]).ok()
    });
    prometheus
}

fn get(url: &str, query: &[(&str, &str)]) -> Result<serde_json::Value, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(url);
    for (name, value) in query {
        request = request.query(*name, *value);
    }
    let mut response = request.call().map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("{status}: {body}"));
    }
    Ok(serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)))
}

/// Polls `probe` every 250ms until it gives a value; panics naming `what` after `timeout`.
fn wait_for<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn query(prometheus: &Prometheus, expr: &str) -> Result<Vec<serde_json::Value>, String> {
    let body = get(
        &format!("{}/api/v1/query", prometheus.url),
        &[("query", expr)],
    )?;
    assert_eq!(body["status"], "success", "{expr}: {body}");
    Ok(body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

#[test]
fn a_real_prometheus_scrapes_the_apps_loads_every_rule_and_runs_every_panel_query() {
    let apps = start_apps();
    let prometheus = start_prometheus(&apps);
    let project = project(&workspace_root());

    // Traffic for the request panels (a 200 and a 400 of the api's own route).
    for path in ["/v1/greeting?name=prometheus", "/v1/greeting"] {
        apps.api.get(path).unwrap();
    }

    for app in &project.apps {
        let expr = format!("up{{job=\"{}\"}}", app.name);
        wait_for(Duration::from_secs(30), &format!("{expr} == 1"), || {
            let result = query(&prometheus, &expr).ok()?;
            (result.len() == 1 && result[0]["value"][1] == "1").then_some(())
        });
    }

    let alerts: Vec<String> = project
        .apps
        .iter()
        .flat_map(|app| xtask_monitoring::alerts(xtask_deploy::monitoring::monitored(app)))
        .map(|alert| alert.name)
        .collect();
    // Every rule evaluated since the targets came up; everything is healthy, so nothing is
    // pending or firing (`absent(up)` may be pending at an evaluation before the first scrape).
    let rules = wait_for(
        Duration::from_secs(30),
        "every rule ok and inactive",
        || {
            let body = get(&format!("{}/api/v1/rules", prometheus.url), &[]).ok()?;
            let rules: Vec<serde_json::Value> = body["data"]["groups"]
                .as_array()?
                .iter()
                .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            rules
                .iter()
                .all(|rule| rule["health"] == "ok" && rule["state"] == "inactive")
                .then_some(rules)
        },
    );
    let mut loaded: Vec<String> = rules
        .iter()
        .map(|rule| rule["name"].as_str().unwrap().to_string())
        .collect();
    loaded.sort();
    let mut expected = alerts.clone();
    expected.sort();
    assert_eq!(loaded, expected);

    for app in &project.apps {
        let monitored = xtask_deploy::monitoring::monitored(app);
        for expr in xtask_monitoring::dashboard_queries(monitored) {
            query(&prometheus, &expr).unwrap_or_else(|error| panic!("{expr}: {error}"));
        }
    }
    // The traffic panels find the series the apps expose (rates need two scrapes).
    let api = project.app("api").unwrap();
    let queries = xtask_monitoring::dashboard_queries(xtask_deploy::monitoring::monitored(api));
    for expr in queries
        .iter()
        .filter(|q| q.contains("http_request") && !q.contains("5.."))
    {
        wait_for(Duration::from_secs(30), expr, || {
            let result = query(&prometheus, expr).ok()?;
            (!result.is_empty()).then_some(())
        });
    }
}

fn smoke(target: SmokeWhere, apps: &[&str]) -> xtask_deploy::SmokeReport {
    xtask_deploy::smoke(
        &SmokeOptions {
            location: location(&workspace_root()),
            target,
            apps: apps.iter().map(|a| a.to_string()).collect(),
            settings: SmokeSettings {
                request_timeout: Duration::from_secs(5),
                ready_within: Duration::from_secs(3),
                poll_interval: Duration::from_millis(100),
            },
        },
        &Reporter::new(ReportMode::Plain),
    )
    .unwrap()
}

#[test]
fn smoke_passes_against_the_real_apps_and_fails_clearly_otherwise() {
    let apps = start_apps();
    let api_url = format!("http://{}", apps.api.addr());
    let report = smoke(SmokeWhere::BaseUrl(api_url.clone()), &["api"]);
    let rendered = report.render();
    assert!(report.passed(), "{rendered}");
    for line in [
        "ok    api GET /ready",
        "ok    api GET /health",
        "ok    api GET /metrics",
        "ok    api GET /v1/greeting?name=smoke",
        "ok    api GET /v1/greeting (",
        "smoke: 5 checks, 0 failed",
    ] {
        assert!(rendered.contains(line), "missing {line:?}:\n{rendered}");
    }
    let report = smoke(
        SmokeWhere::BaseUrl(format!("http://{}", apps.worker.addr())),
        &["worker"],
    );
    assert!(report.passed(), "{}", report.render());

    // The worker's address checked as the api: the api's own requests answer 404.
    let report = smoke(
        SmokeWhere::BaseUrl(format!("http://{}", apps.worker.addr())),
        &["api"],
    );
    let rendered = report.render();
    assert!(!report.passed());
    assert!(
        rendered.contains(
            "FAIL  api GET /v1/greeting?name=smoke: expected 200 and body contains \"hello, smoke\", got 404"
        ),
        "{rendered}"
    );
    assert!(rendered.contains("smoke: 5 checks, 2 failed"), "{rendered}");

    // Nothing listening: readiness is retried until `ready_within`, then every check fails.
    let closed = free_port();
    let started = Instant::now();
    let report = smoke(
        SmokeWhere::BaseUrl(format!("http://127.0.0.1:{closed}")),
        &["worker"],
    );
    assert!(started.elapsed() >= Duration::from_secs(2), "no retries");
    let rendered = report.render();
    assert!(!report.passed());
    assert!(report.results[0].attempts > 3, "{rendered}");
    assert!(
        rendered.contains("FAIL  worker GET /ready: expected 200, request failed"),
        "{rendered}"
    );

    // A base URL for two apps is a usage error naming --app.
    let error = xtask_deploy::smoke(
        &SmokeOptions {
            location: location(&workspace_root()),
            target: SmokeWhere::BaseUrl(api_url),
            apps: Vec::new(),
            settings: SmokeSettings::default(),
        },
        &Reporter::new(ReportMode::Plain),
    )
    .unwrap_err();
    assert!(format!("{error:#}").contains("--app"), "{error:#}");
}

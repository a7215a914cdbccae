//! `[package.metadata.xtask.app]`: how a service is run and deployed (port, paths, resources,
//! environment, network, backing services, alert thresholds, smoke requests).

use std::collections::BTreeMap;
use std::path::Path;

use toml::Spanned;

use super::raw::{RawApp, RawMonitoring, RawResources, RawSmokeRequest};
use super::{ManifestSource, is_dns_label, is_env_name, is_url_path, parse_value};
use crate::error::ConfigProblem;
use crate::quantity::{CpuQuantity, MemoryQuantity};

/// Deployment settings of an app (`[package.metadata.xtask.app]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConfig {
    pub port: u16,
    pub health_path: String,
    pub ready_path: String,
    pub metrics_path: String,
    pub resources: Resources,
    /// Non-secret default environment of the app.
    pub env: BTreeMap<String, String>,
    /// Path prefix routed to the app by the Ingress; `None`: reachable inside the cluster only.
    pub ingress_path: Option<String>,
    /// Apps this app calls (their names; checked against the workspace by the generators).
    pub talks_to: Vec<String>,
    /// Names of environment variables that come from the app's Secret (never values).
    pub secrets: Vec<String>,
    /// Backing services the app needs (`services = ["postgres"]`), sorted, without duplicates.
    pub services: Vec<BackingService>,
    /// Alert thresholds (`[package.metadata.xtask.app.monitoring]`).
    pub monitoring: Monitoring,
    /// Requests `cargo xtask smoke` sends besides health, readiness and metrics
    /// (`[[package.metadata.xtask.app.smoke]]`), in declaration order.
    pub smoke: Vec<SmokeRequest>,
}

/// Alert thresholds of an app (`[package.metadata.xtask.app.monitoring]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitoring {
    /// The p99 request latency above which `<App>HighLatency` fires, in milliseconds.
    pub latency_p99_ms: u32,
    /// The share of 5xx responses, in percent (1-50), above which `<App>HighErrorRate` fires.
    pub error_rate_percent: u32,
}

impl Default for Monitoring {
    fn default() -> Monitoring {
        Monitoring {
            latency_p99_ms: 500,
            error_rate_percent: 5,
        }
    }
}

/// One request of an app's smoke check (`[[package.metadata.xtask.app.smoke]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmokeRequest {
    /// An HTTP method in upper case (`GET` by default).
    pub method: String,
    /// An absolute URL path, with an optional query.
    pub path: String,
    /// The expected status code (200 by default).
    pub status: u16,
    /// A substring the body must contain.
    pub body_contains: Option<String>,
}

/// The methods a smoke request may use.
pub const SMOKE_METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// A backing service an app can declare; the container generators know how to run each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BackingService {
    Postgres,
    Redis,
}

impl BackingService {
    pub const ALL: [BackingService; 2] = [BackingService::Postgres, BackingService::Redis];

    pub fn name(self) -> &'static str {
        match self {
            BackingService::Postgres => "postgres",
            BackingService::Redis => "redis",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub cpu_request: CpuQuantity,
    pub cpu_limit: CpuQuantity,
    pub memory_request: MemoryQuantity,
    pub memory_limit: MemoryQuantity,
}

impl Default for Resources {
    /// 50m / 500m CPU, 64Mi / 256Mi memory.
    fn default() -> Resources {
        let cpu = |text| CpuQuantity::parse(text).expect("a valid default CPU quantity");
        let memory = |text| MemoryQuantity::parse(text).expect("a valid default memory quantity");
        Resources {
            cpu_request: cpu("50m"),
            cpu_limit: cpu("500m"),
            memory_request: memory("64Mi"),
            memory_limit: memory("256Mi"),
        }
    }
}

pub(super) fn validate_app(
    source: &ManifestSource<'_>,
    key: &str,
    app: Spanned<RawApp>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<LocatedApp> {
    let before = problems.len();
    let app_offset = app.span().start;
    let app = app.into_inner();
    let port = *app.port.get_ref();
    if !(1..=65535).contains(&port) {
        problems.push(source.problem(
            format!("{key}.port"),
            Some(app.port.span().start),
            format!("must be 1-65535, got {port}"),
        ));
    }
    let mut path = |field: &str, value: Option<Spanned<String>>, default: &str| -> String {
        match value {
            None => default.to_string(),
            Some(value) => {
                if !value.get_ref().starts_with('/')
                    || value.get_ref().contains(char::is_whitespace)
                {
                    problems.push(source.problem(
                        format!("{key}.{field}"),
                        Some(value.span().start),
                        format!(
                            "must be an absolute URL path such as \"/health\", got {:?}",
                            value.get_ref()
                        ),
                    ));
                }
                value.into_inner()
            }
        }
    };
    let health_path = path("health_path", app.health_path, "/health");
    let ready_path = path("ready_path", app.ready_path, "/ready");
    let metrics_path = path("metrics_path", app.metrics_path, "/metrics");
    let resources = app
        .resources
        .map(|raw| validate_resources(source, key, raw.into_inner(), problems))
        .unwrap_or_default();
    for name in app.env.keys() {
        if !is_env_name(name) {
            problems.push(source.problem(
                format!("{key}.env"),
                Some(app_offset),
                format!("invalid environment variable name {name:?}"),
            ));
        }
    }
    let services = validate_services(source, key, app.services, problems);
    let ingress_path = app.ingress_path.map(|value| {
        if !is_url_path(value.get_ref()) {
            problems.push(source.problem(
                format!("{key}.ingress_path"),
                Some(value.span().start),
                format!(
                    "must be an absolute URL path such as \"/v1\", got {:?}",
                    value.get_ref()
                ),
            ));
        }
        value.into_inner()
    });
    let mut talks_to = Vec::new();
    let mut talks_to_lines = Vec::new();
    for name in app.talks_to {
        if !is_dns_label(name.get_ref()) {
            problems.push(source.problem(
                format!("{key}.talks_to"),
                Some(name.span().start),
                format!("{:?} is not an app name", name.get_ref()),
            ));
        }
        talks_to_lines.push(source.line_of(name.span().start));
        talks_to.push(name.into_inner());
    }
    let mut secrets: Vec<String> = Vec::new();
    for name in app.secrets {
        let problem = if !is_env_name(name.get_ref()) {
            Some(format!(
                "invalid environment variable name {:?}",
                name.get_ref()
            ))
        } else if app.env.contains_key(name.get_ref()) {
            Some(format!(
                "`{}` is also in `env`: a variable is either a setting or a secret",
                name.get_ref()
            ))
        } else if secrets.contains(name.get_ref()) {
            Some(format!("`{}` is listed twice", name.get_ref()))
        } else {
            None
        };
        if let Some(message) = problem {
            problems.push(source.problem(
                format!("{key}.secrets"),
                Some(name.span().start),
                message,
            ));
        }
        secrets.push(name.into_inner());
    }
    let monitoring = validate_monitoring(source, key, app.monitoring, problems);
    let smoke = validate_smoke(source, key, app.smoke, problems);
    (problems.len() == before).then(|| LocatedApp {
        config: AppConfig {
            port: u16::try_from(port).unwrap_or(1),
            health_path,
            ready_path,
            metrics_path,
            resources,
            env: app.env,
            ingress_path,
            talks_to,
            secrets,
            services,
            monitoring,
            smoke,
        },
        talks_to_lines,
    })
}

/// A validated app with the lines the cross-package check needs.
pub(super) struct LocatedApp {
    pub config: AppConfig,
    /// The line of each entry of `config.talks_to`.
    pub talks_to_lines: Vec<usize>,
}

/// An app of the workspace, for [`check_talks_to`].
pub(crate) struct AppOfPackage<'a> {
    pub package: &'a str,
    pub manifest: &'a Path,
    pub talks_to: &'a [String],
    /// The line of each entry of `talks_to`.
    pub talks_to_lines: &'a [usize],
}

/// Every `talks_to` entry names another app of the workspace (checked once all packages are
/// parsed); each problem at the line of its entry.
pub(crate) fn check_talks_to(apps: &[AppOfPackage<'_>], problems: &mut Vec<ConfigProblem>) {
    for app in apps {
        let others: Vec<&str> = apps
            .iter()
            .map(|other| other.package)
            .filter(|&other| other != app.package)
            .collect();
        for (index, callee) in app.talks_to.iter().enumerate() {
            if others.contains(&callee.as_str()) {
                continue;
            }
            problems.push(ConfigProblem {
                file: app.manifest.to_path_buf(),
                key: "package.metadata.xtask.app.talks_to".to_string(),
                line: app.talks_to_lines.get(index).copied(),
                message: format!(
                    "`{callee}` is not another app of the workspace (apps: {})",
                    if others.is_empty() {
                        "none".to_string()
                    } else {
                        others.join(", ")
                    }
                ),
            });
        }
    }
}

/// `[...app.resources]`: each quantity parsed, located when it does not parse; a missing one
/// keeps its default.
fn validate_resources(
    source: &ManifestSource<'_>,
    key: &str,
    raw: RawResources,
    problems: &mut Vec<ConfigProblem>,
) -> Resources {
    const CPU: &str = "a CPU quantity such as \"100m\" or \"0.5\"";
    const MEMORY: &str = "a memory quantity such as \"64Mi\"";
    let cpu = |field: &str, value: Option<Spanned<String>>, problems: &mut Vec<ConfigProblem>| {
        let key = format!("{key}.resources.{field}");
        value.and_then(|value| parse_value(source, &key, &value, CpuQuantity::parse, CPU, problems))
    };
    let memory =
        |field: &str, value: Option<Spanned<String>>, problems: &mut Vec<ConfigProblem>| {
            let key = format!("{key}.resources.{field}");
            value.and_then(|value| {
                parse_value(
                    source,
                    &key,
                    &value,
                    MemoryQuantity::parse,
                    MEMORY,
                    problems,
                )
            })
        };
    let defaults = Resources::default();
    Resources {
        cpu_request: cpu("cpu_request", raw.cpu_request, problems).unwrap_or(defaults.cpu_request),
        cpu_limit: cpu("cpu_limit", raw.cpu_limit, problems).unwrap_or(defaults.cpu_limit),
        memory_request: memory("memory_request", raw.memory_request, problems)
            .unwrap_or(defaults.memory_request),
        memory_limit: memory("memory_limit", raw.memory_limit, problems)
            .unwrap_or(defaults.memory_limit),
    }
}

fn validate_monitoring(
    source: &ManifestSource<'_>,
    key: &str,
    raw: Option<Spanned<RawMonitoring>>,
    problems: &mut Vec<ConfigProblem>,
) -> Monitoring {
    let mut monitoring = Monitoring::default();
    let Some(raw) = raw else {
        return monitoring;
    };
    let raw = raw.into_inner();
    let fields = [
        (
            "latency_p99_ms",
            raw.latency_p99_ms,
            &mut monitoring.latency_p99_ms,
            1..=600_000,
        ),
        (
            "error_rate_percent",
            raw.error_rate_percent,
            &mut monitoring.error_rate_percent,
            1..=50,
        ),
    ];
    for (field, value, slot, range) in fields {
        let Some(value) = value else { continue };
        let number = *value.get_ref();
        match u32::try_from(number) {
            Ok(n) if range.contains(&n) => *slot = n,
            _ => problems.push(source.problem(
                format!("{key}.monitoring.{field}"),
                Some(value.span().start),
                format!("must be {}-{}, got {number}", range.start(), range.end()),
            )),
        }
    }
    monitoring
}

fn validate_smoke(
    source: &ManifestSource<'_>,
    key: &str,
    raw: Vec<Spanned<RawSmokeRequest>>,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<SmokeRequest> {
    let mut requests = Vec::new();
    for (index, request) in raw.into_iter().enumerate() {
        let request = request.into_inner();
        let key = format!("{key}.smoke[{index}]");
        let method = match request.method {
            None => "GET".to_string(),
            Some(method) => {
                if !SMOKE_METHODS.contains(&method.get_ref().as_str()) {
                    problems.push(source.problem(
                        format!("{key}.method"),
                        Some(method.span().start),
                        format!(
                            "must be one of {}, got {:?}",
                            SMOKE_METHODS.join(", "),
                            method.get_ref()
                        ),
                    ));
                }
                method.into_inner()
            }
        };
        let path = request.path;
        if !path.get_ref().starts_with('/') || path.get_ref().contains(char::is_whitespace) {
            problems.push(source.problem(
                format!("{key}.path"),
                Some(path.span().start),
                format!(
                    "must be an absolute URL path such as \"/v1/hello\", got {:?}",
                    path.get_ref()
                ),
            ));
        }
        let status = match request.status {
            None => 200,
            Some(status) => {
                let number = *status.get_ref();
                match u16::try_from(number) {
                    Ok(code) if (100..=599).contains(&code) => code,
                    _ => {
                        problems.push(source.problem(
                            format!("{key}.status"),
                            Some(status.span().start),
                            format!("must be an HTTP status code 100-599, got {number}"),
                        ));
                        200
                    }
                }
            }
        };
        let body_contains = request.body_contains.map(|text| {
            if text.get_ref().is_empty() {
                problems.push(source.problem(
                    format!("{key}.body_contains"),
                    Some(text.span().start),
                    "must not be empty (leave it out to check only the status)",
                ));
            }
            text.into_inner()
        });
        requests.push(SmokeRequest {
            method,
            path: path.into_inner(),
            status,
            body_contains,
        });
    }
    requests
}

/// `services = [...]`: each a known [`BackingService`], located when not.
fn validate_services(
    source: &ManifestSource<'_>,
    key: &str,
    raw: Vec<Spanned<String>>,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<BackingService> {
    let mut services = Vec::new();
    for name in raw {
        match BackingService::ALL
            .into_iter()
            .find(|s| s.name() == name.get_ref())
        {
            Some(service) => services.push(service),
            None => problems.push(source.problem(
                format!("{key}.services"),
                Some(name.span().start),
                format!(
                    "unknown backing service {:?}; known: {}",
                    name.get_ref(),
                    BackingService::ALL.map(BackingService::name).join(", ")
                ),
            )),
        }
    }
    services.sort();
    services.dedup();
    services
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::package;

    #[test]
    fn bad_app_values_are_located() {
        let (_, problems) = package(
            "[package]\nname = \"a\"\n[package.metadata.xtask.app]\nport = 0\nhealth_path = \"health\"\n\
             [package.metadata.xtask.app.resources]\nmemory_limit = \"lots\"\n[package.metadata.xtask.tasks.own]\noutputs = []\n",
            &BTreeMap::new(),
        );
        let rendered: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(rendered.len(), 4, "{rendered:#?}");
        assert!(
            rendered.iter().any(
                |p| p.contains(":4: `package.metadata.xtask.app.port`: must be 1-65535, got 0")
            ),
            "{rendered:#?}"
        );
        assert!(rendered.iter().any(|p| p.contains("health_path")));
        assert!(
            rendered
                .iter()
                .any(|p| p.contains(":7: `package.metadata.xtask.app.resources.memory_limit`")),
            "{rendered:#?}"
        );
        assert!(rendered.iter().any(|p| p.contains("needs a `command`")));
    }

    #[test]
    fn resources_are_parsed_into_numbers_once() {
        let (parsed, problems) = package(
            "[package]\nname = \"a\"\n[package.metadata.xtask.app]\nport = 1\n\
             [package.metadata.xtask.app.resources]\ncpu_request = \"0.25\"\nmemory_limit = \"1.5Gi\"\n",
            &BTreeMap::new(),
        );
        assert!(problems.is_empty(), "{problems:?}");
        let resources = parsed.app.expect("app").resources;
        assert_eq!(
            (
                resources.cpu_request.millis(),
                resources.cpu_request.as_str()
            ),
            (250, "0.25")
        );
        assert_eq!(resources.cpu_limit.millis(), 500);
        assert_eq!(resources.memory_request.bytes(), 64 << 20);
        assert_eq!(resources.memory_limit.bytes(), 3 << 29);
        let (parsed, problems) = package(
            "[package]\nname = \"a\"\n[package.metadata.xtask.app]\nport = 1\n\
             [package.metadata.xtask.app.resources]\ncpu_limit = \"0m\"\nmemory_request = \"99999999999Ei\"\n",
            &BTreeMap::new(),
        );
        assert!(parsed.app.is_none());
        let rendered: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            rendered,
            [
                "crates/a/Cargo.toml:6: `package.metadata.xtask.app.resources.cpu_limit`: must be a CPU quantity such as \"100m\" or \"0.5\", got \"0m\"",
                "crates/a/Cargo.toml:7: `package.metadata.xtask.app.resources.memory_request`: must be a memory quantity such as \"64Mi\", got \"99999999999Ei\"",
            ]
        );
    }

    #[test]
    fn backing_services_are_known_names_located_when_not() {
        let (pkg, problems) = package(
            "[package]\nname = \"a\"\n[package.metadata.xtask.app]\nport = 1\nservices = [\"redis\", \"postgres\", \"redis\"]\n",
            &BTreeMap::new(),
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            pkg.app.expect("app").services,
            vec![BackingService::Postgres, BackingService::Redis]
        );
        let (pkg, problems) = package(
            "[package]\nname = \"a\"\n[package.metadata.xtask.app]\nport = 1\nservices = [\"redis\",\n  \"mongo\"]\n",
            &BTreeMap::new(),
        );
        assert!(pkg.app.is_none());
        let rendered: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(rendered.len(), 1, "{rendered:#?}");
        assert!(
            rendered[0].contains(":6: `package.metadata.xtask.app.services`: unknown backing service \"mongo\"; known: postgres, redis"),
            "{rendered:#?}"
        );
    }

    #[test]
    fn bad_app_network_fields_are_located() {
        let (_, problems) = package(
            "[package]\nname = \"a\"\n[package.metadata.xtask.app]\nport = 8080\ningress_path = \"v1\"\n\
             talks_to = [\"B\"]\nsecrets = [\"RUST_LOG\", \"1X\", \"T\", \"T\"]\n\
             [package.metadata.xtask.app.env]\nRUST_LOG = \"info\"\n",
            &BTreeMap::new(),
        );
        let rendered: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            rendered,
            [
                "crates/a/Cargo.toml:5: `package.metadata.xtask.app.ingress_path`: must be an absolute URL path such as \"/v1\", got \"v1\"",
                "crates/a/Cargo.toml:6: `package.metadata.xtask.app.talks_to`: \"B\" is not an app name",
                "crates/a/Cargo.toml:7: `package.metadata.xtask.app.secrets`: `RUST_LOG` is also in `env`: a variable is either a setting or a secret",
                "crates/a/Cargo.toml:7: `package.metadata.xtask.app.secrets`: invalid environment variable name \"1X\"",
                "crates/a/Cargo.toml:7: `package.metadata.xtask.app.secrets`: `T` is listed twice",
            ]
        );
    }

    #[test]
    fn talks_to_must_name_another_app_at_the_line_of_its_entry() {
        let apps = [
            AppOfPackage {
                package: "back",
                manifest: Path::new("back/Cargo.toml"),
                talks_to: &["back".to_string()],
                talks_to_lines: &[7],
            },
            AppOfPackage {
                package: "front",
                manifest: Path::new("front/Cargo.toml"),
                talks_to: &["back".to_string(), "cart".to_string()],
                talks_to_lines: &[10, 11],
            },
        ];
        let mut problems = Vec::new();
        check_talks_to(&apps, &mut problems);
        let rendered: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            rendered,
            [
                "back/Cargo.toml:7: `package.metadata.xtask.app.talks_to`: `back` is not another app of the workspace (apps: front)",
                "front/Cargo.toml:11: `package.metadata.xtask.app.talks_to`: `cart` is not another app of the workspace (apps: back)",
            ]
        );
        let alone = [AppOfPackage {
            package: "solo",
            manifest: Path::new("Cargo.toml"),
            talks_to: &["peer".to_string()],
            talks_to_lines: &[4],
        }];
        let mut problems = Vec::new();
        check_talks_to(&alone, &mut problems);
        assert!(
            problems[0].message.ends_with("(apps: none)"),
            "{problems:?}"
        );
    }

    #[test]
    fn monitoring_thresholds_and_smoke_requests() {
        let (parsed, problems) = package(
            "[package]\nname = \"a\"\n[package.metadata.xtask.app]\nport = 8080\n\
             [package.metadata.xtask.app.monitoring]\nlatency_p99_ms = 250\n\
             [[package.metadata.xtask.app.smoke]]\npath = \"/v1/hello\"\nbody_contains = \"hello\"\n\
             [[package.metadata.xtask.app.smoke]]\nmethod = \"POST\"\npath = \"/v1/items\"\nstatus = 201\n",
            &BTreeMap::new(),
        );
        assert!(problems.is_empty(), "{problems:?}");
        let app = parsed.app.unwrap();
        assert_eq!(
            app.monitoring,
            Monitoring {
                latency_p99_ms: 250,
                error_rate_percent: 5
            }
        );
        assert_eq!(
            app.smoke,
            [
                SmokeRequest {
                    method: "GET".into(),
                    path: "/v1/hello".into(),
                    status: 200,
                    body_contains: Some("hello".into()),
                },
                SmokeRequest {
                    method: "POST".into(),
                    path: "/v1/items".into(),
                    status: 201,
                    body_contains: None,
                },
            ]
        );
    }

    #[test]
    fn bad_monitoring_and_smoke_values_are_located() {
        let (_, problems) = package(
            "[package]\nname = \"a\"\n[package.metadata.xtask.app]\nport = 8080\n\
             [package.metadata.xtask.app.monitoring]\nlatency_p99_ms = 0\nerror_rate_percent = 101\n\
             [[package.metadata.xtask.app.smoke]]\nmethod = \"get\"\npath = \"v1\"\nstatus = 99\nbody_contains = \"\"\n",
            &BTreeMap::new(),
        );
        let rendered: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            rendered,
            [
                "crates/a/Cargo.toml:6: `package.metadata.xtask.app.monitoring.latency_p99_ms`: must be 1-600000, got 0",
                "crates/a/Cargo.toml:7: `package.metadata.xtask.app.monitoring.error_rate_percent`: must be 1-50, got 101",
                "crates/a/Cargo.toml:9: `package.metadata.xtask.app.smoke[0].method`: must be one of GET, HEAD, POST, PUT, PATCH, DELETE, got \"get\"",
                "crates/a/Cargo.toml:10: `package.metadata.xtask.app.smoke[0].path`: must be an absolute URL path such as \"/v1/hello\", got \"v1\"",
                "crates/a/Cargo.toml:11: `package.metadata.xtask.app.smoke[0].status`: must be an HTTP status code 100-599, got 99",
                "crates/a/Cargo.toml:12: `package.metadata.xtask.app.smoke[0].body_contains`: must not be empty (leave it out to check only the status)",
            ]
        );
        let (_, problems) = package(
            "[package]\nname = \"a\"\n[package.metadata.xtask.app]\nport = 8080\n\
             [[package.metadata.xtask.app.smoke]]\npath = \"/\"\nexpect = 200\n",
            &BTreeMap::new(),
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].line, Some(7), "{problems:?}");
        assert!(problems[0].message.contains("expect"), "{problems:?}");
    }
}

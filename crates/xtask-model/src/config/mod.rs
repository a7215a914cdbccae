//! The xtask configuration in Cargo manifests, parsed in two phases: raw serde structs that
//! reject unknown keys (with the line of the offending key), then a validated model.
//!
//! Every key, in a root manifest that is also a package (a test parses this example, so it
//! stays copyable):
//!
//! ```toml
//! [workspace.metadata.xtask]
//! global_inputs = ["rustfmt.toml"]   # extra root-relative globs hashed into every task
//! env = ["MY_FLAG"]                  # env vars whose values enter every task hash
//!
//! [workspace.metadata.xtask.cache]
//! dir = "turbo-like-cache"           # relative to the workspace root; env XTASK_CACHE_DIR wins
//! max_size = "10GiB"                 # least-recently-used eviction above this size
//! eviction = true
//!
//! [workspace.metadata.xtask.cache.remote]  # shared cache; tokens come from the environment only
//! protocol = "turbo"                 # "turbo" (Turborepo API v8) or "bazel" (HTTP /ac + /cas)
//! url = "https://cache.example.com"  # env TURBO_API / XTASK_REMOTE_CACHE_URL win
//! team = "my-team"                   # turbo only: slug, or a team id starting with `team_`
//! mode = "read-write"                # or "read-only", "off"; env XTASK_REMOTE_CACHE_MODE wins
//! timeout_secs = 30
//! retries = 2
//! upload_concurrency = 4
//!
//! [workspace.metadata.xtask.tasks.gen]   # a custom task, run in every package unless `packages`
//! command = ["python3", "gen.py"]        # program and arguments, run without a shell
//! inputs = ["src/**", "!src/generated/**"]
//! outputs = ["out/**"]
//! env = ["GEN_MODE"]
//! depends_on = ["^gen", "build", "codegen#gen"]
//! cache = true
//! packages = ["c*"]
//!
//! [package.metadata.xtask.tasks.gen]     # per-package override (or a package-only task)
//! outputs = ["gen/**"]
//!
//! [workspace.metadata.xtask.deploy]      # where apps are deployed (k8s/, cargo xtask deploy)
//! namespace = "monorepo"                 # Kubernetes namespace prefix: monorepo-dev, -staging, ...
//! registry = "ghcr.io/example/monorepo"  # images are <registry>/<app>
//! domain = "example.com"                 # Ingress hosts: dev.example.com, ..., example.com
//! monitoring = true                      # overlays include k8s/monitoring (default true)
//! runbook_base_url = "https://github.com/acme/shop/blob/main"  # alerts link runbooks there
//!
//! [workspace.metadata.xtask.release]     # `cargo xtask release`
//! mode = "per-package"                   # or "lockstep": one version and one tag for all
//! branch = "main"                        # releases are cut from this branch only
//! tag_format = "{name}-v{version}"       # lockstep default: "v{version}"
//! remote = "origin"                      # where `--push` pushes
//!
//! [workspace.metadata.xtask.ci]          # `cargo xtask ci`
//! setup = ["bash", ".ci/install-tools"]  # run in the root before the checks (tools the tests use)
//!
//! [package.metadata.xtask.app]           # deployment settings of a service
//! port = 8080
//! health_path = "/health"                # liveness probe (these three are the defaults)
//! ready_path = "/ready"                  # readiness probe
//! metrics_path = "/metrics"              # scraped by Prometheus
//! services = ["postgres", "redis"]       # backing services it needs (compose.yaml)
//! ingress_path = "/v1"                   # routed from the Ingress (absent: cluster-internal)
//! talks_to = ["worker"]                  # apps it calls (NetworkPolicies allow only these)
//! secrets = ["API_TOKEN"]                # env vars from the app's Secret (names only)
//!
//! [package.metadata.xtask.app.env]       # non-secret environment of the app
//! RUST_LOG = "info"
//!
//! [package.metadata.xtask.app.resources] # Kubernetes requests and limits (these are the defaults)
//! cpu_request = "50m"
//! cpu_limit = "500m"
//! memory_request = "64Mi"
//! memory_limit = "256Mi"
//!
//! [package.metadata.xtask.app.monitoring] # alert thresholds (these are the defaults)
//! latency_p99_ms = 500                   # p99 latency alert, 1-600000
//! error_rate_percent = 5                 # 5xx share alert, 1-50
//!
//! [[package.metadata.xtask.app.smoke]]   # a request `cargo xtask smoke` sends (repeatable)
//! method = "GET"                         # GET (default), HEAD, POST, PUT, PATCH, DELETE
//! path = "/v1/greeting?name=smoke"
//! status = 200                           # expected status (default 200)
//! body_contains = "hello"                # optional
//! ```

mod app;
mod cache;
mod ci;
mod deploy;
mod raw;
mod release;
mod tasks;

use std::collections::BTreeMap;
use std::path::Path;

use toml::Spanned;

use crate::error::ConfigProblem;
use crate::task_name::TaskName;
use raw::RawManifest;

use app::validate_app;
pub use app::{AppConfig, BackingService, Monitoring, Resources, SMOKE_METHODS, SmokeRequest};
pub(crate) use app::{AppOfPackage, check_talks_to};
use cache::validate_cache;
pub use cache::{
    CacheConfig, DEFAULT_CACHE_DIR, DEFAULT_CACHE_MAX_SIZE, RemoteCacheConfig, RemoteMode,
    RemoteProtocol,
};
pub use ci::CiConfig;
use ci::validate_ci;
pub use deploy::DeployConfig;
use deploy::validate_deploy;
use release::validate_release;
pub use release::{ReleaseConfig, ReleaseMode};
pub(crate) use tasks::applies_to;
pub use tasks::{BUILTIN_TASKS, CargoTask, DependsOn, TaskDef, TaskKind, TaskOrigin};
use tasks::{TaskLocation, apply_task, builtin_task, compile_name_globs, task_entry};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceConfig {
    pub global_inputs: Vec<String>,
    pub env: Vec<String>,
    pub cache: CacheConfig,
    /// Every task name defined at the workspace level (built-ins included).
    pub task_names: Vec<TaskName>,
    pub release: ReleaseConfig,
    /// `[workspace.metadata.xtask.deploy]`, when present.
    pub deploy: Option<DeployConfig>,
    pub ci: CiConfig,
}

/// A manifest's text with its path, for locating problems.
pub(crate) struct ManifestSource<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl ManifestSource<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.text.as_bytes()[..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn problem(
        &self,
        key: impl Into<String>,
        offset: Option<usize>,
        message: impl Into<String>,
    ) -> ConfigProblem {
        ConfigProblem {
            file: self.path.to_path_buf(),
            key: key.into(),
            line: offset.map(|o| self.line_of(o)),
            message: message.into(),
        }
    }

    fn parse(&self, problems: &mut Vec<ConfigProblem>) -> Option<RawManifest> {
        match toml::from_str::<RawManifest>(self.text) {
            Ok(raw) => Some(raw),
            Err(error) => {
                let key = key_of_parse_error(&error, self.text);
                let message = error.message().trim().to_string();
                problems.push(self.problem(key, error.span().map(|s| s.start), message));
                None
            }
        }
    }
}

/// Best-effort dotted key of a toml error: the key text at the error's span.
fn key_of_parse_error(error: &toml::de::Error, text: &str) -> String {
    let Some(span) = error.span() else {
        return "(manifest)".to_string();
    };
    let start = span.start.min(text.len());
    // The line the error points into: its `key = ...` part names the key, whether the span
    // covers the key (unknown field) or the value (wrong type).
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    if line.starts_with('[') {
        return table_header(line).unwrap_or_default();
    }
    let leaf = line
        .split_once('=')
        .map_or(line, |(key, _)| key)
        .trim()
        .trim_matches('"');
    // The enclosing [table] header.
    let header = text[..line_start]
        .lines()
        .rev()
        .find_map(|l| table_header(l.trim()))
        .unwrap_or_default();
    match (header.is_empty(), leaf.is_empty()) {
        (true, _) => leaf.to_string(),
        (false, true) => header,
        (false, false) => format!("{header}.{leaf}"),
    }
}

fn table_header(line: &str) -> Option<String> {
    line.strip_prefix('[')
        .and_then(|l| l.strip_suffix(']'))
        .map(|h| h.trim_matches(['[', ']']).trim().to_string())
}

/// What phase 2 produces for the workspace manifest.
pub(crate) struct ParsedWorkspace {
    pub config: WorkspaceConfig,
    /// Workspace-level task definitions (built-ins included), keyed by name, with the
    /// `packages` filter of each.
    pub tasks: BTreeMap<TaskName, (TaskDef, Option<globset::GlobSet>)>,
}

pub(crate) fn parse_workspace_config(
    source: &ManifestSource<'_>,
    problems: &mut Vec<ConfigProblem>,
) -> ParsedWorkspace {
    let raw = source
        .parse(problems)
        .and_then(|m| m.workspace)
        .and_then(|w| w.metadata)
        .and_then(|m| m.xtask)
        .unwrap_or_default();
    const PREFIX: &str = "workspace.metadata.xtask";

    let cache = raw
        .cache
        .map(|raw| validate_cache(source, &format!("{PREFIX}.cache"), raw, problems))
        .unwrap_or_default();

    let global_inputs = validate_globs(
        source,
        &format!("{PREFIX}.global_inputs"),
        &raw.global_inputs,
        problems,
    );
    let env = validate_env_names(source, &format!("{PREFIX}.env"), &raw.env, problems);

    let mut tasks = BTreeMap::new();
    for cargo in BUILTIN_TASKS.iter().filter_map(TaskName::cargo_task) {
        tasks.insert(cargo.task_name(), (builtin_task(cargo), None));
    }
    for (name, raw_task) in raw.tasks {
        let Some((name, key, offset)) = task_entry(source, PREFIX, name, problems) else {
            continue;
        };
        let raw_task = raw_task.into_inner();
        let packages = raw_task
            .packages
            .as_ref()
            .and_then(|globs| compile_name_globs(source, &key, offset, globs, problems));
        let base = tasks.get(&name).map(|(def, _)| def.clone());
        if let Some(def) = apply_task(
            TaskLocation {
                origin: TaskOrigin::Workspace,
                source,
                key: &key,
                offset,
                name: &name,
            },
            base,
            raw_task,
            problems,
        ) {
            tasks.insert(name, (def, packages));
        }
    }
    let task_names = tasks.keys().cloned().collect();
    let release = raw
        .release
        .map(|raw| validate_release(source, &format!("{PREFIX}.release"), raw, problems))
        .unwrap_or_default();
    let deploy = raw
        .deploy
        .and_then(|deploy| validate_deploy(source, &format!("{PREFIX}.deploy"), deploy, problems));
    let ci = raw
        .ci
        .map(|raw| validate_ci(source, &format!("{PREFIX}.ci"), raw, problems))
        .unwrap_or_default();
    ParsedWorkspace {
        config: WorkspaceConfig {
            global_inputs,
            env,
            cache,
            task_names,
            release,
            deploy,
            ci,
        },
        tasks,
    }
}

/// The remote cache settings of the root manifest at `path` (text `text`), read before `cargo
/// metadata` runs (the engine shares its result through the remote cache). `None` when the
/// manifest's xtask configuration has any problem: the load that follows reports it.
pub fn remote_cache_config_of_root_manifest(path: &Path, text: &str) -> Option<RemoteCacheConfig> {
    let mut problems = Vec::new();
    let parsed = parse_workspace_config(&ManifestSource { path, text }, &mut problems);
    problems.is_empty().then_some(parsed.config.cache.remote)
}

/// What phase 2 produces for one package manifest.
#[derive(Default)]
pub(crate) struct ParsedPackage {
    pub task_overrides: Vec<(TaskName, TaskDef)>,
    pub app: Option<AppConfig>,
    /// The line of each entry of the app's `talks_to`.
    pub talks_to_lines: Vec<usize>,
}

pub(crate) fn parse_package_config(
    source: &ManifestSource<'_>,
    workspace_tasks: &BTreeMap<TaskName, (TaskDef, Option<globset::GlobSet>)>,
    problems: &mut Vec<ConfigProblem>,
) -> ParsedPackage {
    let raw = source
        .parse(problems)
        .and_then(|m| m.package)
        .and_then(|p| p.metadata)
        .and_then(|m| m.xtask)
        .unwrap_or_default();
    const PREFIX: &str = "package.metadata.xtask";
    let mut parsed = ParsedPackage::default();
    for (name, raw_task) in raw.tasks {
        let Some((name, key, offset)) = task_entry(source, PREFIX, name, problems) else {
            continue;
        };
        let raw_task = raw_task.into_inner();
        if raw_task.packages.is_some() {
            problems.push(source.problem(
                format!("{key}.packages"),
                offset,
                "`packages` is only allowed in `[workspace.metadata.xtask.tasks]`",
            ));
        }
        let base = workspace_tasks.get(&name).map(|(def, _)| def.clone());
        if let Some(def) = apply_task(
            TaskLocation {
                origin: TaskOrigin::Package,
                source,
                key: &key,
                offset,
                name: &name,
            },
            base,
            raw_task,
            problems,
        ) {
            parsed.task_overrides.push((name, def));
        }
    }
    if let Some(app) = raw.app
        && let Some(app) = validate_app(source, &format!("{PREFIX}.app"), app, problems)
    {
        parsed.app = Some(app.config);
        parsed.talks_to_lines = app.talks_to_lines;
    }
    parsed
}

fn validate_globs(
    source: &ManifestSource<'_>,
    key: &str,
    globs: &[Spanned<String>],
    problems: &mut Vec<ConfigProblem>,
) -> Vec<String> {
    globs
        .iter()
        .filter_map(|glob| match globset::Glob::new(glob.get_ref()) {
            Ok(_) if glob.get_ref().starts_with('/') || glob.get_ref().contains("..") => {
                problems.push(source.problem(
                    key,
                    Some(glob.span().start),
                    format!(
                        "globs are relative to the workspace root: {:?}",
                        glob.get_ref()
                    ),
                ));
                None
            }
            Ok(_) => Some(glob.get_ref().clone()),
            Err(error) => {
                problems.push(source.problem(
                    key,
                    Some(glob.span().start),
                    format!("invalid glob {:?}: {}", glob.get_ref(), error.kind()),
                ));
                None
            }
        })
        .collect()
}

fn validate_env_names(
    source: &ManifestSource<'_>,
    key: &str,
    names: &[Spanned<String>],
    problems: &mut Vec<ConfigProblem>,
) -> Vec<String> {
    let mut out = Vec::new();
    for name in names {
        let n = name.get_ref();
        let valid = !n.is_empty()
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !n.starts_with(|c: char| c.is_ascii_digit());
        if valid {
            out.push(n.clone());
        } else {
            let offset = (name.span().end > 0).then_some(name.span().start);
            problems.push(source.problem(
                key,
                offset,
                format!("invalid environment variable name {n:?}"),
            ));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `parse`s a located value; when it does not parse, records "must be EXPECTED, got VALUE" at
/// the value's line and gives `None`.
fn parse_value<T>(
    source: &ManifestSource<'_>,
    key: &str,
    value: &Spanned<String>,
    parse: impl Fn(&str) -> Option<T>,
    expected: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<T> {
    let parsed = parse(value.get_ref());
    if parsed.is_none() {
        problems.push(source.problem(
            key,
            Some(value.span().start),
            format!("must be {expected}, got {:?}", value.get_ref()),
        ));
    }
    parsed
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_url_path(path: &str) -> bool {
    path.starts_with('/') && !path.contains(char::is_whitespace)
}

/// An RFC 1123 label: what Kubernetes accepts as a namespace or an object name part.
fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn workspace(text: &str) -> (ParsedWorkspace, Vec<ConfigProblem>) {
        let mut problems = Vec::new();
        let parsed = parse_workspace_config(
            &ManifestSource {
                path: Path::new("Cargo.toml"),
                text,
            },
            &mut problems,
        );
        (parsed, problems)
    }

    pub(super) fn package(
        text: &str,
        tasks: &BTreeMap<TaskName, (TaskDef, Option<globset::GlobSet>)>,
    ) -> (ParsedPackage, Vec<ConfigProblem>) {
        let mut problems = Vec::new();
        let parsed = parse_package_config(
            &ManifestSource {
                path: Path::new("crates/a/Cargo.toml"),
                text,
            },
            tasks,
            &mut problems,
        );
        (parsed, problems)
    }

    /// The ```toml blocks of a Markdown or `//!` text, in order.
    fn toml_blocks(text: &str) -> Vec<String> {
        let mut blocks = Vec::new();
        let mut current: Option<Vec<&str>> = None;
        for line in text.lines() {
            let line = line
                .strip_prefix("//!")
                .map_or(line, |l| l.strip_prefix(' ').unwrap_or(l));
            match (&mut current, line.trim_end()) {
                (None, "```toml") => current = Some(Vec::new()),
                (Some(lines), "```") => {
                    blocks.push(lines.join("\n"));
                    current = None;
                }
                (Some(lines), _) => lines.push(line),
                (None, _) => {}
            }
        }
        blocks
    }

    /// Parses `text` as a root manifest that is also a package: every problem, both phases.
    fn parse_as_root_package(text: &str) -> (ParsedWorkspace, ParsedPackage, Vec<ConfigProblem>) {
        let (workspace_config, mut problems) = workspace(text);
        let (package_config, package_problems) = package(text, &workspace_config.tasks);
        problems.extend(package_problems);
        (workspace_config, package_config, problems)
    }

    #[test]
    fn the_documented_example_parses_without_problems() {
        let blocks = toml_blocks(include_str!("mod.rs"));
        assert_eq!(blocks.len(), 1, "{blocks:#?}");
        let (workspace_config, package_config, problems) = parse_as_root_package(&blocks[0]);
        assert!(problems.is_empty(), "{problems:#?}");
        assert!(workspace_config.tasks.contains_key("gen"));
        assert!(workspace_config.config.deploy.is_some());
        assert_eq!(workspace_config.config.release, ReleaseConfig::default());
        let app = package_config.app.expect("the example declares an app");
        assert_eq!(app.talks_to, ["worker"]);
        assert_eq!(app.services, BackingService::ALL);
    }

    #[test]
    fn the_readme_examples_parse_without_problems() {
        let blocks = toml_blocks(include_str!("../../../../README.md"));
        assert!(blocks.len() >= 3, "{blocks:#?}");
        for block in &blocks {
            let (_, _, problems) = parse_as_root_package(block);
            assert!(
                problems.is_empty(),
                "README.md example:\n{block}\n{problems:#?}"
            );
        }
    }

    #[test]
    fn unknown_key_names_file_key_and_line() {
        let (_, problems) = workspace(
            "[workspace]\n\n[workspace.metadata.xtask.tasks.gen]\ncommand = [\"x\"]\nbogus = 1\n",
        );
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, Some(5));
        assert_eq!(problems[0].key, "workspace.metadata.xtask.tasks.gen.bogus");
        assert!(
            problems[0].message.contains("unknown field `bogus`"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn validation_reports_every_problem() {
        let (_, problems) = workspace(
            "[workspace.metadata.xtask]\nenv = [\"1BAD\"]\n[workspace.metadata.xtask.cache]\nmax_size = \"lots\"\n\
             [workspace.metadata.xtask.tasks.Gen]\ncommand = [\"x\"]\n[workspace.metadata.xtask.tasks.ok]\ncommand = []\n\
             [workspace.metadata.xtask.tasks.build]\ncommand = [\"make\"]\n[workspace.metadata.xtask.tasks.dep]\ncommand = [\"x\"]\ndepends_on = [\"#x\"]\n",
        );
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "workspace.metadata.xtask.cache.max_size",
                "workspace.metadata.xtask.env",
                "workspace.metadata.xtask.tasks.Gen",
                "workspace.metadata.xtask.tasks.build.command",
                "workspace.metadata.xtask.tasks.dep.depends_on",
                "workspace.metadata.xtask.tasks.ok.command",
            ],
            "{problems:#?}"
        );
        assert!(problems.iter().all(|p| p.line.is_some()));
    }

    #[test]
    fn package_overrides_and_app() {
        let (parsed, _) = workspace(
            "[workspace.metadata.xtask.tasks.gen]\ncommand = [\"x\"]\noutputs = [\"out/**\"]\n",
        );
        let (pkg, problems) = package(
            "[package]\nname = \"a\"\n[package.metadata.xtask.tasks.gen]\noutputs = [\"gen/**\"]\n\
             [package.metadata.xtask.app]\nport = 8080\n[package.metadata.xtask.app.resources]\ncpu_limit = \"1\"\n",
            &parsed.tasks,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(pkg.task_overrides[0].1.outputs, vec!["gen/**"]);
        assert_eq!(
            pkg.task_overrides[0].1.kind,
            TaskKind::Custom {
                program: "x".into(),
                args: vec![]
            }
        );
        let app = pkg.app.expect("app");
        assert_eq!(
            (
                app.port,
                app.health_path.as_str(),
                app.resources.cpu_limit.as_str()
            ),
            (8080, "/health", "1")
        );
    }
}

//! The xtask configuration in Cargo manifests, parsed in two phases: raw serde structs that
//! reject unknown keys (with the line of the offending key), then a validated model.
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
//! [package.metadata.xtask.app]           # deployment settings of a service
//! port = 8080
//!
//! [workspace.metadata.xtask.release]     # `cargo xtask release`
//! mode = "per-package"                   # or "lockstep": one version and one tag for all
//! branch = "main"                        # releases are cut from this branch only
//! tag_format = "{name}-v{version}"       # lockstep default: "v{version}"
//! remote = "origin"                      # where `--push` pushes
//!
//! [workspace.metadata.xtask.ci]          # `cargo xtask ci`
//! setup = ["bash", ".ci/install-tools"]  # run in the root before the checks (tools the tests use)
//! services = ["postgres", "redis"]       # backing services it needs (compose.yaml)
//! ingress_path = "/v1"                   # routed from the Ingress (absent: cluster-internal)
//! talks_to = ["worker"]                  # apps it calls (NetworkPolicies allow only these)
//! secrets = ["API_TOKEN"]                # env vars from the app's Secret (names only)
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::error::ConfigProblem;
use crate::quantity::{is_cpu_quantity, is_memory_quantity, parse_size};

/// The built-in cargo tasks, in the order their batches run.
pub const BUILTIN_TASKS: [&str; 4] = ["fmt", "lint", "build", "test"];
pub const DEFAULT_CACHE_DIR: &str = "turbo-like-cache";
/// Default eviction cap of the local cache.
pub const DEFAULT_CACHE_MAX_SIZE: u64 = 10 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CargoTask {
    /// `cargo build`
    Build,
    /// `cargo test` (test binaries run per package)
    Test,
    /// `cargo clippy --all-targets -- -D warnings`
    Lint,
    /// `cargo fmt --check`
    Fmt,
}

impl CargoTask {
    pub fn name(self) -> &'static str {
        match self {
            CargoTask::Build => "build",
            CargoTask::Test => "test",
            CargoTask::Lint => "lint",
            CargoTask::Fmt => "fmt",
        }
    }

    pub fn from_name(name: &str) -> Option<CargoTask> {
        match name {
            "build" => Some(CargoTask::Build),
            "test" => Some(CargoTask::Test),
            "lint" => Some(CargoTask::Lint),
            "fmt" => Some(CargoTask::Fmt),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskKind {
    Cargo(CargoTask),
    /// A program with arguments, run without a shell in the package directory.
    Custom {
        program: String,
        args: Vec<String>,
    },
}

/// One entry of `depends_on`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum DependsOn {
    /// `^task`: the task in every workspace dependency of the package.
    Upstream(String),
    /// `task`: the task in the same package.
    SamePackage(String),
    /// `pkg#task`: the task of one named package.
    Package { package: String, task: String },
}

impl DependsOn {
    pub fn task(&self) -> &str {
        match self {
            DependsOn::Upstream(t) | DependsOn::SamePackage(t) => t,
            DependsOn::Package { task, .. } => task,
        }
    }
}

impl fmt::Display for DependsOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DependsOn::Upstream(t) => write!(f, "^{t}"),
            DependsOn::SamePackage(t) => write!(f, "{t}"),
            DependsOn::Package { package, task } => write!(f, "{package}#{task}"),
        }
    }
}

/// Which manifest a part of a task definition comes from, for locating problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskOrigin {
    /// Built into the tool.
    Builtin,
    /// `[workspace.metadata.xtask.tasks.NAME]` in the root manifest.
    Workspace,
    /// `[package.metadata.xtask.tasks.NAME]` in the package's manifest.
    Package,
}

/// The effective definition of a task for one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDef {
    pub name: String,
    pub kind: TaskKind,
    /// Globs relative to the package directory; empty means every non-ignored file.
    pub inputs: Vec<String>,
    /// Globs relative to the package directory of files the task writes.
    pub outputs: Vec<String>,
    /// Environment variables whose values enter the task hash.
    pub env: Vec<String>,
    pub depends_on: Vec<DependsOn>,
    /// `false` for tasks that must always run (never read nor written to the cache).
    pub cache: bool,
    /// Where `depends_on` was declared.
    pub depends_on_origin: TaskOrigin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Relative to the workspace root unless absolute.
    pub dir: PathBuf,
    /// `None` disables eviction.
    pub max_size_bytes: Option<u64>,
    /// `[workspace.metadata.xtask.cache.remote]`, as written (the environment is applied by
    /// `xtask-remote`).
    pub remote: RemoteCacheConfig,
}

/// The remote cache settings of the manifest. Every field is optional: the environment
/// (`TURBO_API`, `TURBO_TEAM`, `XTASK_REMOTE_CACHE_*`) can supply or override them. Tokens and
/// signature keys are never read from files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteCacheConfig {
    pub protocol: Option<RemoteProtocol>,
    pub url: Option<String>,
    pub team: Option<String>,
    pub mode: Option<RemoteMode>,
    pub timeout_secs: Option<u64>,
    pub retries: Option<u32>,
    pub upload_concurrency: Option<usize>,
}

/// The protocol a remote cache server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteProtocol {
    /// Turborepo's remote cache API v8 (`/v8/artifacts/{hash}`).
    Turbo,
    /// The Bazel HTTP cache protocol (`/ac/{sha256}`, `/cas/{sha256}`).
    Bazel,
}

/// What the remote cache may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RemoteMode {
    ReadWrite,
    /// Hits are downloaded, nothing is uploaded (e.g. pull requests from forks).
    ReadOnly,
    Off,
}

impl RemoteMode {
    /// Parses `read-write`, `read-only` or `off` (as in the manifest and the environment).
    pub fn parse(text: &str) -> Option<RemoteMode> {
        match text.trim() {
            "read-write" | "rw" => Some(RemoteMode::ReadWrite),
            "read-only" | "r" => Some(RemoteMode::ReadOnly),
            "off" => Some(RemoteMode::Off),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RemoteMode::ReadWrite => "read-write",
            RemoteMode::ReadOnly => "read-only",
            RemoteMode::Off => "off",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceConfig {
    pub global_inputs: Vec<String>,
    pub env: Vec<String>,
    pub cache: CacheConfig,
    /// Every task name defined at the workspace level (built-ins included).
    pub task_names: Vec<String>,
    pub release: ReleaseConfig,
    /// `[workspace.metadata.xtask.deploy]`, when present.
    pub deploy: Option<DeployConfig>,
    pub ci: CiConfig,
}

/// `[workspace.metadata.xtask.ci]`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CiConfig {
    /// A command (program and arguments, no shell) `cargo xtask ci` runs in the workspace root
    /// before its checks, e.g. to install the real tools the tests use when they are missing.
    pub setup: Option<Vec<String>>,
}

/// How packages are versioned by `cargo xtask release`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseMode {
    /// Each package has its own version and tag (`NAME-vX.Y.Z`).
    PerPackage,
    /// Every package shares one version and one tag (`vX.Y.Z`).
    Lockstep,
}

/// `[workspace.metadata.xtask.release]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseConfig {
    pub mode: ReleaseMode,
    /// The only branch releases are cut from.
    pub branch: String,
    /// Tag name with `{version}` (and `{name}` in per-package mode) placeholders.
    pub tag_format: String,
    /// The git remote `--push` pushes to.
    pub remote: String,
}

impl ReleaseConfig {
    /// The tag of `name` at `version`.
    pub fn tag(&self, name: &str, version: &str) -> String {
        self.tag_format
            .replace("{name}", name)
            .replace("{version}", version)
    }
}

impl Default for ReleaseConfig {
    fn default() -> ReleaseConfig {
        ReleaseConfig {
            mode: ReleaseMode::PerPackage,
            branch: "main".to_string(),
            tag_format: "{name}-v{version}".to_string(),
            remote: "origin".to_string(),
        }
    }
}

/// Where the apps are deployed (`[workspace.metadata.xtask.deploy]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployConfig {
    /// Namespace prefix: each environment deploys to `<namespace>-<env>`.
    pub namespace: String,
    /// Image repository prefix, without scheme: images are `<registry>/<app>`.
    pub registry: String,
    /// DNS domain of the Ingress hosts.
    pub domain: String,
    /// Whether the overlays include the `k8s/monitoring` component (ServiceMonitor,
    /// PrometheusRule, dashboards: needs the Prometheus Operator's CRDs). Default true.
    pub monitoring: bool,
    /// Where the repository's files are browsed (`https://github.com/acme/shop/blob/main`):
    /// alerts' `runbook_url` is this followed by the runbook's path. Unset: the path alone.
    pub runbook_base_url: Option<String>,
}

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
    pub cpu_request: String,
    pub cpu_limit: String,
    pub memory_request: String,
    pub memory_limit: String,
}

// ---------------------------------------------------------------------------------------------
// Phase 1: raw structs.

#[derive(Deserialize, Default)]
struct RawManifest {
    workspace: Option<RawWorkspaceTable>,
    package: Option<RawPackageTable>,
}

#[derive(Deserialize, Default)]
struct RawWorkspaceTable {
    metadata: Option<RawWorkspaceMetadata>,
}

#[derive(Deserialize, Default)]
struct RawWorkspaceMetadata {
    xtask: Option<RawWorkspaceXtask>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWorkspaceXtask {
    #[serde(default)]
    global_inputs: Vec<Spanned<String>>,
    #[serde(default)]
    env: Vec<Spanned<String>>,
    cache: Option<Spanned<RawCache>>,
    #[serde(default)]
    tasks: BTreeMap<Spanned<String>, Spanned<RawTask>>,
    release: Option<Spanned<RawRelease>>,
    deploy: Option<Spanned<RawDeploy>>,
    ci: Option<Spanned<RawCi>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCi {
    setup: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelease {
    mode: Option<Spanned<String>>,
    branch: Option<Spanned<String>>,
    tag_format: Option<Spanned<String>>,
    remote: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeploy {
    namespace: Spanned<String>,
    registry: Spanned<String>,
    domain: Spanned<String>,
    monitoring: Option<bool>,
    runbook_base_url: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    dir: Option<String>,
    max_size: Option<String>,
    eviction: Option<bool>,
    remote: Option<Spanned<RawRemote>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemote {
    protocol: Option<RemoteProtocol>,
    url: Option<String>,
    team: Option<String>,
    mode: Option<RemoteMode>,
    timeout_secs: Option<u64>,
    retries: Option<u32>,
    upload_concurrency: Option<usize>,
    /// Accepted by the parser only to reject it with a clear message: secrets live in the
    /// environment, never in a file of the repository.
    token: Option<toml::Value>,
    signature_key: Option<toml::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTask {
    command: Option<Vec<String>>,
    inputs: Option<Vec<String>>,
    outputs: Option<Vec<String>>,
    env: Option<Vec<String>>,
    depends_on: Option<Vec<Spanned<String>>>,
    cache: Option<bool>,
    packages: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
struct RawPackageTable {
    metadata: Option<RawPackageMetadata>,
}

#[derive(Deserialize, Default)]
struct RawPackageMetadata {
    xtask: Option<RawPackageXtask>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPackageXtask {
    #[serde(default)]
    tasks: BTreeMap<Spanned<String>, Spanned<RawTask>>,
    app: Option<Spanned<RawApp>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    port: Spanned<i64>,
    health_path: Option<Spanned<String>>,
    ready_path: Option<Spanned<String>>,
    metrics_path: Option<Spanned<String>>,
    resources: Option<Spanned<RawResources>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    services: Vec<Spanned<String>>,
    ingress_path: Option<Spanned<String>>,
    #[serde(default)]
    talks_to: Vec<Spanned<String>>,
    #[serde(default)]
    secrets: Vec<Spanned<String>>,
    monitoring: Option<Spanned<RawMonitoring>>,
    #[serde(default)]
    smoke: Vec<Spanned<RawSmokeRequest>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMonitoring {
    latency_p99_ms: Option<Spanned<i64>>,
    error_rate_percent: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmokeRequest {
    method: Option<Spanned<String>>,
    path: Spanned<String>,
    status: Option<Spanned<i64>>,
    body_contains: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResources {
    cpu_request: Option<Spanned<String>>,
    cpu_limit: Option<Spanned<String>>,
    memory_request: Option<Spanned<String>>,
    memory_limit: Option<Spanned<String>>,
}

// ---------------------------------------------------------------------------------------------
// Phase 2: validation.

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
    pub tasks: BTreeMap<String, (TaskDef, Option<globset::GlobSet>)>,
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

    let mut cache = CacheConfig {
        dir: PathBuf::from(DEFAULT_CACHE_DIR),
        max_size_bytes: Some(DEFAULT_CACHE_MAX_SIZE),
        remote: RemoteCacheConfig::default(),
    };
    if let Some(raw_cache) = raw.cache {
        let span = raw_cache.span().start;
        let raw_cache = raw_cache.into_inner();
        if let Some(dir) = raw_cache.dir {
            if dir.trim().is_empty() {
                problems.push(source.problem(
                    format!("{PREFIX}.cache.dir"),
                    Some(span),
                    "must not be empty",
                ));
            }
            cache.dir = PathBuf::from(dir);
        }
        if let Some(max_size) = raw_cache.max_size {
            match parse_size(&max_size) {
                Some(size) => cache.max_size_bytes = Some(size),
                None => problems.push(source.problem(
                    format!("{PREFIX}.cache.max_size"),
                    Some(span),
                    format!("must be a size such as \"10GiB\" or \"500MB\", got {max_size:?}"),
                )),
            }
        }
        if raw_cache.eviction == Some(false) {
            cache.max_size_bytes = None;
        }
        if let Some(remote) = raw_cache.remote {
            cache.remote =
                validate_remote(source, &format!("{PREFIX}.cache.remote"), remote, problems);
        }
    }

    let global_inputs = validate_globs(
        source,
        &format!("{PREFIX}.global_inputs"),
        &raw.global_inputs,
        problems,
    );
    let env = validate_env_names(source, &format!("{PREFIX}.env"), &raw.env, problems);

    let mut tasks = BTreeMap::new();
    for name in BUILTIN_TASKS {
        let cargo = CargoTask::from_name(name).unwrap_or(CargoTask::Build);
        tasks.insert(name.to_string(), (builtin_task(cargo), None));
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

/// What phase 2 produces for one package manifest.
#[derive(Default)]
pub(crate) struct ParsedPackage {
    pub task_overrides: Vec<(String, TaskDef)>,
    pub app: Option<AppConfig>,
}

pub(crate) fn parse_package_config(
    source: &ManifestSource<'_>,
    workspace_tasks: &BTreeMap<String, (TaskDef, Option<globset::GlobSet>)>,
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
    if let Some(app) = raw.app {
        parsed.app = validate_app(source, &format!("{PREFIX}.app"), app, problems);
    }
    parsed
}

/// The name, dotted key and position of a `[...tasks.NAME]` table; `None` (with a problem
/// recorded) when the name is invalid.
fn task_entry(
    source: &ManifestSource<'_>,
    prefix: &str,
    name: Spanned<String>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<(String, String, Option<usize>)> {
    let key = format!("{prefix}.tasks.{}", name.get_ref());
    let offset = Some(name.span().start);
    let name = name.into_inner();
    if !is_valid_task_name(&name) {
        problems.push(source.problem(
            &key,
            offset,
            "task names use lowercase letters, digits, `-` and `_`, starting with a letter",
        ));
        return None;
    }
    Some((name, key, offset))
}

fn builtin_task(cargo: CargoTask) -> TaskDef {
    TaskDef {
        name: cargo.name().to_string(),
        kind: TaskKind::Cargo(cargo),
        inputs: Vec::new(),
        outputs: Vec::new(),
        env: Vec::new(),
        depends_on: Vec::new(),
        cache: true,
        depends_on_origin: TaskOrigin::Builtin,
    }
}

/// Where a `[...tasks.NAME]` table is, for locating its problems.
struct TaskLocation<'a, 'text> {
    origin: TaskOrigin,
    source: &'a ManifestSource<'text>,
    key: &'a str,
    offset: Option<usize>,
    name: &'a str,
}

/// Builds a task definition from `raw` on top of `base` (a built-in or workspace definition).
fn apply_task(
    location: TaskLocation<'_, '_>,
    base: Option<TaskDef>,
    raw: RawTask,
    problems: &mut Vec<ConfigProblem>,
) -> Option<TaskDef> {
    let TaskLocation {
        origin,
        source,
        key,
        offset,
        name,
    } = location;
    let before = problems.len();
    let mut def = match (base, raw.command) {
        (Some(base), None) => base,
        (
            Some(TaskDef {
                kind: TaskKind::Cargo(_),
                ..
            }),
            Some(_),
        ) => {
            problems.push(source.problem(
                format!("{key}.command"),
                offset,
                format!("`{name}` is a built-in cargo task; its command cannot be changed (define a custom task with another name)"),
            ));
            return None;
        }
        (base, Some(command)) => {
            let Some((program, args)) = command.split_first() else {
                problems.push(source.problem(
                    format!("{key}.command"),
                    offset,
                    "must name a program: [\"program\", \"arg\", ...]",
                ));
                return None;
            };
            if program.trim().is_empty() {
                problems.push(source.problem(
                    format!("{key}.command"),
                    offset,
                    "the program must not be empty",
                ));
            }
            let kind = TaskKind::Custom {
                program: program.clone(),
                args: args.to_vec(),
            };
            match base {
                Some(base) => TaskDef { kind, ..base },
                None => TaskDef {
                    name: name.to_string(),
                    kind,
                    inputs: Vec::new(),
                    outputs: Vec::new(),
                    env: Vec::new(),
                    depends_on: Vec::new(),
                    cache: true,
                    depends_on_origin: origin,
                },
            }
        }
        (None, None) => {
            problems.push(source.problem(
                key,
                offset,
                format!(
                    "task `{name}` is not defined at the workspace level, so it needs a `command`"
                ),
            ));
            return None;
        }
    };
    if let Some(inputs) = raw.inputs {
        def.inputs = plain_globs(source, &format!("{key}.inputs"), offset, inputs, problems);
    }
    if let Some(outputs) = raw.outputs {
        for output in &outputs {
            if output.starts_with('/') || output.split('/').any(|c| c == "..") {
                problems.push(source.problem(
                    format!("{key}.outputs"),
                    offset,
                    format!("outputs stay inside the package: {output:?}"),
                ));
            }
        }
        def.outputs = plain_globs(source, &format!("{key}.outputs"), offset, outputs, problems);
    }
    if let Some(env) = raw.env {
        let spanned: Vec<Spanned<String>> =
            env.into_iter().map(|e| Spanned::new(0..0, e)).collect();
        def.env = validate_env_names(source, &format!("{key}.env"), &spanned, problems);
    }
    if let Some(depends_on) = raw.depends_on {
        def.depends_on_origin = origin;
        def.depends_on = depends_on
            .iter()
            .filter_map(|spec| match parse_depends_on(spec.get_ref()) {
                Ok(dep) => Some(dep),
                Err(message) => {
                    problems.push(source.problem(
                        format!("{key}.depends_on"),
                        Some(spec.span().start),
                        message,
                    ));
                    None
                }
            })
            .collect();
    }
    if let Some(cache) = raw.cache {
        def.cache = cache;
    }
    (problems.len() == before).then_some(def)
}

fn parse_depends_on(spec: &str) -> Result<DependsOn, String> {
    let check = |task: &str| {
        if is_valid_task_name(task) {
            Ok(task.to_string())
        } else {
            Err(format!(
                "invalid dependency {spec:?}: expected `task`, `^task` or `package#task`"
            ))
        }
    };
    if let Some(task) = spec.strip_prefix('^') {
        return Ok(DependsOn::Upstream(check(task)?));
    }
    if let Some((package, task)) = spec.split_once('#') {
        if package.is_empty() {
            return Err(format!(
                "invalid dependency {spec:?}: the package name is empty"
            ));
        }
        return Ok(DependsOn::Package {
            package: package.to_string(),
            task: check(task)?,
        });
    }
    Ok(DependsOn::SamePackage(check(spec)?))
}

pub(crate) fn is_valid_task_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn plain_globs(
    source: &ManifestSource<'_>,
    key: &str,
    offset: Option<usize>,
    globs: Vec<String>,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<String> {
    for glob in &globs {
        let pattern = glob.strip_prefix('!').unwrap_or(glob);
        if let Err(error) = globset::Glob::new(pattern) {
            problems.push(source.problem(
                key,
                offset,
                format!("invalid glob {glob:?}: {}", error.kind()),
            ));
        }
    }
    globs
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

fn compile_name_globs(
    source: &ManifestSource<'_>,
    key: &str,
    offset: Option<usize>,
    globs: &[String],
    problems: &mut Vec<ConfigProblem>,
) -> Option<globset::GlobSet> {
    let mut builder = globset::GlobSetBuilder::new();
    for glob in globs {
        match globset::Glob::new(glob) {
            Ok(g) => {
                builder.add(g);
            }
            Err(error) => {
                problems.push(source.problem(
                    format!("{key}.packages"),
                    offset,
                    format!("invalid glob {glob:?}: {}", error.kind()),
                ));
                return None;
            }
        }
    }
    builder.build().ok()
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

/// (field name, raw value, destination, validity check, what is expected)
type QuantityField<'a> = (
    &'static str,
    Option<Spanned<String>>,
    &'a mut String,
    fn(&str) -> bool,
    &'static str,
);

fn validate_app(
    source: &ManifestSource<'_>,
    key: &str,
    app: Spanned<RawApp>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<AppConfig> {
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
    let mut resources = Resources {
        cpu_request: "50m".into(),
        cpu_limit: "500m".into(),
        memory_request: "64Mi".into(),
        memory_limit: "256Mi".into(),
    };
    if let Some(raw) = app.resources {
        let raw = raw.into_inner();
        let fields: [QuantityField<'_>; 4] = [
            (
                "cpu_request",
                raw.cpu_request,
                &mut resources.cpu_request,
                is_cpu_quantity,
                "a CPU quantity such as \"100m\" or \"0.5\"",
            ),
            (
                "cpu_limit",
                raw.cpu_limit,
                &mut resources.cpu_limit,
                is_cpu_quantity,
                "a CPU quantity such as \"100m\" or \"0.5\"",
            ),
            (
                "memory_request",
                raw.memory_request,
                &mut resources.memory_request,
                is_memory_quantity,
                "a memory quantity such as \"64Mi\"",
            ),
            (
                "memory_limit",
                raw.memory_limit,
                &mut resources.memory_limit,
                is_memory_quantity,
                "a memory quantity such as \"64Mi\"",
            ),
        ];
        for (field, value, slot, valid, expected) in fields {
            if let Some(value) = value {
                if !valid(value.get_ref()) {
                    problems.push(source.problem(
                        format!("{key}.resources.{field}"),
                        Some(value.span().start),
                        format!("must be {expected}, got {:?}", value.get_ref()),
                    ));
                }
                *slot = value.into_inner();
            }
        }
    }
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
    for name in app.talks_to {
        if !is_dns_label(name.get_ref()) {
            problems.push(source.problem(
                format!("{key}.talks_to"),
                Some(name.span().start),
                format!("{:?} is not an app name", name.get_ref()),
            ));
        }
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
    (problems.len() == before).then(|| AppConfig {
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
    })
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

fn validate_remote(
    source: &ManifestSource<'_>,
    key: &str,
    remote: Spanned<RawRemote>,
    problems: &mut Vec<ConfigProblem>,
) -> RemoteCacheConfig {
    let span = remote.span().start;
    let remote = remote.into_inner();
    for (name, value, variable) in [
        (
            "token",
            &remote.token,
            "TURBO_TOKEN or XTASK_REMOTE_CACHE_TOKEN",
        ),
        (
            "signature_key",
            &remote.signature_key,
            "TURBO_REMOTE_CACHE_SIGNATURE_KEY",
        ),
    ] {
        if value.is_some() {
            problems.push(source.problem(
                format!("{key}.{name}"),
                Some(span),
                format!(
                    "secrets are never read from files: remove it (and rotate it, it was committed) and set {variable} in the environment"
                ),
            ));
        }
    }
    if let Some(url) = &remote.url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        problems.push(source.problem(
            format!("{key}.url"),
            Some(span),
            format!("must start with http:// or https://, got {url:?}"),
        ));
    }
    if remote.timeout_secs == Some(0) {
        problems.push(source.problem(
            format!("{key}.timeout_secs"),
            Some(span),
            "must be at least 1",
        ));
    }
    if remote.upload_concurrency == Some(0) {
        problems.push(source.problem(
            format!("{key}.upload_concurrency"),
            Some(span),
            "must be at least 1",
        ));
    }
    RemoteCacheConfig {
        protocol: remote.protocol,
        url: remote.url,
        team: remote.team,
        mode: remote.mode,
        timeout_secs: remote.timeout_secs,
        retries: remote.retries,
        upload_concurrency: remote.upload_concurrency,
    }
}

fn validate_release(
    source: &ManifestSource<'_>,
    key: &str,
    raw: Spanned<RawRelease>,
    problems: &mut Vec<ConfigProblem>,
) -> ReleaseConfig {
    let raw = raw.into_inner();
    let mut config = ReleaseConfig::default();
    if let Some(mode) = &raw.mode {
        match mode.get_ref().as_str() {
            "per-package" => config.mode = ReleaseMode::PerPackage,
            "lockstep" => {
                config.mode = ReleaseMode::Lockstep;
                config.tag_format = "v{version}".to_string();
            }
            other => problems.push(source.problem(
                format!("{key}.mode"),
                Some(mode.span().start),
                format!("must be \"per-package\" or \"lockstep\", got {other:?}"),
            )),
        }
    }
    // A git ref name component: no spaces, no `..`, none of git's special characters.
    let is_ref_name = |name: &str| {
        !name.is_empty()
            && !name.starts_with(['-', '/', '.'])
            && !name.ends_with(['/', '.'])
            && !name.contains("..")
            && !name.contains("@{")
            && !name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c))
    };
    for (field, value, slot) in [
        ("branch", &raw.branch, &mut config.branch),
        ("remote", &raw.remote, &mut config.remote),
    ] {
        if let Some(value) = value {
            if is_ref_name(value.get_ref()) {
                *slot = value.get_ref().clone();
            } else {
                problems.push(source.problem(
                    format!("{key}.{field}"),
                    Some(value.span().start),
                    format!("must be a valid git name, got {:?}", value.get_ref()),
                ));
            }
        }
    }
    if let Some(format) = &raw.tag_format {
        let text = format.get_ref();
        let placeholders_removed = text.replace("{name}", "n").replace("{version}", "1.0.0");
        let problem = if !text.contains("{version}") {
            Some("must contain `{version}`".to_string())
        } else if config.mode == ReleaseMode::PerPackage && !text.contains("{name}") {
            Some("must contain `{name}` in per-package mode (one tag per package)".to_string())
        } else if placeholders_removed.contains(['{', '}']) || !is_ref_name(&placeholders_removed) {
            Some(format!(
                "must be a valid git tag name with only `{{name}}` and `{{version}}` placeholders, got {text:?}"
            ))
        } else {
            None
        };
        match problem {
            Some(message) => problems.push(source.problem(
                format!("{key}.tag_format"),
                Some(format.span().start),
                message,
            )),
            None => config.tag_format = text.clone(),
        }
    }
    config
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

/// `(field, value, check, what it must be)` of one `[workspace.metadata.xtask.deploy]` key.
type DeployField<'a> = (
    &'a str,
    &'a Spanned<String>,
    &'a dyn Fn(&str) -> bool,
    &'a str,
);

fn validate_ci(
    source: &ManifestSource<'_>,
    key: &str,
    raw: Spanned<RawCi>,
    problems: &mut Vec<ConfigProblem>,
) -> CiConfig {
    let Some(setup) = raw.into_inner().setup else {
        return CiConfig::default();
    };
    if setup
        .get_ref()
        .first()
        .is_none_or(|program| program.is_empty())
    {
        problems.push(source.problem(
            format!("{key}.setup"),
            Some(setup.span().start),
            "must be a program and its arguments, such as [\"bash\", \".ci/install-tools\"]",
        ));
        return CiConfig::default();
    }
    CiConfig {
        setup: Some(setup.into_inner()),
    }
}

fn validate_deploy(
    source: &ManifestSource<'_>,
    key: &str,
    deploy: Spanned<RawDeploy>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<DeployConfig> {
    let before = problems.len();
    let deploy = deploy.into_inner();
    // `<namespace>-production` must still be a DNS label (63 characters at most).
    let namespace_ok = |n: &str| is_dns_label(n) && n.len() <= 52;
    let registry_ok = |r: &str| {
        !r.is_empty()
            && !r.contains("://")
            && !r.ends_with('/')
            && r.split('/').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-:".contains(c))
            })
    };
    let domain_ok = |d: &str| d.len() <= 240 && d.split('.').all(is_dns_label);
    let fields: [DeployField<'_>; 3] = [
        (
            "namespace",
            &deploy.namespace,
            &namespace_ok,
            "a DNS label of at most 52 characters (lowercase letters, digits, `-`)",
        ),
        (
            "registry",
            &deploy.registry,
            &registry_ok,
            "an image repository prefix without scheme, such as \"ghcr.io/acme/shop\"",
        ),
        (
            "domain",
            &deploy.domain,
            &domain_ok,
            "a lowercase DNS name such as \"example.com\"",
        ),
    ];
    for (field, value, valid, expected) in fields {
        if !valid(value.get_ref()) {
            problems.push(source.problem(
                format!("{key}.{field}"),
                Some(value.span().start),
                format!("must be {expected}, got {:?}", value.get_ref()),
            ));
        }
    }
    if let Some(url) = &deploy.runbook_base_url {
        let text = url.get_ref();
        let scheme_ok = text.starts_with("https://") || text.starts_with("http://");
        if !scheme_ok || text.ends_with('/') || text.contains(char::is_whitespace) {
            problems.push(source.problem(
                format!("{key}.runbook_base_url"),
                Some(url.span().start),
                format!(
                    "must be an http(s) URL without a trailing `/`, such as \
                     \"https://github.com/acme/shop/blob/main\", got {text:?}"
                ),
            ));
        }
    }
    (problems.len() == before).then(|| DeployConfig {
        namespace: deploy.namespace.into_inner(),
        registry: deploy.registry.into_inner(),
        domain: deploy.domain.into_inner(),
        monitoring: deploy.monitoring.unwrap_or(true),
        runbook_base_url: deploy.runbook_base_url.map(Spanned::into_inner),
    })
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

/// Does the workspace-level task apply to this package?
pub(crate) fn applies_to(filter: &Option<globset::GlobSet>, package: &str) -> bool {
    filter.as_ref().is_none_or(|set| set.is_match(package))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(text: &str) -> (ParsedWorkspace, Vec<ConfigProblem>) {
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

    fn package(
        text: &str,
        tasks: &BTreeMap<String, (TaskDef, Option<globset::GlobSet>)>,
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

    #[test]
    fn builtins_exist_without_configuration() {
        let (parsed, problems) = workspace("[workspace]\nmembers = []\n");
        assert!(problems.is_empty());
        assert_eq!(
            parsed.config.task_names,
            vec!["build", "fmt", "lint", "test"]
        );
        assert_eq!(
            parsed.config.cache.max_size_bytes,
            Some(DEFAULT_CACHE_MAX_SIZE)
        );
        assert_eq!(
            parsed.tasks["lint"].0.kind,
            TaskKind::Cargo(CargoTask::Lint)
        );
    }

    #[test]
    fn ci_setup_is_a_command_and_an_empty_one_names_key_and_line() {
        let (parsed, problems) =
            workspace("[workspace.metadata.xtask.ci]\nsetup = [\"bash\", \".ci/install-tools\"]\n");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            parsed.config.ci.setup,
            Some(vec!["bash".to_string(), ".ci/install-tools".to_string()])
        );
        let (parsed, problems) =
            workspace("[workspace]\n\n[workspace.metadata.xtask.ci]\nsetup = []\n");
        assert_eq!(parsed.config.ci.setup, None);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "workspace.metadata.xtask.ci.setup");
        assert_eq!(problems[0].line, Some(4));
        let (_, problems) = workspace("[workspace.metadata.xtask.ci]\nsetpu = [\"x\"]\n");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains("setpu"), "{problems:?}");
    }

    #[test]
    fn custom_task_is_parsed() {
        let (parsed, problems) = workspace(
            "[workspace.metadata.xtask.tasks.gen]\ncommand = [\"sh\", \"-c\", \"true\"]\noutputs = [\"out/**\"]\n\
             depends_on = [\"^gen\", \"build\", \"core#gen\"]\nenv = [\"MODE\"]\npackages = [\"c*\"]\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let (def, filter) = &parsed.tasks["gen"];
        assert_eq!(
            def.kind,
            TaskKind::Custom {
                program: "sh".into(),
                args: vec!["-c".into(), "true".into()]
            }
        );
        assert_eq!(
            def.depends_on,
            vec![
                DependsOn::Upstream("gen".into()),
                DependsOn::SamePackage("build".into()),
                DependsOn::Package {
                    package: "core".into(),
                    task: "gen".into()
                }
            ]
        );
        assert!(applies_to(filter, "core") && !applies_to(filter, "api"));
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

    #[test]
    fn remote_cache_settings_are_parsed() {
        let (parsed, problems) = workspace(
            "[workspace.metadata.xtask.cache.remote]\nprotocol = \"bazel\"\nurl = \"http://127.0.0.1:9092\"\n\
             mode = \"read-only\"\ntimeout_secs = 5\nretries = 1\nupload_concurrency = 2\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            parsed.config.cache.remote,
            RemoteCacheConfig {
                protocol: Some(RemoteProtocol::Bazel),
                url: Some("http://127.0.0.1:9092".into()),
                team: None,
                mode: Some(RemoteMode::ReadOnly),
                timeout_secs: Some(5),
                retries: Some(1),
                upload_concurrency: Some(2),
            }
        );
    }

    #[test]
    fn a_token_in_the_manifest_is_refused_without_echoing_it() {
        let (_, problems) = workspace(
            "[workspace]\n[workspace.metadata.xtask.cache.remote]\nurl = \"ftp://x\"\ntoken = \"hunter2-secret\"\n",
        );
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 2, "{text:?}");
        assert_eq!(
            problems[0].key,
            "workspace.metadata.xtask.cache.remote.token"
        );
        assert_eq!(problems[0].line, Some(2));
        assert!(problems[0].message.contains("TURBO_TOKEN"), "{text:?}");
        assert_eq!(problems[1].key, "workspace.metadata.xtask.cache.remote.url");
        assert!(text.iter().all(|t| !t.contains("hunter2")), "{text:?}");
    }

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
    fn release_defaults_and_lockstep() {
        let (parsed, problems) = workspace("[workspace]\n");
        assert!(problems.is_empty());
        assert_eq!(parsed.config.release, ReleaseConfig::default());
        assert_eq!(parsed.config.release.tag("core", "1.2.3"), "core-v1.2.3");
        let (parsed, problems) = workspace(
            "[workspace.metadata.xtask.release]\nmode = \"lockstep\"\nbranch = \"release/1.x\"\nremote = \"upstream\"\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let release = parsed.config.release;
        assert_eq!(release.mode, ReleaseMode::Lockstep);
        assert_eq!(
            (release.branch.as_str(), release.remote.as_str()),
            ("release/1.x", "upstream")
        );
        assert_eq!(release.tag("core", "1.2.3"), "v1.2.3");
    }

    #[test]
    fn bad_release_values_are_located() {
        let (_, problems) = workspace(
            "[workspace]\n[workspace.metadata.xtask.release]\nmode = \"together\"\nbranch = \"a b\"\ntag_format = \"v{version}\"\n",
        );
        let rendered: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            rendered,
            vec![
                "Cargo.toml:3: `workspace.metadata.xtask.release.mode`: must be \"per-package\" or \"lockstep\", got \"together\"",
                "Cargo.toml:4: `workspace.metadata.xtask.release.branch`: must be a valid git name, got \"a b\"",
                "Cargo.toml:5: `workspace.metadata.xtask.release.tag_format`: must contain `{name}` in per-package mode (one tag per package)",
            ]
        );
        let (_, problems) =
            workspace("[workspace.metadata.xtask.release]\nmode = \"lockstep\"\nsign = true\n");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "workspace.metadata.xtask.release.sign");
        assert_eq!(problems[0].line, Some(3));
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
    fn deploy_settings_and_app_network_fields() {
        let (parsed, problems) = workspace(
            "[workspace.metadata.xtask.deploy]\nnamespace = \"shop\"\nregistry = \"ghcr.io/acme/shop\"\ndomain = \"shop.example.com\"\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            parsed.config.deploy,
            Some(DeployConfig {
                namespace: "shop".into(),
                registry: "ghcr.io/acme/shop".into(),
                domain: "shop.example.com".into(),
                monitoring: true,
                runbook_base_url: None,
            })
        );
        let (pkg, problems) = package(
            "[package]\nname = \"a\"\n[package.metadata.xtask.app]\nport = 8080\ningress_path = \"/v1\"\n\
             talks_to = [\"b\"]\nsecrets = [\"API_TOKEN\"]\n",
            &BTreeMap::new(),
        );
        assert!(problems.is_empty(), "{problems:?}");
        let app = pkg.app.expect("app");
        assert_eq!(app.ingress_path.as_deref(), Some("/v1"));
        assert_eq!(app.talks_to, ["b"]);
        assert_eq!(app.secrets, ["API_TOKEN"]);
    }

    #[test]
    fn bad_deploy_settings_are_located() {
        let (parsed, problems) = workspace(
            "[workspace.metadata.xtask.deploy]\nnamespace = \"Shop\"\nregistry = \"https://ghcr.io/\"\ndomain = \"example..com\"\n",
        );
        let rendered: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            rendered,
            [
                "Cargo.toml:2: `workspace.metadata.xtask.deploy.namespace`: must be a DNS label of at most 52 characters (lowercase letters, digits, `-`), got \"Shop\"",
                "Cargo.toml:3: `workspace.metadata.xtask.deploy.registry`: must be an image repository prefix without scheme, such as \"ghcr.io/acme/shop\", got \"https://ghcr.io/\"",
                "Cargo.toml:4: `workspace.metadata.xtask.deploy.domain`: must be a lowercase DNS name such as \"example.com\", got \"example..com\"",
            ]
        );
        assert_eq!(parsed.config.deploy, None);
        let (_, problems) = workspace("[workspace.metadata.xtask.deploy]\nnamespace = \"shop\"\n");
        assert!(
            problems[0].to_string().contains("missing field `registry`"),
            "{problems:?}"
        );
        let (_, problems) = workspace(
            "[workspace.metadata.xtask.deploy]\nnamespace = \"shop\"\nregistry = \"ghcr.io/a\"\n\
             domain = \"a.com\"\nrunbook_base_url = \"github.com/a/b/\"\n",
        );
        let rendered: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            rendered,
            [
                "Cargo.toml:5: `workspace.metadata.xtask.deploy.runbook_base_url`: must be an http(s) \
              URL without a trailing `/`, such as \"https://github.com/acme/shop/blob/main\", got \
              \"github.com/a/b/\""
            ]
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

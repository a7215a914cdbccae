//! Planning: discovers and hashes every input of every task in the graph and builds each
//! task's [`TaskKey`], in topological order so dependency hashes are known.
//!
//! File discovery runs once per distinct (package, inputs, outputs) spec and every file is
//! hashed once per run, in parallel, however many tasks read it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Context;
use xtask_graph::{TaskGraph, dependency_closure};
use xtask_hash::{
    InputFile, InputSpec, KEY_SCHEMA, LockedPackage, Lockfile, TaskDefinitionKey, TaskKey,
    ToolchainKey, discover_global_inputs, env_value_digest, source_fingerprint,
};
use xtask_model::{CargoTask, DepKind, PackageIndex, TaskDef, TaskKind, TaskName, Workspace};

/// The tool's version, part of every task hash.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Inputs hashed into every task besides the user's `global_inputs`. `Cargo.lock` is
/// deliberately absent: each cargo task hashes its own package's external dependency closure
/// from it instead, so a lockfile change only invalidates the packages it touches.
pub const BUILTIN_GLOBAL_INPUTS: [&str; 5] = [
    "Cargo.toml",
    "rust-toolchain",
    "rust-toolchain.toml",
    ".cargo/config",
    ".cargo/config.toml",
];

/// Environment variables that change what cargo produces; their values are hashed into every
/// cargo task (never logged).
const CARGO_ENV_EXACT: [&str; 12] = [
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "RUSTC",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTDOC",
    "RUSTC_BOOTSTRAP",
    "CARGO_INCREMENTAL",
    // clippy's configuration directory and the rustfmt binary `cargo fmt` runs.
    "CLIPPY_CONF_DIR",
    "RUSTFMT",
];
const CARGO_ENV_PREFIXES: [&str; 4] = [
    "CARGO_PROFILE_",
    "CARGO_BUILD_",
    "CARGO_TARGET_",
    "CARGO_UNSTABLE_",
];
const CARGO_ENV_EXCLUDED: [&str; 4] = [
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_JOBS",
    "CARGO_BUILD_BUILD_DIR",
];

/// The toolchain facts a cargo task's hash depends on.
#[derive(Debug, Clone)]
pub struct Toolchain {
    /// Full `rustc -vV` output.
    pub rustc_version: String,
    pub host: String,
}

impl Toolchain {
    /// `rustc -vV` as run in the workspace root (so rustup honours `rust-toolchain.toml`),
    /// from the toolchain cache when nothing it depends on changed (see [`crate::fast`]).
    pub fn detect(
        fast: &crate::fast::FastPaths,
        workspace_root: &Path,
    ) -> anyhow::Result<Toolchain> {
        let rustc_version = crate::fast::rustc_version(fast, workspace_root)?;
        let host = rustc_version
            .lines()
            .find_map(|l| l.strip_prefix("host: "))
            .unwrap_or("unknown")
            .trim()
            .to_string();
        Ok(Toolchain {
            rustc_version,
            host,
        })
    }
}

/// Options that change what cargo tasks produce.
#[derive(Debug, Clone, Default)]
pub struct CargoSettings {
    pub release: bool,
    /// Cross-compile for this target with these flags (e.g. a static binary for an image);
    /// `None` builds for the host with the environment's `RUSTFLAGS`.
    pub target: Option<CargoTarget>,
}

/// An explicit `--target` and the `RUSTFLAGS` cargo runs with for it. Both are part of the
/// task hash: the triple as the key's target, the flags as the `RUSTFLAGS` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CargoTarget {
    /// The target triple, e.g. `x86_64-unknown-linux-gnu`.
    pub triple: String,
    /// The `RUSTFLAGS` value, e.g. `-C target-feature=+crt-static` (replaces the environment's).
    pub rustflags: String,
}

impl CargoSettings {
    pub fn profile(&self) -> &'static str {
        if self.release { "release" } else { "dev" }
    }

    /// The cargo command line a built-in task runs (without `-p` selections).
    pub fn command(&self, task: CargoTask) -> Vec<String> {
        let mut args: Vec<&str> = match task {
            CargoTask::Build => vec!["cargo", "build"],
            CargoTask::Test => vec!["cargo", "test"],
            CargoTask::Lint => vec!["cargo", "clippy", "--all-targets"],
            CargoTask::Fmt => vec!["cargo", "fmt", "--check"],
        };
        if self.release && task != CargoTask::Fmt {
            args.push("--release");
        }
        if let Some(target) = &self.target
            && task != CargoTask::Fmt
        {
            args.extend(["--target", target.triple.as_str()]);
        }
        if task == CargoTask::Lint {
            args.extend(["--", "-D", "warnings"]);
        }
        args.into_iter().map(String::from).collect()
    }
}

#[derive(Debug, Clone)]
pub struct PlannedTask {
    pub key: TaskKey,
    pub hash: String,
    /// The workspace packages a cargo task builds against (empty for custom tasks).
    pub closure: Vec<PackageIndex>,
}

/// The plan of a whole graph.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Indexed like `graph.nodes`.
    pub tasks: Vec<PlannedTask>,
    /// The input digests (workspace-relative path -> sha256) of every package that some cargo
    /// task builds against: what its source fingerprint covers.
    pub package_inputs: HashMap<PackageIndex, BTreeMap<String, String>>,
}

impl std::ops::Index<usize> for Plan {
    type Output = PlannedTask;
    fn index(&self, node: usize) -> &PlannedTask {
        &self.tasks[node]
    }
}

/// Which dependency edges a cargo task's hash follows (first hop).
fn cargo_dependency_kinds(task: CargoTask) -> &'static [DepKind] {
    match task {
        CargoTask::Build => &[DepKind::Normal, DepKind::Build],
        CargoTask::Test | CargoTask::Lint => &[DepKind::Normal, DepKind::Build, DepKind::Dev],
        CargoTask::Fmt => &[],
    }
}

type SpecKey = (PackageIndex, Vec<String>, Vec<String>);

fn spec_of(package: PackageIndex, def: &TaskDef) -> SpecKey {
    (package, def.inputs.clone(), def.outputs.clone())
}

/// Computes the key and hash of every node of `graph` (indexed like `graph.nodes`), in
/// stages: the lockfile and each cargo task's closure, the input files of each distinct
/// spec, their digests, the feature-unification context of each cargo call, then the keys,
/// dependencies first.
pub fn plan(
    workspace: &Workspace,
    graph: &TaskGraph,
    toolchain: Option<&Toolchain>,
    settings: &CargoSettings,
    fast: &crate::fast::FastPaths,
    threads: usize,
) -> anyhow::Result<Plan> {
    let threads = threads.max(available_cores());
    let lockfile = read_lockfile(workspace)?;
    let (specs, closures) = needed_specs(workspace, graph, lockfile.as_ref());
    let files_by_spec = walk_specs(workspace, fast, &specs, threads)?;
    let (digests, global_files) = hash_inputs(workspace, fast, &files_by_spec, threads)?;
    let mut planner = Planner {
        workspace,
        graph,
        toolchain,
        settings,
        lockfile,
        closures,
        files_by_spec,
        global_inputs: BTreeMap::new(),
        digests,
        external: HashMap::new(),
        fingerprints: HashMap::new(),
        unification: HashMap::new(),
        cargo_env: cargo_env(),
    };
    planner.global_inputs = planner.digests_of(&global_files);
    planner.unification = planner.unification_contexts()?;
    let mut config_files = ConfigFiles::new(workspace);
    let mut planned: Vec<Option<PlannedTask>> = vec![None; graph.nodes.len()];
    for &node in &graph.topological_order {
        planned[node] = Some(planner.task(node, &planned, &mut config_files));
    }
    // Every node is in the topological order, so every slot is filled.
    let tasks = planned
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .context("internal error: a task node was not planned")?;
    let package_inputs = planner
        .closures
        .values()
        .flatten()
        .map(|&p| (p, planner.package_inputs(p)))
        .collect();
    Ok(Plan {
        tasks,
        package_inputs,
    })
}

/// The lockfile, if the workspace has one.
fn read_lockfile(workspace: &Workspace) -> anyhow::Result<Option<Lockfile>> {
    let lock_path = workspace.root.join("Cargo.lock");
    match std::fs::read_to_string(&lock_path) {
        Ok(text) => Ok(Some(Lockfile::parse(&text, &lock_path)?)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => {
            Err(error).with_context(|| format!("failed to read `{}`", lock_path.display()))
        }
    }
}

/// Each cargo task's closure of workspace packages.
type Closures = HashMap<(PackageIndex, CargoTask), BTreeSet<PackageIndex>>;

/// The input specs the graph needs (its tasks', and the build spec of every package a cargo
/// task builds against), with each cargo task's closure.
fn needed_specs(
    workspace: &Workspace,
    graph: &TaskGraph,
    lockfile: Option<&Lockfile>,
) -> (BTreeSet<SpecKey>, Closures) {
    let mut specs: BTreeSet<SpecKey> = BTreeSet::new();
    let mut closures: Closures = HashMap::new();
    let mut reached_through_externals: HashMap<PackageIndex, Vec<PackageIndex>> = HashMap::new();
    for node in &graph.nodes {
        specs.insert(spec_of(node.package, &node.def));
        if let TaskKind::Cargo(task) = node.def.kind {
            let closure = cargo_closure(
                workspace,
                lockfile,
                node.package,
                task,
                &mut reached_through_externals,
            );
            for &dep in &closure {
                specs.insert(build_spec(workspace, dep));
            }
            closures.insert((node.package, task), closure);
        }
    }
    (specs, closures)
}

/// The spec of `package`'s build task (what a package that builds against it reads of it).
fn build_spec(workspace: &Workspace, package: PackageIndex) -> SpecKey {
    match workspace.packages[package].tasks.get(&TaskName::BUILD) {
        Some(def) => spec_of(package, def),
        None => (package, Vec::new(), Vec::new()),
    }
}

/// The input files of each spec: one walk per spec, on every core (each walk is sequential).
fn walk_specs(
    workspace: &Workspace,
    fast: &crate::fast::FastPaths,
    specs: &BTreeSet<SpecKey>,
    threads: usize,
) -> anyhow::Result<HashMap<SpecKey, Vec<InputFile>>> {
    let mut exclude_dirs_base: Vec<PathBuf> =
        vec![workspace.target_dir.clone(), workspace.cache_dir()];
    exclude_dirs_base.dedup();
    // Package directories sorted component-wise: the packages nested in one directory come
    // right after it, so finding them is a short scan, not a pass over every package.
    let mut sorted_dirs: Vec<&Path> = workspace.packages.iter().map(|p| p.dir.as_path()).collect();
    sorted_dirs.sort();
    let spec_list: Vec<&SpecKey> = specs.iter().collect();
    let walked = xtask_util::parallel_map(&spec_list, threads, |spec| {
        let package = &workspace.packages[spec.0];
        let mut exclude_dirs = exclude_dirs_base.clone();
        let start = sorted_dirs.partition_point(|dir| *dir <= package.dir.as_path());
        for other in &sorted_dirs[start..] {
            if !other.starts_with(&package.dir) {
                break;
            }
            exclude_dirs.push(other.to_path_buf());
        }
        fast.listing_cache()
            .discover(&InputSpec {
                workspace_root: &workspace.root,
                package_dir: &package.dir,
                include: &spec.1,
                exclude_globs: &spec.2,
                exclude_dirs: &exclude_dirs,
            })
            .with_context(|| format!("failed to list the inputs of package `{}`", package.name))
    });
    let mut files_by_spec = HashMap::new();
    for (spec, files) in spec_list.into_iter().zip(walked) {
        files_by_spec.insert(spec.clone(), files?);
    }
    Ok(files_by_spec)
}

/// Every distinct file's digest (the spec files' and the global inputs'), hashed once, in
/// parallel; with the global input files.
fn hash_inputs(
    workspace: &Workspace,
    fast: &crate::fast::FastPaths,
    files_by_spec: &HashMap<SpecKey, Vec<InputFile>>,
    threads: usize,
) -> anyhow::Result<(HashMap<String, String>, Vec<InputFile>)> {
    let mut global_globs: Vec<String> = BUILTIN_GLOBAL_INPUTS
        .iter()
        .map(|s| s.to_string())
        .collect();
    global_globs.extend(workspace.config.global_inputs.iter().cloned());
    let global_files = discover_global_inputs(&workspace.root, &global_globs)
        .context("failed to list the global inputs")?;
    let mut unique: BTreeMap<String, InputFile> = BTreeMap::new();
    for file in files_by_spec.values().flatten().chain(global_files.iter()) {
        unique
            .entry(file.relative_path.clone())
            .or_insert_with(|| file.clone());
    }
    let unique: Vec<InputFile> = unique.into_values().collect();
    // Unchanged files come from the stat cache; the rest are read on every core.
    let (digests, _counts) = fast
        .stat_cache
        .hash_files(&unique, threads)
        .context("failed to hash the inputs")?;
    // A failed write only loses the speed-up of the next run.
    let _ = fast.save();
    Ok((digests.into_iter().collect(), global_files))
}

/// What the key stage needs, computed once.
struct Planner<'a> {
    workspace: &'a Workspace,
    graph: &'a TaskGraph,
    toolchain: Option<&'a Toolchain>,
    settings: &'a CargoSettings,
    lockfile: Option<Lockfile>,
    closures: Closures,
    files_by_spec: HashMap<SpecKey, Vec<InputFile>>,
    digests: HashMap<String, String>,
    global_inputs: BTreeMap<String, String>,
    /// Memoised per package: its external closure from the lockfile.
    external: HashMap<PackageIndex, Vec<LockedPackage>>,
    /// Memoised per package: its source fingerprint.
    fingerprints: HashMap<PackageIndex, String>,
    /// Per cargo task: the feature-unification context of its one cargo call.
    unification: HashMap<CargoTask, String>,
    cargo_env: Vec<(String, String)>,
}

/// The parts of a key that depend on the kind of task.
struct KindParts {
    kind: String,
    command: Vec<String>,
    workspace_dependencies: BTreeMap<String, String>,
    external_dependencies: Vec<LockedPackage>,
    toolchain: Option<ToolchainKey>,
}

impl Planner<'_> {
    fn digests_of(&self, files: &[InputFile]) -> BTreeMap<String, String> {
        files
            .iter()
            .filter_map(|f| {
                self.digests
                    .get(&f.relative_path)
                    .map(|d| (f.relative_path.clone(), d.clone()))
            })
            .collect()
    }

    fn package_inputs(&self, package: PackageIndex) -> BTreeMap<String, String> {
        self.digests_of(&self.files_by_spec[&build_spec(self.workspace, package)])
    }

    fn external_of(&mut self, package: PackageIndex) -> Vec<LockedPackage> {
        let (workspace, lockfile) = (self.workspace, &self.lockfile);
        self.external
            .entry(package)
            .or_insert_with(|| {
                let p = &workspace.packages[package];
                lockfile
                    .as_ref()
                    .map(|l| l.external_closure(&p.name, &p.version))
                    .unwrap_or_default()
            })
            .clone()
    }

    fn fingerprint_of(&mut self, package: PackageIndex) -> String {
        if let Some(known) = self.fingerprints.get(&package) {
            return known.clone();
        }
        let inputs = self.package_inputs(package);
        let fingerprint = source_fingerprint(&inputs, &self.external_of(package));
        self.fingerprints.insert(package, fingerprint.clone());
        fingerprint
    }

    /// The feature-unification context of each cargo task's one invocation: the selection,
    /// the manifests of every package it reaches and their external dependencies.
    fn unification_contexts(&mut self) -> anyhow::Result<HashMap<CargoTask, String>> {
        let mut unification = HashMap::new();
        for task in [CargoTask::Build, CargoTask::Test, CargoTask::Lint] {
            let selection = cargo_selection(self.graph, task);
            if selection.is_empty() {
                continue;
            }
            let mut reached: BTreeSet<PackageIndex> = selection.iter().copied().collect();
            for &package in &selection {
                reached.extend(self.closures[&(package, task)].iter().copied());
            }
            let manifests: BTreeMap<&str, Option<&String>> = reached
                .iter()
                .map(|&p| {
                    let package = &self.workspace.packages[p];
                    let manifest = manifest_relative_path(&package.relative_dir);
                    (package.name.as_str(), self.digests.get(&manifest))
                })
                .collect();
            let mut external: BTreeSet<LockedPackage> = BTreeSet::new();
            for &package in &selection {
                let p = &self.workspace.packages[package];
                if let Some(lockfile) = &self.lockfile {
                    external.extend(lockfile.external_closure(&p.name, &p.version));
                }
            }
            let names: Vec<&str> = selection
                .iter()
                .map(|&p| self.workspace.packages[p].name.as_str())
                .collect();
            let encoded = serde_json::to_vec(&(names, manifests, external))
                .context("internal error: failed to encode a selection")?;
            unification.insert(
                task,
                format!("unified:{}", xtask_util::sha256_hex(&encoded)),
            );
        }
        Ok(unification)
    }

    /// The key and hash of `node`, whose dependencies are planned.
    fn task(
        &mut self,
        node_index: usize,
        planned: &[Option<PlannedTask>],
        config_files: &mut ConfigFiles<'_>,
    ) -> PlannedTask {
        let (workspace, graph) = (self.workspace, self.graph);
        let node = &graph.nodes[node_index];
        let package = &workspace.packages[node.package];
        let inputs = self.digests_of(&self.files_by_spec[&spec_of(node.package, &node.def)]);
        let task_dependencies = node
            .dependencies
            .iter()
            .map(|&dep| {
                let hash = planned[dep]
                    .as_ref()
                    .map(|p| p.hash.clone())
                    .unwrap_or_default();
                (graph.label(workspace, dep), hash)
            })
            .collect();
        let mut env = self.declared_env(&node.def);
        let parts = match &node.def.kind {
            TaskKind::Custom { program, args } => custom_parts(program, args),
            TaskKind::Cargo(task) => self.cargo_parts(node.package, *task, &mut env),
        };
        let mut global_inputs = self.global_inputs.clone();
        let mut closure = Vec::new();
        if let TaskKind::Cargo(task) = node.def.kind {
            global_inputs.extend(config_files.inputs_of(package, task));
            closure = self
                .closures
                .get(&(node.package, task))
                .map(|c| c.iter().copied().collect())
                .unwrap_or_default();
        }
        let key = TaskKey {
            schema: KEY_SCHEMA,
            tool_version: TOOL_VERSION.to_string(),
            package: package.name.clone(),
            package_dir: package.relative_dir.clone(),
            task: node.task.to_string(),
            definition: TaskDefinitionKey {
                kind: parts.kind,
                command: parts.command,
                inputs: node.def.inputs.clone(),
                outputs: node.def.outputs.clone(),
                env: node.def.env.clone(),
                depends_on: node.def.depends_on.iter().map(|d| d.to_string()).collect(),
            },
            inputs,
            global_inputs,
            task_dependencies,
            workspace_dependencies: parts.workspace_dependencies,
            external_dependencies: parts.external_dependencies,
            toolchain: parts.toolchain,
            env,
        };
        let hash = key.hash();
        PlannedTask { key, hash, closure }
    }

    /// The workspace's and the task's declared variables, by digest of their values.
    fn declared_env(&self, def: &TaskDef) -> BTreeMap<String, Option<String>> {
        let mut names: BTreeSet<&str> = self
            .workspace
            .config
            .env
            .iter()
            .map(String::as_str)
            .collect();
        names.extend(def.env.iter().map(String::as_str));
        names
            .into_iter()
            .map(|n| {
                (
                    n.to_string(),
                    std::env::var(n).ok().map(|v| env_value_digest(&v)),
                )
            })
            .collect()
    }

    /// A cargo task's part of the key; adds the variables that change cargo's output to `env`.
    fn cargo_parts(
        &mut self,
        package: PackageIndex,
        task: CargoTask,
        env: &mut BTreeMap<String, Option<String>>,
    ) -> KindParts {
        let settings = self.settings;
        for (name, value) in &self.cargo_env {
            env.insert(name.clone(), Some(env_value_digest(value)));
        }
        if let Some(target) = &settings.target
            && task != CargoTask::Fmt
        {
            // The flags cargo will really see (see `cargo::compile`).
            env.remove("CARGO_ENCODED_RUSTFLAGS");
            env.insert(
                "RUSTFLAGS".to_string(),
                Some(env_value_digest(&target.rustflags)),
            );
        }
        let closure: Vec<PackageIndex> = self
            .closures
            .get(&(package, task))
            .into_iter()
            .flatten()
            .copied()
            .collect();
        let mut workspace_dependencies = BTreeMap::new();
        for dep in closure {
            let fingerprint = self.fingerprint_of(dep);
            workspace_dependencies.insert(self.workspace.packages[dep].name.clone(), fingerprint);
        }
        let external_dependencies = if task == CargoTask::Fmt {
            Vec::new()
        } else {
            self.external_of(package)
        };
        let toolchain = self.toolchain.map(|t| ToolchainKey {
            rustc_version: t.rustc_version.clone(),
            target: match (&settings.target, task) {
                (Some(target), task) if task != CargoTask::Fmt => target.triple.clone(),
                _ => t.host.clone(),
            },
            profile: if task == CargoTask::Fmt {
                String::new()
            } else {
                settings.profile().to_string()
            },
            features: self.unification.get(&task).cloned().into_iter().collect(),
            cargo_args: Vec::new(),
        });
        KindParts {
            kind: format!("cargo-{}", task.name()),
            command: settings.command(task),
            workspace_dependencies,
            external_dependencies,
            toolchain,
        }
    }
}

/// A custom task's part of the key: its command line.
fn custom_parts(program: &str, args: &[String]) -> KindParts {
    let mut command = vec![program.to_string()];
    command.extend(args.iter().cloned());
    KindParts {
        kind: "custom".to_string(),
        command,
        workspace_dependencies: BTreeMap::new(),
        external_dependencies: Vec::new(),
        toolchain: None,
    }
}

/// The workspace packages a cargo task of `package` builds against: the model's edges of the
/// task's kinds, plus the members the lockfile shows reached through an external package
/// (a member `[patch]`ed in for a crate that a registry dependency uses), to a fixpoint.
fn cargo_closure(
    workspace: &Workspace,
    lockfile: Option<&Lockfile>,
    package: PackageIndex,
    task: CargoTask,
    memo: &mut HashMap<PackageIndex, Vec<PackageIndex>>,
) -> BTreeSet<PackageIndex> {
    let kinds = cargo_dependency_kinds(task);
    let mut closure = dependency_closure(workspace, package, kinds);
    let (Some(lockfile), true) = (lockfile, task != CargoTask::Fmt) else {
        return closure;
    };
    let mut pending: Vec<PackageIndex> = std::iter::once(package)
        .chain(closure.iter().copied())
        .collect();
    let mut walked: BTreeSet<PackageIndex> = BTreeSet::new();
    while let Some(from) = pending.pop() {
        if !walked.insert(from) {
            continue;
        }
        let reached_from = memo.entry(from).or_insert_with(|| {
            let p = &workspace.packages[from];
            lockfile
                .path_packages_reached_through_externals(&p.name, &p.version)
                .into_iter()
                .filter_map(|(name, version)| {
                    workspace
                        .package_index(&name)
                        .filter(|&i| workspace.packages[i].version == version)
                })
                .collect()
        });
        for reached in reached_from.clone() {
            if reached != package && closure.insert(reached) {
                pending.push(reached);
                for dependency in dependency_closure(workspace, reached, kinds) {
                    if dependency != package && closure.insert(dependency) {
                        pending.push(dependency);
                    }
                }
            }
        }
    }
    closure
}

/// The packages one cargo invocation of `task` selects: every node of that task, sorted.
pub fn cargo_selection(graph: &TaskGraph, task: CargoTask) -> Vec<PackageIndex> {
    let mut selection: Vec<PackageIndex> = graph
        .nodes
        .iter()
        .filter(|n| n.def.kind == TaskKind::Cargo(task))
        .map(|n| n.package)
        .collect();
    selection.sort_unstable();
    selection.dedup();
    selection
}

fn manifest_relative_path(package_dir: &str) -> String {
    if package_dir.is_empty() {
        "Cargo.toml".to_string()
    } else {
        format!("{package_dir}/Cargo.toml")
    }
}

/// The configuration files a cargo task's tools read from outside the package's inputs:
/// cargo's configs from the workspace root up and in `$CARGO_HOME`, clippy's (lint) and
/// rustfmt's (fmt) from the package directory up. Keyed by portable path (relative to the
/// workspace root, `$CARGO_HOME/...`, `$HOME/...`), digested by content; missing files are
/// absent. Directory lookups are memoised for the whole plan.
struct ConfigFiles<'a> {
    workspace: &'a Workspace,
    found: HashMap<PathBuf, Vec<(String, String)>>,
    cargo: BTreeMap<String, String>,
}

const CARGO_CONFIG_NAMES: [&str; 2] = [".cargo/config", ".cargo/config.toml"];
const CLIPPY_CONFIG_NAMES: [&str; 2] = ["clippy.toml", ".clippy.toml"];
const RUSTFMT_CONFIG_NAMES: [&str; 2] = ["rustfmt.toml", ".rustfmt.toml"];

impl<'a> ConfigFiles<'a> {
    fn new(workspace: &'a Workspace) -> ConfigFiles<'a> {
        let mut cargo = BTreeMap::new();
        for dir in workspace.root.ancestors().skip(1) {
            for name in CARGO_CONFIG_NAMES {
                insert_existing(&mut cargo, &workspace.root, &dir.join(name), None);
            }
        }
        if let Some(cargo_home) = crate::fast::cargo_home() {
            for name in ["config", "config.toml"] {
                insert_existing(
                    &mut cargo,
                    &workspace.root,
                    &cargo_home.join(name),
                    Some(format!("$CARGO_HOME/{name}")),
                );
            }
        }
        ConfigFiles {
            workspace,
            found: HashMap::new(),
            cargo,
        }
    }

    fn inputs_of(
        &mut self,
        package: &xtask_model::Package,
        task: CargoTask,
    ) -> BTreeMap<String, String> {
        let mut inputs = self.cargo.clone();
        let names: &[&str] = match task {
            CargoTask::Lint => &CLIPPY_CONFIG_NAMES,
            CargoTask::Fmt => &RUSTFMT_CONFIG_NAMES,
            CargoTask::Build | CargoTask::Test => return inputs,
        };
        for dir in package.dir.ancestors() {
            let root = &self.workspace.root;
            let files = self.found.entry(dir.join(names[0])).or_insert_with(|| {
                let mut found = BTreeMap::new();
                for name in names {
                    insert_existing(&mut found, root, &dir.join(name), None);
                }
                found.into_iter().collect()
            });
            inputs.extend(files.iter().cloned());
        }
        if task == CargoTask::Fmt
            && let Some(home) = std::env::var_os("HOME").map(PathBuf::from)
        {
            for name in RUSTFMT_CONFIG_NAMES {
                let path = home.join(".config/rustfmt").join(name);
                insert_existing(
                    &mut inputs,
                    &self.workspace.root,
                    &path,
                    Some(format!("$HOME/.config/rustfmt/{name}")),
                );
            }
        }
        inputs
    }
}

fn insert_existing(
    into: &mut BTreeMap<String, String>,
    workspace_root: &Path,
    path: &Path,
    name: Option<String>,
) {
    if path.is_file() {
        let name = name.unwrap_or_else(|| xtask_hash::portable_path(workspace_root, path));
        into.insert(name, xtask_hash::observed_digest(path));
    }
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The cargo-relevant environment variables that are set, sorted.
fn cargo_env() -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = std::env::vars()
        .filter(|(name, _)| {
            !CARGO_ENV_EXCLUDED.contains(&name.as_str())
                && (CARGO_ENV_EXACT.contains(&name.as_str())
                    || CARGO_ENV_PREFIXES.iter().any(|p| name.starts_with(p)))
        })
        .collect();
    vars.sort();
    vars
}

/// Is a workspace-relative path a global input (affects every package)?
pub fn is_global_input(workspace: &Workspace, path: &str) -> bool {
    if BUILTIN_GLOBAL_INPUTS.contains(&path) || path == "Cargo.lock" {
        return true;
    }
    workspace.config.global_inputs.iter().any(|glob| {
        globset::Glob::new(glob)
            .map(|g| g.compile_matcher().is_match(path))
            .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_target_reaches_the_command_line_except_for_fmt() {
        let settings = CargoSettings {
            release: true,
            target: Some(CargoTarget {
                triple: "x86_64-unknown-linux-gnu".into(),
                rustflags: "-C target-feature=+crt-static".into(),
            }),
        };
        assert_eq!(
            settings.command(CargoTask::Build).join(" "),
            "cargo build --release --target x86_64-unknown-linux-gnu"
        );
        assert_eq!(
            settings.command(CargoTask::Fmt).join(" "),
            "cargo fmt --check"
        );
        assert_eq!(
            CargoSettings::default().command(CargoTask::Build).join(" "),
            "cargo build"
        );
    }
}

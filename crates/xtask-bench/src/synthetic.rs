//! Synthetic workspaces for benchmarks, generated here (no script outside the repository): a
//! Cargo workspace of N crates that is also an npm workspace and a Turborepo repository, whose
//! turbo `build` task is [`TASK_SCRIPT`] and whose root manifest declares the same task for
//! xtask ([`TASK_NAME`]), so both tools do identical work: same command, same inputs, same
//! outputs, same `^` dependencies.
//!
//! Layout (`DIR`):
//!
//! ```text
//! DIR/Cargo.toml                [workspace] members = ["crates/*"], the xtask task
//! DIR/Cargo.lock                path dependencies only (written here, cargo accepts it --locked)
//! DIR/package.json              npm workspaces ["crates/*"], packageManager npm@X
//! DIR/package-lock.json         lockfile v3, workspace links only
//! DIR/turbo.json                build: dependsOn ["^build"], outputs ["out/**"]
//! DIR/.gitignore                target/, node_modules/, out/, .turbo/
//! DIR/crates/cNNNN/Cargo.toml   path dependencies on crates of lower layers
//! DIR/crates/cNNNN/package.json name cNNNN, dependencies {"cMMMM": "*"}, the build script
//! DIR/crates/cNNNN/src/lib.rs   the modules and a checksum() that calls its dependencies
//! DIR/crates/cNNNN/src/mJJ.rs   `files_per_crate` modules of about `bytes_per_file` bytes
//! ```
//!
//! The dependency graph is layered: the crates are split into `layers` layers of (nearly)
//! equal width, in order; a crate of layer k > 0 depends on 1..=`max_deps` distinct crates of
//! lower layers, the first always of layer k - 1, so the graph has real depth. Everything is
//! a function of the [`Shape`] (a seeded generator, fixed git author and dates): two trees of
//! the same shape are identical, down to the commit id. [`tree_files`] is pure; [`write_tree`]
//! writes its files and commits them with git (turbo takes committed files' hashes from
//! git's index, as in a real repository).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use xtask_util::{GOLDEN_GAMMA, SplitMix64};

use anyhow::{Context, bail};

/// The per-package task of the generated trees (the npm `build` script turbo runs).
pub const TASK_SCRIPT: &str = "mkdir -p out && cat src/*.rs | wc -c > out/size.txt";
/// The name of the equivalent xtask custom task (`cargo xtask run size`).
pub const TASK_NAME: &str = "size";
/// Bumped whenever the generated tree changes, so cached trees are regenerated.
const GENERATOR_VERSION: u32 = 3;
/// Fixed author, committer and dates: the same shape gives the same commit.
const GIT_ENV: [(&str, &str); 6] = [
    ("GIT_AUTHOR_NAME", "bench"),
    ("GIT_AUTHOR_EMAIL", "bench@example.invalid"),
    ("GIT_COMMITTER_NAME", "bench"),
    ("GIT_COMMITTER_EMAIL", "bench@example.invalid"),
    ("GIT_AUTHOR_DATE", "2026-11-22T00:00:00Z"),
    ("GIT_COMMITTER_DATE", "2026-11-22T00:00:00Z"),
];

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub crates: usize,
    /// Modules per crate besides `lib.rs`.
    pub files_per_crate: usize,
    /// Approximate size of each module.
    pub bytes_per_file: usize,
    /// Layers of the dependency graph (at most `crates`).
    pub layers: usize,
    /// At most this many dependencies per crate.
    pub max_deps: usize,
    pub seed: u64,
    /// The root `package.json`'s `packageManager` (turbo requires it), e.g. `npm@11.19.1`.
    pub package_manager: String,
}

impl Shape {
    /// The standard tree of the benchmarks: 5 modules of about 2000 bytes per crate, 10
    /// layers, up to 3 dependencies per crate, seed 1.
    pub fn standard(crates: usize) -> Shape {
        Shape {
            crates,
            files_per_crate: 5,
            bytes_per_file: 2000,
            layers: 10,
            max_deps: 3,
            seed: 1,
            package_manager: DEFAULT_PACKAGE_MANAGER.to_string(),
        }
    }

    /// The same shape with `packageManager` set to `package_manager`.
    pub fn with_package_manager(mut self, package_manager: String) -> Shape {
        self.package_manager = package_manager;
        self
    }

    fn dir_name(&self) -> String {
        format!(
            "n{}-f{}-b{}-l{}-d{}-s{}",
            self.crates,
            self.files_per_crate,
            self.bytes_per_file,
            self.layers,
            self.max_deps,
            self.seed
        )
    }

    /// The record that says a tree of this shape is complete (any change regenerates it).
    fn fingerprint(&self) -> String {
        format!("synthetic tree v{GENERATOR_VERSION}\n{self:?}\n")
    }
}

/// The `packageManager` used when none is detected.
pub const DEFAULT_PACKAGE_MANAGER: &str = "npm@10.9.2";

/// The crates' dependencies: `deps[i]` are the crates `i` depends on (sorted, all lower).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    pub layer_of: Vec<usize>,
    pub deps: Vec<Vec<usize>>,
}

/// Facts about a tree that the benchmarks need (the probe files of the "change one crate"
/// scenarios), computed from its shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFacts {
    /// A module of the highest-numbered crate nothing depends on (`crates/cNNNN/src/m00.rs`).
    pub leaf_file: String,
    /// A module of the crate with the most transitive dependents.
    pub root_file: String,
    /// How many crates depend on the root probe, directly or not.
    pub root_dependents: usize,
    pub edges: usize,
    pub rust_files: usize,
    pub rust_bytes: usize,
}

/// A generated tree.
#[derive(Debug, Clone)]
pub struct Tree {
    pub root: PathBuf,
    pub facts: TreeFacts,
}

/// The name of crate `index` (`c0042`).
pub fn crate_name(index: usize) -> String {
    format!("c{index:04}")
}

/// The layered dependency graph of `shape` (pure, seeded).
pub fn dependency_graph(shape: &Shape) -> Graph {
    let n = shape.crates;
    let layers = shape.layers.clamp(1, n.max(1));
    let width = n.div_ceil(layers).max(1);
    let layer_of: Vec<usize> = (0..n).map(|i| i / width).collect();
    let mut rng = SplitMix64::new(shape.seed);
    let mut deps = Vec::with_capacity(n);
    for &layer in &layer_of {
        if layer == 0 {
            deps.push(Vec::new());
            continue;
        }
        // Crates of the previous layer, and of every lower layer (all below `i`).
        let previous = (layer - 1) * width..layer * width;
        let lower = 0..layer * width;
        let want = 1 + rng.index(shape.max_deps.max(1));
        let mut chosen = std::collections::BTreeSet::new();
        chosen.insert(previous.start + rng.index(previous.len()));
        while chosen.len() < want.min(lower.len()) {
            let pool = if rng.index(2) == 0 {
                previous.clone()
            } else {
                lower.clone()
            };
            chosen.insert(pool.start + rng.index(pool.len()));
        }
        deps.push(chosen.into_iter().collect());
    }
    Graph { layer_of, deps }
}

/// Every file of the tree of `shape`, by path relative to its root (pure), and its facts.
pub fn tree_files(shape: &Shape) -> (BTreeMap<String, String>, TreeFacts) {
    let graph = dependency_graph(shape);
    let names: Vec<String> = (0..shape.crates).map(crate_name).collect();
    let mut files = BTreeMap::new();
    files.insert("Cargo.toml".to_string(), root_manifest());
    files.insert("Cargo.lock".to_string(), cargo_lock(&names, &graph));
    files.insert("package.json".to_string(), root_package_json(shape));
    files.insert(
        "package-lock.json".to_string(),
        package_lock(&names, &graph),
    );
    files.insert("turbo.json".to_string(), TURBO_JSON.to_string());
    files.insert(
        ".gitignore".to_string(),
        "target/\nnode_modules/\nout/\n.turbo/\n".to_string(),
    );
    let mut rust_files = 0;
    let mut rust_bytes = 0;
    for (index, name) in names.iter().enumerate() {
        let deps = &graph.deps[index];
        let dir = format!("crates/{name}");
        let mut rng = SplitMix64::new(shape.seed ^ (index as u64 + 1).wrapping_mul(GOLDEN_GAMMA));
        files.insert(
            format!("{dir}/Cargo.toml"),
            crate_manifest(name, deps, &names),
        );
        files.insert(
            format!("{dir}/package.json"),
            crate_package_json(name, deps, &names),
        );
        let lib = lib_rs(name, graph.layer_of[index], shape, deps, &names, &mut rng);
        rust_files += 1;
        rust_bytes += lib.len();
        files.insert(format!("{dir}/src/lib.rs"), lib);
        for module in 0..shape.files_per_crate {
            let text = data_module(name, module, shape.bytes_per_file, &mut rng);
            rust_files += 1;
            rust_bytes += text.len();
            files.insert(format!("{dir}/src/m{module:02}.rs"), text);
        }
    }
    let facts = facts(shape, &graph, rust_files, rust_bytes);
    (files, facts)
}

/// Writes the tree of `shape` into `dir` (which must not exist) and, with `git`, commits it
/// on a new `main` branch.
pub fn write_tree(dir: &Path, shape: &Shape, git: bool) -> anyhow::Result<TreeFacts> {
    if shape.crates == 0 {
        bail!("a synthetic tree needs at least one crate");
    }
    if dir.exists() {
        bail!("`{}` already exists", dir.display());
    }
    let (files, facts) = tree_files(shape);
    for (relative, content) in &files {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("failed to create `{}`", parent.display()))?;
        }
        std::fs::write(&path, content)
            .with_context(|| format!("failed to write `{}`", path.display()))?;
    }
    if git {
        run_git(dir, &["init", "-q", "-b", "main"])?;
        commit_all(dir, "synthetic monorepo")?;
    }
    Ok(facts)
}

/// The crates.io packages `bench ci --synthetic` adds to every crate: a small closure with
/// build scripts (`anyhow`, `serde_core`), proc-macro-free, that building this repository
/// downloaded on any machine.
pub const REGISTRY_DEPENDENCIES: [&str; 3] = ["anyhow", "serde_json", "sha2"];

/// Adds the crates.io packages `names` to every crate of the tree at `dir` (written by
/// [`write_tree`] for `shape`, with git), each pinned to the version of `lockfile` (a
/// `Cargo.lock` that holds them, so cargo finds them offline), then writes `Cargo.lock` with
/// `cargo generate-lockfile --offline` and commits.
pub fn add_registry_dependencies(
    dir: &Path,
    shape: &Shape,
    names: &[&str],
    lockfile: &Path,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(lockfile)
        .with_context(|| format!("failed to read `{}`", lockfile.display()))?;
    let lock = xtask_hash::Lockfile::parse(&text, lockfile)?;
    let mut lines = String::new();
    for name in names {
        let version = lock
            .versions(name)
            .first()
            .copied()
            .with_context(|| format!("`{name}` is not in `{}`", lockfile.display()))?;
        let _ = writeln!(lines, "{name} = \"={version}\"");
    }
    for index in 0..shape.crates {
        let manifest = dir.join(format!("crates/{}/Cargo.toml", crate_name(index)));
        let mut text = std::fs::read_to_string(&manifest)
            .with_context(|| format!("failed to read `{}`", manifest.display()))?;
        text.push_str(&lines);
        std::fs::write(&manifest, text)
            .with_context(|| format!("failed to write `{}`", manifest.display()))?;
    }
    let output = crate::tools::cargo_command()
        .args(["generate-lockfile", "--offline"])
        .current_dir(dir)
        .output()
        .context("failed to start cargo")?;
    if !output.status.success() {
        bail!(
            "`cargo generate-lockfile --offline` failed in `{}`:\n{}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    commit_all(dir, "crates.io dependencies")
}

/// Commits every file of the tree at `dir` (fixed author and dates: [`GIT_ENV`]).
fn commit_all(dir: &Path, message: &str) -> anyhow::Result<()> {
    run_git(dir, &["add", "-A"])?;
    run_git(
        dir,
        &["-c", "commit.gpgsign=false", "commit", "-q", "-m", message],
    )
}

/// The tree of `shape` under `parent`, generated (with git) unless a complete one is there:
/// a tree is complete when the record beside it (`DIR.complete`) names the same shape and
/// generator version.
pub fn generate(parent: &Path, shape: &Shape) -> anyhow::Result<Tree> {
    let root = parent.join(shape.dir_name());
    let record = parent.join(format!("{}.complete", shape.dir_name()));
    let fingerprint = shape.fingerprint();
    let facts = facts_of(shape);
    if root.is_dir()
        && std::fs::read_to_string(&record).is_ok_and(|recorded| recorded == fingerprint)
    {
        return Ok(Tree { root, facts });
    }
    std::fs::create_dir_all(parent)
        .with_context(|| format!("failed to create `{}`", parent.display()))?;
    remove_if_exists(&record)?;
    if root.exists() {
        std::fs::remove_dir_all(&root)
            .with_context(|| format!("failed to remove `{}`", root.display()))?;
    }
    write_tree(&root, shape, true)?;
    std::fs::write(&record, fingerprint)
        .with_context(|| format!("failed to write `{}`", record.display()))?;
    Ok(Tree { root, facts })
}

/// The `packageManager` of the installed npm (`npm@X.Y.Z`), turbo's package manager here.
pub fn detect_package_manager(npm: &Path) -> anyhow::Result<String> {
    let output = Command::new(npm)
        .arg("--version")
        .output()
        .with_context(|| format!("failed to run `{} --version`", npm.display()))?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || version.is_empty() {
        bail!(
            "`{} --version` failed ({}): {}",
            npm.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(format!("npm@{version}"))
}

/// The facts of a tree (sizes need the files' text: generated in memory, a few milliseconds).
fn facts_of(shape: &Shape) -> TreeFacts {
    tree_files(shape).1
}

fn facts(shape: &Shape, graph: &Graph, rust_files: usize, rust_bytes: usize) -> TreeFacts {
    let n = shape.crates;
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (index, deps) in graph.deps.iter().enumerate() {
        for &dep in deps {
            dependents[dep].push(index);
        }
    }
    let transitive = |start: usize| -> usize {
        let mut seen = vec![false; n];
        let mut stack = vec![start];
        let mut count = 0;
        while let Some(at) = stack.pop() {
            for &next in &dependents[at] {
                if !seen[next] {
                    seen[next] = true;
                    count += 1;
                    stack.push(next);
                }
            }
        }
        count
    };
    let counts: Vec<usize> = (0..n).map(transitive).collect();
    let leaf = (0..n)
        .rev()
        .find(|&i| dependents[i].is_empty())
        .unwrap_or(0);
    // The most transitive dependents; the lowest index among equals.
    let root = (0..n)
        .max_by_key(|&i| (counts[i], std::cmp::Reverse(i)))
        .unwrap_or(0);
    let probe = |index: usize| {
        let module = if shape.files_per_crate > 0 {
            "m00.rs"
        } else {
            "lib.rs"
        };
        format!("crates/{}/src/{module}", crate_name(index))
    };
    TreeFacts {
        leaf_file: probe(leaf),
        root_file: probe(root),
        root_dependents: counts[root],
        edges: graph.deps.iter().map(Vec::len).sum(),
        rust_files,
        rust_bytes,
    }
}

fn run_git(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .envs(GIT_ENV)
        .output()
        .with_context(|| format!("failed to run `git {}`", args.join(" ")))?;
    if !output.status.success() {
        bail!(
            "`git {}` failed in `{}` ({}): {}",
            args.join(" "),
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn remove_if_exists(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error).with_context(|| format!("failed to remove `{}`", path.display())),
    }
}

const TURBO_JSON: &str = r#"{
  "$schema": "https://turborepo.com/schema.json",
  "tasks": {
    "build": {
      "dependsOn": [
        "^build"
      ],
      "outputs": [
        "out/**"
      ]
    }
  }
}
"#;

/// The root manifest, with the xtask twin of turbo's `build`. Its inputs are the default,
/// every file of the package git does not ignore (outputs excluded), which is exactly what
/// turbo hashes by default; the root `Cargo.toml`, like `turbo.json` and the root
/// `package.json`, is a global input.
fn root_manifest() -> String {
    format!(
        "# Generated by `xtask-bench` (synthetic workspace)\n\
         [workspace]\n\
         resolver = \"2\"\n\
         members = [\"crates/*\"]\n\
         \n\
         [workspace.package]\n\
         version = \"0.1.0\"\n\
         edition = \"2021\"\n\
         \n\
         [workspace.metadata.xtask.tasks.{TASK_NAME}]\n\
         command = [\"sh\", \"-c\", {TASK_SCRIPT:?}]\n\
         outputs = [\"out/**\"]\n\
         depends_on = [\"^{TASK_NAME}\"]\n"
    )
}

/// `Cargo.lock` version 4 as cargo writes it: packages sorted by name, no sources.
fn cargo_lock(names: &[String], graph: &Graph) -> String {
    let mut out = String::from(
        "# This file is automatically @generated by Cargo.\n\
         # It is not intended for manual editing.\n\
         version = 4\n",
    );
    for (index, name) in names.iter().enumerate() {
        let _ = write!(
            out,
            "\n[[package]]\nname = \"{name}\"\nversion = \"0.1.0\"\n"
        );
        let deps = &graph.deps[index];
        if !deps.is_empty() {
            out.push_str("dependencies = [\n");
            for &dep in deps {
                let _ = writeln!(out, " \"{}\",", names[dep]);
            }
            out.push_str("]\n");
        }
    }
    out
}

fn root_package_json(shape: &Shape) -> String {
    json_text(&serde_json::json!({
        "name": "synthetic-monorepo",
        "version": "0.0.0",
        "private": true,
        "workspaces": ["crates/*"],
        "packageManager": shape.package_manager,
    }))
}

/// npm's lockfile v3 for workspace links only, as `npm install` writes it.
fn package_lock(names: &[String], graph: &Graph) -> String {
    let mut packages = serde_json::Map::new();
    packages.insert(
        String::new(),
        serde_json::json!({
            "name": "synthetic-monorepo",
            "version": "0.0.0",
            "workspaces": ["crates/*"],
        }),
    );
    for (index, name) in names.iter().enumerate() {
        let mut entry = serde_json::Map::new();
        entry.insert("version".into(), "0.1.0".into());
        if !graph.deps[index].is_empty() {
            entry.insert(
                "dependencies".into(),
                npm_dependencies(&graph.deps[index], names),
            );
        }
        packages.insert(format!("crates/{name}"), entry.into());
    }
    for name in names {
        packages.insert(
            format!("node_modules/{name}"),
            serde_json::json!({ "resolved": format!("crates/{name}"), "link": true }),
        );
    }
    json_text(&serde_json::json!({
        "name": "synthetic-monorepo",
        "version": "0.0.0",
        "lockfileVersion": 3,
        "requires": true,
        "packages": packages,
    }))
}

fn crate_manifest(name: &str, deps: &[usize], names: &[String]) -> String {
    let mut out = format!(
        "[package]\nname = \"{name}\"\nversion.workspace = true\nedition.workspace = true\n\
         publish = false\n\n[dependencies]\n"
    );
    for &dep in deps {
        let _ = writeln!(out, "{0} = {{ path = \"../{0}\" }}", names[dep]);
    }
    out
}

fn crate_package_json(name: &str, deps: &[usize], names: &[String]) -> String {
    let mut package = serde_json::json!({
        "name": name,
        "version": "0.1.0",
        "private": true,
        "scripts": { "build": TASK_SCRIPT },
    });
    if !deps.is_empty() {
        package["dependencies"] = npm_dependencies(deps, names);
    }
    json_text(&package)
}

fn npm_dependencies(deps: &[usize], names: &[String]) -> serde_json::Value {
    deps.iter()
        .map(|&dep| (names[dep].clone(), serde_json::Value::from("*")))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn lib_rs(
    name: &str,
    layer: usize,
    shape: &Shape,
    deps: &[usize],
    names: &[String],
    rng: &mut SplitMix64,
) -> String {
    let mut out =
        format!("//! Synthetic crate {name} (layer {layer}), generated by xtask-bench.\n\n");
    for module in 0..shape.files_per_crate {
        let _ = writeln!(out, "pub mod m{module:02};");
    }
    let _ = write!(
        out,
        "\npub const ID: u64 = {};\n\npub fn checksum() -> u64 {{\n    let mut s: u64 = ID;\n",
        rng.next_u64() >> 24
    );
    for module in 0..shape.files_per_crate {
        let _ = writeln!(
            out,
            "    s = s.wrapping_mul(1_000_003).wrapping_add(m{module:02}::sum());"
        );
    }
    for &dep in deps {
        let _ = writeln!(
            out,
            "    s = s.wrapping_mul(1_000_033).wrapping_add({}::checksum());",
            names[dep]
        );
    }
    out.push_str(
        "    s\n}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn deterministic() {\n        \
         assert_eq!(super::checksum(), super::checksum());\n    }\n}\n",
    );
    out
}

/// A valid Rust module of about `target_bytes` bytes: a `u32` array and a function over it.
fn data_module(name: &str, module: usize, target_bytes: usize, rng: &mut SplitMix64) -> String {
    let head = format!(
        "// Generated by xtask-bench: crate {name}, module m{module:02}.\n#![allow(dead_code)]\n\n"
    );
    let tail = format!(
        "\npub fn sum() -> u64 {{\n    let mut s: u64 = {};\n    for &x in DATA.iter() {{\n        \
         s = s.wrapping_mul(31).wrapping_add(x as u64);\n    }}\n    s\n}}\n",
        rng.next_u64() % 1_000_000
    );
    let budget = target_bytes.saturating_sub(head.len() + tail.len() + 40);
    let mut lines = String::new();
    let mut count = 0;
    while lines.len() < budget || count == 0 {
        lines.push_str("   ");
        for _ in 0..8 {
            let _ = write!(lines, " {},", rng.next_u64() as u32);
        }
        lines.push('\n');
        count += 8;
    }
    format!("{head}pub const DATA: [u32; {count}] = [\n{lines}];\n{tail}")
}

fn json_text(value: &serde_json::Value) -> String {
    // serde_json's pretty printer: two-space indent, as npm writes its files.
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

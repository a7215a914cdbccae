//! The synthetic workspace generator: the trees are real Cargo workspaces (cargo accepts them
//! `--locked`), npm workspaces and Turborepo repositories (turbo plans them), with the layered
//! dependency graph the benchmarks rely on, and the same shape gives the same tree.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use xtask_bench::synthetic::{self, Shape, crate_name, dependency_graph};

fn small_shape() -> Shape {
    Shape {
        crates: 12,
        files_per_crate: 2,
        bytes_per_file: 300,
        layers: 3,
        max_deps: 3,
        seed: 7,
        package_manager: "npm@10.9.2".into(),
    }
}

fn run(dir: &Path, program: &Path, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| panic!("failed to run {}: {error}", program.display()));
    assert!(
        output.status.success(),
        "{} {} failed:\n{}{}",
        program.display(),
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

#[test]
fn the_graph_is_layered_with_real_depth() {
    let shape = Shape {
        crates: 500,
        ..Shape::standard(500)
    };
    let graph = dependency_graph(&shape);
    assert_eq!(graph.deps.len(), 500);
    let layers: BTreeSet<usize> = graph.layer_of.iter().copied().collect();
    assert_eq!(layers.len(), 10, "{layers:?}");
    for (index, deps) in graph.deps.iter().enumerate() {
        let layer = graph.layer_of[index];
        if layer == 0 {
            assert!(deps.is_empty(), "c{index} of layer 0 has dependencies");
            continue;
        }
        assert!((1..=3).contains(&deps.len()), "c{index}: {deps:?}");
        assert!(
            deps.iter().all(|&dep| graph.layer_of[dep] < layer),
            "c{index} depends on a crate of its own layer or above: {deps:?}"
        );
        assert!(
            deps.iter().any(|&dep| graph.layer_of[dep] == layer - 1),
            "c{index} has no dependency in the layer below: {deps:?}"
        );
    }
    // The probes: a leaf nothing depends on, a root with many dependents.
    let (_, facts) = synthetic::tree_files(&shape);
    let leaf = facts.leaf_file.clone();
    assert!(
        leaf.starts_with("crates/c0") && leaf.ends_with("/src/m00.rs"),
        "{leaf}"
    );
    assert!(facts.root_dependents > 100, "{facts:?}");
    assert_eq!(facts.rust_files, 500 * 6);
}

#[test]
fn the_same_shape_gives_the_same_files_and_another_seed_another_graph() {
    let (a, _) = synthetic::tree_files(&small_shape());
    let (b, _) = synthetic::tree_files(&small_shape());
    assert_eq!(a, b);
    let other = Shape {
        seed: 8,
        ..small_shape()
    };
    assert_ne!(
        dependency_graph(&small_shape()).deps,
        dependency_graph(&other).deps
    );
    // About the size asked for.
    let module = &a["crates/c0003/src/m01.rs"];
    assert!((250..=450).contains(&module.len()), "{}", module.len());
}

#[test]
fn a_generated_tree_is_a_locked_cargo_workspace_an_npm_workspace_and_a_git_repository() {
    let temp = tempfile::tempdir().unwrap();
    let shape = small_shape();
    let dir = temp.path().join("tree");
    let facts = synthetic::write_tree(&dir, &shape, true).unwrap();
    let graph = dependency_graph(&shape);

    // Cargo: N members with exactly the generated edges; the lockfile is what cargo wants.
    let cargo = xtask_bench::tools::cargo_program();
    let metadata: serde_json::Value = serde_json::from_str(&run(
        &dir,
        &cargo,
        &["metadata", "--offline", "--locked", "--format-version", "1"],
    ))
    .unwrap();
    assert_eq!(metadata["workspace_members"].as_array().unwrap().len(), 12);
    for package in metadata["packages"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap();
        let index: usize = name[1..].parse().unwrap();
        let deps: BTreeSet<String> = package["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|dep| dep["name"].as_str().unwrap().to_string())
            .collect();
        let expected: BTreeSet<String> = graph.deps[index]
            .iter()
            .map(|&dep| crate_name(dep))
            .collect();
        assert_eq!(deps, expected, "{name}");
    }
    assert_eq!(facts.edges, graph.deps.iter().map(Vec::len).sum::<usize>());
    // The xtask twin of turbo's task is declared.
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("[workspace.metadata.xtask.tasks.size]"),
        "{manifest}"
    );

    // npm and turbo: the root package, the lockfile, turbo.json, each package's script.
    let root = json(&dir.join("package.json"));
    assert_eq!(root["packageManager"], "npm@10.9.2");
    assert_eq!(root["workspaces"], serde_json::json!(["crates/*"]));
    let turbo = json(&dir.join("turbo.json"));
    assert_eq!(
        turbo["tasks"]["build"]["dependsOn"],
        serde_json::json!(["^build"])
    );
    let lock = json(&dir.join("package-lock.json"));
    assert_eq!(lock["lockfileVersion"], 3);
    for index in 0..12 {
        let name = crate_name(index);
        let package = json(&dir.join(format!("crates/{name}/package.json")));
        assert_eq!(package["scripts"]["build"], synthetic::TASK_SCRIPT);
        let deps: BTreeSet<String> = package["dependencies"]
            .as_object()
            .map(|deps| deps.keys().cloned().collect())
            .unwrap_or_default();
        let expected: BTreeSet<String> = graph.deps[index]
            .iter()
            .map(|&dep| crate_name(dep))
            .collect();
        assert_eq!(deps, expected, "{name}");
        assert_eq!(
            lock["packages"][format!("node_modules/{name}")]["link"],
            true
        );
        assert_eq!(
            lock["packages"][format!("crates/{name}")]["dependencies"],
            package["dependencies"]
        );
    }

    // git: one commit, a clean tree, and the same commit for the same shape.
    let git = Path::new("git");
    assert_eq!(run(&dir, git, &["status", "--porcelain"]), "");
    let again = temp.path().join("again");
    synthetic::write_tree(&again, &shape, true).unwrap();
    assert_eq!(
        run(&dir, git, &["rev-parse", "HEAD"]),
        run(&again, git, &["rev-parse", "HEAD"])
    );

    // A second write into an existing directory is refused.
    let error = synthetic::write_tree(&dir, &shape, true).unwrap_err();
    assert!(error.to_string().contains("already exists"), "{error}");
}

#[test]
fn turbo_plans_a_generated_tree_with_the_generated_dependencies() {
    let tools_dir = xtask_bench::tools::tools_dir(&workspace_root());
    let turbo = xtask_bench::tools::require_tool(&tools_dir, "turbo", "bench").unwrap();
    let temp = tempfile::tempdir().unwrap();
    let shape = small_shape();
    let dir = temp.path().join("tree");
    synthetic::write_tree(&dir, &shape, true).unwrap();
    let output = Command::new(&turbo)
        .args(["run", "build", "--dry=json"])
        .current_dir(&dir)
        .env("TURBO_TELEMETRY_DISABLED", "1")
        .env("TURBO_NO_UPDATE_NOTIFIER", "1")
        .env("DO_NOT_TRACK", "1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "turbo --dry=json failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let tasks = plan["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 12, "{plan}");
    let graph = dependency_graph(&shape);
    for task in tasks {
        let package = task["package"].as_str().unwrap();
        let index: usize = package[1..].parse().unwrap();
        let deps: BTreeSet<String> = task["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|dep| dep.as_str().unwrap().to_string())
            .collect();
        let expected: BTreeSet<String> = graph.deps[index]
            .iter()
            .map(|&dep| format!("{}#build", crate_name(dep)))
            .collect();
        assert_eq!(deps, expected, "{package}");
        assert_eq!(task["command"], synthetic::TASK_SCRIPT, "{package}");
    }
}

#[test]
fn generate_reuses_a_complete_tree_and_regenerates_a_changed_shape() {
    let temp = tempfile::tempdir().unwrap();
    let shape = small_shape();
    let tree = synthetic::generate(temp.path(), &shape).unwrap();
    let marker = tree.root.join("crates/c0000/marker");
    std::fs::write(&marker, "kept while the shape is the same").unwrap();
    let same = synthetic::generate(temp.path(), &shape).unwrap();
    assert_eq!(same.root, tree.root);
    assert!(marker.is_file());
    let npm11 = shape.with_package_manager("npm@11.0.0".into());
    let changed = synthetic::generate(temp.path(), &npm11).unwrap();
    assert_eq!(changed.root, tree.root);
    assert!(
        !marker.exists(),
        "a different packageManager regenerates the tree"
    );
    assert_eq!(
        json(&changed.root.join("package.json"))["packageManager"],
        "npm@11.0.0"
    );
}

/// `bench ci --synthetic`: every crate gets the crates.io packages at this workspace's locked
/// versions, `Cargo.lock` is written offline (cargo then builds `--locked --offline`), and the
/// change is committed.
#[test]
fn registry_dependencies_are_added_locked_and_committed() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("tree");
    let shape = small_shape();
    synthetic::write_tree(&dir, &shape, true).unwrap();
    let lockfile = workspace_root().join("Cargo.lock");
    synthetic::add_registry_dependencies(
        &dir,
        &shape,
        &synthetic::REGISTRY_DEPENDENCIES,
        &lockfile,
    )
    .unwrap();
    let ours = std::fs::read_to_string(&lockfile).unwrap();
    let theirs = std::fs::read_to_string(dir.join("Cargo.lock")).unwrap();
    for name in synthetic::REGISTRY_DEPENDENCIES {
        let entry = format!("name = \"{name}\"\nversion = \"");
        let version = |lock: &str| {
            let start = lock.find(&entry).expect(name) + entry.len();
            lock[start..].split('"').next().unwrap().to_string()
        };
        assert_eq!(version(&theirs), version(&ours), "{name}");
        for index in 0..shape.crates {
            let manifest = std::fs::read_to_string(
                dir.join(format!("crates/{}/Cargo.toml", crate_name(index))),
            )
            .unwrap();
            assert!(
                manifest.contains(&format!("{name} = \"={}\"", version(&ours))),
                "{manifest}"
            );
        }
    }
    let cargo = xtask_bench::tools::cargo_program();
    run(
        &dir,
        &cargo,
        &["metadata", "--locked", "--offline", "--format-version", "1"],
    );
    let git = PathBuf::from("git");
    assert_eq!(run(&dir, &git, &["status", "--porcelain"]), "");
    assert_eq!(
        run(&dir, &git, &["rev-list", "--count", "HEAD"]).trim(),
        "2"
    );
}

//! The helpers of this crate's tests (those of every crate's tests are in `testkit`): the
//! repository's and the fixture's projects, private fixture copies, and running real tools.

#![allow(dead_code, reason = "each test binary uses a part of the helpers")]

use std::path::Path;
use std::process::{Command, Output};

use xtask_deploy::{GeneratedSet, Project};
use xtask_engine::Location;

pub fn location(root: &Path) -> Location {
    Location {
        manifest_path: Some(root.join("Cargo.toml")),
        directory: None,
    }
}

pub fn workspace(root: &Path) -> xtask_model::Workspace {
    xtask_engine::load_workspace(&location(root)).expect("load the workspace")
}

pub fn project(root: &Path) -> Project {
    xtask_deploy::project(&workspace(root)).expect("a valid project")
}

pub fn sets(root: &Path) -> Vec<GeneratedSet> {
    xtask_deploy::generated_sets(&workspace(root)).expect("generated sets")
}

/// A private copy of `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> tempfile::TempDir {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let dir = temp_dir();
    testkit::copy_dir(&source, dir.path());
    dir
}

/// A temp dir whose name does not start with a dot (checkov skips hidden directories).
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("xtask-deploy-test-")
        .tempdir()
        .expect("temp dir")
}

/// Writes every file of `sets` under `root`.
pub fn write_sets(root: &Path, sets: &[GeneratedSet]) {
    for set in sets {
        xtask_deploy::sync(root, set, xtask_deploy::SyncMode::Write).expect("write");
    }
}

/// Runs a real tool (found by testkit, which names the install command when missing), with
/// the kubectl directory on PATH (checkov's kustomize framework runs `kubectl kustomize`).
pub fn run_tool(name: &str, args: &[&str], dir: &Path) -> Output {
    let kubectl = testkit::tool("kubectl");
    let path = std::env::join_paths(kubectl.parent().into_iter().map(Path::to_path_buf).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    Command::new(testkit::tool(name))
        .args(args)
        .current_dir(dir)
        .env("PATH", path)
        .output()
        .unwrap_or_else(|e| panic!("failed to run {name}: {e}"))
}

/// `kubectl kustomize DIR`, which must succeed.
pub fn kustomize(dir: &Path) -> String {
    let output = run_tool("kubectl", &["kustomize", &dir.to_string_lossy()], dir);
    assert!(
        output.status.success(),
        "kubectl kustomize {}:\n{}",
        dir.display(),
        testkit::output_text(&output)
    );
    String::from_utf8(output.stdout).unwrap()
}

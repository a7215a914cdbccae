//! Edges cargo has are edges here: a member that depends on a crates.io crate which the root
//! manifest's `[patch.crates-io]` (or `[replace]`) builds from a workspace member depends on
//! that member, for `dependency_closure` (what the keys hash) and `affected_packages`.
//! Runs the real `cargo metadata --no-deps --offline` on a workspace written to a temp dir.

use std::fs;
use std::path::Path;

use xtask_graph::{AffectedReason, affected_packages, dependency_closure};
use xtask_model::{DepKind, Edge, Workspace};

fn write(root: &Path, relative: &str, text: &str) {
    let path = root.join(relative);
    fs::create_dir_all(path.parent().expect("parent")).expect("create dir");
    fs::write(path, text).expect("write");
}

fn package(name: &str, dependencies: &str) -> String {
    format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n{dependencies}"
    )
}

/// Members `app` (`hack = "0.1"` from crates.io, `legacy = "0.2"` as a build dependency),
/// `hack`, `legacy` and `other` (no dependencies); `root_extra` goes into the root manifest.
fn workspace(root_extra: &str) -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(
        root,
        "Cargo.toml",
        &format!(
            "[workspace]\nmembers = [\"app\", \"hack\", \"legacy\", \"other\"]\nresolver = \"2\"\n\n{root_extra}"
        ),
    );
    write(
        root,
        "app/Cargo.toml",
        &package(
            "app",
            "[dependencies]\nhack = \"0.1\"\n\n[build-dependencies]\nlegacy = \"0.2\"\n",
        ),
    );
    write(root, "app/src/main.rs", "fn main() {}\n");
    write(root, "hack/Cargo.toml", &package("hack", ""));
    write(root, "hack/src/lib.rs", "");
    write(
        root,
        "legacy/Cargo.toml",
        &package("legacy", "").replace("0.1.0", "0.2.0"),
    );
    write(root, "legacy/src/lib.rs", "");
    write(root, "other/Cargo.toml", &package("other", ""));
    write(root, "other/src/lib.rs", "");
    let output = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata = String::from_utf8(output.stdout).expect("utf-8");
    let workspace = Workspace::from_metadata(&metadata).expect("model");
    (dir, workspace)
}

fn index(workspace: &Workspace, name: &str) -> usize {
    workspace.package_index(name).expect("member")
}

#[test]
fn a_patched_crates_io_dependency_is_an_edge_to_the_member() {
    let (_dir, workspace) = workspace("[patch.crates-io]\nhack = { path = \"hack\" }\n");
    let app = index(&workspace, "app");
    let hack = index(&workspace, "hack");
    assert_eq!(
        workspace.packages[app].dependencies,
        [Edge {
            to: hack,
            kind: DepKind::Normal,
            platform: None,
        }]
    );
    // What the keys hash: editing `hack` changes `app`'s key.
    let closure = dependency_closure(&workspace, app, &[DepKind::Normal, DepKind::Build]);
    assert!(closure.contains(&hack), "{closure:?}");

    // `affected`: a change in `hack` lists `app` (and not `other`).
    let affected = affected_packages(&workspace, &["hack/src/lib.rs".to_owned()], |_| false);
    assert_eq!(
        affected.get(&app),
        Some(&AffectedReason::Dependency {
            package: "hack".to_owned()
        }),
        "{affected:?}"
    );
    assert!(!affected.contains_key(&index(&workspace, "other")));
}

#[test]
fn a_replaced_dependency_is_an_edge_of_the_original_kind() {
    let (_dir, workspace) =
        workspace("[replace]\n\"legacy:0.2.0\" = { path = \"./other/../legacy\" }\n");
    let app = index(&workspace, "app");
    let legacy = index(&workspace, "legacy");
    assert_eq!(
        workspace.packages[app].dependencies,
        [Edge {
            to: legacy,
            kind: DepKind::Build,
            platform: None,
        }]
    );
    let closure = dependency_closure(&workspace, app, &[DepKind::Normal, DepKind::Build]);
    assert!(closure.contains(&legacy), "{closure:?}");
    let affected = affected_packages(&workspace, &["legacy/src/lib.rs".to_owned()], |_| false);
    assert!(affected.contains_key(&app), "{affected:?}");
}

#[test]
fn without_a_patch_a_registry_dependency_is_no_edge() {
    let (_dir, workspace) = workspace("");
    let app = index(&workspace, "app");
    assert_eq!(workspace.packages[app].dependencies, []);
    let affected = affected_packages(&workspace, &["hack/src/lib.rs".to_owned()], |_| false);
    assert!(!affected.contains_key(&app), "{affected:?}");
}

//! The tool on a fresh machine's cargo registry: every test here runs the real binary with an
//! EMPTY `CARGO_HOME` (cargo and rustc still reachable on `PATH`), so cargo downloads what it
//! needs from crates.io and nothing else, as for a new user. CI machines keep a warm registry
//! that holds every crate earlier work fetched, which hid `prune` needing the sources of
//! packages a Linux build never downloads; these tests cannot be hidden that way.
//!
//! The fixture `target-specific` has `itoa` in its lockfile for wasm32 only (the shape of
//! `bumpalo` via `wasm-bindgen`), so a host build never fetches it.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::Fixture;

/// An empty `CARGO_HOME`, deleted with the guard.
fn empty_cargo_home() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("xtask-cargo-home-")
        .tempdir()
        .expect("create a temp dir")
}

/// The `.crate` files cargo has downloaded into `cargo_home`, by file name.
fn downloaded_crates(cargo_home: &Path) -> Vec<String> {
    let cache = cargo_home.join("registry").join("cache");
    let Ok(registries) = std::fs::read_dir(&cache) else {
        return Vec::new();
    };
    let mut names: Vec<String> = registries
        .flatten()
        .flat_map(|registry| std::fs::read_dir(registry.path()).into_iter().flatten())
        .flatten()
        .map(|file| file.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn xtask_with_home(fixture: &Fixture, cargo_home: &Path, args: &[&str]) -> support::Output {
    let home = cargo_home.display().to_string();
    fixture.xtask_env(args, &[("CARGO_HOME", home.as_str())])
}

#[test]
fn build_test_lint_and_prune_work_with_an_empty_cargo_home() {
    let fixture = Fixture::new("target-specific");
    let cargo_home = empty_cargo_home();

    let build = xtask_with_home(&fixture, cargo_home.path(), &["build"]);
    build.assert_code(0);
    assert!(fixture.exists("target/debug/app"), "{build}");
    // What makes this a fresh machine: the host build fetched cfg-if, never the wasm-only itoa.
    let crates = downloaded_crates(cargo_home.path());
    assert!(
        crates.iter().any(|c| c.starts_with("cfg-if-")),
        "the build downloaded nothing into the empty CARGO_HOME: {crates:?}"
    );
    assert!(
        !crates.iter().any(|c| c.starts_with("itoa-")),
        "a host build downloaded the wasm-only itoa: {crates:?}"
    );
    // ... and why a plain `cargo metadata --offline` (what prune used to verify with) fails.
    let unfiltered = Command::new(env!("CARGO"))
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .current_dir(fixture.root())
        .env("CARGO_HOME", cargo_home.path())
        .output()
        .expect("failed to run cargo metadata");
    assert!(
        !unfiltered.status.success(),
        "cargo metadata --offline passed without itoa's source: the fixture no longer has a package the host build does not fetch"
    );

    xtask_with_home(&fixture, cargo_home.path(), &["test"]).assert_code(0);
    xtask_with_home(&fixture, cargo_home.path(), &["lint"]).assert_code(0);

    let out: PathBuf = fixture.tools().join("pruned");
    let out_arg = out.display().to_string();
    let prune = xtask_with_home(
        &fixture,
        cargo_home.path(),
        &["prune", "app", "--out", &out_arg],
    );
    prune.assert_code(0);
    assert!(
        prune.stderr.contains("--filter-platform"),
        "prune does not say how it verified:\n{prune}"
    );
    let manifest = std::fs::read_to_string(out.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("members = [\"apps/app\", \"crates/platform\"]"),
        "{manifest}"
    );
    // The lockfile keeps every platform's entries (nothing re-resolved), and still nothing
    // was fetched: prune never needs the network.
    let lock = std::fs::read_to_string(out.join("Cargo.lock")).unwrap();
    assert!(lock.contains("name = \"itoa\""), "{lock}");
    assert!(!lock.contains("name = \"unused\""), "{lock}");
    assert_eq!(downloaded_crates(cargo_home.path()), crates);
}

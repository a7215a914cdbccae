//! The fixture task key shared by the key and diff tests.

use std::collections::BTreeMap;

use crate::{
    KEY_SCHEMA, LockedPackage, TaskDefinitionKey, TaskKey, ToolchainKey, env_value_digest,
};

fn map<V: Clone>(entries: &[(&str, V)]) -> BTreeMap<String, V> {
    entries
        .iter()
        .map(|(key, value)| ((*key).to_owned(), value.clone()))
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

/// A registry package as it appears in the fixture.
pub(crate) fn registry_package(name: &str, version: &str, checksum: &str) -> LockedPackage {
    LockedPackage {
        name: name.to_owned(),
        version: version.to_owned(),
        source: "registry+https://github.com/rust-lang/crates.io-index".to_owned(),
        checksum: Some(checksum.to_owned()),
    }
}

/// The value of `RUSTFLAGS` in the fixture; tests check it never leaks.
pub(crate) const RUSTFLAGS_VALUE: &str = "-C target-cpu=native --cfg secret_flag";

/// A key with every field set to something non-default.
pub(crate) fn fixture_key() -> TaskKey {
    TaskKey {
        schema: KEY_SCHEMA,
        tool_version: "0.1.0".to_owned(),
        package: "a".to_owned(),
        package_dir: "crates/a".to_owned(),
        task: "build".to_owned(),
        definition: TaskDefinitionKey {
            kind: "cargo-build".to_owned(),
            command: strings(&["cargo", "build"]),
            inputs: strings(&["src/**", "!src/gen"]),
            outputs: strings(&["dist/**"]),
            env: strings(&["RUSTFLAGS", "UNSET_VAR"]),
            depends_on: strings(&["^build"]),
        },
        inputs: map(&[
            ("crates/a/Cargo.toml", "11".repeat(32)),
            ("crates/a/src/lib.rs", "22".repeat(32)),
        ]),
        global_inputs: map(&[("Cargo.lock", "33".repeat(32)), ("Cargo.toml", "44".repeat(32))]),
        task_dependencies: map(&[("b:build", "55".repeat(32))]),
        workspace_dependencies: map(&[("b", "66".repeat(32))]),
        external_dependencies: vec![
            registry_package("serde", "1.0.1", "aaaa"),
            registry_package("sha2", "0.10.9", "bbbb"),
        ],
        toolchain: Some(ToolchainKey {
            rustc_version: "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\nhost: x86_64-unknown-linux-gnu\n"
                .to_owned(),
            target: "x86_64-unknown-linux-gnu".to_owned(),
            profile: "dev".to_owned(),
            features: strings(&["default"]),
            cargo_args: strings(&["--locked"]),
        }),
        env: map(&[
            ("RUSTFLAGS", Some(env_value_digest(RUSTFLAGS_VALUE))),
            ("UNSET_VAR", None),
        ]),
    }
}

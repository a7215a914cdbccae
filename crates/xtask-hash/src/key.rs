//! The task hash key: one struct listing every input of a task hash, and its canonical encoding.
//!
//! # What is in the key
//!
//! - `schema`: [`KEY_SCHEMA`], bumped whenever the encoding below changes.
//! - `tool_version`: the version of `xtask` that computed the key.
//! - `package`, `package_dir` (workspace-relative) and `task`: which task this is.
//! - `definition`: the task as declared: kind, command, input and output globs, the names of
//!   the env vars it reads, the tasks it depends on (lists in declaration order).
//! - `inputs`: workspace-relative path -> sha256 of every input file of the package
//!   (symlinks by target).
//! - `global_inputs`: the same for workspace-wide files (`Cargo.toml`, `rust-toolchain*`,
//!   `.cargo/config*`, ...) and for the configuration files the task's tools read from
//!   outside the package (see `xtask_engine::plan::config_inputs`): every
//!   `.cargo/config{,.toml}` from the workspace root up to `/` and in `$CARGO_HOME`
//!   (named `$CARGO_HOME/...`), and for `lint` every `clippy.toml` / `.clippy.toml`, for
//!   `fmt` every `rustfmt.toml` / `.rustfmt.toml`, from the package directory up (and
//!   rustfmt's `$HOME/.config/rustfmt/`). Paths outside the workspace are relative to it
//!   (`../.cargo/config.toml`), never absolute.
//! - `task_dependencies`: `"package:task"` -> hash of each task this one depends on.
//! - `workspace_dependencies`: package name -> [`source_fingerprint`] of each workspace
//!   package this one builds against (for cargo tasks, the transitive ones).
//! - `external_dependencies`: every locked external crate reachable from the package
//!   (name, version, source, checksum).
//! - `toolchain` (cargo tasks only): the full `rustc -vV` text, the target, the profile, the
//!   feature-unification context and the extra cargo arguments. `features` is
//!   `["unified:<sha256>"]`: a digest of the packages the one cargo invocation selects
//!   (cargo unifies features across them), the manifests of every workspace package they
//!   reach and their locked external crates; two selections that can compile a unit with
//!   different features never share a key (see ARCHITECTURE.md, "Features").
//! - `env`: var name -> sha256 of its value, or `None` when unset: the task's declared `env`
//!   and the workspace's, and for cargo tasks every set variable that cargo, rustc, clippy
//!   or rustfmt read to decide what they produce (the list lives in
//!   `xtask_engine::plan`): `RUSTFLAGS`, `RUSTDOCFLAGS`, `CARGO_ENCODED_RUSTFLAGS`,
//!   `CARGO_ENCODED_RUSTDOCFLAGS`, `RUSTC`, `RUSTC_WRAPPER`, `RUSTC_WORKSPACE_WRAPPER`,
//!   `RUSTDOC`, `RUSTC_BOOTSTRAP`, `CARGO_INCREMENTAL`, `CLIPPY_CONF_DIR`, `RUSTFMT`, and
//!   every `CARGO_PROFILE_*`, `CARGO_BUILD_*`, `CARGO_TARGET_*` (linkers, runners, per-target
//!   rustflags) and `CARGO_UNSTABLE_*`, except the ones that only move files
//!   (`CARGO_TARGET_DIR`, `CARGO_BUILD_TARGET_DIR`, `CARGO_BUILD_BUILD_DIR`) or set the job
//!   count (`CARGO_BUILD_JOBS`). `RUSTUP_TOOLCHAIN` and `rust-toolchain*` reach the key
//!   through `rustc -vV`. The env vars a crate reads with `env!` / `option_env!`, a build
//!   script's `rerun-if-env-changed` and a test's `env::var("NAME")` are observed inputs
//!   (below), not declared ones.
//!
//! # Observed inputs (beside the key, not in it)
//!
//! What rustc and build scripts were seen to read ([`crate::ObservedInputs`]) is stored with
//! the entry and must still match for a hit: a two-level key, as in ccache's direct mode.
//!
//! # What is deliberately not in the key
//!
//! - File mtimes, sizes, inode numbers, permissions and owners: only content counts, so a
//!   fresh clone or a `touch` hits the cache.
//! - Absolute paths (the workspace location, the home directory): the same commit checked
//!   out anywhere gives the same key, so a remote cache is shared across machines.
//! - Env var values in clear: only their sha256, so the stored manifest leaks no secret
//!   outright. (A digest of a short, guessable value can still be brute-forced: do not put
//!   low-entropy secrets in a task's `env`.)
//! - The cache location, the job count, timestamps, the host and user name, and the order in
//!   which files were discovered or hashed: they change nothing the task produces.
//!
//! # Encoding
//!
//! [`TaskKey::canonical_bytes`] is `serde_json::to_vec` of the struct. That is canonical:
//! struct fields are written in declaration order, every map is a `BTreeMap` (sorted by key),
//! lists keep the order the caller gave (sorted where the producer sorts them), there are no
//! floats, and serde_json escapes strings one way only. Equal keys therefore give equal bytes,
//! and the task hash is the sha256 of those bytes. Changing a field, its type, its name or
//! its serde attributes changes the bytes: bump [`KEY_SCHEMA`] and the pinned hash in the
//! tests together.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use xtask_util::sha256_hex;

use crate::HashError;
use crate::lockfile::LockedPackage;

/// The version of the key encoding; bump when [`TaskKey::canonical_bytes`] changes shape.
pub const KEY_SCHEMA: u32 = 2;

/// Everything a task hash depends on. See the module documentation.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TaskKey {
    /// [`KEY_SCHEMA`] when the key was computed.
    pub schema: u32,
    pub tool_version: String,
    pub package: String,
    /// Workspace-relative, `/` separators, `""` for the root package.
    pub package_dir: String,
    pub task: String,
    pub definition: TaskDefinitionKey,
    /// Workspace-relative path -> sha256.
    pub inputs: BTreeMap<String, String>,
    /// Workspace-relative path -> sha256.
    pub global_inputs: BTreeMap<String, String>,
    /// `"package:task"` -> that task's hash.
    pub task_dependencies: BTreeMap<String, String>,
    /// Package name -> its [`source_fingerprint`].
    pub workspace_dependencies: BTreeMap<String, String>,
    /// Sorted, as [`crate::Lockfile::external_closure`] returns them.
    pub external_dependencies: Vec<LockedPackage>,
    /// `None` for custom tasks.
    pub toolchain: Option<ToolchainKey>,
    /// Var name -> sha256 of its value ([`env_value_digest`]); `None` when unset.
    pub env: BTreeMap<String, Option<String>>,
}

/// The task as declared in the configuration.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TaskDefinitionKey {
    /// `cargo-build`, `cargo-test`, `cargo-lint`, `cargo-fmt` or `custom`.
    pub kind: String,
    pub command: Vec<String>,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// Names of the env vars the task reads (their values are in [`TaskKey::env`]).
    pub env: Vec<String>,
    pub depends_on: Vec<String>,
}

/// The Rust toolchain and cargo invocation of a cargo task.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ToolchainKey {
    /// The full `rustc -vV` output.
    pub rustc_version: String,
    pub target: String,
    pub profile: String,
    pub features: Vec<String>,
    pub cargo_args: Vec<String>,
}

impl TaskKey {
    /// The canonical encoding: `serde_json::to_vec` of the struct (see the module docs).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self)
            .expect("a TaskKey always serializes: every map key is a string, no floats")
    }

    /// The task hash: sha256 of [`TaskKey::canonical_bytes`], lowercase hex.
    pub fn hash(&self) -> String {
        sha256_hex(&self.canonical_bytes())
    }

    /// The key as JSON, as the cache stores it next to an entry.
    pub fn manifest(&self) -> serde_json::Value {
        serde_json::to_value(self)
            .expect("a TaskKey always serializes: every map key is a string, no floats")
    }

    /// Reads a key back from a stored manifest.
    ///
    /// A manifest written under another [`KEY_SCHEMA`] that no longer decodes gives
    /// [`HashError::ManifestSchema`]; one that still decodes is returned as is, and
    /// [`crate::diff_keys`] reports the schema change.
    pub fn from_manifest(manifest: &serde_json::Value) -> Result<TaskKey, HashError> {
        // The observed inputs stored beside the key are not part of it.
        let mut manifest = manifest.clone();
        if let Some(object) = manifest.as_object_mut() {
            object.remove(crate::OBSERVED_FIELD);
        }
        let manifest = &manifest;
        TaskKey::deserialize(manifest).map_err(|source| {
            match manifest.get("schema").and_then(serde_json::Value::as_u64) {
                Some(found) if found != u64::from(KEY_SCHEMA) => HashError::ManifestSchema {
                    found,
                    expected: KEY_SCHEMA,
                },
                _ => HashError::Manifest { source },
            }
        })
    }
}

/// The sha256 of an env var's value, lowercase hex: what [`TaskKey::env`] stores.
pub fn env_value_digest(value: &str) -> String {
    sha256_hex(value.as_bytes())
}

/// A digest of a package's sources: its input files and its locked external crates.
///
/// It is the sha256 of the JSON object `{"inputs":{...},"external_dependencies":[...]}`,
/// canonical for the same reasons as [`TaskKey::canonical_bytes`]. It goes in the
/// [`TaskKey::workspace_dependencies`] of the packages that depend on this one.
pub fn source_fingerprint(inputs: &BTreeMap<String, String>, external: &[LockedPackage]) -> String {
    #[derive(Serialize)]
    struct SourceFingerprint<'a> {
        inputs: &'a BTreeMap<String, String>,
        external_dependencies: &'a [LockedPackage],
    }
    let bytes = serde_json::to_vec(&SourceFingerprint {
        inputs,
        external_dependencies: external,
    })
    .expect("a source fingerprint always serializes: string keys only");
    sha256_hex(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixture::{RUSTFLAGS_VALUE, fixture_key, registry_package};

    /// The hash of the fixture key. If this changes, the key encoding changed: bump
    /// `KEY_SCHEMA` (old cache entries must not be read as new ones) and update this value.
    const FIXTURE_HASH: &str = "cc5ccea213f26791b670764e48ce170105ab2e26d37d24d64c9d98343982ce29";

    #[test]
    fn fixture_hash_is_pinned() {
        let key = fixture_key();
        assert_eq!(key.hash(), FIXTURE_HASH);
        assert_eq!(key.hash(), sha256_hex(&key.canonical_bytes()));
    }

    #[test]
    fn source_fingerprint_is_pinned() {
        let key = fixture_key();
        assert_eq!(
            source_fingerprint(&key.inputs, &key.external_dependencies),
            "a55b58155085b88b14856988a414bd51825db4c10052900269904dfb08d1aeee"
        );
    }

    #[test]
    fn canonical_bytes_are_json_in_field_order() {
        let bytes = String::from_utf8(fixture_key().canonical_bytes()).unwrap();
        assert!(
            bytes.starts_with(r#"{"schema":2,"tool_version":"0.1.0","package":"a","#),
            "{bytes}"
        );
        assert!(bytes.ends_with(r#""UNSET_VAR":null}}"#), "{bytes}");
    }

    #[test]
    fn every_field_changes_the_hash() {
        type Mutation = fn(&mut TaskKey);
        let mutations: &[(&str, Mutation)] = &[
            ("schema", |key| key.schema += 1),
            ("tool_version", |key| key.tool_version = "0.2.0".to_owned()),
            ("package", |key| key.package = "b".to_owned()),
            ("package_dir", |key| key.package_dir = "crates/b".to_owned()),
            ("task", |key| key.task = "test".to_owned()),
            ("definition.kind", |key| {
                key.definition.kind = "custom".to_owned()
            }),
            ("definition.command", |key| {
                key.definition.command.push("--release".to_owned())
            }),
            ("definition.inputs", |key| key.definition.inputs.clear()),
            ("definition.outputs", |key| {
                key.definition.outputs.push("out/**".to_owned())
            }),
            ("definition.env", |key| {
                key.definition.env.pop();
            }),
            ("definition.depends_on", |key| {
                key.definition.depends_on.clear()
            }),
            ("inputs content", |key| {
                key.inputs
                    .insert("crates/a/src/lib.rs".to_owned(), "77".repeat(32));
            }),
            ("inputs added", |key| {
                key.inputs
                    .insert("crates/a/src/new.rs".to_owned(), "22".repeat(32));
            }),
            ("inputs renamed", |key| {
                let digest = key.inputs.remove("crates/a/src/lib.rs").unwrap();
                key.inputs.insert("crates/a/src/main.rs".to_owned(), digest);
            }),
            ("global_inputs", |key| {
                key.global_inputs
                    .insert("Cargo.lock".to_owned(), "77".repeat(32));
            }),
            ("task_dependencies", |key| {
                key.task_dependencies
                    .insert("b:build".to_owned(), "77".repeat(32));
            }),
            ("workspace_dependencies", |key| {
                key.workspace_dependencies
                    .insert("b".to_owned(), "77".repeat(32));
            }),
            ("external version", |key| {
                key.external_dependencies[0].version = "1.0.2".to_owned()
            }),
            ("external checksum", |key| {
                key.external_dependencies[0].checksum = None
            }),
            ("external source", |key| {
                key.external_dependencies[0].source = "git+x".to_owned()
            }),
            ("external added", |key| {
                key.external_dependencies
                    .push(registry_package("zstd", "0.13.0", "cccc"));
            }),
            ("toolchain none", |key| key.toolchain = None),
            ("toolchain.rustc_version", |key| {
                key.toolchain.as_mut().unwrap().rustc_version = "rustc 1.96.0".to_owned();
            }),
            ("toolchain.target", |key| {
                key.toolchain.as_mut().unwrap().target = "aarch64-apple-darwin".to_owned();
            }),
            ("toolchain.profile", |key| {
                key.toolchain.as_mut().unwrap().profile = "release".to_owned()
            }),
            ("toolchain.features", |key| {
                key.toolchain.as_mut().unwrap().features.clear()
            }),
            ("toolchain.cargo_args", |key| {
                key.toolchain.as_mut().unwrap().cargo_args.clear()
            }),
            ("env value", |key| {
                key.env
                    .insert("RUSTFLAGS".to_owned(), Some(env_value_digest("-O")));
            }),
            ("env set", |key| {
                key.env
                    .insert("UNSET_VAR".to_owned(), Some(env_value_digest("")));
            }),
            ("env tracked", |key| {
                key.env.insert("CC".to_owned(), None);
            }),
        ];
        let base = fixture_key().hash();
        let mut seen = BTreeMap::new();
        for (name, mutate) in mutations {
            let mut key = fixture_key();
            mutate(&mut key);
            let hash = key.hash();
            assert_ne!(hash, base, "changing {name} must change the hash");
            if let Some(other) = seen.insert(hash, name) {
                panic!("changing {name} and {other} gave the same hash");
            }
        }
    }

    #[test]
    fn encoding_is_independent_of_insertion_order() {
        let key = fixture_key();
        let mut reversed = key.clone();
        reversed.inputs = key
            .inputs
            .iter()
            .rev()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        reversed.global_inputs = key
            .global_inputs
            .iter()
            .rev()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        reversed.env = key
            .env
            .iter()
            .rev()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(reversed.canonical_bytes(), key.canonical_bytes());
        assert_eq!(reversed.hash(), key.hash());
    }

    #[test]
    fn manifest_round_trips_and_never_holds_env_values() {
        let key = fixture_key();
        let manifest = key.manifest();
        assert_eq!(TaskKey::from_manifest(&manifest).unwrap(), key);
        let text = manifest.to_string();
        assert!(!text.contains(RUSTFLAGS_VALUE));
        assert!(text.contains(&env_value_digest(RUSTFLAGS_VALUE)));
    }

    #[test]
    fn from_manifest_rejects_unknown_fields_and_other_schemas() {
        let mut manifest = fixture_key().manifest();
        manifest["extra"] = serde_json::json!(true);
        let error = TaskKey::from_manifest(&manifest).unwrap_err().to_string();
        assert!(
            error.starts_with("invalid task key manifest: unknown field `extra`"),
            "{error}"
        );

        manifest["schema"] = serde_json::json!(1);
        let error = TaskKey::from_manifest(&manifest).unwrap_err().to_string();
        assert_eq!(
            error,
            "task key manifest has schema 1, this tool reads schema 2"
        );

        // A manifest of another schema that still decodes is returned as is.
        let mut manifest = fixture_key().manifest();
        manifest["schema"] = serde_json::json!(1);
        assert_eq!(TaskKey::from_manifest(&manifest).unwrap().schema, 1);

        // Observed inputs stored beside the key are not part of it.
        let observed = crate::ObservedInputs::default().add_to_manifest(fixture_key().manifest());
        assert_eq!(TaskKey::from_manifest(&observed).unwrap(), fixture_key());
    }

    #[test]
    fn env_value_digest_is_sha256_of_the_value() {
        assert_eq!(
            env_value_digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn source_fingerprint_covers_inputs_and_externals() {
        let key = fixture_key();
        let base = source_fingerprint(&key.inputs, &key.external_dependencies);
        let mut inputs = key.inputs.clone();
        inputs.insert("crates/a/src/lib.rs".to_owned(), "77".repeat(32));
        assert_ne!(
            source_fingerprint(&inputs, &key.external_dependencies),
            base
        );
        assert_ne!(
            source_fingerprint(&key.inputs, &key.external_dependencies[1..]),
            base
        );
        assert_ne!(source_fingerprint(&BTreeMap::new(), &[]), base);
    }
}

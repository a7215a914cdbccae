//! Explaining a cache miss: the differences between a stored task key and the current one.
//!
//! Each [`KeyChange`] displays as one human line. Env var changes name the variable only:
//! neither its value nor its digest is ever shown.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::key::{TaskDefinitionKey, TaskKey, ToolchainKey};
use crate::lockfile::LockedPackage;

/// One difference between two task keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    SchemaChanged {
        old: u32,
        new: u32,
    },
    ToolVersionChanged {
        old: String,
        new: String,
    },
    PackageChanged {
        old: String,
        new: String,
    },
    PackageDirChanged {
        old: String,
        new: String,
    },
    TaskChanged {
        old: String,
        new: String,
    },
    DefinitionChanged(DefinitionField),
    InputAdded(String),
    InputRemoved(String),
    InputChanged(String),
    GlobalInputAdded(String),
    GlobalInputRemoved(String),
    GlobalInputChanged(String),
    /// `"package:task"`.
    DependencyTaskAdded(String),
    DependencyTaskRemoved(String),
    DependencyTaskChanged(String),
    WorkspaceDependencyAdded(String),
    WorkspaceDependencyRemoved(String),
    WorkspaceDependencyChanged(String),
    ExternalDependencyAdded(LockedPackage),
    ExternalDependencyRemoved(LockedPackage),
    /// The same crate name with another version, source or checksum.
    ExternalDependencyChanged {
        old: LockedPackage,
        new: LockedPackage,
    },
    /// The same crates, listed in another order or with duplicates (lists are normally
    /// sorted and deduplicated, so this is a producer bug, reported rather than hidden).
    ExternalDependencyOrderChanged,
    ToolchainAdded,
    ToolchainRemoved,
    ToolchainChanged(ToolchainField),
    /// A var now tracked by the key.
    EnvVarAdded(String),
    /// A var no longer tracked by the key.
    EnvVarRemoved(String),
    /// Was unset, now set.
    EnvVarSet(String),
    /// Was set, now unset.
    EnvVarUnset(String),
    /// Set before and now, to different values.
    EnvVarChanged(String),
}

/// A field of [`TaskDefinitionKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefinitionField {
    Kind,
    Command,
    Inputs,
    Outputs,
    Env,
    DependsOn,
}

/// A field of [`ToolchainKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolchainField {
    RustcVersion,
    Target,
    Profile,
    Features,
    CargoArgs,
}

/// Every difference from `old` to `new`, in the field order of [`TaskKey`] and, within a
/// map, in key order. Empty if and only if the keys are equal.
pub fn diff_keys(old: &TaskKey, new: &TaskKey) -> Vec<KeyChange> {
    let mut changes = Vec::new();
    if old.schema != new.schema {
        changes.push(KeyChange::SchemaChanged {
            old: old.schema,
            new: new.schema,
        });
    }
    let scalars = [
        (
            &old.tool_version,
            &new.tool_version,
            ScalarField::ToolVersion,
        ),
        (&old.package, &new.package, ScalarField::Package),
        (&old.package_dir, &new.package_dir, ScalarField::PackageDir),
        (&old.task, &new.task, ScalarField::Task),
    ];
    for (old_value, new_value, field) in scalars {
        if old_value != new_value {
            changes.push(field.change(old_value.clone(), new_value.clone()));
        }
    }
    diff_definitions(&old.definition, &new.definition, &mut changes);
    diff_maps(
        &old.inputs,
        &new.inputs,
        &mut changes,
        MapChanges {
            added: KeyChange::InputAdded,
            removed: KeyChange::InputRemoved,
            changed: KeyChange::InputChanged,
        },
    );
    diff_maps(
        &old.global_inputs,
        &new.global_inputs,
        &mut changes,
        MapChanges {
            added: KeyChange::GlobalInputAdded,
            removed: KeyChange::GlobalInputRemoved,
            changed: KeyChange::GlobalInputChanged,
        },
    );
    diff_maps(
        &old.task_dependencies,
        &new.task_dependencies,
        &mut changes,
        MapChanges {
            added: KeyChange::DependencyTaskAdded,
            removed: KeyChange::DependencyTaskRemoved,
            changed: KeyChange::DependencyTaskChanged,
        },
    );
    diff_maps(
        &old.workspace_dependencies,
        &new.workspace_dependencies,
        &mut changes,
        MapChanges {
            added: KeyChange::WorkspaceDependencyAdded,
            removed: KeyChange::WorkspaceDependencyRemoved,
            changed: KeyChange::WorkspaceDependencyChanged,
        },
    );
    diff_external(
        &old.external_dependencies,
        &new.external_dependencies,
        &mut changes,
    );
    match (&old.toolchain, &new.toolchain) {
        (None, None) => {}
        (None, Some(_)) => changes.push(KeyChange::ToolchainAdded),
        (Some(_), None) => changes.push(KeyChange::ToolchainRemoved),
        (Some(old), Some(new)) => diff_toolchains(old, new, &mut changes),
    }
    diff_env(&old.env, &new.env, &mut changes);
    changes
}

impl fmt::Display for KeyChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyChange::SchemaChanged { old, new } => {
                write!(f, "key schema changed: {old} -> {new}")
            }
            KeyChange::ToolVersionChanged { old, new } => {
                write!(f, "tool version changed: {old} -> {new}")
            }
            KeyChange::PackageChanged { old, new } => write!(f, "package changed: {old} -> {new}"),
            KeyChange::PackageDirChanged { old, new } => {
                write!(f, "package dir changed: {old} -> {new}")
            }
            KeyChange::TaskChanged { old, new } => write!(f, "task changed: {old} -> {new}"),
            KeyChange::DefinitionChanged(field) => write!(f, "task definition changed: {field}"),
            KeyChange::InputAdded(path) => write!(f, "input added: {path}"),
            KeyChange::InputRemoved(path) => write!(f, "input removed: {path}"),
            KeyChange::InputChanged(path) => write!(f, "input changed: {path}"),
            KeyChange::GlobalInputAdded(path) => write!(f, "global input added: {path}"),
            KeyChange::GlobalInputRemoved(path) => write!(f, "global input removed: {path}"),
            KeyChange::GlobalInputChanged(path) => write!(f, "global input changed: {path}"),
            KeyChange::DependencyTaskAdded(task) => write!(f, "dependency task added: {task}"),
            KeyChange::DependencyTaskRemoved(task) => {
                write!(f, "dependency task removed: {task}")
            }
            KeyChange::DependencyTaskChanged(task) => {
                write!(f, "dependency task changed: {task}")
            }
            KeyChange::WorkspaceDependencyAdded(name) => {
                write!(f, "workspace dependency added: {name}")
            }
            KeyChange::WorkspaceDependencyRemoved(name) => {
                write!(f, "workspace dependency removed: {name}")
            }
            KeyChange::WorkspaceDependencyChanged(name) => {
                write!(f, "workspace dependency changed: {name}")
            }
            KeyChange::ExternalDependencyAdded(package) => write!(
                f,
                "external dependency added: {} {}",
                package.name, package.version
            ),
            KeyChange::ExternalDependencyRemoved(package) => write!(
                f,
                "external dependency removed: {} {}",
                package.name, package.version
            ),
            KeyChange::ExternalDependencyChanged { old, new } => {
                write!(f, "external dependency changed: {} ", new.name)?;
                if old.version != new.version {
                    write!(f, "{} -> {}", old.version, new.version)
                } else if old.source != new.source {
                    write!(f, "{} (source changed)", new.version)
                } else {
                    write!(f, "{} (checksum changed)", new.version)
                }
            }
            KeyChange::ExternalDependencyOrderChanged => {
                f.write_str("external dependency list changed: order or duplicates")
            }
            KeyChange::ToolchainAdded => f.write_str("toolchain added"),
            KeyChange::ToolchainRemoved => f.write_str("toolchain removed"),
            KeyChange::ToolchainChanged(field) => write!(f, "toolchain changed: {field}"),
            KeyChange::EnvVarAdded(name) => write!(f, "env var added: {name}"),
            KeyChange::EnvVarRemoved(name) => write!(f, "env var removed: {name}"),
            KeyChange::EnvVarSet(name) => write!(f, "env var set: {name}"),
            KeyChange::EnvVarUnset(name) => write!(f, "env var unset: {name}"),
            KeyChange::EnvVarChanged(name) => write!(f, "env var changed: {name}"),
        }
    }
}

impl fmt::Display for DefinitionField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DefinitionField::Kind => "kind",
            DefinitionField::Command => "command",
            DefinitionField::Inputs => "inputs",
            DefinitionField::Outputs => "outputs",
            DefinitionField::Env => "env",
            DefinitionField::DependsOn => "depends_on",
        })
    }
}

impl fmt::Display for ToolchainField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ToolchainField::RustcVersion => "rustc version",
            ToolchainField::Target => "target",
            ToolchainField::Profile => "profile",
            ToolchainField::Features => {
                "feature unification (the packages one cargo call selects, or their manifests)"
            }
            ToolchainField::CargoArgs => "cargo args",
        })
    }
}

/// The plain string fields of [`TaskKey`] other than the schema.
#[derive(Clone, Copy)]
enum ScalarField {
    ToolVersion,
    Package,
    PackageDir,
    Task,
}

impl ScalarField {
    fn change(self, old: String, new: String) -> KeyChange {
        match self {
            ScalarField::ToolVersion => KeyChange::ToolVersionChanged { old, new },
            ScalarField::Package => KeyChange::PackageChanged { old, new },
            ScalarField::PackageDir => KeyChange::PackageDirChanged { old, new },
            ScalarField::Task => KeyChange::TaskChanged { old, new },
        }
    }
}

fn diff_definitions(
    old: &TaskDefinitionKey,
    new: &TaskDefinitionKey,
    changes: &mut Vec<KeyChange>,
) {
    if old.kind != new.kind {
        changes.push(KeyChange::DefinitionChanged(DefinitionField::Kind));
    }
    let lists = [
        (&old.command, &new.command, DefinitionField::Command),
        (&old.inputs, &new.inputs, DefinitionField::Inputs),
        (&old.outputs, &new.outputs, DefinitionField::Outputs),
        (&old.env, &new.env, DefinitionField::Env),
        (&old.depends_on, &new.depends_on, DefinitionField::DependsOn),
    ];
    for (old_list, new_list, field) in lists {
        if old_list != new_list {
            changes.push(KeyChange::DefinitionChanged(field));
        }
    }
}

fn diff_toolchains(old: &ToolchainKey, new: &ToolchainKey, changes: &mut Vec<KeyChange>) {
    let strings = [
        (
            &old.rustc_version,
            &new.rustc_version,
            ToolchainField::RustcVersion,
        ),
        (&old.target, &new.target, ToolchainField::Target),
        (&old.profile, &new.profile, ToolchainField::Profile),
    ];
    for (old_value, new_value, field) in strings {
        if old_value != new_value {
            changes.push(KeyChange::ToolchainChanged(field));
        }
    }
    if old.features != new.features {
        changes.push(KeyChange::ToolchainChanged(ToolchainField::Features));
    }
    if old.cargo_args != new.cargo_args {
        changes.push(KeyChange::ToolchainChanged(ToolchainField::CargoArgs));
    }
}

/// How the entries of one map field are reported.
struct MapChanges {
    added: fn(String) -> KeyChange,
    removed: fn(String) -> KeyChange,
    changed: fn(String) -> KeyChange,
}

/// Reports added, removed and changed keys, in key order (a merge of the two sorted maps).
fn diff_maps<V: PartialEq>(
    old: &BTreeMap<String, V>,
    new: &BTreeMap<String, V>,
    changes: &mut Vec<KeyChange>,
    report: MapChanges,
) {
    let mut old_entries = old.iter().peekable();
    let mut new_entries = new.iter().peekable();
    loop {
        match (old_entries.peek(), new_entries.peek()) {
            (None, None) => break,
            (Some((old_key, _)), Some((new_key, _))) if old_key < new_key => {
                changes.push((report.removed)((*old_key).clone()));
                old_entries.next();
            }
            (Some((old_key, _)), None) => {
                changes.push((report.removed)((*old_key).clone()));
                old_entries.next();
            }
            (Some((old_key, old_value)), Some((new_key, new_value))) if old_key == new_key => {
                if old_value != new_value {
                    changes.push((report.changed)((*new_key).clone()));
                }
                old_entries.next();
                new_entries.next();
            }
            (_, Some((new_key, _))) => {
                changes.push((report.added)((*new_key).clone()));
                new_entries.next();
            }
        }
    }
}

/// Pairs the removed and added crates of one name into a change when there is exactly one
/// of each; otherwise reports them as removed and added. Ordered by crate name.
fn diff_external(old: &[LockedPackage], new: &[LockedPackage], changes: &mut Vec<KeyChange>) {
    if old == new {
        return;
    }
    let changes_before = changes.len();
    let old_set: BTreeSet<&LockedPackage> = old.iter().collect();
    let new_set: BTreeSet<&LockedPackage> = new.iter().collect();
    let mut by_name: BTreeMap<&str, (Vec<&LockedPackage>, Vec<&LockedPackage>)> = BTreeMap::new();
    for package in old_set.difference(&new_set) {
        by_name.entry(&package.name).or_default().0.push(package);
    }
    for package in new_set.difference(&old_set) {
        by_name.entry(&package.name).or_default().1.push(package);
    }
    for (removed, added) in by_name.into_values() {
        if let ([old], [new]) = (removed.as_slice(), added.as_slice()) {
            changes.push(KeyChange::ExternalDependencyChanged {
                old: (*old).clone(),
                new: (*new).clone(),
            });
            continue;
        }
        changes.extend(
            removed
                .into_iter()
                .map(|package| KeyChange::ExternalDependencyRemoved(package.clone())),
        );
        changes.extend(
            added
                .into_iter()
                .map(|package| KeyChange::ExternalDependencyAdded(package.clone())),
        );
    }
    if changes.len() == changes_before {
        changes.push(KeyChange::ExternalDependencyOrderChanged);
    }
}

/// Env changes by name only, in name order: the values and their digests never leave this
/// function.
fn diff_env(
    old: &BTreeMap<String, Option<String>>,
    new: &BTreeMap<String, Option<String>>,
    changes: &mut Vec<KeyChange>,
) {
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for name in names {
        let change = match (old.get(name), new.get(name)) {
            (Some(old_value), Some(new_value)) if old_value == new_value => continue,
            (None, None) => continue,
            (None, Some(_)) => KeyChange::EnvVarAdded(name.clone()),
            (Some(_), None) => KeyChange::EnvVarRemoved(name.clone()),
            (Some(None), Some(Some(_))) => KeyChange::EnvVarSet(name.clone()),
            (Some(Some(_)), Some(None)) => KeyChange::EnvVarUnset(name.clone()),
            (Some(_), Some(_)) => KeyChange::EnvVarChanged(name.clone()),
        };
        changes.push(change);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env_value_digest;
    use crate::test_fixture::{RUSTFLAGS_VALUE, fixture_key, registry_package};

    /// The Display lines of the changes from the fixture to `mutate(fixture)`.
    fn lines_after(mutate: impl FnOnce(&mut TaskKey)) -> Vec<String> {
        let old = fixture_key();
        let mut new = fixture_key();
        mutate(&mut new);
        let changes = diff_keys(&old, &new);
        assert_eq!(changes.is_empty(), old == new);
        changes.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn equal_keys_have_no_changes() {
        assert!(diff_keys(&fixture_key(), &fixture_key()).is_empty());
    }

    #[test]
    fn identity_changes() {
        assert_eq!(
            lines_after(|key| key.schema = 3),
            ["key schema changed: 2 -> 3"]
        );
        assert_eq!(
            lines_after(|key| key.tool_version = "0.2.0".to_owned()),
            ["tool version changed: 0.1.0 -> 0.2.0"]
        );
        assert_eq!(
            lines_after(|key| {
                key.package = "b".to_owned();
                key.package_dir = "crates/b".to_owned();
                key.task = "test".to_owned();
            }),
            [
                "package changed: a -> b",
                "package dir changed: crates/a -> crates/b",
                "task changed: build -> test",
            ]
        );
    }

    #[test]
    fn definition_changes_name_the_field() {
        assert_eq!(
            lines_after(|key| {
                key.definition.kind = "custom".to_owned();
                key.definition.command = vec!["make".to_owned()];
                key.definition.inputs.clear();
                key.definition.outputs.push("out/**".to_owned());
                key.definition.env.clear();
                key.definition.depends_on.clear();
            }),
            [
                "task definition changed: kind",
                "task definition changed: command",
                "task definition changed: inputs",
                "task definition changed: outputs",
                "task definition changed: env",
                "task definition changed: depends_on",
            ]
        );
    }

    #[test]
    fn file_map_changes_in_path_order() {
        assert_eq!(
            lines_after(|key| {
                key.inputs.remove("crates/a/Cargo.toml");
                key.inputs
                    .insert("crates/a/src/lib.rs".to_owned(), "77".repeat(32));
                key.inputs
                    .insert("crates/a/build.rs".to_owned(), "88".repeat(32));
                key.inputs
                    .insert("crates/a/zz.rs".to_owned(), "88".repeat(32));
                key.global_inputs
                    .insert("Cargo.toml".to_owned(), "77".repeat(32));
                key.global_inputs.remove("Cargo.lock");
                key.global_inputs
                    .insert("rust-toolchain.toml".to_owned(), "77".repeat(32));
            }),
            [
                "input removed: crates/a/Cargo.toml",
                "input added: crates/a/build.rs",
                "input changed: crates/a/src/lib.rs",
                "input added: crates/a/zz.rs",
                "global input removed: Cargo.lock",
                "global input changed: Cargo.toml",
                "global input added: rust-toolchain.toml",
            ]
        );
    }

    #[test]
    fn dependency_changes() {
        assert_eq!(
            lines_after(|key| {
                key.task_dependencies
                    .insert("b:build".to_owned(), "77".repeat(32));
                key.task_dependencies
                    .insert("c:build".to_owned(), "77".repeat(32));
                key.workspace_dependencies
                    .insert("b".to_owned(), "77".repeat(32));
                key.workspace_dependencies
                    .insert("c".to_owned(), "77".repeat(32));
            }),
            [
                "dependency task changed: b:build",
                "dependency task added: c:build",
                "workspace dependency changed: b",
                "workspace dependency added: c",
            ]
        );
        assert_eq!(
            lines_after(|key| {
                key.task_dependencies.clear();
                key.workspace_dependencies.clear();
            }),
            [
                "dependency task removed: b:build",
                "workspace dependency removed: b",
            ]
        );
    }

    #[test]
    fn external_dependency_changes() {
        assert_eq!(
            lines_after(|key| {
                key.external_dependencies = vec![
                    registry_package("anyhow", "1.0.0", "cccc"),
                    registry_package("serde", "1.0.2", "dddd"),
                ];
            }),
            [
                "external dependency added: anyhow 1.0.0",
                "external dependency changed: serde 1.0.1 -> 1.0.2",
                "external dependency removed: sha2 0.10.9",
            ]
        );
        assert_eq!(
            lines_after(|key| key.external_dependencies[0].checksum = Some("ffff".to_owned())),
            ["external dependency changed: serde 1.0.1 (checksum changed)"]
        );
        assert_eq!(
            lines_after(|key| key.external_dependencies[0].source = "git+https://x".to_owned()),
            ["external dependency changed: serde 1.0.1 (source changed)"]
        );
        // Two versions of one crate replaced by one: no pairing, added and removed.
        assert_eq!(
            lines_after(|key| {
                key.external_dependencies = vec![
                    registry_package("serde", "1.0.1", "aaaa"),
                    registry_package("sha2", "0.10.8", "eeee"),
                    registry_package("sha2", "0.11.0", "ffff"),
                ];
            }),
            [
                "external dependency removed: sha2 0.10.9",
                "external dependency added: sha2 0.10.8",
                "external dependency added: sha2 0.11.0",
            ]
        );
        assert_eq!(
            lines_after(|key| key.external_dependencies.reverse()),
            ["external dependency list changed: order or duplicates"]
        );
    }

    #[test]
    fn toolchain_changes_name_the_field() {
        assert_eq!(
            lines_after(|key| {
                let toolchain = key.toolchain.as_mut().unwrap();
                toolchain.rustc_version = "rustc 1.96.0".to_owned();
                toolchain.target = "aarch64-apple-darwin".to_owned();
                toolchain.profile = "release".to_owned();
                toolchain.features.clear();
                toolchain.cargo_args.clear();
            }),
            [
                "toolchain changed: rustc version",
                "toolchain changed: target",
                "toolchain changed: profile",
                "toolchain changed: feature unification (the packages one cargo call selects, or their manifests)",
                "toolchain changed: cargo args",
            ]
        );
        assert_eq!(
            lines_after(|key| key.toolchain = None),
            ["toolchain removed"]
        );
        let mut custom = fixture_key();
        custom.toolchain = None;
        let lines: Vec<String> = diff_keys(&custom, &fixture_key())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(lines, ["toolchain added"]);
    }

    #[test]
    fn env_changes_name_the_variable_never_the_value() {
        let new_value = "-C opt-level=3 --cfg other_secret";
        let lines = lines_after(|key| {
            key.env
                .insert("RUSTFLAGS".to_owned(), Some(env_value_digest(new_value)));
            key.env
                .insert("UNSET_VAR".to_owned(), Some(env_value_digest("now-set")));
            key.env.insert("CC".to_owned(), None);
        });
        assert_eq!(
            lines,
            [
                "env var added: CC",
                "env var changed: RUSTFLAGS",
                "env var set: UNSET_VAR",
            ]
        );
        let lines = lines_after(|key| {
            key.env.insert("RUSTFLAGS".to_owned(), None);
            key.env.remove("UNSET_VAR");
        });
        assert_eq!(
            lines,
            ["env var unset: RUSTFLAGS", "env var removed: UNSET_VAR"]
        );

        let mut new = fixture_key();
        new.env
            .insert("RUSTFLAGS".to_owned(), Some(env_value_digest(new_value)));
        let changes = diff_keys(&fixture_key(), &new);
        let shown = format!(
            "{}\n{changes:?}",
            changes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
        for secret in [
            RUSTFLAGS_VALUE.to_owned(),
            new_value.to_owned(),
            env_value_digest(RUSTFLAGS_VALUE),
            env_value_digest(new_value),
        ] {
            assert!(!shown.contains(&secret), "{shown}");
        }
    }
}

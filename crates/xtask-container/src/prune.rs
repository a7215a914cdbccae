//! `cargo xtask prune APP --out DIR`: the minimal workspace subset that builds APP: the
//! members APP depends on (every edge kind, since cargo resolves members' dev-dependencies
//! too), a root manifest listing only them, and a `Cargo.lock` holding only the packages they
//! reach. Reachability over the lockfile's edges over-approximates (an optional dependency that
//! only a removed member's features turned on stays), so cargo then trims the lockfile offline,
//! and every package it keeps must be in the original lockfile with the same version, source
//! and checksum: nothing is re-resolved. The result is verified with
//! `cargo metadata --locked --offline --filter-platform <host>` before it is moved into place,
//! so DIR is either a complete, verified workspace or not there at all.
//!
//! Why `--filter-platform`: cargo resolves the lockfile for every platform (so `--locked`
//! still checks every entry, wasm- and windows-only ones included, against the index), but
//! without a filter `cargo metadata` also wants the source of every package, and a registry
//! filled by `cargo build` holds only the host's (no `bumpalo` via `wasm-bindgen` on Linux).
//! With the host's filter, it needs exactly what a host build fetched, and never the network.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;
use xtask_engine::report::Reporter;
use xtask_engine::{CliError, CliResult, Location, Outcome, load_workspace};
use xtask_model::{PackageIndex, Workspace};

#[derive(Debug, Clone)]
pub struct PruneOptions {
    pub location: Location,
    pub app: String,
    /// Must not exist, or be an empty directory; a relative path is relative to `-C DIR`
    /// ([`Location::command_line_path`]).
    pub out: PathBuf,
}

/// `cargo xtask prune APP --out DIR`: writes the pruned workspace to `options.out`.
pub fn prune(options: &PruneOptions, reporter: &Reporter) -> CliResult {
    let workspace = load_workspace(&options.location)?;
    let app = workspace.require_package(&options.app)?;
    let out = &options.location.command_line_path(&options.out);
    if out.exists()
        && std::fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(CliError::config(format!(
            "`{}` exists and is not empty: prune writes a new directory",
            out.display()
        )));
    }
    let kept = member_closure(&workspace, app);
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .with_context(|| format!("failed to create `{}`", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".prune-")
        .tempdir_in(parent)
        .with_context(|| format!("failed to create a directory in `{}`", parent.display()))?;
    write_pruned(&workspace, &kept, staging.path())?;
    let host = xtask_engine::host_triple(staging.path())?;
    trim_lockfile(staging.path(), &workspace.root.join("Cargo.lock"), &host)?;
    verify(staging.path(), &host)?;
    if out.exists() {
        std::fs::remove_dir(out)
            .with_context(|| format!("failed to replace `{}`", out.display()))?;
    }
    std::fs::rename(staging.keep(), out)
        .with_context(|| format!("failed to write `{}`", out.display()))?;
    let names: Vec<&str> = kept
        .iter()
        .map(|&p| workspace.packages[p].name.as_str())
        .collect();
    reporter.line(&format!(
        "pruned workspace for `{}` in {} ({} members: {}); verified with cargo metadata --locked --offline --filter-platform {host}",
        options.app,
        out.display(),
        names.len(),
        names.join(", ")
    ));
    Ok(Outcome::success())
}

/// APP and every workspace package it reaches through any edge, sorted by directory.
pub fn member_closure(workspace: &Workspace, app: PackageIndex) -> Vec<PackageIndex> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![app];
    while let Some(p) = stack.pop() {
        if seen.insert(p) {
            stack.extend(workspace.packages[p].dependencies.iter().map(|e| e.to));
        }
    }
    let mut kept: Vec<PackageIndex> = seen.into_iter().collect();
    kept.sort_by(|a, b| {
        workspace.packages[*a]
            .relative_dir
            .cmp(&workspace.packages[*b].relative_dir)
    });
    kept
}

fn write_pruned(workspace: &Workspace, kept: &[PackageIndex], out: &Path) -> anyhow::Result<()> {
    let kept_dirs: BTreeSet<&str> = kept
        .iter()
        .map(|&p| workspace.packages[p].relative_dir.as_str())
        .collect();
    let member_dirs: Vec<&Path> = workspace.packages.iter().map(|p| p.dir.as_path()).collect();
    for &p in kept {
        let package = &workspace.packages[p];
        copy_tree(
            &package.dir,
            &out.join(&package.relative_dir),
            &CopyRules {
                package_dir: &package.dir,
                member_dirs: &member_dirs,
                target_dir: &workspace.target_dir,
            },
        )?;
    }
    for extra in [
        ".cargo/config.toml",
        ".cargo/config",
        "rust-toolchain",
        "rust-toolchain.toml",
    ] {
        let from = workspace.root.join(extra);
        if from.is_file() {
            let to = out.join(extra);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("failed to create `{}`", parent.display()))?;
            }
            std::fs::copy(&from, &to)
                .with_context(|| format!("failed to copy `{}`", from.display()))?;
        }
    }
    let manifest = std::fs::read_to_string(&workspace.manifest_path)
        .with_context(|| format!("failed to read `{}`", workspace.manifest_path.display()))?;
    let manifest = prune_manifest(&manifest, &kept_dirs)
        .with_context(|| format!("failed to prune `{}`", workspace.manifest_path.display()))?;
    std::fs::write(out.join("Cargo.toml"), manifest)
        .with_context(|| format!("failed to write `{}`", out.join("Cargo.toml").display()))?;
    let lock_path = workspace.root.join("Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path)
        .with_context(|| format!("failed to read `{}`", lock_path.display()))?;
    let roots: Vec<(String, String)> = kept
        .iter()
        .map(|&p| {
            (
                workspace.packages[p].name.clone(),
                workspace.packages[p].version.clone(),
            )
        })
        .collect();
    let lock = prune_lockfile(&lock, &roots)
        .with_context(|| format!("failed to prune `{}`", lock_path.display()))?;
    std::fs::write(out.join("Cargo.lock"), lock)
        .with_context(|| format!("failed to write `{}`", out.join("Cargo.lock").display()))?;
    Ok(())
}

/// The root manifest with `members`/`default-members` listing the kept directories and the
/// `[workspace.dependencies]` on dropped path crates removed.
pub fn prune_manifest(text: &str, kept_dirs: &BTreeSet<&str>) -> anyhow::Result<String> {
    let mut document: toml_edit::DocumentMut = text.parse()?;
    let workspace = document
        .get_mut("workspace")
        .and_then(|w| w.as_table_like_mut())
        .context("no [workspace] table")?;
    let members: toml_edit::Array = kept_dirs
        .iter()
        .copied()
        .filter(|d| !d.is_empty())
        .collect();
    workspace.insert("members", toml_edit::value(members.clone()));
    if workspace.contains_key("default-members") {
        workspace.insert("default-members", toml_edit::value(members));
    }
    if let Some(dependencies) = workspace
        .get_mut("dependencies")
        .and_then(|d| d.as_table_like_mut())
    {
        let dropped: Vec<String> = dependencies
            .iter()
            .filter_map(|(name, item)| {
                let path = item.get("path")?.as_str()?;
                let path = path.trim_end_matches('/');
                (!kept_dirs.contains(path)).then(|| name.to_string())
            })
            .collect();
        for name in dropped {
            dependencies.remove(&name);
        }
    }
    Ok(document.to_string())
}

/// `Cargo.lock` with only the packages reachable from `roots` (name, version), the rest of
/// the text untouched, so the order and format stay cargo's own.
pub fn prune_lockfile(text: &str, roots: &[(String, String)]) -> anyhow::Result<String> {
    let mut document: toml_edit::DocumentMut = text.parse()?;
    let packages = document
        .get_mut("package")
        .and_then(|p| p.as_array_of_tables_mut())
        .context("no [[package]] entries")?;
    // (name, version, source, dependency specs) of each entry, in order.
    let entries: Vec<(String, String, Option<String>, Vec<String>)> = packages
        .iter()
        .map(|t| {
            let get = |key: &str| t.get(key).and_then(|v| v.as_str()).map(str::to_string);
            let dependencies = t
                .get("dependencies")
                .and_then(|d| d.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            (
                get("name").unwrap_or_default(),
                get("version").unwrap_or_default(),
                get("source"),
                dependencies,
            )
        })
        .collect();
    let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        by_name.entry(entry.0.as_str()).or_default().push(i);
    }
    let resolve = |spec: &str| -> Option<usize> {
        let mut parts = spec.split(' ');
        let name = parts.next()?;
        let version = parts.next();
        let source = parts
            .next()
            .map(|s| s.trim_start_matches('(').trim_end_matches(')'));
        by_name.get(name)?.iter().copied().find(|&i| {
            version.is_none_or(|v| entries[i].1 == v)
                && source.is_none_or(|s| entries[i].2.as_deref() == Some(s))
        })
    };
    let mut reachable = BTreeSet::new();
    let mut stack: Vec<usize> = Vec::new();
    for (name, version) in roots {
        let index = resolve(&format!("{name} {version}"))
            .with_context(|| format!("`{name} {version}` is not in the lockfile"))?;
        stack.push(index);
    }
    while let Some(i) = stack.pop() {
        if reachable.insert(i) {
            for spec in &entries[i].3 {
                let dep = resolve(spec).with_context(|| {
                    format!(
                        "dependency {spec:?} of `{}` is not in the lockfile",
                        entries[i].0
                    )
                })?;
                stack.push(dep);
            }
        }
    }
    let mut index = 0;
    packages.retain(|_| {
        let keep = reachable.contains(&index);
        index += 1;
        keep
    });
    Ok(document.to_string())
}

/// Lets cargo drop what the pruned workspace does not use (offline, so nothing can be fetched),
/// then checks that every package left is the original lockfile's own, byte for byte in its
/// identity: the pruned workspace builds exactly the versions the full one does.
fn trim_lockfile(dir: &Path, original: &Path, host: &str) -> anyhow::Result<()> {
    cargo_metadata(dir, false, host)?;
    let packages = |path: &Path| -> anyhow::Result<BTreeSet<(String, String, String, String)>> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read `{}`", path.display()))?;
        let document: toml_edit::DocumentMut = text
            .parse()
            .with_context(|| format!("`{}` is not TOML", path.display()))?;
        let Some(entries) = document.get("package").and_then(|p| p.as_array_of_tables()) else {
            return Ok(BTreeSet::new());
        };
        Ok(entries
            .iter()
            .map(|t| {
                let get = |key: &str| {
                    t.get(key)
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_string()
                };
                (get("name"), get("version"), get("source"), get("checksum"))
            })
            .collect())
    };
    let before = packages(original)?;
    let after = packages(&dir.join("Cargo.lock"))?;
    if let Some((name, version, _, _)) = after.difference(&before).next() {
        anyhow::bail!(
            "pruning changed the lockfile: `{name} {version}` is not in `{}` as it is; run `cargo update --workspace` there first",
            original.display()
        );
    }
    Ok(())
}

/// Runs `cargo metadata --locked --offline --filter-platform HOST` on the pruned workspace.
fn verify(dir: &Path, host: &str) -> anyhow::Result<()> {
    cargo_metadata(dir, true, host)
}

/// `cargo metadata --offline --filter-platform HOST` (with `--locked` when `locked`) in `dir`.
fn cargo_metadata(dir: &Path, locked: bool, host: &str) -> anyhow::Result<()> {
    let output = xtask_engine::cargo_command()
        .arg("metadata")
        .args(locked.then_some("--locked"))
        .args(["--offline", "--filter-platform", host])
        .args(["--format-version", "1", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .context("failed to run `cargo metadata`")?;
    anyhow::ensure!(
        output.status.success(),
        "the pruned workspace does not pass `cargo metadata{} --offline --filter-platform {host}`: {}",
        if locked { " --locked" } else { "" },
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

struct CopyRules<'a> {
    package_dir: &'a Path,
    member_dirs: &'a [&'a Path],
    target_dir: &'a Path,
}

/// Copies a package directory, leaving out target directories, VCS data and nested members.
fn copy_tree(from: &Path, to: &Path, rules: &CopyRules<'_>) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("failed to create `{}`", to.display()))?;
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .with_context(|| format!("failed to read `{}`", from.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("failed to read `{}`", from.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        let kind = entry
            .file_type()
            .with_context(|| format!("failed to read `{}`", path.display()))?;
        if kind.is_dir() {
            if name == "target"
                || name == ".git"
                || path == rules.target_dir
                || (path != rules.package_dir && rules.member_dirs.contains(&path.as_path()))
            {
                continue;
            }
            copy_tree(&path, &to.join(&name), rules)?;
        } else if kind.is_file() {
            std::fs::copy(&path, to.join(&name))
                .with_context(|| format!("failed to copy `{}`", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"# This file is automatically @generated by Cargo.
# It is not intended for manual editing.
version = 4

[[package]]
name = "app"
version = "0.1.0"
dependencies = [
 "lib",
 "serde 1.0.0",
]

[[package]]
name = "lib"
version = "0.1.0"

[[package]]
name = "other"
version = "0.1.0"
dependencies = [
 "serde 2.0.0",
]

[[package]]
name = "serde"
version = "1.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "aa"

[[package]]
name = "serde"
version = "2.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "bb"
"#;

    #[test]
    fn the_lockfile_keeps_what_the_roots_reach_in_cargos_format() {
        let pruned = prune_lockfile(LOCK, &[("app".into(), "0.1.0".into())]).unwrap();
        let names: Vec<&str> = pruned
            .lines()
            .filter(|l| l.starts_with("name = ") || l.starts_with("version = \""))
            .collect();
        assert_eq!(
            names,
            vec![
                "name = \"app\"",
                "version = \"0.1.0\"",
                "name = \"lib\"",
                "version = \"0.1.0\"",
                "name = \"serde\"",
                "version = \"1.0.0\""
            ]
        );
        assert!(pruned.starts_with("# This file is automatically @generated by Cargo.\n"));
        assert!(
            pruned.contains("\n\n[[package]]\nname = \"lib\"\nversion = \"0.1.0\"\n\n[[package]]")
        );
    }

    #[test]
    fn the_manifest_lists_only_the_kept_members() {
        let manifest = "[workspace]\nmembers = [\"xtask\", \"crates/*\"]\ndefault-members = [\"xtask\"]\n\n[workspace.dependencies]\nserde = \"1\"\nlib = { path = \"crates/lib\" }\ngone = { path = \"crates/gone\" }\n";
        let kept: BTreeSet<&str> = ["apps/app", "crates/lib"].into_iter().collect();
        let pruned = prune_manifest(manifest, &kept).unwrap();
        assert_eq!(
            pruned,
            "[workspace]\nmembers = [\"apps/app\", \"crates/lib\"]\ndefault-members = [\"apps/app\", \"crates/lib\"]\n\n[workspace.dependencies]\nserde = \"1\"\nlib = { path = \"crates/lib\" }\n"
        );
    }
}

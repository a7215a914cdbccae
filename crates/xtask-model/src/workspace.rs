//! Workspace members, their targets, features and dependency edges, from `cargo metadata`,
//! with each package's effective task definitions.
//!
//! An edge is every dependency cargo resolves to a workspace member: a `path` dependency on a
//! member, and a registry or git dependency on a crate that the root manifest's
//! `[patch.<source>]` or `[replace]` points at a member's path (cargo builds the member in its
//! place, e.g. a workspace-hack crate). Patched dependencies are matched by crate name, not by
//! source or version: an edge too many costs a rebuild, an edge too few a stale cache hit.
//! Patches in `.cargo/config.toml` are not read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cargo_metadata::{DependencyKind, Metadata, TargetKind};

use crate::config::{
    AppConfig, AppOfPackage, ManifestSource, TaskDef, TaskOrigin, WorkspaceConfig, applies_to,
    check_talks_to, parse_package_config, parse_workspace_config,
};
use crate::error::{ConfigProblem, ModelError, UnknownPackage};
use crate::{DependsOn, TaskName};

/// Index of a package in [`Workspace::packages`].
pub type PackageIndex = usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DepKind {
    Normal,
    Build,
    Dev,
}

impl DepKind {
    pub fn name(self) -> &'static str {
        match self {
            DepKind::Normal => "normal",
            DepKind::Build => "build",
            DepKind::Dev => "dev",
        }
    }
}

/// A dependency of one workspace member on another (directly by path, or through a root
/// `[patch]`/`[replace]` of the crate it names), with the kind of that dependency.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub to: PackageIndex,
    pub kind: DepKind,
    /// For a `[target.'cfg(...)'.dependencies]` edge, its platform (`cfg(windows)` or a
    /// triple): cargo uses it only when building for a matching target. Everything else in
    /// the model treats it as any other edge (so keys and `affected` over-approximate, never
    /// miss); the graph shows it.
    pub platform: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    /// Cargo's target kinds: `lib`, `bin`, `test`, `proc-macro`, ...
    pub kinds: Vec<String>,
    pub src_path: PathBuf,
    pub doctest: bool,
    pub test: bool,
    /// Features the target needs; cargo skips it when they are not enabled.
    pub required_features: Vec<String>,
}

impl Target {
    pub fn is_bin(&self) -> bool {
        self.kinds.iter().any(|k| k == "bin")
    }

    pub fn is_lib(&self) -> bool {
        self.kinds.iter().any(|k| {
            matches!(
                k.as_str(),
                "lib" | "rlib" | "dylib" | "cdylib" | "staticlib" | "proc-macro"
            )
        })
    }
}

#[derive(Debug, Clone)]
pub struct Package {
    pub name: String,
    pub version: String,
    /// Cargo's package id, as it appears in `--message-format=json` messages.
    pub id: String,
    pub manifest_path: PathBuf,
    /// Absolute directory of the package.
    pub dir: PathBuf,
    /// Directory relative to the workspace root, with `/` separators ("" for the root package).
    pub relative_dir: String,
    pub edition: String,
    pub publish: bool,
    pub targets: Vec<Target>,
    pub features: BTreeMap<String, Vec<String>>,
    /// Workspace dependencies, sorted and deduplicated.
    pub dependencies: Vec<Edge>,
    /// Effective task definitions for this package (built-ins, workspace tasks that apply,
    /// package overrides and package-only tasks).
    pub tasks: BTreeMap<TaskName, TaskDef>,
    pub app: Option<AppConfig>,
}

impl Package {
    pub fn has_lib(&self) -> bool {
        self.targets.iter().any(Target::is_lib)
    }
}

#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub manifest_path: PathBuf,
    pub target_dir: PathBuf,
    /// Sorted by name.
    pub packages: Vec<Package>,
    pub config: WorkspaceConfig,
}

/// Runs `cargo metadata --no-deps` for the workspace of `manifest_path` and returns its JSON text.
pub fn load_metadata(manifest_path: &Path) -> Result<String, ModelError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(manifest_path)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|error| ModelError::Metadata {
            manifest: manifest_path.to_path_buf(),
            message: error.to_string(),
        })?;
    if !output.status.success() {
        return Err(ModelError::Metadata {
            manifest: manifest_path.to_path_buf(),
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    String::from_utf8(output.stdout).map_err(|_| ModelError::Metadata {
        manifest: manifest_path.to_path_buf(),
        message: "output is not UTF-8".into(),
    })
}

impl Workspace {
    /// Builds the model from `cargo metadata` JSON, reading every member's manifest for its
    /// xtask configuration. All configuration problems are collected and returned together.
    pub fn from_metadata(metadata_json: &str) -> Result<Workspace, ModelError> {
        let metadata: Metadata =
            serde_json::from_str(metadata_json).map_err(|error| ModelError::Metadata {
                manifest: PathBuf::from("Cargo.toml"),
                message: format!("unexpected `cargo metadata` output: {error}"),
            })?;
        let root = metadata.workspace_root.clone().into_std_path_buf();
        let manifest_path = root.join("Cargo.toml");
        let mut problems: Vec<ConfigProblem> = Vec::new();

        let root_text = read(&manifest_path)?;
        let parsed_workspace = parse_workspace_config(
            &ManifestSource {
                path: &manifest_path,
                text: &root_text,
            },
            &mut problems,
        );

        let mut members: Vec<&cargo_metadata::Package> = metadata.workspace_packages();
        members.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
        let index_by_dir: BTreeMap<PathBuf, PackageIndex> = members
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                p.manifest_path
                    .parent()
                    .map(|d| (d.as_std_path().to_path_buf(), i))
            })
            .collect();

        let patched = patched_members(&root, &root_text, &index_by_dir);

        let mut packages = Vec::with_capacity(members.len());
        let mut package_texts: Vec<String> = Vec::with_capacity(members.len());
        let mut talks_to_lines: Vec<Vec<usize>> = Vec::with_capacity(members.len());
        for (member_index, member) in members.iter().enumerate() {
            let manifest = member.manifest_path.as_std_path().to_path_buf();
            let dir = manifest.parent().unwrap_or(&root).to_path_buf();
            let text: String = if manifest == manifest_path {
                root_text.clone()
            } else {
                read(&manifest)?
            };
            let parsed = parse_package_config(
                &ManifestSource {
                    path: &manifest,
                    text: &text,
                },
                &parsed_workspace.tasks,
                &mut problems,
            );

            let mut tasks: BTreeMap<TaskName, TaskDef> = parsed_workspace
                .tasks
                .iter()
                .filter(|(_, (_, filter))| applies_to(filter, member.name.as_str()))
                .map(|(name, (def, _))| (name.clone(), def.clone()))
                .collect();
            for (name, def) in parsed.task_overrides {
                tasks.insert(name, def);
            }

            let mut dependencies: Vec<Edge> = member
                .dependencies
                .iter()
                .filter_map(|dep| {
                    let to = match &dep.path {
                        Some(path) => *index_by_dir.get(path.as_std_path())?,
                        // A registry or git dependency that a root patch builds from a member.
                        None => *patched.get(dep.name.as_str())?,
                    };
                    if to == member_index {
                        return None;
                    }
                    let kind = match dep.kind {
                        DependencyKind::Development => DepKind::Dev,
                        DependencyKind::Build => DepKind::Build,
                        _ => DepKind::Normal,
                    };
                    let platform = dep.target.as_ref().map(|target| target.to_string());
                    Some(Edge { to, kind, platform })
                })
                .collect();
            dependencies.sort();
            dependencies.dedup();

            package_texts.push(text);
            talks_to_lines.push(parsed.talks_to_lines);
            packages.push(Package {
                name: member.name.to_string(),
                version: member.version.to_string(),
                id: member.id.repr.clone(),
                relative_dir: relative_dir(&root, &dir),
                manifest_path: manifest,
                dir,
                edition: member.edition.as_str().to_string(),
                publish: member
                    .publish
                    .as_ref()
                    .is_none_or(|registries| !registries.is_empty()),
                targets: member
                    .targets
                    .iter()
                    .map(|t| Target {
                        name: t.name.clone(),
                        kinds: t.kind.iter().map(target_kind_name).collect(),
                        src_path: t.src_path.clone().into_std_path_buf(),
                        doctest: t.doctest,
                        test: t.test,
                        required_features: t.required_features.clone(),
                    })
                    .collect(),
                features: member.features.clone(),
                dependencies,
                tasks,
                app: parsed.app,
            });
        }

        // `pkg#task` dependencies must name a workspace package; each problem is reported once,
        // in the manifest that declared it.
        let names: BTreeSet<&str> = packages.iter().map(|p| p.name.as_str()).collect();
        let mut check = |file: &Path, text: &str, prefix: &str, def: &TaskDef| {
            for dep in &def.depends_on {
                if let DependsOn::Package { package: other, .. } = dep
                    && !names.contains(other.as_str())
                {
                    let needle = format!("\"{dep}\"");
                    problems.push(ConfigProblem {
                        file: file.to_path_buf(),
                        key: format!("{prefix}.tasks.{}.depends_on", def.name),
                        line: text
                            .find(&needle)
                            .map(|at| text[..at].matches('\n').count() + 1),
                        message: format!(
                            "`{dep}` names `{other}`, which is not a workspace package"
                        ),
                    });
                }
            }
        };
        for (def, _) in parsed_workspace.tasks.values() {
            check(&manifest_path, &root_text, "workspace.metadata.xtask", def);
        }
        for (package, text) in packages.iter().zip(&package_texts) {
            for def in package
                .tasks
                .values()
                .filter(|d| d.depends_on_origin == TaskOrigin::Package)
            {
                check(&package.manifest_path, text, "package.metadata.xtask", def);
            }
        }

        let apps: Vec<AppOfPackage<'_>> = packages
            .iter()
            .zip(&talks_to_lines)
            .filter_map(|(package, lines)| {
                package.app.as_ref().map(|app| AppOfPackage {
                    package: &package.name,
                    manifest: &package.manifest_path,
                    talks_to: &app.talks_to,
                    talks_to_lines: lines,
                })
            })
            .collect();
        check_talks_to(&apps, &mut problems);

        if !problems.is_empty() {
            problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
            problems.dedup();
            return Err(ModelError::Config(problems));
        }
        Ok(Workspace {
            root,
            manifest_path,
            target_dir: metadata.target_directory.into_std_path_buf(),
            packages,
            config: parsed_workspace.config,
        })
    }

    pub fn package_index(&self, name: &str) -> Option<PackageIndex> {
        self.packages
            .binary_search_by(|p| p.name.as_str().cmp(name))
            .ok()
    }

    /// The index of the package `name`, or an error listing every workspace package.
    pub fn require_package(&self, name: &str) -> Result<PackageIndex, UnknownPackage> {
        self.package_index(name).ok_or_else(|| UnknownPackage {
            name: name.to_string(),
            known: self.packages.iter().map(|p| p.name.clone()).collect(),
        })
    }

    /// The package whose directory contains `relative_path` (workspace-relative, `/`-separated),
    /// choosing the innermost package.
    pub fn package_of_path(&self, relative_path: &str) -> Option<PackageIndex> {
        self.packages
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.relative_dir.is_empty()
                    || relative_path == p.relative_dir
                    || relative_path
                        .strip_prefix(p.relative_dir.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
            .max_by_key(|(_, p)| p.relative_dir.len())
            .map(|(i, _)| i)
    }

    /// Absolute cache directory: `XTASK_CACHE_DIR` if set, else the configured one.
    pub fn cache_dir(&self) -> PathBuf {
        match std::env::var_os("XTASK_CACHE_DIR") {
            Some(dir) if !dir.is_empty() => self.root.join(PathBuf::from(dir)),
            _ => self.root.join(&self.config.cache.dir),
        }
    }
}

/// Crate name -> the member that the root manifest's `[patch.<source>]` or `[replace]` builds
/// in its place (entries with a `path` to a member's directory). A manifest that does not parse
/// gives none here; its problems are reported by the configuration parser.
fn patched_members(
    root: &Path,
    root_text: &str,
    index_by_dir: &BTreeMap<PathBuf, PackageIndex>,
) -> BTreeMap<String, PackageIndex> {
    let mut patched = BTreeMap::new();
    let Ok(manifest) = root_text.parse::<toml::Table>() else {
        return patched;
    };
    let mut add = |name: &str, entry: &toml::Value| {
        let Some(path) = entry.get("path").and_then(toml::Value::as_str) else {
            return;
        };
        let name = entry
            .get("package")
            .and_then(toml::Value::as_str)
            .unwrap_or(name);
        if let Some(&member) = index_by_dir.get(&normalize(&root.join(path))) {
            patched.insert(name.to_owned(), member);
        }
    };
    if let Some(sources) = manifest.get("patch").and_then(toml::Value::as_table) {
        for entries in sources.values().filter_map(toml::Value::as_table) {
            for (name, entry) in entries {
                add(name, entry);
            }
        }
    }
    if let Some(replacements) = manifest.get("replace").and_then(toml::Value::as_table) {
        for (spec, entry) in replacements {
            add(&package_id_spec_name(spec), entry);
        }
    }
    patched
}

/// The crate name of a package ID spec: `hack`, `hack:0.1.0`, `hack@0.1.0`,
/// `https://github.com/org/hack#0.1.0` (the URL's last segment) or `…#hack@0.1.0`.
fn package_id_spec_name(spec: &str) -> String {
    let (url, fragment) = match spec.rsplit_once('#') {
        Some((url, fragment)) => (Some(url), fragment),
        None => (None, spec),
    };
    let name = fragment.split([':', '@']).next().unwrap_or(fragment);
    let is_version = name.starts_with(|c: char| c.is_ascii_digit());
    match url {
        Some(url) if is_version || name.is_empty() => url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".git")
            .to_owned(),
        _ => name.to_owned(),
    }
}

/// `path` with `.` and `..` components resolved lexically (patch paths are written relative
/// to the root manifest; cargo's member directories are normalized).
fn normalize(path: &Path) -> PathBuf {
    let mut normalized = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                normalized.pop();
            }
            other => normalized.push(other),
        }
    }
    normalized
}

fn read(path: &Path) -> Result<String, ModelError> {
    std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn relative_dir(root: &Path, dir: &Path) -> String {
    dir.strip_prefix(root)
        .map(|p| {
            p.components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/")
        })
        .unwrap_or_default()
}

fn target_kind_name(kind: &TargetKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{kind:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_id_spec_names() {
        for (spec, name) in [
            ("hack", "hack"),
            ("hack:0.1.0", "hack"),
            ("hack@0.1.0", "hack"),
            ("https://github.com/org/hack#0.1.0", "hack"),
            ("https://github.com/org/hack.git#0.1.0", "hack"),
            ("https://github.com/org/repo#hack@0.1.0", "hack"),
            (
                "registry+https://github.com/rust-lang/crates.io-index#hack:0.1.0",
                "hack",
            ),
        ] {
            assert_eq!(package_id_spec_name(spec), name, "{spec}");
        }
    }

    #[test]
    fn patch_paths_are_normalized() {
        assert_eq!(
            normalize(Path::new("/ws/./crates/../hack")),
            PathBuf::from("/ws/hack")
        );
    }
}

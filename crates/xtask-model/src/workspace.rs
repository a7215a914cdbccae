//! Workspace members, their targets, features and dependency edges, from `cargo metadata`,
//! with each package's effective task definitions.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cargo_metadata::{DependencyKind, Metadata, TargetKind};

use crate::DependsOn;
use crate::config::{
    AppConfig, ManifestSource, TaskDef, TaskOrigin, WorkspaceConfig, applies_to,
    parse_package_config, parse_workspace_config,
};
use crate::error::{ConfigProblem, ModelError, UnknownPackage};

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

/// A dependency of one workspace member on another.
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
    pub tasks: BTreeMap<String, TaskDef>,
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

        let mut packages = Vec::with_capacity(members.len());
        let mut package_texts: Vec<String> = Vec::with_capacity(members.len());
        for member in &members {
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

            let mut tasks: BTreeMap<String, TaskDef> = parsed_workspace
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
                    let to = *index_by_dir.get(dep.path.as_ref()?.as_std_path())?;
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

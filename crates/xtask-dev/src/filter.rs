//! Which file changes trigger which app: a changed path triggers an app only when it is an
//! input of the `build` task of a package in the app's workspace dependency closure (the app
//! included), found by the same discovery rules as the task hash (`xtask_hash::discover_inputs`:
//! `.gitignore` respected, declared outputs, the target dir, the cache dir and nested packages
//! excluded), or when it is a global input (root `Cargo.toml`, `Cargo.lock`, toolchain files,
//! `.cargo/config*`, the configured `global_inputs`) or the root `.env`, which trigger every app.
//!
//! Invariant: no IO but listing and reading the watched packages' directory trees (no file
//! contents are read; the engine hashes them when it builds).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use xtask_graph::dependency_closure;
use xtask_hash::{InputSpec, discover_inputs};
use xtask_model::{DepKind, PackageIndex, TaskName, Workspace};

use crate::apps::AppSpec;

/// The files whose change restarts every app without being a package input.
pub const DOTENV_FILE: &str = ".env";

/// What a batch of changed paths means.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Triggered {
    /// Indices (into the app list) of the apps to rebuild.
    pub apps: BTreeSet<usize>,
    /// Workspace-relative paths that triggered something, sorted.
    pub changed: Vec<String>,
    /// The workspace model `dev` holds between builds may be out of date and must be
    /// reloaded: a `Cargo.toml`, `Cargo.lock`, toolchain file or `.cargo/config*` changed
    /// (what the model, loaded from `cargo metadata`, is built from), or a file was created,
    /// deleted or renamed in a watched package (cargo discovers targets such as
    /// `src/bin/*.rs` by their presence).
    pub reload_model: bool,
}

/// Maps changed paths to the apps they trigger.
#[derive(Debug)]
pub struct WatchFilter {
    root: PathBuf,
    /// Never triggers: the target dir and the cache dir.
    never: Vec<PathBuf>,
    global_include: GlobSet,
    global_exclude: GlobSet,
    /// What the model is loaded from among the global inputs: the builtin ones (root
    /// manifest, toolchain files, cargo configs) and `Cargo.lock`.
    model_inputs: GlobSet,
    /// For each watched package: the apps it triggers and how to list its inputs.
    packages: BTreeMap<PackageIndex, WatchedPackage>,
    all_apps: BTreeSet<usize>,
    package_of_dir: Vec<(String, PackageIndex)>,
}

#[derive(Debug)]
struct WatchedPackage {
    dir: PathBuf,
    apps: BTreeSet<usize>,
    include: Vec<String>,
    outputs: Vec<String>,
    exclude_dirs: Vec<PathBuf>,
    /// Workspace-relative input paths at the last look.
    inputs: BTreeSet<String>,
}

impl WatchFilter {
    pub fn new(workspace: &Workspace, apps: &[AppSpec]) -> anyhow::Result<WatchFilter> {
        let cache_dir = workspace.cache_dir();
        let never = vec![workspace.target_dir.clone(), cache_dir.clone()];
        let mut triggers: BTreeMap<PackageIndex, BTreeSet<usize>> = BTreeMap::new();
        for (app_index, app) in apps.iter().enumerate() {
            let mut closure =
                dependency_closure(workspace, app.package, &[DepKind::Normal, DepKind::Build]);
            closure.insert(app.package);
            for package in closure {
                triggers.entry(package).or_default().insert(app_index);
            }
        }
        let mut packages = BTreeMap::new();
        for (index, apps) in triggers {
            let package = &workspace.packages[index];
            let (include, outputs) = match package.tasks.get(&TaskName::BUILD) {
                Some(def) => (def.inputs.clone(), def.outputs.clone()),
                None => (Vec::new(), Vec::new()),
            };
            let mut exclude_dirs = never.clone();
            exclude_dirs.extend(
                workspace
                    .packages
                    .iter()
                    .filter(|other| other.dir != package.dir && other.dir.starts_with(&package.dir))
                    .map(|other| other.dir.clone()),
            );
            let mut watched = WatchedPackage {
                dir: package.dir.clone(),
                apps,
                include,
                outputs,
                exclude_dirs,
                inputs: BTreeSet::new(),
            };
            watched.inputs = watched
                .list(&workspace.root)
                .with_context(|| format!("failed to list the inputs of `{}`", package.name))?;
            packages.insert(index, watched);
        }
        let mut include = vec!["Cargo.lock".to_string(), DOTENV_FILE.to_string()];
        let mut exclude = Vec::new();
        let model_inputs: Vec<String> = xtask_engine::BUILTIN_GLOBAL_INPUTS
            .iter()
            .map(|g| g.to_string())
            .chain(["Cargo.lock".to_string()])
            .collect();
        for glob in xtask_engine::BUILTIN_GLOBAL_INPUTS
            .iter()
            .map(|g| g.to_string())
            .chain(workspace.config.global_inputs.iter().cloned())
        {
            match glob.strip_prefix('!') {
                Some(negated) => exclude.push(negated.to_string()),
                None => include.push(glob),
            }
        }
        let mut package_of_dir: Vec<(String, PackageIndex)> = workspace
            .packages
            .iter()
            .enumerate()
            .map(|(i, p)| (p.relative_dir.clone(), i))
            .collect();
        // Longest directory first, so the innermost package wins.
        package_of_dir.sort_by_key(|entry| std::cmp::Reverse(entry.0.len()));
        Ok(WatchFilter {
            root: workspace.root.clone(),
            never,
            global_include: glob_set(&include)?,
            global_exclude: glob_set(&exclude)?,
            model_inputs: glob_set(&model_inputs)?,
            packages,
            all_apps: (0..apps.len()).collect(),
            package_of_dir,
        })
    }

    /// The directories to watch: each watched package recursively, the workspace root and
    /// `.cargo/` (for the global inputs) not recursively.
    pub fn watch_roots(&self) -> Vec<(PathBuf, bool)> {
        let mut roots: Vec<(PathBuf, bool)> = Vec::new();
        let mut dirs: Vec<&PathBuf> = self.packages.values().map(|p| &p.dir).collect();
        dirs.sort();
        for dir in dirs {
            if !roots.iter().any(|(r, _)| dir.starts_with(r)) {
                roots.push((dir.clone(), true));
            }
        }
        if !roots.iter().any(|(r, _)| *r == self.root) {
            roots.push((self.root.clone(), false));
            let cargo_dir = self.root.join(".cargo");
            if cargo_dir.is_dir() {
                roots.push((cargo_dir, false));
            }
        }
        roots
    }

    /// Which apps the changed `paths` (absolute) trigger. Re-lists the inputs of each package
    /// a path falls in, so created, deleted and renamed files are seen.
    pub fn classify(&mut self, paths: &[PathBuf]) -> Triggered {
        let mut triggered = Triggered::default();
        let mut by_package: BTreeMap<PackageIndex, Vec<String>> = BTreeMap::new();
        for path in paths {
            if self.never.iter().any(|dir| path.starts_with(dir)) {
                continue;
            }
            let Some(relative) = relative(&self.root, path) else {
                continue;
            };
            if relative == "Cargo.toml"
                || relative.ends_with("/Cargo.toml")
                || self.model_inputs.is_match(&relative)
            {
                triggered.reload_model = true;
            }
            if self.is_global_input(&relative) {
                triggered.apps.extend(self.all_apps.iter().copied());
                triggered.changed.push(relative);
                continue;
            }
            let Some(package) = self.package_of(&relative) else {
                continue;
            };
            if self.packages.contains_key(&package) {
                by_package.entry(package).or_default().push(relative);
            }
        }
        for (package, changed) in by_package {
            let Some(watched) = self.packages.get_mut(&package) else {
                continue;
            };
            // A listing error (a directory vanishing mid-walk) counts as a change.
            let now = watched.list(&self.root).ok();
            let set_changed = now.as_ref() != Some(&watched.inputs);
            let mut hit = false;
            for path in changed {
                let prefix = format!("{path}/");
                let is_input = watched.inputs.contains(&path)
                    || now.as_ref().is_some_and(|n| n.contains(&path))
                    // A directory created, moved or deleted with inputs inside.
                    || (set_changed
                        && (watched.inputs.range(prefix.clone()..).next().is_some_and(|p| p.starts_with(&prefix))
                            || now.as_ref().is_some_and(|n| n.range(prefix.clone()..).next().is_some_and(|p| p.starts_with(&prefix)))));
                if is_input {
                    hit = true;
                    triggered.changed.push(path);
                }
            }
            if hit {
                triggered.apps.extend(watched.apps.iter().copied());
                triggered.reload_model |= set_changed;
            }
            if let Some(now) = now {
                watched.inputs = now;
            }
        }
        triggered.changed.sort();
        triggered.changed.dedup();
        triggered
    }

    /// Whether `path` (absolute) was an input the last time its package was listed, or is a
    /// global input. No IO: it answers from the last listing, so a file created since is
    /// not known yet (the batch's classification lists again).
    pub fn is_known_input(&self, path: &Path) -> bool {
        if self.never.iter().any(|dir| path.starts_with(dir)) {
            return false;
        }
        let Some(relative) = relative(&self.root, path) else {
            return false;
        };
        if self.is_global_input(&relative) {
            return true;
        }
        self.package_of(&relative)
            .and_then(|package| self.packages.get(&package))
            .is_some_and(|watched| watched.inputs.contains(&relative))
    }

    fn is_global_input(&self, relative: &str) -> bool {
        self.global_include.is_match(relative) && !self.global_exclude.is_match(relative)
    }

    fn package_of(&self, relative: &str) -> Option<PackageIndex> {
        self.package_of_dir
            .iter()
            .find(|(dir, _)| {
                dir.is_empty()
                    || relative == dir
                    || relative
                        .strip_prefix(dir.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
            .map(|(_, index)| *index)
    }
}

impl WatchedPackage {
    fn list(&self, root: &Path) -> anyhow::Result<BTreeSet<String>> {
        let files = discover_inputs(&InputSpec {
            workspace_root: root,
            package_dir: &self.dir,
            include: &self.include,
            exclude_globs: &self.outputs,
            exclude_dirs: &self.exclude_dirs,
        })?;
        Ok(files.into_iter().map(|f| f.relative_path).collect())
    }
}

fn relative(root: &Path, path: &Path) -> Option<String> {
    let rest = path.strip_prefix(root).ok()?;
    let parts: Vec<&str> = rest
        .components()
        .map(|c| c.as_os_str().to_str())
        .collect::<Option<_>>()?;
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn glob_set(globs: &[String]) -> anyhow::Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        builder.add(
            GlobBuilder::new(glob)
                .literal_separator(true)
                .build()
                .with_context(|| format!("invalid global input glob `{glob}`"))?,
        );
    }
    Ok(builder.build()?)
}

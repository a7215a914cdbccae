//! A task's declared outputs (not stdout, see [`crate::stdout`]): collecting a custom task's
//! output globs (relative to the package directory) after it ran, for the cache, and where
//! restoring any task's cached outputs may write. Only the static prefix of each glob is
//! walked.

use std::path::Path;

use anyhow::Context;
use globset::{Glob, GlobSetBuilder};
use xtask_cache::{AllowedOutputs, OutputFile, OutputRoot};
use xtask_model::{Package, TaskDef, TaskKind, Workspace};

use crate::plan::CargoSettings;

/// The files (and symlinks) under `package.dir` matching `globs`, sorted, workspace-relative.
pub fn collect_outputs(
    workspace_root: &Path,
    package: &Package,
    globs: &[String],
) -> anyhow::Result<Vec<OutputFile>> {
    if globs.is_empty() {
        return Ok(Vec::new());
    }
    let mut include = GlobSetBuilder::new();
    let mut exclude = GlobSetBuilder::new();
    let mut prefixes = Vec::new();
    for glob in globs {
        let (set, pattern) = match glob.strip_prefix('!') {
            Some(p) => (&mut exclude, p),
            None => (&mut include, glob.as_str()),
        };
        set.add(Glob::new(pattern).with_context(|| format!("invalid output glob {glob:?}"))?);
        if !glob.starts_with('!') {
            prefixes.push(static_prefix(pattern));
        }
    }
    let include = include.build().context("invalid output globs")?;
    let exclude = exclude.build().context("invalid output globs")?;
    prefixes.sort();
    prefixes.dedup();
    let mut found = std::collections::BTreeMap::new();
    for prefix in prefixes {
        let start = package.dir.join(&prefix);
        walk(&start, &mut |path| {
            let Ok(relative) = path.strip_prefix(&package.dir) else {
                return;
            };
            let relative = to_slash(relative);
            if include.is_match(&relative) && !exclude.is_match(&relative) {
                let workspace_relative =
                    to_slash(path.strip_prefix(workspace_root).unwrap_or(path));
                found.insert(
                    workspace_relative.clone(),
                    OutputFile {
                        root: OutputRoot::Workspace,
                        relative_path: workspace_relative,
                        absolute_path: path.to_path_buf(),
                    },
                );
            }
        })?;
    }
    Ok(found.into_values().collect())
}

/// Where restoring `def`'s cached outputs for `package` may write: for a cargo task the
/// artifacts cargo uplifts into the profile directory `settings` builds (`debug` or `release`,
/// also under the explicit target's triple), never `deps/`, `build/`, `.fingerprint/` or
/// `incremental/`; for a custom task the paths in the package matching its declared `outputs`
/// globs, exactly what [`collect_outputs`] stores.
pub(crate) fn allowed_outputs(
    workspace: &Workspace,
    package: &Package,
    def: &TaskDef,
    settings: &CargoSettings,
) -> anyhow::Result<AllowedOutputs> {
    match def.kind {
        TaskKind::Cargo(_) => {
            let profile_dir = if settings.release { "release" } else { "debug" };
            Ok(AllowedOutputs::cargo_artifacts(&[profile_dir]))
        }
        TaskKind::Custom { .. } => {
            let Ok(package_dir) = package.dir.strip_prefix(&workspace.root) else {
                return Ok(AllowedOutputs::nothing());
            };
            AllowedOutputs::package_globs(&to_slash(package_dir), &def.outputs).with_context(|| {
                format!(
                    "invalid `outputs` of task `{}` in package `{}`",
                    def.name, package.name
                )
            })
        }
    }
}

/// The directory part of a glob before its first wildcard: `out/**` -> `out`.
fn static_prefix(glob: &str) -> String {
    let mut parts = Vec::new();
    for part in glob.split('/') {
        if part.contains(['*', '?', '[', '{']) {
            break;
        }
        parts.push(part);
    }
    if parts.len() == glob.split('/').count() {
        parts.pop(); // a literal file path: walk its directory
    }
    parts.join("/")
}

fn walk(path: &Path, visit: &mut dyn FnMut(&Path)) -> anyhow::Result<()> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(error).with_context(|| format!("failed to read `{}`", path.display()));
        }
    };
    if metadata.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .with_context(|| format!("failed to read `{}`", path.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        entries.sort();
        for entry in entries {
            walk(&entry, visit)?;
        }
    } else {
        visit(path);
    }
    Ok(())
}

pub(crate) fn to_slash(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_prefixes() {
        assert_eq!(static_prefix("out/**"), "out");
        assert_eq!(static_prefix("dist/a/*.js"), "dist/a");
        assert_eq!(static_prefix("**/*.txt"), "");
        assert_eq!(static_prefix("out/size.txt"), "out");
        assert_eq!(static_prefix("size.txt"), "");
    }
}

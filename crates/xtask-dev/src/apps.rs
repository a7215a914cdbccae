//! Which apps `dev` runs: the workspace packages with `[package.metadata.xtask.app]`, their
//! binary in the target directory, and the environment each one is started with.

use std::collections::BTreeMap;
use std::path::PathBuf;

use xtask_engine::CliError;
use xtask_model::{PackageIndex, Workspace};

/// One app as `dev` starts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    pub name: String,
    pub package: PackageIndex,
    /// The binary cargo builds for it (`<target>/<profile>/<bin>`).
    pub binary: PathBuf,
    pub port: u16,
    pub health_path: String,
    /// The metadata's `env` (non-secret defaults); `.env` overrides it at start time.
    pub env: BTreeMap<String, String>,
}

/// Resolves `names` (empty: every app) to apps, sorted by name. An unknown package or a
/// package without `[package.metadata.xtask.app]` is a [`CliError::config`] (exit code 3).
pub fn select_apps(
    workspace: &Workspace,
    names: &[String],
    release: bool,
) -> anyhow::Result<Vec<AppSpec>> {
    let all: Vec<&str> = workspace
        .packages
        .iter()
        .filter(|p| p.app.is_some())
        .map(|p| p.name.as_str())
        .collect();
    let chosen: Vec<&str> = if names.is_empty() {
        if all.is_empty() {
            return Err(CliError::config(
                "no app in the workspace: add `[package.metadata.xtask.app]` to a package",
            )
            .into());
        }
        all.clone()
    } else {
        names.iter().map(String::as_str).collect()
    };
    let mut apps = Vec::new();
    for name in chosen {
        let index = workspace.package_index(name).ok_or_else(|| {
            CliError::config(format!(
                "unknown app `{name}`: the workspace's apps are {}",
                all.join(", ")
            ))
        })?;
        let package = &workspace.packages[index];
        let Some(app) = &package.app else {
            return Err(CliError::config(format!(
                "`{name}` is not an app (no `[package.metadata.xtask.app]` in `{}`); the workspace's apps are {}",
                package.manifest_path.display(),
                all.join(", ")
            ))
            .into());
        };
        let bins: Vec<&str> = package
            .targets
            .iter()
            .filter(|t| t.is_bin())
            .map(|t| t.name.as_str())
            .collect();
        let bin = if bins.contains(&name) {
            name
        } else if let [only] = bins.as_slice() {
            only
        } else {
            return Err(CliError::config(format!(
                "app `{name}` must have one binary target, or one named `{name}` (found: {})",
                if bins.is_empty() {
                    "none".to_string()
                } else {
                    bins.join(", ")
                }
            ))
            .into());
        };
        let profile = if release { "release" } else { "debug" };
        apps.push(AppSpec {
            name: name.to_string(),
            package: index,
            binary: workspace.target_dir.join(profile).join(bin),
            port: app.port,
            health_path: app.health_path.clone(),
            env: app.env.clone(),
        });
    }
    apps.sort_by(|a, b| a.name.cmp(&b.name));
    apps.dedup_by(|a, b| a.name == b.name);
    Ok(apps)
}

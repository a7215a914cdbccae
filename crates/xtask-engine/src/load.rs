//! Finding and loading the workspace: `--manifest-path` / `-C`, and the model from `cargo
//! metadata` or its cached copy.

use std::path::PathBuf;

use xtask_model::TaskName;

use crate::error::UserError;
use crate::fast;
use crate::output::{GraphFormat, render_graph};

/// Where the workspace is: `--manifest-path`, else the nearest `Cargo.toml` at or above
/// `directory` (`-C`), else above the current directory.
#[derive(Debug, Clone, Default)]
pub struct Location {
    pub manifest_path: Option<PathBuf>,
    pub directory: Option<PathBuf>,
}

impl Location {
    pub fn manifest_path(&self) -> anyhow::Result<PathBuf> {
        if let Some(path) = &self.manifest_path {
            return Ok(path.clone());
        }
        let start = match &self.directory {
            Some(dir) => dir.clone(),
            None => std::env::current_dir()?,
        };
        let start = std::fs::canonicalize(&start)
            .map_err(|e| anyhow::anyhow!("failed to open `{}`: {e}", start.display()))?;
        start
            .ancestors()
            .map(|dir| dir.join("Cargo.toml"))
            .find(|candidate| candidate.is_file())
            .ok_or_else(|| {
                anyhow::anyhow!(UserError(format!(
                    "no `Cargo.toml` found in `{}` or any parent directory",
                    start.display()
                )))
            })
    }
}

/// Loads the workspace model. `cargo metadata` runs only when a manifest, the lockfile, a cargo
/// config, a toolchain file, the member set or the relevant environment changed since the last
/// validated load (see [`fast`]); otherwise its cached JSON is used and the task graph, already
/// validated for that exact model, is not validated again.
pub fn load_workspace(location: &Location) -> anyhow::Result<xtask_model::Workspace> {
    let manifest = location.manifest_path()?;
    let manifest = std::fs::canonicalize(&manifest).unwrap_or(manifest);
    let root_text = std::fs::read_to_string(&manifest).ok();
    let fast = root_text
        .as_deref()
        .and_then(|text| fast::cache_dir_of_root_manifest(&manifest, text))
        .map(|dir| fast::FastPaths::shared(&dir));
    if let (Some(fast), Some(text)) = (&fast, &root_text)
        && let Some(metadata) = fast::cached_metadata(fast, &manifest, text)
        && let Ok(workspace) = xtask_model::Workspace::from_metadata(&metadata)
    {
        let _ = fast.save();
        return Ok(workspace);
    }
    let key = match (&fast, &root_text) {
        (Some(fast), Some(text)) => Some(fast::metadata_key_before_run(fast, &manifest, text)),
        _ => None,
    };
    let metadata = xtask_model::load_metadata(&manifest)?;
    let workspace = xtask_model::Workspace::from_metadata(&metadata)?;
    // A task cycle anywhere is a configuration error for every command.
    xtask_graph::TaskGraph::validate(&workspace)?;
    if let (Some(fast), Some(key)) = (&fast, key) {
        let members = workspace
            .packages
            .iter()
            .map(|p| p.dir.join("Cargo.toml"))
            .collect();
        // A failed write only loses the speed-up.
        let _ = fast::store_metadata(fast, &manifest, key, &metadata, members);
        let _ = fast.save();
    }
    Ok(workspace)
}

/// `graph`: the package graph, or the task graph of `tasks` when given.
pub fn graph(
    location: &Location,
    tasks: &[TaskName],
    format: GraphFormat,
) -> anyhow::Result<String> {
    let workspace = load_workspace(location)?;
    let all: Vec<usize> = (0..workspace.packages.len()).collect();
    let graph = xtask_graph::TaskGraph::build(
        &workspace,
        &xtask_graph::GraphRequest {
            tasks,
            packages: &all,
        },
    )?;
    Ok(render_graph(&workspace, &graph, format))
}

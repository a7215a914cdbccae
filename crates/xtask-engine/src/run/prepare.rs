//! The plan stage: the workspace, the task graph of what was asked, and every task's key.

use xtask_graph::{GraphRequest, TaskGraph};
use xtask_model::{PackageIndex, TaskKind, Workspace};

use super::options::RunOptions;
use crate::error::UserError;
use crate::load::load_workspace;
use crate::plan::{CargoSettings, Plan, Toolchain, plan};

/// The prepared state shared by `run`, `why` and dry runs.
pub(crate) struct Prepared {
    pub workspace: Workspace,
    pub graph: TaskGraph,
    pub planned: Plan,
    pub settings: CargoSettings,
}

pub(crate) fn prepare(options: &RunOptions) -> anyhow::Result<Prepared> {
    prepare_loaded(load_workspace(&options.location)?, options)
}

pub(super) fn prepare_loaded(
    workspace: Workspace,
    options: &RunOptions,
) -> anyhow::Result<Prepared> {
    let mut selected: Vec<PackageIndex> = Vec::new();
    for name in &options.packages {
        let index = workspace.package_index(name).ok_or_else(|| {
            UserError(format!(
                "unknown package `{name}`: workspace packages are {}",
                workspace
                    .packages
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        selected.push(index);
    }
    if selected.is_empty() {
        selected = (0..workspace.packages.len()).collect();
    }
    if let Some(base) = &options.affected {
        let affected = crate::affected::affected_since(&workspace, base)?;
        selected.retain(|p| affected.contains_key(p));
    }
    let graph = TaskGraph::build(
        &workspace,
        &GraphRequest {
            tasks: &options.tasks,
            packages: &selected,
        },
    )?;
    let settings = CargoSettings {
        release: options.release,
        target: options.target.clone(),
    };
    let needs_toolchain = graph
        .nodes
        .iter()
        .any(|n| matches!(n.def.kind, TaskKind::Cargo(_)));
    let fast = crate::fast::FastPaths::shared(&workspace.cache_dir());
    let toolchain = if needs_toolchain {
        Some(Toolchain::detect(&fast, &workspace.root)?)
    } else {
        None
    };
    let planned = plan(
        &workspace,
        &graph,
        toolchain.as_ref(),
        &settings,
        &fast,
        options.jobs,
    )?;
    Ok(Prepared {
        workspace,
        graph,
        planned,
        settings,
    })
}

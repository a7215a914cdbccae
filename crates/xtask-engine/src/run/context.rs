//! The context every stage of a run shares.

use std::sync::Arc;
use std::time::SystemTime;

use xtask_cache::AllowedOutputs;
use xtask_graph::TaskGraph;
use xtask_model::{CargoTask, Workspace};

use super::options::RunOptions;
use super::prepare::Prepared;
use super::schedule::Node;
use crate::fast::FastPaths;
use crate::plan::{CargoSettings, Plan};
use crate::report::Reporter;

/// The context every stage shares: what was asked, what was planned, and where it goes.
pub(crate) struct Run<'a> {
    pub options: &'a RunOptions,
    pub workspace: &'a Workspace,
    pub graph: &'a TaskGraph,
    pub planned: &'a Plan,
    pub settings: &'a CargoSettings,
    /// Per node: where its cached outputs may be restored (nothing outside is ever written).
    pub allowed: Vec<AllowedOutputs>,
    pub fast: Arc<FastPaths>,
    pub reporter: &'a Reporter,
    /// When the run started, before any input was hashed.
    pub started_at: SystemTime,
    /// Each cargo task's layer keys, computed once, before that task's cargo call
    /// (`layers::registry_layer`).
    pub registry_layers: RegistryLayers,
}

/// See [`Run::registry_layers`].
pub(crate) type RegistryLayers =
    std::sync::Mutex<std::collections::HashMap<CargoTask, Option<Arc<LayerKeys>>>>;

/// A cargo call's layer keys in this run (computed by `layers`).
pub(crate) struct LayerKeys {
    /// The registry layer's hash (its shards' hashes derive from it).
    pub registry: String,
    /// The hash of the same key without `Cargo.lock`, which the task hashes cover for each
    /// package's own dependencies: the package units' (see `layers::package_units_hash`).
    pub units_environment: String,
    /// The registry layer's key as JSON (its shards' manifest).
    pub key: serde_json::Value,
}

impl Run<'_> {
    pub fn label(&self, node: Node) -> String {
        self.graph.label(self.workspace, node)
    }
}

impl<'a> Run<'a> {
    pub fn new(
        prepared: &'a Prepared,
        options: &'a RunOptions,
        reporter: &'a Reporter,
        started_at: SystemTime,
    ) -> anyhow::Result<Run<'a>> {
        let workspace = &prepared.workspace;
        let allowed = prepared
            .graph
            .nodes
            .iter()
            .map(|task| {
                crate::task_outputs::allowed_outputs(
                    workspace,
                    &workspace.packages[task.package],
                    &task.def,
                    &prepared.settings,
                )
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Run {
            options,
            workspace,
            graph: &prepared.graph,
            planned: &prepared.planned,
            settings: &prepared.settings,
            allowed,
            fast: FastPaths::shared(&workspace.cache_dir()),
            reporter,
            started_at,
            registry_layers: RegistryLayers::default(),
        })
    }
}

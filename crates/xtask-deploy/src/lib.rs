//! Deployment artifacts generated from the workspace model, and the deploy plan:
//!
//! - `cargo xtask k8s [--check]`: the Kustomize base and overlays in `k8s/` ([`k8s`]), the
//!   monitoring component `k8s/monitoring/` ([`monitoring`]) and the runbooks in
//!   `docs/operations/` ([`runbook`]);
//! - `cargo xtask ci generate [--check]`: the GitHub Actions workflows in `.github/workflows/`
//!   ([`workflows`]);
//! - `cargo xtask deploy ENV [--dry-run]`: the overlay rendered with built images pinned by
//!   digest, applied with `kubectl`, every rollout awaited, a failed one rolled back, then the
//!   smoke check, every app rolled back when it fails ([`deploy()`]); `--rollback`
//!   ([`rollback`]);
//! - `cargo xtask smoke`: the smoke check of the apps at a base URL, on their local ports or in
//!   an environment through `kubectl port-forward` ([`smoke()`]).
//!
//! Invariants:
//! - Generators are pure functions of the validated [`project::Project`]: no IO, no processes,
//!   no clock, so the same workspace always gives byte-identical files.
//! - Every generated file goes through ONE function, [`xtask_engine::generated::sync`], in write or check mode;
//!   check mode writes nothing and reports a diff and the command that fixes it.
//! - Secret values are never written anywhere: manifests hold Secret names and keys only.
//! - Only `deploy`, `rollback` and `smoke --env` start processes (`kubectl`), and only they
//!   (`deploy` without `--dry-run`) talk to a cluster.

pub mod checkov;
mod deploy;
pub mod k8s;
mod k8s_quantity;
pub mod monitoring;
pub mod project;
pub mod runbook;
mod smoke;
pub mod workflows;
pub mod yaml;

use xtask_engine::Location;
use xtask_engine::report::Reporter;
use xtask_model::Workspace;

pub use deploy::{
    DeployOptions, DeployOutcome, DeployPlan, PlannedImage, ROLLOUT_TIMEOUT, RollbackOptions,
    deploy, plan, rollback,
};
pub use project::{App, Environment, Project, project};
pub use smoke::{SmokeOptions, SmokeWhere, smoke};
pub use xtask_engine::generated::{GeneratedFile, GeneratedSet, SyncMode, SyncReport, sync};
pub use xtask_smoke::{SmokeReport, SmokeSettings};

/// Options of `cargo xtask k8s` and `cargo xtask ci generate`.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub location: Location,
    /// Check instead of write: nothing is written, differences are reported.
    pub check: bool,
}

/// The files of `cargo xtask k8s`: the Kustomize tree, its monitoring component and the
/// runbooks.
pub fn k8s_set(project: &Project) -> GeneratedSet {
    let mut files = k8s::files(project);
    files.extend(monitoring::files(project));
    files.extend(runbook::files(project));
    files.sort_by(|a, b| a.path.cmp(&b.path));
    GeneratedSet {
        command: "cargo xtask k8s",
        owned_dirs: vec!["k8s", monitoring::RUNBOOK_DIR],
        files,
    }
}

/// The files of `cargo xtask ci generate`.
pub fn workflows_set(project: &Project) -> GeneratedSet {
    GeneratedSet {
        command: "cargo xtask ci generate",
        owned_dirs: vec![".github/workflows"],
        files: workflows::files(project),
    }
}

/// Both sets, for the drift test.
pub fn generated_sets(workspace: &Workspace) -> anyhow::Result<Vec<GeneratedSet>> {
    let project = project(workspace)?;
    Ok(vec![k8s_set(&project), workflows_set(&project)])
}

/// `cargo xtask k8s [--check]`; `Ok(false)` when `--check` found differences.
pub fn k8s(options: &GenerateOptions, reporter: &Reporter) -> anyhow::Result<bool> {
    let workspace = xtask_engine::load_workspace(&options.location)?;
    let project = project(&workspace)?;
    if project.apps.is_empty() {
        return Err(xtask_engine::UserError(
            "no package declares `[package.metadata.xtask.app]`: there is nothing to deploy"
                .to_string(),
        )
        .into());
    }
    generate(&workspace, &k8s_set(&project), options.check, reporter)
}

/// `cargo xtask ci generate [--check]`; `Ok(false)` when `--check` found differences.
pub fn ci_generate(options: &GenerateOptions, reporter: &Reporter) -> anyhow::Result<bool> {
    let workspace = xtask_engine::load_workspace(&options.location)?;
    let project = project(&workspace)?;
    generate(
        &workspace,
        &workflows_set(&project),
        options.check,
        reporter,
    )
}

fn generate(
    workspace: &Workspace,
    set: &GeneratedSet,
    check: bool,
    reporter: &Reporter,
) -> anyhow::Result<bool> {
    xtask_engine::generated::sync_and_report(
        &workspace.root,
        set,
        SyncMode::from_check(check),
        reporter,
    )
}

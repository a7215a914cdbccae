//! Exit codes, and the mapping from an error to the documented exit code.

use xtask_graph::GraphError;
use xtask_model::ModelError;

/// The documented exit codes of `cargo xtask` (see `cargo xtask --help`).
pub mod exit_code {
    /// Everything succeeded.
    pub const SUCCESS: i32 = 0;
    /// At least one task failed (or a check, for `ci`).
    pub const TASK_FAILED: i32 = 1;
    /// The command line is wrong (clap's own code).
    pub const USAGE: i32 = 2;
    /// The configuration is invalid: unknown key, wrong type, bad value (also of an `XTASK_*` or
    /// `TURBO_*` variable), task cycle, unknown task or package. Nothing was run and nothing was written to the cache.
    pub const CONFIG: i32 = 3;
    /// The environment failed: `cargo metadata`, git, or the file system.
    pub const ENVIRONMENT: i32 = 4;
    /// A release was refused before anything changed: dirty tree, wrong branch, failing tests.
    pub const REFUSED: i32 = 5;
}

/// A command refused to start because the repository is not in a state it may act on (a
/// release from a dirty tree, another branch, failing tests). Nothing was changed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// A mistake in what the user asked for (an unknown package, a bad `PKG:TASK`); like
/// [`xtask_model::UnknownPackage`], it exits with [`exit_code::CONFIG`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UserError(pub String);

/// The exit code for an error returned by an engine function.
pub fn exit_code_for(error: &anyhow::Error) -> i32 {
    for cause in error.chain() {
        if let Some(model) = cause.downcast_ref::<ModelError>() {
            return match model {
                ModelError::Config(_) => exit_code::CONFIG,
                ModelError::Metadata { .. } | ModelError::Io { .. } => exit_code::ENVIRONMENT,
            };
        }
        if cause.downcast_ref::<Refused>().is_some() {
            return exit_code::REFUSED;
        }
        if cause.downcast_ref::<GraphError>().is_some()
            || cause.downcast_ref::<UserError>().is_some()
            || cause
                .downcast_ref::<xtask_model::UnknownPackage>()
                .is_some()
            || cause
                .downcast_ref::<xtask_remote::SettingsError>()
                .is_some()
        {
            return exit_code::CONFIG;
        }
    }
    exit_code::ENVIRONMENT
}

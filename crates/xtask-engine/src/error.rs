//! The documented exit codes, and [`CliError`]: an error with the exit code it ends the command
//! with, decided where the error is made or received (cargo's `CliError { error, exit_code }`).

use std::fmt;

use xtask_graph::GraphError;
use xtask_model::{ModelError, UnknownPackage};
use xtask_remote::SettingsError;

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

/// An error and the exit code it ends the command with.
///
/// Made where the error is classified: a mistake in what the user asked for or configured is
/// [`CliError::config`] (exit code 3), a refusal to act on the repository's state
/// [`CliError::refused`] (5); the errors of the crates below the engine are classified where
/// the engine receives them (`From<ModelError>`, `From<GraphError>`, ...). It travels through
/// `anyhow` like any error, context included, and keeps its code: [`exit_code_for`] reads it
/// back. An error made any other way (a file, a process, the network) failed in the
/// environment (exit code 4).
#[derive(Debug)]
pub struct CliError {
    pub error: anyhow::Error,
    pub exit_code: i32,
}

impl CliError {
    pub fn new(error: impl Into<anyhow::Error>, exit_code: i32) -> CliError {
        CliError {
            error: error.into(),
            exit_code,
        }
    }

    /// A mistake in the configuration or in what was asked for: an unknown package, a bad
    /// `PKG:TASK`, a base that is not a commit ([`exit_code::CONFIG`]).
    pub fn config(message: impl Into<String>) -> CliError {
        CliError::new(anyhow::Error::msg(message.into()), exit_code::CONFIG)
    }

    /// A command refused to start because the repository is not in a state it may act on (a
    /// release from a dirty tree, another branch, failing tests); nothing was changed
    /// ([`exit_code::REFUSED`]).
    pub fn refused(message: impl Into<String>) -> CliError {
        CliError::new(anyhow::Error::msg(message.into()), exit_code::REFUSED)
    }
}

/// The exit code `error` carries: that of the outermost [`CliError`] in its chain (whatever
/// context was added since it was made), else [`exit_code::ENVIRONMENT`].
pub fn exit_code_for(error: &anyhow::Error) -> i32 {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<CliError>())
        .map_or(exit_code::ENVIRONMENT, |cli| cli.exit_code)
}

/// An error that reaches a command's boundary keeps the exit code it carries.
impl From<anyhow::Error> for CliError {
    fn from(error: anyhow::Error) -> CliError {
        let exit_code = exit_code_for(&error);
        CliError { error, exit_code }
    }
}

/// An invalid configuration (exit code 3); `cargo metadata` or a manifest that cannot be
/// read is the environment's (4).
impl From<ModelError> for CliError {
    fn from(error: ModelError) -> CliError {
        let exit_code = match error {
            ModelError::Config(_) => exit_code::CONFIG,
            ModelError::Metadata { .. } | ModelError::Io { .. } => exit_code::ENVIRONMENT,
        };
        CliError::new(error, exit_code)
    }
}

/// A task cycle or an unknown task (exit code 3).
impl From<GraphError> for CliError {
    fn from(error: GraphError) -> CliError {
        CliError::new(error, exit_code::CONFIG)
    }
}

/// A package name that is not a member (exit code 3).
impl From<UnknownPackage> for CliError {
    fn from(error: UnknownPackage) -> CliError {
        CliError::new(error, exit_code::CONFIG)
    }
}

/// A bad remote cache setting, in the manifest or an `XTASK_*` / `TURBO_*` variable (exit
/// code 3).
impl From<SettingsError> for CliError {
    fn from(error: SettingsError) -> CliError {
        CliError::new(error, exit_code::CONFIG)
    }
}

/// Shows the error as it was made: its own message here, its causes as its source, so a
/// `CliError` inside another error's chain prints as if it were not there.
impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    fn failing(error: CliError) -> anyhow::Result<()> {
        Err(error).context("while loading `Cargo.toml`")
    }

    #[test]
    fn the_exit_code_survives_context_and_the_message_reads_as_made() {
        let error = failing(CliError::config("unknown package `nope`")).unwrap_err();
        assert_eq!(exit_code_for(&error), exit_code::CONFIG);
        let cli = CliError::from(error);
        assert_eq!(cli.exit_code, exit_code::CONFIG);
        assert_eq!(
            format!("{:#}", cli.error),
            "while loading `Cargo.toml`: unknown package `nope`"
        );
        let refused = failing(CliError::refused("the tree is dirty")).unwrap_err();
        assert_eq!(exit_code_for(&refused), exit_code::REFUSED);
    }

    #[test]
    fn an_unclassified_error_is_the_environments() {
        let error = std::fs::read("/nonexistent/xtask")
            .context("failed to read `/nonexistent/xtask`")
            .unwrap_err();
        assert_eq!(CliError::from(error).exit_code, exit_code::ENVIRONMENT);
    }

    #[test]
    fn a_typed_error_keeps_its_causes() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let model = ModelError::Io {
            path: "a/Cargo.toml".into(),
            source: io,
        };
        let error = anyhow::Error::from(CliError::from(model)).context("loading");
        assert_eq!(exit_code_for(&error), exit_code::ENVIRONMENT);
        let chain: Vec<String> = error.chain().map(|cause| cause.to_string()).collect();
        assert_eq!(
            chain,
            ["loading", "failed to read `a/Cargo.toml`: gone", "gone"]
        );
        let config = CliError::from(ModelError::Config(Vec::new()));
        assert_eq!(config.exit_code, exit_code::CONFIG);
    }

    #[test]
    fn the_outermost_classification_wins() {
        let inner = anyhow::Error::from(CliError::refused("dirty"));
        let outer = anyhow::Error::from(CliError::new(inner, exit_code::CONFIG));
        assert_eq!(exit_code_for(&outer), exit_code::CONFIG);
    }
}

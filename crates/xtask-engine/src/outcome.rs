//! What every `cargo xtask` command returns: an [`Outcome`] (its exit code and its data for
//! stdout) or a [`CliError`] (the error and its exit code). `main` only prints and exits.

use crate::error::{CliError, exit_code};

/// Every command's result.
pub type CliResult = Result<Outcome, CliError>;

/// How a command that ran to its end ended: its exit code (0, or 1 when a task or a check
/// failed, 4 when `cache doctor` found the remote cache broken) and the data it prints on
/// stdout, which `main` writes. Status and progress went to stderr through the reporter.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Outcome {
    pub exit_code: i32,
    pub stdout: String,
}

impl Outcome {
    /// Exit code 0, nothing on stdout.
    pub fn success() -> Outcome {
        Outcome::print(String::new())
    }

    /// Exit code 0, `stdout` printed.
    pub fn print(stdout: impl Into<String>) -> Outcome {
        Outcome {
            exit_code: exit_code::SUCCESS,
            stdout: stdout.into(),
        }
    }

    /// Exit code 0 when `passed`, else [`exit_code::TASK_FAILED`]; nothing on stdout.
    pub fn passed(passed: bool) -> Outcome {
        Outcome {
            exit_code: if passed {
                exit_code::SUCCESS
            } else {
                exit_code::TASK_FAILED
            },
            stdout: String::new(),
        }
    }

    /// The same exit code, with `stdout` printed.
    pub fn with_stdout(self, stdout: impl Into<String>) -> Outcome {
        Outcome {
            stdout: stdout.into(),
            ..self
        }
    }
}

/// The number of parallel jobs for `-j N`: N (at least 1), else one per core.
pub fn job_count(requested: Option<usize>) -> usize {
    requested
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_check_exits_1_and_keeps_its_stdout() {
        assert_eq!(Outcome::passed(true), Outcome::success());
        let failed = Outcome::passed(false).with_stdout("report\n");
        assert_eq!(failed.exit_code, exit_code::TASK_FAILED);
        assert_eq!(failed.stdout, "report\n");
        assert_eq!(Outcome::print("x").exit_code, exit_code::SUCCESS);
    }

    #[test]
    fn jobs_are_at_least_one() {
        assert_eq!(job_count(Some(0)), 1);
        assert_eq!(job_count(Some(3)), 3);
        assert!(job_count(None) >= 1);
    }
}

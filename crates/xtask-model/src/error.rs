//! Errors of the model: a failed `cargo metadata`, unreadable files, and configuration problems
//! that carry their file, key and line.

use std::fmt;
use std::path::PathBuf;

/// One problem in the configuration, located as precisely as the parser allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The manifest the problem is in, as given to the model (usually absolute).
    pub file: PathBuf,
    /// Dotted key path, e.g. `workspace.metadata.xtask.tasks.gen.depends_on`.
    pub key: String,
    /// 1-based line of the key (or of its enclosing table), when known.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(
                f,
                "{}:{line}: `{}`: {}",
                self.file.display(),
                self.key,
                self.message
            ),
            None => write!(
                f,
                "{}: `{}`: {}",
                self.file.display(),
                self.key,
                self.message
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("`cargo metadata` failed for `{manifest}`: {message}")]
    Metadata { manifest: PathBuf, message: String },
    #[error("failed to read `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration ({} problem{}):\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, render_problems(.0))]
    Config(Vec<ConfigProblem>),
}

/// A package name that is not a member of the workspace (a user mistake: the engine maps it to
/// the configuration exit code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown package `{name}`: workspace packages are {}", .known.join(", "))]
pub struct UnknownPackage {
    pub name: String,
    /// Every workspace package, sorted by name.
    pub known: Vec<String>,
}

fn render_problems(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

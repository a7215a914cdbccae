//! The error type of the cache: every variant names the file, archive member or key it is about.

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong in the cache.
///
/// `Corrupt` means the cache itself holds bad data (the engine treats it as a miss and stores again);
/// `UnsafePath` means an entry tried to write outside its roots and was refused before anything was
/// written; `Io` is an operating-system error on the named path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    #[error("i/o error on `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("corrupt cache data at `{}`: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("refusing to restore `{entry}`: {reason}")]
    UnsafePath { entry: String, reason: String },
    #[error("cannot cache output `{}`: {reason}", path.display())]
    UnsupportedOutput { path: PathBuf, reason: String },
    /// An entry fetched from elsewhere (`origin`, e.g. a remote cache URL) failed verification;
    /// nothing of it was written.
    #[error("rejected the entry from {origin}: {reason}")]
    Rejected { origin: String, reason: String },
    /// A custom task's `outputs` glob that does not parse (building an [`crate::AllowedOutputs`]).
    #[error("invalid output glob `{glob}`: {reason}")]
    InvalidOutputGlob { glob: String, reason: String },
    #[error("invalid task hash `{task_hash}`: expected 64 lowercase hex digits")]
    InvalidTaskHash { task_hash: String },
    #[error("invalid {what} `{name}`: {reason}")]
    InvalidName {
        what: &'static str,
        name: String,
        reason: &'static str,
    },
}

impl CacheError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> CacheError {
        CacheError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> CacheError {
        CacheError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unsafe_path(entry: impl Into<String>, reason: impl Into<String>) -> CacheError {
        CacheError::UnsafePath {
            entry: entry.into(),
            reason: reason.into(),
        }
    }
}

impl From<xtask_util::FileError> for CacheError {
    fn from(error: xtask_util::FileError) -> CacheError {
        CacheError::io(error.path, error.source)
    }
}

/// Attaches the path to an `io::Result`: `fs::read(&path).at(&path)?`.
pub(crate) trait IoResultExt<T> {
    fn at(self, path: &Path) -> Result<T, CacheError>;
}

impl<T> IoResultExt<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T, CacheError> {
        self.map_err(|source| CacheError::io(path, source))
    }
}

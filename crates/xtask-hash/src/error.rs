//! The one error type of the crate: every variant names the path (or glob) that failed.

use std::path::PathBuf;

/// Everything that can go wrong while discovering, hashing or decoding.
///
/// Messages are lowercase, have no trailing period and name what failed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// A file or directory could not be read.
    #[error("failed to read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A cache file of this crate could not be written (its directory created, a temporary
    /// file written, renamed into place).
    #[error("{error}: {}", error.source)]
    Write {
        #[from]
        error: xtask_util::FileError,
    },
    /// The directory walker failed (unreadable directory, malformed ignore file, ...).
    #[error("failed to walk `{}`: {source}", path.display())]
    Walk {
        path: PathBuf,
        #[source]
        source: ignore::Error,
    },
    /// A path that must lie inside the workspace root does not.
    #[error("`{}` is not inside the workspace root `{}`", path.display(), workspace_root.display())]
    OutsideWorkspace {
        path: PathBuf,
        workspace_root: PathBuf,
    },
    /// A path is not valid UTF-8, so it cannot be put in a key.
    #[error("path `{}` is not valid utf-8", path.display())]
    NonUtf8Path { path: PathBuf },
    /// A glob does not compile.
    #[error("invalid glob `{glob}`: {source}")]
    Glob {
        glob: String,
        #[source]
        source: globset::Error,
    },
    /// A glob compiles but is not allowed where it is used.
    #[error("invalid glob `{glob}`: {reason}")]
    GlobNotAllowed { glob: String, reason: &'static str },
    /// `Cargo.lock` is not valid TOML or not shaped like a lockfile.
    #[error("failed to parse `{}`: {source}", path.display())]
    Lockfile {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    /// A stored task key manifest was written by a tool with another key schema.
    #[error("task key manifest has schema {found}, this tool reads schema {expected}")]
    ManifestSchema { found: u64, expected: u32 },
    /// A stored task key manifest does not decode.
    #[error("invalid task key manifest: {source}")]
    Manifest {
        #[source]
        source: serde_json::Error,
    },
}

//! The IO error of this crate: what was done, on which path, and the operating system's error.

use std::io;
use std::path::{Path, PathBuf};

/// An IO error on a named path: `failed to write `k8s/base/api.yaml``, with the
/// operating system's error as its source.
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} `{}`", path.display())]
pub struct FileError {
    /// What was being done: `write`, `read`, `create`, ...
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl FileError {
    pub fn new(action: &'static str, path: &Path, source: io::Error) -> FileError {
        FileError {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_the_action_and_the_path_and_keeps_the_cause() {
        let error = FileError::new(
            "write",
            Path::new("k8s/base/api.yaml"),
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert_eq!(error.to_string(), "failed to write `k8s/base/api.yaml`");
        let source = std::error::Error::source(&error).expect("the io error is the source");
        assert!(source.to_string().contains("ermission denied"), "{source}");
    }
}

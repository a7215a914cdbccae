//! [`RelPath`]: a path relative to a root (the workspace, a target directory), in the one form
//! that goes into keys, manifests and archives, and is turned back into an absolute path only
//! by joining it to a root.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// A path relative to a root: components joined by `/`, never absolute, no empty, `.` or `..`
/// component, no NUL, valid UTF-8. So it names the same place under any root, and can never
/// leave it lexically. The empty path is the root itself.
///
/// Made from an absolute path under a root ([`RelPath::new`]) or from stored text
/// ([`RelPath::parse`]); turned back into a path only by [`RelPath::join_to`]. A backslash is
/// an ordinary character of a Unix file name, so it is allowed here; a caller that must also
/// mean the same on Windows (e.g. restoring an archive) refuses it itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath(String);

/// Why a path is not a [`RelPath`]; every variant names the path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelPathError {
    #[error("`{}` is not inside `{}`", path.display(), root.display())]
    Outside { path: PathBuf, root: PathBuf },
    #[error("path `{}` is not valid utf-8", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("`{path}` is not a normalized relative path: {reason}")]
    NotNormalized { path: String, reason: &'static str },
}

impl RelPathError {
    /// What is wrong, without the path (for messages that name it already).
    pub fn reason(&self) -> &'static str {
        match self {
            RelPathError::Outside { .. } => "the path is outside the root",
            RelPathError::NotUtf8 { .. } => "the path is not valid utf-8",
            RelPathError::NotNormalized { reason, .. } => reason,
        }
    }
}

impl RelPath {
    /// `path` relative to `root`: `path` must be `root` or below it, lexically (no `..`
    /// after the root, no symlink resolution), and valid UTF-8.
    pub fn new(root: &Path, path: &Path) -> Result<RelPath, RelPathError> {
        let outside = || RelPathError::Outside {
            path: path.to_path_buf(),
            root: root.to_path_buf(),
        };
        let relative = path.strip_prefix(root).map_err(|_| outside())?;
        let mut text = String::with_capacity(relative.as_os_str().len());
        for component in relative.components() {
            let Component::Normal(part) = component else {
                return Err(outside());
            };
            let part = part.to_str().ok_or_else(|| RelPathError::NotUtf8 {
                path: path.to_path_buf(),
            })?;
            if !text.is_empty() {
                text.push('/');
            }
            text.push_str(part);
        }
        Ok(RelPath(text))
    }

    /// Checks stored text: `""` (the root) or `/`-separated components, none of them empty,
    /// `.` or `..`; not absolute; no NUL.
    pub fn parse(text: &str) -> Result<RelPath, RelPathError> {
        let invalid = |reason| RelPathError::NotNormalized {
            path: text.to_owned(),
            reason,
        };
        if text.is_empty() {
            return Ok(RelPath::default());
        }
        if text.starts_with('/') {
            return Err(invalid("the path is absolute"));
        }
        if text.contains('\0') {
            return Err(invalid("the path contains a NUL byte"));
        }
        for component in text.split('/') {
            match component {
                "" => return Err(invalid("the path has an empty component")),
                "." => return Err(invalid("the path has a `.` component")),
                ".." => return Err(invalid("the path has a `..` component")),
                _ => {}
            }
        }
        Ok(RelPath(text.to_owned()))
    }

    /// `/`-separated; empty for the root.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// Whether this is the root itself (the empty path).
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The path under `root`, one component at a time (so `/` means a directory on every
    /// platform).
    pub fn join_to(&self, root: &Path) -> PathBuf {
        let mut path = root.to_path_buf();
        if !self.is_root() {
            path.extend(self.0.split('/'));
        }
        path
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl AsRef<str> for RelPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_makes_a_slash_separated_path_under_the_root() {
        let root = Path::new("/work/repo");
        let path = RelPath::new(root, Path::new("/work/repo/crates/a/src/lib.rs")).unwrap();
        assert_eq!(path.as_str(), "crates/a/src/lib.rs");
        assert_eq!(path.to_string(), "crates/a/src/lib.rs");
        assert!(RelPath::new(root, root).unwrap().is_root());
    }

    #[test]
    fn new_refuses_a_path_outside_the_root_and_names_both() {
        let root = Path::new("/work/repo");
        for outside in ["/work/other/a", "/work/repo/../other", "/work/repository/a"] {
            let error = RelPath::new(root, Path::new(outside)).unwrap_err();
            assert_eq!(
                error,
                RelPathError::Outside {
                    path: outside.into(),
                    root: root.into()
                }
            );
            assert_eq!(
                error.to_string(),
                format!("`{outside}` is not inside `/work/repo`")
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn new_refuses_a_name_that_is_not_utf8() {
        use std::os::unix::ffi::OsStrExt as _;
        let root = Path::new("/work/repo");
        let path = root.join(std::ffi::OsStr::from_bytes(b"bad\xff.rs"));
        let error = RelPath::new(root, &path).unwrap_err();
        assert_eq!(error, RelPathError::NotUtf8 { path: path.clone() });
        assert!(error.to_string().contains("is not valid utf-8"), "{error}");
    }

    #[test]
    fn parse_accepts_normalized_relative_paths() {
        for text in ["a/b.txt", "debug/.fingerprint", "..a/b..", "a\\b", ""] {
            assert_eq!(RelPath::parse(text).unwrap().as_str(), text);
        }
    }

    #[test]
    fn parse_refuses_with_the_reason_and_names_the_path() {
        let cases = [
            ("/etc/passwd", "the path is absolute"),
            ("../escape", "the path has a `..` component"),
            ("a/../../escape", "the path has a `..` component"),
            ("./a", "the path has a `.` component"),
            ("a//b", "the path has an empty component"),
            ("a/", "the path has an empty component"),
            ("a\0b", "the path contains a NUL byte"),
        ];
        for (text, reason) in cases {
            let error = RelPath::parse(text).unwrap_err();
            assert_eq!(error.reason(), reason, "{text:?}");
            assert_eq!(
                error.to_string(),
                format!("`{text}` is not a normalized relative path: {reason}")
            );
        }
    }

    #[test]
    fn join_to_puts_each_component_under_the_root() {
        let root = Path::new("/tmp/restore");
        let path = RelPath::parse("target/debug/app").unwrap();
        assert_eq!(
            path.join_to(root),
            Path::new("/tmp/restore")
                .join("target")
                .join("debug")
                .join("app")
        );
        assert_eq!(RelPath::default().join_to(root), root);
    }

    #[test]
    fn new_and_join_to_round_trip() {
        let root = Path::new("/work/repo");
        let absolute = Path::new("/work/repo/apps/api/Cargo.toml");
        let relative = RelPath::new(root, absolute).unwrap();
        assert_eq!(relative.join_to(root), absolute);
        assert_eq!(RelPath::parse(relative.as_str()).unwrap(), relative);
    }
}

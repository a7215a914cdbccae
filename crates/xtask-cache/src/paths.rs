//! Lexical checks on the relative paths and symlink targets the cache stores and restores.
//!
//! These never touch the file system: they decide from the text alone whether a path stays under
//! its root. The checks that need the file system (symlinked parent directories) live in `restore`.

use xtask_util::RelPath;

/// An output's path under its root, checked: a [`RelPath`] (forward slashes, no empty, `.` or
/// `..` component, not absolute, no NUL) that names something below the root (not empty) and
/// has no backslash (a separator on Windows: an archive means the same everywhere). Returns the
/// reason when it is not one.
pub(crate) fn output_path(path: &str) -> Result<RelPath, &'static str> {
    if path.is_empty() {
        return Err("the path is empty");
    }
    // An absolute path is reported as such, whatever else is wrong with it.
    if !path.starts_with('/') && path.contains('\\') {
        return Err("the path contains a backslash");
    }
    RelPath::parse(path).map_err(|error| error.reason())
}

/// Checks that `path` is an [`output_path`]. Returns the reason when it is not.
pub(crate) fn check_relative_path(path: &str) -> Result<(), &'static str> {
    output_path(path).map(drop)
}

/// Checks that the symlink at `link_path` (relative to its root, already checked) pointing at
/// `target` stays under that root when `target` is resolved lexically from the link's parent.
pub(crate) fn check_link_target(link_path: &str, target: &str) -> Result<(), &'static str> {
    if target.is_empty() {
        return Err("the symlink target is empty");
    }
    if target.starts_with('/') {
        return Err("the symlink target is absolute");
    }
    if target.contains('\\') {
        return Err("the symlink target contains a backslash");
    }
    if target.contains('\0') {
        return Err("the symlink target contains a NUL byte");
    }
    // Depth of the link's parent directory below the root.
    let mut depth = link_path.split('/').count().saturating_sub(1);
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." => match depth.checked_sub(1) {
                Some(parent) => depth = parent,
                None => return Err("the symlink target leaves its root"),
            },
            _ => depth += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(check_relative_path("a/b.txt"), Ok(()));
        assert_eq!(check_relative_path("debug/.fingerprint"), Ok(()));
        assert_eq!(check_relative_path("..a/b.."), Ok(()));
        assert!(check_relative_path("").is_err());
        assert!(check_relative_path("/etc/passwd").is_err());
        assert!(check_relative_path("../escape").is_err());
        assert!(check_relative_path("a/../../escape").is_err());
        assert!(check_relative_path("./a").is_err());
        assert!(check_relative_path("a//b").is_err());
        assert!(check_relative_path("a/").is_err());
        assert!(check_relative_path("a\\..\\b").is_err());
        assert!(check_relative_path("a\0b").is_err());
    }

    #[test]
    fn link_targets() {
        assert_eq!(check_link_target("bin/tool", "../lib/tool"), Ok(()));
        assert_eq!(check_link_target("a/b/link", "../../c"), Ok(()));
        assert_eq!(check_link_target("link", "./sibling"), Ok(()));
        assert_eq!(check_link_target("a/link", ".."), Ok(()));
        assert!(check_link_target("link", "..").is_err());
        assert!(check_link_target("a/b/link", "../../../c").is_err());
        assert!(check_link_target("a/link", "b/../../../c").is_err());
        assert!(check_link_target("link", "../../etc").is_err());
        assert!(check_link_target("link", "/etc/passwd").is_err());
        assert!(check_link_target("link", "").is_err());
    }
}

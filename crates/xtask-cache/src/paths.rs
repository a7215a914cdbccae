//! Lexical checks on the relative paths and symlink targets the cache stores and restores.
//!
//! These never touch the file system: they decide from the text alone whether a path stays under
//! its root. The checks that need the file system (symlinked parent directories) live in `restore`.

/// Checks that `path` is a normalized relative path: forward slashes, no empty, `.` or `..`
/// component, not absolute, no backslash or NUL. Returns the reason when it is not.
pub(crate) fn check_relative_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("the path is empty");
    }
    if path.starts_with('/') {
        return Err("the path is absolute");
    }
    if path.contains('\\') {
        return Err("the path contains a backslash");
    }
    if path.contains('\0') {
        return Err("the path contains a NUL byte");
    }
    for component in path.split('/') {
        match component {
            "" => return Err("the path has an empty component"),
            "." => return Err("the path has a `.` component"),
            ".." => return Err("the path has a `..` component"),
            _ => {}
        }
    }
    Ok(())
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

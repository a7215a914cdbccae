//! Private copies of fixture trees.

use std::fs;
use std::path::Path;

/// Directories never copied: build output and the task cache of an earlier run in the source.
const SKIPPED: [&str; 2] = ["target", "turbo-like-cache"];

/// Copies the tree `from` into `to` (created if missing), leaving out every `target/` and
/// `turbo-like-cache/` in it. Symlinks are followed. Panics naming the path that failed.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to)
        .unwrap_or_else(|error| panic!("failed to create `{}`: {error}", to.display()));
    let entries = fs::read_dir(from)
        .unwrap_or_else(|error| panic!("failed to read `{}`: {error}", from.display()));
    for entry in entries {
        let entry =
            entry.unwrap_or_else(|error| panic!("failed to read `{}`: {error}", from.display()));
        let name = entry.file_name();
        if SKIPPED.iter().any(|skipped| name == *skipped) {
            continue;
        }
        let source = entry.path();
        if source.is_dir() {
            copy_dir(&source, &to.join(&name));
        } else {
            fs::copy(&source, to.join(&name))
                .unwrap_or_else(|error| panic!("failed to copy `{}`: {error}", source.display()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_the_tree_without_build_output_or_cache() {
        let source = tempfile::tempdir().unwrap();
        for (path, content) in [
            ("Cargo.toml", "[workspace]\n"),
            ("crates/a/src/lib.rs", "pub fn a() {}\n"),
            ("target/debug/a", "binary"),
            ("crates/a/target/x", "nested build output"),
            ("turbo-like-cache/v1/lock", ""),
        ] {
            let path = source.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
        let copy = tempfile::tempdir().unwrap();
        let destination = copy.path().join("new");
        copy_dir(source.path(), &destination);
        assert_eq!(
            fs::read_to_string(destination.join("crates/a/src/lib.rs")).unwrap(),
            "pub fn a() {}\n"
        );
        assert!(destination.join("Cargo.toml").is_file());
        assert!(!destination.join("target").exists());
        assert!(!destination.join("crates/a/target").exists());
        assert!(!destination.join("turbo-like-cache").exists());
    }

    #[test]
    fn a_missing_source_panics_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let panic =
            std::panic::catch_unwind(|| copy_dir(&missing, &dir.path().join("to"))).unwrap_err();
        let message = panic.downcast_ref::<String>().unwrap();
        assert!(
            message.contains(&format!("failed to read `{}`", missing.display())),
            "{message}"
        );
    }
}

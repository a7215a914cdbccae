//! Observed inputs: what a task was seen to read, beyond its declared key.
//!
//! The declared key ([`crate::TaskKey`]) is computed before a task runs, from what the tool
//! can list: the package's files, its dependencies, its configuration. Some inputs are only
//! known once the tool that read them says so (rustc's dep-info names every file it read,
//! `include_str!` targets outside the package and gitignored files included, and the env vars
//! read by `env!`; a build script's `rerun-if-changed` / `rerun-if-env-changed` lines name
//! its own). Those are recorded with the cache entry, like ccache's direct-mode manifests: the
//! declared key finds the entry, and the entry is a hit only if every observed input still
//! has the digest it had when the entry was made ([`ObservedInputs::first_mismatch`]).
//!
//! Paths are portable: relative to the workspace root, with leading `../` components for
//! files outside it, so the same layout on another machine gives the same record and no
//! absolute location is ever stored. Digests follow symlinks (what a compiler reads is the
//! target's content); a directory's digest covers every file below it (cargo's
//! `rerun-if-changed` on a directory watches them all); a missing path is `missing`. Env var
//! values are stored as their sha256 only ([`crate::env_value_digest`]).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use xtask_util::sha256_hex;

/// The field of a stored manifest that holds the observed inputs.
pub const OBSERVED_FIELD: &str = "observed";

/// Digest of a path that does not exist.
pub const MISSING: &str = "missing";

/// Everything a task was observed to read beyond its declared key.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ObservedInputs {
    /// Portable path -> [`observed_digest`].
    pub files: BTreeMap<String, String>,
    /// Var name -> sha256 of its value, `None` when unset.
    pub env: BTreeMap<String, Option<String>>,
}

/// Why an entry's observed inputs no longer hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObservedChange {
    File(String),
    Env(String),
}

impl std::fmt::Display for ObservedChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObservedChange::File(path) => write!(f, "observed input `{path}` changed"),
            ObservedChange::Env(name) => write!(f, "observed env var `{name}` changed"),
        }
    }
}

impl ObservedInputs {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.env.is_empty()
    }

    /// Merges `other` into `self` (the same path or var twice keeps one value: they were
    /// digested in the same run).
    pub fn extend(&mut self, other: &ObservedInputs) {
        for (path, digest) in &other.files {
            self.files.insert(path.clone(), digest.clone());
        }
        for (name, digest) in &other.env {
            self.env.insert(name.clone(), digest.clone());
        }
    }

    /// The first observed input whose current state differs from the recorded one, checking
    /// env vars first (no IO), then files. `None`: every observation still holds.
    pub fn first_mismatch(&self, workspace_root: &Path) -> Option<ObservedChange> {
        self.first_mismatch_with(workspace_root, &observed_digest)
    }

    /// [`ObservedInputs::first_mismatch`] with the caller's [`observed_digest`] (e.g. one that
    /// remembers the digests of one run: several tasks often observe the same files).
    pub fn first_mismatch_with(
        &self,
        workspace_root: &Path,
        digest_of: &dyn Fn(&Path) -> String,
    ) -> Option<ObservedChange> {
        for (name, digest) in &self.env {
            let now = std::env::var(name)
                .ok()
                .map(|value| crate::env_value_digest(&value));
            if &now != digest {
                return Some(ObservedChange::Env(name.clone()));
            }
        }
        for (path, digest) in &self.files {
            if &digest_of(&resolve_portable(workspace_root, path)) != digest {
                return Some(ObservedChange::File(path.clone()));
            }
        }
        None
    }

    /// Reads the observed inputs stored in a manifest (empty when it has none).
    pub fn from_manifest(manifest: &serde_json::Value) -> ObservedInputs {
        manifest
            .get(OBSERVED_FIELD)
            .and_then(|value| ObservedInputs::deserialize(value).ok())
            .unwrap_or_default()
    }

    /// `manifest` (a [`crate::TaskKey::manifest`]) with these observed inputs added.
    pub fn add_to_manifest(&self, mut manifest: serde_json::Value) -> serde_json::Value {
        if let Some(object) = manifest.as_object_mut() {
            object.insert(
                OBSERVED_FIELD.to_string(),
                serde_json::to_value(self).expect("observed inputs always serialize"),
            );
        }
        manifest
    }
}

/// `path` relative to `workspace_root` with `/` separators, `../` for paths outside it.
/// Both must be absolute and lexically normal.
pub fn portable_path(workspace_root: &Path, path: &Path) -> String {
    let path = normalize(path);
    let root = normalize(workspace_root);
    let root_parts: Vec<Component> = root.components().collect();
    let path_parts: Vec<Component> = path.components().collect();
    let common = root_parts
        .iter()
        .zip(&path_parts)
        .take_while(|(a, b)| a == b)
        .count();
    let mut parts: Vec<String> = vec!["..".to_string(); root_parts.len() - common];
    parts.extend(
        path_parts[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

/// The absolute path a portable path names in `workspace_root`.
pub fn resolve_portable(workspace_root: &Path, portable: &str) -> PathBuf {
    normalize(&workspace_root.join(portable))
}

/// Removes `.` and resolves `..` lexically.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The digest of what reading `path` gives: a file's content (symlinks followed, the
/// executable bit marked), a directory's files (recursively, by name and digest), or
/// [`MISSING`].
pub fn observed_digest(path: &Path) -> String {
    let Ok(metadata) = std::fs::metadata(path) else {
        return MISSING.to_string();
    };
    if metadata.is_dir() {
        let mut listing = String::new();
        digest_dir(path, Path::new(""), &mut listing);
        return sha256_hex(format!("dir\n{listing}").as_bytes());
    }
    match std::fs::read(path) {
        Ok(bytes) => {
            let digest = sha256_hex(&bytes);
            if is_executable(&metadata) {
                format!("{digest}{}", crate::files::EXECUTABLE_SUFFIX)
            } else {
                digest
            }
        }
        Err(error) => format!("unreadable: {}", error.kind()),
    }
}

fn digest_dir(dir: &Path, relative: &Path, listing: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let relative = relative.join(&name);
        let Ok(metadata) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if metadata.is_symlink() && std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
            // A link to a directory inside a directory: its target as written, never
            // followed (a link to an ancestor would never end).
            let target = std::fs::read_link(&path).unwrap_or_default();
            listing.push_str(&format!(
                "{} -> {}\n",
                relative.to_string_lossy(),
                target.to_string_lossy()
            ));
        } else if metadata.is_dir() {
            digest_dir(&path, &relative, listing);
        } else {
            listing.push_str(&format!(
                "{} {}\n",
                relative.to_string_lossy(),
                observed_digest(&path)
            ));
        }
    }
}

#[cfg(unix)]
fn is_executable(metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_metadata: &std::fs::Metadata) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_paths_are_relative_with_dotdot_outside() {
        let root = Path::new("/w/repo");
        assert_eq!(portable_path(root, Path::new("/w/repo/a/b.rs")), "a/b.rs");
        assert_eq!(
            portable_path(root, Path::new("/w/extlib/src/lib.rs")),
            "../extlib/src/lib.rs"
        );
        assert_eq!(
            portable_path(root, Path::new("/w/repo/x/../shared.txt")),
            "shared.txt"
        );
        assert_eq!(
            resolve_portable(root, "../extlib/src/lib.rs"),
            Path::new("/w/extlib/src/lib.rs")
        );
    }

    #[test]
    fn a_changed_file_symlink_target_dir_or_env_is_a_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir_all(root.join("data/sub")).unwrap();
        std::fs::write(dir.path().join("outside.txt"), "a").unwrap();
        std::fs::write(root.join("data/sub/x"), "1").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside.txt"), root.join("link")).unwrap();
        let mut observed = ObservedInputs::default();
        for path in ["../outside.txt", "link", "data", "gone"] {
            observed.files.insert(
                path.to_string(),
                observed_digest(&resolve_portable(&root, path)),
            );
        }
        assert_eq!(observed.files["gone"], MISSING);
        assert_eq!(
            observed.files["link"], observed.files["../outside.txt"],
            "a symlink digests as its target's content"
        );
        assert_eq!(observed.first_mismatch(&root), None);

        std::fs::write(dir.path().join("outside.txt"), "b").unwrap();
        assert_eq!(
            observed.first_mismatch(&root),
            Some(ObservedChange::File("../outside.txt".into()))
        );
        std::fs::write(dir.path().join("outside.txt"), "a").unwrap();
        std::fs::write(root.join("data/sub/x"), "2").unwrap();
        assert_eq!(
            observed.first_mismatch(&root),
            Some(ObservedChange::File("data".into()))
        );
        std::fs::write(root.join("data/sub/x"), "1").unwrap();
        std::fs::write(root.join("gone"), "").unwrap();
        assert_eq!(
            observed.first_mismatch(&root),
            Some(ObservedChange::File("gone".into()))
        );
        std::fs::remove_file(root.join("gone")).unwrap();
        assert_eq!(observed.first_mismatch(&root), None);

        observed
            .env
            .insert("XTASK_OBSERVED_TEST_UNSET_VAR".into(), Some("00".into()));
        assert_eq!(
            observed.first_mismatch(&root),
            Some(ObservedChange::Env("XTASK_OBSERVED_TEST_UNSET_VAR".into()))
        );
    }

    #[test]
    fn a_directory_link_to_an_ancestor_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/x"), "1").unwrap();
        std::os::unix::fs::symlink("..", dir.path().join("data/up")).unwrap();
        let before = observed_digest(&dir.path().join("data"));
        std::fs::write(dir.path().join("data/x"), "2").unwrap();
        assert_ne!(observed_digest(&dir.path().join("data")), before);
    }

    #[test]
    fn the_executable_bit_changes_the_digest() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("script.sh");
        std::fs::write(&file, "echo").unwrap();
        let plain = observed_digest(&file);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_ne!(observed_digest(&file), plain);
    }

    #[test]
    fn manifests_carry_observed_inputs() {
        let mut observed = ObservedInputs::default();
        observed.files.insert("a".into(), "b".into());
        observed.env.insert("V".into(), None);
        let manifest = observed.add_to_manifest(serde_json::json!({"schema": 2}));
        assert_eq!(ObservedInputs::from_manifest(&manifest), observed);
        assert_eq!(
            ObservedInputs::from_manifest(&serde_json::json!({"schema": 2})),
            ObservedInputs::default()
        );
    }
}

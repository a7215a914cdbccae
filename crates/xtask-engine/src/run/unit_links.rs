//! A package's unit files that are its task's outputs too, stored once.
//!
//! Cargo uplifts a bin unit's executable (`debug/deps/app-H`) to `debug/app` as a hard link:
//! one file under two names. The task entry holds `debug/app`; archiving the unit's copy in
//! the package units entry as well stored every executable twice (coreutils: 8.35 GB of task
//! entries and 8.74 GB of units, compressed and hashed after the build). A unit file that is
//! the same inode as one of the task entry's files (and of the size recorded for it) is left
//! out of the units archive and named in the entry's manifest as a [`Link`]: its path, the
//! task output it is, and that output's sha256 and size from the task entry.
//!
//! Restoring a link (units are restored only for hits, whose outputs the run restored first)
//! hashes the file now at `from` and hard-links it into the staging directory only when it
//! has the link's sha256: the bytes are then exactly those the entry names, whatever happened
//! to the file since. Otherwise the unit is not placed, and cargo builds it: a link never makes
//! a unit that differs from what was stored, at worst a unit that is not restored.
//!
//! What this module does NOT do: it reads no archive, and it writes only into the staging
//! directory it is given (the linked inode's date included, set as every staged file's is).

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use xtask_cache::{EntryMeta, OutputKind, OutputRoot};

/// The manifest key of an entry's links.
const LINKS_KEY: &str = "links";

/// A unit file stored as the task output it is a hard link of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Link {
    /// The unit file, relative to the target dir (`debug/deps/app-H`).
    pub path: String,
    /// The task output with the same bytes, relative to the target dir (`debug/app`).
    pub from: String,
    pub sha256: String,
    pub size: u64,
}

/// Splits the unit `files` (absolute, under `target_dir`) of a package into those to archive
/// and those that are the same inode as a file of its task's entry `task` (as [`Link`]s).
pub(crate) fn split_links(
    target_dir: &Path,
    task: &EntryMeta,
    files: Vec<PathBuf>,
) -> (Vec<PathBuf>, Vec<Link>) {
    let mut outputs: HashMap<(u64, u64), (&str, &str, u64)> = HashMap::new();
    for record in &task.outputs {
        let (OutputRoot::Target, OutputKind::File, Some(sha256)) =
            (record.root, record.kind, &record.sha256)
        else {
            continue;
        };
        if let Ok(metadata) = std::fs::symlink_metadata(target_dir.join(&record.path))
            && metadata.is_file()
        {
            outputs.insert(
                (metadata.dev(), metadata.ino()),
                (&record.path, sha256, record.size),
            );
        }
    }
    if outputs.is_empty() {
        return (files, Vec::new());
    }
    let mut archived = Vec::with_capacity(files.len());
    let mut links = Vec::new();
    for file in files {
        let link = std::fs::symlink_metadata(&file).ok().and_then(|metadata| {
            let &(from, sha256, size) = outputs.get(&(metadata.dev(), metadata.ino()))?;
            let path = file.strip_prefix(target_dir).ok()?.to_str()?;
            (metadata.is_file() && metadata.len() == size).then(|| Link {
                path: path.replace('\\', "/"),
                from: from.to_owned(),
                sha256: sha256.to_owned(),
                size,
            })
        });
        match link {
            Some(link) => links.push(link),
            None => archived.push(file),
        }
    }
    (archived, links)
}

/// `manifest` with `links` recorded (unchanged when there are none).
pub(crate) fn with_links(mut manifest: serde_json::Value, links: &[Link]) -> serde_json::Value {
    if !links.is_empty() {
        manifest[LINKS_KEY] = serde_json::json!(links);
    }
    manifest
}

/// The links an entry's manifest names; an error for a malformed list or a path that is not
/// plain (absolute, `.`, `..`), so that a link can only read from and write into the
/// directories it is resolved against.
pub(crate) fn links_of(meta: &EntryMeta) -> anyhow::Result<Vec<Link>> {
    let Some(value) = meta.manifest.get(LINKS_KEY) else {
        return Ok(Vec::new());
    };
    let links: Vec<Link> = serde_json::from_value(value.clone())
        .map_err(|error| anyhow::anyhow!("its manifest's `{LINKS_KEY}` is malformed: {error}"))?;
    for link in &links {
        for path in [&link.path, &link.from] {
            let plain = path.split('/').all(|part| !matches!(part, "" | "." | ".."));
            if !plain {
                anyhow::bail!("its manifest links the path `{path}`, which is not plain");
            }
        }
        if !xtask_util::is_sha256_hex(&link.sha256) {
            anyhow::bail!("its manifest's link `{}` has no valid sha256", link.path);
        }
    }
    Ok(links)
}

/// Places `link` in `staging` (at `staging/<path>`) as a hard link of `target_dir/<from>`,
/// dated `mtime`, when that file (not a symlink) holds the link's bytes; `false` (nothing
/// written) when it does not.
pub(crate) fn place(
    link: &Link,
    target_dir: &Path,
    staging: &Path,
    mtime: SystemTime,
) -> std::io::Result<bool> {
    let from = target_dir.join(&link.from);
    // Never through a symlink: `from` must be the file itself.
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&from)
    {
        Ok(file) => file,
        Err(_) => return Ok(false),
    };
    let metadata = file.metadata()?;
    if !metadata.is_file() || metadata.len() != link.size {
        return Ok(false);
    }
    let (sha256, length) = xtask_util::sha256_reader(&file)?;
    if sha256 != link.sha256 || length != link.size {
        return Ok(false);
    }
    let to = staging.join(&link.path);
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::hard_link(&from, &to)?;
    // The name may have been replaced between the check and the link: keep the link only if
    // it is the inode that was hashed.
    let linked = std::fs::symlink_metadata(&to)?;
    if (linked.dev(), linked.ino()) != (metadata.dev(), metadata.ino()) {
        std::fs::remove_file(&to)?;
        return Ok(false);
    }
    // Cargo dates a unit by its files; the uplifted name shares the inode, as cargo's own does.
    File::open(&to)?.set_modified(mtime)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xtask_cache::{BlobRef, OutputRecord};

    fn entry(outputs: Vec<OutputRecord>, manifest: serde_json::Value) -> EntryMeta {
        let blob = BlobRef {
            sha256: "0".repeat(64),
            size: 0,
        };
        EntryMeta {
            format: xtask_cache::ENTRY_FORMAT,
            task_hash: "a".repeat(64),
            created_unix_ms: 0,
            duration_ms: 0,
            exit_code: 0,
            archive: blob.clone(),
            log: blob,
            outputs,
            manifest,
        }
    }

    fn file_record(path: &str, content: &[u8]) -> OutputRecord {
        OutputRecord {
            root: OutputRoot::Target,
            path: path.to_owned(),
            kind: OutputKind::File,
            size: content.len() as u64,
            sha256: Some(xtask_util::sha256_hex(content)),
            mode: 0o755,
            link_target: None,
        }
    }

    #[test]
    fn a_unit_file_hard_linked_to_a_task_output_is_stored_as_a_link() {
        let target = tempfile::tempdir().unwrap();
        let t = target.path();
        std::fs::create_dir_all(t.join("debug/deps")).unwrap();
        std::fs::write(t.join("debug/deps/app-0123456789abcdef"), b"executable").unwrap();
        std::fs::hard_link(
            t.join("debug/deps/app-0123456789abcdef"),
            t.join("debug/app"),
        )
        .unwrap();
        // Same bytes, another inode: a copy is archived, not linked.
        std::fs::write(t.join("debug/deps/app-0123456789abcdef.d"), b"executable").unwrap();
        std::fs::write(t.join("debug/app.d"), b"executable").unwrap();
        let task = entry(
            vec![
                file_record("debug/app", b"executable"),
                file_record("debug/app.d", b"executable"),
            ],
            serde_json::json!({}),
        );
        let files = vec![
            t.join("debug/deps/app-0123456789abcdef"),
            t.join("debug/deps/app-0123456789abcdef.d"),
        ];
        let (archived, links) = split_links(t, &task, files);
        assert_eq!(archived, vec![t.join("debug/deps/app-0123456789abcdef.d")]);
        assert_eq!(
            links,
            vec![Link {
                path: "debug/deps/app-0123456789abcdef".to_owned(),
                from: "debug/app".to_owned(),
                sha256: xtask_util::sha256_hex(b"executable"),
                size: 10,
            }]
        );
        // A task output whose recorded size is not the file's (rewritten since): no link.
        let stale = entry(
            vec![file_record("debug/app", b"old")],
            serde_json::json!({}),
        );
        let (archived, links) =
            split_links(t, &stale, vec![t.join("debug/deps/app-0123456789abcdef")]);
        assert_eq!(archived.len(), 1);
        assert!(links.is_empty());
    }

    #[test]
    fn a_link_is_placed_only_over_the_bytes_it_names() {
        let target = tempfile::tempdir().unwrap();
        let staging = tempfile::tempdir().unwrap();
        let (t, s) = (target.path(), staging.path());
        std::fs::create_dir_all(t.join("debug")).unwrap();
        std::fs::write(t.join("debug/app"), b"executable").unwrap();
        let link = Link {
            path: "debug/deps/app-0123456789abcdef".to_owned(),
            from: "debug/app".to_owned(),
            sha256: xtask_util::sha256_hex(b"executable"),
            size: 10,
        };
        let date = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
        assert!(place(&link, t, s, date).unwrap());
        let placed = s.join("debug/deps/app-0123456789abcdef");
        assert_eq!(std::fs::read(&placed).unwrap(), b"executable");
        let (a, b) = (
            std::fs::metadata(&placed).unwrap(),
            std::fs::metadata(t.join("debug/app")).unwrap(),
        );
        assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()));
        assert_eq!(a.modified().unwrap(), date);

        // Other bytes of the same size at `from`: not placed, nothing written.
        let staging = tempfile::tempdir().unwrap();
        std::fs::remove_file(t.join("debug/app")).unwrap();
        std::fs::write(t.join("debug/app"), b"EXECUTABLE").unwrap();
        assert!(!place(&link, t, staging.path(), date).unwrap());
        assert!(!staging.path().join("debug").exists());
        // A symlink to the right bytes: not followed.
        std::fs::write(t.join("elsewhere"), b"executable").unwrap();
        std::fs::remove_file(t.join("debug/app")).unwrap();
        std::os::unix::fs::symlink(t.join("elsewhere"), t.join("debug/app")).unwrap();
        assert!(!place(&link, t, staging.path(), date).unwrap());
        // Missing: not placed.
        std::fs::remove_file(t.join("debug/app")).unwrap();
        assert!(!place(&link, t, staging.path(), date).unwrap());
        assert!(!staging.path().join("debug").exists());
    }

    #[test]
    fn links_with_paths_that_are_not_plain_are_refused() {
        let link = |path: &str, from: &str| {
            serde_json::json!({ "links": [{
                "path": path, "from": from, "sha256": "b".repeat(64), "size": 1
            }]})
        };
        let ok = entry(
            Vec::new(),
            link("debug/deps/app-0123456789abcdef", "debug/app"),
        );
        assert_eq!(links_of(&ok).unwrap().len(), 1);
        assert!(
            links_of(&entry(Vec::new(), serde_json::json!({})))
                .unwrap()
                .is_empty()
        );
        for (path, from) in [
            ("../escape", "debug/app"),
            ("/etc/passwd", "debug/app"),
            ("debug/deps/app-0123456789abcdef", "../../home/secret"),
            ("debug/./app", "debug/app"),
            ("", "debug/app"),
        ] {
            let error = links_of(&entry(Vec::new(), link(path, from))).unwrap_err();
            assert!(error.to_string().contains("not plain"), "{error}");
        }
        let bad_digest = serde_json::json!({ "links": [{
            "path": "debug/a", "from": "debug/b", "sha256": "short", "size": 1
        }]});
        assert!(links_of(&entry(Vec::new(), bad_digest)).is_err());
        let malformed = serde_json::json!({ "links": "nope" });
        assert!(
            links_of(&entry(Vec::new(), malformed))
                .unwrap_err()
                .to_string()
                .contains("malformed")
        );
    }
}

//! The entry JSON (`EntryMeta`, the "action cache" record) and the checks made when reading it.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use xtask_util::is_sha256_hex;

use crate::allowed::AllowedOutputs;
use crate::error::CacheError;
use crate::paths::{check_link_target, check_relative_path};

/// The value of [`EntryMeta::format`] this crate reads and writes.
pub const ENTRY_FORMAT: u32 = 1;

/// Permission bits a restored file may have (no setuid, setgid or sticky bit).
pub(crate) const PERMISSION_BITS: u32 = 0o777;

/// One cache entry: written last and atomically, it is the commit point of a store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryMeta {
    /// Always [`ENTRY_FORMAT`].
    pub format: u32,
    pub task_hash: String,
    pub created_unix_ms: u64,
    pub duration_ms: u64,
    pub exit_code: i32,
    /// The tar+zstd archive of the outputs.
    pub archive: BlobRef,
    /// The captured log (stdout and stderr as the engine recorded them).
    pub log: BlobRef,
    /// Sorted by root then path; one record per archive member.
    pub outputs: Vec<OutputRecord>,
    /// The task's key manifest, stored verbatim (used by `xtask why`).
    pub manifest: serde_json::Value,
}

/// A content-addressed blob: `v1/blobs/<sha256[0..2]>/<sha256>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobRef {
    pub sha256: String,
    pub size: u64,
}

/// One output in the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputRecord {
    pub root: OutputRoot,
    /// Relative to `root`, forward slashes, no `.`/`..`/empty components.
    pub path: String,
    pub kind: OutputKind,
    /// File length in bytes; 0 for symlinks.
    pub size: u64,
    /// Sha256 of the file's content; only for files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Unix permission bits (`0o777` at most); 0o777 for symlinks.
    pub mode: u32,
    /// The symlink's target, relative to the link's directory; only for symlinks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
}

/// Which directory an output path is relative to. Archive members are prefixed with
/// `workspace/` or `target/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputRoot {
    Workspace,
    Target,
}

/// What an output is. Directories are not outputs: their files are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    File,
    Symlink,
}

impl EntryMeta {
    /// The entry JSON as the cache writes it (pretty, with a final newline).
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain data with string keys cannot fail.
        let mut json = serde_json::to_vec_pretty(self).unwrap_or_default();
        json.push(b'\n');
        json
    }
}

impl OutputRoot {
    /// `"workspace"` or `"target"`: the serde name and the archive member prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputRoot::Workspace => "workspace",
            OutputRoot::Target => "target",
        }
    }
}

impl OutputRecord {
    /// The name of this output in the archive: `<root>/<path>`.
    pub fn member_name(&self) -> String {
        member_name(self.root, &self.path)
    }
}

pub(crate) fn member_name(root: OutputRoot, path: &str) -> String {
    format!("{}/{path}", root.as_str())
}

/// Splits an archive member name into its root and relative path.
pub(crate) fn split_member_name(member: &str) -> Option<(OutputRoot, &str)> {
    if let Some(path) = member.strip_prefix("workspace/") {
        Some((OutputRoot::Workspace, path))
    } else {
        member
            .strip_prefix("target/")
            .map(|path| (OutputRoot::Target, path))
    }
}

/// Parses an entry JSON read from `path`, checking the format, the task hash and the blob names.
pub(crate) fn parse_entry(
    path: &Path,
    bytes: &[u8],
    task_hash: &str,
) -> Result<EntryMeta, CacheError> {
    // Fast path: a well-formed entry of this format parses straight into `EntryMeta` (one
    // pass, no intermediate `Value` tree).
    if let Ok(meta) = serde_json::from_slice::<EntryMeta>(bytes)
        && meta.format == ENTRY_FORMAT
    {
        return check_entry(path, meta, task_hash);
    }
    // Two phases: check `format` first, so an entry of a newer format reports that rather than
    // an unknown field.
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|error| CacheError::corrupt(path, format!("not valid JSON: {error}")))?;
    match value.get("format").and_then(serde_json::Value::as_u64) {
        Some(format) if format == u64::from(ENTRY_FORMAT) => {}
        Some(format) => {
            return Err(CacheError::corrupt(
                path,
                format!("unsupported entry format {format}, expected {ENTRY_FORMAT}"),
            ));
        }
        None => return Err(CacheError::corrupt(path, "missing numeric `format` field")),
    }
    let meta: EntryMeta = serde_json::from_value(value)
        .map_err(|error| CacheError::corrupt(path, format!("invalid entry: {error}")))?;
    check_entry(path, meta, task_hash)
}

/// The checks every parsed entry passes: its task hash, blob references and output records.
fn check_entry(path: &Path, meta: EntryMeta, task_hash: &str) -> Result<EntryMeta, CacheError> {
    if meta.task_hash != task_hash {
        return Err(CacheError::corrupt(
            path,
            format!(
                "entry is for task hash `{}`, expected `{task_hash}`",
                meta.task_hash
            ),
        ));
    }
    check_blob_refs(path, &meta)?;
    Ok(meta)
}

/// Blob names become paths: anything but 64 hex digits is rejected.
pub(crate) fn check_blob_refs(path: &Path, meta: &EntryMeta) -> Result<(), CacheError> {
    for (what, blob) in [("archive", &meta.archive), ("log", &meta.log)] {
        if !is_sha256_hex(&blob.sha256) {
            return Err(CacheError::corrupt(
                path,
                format!(
                    "{what} sha256 `{}` is not 64 lowercase hex digits",
                    blob.sha256
                ),
            ));
        }
    }
    Ok(())
}

/// Checks every output record before anything is restored: paths, symlink targets, modes,
/// per-kind fields and duplicates. `path` is the entry JSON (for `Corrupt` errors).
pub(crate) fn check_output_records(
    path: &Path,
    records: &[OutputRecord],
) -> Result<(), CacheError> {
    let mut seen = HashSet::new();
    for record in records {
        let member = record.member_name();
        check_relative_path(&record.path)
            .map_err(|reason| CacheError::unsafe_path(&member, reason))?;
        if !seen.insert((record.root, record.path.as_str())) {
            return Err(CacheError::unsafe_path(
                member,
                "the output is listed twice",
            ));
        }
        if record.mode & !PERMISSION_BITS != 0 {
            return Err(CacheError::unsafe_path(
                member,
                format!("mode {:o} has bits beyond the permission bits", record.mode),
            ));
        }
        match record.kind {
            OutputKind::File => {
                if !record.sha256.as_deref().is_some_and(is_sha256_hex)
                    || record.link_target.is_some()
                {
                    return Err(CacheError::corrupt(
                        path,
                        format!("file output `{member}` needs a sha256 and no link_target"),
                    ));
                }
            }
            OutputKind::Symlink => {
                let (Some(target), None) = (&record.link_target, &record.sha256) else {
                    return Err(CacheError::corrupt(
                        path,
                        format!("symlink output `{member}` needs a link_target and no sha256"),
                    ));
                };
                check_link_target(&record.path, target)
                    .map_err(|reason| CacheError::unsafe_path(&member, reason))?;
            }
        }
    }
    Ok(())
}

/// Checks that every output record is a path `allowed` permits, before anything is written.
pub(crate) fn check_allowed_outputs(
    records: &[OutputRecord],
    allowed: &AllowedOutputs,
) -> Result<(), CacheError> {
    for record in records {
        if !allowed.allows(record.root, &record.path) {
            return Err(CacheError::unsafe_path(
                record.member_name(),
                format!("it is outside the task's outputs ({})", allowed.describe()),
            ));
        }
    }
    Ok(())
}

//! Importing an entry fetched from elsewhere (a remote cache). Nothing of it is trusted: the
//! entry JSON is parsed and checked as if read from disk (format, task hash, blob names, output
//! records, output paths inside the task's [`AllowedOutputs`]), both blobs must match the size
//! and sha256 the entry records, and only then is anything written, like a store: blobs first,
//! the entry JSON last (the commit point).

use std::io::Write;

use xtask_util::sha256_hex;

use crate::allowed::AllowedOutputs;
use crate::error::{CacheError, IoResultExt};
use crate::layout::Layout;
use crate::meta::{BlobRef, EntryMeta, check_allowed_outputs, check_output_records, parse_entry};

/// The three parts of an entry as they travel between caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryParts {
    /// The entry JSON, byte for byte.
    pub entry: Vec<u8>,
    /// The outputs archive the entry names.
    pub archive: Vec<u8>,
    /// The captured log the entry names.
    pub log: Vec<u8>,
}

pub(crate) fn import(
    layout: &Layout,
    task_hash: &str,
    parts: &EntryParts,
    origin: &str,
    allowed: &AllowedOutputs,
) -> Result<EntryMeta, CacheError> {
    let rejected = |reason: String| CacheError::Rejected {
        origin: origin.to_owned(),
        reason,
    };
    let entry_path = layout.entry_path(task_hash)?;
    let meta = parse_entry(&entry_path, &parts.entry, task_hash).map_err(|error| match error {
        CacheError::Corrupt { reason, .. } => rejected(reason),
        other => other,
    })?;
    check_output_records(&entry_path, &meta.outputs)
        .map_err(|error| rejected(error.to_string()))?;
    check_allowed_outputs(&meta.outputs, allowed).map_err(|error| rejected(error.to_string()))?;
    verify_blob("archive", &meta.archive, &parts.archive).map_err(rejected)?;
    verify_blob("log", &meta.log, &parts.log).map_err(rejected)?;

    let (Some(archive_path), Some(log_path)) = (
        layout.blob_path(&meta.archive.sha256),
        layout.blob_path(&meta.log.sha256),
    ) else {
        return Err(rejected("invalid blob names".into()));
    };
    // Blobs are named by their sha256: one already in place with the right size is not
    // written again (every entry of a fresh machine names the same empty log). Its bytes are
    // verified whenever it is read, like any blob's.
    let mut present = Vec::new();
    let mut temps = Vec::new();
    for (bytes, path, blob) in [
        (&parts.archive, archive_path, true),
        (&parts.log, log_path, true),
        (&parts.entry, entry_path, false),
    ] {
        if blob && blob_in_place(&path, bytes.len()) {
            present.push((bytes, path));
            continue;
        }
        temps.push((written_temp(layout, bytes)?, path));
    }
    // The same shared lock as a store: prune never sees blobs that are in place but not yet
    // referenced by the entry.
    let lock_path = layout.lock_path();
    let lock = layout.open_lock()?;
    lock.lock_shared().at(&lock_path)?;
    // A blob found in place may have been pruned before the lock was taken.
    for (bytes, path) in present {
        if !blob_in_place(&path, bytes.len()) {
            written_temp(layout, bytes)?.persist(&path)?;
        }
    }
    // The entry JSON last: the commit point.
    for (temp, path) in temps {
        temp.persist(&path)?;
    }
    drop(lock);
    Ok(meta)
}

fn blob_in_place(path: &std::path::Path, size: usize) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.len() == size as u64)
}

fn written_temp(layout: &Layout, bytes: &[u8]) -> Result<crate::layout::TempFile, CacheError> {
    let mut temp = layout.temp_file()?;
    temp.file.write_all(bytes).at(temp.path())?;
    Ok(temp)
}

/// Checks `bytes` against the size and sha256 of `blob`.
pub(crate) fn verify_blob(what: &str, blob: &BlobRef, bytes: &[u8]) -> Result<(), String> {
    if bytes.len() as u64 != blob.size {
        return Err(format!(
            "the {what} has {} bytes, the entry records {}",
            bytes.len(),
            blob.size
        ));
    }
    let actual = sha256_hex(bytes);
    if actual != blob.sha256 {
        return Err(format!(
            "the {what}'s sha256 is {actual}, the entry records {}",
            blob.sha256
        ));
    }
    Ok(())
}

//! Storing an entry: archive the outputs and write the log into temp files, then rename the
//! blobs into place and, last, the entry JSON (the commit point).

use std::io::Write;
use std::time::SystemTime;

use xtask_util::sha256_hex;

use crate::archive::{BuiltArchive, build_archive};
use crate::error::{CacheError, IoResultExt};
use crate::layout::{Layout, unix_ms};
use crate::meta::{BlobRef, ENTRY_FORMAT, EntryMeta, member_name};
use crate::paths::check_relative_path;
use crate::{NewEntry, OutputFile};

/// Outputs archived ahead of their entry (while the build that made them goes on), with the
/// state of each file when it was read: a store uses the archive only for the same outputs,
/// none of them changed since.
pub struct PreparedOutputs {
    outputs: Vec<OutputFile>,
    stamps: Vec<FileStamp>,
    archive: BuiltArchive,
}

/// What tells a file rewritten or replaced since it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
    mode: u32,
}

impl FileStamp {
    fn of(path: &std::path::Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::symlink_metadata(path).ok()?;
        Some(FileStamp {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            inode: metadata.ino(),
            mode: metadata.mode(),
        })
    }
}

/// Archives `outputs` now, for a later [`store`]; `None` when an output changed while it was
/// read (or cannot be read: the store will say why).
pub(crate) fn prepare(layout: &Layout, outputs: Vec<OutputFile>) -> Option<PreparedOutputs> {
    let outputs = sorted_outputs(outputs).ok()?;
    let stamps: Vec<FileStamp> = outputs
        .iter()
        .map(|o| FileStamp::of(&o.absolute_path))
        .collect::<Option<_>>()?;
    let archive = build_archive(layout.temp_file().ok()?, &outputs).ok()?;
    let unchanged = outputs
        .iter()
        .zip(&stamps)
        .all(|(o, stamp)| FileStamp::of(&o.absolute_path).as_ref() == Some(stamp));
    unchanged.then_some(PreparedOutputs {
        outputs,
        stamps,
        archive,
    })
}

impl PreparedOutputs {
    /// Whether this archive holds exactly `outputs`, each unchanged since it was read.
    fn holds(&self, outputs: &[OutputFile]) -> bool {
        self.outputs == outputs
            && outputs
                .iter()
                .zip(&self.stamps)
                .all(|(o, stamp)| FileStamp::of(&o.absolute_path).as_ref() == Some(stamp))
    }
}

pub(crate) fn store(
    layout: &Layout,
    entry: NewEntry<'_>,
    prepared: Option<PreparedOutputs>,
) -> Result<EntryMeta, CacheError> {
    let entry_path = layout.entry_path(entry.task_hash)?;
    let outputs = sorted_outputs(entry.outputs)?;

    let archive = match prepared {
        Some(prepared) if prepared.holds(&outputs) => prepared.archive,
        _ => build_archive(layout.temp_file()?, &outputs)?,
    };
    let mut log_temp = layout.temp_file()?;
    log_temp.file.write_all(entry.log).at(log_temp.path())?;
    let log = BlobRef {
        sha256: sha256_hex(entry.log),
        size: entry.log.len() as u64,
    };

    let meta = EntryMeta {
        format: ENTRY_FORMAT,
        task_hash: entry.task_hash.to_owned(),
        created_unix_ms: unix_ms(SystemTime::now()),
        duration_ms: entry.duration_ms,
        exit_code: entry.exit_code,
        archive: archive.blob.clone(),
        log,
        outputs: archive.outputs,
        manifest: entry.manifest,
    };
    let json = meta.to_json();
    let mut entry_temp = layout.temp_file()?;
    entry_temp.file.write_all(&json).at(entry_temp.path())?;

    // The blob names were produced by sha256_hex, so they are valid.
    let (Some(archive_path), Some(log_path)) = (
        layout.blob_path(&meta.archive.sha256),
        layout.blob_path(&meta.log.sha256),
    ) else {
        return Err(CacheError::corrupt(
            &entry_path,
            "computed an invalid blob name",
        ));
    };

    // Commit under a shared lock: prune (exclusive) never sees blobs that are renamed into place
    // but not yet referenced, so it cannot delete them as unreferenced.
    let lock_path = layout.lock_path();
    let lock = layout.open_lock()?;
    lock.lock_shared().at(&lock_path)?;
    archive.temp.persist(&archive_path)?;
    log_temp.persist(&log_path)?;
    entry_temp.persist(&entry_path)?;
    drop(lock);
    Ok(meta)
}

/// Checks the relative paths, sorts by archive member name and drops exact duplicates.
fn sorted_outputs(outputs: Vec<OutputFile>) -> Result<Vec<OutputFile>, CacheError> {
    let mut keyed = Vec::with_capacity(outputs.len());
    for output in outputs {
        let member = member_name(output.root, &output.relative_path);
        check_relative_path(&output.relative_path)
            .map_err(|reason| CacheError::unsafe_path(&member, reason))?;
        keyed.push((member, output));
    }
    keyed.sort_by(|(left, _), (right, _)| left.cmp(right));
    let mut sorted: Vec<(String, OutputFile)> = Vec::with_capacity(keyed.len());
    for (member, output) in keyed {
        if let Some((previous_member, previous)) = sorted.last()
            && *previous_member == member
        {
            if previous.absolute_path == output.absolute_path {
                continue;
            }
            return Err(CacheError::unsafe_path(
                member,
                "the output is listed twice with different source paths",
            ));
        }
        sorted.push((member, output));
    }
    Ok(sorted.into_iter().map(|(_, output)| output).collect())
}

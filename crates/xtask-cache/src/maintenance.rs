//! Whole-cache operations: stats, clean and prune (LRU eviction, unreferenced blobs, stale temp
//! files), and the directory scans they share.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use xtask_util::is_sha256_hex;

use crate::error::{CacheError, IoResultExt};
use crate::layout::{LOCK_FILE, Layout};
use crate::meta::parse_entry;
use crate::{CacheStats, CleanStats, PruneStats};

/// Temp files older than this are left over from a crashed process.
const STALE_TEMP_AGE: Duration = Duration::from_secs(60 * 60);

pub(crate) fn stats(layout: &Layout) -> Result<CacheStats, CacheError> {
    let entries = scan_entries(layout)?;
    let blobs = scan_blobs(layout)?;
    Ok(CacheStats {
        entries: entries.len(),
        blobs: blobs.len(),
        total_bytes: entries.iter().map(|entry| entry.size).sum::<u64>()
            + blobs.values().map(|blob| blob.size).sum::<u64>(),
        oldest_entry: entries.iter().map(|entry| entry.modified).min(),
        newest_entry: entries.iter().map(|entry| entry.modified).max(),
    })
}

pub(crate) fn clean(layout: &Layout) -> Result<CleanStats, CacheError> {
    match fs::symlink_metadata(&layout.v1) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(CleanStats::default()),
        Err(error) => return Err(CacheError::io(&layout.v1, error)),
        Ok(_) => {}
    }
    let before = stats(layout)?;
    let lock_path = layout.lock_path();
    let lock = layout.open_lock()?;
    lock.lock().at(&lock_path)?;
    // Everything but the lock file goes while the lock is held; then the lock file and `v1/`.
    for child in fs::read_dir(&layout.v1).at(&layout.v1)? {
        let child = child.at(&layout.v1)?;
        if child.file_name() == LOCK_FILE {
            continue;
        }
        let path = child.path();
        let is_dir = child.file_type().at(&path)?.is_dir();
        let removed = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        ignore_not_found(removed).at(&path)?;
    }
    drop(lock);
    ignore_not_found(fs::remove_file(&lock_path)).at(&lock_path)?;
    match fs::remove_dir(&layout.v1) {
        // A concurrent store recreated something: its entry is complete and may stay.
        Err(error) if error.kind() == io::ErrorKind::DirectoryNotEmpty => {}
        removed => ignore_not_found(removed).at(&layout.v1)?,
    }
    Ok(CleanStats {
        entries_removed: before.entries,
        bytes_removed: before.total_bytes,
    })
}

/// How often the prune after a run sweeps the whole cache (reads every entry for corrupt
/// ones and unreferenced blobs) when it is under its size cap, as cargo's automatic gc runs
/// at most once a day.
pub const SWEEP_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

/// The marker whose mtime is the last full sweep (made with a new cache, which has nothing to
/// sweep).
pub(crate) const SWEPT_MARKER: &str = "last-sweep";

/// The prune after a run: the full [`prune`] only when the cache is over `max_size_bytes`
/// (sizes from a stat of every entry and blob, nothing read) or the last full sweep is older
/// than [`SWEEP_EVERY`]. A full sweep reads and parses every entry: 0.1 s per run for a
/// thousand entries, growing with the cache, on every run that stores.
pub(crate) fn prune_if_due(
    layout: &Layout,
    max_size_bytes: Option<u64>,
) -> Result<PruneStats, CacheError> {
    let marker = layout.v1.join(SWEPT_MARKER);
    let swept_recently = fs::metadata(&marker)
        .and_then(|metadata| metadata.modified())
        .is_ok_and(|at| {
            SystemTime::now()
                .duration_since(at)
                .is_ok_and(|age| age < SWEEP_EVERY)
        });
    if swept_recently {
        let total = stats(layout)?.total_bytes;
        if max_size_bytes.is_none_or(|cap| total <= cap) {
            return Ok(PruneStats {
                bytes_remaining: total,
                ..PruneStats::default()
            });
        }
    }
    let stats = prune(layout, max_size_bytes)?;
    // No `v1/` (nothing ever stored): nothing was swept, and nothing is created.
    if !stats.skipped && layout.v1.is_dir() {
        fs::write(&marker, b"").at(&marker)?;
    }
    Ok(stats)
}

pub(crate) fn prune(
    layout: &Layout,
    max_size_bytes: Option<u64>,
) -> Result<PruneStats, CacheError> {
    match fs::symlink_metadata(&layout.v1) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(PruneStats::default()),
        Err(error) => return Err(CacheError::io(&layout.v1, error)),
        Ok(_) => {}
    }
    let lock_path = layout.lock_path();
    let lock = layout.open_lock()?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Ok(PruneStats {
                skipped: true,
                ..PruneStats::default()
            });
        }
        Err(TryLockError::Error(error)) => return Err(CacheError::io(&lock_path, error)),
    }

    let mut stats = PruneStats::default();
    let mut blobs = scan_blobs(layout)?;

    // Read every entry; drop the ones that do not parse or whose blobs are gone.
    let mut entries = Vec::new();
    for entry in scan_entries(layout)? {
        let bytes = match fs::read(&entry.path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(CacheError::io(&entry.path, error)),
        };
        let blob_names = match parse_entry(&entry.path, &bytes, &entry.task_hash) {
            Ok(meta) => BTreeSet::from([meta.archive.sha256, meta.log.sha256]),
            Err(CacheError::Corrupt { .. }) => BTreeSet::new(),
            Err(error) => return Err(error),
        };
        if blob_names.is_empty() || !blob_names.iter().all(|name| blobs.contains_key(name)) {
            remove_file(&entry.path)?;
            stats.entries_removed_invalid += 1;
            stats.bytes_freed += entry.size;
            continue;
        }
        entries.push((entry, blob_names));
    }

    let mut references: BTreeMap<String, usize> = BTreeMap::new();
    for (_, blob_names) in &entries {
        for name in blob_names {
            *references.entry(name.clone()).or_default() += 1;
        }
    }
    let unreferenced: Vec<String> = blobs
        .keys()
        .filter(|name| !references.contains_key(*name))
        .cloned()
        .collect();
    for name in unreferenced {
        if let Some(blob) = blobs.remove(&name) {
            remove_file(&blob.path)?;
            stats.blobs_removed += 1;
            stats.bytes_freed += blob.size;
        }
    }
    remove_stale_temp_files(layout, &mut stats)?;

    let mut total = entries.iter().map(|(entry, _)| entry.size).sum::<u64>()
        + blobs.values().map(|blob| blob.size).sum::<u64>();
    if let Some(max_size_bytes) = max_size_bytes {
        // Least recently used first; the hash breaks ties so the order is stable.
        entries.sort_by(|(left, _), (right, _)| {
            (left.modified, &left.task_hash).cmp(&(right.modified, &right.task_hash))
        });
        for (entry, blob_names) in &entries {
            if total <= max_size_bytes {
                break;
            }
            // The entry goes first: no entry ever references a deleted blob.
            remove_file(&entry.path)?;
            stats.entries_evicted += 1;
            stats.bytes_freed += entry.size;
            total -= entry.size;
            for name in blob_names {
                let Some(count) = references.get_mut(name) else {
                    continue;
                };
                *count -= 1;
                if *count == 0
                    && let Some(blob) = blobs.remove(name)
                {
                    remove_file(&blob.path)?;
                    stats.blobs_removed += 1;
                    stats.bytes_freed += blob.size;
                    total -= blob.size;
                }
            }
        }
    }
    stats.bytes_remaining = total;
    drop(lock);
    Ok(stats)
}

fn remove_stale_temp_files(layout: &Layout, stats: &mut PruneStats) -> Result<(), CacheError> {
    let tmp_dir = layout.tmp_dir();
    let now = SystemTime::now();
    for child in read_dir_if_exists(&tmp_dir)? {
        let path = child.path();
        let Ok(metadata) = fs::symlink_metadata(&path) else {
            continue;
        };
        let is_stale = metadata.modified().is_ok_and(|modified| {
            now.duration_since(modified)
                .is_ok_and(|age| age > STALE_TEMP_AGE)
        });
        if is_stale && !metadata.is_dir() {
            remove_file(&path)?;
            stats.tmp_files_removed += 1;
            stats.bytes_freed += metadata.len();
        }
    }
    Ok(())
}

/// One `v1/entries/<xx>/<hash>.json`.
struct EntryFile {
    path: PathBuf,
    task_hash: String,
    size: u64,
    /// The LRU time.
    modified: SystemTime,
}

/// One `v1/blobs/<xx>/<sha256>`.
struct BlobFile {
    path: PathBuf,
    size: u64,
}

/// The entry files, ignoring names that do not follow the layout.
fn scan_entries(layout: &Layout) -> Result<Vec<EntryFile>, CacheError> {
    let mut entries = Vec::new();
    for (path, name) in scan_sharded(&layout.entries_dir())? {
        let Some(task_hash) = name
            .strip_suffix(".json")
            .filter(|hash| is_sha256_hex(hash))
        else {
            continue;
        };
        let Some(metadata) = metadata_if_exists(&path)? else {
            continue;
        };
        entries.push(EntryFile {
            task_hash: task_hash.to_owned(),
            size: metadata.len(),
            modified: metadata.modified().at(&path)?,
            path,
        });
    }
    Ok(entries)
}

/// The blob files by name, ignoring names that do not follow the layout.
fn scan_blobs(layout: &Layout) -> Result<BTreeMap<String, BlobFile>, CacheError> {
    let mut blobs = BTreeMap::new();
    for (path, name) in scan_sharded(&layout.blobs_dir())? {
        if !is_sha256_hex(&name) {
            continue;
        }
        let Some(metadata) = metadata_if_exists(&path)? else {
            continue;
        };
        blobs.insert(
            name,
            BlobFile {
                path,
                size: metadata.len(),
            },
        );
    }
    Ok(blobs)
}

/// Files `<dir>/<xx>/<name>` where `name` starts with the shard name `xx`.
fn scan_sharded(dir: &Path) -> Result<Vec<(PathBuf, String)>, CacheError> {
    let mut files = Vec::new();
    for shard in read_dir_if_exists(dir)? {
        let Some(shard_name) = shard.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let shard_path = shard.path();
        if shard_name.len() != 2 || !shard_path.is_dir() {
            continue;
        }
        for file in read_dir_if_exists(&shard_path)? {
            let Some(name) = file.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name.starts_with(&shard_name) {
                files.push((file.path(), name));
            }
        }
    }
    Ok(files)
}

fn read_dir_if_exists(dir: &Path) -> Result<Vec<fs::DirEntry>, CacheError> {
    let read_dir = match fs::read_dir(dir) {
        Ok(read_dir) => read_dir,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(CacheError::io(dir, error)),
    };
    read_dir.map(|child| child.at(dir)).collect()
}

fn metadata_if_exists(path: &Path) -> Result<Option<fs::Metadata>, CacheError> {
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_file() => Ok(Some(metadata)),
        Ok(_) => Ok(None),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(CacheError::io(path, error)),
    }
}

fn remove_file(path: &Path) -> Result<(), CacheError> {
    ignore_not_found(fs::remove_file(path)).at(path)
}

fn ignore_not_found(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

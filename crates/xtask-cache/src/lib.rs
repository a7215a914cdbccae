//! The local content-addressed task cache: atomic entries, tar+zstd output archives, verified
//! restore, LRU eviction.
//!
//! An entry is a small JSON record (`v1/entries/<xx>/<task hash>.json`, the "action cache"
//! record) that names content-addressed blobs (`v1/blobs/<xx>/<sha256>`: the outputs archive and
//! the captured log). Blobs are written first and the entry JSON last, each through a temp file
//! and a rename, so the entry's appearance is the commit point. The on-disk format is documented
//! in `turbo-like-cache/README.md`; it follows the Bazel action cache / CAS split so a remote
//! cache can speak that protocol later.
//!
//! What this crate does NOT do: it never computes task hashes (that is `xtask-hash`), never runs
//! processes, never decides what a task's outputs are (the caller says where a restore may write,
//! as [`AllowedOutputs`]), never writes outside its root except when restoring into the given
//! [`RestoreRoots`] where the [`AllowedOutputs`] permit (checked through symlinks, on disk and in
//! the entry, before anything is written), never trusts the archive (it is verified against the
//! entry before anything is extracted, and every path is checked), and [`LocalCache::new`] does
//! no IO.

mod allowed;
mod archive;
mod digest;
mod error;
mod import;
mod layout;
mod maintenance;
pub use maintenance::SWEEP_EVERY;
mod meta;
mod paths;
mod resolve;
mod restore;
mod store;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub use crate::allowed::AllowedOutputs;
pub use crate::error::CacheError;
pub use crate::import::EntryParts;
pub use crate::meta::{BlobRef, ENTRY_FORMAT, EntryMeta, OutputKind, OutputRecord, OutputRoot};
pub use crate::store::PreparedOutputs;

use xtask_util::is_sha256_hex;

use crate::layout::Layout;

/// How many runs of a task the cache remembers for `xtask why` to compare with.
pub const RECENT_RUNS: usize = 16;

/// The local cache under one root directory. Cheap to clone; share it by `&` across threads.
#[derive(Debug, Clone)]
pub struct LocalCache {
    layout: Layout,
    options: CacheOptions,
    /// The restore roots' canonical paths, shared by every restore through this cache.
    canonical_roots: restore::CanonicalRoots,
}

/// How the cache behaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheOptions {
    /// The size [`LocalCache::prune`] evicts down to when it is given none; `None` = no eviction.
    pub max_size_bytes: Option<u64>,
}

/// What [`LocalCache::store`] needs to create an entry.
#[derive(Debug)]
pub struct NewEntry<'a> {
    pub task_hash: &'a str,
    /// The task's key manifest, stored verbatim.
    pub manifest: serde_json::Value,
    /// Files and symlinks (not directories); order does not matter.
    pub outputs: Vec<OutputFile>,
    pub log: &'a [u8],
    pub duration_ms: u64,
    pub exit_code: i32,
}

/// One output of a task, as the engine found it on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub root: OutputRoot,
    /// Relative to the root: forward slashes, no `.`, `..` or empty components.
    pub relative_path: String,
    /// Where to read it from now.
    pub absolute_path: PathBuf,
}

/// Where outputs are restored to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreRoots {
    pub workspace: PathBuf,
    pub target: PathBuf,
    /// Files a restore leaves as they are when present, whatever their content (the running
    /// tool's own executable, which cargo has just built for the `cargo xtask` alias).
    pub keep: Vec<PathBuf>,
}

impl RestoreRoots {
    /// The directory of `root`.
    pub fn path(&self, root: OutputRoot) -> &Path {
        match root {
            OutputRoot::Workspace => &self.workspace,
            OutputRoot::Target => &self.target,
        }
    }
}

/// What a restore did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreStats {
    /// Outputs written from the archive.
    pub restored: usize,
    /// Outputs that were already identical on disk and left alone.
    pub already_in_place: usize,
}

/// The size of the cache. Sizes are file lengths of entry JSONs and blobs (what eviction counts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: usize,
    pub blobs: usize,
    pub total_bytes: u64,
    /// The least recently used entry's LRU time (its JSON's mtime).
    pub oldest_entry: Option<SystemTime>,
    /// The most recently used entry's LRU time.
    pub newest_entry: Option<SystemTime>,
}

/// What [`LocalCache::clean`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub entries_removed: usize,
    pub bytes_removed: u64,
}

/// What [`LocalCache::prune`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneStats {
    /// Another process holds the cache lock; nothing was done.
    pub skipped: bool,
    /// Entries removed to get under the size cap, least recently used first.
    pub entries_evicted: usize,
    /// Entries removed because their JSON is corrupt or one of their blobs is missing.
    pub entries_removed_invalid: usize,
    /// Blobs no remaining entry references.
    pub blobs_removed: usize,
    /// Temp files older than an hour (left by crashed processes).
    pub tmp_files_removed: usize,
    pub bytes_freed: u64,
    /// Entry JSONs plus blobs left.
    pub bytes_remaining: u64,
}

impl LocalCache {
    /// A cache rooted at `root` (e.g. `<workspace>/turbo-like-cache`). Does no IO: directories
    /// are created by the first write.
    pub fn new(root: PathBuf, options: CacheOptions) -> LocalCache {
        LocalCache {
            layout: Layout::new(root),
            options,
            canonical_roots: restore::CanonicalRoots::default(),
        }
    }

    /// Creates the cache directory and `v1/` if missing, with the root's `.gitignore` (`*`) and
    /// `CACHEDIR.TAG` (never overwriting existing ones). Every write of this crate does this
    /// first; call it before writing anything else under the root (e.g. `v1/fast/`).
    pub fn create_dirs(&self) -> Result<(), CacheError> {
        self.layout.create_v1()
    }

    pub fn root(&self) -> &Path {
        &self.layout.root
    }

    pub fn options(&self) -> &CacheOptions {
        &self.options
    }

    /// Reads only the entry JSON (never the archive). `Ok(None)` is a miss. A JSON that does
    /// not parse, has another format or another task hash is [`CacheError::Corrupt`].
    pub fn lookup(&self, task_hash: &str) -> Result<Option<EntryMeta>, CacheError> {
        let entry_path = self.layout.entry_path(task_hash)?;
        let bytes = match fs::read(&entry_path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(CacheError::io(entry_path, error)),
        };
        meta::parse_entry(&entry_path, &bytes, task_hash).map(Some)
    }

    /// Reads the log blob and checks its size and sha256 against `meta.log`. An empty log is
    /// not read: its digest says all there is (most hits have one, and they all share a blob).
    pub fn read_log(&self, meta: &EntryMeta) -> Result<Vec<u8>, CacheError> {
        if is_empty_blob(&meta.log) {
            return Ok(Vec::new());
        }
        self.read_blob("log", &meta.log)
    }

    /// The file of `task_hash`'s entry (it may not exist).
    pub fn entry_file(&self, task_hash: &str) -> Result<PathBuf, CacheError> {
        self.layout.entry_path(task_hash)
    }

    /// The file of the blob `blob` names; `None` for an invalid digest.
    pub fn blob_file(&self, blob: &BlobRef) -> Option<PathBuf> {
        self.layout.blob_path(&blob.sha256)
    }

    /// The file of the last-run record of `package`'s `task` ([`LocalCache::set_last`]).
    pub fn last_file(&self, package: &str, task: &str) -> Result<PathBuf, CacheError> {
        self.layout.last_path(package, task)
    }

    /// Reads the entry's three parts (entry JSON, archive, log), each verified, e.g. to upload
    /// them to a remote cache.
    pub fn read_parts(&self, meta: &EntryMeta) -> Result<EntryParts, CacheError> {
        Ok(EntryParts {
            entry: meta.to_json(),
            archive: self.read_blob("archive", &meta.archive)?,
            log: self.read_blob("log", &meta.log)?,
        })
    }

    /// Reads a blob and checks its size and sha256 against `blob`.
    fn read_blob(&self, what: &str, blob: &BlobRef) -> Result<Vec<u8>, CacheError> {
        let Some(path) = self.layout.blob_path(&blob.sha256) else {
            return Err(CacheError::corrupt(
                self.layout.blobs_dir(),
                format!("invalid {what} sha256 `{}`", blob.sha256),
            ));
        };
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(CacheError::corrupt(
                    path,
                    format!("the {what} blob is missing"),
                ));
            }
            Err(error) => return Err(CacheError::io(path, error)),
        };
        if let Err(reason) = import::verify_blob(what, blob, &bytes) {
            return Err(CacheError::corrupt(path, reason));
        }
        Ok(bytes)
    }

    /// Verifies an entry fetched from `origin` (its JSON parses and is for `task_hash`, its
    /// output records are safe, both blobs match the sizes and sha256s it records) and only
    /// then writes it like [`LocalCache::store`] does. A failed check is
    /// [`CacheError::Rejected`] and writes nothing.
    ///
    /// `allowed` is where the task may write (see [`AllowedOutputs`]): an entry naming any other
    /// output path is rejected here already (restore checks again, also through symlinks).
    pub fn import(
        &self,
        task_hash: &str,
        parts: &EntryParts,
        origin: &str,
        allowed: &AllowedOutputs,
    ) -> Result<EntryMeta, CacheError> {
        import::import(&self.layout, task_hash, parts, origin, allowed)
    }

    /// Restores the entry's outputs under `roots`, writing only where `allowed` permits.
    ///
    /// Outputs already in place (same kind, size, sha256 and mode, or same link target) are
    /// skipped; if all are, the archive is not opened. Otherwise the archive blob's size and
    /// sha256 are checked, then every member and record before anything is written: paths,
    /// types, every output path (as recorded and as resolved through symlinks on disk and
    /// symlinks the entry restores earlier) inside `allowed`, every symlink target resolving
    /// inside its root. A violation is [`CacheError::UnsafePath`] naming the output, and nothing
    /// is written. Then each missing output is written to a temp file next to it and renamed
    /// into place. Refreshes the entry's LRU time (best effort, at most every 10 minutes).
    pub fn restore(
        &self,
        meta: &EntryMeta,
        roots: &RestoreRoots,
        allowed: &AllowedOutputs,
    ) -> Result<RestoreStats, CacheError> {
        restore::restore(
            &self.layout,
            &self.canonical_roots,
            meta,
            roots,
            allowed,
            None,
        )
    }

    /// [`LocalCache::restore`], learning the sha256 of files already in place from `digest`
    /// (e.g. a stat cache, so unchanged outputs are only stat'ed) instead of reading them.
    /// `digest` must return the content's sha256 or `None`; it is trusted.
    pub fn restore_with(
        &self,
        meta: &EntryMeta,
        roots: &RestoreRoots,
        allowed: &AllowedOutputs,
        digest: &(dyn Fn(&Path) -> Option<String> + Sync),
    ) -> Result<RestoreStats, CacheError> {
        restore::restore(
            &self.layout,
            &self.canonical_roots,
            meta,
            roots,
            allowed,
            Some(digest),
        )
    }

    /// Extracts the outputs of `meta` whose path `wanted` accepts in one pass into `dir`, an
    /// empty directory of the caller's that nothing else writes to (a staging directory),
    /// every file dated `mtime`; returns how many files were written. The archive blob is
    /// verified as in [`LocalCache::restore`], and every member (written or passed over)
    /// against its record's listing, kind and size (its own sha256 is not computed again: the
    /// blob's covers it), but nothing is written atomically: on error, `dir` holds part of the
    /// entry and the caller discards it. Entries with symlink outputs are refused.
    pub fn unpack_fresh(
        &self,
        meta: &EntryMeta,
        dir: &Path,
        allowed: &AllowedOutputs,
        mtime: SystemTime,
        wanted: &dyn Fn(&str) -> bool,
    ) -> Result<usize, CacheError> {
        restore::unpack_fresh(&self.layout, meta, dir, allowed, mtime, wanted)
    }

    /// Archives the outputs and writes the blobs, then the entry JSON (the commit point), each
    /// through a temp file and a rename. An existing entry for the same hash is replaced.
    pub fn store(&self, entry: NewEntry<'_>) -> Result<EntryMeta, CacheError> {
        store::store(&self.layout, entry, None)
    }

    /// Archives `outputs` ahead of their store, e.g. while the build goes on; `None` when an
    /// output changed while it was read. Nothing is visible in the cache until
    /// [`LocalCache::store_prepared`].
    pub fn prepare_outputs(&self, outputs: Vec<OutputFile>) -> Option<PreparedOutputs> {
        store::prepare(&self.layout, outputs)
    }

    /// [`LocalCache::store`] with an archive prepared ahead, used only when it holds exactly
    /// the entry's outputs, none changed since it was read; otherwise archived now.
    pub fn store_prepared(
        &self,
        entry: NewEntry<'_>,
        prepared: Option<PreparedOutputs>,
    ) -> Result<EntryMeta, CacheError> {
        store::store(&self.layout, entry, prepared)
    }

    /// Records `task_hash` as the last cached run of `package`'s `task` (for `xtask why`),
    /// in front of the [`RECENT_RUNS`] before it; writes nothing when it is already the last.
    pub fn set_last(&self, package: &str, task: &str, task_hash: &str) -> Result<(), CacheError> {
        if !is_sha256_hex(task_hash) {
            return Err(CacheError::InvalidTaskHash {
                task_hash: task_hash.to_owned(),
            });
        }
        let path = self.layout.last_path(package, task)?;
        // A hit usually finds the same record: reading it is much cheaper than rewriting it.
        let existing = fs::read_to_string(&path).unwrap_or_default();
        if existing.lines().next() == Some(task_hash) {
            return Ok(());
        }
        let mut content = format!("{task_hash}\n");
        for earlier in existing
            .lines()
            .filter(|h| *h != task_hash && is_sha256_hex(h))
            .take(RECENT_RUNS - 1)
        {
            content.push_str(earlier);
            content.push('\n');
        }
        self.layout.create_v1()?;
        // A hint for `why` (a torn or empty file after a crash reads as no record): no fsync.
        xtask_util::write_hint_atomically(&path, content.as_bytes())?;
        Ok(())
    }

    /// The task hash recorded by [`LocalCache::set_last`], if any.
    pub fn last(&self, package: &str, task: &str) -> Result<Option<String>, CacheError> {
        Ok(self.recent(package, task)?.into_iter().next())
    }

    /// The task hashes of the last [`RECENT_RUNS`] cached runs of `package`'s `task`, the
    /// last first (their entries may since have been evicted).
    pub fn recent(&self, package: &str, task: &str) -> Result<Vec<String>, CacheError> {
        let path = self.layout.last_path(package, task)?;
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) if error.kind() == io::ErrorKind::InvalidData => {
                return Err(CacheError::corrupt(path, "not UTF-8"));
            }
            Err(error) => return Err(CacheError::io(path, error)),
        };
        // Written without an fsync (`set_last`): a crash of the machine can leave it empty.
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let hashes: Vec<String> = text.lines().map(|line| line.trim().to_owned()).collect();
        if !hashes.iter().all(|h| is_sha256_hex(h)) {
            return Err(CacheError::corrupt(path, "not a list of task hashes"));
        }
        Ok(hashes)
    }

    /// Counts entries and blobs. Takes no lock.
    pub fn stats(&self) -> Result<CacheStats, CacheError> {
        maintenance::stats(&self.layout)
    }

    /// Removes `<root>/v1` entirely, waiting for the cache lock. Anything else under the root
    /// (`README.md`) stays.
    pub fn clean(&self) -> Result<CleanStats, CacheError> {
        maintenance::clean(&self.layout)
    }

    /// Evicts least recently used entries (by entry JSON mtime) until entry JSONs plus blobs
    /// fit in `max_size_bytes` (or [`CacheOptions::max_size_bytes`] when `None`; no eviction
    /// when both are `None`), then removes unreferenced blobs, corrupt entries and temp files
    /// older than an hour. If another process holds the cache lock, returns at once with
    /// `skipped: true`.
    pub fn prune(&self, max_size_bytes: Option<u64>) -> Result<PruneStats, CacheError> {
        maintenance::prune(&self.layout, max_size_bytes.or(self.options.max_size_bytes))
    }

    /// [`LocalCache::prune`] after a run: only when over the cap or not swept for
    /// [`SWEEP_EVERY`]; else the total size from a stat of the files, nothing
    /// removed.
    pub fn prune_if_due(&self, max_size_bytes: Option<u64>) -> Result<PruneStats, CacheError> {
        maintenance::prune_if_due(&self.layout, max_size_bytes.or(self.options.max_size_bytes))
    }
}

/// The sha256 of no bytes.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Whether `blob` is the empty blob (its content is known without reading it).
pub fn is_empty_blob(blob: &BlobRef) -> bool {
    blob.size == 0 && blob.sha256 == EMPTY_SHA256
}

/// An entry's LRU time (its JSON's mtime) is refreshed by a restore only when older than this,
/// so hot entries do not cost a metadata write on every hit.
pub const LRU_REFRESH_AFTER: std::time::Duration = std::time::Duration::from_secs(10 * 60);

// LocalCache is shared by `&` across the runner's threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<LocalCache>();
};

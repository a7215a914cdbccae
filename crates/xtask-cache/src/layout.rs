//! Where things live under the cache root (`v1/entries`, `v1/blobs`, `v1/tmp`, `v1/last`,
//! `v1/lock`), temp files that are renamed into place, and the process lock.
//!
//! Whenever this crate creates `v1/` it also makes the root invisible to what it caches, as
//! cargo does for `target/`: a `.gitignore` of `*` (git never reports the cache, so `affected`
//! never sees it) and a `CACHEDIR.TAG` (backup and indexing tools skip it). Existing files of
//! those names are never overwritten.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use xtask_util::is_sha256_hex;

use crate::error::{CacheError, IoResultExt};

/// The directory (under the cache root) of the current on-disk format.
pub(crate) const FORMAT_DIR: &str = "v1";
/// The name of the lock file inside [`FORMAT_DIR`].
pub(crate) const LOCK_FILE: &str = "lock";

/// Written to `<root>/.gitignore`: git ignores the whole cache, this file included.
pub(crate) const GITIGNORE: &str =
    "# Created by cargo xtask: the task cache is local and disposable.\n*\n";
/// Written to `<root>/CACHEDIR.TAG` (<https://bford.info/cachedir/>).
pub(crate) const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by cargo xtask.\n\
# For information about cache directory tags see https://bford.info/cachedir/\n";

/// The paths of one cache root. Building it does no IO.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) root: PathBuf,
    pub(crate) v1: PathBuf,
    /// Set once `v1/` and the root's markers are known to exist (shared by clones).
    created: Arc<OnceLock<()>>,
}

impl Layout {
    pub(crate) fn new(root: PathBuf) -> Layout {
        let v1 = root.join(FORMAT_DIR);
        Layout {
            root,
            v1,
            created: Arc::default(),
        }
    }

    /// Creates `v1/` (and the root) if missing, and the root's `.gitignore` and `CACHEDIR.TAG`
    /// if missing; checked once per [`Layout`] (a later `clean` keeps the markers).
    pub(crate) fn create_v1(&self) -> Result<(), CacheError> {
        if self.created.get().is_some() {
            return Ok(());
        }
        let new = fs::symlink_metadata(&self.v1).is_err();
        fs::create_dir_all(&self.v1).at(&self.v1)?;
        for (name, content) in [(".gitignore", GITIGNORE), ("CACHEDIR.TAG", CACHEDIR_TAG)] {
            self.write_if_missing(&self.root.join(name), content.as_bytes())?;
        }
        // A new cache has nothing to sweep: the first run of a fresh CI machine (a thousand
        // imported entries) read and parsed all of them again after its build.
        if new {
            let marker = self.v1.join(crate::maintenance::SWEPT_MARKER);
            self.write_if_missing(&marker, b"")?;
        }
        let _ = self.created.set(());
        Ok(())
    }

    /// Writes `destination` unless something exists there: the content goes to a temp file
    /// first and is hard-linked into place, so a crash never leaves a partial marker and an
    /// existing file is never replaced.
    fn write_if_missing(&self, destination: &Path, bytes: &[u8]) -> Result<(), CacheError> {
        if fs::symlink_metadata(destination).is_ok() {
            return Ok(());
        }
        let tmp_dir = self.tmp_dir();
        fs::create_dir_all(&tmp_dir).at(&tmp_dir)?;
        let mut temp = TempFile::create_in(&tmp_dir, "marker")?;
        temp.file.write_all(bytes).at(temp.path())?;
        match fs::hard_link(temp.path(), destination) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            // No hard links on this file system: create it exclusively instead.
            Err(_) => match OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(destination)
            {
                Ok(mut file) => file.write_all(bytes).at(destination),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                Err(error) => Err(CacheError::io(destination, error)),
            },
        }
    }

    pub(crate) fn entries_dir(&self) -> PathBuf {
        self.v1.join("entries")
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.v1.join("blobs")
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.v1.join("tmp")
    }

    pub(crate) fn last_dir(&self) -> PathBuf {
        self.v1.join("last")
    }

    pub(crate) fn lock_path(&self) -> PathBuf {
        self.v1.join(LOCK_FILE)
    }

    /// `v1/entries/<hash[0..2]>/<hash>.json`; rejects anything but 64 lowercase hex digits.
    pub(crate) fn entry_path(&self, task_hash: &str) -> Result<PathBuf, CacheError> {
        if !is_sha256_hex(task_hash) {
            return Err(CacheError::InvalidTaskHash {
                task_hash: task_hash.to_owned(),
            });
        }
        Ok(self
            .entries_dir()
            .join(&task_hash[..2])
            .join(format!("{task_hash}.json")))
    }

    /// `v1/blobs/<sha[0..2]>/<sha>`, or `None` if `sha256` is not 64 lowercase hex digits.
    pub(crate) fn blob_path(&self, sha256: &str) -> Option<PathBuf> {
        is_sha256_hex(sha256).then(|| self.blobs_dir().join(&sha256[..2]).join(sha256))
    }

    /// `v1/last/<task>/<package>`; both must be single, ordinary path components.
    pub(crate) fn last_path(&self, package: &str, task: &str) -> Result<PathBuf, CacheError> {
        check_name("package name", package)?;
        check_name("task name", task)?;
        Ok(self.last_dir().join(task).join(package))
    }

    /// A new, empty temp file in `v1/tmp` (created if missing).
    pub(crate) fn temp_file(&self) -> Result<TempFile, CacheError> {
        self.create_v1()?;
        let tmp_dir = self.tmp_dir();
        fs::create_dir_all(&tmp_dir).at(&tmp_dir)?;
        TempFile::create_in(&tmp_dir, "store")
    }

    /// Opens (creating `v1/` and the file if needed) the lock file. Locking is up to the caller;
    /// the lock is released when the returned file is dropped.
    pub(crate) fn open_lock(&self) -> Result<File, CacheError> {
        self.create_v1()?;
        // Again: a `clean` since the first creation removed `v1/`.
        fs::create_dir_all(&self.v1).at(&self.v1)?;
        let lock_path = self.lock_path();
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .at(&lock_path)
    }
}

/// Checks that `name` can be used as one path component.
fn check_name(what: &'static str, name: &str) -> Result<(), CacheError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name == "." || name == ".." {
        Some("it is `.` or `..`")
    } else if name.contains(['/', '\\']) {
        Some("it contains a path separator")
    } else if name.chars().any(char::is_control) {
        Some("it contains a control character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(CacheError::InvalidName {
            what,
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A unique path that is removed on drop unless [`TempPath::persist`]ed (renamed into place).
#[derive(Debug)]
pub(crate) struct TempPath {
    path: PathBuf,
}

impl TempPath {
    /// Reserves `<dir>/.<label>.<pid>.<counter>.<nanos>.tmp` without creating anything (for
    /// symlinks, which are created by path).
    pub(crate) fn reserve_in(dir: &Path, label: &str) -> TempPath {
        TempPath {
            path: dir.join(unique_name(label)),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Gives up ownership: the path will not be removed on drop.
    pub(crate) fn disarm(mut self) -> PathBuf {
        std::mem::take(&mut self.path)
    }

    /// Renames the temp path to `destination`, creating its parent directory unless it is
    /// the temp path's own (a restore writes beside the destination: one `mkdir` less each).
    pub(crate) fn persist(self, destination: &Path) -> Result<(), CacheError> {
        if let Some(parent) = destination.parent()
            && Some(parent) != self.path.parent()
        {
            fs::create_dir_all(parent).at(parent)?;
        }
        fs::rename(&self.path, destination).at(destination)?;
        // Renamed: nothing left to clean up.
        self.disarm();
        Ok(())
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            // Best effort: a leftover in `v1/tmp` is removed by prune after an hour.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A new file with a unique name, removed on drop unless [`TempFile::persist`]ed.
#[derive(Debug)]
pub(crate) struct TempFile {
    // Field order matters: the handle is closed before the path is removed.
    pub(crate) file: File,
    temp_path: TempPath,
}

impl TempFile {
    /// Creates a new file in `dir` (never opening an existing one).
    pub(crate) fn create_in(dir: &Path, label: &str) -> Result<TempFile, CacheError> {
        loop {
            let temp_path = TempPath::reserve_in(dir, label);
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(temp_path.path())
            {
                Ok(file) => return Ok(TempFile { file, temp_path }),
                // Not ours (or not created): disarm the guard so it deletes nothing.
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    temp_path.disarm();
                }
                Err(error) => return Err(CacheError::io(temp_path.disarm(), error)),
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.temp_path.path()
    }

    /// Closes the handle and renames the file to `destination`, creating its parent directory.
    pub(crate) fn persist(self, destination: &Path) -> Result<(), CacheError> {
        let TempFile { file, temp_path } = self;
        drop(file);
        temp_path.persist(destination)
    }
}

fn unique_name(label: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!(".{label}.{}.{counter}.{nanos}.tmp", std::process::id())
}

/// Milliseconds since the Unix epoch (0 for a clock set before 1970).
pub(crate) fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |elapsed| {
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    })
}

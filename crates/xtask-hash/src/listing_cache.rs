//! The listing cache: the result of [`crate::discover_inputs`] for one spec, reused while no
//! directory it walked and no ignore file that applies changed (git's "untracked cache" idea).
//!
//! Why this is safe: a directory's mtime and ctime change whenever an entry is created,
//! deleted or renamed in it, so an unchanged stat of every walked directory means the same
//! names; an ignore file edited in place changes its own stat, so every existing `.gitignore`
//! and `.ignore` in the walked directories and in the directories between the workspace root
//! and the package is watched too (and the directories themselves, so a new ignore file or a
//! new `.git` is seen). Racy timestamps are handled with a clock file: before a walk, the
//! cache touches `walk-clock` and reads its mtime (the file system's clock, at its
//! granularity); a listing is trusted only while every watched stat is strictly older than
//! that time, so a change made during the walk or within the same timestamp tick is never
//! missed: that listing is walked again next time.
//!
//! The file is JSON, written atomically; a corrupt file is ignored and rebuilt. It is read on
//! every planned run, so it is kept compact (at N = 500 its parse was a sixth of the user time
//! of a fully cached run): listings are keyed by the sha256 of the spec key, and each watched
//! path is a tuple with its path relative to the workspace root.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use xtask_util::write_atomically;

use crate::HashError;
use crate::inputs::{InputFile, InputSpec, discover_inputs_visiting};
use crate::stat_cache::{FileStat, file_system_clock};

const VERSION: u32 = 2;

/// A watched path (relative to the workspace root) and its stat: `[path, size, mtime_ns,
/// ctime_ns, inode, kind]` in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Watched(PathBuf, u64, i128, i128, u64, u8);

impl Watched {
    /// The stat of `root/relative` (`relative` may be absolute: then it is used as is).
    fn of(root: &Path, relative: &Path) -> Option<Watched> {
        let stat = FileStat::of(&root.join(relative)).ok()?;
        Some(Watched(
            relative.to_path_buf(),
            stat.size,
            stat.mtime_ns,
            stat.ctime_ns,
            stat.inode,
            stat.kind,
        ))
    }

    fn mtime_ns(&self) -> i128 {
        self.2
    }

    fn ctime_ns(&self) -> i128 {
        self.3
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Listing {
    /// The file system clock before the walk (see the module doc).
    walk_clock_ns: i128,
    watched: Vec<Watched>,
    /// Workspace-relative paths, sorted.
    files: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    version: u32,
    listings: HashMap<String, Listing>,
}

/// Cached input listings of one workspace. Share by `&` across threads.
#[derive(Debug)]
pub struct ListingCache {
    path: PathBuf,
    listings: Mutex<HashMap<String, Listing>>,
    clock: Mutex<Option<i128>>,
    dirty: AtomicBool,
    writable: bool,
    /// The specs listed through this cache (key -> workspace root and package directory), for
    /// [`ListingCache::used_listings`].
    used: Mutex<HashMap<String, (PathBuf, PathBuf)>>,
    /// A spec was listed without a listing being recorded (see `used_listings`).
    unrecorded: AtomicBool,
}

/// A listing this process used, with what it depends on (see [`ListingCache::used_listings`]).
#[derive(Debug, Clone)]
pub struct UsedListing {
    pub workspace_root: PathBuf,
    pub package_dir: PathBuf,
    /// The watched paths (absolute): directories (walked ones and those between the
    /// workspace root and the package) and the ignore files in them.
    pub watched: Vec<PathBuf>,
    /// The listed files, workspace-relative, sorted.
    pub files: Vec<String>,
}

impl ListingCache {
    /// Loads `path`; missing or corrupt gives an empty cache.
    pub fn load(path: &Path) -> ListingCache {
        let listings = std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Stored>(&bytes).ok())
            .filter(|stored| stored.version == VERSION)
            .map(|stored| stored.listings)
            .unwrap_or_default();
        ListingCache {
            path: path.to_path_buf(),
            listings: Mutex::new(listings),
            clock: Mutex::new(None),
            dirty: AtomicBool::new(false),
            writable: true,
            used: Mutex::new(HashMap::new()),
            unrecorded: AtomicBool::new(false),
        }
    }

    /// Every listing [`ListingCache::discover`] returned in this process, with the paths its
    /// validity depends on; `None` when one of them was walked without being recorded (a
    /// read-only cache, a directory that vanished during the walk).
    pub fn used_listings(&self) -> Option<Vec<UsedListing>> {
        if self.unrecorded.load(Ordering::Relaxed) {
            return None;
        }
        let used = self
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let listings = self
            .listings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        used.iter()
            .map(|(key, (root, package_dir))| {
                let listing = listings.get(key)?;
                Some(UsedListing {
                    workspace_root: root.clone(),
                    package_dir: package_dir.clone(),
                    watched: listing.watched.iter().map(|w| root.join(&w.0)).collect(),
                    files: listing.files.clone(),
                })
            })
            .collect()
    }

    fn mark_used(&self, key: &str, spec: &InputSpec<'_>) {
        self.used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                key.to_owned(),
                (
                    spec.workspace_root.to_path_buf(),
                    spec.package_dir.to_path_buf(),
                ),
            );
    }

    /// This cache, used but never written (no clock file, no new listings, `save` does
    /// nothing).
    pub fn read_only(mut self) -> ListingCache {
        self.writable = false;
        self
    }

    /// [`crate::discover_inputs`] through the cache: the stored listing when nothing it
    /// depends on changed, else a fresh walk (recorded for next time).
    pub fn discover(&self, spec: &InputSpec<'_>) -> Result<Vec<InputFile>, HashError> {
        let key = spec_key(spec);
        let stored = self
            .listings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .cloned();
        if let Some(listing) = stored
            && listing.watched.iter().all(|w| {
                w.mtime_ns() < listing.walk_clock_ns
                    && w.ctime_ns() < listing.walk_clock_ns
                    && Watched::of(spec.workspace_root, &w.0).as_ref() == Some(w)
            })
        {
            self.mark_used(&key, spec);
            return Ok(listing
                .files
                .into_iter()
                .map(|relative_path| InputFile {
                    absolute_path: spec.workspace_root.join(&relative_path),
                    relative_path,
                })
                .collect());
        }
        let walk_clock_ns = self.clock();
        let mut visited = Vec::new();
        let files = discover_inputs_visiting(spec, Some(&mut visited))?;
        if let Some(walk_clock_ns) = walk_clock_ns {
            let mut watch_paths: Vec<PathBuf> = Vec::new();
            // The directories between the workspace root and the package (their ignore files
            // apply), then every walked directory.
            if spec.package_dir != spec.workspace_root {
                for dir in spec.package_dir.ancestors().skip(1) {
                    if !dir.starts_with(spec.workspace_root) {
                        break;
                    }
                    watch_paths.push(dir.to_path_buf());
                }
            }
            watch_paths.extend(visited);
            let mut watched = Vec::new();
            let mut complete = true;
            for dir in watch_paths {
                let relative = dir.strip_prefix(spec.workspace_root).unwrap_or(&dir);
                match Watched::of(spec.workspace_root, relative) {
                    Some(w) => watched.push(w),
                    None => complete = false,
                }
                for name in [".gitignore", ".ignore"] {
                    if let Some(w) = Watched::of(spec.workspace_root, &relative.join(name)) {
                        watched.push(w);
                    }
                }
            }
            if complete {
                let listing = Listing {
                    walk_clock_ns,
                    watched,
                    files: files.iter().map(|f| f.relative_path.clone()).collect(),
                };
                self.listings
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(key.clone(), listing);
                self.dirty.store(true, Ordering::Relaxed);
                self.mark_used(&key, spec);
                return Ok(files);
            }
        }
        self.unrecorded.store(true, Ordering::Relaxed);
        Ok(files)
    }

    /// Writes the cache back if a listing was added (temp file + rename).
    pub fn save(&self) -> Result<(), HashError> {
        if !self.writable || !self.dirty.load(Ordering::Relaxed) {
            return Ok(());
        }
        let listings = self
            .listings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let stored = Stored {
            version: VERSION,
            listings,
        };
        let bytes = serde_json::to_vec(&stored).unwrap_or_default();
        write_atomically(&self.path, &bytes)?;
        self.dirty.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// The file system's clock now: the mtime of a freshly written `walk-clock` file next to
    /// the cache. Taken once per process, before the first walk. `None` if it cannot be
    /// written (then nothing is cached).
    fn clock(&self) -> Option<i128> {
        if !self.writable {
            return None;
        }
        let mut clock = self
            .clock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if clock.is_none() {
            *clock = file_system_clock(&self.path.with_file_name("walk-clock"));
        }
        *clock
    }
}

/// The sha256 of everything a listing depends on besides the disk: the workspace root, the
/// package and the include/exclude globs and directories (NUL-separated, so no two specs
/// share a key).
fn spec_key(spec: &InputSpec<'_>) -> String {
    let mut key = String::new();
    key.push_str(&spec.workspace_root.to_string_lossy());
    key.push('\0');
    key.push_str(&spec.package_dir.to_string_lossy());
    for glob in spec.include {
        key.push_str("\0i:");
        key.push_str(glob);
    }
    for glob in spec.exclude_globs {
        key.push_str("\0x:");
        key.push_str(glob);
    }
    for dir in spec.exclude_dirs {
        key.push_str("\0d:");
        key.push_str(&dir.to_string_lossy());
    }
    crate::sha256_hex(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(root: &'a Path, package: &'a Path, exclude: &'a [String]) -> InputSpec<'a> {
        InputSpec {
            workspace_root: root,
            package_dir: package,
            include: &[],
            exclude_globs: exclude,
            exclude_dirs: &[],
        }
    }

    fn names(files: &[InputFile]) -> Vec<&str> {
        files.iter().map(|f| f.relative_path.as_str()).collect()
    }

    /// Makes every stat in the tree "old" relative to the next clock by waiting past the
    /// timestamp granularity, then lists twice: the second listing must come from the cache.
    fn settle() {
        std::thread::sleep(std::time::Duration::from_millis(30));
    }

    #[test]
    fn a_listing_is_reused_until_a_file_is_added_removed_or_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        let package = root.join("crates/a");
        std::fs::create_dir_all(package.join("src")).unwrap();
        std::fs::write(package.join("Cargo.toml"), "").unwrap();
        std::fs::write(package.join("src/lib.rs"), "").unwrap();
        let exclude = vec!["out/**".to_string()];
        let cache_path = dir.path().join("cache/listings.json");
        let list = || {
            let cache = ListingCache::load(&cache_path);
            let files = cache.discover(&spec(&root, &package, &exclude)).unwrap();
            cache.save().unwrap();
            names(&files)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        settle();
        assert_eq!(list(), ["crates/a/Cargo.toml", "crates/a/src/lib.rs"]);
        // Prove the second listing is cached: forge it, and see the forgery come back.
        let text = std::fs::read_to_string(&cache_path).unwrap();
        std::fs::write(&cache_path, text.replace("src/lib.rs", "src/forged.rs")).unwrap();
        assert_eq!(list(), ["crates/a/Cargo.toml", "crates/a/src/forged.rs"]);

        // A new file, right away (same second as the last run): seen.
        std::fs::write(package.join("src/new.rs"), "").unwrap();
        assert_eq!(
            list(),
            [
                "crates/a/Cargo.toml",
                "crates/a/src/lib.rs",
                "crates/a/src/new.rs"
            ]
        );
        // Removed: seen.
        std::fs::remove_file(package.join("src/new.rs")).unwrap();
        assert_eq!(list(), ["crates/a/Cargo.toml", "crates/a/src/lib.rs"]);
        // A .gitignore above the package, created then edited in place with the same size.
        std::fs::write(root.join(".gitignore"), "zzzzzz\n").unwrap();
        assert_eq!(list(), ["crates/a/Cargo.toml", "crates/a/src/lib.rs"]);
        settle();
        assert_eq!(list(), ["crates/a/Cargo.toml", "crates/a/src/lib.rs"]);
        std::fs::write(root.join(".gitignore"), "lib.rs\n").unwrap();
        assert_eq!(list(), ["crates/a/Cargo.toml"]);
        // Output directories stay excluded.
        std::fs::create_dir_all(package.join("out")).unwrap();
        std::fs::write(package.join("out/x"), "").unwrap();
        assert_eq!(list(), ["crates/a/Cargo.toml"]);
    }

    #[test]
    fn a_corrupt_listing_cache_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("a.txt"), "").unwrap();
        let cache_path = dir.path().join("listings.json");
        std::fs::write(&cache_path, "{not json").unwrap();
        let cache = ListingCache::load(&cache_path);
        let files = cache.discover(&spec(&root, &root, &[])).unwrap();
        assert_eq!(names(&files), ["a.txt"]);
        cache.save().unwrap();
        assert!(serde_json::from_slice::<Stored>(&std::fs::read(&cache_path).unwrap()).is_ok());
    }
}

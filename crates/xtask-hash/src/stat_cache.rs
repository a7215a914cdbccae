//! The stat cache: `(path, size, mtime, ctime, inode) -> sha256`, so files that did not change
//! since the last run are not read again (git's index does the same for `git status`).
//!
//! Correctness rules:
//! - A cached digest is used only when size, mtime (ns), ctime (ns), inode and file type all
//!   match what was recorded. Any content write changes mtime and ctime; `touch -d` to an old
//!   time still changes ctime; a replace by rename changes the inode.
//! - Racy timestamps (git's `racy-git` rule): an entry whose recorded mtime or ctime is not
//!   strictly older than the moment the cache file was written is never trusted, because the
//!   file may have been written again within the same timestamp tick after it was hashed. Such
//!   entries are re-hashed, and the cache is rewritten so that they become trustworthy later.
//! - The stat is taken before the file is read, so a write during hashing leaves a stat that
//!   no longer matches and the file is read again next time; and a stat is recorded only when
//!   it is strictly older than the file system's clock read before it was taken (the mtime of
//!   a `stat-clock` file written once per process), so a file written twice in the same tick,
//!   before and after it was hashed, is never trusted.
//! - The file is written through a temp file and a rename; a cache file that does not parse
//!   (truncated, corrupt, another version) is ignored as if empty and rebuilt.
//!
//! Format (text, one entry per line, sorted): a header line [`HEADER`], then
//! `sha256 size mtime_ns ctime_ns inode kind relative_path` separated by single spaces (the
//! path last, so it may contain spaces; paths with a newline are never cached).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use xtask_util::{try_parallel_map, write_atomically};

use crate::HashError;
use crate::files::{digest_path, input_digest, is_executable};
use crate::inputs::InputFile;

/// The first line of a stat cache file; another header means "ignore the file".
pub const HEADER: &str = "xtask-stat-cache v1";

/// What a file looked like when it was hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub inode: u64,
    /// `f` regular file, `l` symlink, `o` anything else.
    pub kind: u8,
}

impl FileStat {
    /// `lstat` of `path` (symlinks are not followed).
    pub fn of(path: &Path) -> io::Result<FileStat> {
        let metadata = std::fs::symlink_metadata(path)?;
        Ok(FileStat::from_metadata(&metadata))
    }

    #[cfg(unix)]
    pub fn from_metadata(metadata: &std::fs::Metadata) -> FileStat {
        use std::os::unix::fs::MetadataExt;
        let kind = if metadata.file_type().is_symlink() {
            b'l'
        } else if metadata.is_file() {
            b'f'
        } else {
            b'o'
        };
        FileStat {
            size: metadata.size(),
            mtime_ns: i128::from(metadata.mtime()) * 1_000_000_000
                + i128::from(metadata.mtime_nsec()),
            ctime_ns: i128::from(metadata.ctime()) * 1_000_000_000
                + i128::from(metadata.ctime_nsec()),
            inode: metadata.ino(),
            kind,
        }
    }

    #[cfg(not(unix))]
    pub fn from_metadata(metadata: &std::fs::Metadata) -> FileStat {
        let mtime_ns = metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(i128::MAX);
        FileStat {
            size: metadata.len(),
            mtime_ns,
            ctime_ns: mtime_ns,
            inode: 0,
            kind: if metadata.file_type().is_symlink() {
                b'l'
            } else if metadata.is_file() {
                b'f'
            } else {
                b'o'
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    stat: FileStat,
    sha256: String,
}

/// Counters of one [`StatCache::hash_files`] call, for tests and `--summarize`-like reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatCacheCounts {
    /// Digests taken from the cache (the file was only stat'ed).
    pub reused: usize,
    /// Files read and hashed (new, changed or racy).
    pub hashed: usize,
}

/// A loaded stat cache. Share it by `&` across threads; [`StatCache::save`] writes it back when
/// anything changed.
#[derive(Debug)]
pub struct StatCache {
    path: PathBuf,
    /// When the cache file was last written (its mtime), in ns; `None` = nothing is trusted.
    written_at_ns: Option<i128>,
    entries: Mutex<HashMap<String, Entry>>,
    clock: std::sync::OnceLock<Option<i128>>,
    dirty: AtomicBool,
    /// False: use what is there, record and write nothing (see [`StatCache::read_only`]).
    writable: bool,
}

impl StatCache {
    /// Loads the cache at `path`. A missing, unreadable or corrupt file gives an empty cache
    /// (which [`StatCache::save`] replaces).
    pub fn load(path: &Path) -> StatCache {
        let empty = |dirty: bool| StatCache {
            path: path.to_path_buf(),
            written_at_ns: None,
            entries: Mutex::new(HashMap::new()),
            clock: std::sync::OnceLock::new(),
            dirty: AtomicBool::new(dirty),
            writable: true,
        };
        let Ok(stat) = FileStat::of(path) else {
            return empty(false);
        };
        let Ok(text) = std::fs::read_to_string(path) else {
            return empty(true);
        };
        match parse(&text) {
            Some(entries) => StatCache {
                path: path.to_path_buf(),
                written_at_ns: Some(stat.mtime_ns),
                entries: Mutex::new(entries),
                clock: std::sync::OnceLock::new(),
                dirty: AtomicBool::new(false),
                writable: true,
            },
            None => empty(true),
        }
    }

    /// This cache, used but never written: no clock file, no new entries, `save` does nothing
    /// (for commands that must write nothing, e.g. before the cache directory exists).
    pub fn read_only(mut self) -> StatCache {
        self.writable = false;
        self
    }

    /// The sha256 of `absolute_path` (known as `relative_path`), from the cache when its stat
    /// matches and is not racy, else read and hashed (and recorded).
    /// This is the content sha256 (what restored outputs are compared with); input digests
    /// from [`StatCache::hash_files`] add the executable bit (see [`crate::EXECUTABLE_SUFFIX`]).
    pub fn digest(&self, relative_path: &str, absolute_path: &Path) -> io::Result<(String, bool)> {
        self.digest_and_mode(relative_path, absolute_path)
            .map(|(sha256, reused, _)| (sha256, reused))
    }

    /// The input digest of one file, exactly as [`StatCache::hash_files`] gives it (the
    /// executable bit included): what a task key holds for it.
    pub fn input_digest(&self, relative_path: &str, absolute_path: &Path) -> io::Result<String> {
        self.digest_and_mode(relative_path, absolute_path)
            .map(|(sha256, _, executable)| input_digest(sha256, executable))
    }

    /// [`StatCache::digest`] and whether the file is executable, from the same `lstat`.
    fn digest_and_mode(
        &self,
        relative_path: &str,
        absolute_path: &Path,
    ) -> io::Result<(String, bool, bool)> {
        let metadata = std::fs::symlink_metadata(absolute_path)?;
        let stat = FileStat::from_metadata(&metadata);
        if let Some(written_at) = self.written_at_ns
            && stat.mtime_ns < written_at
            && stat.ctime_ns < written_at
            && let Some(entry) = self.lock().get(relative_path)
            && entry.stat == stat
        {
            return Ok((entry.sha256.clone(), true, is_executable(&metadata)));
        }
        // Racy timestamps, the other half: a file changed in the same tick as it is hashed
        // (before and after the stat) keeps its stat. Only a stat strictly older than the
        // file system's clock taken before that stat is recorded; the rest is hashed again
        // next time.
        let clock = self.clock();
        let metadata = std::fs::symlink_metadata(absolute_path)?;
        let stat = FileStat::from_metadata(&metadata);
        let sha256 = digest_path(absolute_path)?;
        let settled = clock.is_some_and(|clock| stat.mtime_ns < clock && stat.ctime_ns < clock);
        if settled && !relative_path.contains('\n') {
            self.lock().insert(
                relative_path.to_owned(),
                Entry {
                    stat,
                    sha256: sha256.clone(),
                },
            );
            self.dirty.store(true, Ordering::Relaxed);
        }
        Ok((sha256, false, is_executable(&metadata)))
    }

    /// Like [`crate::hash_files`], through the cache: unchanged files are only stat'ed, the
    /// others are read and hashed, all on `threads` threads. Input digests: executable files
    /// get [`crate::EXECUTABLE_SUFFIX`], taken from the fresh `lstat`, never from the cache.
    pub fn hash_files(
        &self,
        files: &[InputFile],
        threads: usize,
    ) -> Result<(BTreeMap<String, String>, StatCacheCounts), HashError> {
        let digests = try_parallel_map(files, threads, |file| {
            self.digest_and_mode(&file.relative_path, &file.absolute_path)
                .map(|(sha256, reused, executable)| (input_digest(sha256, executable), reused))
                .map_err(|source| HashError::Read {
                    path: file.relative_path.clone().into(),
                    source,
                })
        })?;
        let mut by_path = BTreeMap::new();
        let mut counts = StatCacheCounts::default();
        for (file, (sha256, reused)) in files.iter().zip(digests) {
            if reused {
                counts.reused += 1;
            } else {
                counts.hashed += 1;
            }
            by_path.insert(file.relative_path.clone(), sha256);
        }
        Ok((by_path, counts))
    }

    /// Writes the cache back (temp file + rename) if any entry was added or changed.
    pub fn save(&self) -> Result<(), HashError> {
        if !self.writable || !self.dirty.load(Ordering::Relaxed) {
            return Ok(());
        }
        let entries = self.lock();
        let mut sorted: Vec<(&String, &Entry)> = entries.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let mut text = String::with_capacity(sorted.len() * 120 + HEADER.len() + 1);
        text.push_str(HEADER);
        text.push('\n');
        for (path, entry) in sorted {
            let s = &entry.stat;
            text.push_str(&format!(
                "{} {} {} {} {} {} {path}\n",
                entry.sha256,
                s.size,
                s.mtime_ns,
                s.ctime_ns,
                s.inode,
                char::from(s.kind)
            ));
        }
        drop(entries);
        write_atomically(&self.path, text.as_bytes())?;
        self.dirty.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// The file system's clock: the mtime of a `stat-clock` file next to the cache, written
    /// once per process before the first file is hashed. `None` if it cannot be written
    /// (then nothing new is recorded).
    fn clock(&self) -> Option<i128> {
        if !self.writable {
            return None;
        }
        *self
            .clock
            .get_or_init(|| file_system_clock(&self.path.with_file_name("stat-clock")))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn parse(text: &str) -> Option<HashMap<String, Entry>> {
    let mut lines = text.split('\n');
    if lines.next()? != HEADER {
        return None;
    }
    if !text.ends_with('\n') {
        return None; // truncated
    }
    let mut entries = HashMap::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let mut fields = line.splitn(7, ' ');
        let sha256 = fields.next()?;
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let size = fields.next()?.parse().ok()?;
        let mtime_ns = fields.next()?.parse().ok()?;
        let ctime_ns = fields.next()?.parse().ok()?;
        let inode = fields.next()?.parse().ok()?;
        let kind = match fields.next()? {
            "f" => b'f',
            "l" => b'l',
            "o" => b'o',
            _ => return None,
        };
        let path = fields.next()?;
        entries.insert(
            path.to_owned(),
            Entry {
                stat: FileStat {
                    size,
                    mtime_ns,
                    ctime_ns,
                    inode,
                    kind,
                },
                sha256: sha256.to_owned(),
            },
        );
    }
    Some(entries)
}

/// The file system's clock now: writes `marker` afresh and returns its mtime (what the racy
/// timestamp rules compare against; the system clock can differ from the file system's). `None`
/// if it cannot be written. A plain write: only the time matters, so no rename and no `fsync`
/// (which cost a cold run up to 3 ms of waiting each).
pub fn file_system_clock(marker: &Path) -> Option<i128> {
    if let Some(parent) = marker.parent() {
        std::fs::create_dir_all(parent).ok()?;
    }
    std::fs::write(marker, b"clock\n")
        .ok()
        .and_then(|()| FileStat::of(marker).ok())
        .map(|stat| stat.mtime_ns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sha256_hex;

    fn input(root: &Path, relative_path: &str) -> InputFile {
        InputFile {
            relative_path: relative_path.to_owned(),
            absolute_path: root.join(relative_path),
        }
    }

    /// Sets the cache file's mtime (its "written at" time) to `seconds_ago` in the past, as if
    /// the last run had been that long ago.
    fn age(path: &Path, seconds_ago: u64) {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(
            std::time::SystemTime::now() - std::time::Duration::from_secs(seconds_ago),
        )
        .unwrap();
    }

    /// Waits until the file system's clock is past `path`'s ctime (which setting its mtime has
    /// just made "now"), so that its stat is settled for the next run's clock and recorded.
    fn wait_past_ctime(path: &Path) {
        let ctime = FileStat::of(path).unwrap().ctime_ns;
        let probe = path.with_extension("clock-probe");
        while file_system_clock(&probe).unwrap() <= ctime {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    fn set_mtime(path: &Path, time: std::time::SystemTime) {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(time).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn the_executable_bit_is_in_input_digests_also_when_the_content_digest_is_reused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let mode = |name: &str, mode: u32| {
            std::fs::set_permissions(dir.path().join(name), std::fs::Permissions::from_mode(mode))
                .unwrap();
        };
        std::fs::write(dir.path().join("run.sh"), "echo").unwrap();
        std::fs::write(dir.path().join("copy.sh"), "echo").unwrap();
        mode("run.sh", 0o755);
        let files = vec![input(dir.path(), "run.sh"), input(dir.path(), "copy.sh")];
        let cache_path = dir.path().join("cache/stat-cache");
        wait_past_ctime(&dir.path().join("run.sh"));
        let cache = StatCache::load(&cache_path);
        let (digests, _) = cache.hash_files(&files, 2).unwrap();
        let content = sha256_hex(b"echo");
        assert_eq!(digests["run.sh"], format!("{content}+x"));
        assert_eq!(digests["copy.sh"], content);
        assert_eq!(
            cache
                .digest("run.sh", &dir.path().join("run.sh"))
                .unwrap()
                .0,
            content,
            "`digest` is the content sha256"
        );
        cache.save().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let text = std::fs::read(&cache_path).unwrap();
        write_atomically(&cache_path, &text).unwrap();

        // Reused from the cache: the bit still comes from the file.
        let cache = StatCache::load(&cache_path);
        let (again, counts) = cache.hash_files(&files, 1).unwrap();
        assert_eq!(counts.reused, 2);
        assert_eq!(again, digests);

        // chmod either way changes the input digest.
        mode("run.sh", 0o644);
        mode("copy.sh", 0o700);
        let (flipped, _) = cache.hash_files(&files, 1).unwrap();
        assert_eq!(flipped["run.sh"], content);
        assert_eq!(flipped["copy.sh"], format!("{content}+x"));
    }

    #[test]
    fn unchanged_files_are_reused_after_the_racy_window() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.rs"), "aaa").unwrap();
        std::fs::write(dir.path().join("b.rs"), "bbb").unwrap();
        // Files written "long ago", the cache written now: not racy.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        set_mtime(&dir.path().join("a.rs"), old);
        set_mtime(&dir.path().join("b.rs"), old);
        let files = vec![input(dir.path(), "a.rs"), input(dir.path(), "b.rs")];
        let cache_path = dir.path().join("cache/stat-cache");
        // The files' ctime (set just now) must be older than the clock this run takes.
        wait_past_ctime(&dir.path().join("b.rs"));
        let cache = StatCache::load(&cache_path);
        let (digests, counts) = cache.hash_files(&files, 2).unwrap();
        assert_eq!(
            counts,
            StatCacheCounts {
                reused: 0,
                hashed: 2
            }
        );
        assert_eq!(digests["a.rs"], sha256_hex(b"aaa"));
        cache.save().unwrap();
        // ctime of the files is "now" (set_modified changes it), so age the files' ctime by
        // waiting is impossible; instead the cache file is re-touched after a short sleep so
        // it is strictly newer than every file stat.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let text = std::fs::read(&cache_path).unwrap();
        write_atomically(&cache_path, &text).unwrap();
        let cache = StatCache::load(&cache_path);
        let (again, counts) = cache.hash_files(&files, 2).unwrap();
        assert_eq!(
            counts,
            StatCacheCounts {
                reused: 2,
                hashed: 0
            }
        );
        assert_eq!(again, digests);
    }

    #[test]
    fn a_same_size_change_within_the_same_tick_as_the_cache_write_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.rs");
        std::fs::write(&path, "one").unwrap();
        // The first run records `a.rs` only once it is past the file system's clock.
        wait_past_ctime(&path);
        let files = vec![input(dir.path(), "a.rs")];
        let cache_path = dir.path().join("stat-cache");
        let cache = StatCache::load(&cache_path);
        cache.hash_files(&files, 1).unwrap();
        cache.save().unwrap();
        // Same size, and the mtime forced to the cache's own write time: only the racy rule
        // (and ctime) can tell.
        std::fs::write(&path, "two").unwrap();
        let written_at = std::fs::metadata(&cache_path).unwrap().modified().unwrap();
        set_mtime(&path, written_at);
        let cache = StatCache::load(&cache_path);
        let (digests, counts) = cache.hash_files(&files, 1).unwrap();
        assert_eq!(digests["a.rs"], sha256_hex(b"two"));
        assert_eq!(counts.hashed, 1);
    }

    #[test]
    fn a_same_size_change_with_the_old_mtime_restored_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.rs");
        std::fs::write(&path, "one").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
        set_mtime(&path, old);
        // Else, within one tick of the file system's clock, nothing is recorded (racy).
        wait_past_ctime(&path);
        let files = vec![input(dir.path(), "a.rs")];
        let cache_path = dir.path().join("stat-cache");
        let cache = StatCache::load(&cache_path);
        cache.hash_files(&files, 1).unwrap();
        cache.save().unwrap();
        // Same size, same (old) mtime: a tool that preserves mtimes. ctime still moves.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, "two").unwrap();
        set_mtime(&path, old);
        let cache = StatCache::load(&cache_path);
        let (digests, _) = cache.hash_files(&files, 1).unwrap();
        assert_eq!(digests["a.rs"], sha256_hex(b"two"));
    }

    #[test]
    fn a_stat_not_older_than_the_clock_is_never_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.rs");
        std::fs::write(&path, "one").unwrap();
        // An mtime at or after the clock this run reads: the file may still be changing in
        // the tick it was hashed in (as a same-tick second write would look).
        let future = std::time::SystemTime::now() + std::time::Duration::from_secs(30);
        set_mtime(&path, future);
        let files = vec![input(dir.path(), "a.rs")];
        let cache_path = dir.path().join("stat-cache");
        let cache = StatCache::load(&cache_path);
        cache.hash_files(&files, 1).unwrap();
        cache.save().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let cache = StatCache::load(&cache_path);
        let (digests, counts) = cache.hash_files(&files, 1).unwrap();
        assert_eq!(
            counts,
            StatCacheCounts {
                reused: 0,
                hashed: 1
            }
        );
        assert_eq!(digests["a.rs"], sha256_hex(b"one"));
    }

    #[test]
    fn a_change_in_the_same_second_as_the_last_run_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.rs");
        std::fs::write(&path, "1111").unwrap();
        let files = vec![input(dir.path(), "a.rs")];
        let cache_path = dir.path().join("stat-cache");
        for (round, content) in ["2222", "3333", "4444"].iter().enumerate() {
            let cache = StatCache::load(&cache_path);
            let (digests, _) = cache.hash_files(&files, 2).unwrap();
            let expected = if round == 0 {
                "1111"
            } else {
                ["2222", "3333", "4444"][round - 1]
            };
            assert_eq!(
                digests["a.rs"],
                sha256_hex(expected.as_bytes()),
                "round {round}"
            );
            cache.save().unwrap();
            // Immediately (same second, same size) rewrite the file.
            std::fs::write(&path, content).unwrap();
        }
        let cache = StatCache::load(&cache_path);
        let (digests, _) = cache.hash_files(&files, 2).unwrap();
        assert_eq!(digests["a.rs"], sha256_hex(b"4444"));
    }

    #[test]
    fn a_replaced_file_with_the_same_stat_times_is_seen_by_its_inode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.rs");
        std::fs::write(&path, "one").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
        set_mtime(&path, old);
        // Else, within one tick of the file system's clock, nothing is recorded (racy).
        wait_past_ctime(&path);
        let files = vec![input(dir.path(), "a.rs")];
        let cache_path = dir.path().join("stat-cache");
        let cache = StatCache::load(&cache_path);
        cache.hash_files(&files, 1).unwrap();
        cache.save().unwrap();
        age(&cache_path, 0);
        let replacement = dir.path().join("new.rs");
        std::fs::write(&replacement, "two").unwrap();
        set_mtime(&replacement, old);
        std::fs::rename(&replacement, &path).unwrap();
        let cache = StatCache::load(&cache_path);
        let (digests, _) = cache.hash_files(&files, 1).unwrap();
        assert_eq!(digests["a.rs"], sha256_hex(b"two"));
    }

    #[test]
    fn a_corrupt_or_truncated_cache_is_ignored_and_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.rs"), "aaa").unwrap();
        let files = vec![input(dir.path(), "a.rs")];
        let cache_path = dir.path().join("stat-cache");
        // A wrong digest behind a valid-looking line must not be trusted once the header is
        // broken, nor when the file is truncated.
        let stat = FileStat::of(&dir.path().join("a.rs")).unwrap();
        let forged = format!(
            "{} {} {} {} {} f a.rs",
            sha256_hex(b"forged"),
            stat.size,
            stat.mtime_ns,
            stat.ctime_ns,
            stat.inode
        );
        for text in [
            format!("garbage\n{forged}\n"),
            format!("{HEADER}\n{forged}"),
            format!("{HEADER}\nnot a line\n"),
        ] {
            std::fs::write(&cache_path, text).unwrap();
            age(&cache_path, 0);
            let cache = StatCache::load(&cache_path);
            let (digests, counts) = cache.hash_files(&files, 1).unwrap();
            assert_eq!(digests["a.rs"], sha256_hex(b"aaa"));
            assert_eq!(counts.hashed, 1);
            cache.save().unwrap();
            assert!(
                std::fs::read_to_string(&cache_path)
                    .unwrap()
                    .starts_with(HEADER)
            );
        }
    }

    #[test]
    fn nothing_is_written_when_nothing_changed() {
        let dir = tempfile::tempdir().unwrap();
        let cache_path = dir.path().join("stat-cache");
        let cache = StatCache::load(&cache_path);
        cache.hash_files(&[], 2).unwrap();
        cache.save().unwrap();
        assert!(!cache_path.exists());
    }
}

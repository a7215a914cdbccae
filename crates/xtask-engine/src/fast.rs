//! Fast paths of an unchanged run: the `cargo metadata` result and the `rustc -vV` result are
//! cached under the local cache (`<cache>/v1/fast/`) with keys that name everything they
//! depend on, and file digests come from the stat cache (`xtask_hash::StatCache`).
//!
//! What the metadata cache is keyed by (a miss on any change):
//! - the content of the root `Cargo.toml`, `Cargo.lock`, every member's `Cargo.toml`, every
//!   `.cargo/config{,.toml}` in the workspace root, the current directory and their ancestors
//!   and in `$CARGO_HOME`, every `rust-toolchain{,.toml}` there;
//! - the set of members: the root manifest's `workspace.members` globs are expanded again on
//!   every run (a directory listing), so a new member directory is a miss;
//! - the targets cargo discovers by itself in every member (and a root package): whether
//!   `src/lib.rs`, `src/main.rs` and `build.rs` exist and the entries of `src/bin/`,
//!   `examples/`, `tests/` and `benches/` ([`discovery_listing`]), so adding a `src/lib.rs`
//!   to a bin-only package is a miss (its content is not in the key: editing it changes
//!   nothing cargo metadata reports);
//! - the environment variables that change what `cargo metadata --no-deps` reports
//!   ([`METADATA_ENV`]): one record per distinct environment, so `cargo xtask` (whose
//!   environment cargo changes) and an installed `xtask` do not evict each other.
//!
//! Deliberately not in the key: the cargo binary itself (an in-place upgrade of the same
//! toolchain name): `--format-version 1` output is stable across cargo versions. The record
//! shared between machines through the remote cache (`shared_metadata.rs`) has it in its key.
//!
//! What the toolchain cache is keyed by: `RUSTC`, `RUSTUP_TOOLCHAIN`, `RUSTUP_HOME`,
//! `CARGO_HOME`, `PATH`, the content of every `rust-toolchain{,.toml}` from the workspace root
//! up and of rustup's `settings.toml` (default toolchain, overrides), the stat (size, mtime,
//! ctime, inode) of the `rustc` that `PATH` resolves, and the stat of `<sysroot>/bin/rustc`,
//! the real compiler behind a rustup proxy (`rustup update` replaces it).
//!
//! Every record is written atomically (temp file + rename) and only after the slow path
//! succeeded (and, for metadata, after the task graph was validated, so a hit skips that
//! too). A record that does not parse or does not match is ignored and rebuilt. The metadata
//! record is one line of JSON (the key, and the byte length of the metadata) followed by the
//! `cargo metadata` JSON verbatim: a hit reads it without unescaping a megabyte-long JSON
//! string (at N = 500 that was a tenth of the user time of a fully cached run).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use xtask_hash::{FileStat, ListingCache, StatCache};
use xtask_util::{sha256_hex, try_parallel_map, write_atomically};

use crate::facts::Facts;

/// Environment variables in the metadata cache key.
pub const METADATA_ENV: [&str; 10] = [
    "CARGO_HOME",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_BUILD_DIR",
    "CARGO_BUILD_TARGET",
    "RUSTUP_TOOLCHAIN",
    "RUSTUP_HOME",
    "CARGO_UNSTABLE_BUILD_DIR",
    "__CARGO_TEST_CHANNEL_OVERRIDE_DO_NOT_USE_THIS",
    "XTASK_CACHE_DIR",
];

const TOOLCHAIN_ENV: [&str; 6] = [
    "RUSTC",
    "RUSTUP_TOOLCHAIN",
    "RUSTUP_HOME",
    "CARGO_HOME",
    "PATH",
    "RUSTC_BOOTSTRAP",
];

const RECORD_VERSION: u32 = 2;
/// The metadata record's layout (see the module doc).
const METADATA_RECORD_VERSION: u32 = 3;

/// The fast-path state of one workspace: where its records live and its stat cache.
pub struct FastPaths {
    dir: PathBuf,
    /// The cache's `v1/` existed when opened: only then is anything written, so a command
    /// that must write nothing (a dry run, `graph`, invalid configuration) on a workspace
    /// without a cache creates none.
    writable: bool,
    pub stat_cache: StatCache,
    /// Input listings, loaded on first use (only planning needs them).
    listing_cache: std::sync::OnceLock<ListingCache>,
    /// The workspace was loaded from the metadata record in this process.
    pub(crate) metadata_from_record: std::sync::atomic::AtomicBool,
    /// `rustc -vV` for a workspace root, found by [`prefetch_rustc_version`] while `cargo
    /// metadata` ran; taken by the next [`rustc_version`] of that root (once: a long-lived
    /// process checks the toolchain again on each run).
    prefetched_rustc: std::sync::Mutex<Option<(PathBuf, String)>>,
}

impl FastPaths {
    /// Opens (reads nothing but the stat cache) `<cache_dir>/v1/fast/`.
    pub fn open(cache_dir: &Path) -> FastPaths {
        let dir = cache_dir.join("v1").join("fast");
        let writable = cache_dir.join("v1").is_dir();
        let mut stat_cache = StatCache::load(&dir.join("stat-cache"));
        if !writable {
            stat_cache = stat_cache.read_only();
        }
        FastPaths {
            dir,
            writable,
            stat_cache,
            listing_cache: std::sync::OnceLock::new(),
            metadata_from_record: std::sync::atomic::AtomicBool::new(false),
            prefetched_rustc: std::sync::Mutex::default(),
        }
    }

    /// Whether records may be written here (the cache's `v1/` existed when opened).
    pub(crate) fn writable(&self) -> bool {
        self.writable
    }

    /// The fast paths of `cache_dir`, opened once per process: `load_workspace` and planning
    /// share one stat cache. Safe for long-lived processes: every cached fact is re-checked
    /// against the file system on use.
    pub fn shared(cache_dir: &Path) -> std::sync::Arc<FastPaths> {
        static OPENED: std::sync::Mutex<Option<(PathBuf, std::sync::Arc<FastPaths>)>> =
            std::sync::Mutex::new(None);
        let mut opened = OPENED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Opened before the cache existed (a first run, a first `dev` session): read-only
        // until reopened, which happens here once the cache's `v1/` exists.
        if let Some((dir, fast)) = opened.as_ref()
            && dir == cache_dir
            && (fast.writable || !cache_dir.join("v1").is_dir())
        {
            return fast.clone();
        }
        let fast = std::sync::Arc::new(FastPaths::open(cache_dir));
        *opened = Some((cache_dir.to_path_buf(), fast.clone()));
        fast
    }

    /// The input listing cache (`listings.json`).
    pub fn listing_cache(&self) -> &ListingCache {
        self.listing_cache.get_or_init(|| {
            let cache = ListingCache::load(&self.dir.join("listings.json"));
            if self.writable {
                cache
            } else {
                cache.read_only()
            }
        })
    }

    /// Saves the caches that changed; a failure is only a lost speed-up.
    pub fn save(&self) -> Result<(), xtask_hash::HashError> {
        if let Some(listings) = self.listing_cache.get() {
            listings.save()?;
        }
        self.stat_cache.save()
    }

    /// The digest of a file, `"missing"` when it does not exist.
    pub(crate) fn file_digest(&self, path: &Path) -> String {
        match self.stat_cache.digest(&path.to_string_lossy(), path) {
            Ok((digest, _)) => digest,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => "missing".into(),
            Err(error) => format!("unreadable: {}", error.kind()),
        }
    }
}

/// The cache directory a workspace whose root manifest is `manifest` uses, found without
/// `cargo metadata`: `XTASK_CACHE_DIR`, else `[workspace.metadata.xtask.cache] dir`, else
/// `turbo-like-cache`, relative to the manifest's directory. `None` when `manifest` is not a
/// workspace root (then the slow path runs).
pub fn cache_dir_of_root_manifest(manifest: &Path, text: &str) -> Option<PathBuf> {
    let table: toml::Table = text.parse().ok()?;
    let workspace = table.get("workspace")?.as_table()?;
    let root = manifest.parent()?;
    if let Some(dir) = std::env::var_os("XTASK_CACHE_DIR")
        && !dir.is_empty()
    {
        return Some(root.join(dir));
    }
    let configured = workspace
        .get("metadata")
        .and_then(|m| m.get("xtask"))
        .and_then(|x| x.get("cache"))
        .and_then(|c| c.get("dir"))
        .and_then(|d| d.as_str());
    Some(root.join(configured.unwrap_or("turbo-like-cache")))
}

/// The first line of a metadata record; the metadata itself follows it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct MetadataRecord {
    version: u32,
    manifest: PathBuf,
    env: BTreeMap<String, Option<String>>,
    /// Absolute path -> sha256 (or `missing`).
    files: BTreeMap<PathBuf, String>,
    /// Every member's manifest, as cargo reported them.
    members: BTreeSet<PathBuf>,
    /// Member directory -> [`discovery_listing`].
    discovery: BTreeMap<PathBuf, String>,
    /// The byte length of the metadata after the first line (a truncated record is a miss).
    metadata_len: usize,
}

pub(crate) fn env_key(names: &[&str]) -> BTreeMap<String, Option<String>> {
    names
        .iter()
        .map(|n| {
            (
                n.to_string(),
                std::env::var_os(n).map(|v| v.to_string_lossy().into_owned()),
            )
        })
        .collect()
}

fn record_path(dir: &Path, what: &str, env: &BTreeMap<String, Option<String>>) -> PathBuf {
    let encoded = serde_json::to_string(env).unwrap_or_default();
    dir.join(format!(
        "{what}-{}.json",
        &sha256_hex(encoded.as_bytes())[..16]
    ))
}

/// `cargo metadata` JSON from the cache when nothing in its key changed.
pub fn cached_metadata(fast: &FastPaths, manifest: &Path, root_text: &str) -> Option<String> {
    let env = env_key(&METADATA_ENV);
    let path = record_path(&fast.dir, "metadata", &env);
    let bytes = std::fs::read(&path).ok()?;
    let (record, metadata) = usable_record(&bytes, manifest, &env)?;
    // Checked on every core (up to 4), stopping at the first difference: at N = 500 this is
    // 500 manifests.
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(4);
    let files: Vec<(&PathBuf, &String)> = record.files.iter().collect();
    let unchanged = try_parallel_map(&files, workers, |(file, digest)| {
        if &fast.file_digest(file) == *digest {
            Ok(())
        } else {
            Err(())
        }
    });
    if unchanged.is_err() {
        return None;
    }
    let listings: Vec<(&PathBuf, &String)> = record.discovery.iter().collect();
    let same = try_parallel_map(&listings, workers, |(dir, listing)| {
        if &discovery_listing(dir) == *listing {
            Ok(())
        } else {
            Err(())
        }
    });
    if same.is_err() {
        return None;
    }
    globs_within_members(&record, manifest, root_text)?;
    String::from_utf8(metadata.to_vec()).ok()
}

/// A metadata record's header and the metadata after it (see the module doc).
fn split_record(bytes: &[u8]) -> Option<(MetadataRecord, &[u8])> {
    let newline = bytes.iter().position(|&b| b == b'\n')?;
    let record = serde_json::from_slice(&bytes[..newline]).ok()?;
    Some((record, &bytes[newline + 1..]))
}

/// [`split_record`], when the record has this layout, is for `manifest` and `env`, and is whole
/// (a truncated one is a miss).
fn usable_record<'a>(
    bytes: &'a [u8],
    manifest: &Path,
    env: &BTreeMap<String, Option<String>>,
) -> Option<(MetadataRecord, &'a [u8])> {
    let (record, metadata) = split_record(bytes)?;
    let usable = record.version == METADATA_RECORD_VERSION
        && record.manifest == manifest
        && &record.env == env
        && record.metadata_len == metadata.len();
    usable.then_some((record, metadata))
}

/// `Some` when every manifest the member globs match now is one of the record's members.
fn globs_within_members(record: &MetadataRecord, manifest: &Path, root_text: &str) -> Option<()> {
    let members = expand_members(manifest.parent()?, root_text)?;
    members
        .iter()
        .all(|member| record.members.contains(member))
        .then_some(())
}

/// The digests of the files a metadata record depends on, taken BEFORE `cargo metadata` runs,
/// so an edit made while it runs is seen by the next run.
pub struct MetadataKey {
    pub(crate) files: BTreeMap<PathBuf, String>,
    pub(crate) discovery: BTreeMap<PathBuf, String>,
}

/// Digests the root manifest, the lockfile, the cargo configs and toolchain files, and the
/// manifests the member globs match now.
pub fn metadata_key_before_run(fast: &FastPaths, manifest: &Path, root_text: &str) -> MetadataKey {
    let mut watched: Vec<PathBuf> = Vec::new();
    let mut discovery = BTreeMap::new();
    if let Some(root) = manifest.parent() {
        watched.push(manifest.to_path_buf());
        watched.push(root.join("Cargo.lock"));
        watched.extend(config_files(root));
        let members = expand_members(root, root_text).unwrap_or_default();
        let root_is_package = root_text
            .parse::<toml::Table>()
            .is_ok_and(|t| t.contains_key("package"));
        let member_dirs: Vec<&Path> = members
            .iter()
            .filter_map(|m| m.parent())
            .chain(root_is_package.then_some(root))
            .collect();
        // Thousands of stats and a read per member, on a fresh machine (no stat cache): on
        // every core.
        let listings =
            xtask_util::parallel_map(&member_dirs, key_threads(), |dir| discovery_listing(dir));
        discovery.extend(
            member_dirs
                .iter()
                .map(|dir| dir.to_path_buf())
                .zip(listings),
        );
        watched.extend(members);
    }
    let digests = xtask_util::parallel_map(&watched, key_threads(), |file| fast.file_digest(file));
    let files = watched.into_iter().zip(digests).collect();
    MetadataKey { files, discovery }
}

/// The threads [`metadata_key_before_run`] digests and lists on.
fn key_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// What cargo's target auto-discovery sees in a package directory: which of `src/lib.rs`,
/// `src/main.rs` and `build.rs` exist, and the sorted entries of `src/bin/`, `examples/`,
/// `tests/` and `benches/` (a subdirectory with whether it has a `main.rs`).
pub fn discovery_listing(package_dir: &Path) -> String {
    let mut listing = String::new();
    for file in ["src/lib.rs", "src/main.rs", "build.rs"] {
        if package_dir.join(file).exists() {
            listing.push_str(file);
            listing.push('\n');
        }
    }
    for dir in ["src/bin", "examples", "tests", "benches"] {
        let Ok(entries) = std::fs::read_dir(package_dir.join(dir)) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                if entry.path().join("main.rs").exists() {
                    format!("{name}/main.rs")
                } else {
                    name
                }
            })
            .collect();
        names.sort();
        for name in names {
            listing.push_str(&format!("{dir}/{name}\n"));
        }
    }
    listing
}

/// The facts [`discovery_listing`] of `package_dir` depends on (see `crate::facts`).
fn discovery_facts(package_dir: &Path, facts: &mut Facts) {
    for file in ["src/lib.rs", "src/main.rs", "build.rs"] {
        let path = package_dir.join(file);
        if path.exists() {
            facts.file(&path);
        } else {
            facts.absent(&path);
        }
    }
    for dir in ["src/bin", "examples", "tests", "benches"] {
        let dir = package_dir.join(dir);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            facts.absent(&dir);
            continue;
        };
        facts.dir_closed(&dir);
        for entry in entries.flatten() {
            let main = entry.path().join("main.rs");
            if main.exists() {
                facts.file(&main);
            } else {
                facts.absent(&main);
            }
        }
    }
}

/// The facts the metadata record used in this process depends on: the record itself, every
/// file of its key, the targets cargo discovers and the member globs' expansion. Refused
/// when this process did not load the workspace from the record.
pub(crate) fn metadata_facts(
    fast: &FastPaths,
    manifest: &Path,
    root_text: &str,
    facts: &mut Facts,
) {
    if !fast
        .metadata_from_record
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return facts.refuse("the workspace was not loaded from the metadata record".into());
    }
    let path = record_path(&fast.dir, "metadata", &env_key(&METADATA_ENV));
    facts.file(&path);
    let header = std::fs::read(&path)
        .ok()
        .and_then(|bytes| split_record(&bytes).map(|(record, _)| record));
    let Some(record) = header else {
        return facts.refuse("the metadata record is gone".into());
    };
    for (file, digest) in &record.files {
        if digest == "missing" {
            facts.absent(file);
        } else {
            facts.file(file);
        }
    }
    for dir in record.discovery.keys() {
        discovery_facts(dir, facts);
    }
    let Some(root) = manifest.parent() else {
        return facts.refuse("the manifest has no directory".into());
    };
    if expand_members_noting(root, root_text, Some(facts)).is_none() {
        facts.refuse("the member globs do not expand".into());
    }
}

/// Records `metadata` (which the caller validated) for [`cached_metadata`]. Records nothing
/// when cargo reported a member whose manifest was not digested before it ran (a member
/// outside the globs): such a workspace always takes the slow path.
pub fn store_metadata(
    fast: &FastPaths,
    manifest: &Path,
    key: &MetadataKey,
    metadata: &str,
    member_manifests: &BTreeSet<PathBuf>,
) -> anyhow::Result<()> {
    if !fast.writable {
        return Ok(());
    }
    let Some(bytes) = metadata_record(manifest, key, metadata, member_manifests) else {
        return Ok(());
    };
    write_metadata_record(fast, &bytes).map(drop)
}

/// The bytes of a metadata record (see the module doc); `None` when cargo reported a member
/// whose manifest is not in the key.
pub(crate) fn metadata_record(
    manifest: &Path,
    key: &MetadataKey,
    metadata: &str,
    member_manifests: &BTreeSet<PathBuf>,
) -> Option<Vec<u8>> {
    if member_manifests.iter().any(|m| !key.files.contains_key(m)) {
        return None;
    }
    let record = MetadataRecord {
        version: METADATA_RECORD_VERSION,
        manifest: manifest.to_path_buf(),
        env: env_key(&METADATA_ENV),
        files: key.files.clone(),
        members: member_manifests.clone(),
        discovery: key.discovery.clone(),
        metadata_len: metadata.len(),
    };
    // Compact JSON has no raw newline: the first one ends the header.
    let mut bytes = serde_json::to_vec(&record).ok()?;
    bytes.push(b'\n');
    bytes.extend_from_slice(metadata.as_bytes());
    Some(bytes)
}

/// Writes a metadata record's bytes where [`cached_metadata`] reads them, when the cache may be
/// written: whether it was.
pub(crate) fn write_metadata_record(fast: &FastPaths, bytes: &[u8]) -> anyhow::Result<bool> {
    if !fast.writable {
        return Ok(false);
    }
    let path = record_path(&fast.dir, "metadata", &env_key(&METADATA_ENV));
    write_atomically(&path, bytes)?;
    Ok(true)
}

/// The `cargo metadata` JSON of a record made elsewhere (the remote cache), when its key is
/// exactly `key`, made before anything ran here, and every manifest the member globs match
/// now is one of its members: what [`cached_metadata`] checks of a local record.
pub(crate) fn metadata_of_record(
    bytes: &[u8],
    manifest: &Path,
    root_text: &str,
    key: &MetadataKey,
) -> Option<String> {
    let (record, metadata) = usable_record(bytes, manifest, &env_key(&METADATA_ENV))?;
    let same_key = record.files == key.files
        && record.discovery == key.discovery
        && record.members.iter().all(|m| key.files.contains_key(m));
    if !same_key {
        return None;
    }
    globs_within_members(&record, manifest, root_text)?;
    String::from_utf8(metadata.to_vec()).ok()
}

/// `.cargo/config{,.toml}` and `rust-toolchain{,.toml}` in `root`, the current directory and
/// their ancestors, and cargo's home config.
fn config_files(root: &Path) -> Vec<PathBuf> {
    let mut dirs: BTreeSet<PathBuf> = root.ancestors().map(Path::to_path_buf).collect();
    if let Ok(current) = std::env::current_dir() {
        dirs.extend(current.ancestors().map(Path::to_path_buf));
    }
    let mut files = Vec::new();
    for dir in dirs {
        for name in [
            ".cargo/config",
            ".cargo/config.toml",
            "rust-toolchain",
            "rust-toolchain.toml",
        ] {
            files.push(dir.join(name));
        }
    }
    if let Some(home) = cargo_home() {
        files.push(home.join("config"));
        files.push(home.join("config.toml"));
    }
    files
}

/// `$CARGO_HOME`, else `$HOME/.cargo`: the one place the engine resolves it.
pub(crate) fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

/// `$RUSTUP_HOME`, else `$HOME/.rustup`.
pub(crate) fn rustup_home() -> Option<PathBuf> {
    std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".rustup")))
}

/// The `Cargo.toml` of every directory the root manifest's `workspace.members` patterns match,
/// minus `workspace.exclude`. `None` when the manifest cannot be read as a workspace.
pub fn expand_members(root: &Path, root_text: &str) -> Option<Vec<PathBuf>> {
    expand_members_noting(root, root_text, None)
}

/// [`expand_members`], noting in `facts` the directories it read and the manifests it
/// looked for.
fn expand_members_noting(
    root: &Path,
    root_text: &str,
    mut facts: Option<&mut Facts>,
) -> Option<Vec<PathBuf>> {
    let table: toml::Table = root_text.parse().ok()?;
    let workspace = table.get("workspace")?.as_table()?;
    let strings = |key: &str| -> Option<Vec<String>> {
        match workspace.get(key) {
            None => Some(Vec::new()),
            Some(value) => value
                .as_array()?
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect(),
        }
    };
    let members = strings("members")?;
    let exclude: BTreeSet<PathBuf> = strings("exclude")?
        .iter()
        .map(|e| xtask_hash::normalize(&root.join(e)))
        .collect();
    let mut found = Vec::new();
    for pattern in members {
        for dir in expand_pattern(root, &pattern, facts.as_deref_mut())? {
            let dir = xtask_hash::normalize(&dir);
            if exclude.iter().any(|e| dir.starts_with(e)) {
                continue;
            }
            let manifest = dir.join("Cargo.toml");
            let is_file = manifest.is_file();
            if let Some(facts) = facts.as_deref_mut() {
                if is_file {
                    facts.file(&manifest);
                } else {
                    facts.absent(&manifest);
                }
            }
            if is_file {
                found.push(manifest);
            }
        }
    }
    Some(found)
}

/// Directories matching a member pattern, component by component (`*`, `?`, `[..]`).
fn expand_pattern(
    root: &Path,
    pattern: &str,
    mut facts: Option<&mut Facts>,
) -> Option<Vec<PathBuf>> {
    let mut current = vec![root.to_path_buf()];
    for component in pattern.split('/').filter(|c| !c.is_empty() && *c != ".") {
        let is_glob = component.contains(['*', '?', '[']);
        let mut next = Vec::new();
        if !is_glob {
            for dir in &current {
                next.push(dir.join(component));
            }
        } else {
            if component == "**" {
                return None; // unusual: take the slow path
            }
            let matcher = globset::Glob::new(component).ok()?.compile_matcher();
            for dir in &current {
                let Ok(entries) = std::fs::read_dir(dir) else {
                    if let Some(facts) = facts.as_deref_mut() {
                        facts.absent(dir);
                    }
                    continue;
                };
                if let Some(facts) = facts.as_deref_mut() {
                    facts.dir_closed(dir);
                }
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    if matcher.is_match(Path::new(&name))
                        && entry.file_type().is_ok_and(|t| t.is_dir())
                    {
                        next.push(entry.path());
                    }
                }
            }
        }
        current = next;
    }
    Some(current)
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct ToolchainRecord {
    version: u32,
    workspace_root: PathBuf,
    env: BTreeMap<String, Option<String>>,
    /// Toolchain files and rustup settings: path -> sha256 (or `missing`).
    files: BTreeMap<PathBuf, String>,
    /// The stat of the `rustc` resolved from `RUSTC`/`PATH` and of `<sysroot>/bin/rustc`.
    binaries: BTreeMap<PathBuf, Option<String>>,
    rustc_version: String,
}

fn stat_string(path: &Path) -> Option<String> {
    FileStat::of(path)
        .ok()
        .map(|s| format!("{} {} {} {}", s.size, s.mtime_ns, s.ctime_ns, s.inode))
}

/// The `rustc` a process started with `program` would run (a bare name is looked up in `PATH`).
fn resolve_program(program: &std::ffi::OsStr) -> Option<PathBuf> {
    let path = Path::new(program);
    if path.components().count() > 1 {
        return Some(path.to_path_buf());
    }
    let search = std::env::var_os("PATH")?;
    std::env::split_paths(&search)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn toolchain_files(workspace_root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = workspace_root
        .ancestors()
        .flat_map(|dir| [dir.join("rust-toolchain"), dir.join("rust-toolchain.toml")])
        .collect();
    if let Some(home) = rustup_home() {
        files.push(home.join("settings.toml"));
    }
    files
}

/// The recorded `rustc -vV` output, while nothing its record watches changed.
fn recorded_rustc_version(
    fast: &FastPaths,
    path: &Path,
    workspace_root: &Path,
    env: &BTreeMap<String, Option<String>>,
    resolved: &Option<PathBuf>,
) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let record = serde_json::from_slice::<ToolchainRecord>(&bytes).ok()?;
    let valid = record.version == RECORD_VERSION
        && record.workspace_root == workspace_root
        && &record.env == env
        && record
            .files
            .iter()
            .all(|(file, digest)| &fast.file_digest(file) == digest)
        && resolved
            .as_ref()
            .is_some_and(|r| record.binaries.contains_key(r))
        && record
            .binaries
            .iter()
            .all(|(binary, stat)| &stat_string(binary) == stat);
    valid.then_some(record.rustc_version)
}

/// `rustc ARGS`'s standard output.
fn run_rustc(
    rustc: &std::ffi::OsStr,
    args: &[&str],
    workspace_root: &Path,
) -> anyhow::Result<String> {
    let output = std::process::Command::new(rustc)
        .args(args)
        .current_dir(workspace_root)
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| {
            format!(
                "failed to run `{} {}`",
                rustc.to_string_lossy(),
                args.join(" ")
            )
        })?;
    anyhow::ensure!(
        output.status.success(),
        "`rustc {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `rustc -vV` output from the cache when its key is unchanged, else from running it (and
/// `rustc --print sysroot`, to know which binary to watch).
pub fn rustc_version(fast: &FastPaths, workspace_root: &Path) -> anyhow::Result<String> {
    let mut prefetched = fast
        .prefetched_rustc
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((root, version)) = prefetched.take()
        && root == workspace_root
    {
        return Ok(version);
    }
    drop(prefetched);
    let env = env_key(&TOOLCHAIN_ENV);
    let path = record_path(&fast.dir, "toolchain", &env);
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let resolved = resolve_program(&rustc);
    if let Some(version) = recorded_rustc_version(fast, &path, workspace_root, &env, &resolved) {
        return Ok(version);
    }
    let run = |args: &[&str]| run_rustc(&rustc, args, workspace_root);
    // Stats are taken before running, so a toolchain replaced meanwhile is seen next time.
    let files: BTreeMap<PathBuf, String> = toolchain_files(workspace_root)
        .into_iter()
        .map(|f| {
            let digest = fast.file_digest(&f);
            (f, digest)
        })
        .collect();
    // The two runs at once: through rustup's proxy each takes about 50 ms to start, and on a
    // fresh machine planning waits for them.
    let (sysroot, rustc_version) = std::thread::scope(|scope| {
        let sysroot = scope.spawn(|| run(&["--print", "sysroot"]).ok());
        let version = run(&["-vV"]);
        (sysroot.join().ok().flatten(), version)
    });
    let rustc_version = rustc_version?;
    let mut binaries = BTreeMap::new();
    if let Some(resolved) = &resolved {
        binaries.insert(resolved.clone(), stat_string(resolved));
    }
    if let Some(sysroot) = &sysroot {
        let real = Path::new(sysroot.trim()).join("bin").join("rustc");
        binaries.insert(real.clone(), stat_string(&real));
    }
    // Cache only when every watched binary was found: otherwise an update could go unseen.
    if fast.writable
        && resolved.is_some()
        && sysroot.is_some()
        && binaries.values().all(Option::is_some)
    {
        let record = ToolchainRecord {
            version: RECORD_VERSION,
            workspace_root: workspace_root.to_path_buf(),
            env,
            files,
            binaries,
            rustc_version: rustc_version.clone(),
        };
        if let Ok(bytes) = serde_json::to_vec(&record) {
            let _ = write_atomically(&path, &bytes);
        }
    }
    Ok(rustc_version)
}

/// [`rustc_version`] of the workspace at `root`, kept for the run's planning: started beside
/// the workspace's load (`load::load_workspace_to_plan`), the two runs of `rustc` on a fresh
/// machine (through rustup's proxy, 0.11 s: it has no toolchain record), or the record's check
/// on a warm one, cost no time of their own. Does nothing on an error (planning runs it again
/// and reports it).
pub fn prefetch_rustc_version(fast: &FastPaths, root: &Path) {
    if let Ok(version) = rustc_version(fast, root) {
        *fast
            .prefetched_rustc
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((root.to_path_buf(), version));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_lived_process_writes_its_records_once_the_cache_exists() {
        // `dev` on a fresh clone: the first load finds no cache; the first build creates it.
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = dir.path().join("cache");
        assert!(!FastPaths::shared(&cache_dir).writable);
        std::fs::create_dir_all(cache_dir.join("v1")).unwrap();
        let reopened = FastPaths::shared(&cache_dir);
        assert!(
            reopened.writable,
            "still read-only after the cache was created"
        );
        assert!(std::sync::Arc::ptr_eq(
            &reopened,
            &FastPaths::shared(&cache_dir)
        ));
    }

    fn workspace(dir: &Path, members: &[&str]) -> PathBuf {
        std::fs::write(
            dir.join("Cargo.toml"),
            "[workspace]\nmembers = [\"crates/*\"]\nexclude = [\"crates/skip\"]\n",
        )
        .unwrap();
        for member in members {
            std::fs::create_dir_all(dir.join("crates").join(member)).unwrap();
            std::fs::write(
                dir.join("crates").join(member).join("Cargo.toml"),
                format!("[package]\nname = \"{member}\"\n"),
            )
            .unwrap();
        }
        dir.join("Cargo.toml")
    }

    fn members_of(dir: &Path, names: &[&str]) -> BTreeSet<PathBuf> {
        names
            .iter()
            .map(|n| dir.join("crates").join(n).join("Cargo.toml"))
            .collect()
    }

    #[test]
    fn member_globs_expand_to_manifests_minus_excludes() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = workspace(dir.path(), &["a", "b", "skip"]);
        std::fs::create_dir_all(dir.path().join("crates/no-manifest")).unwrap();
        let text = std::fs::read_to_string(&manifest).unwrap();
        let mut found = expand_members(dir.path(), &text).unwrap();
        found.sort();
        assert_eq!(
            found,
            members_of(dir.path(), &["a", "b"])
                .into_iter()
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn metadata_record_is_used_until_a_manifest_lockfile_or_member_changes() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = workspace(dir.path(), &["a", "b"]);
        let text = std::fs::read_to_string(&manifest).unwrap();
        let cache_dir = dir.path().join("cache");
        std::fs::create_dir_all(cache_dir.join("v1")).unwrap();
        let fast = FastPaths::open(&cache_dir);
        let members = members_of(dir.path(), &["a", "b"]);
        let key = metadata_key_before_run(&fast, &manifest, &text);
        store_metadata(&fast, &manifest, &key, "{\"json\":1}", &members).unwrap();
        fast.save().unwrap();
        let fresh = || FastPaths::open(&cache_dir);
        assert_eq!(
            cached_metadata(&fresh(), &manifest, &text).as_deref(),
            Some("{\"json\":1}")
        );

        // A same-size edit of a member manifest, right away (same second).
        let a = dir.path().join("crates/a/Cargo.toml");
        let before = std::fs::read_to_string(&a).unwrap();
        std::fs::write(&a, before.replace("\"a\"", "\"z\"")).unwrap();
        assert_eq!(cached_metadata(&fresh(), &manifest, &text), None);
        std::fs::write(&a, &before).unwrap();
        assert!(cached_metadata(&fresh(), &manifest, &text).is_some());

        // A lockfile appears.
        std::fs::write(dir.path().join("Cargo.lock"), "version = 4\n").unwrap();
        assert_eq!(cached_metadata(&fresh(), &manifest, &text), None);
        std::fs::remove_file(dir.path().join("Cargo.lock")).unwrap();
        assert!(cached_metadata(&fresh(), &manifest, &text).is_some());

        // A cargo config appears.
        std::fs::create_dir_all(dir.path().join(".cargo")).unwrap();
        std::fs::write(dir.path().join(".cargo/config.toml"), "[build]\n").unwrap();
        assert_eq!(cached_metadata(&fresh(), &manifest, &text), None);
        std::fs::remove_file(dir.path().join(".cargo/config.toml")).unwrap();
        assert!(cached_metadata(&fresh(), &manifest, &text).is_some());

        // A new member directory matched by the glob: the root manifest is unchanged.
        workspace(dir.path(), &["c"]);
        assert_eq!(cached_metadata(&fresh(), &manifest, &text), None);
    }

    #[test]
    fn a_record_made_elsewhere_is_used_only_for_its_exact_key_and_members() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = workspace(dir.path(), &["a", "b"]);
        let text = std::fs::read_to_string(&manifest).unwrap();
        let fast = FastPaths::open(&dir.path().join("cache"));
        let members = members_of(dir.path(), &["a", "b"]);
        let key = metadata_key_before_run(&fast, &manifest, &text);
        let record = metadata_record(&manifest, &key, "{\"json\":2}", &members).unwrap();
        assert_eq!(
            metadata_of_record(&record, &manifest, &text, &key).as_deref(),
            Some("{\"json\":2}")
        );
        // A member cargo reported outside the key: no record.
        let mut more = members.clone();
        more.insert(dir.path().join("elsewhere/Cargo.toml"));
        assert_eq!(metadata_record(&manifest, &key, "{}", &more), None);
        // Cut short, or for another manifest path.
        assert_eq!(
            metadata_of_record(&record[..record.len() - 1], &manifest, &text, &key),
            None
        );
        let other = dir.path().join("other/Cargo.toml");
        assert_eq!(metadata_of_record(&record, &other, &text, &key), None);
        // A member manifest edited since: its key differs.
        let a = dir.path().join("crates/a/Cargo.toml");
        std::fs::write(&a, "[package]\nname = \"a2\"\n").unwrap();
        let edited = metadata_key_before_run(
            &FastPaths::open(&dir.path().join("cache")),
            &manifest,
            &text,
        );
        assert_eq!(metadata_of_record(&record, &manifest, &text, &edited), None);
        // Cargo reported fewer members than the globs match now.
        std::fs::write(&a, "[package]\nname = \"a\"\n").unwrap();
        let fewer =
            metadata_record(&manifest, &key, "{}", &members_of(dir.path(), &["a"])).unwrap();
        assert!(metadata_of_record(&record, &manifest, &text, &key).is_some());
        assert_eq!(metadata_of_record(&fewer, &manifest, &text, &key), None);
    }

    #[test]
    fn metadata_is_stored_verbatim_after_the_key_and_a_short_record_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = workspace(dir.path(), &["a"]);
        let text = std::fs::read_to_string(&manifest).unwrap();
        let cache_dir = dir.path().join("cache");
        std::fs::create_dir_all(cache_dir.join("v1")).unwrap();
        let fast = FastPaths::open(&cache_dir);
        let key = metadata_key_before_run(&fast, &manifest, &text);
        // Newlines, quotes and non-ASCII survive; nothing is escaped on disk.
        let metadata = format!(
            "{{\"packages\": [\n\"caf\u{e9} \\\"x\\\"\"\n]{}}}",
            " ".repeat(4096)
        );
        store_metadata(
            &fast,
            &manifest,
            &key,
            &metadata,
            &members_of(dir.path(), &["a"]),
        )
        .unwrap();
        fast.save().unwrap();
        assert_eq!(
            cached_metadata(&FastPaths::open(&cache_dir), &manifest, &text).as_deref(),
            Some(metadata.as_str())
        );
        let record = record_path(&fast.dir, "metadata", &env_key(&METADATA_ENV));
        let bytes = std::fs::read(&record).unwrap();
        assert!(bytes.ends_with(metadata.as_bytes()));
        // Cut inside the metadata: the key line is intact, the length is not.
        std::fs::write(&record, &bytes[..bytes.len() - 10]).unwrap();
        assert_eq!(
            cached_metadata(&FastPaths::open(&cache_dir), &manifest, &text),
            None
        );
    }

    #[test]
    fn a_corrupt_metadata_record_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = workspace(dir.path(), &["a"]);
        let text = std::fs::read_to_string(&manifest).unwrap();
        let cache_dir = dir.path().join("cache");
        std::fs::create_dir_all(cache_dir.join("v1")).unwrap();
        let fast = FastPaths::open(&cache_dir);
        let key = metadata_key_before_run(&fast, &manifest, &text);
        store_metadata(
            &fast,
            &manifest,
            &key,
            "{}",
            &members_of(dir.path(), &["a"]),
        )
        .unwrap();
        let record = record_path(&fast.dir, "metadata", &env_key(&METADATA_ENV));
        let bytes = std::fs::read(&record).unwrap();
        std::fs::write(&record, &bytes[..bytes.len() / 2]).unwrap();
        assert_eq!(
            cached_metadata(&FastPaths::open(&cache_dir), &manifest, &text),
            None
        );
    }

    #[test]
    fn the_toolchain_record_is_reused_and_invalidated_by_a_toolchain_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir_all(&root).unwrap();
        let cache_dir = dir.path().join("cache");
        std::fs::create_dir_all(cache_dir.join("v1")).unwrap();
        let first = rustc_version(&FastPaths::open(&cache_dir), &root).unwrap();
        assert!(first.contains("host: "), "{first}");
        let record = record_path(
            &cache_dir.join("v1/fast"),
            "toolchain",
            &env_key(&TOOLCHAIN_ENV),
        );
        assert!(record.is_file(), "the toolchain record was not written");
        // Forge the cached output: a hit returns it, proving no process ran.
        let mut parsed: ToolchainRecord =
            serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
        parsed.rustc_version = "forged\nhost: x\n".into();
        std::fs::write(&record, serde_json::to_vec(&parsed).unwrap()).unwrap();
        assert_eq!(
            rustc_version(&FastPaths::open(&cache_dir), &root).unwrap(),
            "forged\nhost: x\n"
        );
        // A toolchain file in the workspace changes the key (same second as the last run).
        // `rustup` would read it; any content works for the key check as long as rustc runs,
        // so name the toolchain that is active now.
        let active = std::process::Command::new("rustup")
            .args(["show", "active-toolchain"])
            .current_dir(&root)
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.split_whitespace().next().map(str::to_owned));
        let channel = active.unwrap_or_else(|| "stable".into());
        std::fs::write(
            root.join("rust-toolchain.toml"),
            format!("[toolchain]\nchannel = \"{channel}\"\n"),
        )
        .unwrap();
        let after = rustc_version(&FastPaths::open(&cache_dir), &root).unwrap();
        assert_eq!(after, first);
    }
}

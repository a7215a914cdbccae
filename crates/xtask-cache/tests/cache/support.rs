//! Fixtures shared by the tests: temp workspaces, entry builders, hand-made tar archives and
//! direct access to the on-disk layout (which these tests pin).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tempfile::TempDir;
use xtask_cache::{
    AllowedOutputs, BlobRef, CacheOptions, ENTRY_FORMAT, EntryMeta, LocalCache, NewEntry,
    OutputFile, OutputKind, OutputRecord, OutputRoot, RestoreRoots,
};
use xtask_util::sha256_hex;

/// A temp dir with `cache/`, a source workspace `src-ws/` (with `src-ws/target/`) and helpers.
pub struct Fixture {
    pub dir: TempDir,
    pub cache: LocalCache,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::with_options(CacheOptions::default())
    }

    pub fn with_options(options: CacheOptions) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = LocalCache::new(dir.path().join("cache"), options);
        fs::create_dir_all(dir.path().join("src-ws/target")).expect("create source workspace");
        Fixture { dir, cache }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn source_roots(&self) -> RestoreRoots {
        RestoreRoots {
            workspace: self.path("src-ws"),
            target: self.path("src-ws/target"),
            keep: Vec::new(),
        }
    }

    /// Fresh restore roots `<name>/` and `<name>/target` (the target dir is not created).
    pub fn fresh_roots(&self, name: &str) -> RestoreRoots {
        let workspace = self.path(name);
        fs::create_dir_all(&workspace).expect("create restore workspace");
        RestoreRoots {
            target: workspace.join("target"),
            workspace,
            keep: Vec::new(),
        }
    }

    /// Writes a file in the source workspace and returns it as an output.
    pub fn source_file(
        &self,
        root: OutputRoot,
        relative: &str,
        bytes: &[u8],
        mode: u32,
    ) -> OutputFile {
        let absolute_path = self.source_roots().path(root).join(relative);
        write_file(&absolute_path, bytes, mode);
        OutputFile {
            root,
            relative_path: relative.to_owned(),
            absolute_path,
        }
    }

    /// Creates a symlink in the source workspace and returns it as an output.
    pub fn source_symlink(&self, root: OutputRoot, relative: &str, target: &str) -> OutputFile {
        let absolute_path = self.source_roots().path(root).join(relative);
        fs::create_dir_all(absolute_path.parent().expect("parent")).expect("create parent");
        std::os::unix::fs::symlink(target, &absolute_path).expect("create symlink");
        OutputFile {
            root,
            relative_path: relative.to_owned(),
            absolute_path,
        }
    }

    pub fn store(&self, task_hash: &str, outputs: Vec<OutputFile>, log: &[u8]) -> EntryMeta {
        self.cache
            .store(new_entry(task_hash, outputs, log))
            .expect("store")
    }

    pub fn entry_path(&self, task_hash: &str) -> PathBuf {
        self.cache
            .root()
            .join("v1/entries")
            .join(&task_hash[..2])
            .join(format!("{task_hash}.json"))
    }

    pub fn blob_path(&self, sha256: &str) -> PathBuf {
        self.cache
            .root()
            .join("v1/blobs")
            .join(&sha256[..2])
            .join(sha256)
    }

    /// Writes an entry by hand: the archive bytes as a blob, a log blob and the entry JSON.
    pub fn plant(&self, task_hash: &str, outputs: Vec<OutputRecord>, archive: &[u8]) -> EntryMeta {
        let log = b"planted log";
        let meta = EntryMeta {
            format: ENTRY_FORMAT,
            task_hash: task_hash.to_owned(),
            created_unix_ms: 0,
            duration_ms: 0,
            exit_code: 0,
            archive: BlobRef {
                sha256: sha256_hex(archive),
                size: archive.len() as u64,
            },
            log: BlobRef {
                sha256: sha256_hex(log),
                size: log.len() as u64,
            },
            outputs,
            manifest: serde_json::json!({}),
        };
        write_file(&self.blob_path(&meta.archive.sha256), archive, 0o644);
        write_file(&self.blob_path(&meta.log.sha256), log, 0o644);
        let json = serde_json::to_vec_pretty(&meta).expect("serialize");
        write_file(&self.entry_path(task_hash), &json, 0o644);
        meta
    }
}

/// Both roots entirely: for tests about something other than the allowed outputs.
pub fn allow_all() -> AllowedOutputs {
    AllowedOutputs::directory(OutputRoot::Workspace, "")
        .or(AllowedOutputs::directory(OutputRoot::Target, ""))
}

pub fn new_entry<'a>(task_hash: &'a str, outputs: Vec<OutputFile>, log: &'a [u8]) -> NewEntry<'a> {
    NewEntry {
        task_hash,
        manifest: serde_json::json!({ "task": "build", "inputs": { "src/lib.rs": "abc" } }),
        outputs,
        log,
        duration_ms: 1234,
        exit_code: 0,
    }
}

/// A valid task hash derived from `seed`.
pub fn task_hash(seed: &str) -> String {
    sha256_hex(seed.as_bytes())
}

pub fn write_file(path: &Path, bytes: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().expect("parent")).expect("create parent");
    fs::write(path, bytes).expect("write file");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("set mode");
}

pub fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777
}

pub fn set_mtime(path: &Path, age: Duration) {
    let file = fs::File::options()
        .write(true)
        .open(path)
        .expect("open for mtime");
    file.set_modified(SystemTime::now() - age)
        .expect("set mtime");
}

pub fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path)
        .expect("metadata")
        .modified()
        .expect("mtime")
}

/// Every file, symlink and directory under `dir`, relative, sorted (empty if `dir` is missing).
pub fn list_tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, found: &mut Vec<String>) {
        let Ok(read_dir) = fs::read_dir(dir) else {
            return;
        };
        for child in read_dir {
            let child = child.expect("dir entry");
            let path = child.path();
            let relative = path.strip_prefix(base).expect("under base");
            found.push(relative.to_string_lossy().into_owned());
            if child.file_type().expect("file type").is_dir() {
                walk(base, &path, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, dir, &mut found);
    found.sort();
    found
}

/// Deterministic incompressible bytes.
pub fn noise(seed: u64, length: usize) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..length)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

/// An archive member written byte by byte (the tar crate refuses `..` and absolute names).
pub struct RawMember<'a> {
    pub name: &'a str,
    /// `b'0'` file, `b'1'` hard link, `b'2'` symlink, `b'3'` char device, `b'5'` directory.
    pub typeflag: u8,
    pub link_name: &'a str,
    pub data: &'a [u8],
    pub mode: u32,
}

impl<'a> RawMember<'a> {
    pub fn file(name: &'a str, data: &'a [u8]) -> RawMember<'a> {
        RawMember {
            name,
            typeflag: b'0',
            link_name: "",
            data,
            mode: 0o644,
        }
    }

    pub fn symlink(name: &'a str, target: &'a str) -> RawMember<'a> {
        RawMember {
            name,
            typeflag: b'2',
            link_name: target,
            data: b"",
            mode: 0o777,
        }
    }
}

/// A ustar archive of `members`, zstd-compressed like the cache's own archives.
pub fn raw_archive(members: &[RawMember<'_>]) -> Vec<u8> {
    let mut tar = Vec::new();
    for member in members {
        let mut header = [0_u8; 512];
        put(&mut header[0..100], member.name.as_bytes());
        put(
            &mut header[100..108],
            format!("{:07o}\0", member.mode).as_bytes(),
        );
        put(&mut header[108..116], b"0000000\0");
        put(&mut header[116..124], b"0000000\0");
        put(
            &mut header[124..136],
            format!("{:011o}\0", member.data.len()).as_bytes(),
        );
        put(&mut header[136..148], b"00000000000\0");
        header[148..156].fill(b' ');
        header[156] = member.typeflag;
        put(&mut header[157..257], member.link_name.as_bytes());
        put(&mut header[257..263], b"ustar\0");
        put(&mut header[263..265], b"00");
        let checksum: u32 = header.iter().map(|byte| u32::from(*byte)).sum();
        put(
            &mut header[148..156],
            format!("{checksum:06o}\0 ").as_bytes(),
        );
        tar.extend_from_slice(&header);
        tar.extend_from_slice(member.data);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.resize(tar.len() + 1024, 0);
    zstd::stream::encode_all(&tar[..], 3).expect("compress")
}

fn put(field: &mut [u8], bytes: &[u8]) {
    assert!(bytes.len() <= field.len(), "tar field overflow");
    field[..bytes.len()].copy_from_slice(bytes);
}

pub fn file_record(root: OutputRoot, path: &str, data: &[u8], mode: u32) -> OutputRecord {
    OutputRecord {
        root,
        path: path.to_owned(),
        kind: OutputKind::File,
        size: data.len() as u64,
        sha256: Some(sha256_hex(data)),
        mode,
        link_target: None,
    }
}

pub fn symlink_record(root: OutputRoot, path: &str, target: &str) -> OutputRecord {
    OutputRecord {
        root,
        path: path.to_owned(),
        kind: OutputKind::Symlink,
        size: 0,
        sha256: None,
        mode: 0o777,
        link_target: Some(target.to_owned()),
    }
}

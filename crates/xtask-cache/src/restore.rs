//! Restoring an entry's outputs: skip what is already in place, verify the archive blob, check
//! every member and record before writing anything, then write each file atomically.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::archive::{MemberKind, open_archive, read_member};
use crate::digest::{sha256_file, sha256_reader, to_hex};
use crate::error::{CacheError, IoResultExt};
use crate::layout::{Layout, TempFile, TempPath};
use crate::meta::{EntryMeta, OutputKind, OutputRecord, check_blob_refs, check_output_records};
use crate::{OutputRoot, RestoreRoots, RestoreStats};

/// An entry's LRU time is refreshed by a restore only when older than this, so hot entries do
/// not cost a metadata write on every hit.
const LRU_REFRESH_AFTER: Duration = Duration::from_secs(10 * 60);

/// How to learn a file's sha256 when checking whether an output is in place: `None` reads it.
pub(crate) type DigestFn<'a> = Option<&'a (dyn Fn(&Path) -> Option<String> + Sync)>;

pub(crate) fn restore(
    layout: &Layout,
    meta: &EntryMeta,
    roots: &RestoreRoots,
    digest: DigestFn<'_>,
) -> Result<RestoreStats, CacheError> {
    let entry_path = layout.entry_path(&meta.task_hash)?;
    check_blob_refs(&entry_path, meta)?;
    check_output_records(&entry_path, &meta.outputs)?;

    let mut needed: BTreeMap<String, &OutputRecord> = BTreeMap::new();
    for record in &meta.outputs {
        if !is_in_place(roots.path(record.root), record, digest) {
            needed.insert(record.member_name(), record);
        }
    }
    let already_in_place = meta.outputs.len() - needed.len();
    if needed.is_empty() {
        refresh_lru_time(&entry_path);
        return Ok(RestoreStats {
            restored: 0,
            already_in_place,
        });
    }

    let archive_path = layout
        .blob_path(&meta.archive.sha256)
        .ok_or_else(|| CacheError::corrupt(&entry_path, "invalid archive sha256"))?;
    let archive = open_verified_archive(&archive_path, meta)?;

    // Pass 1: check every member before writing anything.
    let records: BTreeMap<String, &OutputRecord> = meta
        .outputs
        .iter()
        .map(|record| (record.member_name(), record))
        .collect();
    check_members(&archive, &archive_path, &records)?;
    let mut canonical_roots = CanonicalRoots::default();
    for (member, record) in &needed {
        check_existing_parents(roots, &mut canonical_roots, member, record)?;
    }

    // Pass 2: write what is not in place.
    let mut reader = open_archive(&archive, &archive_path)?;
    let entries = reader
        .entries()
        .map_err(|error| corrupt_archive(&archive_path, &error))?;
    let mut restored = 0;
    for entry in entries {
        let mut entry = entry.map_err(|error| corrupt_archive(&archive_path, &error))?;
        let member = read_member(&entry)?;
        let Some(record) = needed.get(&member.name) else {
            continue;
        };
        let root = roots.path(record.root);
        let canonical_root = canonical_roots.create(root, record.root)?;
        let parent = create_parent(root, &canonical_root, record, &member.name)?;
        let destination = root.join(&record.path);
        match record.kind {
            OutputKind::File => {
                write_file(&mut entry, &archive_path, record, &parent, &destination)?
            }
            OutputKind::Symlink => write_symlink(record, &parent, &destination)?,
        }
        restored += 1;
    }
    if restored != needed.len() {
        // Pass 1 saw every needed member in the same bytes (same handle): a guard, not a path
        // expected to run.
        return Err(CacheError::corrupt(
            &archive_path,
            "the archive lacks outputs on the second read",
        ));
    }
    refresh_lru_time(&entry_path);
    Ok(RestoreStats {
        restored,
        already_in_place,
    })
}

/// An output is in place when the path holds the same kind of thing with the same content:
/// size, mode and sha256 for files, the link target for symlinks. Any error means "not in place".
fn is_in_place(root: &Path, record: &OutputRecord, digest: DigestFn<'_>) -> bool {
    let path = root.join(&record.path);
    let Ok(metadata) = fs::symlink_metadata(&path) else {
        return false;
    };
    match record.kind {
        OutputKind::File => {
            metadata.is_file()
                && metadata.len() == record.size
                && crate::archive::file_mode(&metadata) == record.mode
                && match digest {
                    Some(digest) => digest(&path),
                    None => sha256_file(&path).ok().map(|(sha256, _)| sha256),
                }
                .is_some_and(|sha256| Some(sha256.as_str()) == record.sha256.as_deref())
        }
        OutputKind::Symlink => {
            metadata.file_type().is_symlink()
                && fs::read_link(&path).is_ok_and(|target| {
                    Some(target.as_os_str())
                        == record.link_target.as_deref().map(std::ffi::OsStr::new)
                })
        }
    }
}

/// Opens the archive blob and checks its size and sha256 against the entry. The returned handle
/// is what gets extracted, so a concurrent replacement of the blob cannot slip in.
fn open_verified_archive(archive_path: &Path, meta: &EntryMeta) -> Result<File, CacheError> {
    let file = match File::open(archive_path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(CacheError::corrupt(
                archive_path,
                "the archive blob is missing",
            ));
        }
        Err(error) => return Err(CacheError::io(archive_path, error)),
    };
    let (sha256, size) = sha256_reader(&file).at(archive_path)?;
    if size != meta.archive.size {
        return Err(CacheError::corrupt(
            archive_path,
            format!(
                "the archive is {size} bytes, the entry says {}",
                meta.archive.size
            ),
        ));
    }
    if sha256 != meta.archive.sha256 {
        return Err(CacheError::corrupt(
            archive_path,
            format!(
                "the archive's sha256 is {sha256}, the entry says {}",
                meta.archive.sha256
            ),
        ));
    }
    Ok(file)
}

/// Pass 1: every member must be a listed output of the same kind (and size, and link target),
/// at most once; every listed output must have a member.
fn check_members(
    archive: &File,
    archive_path: &Path,
    records: &BTreeMap<String, &OutputRecord>,
) -> Result<(), CacheError> {
    let mut reader = open_archive(archive, archive_path)?;
    let entries = reader
        .entries()
        .map_err(|error| corrupt_archive(archive_path, &error))?;
    let mut seen = HashSet::new();
    for entry in entries {
        let entry = entry.map_err(|error| corrupt_archive(archive_path, &error))?;
        let member = read_member(&entry)?;
        let Some(record) = records.get(&member.name) else {
            return Err(CacheError::unsafe_path(
                member.name,
                "the archive member is not listed in the entry's outputs",
            ));
        };
        debug_assert_eq!(member.root, record.root);
        match (&member.kind, record.kind) {
            (MemberKind::File, OutputKind::File) => {
                if member.size != record.size {
                    return Err(CacheError::corrupt(
                        archive_path,
                        format!(
                            "member `{}` is {} bytes, the entry says {}",
                            member.name, member.size, record.size
                        ),
                    ));
                }
            }
            (MemberKind::Symlink(target), OutputKind::Symlink) => {
                if record.link_target.as_deref() != Some(target.as_str()) {
                    return Err(CacheError::unsafe_path(
                        member.name,
                        format!(
                            "the archived symlink points to `{target}`, not to the recorded target"
                        ),
                    ));
                }
            }
            _ => {
                return Err(CacheError::unsafe_path(
                    member.name,
                    "the archive member's type differs from the entry's outputs",
                ));
            }
        }
        if !seen.insert(member.name.clone()) {
            return Err(CacheError::unsafe_path(
                member.name,
                "the archive member appears twice",
            ));
        }
    }
    if let Some(missing) = records.keys().find(|member| !seen.contains(*member)) {
        return Err(CacheError::corrupt(
            archive_path,
            format!("the archive has no member for output `{missing}`"),
        ));
    }
    Ok(())
}

/// Canonical restore roots, computed once each (the target root may have to be created first).
#[derive(Default)]
struct CanonicalRoots {
    workspace: Option<PathBuf>,
    target: Option<PathBuf>,
}

impl CanonicalRoots {
    fn slot(&mut self, root: OutputRoot) -> &mut Option<PathBuf> {
        match root {
            OutputRoot::Workspace => &mut self.workspace,
            OutputRoot::Target => &mut self.target,
        }
    }

    /// The canonical root if it exists (`None` if it does not: nothing under it exists either).
    fn existing(&mut self, path: &Path, root: OutputRoot) -> Result<Option<PathBuf>, CacheError> {
        if let Some(canonical) = self.slot(root) {
            return Ok(Some(canonical.clone()));
        }
        match fs::canonicalize(path) {
            Ok(canonical) => {
                *self.slot(root) = Some(canonical.clone());
                Ok(Some(canonical))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(CacheError::io(path, error)),
        }
    }

    /// The canonical root, creating the directory if it is missing.
    fn create(&mut self, path: &Path, root: OutputRoot) -> Result<PathBuf, CacheError> {
        if let Some(canonical) = self.slot(root) {
            return Ok(canonical.clone());
        }
        fs::create_dir_all(path).at(path)?;
        let canonical = fs::canonicalize(path).at(path)?;
        *self.slot(root) = Some(canonical.clone());
        Ok(canonical)
    }
}

/// Before anything is written: no existing ancestor directory of the output may be a symlink
/// that leads outside its root (writing through it would land outside).
fn check_existing_parents(
    roots: &RestoreRoots,
    canonical_roots: &mut CanonicalRoots,
    member: &str,
    record: &OutputRecord,
) -> Result<(), CacheError> {
    let root = roots.path(record.root);
    let Some(canonical_root) = canonical_roots.existing(root, record.root)? else {
        return Ok(());
    };
    let mut current = root.to_path_buf();
    let mut components: Vec<&str> = record.path.split('/').collect();
    components.pop();
    for component in components {
        current.push(component);
        match fs::symlink_metadata(&current) {
            // Missing: it will be created as a real directory.
            Err(_) => return Ok(()),
            Ok(metadata) if metadata.file_type().is_symlink() => {
                let inside = fs::canonicalize(&current)
                    .is_ok_and(|resolved| resolved.starts_with(&canonical_root));
                if !inside {
                    return Err(CacheError::unsafe_path(
                        member,
                        format!(
                            "its parent `{}` is a symlink that leads outside the {} root",
                            current.display(),
                            record.root.as_str()
                        ),
                    ));
                }
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

/// Creates the output's parent directories one level at a time (so none is ever created through
/// a symlink that leads outside), then checks that the resolved parent is still under the root.
fn create_parent(
    root: &Path,
    canonical_root: &Path,
    record: &OutputRecord,
    member: &str,
) -> Result<PathBuf, CacheError> {
    let outside = |path: &Path| {
        CacheError::unsafe_path(
            member,
            format!(
                "its parent `{}` leads outside the {} root",
                path.display(),
                record.root.as_str()
            ),
        )
    };
    let mut parent = root.to_path_buf();
    let mut components: Vec<&str> = record.path.split('/').collect();
    components.pop();
    for component in components {
        parent.push(component);
        match fs::symlink_metadata(&parent) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                let resolved = fs::canonicalize(&parent).at(&parent)?;
                if !resolved.starts_with(canonical_root) {
                    return Err(outside(&parent));
                }
            }
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                match fs::create_dir(&parent) {
                    Ok(()) => {}
                    Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(error) => return Err(CacheError::io(&parent, error)),
                }
            }
            Err(error) => return Err(CacheError::io(&parent, error)),
        }
    }
    let resolved = fs::canonicalize(&parent).at(&parent)?;
    if !resolved.starts_with(canonical_root) {
        return Err(outside(&parent));
    }
    Ok(parent)
}

/// Writes one file member to a temp file next to `destination`, checks its size and sha256,
/// sets its mode and renames it into place. A failure leaves `destination` untouched.
fn write_file<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    archive_path: &Path,
    record: &OutputRecord,
    parent: &Path,
    destination: &Path,
) -> Result<(), CacheError> {
    let mut temp = TempFile::create_in(parent, "xtask-restore")?;
    let mut hasher = Sha256::new();
    let mut written = 0_u64;
    let mut buffer = vec![0_u8; 64 * 1024];
    loop {
        let read = match entry.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(corrupt_archive(archive_path, &error)),
        };
        hasher.update(&buffer[..read]);
        written += read as u64;
        temp.file.write_all(&buffer[..read]).at(temp.path())?;
    }
    let sha256 = to_hex(&hasher.finalize());
    if written != record.size || Some(sha256.as_str()) != record.sha256.as_deref() {
        return Err(CacheError::corrupt(
            archive_path,
            format!(
                "member `{}` does not match the entry ({written} bytes, sha256 {sha256})",
                record.member_name()
            ),
        ));
    }
    set_mode(&temp.file, record.mode).at(temp.path())?;
    temp.persist(destination)
}

#[cfg(unix)]
fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    file.set_permissions(fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    let mut permissions = file.metadata()?.permissions();
    permissions.set_readonly(mode & 0o222 == 0);
    file.set_permissions(permissions)
}

/// Creates the symlink under a temp name next to `destination` and renames it into place.
fn write_symlink(
    record: &OutputRecord,
    parent: &Path,
    destination: &Path,
) -> Result<(), CacheError> {
    let target = record.link_target.as_deref().unwrap_or_default();
    let temp = TempPath::reserve_in(parent, "xtask-restore");
    create_symlink(target, temp.path()).at(temp.path())?;
    temp.persist(destination)
}

#[cfg(unix)]
fn create_symlink(target: &str, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn create_symlink(_target: &str, _link: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "restoring symlinks is only supported on unix",
    ))
}

fn corrupt_archive(archive_path: &Path, error: &io::Error) -> CacheError {
    CacheError::corrupt(archive_path, format!("cannot read the archive: {error}"))
}

/// Marks the entry as recently used (its JSON's mtime), at most every [`LRU_REFRESH_AFTER`].
/// Best effort: a read-only cache still restores.
fn refresh_lru_time(entry_path: &Path) {
    let now = SystemTime::now();
    let is_stale = fs::metadata(entry_path)
        .and_then(|metadata| metadata.modified())
        .is_ok_and(|modified| {
            now.duration_since(modified)
                .is_ok_and(|age| age > LRU_REFRESH_AFTER)
        });
    if is_stale && let Ok(file) = OpenOptions::new().write(true).open(entry_path) {
        let _ = file.set_modified(now);
    }
}

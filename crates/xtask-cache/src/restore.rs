//! Restoring an entry's outputs: skip what is already in place, verify the archive blob, check
//! every member and record before writing anything, then write each file atomically.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use xtask_util::{sha256_file, sha256_reader, to_hex};

use crate::allowed::AllowedOutputs;
use crate::archive::{HELD_ARCHIVE_BYTES, MemberKind, VerifiedArchive, read_member};
use crate::error::{CacheError, IoResultExt};
use crate::layout::{Layout, TempFile, TempPath};
use crate::meta::{
    EntryMeta, OutputKind, OutputRecord, check_allowed_outputs, check_blob_refs,
    check_output_records,
};
use crate::paths::output_path;
use crate::resolve::Resolver;
use crate::{LRU_REFRESH_AFTER, OutputRoot, RestoreRoots, RestoreStats};

/// How to learn a file's sha256 when checking whether an output is in place: `None` reads it.
pub(crate) type DigestFn<'a> = Option<&'a (dyn Fn(&Path) -> Option<String> + Sync)>;

pub(crate) fn restore(
    layout: &Layout,
    canonical_roots: &CanonicalRoots,
    meta: &EntryMeta,
    roots: &RestoreRoots,
    allowed: &AllowedOutputs,
    digest: DigestFn<'_>,
) -> Result<RestoreStats, CacheError> {
    let entry_path = layout.entry_path(&meta.task_hash)?;
    check_blob_refs(&entry_path, meta)?;
    check_output_records(&entry_path, &meta.outputs)?;
    check_allowed_outputs(&meta.outputs, allowed)?;

    let mut needed: BTreeMap<String, &OutputRecord> = BTreeMap::new();
    for record in &meta.outputs {
        let path = roots.path(record.root).join(&record.path);
        let kept = roots.keep.contains(&path) && path.is_file();
        if !kept && !is_in_place(roots.path(record.root), record, digest) {
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
    let write_order = check_members(&archive, &archive_path, &records)?;
    check_resolved_writes(
        canonical_roots,
        roots,
        allowed,
        &write_order,
        &needed,
        &meta.outputs,
    )?;

    // Pass 2: write what is not in place.
    let mut reader = archive.open(&archive_path)?;
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
        let canonical_root = canonical_roots.create(root)?;
        let parent = create_parent(root, &canonical_root, record, &member.name, allowed)?;
        let destination = output_path(&record.path)
            .map_err(|reason| CacheError::unsafe_path(&member.name, reason))?
            .join_to(root);
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

/// Extracts every output of `meta` under `dir` (at `dir/<path>`, whatever its root), in one
/// pass: for a directory the caller just created empty and that nothing else writes to (a
/// staging directory, whose content the caller moves into place). The archive blob's size and
/// sha256 are verified against the entry first, and every member against its record (listed
/// once, a file, same size) as it is written. Unlike a restore, each member's own sha256 is not
/// computed again: the blob's digest covers its bytes, and the store took each record's digest
/// from the bytes it archived (on a registry layer of 530 MB, that second hashing was a tenth
/// of a fresh CI run's CPU). Files are created new (never over anything) and dated `mtime`.
/// Symlink outputs are refused: with no symlink ever made, nothing is written through one.
/// On error `dir` holds part of the entry: the caller discards it.
pub(crate) fn unpack_fresh(
    layout: &Layout,
    meta: &EntryMeta,
    dir: &Path,
    allowed: &AllowedOutputs,
    mtime: SystemTime,
    wanted: &dyn Fn(&str) -> bool,
) -> Result<usize, CacheError> {
    let entry_path = layout.entry_path(&meta.task_hash)?;
    check_blob_refs(&entry_path, meta)?;
    check_output_records(&entry_path, &meta.outputs)?;
    check_allowed_outputs(&meta.outputs, allowed)?;
    if let Some(link) = meta
        .outputs
        .iter()
        .find(|record| record.kind == OutputKind::Symlink)
    {
        return Err(CacheError::unsafe_path(
            link.member_name(),
            "a symlink output cannot be unpacked into a staging directory",
        ));
    }
    let records: HashMap<String, &OutputRecord> = meta
        .outputs
        .iter()
        .map(|record| (record.member_name(), record))
        .collect();
    let archive_path = layout
        .blob_path(&meta.archive.sha256)
        .ok_or_else(|| CacheError::corrupt(&entry_path, "invalid archive sha256"))?;
    let archive = open_verified_archive(&archive_path, meta)?;
    let mut reader = archive.open(&archive_path)?;
    let entries = reader
        .entries()
        .map_err(|error| corrupt_archive(&archive_path, &error))?;
    let mut seen = HashSet::new();
    let mut parents = xtask_util::ParentDirs::default();
    let mut written = 0;
    for entry in entries {
        let mut entry = entry.map_err(|error| corrupt_archive(&archive_path, &error))?;
        let member = read_member(&entry)?;
        let Some(record) = records.get(&member.name) else {
            return Err(CacheError::unsafe_path(
                member.name,
                "the archive member is not listed in the entry's outputs",
            ));
        };
        if !matches!(member.kind, MemberKind::File) {
            return Err(CacheError::unsafe_path(
                member.name,
                "the archive member's type differs from the entry's outputs",
            ));
        }
        if member.size != record.size {
            return Err(CacheError::corrupt(
                &archive_path,
                format!(
                    "member `{}` is {} bytes, the entry says {}",
                    member.name, member.size, record.size
                ),
            ));
        }
        if !seen.insert(member.name.clone()) {
            return Err(CacheError::unsafe_path(
                member.name,
                "the archive member appears twice",
            ));
        }
        if !wanted(record.path.as_str()) {
            // The archive reader reads past its bytes to the next member.
            continue;
        }
        let destination = output_path(&record.path)
            .map_err(|reason| CacheError::unsafe_path(&member.name, reason))?
            .join_to(dir);
        parents.create_for(&destination)?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&destination)
            .at(&destination)?;
        // The blob's sha256 (checked above) covers these bytes, and the store computed each
        // record's sha256 from the same bytes it archived: only the length is checked here.
        copy_checked(
            &mut entry,
            &archive_path,
            record,
            (&mut file, &destination),
            false,
        )?;
        set_mode(&file, record.mode).at(&destination)?;
        file.set_modified(mtime).at(&destination)?;
        written += 1;
    }
    if let Some(missing) = records.keys().find(|member| !seen.contains(*member)) {
        return Err(CacheError::corrupt(
            &archive_path,
            format!("the archive has no member for output `{missing}`"),
        ));
    }
    Ok(written)
}

/// An output is in place when the path holds the same kind of thing with the same content:
/// size, mode and sha256 for files, the link target for symlinks. Any error means "not in place".
fn is_in_place(root: &Path, record: &OutputRecord, digest: DigestFn<'_>) -> bool {
    let Ok(path) = output_path(&record.path).map(|path| path.join_to(root)) else {
        return false;
    };
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

/// Opens the archive blob and checks its size and sha256 against the entry. What is returned
/// is what gets extracted (the bytes read, or the handle read), so a concurrent replacement of
/// the blob cannot slip in.
fn open_verified_archive(
    archive_path: &Path,
    meta: &EntryMeta,
) -> Result<VerifiedArchive, CacheError> {
    let missing = |error: io::Error| {
        if error.kind() == io::ErrorKind::NotFound {
            CacheError::corrupt(archive_path, "the archive blob is missing")
        } else {
            CacheError::io(archive_path, error)
        }
    };
    let file = File::open(archive_path).map_err(missing)?;
    let (sha256, size, held) = if meta.archive.size <= HELD_ARCHIVE_BYTES {
        let mut bytes = Vec::with_capacity(meta.archive.size as usize);
        (&file)
            .take(HELD_ARCHIVE_BYTES + 1)
            .read_to_end(&mut bytes)
            .at(archive_path)?;
        let sha256 = to_hex(&Sha256::digest(&bytes));
        let size = bytes.len() as u64;
        (sha256, size, Some(bytes))
    } else {
        let (sha256, size) = sha256_reader(&file).at(archive_path)?;
        (sha256, size, None)
    };
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
    Ok(match held {
        Some(bytes) => VerifiedArchive::hold(bytes),
        None => VerifiedArchive::File(file),
    })
}

/// Pass 1: every member must be a listed output of the same kind (and size, and link target),
/// at most once; every listed output must have a member. Returns the member names in archive
/// order (the order pass 2 writes them in).
fn check_members(
    archive: &VerifiedArchive,
    archive_path: &Path,
    records: &BTreeMap<String, &OutputRecord>,
) -> Result<Vec<String>, CacheError> {
    let mut reader = archive.open(archive_path)?;
    let entries = reader
        .entries()
        .map_err(|error| corrupt_archive(archive_path, &error))?;
    let mut seen = HashSet::new();
    let mut order = Vec::new();
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
        order.push(member.name);
    }
    if let Some(missing) = records.keys().find(|member| !seen.contains(*member)) {
        return Err(CacheError::corrupt(
            archive_path,
            format!("the archive has no member for output `{missing}`"),
        ));
    }
    Ok(order)
}

/// The canonical paths of restore roots, computed once per [`crate::LocalCache`] (a run):
/// canonicalising both roots for every restore cost 16 `readlink` a task. A root found
/// missing is remembered as missing (a restore that writes under it creates it and looks
/// again); a resolver without the canonical path of its root only compares absolute symlink
/// targets with the root as given, which refuses more, never less.
#[derive(Debug, Clone, Default)]
pub(crate) struct CanonicalRoots(Arc<Mutex<HashMap<PathBuf, Option<PathBuf>>>>);

impl CanonicalRoots {
    /// The canonical path of `root`, `None` when it does not exist.
    fn get(&self, root: &Path) -> Result<Option<PathBuf>, CacheError> {
        if let Some(known) = self.lock().get(root) {
            return Ok(known.clone());
        }
        self.look(root)
    }

    fn look(&self, root: &Path) -> Result<Option<PathBuf>, CacheError> {
        let canonical = match fs::canonicalize(root) {
            Ok(canonical) => Some(canonical),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(error) => return Err(CacheError::io(root, error)),
        };
        self.lock().insert(root.to_path_buf(), canonical.clone());
        Ok(canonical)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Option<PathBuf>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The canonical root, creating the directory if it is missing.
    fn create(&self, root: &Path) -> Result<PathBuf, CacheError> {
        if let Some(canonical) = self.get(root)? {
            return Ok(canonical);
        }
        fs::create_dir_all(root).at(root)?;
        self.look(root)?
            .ok_or_else(|| CacheError::io(root, io::Error::from(io::ErrorKind::NotFound)))
    }
}

/// Before anything is written: simulates pass 2's writes in archive order, resolving each
/// destination's parent through the symlinks on disk and those written earlier in the same
/// restore. Every destination must resolve inside its root to a path `allowed` permits, and every
/// symlink's target must resolve inside its root, both when it is written and once the whole
/// entry is in place.
fn check_resolved_writes(
    canonical_roots: &CanonicalRoots,
    roots: &RestoreRoots,
    allowed: &AllowedOutputs,
    write_order: &[String],
    needed: &BTreeMap<String, &OutputRecord>,
    all: &[OutputRecord],
) -> Result<(), CacheError> {
    let mut workspace = Resolver::new(
        &roots.workspace,
        OutputRoot::Workspace.as_str(),
        canonical_roots.get(&roots.workspace)?,
    );
    let mut target = Resolver::new(
        &roots.target,
        OutputRoot::Target.as_str(),
        canonical_roots.get(&roots.target)?,
    );
    for member in write_order {
        let Some(record) = needed.get(member) else {
            continue;
        };
        let resolver = match record.root {
            OutputRoot::Workspace => &mut workspace,
            OutputRoot::Target => &mut target,
        };
        let location = resolver
            .resolve_location(&record.path)
            .map_err(|reason| CacheError::unsafe_path(member, reason))?;
        if location != record.path && !allowed.allows(record.root, &location) {
            return Err(CacheError::unsafe_path(
                member,
                format!(
                    "it resolves to `{location}`, outside the task's outputs ({})",
                    allowed.describe()
                ),
            ));
        }
        if let Some(link_target) = &record.link_target {
            resolver
                .resolve_target(&location, link_target)
                .map_err(|reason| CacheError::unsafe_path(member, reason))?;
        }
        resolver.record_write(location, record.link_target.clone());
    }
    // Once everything is written, every symlink of the entry must still resolve inside.
    for record in all {
        let Some(link_target) = &record.link_target else {
            continue;
        };
        let resolver = match record.root {
            OutputRoot::Workspace => &workspace,
            OutputRoot::Target => &target,
        };
        resolver
            .resolve_location(&record.path)
            .and_then(|location| resolver.resolve_target(&location, link_target))
            .map_err(|reason| CacheError::unsafe_path(record.member_name(), reason))?;
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
    allowed: &AllowedOutputs,
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
    let mut through_symlink = false;
    for component in &components {
        parent.push(component);
        match fs::symlink_metadata(&parent) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                through_symlink = true;
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
    // Every component below the root was just seen to be a directory, not a symlink (or
    // created): the parent's canonical path is the root's plus those components.
    let resolved = if through_symlink {
        fs::canonicalize(&parent).at(&parent)?
    } else {
        components
            .iter()
            .fold(canonical_root.to_path_buf(), |path, component| {
                path.join(component)
            })
    };
    let Ok(relative_parent) = resolved.strip_prefix(canonical_root) else {
        return Err(outside(&parent));
    };
    // The same check as before writing, against what is on disk now (a concurrent change).
    let name = record.path.rsplit('/').next().unwrap_or_default();
    let mut location: Vec<String> = relative_parent
        .components()
        .map(|component| component.as_os_str().to_string_lossy().into_owned())
        .collect();
    location.push(name.to_owned());
    let location = location.join("/");
    if !allowed.allows(record.root, &location) {
        return Err(CacheError::unsafe_path(
            member,
            format!(
                "it resolves to `{location}`, outside the task's outputs ({})",
                allowed.describe()
            ),
        ));
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
    let temp_path = temp.path().to_path_buf();
    copy_checked(
        entry,
        archive_path,
        record,
        (&mut temp.file, &temp_path),
        true,
    )?;
    set_mode(&temp.file, record.mode).at(temp.path())?;
    temp.persist(destination)
}

/// Copies one file member into `file` (at `path`), checking the bytes against the record's size,
/// and its sha256 when `hash`.
fn copy_checked<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    archive_path: &Path,
    record: &OutputRecord,
    (file, path): (&mut File, &Path),
    hash: bool,
) -> Result<(), CacheError> {
    let mut hasher = hash.then(Sha256::new);
    let mut written = 0_u64;
    let mut buffer = vec![0_u8; 64 * 1024];
    loop {
        let read = match entry.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(corrupt_archive(archive_path, &error)),
        };
        if let Some(hasher) = &mut hasher {
            hasher.update(&buffer[..read]);
        }
        written += read as u64;
        file.write_all(&buffer[..read]).at(path)?;
    }
    let sha256 = hasher.map(|hasher| to_hex(&hasher.finalize()));
    if written != record.size
        || sha256
            .as_deref()
            .is_some_and(|sha256| Some(sha256) != record.sha256.as_deref())
    {
        let sha256 = sha256.as_deref().unwrap_or("not computed");
        return Err(CacheError::corrupt(
            archive_path,
            format!(
                "member `{}` does not match the entry ({written} bytes, sha256 {sha256})",
                record.member_name()
            ),
        ));
    }
    Ok(())
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

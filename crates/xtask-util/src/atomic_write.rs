//! Writing a file so that readers, and a rerun after a crash, see the old content or the new,
//! never a part of it.

use std::io::{self, Write};
use std::path::Path;

use crate::FileError;

/// Writes `bytes` to `path` atomically: a new temporary file in the same directory (created,
/// with its parents, when missing), the bytes, an fsync of the file, mode 0644 (not the
/// temporary file's 0600), then a rename over `path`. Readers see the old or the new file,
/// never a part; after a crash the file holds the old or the new content, never a truncated
/// one. A failure removes the temporary file and leaves `path` untouched. A symlink at `path`
/// is replaced, never written through.
///
/// Every error names the path it is about (`path`, or its directory when that cannot be
/// created or written to).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    write_replacing(path, bytes, Durability::Synced)
}

/// [`write_atomically`] without the fsync: readers still see the old file or the new one,
/// never a part of it, but after a crash of the machine the file may be empty or missing. Only
/// for records that are hints whose readers treat such a file as absent (the cache's last-run
/// records: one per task, written by every hit on a fresh machine, where an fsync each was
/// 501 fsyncs and 0.25 s under strace here, and costs more on a cloud disk).
pub fn write_hint_atomically(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    write_replacing(path, bytes, Durability::Unsynced)
}

#[derive(PartialEq)]
enum Durability {
    Synced,
    Unsynced,
}

fn write_replacing(path: &Path, bytes: &[u8], durability: Durability) -> Result<(), FileError> {
    let directory = match path.parent() {
        Some(parent) if parent.as_os_str().is_empty() => Path::new("."),
        Some(parent) => parent,
        None => {
            let error = io::Error::new(io::ErrorKind::InvalidInput, "it has no parent directory");
            return Err(FileError::new("write", path, error));
        }
    };
    std::fs::create_dir_all(directory)
        .map_err(|error| FileError::new("create", directory, error))?;
    let mut temporary = tempfile::Builder::new()
        .prefix(&temporary_prefix(path))
        .suffix(".tmp")
        .tempfile_in(directory)
        .map_err(|error| FileError::new("create a temporary file in", directory, error))?;
    let write_error = |error| FileError::new("write", path, error);
    temporary.write_all(bytes).map_err(write_error)?;
    if durability == Durability::Synced {
        temporary.as_file().sync_all().map_err(write_error)?;
    }
    set_mode_0644(temporary.as_file()).map_err(write_error)?;
    temporary
        .persist(path)
        .map_err(|error| write_error(error.error))?;
    Ok(())
}

/// `.<file name>.`: the temporary file is hidden and says what it will become.
fn temporary_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |name| name.to_string_lossy());
    format!(".{name}.")
}

#[cfg(unix)]
fn set_mode_0644(file: &std::fs::File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn set_mode_0644(_file: &std::fs::File) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Both writers, with and without the fsync: the parents are created, the old content is
    /// replaced whole, and no temporary file is left.
    #[test]
    fn creates_the_parents_and_replaces_the_old_content() {
        type Writer = fn(&Path, &[u8]) -> Result<(), FileError>;
        for write in [write_atomically as Writer, write_hint_atomically] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("a/b/file.json");
            write(&path, b"old").unwrap();
            write(&path, b"new").unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), b"new");
            assert_eq!(names_in(&dir.path().join("a/b")), ["file.json"]);
        }
    }

    #[cfg(unix)]
    #[test]
    fn the_file_gets_mode_0644() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("generated.yaml");
        write_atomically(&path, b"x").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_at_the_path_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.txt");
        std::fs::write(&target, b"target").unwrap();
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_atomically(&link, b"new").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"target");
        assert!(!std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(std::fs::read(&link).unwrap(), b"new");
    }

    #[test]
    fn a_failed_write_names_the_path_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should go: the rename fails.
        let path = dir.path().join("occupied");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), b"keep").unwrap();
        let error = write_atomically(&path, b"new").unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("failed to write `{}`", path.display())
        );
        assert_eq!(names_in(dir.path()), ["occupied"]);
        assert_eq!(std::fs::read(path.join("inside")).unwrap(), b"keep");
    }

    #[test]
    fn a_parent_that_is_a_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let error = write_atomically(&file.join("child"), b"x").unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("failed to create `{}`", file.display())
        );
    }

    #[test]
    fn a_path_without_a_parent_is_refused() {
        let error = write_atomically(Path::new("/"), b"x").unwrap_err();
        assert_eq!(error.to_string(), "failed to write `/`");
    }
}

//! sha256 digests of single files and of many files in parallel.
//!
//! A regular file's digest is the sha256 of its bytes, read in 64 KiB chunks. A symlink is
//! never followed: its digest is the sha256 of `symlink:` followed by its target as written
//! in the link, so retargeting a link changes the digest and a dangling link is fine.
//!
//! The executable bit is part of an input: git tracks it, and a script that lost `+x` must not
//! stay a hit. The digest of an input file ([`hash_files`], [`crate::StatCache::hash_files`])
//! is its content sha256 followed by [`EXECUTABLE_SUFFIX`] (`+x`) when any execute bit is set
//! (Unix; symlinks never), so `chmod +x` changes the key while the content part stays
//! readable in a key manifest (`why` shows the same sha256 with and without `+x`). The bit is
//! read from the `lstat` taken for every file, also when the stat cache supplies the content
//! digest (a chmod changes ctime, so the stat cache misses anyway). [`hash_file`] and
//! [`crate::StatCache::digest`] stay the plain content sha256 (what restored outputs are
//! compared with).

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::Path;

use xtask_util::{sha256_hex, sha256_reader, try_parallel_map};

use crate::HashError;
use crate::inputs::InputFile;

/// Appended to the digest of an input file that has an execute bit set.
pub const EXECUTABLE_SUFFIX: &str = "+x";

/// The sha256 of the file at `path` as lowercase hex; for a symlink, of `symlink:` + target.
///
/// The error names `path` as given.
pub fn hash_file(path: &Path) -> Result<String, HashError> {
    digest_path(path).map_err(|source| HashError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Hashes every file with `threads` worker threads (at least one); returns
/// `relative_path -> sha256`, with [`EXECUTABLE_SUFFIX`] for executable files.
///
/// Work is handed out one file at a time ([`try_parallel_map`]), so a slow large file does
/// not hold up the others, and none is started after a failure. The error is the one of the
/// first failing file in `files` order, and it names that file's workspace-relative path.
pub fn hash_files(
    files: &[InputFile],
    threads: usize,
) -> Result<BTreeMap<String, String>, HashError> {
    let digests = try_parallel_map(files, threads, |file| {
        input_digest_path(&file.absolute_path).map_err(|source| HashError::Read {
            path: file.relative_path.clone().into(),
            source,
        })
    })?;
    let paths = files.iter().map(|file| file.relative_path.clone());
    Ok(paths.zip(digests).collect())
}

/// The digest of an input file: [`digest_path`] plus [`EXECUTABLE_SUFFIX`] when executable.
fn input_digest_path(path: &Path) -> io::Result<String> {
    let metadata = std::fs::symlink_metadata(path)?;
    let digest = digest_with_metadata(path, &metadata)?;
    Ok(input_digest(digest, is_executable(&metadata)))
}

/// `content_digest` as an input digest: with [`EXECUTABLE_SUFFIX`] when `executable`.
pub(crate) fn input_digest(content_digest: String, executable: bool) -> String {
    if executable {
        content_digest + EXECUTABLE_SUFFIX
    } else {
        content_digest
    }
}

/// Whether `metadata` (of an `lstat`) is a regular file with any execute bit set.
#[cfg(unix)]
pub(crate) fn is_executable(metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    metadata.is_file() && metadata.permissions().mode() & 0o111 != 0
}

/// Whether `metadata` is executable: never outside Unix (no execute bit to track).
#[cfg(not(unix))]
pub(crate) fn is_executable(_metadata: &std::fs::Metadata) -> bool {
    false
}

/// sha256 of a file's bytes, or of `symlink:` + target for a symlink.
pub(crate) fn digest_path(path: &Path) -> io::Result<String> {
    let metadata = std::fs::symlink_metadata(path)?;
    digest_with_metadata(path, &metadata)
}

/// [`digest_path`] with the `lstat` already taken.
fn digest_with_metadata(path: &Path, metadata: &std::fs::Metadata) -> io::Result<String> {
    if metadata.file_type().is_symlink() {
        let target = std::fs::read_link(path)?;
        let text = [b"symlink:".as_slice(), &link_target_bytes(&target)].concat();
        return Ok(sha256_hex(&text));
    }
    let (sha256, _) = sha256_reader(File::open(path)?)?;
    Ok(sha256)
}

/// The raw bytes of a link target: exact on Unix, UTF-8 with `/` separators elsewhere.
#[cfg(unix)]
fn link_target_bytes(target: &Path) -> std::borrow::Cow<'_, [u8]> {
    use std::os::unix::ffi::OsStrExt;
    std::borrow::Cow::Borrowed(target.as_os_str().as_bytes())
}

/// The raw bytes of a link target: exact on Unix, UTF-8 with `/` separators elsewhere.
#[cfg(not(unix))]
fn link_target_bytes(target: &Path) -> std::borrow::Cow<'_, [u8]> {
    std::borrow::Cow::Owned(target.to_string_lossy().replace('\\', "/").into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The read buffer of [`xtask_util::sha256_reader`].
    const READ_BUFFER_BYTES: usize = 64 * 1024;

    const SHA256_EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const SHA256_ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn input(root: &Path, relative_path: &str) -> InputFile {
        InputFile {
            relative_path: relative_path.to_owned(),
            absolute_path: root.join(relative_path),
        }
    }

    #[test]
    fn sha256_hex_matches_known_vectors() {
        assert_eq!(sha256_hex(b""), SHA256_EMPTY);
        assert_eq!(sha256_hex(b"abc"), SHA256_ABC);
    }

    #[test]
    fn hash_file_digests_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("abc"), "abc").unwrap();
        std::fs::write(dir.path().join("empty"), "").unwrap();
        assert_eq!(hash_file(&dir.path().join("abc")).unwrap(), SHA256_ABC);
        assert_eq!(hash_file(&dir.path().join("empty")).unwrap(), SHA256_EMPTY);
    }

    #[cfg(unix)]
    #[test]
    fn the_executable_bit_is_part_of_an_input_digest_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for name in ["plain", "other", "script", "script2"] {
            std::fs::write(root.join(name), "abc").unwrap();
        }
        for name in ["script", "script2"] {
            std::fs::set_permissions(root.join(name), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        std::os::unix::fs::symlink("plain", root.join("link")).unwrap();
        let files: Vec<InputFile> = ["plain", "other", "script", "script2", "link"]
            .iter()
            .map(|name| input(root, name))
            .collect();
        for threads in [1, 4] {
            let digests = hash_files(&files, threads).unwrap();
            assert_eq!(digests["plain"], SHA256_ABC);
            assert_eq!(
                digests["other"], digests["plain"],
                "equal content, equal digest"
            );
            assert_eq!(digests["script"], format!("{SHA256_ABC}+x"));
            assert_eq!(digests["script2"], digests["script"]);
            assert!(
                !digests["link"].ends_with(EXECUTABLE_SUFFIX),
                "links are never +x"
            );
        }
        // Only the owner's bit is enough; clearing every bit restores the plain digest.
        std::fs::set_permissions(root.join("plain"), std::fs::Permissions::from_mode(0o744))
            .unwrap();
        assert!(hash_files(&files, 1).unwrap()["plain"].ends_with("+x"));
        std::fs::set_permissions(root.join("script"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        assert_eq!(hash_files(&files, 1).unwrap()["script"], SHA256_ABC);
        // The content digest of a single file stays the plain sha256.
        assert_eq!(hash_file(&root.join("script2")).unwrap(), SHA256_ABC);
    }

    #[test]
    fn hash_file_streams_files_larger_than_the_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..3 * READ_BUFFER_BYTES + 17)
            .map(|i| (i % 251) as u8)
            .collect();
        let path = dir.path().join("big.bin");
        std::fs::write(&path, &content).unwrap();
        assert_eq!(hash_file(&path).unwrap(), sha256_hex(&content));
    }

    #[cfg(unix)]
    #[test]
    fn hash_file_digests_symlink_target_not_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("abc"), "abc").unwrap();
        std::os::unix::fs::symlink("abc", dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink("missing", dir.path().join("dangling")).unwrap();
        assert_eq!(
            hash_file(&dir.path().join("link")).unwrap(),
            sha256_hex(b"symlink:abc")
        );
        assert_eq!(
            hash_file(&dir.path().join("dangling")).unwrap(),
            sha256_hex(b"symlink:missing")
        );
    }

    #[test]
    fn hash_file_error_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.rs");
        let error = hash_file(&missing).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("failed to read `{}`: ", missing.display())),
            "{error}"
        );
    }

    #[test]
    fn hash_files_in_parallel_matches_one_thread() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<InputFile> = (0..50)
            .map(|i| {
                let name = format!("f{i:02}.txt");
                std::fs::write(dir.path().join(&name), format!("content {i}")).unwrap();
                input(dir.path(), &name)
            })
            .collect();
        let sequential = hash_files(&files, 1).unwrap();
        let parallel = hash_files(&files, 4).unwrap();
        assert_eq!(sequential, parallel);
        assert_eq!(sequential.len(), 50);
        assert_eq!(sequential["f07.txt"], sha256_hex(b"content 7"));
        // More threads than files, and zero threads, still work.
        assert_eq!(hash_files(&files[..2], 16).unwrap().len(), 2);
        assert_eq!(hash_files(&files[..2], 0).unwrap().len(), 2);
        assert!(hash_files(&[], 4).unwrap().is_empty());
    }

    #[test]
    fn hash_files_error_names_the_first_failing_relative_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut files: Vec<InputFile> = (0..20)
            .map(|i| {
                let name = format!("f{i:02}.txt");
                std::fs::write(dir.path().join(&name), "x").unwrap();
                input(dir.path(), &name)
            })
            .collect();
        files.insert(5, input(dir.path(), "crates/a/src/gone.rs"));
        files.push(input(dir.path(), "zz/also-gone.rs"));
        for threads in [1, 3] {
            let error = hash_files(&files, threads).unwrap_err().to_string();
            assert!(
                error.starts_with("failed to read `crates/a/src/gone.rs`: "),
                "{threads} threads: {error}"
            );
        }
    }
}

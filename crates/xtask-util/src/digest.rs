//! Sha256 digests as 64 lowercase hex digits: of bytes, of a stream, of a file.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::FileError;

/// The size of the read buffer when hashing a stream.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// The sha256 of `bytes` as 64 lowercase hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    to_hex(&Sha256::digest(bytes))
}

/// The sha256 (64 lowercase hex digits) and the length of the file at `path`, read in 64 KiB
/// chunks (never whole into memory). A symlink is followed. The error names `path`.
pub fn sha256_file(path: &Path) -> Result<(String, u64), FileError> {
    let file = File::open(path).map_err(|error| FileError::new("read", path, error))?;
    sha256_reader(file).map_err(|error| FileError::new("read", path, error))
}

/// The sha256 (64 lowercase hex digits) and the length of everything `reader` yields.
pub fn sha256_reader(mut reader: impl Read) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0_u8; READ_BUFFER_BYTES];
    let mut length = 0_u64;
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        hasher.update(&buffer[..read]);
        length += read as u64;
    }
    Ok((to_hex(&hasher.finalize()), length))
}

/// Lowercase hex of `bytes` (e.g. a finished digest).
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

/// True for exactly 64 lowercase hex digits (what [`sha256_hex`] returns): safe to use as a
/// file name.
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256_EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const SHA256_ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    /// Moved from `xtask-cache` (its copy of these helpers).
    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(is_sha256_hex(&sha256_hex(b"")));
        assert!(!is_sha256_hex(&sha256_hex(b"").to_uppercase()));
        assert!(!is_sha256_hex("../../etc/passwd"));
    }

    #[test]
    fn sha256_hex_of_known_vectors() {
        assert_eq!(sha256_hex(b""), SHA256_EMPTY);
        assert_eq!(sha256_hex(b"abc"), SHA256_ABC);
    }

    #[test]
    fn to_hex_is_lowercase_and_two_digits_per_byte() {
        assert_eq!(to_hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(to_hex(&[]), "");
    }

    #[test]
    fn is_sha256_hex_accepts_only_64_lowercase_hex_digits() {
        assert!(is_sha256_hex(SHA256_ABC));
        assert!(!is_sha256_hex(&SHA256_ABC.to_uppercase()));
        assert!(!is_sha256_hex(&SHA256_ABC[1..]));
        assert!(!is_sha256_hex(&format!("{SHA256_ABC}0")));
        assert!(!is_sha256_hex("../../etc/passwd"));
    }

    #[test]
    fn sha256_file_streams_files_larger_than_the_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let content: Vec<u8> = (0..READ_BUFFER_BYTES * 3 + 17)
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&path, &content).unwrap();
        assert_eq!(
            sha256_file(&path).unwrap(),
            (sha256_hex(&content), content.len() as u64)
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(sha256_file(&empty).unwrap(), (SHA256_EMPTY.to_owned(), 0));
    }

    #[test]
    fn sha256_file_error_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.txt");
        let error = sha256_file(&missing).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("failed to read `{}`", missing.display())
        );
        assert_eq!(error.source.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn sha256_reader_counts_the_bytes() {
        assert_eq!(
            sha256_reader(&b"abc"[..]).unwrap(),
            (SHA256_ABC.to_owned(), 3)
        );
    }
}

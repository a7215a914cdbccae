//! The outputs archive: a deterministic tar (sorted members, mtime 0, uid/gid 0, no user names)
//! compressed with zstd level 1, hashed while it is written.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use crate::digest::{HashingReader, HashingWriter};
use crate::error::{CacheError, IoResultExt};
use crate::layout::TempFile;
use crate::meta::{BlobRef, OutputKind, OutputRecord, PERMISSION_BITS, member_name};
use crate::paths::check_link_target;
use crate::{OutputFile, OutputRoot};

/// The zstd level of archives. Level 1, not zstd's default 3: a cold build archives its
/// outputs on the cores cargo is compiling on, and level 1 compresses debug binaries about 1.4x
/// faster for archives about 12% larger (`zstd -b`, BENCHMARKS.md; a cold build's time between
/// runs spreads wider than the two levels' difference in it). Restores decompress both at the
/// same speed, and old entries stay readable: the level is not part of any key.
const ZSTD_LEVEL: i32 = 1;

/// An archive written to a temp file, not yet renamed into `v1/blobs`.
pub(crate) struct BuiltArchive {
    pub(crate) temp: TempFile,
    pub(crate) blob: BlobRef,
    pub(crate) outputs: Vec<OutputRecord>,
}

/// Archives `outputs` (already checked, sorted by member name and unique) into `temp`.
pub(crate) fn build_archive(
    temp: TempFile,
    outputs: &[OutputFile],
) -> Result<BuiltArchive, CacheError> {
    let temp_path = temp.path().to_path_buf();
    let writer = HashingWriter::new(&temp.file);
    let encoder = zstd::stream::write::Encoder::new(writer, ZSTD_LEVEL).at(&temp_path)?;
    let mut builder = tar::Builder::new(encoder);
    let mut records = Vec::with_capacity(outputs.len());
    for output in outputs {
        records.push(append_output(&mut builder, output, &temp_path)?);
    }
    let encoder = builder.into_inner().at(&temp_path)?;
    let writer = encoder.finish().at(&temp_path)?;
    let (_, sha256, size) = writer.finish();
    Ok(BuiltArchive {
        temp,
        blob: BlobRef { sha256, size },
        outputs: records,
    })
}

fn append_output<W: io::Write>(
    builder: &mut tar::Builder<W>,
    output: &OutputFile,
    archive_path: &Path,
) -> Result<OutputRecord, CacheError> {
    let source = &output.absolute_path;
    let member = member_name(output.root, &output.relative_path);
    let metadata = fs::symlink_metadata(source).at(source)?;
    let mut header = tar::Header::new_gnu();
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);

    if metadata.file_type().is_symlink() {
        let target = fs::read_link(source).at(source)?;
        let Some(target) = target.to_str() else {
            return Err(unsupported(output, "the symlink target is not valid UTF-8"));
        };
        check_link_target(&output.relative_path, target)
            .map_err(|reason| unsupported(output, reason))?;
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_mode(PERMISSION_BITS);
        header.set_size(0);
        builder
            .append_link(&mut header, &member, target)
            .at(archive_path)?;
        return Ok(OutputRecord {
            root: output.root,
            path: output.relative_path.clone(),
            kind: OutputKind::Symlink,
            size: 0,
            sha256: None,
            mode: PERMISSION_BITS,
            link_target: Some(target.to_owned()),
        });
    }
    if !metadata.is_file() {
        let reason = if metadata.is_dir() {
            "it is a directory (list the files in it instead)"
        } else {
            "it is neither a regular file nor a symlink"
        };
        return Err(unsupported(output, reason));
    }

    let file = File::open(source).at(source)?;
    // Take size and mode from the opened file, so they describe what is read.
    let metadata = file.metadata().at(source)?;
    let size = metadata.len();
    let mode = file_mode(&metadata);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(mode);
    header.set_size(size);
    let mut reader = HashingReader::new(file.take(size));
    if let Err(error) = builder.append_data(&mut header, &member, &mut reader) {
        let blamed = if reader.failed {
            source.as_path()
        } else {
            archive_path
        };
        return Err(CacheError::io(blamed, error));
    }
    let (sha256, read) = reader.finish();
    if read != size {
        return Err(unsupported(
            output,
            "the file shrank while it was being archived",
        ));
    }
    Ok(OutputRecord {
        root: output.root,
        path: output.relative_path.clone(),
        kind: OutputKind::File,
        size,
        sha256: Some(sha256),
        mode,
        link_target: None,
    })
}

fn unsupported(output: &OutputFile, reason: &str) -> CacheError {
    CacheError::UnsupportedOutput {
        path: output.absolute_path.clone(),
        reason: reason.to_owned(),
    }
}

/// The permission bits of a file (0o644 or 0o444 where there are no Unix modes).
pub(crate) fn file_mode(metadata: &fs::Metadata) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        metadata.permissions().mode() & PERMISSION_BITS
    }
    #[cfg(not(unix))]
    {
        if metadata.permissions().readonly() {
            0o444
        } else {
            0o644
        }
    }
}

/// The tar reader over an archive blob, from its beginning.
pub(crate) type ArchiveReader<'a> = tar::Archive<Box<dyn Read + 'a>>;

/// Archives up to this size (compressed) are read into memory once: the sha256 is checked on
/// the bytes that are then extracted, and both passes of a restore read them without going
/// back to the file.
pub(crate) const HELD_ARCHIVE_BYTES: u64 = 1 << 20;
/// A held archive is decompressed once when it decompresses to at most this size (one zstd
/// context per restore instead of one per pass: at 500 small restores, their set-up and
/// buffers were a tenth of the time).
const HELD_DECODED_BYTES: u64 = 16 << 20;

/// A blob checked against its entry, ready to be read as many times as a restore needs.
pub(crate) enum VerifiedArchive {
    /// The tar, decompressed.
    Decoded(Vec<u8>),
    /// The compressed bytes (they decompress to more than [`HELD_DECODED_BYTES`]).
    Compressed(Vec<u8>),
    /// A large blob, read through the handle that was verified.
    File(File),
}

impl VerifiedArchive {
    /// Holds `bytes` (verified by the caller), decompressed when small enough.
    pub(crate) fn hold(bytes: Vec<u8>) -> VerifiedArchive {
        let mut decoded = Vec::new();
        let small = zstd::stream::read::Decoder::with_buffer(&bytes[..])
            .and_then(|decoder| {
                decoder
                    .take(HELD_DECODED_BYTES + 1)
                    .read_to_end(&mut decoded)
            })
            .is_ok_and(|read| read as u64 <= HELD_DECODED_BYTES);
        if small {
            VerifiedArchive::Decoded(decoded)
        } else {
            // Too large to hold decoded, or not zstd: each pass decodes (and reports) it.
            VerifiedArchive::Compressed(bytes)
        }
    }

    /// A tar reader from the beginning. Errors are `Corrupt` (the blob was verified, so a
    /// failure to decode is bad data) except the seek, which is `Io`.
    pub(crate) fn open(&self, path: &Path) -> Result<ArchiveReader<'_>, CacheError> {
        let cannot_start = |error: io::Error| {
            CacheError::corrupt(path, format!("cannot start decompressing: {error}"))
        };
        let reader: Box<dyn Read + '_> = match self {
            VerifiedArchive::Decoded(tar) => Box::new(&tar[..]),
            VerifiedArchive::Compressed(bytes) => Box::new(
                zstd::stream::read::Decoder::with_buffer(&bytes[..]).map_err(cannot_start)?,
            ),
            VerifiedArchive::File(file) => {
                let mut handle = file;
                handle.seek(SeekFrom::Start(0)).at(path)?;
                Box::new(zstd::stream::read::Decoder::new(handle).map_err(cannot_start)?)
            }
        };
        Ok(tar::Archive::new(reader))
    }
}

/// One archive member as restore sees it.
pub(crate) struct Member {
    pub(crate) name: String,
    pub(crate) root: OutputRoot,
    pub(crate) kind: MemberKind,
    pub(crate) size: u64,
}

pub(crate) enum MemberKind {
    File,
    Symlink(String),
}

/// Reads and checks the header of one member: UTF-8 name under `workspace/` or `target/`, a
/// normalized relative path, and a regular-file or symlink type. Everything else is `UnsafePath`.
pub(crate) fn read_member<R: Read>(entry: &tar::Entry<'_, R>) -> Result<Member, CacheError> {
    let raw_name = entry.path_bytes();
    let Ok(name) = std::str::from_utf8(&raw_name) else {
        return Err(CacheError::unsafe_path(
            String::from_utf8_lossy(&raw_name),
            "the archive member name is not valid UTF-8",
        ));
    };
    let name = name.to_owned();
    let Some((root, path)) = crate::meta::split_member_name(&name) else {
        return Err(CacheError::unsafe_path(
            name,
            "the archive member is not under `workspace/` or `target/`",
        ));
    };
    crate::paths::check_relative_path(path)
        .map_err(|reason| CacheError::unsafe_path(&name, reason))?;
    let entry_type = entry.header().entry_type();
    let kind = match entry_type {
        tar::EntryType::Regular => MemberKind::File,
        tar::EntryType::Symlink => {
            let target = entry.link_name_bytes().unwrap_or_default();
            let Ok(target) = std::str::from_utf8(&target) else {
                return Err(CacheError::unsafe_path(
                    name,
                    "the symlink target is not valid UTF-8",
                ));
            };
            MemberKind::Symlink(target.to_owned())
        }
        other => {
            return Err(CacheError::unsafe_path(
                name,
                format!("archive entry type {other:?} is not allowed (only files and symlinks)"),
            ));
        }
    };
    let size = entry.size();
    Ok(Member {
        name,
        root,
        kind,
        size,
    })
}

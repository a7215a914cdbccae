//! The single-artifact encoding of an entry for servers that store one blob per hash (the
//! Turborepo API): an uncompressed tar (the archive inside is already zstd) with exactly three
//! members, `entry.json`, `archive.tar.zst` and `log`, in that order, with fixed metadata so the
//! same entry always encodes to the same bytes. Decoding accepts nothing else.

use std::io::{Cursor, Read};

use xtask_cache::EntryParts;

const MEMBERS: [&str; 3] = ["entry.json", "archive.tar.zst", "log"];
/// The largest artifact accepted (a decompression bomb cannot hide in an uncompressed tar,
/// but a hostile server could still send a huge body).
pub const MAX_ARTIFACT_BYTES: u64 = 8 << 30;

pub fn encode(parts: &EntryParts) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::with_capacity(
        parts.entry.len() + parts.archive.len() + parts.log.len() + 4 * 512,
    ));
    for (name, bytes) in MEMBERS
        .iter()
        .zip([&parts.entry, &parts.archive, &parts.log])
    {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        // Writing into a Vec cannot fail; a name of a few ASCII bytes always fits.
        let _ = builder.append_data(&mut header, name, bytes.as_slice());
    }
    builder.into_inner().unwrap_or_default()
}

pub fn decode(bytes: &[u8]) -> Result<EntryParts, String> {
    let mut archive = tar::Archive::new(Cursor::new(bytes));
    let mut found: Vec<Vec<u8>> = Vec::new();
    let entries = archive
        .entries()
        .map_err(|error| format!("not a tar archive: {error}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|error| format!("bad tar member: {error}"))?;
        let path = entry
            .path()
            .map_err(|error| format!("bad member name: {error}"))?
            .to_string_lossy()
            .into_owned();
        let expected = MEMBERS
            .get(found.len())
            .ok_or_else(|| format!("unexpected extra member `{path}`"))?;
        if path != *expected || entry.header().entry_type() != tar::EntryType::Regular {
            return Err(format!("expected member `{expected}`, found `{path}`"));
        }
        let mut data = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut data)
            .map_err(|error| format!("cannot read member `{path}`: {error}"))?;
        found.push(data);
    }
    let [entry, archive, log]: [Vec<u8>; 3] = found
        .try_into()
        .map_err(|found: Vec<Vec<u8>>| format!("expected 3 members, found {}", found.len()))?;
    Ok(EntryParts {
        entry,
        archive,
        log,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> EntryParts {
        EntryParts {
            entry: b"{\"format\":1}\n".to_vec(),
            archive: vec![0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3],
            log: b"log line\n".to_vec(),
        }
    }

    #[test]
    fn round_trips_and_is_deterministic() {
        let encoded = encode(&parts());
        assert_eq!(encoded, encode(&parts()));
        assert_eq!(decode(&encoded), Ok(parts()));
    }

    #[test]
    fn rejects_anything_else() {
        assert!(decode(b"garbage that is not a tar archive at all").is_err());
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(1);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, "entry.json", &b"x"[..])
            .unwrap();
        let one = builder.into_inner().unwrap();
        assert_eq!(decode(&one), Err("expected 3 members, found 1".into()));
        let mut truncated = encode(&parts());
        truncated.truncate(700);
        assert!(decode(&truncated).is_err());
    }
}

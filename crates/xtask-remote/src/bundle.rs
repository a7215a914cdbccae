//! The single-artifact encoding of an entry for servers that store one blob per hash (the
//! Turborepo API): an uncompressed tar (the archives inside are already zstd) of the entry's
//! three members, `entry.json`, `archive.tar.zst` and `log`, in that order, optionally followed
//! by the same three of one companion entry (`companion/entry.json`, ...): the cargo units of a
//! task travel inside its task's artifact, so a fresh machine gets both in one request (see
//! [`crate::RemoteCache::fetch_into`]). Fixed metadata: the same entries always encode to the
//! same bytes. Decoding accepts nothing else (a decoder older than companions refuses an
//! artifact that carries one, which is then its miss).

use std::io::{Cursor, Read};

use xtask_cache::EntryParts;

const MEMBERS: [&str; 3] = ["entry.json", "archive.tar.zst", "log"];
const COMPANION_MEMBERS: [&str; 3] = [
    "companion/entry.json",
    "companion/archive.tar.zst",
    "companion/log",
];
/// The largest artifact accepted (a decompression bomb cannot hide in an uncompressed tar,
/// but a hostile server could still send a huge body).
pub const MAX_ARTIFACT_BYTES: u64 = 8 << 30;

/// A decoded artifact: an entry and the companion entry it carries, if any. Nothing of either is
/// trusted yet: each is verified by the local cache's import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub parts: EntryParts,
    pub companion: Option<EntryParts>,
}

pub fn encode(parts: &EntryParts, companion: Option<&EntryParts>) -> Vec<u8> {
    let size = |p: &EntryParts| p.entry.len() + p.archive.len() + p.log.len() + 4 * 512;
    let mut builder =
        tar::Builder::new(Vec::with_capacity(size(parts) + companion.map_or(0, size)));
    let members = MEMBERS.iter().zip(members_of(parts)).chain(
        companion
            .into_iter()
            .flat_map(|c| COMPANION_MEMBERS.iter().zip(members_of(c))),
    );
    for (name, bytes) in members {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        // Writing into a Vec cannot fail; a name of a few ASCII bytes always fits.
        let _ = builder.append_data(&mut header, name, bytes);
    }
    builder.into_inner().unwrap_or_default()
}

fn members_of(parts: &EntryParts) -> [&[u8]; 3] {
    [&parts.entry, &parts.archive, &parts.log]
}

pub fn decode(bytes: &[u8]) -> Result<Bundle, String> {
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
            .iter()
            .chain(&COMPANION_MEMBERS)
            .nth(found.len())
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
    let count = found.len();
    if count != MEMBERS.len() && count != MEMBERS.len() + COMPANION_MEMBERS.len() {
        return Err(format!("expected 3 or 6 members, found {count}"));
    }
    let mut found = found.into_iter();
    let mut next = || EntryParts {
        entry: found.next().unwrap_or_default(),
        archive: found.next().unwrap_or_default(),
        log: found.next().unwrap_or_default(),
    };
    let parts = next();
    let companion = (count > MEMBERS.len()).then(next);
    Ok(Bundle { parts, companion })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(tag: u8) -> EntryParts {
        EntryParts {
            entry: format!("{{\"format\":{tag}}}\n").into_bytes(),
            archive: vec![0x28, 0xb5, 0x2f, 0xfd, tag, 2, 3],
            log: format!("log line {tag}\n").into_bytes(),
        }
    }

    #[test]
    fn round_trips_and_is_deterministic_with_and_without_a_companion() {
        for companion in [None, Some(parts(2))] {
            let encoded = encode(&parts(1), companion.as_ref());
            assert_eq!(encoded, encode(&parts(1), companion.as_ref()));
            let expected = Bundle {
                parts: parts(1),
                companion: companion.clone(),
            };
            assert_eq!(decode(&encoded), Ok(expected));
        }
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
        assert_eq!(decode(&one), Err("expected 3 or 6 members, found 1".into()));
        let mut truncated = encode(&parts(1), None);
        truncated.truncate(700);
        assert!(decode(&truncated).is_err());
        // A companion cut short, or members out of order, are refused whole.
        let with = encode(&parts(1), Some(&parts(2)));
        let mut builder = tar::Builder::new(Vec::new());
        let mut archive = tar::Archive::new(Cursor::new(&with));
        for entry in archive.entries().unwrap().take(5) {
            let mut entry = entry.unwrap();
            let mut header = entry.header().clone();
            let path = entry.path().unwrap().into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            builder
                .append_data(&mut header, path, data.as_slice())
                .unwrap();
        }
        let five = builder.into_inner().unwrap();
        assert_eq!(
            decode(&five),
            Err("expected 3 or 6 members, found 5".into())
        );
        let mut builder = tar::Builder::new(Vec::new());
        for name in ["entry.json", "archive.tar.zst", "log", "companion/log"] {
            let mut header = tar::Header::new_ustar();
            header.set_size(1);
            header.set_mode(0o644);
            builder.append_data(&mut header, name, &b"x"[..]).unwrap();
        }
        let swapped = builder.into_inner().unwrap();
        assert_eq!(
            decode(&swapped),
            Err("expected member `companion/entry.json`, found `companion/log`".into())
        );
    }
}

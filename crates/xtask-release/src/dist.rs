//! Release artifacts: deterministic `tar.gz` archives and the `SHA256SUMS` file.
//!
//! An archive is a function of its files' contents and names only: entries sorted by path, one
//! fixed mtime (`SOURCE_DATE_EPOCH` or the released commit's time), owner and group 0 with no
//! names, modes 0755 (directories, executables) or 0644, GNU headers; the gzip header carries no
//! file name and mtime 0, at a fixed compression level.

use anyhow::Context;
use flate2::{Compression, GzBuilder};
use xtask_util::sha256_hex;

/// One file of an archive.
#[derive(Debug, Clone)]
pub struct ArchiveFile {
    /// Path inside the archive's top directory, `/`-separated.
    pub name: String,
    pub contents: Vec<u8>,
    pub executable: bool,
}

/// The bytes of `TOP/` plus `files` as a deterministic tar.gz.
pub fn archive(top: &str, files: &[ArchiveFile], mtime: u64) -> anyhow::Result<Vec<u8>> {
    let mut sorted: Vec<&ArchiveFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let gzip = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::new(9));
    let mut builder = tar::Builder::new(gzip);
    // Directories, each once, before their files.
    let mut directories: Vec<String> = vec![top.to_string()];
    for file in &sorted {
        let mut path = top.to_string();
        let parts: Vec<&str> = file.name.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            path = format!("{path}/{part}");
            if !directories.contains(&path) {
                directories.push(path.clone());
            }
        }
    }
    directories.sort();
    let mut entries: Vec<(String, Option<&ArchiveFile>)> = directories
        .into_iter()
        .map(|d| (format!("{d}/"), None))
        .collect();
    entries.extend(
        sorted
            .iter()
            .map(|f| (format!("{top}/{}", f.name), Some(*f))),
    );
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, file) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(mtime);
        header.set_uid(0);
        header.set_gid(0);
        let (data, mode, kind): (&[u8], u32, tar::EntryType) = match file {
            None => (&[], 0o755, tar::EntryType::Directory),
            Some(file) => (
                &file.contents,
                if file.executable { 0o755 } else { 0o644 },
                tar::EntryType::Regular,
            ),
        };
        header.set_mode(mode);
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        builder
            .append_data(&mut header, &path, data)
            .with_context(|| format!("failed to add `{path}` to the archive"))?;
    }
    let gzip = builder
        .into_inner()
        .context("failed to finish the archive")?;
    gzip.finish().context("failed to finish the gzip stream")
}

/// `SHA256SUMS` in the format `sha256sum -c` reads: `<hex>  <name>`, sorted by name.
pub fn sha256sums(files: &[(String, Vec<u8>)]) -> String {
    let mut lines: Vec<(String, String)> = files
        .iter()
        .map(|(name, bytes)| (name.clone(), sha256_hex(bytes)))
        .collect();
    lines.sort();
    lines
        .into_iter()
        .map(|(name, digest)| format!("{digest}  {name}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<ArchiveFile> {
        vec![
            ArchiveFile {
                name: "docs/CHANGELOG.md".into(),
                contents: b"# Changelog\n".to_vec(),
                executable: false,
            },
            ArchiveFile {
                name: "app".into(),
                contents: vec![0x7f, b'E', b'L', b'F'],
                executable: true,
            },
        ]
    }

    #[test]
    fn archives_are_deterministic_and_normalised() {
        let one = archive("app-1.0.0", &files(), 1_700_000_000).unwrap();
        let mut reversed = files();
        reversed.reverse();
        let two = archive("app-1.0.0", &reversed, 1_700_000_000).unwrap();
        assert_eq!(one, two, "input order must not matter");
        assert_ne!(one, archive("app-1.0.0", &files(), 1).unwrap());
        // gzip header: magic, deflate, no flags (no name), mtime 0, OS 255.
        assert_eq!(&one[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(&one[4..8], &[0, 0, 0, 0]);
        assert_eq!(one[9], 255);

        let mut reader = tar::Archive::new(flate2::read::GzDecoder::new(&one[..]));
        let entries: Vec<(String, u32, u64, u64, u64, bool)> = reader
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.username().unwrap().unwrap_or("").is_empty(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            vec![
                ("app-1.0.0/".into(), 0o755, 1_700_000_000, 0, 0, true),
                ("app-1.0.0/app".into(), 0o755, 1_700_000_000, 0, 0, true),
                ("app-1.0.0/docs/".into(), 0o755, 1_700_000_000, 0, 0, true),
                (
                    "app-1.0.0/docs/CHANGELOG.md".into(),
                    0o644,
                    1_700_000_000,
                    0,
                    0,
                    true
                ),
            ]
        );
    }

    #[test]
    fn sums_are_sorted_in_sha256sum_format() {
        let text = sha256sums(&[
            ("b.txt".into(), b"b".to_vec()),
            ("a.txt".into(), Vec::new()),
        ]);
        assert_eq!(
            text,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  a.txt\n\
             3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d  b.txt\n"
        );
    }
}

//! The image record, the contract between `cargo xtask image APP`, which writes it, and
//! `cargo xtask deploy`, which reads it: `target/xtask/images/<app>.json`,
//! `{"app", "repository", "tag", "digest": "sha256:...", "pushed": bool}`. A pushed image is
//! pinned by digest in the deploy plan (ko-style); anything else keeps the committed tag.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::error::UserError;

/// One record of a built (and maybe pushed) image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub app: String,
    /// `registry/name` after a push, else the local name.
    pub repository: String,
    pub tag: String,
    /// `sha256:<hex>` of the image manifest.
    pub digest: String,
    pub pushed: bool,
}

/// Where the record of `app` lives.
pub fn record_path(target_dir: &Path, app: &str) -> PathBuf {
    target_dir
        .join("xtask")
        .join("images")
        .join(format!("{app}.json"))
}

/// Reads the record of `app`: `None` when there is none; an error naming the file when it is
/// unreadable, malformed, or about another app.
pub fn read_record(target_dir: &Path, app: &str) -> anyhow::Result<Option<ImageRecord>> {
    let path = record_path(target_dir, app);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error).with_context(|| format!("failed to read `{}`", path.display()));
        }
    };
    let record: ImageRecord = serde_json::from_str(&text).map_err(|error| {
        UserError(format!(
            "`{}`: not an image record: {error}",
            path.display()
        ))
    })?;
    let hex = record.digest.strip_prefix("sha256:").unwrap_or("");
    let problem = if record.app != app {
        Some(format!("`app` is `{}`, expected `{app}`", record.app))
    } else if hex.len() != 64
        || !hex
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    {
        Some(format!(
            "`digest` must be `sha256:` and 64 lowercase hex digits, got `{}`",
            record.digest
        ))
    } else if record.repository.is_empty() || record.repository.contains(char::is_whitespace) {
        Some(format!(
            "`repository` is not an image repository: `{}`",
            record.repository
        ))
    } else {
        None
    };
    if let Some(problem) = problem {
        return Err(UserError(format!("`{}`: {problem}", path.display())).into());
    }
    Ok(Some(record))
}

/// Writes the record JSON (pretty, with a final newline) atomically.
pub fn write_record(path: &Path, record: &ImageRecord) -> anyhow::Result<()> {
    let mut text =
        serde_json::to_vec_pretty(record).context("failed to encode the image record")?;
    text.push(b'\n');
    Ok(xtask_util::write_atomically(path, &text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_record_reads_back_and_a_wrong_app_is_refused() {
        let target = tempfile::tempdir().unwrap();
        let record = ImageRecord {
            app: "api".into(),
            repository: "127.0.0.1:5000/api".into(),
            tag: "0.1.0".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            pushed: true,
        };
        write_record(&record_path(target.path(), "api"), &record).unwrap();
        assert_eq!(read_record(target.path(), "api").unwrap(), Some(record));
        assert_eq!(read_record(target.path(), "worker").unwrap(), None);
        std::fs::copy(
            record_path(target.path(), "api"),
            record_path(target.path(), "worker"),
        )
        .unwrap();
        let error = read_record(target.path(), "worker").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("`app` is `api`, expected `worker`"),
            "{error}"
        );
    }
}

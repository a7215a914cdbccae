//! `cargo xtask docker [--check]`: the one function that writes the generated container files,
//! or checks that the committed ones are current (printing a diff and the fixing command).

use std::path::Path;

use anyhow::Context;
use xtask_engine::report::Reporter;
use xtask_engine::{Location, exit_code, load_workspace};

use crate::generate::{GeneratedFile, generated_files};

/// The command that regenerates the files; drift messages name it.
pub const FIX_COMMAND: &str = "cargo xtask docker";

#[derive(Debug, Clone)]
pub struct DockerOptions {
    pub location: Location,
    /// Check instead of write: exit 1 when a file is missing or differs.
    pub check: bool,
}

/// Writes (or checks) every generated file; returns the exit code.
pub fn docker(options: &DockerOptions, reporter: &Reporter) -> anyhow::Result<i32> {
    let workspace = load_workspace(&options.location)?;
    let files = generated_files(&workspace, &rust_version(&workspace.manifest_path)?);
    if files.is_empty() {
        reporter.line("no package has [package.metadata.xtask.app]: nothing to generate");
        return Ok(exit_code::SUCCESS);
    }
    let drift = sync_files(&workspace.root, &files, options.check)?;
    if options.check {
        if drift.is_empty() {
            reporter.line(&format!("{} generated files are current", files.len()));
            return Ok(exit_code::SUCCESS);
        }
        for message in &drift {
            reporter.line(message);
        }
        reporter.line(&format!("run `{FIX_COMMAND}` to update them"));
        return Ok(exit_code::TASK_FAILED);
    }
    for message in &drift {
        reporter.line(message);
    }
    reporter.line(&format!(
        "{} generated files, {} updated",
        files.len(),
        drift.len()
    ));
    Ok(exit_code::SUCCESS)
}

/// Write mode: writes each file whose contents differ (atomically) and returns a line per
/// written file. Check mode: writes nothing and returns, per stale file, its path and a diff.
pub fn sync_files(
    root: &Path,
    files: &[GeneratedFile],
    check: bool,
) -> anyhow::Result<Vec<String>> {
    let mut messages = Vec::new();
    for file in files {
        let path = root.join(&file.path);
        let current = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                return Err(error).with_context(|| format!("failed to read `{}`", path.display()));
            }
        };
        if current.as_deref() == Some(file.contents.as_str()) {
            continue;
        }
        if check {
            messages.push(match &current {
                None => format!("`{}` is missing", file.path),
                Some(text) => format!(
                    "`{}` is out of date:\n{}",
                    file.path,
                    line_diff(text, &file.contents)
                ),
            });
        } else {
            crate::oci::write_atomically(&path, file.contents.as_bytes())?;
            messages.push(format!("wrote {}", file.path));
        }
    }
    Ok(messages)
}

/// The workspace's `rust-version` (`[workspace.package]` or `[package]`), default "1".
pub fn rust_version(manifest_path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(manifest_path)
        .with_context(|| format!("failed to read `{}`", manifest_path.display()))?;
    let document: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("failed to parse `{}`", manifest_path.display()))?;
    let version = document
        .get("workspace")
        .and_then(|w| w.get("package"))
        .or_else(|| document.get("package"))
        .and_then(|p| p.get("rust-version"))
        .and_then(|v| v.as_str())
        .unwrap_or("1");
    Ok(version.to_string())
}

/// A minimal line diff: `-` lines only in `old`, `+` lines only in `new`, in order (common
/// prefix and suffix skipped).
fn line_diff(old: &str, new: &str) -> String {
    let old: Vec<&str> = old.lines().collect();
    let new: Vec<&str> = new.lines().collect();
    let prefix = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let mut out = format!("@@ line {} @@\n", prefix + 1);
    for line in &old[prefix..old.len() - suffix] {
        out.push_str(&format!("-{line}\n"));
    }
    for line in &new[prefix..new.len() - suffix] {
        out.push_str(&format!("+{line}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_reports_missing_and_stale_files_and_write_fixes_them() {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![
            GeneratedFile {
                path: "a/Dockerfile".into(),
                contents: "one\ntwo\nthree\n".into(),
            },
            GeneratedFile {
                path: "compose.yaml".into(),
                contents: "x\n".into(),
            },
        ];
        std::fs::write(dir.path().join("compose.yaml"), "x\n").unwrap();
        let drift = sync_files(dir.path(), &files, true).unwrap();
        assert_eq!(drift, vec!["`a/Dockerfile` is missing".to_string()]);
        assert!(!dir.path().join("a").exists(), "check mode wrote");
        let written = sync_files(dir.path(), &files, false).unwrap();
        assert_eq!(written, vec!["wrote a/Dockerfile".to_string()]);
        assert!(sync_files(dir.path(), &files, true).unwrap().is_empty());
        std::fs::write(dir.path().join("a/Dockerfile"), "one\nTWO\nthree\n").unwrap();
        let drift = sync_files(dir.path(), &files, true).unwrap();
        assert_eq!(
            drift,
            vec!["`a/Dockerfile` is out of date:\n@@ line 2 @@\n-TWO\n+two\n".to_string()]
        );
    }
}

//! `cargo xtask docker [--check]`: writes the generated container files, or checks that the
//! committed ones are current, through the one write/check function
//! ([`xtask_engine::generated::sync`]), which prints a diff and the fixing command.

use std::path::Path;

use anyhow::Context;
use xtask_engine::generated::{GeneratedFile, GeneratedSet, SyncMode, sync_and_report};
use xtask_engine::report::Reporter;
use xtask_engine::{CliResult, Location, Outcome, load_workspace};

use crate::generate::generated_files;

/// The command that regenerates the files; drift messages name it.
pub const FIX_COMMAND: &str = "cargo xtask docker";

#[derive(Debug, Clone)]
pub struct DockerOptions {
    pub location: Location,
    /// Check instead of write: exit 1 when a file is missing or differs.
    pub check: bool,
}

/// `cargo xtask docker [--check]`: writes (or checks) every generated file; exit code 1 when
/// `--check` found a file missing or different.
pub fn docker(options: &DockerOptions, reporter: &Reporter) -> CliResult {
    let workspace = load_workspace(&options.location)?;
    let files = generated_files(&workspace, &rust_version(&workspace.manifest_path)?);
    if files.is_empty() {
        reporter.line("no package has [package.metadata.xtask.app]: nothing to generate");
        return Ok(Outcome::success());
    }
    let current = sync_and_report(
        &workspace.root,
        &docker_set(files),
        SyncMode::from_check(options.check),
        reporter,
    )?;
    Ok(Outcome::passed(current))
}

/// The set `cargo xtask docker` writes. Most files live in app directories and at the root,
/// beside the user's own files; the only directory the set owns (stale generated files in it
/// are removed) is compose's Prometheus configuration.
pub fn docker_set(files: Vec<GeneratedFile>) -> GeneratedSet {
    GeneratedSet {
        command: FIX_COMMAND,
        owned_dirs: vec![crate::generate::PROMETHEUS_DIR],
        files,
    }
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

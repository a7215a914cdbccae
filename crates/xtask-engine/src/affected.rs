//! `affected`: packages changed since a git ref (committed, staged, unstaged and untracked
//! changes) and every package that depends on them.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::Context;
use serde::Serialize;
use xtask_graph::{AffectedReason, affected_packages};
use xtask_model::{PackageIndex, Workspace};

use crate::Location;
use crate::plan::is_global_input;

/// The default base for `--affected` and `affected --since`: `XTASK_AFFECTED_BASE` or `main`.
pub fn default_base() -> String {
    std::env::var("XTASK_AFFECTED_BASE")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "main".to_string())
}

/// Workspace-relative files that differ from the merge base of `base` and HEAD, plus
/// uncommitted and untracked (not ignored) files.
pub fn changed_files(workspace: &Workspace, base: &str) -> anyhow::Result<Vec<String>> {
    let git = |args: &[&str]| -> anyhow::Result<String> {
        let output = Command::new("git")
            .args(args)
            .current_dir(&workspace.root)
            .stdin(std::process::Stdio::null())
            .output()
            .with_context(|| format!("failed to run `git {}`", args.join(" ")))?;
        anyhow::ensure!(
            output.status.success(),
            "`git {}` failed in `{}`: {}",
            args.join(" "),
            workspace.root.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    // Outside a repository `git diff` falls back to `--no-index` and prints its usage: ask first.
    let inside = Command::new("git")
        .args(["rev-parse", "--is-inside-work-tree"])
        .current_dir(&workspace.root)
        .stdin(std::process::Stdio::null())
        .output()
        .context("failed to run `git rev-parse`")?;
    anyhow::ensure!(
        inside.status.success() && inside.stdout.starts_with(b"true"),
        "`{}`: not a git repository, and `affected` compares with a git ref",
        workspace.root.display()
    );
    let range = format!("{base}...HEAD");
    let mut files: Vec<String> = Vec::new();
    for args in [
        vec![
            "diff",
            "--name-only",
            "--no-renames",
            "--relative",
            range.as_str(),
        ],
        vec!["diff", "--name-only", "--no-renames", "--relative", "HEAD"],
        vec!["ls-files", "--others", "--exclude-standard"],
    ] {
        files.extend(
            git(&args)?
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string),
        );
    }
    files.sort();
    files.dedup();
    Ok(files)
}

pub(crate) fn affected_since(
    workspace: &Workspace,
    base: &str,
) -> anyhow::Result<BTreeMap<PackageIndex, AffectedReason>> {
    let files = changed_files(workspace, base)?;
    Ok(affected_packages(workspace, &files, |f| {
        is_global_input(workspace, f)
    }))
}

#[derive(Debug, Serialize)]
pub struct AffectedPackage {
    pub name: String,
    pub path: String,
    pub reason: String,
}

/// `cargo xtask affected [--since REF]`.
pub fn affected(location: &Location, base: Option<&str>) -> anyhow::Result<Vec<AffectedPackage>> {
    let workspace = crate::load_workspace(location)?;
    let base = base.map(str::to_string).unwrap_or_else(default_base);
    Ok(affected_since(&workspace, &base)?
        .into_iter()
        .map(|(p, reason)| AffectedPackage {
            name: workspace.packages[p].name.clone(),
            path: workspace.packages[p].relative_dir.clone(),
            reason: reason.to_string(),
        })
        .collect())
}

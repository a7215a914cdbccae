//! `affected`: packages changed since a git ref (committed, staged, unstaged and untracked
//! changes) and every package that depends on them.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::Context;
use serde::Serialize;
use xtask_graph::{AffectedReason, affected_packages};
use xtask_model::{PackageIndex, Workspace};

use crate::error::UserError;
use crate::load::Location;
use crate::plan::is_global_input;

/// The variable that names the base when the command line does not.
pub const BASE_ENV: &str = "XTASK_AFFECTED_BASE";

/// The base `--affected` and `affected` compare with when the command line names none:
/// `XTASK_AFFECTED_BASE`, else the repository's default branch: the branch `origin/HEAD`
/// points at (as `origin/<branch>`), else `main`, else `master`. With none of them, a
/// [`UserError`] (exit code 3) that says what to pass.
pub fn default_base(root: &Path) -> anyhow::Result<String> {
    if let Some(base) = std::env::var(BASE_ENV).ok().filter(|b| !b.is_empty()) {
        return Ok(base);
    }
    ensure_repository(root)?;
    let git = |args: &[&str]| -> anyhow::Result<Option<String>> {
        let output = git_command(root, args)?;
        Ok(output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
            .filter(|s| !s.is_empty()))
    };
    if let Some(target) = git(&["symbolic-ref", "--quiet", "refs/remotes/origin/HEAD"])?
        && let Some(branch) = target.strip_prefix("refs/remotes/")
    {
        return Ok(branch.to_string());
    }
    for branch in ["main", "master"] {
        let reference = format!("refs/heads/{branch}");
        if git(&["rev-parse", "--verify", "--quiet", &reference])?.is_some() {
            return Ok(branch.to_string());
        }
    }
    Err(UserError(format!(
        "`{}`: no default branch to compare with (no `origin/HEAD`, `main` or `master`): \
         pass the base as `--since REF` (`affected`) or `--affected=REF`, or set {BASE_ENV}",
        root.display()
    ))
    .into())
}

/// What `affected` compares with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// The [`default_base`] (`--affected` without a value).
    Default,
    /// This git ref.
    Ref(String),
}

impl Base {
    /// `Some(ref)` is that ref, `None` the default base.
    pub fn from_option(base: Option<String>) -> Base {
        base.map_or(Base::Default, Base::Ref)
    }
}

/// The ref `base` names, checked to be a commit of the repository at `root`.
fn resolve_base(root: &Path, base: &Base) -> anyhow::Result<String> {
    let base = match base {
        Base::Default => default_base(root)?,
        Base::Ref(base) => base.clone(),
    };
    ensure_repository(root)?;
    let commit = format!("{base}^{{commit}}");
    let output = git_command(root, &["rev-parse", "--verify", "--quiet", &commit])?;
    if !output.status.success() {
        return Err(UserError(format!(
            "`{base}` is not a commit in `{}`: pass an existing ref as `--since REF` \
             (`affected`) or `--affected=REF`, or set {BASE_ENV}",
            root.display()
        ))
        .into());
    }
    Ok(base)
}

/// Workspace-relative files that differ from the merge base of `base` and HEAD, plus
/// uncommitted and untracked (not ignored) files.
pub fn changed_files(workspace: &Workspace, base: &Base) -> anyhow::Result<Vec<String>> {
    let base = resolve_base(&workspace.root, base)?;
    let git = |args: &[&str]| -> anyhow::Result<String> {
        let output = git_command(&workspace.root, args)?;
        anyhow::ensure!(
            output.status.success(),
            "`git {}` failed in `{}`: {}",
            args.join(" "),
            workspace.root.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
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

fn git_command(root: &Path, args: &[&str]) -> anyhow::Result<std::process::Output> {
    Command::new("git")
        .args(args)
        .current_dir(root)
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("failed to run `git {}`", args.join(" ")))
}

/// Outside a repository `git diff` falls back to `--no-index` and prints its usage: ask first.
fn ensure_repository(root: &Path) -> anyhow::Result<()> {
    let inside = git_command(root, &["rev-parse", "--is-inside-work-tree"])?;
    anyhow::ensure!(
        inside.status.success() && inside.stdout.starts_with(b"true"),
        "`{}`: not a git repository, and `affected` compares with a git ref",
        root.display()
    );
    Ok(())
}

pub(crate) fn affected_since(
    workspace: &Workspace,
    base: &Base,
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
pub fn affected(location: &Location, base: &Base) -> anyhow::Result<Vec<AffectedPackage>> {
    let workspace = crate::load::load_workspace(location)?;
    Ok(affected_since(&workspace, base)?
        .into_iter()
        .map(|(p, reason)| AffectedPackage {
            name: workspace.packages[p].name.clone(),
            path: workspace.packages[p].relative_dir.clone(),
            reason: reason.to_string(),
        })
        .collect())
}

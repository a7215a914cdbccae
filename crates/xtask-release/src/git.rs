//! The `git` command line, run with captured output; every failure names the command, the
//! directory and git's own message.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// A git repository (the workspace root), driven through the `git` program.
#[derive(Debug, Clone)]
pub struct Git {
    dir: PathBuf,
}

/// One commit of `git log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub sha: String,
    pub subject: String,
    pub body: String,
}

impl Git {
    pub fn new(dir: &Path) -> Git {
        Git {
            dir: dir.to_path_buf(),
        }
    }

    /// Runs `git ARGS` and returns its stdout; a non-zero exit is an error with git's stderr.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self.output(args)?;
        if !output.status.success() {
            bail!(
                "`git {}` failed in `{}`: {}",
                args.join(" "),
                self.dir.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        String::from_utf8(output.stdout)
            .with_context(|| format!("`git {}` printed invalid UTF-8", args.join(" ")))
    }

    fn output(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        Command::new("git")
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .with_context(|| {
                format!(
                    "failed to run `git {}` in `{}` (is git installed?)",
                    args.join(" "),
                    self.dir.display()
                )
            })
    }

    pub fn head(&self) -> anyhow::Result<String> {
        Ok(self.run(&["rev-parse", "HEAD"])?.trim().to_string())
    }

    /// The current branch, `None` on a detached HEAD.
    pub fn branch(&self) -> anyhow::Result<Option<String>> {
        let output = self.output(&["symbolic-ref", "--quiet", "--short", "HEAD"])?;
        Ok(output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string()))
    }

    /// Changed, staged and untracked (not ignored) paths, relative to the root.
    pub fn dirty_paths(&self) -> anyhow::Result<Vec<String>> {
        let text = self.run(&["status", "--porcelain=v1", "-z", "--untracked-files=all"])?;
        let mut paths = Vec::new();
        let mut fields = text.split('\0');
        while let Some(field) = fields.next() {
            if field.len() < 4 {
                continue;
            }
            let (status, path) = field.split_at(3);
            paths.push(path.to_string());
            // A rename is followed by its source path.
            if status.starts_with('R') || status.starts_with('C') {
                fields.next();
            }
        }
        paths.sort();
        Ok(paths)
    }

    /// The commit a tag points to, `None` when there is no such tag.
    pub fn tag_commit(&self, tag: &str) -> anyhow::Result<Option<String>> {
        let reference = format!("refs/tags/{tag}^{{commit}}");
        let output = self.output(&["rev-parse", "--quiet", "--verify", &reference])?;
        Ok(output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string()))
    }

    /// Commit time (seconds since the epoch) of `rev`.
    pub fn commit_time(&self, rev: &str) -> anyhow::Result<i64> {
        let text = self.run(&["show", "-s", "--format=%ct", rev])?;
        text.trim()
            .parse()
            .with_context(|| format!("unexpected commit time of `{rev}`: {text:?}"))
    }

    /// Commits in `range` touching `pathspecs` (all commits when empty), oldest first.
    pub fn log(&self, range: &str, pathspecs: &[String]) -> anyhow::Result<Vec<LogEntry>> {
        let mut args = vec![
            "log",
            "--reverse",
            "--format=%H%x1f%s%x1f%b%x1e",
            range,
            "--",
        ];
        args.extend(pathspecs.iter().map(String::as_str));
        let text = self.run(&args)?;
        Ok(text
            .split('\u{1e}')
            .filter_map(|record| {
                let mut parts = record.trim_start_matches('\n').splitn(3, '\u{1f}');
                let sha = parts.next()?.trim();
                if sha.is_empty() {
                    return None;
                }
                Some(LogEntry {
                    sha: sha.to_string(),
                    subject: parts.next().unwrap_or("").trim().to_string(),
                    body: parts.next().unwrap_or("").trim().to_string(),
                })
            })
            .collect())
    }

    /// Full message of `rev`.
    pub fn message(&self, rev: &str) -> anyhow::Result<String> {
        Ok(self
            .run(&["show", "-s", "--format=%B", rev])?
            .trim()
            .to_string())
    }
}

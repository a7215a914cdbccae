//! `ci`: every check a change must pass, through the engine itself (dogfooding the cache):
//! first the workspace's `[workspace.metadata.xtask.ci] setup` command (this repository's
//! installs the real tools the tests use when they are missing), then `fmt`, `lint` and `test`
//! of every package. Generated-file drift and the repository's tidy rules are `#[test]`s, so
//! they run as part of `test`.

use std::io::BufRead;
use std::process::{Command, Stdio};

use anyhow::Context;
use xtask_model::TaskName;

use crate::load::Location;
use crate::report::Reporter;
use crate::run::{RunOptions, run};

#[derive(Debug, Clone)]
pub struct CiOptions {
    pub location: Location,
    pub jobs: usize,
    pub force: bool,
}

/// Runs the checks; returns whether all passed.
pub fn ci(options: &CiOptions, reporter: &Reporter) -> anyhow::Result<bool> {
    let workspace = crate::load::load_workspace(&options.location)?;
    if let Some(setup) = &workspace.config.ci.setup {
        run_setup(&workspace.root, setup, reporter)?;
    }
    let mut success = true;
    for task in [TaskName::FMT, TaskName::LINT, TaskName::TEST] {
        reporter.line(&format!("==> cargo xtask {task}"));
        let outcome = run(
            &RunOptions {
                force: options.force,
                jobs: options.jobs,
                ..RunOptions::new(options.location.clone(), vec![task.clone()])
            },
            reporter,
        )?;
        success &= outcome.success;
        if !outcome.success && task == TaskName::FMT {
            reporter.line("fmt failed: run `cargo fmt --all` and commit the result");
        }
    }
    Ok(success)
}

/// Runs the setup command in the workspace root, its output (stdout and stderr, in order) as
/// status lines on stderr; an error (exit code 4) when it cannot start or fails.
fn run_setup(root: &std::path::Path, setup: &[String], reporter: &Reporter) -> anyhow::Result<()> {
    let shown = setup.join(" ");
    reporter.line(&format!(
        "==> {shown} (`[workspace.metadata.xtask.ci] setup`: installs what the tests need when it is missing)"
    ));
    let (reader, writer) = std::io::pipe().context("failed to create a pipe")?;
    let writer_err = writer.try_clone().context("failed to create a pipe")?;
    let mut command = Command::new(&setup[0]);
    command
        .args(&setup[1..])
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer_err);
    let mut child = command.spawn().with_context(|| {
        format!(
            "failed to start `{shown}` (`[workspace.metadata.xtask.ci] setup`) in `{}`",
            root.display()
        )
    })?;
    // Drop our copies of the write end, so reading ends when the child exits.
    drop(command);
    for line in std::io::BufReader::new(reader).lines() {
        match line {
            Ok(line) => reporter.line(&line),
            Err(_) => break,
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("failed to wait for `{shown}`"))?;
    anyhow::ensure!(
        status.success(),
        "`{shown}` (`[workspace.metadata.xtask.ci] setup`) failed in `{}` ({status})",
        root.display()
    );
    Ok(())
}

//! `ci`: every check a change must pass, through the engine itself (dogfooding the cache):
//! `fmt`, `lint` and `test` of every package. Generated-file drift and the repository's tidy
//! rules are `#[test]`s, so they run as part of `test`.

use crate::Location;
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
    let mut success = true;
    for task in ["fmt", "lint", "test"] {
        reporter.line(&format!("==> cargo xtask {task}"));
        let outcome = run(
            &RunOptions {
                location: options.location.clone(),
                tasks: vec![task.to_string()],
                packages: Vec::new(),
                affected: None,
                force: options.force,
                no_cache: false,
                dry_run: None,
                summarize: None,
                jobs: options.jobs,
                release: false,
                target: None,
            },
            reporter,
        )?;
        success &= outcome.success;
        if !outcome.success && task == "fmt" {
            reporter.line("fmt failed: run `cargo fmt --all` and commit the result");
        }
    }
    Ok(success)
}

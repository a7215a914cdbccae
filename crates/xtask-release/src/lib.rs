//! `cargo xtask release`: plans a release of the workspace and, with `--execute`, cuts it:
//! versions from conventional commits (cargo's 0.x rules), manifests edited in place
//! (`toml_edit`), `Cargo.lock` updated offline, Keep a Changelog sections, one release commit
//! and annotated tags, deterministic dist archives with `SHA256SUMS` and CycloneDX SBOMs, the
//! released apps' OCI images (through `xtask-container`), `cargo publish` in dependency order,
//! and `--push` (the images to the configured registry, then the commit and tags).
//!
//! Invariants:
//! - Without `--execute` nothing is written: the plan goes to stdout and that is all.
//!   (`--artifacts` plans no release: it builds the current versions' dist archives, SBOMs and
//!   images into the target directory, for `release.yml` on a version tag.)
//! - `--execute` applies exactly the printed plan: the plan (with every file's new contents) is
//!   stored in the state file before the first change, and a rerun resumes it, not a new plan.
//! - A refusal (dirty tree, wrong branch, failing tests) happens before anything is written.
//! - Each step is recorded (atomically) right after it is done; a rerun skips recorded steps and
//!   recognises unrecorded ones that took effect, so nothing is committed, tagged or published
//!   twice.
//! - Nothing leaves the machine without `--push` (and `cargo publish` for publishable packages).
//! - A pushed image's reference and digest are in the state file before the next step starts;
//!   a rerun asks the registry before pushing, so no image is pushed twice.

mod changelog;
mod commits;
mod dist;
mod execute;
mod git;
mod manifest;
mod plan;
mod publish;
mod render;
mod sbom;
mod state;
mod version;

use anyhow::Context;
use xtask_engine::report::Reporter;
use xtask_engine::{CliResult, Location, Outcome};

pub use commits::Level;
pub use execute::{CRASH_AFTER_ENV, PUBLISH_DRY_RUN_ENV};
pub use version::BumpRequest;

/// `cargo xtask release [PKG]... [--bump B] [--execute] [--push]`.
#[derive(Debug, Clone)]
pub struct ReleaseOptions {
    pub location: Location,
    /// Only these packages (and their dependents); empty = every changed package.
    pub packages: Vec<String>,
    pub bump: BumpRequest,
    pub execute: bool,
    pub push: bool,
    /// Build the current versions' artifacts instead of planning a release.
    pub artifacts: bool,
    pub jobs: usize,
}

/// `cargo xtask release`: prints the plan (before any step runs, so it is on screen while
/// they do); with `execute`, applies it (or resumes an interrupted release). A refusal is a
/// [`xtask_engine::CliError::refused`] (exit code 5).
pub fn release(options: &ReleaseOptions, reporter: &Reporter) -> CliResult {
    let workspace = xtask_engine::load_workspace(&options.location)?;
    let git = git::Git::new(&workspace.root);
    let context = execute::StepContext {
        location: &options.location,
        git: &git,
        reporter,
        jobs: options.jobs,
    };
    if options.artifacts {
        return artifacts(&context, &workspace, &options.packages);
    }

    if let Some(mut state) = state::StateFile::find_incomplete(&workspace.target_dir)? {
        let done: Vec<String> = state.state.done.iter().map(|d| d.step.clone()).collect();
        reporter.line(&format!(
            "an interrupted release is recorded in `{}`",
            state.path.display()
        ));
        if options.execute && options.push && !state.state.plan.push {
            state.state.plan.enable_push(&workspace)?;
        }
        print(&render::render_plan(&state.state.plan, &done))?;
        if !options.execute {
            reporter.line("nothing was changed; `--execute` resumes this release");
            return Ok(Outcome::success());
        }
        execute::check_resume(&git, &state, &workspace.root)?;
        state.save()?;
        execute::run_steps(&context, &workspace, &mut state)?;
        reporter.line("release complete");
        return Ok(Outcome::success());
    }

    if options.execute {
        execute::check_branch_and_tree(&git, &workspace.config.release.branch)?;
    }
    let host = host_triple()?;
    let plan = plan::make_plan(
        &workspace,
        &git,
        &plan::PlanRequest {
            packages: &options.packages,
            bump: &options.bump,
            push: options.push,
            host: &host,
        },
    )?;
    print(&render::render_plan(&plan, &[]))?;
    if plan.is_empty() {
        return Ok(Outcome::success());
    }
    if !options.execute {
        reporter.line("nothing was changed; run again with --execute to apply this plan");
        return Ok(Outcome::success());
    }
    execute::check_tests(&context)?;
    let mut state = state::StateFile::new(&workspace.target_dir, plan);
    state.save()?;
    reporter.line(&format!("release state: `{}`", state.path.display()));
    execute::run_steps(&context, &workspace, &mut state)?;
    reporter.line("release complete");
    Ok(Outcome::success())
}

/// `--artifacts`: the dist archives, SBOMs and `SHA256SUMS` of every package with binaries
/// (or of `packages`) at its current version, and the images of the apps among them, as
/// `--execute` builds them; stdout lists the files, one workspace-relative path a line.
fn artifacts(
    context: &execute::StepContext<'_>,
    workspace: &xtask_model::Workspace,
    packages: &[String],
) -> CliResult {
    for name in packages {
        workspace
            .require_package(name)
            .map_err(xtask_engine::CliError::from)?;
    }
    let mut selected: Vec<&xtask_model::Package> = workspace
        .packages
        .iter()
        .filter(|p| packages.is_empty() || packages.contains(&p.name))
        .collect();
    selected.sort_by(|a, b| a.name.cmp(&b.name));
    let host = host_triple()?;
    let apps: Vec<plan::PlannedApp> = selected
        .iter()
        .filter_map(|p| plan::planned_app(workspace, &p.name, &p.version, &host))
        .collect();
    let images: Vec<plan::PlannedImage> = selected
        .iter()
        .filter_map(|p| plan::planned_image(workspace, &p.name, &p.version))
        .collect();
    if apps.is_empty() {
        context
            .reporter
            .line("no selected package has a binary: no artifacts to build");
        return Ok(Outcome::success());
    }
    let timestamp = plan::artifact_timestamp(context.git, &context.git.head()?)?;
    let mut files = execute::dist(context, workspace, &apps, timestamp)?;
    for image in &images {
        context
            .reporter
            .line(&format!("==> image {}:{}", image.app, image.tag));
        files.push(execute::build_image_of(context, &image.app, &image.tag)?.archive);
    }
    let listing: String = files
        .iter()
        .map(|f| {
            let shown = f.strip_prefix(&workspace.root).unwrap_or(f);
            format!("{}\n", shown.display())
        })
        .collect();
    Ok(Outcome::print(listing))
}

fn print(text: &str) -> anyhow::Result<()> {
    xtask_engine::stdout::write(text)
}

/// The host target triple, from `rustc -vV`.
fn host_triple() -> anyhow::Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = std::process::Command::new(&rustc)
        .arg("-vV")
        .output()
        .context("failed to run `rustc -vV`")?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .context("`rustc -vV` printed no host triple")
}

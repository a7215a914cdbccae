//! `--execute`: the refusal checks, then each step of the plan in order (commit, tags, dist,
//! images, publish, image pushes, push), each recorded in the state file as soon as it is done;
//! a step found done is skipped, and a step that a crash interrupted after its effect but
//! before its record is recognised (the commit on top of the base, the tag on the release
//! commit, the version on the registry, the image's tag with the expected digest in the image
//! registry) rather than repeated.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context;
use xtask_engine::report::Reporter;
use xtask_engine::{CliError, Location, RunOptions};
use xtask_model::{DepKind, TaskName, Workspace};
use xtask_util::write_atomically;

use crate::dist::{ArchiveFile, archive, sha256sums};
use crate::git::Git;
use crate::plan::{Plan, PlannedApp, REGISTRY_KEY};
use crate::publish::{Published, RetryPolicy, publish_args, publish_with_retries, run_cargo};
use crate::state::{ImageState, StateFile};

/// Env var naming a step after which the process aborts (tests of interrupted releases):
/// `STEP` aborts once the step is recorded, `before-record:STEP` once it took effect but
/// before its record is written, `files` after the release commit's files are written.
pub const CRASH_AFTER_ENV: &str = "XTASK_RELEASE_CRASH_AFTER";
/// Env var that turns `cargo publish` into `cargo publish --dry-run`.
pub const PUBLISH_DRY_RUN_ENV: &str = "XTASK_RELEASE_PUBLISH_DRY_RUN";

pub struct StepContext<'a> {
    pub location: &'a Location,
    pub git: &'a Git,
    pub reporter: &'a Reporter,
    pub jobs: usize,
}

/// Refuses a fresh release from another branch or a dirty tree.
pub fn check_branch_and_tree(git: &Git, branch: &str) -> anyhow::Result<()> {
    check_branch(git, branch)?;
    let dirty = git.dirty_paths()?;
    if !dirty.is_empty() {
        return Err(CliError::refused(format!(
            "refusing to release: the working tree has uncommitted changes ({}); commit or stash them first",
            list(&dirty)
        ))
        .into());
    }
    Ok(())
}

fn check_branch(git: &Git, branch: &str) -> anyhow::Result<()> {
    match git.branch()? {
        Some(current) if current == branch => Ok(()),
        current => Err(CliError::refused(format!(
            "refusing to release: on {}, but releases are cut from `{branch}` (`branch` in `[workspace.metadata.xtask.release]`)",
            current.map_or_else(|| "a detached HEAD".to_string(), |b| format!("branch `{b}`"))
        ))
        .into()),
    }
}

/// Refuses when `cargo xtask test` fails.
pub fn check_tests(context: &StepContext<'_>) -> anyhow::Result<()> {
    context
        .reporter
        .line("==> cargo xtask test (a release needs passing tests)");
    let outcome = xtask_engine::run(
        &RunOptions {
            jobs: context.jobs,
            ..RunOptions::new(context.location.clone(), vec![TaskName::TEST])
        },
        context.reporter,
    )?;
    if !outcome.success {
        return Err(CliError::refused(
            "refusing to release: `cargo xtask test` failed; fix the tests first (nothing was changed)".to_string(),
        )
        .into());
    }
    Ok(())
}

/// Checks before resuming: the branch, and a tree that holds nothing but this release's own
/// unfinished edits.
pub fn check_resume(git: &Git, state: &StateFile, root: &Path) -> anyhow::Result<()> {
    let plan = &state.state.plan;
    check_branch(git, &plan.branch)?;
    let dirty = git.dirty_paths()?;
    if state.is_done("commit") {
        if !dirty.is_empty() {
            return Err(CliError::refused(format!(
                "refusing to resume the release in `{}`: the working tree has uncommitted changes ({})",
                state.path.display(),
                list(&dirty)
            ))
            .into());
        }
        return Ok(());
    }
    let planned: BTreeMap<&str, &str> = plan
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.contents.as_str()))
        .collect();
    let foreign: Vec<String> = dirty
        .into_iter()
        .filter(|path| {
            path != "Cargo.lock"
                && planned.get(path.as_str()).is_none_or(|contents| {
                    std::fs::read_to_string(root.join(path)).ok().as_deref() != Some(*contents)
                })
        })
        .collect();
    if !foreign.is_empty() {
        return Err(CliError::refused(format!(
            "refusing to resume the release in `{}`: changes that are not the release's own ({}); commit or stash them, or delete the state file to abandon the release",
            state.path.display(),
            list(&foreign)
        ))
        .into());
    }
    Ok(())
}

pub fn run_steps(
    context: &StepContext<'_>,
    workspace: &Workspace,
    state: &mut StateFile,
) -> anyhow::Result<()> {
    let steps = state.state.plan.steps();
    for step in steps {
        if state.is_done(&step) {
            continue;
        }
        context.reporter.line(&format!("==> {step}"));
        let detail = if step == "commit" {
            commit(context, workspace, state)?
        } else if let Some(tag) = step.strip_prefix("tag:") {
            create_tag(context.git, state, tag)?
        } else if step == "dist" {
            let plan = &state.state.plan;
            let files = dist(context, workspace, &plan.apps, plan.timestamp)?;
            let mut dirs: Vec<String> = files
                .iter()
                .filter_map(|f| f.parent().map(|d| d.display().to_string()))
                .collect();
            dirs.dedup();
            format!("artifacts in {}", dirs.join(", "))
        } else if let Some(app) = step.strip_prefix("image:") {
            build_release_image(context, state, app)?
        } else if let Some(package) = step.strip_prefix("publish:") {
            publish(context, workspace, &state.state.plan, package)?
        } else if let Some(app) = step.strip_prefix("image-push:") {
            push_release_image(context, workspace, state, app)?
        } else if step == "push" {
            push(context.git, state)?
        } else {
            anyhow::bail!("internal error: unknown release step `{step}`");
        };
        context.reporter.line(&format!("    {detail}"));
        crash_hook(&format!("before-record:{step}"));
        state.record(&step, detail)?;
        crash_hook(&step);
    }
    state.state.complete = true;
    state.save()
}

fn crash_hook(point: &str) {
    if std::env::var(CRASH_AFTER_ENV).is_ok_and(|v| v == point) {
        // Simulates a crash: no cleanup, no unwinding.
        std::process::abort();
    }
}

fn commit(
    context: &StepContext<'_>,
    workspace: &Workspace,
    state: &mut StateFile,
) -> anyhow::Result<String> {
    let git = context.git;
    let plan = &state.state.plan;
    let head = git.head()?;
    if head != plan.base_commit {
        // Committed by an interrupted run that did not get to record it?
        let parent = git
            .run(&["rev-parse", "HEAD^"])
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        if parent == plan.base_commit && git.message("HEAD")? == plan.commit_message.trim() {
            state.state.release_commit = Some(head.clone());
            return Ok(format!(
                "release commit {head} (made by the interrupted run)"
            ));
        }
        anyhow::bail!(
            "HEAD moved since the release was planned (planned on {}, now {head}); delete `{}` to abandon that release",
            plan.base_commit,
            state.path.display()
        );
    }
    for file in &plan.files {
        write_atomically(&workspace.root.join(&file.path), file.contents.as_bytes())?;
    }
    crash_hook("files");
    let mut paths: Vec<String> = plan.files.iter().map(|f| f.path.clone()).collect();
    if workspace.root.join("Cargo.lock").is_file() {
        let args = [
            "update".to_string(),
            "--workspace".to_string(),
            "--offline".to_string(),
        ];
        let attempt = run_cargo(&workspace.root, &args)?;
        if !attempt.success {
            anyhow::bail!(
                "`cargo update --workspace --offline` failed:\n{}",
                attempt.output.trim_end()
            );
        }
        paths.push("Cargo.lock".to_string());
    }
    let mut add = vec!["add", "--"];
    add.extend(paths.iter().map(String::as_str));
    git.run(&add)?;
    git.run(&["commit", "--quiet", "-m", plan.commit_message.trim()])?;
    let head = git.head()?;
    state.state.release_commit = Some(head.clone());
    Ok(format!("release commit {head}"))
}

fn create_tag(git: &Git, state: &StateFile, tag: &str) -> anyhow::Result<String> {
    let commit = release_commit(state)?;
    let planned = state
        .state
        .plan
        .tags
        .iter()
        .find(|t| t.name == tag)
        .context("internal error: tag not in the plan")?;
    match git.tag_commit(tag)? {
        Some(existing) if existing == commit => {
            Ok(format!("tag {tag} (made by the interrupted run)"))
        }
        Some(existing) => anyhow::bail!(
            "tag `{tag}` already exists on {existing}, not on the release commit {commit}"
        ),
        None => {
            git.run(&[
                "tag",
                "--annotate",
                "--message",
                &planned.message,
                tag,
                &commit,
            ])?;
            Ok(format!("tag {tag} -> {commit}"))
        }
    }
}

fn release_commit(state: &StateFile) -> anyhow::Result<String> {
    state
        .state
        .release_commit
        .clone()
        .or_else(|| {
            state
                .state
                .done
                .iter()
                .find(|d| d.step == "commit")
                .and_then(|d| d.detail.split_whitespace().nth(2).map(str::to_string))
        })
        .context("internal error: no release commit recorded")
}

/// Builds `apps` with the release profile through the engine and writes their archives, SBOMs
/// and `SHA256SUMS` (each dist directory replaced as a whole); returns every file written.
pub fn dist(
    context: &StepContext<'_>,
    workspace: &Workspace,
    planned: &[PlannedApp],
    timestamp: i64,
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let apps: Vec<String> = planned.iter().map(|a| a.package.clone()).collect();
    context.reporter.line(&format!(
        "==> cargo xtask build --release -p {}",
        apps.join(" -p ")
    ));
    let outcome = xtask_engine::run(
        &RunOptions {
            packages: apps,
            jobs: context.jobs,
            release: true,
            ..RunOptions::new(context.location.clone(), vec![TaskName::BUILD])
        },
        context.reporter,
    )?;
    if !outcome.success {
        anyhow::bail!(
            "the release build failed; fix it and run `cargo xtask release --execute` again to continue"
        );
    }
    let metadata = full_metadata(&workspace.manifest_path)?;
    let mtime = u64::try_from(timestamp).unwrap_or(0);
    let timestamp = xtask_util::timefmt::rfc3339(timestamp);
    let mut by_dir: BTreeMap<&str, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    for app in planned {
        let index = workspace
            .package_index(&app.package)
            .with_context(|| format!("`{}` is no longer a workspace package", app.package))?;
        let package = &workspace.packages[index];
        let mut files = Vec::new();
        for binary in &app.binaries {
            let path = workspace.target_dir.join("release").join(binary);
            let contents = std::fs::read(&path)
                .with_context(|| format!("failed to read `{}`", path.display()))?;
            files.push(ArchiveFile {
                name: binary.clone(),
                contents,
                executable: true,
            });
        }
        let mut extras: Vec<String> = std::fs::read_dir(&package.dir)
            .with_context(|| format!("failed to read `{}`", package.dir.display()))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n == "CHANGELOG.md" || n.starts_with("README") || n.starts_with("LICENSE"))
            .collect();
        extras.sort();
        for name in extras {
            let path = package.dir.join(&name);
            let contents = std::fs::read(&path)
                .with_context(|| format!("failed to read `{}`", path.display()))?;
            files.push(ArchiveFile {
                name,
                contents,
                executable: false,
            });
        }
        let top = format!("{}-{}", app.package, app.version);
        let bytes = archive(&top, &files, mtime)?;
        let sbom = crate::sbom::sbom(&metadata, &app.package, &timestamp)?;
        let entry = by_dir.entry(app.dist_dir.as_str()).or_default();
        entry.push((app.archive.clone(), bytes));
        entry.push((app.sbom.clone(), sbom.into_bytes()));
    }
    let mut written = Vec::new();
    for (dir, files) in by_dir {
        let final_dir = workspace.target_dir.join(dir);
        let parent = final_dir.parent().unwrap_or(&workspace.target_dir);
        let name = final_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temporary = parent.join(format!(".{name}.tmp-{}", std::process::id()));
        if temporary.exists() {
            std::fs::remove_dir_all(&temporary)
                .with_context(|| format!("failed to remove `{}`", temporary.display()))?;
        }
        for (file, bytes) in &files {
            write_atomically(&temporary.join(file), bytes)?;
        }
        write_atomically(&temporary.join("SHA256SUMS"), sha256sums(&files).as_bytes())?;
        if final_dir.exists() {
            std::fs::remove_dir_all(&final_dir)
                .with_context(|| format!("failed to remove `{}`", final_dir.display()))?;
        }
        std::fs::rename(&temporary, &final_dir)
            .with_context(|| format!("failed to write `{}`", final_dir.display()))?;
        written.extend(files.iter().map(|(file, _)| final_dir.join(file)));
        written.push(final_dir.join("SHA256SUMS"));
    }
    Ok(written)
}

/// The resolved graph for the SBOMs, of the host the release binaries were built for:
/// `--filter-platform` keeps wasm- or windows-only packages out of the SBOM, and lets
/// `--offline` work with a registry that holds only what the host build fetched.
fn full_metadata(manifest: &Path) -> anyhow::Result<cargo_metadata::Metadata> {
    let dir = manifest.parent().unwrap_or(Path::new("."));
    let host = xtask_engine::host_triple(dir)?;
    let args: Vec<String> = [
        "metadata",
        "--format-version",
        "1",
        "--offline",
        "--filter-platform",
        host.as_str(),
        "--manifest-path",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([manifest.display().to_string()])
    .collect();
    let attempt = run_cargo(dir, &args)?;
    if !attempt.success {
        anyhow::bail!(
            "`cargo metadata` failed for `{}`:\n{}",
            manifest.display(),
            attempt.output.trim_end()
        );
    }
    // stdout is the JSON; stderr (appended) may hold warnings after it.
    let json = attempt.output.lines().next().unwrap_or("");
    serde_json::from_str(json).context("unexpected `cargo metadata` output")
}

fn publish(
    context: &StepContext<'_>,
    workspace: &Workspace,
    plan: &Plan,
    package: &str,
) -> anyhow::Result<String> {
    let dry_run = std::env::var(PUBLISH_DRY_RUN_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    let with: Vec<String> = if dry_run {
        unpublished_dependencies(workspace, plan, package)
    } else {
        Vec::new()
    };
    let args = publish_args(package, dry_run.then_some(with.as_slice()));
    let result = publish_with_retries(
        package,
        RetryPolicy::default(),
        || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        },
        std::thread::sleep,
        || run_cargo(&workspace.root, &args),
        |message| context.reporter.warning(message),
    )?;
    let version = plan
        .packages
        .iter()
        .find(|p| p.name == package)
        .map(|p| p.to.as_str())
        .unwrap_or("?");
    Ok(match (result, dry_run) {
        (Published::Already, _) => format!("{package} {version} was already on the registry"),
        (Published::Now, true) => format!(
            "{package} {version} checked with `cargo {}`",
            args.join(" ")
        ),
        (Published::Now, false) => format!("{package} {version} published"),
    })
}

/// The released, published workspace dependencies of `package` (transitively), which a dry
/// run must package along with it.
fn unpublished_dependencies(workspace: &Workspace, plan: &Plan, package: &str) -> Vec<String> {
    let publishing: BTreeSet<&str> = plan.publish.iter().map(String::as_str).collect();
    let mut found = BTreeSet::new();
    let mut stack: Vec<usize> = workspace.package_index(package).into_iter().collect();
    while let Some(index) = stack.pop() {
        for edge in &workspace.packages[index].dependencies {
            let name = workspace.packages[edge.to].name.as_str();
            if edge.kind != DepKind::Dev
                && publishing.contains(name)
                && found.insert(name.to_string())
            {
                stack.push(edge.to);
            }
        }
    }
    found.into_iter().collect()
}

/// Builds and tags `app`'s image with the release version through `cargo xtask image`'s
/// machinery (the static binary through the engine, the image as a cached task); the digest
/// goes into the state.
fn build_release_image(
    context: &StepContext<'_>,
    state: &mut StateFile,
    app: &str,
) -> anyhow::Result<String> {
    let tag = planned_image_tag(state, app)?;
    let built = build_image_of(context, app, &tag)?;
    let detail = format!(
        "image {app}:{tag} {} ({}, in {})",
        built.record.digest,
        if built.cache_hit {
            "cache hit"
        } else {
            "built"
        },
        built.layout.display()
    );
    state.state.images.insert(
        app.to_string(),
        ImageState {
            tag,
            digest: built.record.digest,
            pushed: None,
        },
    );
    Ok(detail)
}

fn planned_image_tag(state: &StateFile, app: &str) -> anyhow::Result<String> {
    state
        .state
        .plan
        .images
        .iter()
        .find(|i| i.app == app)
        .map(|i| i.tag.clone())
        .with_context(|| format!("internal error: no image of `{app}` in the plan"))
}

/// `app`'s image tagged `tag`, through `cargo xtask image`'s machinery.
pub fn build_image_of(
    context: &StepContext<'_>,
    app: &str,
    tag: &str,
) -> anyhow::Result<xtask_container::image::BuiltImage> {
    let options = xtask_container::ImageOptions {
        location: context.location.clone(),
        app: app.to_string(),
        tag: Some(tag.to_string()),
        base: None,
        push: None,
        jobs: context.jobs,
    };
    xtask_container::image::build_image(&options, context.reporter).map_err(|error| {
        if error
            .downcast_ref::<xtask_container::image::BuildFailed>()
            .is_some()
        {
            error.context(format!(
                "the image of `{app}` failed to build; fix it and run `cargo xtask release --execute` again to continue"
            ))
        } else {
            error
        }
    })
}

/// Pushes `app`'s recorded image to the configured registry, unless the registry already
/// holds the release's tag with the recorded digest (a push that an interrupted run made but
/// did not record); a tag holding another digest is never overwritten.
fn push_release_image(
    context: &StepContext<'_>,
    workspace: &Workspace,
    state: &mut StateFile,
    app: &str,
) -> anyhow::Result<String> {
    let registry = state.state.plan.registry.clone().with_context(|| {
        format!("internal error: a push of `{app}`'s image without {REGISTRY_KEY} in the plan")
    })?;
    let image = state
        .state
        .images
        .get(app)
        .cloned()
        .with_context(|| format!("internal error: no image of `{app}` recorded"))?;
    let target = xtask_container::push::PushTarget::parse(&registry, app)?;
    let reference = format!("{}:{}", target.repository_reference(), image.tag);
    let credentials = xtask_container::push::Credentials::from_env();
    let failed = |error: anyhow::Error| {
        error.context(format!(
            "pushing the image of `{app}` to `{reference}` failed (the registry is {REGISTRY_KEY}: `{registry}`); what is done is recorded in `{}`: run `cargo xtask release --execute` again to continue",
            state.path.display()
        ))
    };
    let existing = xtask_container::push::remote_manifest_digest(&target, &image.tag, &credentials)
        .map_err(failed)?;
    let detail = match existing {
        Some(digest) if digest == image.digest => {
            format!(
                "{reference}@{digest} was already in the registry (pushed by the interrupted run)"
            )
        }
        Some(digest) => {
            return Err(failed(anyhow::anyhow!(
                "`{reference}` already holds {digest}, not this release's {}; a released tag is never overwritten",
                image.digest
            )));
        }
        None => {
            let layout = image_layout(context, workspace, app, &image)?;
            let pushed = xtask_container::push::push_layout(
                &layout,
                &image.tag,
                &target,
                &credentials,
                context.reporter,
            )
            .map_err(failed)?;
            anyhow::ensure!(
                pushed.digest == image.digest,
                "the registry stored {} for `{reference}`, not the release's {}",
                pushed.digest,
                image.digest
            );
            format!(
                "pushed {reference}@{} ({} blobs uploaded, {} already there)",
                pushed.digest, pushed.uploaded, pushed.skipped
            )
        }
    };
    let record = xtask_engine::image_record::ImageRecord {
        app: app.to_string(),
        repository: target.repository_reference(),
        tag: image.tag.clone(),
        digest: image.digest.clone(),
        pushed: true,
    };
    xtask_engine::image_record::write_record(
        &xtask_engine::image_record::record_path(&workspace.target_dir, app),
        &record,
    )?;
    if let Some(recorded) = state.state.images.get_mut(app) {
        recorded.pushed = Some(reference);
    }
    Ok(detail)
}

/// The OCI layout holding `app`'s recorded image under its tag: the one `image` wrote, or,
/// when something replaced it since, the image built again (from the cache) and checked to
/// have the recorded digest.
fn image_layout(
    context: &StepContext<'_>,
    workspace: &Workspace,
    app: &str,
    image: &ImageState,
) -> anyhow::Result<std::path::PathBuf> {
    let layout = xtask_container::image::images_dir(workspace)
        .join(app)
        .join("oci");
    if layout_digest(&layout, &image.tag).as_deref() == Some(image.digest.as_str()) {
        return Ok(layout);
    }
    let built = build_image_of(context, app, &image.tag)?;
    anyhow::ensure!(
        built.record.digest == image.digest,
        "the image of `{app}` built again is {}, not the recorded {}: the release commit's build is not reproducible here",
        built.record.digest,
        image.digest
    );
    Ok(built.layout)
}

/// The manifest digest `index.json` of the layout gives `tag`, if any.
fn layout_digest(layout: &Path, tag: &str) -> Option<String> {
    let text = std::fs::read(layout.join("index.json")).ok()?;
    let index: serde_json::Value = serde_json::from_slice(&text).ok()?;
    index["manifests"]
        .as_array()?
        .iter()
        .find(|m| m["annotations"][xtask_container::oci::REF_NAME] == tag)
        .and_then(|m| m["digest"].as_str().map(str::to_string))
}

fn push(git: &Git, state: &StateFile) -> anyhow::Result<String> {
    let plan = &state.state.plan;
    let commit = release_commit(state)?;
    let branch_ref = format!("{commit}:refs/heads/{}", plan.branch);
    let tag_refs: Vec<String> = plan
        .tags
        .iter()
        .map(|t| format!("refs/tags/{}", t.name))
        .collect();
    let mut args = vec![
        "push",
        "--atomic",
        plan.remote.as_str(),
        branch_ref.as_str(),
    ];
    args.extend(tag_refs.iter().map(String::as_str));
    git.run(&args)?;
    Ok(format!(
        "pushed {} and {} tag(s) to `{}`",
        plan.branch,
        plan.tags.len(),
        plan.remote
    ))
}

fn list(paths: &[String]) -> String {
    let shown: Vec<&str> = paths.iter().take(5).map(String::as_str).collect();
    let more = paths.len().saturating_sub(5);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

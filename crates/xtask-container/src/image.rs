//! `cargo xtask image APP [--tag T] [--base DIR[:TAG]] [--push REGISTRY]`: builds APP's static
//! binary through the cached engine (`--release --target x86_64-unknown-linux-gnu`,
//! `RUSTFLAGS=-C target-feature=+crt-static`, both in the build's task hash), assembles the
//! OCI image as a cached task of its own (key: the binary's sha256 and every image setting),
//! writes it under `target/xtask/images/<app>/` (`oci/` layout and `<app>.tar` docker archive),
//! optionally pushes it, and records the result in `target/xtask/images/<app>.json`:
//!
//! ```json
//! {"app": "api", "repository": "127.0.0.1:5000/api", "tag": "0.1.0",
//!  "digest": "sha256:<manifest digest>", "pushed": true}
//! ```
//!
//! (`repository` is the local name, the app's, until a push.) Later steps (Kubernetes
//! overlays) read that file ([`xtask_engine::image_record`], the one definition of the contract);
//! it is written atomically after the image and again after a push.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use xtask_cache::{AllowedOutputs, NewEntry, OutputFile, OutputRoot, RestoreRoots};
use xtask_engine::image_record::{ImageRecord, record_path, write_record};
use xtask_engine::report::Reporter;
use xtask_engine::{CargoTarget, Location, RunOptions, UserError, exit_code, load_workspace};
use xtask_model::{TaskName, Workspace};

use crate::generate::{App, NON_ROOT_USER, STATIC_RUSTFLAGS, STATIC_TARGET, apps, build_closure};
use crate::oci::{self, BaseImage, ImageSpec, canonical_json, sha256_digest};

/// Bumped when the image layout or its key changes.
const IMAGE_KEY_SCHEMA: u32 = 1;

#[derive(Debug, Clone)]
pub struct ImageOptions {
    pub location: Location,
    pub app: String,
    /// Default: the package version.
    pub tag: Option<String>,
    /// A base image as a local OCI layout, `DIR` or `DIR:TAG`; default `scratch`.
    pub base: Option<String>,
    /// Push to this registry (`HOST[:PORT][/NAMESPACE]`, optionally with `http://`/`https://`).
    pub push: Option<String>,
    pub jobs: usize,
}

/// A built (or restored) image.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub record: ImageRecord,
    /// The OCI layout directory.
    pub layout: PathBuf,
    /// The docker archive.
    pub archive: PathBuf,
    /// The record file.
    pub record_path: PathBuf,
    /// The image came from the cache.
    pub cache_hit: bool,
    /// The static binary it holds.
    pub binary: PathBuf,
    /// How long assembling and writing took (zero on a hit).
    pub assembly: Duration,
}

/// The build failed (its log has been reported).
#[derive(Debug, thiserror::Error)]
#[error("building `{0}` failed")]
pub struct BuildFailed(pub String);

/// The CLI command: build, optionally push; returns the exit code.
pub fn image(options: &ImageOptions, reporter: &Reporter) -> anyhow::Result<i32> {
    let built = match build_image(options, reporter) {
        Ok(built) => built,
        Err(error) if error.downcast_ref::<BuildFailed>().is_some() => {
            reporter.line(&format!("error: {error}"));
            return Ok(exit_code::TASK_FAILED);
        }
        Err(error) => return Err(error),
    };
    reporter.line(&format!(
        "image {}:{} {} ({})\n  oci layout: {}\n  docker archive: {}",
        built.record.repository,
        built.record.tag,
        built.record.digest,
        if built.cache_hit {
            "cache hit"
        } else {
            "built"
        },
        built.layout.display(),
        built.archive.display()
    ));
    let mut record = built.record.clone();
    if let Some(registry) = &options.push {
        let target = crate::push::PushTarget::parse(registry, &record.app)?;
        let pushed = crate::push::push_layout(
            &built.layout,
            &record.tag,
            &target,
            &crate::push::Credentials::from_env(),
            reporter,
        )?;
        record.repository = target.repository_reference();
        record.digest = pushed.digest.clone();
        record.pushed = true;
        write_record(&built.record_path, &record)?;
        reporter.line(&format!(
            "pushed {}:{}@{} ({} blobs uploaded, {} already there)",
            record.repository, record.tag, pushed.digest, pushed.uploaded, pushed.skipped
        ));
    }
    xtask_engine::output::write_stdout(&format!("{}\n", record.digest))?;
    Ok(exit_code::SUCCESS)
}

/// Builds the binary through the engine, then the image (from the cache when unchanged).
pub fn build_image(options: &ImageOptions, reporter: &Reporter) -> anyhow::Result<BuiltImage> {
    let workspace = load_workspace(&options.location)?;
    let app = find_app(&workspace, &options.app)?;
    let outcome = xtask_engine::run_loaded(
        workspace.clone(),
        &RunOptions {
            packages: vec![app.package.name.clone()],
            jobs: options.jobs,
            release: true,
            target: Some(static_target()),
            ..RunOptions::new(
                Location {
                    manifest_path: Some(workspace.manifest_path.clone()),
                    directory: None,
                },
                vec![TaskName::BUILD],
            )
        },
        reporter,
    )?;
    if !outcome.success {
        return Err(BuildFailed(app.package.name.clone()).into());
    }
    assemble_cached(&workspace, app, options, reporter)
}

/// The engine's cross-compilation settings for image binaries.
pub fn static_target() -> CargoTarget {
    CargoTarget {
        triple: STATIC_TARGET.into(),
        rustflags: STATIC_RUSTFLAGS.into(),
    }
}

/// Where an app's image files go: `target/xtask/images/<app>`.
pub fn images_dir(workspace: &Workspace) -> PathBuf {
    workspace.target_dir.join("xtask").join("images")
}

fn find_app<'a>(workspace: &'a Workspace, name: &str) -> anyhow::Result<App<'a>> {
    let all = apps(workspace);
    all.iter()
        .find(|a| a.package.name == name)
        .copied()
        .ok_or_else(|| {
            UserError(format!(
                "`{name}` is not an app (a package with [package.metadata.xtask.app]): apps are {}",
                all.iter()
                    .map(|a| a.package.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .into()
        })
}

/// Assembles the image of `app`'s already-built static binary, or restores it from the cache.
pub fn assemble_cached(
    workspace: &Workspace,
    app: App<'_>,
    options: &ImageOptions,
    reporter: &Reporter,
) -> anyhow::Result<BuiltImage> {
    let binary = workspace.target_dir.join(app.static_binary_path());
    let bytes = std::fs::read(&binary)
        .with_context(|| format!("failed to read the app binary `{}`", binary.display()))?;
    let spec = image_spec(workspace, app, options, bytes)?;
    let key = image_key(&spec)?;
    let images = images_dir(workspace);
    let dir = images.join(&app.package.name);
    let layout = dir.join("oci");
    let archive = dir.join(format!("{}.tar", app.package.name));
    let record_path = record_path(&workspace.target_dir, &app.package.name);
    let cache = xtask_engine::open_cache(workspace);
    let roots = RestoreRoots {
        workspace: workspace.root.clone(),
        target: workspace.target_dir.clone(),
        keep: Vec::new(),
    };
    let label = format!("{}:image", app.package.name);

    let restored = match cache.lookup(&key) {
        Ok(Some(meta)) => {
            let digest = meta
                .manifest
                .get("manifest_digest")
                .and_then(|d| d.as_str())
                .map(str::to_string);
            let keep: std::collections::BTreeSet<PathBuf> = meta
                .outputs
                .iter()
                .map(|o| workspace.target_dir.join(&o.path))
                .collect();
            remove_files_except(&dir, &keep)?;
            // Only this app's image directory: `target/xtask/images/<app>/`.
            let allowed = AllowedOutputs::directory(
                OutputRoot::Target,
                &format!("xtask/images/{}", app.package.name),
            );
            match (digest, cache.restore(&meta, &roots, &allowed)) {
                (Some(digest), Ok(_)) => Some(digest),
                (_, Err(error)) => {
                    reporter.warning(&format!(
                        "{label}: cache entry unusable, treating as a miss: {error}"
                    ));
                    None
                }
                (None, Ok(_)) => None,
            }
        }
        Ok(None) => None,
        Err(error) => {
            reporter.warning(&format!(
                "{label}: cache entry unusable, treating as a miss: {error}"
            ));
            None
        }
    };
    let (digest, cache_hit, assembly) = match restored {
        Some(digest) => (digest, true, Duration::ZERO),
        None => {
            let started = Instant::now();
            let image = oci::assemble(&spec)?;
            oci::write_layout(&image, &layout)?;
            oci::write_docker_archive(&image, &archive, spec.created_epoch)?;
            let assembly = started.elapsed();
            let outputs = output_files(workspace, &dir)?;
            let log = format!(
                "{}:{} {}\n",
                spec.repository, spec.tag, image.manifest_digest
            );
            let stored = cache.store(NewEntry {
                task_hash: &key,
                manifest: serde_json::json!({
                    "kind": "image",
                    "app": app.package.name,
                    "manifest_digest": image.manifest_digest,
                }),
                outputs,
                log: log.as_bytes(),
                duration_ms: assembly.as_millis() as u64,
                exit_code: 0,
            });
            if let Err(error) = stored {
                reporter.warning(&format!("{label}: result not cached: {error}"));
            }
            (image.manifest_digest, false, assembly)
        }
    };
    let record = ImageRecord {
        app: app.package.name.clone(),
        repository: spec.repository.clone(),
        tag: spec.tag.clone(),
        digest,
        pushed: false,
    };
    write_record(&record_path, &record)?;
    Ok(BuiltImage {
        record,
        layout,
        archive,
        record_path,
        cache_hit,
        binary,
        assembly,
    })
}

/// Everything that goes into the image of `app` holding `binary`.
pub fn image_spec(
    workspace: &Workspace,
    app: App<'_>,
    options: &ImageOptions,
    binary: Vec<u8>,
) -> anyhow::Result<ImageSpec> {
    let version = app.package.version.clone();
    let tag = options.tag.clone().unwrap_or_else(|| version.clone());
    validate_tag(&tag)?;
    let base = match &options.base {
        None => None,
        Some(text) => Some(read_base_option(text)?),
    };
    let paths: Vec<String> = build_closure(workspace, app.package)
        .iter()
        .map(|p| p.relative_dir.clone())
        .chain(["Cargo.lock".to_string(), "Cargo.toml".to_string()])
        .collect();
    let commit = last_commit(&workspace.root, &paths);
    let created_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) => text.trim().parse::<u64>().map_err(|_| {
            UserError(format!(
                "SOURCE_DATE_EPOCH must be a number of seconds, got {text:?}"
            ))
        })?,
        Err(_) => commit.as_ref().map(|c| c.1).unwrap_or(0),
    };
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "org.opencontainers.image.title".into(),
        app.package.name.clone(),
    );
    annotations.insert("org.opencontainers.image.version".into(), version);
    annotations.insert(
        "org.opencontainers.image.created".into(),
        xtask_util::timefmt::rfc3339(
            i64::try_from(created_epoch).context("SOURCE_DATE_EPOCH is out of range")?,
        ),
    );
    if let Some((revision, _)) = &commit {
        annotations.insert("org.opencontainers.image.revision".into(), revision.clone());
    }
    annotations.insert(
        "org.opencontainers.image.source".into(),
        git_remote(&workspace.root).unwrap_or_else(|| app.package.relative_dir.clone()),
    );
    let mut env = vec!["PATH=/app".to_string(), format!("PORT={}", app.config.port)];
    env.extend(app.config.env.iter().map(|(k, v)| format!("{k}={v}")));
    Ok(ImageSpec {
        app: app.binary().to_string(),
        binary,
        repository: app.package.name.clone(),
        tag,
        created_epoch,
        user: NON_ROOT_USER.into(),
        port: app.config.port,
        env,
        annotations,
        base,
    })
}

/// The image task's hash: every input of [`ImageSpec`], the binary by its sha256.
pub fn image_key(spec: &ImageSpec) -> anyhow::Result<String> {
    let key = serde_json::json!({
        "schema": IMAGE_KEY_SCHEMA,
        "tool_version": xtask_engine::TOOL_VERSION,
        "app": spec.app,
        "binary": sha256_digest(&spec.binary),
        "repository": spec.repository,
        "tag": spec.tag,
        "created": spec.created_epoch,
        "user": spec.user,
        "port": spec.port,
        "env": spec.env,
        "annotations": spec.annotations,
        "base": spec.base.as_ref().map(|b| b.manifest_digest.clone()),
    });
    let digest = sha256_digest(&canonical_json(&key)?);
    Ok(digest.trim_start_matches("sha256:").to_string())
}

fn read_base_option(text: &str) -> anyhow::Result<BaseImage> {
    // `DIR:TAG` when the part after the last colon is a tag and DIR exists.
    if let Some((dir, tag)) = text.rsplit_once(':')
        && !tag.contains('/')
        && Path::new(dir).is_dir()
    {
        return oci::read_base(Path::new(dir), Some(tag));
    }
    oci::read_base(Path::new(text), None)
}

/// A tag as the distribution spec allows: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
fn validate_tag(tag: &str) -> anyhow::Result<()> {
    let valid = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(UserError(format!(
            "invalid tag {tag:?}: letters, digits, `_`, `.` and `-`, at most 128, not starting with `.` or `-`"
        ))
        .into())
    }
}

/// (hash, commit time) of the last commit touching `paths`, if this is a git checkout.
fn last_commit(root: &Path, paths: &[String]) -> Option<(String, u64)> {
    let output = std::process::Command::new("git")
        .args(["log", "-1", "--format=%H %ct", "--"])
        .args(paths)
        .current_dir(root)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let (hash, time) = text.trim().split_once(' ')?;
    Some((hash.to_string(), time.parse().ok()?))
}

/// `origin`'s URL, without credentials, if there is one.
fn git_remote(root: &Path) -> Option<String> {
    let output = std::process::Command::new("git")
        .args(["remote", "get-url", "origin"])
        .current_dir(root)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let url = String::from_utf8(output.stdout).ok()?.trim().to_string();
    if url.is_empty() {
        return None;
    }
    // Never leak `user:token@` into an image.
    Some(match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url,
    })
}

fn output_files(workspace: &Workspace, dir: &Path) -> anyhow::Result<Vec<OutputFile>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current)
            .with_context(|| format!("failed to read `{}`", current.display()))?
        {
            let entry = entry.with_context(|| format!("failed to read `{}`", current.display()))?;
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path
                    .strip_prefix(&workspace.target_dir)
                    .context("image files live in the target directory")?
                    .to_string_lossy()
                    .replace('\\', "/");
                files.push(OutputFile {
                    root: OutputRoot::Target,
                    relative_path: relative,
                    absolute_path: path,
                });
            }
        }
    }
    files.sort_by(|a, b| a.relative_path.cmp(&b.relative_path));
    Ok(files)
}

/// Removes every file under `dir` not in `keep` (stale blobs of an earlier image).
fn remove_files_except(
    dir: &Path,
    keep: &std::collections::BTreeSet<PathBuf>,
) -> anyhow::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current)
            .with_context(|| format!("failed to read `{}`", current.display()))?
        {
            let path = entry
                .with_context(|| format!("failed to read `{}`", current.display()))?
                .path();
            if path.is_dir() {
                stack.push(path);
            } else if !keep.contains(&path) {
                std::fs::remove_file(&path)
                    .with_context(|| format!("failed to remove `{}`", path.display()))?;
            }
        }
    }
    Ok(())
}

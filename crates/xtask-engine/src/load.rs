//! Finding and loading the workspace: `--manifest-path` / `-C`, and the model from `cargo
//! metadata` or its cached copy.

use std::path::{Path, PathBuf};

use crate::error::CliError;
use crate::fast;
use crate::shared_metadata::{self, SharedMetadata};

/// Where the workspace is: `--manifest-path`, else the nearest `Cargo.toml` at or above
/// `directory` (`-C`), else above the current directory.
#[derive(Debug, Clone, Default)]
pub struct Location {
    pub manifest_path: Option<PathBuf>,
    pub directory: Option<PathBuf>,
}

impl Location {
    /// A path given on the command line: a relative one is relative to `-C DIR` when given
    /// (as if the tool had been started there), else to the current directory.
    pub fn command_line_path(&self, path: &Path) -> PathBuf {
        match &self.directory {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }

    pub fn manifest_path(&self) -> anyhow::Result<PathBuf> {
        if let Some(path) = &self.manifest_path {
            return Ok(path.clone());
        }
        let start = match &self.directory {
            Some(dir) => dir.clone(),
            None => std::env::current_dir()?,
        };
        let start = std::fs::canonicalize(&start)
            .map_err(|e| anyhow::anyhow!("failed to open `{}`: {e}", start.display()))?;
        start
            .ancestors()
            .map(|dir| dir.join("Cargo.toml"))
            .find(|candidate| candidate.is_file())
            .ok_or_else(|| {
                anyhow::Error::from(CliError::config(format!(
                    "no `Cargo.toml` found in `{}` or any parent directory",
                    start.display()
                )))
            })
    }
}

/// Loads the workspace model. `cargo metadata` runs only when a manifest, the lockfile, a cargo
/// config, a toolchain file, the member set or the relevant environment changed since the last
/// validated load (see [`fast`]); otherwise its cached JSON is used and the task graph, already
/// validated for that exact model, is not validated again.
pub fn load_workspace(location: &Location) -> anyhow::Result<xtask_model::Workspace> {
    load(location, false)
}

/// [`load_workspace`] for a run, which detects the toolchain next: its `rustc -vV` (or the check
/// of its record) runs beside the load (see [`fast::prefetch_rustc_version`]).
pub(crate) fn load_workspace_to_plan(
    location: &Location,
) -> anyhow::Result<xtask_model::Workspace> {
    load(location, true)
}

/// `for_run`: the load of a run, which detects the toolchain beside it and may take `cargo
/// metadata`'s result from the remote cache ([`shared_metadata`]).
fn load(location: &Location, for_run: bool) -> anyhow::Result<xtask_model::Workspace> {
    let manifest = location.manifest_path()?;
    let manifest = std::fs::canonicalize(&manifest).unwrap_or(manifest);
    let root_text = std::fs::read_to_string(&manifest).ok();
    let fast = root_text
        .as_deref()
        .and_then(|text| fast::cache_dir_of_root_manifest(&manifest, text))
        .map(|dir| fast::FastPaths::shared(&dir));
    let fast = fast.as_deref();
    std::thread::scope(|scope| {
        // Beside the metadata record's checks, or `cargo metadata` when they fail.
        if for_run && let (Some(fast), Some(root)) = (fast, manifest.parent()) {
            scope.spawn(move || fast::prefetch_rustc_version(fast, root));
        }
        if let (Some(fast), Some(text)) = (fast, &root_text)
            && let Some(metadata) = fast::cached_metadata(fast, &manifest, text)
            && let Ok(workspace) = xtask_model::Workspace::from_metadata(&metadata)
        {
            fast.metadata_from_record
                .store(true, std::sync::atomic::Ordering::Relaxed);
            // Not saved here: a run saves the stat cache after hashing its inputs (one write
            // and `fsync` less before the hashing starts, when the manifests had to be hashed
            // again); a command that plans nothing only loses the speed-up of its next run.
            return Ok(workspace);
        }
        load_with_cargo(&manifest, root_text.as_deref(), fast, for_run)
    })
}

/// The slow path of [`load_workspace`]: `cargo metadata` (or, for a run, its record shared
/// through the remote cache, see [`shared_metadata`]), and the record of its result.
fn load_with_cargo(
    manifest: &Path,
    root_text: Option<&str>,
    fast: Option<&fast::FastPaths>,
    for_run: bool,
) -> anyhow::Result<xtask_model::Workspace> {
    let (Some(fast), Some(text)) = (fast, root_text) else {
        return workspace_of_metadata(
            &xtask_model::load_metadata(manifest).map_err(CliError::from)?,
        );
    };
    fast.metadata_from_record
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let remote = for_run
        .then(|| shared_metadata::remote_cache(manifest, text))
        .flatten();
    // The key's digests before cargo runs; `cargo -V` beside them when a remote may share.
    let (key, cargo) = std::thread::scope(|scope| {
        let cargo = remote
            .is_some()
            .then(|| scope.spawn(shared_metadata::cargo_identity));
        let key = fast::metadata_key_before_run(fast, manifest, text);
        (key, cargo.and_then(|thread| thread.join().ok()).flatten())
    });
    let shared = remote
        .zip(cargo)
        .map(|(remote, cargo)| SharedMetadata::new(remote, manifest, &key, &cargo));
    if let Some(shared) = &shared
        && let Some(workspace) = load_shared(shared, fast, manifest, text, &key)
    {
        return Ok(workspace);
    }
    let metadata = xtask_model::load_metadata(manifest).map_err(CliError::from)?;
    let workspace = workspace_of_metadata(&metadata)?;
    let members = workspace
        .packages
        .iter()
        .map(|p| p.dir.join("Cargo.toml"))
        .collect();
    if let Some(shared) = &shared {
        shared.store(fast, manifest, &key, &metadata, &members);
    }
    // A failed write only loses the speed-up.
    let _ = fast::store_metadata(fast, manifest, &key, &metadata, &members);
    let _ = fast.save();
    Ok(workspace)
}

/// The model of `cargo metadata` JSON, its task graph validated.
fn workspace_of_metadata(metadata: &str) -> anyhow::Result<xtask_model::Workspace> {
    let workspace = xtask_model::Workspace::from_metadata(metadata).map_err(CliError::from)?;
    // A task cycle anywhere is a configuration error for every command.
    xtask_graph::TaskGraph::validate(&workspace).map_err(CliError::from)?;
    Ok(workspace)
}

/// The workspace from the record the remote cache shares for `key`, kept as the local record
/// too. `None` (cargo runs) when there is none, or it does not make a valid model.
fn load_shared(
    shared: &SharedMetadata,
    fast: &fast::FastPaths,
    manifest: &Path,
    root_text: &str,
    key: &fast::MetadataKey,
) -> Option<xtask_model::Workspace> {
    let (record, metadata) = shared.fetch(manifest, root_text, key)?;
    let workspace = workspace_of_metadata(&metadata).ok()?;
    let kept = fast::write_metadata_record(fast, &record).unwrap_or(false);
    // Only a record on disk can vouch for the model later (the run-level record's facts).
    fast.metadata_from_record
        .store(kept, std::sync::atomic::Ordering::Relaxed);
    Some(workspace)
}

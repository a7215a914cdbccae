//! Cargo's intermediate units in the cache, so that a fresh target directory (a CI machine
//! with a warm remote cache) compiles only what changed, not every dependency of it.
//!
//! A task entry holds the files cargo leaves for users (`debug/app`), never cargo's own state;
//! in an empty `target/`, one changed crate made cargo compile its whole dependency closure,
//! every crates.io crate included. Two kinds of extra entries, both ordinary cache entries
//! (atomic, digest-checked, imported from and uploaded to the remote cache like any other):
//!
//! - the **registry layer** of a cargo call (`build` or `test`): the units (`deps/*-H*`,
//!   `build/*-H/`, `.fingerprint/*-H/` for cargo's metadata hash `H`) of every crates.io
//!   package it used, under [`LayerKey`]: the whole `Cargo.lock`, `rustc -vV`, profile, target
//!   and `RUSTFLAGS` (the planned toolchain key), the unified features of the selection, the
//!   cargo env vars and configuration files of every task of the call, and the absolute
//!   workspace root, target directory and `$CARGO_HOME` (build script outputs, dep-info files
//!   and rustc's debug info hold absolute paths). The env vars rustc was seen to read for them
//!   (`# env-dep:`) are observed inputs of the entry;
//! - the **package units** of a workspace package's cargo task, stored only together with its
//!   task entry (so never after an input changed during the run), under that task's hash and
//!   the registry layer's key. They are restored only for tasks that were hits in this run:
//!   a changed crate is a miss, and so is everything that builds against it (their keys hold
//!   its source fingerprint), so its units are never restored.
//!
//! An entry whose units are all in the target dir already is not extracted at all (its file
//! list says so). Otherwise restores go to a staging directory inside the target dir, then each
//! unit whose
//! `.fingerprint/<name>-H` is absent from the target dir is moved into place (fingerprints
//! last) with every file's modification time set to the run's start, which was taken before
//! any input was hashed: every file a hit's key was computed from is at most that old (or its
//! edit is newer, and cargo rebuilds it), and every edit after hashing is newer, so cargo's
//! mtime comparison accepts exactly the units whose inputs the keys describe. Units already
//! present are left to cargo and to `freshness`. A missing, corrupt or unusable entry is a
//! miss (cargo builds the units); the layers never fail a run.
//!
//! Off with `XTASK_UNIT_LAYERS=0`, `--no-cache` and `--force`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use anyhow::Context;
use serde::Serialize;
use xtask_cache::{AllowedOutputs, EntryMeta, OutputFile, OutputRoot, RestoreRoots};
use xtask_model::{CargoTask, PackageIndex, TaskKind};

use super::cache::{Cache, ObservedCheck};
use super::context::Run;
use crate::observe::{Exclusions, Observation, RunStart, digest_observation};
use crate::units::{Unit, UnitsSeen, group_by_unit, metadata_hash, unit_files};

/// The environment variable that turns the layers off (`0`).
pub const UNIT_LAYERS_ENV: &str = "XTASK_UNIT_LAYERS";

const LAYER_SCHEMA: u32 = 1;

/// The package name a registry layer's upload records its last run under.
pub(crate) const REGISTRY_UPLOAD_NAME: &str = "(registry units)";
/// Appended to the task name a package units upload records its last run under.
pub(crate) const UNITS_UPLOAD_SUFFIX: &str = " units";

/// Whether the layers are used in this run.
pub(crate) fn enabled(run: &Run<'_>) -> bool {
    !run.options.no_cache
        && !run.options.force
        && std::env::var(UNIT_LAYERS_ENV).map_or(true, |v| v != "0")
}

/// What a registry layer's entry is keyed by (see the module docs). Serialized canonically
/// (sorted maps) and hashed.
#[derive(Debug, Serialize)]
struct LayerKey<'a> {
    layer: &'static str,
    schema: u32,
    tool_version: &'static str,
    task: &'static str,
    command: Vec<String>,
    /// Every distinct toolchain key of the call's tasks (rustc, target, profile, features).
    toolchains: BTreeSet<String>,
    global_inputs: BTreeMap<&'a str, &'a str>,
    env: BTreeMap<&'a str, Option<&'a str>>,
    lockfile: String,
    workspace_root: &'a Path,
    target_dir: &'a Path,
    cargo_home: Option<PathBuf>,
}

/// The hash of `task`'s registry layer in this run, with its key as JSON; `None` when the
/// call has no cargo task. Computed on first use (before the cargo call: `restore_before_call`)
/// and kept for the run, so the key describes what cargo was asked to build.
pub(crate) fn registry_layer(
    run: &Run<'_>,
    task: CargoTask,
) -> Option<(String, serde_json::Value)> {
    let mut layers = run
        .registry_layers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    layers
        .entry(task)
        .or_insert_with(|| layer_key(run, task))
        .clone()
}

fn layer_key(run: &Run<'_>, task: CargoTask) -> Option<(String, serde_json::Value)> {
    let nodes: Vec<usize> = (0..run.graph.nodes.len())
        .filter(|&n| matches!(run.graph.nodes[n].def.kind, TaskKind::Cargo(t) if t == task))
        .collect();
    if nodes.is_empty() {
        return None;
    }
    let mut key = LayerKey {
        layer: "registry",
        schema: LAYER_SCHEMA,
        tool_version: crate::plan::TOOL_VERSION,
        task: task.name(),
        command: run.settings.command(task),
        toolchains: BTreeSet::new(),
        global_inputs: BTreeMap::new(),
        env: BTreeMap::new(),
        lockfile: lockfile_digest(&run.workspace.root),
        workspace_root: &run.workspace.root,
        target_dir: &run.workspace.target_dir,
        cargo_home: crate::fast::cargo_home(),
    };
    for &node in &nodes {
        let planned = &run.planned[node].key;
        key.toolchains
            .insert(serde_json::to_string(&planned.toolchain).unwrap_or_default());
        for (path, digest) in &planned.global_inputs {
            key.global_inputs.insert(path, digest);
        }
        for (name, digest) in &planned.env {
            key.env.insert(name, digest.as_deref());
        }
    }
    let value = serde_json::to_value(&key).ok()?;
    let hash = xtask_util::sha256_hex(value.to_string().as_bytes());
    Some((hash, value))
}

/// `sha256` of the workspace's `Cargo.lock` (`missing` without one).
fn lockfile_digest(root: &Path) -> String {
    xtask_util::sha256_file(&root.join("Cargo.lock"))
        .map_or_else(|_| "missing".to_string(), |(digest, _)| digest)
}

/// The hash of the package units of the task whose hash is `task_hash`, in a call whose
/// registry layer is `registry`.
fn package_units_hash(registry: &str, task_hash: &str) -> String {
    xtask_util::sha256_hex(
        format!("xtask-package-units-v{LAYER_SCHEMA}\0{registry}\0{task_hash}").as_bytes(),
    )
}

/// Where a restore may write: everything, but only into a staging directory (see
/// [`restore_entry`]).
fn staging_allowed() -> AllowedOutputs {
    AllowedOutputs::directory(OutputRoot::Target, "")
}

/// Before `task`'s cargo call: restores its registry layer and the package units of the
/// `hits` among the call's tasks into the target dir (units it already has are left alone).
/// Returns how many units were placed; warnings go to the reporter.
pub(crate) fn restore_before_call(
    run: &Run<'_>,
    cache: &Cache,
    task: CargoTask,
    hits: &HashSet<usize>,
) -> usize {
    if !enabled(run) || !matches!(task, CargoTask::Build | CargoTask::Test) {
        return 0;
    }
    let Some((registry, _)) = registry_layer(run, task) else {
        return 0;
    };
    let mut wanted: Vec<(String, String)> =
        vec![(registry.clone(), format!("{} registry units", task.name()))];
    for &node in hits {
        if matches!(run.graph.nodes[node].def.kind, TaskKind::Cargo(t) if t == task) {
            wanted.push((
                package_units_hash(&registry, &run.planned[node].hash),
                format!("{} units", run.label(node)),
            ));
        }
    }
    let found: Vec<(EntryMeta, &String)> = lookup(run, cache, &wanted)
        .into_iter()
        .zip(&wanted)
        .filter_map(|(meta, (_, label))| Some((meta?, label)))
        .collect();
    // Each entry holds other units, so they are placed side by side.
    let restored = xtask_util::parallel_map(&found, run.options.jobs.max(2), |(meta, _)| {
        restore_entry(cache, meta, &run.workspace.target_dir, run.started_at)
    });
    let mut placed = 0;
    for ((meta, label), result) in found.iter().zip(restored) {
        match result {
            Ok(n) => placed += n,
            Err(error) => {
                run.reporter.warning(&format!(
                    "{label}: cache entry unusable, cargo builds them: {error:#}"
                ));
                if let Ok(mut unusable) = cache.unusable_units.lock() {
                    unusable.insert(meta.task_hash.clone());
                }
            }
        }
    }
    placed
}

/// The usable entry of each wanted (hash, label): local, else remote (imported), kept only
/// while its observed inputs hold.
fn lookup(run: &Run<'_>, cache: &Cache, wanted: &[(String, String)]) -> Vec<Option<EntryMeta>> {
    let mut found: Vec<Option<EntryMeta>> = wanted
        .iter()
        .map(|(hash, label)| match cache.local.lookup(hash) {
            Ok(meta) => meta,
            Err(error) => {
                run.reporter.warning(&format!(
                    "{label}: cache entry unusable, cargo builds them: {error}"
                ));
                if let Ok(mut unusable) = cache.unusable_units.lock() {
                    unusable.insert(hash.clone());
                }
                None
            }
        })
        .collect();
    if let Some(remote) = &cache.remote {
        let misses: Vec<usize> = (0..wanted.len()).filter(|&i| found[i].is_none()).collect();
        let requests: Vec<(&str, AllowedOutputs)> = misses
            .iter()
            .map(|&i| (wanted[i].0.as_str(), staging_allowed()))
            .collect();
        if !requests.is_empty() {
            for (i, meta) in
                crate::remote::fetch_misses(remote, &cache.local, &requests, run.reporter)
            {
                found[misses[i]] = Some(meta);
            }
        }
    }
    let check = ObservedCheck::default();
    for (slot, (_, label)) in found.iter_mut().zip(wanted) {
        if let Some(meta) = slot
            && let Some(change) = check.first_change(&run.workspace.root, meta)
        {
            run.reporter
                .line(&format!("{label}: cache entry not used: {change}"));
            *slot = None;
        }
    }
    found
}

static STAGING: AtomicUsize = AtomicUsize::new(0);

/// Restores `meta` into a staging directory of `target_dir`, then moves each complete unit
/// the target dir lacks into place with modification time `mtime`. Returns how many units
/// were placed.
fn restore_entry(
    cache: &Cache,
    meta: &EntryMeta,
    target_dir: &Path,
    mtime: SystemTime,
) -> anyhow::Result<usize> {
    // A warm target dir holds every unit already: extracting the archive only to throw it
    // away cost 15 s per cargo call on coreutils (a registry layer of hundreds of MB).
    if missing_units(meta.outputs.iter().map(|o| o.path.as_str()), target_dir) == 0 {
        return Ok(0);
    }
    let staging = target_dir.join("xtask").join("units-staging").join(format!(
        "{}-{}",
        std::process::id(),
        STAGING.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)
        .with_context(|| format!("failed to create `{}`", staging.display()))?;
    let placed = restore_staged(cache, meta, &staging, target_dir, mtime);
    let _ = std::fs::remove_dir_all(&staging);
    placed
}

/// How many units of an entry's files `paths` (those with a fingerprint, the only ones placed)
/// the target dir lacks, from the entry's list of files: nothing is extracted to know.
fn missing_units<'a>(paths: impl IntoIterator<Item = &'a str>, target_dir: &Path) -> usize {
    group_by_unit(paths)
        .into_iter()
        .filter(|((profile, _), files)| {
            files.fingerprint_dir.as_ref().is_some_and(|dir| {
                !target_dir
                    .join(profile)
                    .join(".fingerprint")
                    .join(dir)
                    .exists()
            })
        })
        .count()
}

fn restore_staged(
    cache: &Cache,
    meta: &EntryMeta,
    staging: &Path,
    target_dir: &Path,
    mtime: SystemTime,
) -> anyhow::Result<usize> {
    let roots = RestoreRoots {
        workspace: staging.to_path_buf(),
        target: staging.to_path_buf(),
        keep: Vec::new(),
    };
    cache
        .local
        .restore_with(meta, &roots, &staging_allowed(), &|_| None)?;
    let units = group_by_unit(meta.outputs.iter().map(|o| o.path.as_str()));
    let mut placed = 0;
    for ((profile, _), files) in units {
        let Some(dir) = &files.fingerprint_dir else {
            continue; // cargo would not trust a unit without its fingerprint anyway
        };
        if target_dir
            .join(&profile)
            .join(".fingerprint")
            .join(dir)
            .exists()
        {
            continue;
        }
        // Fingerprints last: until they are in place, cargo rebuilds the unit.
        for relative in files.other.iter().chain(&files.fingerprint) {
            let from = staging.join(relative);
            let to = target_dir.join(relative);
            set_mtime(&from, mtime)?;
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("failed to create `{}`", parent.display()))?;
            }
            std::fs::rename(&from, &to)
                .with_context(|| format!("failed to move `{}` into place", to.display()))?;
        }
        placed += 1;
    }
    Ok(placed)
}

fn set_mtime(path: &Path, mtime: SystemTime) -> anyhow::Result<()> {
    let metadata = std::fs::symlink_metadata(path)
        .with_context(|| format!("failed to read `{}`", path.display()))?;
    if metadata.is_file() {
        std::fs::File::open(path)
            .and_then(|file| file.set_modified(mtime))
            .with_context(|| {
                format!(
                    "failed to set the modification time of `{}`",
                    path.display()
                )
            })?;
    }
    Ok(())
}

/// The units of workspace package `package` in this call: those its JSON messages named,
/// and its bins' (found in `.fingerprint/<name>-H/bin-<bin>`), minus any unit of a registry
/// package of the same name.
fn package_units(run: &Run<'_>, seen: &UnitsSeen, package: PackageIndex) -> BTreeSet<Unit> {
    let mut units = seen.workspace.get(&package).cloned().unwrap_or_default();
    let name = &run.workspace.packages[package].name;
    let profiles: BTreeSet<PathBuf> = seen
        .workspace
        .values()
        .flatten()
        .chain(&seen.registry)
        .map(|u| u.profile_dir.clone())
        .collect();
    for bin in seen.bins.get(&package).into_iter().flatten() {
        for profile in &profiles {
            let Ok(entries) = std::fs::read_dir(profile.join(".fingerprint")) else {
                continue;
            };
            for entry in entries.flatten() {
                let dir = entry.file_name();
                let Some(dir) = dir.to_str() else { continue };
                let Some((prefix, _)) = dir.rsplit_once('-') else {
                    continue;
                };
                if prefix != name || !entry.path().join(format!("bin-{bin}")).is_file() {
                    continue;
                }
                if let Some(hash) = metadata_hash(dir) {
                    let unit = Unit {
                        profile_dir: profile.clone(),
                        hash,
                    };
                    if !seen.registry.contains(&unit) {
                        units.insert(unit);
                    }
                }
            }
        }
    }
    units
}

/// Stores `task`'s registry layer after a complete call, unless it is stored already.
/// Returns the stored entry (for upload).
pub(crate) fn store_registry_layer(
    run: &Run<'_>,
    cache: &Cache,
    task: CargoTask,
    seen: &UnitsSeen,
) -> Option<EntryMeta> {
    if !enabled(run) || !seen.complete || seen.registry.is_empty() {
        return None;
    }
    let (hash, key) = registry_layer(run, task)?;
    let unusable = cache
        .unusable_units
        .lock()
        .is_ok_and(|unusable| unusable.contains(&hash));
    if !unusable && cache.local.lookup(&hash).ok().flatten().is_some() {
        return None;
    }
    // Cargo.lock changed during the call: cargo built other crates than the key says.
    if key["lockfile"].as_str() != Some(lockfile_digest(&run.workspace.root).as_str()) {
        run.reporter
            .warning("registry units not cached: `Cargo.lock` changed while cargo ran");
        return None;
    }
    let files = unit_files(&seen.registry);
    let observed = registry_observed(run, &files);
    let manifest = observed.add_to_manifest(key);
    store(
        run,
        cache,
        &hash,
        manifest,
        &files,
        &format!("{} registry units", task.name()),
    )
}

/// The env vars rustc read for the registry units (their `# env-dep:` lines), digested.
fn registry_observed(run: &Run<'_>, files: &[PathBuf]) -> xtask_hash::ObservedInputs {
    let mut observation = Observation::default();
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "d"))
    {
        crate::observe::read_dep_info(file, &run.workspace.root, &mut observation);
    }
    observation.files.clear();
    let (observed, _) = digest_observation(
        &run.workspace.root,
        &observation,
        &Exclusions::new(&run.workspace.target_dir),
        RunStart(SystemTime::now()),
    );
    observed
}

/// Stores the units of the package of `node` (a cargo task of this call whose own entry was
/// just stored). Returns the stored entry (for upload).
pub(crate) fn store_package_units(
    run: &Run<'_>,
    cache: &Cache,
    node: usize,
    seen: &UnitsSeen,
) -> Option<EntryMeta> {
    let TaskKind::Cargo(task) = run.graph.nodes[node].def.kind else {
        return None;
    };
    if !enabled(run) || !matches!(task, CargoTask::Build | CargoTask::Test) {
        return None;
    }
    let (registry, _) = registry_layer(run, task)?;
    let package = run.graph.nodes[node].package;
    let units = package_units(run, seen, package);
    if units.is_empty() {
        return None;
    }
    let hash = package_units_hash(&registry, &run.planned[node].hash);
    let manifest = serde_json::json!({
        "layer": "package",
        "schema": LAYER_SCHEMA,
        "registry_layer": registry,
        "task_hash": run.planned[node].hash,
    });
    let files = unit_files(&units);
    store(
        run,
        cache,
        &hash,
        manifest,
        &files,
        &format!("{} units", run.label(node)),
    )
}

fn store(
    run: &Run<'_>,
    cache: &Cache,
    hash: &str,
    manifest: serde_json::Value,
    files: &[PathBuf],
    label: &str,
) -> Option<EntryMeta> {
    let target_dir = &run.workspace.target_dir;
    let outputs: Vec<OutputFile> = files
        .iter()
        .filter_map(|file| {
            let relative = file.strip_prefix(target_dir).ok()?;
            let relative = relative.to_str()?.replace('\\', "/");
            Some(OutputFile {
                root: OutputRoot::Target,
                relative_path: relative,
                absolute_path: file.clone(),
            })
        })
        .collect();
    let entry = xtask_cache::NewEntry {
        task_hash: hash,
        manifest,
        outputs,
        log: b"",
        duration_ms: 0,
        exit_code: 0,
    };
    match cache.local.store(entry) {
        Ok(meta) => Some(meta),
        Err(error) => {
            run.reporter
                .warning(&format!("{label}: not cached: {error}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warm_target_dir_misses_no_unit_and_a_fresh_one_misses_each() {
        let target = tempfile::tempdir().unwrap();
        let paths = [
            "debug/deps/liba-0123456789abcdef.rlib",
            "debug/.fingerprint/a-0123456789abcdef/lib-a",
            "debug/deps/libb-fedcba9876543210.rlib",
            "debug/.fingerprint/b-fedcba9876543210/lib-b",
            // Without a fingerprint cargo would not trust it: never placed, never missing.
            "debug/deps/libc-00000000000000aa.rlib",
        ];
        assert_eq!(missing_units(paths, target.path()), 2);
        std::fs::create_dir_all(target.path().join("debug/.fingerprint/a-0123456789abcdef"))
            .unwrap();
        assert_eq!(missing_units(paths, target.path()), 1);
        std::fs::create_dir_all(target.path().join("debug/.fingerprint/b-fedcba9876543210"))
            .unwrap();
        assert_eq!(missing_units(paths, target.path()), 0);
    }
}

//! The run-level record of a fully cached run (`<cache>/v1/fast/run-<key>.json`): when the
//! same command, in the same environment, with the same binary, finds every fact the last
//! fully cached run depended on unchanged, it reports that run's hits again without loading
//! the model, hashing a key or parsing an entry. One pass of `lstat`s, on every core.
//!
//! What the record is keyed by (another key is another record): the record's version, the
//! tool's version, the running executable's path and `lstat`, the workspace's root manifest,
//! the current directory, the command's options (`RunOptions`) and every environment
//! variable.
//!
//! What it holds (see `crate::facts` for how each is checked and why that is sound): the
//! metadata record and every file of its key, the targets cargo discovers and the member
//! globs' directories; each input listing's watched directories and ignore files and each
//! listed file; the global inputs and `Cargo.lock`; each task's entry, non-empty log blob,
//! last-run record (this hash first) and outputs. A task whose outputs are not in place
//! (deleted, edited) is restored from its entry as a hit would be (archive verified, paths
//! checked against its declared `outputs`), then reported as a hit.
//!
//! Written only after a run in which every task was a local hit (none forced, no remote
//! cache, no observed inputs, no dry run, summary, profile, `--affected` or shard), and only
//! while every fact is strictly older than the file system's clock read before that run
//! read anything. Only custom tasks take part: a cargo task's key also depends on the
//! toolchain, cargo configuration files and observed inputs, which this record does not
//! hold (a graph with a cargo task is never recorded). A replay refuses a record once an
//! entry is due for its LRU refresh, so eviction sees the same times as without it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use xtask_cache::{
    AllowedOutputs, CacheOptions, EntryMeta, LRU_REFRESH_AFTER, LocalCache, OutputRoot,
    RestoreRoots, is_empty_blob,
};
use xtask_hash::ObservedInputs;
use xtask_model::{TaskKind, TaskName};
use xtask_util::{parallel_map, sha256_hex, try_parallel_map, write_atomically};

use super::cache::{Cache, Hit, restore_threads, running_tool_binary};
use super::context::Run;
use super::options::RunOptions;
use crate::facts::{CheckedFacts, FileFact, Stat};
use crate::fast::FastPaths;
use crate::report::{FinishedTask, Reporter, RunTotals, TaskStatus};

const VERSION: u32 = 1;

/// Where a run's record is and what it is keyed by.
pub(crate) struct Recording {
    /// The file system's clock before the run read anything.
    clock_ns: i128,
    manifest: PathBuf,
    root_text: String,
    key: String,
    path: PathBuf,
}

/// What [`start`] did.
pub(crate) enum Start {
    /// The last fully cached run still holds: it was reported again.
    Replayed,
    /// Run as usual; record the run if it is fully cached.
    Record(Recording),
    /// Run as usual, with no record.
    Plain,
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    version: u32,
    key: String,
    workspace_root: PathBuf,
    target_dir: PathBuf,
    facts: CheckedFacts,
    /// In the order the recorded run reported them.
    tasks: Vec<TaskFact>,
}

#[derive(Debug, Serialize, Deserialize)]
struct TaskFact {
    label: String,
    hash: String,
    duration_ms: u64,
    /// The entry's LRU time (its mtime).
    entry_mtime_ns: i128,
    log: String,
    /// Where a restore may write: the package directory (workspace-relative) and `outputs`.
    package_dir: String,
    output_globs: Vec<String>,
    outputs: Vec<FileFact>,
}

/// Replays the last fully cached run of this command when it still holds; otherwise says
/// whether to record this one (taking the file system's clock first).
pub(crate) fn start(options: &RunOptions, reporter: &Reporter) -> Start {
    let started = Instant::now();
    let eligible = options.dry_run.is_none()
        && options.summarize.is_none()
        && options.profile.is_none()
        && options.affected.is_none()
        && options.shard.is_none()
        && !options.force
        && !options.no_cache
        // A cargo task is never recorded (see the module doc): the built-in commands need
        // neither the record's lookup nor its clock write on their all-cached runs.
        && options.tasks.iter().all(|task| task.cargo_task().is_none());
    if !eligible {
        return Start::Plain;
    }
    let Some((recording, cache_dir)) = locate(options) else {
        return Start::Plain;
    };
    if replay(&recording, &cache_dir, reporter, started).is_some() {
        return Start::Replayed;
    }
    let fast_dir = cache_dir.join("v1").join("fast");
    if !cache_dir.join("v1").is_dir() || std::fs::create_dir_all(&fast_dir).is_err() {
        return Start::Plain;
    }
    match xtask_hash::file_system_clock(&fast_dir.join("run-clock")) {
        Some(clock_ns) => Start::Record(Recording {
            clock_ns,
            ..recording
        }),
        None => Start::Plain,
    }
}

/// The record's key and path (see the module doc), and the cache directory.
fn locate(options: &RunOptions) -> Option<(Recording, PathBuf)> {
    let manifest = options.location.manifest_path().ok()?;
    let manifest = std::fs::canonicalize(&manifest).unwrap_or(manifest);
    let root_text = std::fs::read_to_string(&manifest).ok()?;
    let cache_dir = crate::fast::cache_dir_of_root_manifest(&manifest, &root_text)?;
    let exe = std::env::current_exe().ok()?;
    let exe_stat = Stat::of(&exe).ok()?;
    let mut env: Vec<(std::ffi::OsString, std::ffi::OsString)> = std::env::vars_os().collect();
    env.sort();
    let key_text = format!(
        "{VERSION}\0{}\0{}\0{exe_stat:?}\0{}\0{:?}\0{options:?}\0{env:?}",
        crate::plan::TOOL_VERSION,
        exe.display(),
        manifest.display(),
        std::env::current_dir().ok(),
    );
    let key = sha256_hex(key_text.as_bytes());
    let path = cache_dir
        .join("v1")
        .join("fast")
        .join(format!("run-{}.json", &key[..16]));
    Some((
        Recording {
            clock_ns: 0,
            manifest,
            root_text,
            key,
            path,
        },
        cache_dir,
    ))
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn replay(
    recording: &Recording,
    cache_dir: &Path,
    reporter: &Reporter,
    started: Instant,
) -> Option<()> {
    let bytes = std::fs::read(&recording.path).ok()?;
    let record: Record = serde_json::from_slice(&bytes).ok()?;
    if record.version != VERSION || record.key != recording.key {
        return None;
    }
    let due = now_ns() - LRU_REFRESH_AFTER.as_nanos() as i128;
    if record.tasks.iter().any(|task| task.entry_mtime_ns < due) {
        return None;
    }
    let threads = cores();
    let root = record.workspace_root.as_path();
    try_parallel_map(&record.facts.files, threads, |fact| {
        fact.holds(root).then_some(()).ok_or(())
    })
    .ok()?;
    try_parallel_map(&record.facts.dirs, threads, |fact| {
        fact.holds(root).then_some(()).ok_or(())
    })
    .ok()?;
    try_parallel_map(&record.facts.missing, threads, |fact| {
        fact.holds(root).then_some(()).ok_or(())
    })
    .ok()?;
    let in_place = parallel_map(&record.tasks, threads, |task| {
        task.outputs.iter().all(|output| output.holds(root))
    });
    let cache = LocalCache::new(cache_dir.to_path_buf(), CacheOptions::default());
    let roots = RestoreRoots {
        workspace: record.workspace_root.clone(),
        target: record.target_dir.clone(),
        keep: running_tool_binary(&record.target_dir),
    };
    let to_restore: Vec<(usize, &TaskFact)> = record
        .tasks
        .iter()
        .enumerate()
        .filter(|(index, _)| !in_place[*index])
        .collect();
    let restored = try_parallel_map(&to_restore, restore_threads(threads), |(index, task)| {
        let restore_started = Instant::now();
        restore_task(&cache, &roots, task).ok_or(())?;
        Ok::<_, ()>((*index, restore_started.elapsed()))
    })
    .ok()?;
    let mut durations = vec![Duration::ZERO; record.tasks.len()];
    for (index, took) in restored {
        durations[index] = took;
    }
    report(&record, &durations, reporter, started);
    Some(())
}

/// Reports every task of `record` as a hit (`durations`: each one's restore) and the totals.
fn report(record: &Record, durations: &[Duration], reporter: &Reporter, started: Instant) {
    let lines: Vec<FinishedTask<'_>> = record
        .tasks
        .iter()
        .zip(durations)
        .map(|(task, duration)| FinishedTask {
            label: &task.label,
            status: TaskStatus::Hit,
            hash: &task.hash,
            duration: *duration,
            log: task.log.as_bytes(),
        })
        .collect();
    reporter.start(lines.len());
    reporter.tasks_finished(&lines);
    let totals = RunTotals {
        tasks: record.tasks.len(),
        hits: record.tasks.len(),
        saved: record
            .tasks
            .iter()
            .map(|task| Duration::from_millis(task.duration_ms))
            .sum(),
        elapsed: started.elapsed(),
        ..RunTotals::default()
    };
    reporter.finish(&totals);
}

/// Restores a task whose outputs are not all in place, as the lookup and restore stages do:
/// the entry (its file unchanged since the record) read again, its archive verified, every
/// path checked against the task's declared outputs.
fn restore_task(cache: &LocalCache, roots: &RestoreRoots, task: &TaskFact) -> Option<()> {
    let meta = cache.lookup(&task.hash).ok()??;
    let allowed = AllowedOutputs::package_globs(&task.package_dir, &task.output_globs).ok()?;
    cache.restore(&meta, roots, &allowed).ok()?;
    Some(())
}

/// Writes the record of `run` when every task was a local hit and every fact holds still
/// (see the module doc). A failure only loses the speed-up of the next run.
pub(crate) fn finish(
    recording: &Recording,
    run: &Run<'_>,
    cache: &Cache,
    hits: &[Hit],
    totals: &RunTotals,
) {
    let complete = totals.hits == run.graph.nodes.len()
        && hits.len() == totals.hits
        && totals.succeeded == 0
        && totals.failed == 0
        && totals.skipped == 0;
    if !complete
        || cache.remote.is_some()
        || !run.fast.writable()
        || !hits.iter().all(|hit| replayable(run, hit))
    {
        return;
    }
    let _ = write_record(recording, run, cache, hits);
}

fn write_record(
    recording: &Recording,
    run: &Run<'_>,
    cache: &Cache,
    hits: &[Hit],
) -> Result<(), String> {
    let mut facts = crate::facts::Facts::default();
    facts.file(&recording.manifest);
    crate::fast::metadata_facts(
        &run.fast,
        &recording.manifest,
        &recording.root_text,
        &mut facts,
    );
    listing_facts(&run.fast, &mut facts)?;
    global_input_facts(run, &mut facts)?;
    let lockfile = run.workspace.root.join("Cargo.lock");
    if lockfile.exists() {
        facts.file(&lockfile);
    } else {
        facts.absent(&lockfile);
    }
    let mut tasks = Vec::with_capacity(hits.len());
    let mut output_paths = Vec::with_capacity(hits.len());
    for hit in hits {
        let (task, outputs) = task_fact(run, cache, hit, &mut facts)?;
        tasks.push(task);
        output_paths.push(outputs);
    }
    let checked = facts.check(recording.clock_ns)?;
    for (task, outputs) in tasks.iter_mut().zip(output_paths) {
        let mut output_facts = Vec::with_capacity(outputs.len());
        for path in outputs {
            let stat = Stat::of(&path).map_err(|error| error.to_string())?;
            // As for every fact: unchanged since before the run verified it in place.
            if !stat.older_than(recording.clock_ns) {
                return Err(format!("`{}` changed during the run", path.display()));
            }
            let relative = path.strip_prefix(&run.workspace.root).unwrap_or(&path);
            output_facts.push(FileFact(relative.to_path_buf(), stat));
        }
        task.outputs = output_facts;
    }
    let record = Record {
        version: VERSION,
        key: recording.key.clone(),
        workspace_root: run.workspace.root.clone(),
        target_dir: run.workspace.target_dir.clone(),
        facts: checked.relative_to(&run.workspace.root),
        tasks,
    };
    let bytes = serde_json::to_vec(&record).map_err(|error| error.to_string())?;
    write_atomically(&recording.path, &bytes).map_err(|error| error.to_string())
}

/// Whether a hit can be replayed: a local hit of a cached custom task without observed
/// inputs. Checked for every hit before any fact is gathered, so a run that cannot be
/// recorded (every all-cached `build`) does no work for the record.
fn replayable(run: &Run<'_>, hit: &Hit) -> bool {
    let node = &run.graph.nodes[hit.node];
    !hit.remote
        && matches!(node.def.kind, TaskKind::Custom { .. })
        && node.def.cache
        && node.task != TaskName::TEST
        && ObservedInputs::from_manifest(&hit.meta.manifest).is_empty()
}

/// One hit's facts (entry, log, last-run record) and its outputs' paths (checked apart: an
/// output that changed is restored, not a reason to run the task).
fn task_fact(
    run: &Run<'_>,
    cache: &Cache,
    hit: &Hit,
    facts: &mut crate::facts::Facts,
) -> Result<(TaskFact, Vec<PathBuf>), String> {
    let node = &run.graph.nodes[hit.node];
    let package = &run.workspace.packages[node.package];
    let meta: &EntryMeta = &hit.meta;
    let entry = cache
        .local
        .entry_file(&meta.task_hash)
        .map_err(|error| error.to_string())?;
    facts.file(&entry);
    let entry_mtime_ns = Stat::of(&entry)
        .map_err(|error| error.to_string())?
        .mtime_ns();
    let log = if is_empty_blob(&meta.log) {
        String::new()
    } else {
        let blob = cache
            .local
            .blob_file(&meta.log)
            .ok_or("invalid log digest")?;
        facts.file(&blob);
        let bytes = cache
            .local
            .read_log(meta)
            .map_err(|error| error.to_string())?;
        String::from_utf8(bytes).map_err(|_| "a log that is not UTF-8")?
    };
    let last = cache
        .local
        .last_file(&package.name, &node.task)
        .map_err(|error| error.to_string())?;
    let last_text = std::fs::read_to_string(&last).map_err(|error| error.to_string())?;
    if last_text.lines().next() != Some(meta.task_hash.as_str()) {
        return Err("the last-run record names another run".into());
    }
    facts.file(&last);
    let package_dir = package
        .dir
        .strip_prefix(&run.workspace.root)
        .map_err(|_| "a package outside the workspace")?;
    let mut outputs = Vec::with_capacity(meta.outputs.len());
    for output in &meta.outputs {
        if output.root != OutputRoot::Workspace {
            return Err("an output under the target directory".into());
        }
        outputs.push(run.workspace.root.join(&output.path));
    }
    Ok((
        TaskFact {
            label: run.label(hit.node),
            hash: meta.task_hash.clone(),
            duration_ms: meta.duration_ms,
            entry_mtime_ns,
            log,
            package_dir: package_dir.to_string_lossy().replace('\\', "/"),
            output_globs: node.def.outputs.clone(),
            outputs: Vec::new(),
        },
        outputs,
    ))
}

/// The facts of every input listing this process used: the directories between the
/// workspace root and each package (only their ignore files and `.git` matter), each walked
/// directory (closed: the names the listing needs must stay, no new name may appear, a
/// directory no listed file is under may be gone) and each listed file.
fn listing_facts(fast: &FastPaths, facts: &mut crate::facts::Facts) -> Result<(), String> {
    const IGNORE_NAMES: [&str; 3] = [".git", ".gitignore", ".ignore"];
    let listings = fast
        .listing_cache()
        .used_listings()
        .ok_or("a listing was not recorded")?;
    for listing in listings {
        // Directory -> the names in it that lead to a listed file.
        let mut needed: std::collections::HashMap<PathBuf, Vec<String>> =
            std::collections::HashMap::new();
        for file in &listing.files {
            let path = listing.workspace_root.join(file);
            facts.link_or_file(&path);
            for below in path.ancestors() {
                let Some(dir) = below.parent() else { break };
                if !dir.starts_with(&listing.package_dir) {
                    break;
                }
                let name = below
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or("a non-UTF-8 path")?;
                needed
                    .entry(dir.to_path_buf())
                    .or_default()
                    .push(name.to_owned());
            }
        }
        for watched in &listing.watched {
            let is_dir = std::fs::symlink_metadata(watched).is_ok_and(|m| m.is_dir());
            if !is_dir {
                facts.file(watched);
                continue;
            }
            let present: Vec<&str> = IGNORE_NAMES
                .into_iter()
                .filter(|name| std::fs::symlink_metadata(watched.join(name)).is_ok())
                .collect();
            if watched != &listing.package_dir && listing.package_dir.starts_with(watched) {
                facts.dir(watched, true, &present, false);
                for name in IGNORE_NAMES {
                    if !present.contains(&name) {
                        facts.absent(&watched.join(name));
                    }
                }
                continue;
            }
            let mut names: Vec<&str> = present;
            let leads_to_files = needed.get(watched);
            if let Some(leading) = leads_to_files {
                names.extend(leading.iter().map(String::as_str));
            }
            let may_vanish = leads_to_files.is_none() && watched != &listing.package_dir;
            facts.dir(watched, false, &names, may_vanish);
        }
    }
    Ok(())
}

/// The global inputs' facts: each is a plain path (a glob would need its walk recorded, so
/// a workspace with one is never recorded), there or looked for.
fn global_input_facts(run: &Run<'_>, facts: &mut crate::facts::Facts) -> Result<(), String> {
    let globs = crate::plan::BUILTIN_GLOBAL_INPUTS
        .iter()
        .map(|s| s.to_string())
        .chain(run.workspace.config.global_inputs.iter().cloned());
    for glob in globs {
        if glob.starts_with('!') || glob.contains(['*', '?', '[', '{']) {
            return Err(format!("the global input `{glob}` is a glob"));
        }
        let path = run.workspace.root.join(&glob);
        match std::fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.is_file() || metadata.file_type().is_symlink() => {
                facts.link_or_file(&path)
            }
            Ok(_) => return Err(format!("the global input `{glob}` is a directory")),
            Err(_) => facts.absent(&path),
        }
    }
    Ok(())
}

//! `build | test | lint | fmt | run TASK` as a pipeline of named stages around one [`Run`]
//! context:
//!
//! 0. **replay** ([`unchanged`], `run_tasks` only): the last fully cached run of the same
//!    command, reported again when every fact it depended on still holds;
//! 1. **plan** ([`prepare`]): the workspace, the task graph, every task's key;
//! 2. **lookup** ([`cache::Cache`]): local entries, then remote ones (imported locally), each
//!    kept only while its observed inputs are unchanged; hits are restored in parallel;
//! 3. **schedule** ([`schedule::Scheduler`]): a pure state machine of what can start;
//! 4. **execute** ([`execute`]): one cargo batch or one custom task per piece of work;
//! 5. **record** ([`record::Recorder`]): store, upload, report, totals, and the summary
//!    (with `--summarize`, also the HTML report beside it; with `--profile`, a Chrome trace).

mod cache;
mod context;
mod execute;
mod layers;
mod options;
mod prepare;
mod record;
mod schedule;
mod shard;
mod unchanged;
mod unit_links;
mod why_ran;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use xtask_cache::RestoreRoots;
use xtask_model::{TaskKind, Workspace};

pub use cache::open_cache;
pub(crate) use cache::{Cache, ObservedCheck};
pub(crate) use prepare::{Prepared, prepare};

use crate::load::{load_workspace, load_workspace_to_plan};
use crate::outcome::{CliResult, Outcome};
use crate::remote::{Upload, Uploader};
use crate::report::{Reporter, RunTotals, TaskStatus};
use crate::summary::{DryRunFormat, FinishedRun, TaskRecord};
use cache::{Hit, Lookup, Wanted};
pub(crate) use context::Run;
use execute::Finished;
pub use options::{RunOptions, RunOutcome};
use record::{DigestedBatch, Recorder};
use schedule::{Node, Scheduler};
use xtask_util::parallel_map;

/// The `build`, `test`, `lint`, `fmt` and `run TASK` commands: exit code 1 when a task
/// failed or was skipped; a dry run goes to stdout.
pub fn run_tasks(options: &RunOptions, reporter: &Reporter) -> CliResult {
    let recording = match unchanged::start(options, reporter) {
        unchanged::Start::Replayed => return Ok(Outcome::passed(true)),
        unchanged::Start::Record(recording) => Some(recording),
        unchanged::Start::Plain => None,
    };
    let workspace = load_workspace_to_plan(&options.location)?;
    let outcome = run_recorded(workspace, options, reporter, recording.as_ref())?;
    Ok(Outcome::passed(outcome.success).with_stdout(outcome.dry_run.unwrap_or_default()))
}

pub fn run(options: &RunOptions, reporter: &Reporter) -> anyhow::Result<RunOutcome> {
    let workspace = load_workspace(&options.location)?;
    run_loaded(workspace, options, reporter)
}

/// [`run`] on a workspace the caller has already loaded (`options.location` is not read), so
/// a command that needs the model itself runs `cargo metadata` once.
pub fn run_loaded(
    workspace: Workspace,
    options: &RunOptions,
    reporter: &Reporter,
) -> anyhow::Result<RunOutcome> {
    run_recorded(workspace, options, reporter, None)
}

/// [`run_loaded`], writing the run-level record of a fully cached run when `recording`.
fn run_recorded(
    workspace: Workspace,
    options: &RunOptions,
    reporter: &Reporter,
    recording: Option<&unchanged::Recording>,
) -> anyhow::Result<RunOutcome> {
    let started = Instant::now();
    // Before any input is hashed: restored cargo units are dated to it (see `layers`).
    let started_at = std::time::SystemTime::now();
    let started_unix_ms = started_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    // 1. plan
    let prepared = prepare::prepare_loaded(workspace, options)?;
    let run = Run::new(&prepared, options, reporter, started_at)?;
    if let Some(format) = options.dry_run {
        return dry_run(&run, format);
    }
    let cache = Cache::open(run.workspace)?;
    reporter.start(run.graph.nodes.len());
    let plan_ms = started.elapsed().as_millis() as u64;
    // Declared before the recorder, which borrows them for the run's threads.
    let early = layers::EarlyRestore::default();
    let restored = std::sync::OnceLock::new();
    let mut recorder = Recorder::new(&run, &cache, started);
    let mut scheduler = Scheduler::from_graph(run.graph, options.jobs);
    let looked_up = std::thread::scope(|scope| {
        // Cargo's units of the remote hits, placed as they arrive (see `layers`).
        let arriving = layers::Arriving::start(scope, &run, &cache);
        // 2. lookup
        let looked_up = lookup(&run, &cache, arriving.as_ref());
        if options.summarize.is_some() || options.profile.is_some() {
            recorder.why = why_ran::why_ran(&run, &cache, &looked_up);
        }
        // Cargo's units for the calls to come, beside the hits' restore (see `layers`).
        let lookup_hits = looked_up.hits.iter().map(|hit| hit.node).collect();
        early.start(scope, (&run, &cache), lookup_hits, arriving);
        let hits = {
            // Also on a panic: a unit linked to a hit's output waits for this.
            let _restored = layers::HitsRestored(&early);
            restored.get_or_init(|| {
                restore(&run, &cache, &looked_up.hits, &mut scheduler, &mut recorder)
            })
        };
        // A failed write only loses the speed-up of the next run.
        let _ = run.fast.save();
        // 3-5. schedule, execute, record
        execute_misses(&run, &cache, hits, &early, &mut scheduler, &mut recorder);
        looked_up
    });
    if recorder.stored_any {
        prune_to_cap(&run, &cache);
    }
    let (mut totals, records) = recorder.into_records();
    totals.remote = cache.remote.as_ref().map(|remote| remote.totals());
    totals.elapsed = started.elapsed();
    reporter.finish(&totals);
    if let Some(recording) = recording {
        unchanged::finish(recording, &run, &cache, &looked_up.hits, &totals);
    }
    let finished = FinishedRun {
        tasks_requested: &options.tasks,
        started_unix_ms,
        plan_ms,
        totals: &totals,
        records: &records,
    };
    let summary_path = summarize(&run, &cache, &finished)?;
    profile(&run, &finished)?;
    drop((finished, run));
    // Freeing the plan and the entries took 14 ms of a fully cached run of 500 tasks.
    xtask_util::drop_in_background((looked_up, prepared));
    Ok(RunOutcome {
        success: totals.failed == 0 && totals.skipped == 0,
        totals,
        summary_path,
        records,
        dry_run: None,
    })
}

/// `--dry-run`: what would run and why, from the plan and the cache, nothing run.
fn dry_run(run: &Run<'_>, format: DryRunFormat) -> anyhow::Result<RunOutcome> {
    let records = dry_run_records(run, &open_cache(run.workspace));
    Ok(RunOutcome {
        success: true,
        totals: RunTotals::default(),
        summary_path: None,
        records: Vec::new(),
        dry_run: Some(crate::stdout::render_dry_run(&records, format)?),
    })
}

/// After a run that stored entries: evicts down to the configured size cap, if any (the
/// whole-cache sweep at most daily while under it).
fn prune_to_cap(run: &Run<'_>, cache: &Cache) {
    if let Some(cap) = run.workspace.config.cache.max_size_bytes
        && let Err(error) = cache.local.prune_if_due(Some(cap))
    {
        run.reporter
            .warning(&format!("cache eviction failed: {error}"));
    }
}

/// The lookup stage: every cacheable task's entry (local, then remote), kept only while what
/// its task was observed to read beyond the key is unchanged (a two-level key, as in
/// ccache's direct mode). `arriving` is told of each remote fetch as it ends. Nothing with
/// `--force`.
fn lookup(run: &Run<'_>, cache: &Cache, arriving: Option<&layers::Arriving<'_, '_>>) -> Lookup {
    if run.options.force {
        return Lookup::default();
    }
    let threads = run.options.jobs.max(2);
    let cacheable: Vec<Node> = (0..run.graph.nodes.len())
        .filter(|&node| run.graph.nodes[node].def.cache)
        .collect();
    let wanted: Vec<Wanted<'_>> = cacheable
        .iter()
        .map(|&node| Wanted {
            hash: &run.planned[node].hash,
            allowed: &run.allowed[node],
            label: run.label(node),
        })
        .collect();
    let companion_of = |i: usize| {
        layers::units_hash(run, cacheable[i]).map(|hash| (hash, layers::staging_allowed()))
    };
    // Each entry's observed inputs are checked once: a remote hit's as its fetch ends (for
    // `arriving`), the others' after the lookup.
    let check = ObservedCheck::default();
    let changes: Vec<std::sync::OnceLock<Option<String>>> = cacheable
        .iter()
        .map(|_| std::sync::OnceLock::new())
        .collect();
    let change = |i: usize, meta: &xtask_cache::EntryMeta| {
        changes[i]
            .get_or_init(|| check.first_change(&run.workspace.root, meta))
            .clone()
    };
    let arrived = |i: usize, meta: Option<&xtask_cache::EntryMeta>| {
        if let Some(arriving) = arriving {
            arriving.arrived(
                cacheable[i],
                meta.is_some_and(|meta| change(i, meta).is_none()),
            );
        }
    };
    let found = cache.lookup(&wanted, (&companion_of, &arrived), threads, run.reporter);
    let found: Vec<(usize, Hit)> = found
        .into_iter()
        .enumerate()
        .filter_map(|(i, found)| {
            let found = found?;
            let (node, meta, remote) = (cacheable[i], found.meta, found.remote);
            Some((i, Hit { node, meta, remote }))
        })
        .collect();
    let changes = parallel_map(&found, threads, |(i, hit)| change(*i, &hit.meta));
    let mut lookup = Lookup::default();
    for ((_, hit), change) in found.into_iter().zip(changes) {
        match change {
            None => lookup.hits.push(hit),
            Some(change) => {
                run.reporter.line(&format!(
                    "{}: cache entry not used: {change}",
                    run.label(hit.node)
                ));
                lookup.not_used.insert(hit.node, change);
            }
        }
    }
    lookup
}

/// Restores the hits in parallel. Outputs already in place are recognised through the stat
/// cache (only stat'ed when unchanged since they were last hashed, with the same
/// racy-timestamp rule as inputs). Returns the nodes restored.
fn restore(
    run: &Run<'_>,
    cache: &Cache,
    hits: &[Hit],
    scheduler: &mut Scheduler,
    recorder: &mut Recorder<'_>,
) -> HashSet<Node> {
    let roots = RestoreRoots {
        workspace: run.workspace.root.clone(),
        target: run.workspace.target_dir.clone(),
        keep: cache::running_tool_binary(&run.workspace.target_dir),
    };
    let digest_in_place = |path: &std::path::Path| -> Option<String> {
        run.fast
            .stat_cache
            .digest(&path.to_string_lossy(), path)
            .ok()
            .map(|(digest, _)| digest)
    };
    let restored = parallel_map(hits, cache::restore_threads(run.options.jobs), |hit| {
        let restore_started = Instant::now();
        let result = cache.restore(&hit.meta, &roots, &run.allowed[hit.node], &digest_in_place);
        (result, (restore_started, restore_started.elapsed()))
    });
    let mut done = HashSet::new();
    for (hit, (result, timing)) in hits.iter().zip(restored) {
        match result {
            Ok(log) => {
                done.insert(hit.node);
                scheduler.already_done(hit.node, TaskStatus::Hit);
                recorder.hit(hit.node, &hit.meta, &log, timing, hit.remote);
            }
            Err(error) => run.reporter.warning(&format!(
                "{}: cache entry unusable, treating as a miss: {error}",
                run.label(hit.node)
            )),
        }
    }
    done
}

/// The schedule, execute and record stages: misses run dependencies first, the scheduler
/// deciding what starts, each end recorded as it arrives. Uploads run on their own bounded
/// pool while tasks go on; the scope waits for the queue to drain at the end of the run.
fn execute_misses<'r>(
    run: &'r Run<'r>,
    cache: &'r Cache,
    hits: &'r HashSet<Node>,
    early: &'r layers::EarlyRestore,
    scheduler: &mut Scheduler,
    recorder: &mut Recorder<'r>,
) {
    std::thread::scope(|scope| {
        let uploader = match &cache.remote {
            Some(remote) if !run.options.no_cache && remote.settings().can_write() => {
                Some(Uploader::start(scope, remote, &cache.local, run.reporter))
            }
            _ => None,
        };
        let (sender, receiver) = mpsc::channel::<Finished>();
        loop {
            let step = scheduler.next();
            for node in step.skipped {
                recorder.skipped(node);
            }
            for work in step.start {
                execute::spawn(scope, run, cache, hits, early, work, sender.clone());
            }
            if scheduler.idle() {
                break;
            }
            let Ok(finished) = receiver.recv() else { break };
            record_finished(run, cache, finished, scheduler, recorder, uploader.as_ref());
        }
    });
}

/// Records every task of a finished piece of work and tells the scheduler.
fn record_finished(
    run: &Run<'_>,
    cache: &Cache,
    finished: Finished,
    scheduler: &mut Scheduler,
    recorder: &mut Recorder<'_>,
    uploader: Option<&Uploader>,
) {
    let mut rechecked = std::collections::HashMap::new();
    match finished {
        Finished::Custom(completion) => {
            let node = completion.node;
            let status = recorder.completed(
                completion,
                (&DigestedBatch::none(), None),
                uploader,
                &mut rechecked,
            );
            scheduler.custom_finished(node, status);
        }
        Finished::Batch {
            took,
            completions,
            outcome,
        } => {
            recorder.totals.cargo += took;
            let digested = outcome.as_ref().map_or_else(DigestedBatch::none, |batch| {
                DigestedBatch::new(run.workspace, batch)
            });
            let units = outcome.as_ref().map(|batch| &batch.units);
            let task = completions
                .first()
                .and_then(|c| match run.graph.nodes[c.node].def.kind {
                    TaskKind::Cargo(task) => Some(task),
                    TaskKind::Custom { .. } => None,
                });
            let statuses: Vec<(Node, TaskStatus)> = completions
                .into_iter()
                .map(|completion| {
                    let node = completion.node;
                    let status = recorder.completed(
                        completion,
                        (&digested, units),
                        uploader,
                        &mut rechecked,
                    );
                    (node, status)
                })
                .collect();
            scheduler.batch_finished(&statuses);
            if let (Some(task), Some(units)) = (task, units) {
                for meta in layers::store_registry_layer(run, cache, task, units) {
                    if let Some(uploader) = uploader {
                        uploader.submit(Upload {
                            meta,
                            companion: None,
                            package: layers::REGISTRY_UPLOAD_NAME.to_string(),
                            task: task.name().to_string(),
                        });
                    }
                }
            }
        }
    }
}

/// The `--summarize` file and the HTML report beside it, if asked for.
fn summarize(
    run: &Run<'_>,
    cache: &Cache,
    finished: &FinishedRun<'_>,
) -> anyhow::Result<Option<PathBuf>> {
    let Some(wanted) = &run.options.summarize else {
        return Ok(None);
    };
    let path = crate::summary::summary_file(
        wanted,
        &run.options.location,
        cache.local.root(),
        finished.started_unix_ms,
    );
    crate::summary::write_summary(&path, finished)?;
    let report = crate::visualize::report_path(&path);
    crate::visualize::write_run_report(&report, finished)?;
    run.reporter
        .line(&format!("run summary: {}", path.display()));
    run.reporter
        .line(&format!("run report: {}", report.display()));
    Ok(Some(path))
}

/// The `--profile` Chrome trace, if asked for (relative to `-C DIR` when relative).
fn profile(run: &Run<'_>, finished: &FinishedRun<'_>) -> anyhow::Result<()> {
    let Some(path) = &run.options.profile else {
        return Ok(());
    };
    let path = run.options.location.command_line_path(path);
    crate::visualize::write_profile(&path, finished)?;
    run.reporter.line(&format!("profile: {}", path.display()));
    Ok(())
}

/// A dry run's view of each task: its hash and whether it would be a hit.
fn dry_run_records(run: &Run<'_>, cache: &xtask_cache::LocalCache) -> Vec<TaskRecord> {
    let check = ObservedCheck::default();
    run.graph
        .topological_order
        .iter()
        .map(|&node| {
            let hit = !run.options.force
                && run.graph.nodes[node].def.cache
                && matches!(
                    cache.lookup(&run.planned[node].hash),
                    Ok(Some(meta)) if check.first_change(&run.workspace.root, &meta).is_none()
                );
            let status = if hit {
                TaskStatus::Hit
            } else {
                TaskStatus::WouldRun
            };
            record::task_record(run, node, status, Duration::ZERO, 0)
        })
        .collect()
}

//! `build | test | lint | fmt | run TASK`: plan the graph, restore hits, run misses (cargo
//! batches and custom tasks in topological order), store successes, report, summarize.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use xtask_cache::{CacheOptions, EntryMeta, LocalCache, NewEntry, OutputFile, RestoreRoots};
use xtask_graph::{GraphRequest, NodeIndex, TaskGraph};
use xtask_hash::ObservedInputs;
use xtask_model::{CargoTask, PackageIndex, TaskKind, Workspace};

use crate::cargo::{BatchOutcome, PackageResult, count_tests, run_batch};
use crate::error::UserError;
use crate::observe::{Exclusions, Observation, RunStart, digest_observation};
use crate::outputs::collect_outputs;
use crate::plan::{CargoSettings, CargoTarget, Plan, Toolchain, cargo_selection, plan};
use crate::process::run_captured;
use crate::remote::{Upload, Uploader};
use crate::report::{Reporter, RunTotals, TaskStatus};
use crate::{Location, load_workspace};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRunFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub location: Location,
    pub tasks: Vec<xtask_model::TaskName>,
    /// Package names; empty = every package that has the task.
    pub packages: Vec<String>,
    /// Only packages affected by changes since this git ref (and their dependents).
    pub affected: Option<String>,
    /// Ignore cache hits: run everything (results are still stored).
    pub force: bool,
    /// Do not write new cache entries.
    pub no_cache: bool,
    pub dry_run: Option<DryRunFormat>,
    /// Write a JSON run summary; `Some(None)` = under the cache's `runs/` directory.
    pub summarize: Option<Option<PathBuf>>,
    pub jobs: usize,
    pub release: bool,
    /// Build for this target with these flags instead of the host (used by `image`).
    pub target: Option<CargoTarget>,
}

#[derive(Debug)]
pub struct RunOutcome {
    pub success: bool,
    pub totals: RunTotals,
    pub summary_path: Option<PathBuf>,
    /// One record per task that finished (hit, ran, failed or skipped), in topological order.
    pub records: Vec<TaskRecord>,
}

/// Per-task record of the JSON run summary.
#[derive(Debug, Clone, Serialize)]
pub struct TaskRecord {
    pub task_id: String,
    pub package: String,
    pub task: String,
    pub hash: String,
    pub status: TaskStatus,
    pub duration_ms: u64,
    pub inputs_count: usize,
    /// The tasks it depends on (task-graph edges).
    pub dependencies: Vec<String>,
    /// For cargo tasks, the workspace packages it builds against inside its one cargo call
    /// (no task edges: cargo orders them; their source fingerprints are in the key).
    pub builds_against: Vec<String>,
    /// What the hit saved (the original run's duration), for hits.
    pub saved_ms: u64,
}

#[derive(Debug, Serialize)]
struct RunSummary<'a> {
    version: &'a str,
    tasks_requested: &'a [xtask_model::TaskName],
    started_unix_ms: u128,
    duration_ms: u64,
    totals: SummaryTotals,
    /// What the remote cache did, when one is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    remote: Option<&'a xtask_remote::RemoteTotals>,
    /// Tasks whose results were not stored because an input changed while they ran.
    changed_during_run: &'a [String],
    tasks: &'a [TaskRecord],
}

#[derive(Debug, Serialize)]
struct SummaryTotals {
    tasks: usize,
    hits: usize,
    ran: usize,
    failed: usize,
    skipped: usize,
    saved_ms: u64,
}

/// The prepared state shared by `run`, `why` and dry runs.
pub(crate) struct Prepared {
    pub workspace: Workspace,
    pub graph: TaskGraph,
    pub planned: Plan,
    pub settings: CargoSettings,
}

pub(crate) fn prepare(options: &RunOptions) -> anyhow::Result<Prepared> {
    prepare_loaded(load_workspace(&options.location)?, options)
}

fn prepare_loaded(workspace: Workspace, options: &RunOptions) -> anyhow::Result<Prepared> {
    let mut selected: Vec<PackageIndex> = Vec::new();
    for name in &options.packages {
        let index = workspace.package_index(name).ok_or_else(|| {
            UserError(format!(
                "unknown package `{name}`: workspace packages are {}",
                workspace
                    .packages
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        selected.push(index);
    }
    if selected.is_empty() {
        selected = (0..workspace.packages.len()).collect();
    }
    if let Some(base) = &options.affected {
        let affected = crate::affected::affected_since(&workspace, base)?;
        selected.retain(|p| affected.contains_key(p));
    }
    let graph = TaskGraph::build(
        &workspace,
        &GraphRequest {
            tasks: &options.tasks,
            packages: &selected,
        },
    )?;
    let settings = CargoSettings {
        release: options.release,
        target: options.target.clone(),
    };
    let needs_toolchain = graph
        .nodes
        .iter()
        .any(|n| matches!(n.def.kind, TaskKind::Cargo(_)));
    let fast = crate::fast::FastPaths::shared(&workspace.cache_dir());
    let toolchain = if needs_toolchain {
        Some(Toolchain::detect(&fast, &workspace.root)?)
    } else {
        None
    };
    let planned = plan(
        &workspace,
        &graph,
        toolchain.as_ref(),
        &settings,
        &fast,
        options.jobs,
    )?;
    Ok(Prepared {
        workspace,
        graph,
        planned,
        settings,
    })
}

/// The local cache configured for `workspace`.
pub fn open_cache(workspace: &Workspace) -> LocalCache {
    LocalCache::new(
        workspace.cache_dir(),
        CacheOptions {
            max_size_bytes: workspace.config.cache.max_size_bytes,
        },
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Running,
    Done(TaskStatus),
}

/// What a finished piece of work reports back to the coordinator.
enum Finished {
    Custom {
        node: NodeIndex,
        result: anyhow::Result<Executed>,
    },
    Batch {
        nodes: Vec<NodeIndex>,
        result: anyhow::Result<BatchOutcome>,
    },
}

struct Executed {
    success: bool,
    log: Vec<u8>,
    outputs: Vec<OutputFile>,
    duration: Duration,
    /// Why a success must not be stored, if so.
    not_cacheable: Option<String>,
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
    let started = Instant::now();
    let started_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let prepared = prepare_loaded(workspace, options)?;
    let Prepared {
        workspace,
        graph,
        planned,
        settings,
    } = &prepared;
    let cache = open_cache(workspace);

    if let Some(format) = options.dry_run {
        let records = dry_run_records(workspace, graph, planned, &cache, options.force);
        crate::output::print_dry_run(&records, format)?;
        return Ok(RunOutcome {
            success: true,
            totals: RunTotals::default(),
            summary_path: None,
            records: Vec::new(),
        });
    }

    let n = graph.nodes.len();
    let mut state = vec![State::Pending; n];
    let mut records: Vec<Option<TaskRecord>> = vec![None; n];
    let mut totals = RunTotals {
        tasks: n,
        ..RunTotals::default()
    };
    reporter.start(n);

    // Where each task's cached outputs may be restored: nothing outside them is ever written.
    let allowed: Vec<xtask_cache::AllowedOutputs> = graph
        .nodes
        .iter()
        .map(|task| {
            crate::outputs::allowed_outputs(
                workspace,
                &workspace.packages[task.package],
                &task.def,
                settings,
            )
        })
        .collect::<anyhow::Result<_>>()?;

    // 1. Cache hits: lookups read only the small entry files; restores run in parallel.
    let mut hits: Vec<(NodeIndex, EntryMeta)> = Vec::new();
    if !options.force {
        let cacheable: Vec<NodeIndex> =
            (0..n).filter(|&node| graph.nodes[node].def.cache).collect();
        let lookups = parallel_map(&cacheable, options.jobs.max(2), |&node| {
            cache.lookup(&planned[node].hash)
        });
        for (node, lookup) in cacheable.into_iter().zip(lookups) {
            match lookup {
                Ok(Some(meta)) => hits.push((node, meta)),
                Ok(None) => {}
                Err(error) => reporter.warning(&format!(
                    "{}: cache entry unusable, treating as a miss: {error}",
                    graph.label(workspace, node)
                )),
            }
        }
    }
    // 1b. Local misses are asked of the remote cache; a hit is verified and imported into the
    //     local cache, then restored like a local hit.
    let remote = crate::remote::open(workspace)?;
    if let Some(remote) = &remote
        && !options.force
    {
        let local_hits: std::collections::HashSet<NodeIndex> =
            hits.iter().map(|(node, _)| *node).collect();
        let misses: Vec<NodeIndex> = (0..n)
            .filter(|&node| graph.nodes[node].def.cache && !local_hits.contains(&node))
            .collect();
        let requests: Vec<(&str, xtask_cache::AllowedOutputs)> = misses
            .iter()
            .map(|&node| (planned[node].hash.as_str(), allowed[node].clone()))
            .collect();
        if !requests.is_empty() {
            for (i, meta) in crate::remote::fetch_misses(remote, &cache, &requests, reporter) {
                hits.push((misses[i], meta));
            }
        }
    }
    // 1c. An entry is a hit only while everything its task was observed to read (beyond the
    //     declared key) is unchanged: a two-level key, as in ccache's direct mode.
    // Several tasks often observe the same files (a shared fixture, a README): one digest
    // per path per run.
    let digests: std::sync::Mutex<HashMap<PathBuf, String>> = Default::default();
    let digest_once = |path: &std::path::Path| -> String {
        if let Some(known) = digests.lock().ok().and_then(|d| d.get(path).cloned()) {
            return known;
        }
        let digest = xtask_hash::observed_digest(path);
        if let Ok(mut known) = digests.lock() {
            known.insert(path.to_path_buf(), digest.clone());
        }
        digest
    };
    let checks = parallel_map(&hits, options.jobs.max(2), |(_, meta)| {
        ObservedInputs::from_manifest(&meta.manifest)
            .first_mismatch_with(&workspace.root, &digest_once)
    });
    let mut kept = Vec::with_capacity(hits.len());
    for (hit, change) in hits.into_iter().zip(checks) {
        match change {
            None => kept.push(hit),
            Some(change) => reporter.line(&format!(
                "{}: cache entry not used: {change}",
                graph.label(workspace, hit.0)
            )),
        }
    }
    let hits = kept;
    let roots = RestoreRoots {
        workspace: workspace.root.clone(),
        target: workspace.target_dir.clone(),
    };
    // Outputs already in place are recognised through the stat cache (only stat'ed when
    // unchanged since they were last hashed, with the same racy-timestamp rule as inputs).
    let fast = crate::fast::FastPaths::shared(&workspace.cache_dir());
    let digest_in_place = |path: &std::path::Path| -> Option<String> {
        fast.stat_cache
            .digest(&path.to_string_lossy(), path)
            .ok()
            .map(|(digest, _)| digest)
    };
    let restored = parallel_map(&hits, options.jobs.max(2), |(node, meta)| {
        let restore_started = Instant::now();
        let result = cache
            .restore_with(meta, &roots, &allowed[*node], &digest_in_place)
            .and_then(|_| cache.read_log(meta));
        (*node, result, restore_started.elapsed())
    });
    for ((node, meta), (_, result, took)) in hits.iter().zip(restored) {
        let label = graph.label(workspace, *node);
        match result {
            Ok(log) => {
                state[*node] = State::Done(TaskStatus::Hit);
                totals.hits += 1;
                totals.saved += Duration::from_millis(meta.duration_ms);
                if graph.nodes[*node].task == "test" {
                    let mut counts = PackageResult::default();
                    count_tests(&log, &mut counts);
                    totals.tests_passed += counts.tests_passed;
                    totals.tests_failed += counts.tests_failed;
                    totals.ran_tests = true;
                }
                let package = &workspace.packages[graph.nodes[*node].package];
                if let Err(error) = cache.set_last(
                    &package.name,
                    &graph.nodes[*node].task,
                    &planned[*node].hash,
                ) {
                    reporter.warning(&error.to_string());
                }
                reporter.task_finished(&label, TaskStatus::Hit, &planned[*node].hash, took, &log);
                records[*node] = Some(record(
                    workspace,
                    graph,
                    planned,
                    *node,
                    TaskStatus::Hit,
                    took,
                    meta.duration_ms,
                ));
            }
            Err(error) => reporter.warning(&format!(
                "{label}: cache entry unusable, treating as a miss: {error}"
            )),
        }
    }

    // A failed write only loses the speed-up of the next run.
    let _ = fast.save();

    // 2. Misses, dependencies first. Cargo nodes of one task run as one batch and do not wait
    //    for other cargo nodes (cargo orders those itself); they wait for custom tasks.
    let write_cache = !options.no_cache;
    let mut stored_any = false;
    std::thread::scope(|scope| -> anyhow::Result<()> {
        // Uploads run on their own bounded pool while tasks go on; the scope waits for the
        // queue to drain at the end of the run.
        let uploader = match &remote {
            Some(remote) if write_cache && remote.settings().can_write() => {
                Some(Uploader::start(scope, remote, &cache, reporter))
            }
            _ => None,
        };
        let (sender, receiver) = mpsc::channel::<Finished>();
        let mut running_custom = 0usize;
        let mut batch_running = false;
        loop {
            // Skip what can no longer run; collect what can.
            let mut ready_custom = Vec::new();
            let mut ready_cargo: BTreeMap<usize, Vec<NodeIndex>> = BTreeMap::new();
            for &node in &graph.topological_order {
                if state[node] != State::Pending {
                    continue;
                }
                let deps = &graph.nodes[node].dependencies;
                if deps.iter().any(|&d| {
                    matches!(
                        state[d],
                        State::Done(TaskStatus::Failed | TaskStatus::Skipped)
                    )
                }) {
                    state[node] = State::Done(TaskStatus::Skipped);
                    totals.skipped += 1;
                    reporter.task_finished(
                        &graph.label(workspace, node),
                        TaskStatus::Skipped,
                        &planned[node].hash,
                        Duration::ZERO,
                        b"",
                    );
                    records[node] = Some(record(
                        workspace,
                        graph,
                        planned,
                        node,
                        TaskStatus::Skipped,
                        Duration::ZERO,
                        0,
                    ));
                    continue;
                }
                match graph.nodes[node].def.kind {
                    TaskKind::Custom { .. } => {
                        if deps.iter().all(|&d| matches!(state[d], State::Done(_))) {
                            ready_custom.push(node);
                        }
                    }
                    TaskKind::Cargo(task) => {
                        let waits = deps.iter().any(|&d| {
                            !matches!(state[d], State::Done(_))
                                && matches!(graph.nodes[d].def.kind, TaskKind::Custom { .. })
                        });
                        if !waits {
                            let order = xtask_model::BUILTIN_TASKS
                                .iter()
                                .position(|t| *t == task.name())
                                .unwrap_or(0);
                            ready_cargo.entry(order).or_default().push(node);
                        }
                    }
                }
            }
            if !batch_running && let Some((_, nodes)) = ready_cargo.into_iter().next() {
                for &node in &nodes {
                    state[node] = State::Running;
                }
                let task = match graph.nodes[nodes[0]].def.kind {
                    TaskKind::Cargo(task) => task,
                    TaskKind::Custom { .. } => CargoTask::Build,
                };
                let plural = if nodes.len() == 1 { "" } else { "s" };
                reporter.running(&format!(
                    "cargo {} ({} package{plural})",
                    task.name(),
                    nodes.len()
                ));
                let sender = sender.clone();
                let packages: Vec<PackageIndex> = nodes
                    .iter()
                    .map(|&node| graph.nodes[node].package)
                    .collect();
                // Cargo is always called with the whole selection the keys were planned
                // for, so features unify the same way whatever is a hit.
                let selection = cargo_selection(graph, task);
                let jobs = options.jobs;
                batch_running = true;
                scope.spawn(move || {
                    let result = run_batch(workspace, task, &selection, &packages, settings, jobs);
                    let _ = sender.send(Finished::Batch { nodes, result });
                });
            }
            for node in ready_custom {
                if running_custom >= options.jobs.max(1) {
                    break;
                }
                state[node] = State::Running;
                running_custom += 1;
                reporter.running(&graph.label(workspace, node));
                let sender = sender.clone();
                scope.spawn(move || {
                    let result = run_custom(workspace, graph, planned, node);
                    let _ = sender.send(Finished::Custom { node, result });
                });
            }
            if running_custom == 0 && !batch_running {
                break;
            }
            let Ok(finished) = receiver.recv() else { break };
            let mut completed: Vec<(NodeIndex, anyhow::Result<Executed>, u64, u64)> = Vec::new();
            let mut batch_observed: Option<BatchOutcome> = None;
            match finished {
                Finished::Custom { node, result } => {
                    running_custom -= 1;
                    completed.push((node, result, 0, 0));
                }
                Finished::Batch { nodes, result } => {
                    batch_running = false;
                    match result {
                        Ok(mut outcome) => {
                            let results = std::mem::take(&mut outcome.results);
                            for (node, r) in nodes.into_iter().zip(results) {
                                let (passed, failed) = (r.tests_passed, r.tests_failed);
                                let executed = Executed {
                                    success: r.success,
                                    log: r.log,
                                    outputs: r.outputs,
                                    duration: r.duration,
                                    not_cacheable: r.not_cacheable,
                                };
                                completed.push((node, Ok(executed), passed, failed));
                            }
                            batch_observed = Some(outcome);
                        }
                        Err(error) => {
                            let message = format!("{error:#}");
                            for node in nodes {
                                completed.push((node, Err(anyhow::anyhow!("{message}")), 0, 0));
                            }
                        }
                    }
                }
            }
            let digested = batch_observed
                .as_ref()
                .map(|batch| digest_batch(workspace, batch))
                .unwrap_or_default();
            let mut rechecked: HashMap<String, bool> = HashMap::new();
            for (node, result, passed, failed) in completed {
                let label = graph.label(workspace, node);
                let hash = &planned[node].hash;
                if graph.nodes[node].task == "test"
                    && matches!(graph.nodes[node].def.kind, TaskKind::Cargo(_))
                {
                    totals.ran_tests = true;
                    totals.tests_passed += passed;
                    totals.tests_failed += failed;
                }
                let (status, duration, log) = match result {
                    Ok(executed) if executed.success => {
                        if let Some(reason) = &executed.not_cacheable {
                            reporter.warning(&format!("{label}: result not cached: {reason}"));
                        }
                        let observed = if write_cache
                            && graph.nodes[node].def.cache
                            && executed.not_cacheable.is_none()
                        {
                            observed_inputs(
                                workspace,
                                planned,
                                node,
                                graph.nodes[node].package,
                                &digested,
                                &fast,
                                &mut rechecked,
                            )
                        } else {
                            Err(Vec::new())
                        };
                        if let Err(changed) = &observed
                            && !changed.is_empty()
                        {
                            totals.changed_during_run.push(label.clone());
                            reporter.warning(&format!(
                                "{label}: result not cached: `{}` changed while the task ran",
                                changed.join("`, `")
                            ));
                        }
                        if let Ok(observed) = observed {
                            let stored = store(
                                &cache, workspace, graph, planned, node, &executed, &observed,
                                reporter,
                            );
                            stored_any = true;
                            if let (Some(uploader), Some(meta)) = (&uploader, stored) {
                                uploader.submit(Upload {
                                    meta,
                                    package: workspace.packages[graph.nodes[node].package]
                                        .name
                                        .clone(),
                                    task: graph.nodes[node].task.to_string(),
                                });
                            }
                        }
                        (TaskStatus::Miss, executed.duration, executed.log)
                    }
                    Ok(executed) => (TaskStatus::Failed, executed.duration, executed.log),
                    Err(error) => (
                        TaskStatus::Failed,
                        Duration::ZERO,
                        format!("error: {error:#}\n").into_bytes(),
                    ),
                };
                match status {
                    TaskStatus::Miss => totals.succeeded += 1,
                    _ => totals.failed += 1,
                }
                state[node] = State::Done(status);
                reporter.task_finished(&label, status, hash, duration, &log);
                records[node] = Some(record(workspace, graph, planned, node, status, duration, 0));
            }
        }
        Ok(())
    })?;

    if stored_any
        && let Some(cap) = workspace.config.cache.max_size_bytes
        && let Err(error) = cache.prune(Some(cap))
    {
        reporter.warning(&format!("cache eviction failed: {error}"));
    }

    totals.remote = remote.as_ref().map(|remote| remote.totals());
    totals.elapsed = started.elapsed();
    reporter.finish(&totals);
    let records: Vec<TaskRecord> = graph
        .topological_order
        .iter()
        .filter_map(|&n| records[n].clone())
        .collect();
    let summary_path = match &options.summarize {
        None => None,
        Some(path) => {
            // A relative path is relative to `-C DIR`, as if the tool had been started there.
            let path = path.clone().map(|p| match &options.location.directory {
                Some(dir) if p.is_relative() => dir.join(p),
                _ => p,
            });
            let path = path.unwrap_or_else(|| {
                cache
                    .root()
                    .join("runs")
                    .join(format!("{started_unix_ms}.json"))
            });
            let summary = RunSummary {
                version: crate::TOOL_VERSION,
                tasks_requested: &options.tasks,
                started_unix_ms,
                duration_ms: totals.elapsed.as_millis() as u64,
                totals: SummaryTotals {
                    tasks: totals.tasks,
                    hits: totals.hits,
                    ran: totals.succeeded + totals.failed,
                    failed: totals.failed,
                    skipped: totals.skipped,
                    saved_ms: totals.saved.as_millis() as u64,
                },
                remote: totals.remote.as_ref(),
                changed_during_run: &totals.changed_during_run,
                tasks: &records,
            };
            let mut text =
                serde_json::to_vec_pretty(&summary).context("failed to encode the run summary")?;
            text.push(b'\n');
            crate::generated::write_atomically(&path, &text)?;
            reporter.line(&format!("run summary: {}", path.display()));
            Some(path)
        }
    };
    let success = totals.failed == 0 && totals.skipped == 0;
    Ok(RunOutcome {
        success,
        totals,
        summary_path,
        records,
    })
}

fn record(
    workspace: &Workspace,
    graph: &TaskGraph,
    planned: &Plan,
    node: NodeIndex,
    status: TaskStatus,
    duration: Duration,
    saved_ms: u64,
) -> TaskRecord {
    let n = &graph.nodes[node];
    TaskRecord {
        task_id: graph.label(workspace, node),
        package: workspace.packages[n.package].name.clone(),
        task: n.task.to_string(),
        hash: planned[node].hash.clone(),
        status,
        duration_ms: duration.as_millis() as u64,
        inputs_count: planned[node].key.inputs.len(),
        dependencies: n
            .dependencies
            .iter()
            .map(|&d| graph.label(workspace, d))
            .collect(),
        builds_against: planned[node]
            .key
            .workspace_dependencies
            .keys()
            .cloned()
            .collect(),
        saved_ms,
    }
}

/// A dry run's view of each task: its hash and whether it would be a hit.
pub(crate) fn dry_run_records(
    workspace: &Workspace,
    graph: &TaskGraph,
    planned: &Plan,
    cache: &LocalCache,
    force: bool,
) -> Vec<TaskRecord> {
    graph
        .topological_order
        .iter()
        .map(|&node| {
            let hit = !force
                && graph.nodes[node].def.cache
                && matches!(
                    cache.lookup(&planned[node].hash),
                    Ok(Some(meta)) if ObservedInputs::from_manifest(&meta.manifest)
                        .first_mismatch(&workspace.root)
                        .is_none()
                );
            let status = if hit {
                TaskStatus::Hit
            } else {
                TaskStatus::Miss
            };
            record(workspace, graph, planned, node, status, Duration::ZERO, 0)
        })
        .collect()
}

/// Each package's observations of one cargo batch, digested once: `None` keys the path
/// packages outside the workspace. With them, the inputs that changed while the batch ran.
type DigestedBatch = HashMap<Option<PackageIndex>, (ObservedInputs, Vec<String>)>;

fn digest_batch(workspace: &Workspace, batch: &BatchOutcome) -> DigestedBatch {
    let exclusions = Exclusions::new(&workspace.target_dir);
    let started = RunStart(batch.started.unwrap_or_else(std::time::SystemTime::now));
    let mut all: Vec<(Option<PackageIndex>, &Observation)> = batch
        .observations
        .iter()
        .map(|(package, observation)| (Some(*package), observation))
        .collect();
    all.push((None, &batch.outside));
    all.into_iter()
        .map(|(package, observation)| {
            let digested = digest_observation(&workspace.root, observation, &exclusions, started);
            (package, digested)
        })
        .collect()
}

/// What `node` was observed to read beyond its declared key, digested. `Err` lists the
/// inputs (declared or observed) that changed while it ran: its result must not be stored.
fn observed_inputs(
    workspace: &Workspace,
    planned: &Plan,
    node: NodeIndex,
    package: PackageIndex,
    digested: &DigestedBatch,
    fast: &crate::fast::FastPaths,
    rechecked: &mut HashMap<String, bool>,
) -> Result<ObservedInputs, Vec<String>> {
    let task = &planned[node];
    let key = &task.key;
    let closure_inputs = task
        .closure
        .iter()
        .filter_map(|p| planned.package_inputs.get(p))
        .flatten();
    let mut changed: BTreeSet<String> = BTreeSet::new();
    // The declared inputs, read again: an edit during the run must not be stored under the
    // key computed before it.
    for (path, digest) in key.inputs.iter().chain(closure_inputs) {
        let same = *rechecked.entry(path.clone()).or_insert_with(|| {
            fast.stat_cache
                .input_digest(path, &workspace.root.join(path))
                .is_ok_and(|now| &now == digest)
        });
        if !same {
            changed.insert(path.clone());
        }
    }
    let mut observed = ObservedInputs::default();
    let sources = std::iter::once(Some(package))
        .chain(task.closure.iter().map(|&p| Some(p)))
        .chain(std::iter::once(None));
    for source in sources {
        if let Some((inputs, during)) = digested.get(&source) {
            observed.extend(inputs);
            changed.extend(during.iter().cloned());
        }
    }
    // What the declared key already pins with the same content needs no second check.
    let declared = |path: &str| -> Option<&String> {
        key.inputs
            .get(path)
            .or_else(|| key.global_inputs.get(path))
            .or_else(|| {
                task.closure
                    .iter()
                    .find_map(|p| planned.package_inputs.get(p)?.get(path))
            })
    };
    observed
        .files
        .retain(|path, digest| declared(path) != Some(digest));
    observed.env.retain(|name, _| !key.env.contains_key(name));
    if changed.is_empty() {
        Ok(observed)
    } else {
        Err(changed.into_iter().collect())
    }
}

#[expect(clippy::too_many_arguments, reason = "the run's parts a store needs")]
fn store(
    cache: &LocalCache,
    workspace: &Workspace,
    graph: &TaskGraph,
    planned: &Plan,
    node: NodeIndex,
    executed: &Executed,
    observed: &ObservedInputs,
    reporter: &Reporter,
) -> Option<EntryMeta> {
    let package = &workspace.packages[graph.nodes[node].package];
    let task = &graph.nodes[node].task;
    let entry = NewEntry {
        task_hash: &planned[node].hash,
        manifest: observed.add_to_manifest(planned[node].key.manifest()),
        outputs: executed.outputs.clone(),
        log: &executed.log,
        duration_ms: executed.duration.as_millis() as u64,
        exit_code: 0,
    };
    let result = cache.store(entry).and_then(|meta| {
        cache
            .set_last(&package.name, task, &planned[node].hash)
            .map(|()| meta)
    });
    match result {
        Ok(meta) => Some(meta),
        Err(error) => {
            reporter.warning(&format!(
                "{}:{task}: result not cached: {error}",
                package.name
            ));
            None
        }
    }
}

fn run_custom(
    workspace: &Workspace,
    graph: &TaskGraph,
    planned: &Plan,
    node: NodeIndex,
) -> anyhow::Result<Executed> {
    let started = Instant::now();
    let task = &graph.nodes[node];
    let package = &workspace.packages[task.package];
    let TaskKind::Custom { program, args } = &task.def.kind else {
        anyhow::bail!(
            "internal error: {} is not a custom task",
            graph.label(workspace, node)
        );
    };
    // A program with a slash is relative to the package; a bare name is looked up in PATH.
    let program_path = if program.contains('/') {
        package.dir.join(program)
    } else {
        PathBuf::from(program)
    };
    let mut command = std::process::Command::new(&program_path);
    command
        .args(args)
        .env("XTASK_TASK_HASH", &planned[node].hash)
        .env("XTASK_PACKAGE", &package.name);
    let captured = run_captured(
        command,
        &format!("`{program}` for {}", graph.label(workspace, node)),
        &package.dir,
    )?;
    let mut log = captured.output;
    if !captured.success {
        log.extend_from_slice(
            format!(
                "`{program}` exited with {}\n",
                exit_description(captured.code)
            )
            .as_bytes(),
        );
    }
    let outputs = if captured.success {
        collect_outputs(&workspace.root, package, &task.def.outputs)?
    } else {
        Vec::new()
    };
    Ok(Executed {
        success: captured.success,
        log,
        outputs,
        duration: started.elapsed(),
        not_cacheable: None,
    })
}

fn exit_description(code: Option<i32>) -> String {
    match code {
        Some(code) => format!("exit code {code}"),
        None => "a signal".to_string(),
    }
}

/// Maps `f` over `items` on up to `threads` threads, keeping the order.
pub(crate) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    if items.len() <= 1 || threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads.min(items.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let value = f(item);
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(value);
                    }
                }
            });
        }
    });
    results
        .into_iter()
        .filter_map(|m| m.into_inner().ok().flatten())
        .collect()
}

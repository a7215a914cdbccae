//! The record stage: everything that happens once a task has ended. Successes are stored
//! (unless an input changed while they ran) and queued for upload; every end is reported,
//! counted in the totals and kept as a [`TaskRecord`] for the summary.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use xtask_cache::EntryMeta;
use xtask_hash::ObservedInputs;
use xtask_model::{PackageIndex, TaskKind, TaskName, Workspace};
use xtask_report::Why;

use super::cache::Cache;
use super::context::Run;
use super::execute::{Completion, Executed};
use super::schedule::Node;
use crate::cargo::{BatchOutcome, PackageResult, count_tests};
use crate::observe::{Exclusions, FileDigests, RunStart, digest_observation_with};
use crate::remote::{Upload, Uploader};
use crate::report::{RunTotals, TaskStatus};
use crate::summary::TaskRecord;
use crate::units::UnitsSeen;

pub(crate) struct Recorder<'r> {
    run: &'r Run<'r>,
    cache: &'r Cache,
    records: Vec<Option<TaskRecord>>,
    /// When the run started: records' start times count from it.
    started: Instant,
    /// Per node, why it will run (when a report asks for it), moved into its record.
    pub why: Vec<Option<Why>>,
    pub totals: RunTotals,
    pub stored_any: bool,
}

impl<'r> Recorder<'r> {
    pub fn new(run: &'r Run<'r>, cache: &'r Cache, started: Instant) -> Recorder<'r> {
        let n = run.graph.nodes.len();
        Recorder {
            run,
            cache,
            records: vec![None; n],
            started,
            why: vec![None; n],
            totals: RunTotals {
                tasks: n,
                ..RunTotals::default()
            },
            stored_any: false,
        }
    }

    /// A cache hit, restored in `restore` (when it started, how long it took); `log` is the
    /// original run's; `remote` when the remote cache supplied the entry in this run.
    pub fn hit(
        &mut self,
        node: Node,
        meta: &EntryMeta,
        log: &[u8],
        restore: (Instant, Duration),
        remote: bool,
    ) {
        let run = self.run;
        self.totals.hits += 1;
        self.totals.saved += Duration::from_millis(meta.duration_ms);
        if run.graph.nodes[node].task == TaskName::TEST {
            let mut counts = PackageResult::default();
            count_tests(log, &mut counts);
            self.count_tests(counts.tests_passed, counts.tests_failed);
        }
        let task = &run.graph.nodes[node];
        let package = &run.workspace.packages[task.package];
        if let Err(error) =
            self.cache
                .local
                .set_last(&package.name, &task.task, &run.planned[node].hash)
        {
            run.reporter.warning(&error.to_string());
        }
        let (start, took) = restore;
        self.report(node, TaskStatus::Hit, (start, took), log, meta.duration_ms);
        if let Some(record) = self.records[node].as_mut() {
            record.remote_hit = remote;
        }
    }

    /// Not run: a dependency failed or was skipped.
    pub fn skipped(&mut self, node: Node) {
        self.totals.skipped += 1;
        let now = Instant::now();
        self.report(node, TaskStatus::Skipped, (now, Duration::ZERO), b"", 0);
    }

    /// A task that ran: stores a storable success, reports, and returns its status.
    pub fn completed(
        &mut self,
        completion: Completion,
        batch: (&DigestedBatch, Option<&UnitsSeen>),
        uploader: Option<&Uploader>,
        rechecked: &mut HashMap<String, bool>,
    ) -> TaskStatus {
        let node = completion.node;
        if self.is_cargo_test(node) {
            let (passed, failed) = match &completion.result {
                Ok(executed) => (executed.tests_passed, executed.tests_failed),
                Err(_) => (0, 0),
            };
            self.count_tests(passed, failed);
        }
        let (status, timing, log) = match completion.result {
            Ok(mut executed) => {
                let status = if executed.success {
                    self.keep(node, &mut executed, batch, uploader, rechecked);
                    TaskStatus::Succeeded
                } else {
                    TaskStatus::Failed
                };
                (status, (executed.started, executed.duration), executed.log)
            }
            Err(error) => (
                TaskStatus::Failed,
                (Instant::now(), Duration::ZERO),
                format!("error: {error:#}\n").into_bytes(),
            ),
        };
        match status {
            TaskStatus::Succeeded => self.totals.succeeded += 1,
            _ => self.totals.failed += 1,
        }
        self.report(node, status, timing, &log, 0);
        status
    }

    /// The records of every task that ended, dependencies first.
    pub fn into_records(self) -> (RunTotals, Vec<TaskRecord>) {
        let records = self
            .run
            .graph
            .topological_order
            .iter()
            .filter_map(|&n| self.records[n].clone())
            .collect();
        (self.totals, records)
    }

    /// Stores a success (and queues its upload), unless it must not be.
    fn keep(
        &mut self,
        node: Node,
        executed: &mut Executed,
        (batch, units): (&DigestedBatch, Option<&UnitsSeen>),
        uploader: Option<&Uploader>,
        rechecked: &mut HashMap<String, bool>,
    ) {
        let run = self.run;
        let label = run.label(node);
        if let Some(reason) = &executed.not_cacheable {
            run.reporter
                .warning(&format!("{label}: result not cached: {reason}"));
        }
        if run.options.no_cache
            || !run.graph.nodes[node].def.cache
            || executed.not_cacheable.is_some()
        {
            return;
        }
        let observed = match observed_inputs(run, node, batch, rechecked) {
            Ok(observed) => observed,
            Err(changed) => {
                self.totals.changed_during_run.push(label.clone());
                run.reporter.warning(&format!(
                    "{label}: result not cached: `{}` changed while the task ran",
                    changed.join("`, `")
                ));
                return;
            }
        };
        let stored = self.store(node, executed, &observed);
        self.stored_any = true;
        // The package's cargo units go with its entry, never without it.
        let units = stored.as_ref().zip(units).and_then(|(meta, units)| {
            super::layers::store_package_units(run, self.cache, node, units, meta)
        });
        let task = &run.graph.nodes[node];
        let package = &run.workspace.packages[task.package].name;
        if let Some(uploader) = uploader {
            // The units go inside the task's artifact (one request for both on a fresh
            // machine) and under their own key (the Bazel protocol; a local hit whose units
            // entry is not local).
            for (meta, companion, task) in [
                (stored, units.clone(), task.task.to_string()),
                (
                    units,
                    None,
                    format!("{}{}", task.task, super::layers::UNITS_UPLOAD_SUFFIX),
                ),
            ] {
                if let Some(meta) = meta {
                    uploader.submit(Upload {
                        meta,
                        companion,
                        package: package.clone(),
                        task,
                    });
                }
            }
        }
    }

    fn store(
        &self,
        node: Node,
        executed: &mut Executed,
        observed: &ObservedInputs,
    ) -> Option<EntryMeta> {
        let run = self.run;
        let package = &run.workspace.packages[run.graph.nodes[node].package];
        let task = &run.graph.nodes[node].task;
        let entry = xtask_cache::NewEntry {
            task_hash: &run.planned[node].hash,
            manifest: observed.add_to_manifest(run.planned[node].key.manifest()),
            outputs: executed.outputs.clone(),
            log: &executed.log,
            duration_ms: executed.duration.as_millis() as u64,
            exit_code: 0,
        };
        let local = &self.cache.local;
        let result = local
            .store_prepared(entry, executed.prepared.take())
            .and_then(|meta| {
                local
                    .set_last(&package.name, task, &run.planned[node].hash)
                    .map(|()| meta)
            });
        match result {
            Ok(meta) => Some(meta),
            Err(error) => {
                run.reporter.warning(&format!(
                    "{}:{task}: result not cached: {error}",
                    package.name
                ));
                None
            }
        }
    }

    /// Reports an end and keeps its record; `timing` is when the task started and its time.
    fn report(
        &mut self,
        node: Node,
        status: TaskStatus,
        timing: (Instant, Duration),
        log: &[u8],
        saved_ms: u64,
    ) {
        let run = self.run;
        let (start, duration) = timing;
        run.reporter.task_finished(
            &run.label(node),
            status,
            &run.planned[node].hash,
            duration,
            log,
        );
        let mut record = task_record(run, node, status, duration, saved_ms);
        record.start_ms = Some(start.saturating_duration_since(self.started).as_millis() as u64);
        if matches!(status, TaskStatus::Succeeded | TaskStatus::Failed) {
            record.why = self.why[node].take();
        }
        self.records[node] = Some(record);
    }

    fn is_cargo_test(&self, node: Node) -> bool {
        let task = &self.run.graph.nodes[node];
        task.task == TaskName::TEST && matches!(task.def.kind, TaskKind::Cargo(_))
    }

    fn count_tests(&mut self, passed: u64, failed: u64) {
        self.totals.ran_tests = true;
        self.totals.tests_passed += passed;
        self.totals.tests_failed += failed;
    }
}

/// The summary's record of one task.
pub(crate) fn task_record(
    run: &Run<'_>,
    node: Node,
    status: TaskStatus,
    duration: Duration,
    saved_ms: u64,
) -> TaskRecord {
    let (workspace, graph, planned) = (run.workspace, run.graph, run.planned);
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
        start_ms: None,
        remote_hit: false,
        why: None,
    }
}

/// Each package's observations of one cargo batch, digested when a stored task first needs
/// them, and once: cargo reports every package of the selection (hits included, a 1-miss
/// build of a 500-crate workspace reports 500), while only the stored tasks' packages, their
/// closures and the path packages outside the workspace (`None`) are ever asked for. The
/// files are digested once across packages too ([`FileDigests`]).
pub(crate) struct DigestedBatch<'a> {
    /// `None` for a custom task's completion.
    batch: Option<EndedBatch<'a>>,
    files: RefCell<FileDigests>,
    digested: RefCell<HashMap<Option<PackageIndex>, Rc<SourceDigest>>>,
}

/// What a batch's observations are digested against, fixed when it ends.
struct EndedBatch<'a> {
    root: &'a std::path::Path,
    outcome: &'a BatchOutcome,
    exclusions: Exclusions,
    started: RunStart,
}

/// One source's observed inputs, with those that changed while the batch ran.
type SourceDigest = (ObservedInputs, Vec<String>);

impl<'a> DigestedBatch<'a> {
    /// No batch: a custom task's completion.
    pub fn none() -> DigestedBatch<'a> {
        DigestedBatch {
            batch: None,
            files: RefCell::default(),
            digested: RefCell::default(),
        }
    }

    pub fn new(workspace: &'a Workspace, outcome: &'a BatchOutcome) -> DigestedBatch<'a> {
        let batch = EndedBatch {
            root: &workspace.root,
            outcome,
            exclusions: Exclusions::new(&workspace.target_dir),
            started: outcome
                .started
                .map_or_else(RunStart::by_system_clock, RunStart),
        };
        DigestedBatch {
            batch: Some(batch),
            ..DigestedBatch::none()
        }
    }

    /// What `source` was seen to read, digested, with the inputs that changed while the batch
    /// ran; `None` when the batch observed nothing of it.
    fn get(&self, source: Option<PackageIndex>) -> Option<Rc<SourceDigest>> {
        let batch = self.batch.as_ref()?;
        if let Some(found) = self.digested.borrow().get(&source) {
            return Some(Rc::clone(found));
        }
        let observation = match source {
            Some(package) => batch.outcome.observations.get(&package)?,
            None => &batch.outcome.outside,
        };
        let digested = Rc::new(digest_observation_with(
            batch.root,
            observation,
            &batch.exclusions,
            batch.started,
            &mut self.files.borrow_mut(),
        ));
        self.digested
            .borrow_mut()
            .insert(source, Rc::clone(&digested));
        Some(digested)
    }
}

/// What `node` was observed to read beyond its declared key, digested. `Err` lists the
/// inputs (declared or observed) that changed while it ran: its result must not be stored.
fn observed_inputs(
    run: &Run<'_>,
    node: Node,
    digested: &DigestedBatch,
    rechecked: &mut HashMap<String, bool>,
) -> Result<ObservedInputs, Vec<String>> {
    let (workspace, planned) = (run.workspace, run.planned);
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
            run.fast
                .stat_cache
                .input_digest(path, &workspace.root.join(path))
                .is_ok_and(|now| &now == digest)
        });
        if !same {
            changed.insert(path.clone());
        }
    }
    let mut observed = ObservedInputs::default();
    let package = run.graph.nodes[node].package;
    let sources = std::iter::once(Some(package))
        .chain(task.closure.iter().map(|&p| Some(p)))
        .chain(std::iter::once(None));
    for source in sources {
        if let Some(found) = digested.get(source) {
            let (inputs, during) = &*found;
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

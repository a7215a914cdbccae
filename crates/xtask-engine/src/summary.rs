//! What a run leaves behind as data: one [`TaskRecord`] per task (the dry run prints them, the
//! run summary writes them) and the JSON run summary (`--summarize`; the HTML report beside
//! it and the `--profile` trace are made from the same records, in `visualize`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::report::{RunTotals, TaskStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRunFormat {
    Text,
    Json,
}

/// Where `--summarize` writes the run summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SummaryPath {
    /// `runs/<start time>.json` in the cache directory.
    InCache,
    /// This file (relative to `-C DIR` when relative).
    At(PathBuf),
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
    /// When it started, in ms from the start of the run (absent in a dry run). A hit starts
    /// when its restore does; a cargo task when cargo started compiling its package.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<u64>,
    /// A hit whose entry the remote cache supplied in this run.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub remote_hit: bool,
    /// For a task that ran, why, as `cargo xtask why` says it (`--summarize` and `--profile`
    /// only: it reads the task's recent cache entries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<xtask_report::Why>,
}

#[derive(Debug, Serialize)]
struct RunSummary<'a> {
    version: &'a str,
    tasks_requested: &'a [xtask_model::TaskName],
    started_unix_ms: u128,
    duration_ms: u64,
    /// The time before the first task could start (loading, planning, hashing).
    plan_ms: u64,
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
    /// The wall time of the run's cargo calls (the rest of `duration_ms` is the tool's own).
    cargo_ms: u64,
}

/// One finished run, as the summary file describes it.
pub(crate) struct FinishedRun<'a> {
    pub tasks_requested: &'a [xtask_model::TaskName],
    pub started_unix_ms: u128,
    /// The time before the first task could start.
    pub plan_ms: u64,
    pub totals: &'a RunTotals,
    pub records: &'a [TaskRecord],
}

/// Where the summary of a run started at `started_unix_ms` goes: `SummaryPath::At` relative to
/// `directory` (`-C DIR`, as if the tool had been started there), else under `cache_root`.
pub(crate) fn summary_file(
    path: &SummaryPath,
    directory: Option<&Path>,
    cache_root: &Path,
    started_unix_ms: u128,
) -> PathBuf {
    match path {
        SummaryPath::At(p) => match directory {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.clone(),
        },
        SummaryPath::InCache => cache_root
            .join("runs")
            .join(format!("{started_unix_ms}.json")),
    }
}

/// Writes the JSON run summary to `path`, atomically.
pub(crate) fn write_summary(path: &Path, run: &FinishedRun<'_>) -> anyhow::Result<()> {
    let totals = run.totals;
    let summary = RunSummary {
        version: crate::plan::TOOL_VERSION,
        tasks_requested: run.tasks_requested,
        started_unix_ms: run.started_unix_ms,
        duration_ms: totals.elapsed.as_millis() as u64,
        plan_ms: run.plan_ms,
        totals: SummaryTotals {
            tasks: totals.tasks,
            hits: totals.hits,
            ran: totals.succeeded + totals.failed,
            failed: totals.failed,
            skipped: totals.skipped,
            saved_ms: totals.saved.as_millis() as u64,
            cargo_ms: totals.cargo.as_millis() as u64,
        },
        remote: totals.remote.as_ref(),
        changed_during_run: &totals.changed_during_run,
        tasks: run.records,
    };
    let mut text =
        serde_json::to_vec_pretty(&summary).context("failed to encode the run summary")?;
    text.push(b'\n');
    Ok(xtask_util::write_atomically(path, &text)?)
}

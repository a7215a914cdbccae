//! What a run is asked to do, and what it did.

use std::path::PathBuf;

use xtask_model::TaskName;

use crate::affected::Base;
use crate::load::Location;
use crate::plan::CargoTarget;
use crate::report::RunTotals;
use crate::summary::{DryRunFormat, SummaryPath, TaskRecord};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub location: Location,
    pub tasks: Vec<TaskName>,
    /// Package names; empty = every package that has the task.
    pub packages: Vec<String>,
    /// Only packages affected by changes since this base (and their dependents).
    pub affected: Option<Base>,
    /// Ignore cache hits: run everything (results are still stored).
    pub force: bool,
    /// Do not write new cache entries.
    pub no_cache: bool,
    pub dry_run: Option<DryRunFormat>,
    /// Write a JSON run summary there (and the HTML report beside it).
    pub summarize: Option<SummaryPath>,
    /// Write a Chrome trace of the run to this file (relative to `-C DIR` when relative).
    pub profile: Option<PathBuf>,
    pub jobs: usize,
    pub release: bool,
    /// Build for this target with these flags instead of the host (used by `image`).
    pub target: Option<CargoTarget>,
}

impl RunOptions {
    /// `tasks` of every package that has them, in the workspace at `location`, with the cache
    /// read and written, no dry run, no summary, debug profile, host target, one job per core.
    pub fn new(location: Location, tasks: Vec<TaskName>) -> RunOptions {
        RunOptions {
            location,
            tasks,
            packages: Vec::new(),
            affected: None,
            force: false,
            no_cache: false,
            dry_run: None,
            summarize: None,
            profile: None,
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            release: false,
            target: None,
        }
    }
}

#[derive(Debug)]
pub struct RunOutcome {
    pub success: bool,
    pub totals: RunTotals,
    pub summary_path: Option<PathBuf>,
    /// One record per task that finished (hit, ran, failed or skipped), in topological order.
    pub records: Vec<TaskRecord>,
}

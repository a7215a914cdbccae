//! The engine behind every `cargo xtask` command: it loads the workspace model, builds the task
//! graph, hashes every task's inputs, restores cache hits, runs misses (cargo tasks batched
//! into one cargo invocation per task, custom tasks in parallel in topological order), stores
//! successes, and reports. One public function per command, returning a [`CliResult`]: an
//! [`Outcome`] (exit code and the data for stdout) or a [`CliError`] (the error and its exit
//! code); the CLI only parses flags, and its `main` prints and exits.
//!
//! Invariants:
//! - The engine never prints data except through [`stdout`] and never prints status
//!   except through [`report::Reporter`] (stderr).
//! - A failed task is never stored in the cache; a cache failure never fails a run (it warns).
//! - Invalid configuration is reported before anything runs or is written.

mod affected;
mod cache_cmd;
mod cargo;
mod ci;
mod error;
mod facts;
mod fast;
mod freshness;
pub mod generated;
mod graph_cmd;
pub mod image_record;
mod load;
mod observe;
mod outcome;
mod plan;
mod process;
mod progress;
mod recent;
mod remote;
pub mod report;
mod run;
mod shared_metadata;
pub mod stdout;
mod summary;
mod task_outputs;
mod units;
mod visualize;
mod why;

pub use xtask_graph::{Shard, ShardError};
pub use xtask_model::{Package, TaskName, Workspace};

pub use affected::{AffectedOptions, AffectedPackage, BASE_ENV, Base, affected, default_base};
pub use cache_cmd::{CacheAction, cache, human_bytes};
pub use ci::{CiOptions, ci};
pub use error::{CliError, exit_code, exit_code_for};
pub use graph_cmd::{GraphOptions, GraphView, graph};
pub use load::{Location, load_workspace};
pub use outcome::{CliResult, Outcome, job_count};
pub use plan::TOOL_VERSION;
pub use plan::{BUILTIN_GLOBAL_INPUTS, CargoTarget};
pub use process::{cargo_command, host_triple};
pub use run::{RunOptions, RunOutcome, open_cache, run, run_loaded, run_tasks};
pub use stdout::{GraphFormat, render_graph};
pub use summary::{DryRunFormat, SummaryPath, TaskRecord};
pub use visualize::graph_html;
pub use why::{Explanation, Verdict, WhyOptions, explain_task, why};
pub use xtask_report::Why;

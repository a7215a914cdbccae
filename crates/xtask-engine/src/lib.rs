//! The engine behind every `cargo xtask` command: it loads the workspace model, builds the task
//! graph, hashes every task's inputs, restores cache hits, runs misses (cargo tasks batched
//! into one cargo invocation per task, custom tasks in parallel in topological order), stores
//! successes, and reports. One public function per command; the CLI only parses flags.
//!
//! Invariants:
//! - The engine never prints data except through [`output`] (stdout) and never prints status
//!   except through [`report::Reporter`] (stderr).
//! - A failed task is never stored in the cache; a cache failure never fails a run (it warns).
//! - Invalid configuration is reported before anything runs or is written.

mod affected;
mod cache_cmd;
mod cargo;
mod ci;
mod error;
mod fast;
mod freshness;
pub mod generated;
pub mod image_record;
mod load;
mod observe;
pub mod output;
mod outputs;
mod parallel;
mod plan;
mod process;
mod progress;
mod remote;
pub mod report;
mod run;
mod summary;
pub mod timefmt;
mod why;

pub use xtask_model::TaskName;

pub use affected::{AffectedPackage, BASE_ENV, Base, affected, default_base};
pub use cache_cmd::{CacheAction, cache_command, cache_doctor, human_bytes};
pub use ci::{CiOptions, ci};
pub use error::{Refused, UserError, exit_code, exit_code_for};
pub use load::{Location, graph, load_workspace};
pub use output::{GraphFormat, render_graph};
pub use plan::TOOL_VERSION;
pub use plan::{BUILTIN_GLOBAL_INPUTS, CargoTarget};
pub use process::{cargo_command, host_triple};
pub use run::{RunOptions, RunOutcome, open_cache, run, run_loaded};
pub use summary::{DryRunFormat, SummaryPath, TaskRecord};
pub use why::{Explanation, Verdict, WhyOptions, why};

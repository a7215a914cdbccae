//! What a person looks at: a run's self-contained HTML report ([`render_run_html`]), its Chrome
//! trace ([`chrome_trace`], loadable in Perfetto and `chrome://tracing`), and the package or task
//! graph as an interactive HTML page ([`render_graph_html`]).
//!
//! Invariants:
//! - Pure functions of the data types below: no IO, no clock, no processes; the same data
//!   gives the same bytes.
//! - A page is one file that loads nothing: its script, style and data are inline, and its
//!   Content-Security-Policy (`default-src 'none'`) forbids the browser any other load.
//! - The data is embedded as JSON in a `<script type="application/json">` block with `<`, `>`
//!   and `&` escaped, so no task name, path or log line can end the block or inject markup;
//!   the script inserts every text from it as text (`textContent`) or as escaped markup.

mod critical;
mod graph_page;
mod layout;
mod page;
mod run_page;
mod trace;

use serde::Serialize;

pub use critical::critical_path;
pub use graph_page::render_graph_html;
pub use layout::{Layout, NodePosition, layout};
pub use run_page::render_run_html;
pub use trace::chrome_trace;

/// One finished run, as the report shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunData {
    /// The command, e.g. `cargo xtask build`.
    pub title: String,
    /// When the run started, as text (RFC 3339).
    pub started: String,
    /// The whole run's wall time.
    pub duration_ms: u64,
    /// The time spent before the first task could start: loading, planning, hashing.
    pub plan_ms: u64,
    /// The sum of the original durations of the cache hits.
    pub saved_ms: u64,
    /// The wall time of the run's cargo calls.
    pub cargo_ms: u64,
    /// Every task that ended (hit, ran, failed or skipped), dependencies first.
    pub tasks: Vec<TaskData>,
}

/// One task of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskData {
    /// `package:task`.
    pub id: String,
    pub package: String,
    pub task: String,
    pub hash: String,
    pub status: TaskStatus,
    /// When it started, from the start of the run.
    pub start_ms: u64,
    /// Its own time (a hit: the restore; a cargo task: its own part of the cargo call).
    pub duration_ms: u64,
    /// For a hit, the original run's duration.
    pub saved_ms: u64,
    /// The tasks it depends on (ids), task-graph edges.
    pub dependencies: Vec<String>,
    /// For cargo tasks, the workspace packages it builds against in its cargo call.
    pub builds_against: Vec<String>,
    /// For a task that ran, why (as `cargo xtask why` says it).
    pub why: Option<Why>,
}

/// Why a task ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Why {
    /// The hash of the earlier cached run it was compared with, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compared_with: Option<String>,
    /// What changed since (`input changed: src/lib.rs`), or the reason there is no comparison.
    pub changes: Vec<String>,
}

/// How a task ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskStatus {
    /// Restored from the local cache.
    #[default]
    Hit,
    /// Restored from an entry the remote cache supplied in this run.
    RemoteHit,
    /// Ran and succeeded.
    Miss,
    /// Ran and failed.
    Failed,
    /// Not run: a dependency failed.
    Skipped,
}

impl TaskStatus {
    /// The word the report shows.
    pub fn word(self) -> &'static str {
        match self {
            TaskStatus::Hit => "hit",
            TaskStatus::RemoteHit => "remote hit",
            TaskStatus::Miss => "miss",
            TaskStatus::Failed => "failed",
            TaskStatus::Skipped => "skipped",
        }
    }
}

/// A package graph or a task graph.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphData {
    /// What the page shows, e.g. `package graph` or `task graph: build`.
    pub title: String,
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
    /// The git ref affected packages are computed against, when they are.
    pub affected_base: Option<String>,
}

/// A package or a task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphNode {
    /// The name shown and searched (`api`, `api:build`).
    pub id: String,
    /// Lines of detail shown when it is selected (`version 0.1.0`, `path crates/a`).
    pub details: Vec<String>,
    /// Why it is affected, when it is.
    pub affected: Option<String>,
}

/// `from` depends on `to` (indices into [`GraphData::nodes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphEdge {
    pub from: usize,
    pub to: usize,
    /// Drawn on the edge and styles it: `build`, `dev`, a platform; `None` for a plain edge.
    pub label: Option<String>,
    /// Whether the edge's kind cannot form a cycle (cargo's normal and build edges, task
    /// edges): only those decide the layout's columns. Dev edges may point back.
    pub orders: bool,
}

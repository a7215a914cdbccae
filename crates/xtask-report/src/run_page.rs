//! The run report: a summary of the run, a timeline of every task (a row each, a bar from its
//! start for its own time, coloured by how it ended), the critical path, and why each task
//! that ran did, with a detail panel for the task clicked.

use std::collections::HashMap;

use serde::Serialize;

use crate::page::{Page, render};
use crate::{RunData, TaskStatus, Why, critical_path};

const CSS: &str = include_str!("assets/run.css");
const JS: &str = include_str!("assets/run.js");

const BODY: &str = r#"<header>
<h1 id="title"></h1>
<p class="sub" id="subtitle"></p>
<div class="stats" id="stats"></div>
</header>
<main class="run">
<section class="panel" id="timeline-panel">
<div class="toolbar">
<h2>Timeline</h2>
<span class="legend" id="legend"></span>
<span class="grow"></span>
<input type="search" id="filter" placeholder="filter tasks" aria-label="filter tasks">
<button type="button" id="zoom-out" title="zoom out">&minus;</button>
<button type="button" id="zoom-fit" title="fit the run">fit</button>
<button type="button" id="zoom-in" title="zoom in">+</button>
</div>
<div class="scroll" id="timeline"></div>
</section>
<aside class="panel" id="detail">
<h2>Task</h2>
<p class="hint">Click a task in the timeline.</p>
</aside>
<section class="panel" id="critical-panel">
<h2>Critical path</h2>
<p class="hint" id="critical-summary"></p>
<ol id="critical"></ol>
</section>
<section class="panel" id="why-panel">
<h2>Why tasks ran</h2>
<div id="why"></div>
</section>
</main>
"#;

/// The report of `run` as one self-contained HTML page.
pub fn render_run_html(run: &RunData) -> String {
    render(&Page {
        title: &format!("{} — run report", run.title),
        body: BODY,
        css: CSS,
        js: JS,
        data: &page_data(run),
    })
}

/// The data the page's script reads: compact, with dependencies as indices into `tasks`.
#[derive(Debug, Serialize)]
pub(crate) struct PageData<'a> {
    title: &'a str,
    started: &'a str,
    duration_ms: u64,
    plan_ms: u64,
    saved_ms: u64,
    cargo_ms: u64,
    counts: Counts,
    /// Indices into `tasks`, first task first.
    critical_path: Vec<usize>,
    tasks: Vec<PageTask<'a>>,
}

#[derive(Debug, Default, Serialize)]
struct Counts {
    hit: usize,
    remote_hit: usize,
    miss: usize,
    failed: usize,
    skipped: usize,
}

#[derive(Debug, Serialize)]
struct PageTask<'a> {
    id: &'a str,
    status: TaskStatus,
    start: u64,
    duration: u64,
    #[serde(skip_serializing_if = "is_zero")]
    saved: u64,
    hash: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    deps: Vec<usize>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    builds_against: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<&'a Why>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

pub(crate) fn page_data(run: &RunData) -> PageData<'_> {
    let index: HashMap<&str, usize> = run
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    let mut counts = Counts::default();
    for task in &run.tasks {
        *match task.status {
            TaskStatus::Hit => &mut counts.hit,
            TaskStatus::RemoteHit => &mut counts.remote_hit,
            TaskStatus::Miss => &mut counts.miss,
            TaskStatus::Failed => &mut counts.failed,
            TaskStatus::Skipped => &mut counts.skipped,
        } += 1;
    }
    PageData {
        title: &run.title,
        started: &run.started,
        duration_ms: run.duration_ms,
        plan_ms: run.plan_ms,
        saved_ms: run.saved_ms,
        cargo_ms: run.cargo_ms,
        counts,
        critical_path: critical_path(&run.tasks),
        tasks: run
            .tasks
            .iter()
            .map(|t| PageTask {
                id: &t.id,
                status: t.status,
                start: t.start_ms,
                duration: t.duration_ms,
                saved: t.saved_ms,
                hash: &t.hash,
                deps: t
                    .dependencies
                    .iter()
                    .filter_map(|d| index.get(d.as_str()).copied())
                    .collect(),
                builds_against: &t.builds_against,
                why: t.why.as_ref(),
            })
            .collect(),
    }
}

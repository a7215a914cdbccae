//! What a person looks at, made by `xtask-report` from the engine's records: the HTML report
//! written beside the `--summarize` JSON (same stem, `.html`), the `--profile` Chrome trace,
//! and `graph --format html`. This module only converts and writes; the pages and the trace
//! are pure functions of `xtask-report`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use xtask_graph::{AffectedReason, GraphRequest, TaskGraph};
use xtask_model::{DepKind, PackageIndex, TaskName, Workspace};
use xtask_report::{GraphData, GraphEdge, GraphNode, RunData, TaskData, TaskStatus as Status};

use crate::affected::{Base, affected_since, default_base};
use crate::load::{Location, load_workspace};
use crate::report::TaskStatus;
use crate::summary::FinishedRun;

/// The HTML report's path for the JSON summary at `summary`: the same stem, `.html` (or
/// `.report.html` when the summary itself is named `.html`).
pub(crate) fn report_path(summary: &Path) -> PathBuf {
    let html = summary.with_extension("html");
    if html == summary {
        summary.with_extension("report.html")
    } else {
        html
    }
}

/// Writes the run's HTML report to `path`, atomically.
pub(crate) fn write_run_report(path: &Path, run: &FinishedRun<'_>) -> anyhow::Result<()> {
    let html = xtask_report::render_run_html(&run_data(run));
    Ok(xtask_util::write_atomically(path, html.as_bytes())?)
}

/// Writes the run's Chrome trace (`--profile FILE`) to `path`, atomically.
pub(crate) fn write_profile(path: &Path, run: &FinishedRun<'_>) -> anyhow::Result<()> {
    let trace = xtask_report::chrome_trace(&run_data(run));
    Ok(xtask_util::write_atomically(path, trace.as_bytes())?)
}

/// The report's view of a finished run.
pub(crate) fn run_data(run: &FinishedRun<'_>) -> RunData {
    let commands: Vec<String> = run
        .tasks_requested
        .iter()
        .map(|task| match task.cargo_task() {
            Some(_) => task.to_string(),
            None => format!("run {task}"),
        })
        .collect();
    let totals = run.totals;
    RunData {
        title: format!("cargo xtask {}", commands.join(" ")),
        started: xtask_util::timefmt::rfc3339((run.started_unix_ms / 1000) as i64),
        duration_ms: totals.elapsed.as_millis() as u64,
        plan_ms: run.plan_ms,
        saved_ms: totals.saved.as_millis() as u64,
        cargo_ms: totals.cargo.as_millis() as u64,
        tasks: run
            .records
            .iter()
            .map(|r| TaskData {
                id: r.task_id.clone(),
                package: r.package.clone(),
                task: r.task.clone(),
                hash: r.hash.clone(),
                status: match r.status {
                    TaskStatus::Hit if r.remote_hit => Status::RemoteHit,
                    TaskStatus::Hit => Status::Hit,
                    TaskStatus::Miss => Status::Miss,
                    TaskStatus::Failed => Status::Failed,
                    TaskStatus::Skipped => Status::Skipped,
                },
                start_ms: r.start_ms.unwrap_or(0),
                duration_ms: r.duration_ms,
                saved_ms: r.saved_ms,
                dependencies: r.dependencies.clone(),
                builds_against: r.builds_against.clone(),
                why: r.why.clone(),
            })
            .collect(),
    }
}

/// `graph --format html`: the package graph, or the task graph of `tasks` when given, as an
/// interactive page. With `affected`, the packages changed since that base and their
/// dependents (their tasks, in a task graph) are coloured, each with its reason.
pub fn graph_html(
    location: &Location,
    tasks: &[TaskName],
    affected: Option<&Base>,
) -> anyhow::Result<String> {
    let workspace = load_workspace(location)?;
    let all: Vec<PackageIndex> = (0..workspace.packages.len()).collect();
    let graph = TaskGraph::build(
        &workspace,
        &GraphRequest {
            tasks,
            packages: &all,
        },
    )?;
    let affected = match affected {
        Some(base) => {
            let name = match base {
                Base::Ref(name) => name.clone(),
                Base::Default => default_base(&workspace.root)?,
            };
            Some((name, affected_since(&workspace, base)?))
        }
        None => None,
    };
    let data = if tasks.is_empty() {
        package_graph(&workspace, affected)
    } else {
        task_graph(&workspace, &graph, tasks, affected)
    };
    Ok(xtask_report::render_graph_html(&data))
}

type Affected = Option<(String, BTreeMap<PackageIndex, AffectedReason>)>;

fn package_graph(workspace: &Workspace, affected: Affected) -> GraphData {
    let reason = |p: PackageIndex| {
        affected
            .as_ref()
            .and_then(|(_, reasons)| reasons.get(&p))
            .map(ToString::to_string)
    };
    let nodes = workspace
        .packages
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let mut details = vec![format!("version {}", p.version)];
            if !p.relative_dir.is_empty() {
                details.push(format!("path {}", p.relative_dir));
            }
            let kinds: Vec<&str> = p
                .targets
                .iter()
                .flat_map(|t| t.kinds.iter().map(String::as_str))
                .collect();
            details.push(format!("targets {}", dedup(kinds).join(", ")));
            let tasks: Vec<&str> = p.tasks.keys().map(TaskName::as_str).collect();
            details.push(format!("tasks {}", tasks.join(", ")));
            GraphNode {
                id: p.name.clone(),
                details,
                affected: reason(index),
            }
        })
        .collect();
    let edges = workspace
        .packages
        .iter()
        .enumerate()
        .flat_map(|(from, p)| {
            p.dependencies.iter().map(move |e| {
                let kind = (e.kind != DepKind::Normal).then(|| e.kind.name().to_string());
                let label = match (kind, &e.platform) {
                    (None, None) => None,
                    (Some(kind), None) => Some(kind),
                    (None, Some(platform)) => Some(platform.clone()),
                    (Some(kind), Some(platform)) => Some(format!("{kind}, {platform}")),
                };
                GraphEdge {
                    from,
                    to: e.to,
                    label,
                    // Dev edges may point back (a dev-dependency on a dependent).
                    orders: e.kind != DepKind::Dev,
                }
            })
        })
        .collect();
    GraphData {
        title: "package graph".to_string(),
        nodes,
        edges,
        affected_base: affected.map(|(base, _)| base),
    }
}

fn task_graph(
    workspace: &Workspace,
    graph: &TaskGraph,
    tasks: &[TaskName],
    affected: Affected,
) -> GraphData {
    let nodes = graph
        .nodes
        .iter()
        .enumerate()
        .map(|(index, node)| {
            let package = &workspace.packages[node.package];
            let kind = if node.task.cargo_task().is_some() {
                "cargo task"
            } else {
                "custom task"
            };
            GraphNode {
                id: graph.label(workspace, index),
                details: vec![format!("package {}", package.name), kind.to_string()],
                affected: affected
                    .as_ref()
                    .and_then(|(_, reasons)| reasons.get(&node.package))
                    .map(ToString::to_string),
            }
        })
        .collect();
    let edges = graph
        .nodes
        .iter()
        .enumerate()
        .flat_map(|(from, node)| {
            node.dependencies.iter().map(move |&to| GraphEdge {
                from,
                to,
                label: None,
                orders: true,
            })
        })
        .collect();
    let names: Vec<&str> = tasks.iter().map(TaskName::as_str).collect();
    GraphData {
        title: format!("task graph: {}", names.join(", ")),
        nodes,
        edges,
        affected_base: affected.map(|(base, _)| base),
    }
}

fn dedup(mut items: Vec<&str>) -> Vec<&str> {
    items.sort_unstable();
    items.dedup();
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_sits_beside_the_summary_under_the_same_stem() {
        assert_eq!(
            report_path(Path::new("runs/1.json")),
            Path::new("runs/1.html")
        );
        assert_eq!(report_path(Path::new("summary")), Path::new("summary.html"));
        assert_eq!(
            report_path(Path::new("out.html")),
            Path::new("out.report.html")
        );
    }
}

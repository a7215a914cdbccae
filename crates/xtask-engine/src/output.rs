//! Data output on stdout: dry runs and the graph in dot, mermaid or JSON. Renderers are pure
//! functions returning strings; only the `print_*` functions write.

use std::io::Write;

use anyhow::Context;
use serde::Serialize;
use xtask_graph::TaskGraph;
use xtask_model::Workspace;

use crate::summary::{DryRunFormat, TaskRecord};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFormat {
    Dot,
    Mermaid,
    Json,
}

pub(crate) fn print_dry_run(records: &[TaskRecord], format: DryRunFormat) -> anyhow::Result<()> {
    let text = match format {
        DryRunFormat::Json => {
            let mut text = serde_json::to_string_pretty(&serde_json::json!({ "tasks": records }))
                .context("failed to encode the dry run")?;
            text.push('\n');
            text
        }
        DryRunFormat::Text => {
            let width = records
                .iter()
                .map(|r| r.task_id.len())
                .max()
                .unwrap_or(4)
                .max(4);
            let mut text = format!(
                "{:width$}  {:12}  {:5}  {:>6}  dependencies\n",
                "task", "hash", "cache", "inputs"
            );
            for r in records {
                let cache = if r.status == crate::report::TaskStatus::Hit {
                    "hit"
                } else {
                    "miss"
                };
                // Task edges, then the packages a cargo task builds against.
                let dependencies: Vec<&str> = r
                    .dependencies
                    .iter()
                    .chain(&r.builds_against)
                    .map(String::as_str)
                    .collect();
                text.push_str(&format!(
                    "{:width$}  {:12}  {:5}  {:>6}  {}\n",
                    r.task_id,
                    &r.hash[..12.min(r.hash.len())],
                    cache,
                    r.inputs_count,
                    dependencies.join(", ")
                ));
            }
            text
        }
    };
    write_stdout(&text)
}

pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .context("failed to write to stdout")?;
    stdout.flush().context("failed to write to stdout")
}

#[derive(Serialize)]
struct JsonGraph<'a> {
    packages: Vec<JsonPackage<'a>>,
    tasks: Vec<JsonTask>,
}

#[derive(Serialize)]
struct JsonPackage<'a> {
    name: &'a str,
    version: &'a str,
    path: &'a str,
    targets: Vec<JsonTarget<'a>>,
    features: Vec<&'a str>,
    dependencies: Vec<JsonEdge<'a>>,
    tasks: Vec<&'a str>,
}

#[derive(Serialize)]
struct JsonTarget<'a> {
    name: &'a str,
    kinds: &'a [String],
}

#[derive(Serialize)]
struct JsonEdge<'a> {
    package: &'a str,
    kind: &'static str,
    /// `cfg(...)` or a triple, for a target-specific dependency only.
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonTask {
    id: String,
    dependencies: Vec<String>,
}

/// Renders the package graph (and, when `graph` has nodes, the task graph).
pub fn render_graph(workspace: &Workspace, graph: &TaskGraph, format: GraphFormat) -> String {
    let tasks: Vec<(String, Vec<String>)> = graph
        .topological_order
        .iter()
        .map(|&n| {
            (
                graph.label(workspace, n),
                graph.nodes[n]
                    .dependencies
                    .iter()
                    .map(|&d| graph.label(workspace, d))
                    .collect(),
            )
        })
        .collect();
    match format {
        GraphFormat::Json => {
            let json = JsonGraph {
                packages: workspace
                    .packages
                    .iter()
                    .map(|p| JsonPackage {
                        name: &p.name,
                        version: &p.version,
                        path: &p.relative_dir,
                        targets: p
                            .targets
                            .iter()
                            .map(|t| JsonTarget {
                                name: &t.name,
                                kinds: &t.kinds,
                            })
                            .collect(),
                        features: p.features.keys().map(String::as_str).collect(),
                        dependencies: p
                            .dependencies
                            .iter()
                            .map(|e| JsonEdge {
                                package: &workspace.packages[e.to].name,
                                kind: e.kind.name(),
                                platform: e.platform.as_deref(),
                            })
                            .collect(),
                        tasks: p.tasks.keys().map(|task| task.as_str()).collect(),
                    })
                    .collect(),
                tasks: tasks
                    .into_iter()
                    .map(|(id, dependencies)| JsonTask { id, dependencies })
                    .collect(),
            };
            let mut text = serde_json::to_string_pretty(&json).unwrap_or_default();
            text.push('\n');
            text
        }
        GraphFormat::Dot => {
            let mut text = String::from("digraph workspace {\n  rankdir=LR;\n");
            if tasks.is_empty() {
                for p in &workspace.packages {
                    text.push_str(&format!("  \"{}\";\n", p.name));
                    for e in &p.dependencies {
                        let line = match e.kind {
                            xtask_model::DepKind::Normal => "",
                            xtask_model::DepKind::Build => "style=dashed, ",
                            xtask_model::DepKind::Dev => "style=dotted, ",
                        };
                        let style = edge_label(e)
                            .map(|label| {
                                format!(" [{line}label=\"{}\"]", label.replace('"', "\\\""))
                            })
                            .unwrap_or_default();
                        text.push_str(&format!(
                            "  \"{}\" -> \"{}\"{style};\n",
                            p.name, workspace.packages[e.to].name
                        ));
                    }
                }
            } else {
                for (id, deps) in &tasks {
                    text.push_str(&format!("  \"{id}\";\n"));
                    for d in deps {
                        text.push_str(&format!("  \"{id}\" -> \"{d}\";\n"));
                    }
                }
            }
            text.push_str("}\n");
            text
        }
        GraphFormat::Mermaid => {
            let mut text = String::from("graph LR\n");
            let id = |s: &str| s.replace([':', '-'], "_");
            if tasks.is_empty() {
                for p in &workspace.packages {
                    text.push_str(&format!("  {}[\"{}\"]\n", id(&p.name), p.name));
                    for e in &p.dependencies {
                        let arrow = match (e.kind, edge_label(e)) {
                            (xtask_model::DepKind::Normal, None) => "-->".to_string(),
                            (kind, Some(label)) if e.platform.is_some() => {
                                let arrow = if kind == xtask_model::DepKind::Normal {
                                    "-->"
                                } else {
                                    "-.->"
                                };
                                format!("{arrow}|\"{}\"|", label.replace('"', "#quot;"))
                            }
                            (kind, _) => format!("-.->|{}|", kind.name()),
                        };
                        text.push_str(&format!(
                            "  {} {arrow} {}\n",
                            id(&p.name),
                            id(&workspace.packages[e.to].name)
                        ));
                    }
                }
            } else {
                for (task, deps) in &tasks {
                    text.push_str(&format!("  {}[\"{task}\"]\n", id(task)));
                    for d in deps {
                        text.push_str(&format!("  {} --> {}\n", id(task), id(d)));
                    }
                }
            }
            text
        }
    }
}

/// The label of a package-graph edge: its kind unless normal, and its platform when it has
/// one (`build, cfg(unix)`); `None` for a plain normal edge.
fn edge_label(edge: &xtask_model::Edge) -> Option<String> {
    let kind = (edge.kind != xtask_model::DepKind::Normal).then(|| edge.kind.name());
    match (kind, edge.platform.as_deref()) {
        (None, None) => None,
        (Some(kind), None) => Some(kind.to_string()),
        (None, Some(platform)) => Some(platform.to_string()),
        (Some(kind), Some(platform)) => Some(format!("{kind}, {platform}")),
    }
}

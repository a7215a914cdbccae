//! `graph`: the package graph, or the task graph of the tasks asked for, in dot, mermaid or
//! JSON (the renderers are in [`crate::stdout`]), or as the interactive HTML page
//! ([`crate::visualize`]).

use xtask_model::TaskName;

use crate::affected::Base;
use crate::load::{Location, load_workspace};
use crate::outcome::{CliResult, Outcome};
use crate::stdout::{GraphFormat, render_graph};

/// What `graph --format` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphView {
    /// dot, mermaid or JSON.
    Text(GraphFormat),
    /// The interactive HTML page.
    Html,
}

/// `cargo xtask graph [--task TASK]... [--format F] [--affected[=REF]]`.
#[derive(Debug, Clone)]
pub struct GraphOptions {
    pub location: Location,
    /// The task graph of these tasks; empty: the package graph.
    pub tasks: Vec<TaskName>,
    pub view: GraphView,
    /// With [`GraphView::Html`], the packages changed since this base and their dependents are
    /// coloured; the text formats ignore it.
    pub affected: Option<Base>,
}

/// `graph`: the graph on stdout.
pub fn graph(options: &GraphOptions) -> CliResult {
    let format = match options.view {
        GraphView::Text(format) => format,
        GraphView::Html => {
            return Ok(Outcome::print(crate::visualize::graph_html(
                &options.location,
                &options.tasks,
                options.affected.as_ref(),
            )?));
        }
    };
    let workspace = load_workspace(&options.location)?;
    let all: Vec<usize> = (0..workspace.packages.len()).collect();
    let graph = xtask_graph::TaskGraph::build(
        &workspace,
        &xtask_graph::GraphRequest {
            tasks: &options.tasks,
            packages: &all,
        },
    )?;
    Ok(Outcome::print(render_graph(&workspace, &graph, format)))
}

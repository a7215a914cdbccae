//! The graph page: the package graph (or a task graph) laid out in columns, to zoom and pan,
//! search a node, and click one to highlight everything it depends on and everything that
//! depends on it; affected packages are coloured.

use serde::Serialize;

use crate::GraphData;
use crate::layout::{NODE_HEIGHT, layout};
use crate::page::{Page, render};

const CSS: &str = include_str!("assets/graph.css");
const JS: &str = include_str!("assets/graph.js");

const BODY: &str = r#"<header>
<h1 id="title"></h1>
<p class="sub" id="subtitle"></p>
</header>
<main class="graph">
<section class="panel" id="graph-panel">
<div class="toolbar">
<input type="search" id="search" list="names" placeholder="search" aria-label="search">
<datalist id="names"></datalist>
<span class="legend" id="legend"></span>
<span class="grow"></span>
<button type="button" id="zoom-out" title="zoom out">&minus;</button>
<button type="button" id="zoom-fit" title="fit the graph">fit</button>
<button type="button" id="zoom-in" title="zoom in">+</button>
</div>
<div class="canvas" id="canvas"></div>
</section>
<aside class="panel" id="detail">
<h2>Selection</h2>
<p class="hint">Click a node, or search one by name: what it depends on and what depends on it are highlighted.</p>
</aside>
</main>
"#;

/// `graph` as one self-contained, interactive HTML page.
pub fn render_graph_html(graph: &GraphData) -> String {
    render(&Page {
        title: &graph.title,
        body: BODY,
        css: CSS,
        js: JS,
        data: &page_data(graph),
    })
}

/// The data the page's script reads: every node with its box, every edge by indices.
#[derive(Debug, Serialize)]
pub(crate) struct PageData<'a> {
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    affected_base: Option<&'a str>,
    width: u32,
    height: u32,
    node_height: u32,
    nodes: Vec<PageNode<'a>>,
    /// `[from, to, label]`: `from` depends on `to`; the label is empty for a plain edge.
    edges: Vec<(usize, usize, &'a str)>,
}

#[derive(Debug, Serialize)]
struct PageNode<'a> {
    id: &'a str,
    x: u32,
    y: u32,
    w: u32,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    details: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    affected: Option<&'a str>,
}

pub(crate) fn page_data(graph: &GraphData) -> PageData<'_> {
    let placed = layout(graph);
    let count = graph.nodes.len();
    PageData {
        title: &graph.title,
        affected_base: graph.affected_base.as_deref(),
        width: placed.width,
        height: placed.height,
        node_height: NODE_HEIGHT,
        nodes: graph
            .nodes
            .iter()
            .zip(&placed.nodes)
            .map(|(node, position)| PageNode {
                id: &node.id,
                x: position.x,
                y: position.y,
                w: position.width,
                details: &node.details,
                affected: node.affected.as_deref(),
            })
            .collect(),
        edges: graph
            .edges
            .iter()
            .filter(|e| e.from < count && e.to < count)
            .map(|e| (e.from, e.to, e.label.as_deref().unwrap_or("")))
            .collect(),
    }
}

//! A layered layout of a graph, computed once in Rust so the page only draws: each node gets a
//! column (dependents left, their dependencies to the right, as `graph --format dot` lays out
//! with `rankdir=LR`), then an order within its column that keeps edges short (barycenter
//! sweeps, as in Sugiyama's method), then coordinates.

use std::collections::BTreeSet;

use crate::GraphData;

/// Where one node is drawn: its box's top left corner and width, in page units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePosition {
    pub column: usize,
    pub x: u32,
    pub y: u32,
    pub width: u32,
}

/// The positions of every node (in the order of [`GraphData::nodes`]) and the drawing's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub nodes: Vec<NodePosition>,
    pub width: u32,
    pub height: u32,
}

/// A node box's height; rows are [`ROW_HEIGHT`] apart.
pub const NODE_HEIGHT: u32 = 26;
const ROW_HEIGHT: u32 = 38;
const COLUMN_GAP: u32 = 90;
const MARGIN: u32 = 20;
/// About the width of one character of the page's 12px sans-serif font.
const CHAR_WIDTH: u32 = 7;
const MIN_WIDTH: u32 = 60;
const MAX_WIDTH: u32 = 260;
const SWEEPS: usize = 4;

/// Lays out `graph`. Deterministic: the same graph gives the same layout.
pub fn layout(graph: &GraphData) -> Layout {
    let count = graph.nodes.len();
    let columns = columns(graph);
    let column_count = columns.iter().max().map_or(0, |&c| c + 1);
    let mut order: Vec<Vec<usize>> = vec![Vec::new(); column_count];
    for (node, &column) in columns.iter().enumerate() {
        order[column].push(node);
    }
    let neighbours = neighbours(graph);
    for sweep in 0..SWEEPS {
        // Left to right, placing each column by the column before it, then back.
        let forward = sweep % 2 == 0;
        let sequence: Vec<usize> = if forward {
            (1..column_count).collect()
        } else {
            (0..column_count.saturating_sub(1)).rev().collect()
        };
        for column in sequence {
            let reference = if forward { column - 1 } else { column + 1 };
            let mut position = vec![f64::NAN; count];
            for (row, &node) in order[reference].iter().enumerate() {
                position[node] = row as f64;
            }
            let mut keyed: Vec<(f64, usize, usize)> = order[column]
                .iter()
                .enumerate()
                .map(|(row, &node)| {
                    let placed: Vec<f64> = neighbours[node]
                        .iter()
                        .map(|&n| position[n])
                        .filter(|p| !p.is_nan())
                        .collect();
                    let key = if placed.is_empty() {
                        row as f64
                    } else {
                        placed.iter().sum::<f64>() / placed.len() as f64
                    };
                    (key, row, node)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            order[column] = keyed.into_iter().map(|(_, _, node)| node).collect();
        }
    }
    let widths: Vec<u32> = graph
        .nodes
        .iter()
        .map(|n| (n.id.chars().count() as u32 * CHAR_WIDTH + 20).clamp(MIN_WIDTH, MAX_WIDTH))
        .collect();
    let tallest = order.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let mut nodes = vec![
        NodePosition {
            column: 0,
            x: 0,
            y: 0,
            width: 0
        };
        count
    ];
    let mut x = MARGIN;
    for (column, members) in order.iter().enumerate() {
        let column_width = members.iter().map(|&n| widths[n]).max().unwrap_or(0);
        // Shorter columns are centred on the tallest.
        let offset = (tallest - members.len() as u32) * ROW_HEIGHT / 2;
        for (row, &node) in members.iter().enumerate() {
            nodes[node] = NodePosition {
                column,
                x,
                y: MARGIN + offset + row as u32 * ROW_HEIGHT,
                width: widths[node],
            };
        }
        x += column_width + COLUMN_GAP;
    }
    Layout {
        nodes,
        width: (x + MARGIN).saturating_sub(COLUMN_GAP).max(2 * MARGIN),
        height: MARGIN * 2 + tallest.saturating_sub(1) * ROW_HEIGHT + NODE_HEIGHT,
    }
}

/// Each node's column: 0 for nodes nothing depends on, else one more than the column of
/// every dependent (longest path, over the edges that order). Nodes on a cycle of ordering
/// edges (bad data) keep the column their other dependents gave them.
fn columns(graph: &GraphData) -> Vec<usize> {
    let count = graph.nodes.len();
    let ordering: Vec<(usize, usize)> = graph
        .edges
        .iter()
        .filter(|e| e.orders && e.from != e.to && e.from < count && e.to < count)
        .map(|e| (e.from, e.to))
        .collect();
    let mut dependents = vec![0usize; count];
    let mut dependencies: Vec<Vec<usize>> = vec![Vec::new(); count];
    for &(from, to) in &ordering {
        dependents[to] += 1;
        dependencies[from].push(to);
    }
    let mut column = vec![0usize; count];
    let mut ready: BTreeSet<usize> = (0..count).filter(|&n| dependents[n] == 0).collect();
    let mut done = vec![false; count];
    loop {
        let next = match ready.pop_first() {
            Some(node) => node,
            // What is left is on a cycle: take the first, as if its remaining dependents
            // were not there.
            None => match (0..count).find(|&n| !done[n]) {
                Some(node) => node,
                None => break,
            },
        };
        if done[next] {
            continue;
        }
        done[next] = true;
        for &dependency in &dependencies[next] {
            column[dependency] = column[dependency].max(column[next] + 1);
            dependents[dependency] = dependents[dependency].saturating_sub(1);
            if dependents[dependency] == 0 && !done[dependency] {
                ready.insert(dependency);
            }
        }
    }
    column
}

/// Each node's neighbours over every edge, both directions.
fn neighbours(graph: &GraphData) -> Vec<Vec<usize>> {
    let count = graph.nodes.len();
    let mut neighbours = vec![Vec::new(); count];
    for edge in &graph.edges {
        if edge.from < count && edge.to < count && edge.from != edge.to {
            neighbours[edge.from].push(edge.to);
            neighbours[edge.to].push(edge.from);
        }
    }
    neighbours
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GraphEdge, GraphNode};

    fn graph(nodes: &[&str], edges: &[(usize, usize, bool)]) -> GraphData {
        GraphData {
            nodes: nodes
                .iter()
                .map(|id| GraphNode {
                    id: id.to_string(),
                    ..GraphNode::default()
                })
                .collect(),
            edges: edges
                .iter()
                .map(|&(from, to, orders)| GraphEdge {
                    from,
                    to,
                    label: None,
                    orders,
                })
                .collect(),
            ..GraphData::default()
        }
    }

    #[test]
    fn dependents_left_dependencies_right_by_longest_path() {
        // app -> lib -> core, app -> core: core is right of lib.
        let g = graph(
            &["core", "lib", "app"],
            &[(2, 1, true), (1, 0, true), (2, 0, true)],
        );
        let columns: Vec<usize> = layout(&g).nodes.iter().map(|p| p.column).collect();
        assert_eq!(columns, [2, 1, 0]);
    }

    #[test]
    fn a_dev_edge_back_does_not_change_the_columns_and_a_cycle_ends() {
        let g = graph(&["a", "b"], &[(0, 1, true), (1, 0, false)]);
        let columns: Vec<usize> = layout(&g).nodes.iter().map(|p| p.column).collect();
        assert_eq!(columns, [0, 1]);
        let cyclic = graph(
            &["a", "b", "c"],
            &[(0, 1, true), (1, 0, true), (2, 0, true)],
        );
        assert_eq!(layout(&cyclic).nodes.len(), 3);
    }

    #[test]
    fn barycenter_sweeps_uncross_two_parallel_chains() {
        // Column 0: a, b; column 1: y (a's), x (b's) given crossed in input order.
        let g = graph(&["a", "b", "x", "y"], &[(0, 3, true), (1, 2, true)]);
        let placed = layout(&g);
        let (a, b, x, y) = (
            placed.nodes[0],
            placed.nodes[1],
            placed.nodes[2],
            placed.nodes[3],
        );
        assert!(a.y < b.y);
        assert!(y.y < x.y, "y follows a to the top: {placed:?}");
    }

    #[test]
    fn coordinates_fit_the_drawing_and_widths_follow_the_names() {
        let g = graph(&["a", "a-much-longer-package-name"], &[(0, 1, true)]);
        let placed = layout(&g);
        for p in &placed.nodes {
            assert!(p.x + p.width <= placed.width, "{placed:?}");
            assert!(p.y + NODE_HEIGHT <= placed.height, "{placed:?}");
        }
        assert_eq!(placed.nodes[0].width, MIN_WIDTH);
        assert!(placed.nodes[1].width > MIN_WIDTH);
        assert_eq!(layout(&GraphData::default()).nodes.len(), 0);
    }
}

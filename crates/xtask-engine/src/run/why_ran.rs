//! Why each task about to run will, as `cargo xtask why` says it: the key's changes since the
//! closest of its recent cached runs. Computed right after the lookup, before this run's
//! results change the records of recent runs, and only when a report asks for it
//! (`--summarize`, `--profile`): each miss reads up to 16 cache entries.

use std::collections::HashSet;

use xtask_report::Why;
use xtask_util::parallel_map;

use super::cache::{Cache, Lookup};
use super::context::Run;
use super::schedule::Node;

/// Per node: why it will run (`None` for the hits).
pub(crate) fn why_ran(run: &Run<'_>, cache: &Cache, lookup: &Lookup) -> Vec<Option<Why>> {
    let hits: HashSet<Node> = lookup.hits.iter().map(|hit| hit.node).collect();
    let misses: Vec<Node> = (0..run.graph.nodes.len())
        .filter(|node| !hits.contains(node))
        .collect();
    let reasons = parallel_map(&misses, run.options.jobs.max(2), |&node| {
        reason(run, cache, lookup, node)
    });
    let mut why = vec![None; run.graph.nodes.len()];
    for (node, reason) in misses.into_iter().zip(reasons) {
        why[node] = Some(reason);
    }
    why
}

fn reason(run: &Run<'_>, cache: &Cache, lookup: &Lookup, node: Node) -> Why {
    let task = &run.graph.nodes[node];
    let hash = &run.planned[node].hash;
    if !task.def.cache {
        return sentence("`cache = false`: it always runs");
    }
    if run.options.force {
        return sentence("--force: cache hits are ignored");
    }
    if let Some(change) = lookup.not_used.get(&node) {
        return Why {
            compared_with: Some(hash.clone()),
            changes: vec![format!("cache entry not used: {change}")],
        };
    }
    let package = &run.workspace.packages[task.package].name;
    let key = &run.planned[node].key;
    match crate::recent::changes_since_closest(&cache.local, package, &task.task, key) {
        Ok(Some((previous, changes))) if changes.is_empty() => Why {
            compared_with: Some(previous),
            changes: vec!["its cache entry could not be used (see the run's warnings)".into()],
        },
        Ok(Some((previous, changes))) => Why {
            compared_with: Some(previous),
            changes,
        },
        Ok(None) => sentence("no earlier cached run to compare with"),
        Err(error) => sentence(&format!("earlier runs unreadable: {error:#}")),
    }
}

fn sentence(text: &str) -> Why {
    Why {
        compared_with: None,
        changes: vec![text.to_string()],
    }
}

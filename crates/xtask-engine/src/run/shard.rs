//! `--shard K/N` in the plan stage: which of the requested packages this shard runs.
//!
//! A package's weight is the sum of its requested tasks' last durations, read from the local
//! cache's last-run records (`LocalCache::recent` then the entry's `duration_ms`). A package
//! without any record weighs the mean of those with one (1 ms when none has one), so a fresh
//! checkout still spreads packages evenly by count. The partition itself is
//! [`xtask_graph::partition`]. Invariant: every shard must see the same records to agree on the
//! partition (CI shards that all start from the same cache, or all from none, do).

use std::collections::BTreeMap;

use xtask_cache::LocalCache;
use xtask_graph::{Shard, TaskGraph, WeightedPackage, partition};
use xtask_model::{PackageIndex, Workspace};

/// The packages among `graph`'s requested nodes that `shard` runs, in workspace order.
pub(super) fn shard_packages(
    workspace: &Workspace,
    graph: &TaskGraph,
    cache: &LocalCache,
    shard: Shard,
) -> Vec<PackageIndex> {
    // Recorded milliseconds per package; `None` = no record for any of its requested tasks.
    let mut recorded: BTreeMap<PackageIndex, Option<u64>> = BTreeMap::new();
    for node in graph.nodes.iter().filter(|n| n.requested) {
        let name = &workspace.packages[node.package].name;
        let last = cache
            .last(name, node.task.as_str())
            .ok()
            .flatten()
            .and_then(|hash| cache.lookup(&hash).ok().flatten())
            .map(|meta| meta.duration_ms);
        let slot = recorded.entry(node.package).or_insert(None);
        if let Some(ms) = last {
            *slot = Some(slot.unwrap_or(0) + ms);
        }
    }
    let packages: Vec<PackageIndex> = recorded.keys().copied().collect();
    let weights = with_fallback(&recorded.values().copied().collect::<Vec<_>>());
    let weighted: Vec<WeightedPackage<'_>> = packages
        .iter()
        .zip(&weights)
        .map(|(&p, &weight)| WeightedPackage {
            name: &workspace.packages[p].name,
            weight,
        })
        .collect();
    let shard_of = partition(&weighted, shard.count());
    packages
        .into_iter()
        .zip(shard_of)
        .filter(|&(_, s)| s + 1 == shard.index())
        .map(|(p, _)| p)
        .collect()
}

/// Recorded weights, the unrecorded ones replaced by the mean of the recorded (1 when none).
fn with_fallback(recorded: &[Option<u64>]) -> Vec<u64> {
    let known: Vec<u64> = recorded.iter().flatten().copied().collect();
    let fallback = if known.is_empty() {
        1
    } else {
        (known.iter().sum::<u64>() / known.len() as u64).max(1)
    };
    recorded.iter().map(|w| w.unwrap_or(fallback)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unrecorded_packages_weigh_the_mean_of_recorded_ones() {
        assert_eq!(
            with_fallback(&[Some(100), None, Some(300)]),
            vec![100, 200, 300]
        );
    }

    #[test]
    fn without_any_record_every_package_weighs_the_same() {
        assert_eq!(with_fallback(&[None, None, None]), vec![1, 1, 1]);
        assert_eq!(with_fallback(&[Some(0), None]), vec![0, 1]);
    }
}

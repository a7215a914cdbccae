//! `--shard K/N` in the plan stage: which of the requested packages this shard runs.
//!
//! Shards run on different machines and must agree on the partition, or a package would run
//! on two shards or on none (a CI that passes without testing it). So by default every package
//! weighs the same: the partition depends only on the tree. With `XTASK_SHARD_BY_DURATION=1`
//! (for CI whose shards all start from the same cache), a package weighs the sum of its
//! requested tasks' last durations from the local cache's last-run records; one without a
//! record weighs the mean of those with one. The partition itself is
//! [`xtask_graph::partition`].

use std::collections::BTreeMap;

use xtask_cache::LocalCache;
use xtask_graph::{Shard, TaskGraph, WeightedPackage, partition};
use xtask_model::{PackageIndex, Workspace};

/// Opts into weights from the local cache's recorded durations (see the module doc).
pub const BY_DURATION_ENV: &str = "XTASK_SHARD_BY_DURATION";

/// The packages among `graph`'s requested nodes that `shard` runs, in workspace order.
pub(super) fn shard_packages(
    workspace: &Workspace,
    graph: &TaskGraph,
    cache: &LocalCache,
    shard: Shard,
) -> Vec<PackageIndex> {
    // Recorded milliseconds per package; `None` = no record for any of its requested tasks.
    let by_duration = std::env::var(BY_DURATION_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    let mut recorded: BTreeMap<PackageIndex, Option<u64>> = BTreeMap::new();
    for node in graph.nodes.iter().filter(|n| n.requested) {
        let slot = recorded.entry(node.package).or_insert(None);
        if !by_duration {
            continue;
        }
        let name = &workspace.packages[node.package].name;
        let last = cache
            .last(name, node.task.as_str())
            .ok()
            .flatten()
            .and_then(|hash| cache.lookup(&hash).ok().flatten())
            .map(|meta| meta.duration_ms);
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

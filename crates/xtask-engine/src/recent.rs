//! The closest of a task's recent cached runs: the baseline `why` compares with, and the
//! run report's "why it ran" of each miss.

use xtask_cache::LocalCache;
use xtask_hash::{TaskKey, diff_keys};

/// Of the task's recent cached runs still in the cache (its last 16, `LocalCache::recent`),
/// the one whose key is closest to `current` (fewest changes; the most recent among equals),
/// with its hash: the changes listed are then those that matter now, not those of whatever
/// ran last (another branch, a reverted edit). `None` when no earlier run is in the cache.
pub(crate) fn closest_recent(
    cache: &LocalCache,
    package: &str,
    task: &str,
    current: &TaskKey,
) -> anyhow::Result<Option<(String, TaskKey)>> {
    let mut closest: Option<(usize, String, TaskKey)> = None;
    for hash in cache.recent(package, task)? {
        let Ok(Some(meta)) = cache.lookup(&hash) else {
            continue;
        };
        let Ok(key) = TaskKey::from_manifest(&meta.manifest) else {
            continue;
        };
        let distance = diff_keys(&key, current).len();
        if closest.as_ref().is_none_or(|(best, _, _)| distance < *best) {
            closest = Some((distance, hash, key));
        }
    }
    Ok(closest.map(|(_, hash, key)| (hash, key)))
}

/// What changed since the closest recent cached run, as `why` lists it, with that run's
/// hash; `None` when no earlier run is in the cache.
pub(crate) fn changes_since_closest(
    cache: &LocalCache,
    package: &str,
    task: &str,
    current: &TaskKey,
) -> anyhow::Result<Option<(String, Vec<String>)>> {
    Ok(
        closest_recent(cache, package, task, current)?.map(|(hash, key)| {
            let changes = diff_keys(&key, current).into_iter().map(|c| c.to_string());
            (hash, changes.collect())
        }),
    )
}

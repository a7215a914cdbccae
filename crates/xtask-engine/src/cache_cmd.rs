//! `cache stats | clean | prune | doctor`.

use crate::load::Location;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheAction {
    Stats,
    Clean,
    Prune,
}

/// Runs a cache command and returns the text to print on stdout.
pub fn cache_command(location: &Location, action: CacheAction) -> anyhow::Result<String> {
    let workspace = crate::load::load_workspace(location)?;
    let cache = crate::run::open_cache(&workspace);
    let root = cache.root().display().to_string();
    Ok(match action {
        CacheAction::Stats => {
            let stats = cache.stats()?;
            format!(
                "cache: {root}\nentries: {}\nblobs: {}\nsize: {}\nlimit: {}\n",
                stats.entries,
                stats.blobs,
                human_bytes(stats.total_bytes),
                workspace
                    .config
                    .cache
                    .max_size_bytes
                    .map(human_bytes)
                    .unwrap_or_else(|| "none (eviction off)".into()),
            )
        }
        CacheAction::Clean => {
            let stats = cache.clean()?;
            format!(
                "cache: {root}\nremoved {} entries ({})\n",
                stats.entries_removed,
                human_bytes(stats.bytes_removed)
            )
        }
        CacheAction::Prune => {
            let stats = cache.prune(workspace.config.cache.max_size_bytes)?;
            if stats.skipped {
                format!("cache: {root}\nanother xtask is pruning this cache; nothing done\n")
            } else {
                format!(
                    "cache: {root}\nevicted {} entries, removed {} unreferenced blobs, freed {}\n",
                    stats.entries_evicted,
                    stats.blobs_removed,
                    human_bytes(stats.bytes_freed)
                )
            }
        }
    })
}

/// `cache doctor`: probes the configured remote cache. Returns the report to print and whether
/// every check passed.
pub fn cache_doctor(location: &Location) -> anyhow::Result<(String, bool)> {
    let workspace = crate::load::load_workspace(location)?;
    let settings = xtask_remote::resolve(&workspace.config.cache.remote, &|name| {
        std::env::var(name).ok()
    })?
    .ok_or_else(|| {
        crate::error::UserError(
            "no remote cache is configured (or its mode is off): set TURBO_API (or \
             XTASK_REMOTE_CACHE_URL), or `url` in [workspace.metadata.xtask.cache.remote]"
                .into(),
        )
    })?;
    let report = xtask_remote::doctor(&settings);
    Ok((report.render(), report.ok()))
}

pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

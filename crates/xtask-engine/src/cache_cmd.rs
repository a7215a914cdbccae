//! `cache stats | clean | prune | doctor`.

use xtask_model::Workspace;

use crate::error::{CliError, exit_code};
use crate::load::Location;
use crate::outcome::{CliResult, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheAction {
    Stats,
    Clean,
    Prune,
    /// Probe the configured remote cache; exit code 4 when a check fails.
    Doctor,
}

/// `cargo xtask cache ACTION`: its report on stdout.
pub fn cache(location: &Location, action: CacheAction) -> CliResult {
    let workspace = crate::load::load_workspace(location)?;
    let report = match action {
        CacheAction::Stats => stats(&workspace)?,
        CacheAction::Clean => clean(&workspace)?,
        CacheAction::Prune => prune(&workspace)?,
        CacheAction::Doctor => return doctor(&workspace),
    };
    Ok(Outcome::print(report))
}

fn stats(workspace: &Workspace) -> anyhow::Result<String> {
    let cache = crate::run::open_cache(workspace);
    let stats = cache.stats()?;
    Ok(format!(
        "cache: {}\nentries: {}\nblobs: {}\nsize: {}\nlimit: {}\n",
        cache.root().display(),
        stats.entries,
        stats.blobs,
        human_bytes(stats.total_bytes),
        workspace
            .config
            .cache
            .max_size_bytes
            .map(human_bytes)
            .unwrap_or_else(|| "none (eviction off)".into()),
    ))
}

fn clean(workspace: &Workspace) -> anyhow::Result<String> {
    let cache = crate::run::open_cache(workspace);
    let stats = cache.clean()?;
    Ok(format!(
        "cache: {}\nremoved {} entries ({})\n",
        cache.root().display(),
        stats.entries_removed,
        human_bytes(stats.bytes_removed)
    ))
}

fn prune(workspace: &Workspace) -> anyhow::Result<String> {
    let cache = crate::run::open_cache(workspace);
    let root = cache.root().display();
    let stats = cache.prune(workspace.config.cache.max_size_bytes)?;
    Ok(if stats.skipped {
        format!("cache: {root}\nanother xtask is pruning this cache; nothing done\n")
    } else {
        format!(
            "cache: {root}\nevicted {} entries, removed {} unreferenced blobs, freed {}\n",
            stats.entries_evicted,
            stats.blobs_removed,
            human_bytes(stats.bytes_freed)
        )
    })
}

/// `cache doctor`: probes the configured remote cache; the report on stdout, exit code 4 when
/// a check failed (the environment: the server, the network or the credentials).
fn doctor(workspace: &Workspace) -> CliResult {
    let settings = xtask_remote::resolve(&workspace.config.cache.remote, &|name| {
        std::env::var(name).ok()
    })?
    .ok_or_else(|| {
        CliError::config(
            "no remote cache is configured (or its mode is off): set TURBO_API (or \
             XTASK_REMOTE_CACHE_URL), or `url` in [workspace.metadata.xtask.cache.remote]",
        )
    })?;
    let report = xtask_remote::doctor(&settings);
    let exit_code = if report.ok() {
        exit_code::SUCCESS
    } else {
        exit_code::ENVIRONMENT
    };
    Ok(Outcome {
        exit_code,
        stdout: report.render(),
    })
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

//! The run's cache: one object over the local cache and the remote one, as Turborepo's cache
//! multiplexer. A lookup asks the local cache, then the remote one for the local misses;
//! a remote hit is verified and imported into the local cache (backfill) and from then on is a
//! local entry. An entry is a hit only while what its task was observed to read beyond its key
//! is unchanged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use xtask_cache::{AllowedOutputs, CacheOptions, EntryMeta, LocalCache, RestoreRoots};
use xtask_hash::ObservedInputs;
use xtask_model::Workspace;
use xtask_remote::RemoteCache;

use super::schedule::Node;
use crate::remote::{Arrived, FetchRequest};
use crate::report::Reporter;
use xtask_util::parallel_map;

/// The local cache configured for `workspace`.
pub fn open_cache(workspace: &Workspace) -> LocalCache {
    LocalCache::new(
        workspace.cache_dir(),
        CacheOptions {
            max_size_bytes: workspace.config.cache.max_size_bytes,
        },
    )
}

/// One task a lookup is for.
pub(crate) struct Wanted<'a> {
    pub hash: &'a str,
    /// Where its outputs may be restored: an imported entry must stay within them.
    pub allowed: &'a AllowedOutputs,
    /// How warnings name it.
    pub label: String,
}

/// The companion a remote fetch of `wanted[i]` asks for (its cargo units entry's key and
/// where that entry may write): asked only for local misses, so a cached run computes none.
pub(crate) type CompanionOf<'a> = &'a (dyn Fn(usize) -> Option<(String, AllowedOutputs)> + Sync);

/// What the lookup stage found: the hits, and the entries of the current hash that were not
/// used because something their task was observed to read changed (with that change).
#[derive(Default)]
pub(crate) struct Lookup {
    pub hits: Vec<Hit>,
    pub not_used: HashMap<Node, String>,
}

/// A task whose entry will be restored.
pub(crate) struct Hit {
    pub node: Node,
    pub meta: EntryMeta,
    /// The remote cache supplied it in this run.
    pub remote: bool,
}

/// An entry a lookup found, and whether the remote cache supplied it in this lookup.
pub(crate) struct Found {
    pub meta: EntryMeta,
    pub remote: bool,
}

pub(crate) struct Cache {
    pub local: LocalCache,
    pub remote: Option<RemoteCache>,
    /// Cargo units entries found unusable in this run (see `layers`): stored again when the
    /// call that rebuilt their units succeeds.
    pub unusable_units: Mutex<std::collections::HashSet<String>>,
}

impl Cache {
    /// The local cache and the remote one configured for `workspace` (if any).
    pub fn open(workspace: &Workspace) -> anyhow::Result<Cache> {
        Ok(Cache {
            local: open_cache(workspace),
            remote: crate::remote::open(workspace)?,
            unusable_units: Mutex::default(),
        })
    }

    /// The entry of each wanted task, if any: local first, then remote (imported into the
    /// local cache, with the companion `companion_of` names; `arrived` is told of each remote
    /// fetch as it ends, by index into `wanted`). Unusable entries are warned about and count
    /// as misses.
    pub fn lookup(
        &self,
        wanted: &[Wanted<'_>],
        (companion_of, arrived): (CompanionOf<'_>, Arrived<'_>),
        threads: usize,
        reporter: &Reporter,
    ) -> Vec<Option<Found>> {
        let local = parallel_map(wanted, threads, |w| self.local.lookup(w.hash));
        let mut found: Vec<Option<Found>> = Vec::with_capacity(wanted.len());
        for (w, lookup) in wanted.iter().zip(local) {
            found.push(match lookup {
                Ok(meta) => meta.map(|meta| Found {
                    meta,
                    remote: false,
                }),
                Err(error) => {
                    reporter.warning(&format!(
                        "{}: cache entry unusable, treating as a miss: {error}",
                        w.label
                    ));
                    None
                }
            });
        }
        if let Some(remote) = &self.remote {
            let misses: Vec<usize> = (0..wanted.len()).filter(|&i| found[i].is_none()).collect();
            let requests: Vec<FetchRequest<'_>> = misses
                .iter()
                .map(|&i| FetchRequest {
                    hash: wanted[i].hash,
                    allowed: wanted[i].allowed.clone(),
                    companion: companion_of(i),
                })
                .collect();
            if !requests.is_empty() {
                let arrived_at = |i: usize, meta: Option<&EntryMeta>| arrived(misses[i], meta);
                for (i, meta) in crate::remote::fetch_misses(
                    remote,
                    &self.local,
                    &requests,
                    reporter,
                    &arrived_at,
                ) {
                    found[misses[i]] = Some(Found { meta, remote: true });
                }
            }
        }
        found
    }

    /// Restores `meta`'s outputs (those already in place, recognised by `digest_in_place`, are
    /// left alone) and returns its log.
    pub fn restore(
        &self,
        meta: &EntryMeta,
        roots: &RestoreRoots,
        allowed: &AllowedOutputs,
        digest_in_place: &(dyn Fn(&Path) -> Option<String> + Sync),
    ) -> anyhow::Result<Vec<u8>> {
        self.local
            .restore_with(meta, roots, allowed, digest_in_place)?;
        Ok(self.local.read_log(meta)?)
    }
}

/// Restores block in the kernel (`mkdir`, file creation, `rename`): more threads than cores
/// keep more of them in flight (measured: 8 threads instead of 2 took a third off restoring
/// every output while another process kept one core busy, and cost nothing on a quiet
/// machine).
pub(crate) fn restore_threads(jobs: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    jobs.max(cores * 4).min(16)
}

/// The running tool's own executable when it is in the target directory: cargo has just
/// built it from the same sources for `cargo xtask` (the alias's `cargo run`), with the
/// features of the tool's package alone. A hit leaves it alone: restoring the workspace
/// build's copy over it made every alias call relink it and every run rewrite it.
pub(crate) fn running_tool_binary(target_dir: &Path) -> Vec<PathBuf> {
    std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .ok()
        .filter(|exe| exe.starts_with(target_dir))
        .into_iter()
        .collect()
}

/// Checks entries' observed inputs against the tree: several tasks often observe the same
/// files (a shared fixture, a README), so each path is digested once per run.
#[derive(Default)]
pub(crate) struct ObservedCheck {
    digests: Mutex<HashMap<PathBuf, String>>,
}

impl ObservedCheck {
    /// The first observed input of `meta` that differs from the tree under `root`, if any.
    pub fn first_change(&self, root: &Path, meta: &EntryMeta) -> Option<String> {
        ObservedInputs::from_manifest(&meta.manifest)
            .first_mismatch_with(root, &|path| self.digest_once(path))
            .map(|change| change.to_string())
    }

    fn digest_once(&self, path: &Path) -> String {
        if let Some(known) = self.digests.lock().ok().and_then(|d| d.get(path).cloned()) {
            return known;
        }
        let digest = xtask_hash::observed_digest(path);
        if let Ok(mut known) = self.digests.lock() {
            known.insert(path.to_path_buf(), digest.clone());
        }
        digest
    }
}

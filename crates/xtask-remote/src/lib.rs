//! The remote cache: task results shared between CI and every developer through servers teams
//! already run. Two protocols: Turborepo's remote cache API v8 (the open-source
//! `turborepo-remote-cache`, Vercel) and the Bazel HTTP cache protocol (bazel-remote, nginx
//! with WebDAV).
//!
//! The local cache stays first: the engine looks up locally, asks the remote only for local
//! misses, and imports a remote hit into the local cache through
//! [`xtask_cache::LocalCache::import`], which verifies every byte against the entry before
//! anything is written. Successful tasks are uploaded by the engine's upload workers.
//!
//! Failure never breaks a build: the first server-wide failure (unreachable, timeout, 401/403,
//! 5xx after retries) switches the remote off for the rest of the run and yields ONE warning
//! that names the server and the reason; untrusted artifacts (bad or missing signature,
//! tampered content) are misses with a warning each. This crate never prints: it returns
//! warnings for the engine's reporter. Tokens never appear in any message.

mod backend;
mod bundle;
mod doctor;
mod http;
mod settings;
mod signature;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use xtask_cache::{AllowedOutputs, CacheError, EntryMeta, EntryParts, LocalCache};
use xtask_util::sha256_hex;

pub use crate::doctor::{Check, DoctorReport, doctor};
pub use crate::http::{Failure, FailureKind};
pub use crate::settings::{RemoteSettings, Secret, SettingsError, Team, resolve};
pub use crate::signature::{SignatureError, Signer};

use crate::backend::{Backend, FetchError, Fetched};

/// A remote cache client for one run. Shared by `&` across threads.
pub struct RemoteCache {
    settings: RemoteSettings,
    backend: Backend,
    disabled: AtomicBool,
    disabled_reason: Mutex<Option<String>>,
    stats: Stats,
}

#[derive(Default)]
struct Stats {
    hits: AtomicU64,
    misses: AtomicU64,
    rejected: AtomicU64,
    uploaded: AtomicU64,
    upload_failed: AtomicU64,
    bytes_down: AtomicU64,
    bytes_up: AtomicU64,
}

/// What the remote did in one run (for the summary).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RemoteTotals {
    pub server: String,
    pub mode: String,
    pub hits: u64,
    pub misses: u64,
    /// Artifacts refused: bad or missing signature, content not matching its entry.
    pub rejected: u64,
    pub uploaded: u64,
    pub upload_failed: u64,
    pub bytes_downloaded: u64,
    pub bytes_uploaded: u64,
    /// Why the remote was switched off during the run, if it was.
    pub disabled: Option<String>,
}

/// The outcome of [`RemoteCache::fetch_into`].
#[derive(Debug)]
pub enum FetchOutcome {
    /// Downloaded, verified and imported into the local cache.
    Hit(EntryMeta),
    Miss,
    /// Not usable; the warning says why (print it).
    Warning(String),
    /// The remote is off for this run (an earlier failure already warned).
    Disabled,
}

/// An entry a fetch may bring along with the one asked for (a task's cargo units, carried in
/// its task's artifact): the key the caller would look it up under, and where its outputs may
/// go.
#[derive(Debug, Clone, Copy)]
pub struct Companion<'a> {
    pub task_hash: &'a str,
    pub allowed: &'a AllowedOutputs,
}

/// The record of the latest upload of a package's task, stored beside the artifacts so
/// another machine can compare keys (`why --remote`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastRun {
    pub format: u32,
    pub package: String,
    pub task: String,
    pub task_hash: String,
    pub created_unix_ms: u64,
    pub manifest: serde_json::Value,
}

const LAST_RUN_FORMAT: u32 = 1;

/// The remote key of the last-run record of `package:task`.
pub fn last_run_key(package: &str, task: &str) -> String {
    sha256_hex(format!("xtask-last-run-v1\0{package}\0{task}").as_bytes())
}

impl RemoteCache {
    pub fn new(settings: RemoteSettings) -> RemoteCache {
        RemoteCache {
            backend: Backend::new(&settings),
            settings,
            disabled: AtomicBool::new(false),
            disabled_reason: Mutex::new(None),
            stats: Stats::default(),
        }
    }

    pub fn settings(&self) -> &RemoteSettings {
        &self.settings
    }

    pub fn can_write(&self) -> bool {
        self.settings.can_write() && !self.is_disabled()
    }

    pub fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Relaxed)
    }

    /// Records a failure. Returns the warning to print when it is the first server-wide one
    /// (which switches the remote off), or a per-artifact warning otherwise.
    fn fail(&self, failure: &Failure) -> Option<String> {
        if !failure.fatal {
            return Some(format!("{failure}"));
        }
        if self.disabled.swap(true, Ordering::Relaxed) {
            return None;
        }
        let reason = failure.to_string();
        if let Ok(mut slot) = self.disabled_reason.lock() {
            *slot = Some(reason.clone());
        }
        Some(format!(
            "{reason}; the remote cache is off for the rest of this run (local cache only)"
        ))
    }

    /// Looks `task_hash` up remotely and imports a hit into `local` (verified there, including
    /// that every output is among `allowed`, the task's declared outputs). When the artifact
    /// carries a companion entry and `companion` names the key the caller expects it under,
    /// that entry is imported too, verified the same way (a companion under any other key, or
    /// one that fails verification, is left out: the caller's own lookup of that key decides).
    pub fn fetch_into(
        &self,
        local: &LocalCache,
        task_hash: &str,
        allowed: &AllowedOutputs,
        companion: Option<Companion<'_>>,
    ) -> FetchOutcome {
        if self.is_disabled() {
            return FetchOutcome::Disabled;
        }
        match self.backend.fetch(task_hash) {
            Ok(Fetched::Miss) => {
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
                FetchOutcome::Miss
            }
            Ok(Fetched::Found(bundle, bytes)) => {
                self.stats.bytes_down.fetch_add(bytes, Ordering::Relaxed);
                match local.import(task_hash, &bundle.parts, self.backend.server(), allowed) {
                    Ok(meta) => {
                        self.stats.hits.fetch_add(1, Ordering::Relaxed);
                        if let (Some(wanted), Some(parts)) = (companion, &bundle.companion) {
                            self.import_companion(local, wanted, parts);
                        }
                        FetchOutcome::Hit(meta)
                    }
                    Err(error @ CacheError::Rejected { .. }) => {
                        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                        FetchOutcome::Warning(format!("{error}; treating it as a miss"))
                    }
                    // The local disk failed (full, permissions): the artifact was fine.
                    Err(error) => FetchOutcome::Warning(format!(
                        "remote hit not kept, the local cache failed: {error}"
                    )),
                }
            }
            Err(FetchError::Untrusted(reason)) => {
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                FetchOutcome::Warning(format!(
                    "remote cache {}: rejected the artifact for {}: {reason}; treating it as a miss",
                    self.backend.server(),
                    short(task_hash)
                ))
            }
            Err(FetchError::Failure(failure)) => match self.fail(&failure) {
                Some(warning) => FetchOutcome::Warning(warning),
                None => FetchOutcome::Disabled,
            },
        }
    }

    /// Imports a companion entry that came inside another entry's artifact, under the key the
    /// caller expects (the import checks that the entry says that key, and every byte). It is
    /// not counted: the totals count artifacts, and its own was counted. A companion that is
    /// not imported is left to the caller's own lookup of its key, which warns if that fails.
    fn import_companion(&self, local: &LocalCache, wanted: Companion<'_>, parts: &EntryParts) {
        let _ = local.import(
            wanted.task_hash,
            parts,
            self.backend.server(),
            wanted.allowed,
        );
    }

    /// Uploads a stored entry (with `companion` inside its artifact where the protocol allows)
    /// and the package task's last-run record. `Err` carries the warning to print, if any (none
    /// when the remote was already switched off).
    pub fn upload(
        &self,
        local: &LocalCache,
        meta: &EntryMeta,
        companion: Option<&EntryMeta>,
        package: &str,
        task: &str,
    ) -> Result<(), Option<String>> {
        if !self.can_write() {
            self.stats.upload_failed.fetch_add(1, Ordering::Relaxed);
            return Err(None);
        }
        let parts = local.read_parts(meta).map_err(|error| {
            self.stats.upload_failed.fetch_add(1, Ordering::Relaxed);
            Some(format!("cannot upload {package}:{task}: {error}"))
        })?;
        // A companion that cannot be read (evicted meanwhile) is left out: it is uploaded
        // under its own key too.
        let companion = companion.and_then(|companion| local.read_parts(companion).ok());
        let record = LastRun {
            format: LAST_RUN_FORMAT,
            package: package.to_owned(),
            task: task.to_owned(),
            task_hash: meta.task_hash.clone(),
            created_unix_ms: meta.created_unix_ms,
            manifest: meta.manifest.clone(),
        };
        let record = serde_json::to_vec(&record).unwrap_or_default();
        let result = self
            .backend
            .upload(
                &meta.task_hash,
                &parts,
                companion.as_ref(),
                meta.duration_ms,
            )
            .and_then(|sent| {
                self.backend
                    .put_record(&last_run_key(package, task), &record)
                    .map(|more| sent + more)
            });
        match result {
            Ok(sent) => {
                self.stats.uploaded.fetch_add(1, Ordering::Relaxed);
                self.stats.bytes_up.fetch_add(sent, Ordering::Relaxed);
                Ok(())
            }
            Err(failure) => {
                self.stats.upload_failed.fetch_add(1, Ordering::Relaxed);
                Err(self.fail(&failure))
            }
        }
    }

    /// The small record stored under `key` (a sha256 hex) by [`RemoteCache::store_record`]:
    /// `None` when it is absent, or cannot be read or trusted (a signature that does not match),
    /// or the remote is off; the caller then does the work itself.
    pub fn fetch_record(&self, key: &str) -> Option<Vec<u8>> {
        if self.is_disabled() {
            return None;
        }
        match self.backend.get_record(key) {
            Ok(found) => found,
            Err(FetchError::Untrusted(_)) => {
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(FetchError::Failure(failure)) => {
                self.fail(&failure);
                None
            }
        }
    }

    /// Stores `body` under `key` (signed when a key is configured), when the remote may be
    /// written. Whether it was stored.
    pub fn store_record(&self, key: &str, body: &[u8]) -> bool {
        if !self.can_write() {
            return false;
        }
        match self.backend.put_record(key, body) {
            Ok(sent) => {
                self.stats.bytes_up.fetch_add(sent, Ordering::Relaxed);
                true
            }
            Err(failure) => {
                self.fail(&failure);
                false
            }
        }
    }

    /// The last-run record of `package:task` on the server.
    pub fn last_run(&self, package: &str, task: &str) -> Result<Option<LastRun>, String> {
        match self.backend.get_record(&last_run_key(package, task)) {
            Ok(None) => Ok(None),
            Ok(Some(bytes)) => serde_json::from_slice::<LastRun>(&bytes)
                .map(Some)
                .map_err(|error| {
                    format!(
                        "remote cache {}: the last-run record of {package}:{task} is invalid: {error}",
                        self.backend.server()
                    )
                }),
            Err(FetchError::Untrusted(reason)) => Err(format!(
                "remote cache {}: rejected the last-run record of {package}:{task}: {reason}",
                self.backend.server()
            )),
            Err(FetchError::Failure(failure)) => Err(failure.to_string()),
        }
    }

    pub fn totals(&self) -> RemoteTotals {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RemoteTotals {
            server: self.settings.url.clone(),
            mode: self.settings.mode.as_str().to_owned(),
            hits: load(&self.stats.hits),
            misses: load(&self.stats.misses),
            rejected: load(&self.stats.rejected),
            uploaded: load(&self.stats.uploaded),
            upload_failed: load(&self.stats.upload_failed),
            bytes_downloaded: load(&self.stats.bytes_down),
            bytes_uploaded: load(&self.stats.bytes_up),
            disabled: self.disabled_reason.lock().ok().and_then(|r| r.clone()),
        }
    }
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

// Shared by `&` across the engine's threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RemoteCache>();
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The key is part of what servers hold: it must never change by accident.
    #[test]
    fn last_run_key_is_pinned() {
        assert_eq!(
            last_run_key("api", "build"),
            "3e0a4842eae8c1ea2492cad16d0ff9fe2750ba7a70433affe17abbcf5a09f9c2"
        );
        assert_ne!(last_run_key("api", "build"), last_run_key("apib", "uild"));
    }
}

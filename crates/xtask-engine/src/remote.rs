//! The engine's side of the remote cache: opening it from the workspace config and the
//! environment, fetching local misses in parallel (imported into the local cache, then restored
//! like local hits), and the upload workers that send successful results while the run goes on.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use xtask_cache::{AllowedOutputs, EntryMeta, LocalCache};
use xtask_model::{RemoteCacheConfig, Workspace};
use xtask_remote::{Companion, FetchOutcome, RemoteCache};

use crate::error::CliError;
use crate::report::Reporter;

/// The remote cache configured for `workspace`, if any (and not `off`).
pub(crate) fn open(workspace: &Workspace) -> anyhow::Result<Option<RemoteCache>> {
    open_configured(&workspace.config.cache.remote)
}

/// The remote cache of a manifest's `[workspace.metadata.xtask.cache.remote]` and the
/// environment, if any (and not `off`).
pub(crate) fn open_configured(config: &RemoteCacheConfig) -> anyhow::Result<Option<RemoteCache>> {
    let settings =
        xtask_remote::resolve(config, &|name| std::env::var(name).ok()).map_err(CliError::from)?;
    Ok(settings.map(RemoteCache::new))
}

/// Fetches in flight at once: network-bound, so more threads than cores; bounded so a big
/// graph does not open hundreds of connections at once.
pub(crate) const FETCH_THREADS: usize = 16;

/// One local miss to fetch: the task hash, the task's allowed outputs (which every imported
/// entry must stay within), and the companion entry its artifact may carry (its cargo units).
pub(crate) struct FetchRequest<'a> {
    pub hash: &'a str,
    pub allowed: AllowedOutputs,
    pub companion: Option<(String, AllowedOutputs)>,
}

/// Told of each fetch as it ends, on the thread that made it: the index into the requests and
/// the imported entry (`None`: a miss, whatever the reason).
pub(crate) type Arrived<'a> = &'a (dyn Fn(usize, Option<&EntryMeta>) + Sync);

/// Fetches `misses` in parallel (each with its companion, when the artifact carries it), telling
/// `arrived` of each as it ends; returns the hits as (index into `misses`, imported entry).
/// Warnings go to the reporter, in the order of `misses`. Once the remote is switched off, the
/// remaining fetches return at once without a request.
pub(crate) fn fetch_misses(
    remote: &RemoteCache,
    local: &LocalCache,
    misses: &[FetchRequest<'_>],
    reporter: &Reporter,
    arrived: Arrived<'_>,
) -> Vec<(usize, EntryMeta)> {
    let indexed: Vec<(usize, &FetchRequest<'_>)> = misses.iter().enumerate().collect();
    let outcomes = xtask_util::parallel_map(&indexed, FETCH_THREADS, |&(i, request)| {
        let companion = request.companion.as_ref().map(|(hash, allowed)| Companion {
            task_hash: hash,
            allowed,
        });
        let outcome = remote.fetch_into(local, request.hash, &request.allowed, companion);
        match &outcome {
            FetchOutcome::Hit(meta) => arrived(i, Some(meta)),
            _ => arrived(i, None),
        }
        outcome
    });
    let mut hits = Vec::new();
    for (i, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            FetchOutcome::Hit(meta) => hits.push((i, meta)),
            FetchOutcome::Warning(warning) => reporter.warning(&warning),
            FetchOutcome::Miss | FetchOutcome::Disabled => {}
        }
    }
    hits
}

/// One upload job: a stored entry, the entry to carry inside its artifact (its task's cargo
/// units), and whose it is.
pub(crate) struct Upload {
    pub meta: EntryMeta,
    pub companion: Option<EntryMeta>,
    pub package: String,
    pub task: String,
}

/// A bounded pool of upload threads fed by a channel. Dropping the uploader (its sender) lets
/// the workers drain the queue and stop; the enclosing thread scope waits for them.
pub(crate) struct Uploader {
    sender: mpsc::Sender<Upload>,
}

impl Uploader {
    pub fn start<'scope, 'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        remote: &'env RemoteCache,
        local: &'env LocalCache,
        reporter: &'env Reporter,
    ) -> Uploader {
        let (sender, receiver) = mpsc::channel::<Upload>();
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..remote.settings().upload_concurrency {
            let receiver = Arc::clone(&receiver);
            scope.spawn(move || {
                loop {
                    let job = match receiver.lock() {
                        Ok(receiver) => receiver.recv(),
                        Err(_) => break,
                    };
                    let Ok(job) = job else { break };
                    if let Err(Some(warning)) = remote.upload(
                        local,
                        &job.meta,
                        job.companion.as_ref(),
                        &job.package,
                        &job.task,
                    ) {
                        reporter.warning(&warning);
                    }
                }
            });
        }
        Uploader { sender }
    }

    pub fn submit(&self, upload: Upload) {
        // The workers only stop once the sender is dropped, so the send cannot fail.
        let _ = self.sender.send(upload);
    }
}

//! The engine's side of the remote cache: opening it from the workspace config and the
//! environment, fetching local misses in parallel (imported into the local cache, then restored
//! like local hits), and the upload workers that send successful results while the run goes on.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use xtask_cache::{EntryMeta, LocalCache};
use xtask_model::Workspace;
use xtask_remote::{FetchOutcome, RemoteCache};

use crate::report::Reporter;

/// The remote cache configured for `workspace`, if any (and not `off`).
pub(crate) fn open(workspace: &Workspace) -> anyhow::Result<Option<RemoteCache>> {
    let settings = xtask_remote::resolve(&workspace.config.cache.remote, &|name| {
        std::env::var(name).ok()
    })?;
    Ok(settings.map(RemoteCache::new))
}

/// Fetches `hashes` (local misses) in parallel; returns the hits, in no particular order, as
/// (index into `hashes`, imported entry). Warnings go to the reporter.
pub(crate) fn fetch_misses(
    remote: &RemoteCache,
    local: &LocalCache,
    hashes: &[&str],
    reporter: &Reporter,
) -> Vec<(usize, EntryMeta)> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let hits = Mutex::new(Vec::new());
    // Network-bound: more threads than cores; bounded so a big graph does not open hundreds
    // of connections at once.
    let threads = hashes.len().clamp(1, 16);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(hash) = hashes.get(i) else { break };
                    match remote.fetch_into(local, hash) {
                        FetchOutcome::Hit(meta) => {
                            if let Ok(mut hits) = hits.lock() {
                                hits.push((i, meta));
                            }
                        }
                        FetchOutcome::Warning(warning) => reporter.warning(&warning),
                        FetchOutcome::Miss => {}
                        FetchOutcome::Disabled => break,
                    }
                }
            });
        }
    });
    hits.into_inner().unwrap_or_default()
}

/// One upload job: a stored entry and whose it is.
pub(crate) struct Upload {
    pub meta: EntryMeta,
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
                    if let Err(Some(warning)) =
                        remote.upload(local, &job.meta, &job.package, &job.task)
                    {
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

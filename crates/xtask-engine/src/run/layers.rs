//! Cargo's intermediate units in the cache, so that a fresh target directory (a CI machine
//! with a warm remote cache) compiles only what changed, not every dependency of it.
//!
//! A task entry holds the files cargo leaves for users (`debug/app`), never cargo's own state;
//! in an empty `target/`, one changed crate made cargo compile its whole dependency closure,
//! every crates.io crate included. Two kinds of extra entries, both ordinary cache entries
//! (atomic, digest-checked, imported from and uploaded to the remote cache like any other):
//!
//! - the **registry layer** of a cargo call (`build` or `test`): the units (`deps/*-H*`,
//!   `build/*-H/`, `.fingerprint/*-H/` for cargo's metadata hash `H`) of every crates.io
//!   package it used, under [`LayerKey`]: the whole `Cargo.lock`, `rustc -vV`, profile, target
//!   and `RUSTFLAGS` (the planned toolchain key), the unified features of the selection, the
//!   cargo env vars and configuration files of every task of the call, and the absolute
//!   workspace root, target directory and `$CARGO_HOME` (build script outputs, dep-info files
//!   and rustc's debug info hold absolute paths). The env vars rustc was seen to read for them
//!   (`# env-dep:`) are observed inputs of the entry;
//! - the **package units** of a workspace package's cargo task, stored only together with its
//!   task entry (so never after an input changed during the run), under that task's hash and
//!   the registry layer's key without `Cargo.lock` (see `package_units_hash`). They are
//!   restored only for tasks that were hits in this run: a changed crate is a miss, and so is
//!   everything that builds against it (their keys hold its source fingerprint), so its units
//!   are never restored.
//!
//! A package units entry travels inside its task's remote artifact too (a companion): the
//! lookup fetches both in one request (see [`units_hash`]), and [`Arriving`] places the units
//! while the lookup goes on, once the call they are for is known to run. [`EarlyRestore`]
//! places the rest (local hits' units, entries that link to the hits' outputs) after the lookup.
//!
//! An entry whose units are all in the target dir already is not extracted at all (its file
//! list says so). Otherwise restores go to a staging directory inside the target dir, then each
//! unit whose `.fingerprint/<name>-H` is absent from the target dir is moved into place (its
//! fingerprint directory last, whole) with every file's modification time set to the run's
//! start, which was taken before
//! any input was hashed: every file a hit's key was computed from is at most that old (or its
//! edit is newer, and cargo rebuilds it), and every edit after hashing is newer, so cargo's
//! mtime comparison accepts exactly the units whose inputs the keys describe. Units already
//! present are left to cargo and to `freshness`. A missing, corrupt or unusable entry is a
//! miss (cargo builds the units); the layers never fail a run.
//!
//! Off with `XTASK_UNIT_LAYERS=0`, `--no-cache` and `--force`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::SystemTime;

use anyhow::Context;
use serde::Serialize;
use xtask_cache::{AllowedOutputs, EntryMeta, OutputFile, OutputRoot};
use xtask_model::{CargoTask, PackageIndex, TaskKind};

use super::cache::{Cache, ObservedCheck};
use super::context::{LayerKeys, Run};
use super::unit_links::{self, Link};
use crate::observe::{Exclusions, Observation, RunStart, digest_observation};
use crate::units::{Unit, UnitFiles, UnitsSeen, group_by_unit, metadata_hash, unit_files};

/// The environment variable that turns the layers off (`0`).
pub const UNIT_LAYERS_ENV: &str = "XTASK_UNIT_LAYERS";

const LAYER_SCHEMA: u32 = 3;

/// How many entries a registry layer is split into. Each is fetched, checked and unpacked on
/// its own thread (one large archive was 2 s of single-threaded work per fresh CI run here),
/// and stored on its own.
const REGISTRY_SHARDS: usize = 8;

/// The package name a registry layer's upload records its last run under.
pub(crate) const REGISTRY_UPLOAD_NAME: &str = "(registry units)";
/// Appended to the task name a package units upload records its last run under.
pub(crate) const UNITS_UPLOAD_SUFFIX: &str = " units";

/// Whether the layers are used in this run.
pub(crate) fn enabled(run: &Run<'_>) -> bool {
    !run.options.no_cache
        && !run.options.force
        && std::env::var(UNIT_LAYERS_ENV).map_or(true, |v| v != "0")
}

/// What a registry layer's entry is keyed by (see the module docs). Serialized canonically
/// (sorted maps) and hashed.
#[derive(Debug, Serialize)]
struct LayerKey<'a> {
    layer: &'static str,
    schema: u32,
    tool_version: &'static str,
    task: &'static str,
    command: Vec<String>,
    /// Every distinct toolchain key of the call's tasks (rustc, target, profile, features).
    toolchains: BTreeSet<String>,
    global_inputs: BTreeMap<&'a str, &'a str>,
    env: BTreeMap<&'a str, Option<&'a str>>,
    lockfile: String,
    workspace_root: &'a Path,
    target_dir: &'a Path,
    cargo_home: Option<PathBuf>,
}

/// `task`'s layer keys in this run; `None` when the call has no cargo task. Computed on first
/// use (before the cargo call: `restore_before_call`) and kept for the run, so the keys
/// describe what cargo was asked to build.
fn registry_layer(run: &Run<'_>, task: CargoTask) -> Option<std::sync::Arc<LayerKeys>> {
    let mut layers = run
        .registry_layers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    layers
        .entry(task)
        .or_insert_with(|| layer_key(run, task).map(std::sync::Arc::new))
        .clone()
}

fn layer_key(run: &Run<'_>, task: CargoTask) -> Option<LayerKeys> {
    let nodes: Vec<usize> = (0..run.graph.nodes.len())
        .filter(|&n| matches!(run.graph.nodes[n].def.kind, TaskKind::Cargo(t) if t == task))
        .collect();
    if nodes.is_empty() {
        return None;
    }
    let mut key = LayerKey {
        layer: "registry",
        schema: LAYER_SCHEMA,
        tool_version: crate::plan::TOOL_VERSION,
        task: task.name(),
        command: run.settings.command(task),
        toolchains: BTreeSet::new(),
        global_inputs: BTreeMap::new(),
        env: BTreeMap::new(),
        lockfile: lockfile_digest(&run.workspace.root),
        workspace_root: &run.workspace.root,
        target_dir: &run.workspace.target_dir,
        cargo_home: crate::fast::cargo_home(),
    };
    for &node in &nodes {
        let planned = &run.planned[node].key;
        key.toolchains
            .insert(serde_json::to_string(&planned.toolchain).unwrap_or_default());
        for (path, digest) in &planned.global_inputs {
            key.global_inputs.insert(path, digest);
        }
        for (name, digest) in &planned.env {
            key.env.insert(name, digest.as_deref());
        }
    }
    let value = serde_json::to_value(&key).ok()?;
    let registry = xtask_util::sha256_hex(value.to_string().as_bytes());
    let mut units = value.clone();
    if let Some(object) = units.as_object_mut() {
        object.remove("lockfile");
        object.insert("layer".to_string(), serde_json::json!("package"));
    }
    Some(LayerKeys {
        registry,
        units_environment: xtask_util::sha256_hex(units.to_string().as_bytes()),
        key: value,
    })
}

/// `sha256` of the workspace's `Cargo.lock` (`missing` without one).
fn lockfile_digest(root: &Path) -> String {
    xtask_util::sha256_file(&root.join("Cargo.lock"))
        .map_or_else(|_| "missing".to_string(), |(digest, _)| digest)
}

/// The hash of shard `shard` of the registry layer `registry`.
fn registry_shard_hash(registry: &str, shard: usize) -> String {
    xtask_util::sha256_hex(
        format!("xtask-registry-shard-v{LAYER_SCHEMA}\0{registry}\0{shard}/{REGISTRY_SHARDS}")
            .as_bytes(),
    )
}

/// The hash of the package units of the task whose hash is `task_hash`, in a call whose units
/// environment (the layer key without `Cargo.lock`) is `environment`. With the whole lock
/// file in it, any lock change (a dependency bump elsewhere) left every package that stayed a
/// hit without units for good: a hit's units are stored only when its task runs again.
fn package_units_hash(environment: &str, task_hash: &str) -> String {
    xtask_util::sha256_hex(
        format!("xtask-package-units-v{LAYER_SCHEMA}\0{environment}\0{task_hash}").as_bytes(),
    )
}

/// The key of the package units entry of cargo task `node` (`build` or `test`) in this run,
/// when the layers are on. The lookup asks for it with the task's own entry: a remote artifact
/// carries it (see `xtask_remote::bundle`), so a fresh machine gets a hit's units in the same
/// request as the hit.
pub(crate) fn units_hash(run: &Run<'_>, node: usize) -> Option<String> {
    let task = layered_call(run, node)?;
    if !enabled(run) {
        return None;
    }
    let keys = registry_layer(run, task)?;
    Some(package_units_hash(
        &keys.units_environment,
        &run.planned[node].hash,
    ))
}

/// The cargo call task `node` is part of, when that call has layers (`build`, `test`).
fn layered_call(run: &Run<'_>, node: usize) -> Option<CargoTask> {
    match run.graph.nodes[node].def.kind {
        TaskKind::Cargo(task @ (CargoTask::Build | CargoTask::Test)) => Some(task),
        _ => None,
    }
}

/// Where a restore may write: everything, but only into a staging directory (see
/// [`restore_entry`]).
pub(crate) fn staging_allowed() -> AllowedOutputs {
    AllowedOutputs::directory(OutputRoot::Target, "")
}

/// The layers of the run's cargo calls, restored on a thread of their own from the moment the
/// lookup knows the hits, while the hits' own outputs are restored (on a fresh CI machine,
/// both are downloads and unpacking); each cargo call waits for its own.
#[derive(Default)]
pub(crate) struct EarlyRestore {
    state: Mutex<EarlyState>,
    changed: Condvar,
}

#[derive(Default)]
struct EarlyState {
    done: HashSet<CargoTask>,
    /// The thread has ended (also after a panic): whatever is not `done` was not started.
    ended: bool,
    /// The run's hits are restored (or their restore ended otherwise): a package's units
    /// may link to its task's outputs (see `unit_links`).
    hits_restored: bool,
    /// The entries [`Arriving`] took during the lookup (placed, or found missing or unusable):
    /// not asked for again.
    handled: HashSet<String>,
}

impl EarlyRestore {
    /// Starts, on a thread of `scope`, the restore of the layers of every `build` and `test`
    /// call that a task not among the `hits` will make: first what `arriving` took during the
    /// lookup ends (it is told that the lookup has ended), then the rest.
    pub(crate) fn start<'scope, 'env>(
        &'env self,
        scope: &'scope std::thread::Scope<'scope, 'env>,
        (run, cache): (&'env Run<'env>, &'env Cache),
        hits: HashSet<usize>,
        arriving: Option<Arriving<'scope, 'env>>,
    ) {
        let mut calls: Vec<CargoTask> = Vec::new();
        for node in 0..run.graph.nodes.len() {
            if let Some(call) = layered_call(run, node)
                && !hits.contains(&node)
                && !calls.contains(&call)
            {
                calls.push(call);
            }
        }
        let placers = arriving.map(Arriving::lookup_ended);
        if !enabled(run) || calls.is_empty() {
            // No call opened, so nothing was given to the placers: they end at once.
            if let Some(placers) = placers {
                placers.join();
            }
            self.end();
            return;
        }
        scope.spawn(move || {
            struct EndOnDrop<'a>(&'a EarlyRestore);
            impl Drop for EndOnDrop<'_> {
                fn drop(&mut self) {
                    self.0.end();
                }
            }
            let _end = EndOnDrop(self);
            if let Some(placers) = placers {
                let handled = placers.join();
                self.lock().handled.extend(handled);
            }
            for task in calls {
                restore_before_call(run, cache, task, &hits, self);
                self.lock().done.insert(task);
                self.changed.notify_all();
            }
        });
    }

    /// Before `task`'s cargo call: waits for its layers, or restores them now (with the hits
    /// that were restored) when the early restore did not take them.
    pub(crate) fn wait(
        &self,
        run: &Run<'_>,
        cache: &Cache,
        task: CargoTask,
        hits: &HashSet<usize>,
    ) {
        let mut state = self.lock();
        while !state.done.contains(&task) && !state.ended {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        let done = state.done.contains(&task);
        drop(state);
        if !done {
            restore_before_call(run, cache, task, hits, self);
        }
    }

    /// Says that the hits' restore has ended: called by [`HitsRestored`] on every path, or a
    /// unit link would wait for ever.
    fn hits_restored(&self) {
        self.lock().hits_restored = true;
        self.changed.notify_all();
    }

    /// Waits until [`EarlyRestore::hits_restored`].
    fn wait_for_hits(&self) {
        let mut state = self.lock();
        while !state.hits_restored {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    fn end(&self) {
        self.lock().ended = true;
        self.changed.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, EarlyState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Calls [`EarlyRestore::hits_restored`] when dropped.
pub(crate) struct HitsRestored<'a>(pub(crate) &'a EarlyRestore);

impl Drop for HitsRestored<'_> {
    fn drop(&mut self) {
        self.0.hits_restored();
    }
}

/// A units entry to place: its hash, and how warnings name it.
type UnitsJob = (String, String);

/// Places the units of remote hits while the lookup goes on: on a fresh machine the lookup
/// waits on the network, placing waits on the disk. A `build` or `test` hit's units entry comes
/// inside its artifact (see [`units_hash`]); it is placed as soon as its call is known to run
/// (one of the call's tasks missed, or is not cacheable), and the call's registry layer with
/// it. Until then a call's hits wait, and when the lookup ends they are dropped: a run where
/// every task hits places nothing. An entry with units that link to the hits' outputs is left
/// to [`EarlyRestore`], which places it after the hits' restore.
pub(crate) struct Arriving<'scope, 'env> {
    run: &'env Run<'env>,
    state: Mutex<ArrivingState>,
    placers: Placers<'scope>,
}

#[derive(Default)]
struct ArrivingState {
    /// `None` once the lookup has ended.
    sender: Option<std::sync::mpsc::Sender<UnitsJob>>,
    /// The calls known to run.
    open: HashSet<CargoTask>,
    /// The hits' units of calls not known to run yet.
    waiting: Vec<(CargoTask, UnitsJob)>,
}

impl ArrivingState {
    fn send(&self, job: UnitsJob) {
        if let Some(sender) = &self.sender {
            // The placers stop only once the sender is dropped, so the send cannot fail.
            let _ = sender.send(job);
        }
    }
}

/// The threads of an [`Arriving`], and what they share.
pub(crate) struct Placers<'scope> {
    threads: Vec<std::thread::ScopedJoinHandle<'scope, Vec<String>>>,
    shared: std::sync::Arc<PlacerShared>,
}

struct PlacerShared {
    jobs: Mutex<std::sync::mpsc::Receiver<UnitsJob>>,
    staging: StagingDirs,
    check: ObservedCheck,
}

impl<'scope, 'env> Arriving<'scope, 'env> {
    /// Starts the placing threads, when the layers are on, a remote cache is configured and the
    /// run has `build` or `test` tasks.
    pub(crate) fn start(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        run: &'env Run<'env>,
        cache: &'env Cache,
    ) -> Option<Arriving<'scope, 'env>> {
        let calls = || {
            (0..run.graph.nodes.len()).filter_map(|node| {
                Some((layered_call(run, node)?, run.graph.nodes[node].def.cache))
            })
        };
        if !enabled(run) || cache.remote.is_none() || calls().next().is_none() {
            return None;
        }
        let (sender, receiver) = std::sync::mpsc::channel::<UnitsJob>();
        let shared = std::sync::Arc::new(PlacerShared {
            jobs: Mutex::new(receiver),
            staging: StagingDirs::new(&run.workspace.target_dir),
            check: ObservedCheck::default(),
        });
        let threads = (0..run.options.jobs.max(2) * 2)
            .map(|_| {
                let shared = std::sync::Arc::clone(&shared);
                scope.spawn(move || place_arriving(run, cache, &shared))
            })
            .collect();
        let arriving = Arriving {
            run,
            state: Mutex::new(ArrivingState {
                sender: Some(sender),
                ..ArrivingState::default()
            }),
            placers: Placers { threads, shared },
        };
        for (task, cacheable) in calls() {
            if !cacheable {
                arriving.open(task);
            }
        }
        Some(arriving)
    }

    /// The lookup has the entry of task `node` (`hit`: found and usable) or not.
    pub(crate) fn arrived(&self, node: usize, hit: bool) {
        let Some(task) = layered_call(self.run, node) else {
            return;
        };
        if !hit {
            self.open(task);
            return;
        }
        let Some(hash) = units_hash(self.run, node) else {
            return;
        };
        let job = (hash, format!("{} units", self.run.label(node)));
        let mut state = lock(&self.state);
        if state.open.contains(&task) {
            state.send(job);
        } else {
            state.waiting.push((task, job));
        }
    }

    /// `task`'s call will run: its registry layer and its hits' units so far are placed.
    fn open(&self, task: CargoTask) {
        let registry = registry_layer(self.run, task);
        let mut state = lock(&self.state);
        if !state.open.insert(task) {
            return;
        }
        for job in registry
            .iter()
            .flat_map(|keys| registry_wanted(&keys.registry, task))
        {
            state.send(job);
        }
        let (now, later) = std::mem::take(&mut state.waiting)
            .into_iter()
            .partition(|(waiting, _)| *waiting == task);
        state.waiting = later;
        for (_, job) in now {
            state.send(job);
        }
    }

    /// The lookup has ended: no more entries come; the placers finish what they were given.
    pub(crate) fn lookup_ended(self) -> Placers<'scope> {
        drop(self.state);
        self.placers
    }
}

impl Placers<'_> {
    /// Waits for the placers; returns the entries they took (placed, or found missing or
    /// unusable: not asked for again).
    fn join(self) -> Vec<String> {
        let mut handled = Vec::new();
        for thread in self.threads {
            if let Ok(hashes) = thread.join() {
                handled.extend(hashes);
            }
        }
        self.shared.staging.remove();
        handled
    }
}

/// A placing thread of [`Arriving`]: finds and places each entry it is given, until the lookup
/// ends. Returns the entries it took.
fn place_arriving(run: &Run<'_>, cache: &Cache, shared: &PlacerShared) -> Vec<String> {
    let mut handled = Vec::new();
    loop {
        let job = match shared.jobs.lock() {
            Ok(jobs) => jobs.recv(),
            Err(_) => break,
        };
        let Ok(job) = job else { break };
        // Not found (or not usable) is as final as placed; a deferred entry is left.
        let taken = find(run, cache, (&job.0, &job.1), &shared.check).is_none_or(|meta| {
            !matches!(
                place_or_defer(run, cache, &job, &meta, (None, &shared.staging)),
                Placement::Deferred
            )
        });
        if taken {
            handled.push(job.0);
        }
    }
    handled
}

/// Before `task`'s cargo call: restores its registry layer's shards and the package units of
/// the `hits` among the call's tasks into the target dir (units it already has are left alone).
/// Each entry is looked up, fetched and unpacked on its own thread, so one entry downloads
/// while another is written out; a unit file linked to a task output waits for `early` to
/// say the hits are restored. Returns how many units were placed; warnings go to the
/// reporter.
fn restore_before_call(
    run: &Run<'_>,
    cache: &Cache,
    task: CargoTask,
    hits: &HashSet<usize>,
    early: &EarlyRestore,
) -> usize {
    if !enabled(run) || !matches!(task, CargoTask::Build | CargoTask::Test) {
        return 0;
    }
    let Some(keys) = registry_layer(run, task) else {
        return 0;
    };
    let registry = &keys.registry;
    let mut wanted = registry_wanted(registry, task);
    for &node in hits {
        if matches!(run.graph.nodes[node].def.kind, TaskKind::Cargo(t) if t == task)
            && let Some(hash) = units_hash(run, node)
        {
            wanted.push((hash, format!("{} units", run.label(node))));
        }
    }
    {
        let state = early.lock();
        wanted.retain(|(hash, _)| !state.handled.contains(hash));
    }
    // Entries often observe the same env vars: each is read once.
    let check = ObservedCheck::default();
    // Downloads wait on the network: as many in flight as the task entries' fetch keeps.
    // Unpacking waits on the disk: more threads than cores, fewer than downloads (16 of them
    // on 2 cores took longer on loopback). With 10 ms added to each request (a proxy on
    // loopback), 500 units entries took 2.8 s on 4 threads for both, 1.3 to 1.6 s with 16
    // downloading.
    let staging = StagingDirs::new(&run.workspace.target_dir);
    let placed = xtask_util::pipeline(
        &wanted,
        (
            crate::remote::FETCH_THREADS,
            |(hash, label): &(String, String)| find(run, cache, (hash, label), &check),
        ),
        (
            run.options.jobs.max(2) * 2,
            |wanted: &(String, String), meta| place(run, cache, wanted, &meta, (early, &staging)),
        ),
    );
    staging.remove();
    placed.into_iter().flatten().sum()
}

/// The entries of registry layer `registry`'s shards, as (hash, label).
fn registry_wanted(registry: &str, task: CargoTask) -> Vec<(String, String)> {
    (0..REGISTRY_SHARDS)
        .map(|shard| {
            (
                registry_shard_hash(registry, shard),
                format!(
                    "{} registry units ({}/{REGISTRY_SHARDS})",
                    task.name(),
                    shard + 1
                ),
            )
        })
        .collect()
}

/// Places the units of `meta` (the entry `wanted`) that the target dir lacks: how many, or
/// `None` when the entry cannot be used (it is marked to be stored again).
fn place(
    run: &Run<'_>,
    cache: &Cache,
    wanted: &(String, String),
    meta: &EntryMeta,
    (early, staging): (&EarlyRestore, &StagingDirs),
) -> Option<usize> {
    match place_or_defer(run, cache, wanted, meta, (Some(early), staging)) {
        Placement::Placed(placed) => Some(placed),
        Placement::Unusable | Placement::Deferred => None,
    }
}

/// What became of an entry's units.
enum Placement {
    /// This many were placed (the others were in place already).
    Placed(usize),
    /// The entry cannot be used (it is marked to be stored again).
    Unusable,
    /// Nothing was done: some of its units link to task outputs that are not restored yet,
    /// and there was no `early` to wait on.
    Deferred,
}

/// [`place`], or nothing when the entry links to the hits' outputs and `early` is `None`
/// (during the lookup, before any hit is restored).
fn place_or_defer(
    run: &Run<'_>,
    cache: &Cache,
    (hash, label): &(String, String),
    meta: &EntryMeta,
    (early, staging): (Option<&EarlyRestore>, &StagingDirs),
) -> Placement {
    let target_dir = &run.workspace.target_dir;
    match restore_entry(cache, meta, target_dir, run.started_at, (early, staging)) {
        Ok(Some(placed)) => Placement::Placed(placed),
        Ok(None) => Placement::Deferred,
        Err(error) => {
            unusable(run, cache, hash, label, &format!("{error:#}"));
            Placement::Unusable
        }
    }
}

/// The usable entry of `hash`: local, else remote (imported), kept only while its observed
/// inputs hold (`check`).
fn find(
    run: &Run<'_>,
    cache: &Cache,
    (hash, label): (&str, &str),
    check: &ObservedCheck,
) -> Option<EntryMeta> {
    let meta = match cache.local.lookup(hash) {
        Ok(Some(meta)) => meta,
        Ok(None) => {
            let remote = cache.remote.as_ref()?;
            let request = [crate::remote::FetchRequest {
                hash,
                allowed: staging_allowed(),
                companion: None,
            }];
            crate::remote::fetch_misses(remote, &cache.local, &request, run.reporter, &|_, _| {})
                .pop()?
                .1
        }
        Err(error) => {
            unusable(run, cache, hash, label, &error.to_string());
            return None;
        }
    };
    if let Some(change) = check.first_change(&run.workspace.root, &meta) {
        run.reporter
            .line(&format!("{label}: cache entry not used: {change}"));
        return None;
    }
    Some(meta)
}

/// Warns that the entry `hash` cannot be used and marks it to be stored again.
fn unusable(run: &Run<'_>, cache: &Cache, hash: &str, label: &str, error: &str) {
    run.reporter.warning(&format!(
        "{label}: cache entry unusable, cargo builds them: {error}"
    ));
    if let Ok(mut unusable) = cache.unusable_units.lock() {
        unusable.insert(hash.to_owned());
    }
}

/// The staging directories of one restore, inside the target dir (the same file system, so a
/// move is a rename). Each placing thread takes one and hands it back for the next entry: a
/// directory made and removed per entry cost more than unpacking the entry (on 507 entries of
/// the synthetic tree, 0.65 to 0.75 s of the placing threads' time went to `remove_dir_all`).
/// What an entry leaves in one (files of units that were not placed, empty directories) is
/// removed with the rest at the end.
struct StagingDirs {
    base: PathBuf,
    free: Mutex<Vec<PathBuf>>,
    made: Mutex<Vec<PathBuf>>,
}

static STAGING: AtomicUsize = AtomicUsize::new(0);

impl StagingDirs {
    fn new(target_dir: &Path) -> StagingDirs {
        StagingDirs {
            base: target_dir.join("xtask").join("units-staging"),
            free: Mutex::default(),
            made: Mutex::default(),
        }
    }

    /// A staging directory no other thread uses: a free one, or a new empty one.
    fn take(&self) -> anyhow::Result<PathBuf> {
        if let Some(dir) = lock(&self.free).pop() {
            return Ok(dir);
        }
        let dir = self.base.join(format!(
            "{}-{}",
            std::process::id(),
            STAGING.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("failed to create `{}`", dir.display()))?;
        lock(&self.made).push(dir.clone());
        Ok(dir)
    }

    /// Hands `dir` back for another entry, or removes it after a failure (it may hold part of
    /// an entry whose names another entry would meet).
    fn give_back(&self, dir: PathBuf, reusable: bool) {
        if reusable {
            lock(&self.free).push(dir);
        } else {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    fn remove(&self) {
        for dir in lock(&self.made).drain(..) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Restores the units of `meta` that the target dir lacks into a staging directory of it
/// (nothing else of the entry is written), then moves each complete one into place with
/// modification time `mtime`. Returns how many units were placed, or `None` (nothing done)
/// when some link to the hits' outputs and there is no `early` to wait for their restore.
fn restore_entry(
    cache: &Cache,
    meta: &EntryMeta,
    target_dir: &Path,
    mtime: SystemTime,
    (early, staging_dirs): (Option<&EarlyRestore>, &StagingDirs),
) -> anyhow::Result<Option<usize>> {
    let links = unit_links::links_of(meta)?;
    let paths = meta.outputs.iter().map(|o| o.path.as_str());
    let units = group_by_unit(paths.chain(links.iter().map(|l| l.path.as_str())));
    // A warm target dir holds every unit already: extracting the archive only to throw it
    // away cost 15 s per cargo call on coreutils (a registry layer of hundreds of MB).
    let missing: Vec<MissingUnit<'_>> = units_missing(&units, target_dir).collect();
    if missing.is_empty() {
        return Ok(Some(0));
    }
    let links = links_wanted(&missing, &links);
    let early = match early {
        Some(early) => Some(early),
        None if links.is_empty() => None,
        None => return Ok(None),
    };
    let staging = staging_dirs.take()?;
    let staged = Staged {
        missing: &missing,
        links: &links,
        dir: &staging,
        mtime,
    };
    let placed = restore_staged(cache, meta, &staged, target_dir, early);
    staging_dirs.give_back(staging, placed.is_ok());
    placed.map(Some)
}

/// A unit the target dir lacks: its profile directory, its directory under `.fingerprint/`
/// and its files (target-relative).
struct MissingUnit<'a> {
    profile: &'a str,
    fingerprint_dir: &'a str,
    files: &'a UnitFiles,
}

impl MissingUnit<'_> {
    /// `<profile>/.fingerprint/<dir>`, target-relative.
    fn fingerprint_path(&self) -> PathBuf {
        Path::new(self.profile)
            .join(".fingerprint")
            .join(self.fingerprint_dir)
    }
}

/// The units of an entry (those with a fingerprint, the only ones placed) that the target dir
/// lacks, from the entry's list of files: nothing is extracted to know.
fn units_missing<'a>(
    units: &'a BTreeMap<(String, String), UnitFiles>,
    target_dir: &'a Path,
) -> impl Iterator<Item = MissingUnit<'a>> {
    units.iter().filter_map(move |((profile, _), files)| {
        let dir = files.fingerprint_dir.as_deref()?;
        (!unit_in_place(target_dir, profile, dir)).then_some(MissingUnit {
            profile,
            fingerprint_dir: dir,
            files,
        })
    })
}

/// Whether the target dir has the unit whose fingerprint directory is `dir` under `profile`.
fn unit_in_place(target_dir: &Path, profile: &str, dir: &str) -> bool {
    target_dir
        .join(profile)
        .join(".fingerprint")
        .join(dir)
        .exists()
}

/// An entry's units being restored through a staging directory.
struct Staged<'a> {
    /// The units the target dir lacks.
    missing: &'a [MissingUnit<'a>],
    /// Their links (see [`links_wanted`]).
    links: &'a [&'a Link],
    dir: &'a Path,
    mtime: SystemTime,
}

fn restore_staged(
    cache: &Cache,
    meta: &EntryMeta,
    staged: &Staged<'_>,
    target_dir: &Path,
    early: Option<&EarlyRestore>,
) -> anyhow::Result<usize> {
    let staging = staged.dir;
    let to_write: HashSet<&str> = staged
        .missing
        .iter()
        .flat_map(|unit| unit.files.other.iter().chain(&unit.files.fingerprint))
        .map(String::as_str)
        .collect();
    cache
        .local
        .unpack_fresh(meta, staging, &staging_allowed(), staged.mtime, &|path| {
            to_write.contains(path)
        })?;
    // No `early` only when there are no links (see `restore_entry`).
    let unlinked = early.map_or_else(HashSet::new, |early| place_links(staged, target_dir, early));
    let mut parents = xtask_util::ParentDirs::default();
    let mut placed = 0;
    for unit in staged.missing {
        if unit
            .files
            .other
            .iter()
            .any(|f| unlinked.contains(f.as_str()))
        {
            continue;
        }
        for relative in &unit.files.other {
            let to = target_dir.join(relative);
            parents.create_for(&to)?;
            std::fs::rename(staging.join(relative), &to)
                .with_context(|| format!("failed to move `{}` into place", to.display()))?;
        }
        // The fingerprint last, its directory whole: until it is in place, cargo rebuilds the
        // unit, and once it is, it is complete.
        let fingerprint = unit.fingerprint_path();
        let to = target_dir.join(&fingerprint);
        parents.create_for(&to)?;
        std::fs::rename(staging.join(&fingerprint), &to)
            .with_context(|| format!("failed to move `{}` into place", to.display()))?;
        placed += 1;
    }
    Ok(placed)
}

/// The `links` of the `missing` units.
fn links_wanted<'a>(missing: &[MissingUnit<'_>], links: &'a [Link]) -> Vec<&'a Link> {
    let missing: BTreeSet<&str> = missing
        .iter()
        .flat_map(|unit| unit.files.other.iter().map(String::as_str))
        .collect();
    links
        .iter()
        .filter(|link| missing.contains(link.path.as_str()))
        .collect()
}

/// Places the entry's links (of units the target dir lacks) in the staging directory, once the
/// hits' outputs they link to are restored. Returns the links that could not be placed (not
/// the bytes they name, or an error): their units are left to cargo.
fn place_links<'a>(
    staged: &Staged<'a>,
    target_dir: &Path,
    early: &EarlyRestore,
) -> HashSet<&'a str> {
    let mut unlinked = HashSet::new();
    if staged.links.is_empty() {
        return unlinked;
    }
    early.wait_for_hits();
    for &link in staged.links {
        let placed = unit_links::place(link, target_dir, staged.dir, staged.mtime);
        if !placed.unwrap_or(false) {
            unlinked.insert(link.path.as_str());
        }
    }
    unlinked
}

/// The units of workspace package `package` in this call: those its JSON messages named,
/// and its bins' (found in `.fingerprint/<name>-H/bin-<bin>`), minus any unit of a registry
/// package of the same name.
fn package_units(run: &Run<'_>, seen: &UnitsSeen, package: PackageIndex) -> BTreeSet<Unit> {
    let mut units = seen.workspace.get(&package).cloned().unwrap_or_default();
    let name = &run.workspace.packages[package].name;
    let profiles: BTreeSet<PathBuf> = seen
        .workspace
        .values()
        .flatten()
        .chain(&seen.registry)
        .map(|u| u.profile_dir.clone())
        .collect();
    for bin in seen.bins.get(&package).into_iter().flatten() {
        for profile in &profiles {
            let Ok(entries) = std::fs::read_dir(profile.join(".fingerprint")) else {
                continue;
            };
            for entry in entries.flatten() {
                let dir = entry.file_name();
                let Some(dir) = dir.to_str() else { continue };
                let Some((prefix, _)) = dir.rsplit_once('-') else {
                    continue;
                };
                if prefix != name || !entry.path().join(format!("bin-{bin}")).is_file() {
                    continue;
                }
                if let Some(hash) = metadata_hash(dir) {
                    let unit = Unit {
                        profile_dir: profile.clone(),
                        hash,
                    };
                    if !seen.registry.contains(&unit) {
                        units.insert(unit);
                    }
                }
            }
        }
    }
    units
}

/// Stores `task`'s registry layer after a complete call: each of its shards that is not
/// stored already, side by side. Returns the stored entries (for upload).
pub(crate) fn store_registry_layer(
    run: &Run<'_>,
    cache: &Cache,
    task: CargoTask,
    seen: &UnitsSeen,
) -> Vec<EntryMeta> {
    if !enabled(run) || !seen.complete || seen.registry.is_empty() {
        return Vec::new();
    }
    let Some(keys) = registry_layer(run, task) else {
        return Vec::new();
    };
    let (registry, key) = (&keys.registry, &keys.key);
    let missing: Vec<(usize, String, BTreeSet<Unit>)> = shard_units(&seen.registry)
        .into_iter()
        .enumerate()
        .filter(|(_, units)| !units.is_empty())
        .map(|(shard, units)| (shard, registry_shard_hash(registry, shard), units))
        .filter(|(_, hash, _)| {
            let unusable = cache
                .unusable_units
                .lock()
                .is_ok_and(|unusable| unusable.contains(hash));
            unusable || cache.local.lookup(hash).ok().flatten().is_none()
        })
        .collect();
    if missing.is_empty() {
        return Vec::new();
    }
    // Cargo.lock changed during the call: cargo built other crates than the key says.
    if key["lockfile"].as_str() != Some(lockfile_digest(&run.workspace.root).as_str()) {
        run.reporter
            .warning("registry units not cached: `Cargo.lock` changed while cargo ran");
        return Vec::new();
    }
    let stored =
        xtask_util::parallel_map(&missing, run.options.jobs.max(2), |(shard, hash, units)| {
            let files = unit_files(units);
            let observed = registry_observed(run, &files);
            let mut key = key.clone();
            key["shard"] = serde_json::json!(shard);
            key["shards"] = serde_json::json!(REGISTRY_SHARDS);
            let manifest = observed.add_to_manifest(key);
            store(
                run,
                cache,
                hash,
                manifest,
                &files,
                &format!(
                    "{} registry units ({}/{REGISTRY_SHARDS})",
                    task.name(),
                    shard + 1
                ),
            )
        });
    stored.into_iter().flatten().collect()
}

/// The registry's units split into [`REGISTRY_SHARDS`] by their metadata hash: the same unit
/// always lands in the same shard, whatever else the call used or which machine stored it, so
/// shards never overlap.
fn shard_units(units: &BTreeSet<Unit>) -> Vec<BTreeSet<Unit>> {
    let mut shards = vec![BTreeSet::new(); REGISTRY_SHARDS];
    for unit in units {
        shards[shard_of(&unit.hash)].insert(unit.clone());
    }
    shards
}

/// The shard of the unit whose metadata hash (16 hex digits, itself a hash) is `hash`.
fn shard_of(hash: &str) -> usize {
    let prefix = hash.get(..8).unwrap_or(hash);
    u32::from_str_radix(prefix, 16).map_or(0, |n| n as usize % REGISTRY_SHARDS)
}

/// The env vars rustc read for the registry units (their `# env-dep:` lines), digested.
fn registry_observed(run: &Run<'_>, files: &[PathBuf]) -> xtask_hash::ObservedInputs {
    let mut observation = Observation::default();
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "d"))
    {
        crate::observe::read_dep_info(file, &run.workspace.root, &mut observation);
    }
    observation.files.clear();
    let (observed, _) = digest_observation(
        &run.workspace.root,
        &observation,
        &Exclusions::new(&run.workspace.target_dir),
        RunStart(SystemTime::now()),
    );
    observed
}

/// Stores the units of the package of `node` (a cargo task of this call whose own entry,
/// `task_entry`, was just stored); files that are the task's outputs too are links to them.
/// Returns the stored entry (for upload).
pub(crate) fn store_package_units(
    run: &Run<'_>,
    cache: &Cache,
    node: usize,
    seen: &UnitsSeen,
    task_entry: &EntryMeta,
) -> Option<EntryMeta> {
    let hash = units_hash(run, node)?;
    let keys = registry_layer(run, layered_call(run, node)?)?;
    let environment = &keys.units_environment;
    let package = run.graph.nodes[node].package;
    let units = package_units(run, seen, package);
    if units.is_empty() {
        return None;
    }
    let manifest = serde_json::json!({
        "layer": "package",
        "schema": LAYER_SCHEMA,
        "environment": environment,
        "task_hash": run.planned[node].hash,
    });
    let target_dir = &run.workspace.target_dir;
    let (files, links) = unit_links::split_links(target_dir, task_entry, unit_files(&units));
    let manifest = unit_links::with_links(manifest, &links);
    store(
        run,
        cache,
        &hash,
        manifest,
        &files,
        &format!("{} units", run.label(node)),
    )
}

fn store(
    run: &Run<'_>,
    cache: &Cache,
    hash: &str,
    manifest: serde_json::Value,
    files: &[PathBuf],
    label: &str,
) -> Option<EntryMeta> {
    let target_dir = &run.workspace.target_dir;
    let outputs: Vec<OutputFile> = files
        .iter()
        .filter_map(|file| {
            let relative = file.strip_prefix(target_dir).ok()?;
            let relative = relative.to_str()?.replace('\\', "/");
            Some(OutputFile {
                root: OutputRoot::Target,
                relative_path: relative,
                absolute_path: file.clone(),
            })
        })
        .collect();
    let entry = xtask_cache::NewEntry {
        task_hash: hash,
        manifest,
        outputs,
        log: b"",
        duration_ms: 0,
        exit_code: 0,
    };
    match cache.local.store(entry) {
        Ok(meta) => Some(meta),
        Err(error) => {
            run.reporter
                .warning(&format!("{label}: not cached: {error}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unit_lands_in_exactly_one_shard_by_its_hash_alone() {
        let unit = |profile: &str, hash: String| Unit {
            profile_dir: PathBuf::from(profile),
            hash,
        };
        let units: BTreeSet<Unit> = (0..400_u64)
            .map(|n| {
                unit(
                    "/t/debug",
                    format!("{:016x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                )
            })
            .collect();
        let shards = shard_units(&units);
        assert_eq!(shards.len(), REGISTRY_SHARDS);
        assert_eq!(shards.iter().map(BTreeSet::len).sum::<usize>(), units.len());
        for (n, shard) in shards.iter().enumerate() {
            // Spread: no shard empty or holding more than twice its share of 400 units.
            assert!(
                (1..=100).contains(&shard.len()),
                "shard {n}: {}",
                shard.len()
            );
            for unit in shard {
                assert_eq!(shard_of(&unit.hash), n);
            }
        }
        // Another call's unit set (a subset, another profile) puts a unit in the same shard.
        let other: BTreeSet<Unit> = units
            .iter()
            .step_by(3)
            .map(|u| unit("/t/release", u.hash.clone()))
            .collect();
        for (n, shard) in shard_units(&other).iter().enumerate() {
            for unit in shard {
                assert!(shards[n].iter().any(|u| u.hash == unit.hash));
            }
        }
        // A name that is not a hash still has a shard.
        assert!(shard_of("not-hex") < REGISTRY_SHARDS);
    }

    #[test]
    fn a_warm_target_dir_misses_no_unit_and_a_fresh_one_misses_each() {
        let target = tempfile::tempdir().unwrap();
        let paths = [
            "debug/deps/liba-0123456789abcdef.rlib",
            "debug/.fingerprint/a-0123456789abcdef/lib-a",
            "debug/deps/libb-fedcba9876543210.rlib",
            "debug/.fingerprint/b-fedcba9876543210/lib-b",
            // Without a fingerprint cargo would not trust it: never placed, never missing.
            "debug/deps/libc-00000000000000aa.rlib",
        ];
        let units = group_by_unit(paths);
        let missing_units = |units, target| units_missing(units, target).count();
        assert_eq!(missing_units(&units, target.path()), 2);
        std::fs::create_dir_all(target.path().join("debug/.fingerprint/a-0123456789abcdef"))
            .unwrap();
        assert_eq!(missing_units(&units, target.path()), 1);
        std::fs::create_dir_all(target.path().join("debug/.fingerprint/b-fedcba9876543210"))
            .unwrap();
        assert_eq!(missing_units(&units, target.path()), 0);
    }
}

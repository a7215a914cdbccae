//! The `dev` loop: one thread owns the apps' processes and receives everything else as events
//! (file events from the watcher, grouped into bursts by [`crate::settle`], finished builds
//! from the build thread, SIGINT and SIGTERM from the signal thread). Builds go through the
//! engine (`build` of the triggered apps and their dependencies, cache hits restored) on the
//! workspace model the loop holds (reloaded only when what it is made of changed, see
//! [`Triggered::reload_model`]); at most one build runs, and changes seen meanwhile are merged
//! into ONE follow-up build.
//!
//! Invariants: an app's running process is stopped only after a build that produced a new
//! binary succeeded (a failed build leaves it serving); every process is stopped (SIGTERM to
//! its group, the grace period, SIGKILL) before `dev` returns, also on SIGINT/SIGTERM; status
//! lines go to stderr through [`status`], never stdout.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use notify::{RecursiveMode, Watcher};
use xtask_engine::report::{ReportMode, Reporter, TaskStatus, format_duration};
use xtask_engine::{CliError, RunOptions};
use xtask_model::{TaskName, Workspace};

use crate::DevOptions;
use crate::apps::{AppSpec, select_apps};
use crate::dotenv::read_dotenv;
use crate::filter::{DOTENV_FILE, Triggered, WatchFilter};
use crate::process::{AppProcess, SpawnOptions};
use crate::readiness::wait_until_healthy;
use crate::settle::{Burst, FileEvent, Handover, Settle};

/// How long a new process may take to answer its health path before `dev` says so.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the loop checks for crashed apps when nothing else happens.
const TICK: Duration = Duration::from_millis(50);

/// What the loop reports to an observer (the benchmark), with the instants it measured.
#[derive(Debug, Clone)]
pub enum DevEvent {
    /// The initial build and starts are done; the watcher is on.
    Watching,
    /// A burst of changes triggered a build of `apps`.
    Changed {
        /// When the watcher first saw the earliest event of the burst.
        first_seen: Instant,
        /// When the loop handed the burst over (it settled, or its quiet time passed).
        received: Instant,
        apps: Vec<String>,
    },
    BuildStarted {
        at: Instant,
        apps: Vec<String>,
    },
    BuildFinished {
        at: Instant,
        /// The engine's whole run.
        elapsed: Duration,
        /// The wall time of the run's cargo calls; zero when all were hits.
        cargo: Duration,
        succeeded: Vec<String>,
        failed: Vec<String>,
    },
    /// A new process answers its health path.
    Ready {
        app: String,
        pid: u32,
        at: Instant,
        /// Stopping the old process (zero when there was none).
        stop: Duration,
    },
    Exited {
        app: String,
        pid: u32,
    },
}

/// Sends events into a running `dev` loop from another thread.
#[derive(Debug, Clone)]
pub struct DevHandle {
    sender: Sender<Event>,
}

impl DevHandle {
    /// Asks the loop to stop every app and return.
    pub fn shutdown(&self, reason: &str) {
        let _ = self.sender.send(Event::Shutdown(reason.to_string()));
    }
}

enum Event {
    File { event: FileEvent, at: Instant },
    WatchError(String),
    BuildDone(Box<BuildDone>),
    Shutdown(String),
}

struct BuildDone {
    apps: Vec<usize>,
    result: anyhow::Result<xtask_engine::RunOutcome>,
    started: Instant,
}

/// Identity of a built binary: a relink or a restore gives a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BinaryStamp {
    modified: SystemTime,
    len: u64,
    inode: u64,
}

impl BinaryStamp {
    fn read(path: &Path) -> Option<BinaryStamp> {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(path).ok()?;
        Some(BinaryStamp {
            modified: metadata.modified().ok()?,
            len: metadata.len(),
            inode: metadata.ino(),
        })
    }
}

struct AppState {
    spec: AppSpec,
    listener: Option<TcpListener>,
    process: Option<AppProcess>,
    /// Binary and environment of the running process.
    running_stamp: Option<BinaryStamp>,
    running_env: BTreeMap<String, String>,
}

/// A `dev` session: create with [`Supervisor::new`], run with [`Supervisor::run`].
pub struct Supervisor {
    options: DevOptions,
    workspace: Workspace,
    apps: Vec<AppState>,
    filter: WatchFilter,
    sender: Sender<Event>,
    receiver: Receiver<Event>,
    observer: Option<Sender<DevEvent>>,
    build: Option<JoinHandle<()>>,
    pending: BTreeSet<usize>,
    /// The last reload of the model failed: try again before the next build.
    model_stale: bool,
}

impl Supervisor {
    /// Loads the workspace, resolves the apps and opens their listening sockets (when handing
    /// them over). Starts nothing yet.
    pub fn new(options: DevOptions, observer: Option<Sender<DevEvent>>) -> anyhow::Result<Self> {
        let workspace = xtask_engine::load_workspace(&options.location)?;
        let mut specs = select_apps(&workspace, &options.apps, options.release)?;
        for spec in &mut specs {
            if let Some(&port) = options.ports.get(&spec.name) {
                spec.port = port;
            }
        }
        let filter = WatchFilter::new(&workspace, &specs)?;
        let mut apps = Vec::new();
        for spec in specs {
            let listener = if options.socket_handover {
                let address = SocketAddr::from((Ipv4Addr::LOCALHOST, spec.port));
                Some(TcpListener::bind(address).with_context(|| {
                    format!(
                        "failed to listen on {address} for app `{}` (is something else using the port?)",
                        spec.name
                    )
                })?)
            } else {
                None
            };
            apps.push(AppState {
                spec,
                listener,
                process: None,
                running_stamp: None,
                running_env: BTreeMap::new(),
            });
        }
        let (sender, receiver) = mpsc::channel();
        Ok(Supervisor {
            options,
            workspace,
            apps,
            filter,
            sender,
            receiver,
            observer,
            build: None,
            pending: BTreeSet::new(),
            model_stale: false,
        })
    }

    pub fn handle(&self) -> DevHandle {
        DevHandle {
            sender: self.sender.clone(),
        }
    }

    /// Builds and starts every app, then watches until [`DevHandle::shutdown`]; stops every
    /// app before returning.
    pub fn run(mut self) -> anyhow::Result<()> {
        let names: Vec<&str> = self.apps.iter().map(|a| a.spec.name.as_str()).collect();
        status(&format!(
            "apps: {} (grace period {}, socket hand-over {})",
            names.join(", "),
            format_duration(self.options.grace_period),
            if self.options.socket_handover {
                "on"
            } else {
                "off"
            }
        ));
        let result = self.watch_loop();
        self.shutdown();
        result
    }

    fn watch_loop(&mut self) -> anyhow::Result<()> {
        let sender = self.sender.clone();
        let mut watcher =
            notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
                let at = Instant::now();
                let event = match result {
                    Ok(event) => Event::File {
                        event: FileEvent {
                            rescan: event.need_rescan(),
                            kind: event.kind,
                            paths: event.paths,
                        },
                        at,
                    },
                    Err(error) => Event::WatchError(error.to_string()),
                };
                let _ = sender.send(event);
            })
            .context("failed to start the file watcher")?;
        for (path, recursive) in self.filter.watch_roots() {
            let mode = if recursive {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            watcher
                .watch(&path, mode)
                .with_context(|| format!("failed to watch `{}`", path.display()))?;
        }

        let settle = Settle::new(self.options.debounce);
        let mut burst: Option<Burst> = None;
        self.start_build((0..self.apps.len()).collect(), true);
        let mut watching_reported = false;
        loop {
            if self.build.is_none() && !self.pending.is_empty() {
                let apps = std::mem::take(&mut self.pending).into_iter().collect();
                self.start_build(apps, false);
            }
            if self.build.is_none() && !watching_reported {
                watching_reported = true;
                status("watching for changes (Ctrl-C to stop)");
                self.notify(DevEvent::Watching);
            }
            let wait = burst.as_ref().map_or(TICK, |burst| {
                burst
                    .due(&settle)
                    .saturating_duration_since(Instant::now())
                    .min(TICK)
            });
            match self.receiver.recv_timeout(wait) {
                Ok(Event::File { event, at }) => {
                    let filter = &self.filter;
                    Burst::add(&mut burst, &event, at, |path| filter.is_known_input(path));
                }
                Ok(Event::WatchError(message)) => status(&format!("watch error: {message}")),
                Ok(Event::BuildDone(done)) => {
                    if let Some(thread) = self.build.take() {
                        let _ = thread.join();
                    }
                    self.build_done(*done);
                }
                Ok(Event::Shutdown(reason)) => {
                    status(&format!("stopping: {reason}"));
                    break;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if let Some(handover) = Burst::take_due(&mut burst, &settle, Instant::now()) {
                self.changed(handover)?;
            }
            self.reap_crashed();
        }
        drop(watcher);
        Ok(())
    }

    fn changed(&mut self, handover: Handover) -> anyhow::Result<()> {
        let received = Instant::now();
        let mut triggered = self.filter.classify(&handover.paths);
        if handover.rescan {
            status("the file watcher lost events: rebuilding every app");
            triggered.reload_model = true;
            triggered.apps.extend(0..self.apps.len());
        }
        if triggered.reload_model || self.model_stale {
            match self.reload() {
                Ok(()) => {
                    self.model_stale = false;
                    if triggered.reload_model {
                        triggered.apps.extend(0..self.apps.len());
                    }
                }
                Err(error) => {
                    self.model_stale = true;
                    status(&format!(
                        "the workspace no longer loads: {error:#}; fix it and save"
                    ));
                    return Ok(());
                }
            }
        }
        if triggered.apps.is_empty() {
            return Ok(());
        }
        let names = self.names(triggered.apps.iter().copied());
        let shown = shown_changes(&triggered);
        if self.build.is_some() {
            status(&format!(
                "changed: {shown} (during a build): one follow-up build of {} queued",
                names.join(", ")
            ));
        } else {
            status(&format!(
                "changed: {shown} -> rebuilding {}",
                names.join(", ")
            ));
        }
        self.notify(DevEvent::Changed {
            first_seen: handover.first_seen,
            received,
            apps: names,
        });
        self.pending.extend(triggered.apps);
        Ok(())
    }

    /// What the model is made of changed: reload it and the filter; the apps' set stays the
    /// same.
    fn reload(&mut self) -> anyhow::Result<()> {
        let workspace = xtask_engine::load_workspace(&self.options.location)?;
        let names: Vec<String> = self.apps.iter().map(|a| a.spec.name.clone()).collect();
        let specs = select_apps(&workspace, &names, self.options.release)?;
        let filter = WatchFilter::new(&workspace, &specs)?;
        for (app, spec) in self.apps.iter_mut().zip(specs) {
            if spec.port != app.spec.port && app.listener.is_some() {
                status(&format!(
                    "{}: the port changed to {}; restart `dev` to listen on it",
                    spec.name, spec.port
                ));
            }
            app.spec = AppSpec {
                port: app.spec.port,
                ..spec
            };
        }
        self.workspace = workspace;
        self.filter = filter;
        Ok(())
    }

    fn start_build(&mut self, apps: Vec<usize>, first: bool) {
        let names = self.names(apps.iter().copied());
        let options = RunOptions {
            packages: names.clone(),
            // Every edit would add a binary to the cache; only the first build is stored.
            no_cache: !first,
            jobs: self.options.jobs,
            release: self.options.release,
            ..RunOptions::new(self.options.location.clone(), vec![TaskName::BUILD])
        };
        let started = Instant::now();
        status(&format!("building {}", names.join(", ")));
        self.notify(DevEvent::BuildStarted {
            at: started,
            apps: names,
        });
        let sender = self.sender.clone();
        // The model is what `cargo metadata` said when it was last (re)loaded; everything
        // else (inputs, keys, the lockfile) the engine reads again.
        let workspace = self.workspace.clone();
        self.build = Some(std::thread::spawn(move || {
            let reporter = Reporter::new(ReportMode::Plain).with_quiet_hits(true);
            let result = xtask_engine::run_loaded(workspace, &options, &reporter);
            let _ = sender.send(Event::BuildDone(Box::new(BuildDone {
                apps,
                result,
                started,
            })));
        }));
    }

    fn build_done(&mut self, done: BuildDone) {
        let finished = Instant::now();
        let elapsed = finished - done.started;
        let outcome = match done.result {
            Ok(outcome) => outcome,
            Err(error) => {
                status(&format!(
                    "build failed to run after {}: {error:#}; running apps keep serving",
                    format_duration(elapsed)
                ));
                let names = self.names(done.apps.iter().copied());
                self.notify(DevEvent::BuildFinished {
                    at: finished,
                    elapsed,
                    cargo: Duration::ZERO,
                    succeeded: Vec::new(),
                    failed: names,
                });
                return;
            }
        };
        let cargo = outcome.totals.cargo;
        let mut succeeded = Vec::new();
        let mut failed = Vec::new();
        for &app in &done.apps {
            let name = &self.apps[app].spec.name;
            let ok = outcome.records.iter().any(|r| {
                &r.package == name
                    && r.task == TaskName::BUILD.as_str()
                    && matches!(r.status, TaskStatus::Hit | TaskStatus::Succeeded)
            });
            if ok {
                succeeded.push(app);
            } else {
                failed.push(app);
            }
        }
        status(&format!(
            "build finished in {} (cargo {}){}",
            format_duration(elapsed),
            format_duration(cargo),
            if failed.is_empty() {
                String::new()
            } else {
                format!(
                    "; FAILED: {}",
                    self.names(failed.iter().copied()).join(", ")
                )
            }
        ));
        for &app in &failed {
            let state = &self.apps[app];
            match &state.process {
                Some(process) => status(&format!(
                    "{}: build failed, the running process (pid {}) keeps serving; fix the error and save",
                    state.spec.name,
                    process.pid()
                )),
                None => status(&format!(
                    "{}: build failed, not started; fix the error and save",
                    state.spec.name
                )),
            }
        }
        self.notify(DevEvent::BuildFinished {
            at: finished,
            elapsed,
            cargo,
            succeeded: self.names(succeeded.iter().copied()),
            failed: self.names(failed.iter().copied()),
        });
        for app in succeeded {
            if let Err(error) = self.restart(app) {
                status(&format!("{}: {error:#}", self.apps[app].spec.name));
            }
        }
    }

    /// Replaces the app's process with one running the new binary (if the binary or the
    /// environment changed, or nothing runs), and waits for it to answer its health path.
    fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        let started = Instant::now();
        let env = app_env(&self.workspace, &self.apps[index].spec)?;
        let app = &mut self.apps[index];
        let stamp = BinaryStamp::read(&app.spec.binary);
        if stamp.is_none() {
            anyhow::bail!(
                "the build succeeded but `{}` does not exist",
                app.spec.binary.display()
            );
        }
        if app.process.is_some() && stamp == app.running_stamp && env == app.running_env {
            status(&format!(
                "{}: binary and environment unchanged, not restarted",
                app.spec.name
            ));
            return Ok(());
        }
        let mut stop = Duration::ZERO;
        let old_pid = app.process.as_ref().map(AppProcess::pid);
        if let Some(process) = app.process.take() {
            let stopped = process.stop(self.options.grace_period)?;
            stop = stopped.took;
            if stopped.killed {
                status(&format!(
                    "{}: pid {} outlived the grace period ({}), SIGKILLed its process group",
                    app.spec.name,
                    old_pid.unwrap_or_default(),
                    format_duration(self.options.grace_period)
                ));
            }
        }
        let process = AppProcess::spawn(&SpawnOptions {
            name: &app.spec.name,
            binary: &app.spec.binary,
            cwd: &self.workspace.root,
            env: &env,
            listener: app.listener.as_ref(),
        })?;
        let pid = process.pid();
        app.process = Some(process);
        app.running_stamp = stamp;
        app.running_env = env;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, app.spec.port));
        let process = app.process.as_mut().context("internal error: no process")?;
        let ready = wait_until_healthy(address, &app.spec.health_path, READY_TIMEOUT, || {
            process.try_exit().is_none()
        });
        let took = started.elapsed();
        let what = match old_pid {
            Some(old) => format!(
                "restarted (pid {old} -> {pid}, old one stopped in {})",
                format_duration(stop)
            ),
            None => format!("started (pid {pid})"),
        };
        match ready {
            Ok(()) => {
                status(&format!(
                    "{}: {what}, answering {} on {address} after {}",
                    app.spec.name,
                    app.spec.health_path,
                    format_duration(took)
                ));
                let name = app.spec.name.clone();
                self.notify(DevEvent::Ready {
                    app: name,
                    pid,
                    at: Instant::now(),
                    stop,
                });
            }
            Err(problem) => status(&format!("{}: {what}, but {problem}", app.spec.name)),
        }
        Ok(())
    }

    /// Reports apps that exited on their own; they restart on the next change.
    fn reap_crashed(&mut self) {
        let mut exited = Vec::new();
        for app in &mut self.apps {
            let Some(process) = &mut app.process else {
                continue;
            };
            if let Some(exit) = process.try_exit() {
                let pid = process.pid();
                // Stopping also clears what the leader left behind in its group.
                if let Some(process) = app.process.take()
                    && let Err(error) = process.stop(self.options.grace_period)
                {
                    status(&format!("{}: {error:#}", app.spec.name));
                }
                app.running_stamp = None;
                status(&format!(
                    "{}: pid {pid} exited ({exit}); it restarts on the next change",
                    app.spec.name
                ));
                exited.push(DevEvent::Exited {
                    app: app.spec.name.clone(),
                    pid,
                });
            }
        }
        for event in exited {
            self.notify(event);
        }
    }

    /// Stops every app (in parallel, so the grace period is spent once), then waits for a
    /// running build so that no cargo is left behind.
    fn shutdown(&mut self) {
        let grace = self.options.grace_period;
        std::thread::scope(|scope| {
            for app in &mut self.apps {
                let Some(process) = app.process.take() else {
                    continue;
                };
                let name = app.spec.name.clone();
                scope.spawn(move || {
                    let pid = process.pid();
                    match process.stop(grace) {
                        Ok(stopped) if stopped.killed => status(&format!(
                            "{name}: pid {pid} outlived the grace period, SIGKILLed its process group"
                        )),
                        Ok(stopped) => status(&format!(
                            "{name}: pid {pid} stopped in {}",
                            format_duration(stopped.took)
                        )),
                        Err(error) => status(&format!("{name}: {error:#}")),
                    }
                });
            }
        });
        if let Some(build) = self.build.take() {
            status("waiting for the running build to finish");
            let _ = build.join();
        }
    }

    fn names(&self, apps: impl Iterator<Item = usize>) -> Vec<String> {
        apps.map(|a| self.apps[a].spec.name.clone()).collect()
    }

    fn notify(&self, event: DevEvent) {
        if let Some(observer) = &self.observer {
            let _ = observer.send(event);
        }
    }
}

/// How a status line names what changed.
fn shown_changes(triggered: &Triggered) -> String {
    match triggered.changed.as_slice() {
        [] if triggered.reload_model => "the workspace".to_string(),
        [] => "files".to_string(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} and {} more", rest.len()),
    }
}

/// The app's environment on top of `dev`'s own: the metadata's `env`, then the root `.env`,
/// then `PORT` (the metadata's port, which `dev` listens on) and `BIND_ADDR=127.0.0.1` unless set.
fn app_env(workspace: &Workspace, spec: &AppSpec) -> anyhow::Result<BTreeMap<String, String>> {
    let mut env = spec.env.clone();
    let dotenv = read_dotenv(&workspace.root.join(DOTENV_FILE))
        .map_err(|e| CliError::config(e.to_string()))?;
    env.extend(dotenv);
    env.insert("PORT".to_string(), spec.port.to_string());
    if std::env::var_os("BIND_ADDR").is_none() {
        env.entry("BIND_ADDR".to_string())
            .or_insert_with(|| "127.0.0.1".to_string());
    }
    Ok(env)
}

/// One status line on stderr, prefixed `[dev]`.
pub fn status(message: &str) {
    use std::io::Write;
    let _ = std::io::stderr()
        .lock()
        .write_all(format!("[dev] {message}\n").as_bytes());
}

//! `cargo xtask bench dev`: on a copy of the workspace (in a temp dir, building into
//! `<target>/bench-dev` so reruns are incremental), runs the `dev` loop for one app, then
//! repeatedly appends one line of code to a source file of the app and measures, from the
//! write to the new process answering its health path, where the time goes:
//!
//! - watch: write -> the burst reaches the loop (inotify, the settle grace or the debounce)
//! - dispatch: burst -> engine run starts (filtering, queueing)
//! - engine: the engine's run minus cargo's processes (hashing, cache lookups, and the work it
//!   does around the cargo call: the freshness check before, reading dep-info after)
//! - cargo: the wall time of the cargo processes, from their exec to their exit, seen in
//!   `/proc` (see [`CargoClock`]); where `/proc` cannot show them, the engine's own figure,
//!   which also counts its work around the call, and the report says so
//! - restart: build end -> new process answers (stop old, spawn, health poll), with the old
//!   process's own shutdown shown apart
//!
//! Tool overhead = everything but cargo. Targets: overhead < 50 ms, total < 3 s.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use xtask_engine::{CliError, CliResult, Location, Outcome};

use crate::supervisor::{DevEvent, Supervisor};
use crate::{DEFAULT_DEBOUNCE, DevOptions};

/// Target of the tool's own overhead per change.
pub const OVERHEAD_TARGET: Duration = Duration::from_millis(50);
/// Target of a one-line change, write to served.
pub const TOTAL_TARGET: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub location: Location,
    /// The app to edit (default: the first app by name).
    pub app: Option<String>,
    /// Measured edits (after one warm-up edit); at least one.
    pub iterations: usize,
    pub jobs: usize,
}

/// One measured edit.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    watch: Duration,
    dispatch: Duration,
    engine: Duration,
    cargo: Duration,
    /// Cargo's time as the engine counts it (its work around the call included).
    engine_cargo: Duration,
    restart: Duration,
    /// Of `restart`: the old process shutting down after SIGTERM.
    stop: Duration,
    total: Duration,
    /// `cargo` comes from `/proc`, not from the engine.
    cargo_from_proc: bool,
}

impl Sample {
    fn overhead(&self) -> Duration {
        self.total.saturating_sub(self.cargo)
    }
}

/// `cargo xtask bench dev`: runs the benchmark; the report on stdout.
pub fn bench_dev(options: &BenchOptions) -> CliResult {
    Ok(Outcome::print(bench_report(options)?))
}

fn bench_report(options: &BenchOptions) -> anyhow::Result<String> {
    let workspace = xtask_engine::load_workspace(&options.location)?;
    let app = match &options.app {
        Some(app) => app.clone(),
        None => workspace
            .packages
            .iter()
            .find(|p| p.app.is_some())
            .map(|p| p.name.clone())
            .ok_or_else(|| CliError::config("no app in the workspace to benchmark"))?,
    };
    let package = workspace
        .package_index(&app)
        .map(|i| &workspace.packages[i])
        .filter(|p| p.app.is_some())
        .ok_or_else(|| CliError::config(format!("`{app}` is not an app of the workspace")))?;
    let source = package
        .targets
        .iter()
        .find(|t| t.is_bin())
        .map(|t| t.src_path.clone())
        .with_context(|| format!("app `{app}` has no binary target"))?;
    let source_relative = source
        .strip_prefix(&workspace.root)
        .context("the app's source is outside the workspace")?
        .to_path_buf();

    let copy = tempfile::tempdir().context("failed to create a temp dir")?;
    copy_workspace(&workspace, copy.path())?;
    let target_dir = workspace.target_dir.join("bench-dev");
    set_target_dir(copy.path(), &target_dir)?;
    let port = xtask_util::free_port().context("failed to find a free port")?;
    // `cargo metadata` reads `.cargo/config.toml` from the current directory, not from the
    // manifest's: run in the copy so that every cargo call sees the same target dir.
    let original_dir = std::env::current_dir().context("failed to read the current directory")?;
    std::env::set_current_dir(copy.path())
        .with_context(|| format!("failed to enter `{}`", copy.path().display()))?;
    let measured = measure(&app, &source_relative, copy.path(), port, options);
    let _ = std::env::set_current_dir(&original_dir);
    measured
}

fn measure(
    app: &str,
    source_relative: &Path,
    copy: &Path,
    port: u16,
    options: &BenchOptions,
) -> anyhow::Result<String> {
    let app = app.to_string();

    let (observer, events) = mpsc::channel();
    let dev_options = DevOptions {
        location: Location {
            manifest_path: Some(copy.join("Cargo.toml")),
            directory: None,
        },
        apps: vec![app.clone()],
        grace_period: Duration::from_secs(5),
        debounce: DEFAULT_DEBOUNCE,
        socket_handover: true,
        release: false,
        jobs: options.jobs,
        ports: BTreeMap::from([(app.clone(), port)]),
    };
    let supervisor = Supervisor::new(dev_options, Some(observer))?;
    let handle = supervisor.handle();
    let _signals = crate::forward_signals(handle.clone())?;
    crate::supervisor::status(&format!(
        "bench: initial build of `{app}` in {} (the first run compiles every dependency)",
        copy.display(),
    ));
    let runner = std::thread::spawn(move || supervisor.run());
    let result = (|| -> anyhow::Result<Vec<Sample>> {
        wait_for(&events, Duration::from_secs(1800), |e| {
            matches!(e, DevEvent::Watching)
        })?;
        let file = copy.join(source_relative);
        let mut samples = Vec::new();
        for iteration in 0..=options.iterations.max(1) {
            std::thread::sleep(Duration::from_millis(300));
            let sample = measure_edit(&events, &file, &app, iteration)?;
            if iteration > 0 {
                samples.push(sample);
            }
        }
        Ok(samples)
    })();
    handle.shutdown("benchmark done");
    let run_result = runner
        .join()
        .map_err(|_| anyhow::anyhow!("the dev loop panicked"))?;
    let samples = result?;
    run_result?;
    Ok(report(&app, source_relative, &samples))
}

/// The wall time of the `cargo` processes this process starts, from `/proc`: a thread polls
/// every [`CargoClock::POLL`], while no cargo runs, the children of every thread
/// (`/proc/self/task/*/children`), and times each child whose command is `cargo` (the rustup
/// proxy execs the real cargo in the same process) from the first poll that sees it as cargo
/// to the first that sees it gone or a zombie (reading only its `stat` meanwhile). Each end is seen up to one poll late, so a duration is exact to one
/// poll. The engine's own figure cannot be used: it is the time of its whole cargo step,
/// which also checks freshness before the call and reads every unit's dep-info after it.
struct CargoClock {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Duration>,
}

impl CargoClock {
    const POLL: Duration = Duration::from_millis(1);

    /// `None` where `/proc` does not list children (not Linux, or a kernel without
    /// `CONFIG_PROC_CHILDREN`).
    fn start() -> Option<CargoClock> {
        let own = format!("/proc/self/task/{}/children", std::process::id());
        std::fs::read_to_string(own).ok()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut running: BTreeMap<u32, Instant> = BTreeMap::new();
            let mut total = Duration::ZERO;
            loop {
                let now = Instant::now();
                // While a cargo runs, only its own state is read (a scan of every thread's
                // children is a dozen reads: the poll must not slow down what it measures).
                running.retain(|pid, started| {
                    let alive = !has_exited(*pid);
                    if !alive {
                        total += now - *started;
                    }
                    alive
                });
                if running.is_empty() {
                    for pid in children_of_this_process() {
                        if command_of(pid).as_deref() == Some("cargo") {
                            running.insert(pid, now);
                        }
                    }
                }
                if stopping.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    return total + running.values().map(|started| now - *started).sum();
                }
                std::thread::sleep(Self::POLL);
            }
        });
        Some(CargoClock { stop, thread })
    }

    /// Stops polling; the summed wall time of the cargo processes seen.
    fn finish(self) -> Option<Duration> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().ok()
    }
}

fn children_of_this_process() -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut children = Vec::new();
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            children.extend(
                text.split_whitespace()
                    .filter_map(|pid| pid.parse::<u32>().ok()),
            );
        }
    }
    children
}

fn command_of(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(text.trim_end().to_string())
}

/// Gone, or a zombie not reaped yet.
fn has_exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|text| {
            let after = &text[text.rfind(')')? + 1..];
            after.split_whitespace().next().map(|state| state == "Z")
        })
        .unwrap_or(true)
}

fn measure_edit(
    events: &mpsc::Receiver<DevEvent>,
    file: &Path,
    app: &str,
    iteration: usize,
) -> anyhow::Result<Sample> {
    while events.try_recv().is_ok() {}
    let mut text = std::fs::read_to_string(file)
        .with_context(|| format!("failed to read `{}`", file.display()))?;
    text.push_str(&format!(
        "const _: &str = \"cargo xtask bench dev, edit {iteration}\";\n"
    ));
    let clock = CargoClock::start();
    let written = Instant::now();
    std::fs::write(file, text).with_context(|| format!("failed to write `{}`", file.display()))?;
    let mut sample = Sample::default();
    let mut engine_elapsed = Duration::ZERO;
    let mut received = None;
    let mut build_started = None;
    let mut build_finished = None;
    let deadline = Duration::from_secs(600);
    loop {
        let event = events
            .recv_timeout(deadline)
            .context("no event from the dev loop within 10 minutes")?;
        match event {
            DevEvent::Changed { received: at, .. } => {
                received.get_or_insert(at);
            }
            DevEvent::BuildStarted { at, .. } => {
                build_started.get_or_insert(at);
            }
            DevEvent::BuildFinished {
                at,
                elapsed,
                cargo,
                failed,
                ..
            } => {
                anyhow::ensure!(failed.is_empty(), "the build of {failed:?} failed");
                build_finished = Some(at);
                engine_elapsed = elapsed;
                sample.engine_cargo = cargo;
            }
            DevEvent::Ready {
                app: ready,
                at,
                stop,
                ..
            } if ready == app => {
                let (Some(received), Some(started), Some(finished)) =
                    (received, build_started, build_finished)
                else {
                    anyhow::bail!("`{app}` restarted without a change and a build");
                };
                sample.watch = received - written;
                sample.dispatch = started - received;
                sample.restart = at - finished;
                sample.stop = stop;
                sample.total = at - written;
                match clock.and_then(CargoClock::finish) {
                    Some(cargo) => {
                        sample.cargo = cargo;
                        sample.cargo_from_proc = true;
                    }
                    None => sample.cargo = sample.engine_cargo,
                }
                sample.engine = engine_elapsed.saturating_sub(sample.cargo);
                return Ok(sample);
            }
            DevEvent::Exited { app: exited, pid } if exited == app => {
                anyhow::bail!("`{app}` (pid {pid}) exited during the benchmark")
            }
            _ => {}
        }
    }
}

fn wait_for(
    events: &mpsc::Receiver<DevEvent>,
    timeout: Duration,
    wanted: impl Fn(&DevEvent) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(event) if wanted(&event) => return Ok(()),
            Ok(_) => {}
            Err(_) => anyhow::bail!("the dev loop did not start within {timeout:?}"),
        }
    }
}

fn report(app: &str, file: &Path, samples: &[Sample]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "bench dev: one-line edit of `{}` -> new `{app}` answers its health path ({} runs, median; ms)",
        file.display(),
        samples.len()
    );
    type Phase = fn(&Sample) -> Duration;
    let rows: [(&str, Phase); 9] = [
        ("watch (write -> burst)", |s| s.watch),
        ("dispatch (burst -> build)", |s| s.dispatch),
        ("engine (run minus cargo)", |s| s.engine),
        ("cargo", |s| s.cargo),
        ("  as the engine counts it", |s| s.engine_cargo),
        ("restart (build -> ready)", |s| s.restart),
        ("  of which the old app stops", |s| s.stop),
        ("tool overhead (all but cargo)", Sample::overhead),
        ("total (write -> ready)", |s| s.total),
    ];
    for (label, get) in rows {
        let values: Vec<Duration> = samples.iter().map(get).collect();
        let all: Vec<String> = values.iter().map(|d| d.as_millis().to_string()).collect();
        let _ = writeln!(
            out,
            "  {label:<31} {:>6}   [{}]",
            median(&values).as_millis(),
            all.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "  cargo: {}",
        if samples.iter().all(|s| s.cargo_from_proc) {
            "the cargo processes' wall time, from /proc (the engine's figure also counts its freshness check and dep-info reading)"
        } else {
            "the engine's figure (no /proc children list here): it also counts the engine's work around the call, so the overhead is understated"
        }
    );
    let overhead = median(&samples.iter().map(Sample::overhead).collect::<Vec<_>>());
    let total = median(&samples.iter().map(|s| s.total).collect::<Vec<_>>());
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let _ = writeln!(
        out,
        "  target: overhead < {} ms: {}; total < {} s: {}",
        OVERHEAD_TARGET.as_millis(),
        verdict(overhead < OVERHEAD_TARGET),
        TOTAL_TARGET.as_secs(),
        verdict(total < TOTAL_TARGET)
    );
    let cargo = median(&samples.iter().map(|s| s.cargo).collect::<Vec<_>>());
    if cargo.as_secs_f64() > 0.0 {
        let _ = writeln!(
            out,
            "  ratio: tool overhead / cargo = {:.3}",
            overhead.as_secs_f64() / cargo.as_secs_f64()
        );
    }
    out
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

/// Copies the workspace's files (what input discovery sees: `.gitignore` respected, no
/// target or cache dir) into `destination`.
fn copy_workspace(workspace: &xtask_model::Workspace, destination: &Path) -> anyhow::Result<()> {
    let files = xtask_hash::discover_inputs(&xtask_hash::InputSpec {
        workspace_root: &workspace.root,
        package_dir: &workspace.root,
        include: &[],
        exclude_globs: &[],
        exclude_dirs: &[workspace.target_dir.clone(), workspace.cache_dir()],
    })?;
    for file in files {
        let to = destination.join(&file.relative_path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("failed to create `{}`", parent.display()))?;
        }
        std::fs::copy(&file.absolute_path, &to)
            .with_context(|| format!("failed to copy `{}`", file.absolute_path.display()))?;
    }
    Ok(())
}

/// Points the copy's builds at `target_dir` through its `.cargo/config.toml`.
fn set_target_dir(root: &Path, target_dir: &Path) -> anyhow::Result<()> {
    let path: PathBuf = root.join(".cargo").join("config.toml");
    let mut config: toml::Table = match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text)
            .with_context(|| format!("failed to parse `{}`", path.display()))?,
        Err(_) => toml::Table::new(),
    };
    let build = config
        .entry("build")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(build) = build {
        build.insert(
            "target-dir".to_string(),
            toml::Value::String(target_dir.to_string_lossy().into_owned()),
        );
    }
    std::fs::create_dir_all(root.join(".cargo"))?;
    std::fs::write(&path, toml::to_string(&config)?)
        .with_context(|| format!("failed to write `{}`", path.display()))
}

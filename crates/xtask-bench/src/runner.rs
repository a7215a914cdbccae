//! `cargo xtask bench runner`: the task runner itself, side by side with Turborepo on the same
//! synthetic trees ([`crate::synthetic`]), alternating the two tools in one run.
//!
//! Each tree is copied twice (one copy per tool, so neither sees the other's outputs or
//! caches), warmed with one cold run each, then every scenario runs `iterations` times per
//! tool, the tools alternating (and swapping who goes first every iteration). Untimed
//! preparation runs before each timed run (deleting outputs, editing a file, emptying caches).
//! Scenarios: fully cached, outputs deleted, dry run (JSON), leaf change, root change, cold
//! (empty cache). Plus: `xtask build` against `cargo build` no-op after `sync`, the `cargo
//! xtask` alias cost in the 500-crate workspace, the walk+stat floor, big-inputs hashing
//! against single-core sha256, peak memory (`/usr/bin/time -f %M`).
//!
//! The xtask timed is an optimised binary (`target/release/xtask`, what `cargo install --path
//! xtask` installs, or `--xtask PATH`), as turbo's native binary is.
//!
//! The machine's state is part of the result: `--load N` runs N busy loops for the whole run
//! (a deliberately loaded machine), and every row records how many cores other processes took
//! while it was measured (`/proc/stat`, [`crate::load`]); a run where they took more than
//! [`crate::load::DISTURBED_CORES`] says `DISTURBED:` in its report. Each `--load` level
//! writes its own section of `BENCHMARKS.md`, so a quiet run and a loaded one stand side by
//! side.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use std::cell::Cell;

use anyhow::{Context, bail};

use crate::load::{self, BusyLoad, CpuCounters, LoadWindow};
use crate::synthetic::{self, Shape, TreeFacts};
use crate::timing::{format_duration, median, ratio, time_once};
use crate::tools;

#[derive(Debug, Clone)]
pub struct RunnerBenchOptions {
    /// The xtask binary to time (`--xtask`); default: `cargo build --release -p xtask` of the
    /// repository, `target/release/xtask`.
    pub xtask: Option<PathBuf>,
    /// The turbo binary (`--turbo`); default: `turbo` in `target/ci-tools/bin` or on `PATH`.
    pub turbo: Option<PathBuf>,
    /// npm (`--npm`), which turbo runs the tasks with; default: `target/ci-tools/bin` or `PATH`.
    pub npm: Option<PathBuf>,
    /// Where `.ci/install-tools` puts tools (`target/ci-tools`).
    pub tools_dir: PathBuf,
    /// Busy-loop threads for the whole run (`--load N`, 0: none).
    pub load: usize,
    /// Tree sizes (default 100 and 500).
    pub crates: Vec<usize>,
    /// Runs per tool for the quick scenarios (at least 10 for the table).
    pub iterations: usize,
    /// Runs per tool for root change and cold at N <= 100.
    pub slow_iterations: usize,
    /// Runs per tool for root change and cold above N = 100 (turbo's cold run takes minutes).
    pub large_slow_iterations: usize,
    /// Skip the big-inputs tree.
    pub skip_big: bool,
    /// Skip `cargo build` no-op vs `xtask build` (compiles the 500-crate tree once).
    pub skip_cargo: bool,
    /// Where trees and copies go (`target/bench`).
    pub work_dir: PathBuf,
    /// Where the table is written (`BENCHMARKS.md`), if anywhere.
    pub write_to: Option<PathBuf>,
}

/// One row of the table.
#[derive(Debug, Clone)]
struct Row {
    measure: String,
    crates: usize,
    turbo: Option<Duration>,
    xtask: Duration,
    runs: usize,
    /// The target as "turbo/xtask >= X" (speed-up) or a note.
    target: Option<f64>,
    note: String,
    /// What other processes took while the row was measured.
    load: LoadWindow,
    /// Mean CPU time (user + system, the tool and its children) of one timed run of turbo
    /// and of xtask, when the row timed both.
    cpu: Option<(Duration, Duration)>,
}

/// The programs a run times and uses, resolved before any work.
#[derive(Debug, Clone)]
struct Tools {
    xtask: PathBuf,
    turbo: PathBuf,
    /// turbo runs `npm run build`: npm's directory goes first on its `PATH`.
    path_for_turbo: std::ffi::OsString,
    package_manager: String,
    cargo: PathBuf,
}

/// One run: its options, tools, and the load meter that every row reads.
struct Bench<'a> {
    options: &'a RunnerBenchOptions,
    tools: Tools,
    /// The reading at the end of the previous row.
    last: Cell<CpuCounters>,
    /// CPU ticks and timed runs of turbo and of xtask since the previous row.
    cpu: Cell<[(u64, u64); 2]>,
    ticks_per_second: u64,
}

impl Bench<'_> {
    /// Times one run of `tool`, adding its CPU time (its `cutime` + `cstime` share) to the
    /// row being measured.
    fn time_tool(&self, tool: Tool, command: &mut Command) -> anyhow::Result<Duration> {
        let before = CpuCounters::read()?.children;
        let took = time_once(command)?;
        let used = CpuCounters::read()?.children.saturating_sub(before);
        let mut cpu = self.cpu.get();
        let slot = &mut cpu[tool as usize];
        slot.0 += used;
        slot.1 += 1;
        self.cpu.set(cpu);
        Ok(took)
    }

    /// The mean CPU time per timed run of each tool since the previous row (and resets it).
    fn take_cpu(&self) -> Option<(Duration, Duration)> {
        let cpu = self.cpu.replace([(0, 0); 2]);
        let mean = |(ticks, runs): (u64, u64)| {
            (runs > 0).then(|| {
                Duration::from_secs_f64(ticks as f64 / runs as f64 / self.ticks_per_second as f64)
            })
        };
        Some((mean(cpu[0])?, mean(cpu[1])?))
    }

    /// What other processes took since the previous row (read between commands, when no
    /// child runs, so every child's time is in this process's `cutime`).
    fn window(&self) -> anyhow::Result<LoadWindow> {
        let now = CpuCounters::read()?;
        let window = now.since(&self.last.get());
        self.last.set(now);
        Ok(window)
    }
}

/// Resolves the tools (building the optimised xtask of the repository at `repo_root` unless
/// `--xtask` names one: `cargo build --release -p xtask`, the binary `cargo install --path
/// xtask` installs), then runs every scenario and returns the report, whose section for this
/// `--load` level is also written into `options.write_to`.
pub fn bench_runner_in(
    repo_root: &Path,
    target_dir: &Path,
    options: &RunnerBenchOptions,
) -> anyhow::Result<String> {
    let cargo = tools::cargo_program();
    // Every tool before the build, so a missing one fails at once.
    let turbo = tools::tool_or_given(
        options.turbo.as_deref(),
        "--turbo",
        &options.tools_dir,
        "turbo",
        "bench",
    )?;
    let npm = tools::tool_or_given(
        options.npm.as_deref(),
        "--npm",
        &options.tools_dir,
        "npm",
        "bench",
    )?;
    let xtask = match &options.xtask {
        Some(path) => tools::given_tool(path, "--xtask")?,
        None => {
            let status = Command::new(&cargo)
                .args(["build", "--release", "--package", "xtask", "--bin", "xtask"])
                .current_dir(repo_root)
                .status()
                .with_context(|| format!("failed to run `{} build --release`", cargo.display()))?;
            anyhow::ensure!(status.success(), "cargo build --release -p xtask failed");
            target_dir.join("release").join("xtask")
        }
    };
    let package_manager = synthetic::detect_package_manager(&npm)?;
    let npm_dir = npm.parent().map(Path::to_path_buf).unwrap_or_default();
    let path_for_turbo = std::env::join_paths(
        std::iter::once(npm_dir).chain(
            std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths),
        ),
    )
    .context("failed to build PATH for turbo")?;
    let tools = Tools {
        xtask,
        turbo,
        path_for_turbo,
        package_manager,
        cargo,
    };
    bench_runner(options, tools)
}

fn bench_runner(options: &RunnerBenchOptions, tools: Tools) -> anyhow::Result<String> {
    let started = Instant::now();
    // Taken first: the commit the timed binary was built from.
    let versions = versions(options, &tools);
    let load_average_at_start = load::load_average();
    let run_start = CpuCounters::read()?;
    // The deliberate load runs from here to the end (dropped last).
    let busy = BusyLoad::start(options.load)?;
    let bench = Bench {
        options,
        tools,
        last: Cell::new(CpuCounters::read()?),
        cpu: Cell::new([(0, 0); 2]),
        ticks_per_second: load::clock_ticks_per_second(),
    };
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let trees = options.work_dir.join("trees");
    let runs_dir = options.work_dir.join("runner");
    std::fs::create_dir_all(&runs_dir)
        .with_context(|| format!("failed to create `{}`", runs_dir.display()))?;
    let standard = |crates: usize| {
        Shape::standard(crates).with_package_manager(bench.tools.package_manager.clone())
    };

    for &crates in &options.crates {
        let tree = synthetic::generate(&trees, &standard(crates))?;
        let slow = if crates <= 100 {
            options.slow_iterations
        } else {
            options.large_slow_iterations
        };
        bench_tree(
            &bench,
            &tree.root,
            &tree.facts,
            &runs_dir,
            crates,
            slow,
            &mut rows,
            &mut notes,
        )?;
    }
    if !options.skip_big {
        let shape = Shape {
            crates: 50,
            files_per_crate: 20,
            bytes_per_file: 200_000,
            ..standard(50)
        };
        let tree = synthetic::generate(&trees, &shape)?;
        bench_big(&bench, &tree.root, &runs_dir, &mut rows, &mut notes)?;
    }
    let largest = options.crates.iter().copied().max().unwrap_or(500);
    if !options.skip_cargo {
        let tree = synthetic::generate(&trees, &standard(largest))?;
        bench_cargo(
            &bench, &tree.root, &runs_dir, largest, &mut rows, &mut notes,
        )?;
    }
    let whole_run = CpuCounters::read()?.since(&run_start);
    let machine = MachineState {
        deliberate_load: busy.threads(),
        whole_run,
        load_average_at_start,
        load_average_at_end: load::load_average(),
    };
    drop(busy);

    let report = render(
        &rows,
        &notes,
        &versions,
        options,
        &machine,
        started.elapsed(),
    );
    if let Some(path) = &options.write_to {
        let existing = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => {
                return Err(error).with_context(|| format!("failed to read `{}`", path.display()));
            }
        };
        let text = splice_section(&existing, options.load, &report);
        xtask_hash::write_atomically(path, text.as_bytes())
            .with_context(|| format!("failed to write `{}`", path.display()))?;
    }
    Ok(report)
}

/// The machine during a run: the load asked for, and what others took.
#[derive(Debug, Clone)]
struct MachineState {
    deliberate_load: usize,
    whole_run: LoadWindow,
    load_average_at_start: String,
    load_average_at_end: String,
}

/// A tool's command in a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Turbo = 0,
    Xtask = 1,
}

fn command(bench: &Bench, tool: Tool, dir: &Path, extra: &[&str]) -> Command {
    match tool {
        Tool::Turbo => {
            let mut c = Command::new(&bench.tools.turbo);
            c.args(["run", "build", "--output-logs=none"])
                .args(extra)
                .current_dir(dir)
                .env("PATH", &bench.tools.path_for_turbo)
                .env("TURBO_TELEMETRY_DISABLED", "1")
                .env("TURBO_NO_UPDATE_NOTIFIER", "1")
                .env("DO_NOT_TRACK", "1")
                .env_remove("CI");
            c
        }
        Tool::Xtask => {
            let mut c = Command::new(&bench.tools.xtask);
            c.arg("-C")
                .arg(dir)
                .args(["run", synthetic::TASK_NAME])
                .args(extra)
                .current_dir(dir)
                .env("CI", "true");
            c
        }
    }
}

/// Runs `iterations` alternating pairs; `prepare(tool, dir, iteration)` runs untimed first.
/// Returns each tool's median.
fn alternate(
    bench: &Bench,
    dirs: &[(Tool, PathBuf)],
    iterations: usize,
    extra: &dyn Fn(Tool) -> Vec<&'static str>,
    prepare: &dyn Fn(Tool, &Path, usize) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = alternate_samples(bench, dirs, iterations, extra, prepare)?;
    Ok(samples.iter_mut().map(|s| median(s)).collect())
}

/// [`alternate`], returning every sample of each tool.
fn alternate_samples(
    bench: &Bench,
    dirs: &[(Tool, PathBuf)],
    iterations: usize,
    extra: &dyn Fn(Tool) -> Vec<&'static str>,
    prepare: &dyn Fn(Tool, &Path, usize) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<Vec<Duration>>> {
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); dirs.len()];
    for iteration in 0..iterations.max(1) {
        let mut order: Vec<usize> = (0..dirs.len()).collect();
        if iteration % 2 == 1 {
            order.reverse();
        }
        for index in order {
            let (tool, dir) = &dirs[index];
            prepare(*tool, dir, iteration)?;
            let args = extra(*tool);
            let mut cmd = command(bench, *tool, dir, &args);
            samples[index].push(bench.time_tool(*tool, &mut cmd)?);
        }
    }
    Ok(samples)
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call site; each is a distinct input"
)]
fn bench_tree(
    bench: &Bench,
    tree: &Path,
    meta: &TreeFacts,
    runs_dir: &Path,
    crates: usize,
    slow: usize,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let options = bench.options;
    let turbo_dir = fresh_copy(tree, &runs_dir.join(format!("n{crates}-turbo")))?;
    let xtask_dir = fresh_copy(tree, &runs_dir.join(format!("n{crates}-xtask")))?;
    let dirs = vec![
        (Tool::Turbo, turbo_dir.clone()),
        (Tool::Xtask, xtask_dir.clone()),
    ];
    // The first run of each (fresh copies, no caches, no outputs) is the first cold sample
    // and fills the caches.
    let mut first_cold = Vec::new();
    for (tool, dir) in &dirs {
        first_cold.push(bench.time_tool(*tool, &mut command(bench, *tool, dir, &[]))?);
    }
    // The first runs are cold samples: their load and CPU time go to the cold row.
    let first_cold_load = bench.window()?;
    let first_cold_cpu = bench.cpu.replace([(0, 0); 2]);
    let none = |_: Tool| Vec::new();
    let nothing = |_: Tool, _: &Path, _: usize| Ok(());
    let mut push = |measure: &str,
                    medians: Vec<Duration>,
                    runs: usize,
                    target: Option<f64>|
     -> anyhow::Result<()> {
        rows.push(Row {
            measure: measure.to_string(),
            crates,
            turbo: Some(medians[0]),
            xtask: medians[1],
            runs,
            target,
            note: String::new(),
            load: bench.window()?,
            cpu: bench.take_cpu(),
        });
        Ok(())
    };
    let n = options.iterations;

    let cached = alternate(bench, &dirs, n, &none, &nothing)?;
    push("fully cached", cached, n, Some(5.0))?;

    let delete_outputs = |_: Tool, dir: &Path, _: usize| remove_outputs(dir);
    let restored = alternate(bench, &dirs, n, &none, &delete_outputs)?;
    push("outputs deleted (restore all)", restored, n, Some(3.0))?;

    let dry = |tool: Tool| match tool {
        Tool::Turbo => vec!["--dry=json"],
        Tool::Xtask => vec!["--dry-run=json"],
    };
    let dry_medians = alternate(bench, &dirs, n, &dry, &nothing)?;
    push("dry run (JSON)", dry_medians, n, Some(4.0))?;

    let leaf = meta.leaf_file.clone();
    let edit_leaf = |_: Tool, dir: &Path, i: usize| append_line(&dir.join(&leaf), i);
    let leaf_medians = alternate(bench, &dirs, n, &none, &edit_leaf)?;
    push(
        &format!("leaf change ({} re-runs 1 task)", meta.leaf_file),
        leaf_medians,
        n,
        Some(1.0),
    )?;

    let root = meta.root_file.clone();
    let edit_root = |_: Tool, dir: &Path, i: usize| append_line(&dir.join(&root), 1000 + i);
    let root_medians = alternate(bench, &dirs, slow, &none, &edit_root)?;
    push(
        &format!("root change ({} tasks re-run)", meta.root_dependents + 1),
        root_medians,
        slow,
        Some(1.0),
    )?;

    let empty_caches = |tool: Tool, dir: &Path, _: usize| {
        remove_outputs(dir)?;
        let cache = match tool {
            Tool::Turbo => dir.join(".turbo"),
            Tool::Xtask => dir.join("turbo-like-cache"),
        };
        remove_dir_if_exists(&cache)
    };
    // Cold: the first runs above plus `slow - 1` more, alternating.
    let cold = if slow > 1 {
        let mut samples = alternate_samples(bench, &dirs, slow - 1, &none, &empty_caches)?;
        let mut cpu = bench.cpu.get();
        for (slot, first) in cpu.iter_mut().zip(first_cold_cpu) {
            slot.0 += first.0;
            slot.1 += first.1;
        }
        bench.cpu.set(cpu);
        for (tool_samples, first) in samples.iter_mut().zip(&first_cold) {
            tool_samples.push(*first);
        }
        samples.iter_mut().map(|s| median(s)).collect()
    } else {
        bench.cpu.set(first_cold_cpu);
        first_cold
    };
    push("cold, empty cache", cold, slow.max(1), Some(10.0))?;
    if let Some(row) = rows.last_mut() {
        row.load.add(&first_cold_load);
    }

    // Peak memory: both tools fully cached; xtask cold (turbo's cold run takes minutes at
    // N = 500 and is not what the target is about).
    let mut peaks = Vec::new();
    for (tool, dir) in &dirs {
        peaks.push(peak_memory_kib(command(bench, *tool, dir, &[]))?);
    }
    empty_caches(Tool::Xtask, &xtask_dir, 0)?;
    let xtask_cold_peak = peak_memory_kib(command(bench, Tool::Xtask, &xtask_dir, &[]))?;
    bench.window()?;
    notes.push(format!(
        "peak memory (max RSS), N={crates}: fully cached turbo {:.0} MiB, xtask {:.0} MiB; \
         xtask cold {:.0} MiB{}",
        peaks[0] as f64 / 1024.0,
        peaks[1] as f64 / 1024.0,
        xtask_cold_peak as f64 / 1024.0,
        if crates >= 500 {
            format!(
                " (target: under 100 MiB: {})",
                verdict(peaks[1].max(xtask_cold_peak) < 100 * 1024)
            )
        } else {
            String::new()
        }
    ));

    // The floor: walk + stat of every file of the tree.
    let floor = {
        let mut samples = Vec::new();
        for _ in 0..n.max(1) {
            let started = Instant::now();
            let count = walk_and_stat(&xtask_dir)?;
            samples.push(started.elapsed());
            std::hint::black_box(count);
        }
        median(&mut samples)
    };
    let fully_cached = rows
        .iter()
        .rev()
        .find(|r| r.crates == crates && r.measure == "fully cached")
        .map(|r| r.xtask)
        .unwrap_or_default();
    rows.push(Row {
        measure: "walk + stat of every file (in-process floor)".into(),
        crates,
        turbo: None,
        xtask: floor,
        runs: n,
        target: None,
        note: format!(
            "fully cached xtask = {:.1}x the floor (target: at most 2x at N=500)",
            ratio(fully_cached, floor)
        ),
        load: bench.window()?,
        cpu: bench.take_cpu(),
    });
    Ok(())
}

fn bench_big(
    bench: &Bench,
    tree: &Path,
    runs_dir: &Path,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let turbo_dir = fresh_copy(tree, &runs_dir.join("big-turbo"))?;
    let xtask_dir = fresh_copy(tree, &runs_dir.join("big-xtask"))?;
    let dirs = vec![(Tool::Turbo, turbo_dir), (Tool::Xtask, xtask_dir.clone())];
    for (tool, dir) in &dirs {
        time_once(&mut command(bench, *tool, dir, &[]))?;
    }
    bench.window()?;
    let none = |_: Tool| Vec::new();
    let nothing = |_: Tool, _: &Path, _: usize| Ok(());
    let n = bench.options.iterations;
    let cached = alternate(bench, &dirs, n, &none, &nothing)?;
    rows.push(Row {
        measure: "big inputs (200 MB): fully cached".into(),
        crates: 50,
        turbo: Some(cached[0]),
        xtask: cached[1],
        runs: n,
        target: None,
        note: String::new(),
        load: bench.window()?,
        cpu: bench.take_cpu(),
    });
    let touch_all = |_: Tool, dir: &Path, _: usize| touch_sources(dir);
    let touched = alternate(bench, &dirs, n, &none, &touch_all)?;
    rows.push(Row {
        measure: "big inputs: after `touch` of every file (re-hash all)".into(),
        crates: 50,
        turbo: Some(touched[0]),
        xtask: touched[1],
        runs: n,
        target: None,
        note: String::new(),
        load: bench.window()?,
        cpu: bench.take_cpu(),
    });

    // Cold hashing: the xtask dry run with its stat cache deleted (every byte read and
    // hashed) against sha256 of the same files on one core, in this process.
    let files = source_files(&xtask_dir)?;
    let bytes: u64 = files
        .iter()
        .map(|f| {
            std::fs::metadata(&f.absolute_path)
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum();
    let mut single = Vec::new();
    let mut tool_samples = Vec::new();
    for _ in 0..n.max(1) {
        let started = Instant::now();
        xtask_hash::hash_files(&files, 1).context("failed to hash the big tree")?;
        single.push(started.elapsed());
        // Only the stat cache goes: every byte is read and hashed again, while the cached
        // metadata and listings stay (this measures hashing, not `cargo metadata`).
        let stat_cache = xtask_dir.join("turbo-like-cache/v1/fast/stat-cache");
        match std::fs::remove_file(&stat_cache) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("failed to remove `{}`", stat_cache.display()));
            }
        }
        tool_samples.push(time_once(&mut command(
            bench,
            Tool::Xtask,
            &xtask_dir,
            &["--dry-run=json"],
        ))?);
    }
    let single = median(&mut single);
    let tool = median(&mut tool_samples);
    let single_rate = bytes as f64 / single.as_secs_f64() / 1e6;
    let tool_rate = bytes as f64 / tool.as_secs_f64() / 1e6;
    rows.push(Row {
        measure: "big inputs: cold hashing, xtask dry run with its stat cache deleted".into(),
        crates: 50,
        turbo: None,
        xtask: tool,
        runs: n,
        target: None,
        note: format!(
            "{:.0} MB/s end to end vs {:.0} MB/s sha256 on one core: {:.2}x (target >= 1.6x: {})",
            tool_rate,
            single_rate,
            tool_rate / single_rate,
            verdict(tool_rate / single_rate >= 1.6)
        ),
        load: bench.window()?,
        cpu: bench.take_cpu(),
    });
    notes.push(format!(
        "big inputs tree: {} files, {:.0} MB of sources",
        files.len(),
        bytes as f64 / 1e6
    ));
    Ok(())
}

fn bench_cargo(
    bench: &Bench,
    tree: &Path,
    runs_dir: &Path,
    crates: usize,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let dir = runs_dir.join(format!("n{crates}-xtask"));
    if !dir.is_dir() {
        fresh_copy(tree, &dir)?;
    }
    let cargo = || {
        let mut c = Command::new(&bench.tools.cargo);
        c.args(["build", "--offline"]).current_dir(&dir);
        c
    };
    let xtask_build = || {
        let mut c = Command::new(&bench.tools.xtask);
        c.arg("-C").arg(&dir).arg("build").env("CI", "true");
        c
    };
    // Compile once, then store every package's result once.
    let compile = time_once(&mut cargo())?;
    time_once(&mut xtask_build())?;
    bench.window()?;
    let n = bench.options.iterations;
    let mut cargo_samples = Vec::new();
    let mut xtask_samples = Vec::new();
    for i in 0..n.max(1) {
        let mut pair: Vec<(bool, Command)> = vec![(true, cargo()), (false, xtask_build())];
        if i % 2 == 1 {
            pair.reverse();
        }
        for (is_cargo, mut cmd) in pair {
            crate::timing::sync()?;
            let took = time_once(&mut cmd)?;
            if is_cargo {
                cargo_samples.push(took);
            } else {
                xtask_samples.push(took);
            }
        }
    }
    rows.push(Row {
        measure: "`xtask build` all cached vs `cargo build` no-op (after `sync`)".into(),
        crates,
        turbo: Some(median(&mut cargo_samples)),
        xtask: median(&mut xtask_samples),
        runs: n,
        target: Some(5.0),
        note: "the turbo column is `cargo build` here".into(),
        load: bench.window()?,
        cpu: bench.take_cpu(),
    });
    notes.push(format!(
        "`cargo build` of the {crates}-crate tree from scratch took {}",
        format_duration(compile)
    ));

    // `cargo xtask` alias overhead: an `xtask` package with an empty main in a copy of the
    // tree, run through the alias as users of the xtask pattern do.
    let alias_dir = runs_dir.join(format!("n{crates}-alias"));
    fresh_copy(tree, &alias_dir)?;
    let package = alias_dir.join("crates/xtask");
    std::fs::create_dir_all(package.join("src"))
        .with_context(|| format!("failed to create `{}`", package.display()))?;
    std::fs::write(
        package.join("Cargo.toml"),
        "[package]\nname = \"xtask\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n",
    )
    .context("failed to write the xtask package")?;
    std::fs::write(package.join("src/main.rs"), "fn main() {}\n")
        .context("failed to write the xtask package")?;
    std::fs::create_dir_all(alias_dir.join(".cargo")).context("failed to create .cargo")?;
    std::fs::write(
        alias_dir.join(".cargo/config.toml"),
        "[alias]\nxtask = \"run --quiet --package xtask --bin xtask --\"\n",
    )
    .context("failed to write .cargo/config.toml")?;
    let alias = || {
        let mut c = Command::new(&bench.tools.cargo);
        c.args(["xtask", "--offline"]).current_dir(&alias_dir);
        c
    };
    // `--offline` goes to the empty main; cargo's own flags are in the alias.
    let mut build_it = Command::new(&bench.tools.cargo);
    build_it
        .args(["build", "--offline", "-p", "xtask"])
        .current_dir(&alias_dir);
    time_once(&mut build_it)?;
    bench.window()?;
    let mut samples = Vec::new();
    for _ in 0..n.max(1) {
        samples.push(time_once(&mut alias())?);
    }
    let alias_time = median(&mut samples);
    let cached = rows
        .iter()
        .find(|r| r.crates == crates && r.measure == "fully cached")
        .map(|r| r.xtask);
    rows.push(Row {
        measure: "`cargo xtask` alias, empty main (cargo's own overhead)".into(),
        crates,
        turbo: None,
        xtask: alias_time,
        runs: n,
        target: None,
        note: match cached {
            Some(cached) => format!(
                "so `cargo xtask run size` fully cached is about {}",
                format_duration(alias_time + cached)
            ),
            None => String::new(),
        },
        load: bench.window()?,
        cpu: bench.take_cpu(),
    });
    Ok(())
}

/// `cp -a` of a tree into `to` (replaced), without any target dir or cache that came along.
pub(crate) fn fresh_copy(from: &Path, to: &Path) -> anyhow::Result<PathBuf> {
    remove_dir_if_exists(to)?;
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .context("failed to run cp")?;
    if !status.success() {
        bail!("cp -a {} {} failed", from.display(), to.display());
    }
    for leftover in ["target", "turbo-like-cache", ".turbo"] {
        remove_dir_if_exists(&to.join(leftover))?;
    }
    Ok(to.to_path_buf())
}

fn remove_dir_if_exists(dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error).with_context(|| format!("failed to remove `{}`", dir.display())),
    }
}

fn package_dirs(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let crates = root.join("crates");
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(&crates)
        .with_context(|| format!("failed to read `{}`", crates.display()))?
    {
        let entry = entry.with_context(|| format!("failed to read `{}`", crates.display()))?;
        dirs.push(entry.path());
    }
    dirs.sort();
    Ok(dirs)
}

fn remove_outputs(root: &Path) -> anyhow::Result<()> {
    for dir in package_dirs(root)? {
        remove_dir_if_exists(&dir.join("out"))?;
    }
    Ok(())
}

/// Appends a comment line: a real change of content and size, the same for both tools.
fn append_line(path: &Path, iteration: usize) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("failed to open `{}`", path.display()))?;
    writeln!(file, "// bench edit {iteration}")
        .with_context(|| format!("failed to write `{}`", path.display()))
}

fn source_files(root: &Path) -> anyhow::Result<Vec<xtask_hash::InputFile>> {
    let mut files = Vec::new();
    for dir in package_dirs(root)? {
        let src = dir.join("src");
        for entry in std::fs::read_dir(&src)
            .with_context(|| format!("failed to read `{}`", src.display()))?
        {
            let path = entry
                .with_context(|| format!("failed to read `{}`", src.display()))?
                .path();
            let relative_path = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            files.push(xtask_hash::InputFile {
                relative_path,
                absolute_path: path,
            });
        }
    }
    Ok(files)
}

/// Sets every source file's mtime to now (content unchanged).
fn touch_sources(root: &Path) -> anyhow::Result<()> {
    let now = std::time::SystemTime::now();
    for file in source_files(root)? {
        let handle = std::fs::File::options()
            .write(true)
            .open(&file.absolute_path)
            .with_context(|| format!("failed to open `{}`", file.absolute_path.display()))?;
        handle
            .set_modified(now)
            .with_context(|| format!("failed to touch `{}`", file.absolute_path.display()))?;
    }
    Ok(())
}

/// Walks the tree (not `.git`, `node_modules`, `target`, caches) and stats every file.
fn walk_and_stat(root: &Path) -> anyhow::Result<usize> {
    let skip = [
        ".git",
        "node_modules",
        "target",
        "turbo-like-cache",
        ".turbo",
        "out",
    ];
    let mut count = 0;
    walk_files(root, &skip, |_| count += 1)?;
    Ok(count)
}

/// Calls `each` with the metadata (`lstat`: links are not followed) of everything under
/// `root` that is not a directory, leaving out the entries named in `skip` wherever they are.
pub(crate) fn walk_files(
    root: &Path,
    skip: &[&str],
    mut each: impl FnMut(&std::fs::Metadata),
) -> anyhow::Result<()> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir)
            .with_context(|| format!("failed to read `{}`", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("failed to read `{}`", dir.display()))?;
            let name = entry.file_name();
            if skip.iter().any(|skip| name == *skip) {
                continue;
            }
            let metadata = std::fs::symlink_metadata(entry.path())
                .with_context(|| format!("failed to stat `{}`", entry.path().display()))?;
            if metadata.is_dir() {
                stack.push(entry.path());
            } else {
                each(&metadata);
            }
        }
    }
    Ok(())
}

/// Max RSS in KiB of one run, with `/usr/bin/time -f %M`.
fn peak_memory_kib(command: Command) -> anyhow::Result<u64> {
    let time = Path::new("/usr/bin/time");
    if !time.is_file() {
        bail!("/usr/bin/time not found: run `bash .ci/install-tools bench`");
    }
    let mut wrapped = Command::new(time);
    wrapped
        .args(["-f", "peak-kib=%M", "--"])
        .arg(command.get_program())
        .args(command.get_args());
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(name, value),
            None => wrapped.env_remove(name),
        };
    }
    let output = wrapped.output().context("failed to run /usr/bin/time")?;
    if !output.status.success() {
        bail!(
            "{:?} failed:\n{}",
            command,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("peak-kib="))
        .and_then(|v| v.trim().parse().ok())
        .context("/usr/bin/time printed no peak memory")
}

fn versions(options: &RunnerBenchOptions, tools: &Tools) -> Vec<(String, String)> {
    let output = |program: &Path, args: &[&str]| -> String {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    let date = output(Path::new("date"), &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let commit = output(Path::new("git"), &["rev-parse", "--short", "HEAD"]);
    // BENCHMARKS.md itself is not what was measured (a run at another --load rewrote it).
    let dirty = Command::new("git")
        .args([
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ".",
            ":!BENCHMARKS.md",
        ])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    let commit = if dirty {
        format!("{commit} + uncommitted changes")
    } else {
        commit
    };
    let built = if options.xtask.is_some() {
        "given with --xtask"
    } else {
        "release build"
    };
    vec![
        ("date".into(), date),
        (
            "xtask".into(),
            format!(
                "{} (commit {commit}, {built})",
                output(&tools.xtask, &["--version"])
            ),
        ),
        ("turbo".into(), output(&tools.turbo, &["--version"])),
        (
            "package manager (turbo runs the tasks with it)".into(),
            tools.package_manager.clone(),
        ),
        ("cargo".into(), output(&tools.cargo, &["--version"])),
        ("kernel".into(), output(Path::new("uname"), &["-sr"])),
        (
            "cores".into(),
            std::thread::available_parallelism()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "?".into()),
        ),
    ]
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

/// The text above the generated sections of a new `BENCHMARKS.md`.
const HEADER: &str = "# Benchmarks: xtask against Turborepo\n\n\
     Measured side by side in one run by `cargo xtask bench runner`: the two tools alternate \
     (who goes first swaps every iteration), each on its own copy of the same synthetic tree \
     (generated by `xtask-bench`: N crates of 5 modules of about 2000 bytes, 10 dependency \
     layers, up to 3 dependencies per crate; turbo's task `mkdir -p out && cat src/*.rs | wc -c \
     > out/size.txt`, outputs `out/**`, depends on `^build`; xtask's twin is `run size` with \
     the default inputs, every file of the package git does not ignore, as turbo hashes). \
     Medians; `turbo / xtask` is the speed-up. Each section is one run at one `--load` level \
     (busy-loop threads kept running for the whole run), generated by the command it names: \
     rerun it to refresh that section. The column `others` is how many cores processes other \
     than the benchmark took on average while the row was measured (`/proc/stat`); a run \
     where they took more than 0.1 says DISTURBED. The column `CPU per run` is the mean CPU \
     time (user + system, with every process the tool waited for) of one timed run: a busy \
     machine stretches the wall time, much less the work done.\n";

const SECTION_END_PREFIX: &str = "<!-- end of the `cargo xtask bench runner` section --load ";

fn section_begin(load: usize) -> String {
    format!(
        "<!-- generated by `cargo xtask bench runner` (section --load {load}), do not edit: rerun \
         it to refresh -->"
    )
}

fn section_end(load: usize) -> String {
    format!("{SECTION_END_PREFIX}{load} -->")
}

/// `existing` (the file's text) with the section of `load` replaced by `wrapped` (a section
/// with its markers, as [`render`] returns it), or inserted after the sections of lower loads
/// (before any text that follows them), or, in a file with no section at all (an older,
/// wholly generated file included), the header and `wrapped` alone.
fn splice_section(existing: &str, load: usize, wrapped: &str) -> String {
    let ends: Vec<(usize, usize)> = existing
        .match_indices(SECTION_END_PREFIX)
        .filter_map(|(at, _)| {
            let rest = &existing[at + SECTION_END_PREFIX.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let number = digits.parse::<usize>().ok()?;
            rest[digits.len()..]
                .starts_with(" -->")
                .then_some((number, at))
        })
        .collect();
    if ends.is_empty() {
        return format!("{HEADER}\n{wrapped}");
    }
    let begin = section_begin(load);
    let end = section_end(load);
    if let (Some(from), Some(to)) = (existing.find(&begin), existing.find(&end)) {
        let to = to + end.len();
        let to = if existing[to..].starts_with('\n') {
            to + 1
        } else {
            to
        };
        return format!("{}{wrapped}{}", &existing[..from], &existing[to..]);
    }
    // After the last section of a lower load, else before the first section.
    let insert_at = match ends.iter().rfind(|(number, _)| *number < load) {
        Some((number, at)) => {
            let after = at + section_end(*number).len();
            if existing[after..].starts_with('\n') {
                after + 1
            } else {
                after
            }
        }
        None => existing
            .find("<!-- generated by `cargo xtask bench runner` (section")
            .unwrap_or(existing.len()),
    };
    let separator = if insert_at == 0 || existing[..insert_at].ends_with("\n\n") {
        ""
    } else {
        "\n"
    };
    format!(
        "{}{separator}{wrapped}\n{}",
        &existing[..insert_at],
        existing[insert_at..].trim_start_matches('\n')
    )
}

/// The command line that reproduces a run.
fn command_line(options: &RunnerBenchOptions) -> String {
    let crates: Vec<String> = options.crates.iter().map(usize::to_string).collect();
    let mut line = format!(
        "cargo xtask bench runner --crates {} --iterations {} --slow-iterations {} \
         --large-slow-iterations {}",
        crates.join(","),
        options.iterations,
        options.slow_iterations,
        options.large_slow_iterations
    );
    for (set, flag) in [
        (options.skip_big, "--skip-big"),
        (options.skip_cargo, "--skip-cargo"),
    ] {
        if set {
            line.push(' ');
            line.push_str(flag);
        }
    }
    let _ = write!(line, " --load {}", options.load);
    if options.xtask.is_some() {
        line.push_str(" --xtask PATH");
    }
    line
}

/// The `DISTURBED: ...` line of a run, if other processes took more than
/// [`load::DISTURBED_CORES`] over the run or during any row.
fn disturbance(rows: &[Row], machine: &MachineState) -> Option<String> {
    let disturbed_rows: Vec<&Row> = rows.iter().filter(|row| row.load.disturbed()).collect();
    if !machine.whole_run.disturbed() && disturbed_rows.is_empty() {
        return None;
    }
    let worst = rows
        .iter()
        .map(|row| row.load.other_cores() + row.load.steal_cores())
        .fold(0.0_f64, f64::max);
    Some(format!(
        "DISTURBED: other processes kept {:.2} of {} cores busy on average during this run \
         (hypervisor steal {:.2}; {:.2} during the worst row), beyond the deliberate load of \
         {} busy loop(s); {} of {} rows were measured above {} cores (column `others`). \
         These ratios describe a busy machine, not a quiet one.",
        machine.whole_run.other_cores(),
        machine.whole_run.cores,
        machine.whole_run.steal_cores(),
        worst,
        machine.deliberate_load,
        disturbed_rows.len(),
        rows.len(),
        load::DISTURBED_CORES,
    ))
}

fn render(
    rows: &[Row],
    notes: &[String],
    versions: &[(String, String)],
    options: &RunnerBenchOptions,
    machine: &MachineState,
    took: Duration,
) -> String {
    let mut out = section_begin(options.load);
    out.push('\n');
    let title = match options.load {
        0 => "No deliberate load (`--load 0`)".to_string(),
        1 => "One core kept busy (`--load 1`)".to_string(),
        n => format!("{n} cores kept busy (`--load {n}`)"),
    };
    let _ = writeln!(out, "## {title}\n");
    match disturbance(rows, machine) {
        Some(line) => {
            let _ = writeln!(out, "{line}\n");
        }
        None => {
            let _ = writeln!(
                out,
                "Quiet: other processes took {:.2} cores on average during this run (at most {} \
                 in every row).\n",
                machine.whole_run.other_cores() + machine.whole_run.steal_cores(),
                load::DISTURBED_CORES
            );
        }
    }
    let _ = writeln!(out, "Command: `{}`\n", command_line(options));
    for (name, value) in versions {
        let _ = writeln!(out, "- {name}: {value}");
    }
    let _ = writeln!(
        out,
        "- deliberate load: {}",
        match machine.deliberate_load {
            0 => "none".to_string(),
            n => format!("{n} busy-loop thread(s) in the benchmark process for the whole run"),
        }
    );
    let _ = writeln!(
        out,
        "- other processes: {:.2} cores on average over the run, hypervisor steal {:.2}; load \
         average {} at the start, {} at the end (it counts the deliberate load too)",
        machine.whole_run.other_cores(),
        machine.whole_run.steal_cores(),
        machine.load_average_at_start,
        machine.load_average_at_end
    );
    let _ = writeln!(
        out,
        "- iterations: {} (root change and cold: {} at N <= 100, {} above); whole run {}\n",
        options.iterations,
        options.slow_iterations,
        options.large_slow_iterations,
        format_duration(took)
    );
    out.push_str(
        "| measure | N | turbo | xtask | turbo / xtask | runs | target | | others (cores) | CPU per run, turbo / xtask |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for row in rows {
        let (turbo, speedup) = match row.turbo {
            Some(t) => (format_duration(t), format!("{:.1}x", ratio(t, row.xtask))),
            None => ("".into(), "".into()),
        };
        let (target, met) = match (row.target, row.turbo) {
            (Some(x), Some(t)) => (
                if x <= 1.0 {
                    "faster".to_string()
                } else {
                    format!(">= {x}x")
                },
                verdict(ratio(t, row.xtask) >= x.max(1.0) && (x > 1.0 || t > row.xtask))
                    .to_string(),
            ),
            _ => (String::new(), String::new()),
        };
        let met = if row.note.is_empty() {
            met
        } else if met.is_empty() {
            row.note.clone()
        } else {
            format!("{met}; {}", row.note)
        };
        let others = row.load.other_cores() + row.load.steal_cores();
        let cpu = match row.cpu {
            Some((turbo, xtask)) => format!(
                "{} / {} ({:.1}x)",
                format_duration(turbo),
                format_duration_precise(xtask),
                ratio(turbo, xtask)
            ),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2}{} | {cpu} |",
            row.measure,
            row.crates,
            turbo,
            format_duration_precise(row.xtask),
            speedup,
            row.runs,
            target,
            met,
            others,
            if row.load.disturbed() {
                " DISTURBED"
            } else {
                ""
            }
        );
    }
    out.push('\n');
    for note in notes {
        let _ = writeln!(out, "- {note}");
    }
    let _ = writeln!(out, "{}", section_end(options.load));
    out
}

fn format_duration_precise(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format_duration(duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_versions_ratios_and_unmet_targets() {
        let ms = Duration::from_millis;
        let rows = vec![
            Row {
                measure: "fully cached".into(),
                crates: 500,
                turbo: Some(ms(200)),
                xtask: ms(20),
                runs: 10,
                target: Some(5.0),
                note: String::new(),
                load: LoadWindow::default(),
                cpu: None,
            },
            Row {
                measure: "cold, empty cache".into(),
                crates: 500,
                turbo: Some(ms(1000)),
                xtask: ms(500),
                runs: 3,
                target: Some(10.0),
                note: String::new(),
                load: LoadWindow::default(),
                cpu: None,
            },
            Row {
                measure: "leaf change".into(),
                crates: 500,
                turbo: Some(ms(100)),
                xtask: ms(120),
                runs: 10,
                target: Some(1.0),
                note: String::new(),
                load: LoadWindow::default(),
                cpu: None,
            },
        ];
        let options = options(0);
        let table = render(
            &rows,
            &["a note".into()],
            &[("turbo".into(), "2.11.11".into())],
            &options,
            &machine(0, LoadWindow::default()),
            ms(1),
        );
        assert!(table.starts_with("<!-- generated by `cargo xtask bench runner`"));
        assert!(table.contains("- turbo: 2.11.11"));
        assert!(
            table.contains("| fully cached | 500 | 200 ms | 20.0 ms | 10.0x | 10 | >= 5x | met |"),
            "{table}"
        );
        assert!(
            table.contains(
                "| cold, empty cache | 500 | 1.00 s | 500 ms | 2.0x | 3 | >= 10x | NOT met |"
            ),
            "{table}"
        );
        assert!(
            table
                .contains("| leaf change | 500 | 100 ms | 120 ms | 0.8x | 10 | faster | NOT met |"),
            "{table}"
        );
        assert!(table.contains("- a note"));
    }

    fn options(load: usize) -> RunnerBenchOptions {
        RunnerBenchOptions {
            xtask: None,
            turbo: None,
            npm: None,
            tools_dir: "t".into(),
            load,
            crates: vec![500],
            iterations: 10,
            slow_iterations: 10,
            large_slow_iterations: 3,
            skip_big: true,
            skip_cargo: true,
            work_dir: "w".into(),
            write_to: None,
        }
    }

    fn machine(deliberate_load: usize, whole_run: LoadWindow) -> MachineState {
        MachineState {
            deliberate_load,
            whole_run,
            load_average_at_start: "0.1 0.2 0.3".into(),
            load_average_at_end: "1.0 0.5 0.3".into(),
        }
    }

    fn row(measure: &str, others: u64) -> Row {
        Row {
            measure: measure.into(),
            crates: 500,
            turbo: Some(Duration::from_millis(300)),
            xtask: Duration::from_millis(100),
            runs: 10,
            target: Some(5.0),
            note: String::new(),
            load: LoadWindow {
                total: 1000,
                others,
                steal: 0,
                cores: 2,
            },
            cpu: Some((Duration::from_millis(450), Duration::from_millis(90))),
        }
    }

    #[test]
    fn a_run_where_other_processes_took_cpu_says_disturbed_and_where() {
        let rows = vec![row("fully cached", 10), row("dry run (JSON)", 400)];
        let busy = LoadWindow {
            total: 10_000,
            others: 2_000,
            steal: 0,
            cores: 2,
        };
        let table = render(
            &rows,
            &[],
            &[],
            &options(1),
            &machine(1, busy),
            Duration::ZERO,
        );
        assert!(
            table.contains("## One core kept busy (`--load 1`)"),
            "{table}"
        );
        assert!(
            table.contains(
                "\nDISTURBED: other processes kept 0.40 of 2 cores busy on average during this \
                 run (hypervisor steal 0.00; 0.80 during the worst row), beyond the deliberate \
                 load of 1 busy loop(s); 1 of 2 rows were measured above 0.1 cores"
            ),
            "{table}"
        );
        assert!(table.contains("| 0.02 |"), "{table}");
        assert!(
            table.contains("| 0.80 DISTURBED | 450 ms / 90.0 ms (5.0x) |"),
            "{table}"
        );
        assert!(table.contains("Command: `cargo xtask bench runner --crates 500 --iterations 10 --slow-iterations 10 --large-slow-iterations 3 --skip-big --skip-cargo --load 1`"), "{table}");
        assert!(
            table.contains("- deliberate load: 1 busy-loop thread(s)"),
            "{table}"
        );

        let quiet_rows = vec![row("fully cached", 10)];
        let quiet = LoadWindow {
            total: 10_000,
            others: 100,
            steal: 0,
            cores: 2,
        };
        let table = render(
            &quiet_rows,
            &[],
            &[],
            &options(0),
            &machine(0, quiet),
            Duration::ZERO,
        );
        assert!(!table.contains("DISTURBED"), "{table}");
        assert!(
            table.contains("Quiet: other processes took 0.02 cores"),
            "{table}"
        );
    }

    #[test]
    fn each_load_level_replaces_only_its_own_section() {
        let section = |load: usize, body: &str| {
            format!("{}\n{body}\n{}\n", section_begin(load), section_end(load))
        };
        // An old, wholly generated file: replaced by the header and the section.
        let old = "<!-- generated by `cargo xtask bench runner`, do not edit -->\n# old\n";
        let first = splice_section(old, 1, &section(1, "loaded v1"));
        assert!(first.starts_with(HEADER), "{first}");
        assert!(!first.contains("# old"), "{first}");
        // A quiet section goes before the loaded one; prose after the sections stays.
        let with_prose = format!("{first}\n## Analysis\n\nhand-written\n");
        let both = splice_section(&with_prose, 0, &section(0, "quiet v1"));
        let quiet_at = both.find("quiet v1").unwrap();
        let loaded_at = both.find("loaded v1").unwrap();
        assert!(quiet_at < loaded_at, "{both}");
        assert!(both.ends_with("## Analysis\n\nhand-written\n"), "{both}");
        // A rerun replaces its own section only.
        let again = splice_section(&both, 1, &section(1, "loaded v2"));
        assert!(
            again.contains("quiet v1") && again.contains("loaded v2"),
            "{again}"
        );
        assert!(!again.contains("loaded v1"), "{again}");
        assert!(again.ends_with("## Analysis\n\nhand-written\n"), "{again}");
        assert_eq!(again.matches("section --load 1)").count(), 1, "{again}");
        // A higher load goes after every lower one, before the prose.
        let third = splice_section(&again, 2, &section(2, "two busy"));
        let two_at = third.find("two busy").unwrap();
        assert!(third.find("loaded v2").unwrap() < two_at, "{third}");
        assert!(two_at < third.find("## Analysis").unwrap(), "{third}");
    }
}

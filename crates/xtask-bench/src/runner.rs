//! `cargo xtask bench runner`: the task runner itself, side by side with Turborepo on the same
//! synthetic trees (`gen_monorepo.py`), alternating the two tools in one run.
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
//! xtask` installs), as turbo's native binary is.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::synthetic::{self, Shape};
use crate::timing::{format_duration, median, ratio, time_once};

#[derive(Debug, Clone)]
pub struct RunnerBenchOptions {
    /// The xtask binary to time (an optimised build); set by [`bench_runner_in`].
    pub xtask: PathBuf,
    /// The turbo binary (native, from npm); set by [`bench_runner_in`].
    pub turbo: PathBuf,
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
}

/// Builds the optimised xtask binary of the repository at `repo_root` (`cargo build --release
/// -p xtask`, the binary `cargo install --path xtask` installs), finds turbo (installed from npm
/// by `.ci/tools.d/bench.sh`), then runs [`bench_runner`].
pub fn bench_runner_in(
    repo_root: &Path,
    target_dir: &Path,
    mut options: RunnerBenchOptions,
) -> anyhow::Result<String> {
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "--package", "xtask", "--bin", "xtask"])
        .current_dir(repo_root)
        .status()
        .context("failed to run cargo build --release")?;
    anyhow::ensure!(status.success(), "cargo build --release -p xtask failed");
    options.xtask = target_dir.join("release").join("xtask");
    options.turbo = testkit::tool("turbo");
    bench_runner(&options)
}

/// Runs every scenario and returns the table (also written to `options.write_to`).
pub fn bench_runner(options: &RunnerBenchOptions) -> anyhow::Result<String> {
    let started = Instant::now();
    // Taken first: the commit the timed binary was built from.
    let versions = versions(options)?;
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let trees = options.work_dir.join("trees");
    let runs_dir = options.work_dir.join("runner");
    std::fs::create_dir_all(&runs_dir)
        .with_context(|| format!("failed to create `{}`", runs_dir.display()))?;

    for &crates in &options.crates {
        let tree = synthetic::generate(&trees, Shape::standard(crates), true)?;
        let slow = if crates <= 100 {
            options.slow_iterations
        } else {
            options.large_slow_iterations
        };
        bench_tree(
            options, &tree, &runs_dir, crates, slow, &mut rows, &mut notes,
        )?;
    }
    if !options.skip_big {
        let shape = Shape {
            crates: 50,
            files_per_crate: 20,
            bytes_per_file: 200_000,
        };
        let tree = synthetic::generate(&trees, shape, true)?;
        bench_big(options, &tree, &runs_dir, &mut rows, &mut notes)?;
    }
    let largest = options.crates.iter().copied().max().unwrap_or(500);
    if !options.skip_cargo {
        let tree = synthetic::generate(&trees, Shape::standard(largest), true)?;
        bench_cargo(options, &tree, &runs_dir, largest, &mut rows, &mut notes)?;
    }

    let table = render(&rows, &notes, &versions, options, started.elapsed());
    if let Some(path) = &options.write_to {
        xtask_hash::write_atomically(path, table.as_bytes())
            .with_context(|| format!("failed to write `{}`", path.display()))?;
    }
    Ok(table)
}

/// A tool's command in a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Turbo,
    Xtask,
}

fn command(options: &RunnerBenchOptions, tool: Tool, dir: &Path, extra: &[&str]) -> Command {
    match tool {
        Tool::Turbo => {
            let mut c = Command::new(&options.turbo);
            c.args(["run", "build", "--output-logs=none"])
                .args(extra)
                .current_dir(dir)
                .env("TURBO_TELEMETRY_DISABLED", "1")
                .env("TURBO_NO_UPDATE_NOTIFIER", "1")
                .env("DO_NOT_TRACK", "1")
                .env_remove("CI");
            c
        }
        Tool::Xtask => {
            let mut c = Command::new(&options.xtask);
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
    options: &RunnerBenchOptions,
    dirs: &[(Tool, PathBuf)],
    iterations: usize,
    extra: &dyn Fn(Tool) -> Vec<&'static str>,
    prepare: &dyn Fn(Tool, &Path, usize) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = alternate_samples(options, dirs, iterations, extra, prepare)?;
    Ok(samples.iter_mut().map(|s| median(s)).collect())
}

/// [`alternate`], returning every sample of each tool.
fn alternate_samples(
    options: &RunnerBenchOptions,
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
            let mut cmd = command(options, *tool, dir, &args);
            samples[index].push(time_once(&mut cmd)?);
        }
    }
    Ok(samples)
}

fn bench_tree(
    options: &RunnerBenchOptions,
    tree: &Path,
    runs_dir: &Path,
    crates: usize,
    slow: usize,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let meta = read_meta(tree)?;
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
        first_cold.push(time_once(&mut command(options, *tool, dir, &[]))?);
    }
    let none = |_: Tool| Vec::new();
    let nothing = |_: Tool, _: &Path, _: usize| Ok(());
    let mut push = |measure: &str, medians: Vec<Duration>, runs: usize, target: Option<f64>| {
        rows.push(Row {
            measure: measure.to_string(),
            crates,
            turbo: Some(medians[0]),
            xtask: medians[1],
            runs,
            target,
            note: String::new(),
        });
    };
    let n = options.iterations;

    let cached = alternate(options, &dirs, n, &none, &nothing)?;
    push("fully cached", cached, n, Some(5.0));

    let delete_outputs = |_: Tool, dir: &Path, _: usize| remove_outputs(dir);
    let restored = alternate(options, &dirs, n, &none, &delete_outputs)?;
    push("outputs deleted (restore all)", restored, n, Some(3.0));

    let dry = |tool: Tool| match tool {
        Tool::Turbo => vec!["--dry=json"],
        Tool::Xtask => vec!["--dry-run=json"],
    };
    let dry_medians = alternate(options, &dirs, n, &dry, &nothing)?;
    push("dry run (JSON)", dry_medians, n, Some(4.0));

    let leaf = meta.leaf_file.clone();
    let edit_leaf = |_: Tool, dir: &Path, i: usize| append_line(&dir.join(&leaf), i);
    let leaf_medians = alternate(options, &dirs, n, &none, &edit_leaf)?;
    push(
        &format!("leaf change ({} re-runs 1 task)", meta.leaf_file),
        leaf_medians,
        n,
        Some(1.0),
    );

    let root = meta.root_file.clone();
    let edit_root = |_: Tool, dir: &Path, i: usize| append_line(&dir.join(&root), 1000 + i);
    let root_medians = alternate(options, &dirs, slow, &none, &edit_root)?;
    push(
        &format!("root change ({} tasks re-run)", meta.root_dependents + 1),
        root_medians,
        slow,
        Some(1.0),
    );

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
        let mut samples = alternate_samples(options, &dirs, slow - 1, &none, &empty_caches)?;
        for (tool_samples, first) in samples.iter_mut().zip(&first_cold) {
            tool_samples.push(*first);
        }
        samples.iter_mut().map(|s| median(s)).collect()
    } else {
        first_cold
    };
    push("cold, empty cache", cold, slow.max(1), Some(10.0));

    // Peak memory: both tools fully cached; xtask cold (turbo's cold run takes minutes at
    // N = 500 and is not what the target is about).
    let mut peaks = Vec::new();
    for (tool, dir) in &dirs {
        peaks.push(peak_memory_kib(command(options, *tool, dir, &[]))?);
    }
    empty_caches(Tool::Xtask, &xtask_dir, 0)?;
    let xtask_cold_peak = peak_memory_kib(command(options, Tool::Xtask, &xtask_dir, &[]))?;
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
    });
    Ok(())
}

fn bench_big(
    options: &RunnerBenchOptions,
    tree: &Path,
    runs_dir: &Path,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let turbo_dir = fresh_copy(tree, &runs_dir.join("big-turbo"))?;
    let xtask_dir = fresh_copy(tree, &runs_dir.join("big-xtask"))?;
    let dirs = vec![(Tool::Turbo, turbo_dir), (Tool::Xtask, xtask_dir.clone())];
    for (tool, dir) in &dirs {
        time_once(&mut command(options, *tool, dir, &[]))?;
    }
    let none = |_: Tool| Vec::new();
    let nothing = |_: Tool, _: &Path, _: usize| Ok(());
    let n = options.iterations;
    let cached = alternate(options, &dirs, n, &none, &nothing)?;
    rows.push(Row {
        measure: "big inputs (200 MB): fully cached".into(),
        crates: 50,
        turbo: Some(cached[0]),
        xtask: cached[1],
        runs: n,
        target: None,
        note: String::new(),
    });
    let touch_all = |_: Tool, dir: &Path, _: usize| touch_sources(dir);
    let touched = alternate(options, &dirs, n, &none, &touch_all)?;
    rows.push(Row {
        measure: "big inputs: after `touch` of every file (re-hash all)".into(),
        crates: 50,
        turbo: Some(touched[0]),
        xtask: touched[1],
        runs: n,
        target: None,
        note: String::new(),
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
            options,
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
    });
    notes.push(format!(
        "big inputs tree: {} files, {:.0} MB of sources",
        files.len(),
        bytes as f64 / 1e6
    ));
    Ok(())
}

fn bench_cargo(
    options: &RunnerBenchOptions,
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
        let mut c = Command::new("cargo");
        c.args(["build", "--offline"]).current_dir(&dir);
        c
    };
    let xtask_build = || {
        let mut c = Command::new(&options.xtask);
        c.arg("-C").arg(&dir).arg("build").env("CI", "true");
        c
    };
    // Compile once, then store every package's result once.
    let compile = time_once(&mut cargo())?;
    time_once(&mut xtask_build())?;
    let n = options.iterations;
    let mut cargo_samples = Vec::new();
    let mut xtask_samples = Vec::new();
    for i in 0..n.max(1) {
        let mut pair: Vec<(bool, Command)> = vec![(true, cargo()), (false, xtask_build())];
        if i % 2 == 1 {
            pair.reverse();
        }
        for (is_cargo, mut cmd) in pair {
            sync()?;
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
        let mut c = Command::new("cargo");
        c.args(["xtask", "--offline"]).current_dir(&alias_dir);
        c
    };
    // `--offline` goes to the empty main; cargo's own flags are in the alias.
    let mut build_it = Command::new("cargo");
    build_it
        .args(["build", "--offline", "-p", "xtask"])
        .current_dir(&alias_dir);
    time_once(&mut build_it)?;
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
    });
    Ok(())
}

struct TreeMeta {
    leaf_file: String,
    root_file: String,
    root_dependents: u64,
}

fn read_meta(tree: &Path) -> anyhow::Result<TreeMeta> {
    let path = tree.join("bench-meta.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("failed to read `{}`", path.display()))?;
    let meta: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("failed to parse `{}`", path.display()))?;
    let field = |probe: &str, key: &str| meta[probe][key].clone();
    Ok(TreeMeta {
        leaf_file: field("leaf_probe", "file")
            .as_str()
            .context("bench-meta.json lacks leaf_probe.file")?
            .to_string(),
        root_file: field("root_probe", "file")
            .as_str()
            .context("bench-meta.json lacks root_probe.file")?
            .to_string(),
        root_dependents: field("root_probe", "transitive_dependents")
            .as_u64()
            .unwrap_or(0),
    })
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
    let mut count = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir)
            .with_context(|| format!("failed to read `{}`", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("failed to read `{}`", dir.display()))?;
            let name = entry.file_name();
            if [
                ".git",
                "node_modules",
                "target",
                "turbo-like-cache",
                ".turbo",
                "out",
            ]
            .iter()
            .any(|skip| name == *skip)
            {
                continue;
            }
            let metadata = std::fs::symlink_metadata(entry.path())
                .with_context(|| format!("failed to stat `{}`", entry.path().display()))?;
            if metadata.is_dir() {
                stack.push(entry.path());
            } else {
                count += 1;
            }
        }
    }
    Ok(count)
}

fn sync() -> anyhow::Result<()> {
    let status = Command::new("sync")
        .status()
        .context("failed to run sync")?;
    anyhow::ensure!(status.success(), "sync failed");
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

fn versions(options: &RunnerBenchOptions) -> anyhow::Result<Vec<(String, String)>> {
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
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    let commit = if dirty {
        format!("{commit} + uncommitted changes")
    } else {
        commit
    };
    Ok(vec![
        ("date".into(), date),
        (
            "xtask".into(),
            format!(
                "{} (commit {commit}, release build)",
                output(&options.xtask, &["--version"])
            ),
        ),
        ("turbo".into(), output(&options.turbo, &["--version"])),
        ("cargo".into(), output(Path::new("cargo"), &["--version"])),
        ("kernel".into(), output(Path::new("uname"), &["-sr"])),
        (
            "cores".into(),
            std::thread::available_parallelism()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "?".into()),
        ),
        (
            "load average at the start".into(),
            std::fs::read_to_string("/proc/loadavg")
                .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|_| "?".into()),
        ),
    ])
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

fn render(
    rows: &[Row],
    notes: &[String],
    versions: &[(String, String)],
    options: &RunnerBenchOptions,
    took: Duration,
) -> String {
    let mut out = String::new();
    out.push_str(
        "<!-- generated by `cargo xtask bench runner`, do not edit: rerun it to refresh -->\n\
         # Benchmarks: xtask against Turborepo\n\n\
         Measured side by side in one run by `cargo xtask bench runner`: the two tools \
         alternate (who goes first swaps every iteration), each on its own copy of the same \
         synthetic tree (`gen_monorepo.py --files-per-crate 5 --bytes-per-file 2000`, \
         task `mkdir -p out && cat src/*.rs | wc -c > out/size.txt`, outputs `out/**`, \
         depends on `^build`; xtask's twin is `run size` with the default inputs, every \
         file of the package git does not ignore, as turbo hashes). Medians; \
         `turbo / xtask` is the speed-up.\n\n",
    );
    for (name, value) in versions {
        let _ = writeln!(out, "- {name}: {value}");
    }
    let _ = writeln!(
        out,
        "- iterations: {} (root change and cold: {} at N <= 100, {} above); whole run {}\n",
        options.iterations,
        options.slow_iterations,
        options.large_slow_iterations,
        format_duration(took)
    );
    out.push_str("| measure | N | turbo | xtask | turbo / xtask | runs | target | |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
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
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.measure,
            row.crates,
            turbo,
            format_duration_precise(row.xtask),
            speedup,
            row.runs,
            target,
            met
        );
    }
    out.push('\n');
    for note in notes {
        let _ = writeln!(out, "- {note}");
    }
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
            },
            Row {
                measure: "cold, empty cache".into(),
                crates: 500,
                turbo: Some(ms(1000)),
                xtask: ms(500),
                runs: 3,
                target: Some(10.0),
                note: String::new(),
            },
            Row {
                measure: "leaf change".into(),
                crates: 500,
                turbo: Some(ms(100)),
                xtask: ms(120),
                runs: 10,
                target: Some(1.0),
                note: String::new(),
            },
        ];
        let options = RunnerBenchOptions {
            xtask: "xtask".into(),
            turbo: "turbo".into(),
            crates: vec![500],
            iterations: 10,
            slow_iterations: 10,
            large_slow_iterations: 3,
            skip_big: true,
            skip_cargo: true,
            work_dir: "w".into(),
            write_to: None,
        };
        let table = render(
            &rows,
            &["a note".into()],
            &[("turbo".into(), "2.11.11".into())],
            &options,
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
}

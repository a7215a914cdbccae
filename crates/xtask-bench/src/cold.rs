//! `cargo xtask bench cold`: what the tool costs where it does the same work as cargo, on a
//! real workspace (default: this one), each tool on its own copy (its own `target/`), side by
//! side in one run:
//!
//! - cold build: empty `target/` (and, for xtask, an empty cache): `cargo build --workspace`
//!   vs `xtask build`, with the tool's own part (the run minus its cargo calls: hashing,
//!   storing) from its run summary;
//! - cold test: the same with `cargo test --workspace` vs `xtask test`;
//! - warm test: right after, every test binary built: `cargo test --workspace` vs
//!   `xtask test --force` (runs every test again, and stores).
//!
//! Every timed run starts after `sync` (no writeback of the run before it), and with more than
//! one iteration the report gives each pair's ratio beside the medians.
//!
//! Targets: cold build <= 1.05x cargo's, tests no slower than cargo's (1.0x). `--package`
//! (repeatable) measures `-p` those packages with both tools instead of the whole workspace.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::load::{CpuCounters, LoadWindow};
use crate::timing::{format_duration, median, ratio, sync, time_once};

/// Targets, as xtask / cargo.
pub const COLD_BUILD_TARGET: f64 = 1.05;
pub const TEST_TARGET: f64 = 1.0;

pub struct ColdBenchOptions {
    /// The workspace to copy (a git work tree: tracked and untracked, not ignored, files).
    pub source: PathBuf,
    pub xtask: PathBuf,
    /// Where the two copies go.
    pub work_dir: PathBuf,
    pub iterations: usize,
    /// Only the cold build (the test scenarios run a workspace's whole test suite four times).
    pub build_only: bool,
    /// Only these packages (`-p` for both tools) instead of the whole workspace: for a
    /// workspace some of whose members cannot build on this machine.
    pub packages: Vec<String>,
}

/// One measured scenario: cargo's time, xtask's time and the tool's own part of it.
struct Row {
    name: &'static str,
    cargo: Duration,
    xtask: Duration,
    own: Duration,
    target: f64,
    /// What other processes took while the row's runs went on.
    load: LoadWindow,
    /// xtask / cargo of each alternating pair, in run order: the spread behind the medians.
    pairs: Vec<f64>,
}

/// Runs the benchmark; returns the report.
pub fn bench_cold(options: &ColdBenchOptions) -> anyhow::Result<String> {
    let cargo_copy = options.work_dir.join("cargo");
    let xtask_copy = options.work_dir.join("xtask");
    for copy in [&cargo_copy, &xtask_copy] {
        copy_work_tree(&options.source, copy)?;
    }
    let tools = Tools {
        xtask: &options.xtask,
        cargo_copy: &cargo_copy,
        xtask_copy: &xtask_copy,
        summary: options.work_dir.join("summary.json"),
    };
    let iterations = options.iterations.max(1);
    let mut build = Samples::default();
    let mut cold_test = Samples::default();
    let mut warm_test = Samples::default();
    let args = |command: &str, more: &[&str]| -> (Vec<String>, Vec<String>) {
        let mut cargo = vec![command.to_string()];
        let mut xtask = vec![command.to_string()];
        xtask.extend(more.iter().map(|arg| (*arg).to_string()));
        if options.packages.is_empty() {
            cargo.push("--workspace".to_string());
        }
        for package in &options.packages {
            for args in [&mut cargo, &mut xtask] {
                args.extend(["-p".to_string(), package.clone()]);
            }
        }
        (cargo, xtask)
    };
    let (build_args, test_args, force_args) = (
        args("build", &[]),
        args("test", &[]),
        args("test", &["--force"]),
    );
    for i in 0..iterations {
        progress(&format!("bench cold: iteration {} of {iterations}", i + 1));
        tools.clean()?;
        build.push(tools.pair(&build_args, i)?);
        if options.build_only {
            continue;
        }
        tools.clean()?;
        cold_test.push(tools.pair(&test_args, i)?);
        warm_test.push(tools.pair(&force_args, i)?);
    }
    let mut rows = vec![build.row("cold build", COLD_BUILD_TARGET)];
    if !options.build_only {
        rows.push(cold_test.row("cold test", TEST_TARGET));
        rows.push(warm_test.row("warm test", TEST_TARGET));
    }
    Ok(report(&options.source, iterations, &rows))
}

struct Tools<'a> {
    xtask: &'a Path,
    cargo_copy: &'a Path,
    xtask_copy: &'a Path,
    summary: PathBuf,
}

impl Tools<'_> {
    /// Empty targets for both, and an empty cache for xtask.
    fn clean(&self) -> anyhow::Result<()> {
        let mut clean_cache = Command::new(self.xtask);
        clean_cache
            .args(["cache", "clean"])
            .current_dir(self.xtask_copy);
        time_once(&mut clean_cache)?;
        for dir in [
            self.cargo_copy.join("target"),
            self.xtask_copy.join("target"),
        ] {
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("failed to remove `{}`", dir.display()))?;
            }
        }
        Ok(())
    }

    /// cargo `cargo_args` and xtask `xtask_args`, in an order that alternates with `i`;
    /// returns (cargo, xtask, xtask's own part) and what other processes took meanwhile.
    fn pair(
        &self,
        (cargo_args, xtask_args): &(Vec<String>, Vec<String>),
        i: usize,
    ) -> anyhow::Result<Sample> {
        let before = CpuCounters::read()?;
        let (cargo, xtask, own) = self.pair_times(cargo_args, xtask_args, i)?;
        let load = CpuCounters::read()?.since(&before);
        Ok(Sample {
            cargo,
            xtask,
            own,
            load,
        })
    }

    fn pair_times(
        &self,
        cargo_args: &[String],
        xtask_args: &[String],
        i: usize,
    ) -> anyhow::Result<(Duration, Duration, Duration)> {
        // Each run starts with the disk flushed: the one before it left gigabytes of dirty
        // pages (a coreutils build), whose writeback would otherwise land on whichever tool
        // runs second.
        let cargo = || -> anyhow::Result<Duration> {
            sync()?;
            let mut command = crate::tools::cargo_command();
            command.args(cargo_args).current_dir(self.cargo_copy);
            time_once(&mut command)
        };
        let xtask = || -> anyhow::Result<(Duration, Duration)> {
            sync()?;
            let mut command = Command::new(self.xtask);
            command
                .args(xtask_args)
                .arg(format!("--summarize={}", self.summary.display()))
                .current_dir(self.xtask_copy)
                .env("CI", "1");
            let took = time_once(&mut command)?;
            let cargo_ms = summary_cargo_ms(&self.summary)?;
            Ok((took, took.saturating_sub(Duration::from_millis(cargo_ms))))
        };
        if i.is_multiple_of(2) {
            let c = cargo()?;
            let (x, own) = xtask()?;
            Ok((c, x, own))
        } else {
            let (x, own) = xtask()?;
            let c = cargo()?;
            Ok((c, x, own))
        }
    }
}

/// One progress line on stderr (the report goes to stdout).
pub(crate) fn progress(message: &str) {
    use std::io::Write;
    let _ = std::io::stderr()
        .lock()
        .write_all(format!("{message}\n").as_bytes());
}

/// `totals.cargo_ms` of a run summary.
fn summary_cargo_ms(path: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read the run summary `{}`", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("`{}` is not JSON", path.display()))?;
    json["totals"]["cargo_ms"]
        .as_u64()
        .with_context(|| format!("`{}` has no totals.cargo_ms", path.display()))
}

/// One alternating pair of runs.
struct Sample {
    cargo: Duration,
    xtask: Duration,
    own: Duration,
    load: LoadWindow,
}

#[derive(Default)]
struct Samples {
    cargo: Vec<Duration>,
    xtask: Vec<Duration>,
    own: Vec<Duration>,
    load: LoadWindow,
}

impl Samples {
    fn push(&mut self, sample: Sample) {
        self.cargo.push(sample.cargo);
        self.xtask.push(sample.xtask);
        self.own.push(sample.own);
        self.load.add(&sample.load);
    }

    fn row(mut self, name: &'static str, target: f64) -> Row {
        let pairs = self
            .xtask
            .iter()
            .zip(&self.cargo)
            .map(|(&xtask, &cargo)| ratio(xtask, cargo))
            .collect();
        Row {
            name,
            cargo: median(&mut self.cargo),
            xtask: median(&mut self.xtask),
            own: median(&mut self.own),
            target,
            load: self.load,
            pairs,
        }
    }
}

fn report(source: &Path, iterations: usize, rows: &[Row]) -> String {
    let mut text = format!(
        "bench cold: `{}`, each tool on its own copy ({iterations} runs each, alternating, \
         medians)\n",
        source.display()
    );
    let disturbed: Vec<&str> = rows
        .iter()
        .filter(|row| row.load.disturbed())
        .map(|row| row.name)
        .collect();
    if !disturbed.is_empty() {
        text.push_str(&format!(
            "DISTURBED: other processes took more than {} cores on average while {} ran \
             (column `others`); these ratios describe a busy machine, not a quiet one\n",
            crate::load::DISTURBED_CORES,
            disturbed.join(", ")
        ));
    }
    text.push_str(&format!(
        "  {:10} {:>10} {:>10} {:>14} {:>13} {:>8} {:>16}\n",
        "scenario", "cargo", "xtask", "xtask / cargo", "tool's own", "target", "others (cores)"
    ));
    for row in rows {
        let slowdown = ratio(row.xtask, row.cargo);
        let verdict = if slowdown <= row.target {
            "met"
        } else {
            "NOT met"
        };
        text.push_str(&format!(
            "  {:10} {:>10} {:>10} {:>13.2}x {:>13} {:>7.2}x {verdict:>7} {:>8.2}{}\n",
            row.name,
            format_duration(row.cargo),
            format_duration(row.xtask),
            slowdown,
            format_duration(row.own),
            row.target,
            row.load.other_cores(),
            if row.load.disturbed() {
                " DISTURBED"
            } else {
                ""
            }
        ));
    }
    if iterations > 1 {
        // A cold build's spread between runs can exceed the 5% its target allows.
        for row in rows {
            let pairs: Vec<String> = row.pairs.iter().map(|r| format!("{r:.2}x")).collect();
            text.push_str(&format!(
                "  {}, each pair (xtask / cargo): {}\n",
                row.name,
                pairs.join(" ")
            ));
        }
    }
    text
}

/// Copies the files git would show in `source` (tracked, and untracked but not ignored) to
/// `destination`, which is emptied first.
pub(crate) fn copy_work_tree(source: &Path, destination: &Path) -> anyhow::Result<()> {
    let output = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(source)
        .output()
        .with_context(|| format!("failed to run git in `{}`", source.display()))?;
    if !output.status.success() {
        bail!(
            "`{}` is not a git work tree: {}",
            source.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    if destination.exists() {
        std::fs::remove_dir_all(destination)
            .with_context(|| format!("failed to empty `{}`", destination.display()))?;
    }
    for name in output.stdout.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let relative = Path::new(std::str::from_utf8(name).context("a non-UTF-8 file name")?);
        let from = source.join(relative);
        if !from.is_file() {
            continue; // deleted but still in the index
        }
        let to = destination.join(relative);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("failed to create `{}`", parent.display()))?;
        }
        std::fs::copy(&from, &to)
            .with_context(|| format!("failed to copy `{}`", from.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_compares_with_each_target_and_says_when_the_machine_was_busy() {
        let s = Duration::from_secs;
        // 2 cores over 1000 ticks: others took 10 ticks (0.02 cores), then 500 (1 core).
        let window = |others| LoadWindow {
            total: 1000,
            others,
            steal: 0,
            cores: 2,
        };
        let (quiet, busy) = (window(10), window(500));
        let rows = [
            Row {
                name: "cold build",
                cargo: s(100),
                xtask: s(104),
                own: s(3),
                target: COLD_BUILD_TARGET,
                load: quiet,
                pairs: vec![1.02, 1.06],
            },
            Row {
                name: "warm test",
                cargo: s(10),
                xtask: s(12),
                own: s(1),
                target: TEST_TARGET,
                load: busy,
                pairs: vec![1.1, 1.3],
            },
        ];
        let text = report(Path::new("/w"), 2, &rows);
        assert!(
            text.contains("  cold build, each pair (xtask / cargo): 1.02x 1.06x\n"),
            "{text}"
        );
        assert!(
            text.contains("  warm test, each pair (xtask / cargo): 1.10x 1.30x\n"),
            "{text}"
        );
        assert!(
            text.contains("cold build   100.00 s   104.00 s          1.04x"),
            "{text}"
        );
        assert!(text.contains("1.05x     met     0.02\n"), "{text}");
        assert!(
            text.contains("1.00x NOT met     1.00 DISTURBED\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "DISTURBED: other processes took more than 0.1 cores on average while warm test ran"
            ),
            "{text}"
        );
    }

    #[test]
    fn copies_what_git_shows_and_nothing_it_ignores() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-cold-{}", std::process::id()));
        let source = dir.join("source");
        std::fs::create_dir_all(source.join("src")).unwrap();
        std::fs::write(source.join(".gitignore"), "/target\n").unwrap();
        std::fs::write(source.join("src/lib.rs"), "pub fn f() {}\n").unwrap();
        std::fs::create_dir_all(source.join("target")).unwrap();
        std::fs::write(source.join("target/junk"), "x").unwrap();
        let git = Command::new("git")
            .arg("init")
            .arg("-q")
            .current_dir(&source)
            .status();
        assert!(git.is_ok_and(|s| s.success()));
        let destination = dir.join("copy");
        copy_work_tree(&source, &destination).unwrap();
        assert!(destination.join("src/lib.rs").is_file());
        assert!(destination.join(".gitignore").is_file());
        assert!(!destination.join("target").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

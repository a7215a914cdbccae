//! `cargo xtask bench readme`: the README's commands in a real workspace (default: this
//! repository), every task cached, side by side with cargo's own no-op equivalents on the same
//! tree, alternating who goes first, medians of `iterations` runs each.
//!
//! | README command        | compared with (cargo, everything already built)              |
//! |-----------------------|--------------------------------------------------------------|
//! | `xtask build`         | `cargo build --workspace`                                    |
//! | `xtask lint`          | `cargo clippy --workspace --all-targets`                     |
//! | `xtask test`          | `cargo test --workspace --no-run` (compiles nothing, runs no test: a lower bound of `cargo test`, which runs every test again) |
//!
//! The `cargo xtask` alias is measured separately: `cargo xtask build` whole (and against
//! `cargo run -p xtask -- build`, the pattern's usual alias, which the launcher replaced),
//! and the alias's own cost (cargo's load of the workspace and check of the launcher package
//! `xtask-launch`, the launcher's stamp check, then starting the tool) as `cargo xtask
//! --version` minus `xtask --version`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use crate::timing::{format_duration, median, ratio, time_once};

/// Target: each README command at least this many times faster than cargo's no-op.
pub const TARGET_RATIO: f64 = 3.0;

pub struct ReadmeBenchOptions {
    /// The workspace root the commands run in.
    pub root: PathBuf,
    /// The xtask binary (`cargo xtask` runs this one).
    pub xtask: PathBuf,
    pub iterations: usize,
}

/// One README command and cargo's equivalent.
struct Pair {
    name: &'static str,
    xtask: &'static [&'static str],
    cargo: &'static [&'static str],
}

const PAIRS: [Pair; 3] = [
    Pair {
        name: "build",
        xtask: &["build"],
        cargo: &["build", "--workspace"],
    },
    Pair {
        name: "lint",
        xtask: &["lint"],
        cargo: &["clippy", "--workspace", "--all-targets"],
    },
    Pair {
        name: "test",
        xtask: &["test"],
        cargo: &["test", "--workspace", "--no-run"],
    },
];

/// The xtask pattern's usual alias, `cargo run --package xtask`, which this workspace's alias
/// replaced with a launcher (`xtask-launch`): compared side by side.
const RUN_XTASK_BUILD: [&str; 10] = [
    "run",
    "--quiet",
    "--profile",
    "tool",
    "--package",
    "xtask",
    "--bin",
    "xtask",
    "--",
    "build",
];

/// Runs the benchmark; returns the report.
pub fn bench_readme(options: &ReadmeBenchOptions) -> anyhow::Result<String> {
    let root = &options.root;
    let xtask = |args: &[&str]| {
        let mut command = Command::new(&options.xtask);
        command.args(args).current_dir(root).env("CI", "1");
        command
    };
    let cargo = |args: &[&str]| {
        let mut command = crate::tools::cargo_command();
        command.args(args).current_dir(root);
        command
    };
    // Warm-up: every task cached, everything built (a first `xtask test` runs the tests).
    for pair in &PAIRS {
        crate::cold::progress(&format!("bench readme: warming up `xtask {}`", pair.name));
        time_once(&mut xtask(pair.xtask))?;
        time_once(&mut cargo(pair.cargo))?;
    }
    time_once(&mut cargo(&["xtask", "--version"]))?;
    time_once(&mut cargo(&RUN_XTASK_BUILD))?;
    let load_before = load_average();
    let iterations = options.iterations.max(1);
    let mut rows = Vec::new();
    for pair in &PAIRS {
        let (ours, theirs) = alternate(iterations, || xtask(pair.xtask), || cargo(pair.cargo))?;
        rows.push((pair.name, ours, theirs));
    }
    let (alias_build, direct_build) = alternate(
        iterations,
        || cargo(&["xtask", "build"]),
        || xtask(&["build"]),
    )?;
    let (alias_version, direct_version) = alternate(
        iterations,
        || cargo(&["xtask", "--version"]),
        || xtask(&["--version"]),
    )?;
    let (launched_build, run_build) = alternate(
        iterations,
        || cargo(&["xtask", "build"]),
        || cargo(&RUN_XTASK_BUILD),
    )?;
    let (cargo_build, _) = alternate(
        iterations,
        || cargo(&["build", "--workspace"]),
        || xtask(&["--version"]),
    )?;
    Ok(report(&Report {
        root,
        iterations,
        rows,
        alias_build,
        direct_build,
        alias_own: alias_version.saturating_sub(direct_version),
        launched_build,
        run_build,
        cargo_build,
        load: (load_before, load_average()),
    }))
}

/// Medians of `a` and `b`, run alternately `iterations` times each (who goes first swaps).
fn alternate(
    iterations: usize,
    a: impl Fn() -> Command,
    b: impl Fn() -> Command,
) -> anyhow::Result<(Duration, Duration)> {
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for i in 0..iterations {
        if i.is_multiple_of(2) {
            first.push(time_once(&mut a())?);
            second.push(time_once(&mut b())?);
        } else {
            second.push(time_once(&mut b())?);
            first.push(time_once(&mut a())?);
        }
    }
    Ok((median(&mut first), median(&mut second)))
}

struct Report<'a> {
    root: &'a Path,
    iterations: usize,
    /// (command, xtask, cargo)
    rows: Vec<(&'static str, Duration, Duration)>,
    alias_build: Duration,
    direct_build: Duration,
    alias_own: Duration,
    /// `cargo xtask build` and `cargo run -p xtask -- build`, alternated with each other.
    launched_build: Duration,
    run_build: Duration,
    cargo_build: Duration,
    load: (Option<String>, Option<String>),
}

fn report(r: &Report<'_>) -> String {
    let mut text = format!(
        "bench readme: the README's commands in `{}`, all cached ({} runs each, alternating, \
         medians)\n",
        r.root.display(),
        r.iterations
    );
    text.push_str(&format!(
        "  {:8} {:>10} {:>12} {:>14}\n",
        "command", "xtask", "cargo no-op", "cargo / xtask"
    ));
    let mut met = true;
    for (name, ours, theirs) in &r.rows {
        let speedup = ratio(*theirs, *ours);
        met &= speedup >= TARGET_RATIO;
        text.push_str(&format!(
            "  {:8} {:>10} {:>12} {:>13.1}x\n",
            name,
            format_duration(*ours),
            format_duration(*theirs),
            speedup
        ));
    }
    text.push_str(&format!(
        "  alias: `cargo xtask build` {} (the binary alone {}; `cargo build` no-op {}: {:.1}x)\n",
        format_duration(r.alias_build),
        format_duration(r.direct_build),
        format_duration(r.cargo_build),
        ratio(r.cargo_build, r.alias_build)
    ));
    text.push_str(&format!(
        "  alias's own cost (cargo's check of the launcher, its stamp check, then the start): {}\n",
        format_duration(r.alias_own)
    ));
    text.push_str(&format!(
        "  the usual alias, `cargo run -p xtask -- build`: {} against {} through the launcher \
         (alternated): the launcher {:.1}x faster\n",
        format_duration(r.run_build),
        format_duration(r.launched_build),
        ratio(r.run_build, r.launched_build)
    ));
    text.push_str(&format!(
        "  target: every command >= {TARGET_RATIO:.0}x faster than cargo's no-op: {}\n",
        if met { "met" } else { "NOT met" }
    ));
    if let (Some(before), Some(after)) = &r.load {
        text.push_str(&format!(
            "  load average before / after: {before} / {after}\n"
        ));
    }
    text
}

/// `/proc/loadavg`'s first three fields, where there is one.
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg")
        .context("no /proc/loadavg")
        .ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_gives_ratios_and_says_whether_the_target_is_met() {
        let ms = Duration::from_millis;
        let text = report(&Report {
            root: Path::new("/w"),
            iterations: 3,
            rows: vec![("build", ms(100), ms(400)), ("lint", ms(100), ms(200))],
            alias_build: ms(350),
            direct_build: ms(100),
            alias_own: ms(240),
            launched_build: ms(60),
            run_build: ms(120),
            cargo_build: ms(400),
            load: (None, None),
        });
        assert!(
            text.contains("  build        100 ms       400 ms           4.0x\n"),
            "{text}"
        );
        assert!(
            text.contains("  lint         100 ms       200 ms           2.0x\n"),
            "{text}"
        );
        assert!(text.contains("alias's own cost"), "{text}");
        assert!(
            text.contains(
                "120 ms against 60 ms through the launcher (alternated): the launcher 2.0x faster"
            ),
            "{text}"
        );
        assert!(text.ends_with("cargo's no-op: NOT met\n"), "{text}");
    }
}

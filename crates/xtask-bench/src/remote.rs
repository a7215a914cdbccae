//! `cargo xtask bench remote`: what the remote cache buys a second machine. On a synthetic
//! workspace (default 500 crates), in one run:
//!
//! 1. cold: `xtask build` with an empty cache and no remote (the baseline);
//! 2. cold + upload: the same on a fresh copy, with a real, empty `turborepo-remote-cache` on
//!    loopback (every lookup misses, every result is uploaded; the run ends when the uploads
//!    are done); each iteration starts its own server;
//! 3. machine B: a fresh copy (no `target/`, empty local cache) restoring everything from the
//!    server, checked to be all hits by the run summary.
//!
//! Targets (issue 3): restore at least 10x faster than the cold build; uploads add less than
//! 10% to the cold build. Cold builds are long, so each is run `iterations` times (default 1;
//! the order of the two cold variants alternates between iterations) and the restore
//! `3 x iterations` times; every sample runs on its own fresh copy.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::servers::{self, RemoteCacheTools, Server};
use crate::synthetic::{self, Shape};
use crate::timing::{format_duration, median, ratio, time_once};

const TOKEN: &str = "bench-token";

#[derive(Debug, Clone)]
pub struct RemoteBenchOptions {
    /// The xtask binary to time (the running one by default).
    pub xtask: PathBuf,
    pub crates: usize,
    /// `build` (cargo, the default) or `size` (the synthetic tree's shell task, turbo's twin).
    pub task: String,
    pub iterations: usize,
    /// Where trees and copies go (default: `target/bench`).
    pub work_dir: PathBuf,
    /// `node` (`--node`; default: `target/ci-tools/bin` or `PATH`).
    pub node: Option<PathBuf>,
    /// `turborepo-remote-cache`'s `dist/cli.js` (`--remote-cache-server`; default: found as
    /// `turborepo-remote-cache` in `target/ci-tools/bin` or on `PATH`).
    pub remote_cache_server: Option<PathBuf>,
    /// Where `.ci/install-tools` puts tools (`target/ci-tools`).
    pub tools_dir: PathBuf,
}

struct Measured {
    cold: Duration,
    cold_upload: Duration,
    restore: Duration,
    tasks: usize,
}

pub fn bench_remote(options: &RemoteBenchOptions) -> anyhow::Result<String> {
    // Every tool first, so a missing one fails before minutes of work.
    let server_tools = RemoteCacheTools::find(
        options.node.as_deref(),
        options.remote_cache_server.as_deref(),
        &options.tools_dir,
    )?;
    let tree = synthetic::generate(
        &options.work_dir.join("trees"),
        &Shape::standard(options.crates),
    )?
    .root;
    let runs = options.work_dir.join("remote-runs");
    let _ = std::fs::remove_dir_all(&runs);
    std::fs::create_dir_all(&runs)
        .with_context(|| format!("failed to create `{}`", runs.display()))?;
    let mut copies = 0usize;
    let mut fresh_copy = |what: &str| -> anyhow::Result<PathBuf> {
        copies += 1;
        crate::runner::fresh_copy(&tree, &runs.join(format!("{copies:02}-{what}")))
    };
    let task_args: Vec<String> = if options.task == "build" {
        vec!["build".into()]
    } else {
        vec!["run".into(), options.task.clone()]
    };
    let xtask = |dir: &Path, server: Option<&Server>, summary: Option<&Path>| {
        let mut command = Command::new(&options.xtask);
        command
            .arg("-C")
            .arg(dir)
            .args(&task_args)
            .env("CI", "true");
        for variable in [
            "TURBO_API",
            "TURBO_TOKEN",
            "TURBO_TEAM",
            "XTASK_REMOTE_CACHE_URL",
            "XTASK_CACHE_DIR",
            "CARGO_TARGET_DIR",
        ] {
            command.env_remove(variable);
        }
        if let Some(server) = server {
            command
                .env("TURBO_API", server.url())
                .env("TURBO_TOKEN", TOKEN)
                .env("TURBO_TEAM", "bench");
        }
        if let Some(summary) = summary {
            command.arg(format!("--summarize={}", summary.display()));
        }
        command
    };

    let mut cold = Vec::new();
    let mut cold_upload = Vec::new();
    let mut restore = Vec::new();
    let mut tasks = 0;
    for iteration in 0..options.iterations.max(1) {
        // A new, empty server per iteration: the uploading build must miss everywhere.
        let server = servers::turborepo_remote_cache(&server_tools, TOKEN, None)?;
        // Alternate which variant goes first, so a warming machine favours neither.
        for upload in [iteration % 2 == 1, iteration % 2 == 0] {
            let dir = fresh_copy(if upload { "cold-upload" } else { "cold" })?;
            let took = time_once(&mut xtask(&dir, upload.then_some(&server), None))?;
            if upload {
                cold_upload.push(took);
            } else {
                cold.push(took);
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        for _ in 0..3 {
            let dir = fresh_copy("machine-b")?;
            let summary = dir.with_extension("summary.json");
            restore.push(time_once(&mut xtask(&dir, Some(&server), Some(&summary)))?);
            tasks = check_all_hits(&summary)?;
            // Keep the disk bounded: machine B's copy is not needed any more.
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let measured = Measured {
        cold: median(&mut cold),
        cold_upload: median(&mut cold_upload),
        restore: median(&mut restore),
        tasks,
    };
    Ok(render(options, &measured))
}

fn check_all_hits(summary: &Path) -> anyhow::Result<usize> {
    let text = std::fs::read_to_string(summary)
        .with_context(|| format!("failed to read `{}`", summary.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("failed to parse `{}`", summary.display()))?;
    let tasks = value["totals"]["tasks"].as_u64().unwrap_or(0);
    let hits = value["totals"]["hits"].as_u64().unwrap_or(0);
    let remote_hits = value["remote"]["hits"].as_u64().unwrap_or(0);
    if tasks == 0 || hits != tasks || remote_hits != tasks {
        bail!(
            "machine B was not fully restored from the remote: {hits} hits ({remote_hits} remote) of {tasks} tasks; see {}",
            summary.display()
        );
    }
    Ok(tasks as usize)
}

fn render(options: &RemoteBenchOptions, m: &Measured) -> String {
    let restore_speedup = ratio(m.cold, m.restore);
    let upload_overhead = (ratio(m.cold_upload, m.cold) - 1.0) * 100.0;
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    format!(
        "bench remote: {} crates, task `{}`, {} tasks, turborepo-remote-cache on loopback\n\
         \n\
         | measurement | median |\n\
         |---|---|\n\
         | cold build, empty cache, no remote | {} |\n\
         | cold build, uploading every result | {} |\n\
         | machine B: full restore from the remote | {} |\n\
         \n\
         restore vs cold build: {restore_speedup:.1}x faster (target >= 10x: {})\n\
         upload overhead on a cold build: {upload_overhead:+.1}% (target < 10%: {})\n",
        options.crates,
        options.task,
        m.tasks,
        format_duration(m.cold),
        format_duration(m.cold_upload),
        format_duration(m.restore),
        verdict(restore_speedup >= 10.0),
        verdict(upload_overhead < 10.0),
    )
}

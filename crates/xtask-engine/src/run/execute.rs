//! The execute stage: runs the work the scheduler hands out (one cargo batch, or one custom
//! task) on its own thread and reports back through a channel, one [`Completion`] per task.

use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use xtask_cache::{LocalCache, OutputFile, PreparedOutputs};
use xtask_model::{CargoTask, PackageIndex, TaskKind};

use super::cache::Cache;
use super::context::Run;
use super::layers::EarlyRestore;
use super::schedule::{Node, Work};
use crate::cargo::{Batch, BatchOutcome, OnBuilt, run_batch};
use crate::plan::cargo_selection;
use crate::process::run_captured;
use crate::task_outputs::collect_outputs;

/// What a task that ran produced.
pub(crate) struct Executed {
    pub success: bool,
    pub log: Vec<u8>,
    pub outputs: Vec<OutputFile>,
    /// The task's own time (within a cargo batch, its own compile and test time).
    pub duration: Duration,
    /// When it started (within a cargo batch: when cargo started compiling its package, else
    /// when the batch started).
    pub started: Instant,
    /// Why a success must not be stored, if so.
    pub not_cacheable: Option<String>,
    pub tests_passed: u64,
    pub tests_failed: u64,
    /// Its outputs' archive, made while the rest of its batch was still building.
    pub prepared: Option<PreparedOutputs>,
}

/// One task's end.
pub(crate) struct Completion {
    pub node: Node,
    pub result: anyhow::Result<Executed>,
}

/// What a finished piece of work reports back.
pub(crate) enum Finished {
    Custom(Completion),
    Batch {
        /// The wall time of the batch's cargo calls.
        took: Duration,
        completions: Vec<Completion>,
        /// The batch itself, for what its tasks were observed to read.
        outcome: Option<BatchOutcome>,
    },
}

/// Starts `work` on a thread of `scope`; its [`Finished`] arrives on `sender`.
pub(crate) fn spawn<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    run: &'scope Run<'scope>,
    cache: &'scope Cache,
    hits: &'scope HashSet<Node>,
    early: &'scope EarlyRestore,
    work: Work,
    sender: Sender<Finished>,
) {
    match work {
        Work::Batch { task, nodes } => {
            let plural = if nodes.len() == 1 { "" } else { "s" };
            run.reporter.running(&format!(
                "cargo {} ({} package{plural})",
                task.name(),
                nodes.len()
            ));
            scope.spawn(move || {
                let packages: Vec<PackageIndex> = nodes
                    .iter()
                    .map(|&node| run.graph.nodes[node].package)
                    .collect();
                // Cargo is always called with the whole selection the keys were planned
                // for, so features unify the same way whatever is a hit.
                let selection = cargo_selection(run.graph, task);
                // A fresh target dir gets the units of what did not change first.
                early.wait(run, cache, task, hits);
                let started = Instant::now();
                let staged = Staged::default();
                let (result, took) = staged.beside(&cache.local, run.options.jobs, |queue| {
                    // Cargo builds the whole selection, hits included; only the batch's own
                    // packages are stored (archiving every hit's binaries again cost 40 s
                    // per one-package miss on coreutils).
                    let stage = |package: PackageIndex, outputs: Vec<OutputFile>| {
                        if packages.contains(&package) {
                            queue(package, outputs);
                        }
                    };
                    let stores = task == CargoTask::Build && storable(run, &nodes);
                    let result = run_batch(&Batch {
                        workspace: run.workspace,
                        task,
                        selection: &selection,
                        wanted: &packages,
                        settings: run.settings,
                        jobs: run.options.jobs,
                        reporter: run.reporter,
                        on_built: stores.then_some(&stage as OnBuilt<'_>),
                    });
                    // Cargo's time: archives still being made are waited for after it.
                    (result, started.elapsed())
                });
                let mut finished = batch_finished(nodes, result, started, took);
                staged.hand_to(&mut finished, run);
                let _ = sender.send(finished);
            });
        }
        Work::Custom(node) => {
            run.reporter.running(&run.label(node));
            scope.spawn(move || {
                let result = run_custom(run, node);
                let _ = sender.send(Finished::Custom(Completion { node, result }));
            });
        }
    }
}

/// How many threads archive a batch's outputs while cargo builds: cargo keeps `jobs` cores
/// busy, and compressing is secondary work that must not crowd it out (one thread per package
/// would compress a hundred archives at once on a large workspace). Once cargo is done, the
/// archivers grow to one per cargo job (its cores are free).
fn archivers_beside_cargo(jobs: usize) -> usize {
    (jobs / 2).clamp(1, 4)
}

/// Whether any task of the batch will be stored (only then are outputs archived ahead).
fn storable(run: &Run<'_>, nodes: &[Node]) -> bool {
    !run.options.no_cache && nodes.iter().any(|&node| run.graph.nodes[node].def.cache)
}

/// Output archives made while a batch builds, by package.
#[derive(Default)]
struct Staged(Mutex<HashMap<PackageIndex, PreparedOutputs>>);

impl Staged {
    /// Runs `build` (a cargo call) with archivers beside it ([`archivers_beside_cargo`]), fed
    /// through the function `build` is given as packages finish; returns once every queued
    /// archive is made.
    fn beside<R>(
        &self,
        cache: &LocalCache,
        jobs: usize,
        build: impl FnOnce(OnBuilt<'_>) -> R,
    ) -> R {
        let (queue, queued) = std::sync::mpsc::channel();
        let queued = Mutex::new(queued);
        let archive_queued = || {
            while let Ok((package, outputs)) = xtask_util::receive(&queued) {
                self.prepare(cache, package, outputs);
            }
        };
        std::thread::scope(|archivers| {
            let beside_cargo = archivers_beside_cargo(jobs);
            for _ in 0..beside_cargo {
                archivers.spawn(archive_queued);
            }
            let send = move |package: PackageIndex, outputs: Vec<OutputFile>| {
                let _ = queue.send((package, outputs));
            };
            let result = build(&send);
            drop(send);
            // Cargo is done: its cores take the rest of the queue.
            for _ in beside_cargo..jobs {
                archivers.spawn(archive_queued);
            }
            result
        })
    }

    fn prepare(&self, cache: &LocalCache, package: PackageIndex, outputs: Vec<OutputFile>) {
        if let Some(prepared) = cache.prepare_outputs(outputs)
            && let Ok(mut staged) = self.0.lock()
        {
            staged.insert(package, prepared);
        }
    }

    /// Gives each completed task its package's archive.
    fn hand_to(self, finished: &mut Finished, run: &Run<'_>) {
        let Finished::Batch { completions, .. } = finished else {
            return;
        };
        let Ok(mut staged) = self.0.into_inner() else {
            return;
        };
        for completion in completions {
            let package = run.graph.nodes[completion.node].package;
            if let Ok(executed) = &mut completion.result {
                executed.prepared = staged.remove(&package);
            }
        }
    }
}

fn batch_finished(
    nodes: Vec<Node>,
    result: anyhow::Result<BatchOutcome>,
    started: Instant,
    took: Duration,
) -> Finished {
    match result {
        Ok(mut outcome) => {
            let results = std::mem::take(&mut outcome.results);
            let completions = nodes
                .into_iter()
                .zip(results)
                .map(|(node, r)| Completion {
                    node,
                    result: Ok(Executed {
                        success: r.success,
                        log: r.log,
                        outputs: r.outputs,
                        duration: r.duration,
                        started: r.started.unwrap_or(started),
                        not_cacheable: r.not_cacheable,
                        tests_passed: r.tests_passed,
                        tests_failed: r.tests_failed,
                        prepared: None,
                    }),
                })
                .collect();
            Finished::Batch {
                took,
                completions,
                outcome: Some(outcome),
            }
        }
        Err(error) => {
            let message = format!("{error:#}");
            let completions = nodes
                .into_iter()
                .map(|node| Completion {
                    node,
                    result: Err(anyhow::anyhow!("{message}")),
                })
                .collect();
            Finished::Batch {
                took,
                completions,
                outcome: None,
            }
        }
    }
}

fn run_custom(run: &Run<'_>, node: Node) -> anyhow::Result<Executed> {
    let started = Instant::now();
    let task = &run.graph.nodes[node];
    let package = &run.workspace.packages[task.package];
    let TaskKind::Custom { program, args } = &task.def.kind else {
        anyhow::bail!("internal error: {} is not a custom task", run.label(node));
    };
    // A program with a slash is relative to the package; a bare name is looked up in PATH.
    let program_path = if program.contains('/') {
        package.dir.join(program)
    } else {
        PathBuf::from(program)
    };
    let mut command = std::process::Command::new(&program_path);
    command
        .args(args)
        .env("XTASK_TASK_HASH", &run.planned[node].hash)
        .env("XTASK_PACKAGE", &package.name);
    let captured = run_captured(
        command,
        &format!("`{program}` for {}", run.label(node)),
        &package.dir,
    )?;
    let mut log = captured.output;
    if !captured.success {
        log.extend_from_slice(
            format!(
                "`{program}` exited with {}\n",
                exit_description(captured.code)
            )
            .as_bytes(),
        );
    }
    let outputs = if captured.success {
        collect_outputs(&run.workspace.root, package, &task.def.outputs)?
    } else {
        Vec::new()
    };
    Ok(Executed {
        success: captured.success,
        log,
        outputs,
        duration: started.elapsed(),
        started,
        not_cacheable: None,
        tests_passed: 0,
        tests_failed: 0,
        prepared: None,
    })
}

fn exit_description(code: Option<i32>) -> String {
    match code {
        Some(code) => format!("exit code {code}"),
        None => "a signal".to_string(),
    }
}

//! `why PKG:TASK`: explains whether a task would run, and if so which inputs changed since
//! its last cached run, file by file, following changed dependencies to their own causes.
//! With `--remote`, the baseline is the last upload of each task to the remote cache (its key
//! manifest is stored beside the artifacts): "why did CI miss?" / "why do I miss CI's cache?".

use xtask_cache::LocalCache;
use xtask_hash::{KeyChange, ObservedInputs, TaskKey, diff_keys};
use xtask_model::TaskName;
use xtask_remote::RemoteCache;

use crate::error::CliError;
use crate::load::Location;
use crate::outcome::{CliResult, Outcome, job_count};
use crate::run::{Cache, RunOptions, prepare};

/// `cargo xtask why PACKAGE:TASK [--remote]`.
#[derive(Debug, Clone)]
pub struct WhyOptions {
    pub location: Location,
    /// `PACKAGE:TASK`, e.g. `api:build`.
    pub task_id: String,
    /// Compare with the last upload to the remote cache instead of the last local run.
    pub remote: bool,
    /// The packages the run to explain selected (`-p`); empty: every package that has the
    /// task. A cargo task's key holds the selection (features unify across it), so a `-p` run
    /// is explained with the same `-p`.
    pub packages: Vec<String>,
    /// The run to explain used the release profile (part of a cargo task's key).
    pub release: bool,
}

/// `cargo xtask why`: the explanation, indented by dependency depth, on stdout.
pub fn why(options: &WhyOptions) -> CliResult {
    let explanation = explain_task(options, job_count(None))?;
    Ok(Outcome::print(explanation.render()))
}

/// The explanation for one task; `dependencies` explains changed upstream tasks.
#[derive(Debug)]
pub struct Explanation {
    pub task_id: String,
    /// Compared with the remote cache's last upload instead of the local last run.
    pub remote: bool,
    pub hash: String,
    pub verdict: Verdict,
    pub dependencies: Vec<Explanation>,
}

#[derive(Debug)]
pub enum Verdict {
    /// An entry for the current hash exists: it would be restored.
    Hit,
    /// Never cached (or the record of the last run is gone).
    NoPreviousRun,
    /// Changed since the last cached run.
    Changed {
        previous_hash: String,
        changes: Vec<String>,
    },
    /// The task has `cache = false`.
    NotCached,
}

/// What a task is compared with.
enum Baseline<'a> {
    Local(&'a LocalCache),
    Remote(&'a RemoteCache),
}

/// The baseline's verdict before diffing.
enum Previous {
    /// The baseline has the current hash.
    Same,
    /// The baseline has the current hash, but something its task was observed to read
    /// (beyond the key) changed since.
    ObservedChanged(String),
    None,
    Key {
        hash: String,
        key: Box<TaskKey>,
    },
}

impl Baseline<'_> {
    fn previous(
        &self,
        workspace_root: &std::path::Path,
        package: &str,
        task: &str,
        hash: &str,
        current: &TaskKey,
    ) -> anyhow::Result<Previous> {
        let same = |manifest: &serde_json::Value| match ObservedInputs::from_manifest(manifest)
            .first_mismatch(workspace_root)
        {
            None => Previous::Same,
            Some(change) => Previous::ObservedChanged(change.to_string()),
        };
        match self {
            Baseline::Local(cache) => {
                if let Ok(Some(meta)) = cache.lookup(hash) {
                    return Ok(same(&meta.manifest));
                }
                Ok(closest_recent(cache, package, task, current)?)
            }
            Baseline::Remote(remote) => {
                let Some(last) = remote.last_run(package, task).map_err(anyhow::Error::msg)? else {
                    return Ok(Previous::None);
                };
                if last.task_hash == hash {
                    return Ok(same(&last.manifest));
                }
                let key = TaskKey::from_manifest(&last.manifest).map_err(|error| {
                    anyhow::anyhow!(
                        "the remote cache's key manifest of {package}:{task} is unreadable: {error}"
                    )
                })?;
                Ok(Previous::Key {
                    hash: last.task_hash,
                    key: Box::new(key),
                })
            }
        }
    }
}

/// The baseline of a local comparison: the closest recent cached run (see
/// [`crate::recent::closest_recent`]).
fn closest_recent(
    cache: &LocalCache,
    package: &str,
    task: &str,
    current: &TaskKey,
) -> anyhow::Result<Previous> {
    Ok(
        match crate::recent::closest_recent(cache, package, task, current)? {
            Some((hash, key)) => Previous::Key {
                hash,
                key: Box::new(key),
            },
            None => Previous::None,
        },
    )
}

/// Why `options.task_id` would (not) run, planned with `jobs` threads as the run it is about
/// was planned (its `-p` selection and profile).
pub fn explain_task(options: &WhyOptions, jobs: usize) -> anyhow::Result<Explanation> {
    let task_id = options.task_id.as_str();
    let remote = options.remote;
    let (package, task) = task_id.split_once(':').ok_or_else(|| {
        CliError::config(format!(
            "expected PACKAGE:TASK, e.g. `api:build`, got `{task_id}`"
        ))
    })?;
    let task = TaskName::new(task);
    // Planned as `cargo xtask TASK [-p ...] [--release]` plans it: the selection is part of a
    // cargo task's key (features unify across it), and so is the profile.
    let run_options = RunOptions {
        packages: options.packages.clone(),
        release: options.release,
        no_cache: true,
        jobs,
        ..RunOptions::new(options.location.clone(), vec![task.clone()])
    };
    let prepared = prepare(&run_options)?;
    prepared
        .workspace
        .require_package(package)
        .map_err(|error| CliError::config(error.to_string()))?;
    if !options.packages.is_empty() && !options.packages.iter().any(|p| p == package) {
        return Err(CliError::config(format!(
            "`{package}` is not among the selected packages: add `-p {package}`"
        ))
        .into());
    }
    let cache = Cache::open(&prepared.workspace)?;
    let node = prepared
        .graph
        .nodes
        .iter()
        .position(|n| {
            n.requested && prepared.workspace.packages[n.package].name == package && n.task == task
        })
        .ok_or_else(|| CliError::config(format!("package `{package}` has no task `{task}`")))?;
    if remote {
        let remote = cache.remote.as_ref().ok_or_else(|| {
            CliError::config(
                "no remote cache is configured: set TURBO_API (or XTASK_REMOTE_CACHE_URL), or \
                 `url` in [workspace.metadata.xtask.cache.remote]",
            )
        })?;
        explain(&prepared, &Baseline::Remote(remote), node, 0)
    } else {
        explain(&prepared, &Baseline::Local(&cache.local), node, 0)
    }
}

fn explain(
    prepared: &crate::run::Prepared,
    baseline: &Baseline<'_>,
    node: usize,
    depth: usize,
) -> anyhow::Result<Explanation> {
    let workspace = &prepared.workspace;
    let graph = &prepared.graph;
    let n = &graph.nodes[node];
    let planned = &prepared.planned[node];
    let task_id = graph.label(workspace, node);
    let mut explanation = Explanation {
        task_id,
        remote: matches!(baseline, Baseline::Remote(_)),
        hash: planned.hash.clone(),
        verdict: Verdict::NoPreviousRun,
        dependencies: Vec::new(),
    };
    if !n.def.cache {
        explanation.verdict = Verdict::NotCached;
        return Ok(explanation);
    }
    let package = &workspace.packages[n.package].name;
    let previous = baseline.previous(
        &workspace.root,
        package,
        &n.task,
        &planned.hash,
        &planned.key,
    )?;
    let (previous_hash, previous) = match previous {
        Previous::Same => {
            explanation.verdict = Verdict::Hit;
            return Ok(explanation);
        }
        Previous::ObservedChanged(change) => {
            explanation.verdict = Verdict::Changed {
                previous_hash: planned.hash.clone(),
                changes: vec![change],
            };
            return Ok(explanation);
        }
        Previous::None => return Ok(explanation),
        Previous::Key { hash, key } => (hash, key),
    };
    let changes = diff_keys(&previous, &planned.key);
    if depth < 8 {
        for change in &changes {
            if let KeyChange::DependencyTaskChanged(task) = change
                && let Some(dep) = n
                    .dependencies
                    .iter()
                    .copied()
                    .find(|&d| &graph.label(workspace, d) == task)
            {
                explanation
                    .dependencies
                    .push(explain(prepared, baseline, dep, depth + 1)?);
            }
        }
    }
    explanation.verdict = Verdict::Changed {
        previous_hash,
        changes: changes.iter().map(|c| c.to_string()).collect(),
    };
    Ok(explanation)
}

impl Explanation {
    /// Human-readable, indented by dependency depth.
    pub fn render(&self) -> String {
        let mut text = String::new();
        self.render_into(&mut text, 0);
        text
    }

    fn render_into(&self, text: &mut String, depth: usize) {
        let indent = "  ".repeat(depth);
        let short = &self.hash[..12.min(self.hash.len())];
        let (hit, none, changed) = if self.remote {
            (
                "the remote cache's last upload has this hash: a remote cache hit",
                "no upload of this task to the remote cache to compare with",
                "differs from the last upload to the remote cache",
            )
        } else {
            (
                "cache hit, it will not run",
                "cache miss, no earlier cached run to compare with",
                "cache miss, changed since the last cached run",
            )
        };
        match &self.verdict {
            Verdict::Hit => text.push_str(&format!("{indent}{} ({short}): {hit}\n", self.task_id)),
            Verdict::NotCached => text.push_str(&format!(
                "{indent}{}: `cache = false`, it always runs\n",
                self.task_id
            )),
            Verdict::NoPreviousRun => {
                text.push_str(&format!("{indent}{} ({short}): {none}\n", self.task_id))
            }
            Verdict::Changed {
                previous_hash,
                changes,
            } => {
                text.push_str(&format!(
                    "{indent}{} ({short}): {changed} ({}):\n",
                    self.task_id,
                    &previous_hash[..12.min(previous_hash.len())]
                ));
                for change in changes {
                    text.push_str(&format!("{indent}  - {change}\n"));
                }
            }
        }
        for dep in &self.dependencies {
            dep.render_into(text, depth + 1);
        }
    }
}

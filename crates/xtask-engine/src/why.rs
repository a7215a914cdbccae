//! `why PKG:TASK`: explains whether a task would run, and if so which inputs changed since
//! its last cached run, file by file, following changed dependencies to their own causes.

use xtask_hash::{KeyChange, TaskKey, diff_keys};

use crate::Location;
use crate::error::UserError;
use crate::run::{RunOptions, open_cache, prepare};

/// The explanation for one task; `dependencies` explains changed upstream tasks.
#[derive(Debug)]
pub struct Explanation {
    pub task_id: String,
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

pub fn why(location: &Location, task_id: &str, jobs: usize) -> anyhow::Result<Explanation> {
    let (package, task) = task_id.split_once(':').ok_or_else(|| {
        UserError(format!(
            "expected PACKAGE:TASK, e.g. `api:build`, got `{task_id}`"
        ))
    })?;
    let options = RunOptions {
        location: location.clone(),
        tasks: vec![task.to_string()],
        packages: vec![package.to_string()],
        affected: None,
        force: false,
        no_cache: true,
        dry_run: None,
        summarize: None,
        jobs,
        release: false,
        target: None,
    };
    let prepared = prepare(&options)?;
    let cache = open_cache(&prepared.workspace);
    let node = prepared
        .graph
        .nodes
        .iter()
        .position(|n| {
            n.requested && prepared.workspace.packages[n.package].name == package && n.task == task
        })
        .ok_or_else(|| UserError(format!("package `{package}` has no task `{task}`")))?;
    explain(&prepared, &cache, node, 0)
}

fn explain(
    prepared: &crate::run::Prepared,
    cache: &xtask_cache::LocalCache,
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
        hash: planned.hash.clone(),
        verdict: Verdict::NoPreviousRun,
        dependencies: Vec::new(),
    };
    if !n.def.cache {
        explanation.verdict = Verdict::NotCached;
        return Ok(explanation);
    }
    if matches!(cache.lookup(&planned.hash), Ok(Some(_))) {
        explanation.verdict = Verdict::Hit;
        return Ok(explanation);
    }
    let package = &workspace.packages[n.package].name;
    let Some(previous_hash) = cache.last(package, &n.task)? else {
        return Ok(explanation);
    };
    let previous = match cache.lookup(&previous_hash) {
        Ok(Some(meta)) => TaskKey::from_manifest(&meta.manifest).ok(),
        _ => None,
    };
    let Some(previous) = previous else {
        return Ok(explanation);
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
                    .push(explain(prepared, cache, dep, depth + 1)?);
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
        match &self.verdict {
            Verdict::Hit => text.push_str(&format!(
                "{indent}{} ({short}): cache hit, it will not run\n",
                self.task_id
            )),
            Verdict::NotCached => text.push_str(&format!(
                "{indent}{}: `cache = false`, it always runs\n",
                self.task_id
            )),
            Verdict::NoPreviousRun => text.push_str(&format!(
                "{indent}{} ({short}): cache miss, no earlier cached run to compare with\n",
                self.task_id
            )),
            Verdict::Changed {
                previous_hash,
                changes,
            } => {
                text.push_str(&format!(
                    "{indent}{} ({short}): cache miss, changed since the last cached run ({}):\n",
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

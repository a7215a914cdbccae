//! The state file of a release being executed (`target/release-state/<base commit>.json`): the
//! plan and every step done so far, written atomically after each step, so a rerun after an
//! interruption continues where it stopped and never repeats a commit, tag, publish or image
//! push. Secrets never enter it (registry credentials come from the environment at push time).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use xtask_util::write_atomically;

use crate::plan::Plan;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub plan: Plan,
    /// The steps done, in order, each with what it produced.
    pub done: Vec<DoneStep>,
    pub release_commit: Option<String>,
    /// Each released app's image, by app: recorded when built, completed when pushed.
    #[serde(default)]
    pub images: BTreeMap<String, ImageState>,
    pub complete: bool,
}

/// A released app's image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageState {
    pub tag: String,
    /// `sha256:<hex>` of the image manifest, as built.
    pub digest: String,
    /// `registry/name:tag` once pushed (the registry confirmed `digest` for it).
    #[serde(default)]
    pub pushed: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoneStep {
    pub step: String,
    pub detail: String,
}

/// A state on disk.
#[derive(Debug)]
pub struct StateFile {
    pub path: PathBuf,
    pub state: State,
}

pub fn state_dir(target_dir: &Path) -> PathBuf {
    target_dir.join("release-state")
}

impl StateFile {
    pub fn new(target_dir: &Path, plan: Plan) -> StateFile {
        let name = format!(
            "{}.json",
            &plan.base_commit[..plan.base_commit.len().min(12)]
        );
        StateFile {
            path: state_dir(target_dir).join(name),
            state: State {
                plan,
                done: Vec::new(),
                release_commit: None,
                images: BTreeMap::new(),
                complete: false,
            },
        }
    }

    /// The unfinished release in `target/release-state/`, if any (an error if several).
    pub fn find_incomplete(target_dir: &Path) -> anyhow::Result<Option<StateFile>> {
        let dir = state_dir(target_dir);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(None);
        };
        let mut found = Vec::new();
        for entry in entries {
            let path = entry
                .with_context(|| format!("failed to read `{}`", dir.display()))?
                .path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("failed to read `{}`", path.display()))?;
            let state: State = serde_json::from_str(&text).with_context(|| {
                format!(
                    "`{}` is not a release state file; delete it to start over",
                    path.display()
                )
            })?;
            if !state.complete {
                found.push(StateFile { path, state });
            }
        }
        if found.len() > 1 {
            anyhow::bail!(
                "several unfinished releases in `{}`; keep the one to resume and delete the others",
                dir.display()
            );
        }
        Ok(found.pop())
    }

    pub fn is_done(&self, step: &str) -> bool {
        self.state.done.iter().any(|d| d.step == step)
    }

    /// Records a finished step, durably, before anything else happens.
    pub fn record(&mut self, step: &str, detail: String) -> anyhow::Result<()> {
        self.state.done.push(DoneStep {
            step: step.to_string(),
            detail,
        });
        self.save()
    }

    pub fn save(&self) -> anyhow::Result<()> {
        let mut text =
            serde_json::to_vec_pretty(&self.state).context("failed to encode the release state")?;
        text.push(b'\n');
        Ok(write_atomically(&self.path, &text)?)
    }
}

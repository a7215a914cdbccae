//! `cargo xtask deploy ENV [--dry-run]`: renders the environment's overlay with the built
//! images pinned by digest into `target/xtask/deploy/<env>/manifests.yaml`, prints the plan
//! (apply, wait for every rollout, roll back a failed one), and without `--dry-run` runs it
//! with `kubectl` (the current context of `KUBECONFIG`; `XTASK_KUBECTL` names another program).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;
use xtask_engine::report::Reporter;
use xtask_engine::{Location, UserError};

use crate::k8s::dev_secrets_file;
use crate::model::{Environment, Project};
use crate::yaml::{file, map, seq, str};
use xtask_engine::generated::{SyncMode, relative, sync, write_atomically};
use xtask_engine::image_record::{ImageRecord, read_record, record_path};

/// How long `kubectl rollout status` waits for each Deployment.
pub const ROLLOUT_TIMEOUT: &str = "300s";

#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub location: Location,
    pub environment: Environment,
    pub dry_run: bool,
}

/// The image an app deploys with, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedImage {
    pub app: String,
    pub reference: String,
    /// Where the reference comes from, for the plan.
    pub source: String,
}

/// What `deploy` does, rendered before anything runs.
#[derive(Debug, Clone)]
pub struct DeployPlan {
    pub environment: Environment,
    pub namespace: String,
    pub images: Vec<PlannedImage>,
    /// Workspace-relative path of the rendered manifests.
    pub manifests: String,
    /// `Kind/name` of every rendered object, in order.
    pub objects: Vec<String>,
    /// The Deployments to wait for.
    pub deployments: Vec<String>,
}

impl DeployPlan {
    /// `kubectl` arguments of the apply step.
    pub fn apply_args(&self) -> Vec<String> {
        [
            "apply",
            "--server-side",
            "--field-manager=cargo-xtask",
            "-f",
            &self.manifests,
        ]
        .map(String::from)
        .to_vec()
    }

    pub fn rollout_status_args(&self, deployment: &str) -> Vec<String> {
        [
            "rollout",
            "status",
            &format!("deployment/{deployment}"),
            "--namespace",
            &self.namespace,
            &format!("--timeout={ROLLOUT_TIMEOUT}"),
        ]
        .map(String::from)
        .to_vec()
    }

    pub fn rollout_undo_args(&self, deployment: &str) -> Vec<String> {
        [
            "rollout",
            "undo",
            &format!("deployment/{deployment}"),
            "--namespace",
            &self.namespace,
        ]
        .map(String::from)
        .to_vec()
    }

    /// The plan as text (stdout of `deploy --dry-run`, and the first thing `deploy` prints).
    pub fn render(&self) -> String {
        let mut text = format!(
            "deploy plan: {} (namespace {}, the current kubectl context)\n\nimages:\n",
            self.environment.name(),
            self.namespace
        );
        let width = self.images.iter().map(|i| i.app.len()).max().unwrap_or(0);
        for image in &self.images {
            text.push_str(&format!(
                "  {:width$}  {}\n  {:width$}    ({})\n",
                image.app, image.reference, "", image.source
            ));
        }
        text.push_str(&format!(
            "\nmanifests: {} ({} objects)\n",
            self.manifests,
            self.objects.len()
        ));
        for object in &self.objects {
            text.push_str(&format!("  {object}\n"));
        }
        text.push_str("\nsteps:\n");
        let mut step = 1;
        text.push_str(&format!(
            "  {step}. kubectl {}\n",
            self.apply_args().join(" ")
        ));
        for deployment in &self.deployments {
            step += 1;
            text.push_str(&format!(
                "  {step}. kubectl {}\n",
                self.rollout_status_args(deployment).join(" ")
            ));
        }
        text.push_str("  when a rollout fails:\n");
        for deployment in &self.deployments {
            text.push_str(&format!(
                "     kubectl {}   (if deployment/{deployment} failed)\n",
                self.rollout_undo_args(deployment).join(" ")
            ));
        }
        text.push_str("     then exit with code 1\n");
        text
    }
}

/// The result of `deploy`: the plan, and (unless `--dry-run`) whether it succeeded.
#[derive(Debug, Clone)]
pub struct DeployOutcome {
    pub plan: DeployPlan,
    pub success: bool,
}

/// The kubectl program: `XTASK_KUBECTL`, else `kubectl` from `PATH`.
fn kubectl_program() -> PathBuf {
    std::env::var_os("XTASK_KUBECTL")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("kubectl"), PathBuf::from)
}

/// Plans, and unless `dry_run`, runs the deployment. The plan is printed by the caller.
pub fn deploy(options: &DeployOptions, reporter: &Reporter) -> anyhow::Result<DeployOutcome> {
    let workspace = xtask_engine::load_workspace(&options.location)?;
    let project = crate::model::project(&workspace)?;
    if project.apps.is_empty() {
        return Err(UserError(
            "nothing to deploy: no package declares `[package.metadata.xtask.app]`".to_string(),
        )
        .into());
    }
    // Never deploy manifests that do not match the workspace.
    let drift = sync(&workspace.root, &crate::k8s_set(&project), SyncMode::Check)?;
    if !drift.is_clean() {
        return Err(UserError(format!(
            "`k8s/` is out of date ({}): run `cargo xtask k8s` and commit the result",
            drift
                .changed
                .iter()
                .chain(&drift.stale)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into());
    }
    let plan = plan(
        &workspace.root,
        &workspace.target_dir,
        &project,
        options.environment,
    )?;
    if options.dry_run {
        return Ok(DeployOutcome {
            plan,
            success: true,
        });
    }
    xtask_engine::output::write_stdout(&plan.render())?;
    let success = execute(&workspace.root, &plan, reporter)?;
    Ok(DeployOutcome { plan, success })
}

/// Renders the overlay with the image pins; writes `target/xtask/deploy/<env>/`.
pub fn plan(
    root: &Path,
    target_dir: &Path,
    project: &Project,
    environment: Environment,
) -> anyhow::Result<DeployPlan> {
    let overlay = root.join("k8s/overlays").join(environment.name());
    if environment == Environment::Dev {
        let missing: Vec<String> = project
            .apps
            .iter()
            .filter(|a| !a.config.secrets.is_empty())
            .filter(|a| !overlay.join(dev_secrets_file(&a.name)).is_file())
            .map(|a| {
                format!(
                    "`{}` (KEY=value lines for {})",
                    overlay.join(dev_secrets_file(&a.name)).display(),
                    a.config.secrets.join(", ")
                )
            })
            .collect();
        if !missing.is_empty() {
            return Err(UserError(format!(
                "the dev Secrets are generated from git-ignored files; create {}",
                missing.join(" and ")
            ))
            .into());
        }
    }
    let mut images = Vec::new();
    let mut pins = Vec::new();
    for app in &project.apps {
        let record = read_record(target_dir, &app.name)?;
        let shown = relative(root, &record_path(target_dir, &app.name));
        images.push(match record {
            Some(ImageRecord {
                repository,
                digest,
                pushed: true,
                ..
            }) => {
                pins.push(map([
                    ("name", str(project.image_name(app))),
                    ("newName", str(&repository)),
                    ("digest", str(&digest)),
                ]));
                PlannedImage {
                    app: app.name.clone(),
                    reference: format!("{repository}@{digest}"),
                    source: format!("pinned by digest from {shown}"),
                }
            }
            Some(_) => PlannedImage {
                app: app.name.clone(),
                reference: project.image(app),
                source: format!("{shown} says the image was not pushed: the committed tag"),
            },
            None => PlannedImage {
                app: app.name.clone(),
                reference: project.image(app),
                source: format!("no {shown}: the committed tag"),
            },
        });
    }
    let dir = target_dir.join("xtask/deploy").join(environment.name());
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let overlay = std::fs::canonicalize(&overlay)
        .with_context(|| format!("failed to open `{}`", overlay.display()))?;
    let canonical_dir = std::fs::canonicalize(&dir)
        .with_context(|| format!("failed to open `{}`", dir.display()))?;
    // Kustomize accepts only relative resource paths.
    let mut kustomization = map([
        ("apiVersion", str("kustomize.config.k8s.io/v1beta1")),
        ("kind", str("Kustomization")),
        ("resources", seq([str(path_from(&canonical_dir, &overlay))])),
    ]);
    if !pins.is_empty() {
        crate::yaml::insert(&mut kustomization, "images", seq(pins));
    }
    write_atomically(
        &dir.join("kustomization.yaml"),
        file(
            &[format!(
                "generated by `cargo xtask deploy {}`: the overlay with the built images pinned",
                environment.name()
            )],
            &[kustomization],
        )
        .as_bytes(),
    )?;
    let output = Command::new(kubectl_program())
        .arg("kustomize")
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .with_context(|| {
            format!(
                "failed to run `{} kustomize` (is kubectl installed?)",
                kubectl_program().display()
            )
        })?;
    anyhow::ensure!(
        output.status.success(),
        "`kubectl kustomize {}` failed: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let manifests =
        String::from_utf8(output.stdout).context("`kubectl kustomize` printed non-UTF-8")?;
    let manifests_path = dir.join("manifests.yaml");
    write_atomically(&manifests_path, manifests.as_bytes())?;
    let mut objects = Vec::new();
    let mut deployments = Vec::new();
    for document in crate::yaml::parse_documents(&manifests).with_context(|| {
        format!(
            "`kubectl kustomize` printed invalid YAML ({})",
            manifests_path.display()
        )
    })? {
        let kind = document
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("?")
            .to_string();
        let name = document
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .unwrap_or("?")
            .to_string();
        if kind == "Deployment" {
            deployments.push(name.clone());
        }
        objects.push(format!("{kind}/{name}"));
    }
    Ok(DeployPlan {
        environment,
        namespace: project.namespace_of(environment),
        images,
        manifests: relative(root, &manifests_path),
        objects,
        deployments,
    })
}

/// Runs the plan: apply, wait for each rollout, undo the failed ones. `Ok(false)` when a step
/// failed (after rolling back).
fn execute(root: &Path, plan: &DeployPlan, reporter: &Reporter) -> anyhow::Result<bool> {
    let kubectl = |args: &[String]| -> anyhow::Result<bool> {
        reporter.line(&format!("==> kubectl {}", args.join(" ")));
        let output = Command::new(kubectl_program())
            .args(args)
            .current_dir(root)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("failed to run `{}`", kubectl_program().display()))?;
        for line in String::from_utf8_lossy(&output.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&output.stderr).lines())
        {
            reporter.line(&format!("    {line}"));
        }
        Ok(output.status.success())
    };
    if !kubectl(&plan.apply_args())? {
        reporter.line(&format!(
            "deploy {}: apply failed; nothing to roll back",
            plan.environment.name()
        ));
        return Ok(false);
    }
    let mut failed = Vec::new();
    for deployment in &plan.deployments {
        if !kubectl(&plan.rollout_status_args(deployment))? {
            failed.push(deployment.clone());
        }
    }
    if failed.is_empty() {
        reporter.line(&format!(
            "deploy {}: every rollout finished",
            plan.environment.name()
        ));
        return Ok(true);
    }
    for deployment in &failed {
        reporter.line(&format!(
            "rollout of deployment/{deployment} failed: rolling back"
        ));
        if kubectl(&plan.rollout_undo_args(deployment))? {
            kubectl(&plan.rollout_status_args(deployment))?;
        } else {
            reporter.warning(&format!(
                "`kubectl rollout undo deployment/{deployment}` failed"
            ));
        }
    }
    reporter.line(&format!(
        "deploy {}: failed ({} rolled back)",
        plan.environment.name(),
        failed.join(", ")
    ));
    Ok(false)
}

/// The relative path from directory `from` to `to` (both absolute and canonical).
fn path_from(from: &Path, to: &Path) -> String {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_string(); from.len() - common];
    parts.extend(
        to[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

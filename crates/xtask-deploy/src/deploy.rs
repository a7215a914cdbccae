//! `cargo xtask deploy ENV [--dry-run]`: renders the environment's overlay with the built
//! images pinned by digest into `target/xtask/deploy/<env>/manifests.yaml`, prints the plan
//! (apply, wait for every rollout, roll back a failed one, smoke-check every app through
//! `kubectl port-forward` and roll everything back when that fails), and without `--dry-run`
//! runs it with `kubectl` (the current context of `KUBECONFIG`; `XTASK_KUBECTL` names another
//! program). `deploy ENV --rollback` undoes the last rollout of every app.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;
use xtask_engine::report::Reporter;
use xtask_engine::{Location, UserError};
use xtask_util::write_atomically;

use xtask_smoke::SmokeSettings;

use crate::k8s::dev_secrets_file;
use crate::project::{Environment, Project};
use crate::smoke::{SmokeWhere, check_apps};
use crate::yaml::{file, map, seq, str};
use xtask_engine::generated::{SyncMode, relative, sync};
use xtask_engine::image_record::{ImageRecord, read_record, record_path};

/// How long `kubectl rollout status` waits for each Deployment.
pub const ROLLOUT_TIMEOUT: &str = "300s";

#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub location: Location,
    pub environment: Environment,
    pub dry_run: bool,
    /// Timeouts of the smoke check after the rollouts.
    pub smoke: SmokeSettings,
}

/// Options of `cargo xtask deploy ENV --rollback`.
#[derive(Debug, Clone)]
pub struct RollbackOptions {
    pub location: Location,
    pub environment: Environment,
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
        step += 1;
        text.push_str(&format!(
            "  {step}. cargo xtask smoke --env {} (health, readiness, metrics and each app's declared requests, through kubectl port-forward)\n",
            self.environment.name()
        ));
        text.push_str("  when the smoke check fails:\n");
        for deployment in &self.deployments {
            text.push_str(&format!(
                "     kubectl {}\n",
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
pub(crate) fn kubectl_program() -> PathBuf {
    std::env::var_os("XTASK_KUBECTL")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("kubectl"), PathBuf::from)
}

/// Plans, and unless `dry_run`, runs the deployment. The plan is printed by the caller.
pub fn deploy(options: &DeployOptions, reporter: &Reporter) -> anyhow::Result<DeployOutcome> {
    let workspace = xtask_engine::load_workspace(&options.location)?;
    let project = crate::project::project(&workspace)?;
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
    let success = execute(&workspace.root, &project, &plan, &options.smoke, reporter)?;
    Ok(DeployOutcome { plan, success })
}

/// `cargo xtask deploy ENV --rollback`: `kubectl rollout undo` of every app's Deployment in
/// the environment's namespace, each awaited. `Ok(false)` when one failed.
pub fn rollback(options: &RollbackOptions, reporter: &Reporter) -> anyhow::Result<bool> {
    let workspace = xtask_engine::load_workspace(&options.location)?;
    let project = crate::project::project(&workspace)?;
    if project.apps.is_empty() {
        return Err(UserError(
            "nothing to roll back: no package declares `[package.metadata.xtask.app]`".to_string(),
        )
        .into());
    }
    let plan = DeployPlan {
        environment: options.environment,
        namespace: project.namespace_of(options.environment),
        images: Vec::new(),
        manifests: String::new(),
        objects: Vec::new(),
        deployments: project.apps.iter().map(|a| a.name.clone()).collect(),
    };
    let kubectl = Kubectl {
        root: &workspace.root,
        reporter,
    };
    let failed = roll_back(&kubectl, &plan, &plan.deployments)?;
    if failed.is_empty() {
        reporter.line(&format!(
            "rollback {}: rolled back {}",
            plan.environment.name(),
            plan.deployments.join(", ")
        ));
        Ok(true)
    } else {
        reporter.line(&format!(
            "rollback {}: failed for {}",
            plan.environment.name(),
            failed.join(", ")
        ));
        Ok(false)
    }
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

struct Kubectl<'a> {
    root: &'a Path,
    reporter: &'a Reporter,
}

impl Kubectl<'_> {
    /// Runs kubectl with `args`, its output indented under the command; `Ok(success)`.
    fn run(&self, args: &[String]) -> anyhow::Result<bool> {
        self.reporter
            .line(&format!("==> kubectl {}", args.join(" ")));
        let output = Command::new(kubectl_program())
            .args(args)
            .current_dir(self.root)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("failed to run `{}`", kubectl_program().display()))?;
        for line in String::from_utf8_lossy(&output.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&output.stderr).lines())
        {
            self.reporter.line(&format!("    {line}"));
        }
        Ok(output.status.success())
    }
}

/// Undoes the last rollout of each deployment and waits for it; the ones that failed.
fn roll_back(
    kubectl: &Kubectl<'_>,
    plan: &DeployPlan,
    deployments: &[String],
) -> anyhow::Result<Vec<String>> {
    let mut failed = Vec::new();
    for deployment in deployments {
        if !(kubectl.run(&plan.rollout_undo_args(deployment))?
            && kubectl.run(&plan.rollout_status_args(deployment))?)
        {
            kubectl.reporter.warning(&format!(
                "rolling back deployment/{deployment} in {} failed",
                plan.namespace
            ));
            failed.push(deployment.clone());
        }
    }
    Ok(failed)
}

/// Runs the plan: apply, wait for each rollout, undo the failed ones; then the smoke check,
/// and every rollout undone when it fails. `Ok(false)` when a step failed (after rolling back).
fn execute(
    root: &Path,
    project: &Project,
    plan: &DeployPlan,
    smoke: &SmokeSettings,
    reporter: &Reporter,
) -> anyhow::Result<bool> {
    let kubectl = Kubectl { root, reporter };
    let environment = plan.environment.name();
    if !kubectl.run(&plan.apply_args())? {
        reporter.line(&format!(
            "deploy {environment}: apply failed; nothing to roll back"
        ));
        return Ok(false);
    }
    let mut failed = Vec::new();
    for deployment in &plan.deployments {
        if !kubectl.run(&plan.rollout_status_args(deployment))? {
            failed.push(deployment.clone());
        }
    }
    if !failed.is_empty() {
        for deployment in &failed {
            reporter.line(&format!(
                "rollout of deployment/{deployment} failed: rolling back"
            ));
        }
        roll_back(&kubectl, plan, &failed)?;
        reporter.line(&format!(
            "deploy {environment}: failed ({} rolled back)",
            failed.join(", ")
        ));
        return Ok(false);
    }
    reporter.line(&format!(
        "deploy {environment}: every rollout finished; smoke check"
    ));
    let apps: Vec<&crate::project::App> = project.apps.iter().collect();
    let report = match check_apps(
        project,
        &apps,
        &SmokeWhere::Environment(plan.environment),
        smoke,
        reporter,
    ) {
        Ok(report) => report,
        Err(error) => {
            reporter.line(&format!("smoke check could not run: {error:#}"));
            xtask_smoke::SmokeReport::default()
        }
    };
    for line in report.render().lines() {
        reporter.line(line);
    }
    if report.passed() && !report.results.is_empty() {
        reporter.line(&format!("deploy {environment}: smoke check passed"));
        return Ok(true);
    }
    reporter.line(&format!(
        "deploy {environment}: smoke check failed: rolling back {}",
        plan.deployments.join(", ")
    ));
    let not_rolled_back = roll_back(&kubectl, plan, &plan.deployments)?;
    if not_rolled_back.is_empty() {
        reporter.line(&format!(
            "deploy {environment}: failed; rolled back {} to their previous revision",
            plan.deployments.join(", ")
        ));
    } else {
        reporter.line(&format!(
            "deploy {environment}: failed; rollback failed for {}: see docs/operations/failed-deploy.md",
            not_rolled_back.join(", ")
        ));
    }
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

//! The deployment project, what every generator reads: the apps
//! (`[package.metadata.xtask.app]`), where they deploy (`[workspace.metadata.xtask.deploy]`)
//! and the environments. The model already checked every app's configuration, `talks_to`
//! across packages included.

use xtask_engine::generated::relative;
use xtask_model::{AppConfig, ConfigProblem, ModelError, Workspace};

/// The deployment environments, in promotion order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Environment {
    Dev,
    Staging,
    Production,
}

impl Environment {
    pub const ALL: [Environment; 3] = [
        Environment::Dev,
        Environment::Staging,
        Environment::Production,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Environment::Dev => "dev",
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }

    /// Replicas of every Deployment (and the autoscaler's minimum).
    pub(crate) fn replicas(self) -> u32 {
        match self {
            Environment::Dev => 1,
            Environment::Staging => 2,
            Environment::Production => 3,
        }
    }

    /// The autoscaler's maximum.
    pub(crate) fn max_replicas(self) -> u32 {
        match self {
            Environment::Dev => 2,
            Environment::Staging => 4,
            Environment::Production => 10,
        }
    }

    /// The Ingress host: `<env>.<domain>`, and the bare domain for production.
    pub(crate) fn host(self, domain: &str) -> String {
        match self {
            Environment::Production => domain.to_string(),
            other => format!("{}.{domain}", other.name()),
        }
    }
}

/// One deployable app.
#[derive(Debug, Clone)]
pub struct App {
    pub name: String,
    pub version: String,
    /// Workspace-relative manifest path, for messages.
    pub manifest: String,
    pub config: AppConfig,
    /// `[workspace.metadata.xtask.deploy] runbook_base_url`.
    pub runbook_base_url: Option<String>,
}

/// Everything the generators need, validated.
#[derive(Debug, Clone)]
pub struct Project {
    /// Apps sorted by name; empty when the workspace declares none.
    pub apps: Vec<App>,
    pub namespace: String,
    pub registry: String,
    pub domain: String,
    /// Workspace-relative local cache directory (the CI fallback cache).
    pub cache_dir: String,
    /// The overlays include the `k8s/monitoring` component.
    pub monitoring: bool,
}

impl Project {
    pub fn namespace_of(&self, environment: Environment) -> String {
        format!("{}-{}", self.namespace, environment.name())
    }

    /// The committed image reference of an app: `<registry>/<app>:<version>`.
    pub fn image_name(&self, app: &App) -> String {
        format!("{}/{}", self.registry, app.name)
    }

    pub fn image(&self, app: &App) -> String {
        format!("{}:{}", self.image_name(app), app.version)
    }

    pub fn app(&self, name: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.name == name)
    }

    pub fn has_ingress(&self) -> bool {
        self.apps.iter().any(|a| a.config.ingress_path.is_some())
    }

    pub fn has_secrets(&self) -> bool {
        self.apps.iter().any(|a| !a.config.secrets.is_empty())
    }
}

/// Builds the [`Project`]: a configuration error (exit code 3) when apps exist without
/// `[workspace.metadata.xtask.deploy]`.
pub fn project(workspace: &Workspace) -> Result<Project, ModelError> {
    let apps: Vec<App> = workspace
        .packages
        .iter()
        .filter_map(|p| {
            p.app.as_ref().map(|config| App {
                name: p.name.clone(),
                version: p.version.clone(),
                manifest: relative(&workspace.root, &p.manifest_path),
                config: config.clone(),
                runbook_base_url: workspace
                    .config
                    .deploy
                    .as_ref()
                    .and_then(|d| d.runbook_base_url.clone()),
            })
        })
        .collect();
    let deploy = match workspace.config.deploy.clone() {
        Some(deploy) => deploy,
        None if apps.is_empty() => xtask_model::DeployConfig {
            namespace: String::new(),
            registry: String::new(),
            domain: String::new(),
            monitoring: true,
            runbook_base_url: None,
        },
        None => {
            return Err(ModelError::Config(vec![ConfigProblem {
                file: workspace.manifest_path.clone(),
                key: "workspace.metadata.xtask.deploy".to_string(),
                line: None,
                message: format!(
                    "missing: {} declare `[package.metadata.xtask.app]`, so the workspace needs \
                     `namespace`, `registry` and `domain` to deploy them",
                    apps.iter()
                        .map(|a| format!("`{}`", a.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }]));
        }
    };
    Ok(Project {
        apps,
        namespace: deploy.namespace,
        registry: deploy.registry,
        domain: deploy.domain,
        monitoring: deploy.monitoring,
        cache_dir: relative(
            &workspace.root,
            &workspace.root.join(&workspace.config.cache.dir),
        ),
    })
}

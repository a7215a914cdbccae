//! `cargo xtask smoke`: where the apps are (a base URL, the ports `cargo xtask dev` runs them
//! on, or a deployed environment reached through `kubectl port-forward`), then
//! `xtask_smoke::check` on each. Also the check `deploy` runs after its rollouts.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use xtask_engine::report::Reporter;
use xtask_engine::{Location, UserError};
use xtask_smoke::{SmokeReport, SmokeSettings, SmokeTarget};

use crate::deploy::kubectl_program;
use crate::project::{App, Environment, Project};

/// Where the apps to check run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmokeWhere {
    /// One app at this URL (`http://host:port`).
    BaseUrl(String),
    /// Each app at `http://127.0.0.1:<port>` (what `cargo xtask dev` and compose publish).
    Local,
    /// A deployed environment, through `kubectl port-forward service/<app>`.
    Environment(Environment),
}

#[derive(Debug, Clone)]
pub struct SmokeOptions {
    pub location: Location,
    pub target: SmokeWhere,
    /// Only these apps (default: every app).
    pub apps: Vec<String>,
    pub settings: SmokeSettings,
}

/// How long `kubectl port-forward` may take to print its local port.
const PORT_FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// `cargo xtask smoke`: checks the apps and returns the report (the caller prints it; exit
/// code 1 when it did not pass). Unknown apps and a base URL for several apps are user errors.
pub fn smoke(options: &SmokeOptions, reporter: &Reporter) -> anyhow::Result<SmokeReport> {
    let workspace = xtask_engine::load_workspace(&options.location)?;
    let project = crate::project::project(&workspace)?;
    let apps = select_apps(&project, &options.apps)?;
    if let SmokeWhere::BaseUrl(_) = options.target
        && apps.len() != 1
    {
        return Err(UserError(format!(
            "--base-url checks one app, but {} are selected: name it with --app ({})",
            apps.len(),
            apps.iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into());
    }
    check_apps(
        &project,
        &apps,
        &options.target,
        &options.settings,
        reporter,
    )
}

/// Checks `apps` at `target` (port-forwards are started here and stopped before returning).
pub(crate) fn check_apps(
    project: &Project,
    apps: &[&App],
    target: &SmokeWhere,
    settings: &SmokeSettings,
    reporter: &Reporter,
) -> anyhow::Result<SmokeReport> {
    let mut forwards = Vec::new();
    let mut targets = Vec::new();
    for app in apps {
        let base_url = match target {
            SmokeWhere::BaseUrl(url) => url.trim_end_matches('/').to_string(),
            SmokeWhere::Local => format!("http://127.0.0.1:{}", app.config.port),
            SmokeWhere::Environment(environment) => {
                let namespace = project.namespace_of(*environment);
                let forward = PortForward::start(&namespace, app)?;
                reporter.line(&format!(
                    "smoke: {} in {namespace} through kubectl port-forward on 127.0.0.1:{}",
                    app.name, forward.local_port
                ));
                let url = format!("http://127.0.0.1:{}", forward.local_port);
                forwards.push(forward);
                url
            }
        };
        targets.push(SmokeTarget {
            app: app.name.clone(),
            base_url,
            config: app.config.clone(),
        });
    }
    let report = xtask_smoke::check(&targets, settings);
    drop(forwards);
    Ok(report)
}

fn select_apps<'a>(project: &'a Project, names: &[String]) -> anyhow::Result<Vec<&'a App>> {
    if project.apps.is_empty() {
        return Err(UserError(
            "nothing to check: no package declares `[package.metadata.xtask.app]`".to_string(),
        )
        .into());
    }
    if names.is_empty() {
        return Ok(project.apps.iter().collect());
    }
    names
        .iter()
        .map(|name| {
            project.app(name).ok_or_else(|| {
                UserError(format!(
                    "`{name}` is not an app (apps: {})",
                    project
                        .apps
                        .iter()
                        .map(|a| a.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .into()
            })
        })
        .collect()
}

/// A running `kubectl port-forward service/<app> :<port>`; killed when dropped.
struct PortForward {
    child: Child,
    local_port: u16,
}

impl PortForward {
    fn start(namespace: &str, app: &App) -> anyhow::Result<PortForward> {
        let mut child = Command::new(kubectl_program())
            .args([
                "port-forward",
                "--namespace",
                namespace,
                "--address",
                "127.0.0.1",
                &format!("service/{}", app.name),
                &format!(":{}", app.config.port),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| {
                format!(
                    "failed to run `{} port-forward`",
                    kubectl_program().display()
                )
            })?;
        let stdout = child.stdout.take().context("no stdout of port-forward")?;
        let (sender, receiver) = mpsc::channel();
        // kubectl prints `Forwarding from 127.0.0.1:PORT -> TARGET` once listening, then keeps
        // logging each connection; the thread drains stdout so it never blocks.
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !sent && let Some(port) = forwarded_port(&line) {
                    let _ = sender.send(port);
                    sent = true;
                }
            }
        });
        match receiver.recv_timeout(PORT_FORWARD_TIMEOUT) {
            Ok(local_port) => Ok(PortForward { child, local_port }),
            Err(_) => {
                let _ = child.kill();
                let output = child.wait_with_output().ok();
                let stderr = output
                    .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
                    .unwrap_or_default();
                Err(anyhow::anyhow!(
                    "`kubectl port-forward --namespace {namespace} service/{}` did not start within {}s: {stderr}",
                    app.name,
                    PORT_FORWARD_TIMEOUT.as_secs()
                ))
            }
        }
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `Forwarding from 127.0.0.1:40123 -> 8080` -> 40123.
fn forwarded_port(line: &str) -> Option<u16> {
    let rest = line.strip_prefix("Forwarding from 127.0.0.1:")?;
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_local_port_kubectl_prints() {
        assert_eq!(
            forwarded_port("Forwarding from 127.0.0.1:40123 -> 8080"),
            Some(40123)
        );
        assert_eq!(forwarded_port("Forwarding from [::1]:40123 -> 8080"), None);
        assert_eq!(forwarded_port("Handling connection for 40123"), None);
    }
}

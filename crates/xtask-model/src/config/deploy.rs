//! `[workspace.metadata.xtask.deploy]`: where the apps are deployed.

use toml::Spanned;

use super::raw::RawDeploy;
use super::{ManifestSource, is_dns_label};
use crate::error::ConfigProblem;

/// Where the apps are deployed (`[workspace.metadata.xtask.deploy]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployConfig {
    /// Namespace prefix: each environment deploys to `<namespace>-<env>`.
    pub namespace: String,
    /// Image repository prefix, without scheme: images are `<registry>/<app>`.
    pub registry: String,
    /// DNS domain of the Ingress hosts.
    pub domain: String,
    /// Whether the overlays include the `k8s/monitoring` component (ServiceMonitor,
    /// PrometheusRule, dashboards: needs the Prometheus Operator's CRDs). Default true.
    pub monitoring: bool,
    /// Where the repository's files are browsed (`https://github.com/acme/shop/blob/main`):
    /// alerts' `runbook_url` is this followed by the runbook's path. Unset: the path alone.
    pub runbook_base_url: Option<String>,
}

/// `(field, value, check, what it must be)` of one `[workspace.metadata.xtask.deploy]` key.
type DeployField<'a> = (
    &'a str,
    &'a Spanned<String>,
    &'a dyn Fn(&str) -> bool,
    &'a str,
);

pub(super) fn validate_deploy(
    source: &ManifestSource<'_>,
    key: &str,
    deploy: Spanned<RawDeploy>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<DeployConfig> {
    let before = problems.len();
    let deploy = deploy.into_inner();
    // `<namespace>-production` must still be a DNS label (63 characters at most).
    let namespace_ok = |n: &str| is_dns_label(n) && n.len() <= 52;
    let registry_ok = |r: &str| {
        !r.is_empty()
            && !r.contains("://")
            && !r.ends_with('/')
            && r.split('/').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-:".contains(c))
            })
    };
    let domain_ok = |d: &str| d.len() <= 240 && d.split('.').all(is_dns_label);
    let fields: [DeployField<'_>; 3] = [
        (
            "namespace",
            &deploy.namespace,
            &namespace_ok,
            "a DNS label of at most 52 characters (lowercase letters, digits, `-`)",
        ),
        (
            "registry",
            &deploy.registry,
            &registry_ok,
            "an image repository prefix without scheme, such as \"ghcr.io/acme/shop\"",
        ),
        (
            "domain",
            &deploy.domain,
            &domain_ok,
            "a lowercase DNS name such as \"example.com\"",
        ),
    ];
    for (field, value, valid, expected) in fields {
        if !valid(value.get_ref()) {
            problems.push(source.problem(
                format!("{key}.{field}"),
                Some(value.span().start),
                format!("must be {expected}, got {:?}", value.get_ref()),
            ));
        }
    }
    if let Some(url) = &deploy.runbook_base_url {
        let text = url.get_ref();
        let scheme_ok = text.starts_with("https://") || text.starts_with("http://");
        if !scheme_ok || text.ends_with('/') || text.contains(char::is_whitespace) {
            problems.push(source.problem(
                format!("{key}.runbook_base_url"),
                Some(url.span().start),
                format!(
                    "must be an http(s) URL without a trailing `/`, such as \
                     \"https://github.com/acme/shop/blob/main\", got {text:?}"
                ),
            ));
        }
    }
    (problems.len() == before).then(|| DeployConfig {
        namespace: deploy.namespace.into_inner(),
        registry: deploy.registry.into_inner(),
        domain: deploy.domain.into_inner(),
        monitoring: deploy.monitoring.unwrap_or(true),
        runbook_base_url: deploy.runbook_base_url.map(Spanned::into_inner),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::config::tests::{package, workspace};

    #[test]
    fn deploy_settings_and_app_network_fields() {
        let (parsed, problems) = workspace(
            "[workspace.metadata.xtask.deploy]\nnamespace = \"shop\"\nregistry = \"ghcr.io/acme/shop\"\ndomain = \"shop.example.com\"\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            parsed.config.deploy,
            Some(DeployConfig {
                namespace: "shop".into(),
                registry: "ghcr.io/acme/shop".into(),
                domain: "shop.example.com".into(),
                monitoring: true,
                runbook_base_url: None,
            })
        );
        let (pkg, problems) = package(
            "[package]\nname = \"a\"\n[package.metadata.xtask.app]\nport = 8080\ningress_path = \"/v1\"\n\
             talks_to = [\"b\"]\nsecrets = [\"API_TOKEN\"]\n",
            &BTreeMap::new(),
        );
        assert!(problems.is_empty(), "{problems:?}");
        let app = pkg.app.expect("app");
        assert_eq!(app.ingress_path.as_deref(), Some("/v1"));
        assert_eq!(app.talks_to, ["b"]);
        assert_eq!(app.secrets, ["API_TOKEN"]);
    }

    #[test]
    fn bad_deploy_settings_are_located() {
        let (parsed, problems) = workspace(
            "[workspace.metadata.xtask.deploy]\nnamespace = \"Shop\"\nregistry = \"https://ghcr.io/\"\ndomain = \"example..com\"\n",
        );
        let rendered: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            rendered,
            [
                "Cargo.toml:2: `workspace.metadata.xtask.deploy.namespace`: must be a DNS label of at most 52 characters (lowercase letters, digits, `-`), got \"Shop\"",
                "Cargo.toml:3: `workspace.metadata.xtask.deploy.registry`: must be an image repository prefix without scheme, such as \"ghcr.io/acme/shop\", got \"https://ghcr.io/\"",
                "Cargo.toml:4: `workspace.metadata.xtask.deploy.domain`: must be a lowercase DNS name such as \"example.com\", got \"example..com\"",
            ]
        );
        assert_eq!(parsed.config.deploy, None);
        let (_, problems) = workspace("[workspace.metadata.xtask.deploy]\nnamespace = \"shop\"\n");
        assert!(
            problems[0].to_string().contains("missing field `registry`"),
            "{problems:?}"
        );
        let (_, problems) = workspace(
            "[workspace.metadata.xtask.deploy]\nnamespace = \"shop\"\nregistry = \"ghcr.io/a\"\n\
             domain = \"a.com\"\nrunbook_base_url = \"github.com/a/b/\"\n",
        );
        let rendered: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            rendered,
            [
                "Cargo.toml:5: `workspace.metadata.xtask.deploy.runbook_base_url`: must be an http(s) \
              URL without a trailing `/`, such as \"https://github.com/acme/shop/blob/main\", got \
              \"github.com/a/b/\""
            ]
        );
    }
}

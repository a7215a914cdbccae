//! `[workspace.metadata.xtask.release]`: versioning mode, branch, tag format and remote.

use toml::Spanned;

use super::ManifestSource;
use super::raw::RawRelease;
use crate::error::ConfigProblem;

/// How packages are versioned by `cargo xtask release`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseMode {
    /// Each package has its own version and tag (`NAME-vX.Y.Z`).
    PerPackage,
    /// Every package shares one version and one tag (`vX.Y.Z`).
    Lockstep,
}

/// `[workspace.metadata.xtask.release]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseConfig {
    pub mode: ReleaseMode,
    /// The only branch releases are cut from.
    pub branch: String,
    /// Tag name with `{version}` (and `{name}` in per-package mode) placeholders.
    pub tag_format: String,
    /// The git remote `--push` pushes to.
    pub remote: String,
}

impl ReleaseConfig {
    /// The tag of `name` at `version`.
    pub fn tag(&self, name: &str, version: &str) -> String {
        self.tag_format
            .replace("{name}", name)
            .replace("{version}", version)
    }
}

impl Default for ReleaseConfig {
    fn default() -> ReleaseConfig {
        ReleaseConfig {
            mode: ReleaseMode::PerPackage,
            branch: "main".to_string(),
            tag_format: "{name}-v{version}".to_string(),
            remote: "origin".to_string(),
        }
    }
}

pub(super) fn validate_release(
    source: &ManifestSource<'_>,
    key: &str,
    raw: Spanned<RawRelease>,
    problems: &mut Vec<ConfigProblem>,
) -> ReleaseConfig {
    let raw = raw.into_inner();
    let mut config = ReleaseConfig::default();
    if let Some(mode) = &raw.mode {
        match mode.get_ref().as_str() {
            "per-package" => config.mode = ReleaseMode::PerPackage,
            "lockstep" => {
                config.mode = ReleaseMode::Lockstep;
                config.tag_format = "v{version}".to_string();
            }
            other => problems.push(source.problem(
                format!("{key}.mode"),
                Some(mode.span().start),
                format!("must be \"per-package\" or \"lockstep\", got {other:?}"),
            )),
        }
    }
    // A git ref name component: no spaces, no `..`, none of git's special characters.
    let is_ref_name = |name: &str| {
        !name.is_empty()
            && !name.starts_with(['-', '/', '.'])
            && !name.ends_with(['/', '.'])
            && !name.contains("..")
            && !name.contains("@{")
            && !name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c))
    };
    for (field, value, slot) in [
        ("branch", &raw.branch, &mut config.branch),
        ("remote", &raw.remote, &mut config.remote),
    ] {
        if let Some(value) = value {
            if is_ref_name(value.get_ref()) {
                *slot = value.get_ref().clone();
            } else {
                problems.push(source.problem(
                    format!("{key}.{field}"),
                    Some(value.span().start),
                    format!("must be a valid git name, got {:?}", value.get_ref()),
                ));
            }
        }
    }
    if let Some(format) = &raw.tag_format {
        let text = format.get_ref();
        let placeholders_removed = text.replace("{name}", "n").replace("{version}", "1.0.0");
        let problem = if !text.contains("{version}") {
            Some("must contain `{version}`".to_string())
        } else if config.mode == ReleaseMode::PerPackage && !text.contains("{name}") {
            Some("must contain `{name}` in per-package mode (one tag per package)".to_string())
        } else if placeholders_removed.contains(['{', '}']) || !is_ref_name(&placeholders_removed) {
            Some(format!(
                "must be a valid git tag name with only `{{name}}` and `{{version}}` placeholders, got {text:?}"
            ))
        } else {
            None
        };
        match problem {
            Some(message) => problems.push(source.problem(
                format!("{key}.tag_format"),
                Some(format.span().start),
                message,
            )),
            None => config.tag_format = text.clone(),
        }
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::workspace;

    #[test]
    fn release_defaults_and_lockstep() {
        let (parsed, problems) = workspace("[workspace]\n");
        assert!(problems.is_empty());
        assert_eq!(parsed.config.release, ReleaseConfig::default());
        assert_eq!(parsed.config.release.tag("core", "1.2.3"), "core-v1.2.3");
        let (parsed, problems) = workspace(
            "[workspace.metadata.xtask.release]\nmode = \"lockstep\"\nbranch = \"release/1.x\"\nremote = \"upstream\"\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let release = parsed.config.release;
        assert_eq!(release.mode, ReleaseMode::Lockstep);
        assert_eq!(
            (release.branch.as_str(), release.remote.as_str()),
            ("release/1.x", "upstream")
        );
        assert_eq!(release.tag("core", "1.2.3"), "v1.2.3");
    }

    #[test]
    fn bad_release_values_are_located() {
        let (_, problems) = workspace(
            "[workspace]\n[workspace.metadata.xtask.release]\nmode = \"together\"\nbranch = \"a b\"\ntag_format = \"v{version}\"\n",
        );
        let rendered: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            rendered,
            vec![
                "Cargo.toml:3: `workspace.metadata.xtask.release.mode`: must be \"per-package\" or \"lockstep\", got \"together\"",
                "Cargo.toml:4: `workspace.metadata.xtask.release.branch`: must be a valid git name, got \"a b\"",
                "Cargo.toml:5: `workspace.metadata.xtask.release.tag_format`: must contain `{name}` in per-package mode (one tag per package)",
            ]
        );
        let (_, problems) =
            workspace("[workspace.metadata.xtask.release]\nmode = \"lockstep\"\nsign = true\n");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "workspace.metadata.xtask.release.sign");
        assert_eq!(problems[0].line, Some(3));
    }
}

//! `[workspace.metadata.xtask.ci]`: the setup command `cargo xtask ci` runs first.

use toml::Spanned;

use super::ManifestSource;
use super::raw::RawCi;
use crate::error::ConfigProblem;

/// `[workspace.metadata.xtask.ci]`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CiConfig {
    /// A command (program and arguments, no shell) `cargo xtask ci` runs in the workspace root
    /// before its checks, e.g. to install the real tools the tests use when they are missing.
    pub setup: Option<Vec<String>>,
}

pub(super) fn validate_ci(
    source: &ManifestSource<'_>,
    key: &str,
    raw: Spanned<RawCi>,
    problems: &mut Vec<ConfigProblem>,
) -> CiConfig {
    let Some(setup) = raw.into_inner().setup else {
        return CiConfig::default();
    };
    if setup
        .get_ref()
        .first()
        .is_none_or(|program| program.is_empty())
    {
        problems.push(source.problem(
            format!("{key}.setup"),
            Some(setup.span().start),
            "must be a program and its arguments, such as [\"bash\", \".ci/install-tools\"]",
        ));
        return CiConfig::default();
    }
    CiConfig {
        setup: Some(setup.into_inner()),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::workspace;

    #[test]
    fn ci_setup_is_a_command_and_an_empty_one_names_key_and_line() {
        let (parsed, problems) =
            workspace("[workspace.metadata.xtask.ci]\nsetup = [\"bash\", \".ci/install-tools\"]\n");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            parsed.config.ci.setup,
            Some(vec!["bash".to_string(), ".ci/install-tools".to_string()])
        );
        let (parsed, problems) =
            workspace("[workspace]\n\n[workspace.metadata.xtask.ci]\nsetup = []\n");
        assert_eq!(parsed.config.ci.setup, None);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "workspace.metadata.xtask.ci.setup");
        assert_eq!(problems[0].line, Some(4));
        let (_, problems) = workspace("[workspace.metadata.xtask.ci]\nsetpu = [\"x\"]\n");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains("setpu"), "{problems:?}");
    }
}

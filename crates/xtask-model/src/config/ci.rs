//! `[workspace.metadata.xtask.ci]`: the setup command `cargo xtask ci` runs first, and how many
//! shards (matrix jobs) the generated CI workflow splits `cargo xtask ci` over.

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
    /// `shards = N` (2..=256): `ci generate` writes a matrix of N jobs, each running
    /// `cargo xtask ci --shard K/N`, and a fan-in job; `None` (or 1) is one job.
    pub shards: Option<u32>,
}

/// The most shards `shards` accepts (GitHub caps a matrix at 256 jobs).
const MAX_CI_SHARDS: u32 = 256;

pub(super) fn validate_ci(
    source: &ManifestSource<'_>,
    key: &str,
    raw: Spanned<RawCi>,
    problems: &mut Vec<ConfigProblem>,
) -> CiConfig {
    let raw = raw.into_inner();
    CiConfig {
        setup: raw
            .setup
            .and_then(|setup| validate_setup(source, key, setup, problems)),
        shards: raw
            .shards
            .and_then(|shards| validate_shards(source, key, shards, problems)),
    }
}

fn validate_setup(
    source: &ManifestSource<'_>,
    key: &str,
    setup: Spanned<Vec<String>>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Vec<String>> {
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
        return None;
    }
    Some(setup.into_inner())
}

fn validate_shards(
    source: &ManifestSource<'_>,
    key: &str,
    shards: Spanned<i64>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<u32> {
    match u32::try_from(*shards.get_ref()) {
        Ok(count) if (1..=MAX_CI_SHARDS).contains(&count) => Some(count),
        _ => {
            problems.push(source.problem(
                format!("{key}.shards"),
                Some(shards.span().start),
                format!("must be 1-{MAX_CI_SHARDS}, got {}", shards.get_ref()),
            ));
            None
        }
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

    #[test]
    fn ci_shards_is_a_count_and_a_bad_one_names_key_and_line() {
        let (parsed, problems) = workspace("[workspace.metadata.xtask.ci]\nshards = 4\n");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(parsed.config.ci.shards, Some(4));
        assert_eq!(parsed.config.ci.setup, None);
        for bad in ["0", "-2", "257"] {
            let (parsed, problems) = workspace(&format!(
                "[workspace]\n\n[workspace.metadata.xtask.ci]\nshards = {bad}\n"
            ));
            assert_eq!(parsed.config.ci.shards, None);
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].key, "workspace.metadata.xtask.ci.shards");
            assert_eq!(problems[0].line, Some(4));
            assert_eq!(problems[0].message, format!("must be 1-256, got {bad}"));
        }
    }
}

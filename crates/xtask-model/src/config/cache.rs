//! `[workspace.metadata.xtask.cache]` and its `remote` table: the local cache directory and
//! size cap, and the remote cache settings as written (the environment is applied elsewhere).

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::raw::{RawCache, RawRemote};
use super::{ManifestSource, parse_value};
use crate::error::ConfigProblem;
use crate::quantity::parse_size;

pub const DEFAULT_CACHE_DIR: &str = "turbo-like-cache";
/// Default eviction cap of the local cache.
pub const DEFAULT_CACHE_MAX_SIZE: u64 = 10 << 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Relative to the workspace root unless absolute.
    pub dir: PathBuf,
    /// `None` disables eviction.
    pub max_size_bytes: Option<u64>,
    /// `[workspace.metadata.xtask.cache.remote]`, as written (the environment is applied by
    /// `xtask-remote`).
    pub remote: RemoteCacheConfig,
}

/// The remote cache settings of the manifest. Every field is optional: the environment
/// (`TURBO_API`, `TURBO_TEAM`, `XTASK_REMOTE_CACHE_*`) can supply or override them. Tokens and
/// signature keys are never read from files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteCacheConfig {
    pub protocol: Option<RemoteProtocol>,
    pub url: Option<String>,
    pub team: Option<String>,
    pub mode: Option<RemoteMode>,
    pub timeout_secs: Option<u64>,
    pub retries: Option<u32>,
    pub upload_concurrency: Option<usize>,
}

/// The protocol a remote cache server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteProtocol {
    /// Turborepo's remote cache API v8 (`/v8/artifacts/{hash}`).
    Turbo,
    /// The Bazel HTTP cache protocol (`/ac/{sha256}`, `/cas/{sha256}`).
    Bazel,
}

/// What the remote cache may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RemoteMode {
    ReadWrite,
    /// Hits are downloaded, nothing is uploaded (e.g. pull requests from forks).
    ReadOnly,
    Off,
}

impl RemoteMode {
    /// Parses `read-write`, `read-only` or `off` (as in the manifest and the environment).
    pub fn parse(text: &str) -> Option<RemoteMode> {
        match text.trim() {
            "read-write" | "rw" => Some(RemoteMode::ReadWrite),
            "read-only" | "r" => Some(RemoteMode::ReadOnly),
            "off" => Some(RemoteMode::Off),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RemoteMode::ReadWrite => "read-write",
            RemoteMode::ReadOnly => "read-only",
            RemoteMode::Off => "off",
        }
    }
}

impl Default for CacheConfig {
    /// `turbo-like-cache`, evicted above 10 GiB, no remote.
    fn default() -> CacheConfig {
        CacheConfig {
            dir: PathBuf::from(DEFAULT_CACHE_DIR),
            max_size_bytes: Some(DEFAULT_CACHE_MAX_SIZE),
            remote: RemoteCacheConfig::default(),
        }
    }
}

pub(super) fn validate_cache(
    source: &ManifestSource<'_>,
    key: &str,
    raw: Spanned<RawCache>,
    problems: &mut Vec<ConfigProblem>,
) -> CacheConfig {
    let raw = raw.into_inner();
    let mut cache = CacheConfig::default();
    if let Some(dir) = raw.dir {
        if dir.get_ref().trim().is_empty() {
            problems.push(source.problem(
                format!("{key}.dir"),
                Some(dir.span().start),
                "must not be empty",
            ));
        }
        cache.dir = PathBuf::from(dir.into_inner());
    }
    if let Some(max_size) = raw.max_size
        && let Some(size) = parse_value(
            source,
            &format!("{key}.max_size"),
            &max_size,
            parse_size,
            "a size such as \"10GiB\" or \"500MB\"",
            problems,
        )
    {
        cache.max_size_bytes = Some(size);
    }
    if raw.eviction == Some(false) {
        cache.max_size_bytes = None;
    }
    if let Some(remote) = raw.remote {
        cache.remote = validate_remote(source, &format!("{key}.remote"), remote, problems);
    }
    cache
}

fn validate_remote(
    source: &ManifestSource<'_>,
    key: &str,
    remote: Spanned<RawRemote>,
    problems: &mut Vec<ConfigProblem>,
) -> RemoteCacheConfig {
    let span = remote.span().start;
    let remote = remote.into_inner();
    for (name, value, variable) in [
        (
            "token",
            &remote.token,
            "TURBO_TOKEN or XTASK_REMOTE_CACHE_TOKEN",
        ),
        (
            "signature_key",
            &remote.signature_key,
            "TURBO_REMOTE_CACHE_SIGNATURE_KEY",
        ),
    ] {
        if value.is_some() {
            problems.push(source.problem(
                format!("{key}.{name}"),
                Some(span),
                format!(
                    "secrets are never read from files: remove it (and rotate it, it was committed) and set {variable} in the environment"
                ),
            ));
        }
    }
    if let Some(url) = &remote.url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        problems.push(source.problem(
            format!("{key}.url"),
            Some(span),
            format!("must start with http:// or https://, got {url:?}"),
        ));
    }
    if remote.timeout_secs == Some(0) {
        problems.push(source.problem(
            format!("{key}.timeout_secs"),
            Some(span),
            "must be at least 1",
        ));
    }
    if remote.upload_concurrency == Some(0) {
        problems.push(source.problem(
            format!("{key}.upload_concurrency"),
            Some(span),
            "must be at least 1",
        ));
    }
    RemoteCacheConfig {
        protocol: remote.protocol,
        url: remote.url,
        team: remote.team,
        mode: remote.mode,
        timeout_secs: remote.timeout_secs,
        retries: remote.retries,
        upload_concurrency: remote.upload_concurrency,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::workspace;

    #[test]
    fn remote_cache_settings_are_parsed() {
        let (parsed, problems) = workspace(
            "[workspace.metadata.xtask.cache.remote]\nprotocol = \"bazel\"\nurl = \"http://127.0.0.1:9092\"\n\
             mode = \"read-only\"\ntimeout_secs = 5\nretries = 1\nupload_concurrency = 2\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            parsed.config.cache.remote,
            RemoteCacheConfig {
                protocol: Some(RemoteProtocol::Bazel),
                url: Some("http://127.0.0.1:9092".into()),
                team: None,
                mode: Some(RemoteMode::ReadOnly),
                timeout_secs: Some(5),
                retries: Some(1),
                upload_concurrency: Some(2),
            }
        );
    }

    #[test]
    fn a_bad_cache_size_or_dir_names_the_line_of_its_key() {
        let (parsed, problems) = workspace(
            "[workspace.metadata.xtask.cache]\neviction = true\ndir = \" \"\nmax_size = \"lots\"\n",
        );
        let rendered: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            rendered,
            [
                "Cargo.toml:3: `workspace.metadata.xtask.cache.dir`: must not be empty",
                "Cargo.toml:4: `workspace.metadata.xtask.cache.max_size`: must be a size such as \"10GiB\" or \"500MB\", got \"lots\"",
            ]
        );
        assert_eq!(
            parsed.config.cache.max_size_bytes,
            Some(DEFAULT_CACHE_MAX_SIZE)
        );
        let (parsed, problems) =
            workspace("[workspace.metadata.xtask.cache]\nmax_size = \"2GiB\"\n");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(parsed.config.cache.max_size_bytes, Some(2 << 30));
    }

    #[test]
    fn a_token_in_the_manifest_is_refused_without_echoing_it() {
        let (_, problems) = workspace(
            "[workspace]\n[workspace.metadata.xtask.cache.remote]\nurl = \"ftp://x\"\ntoken = \"hunter2-secret\"\n",
        );
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 2, "{text:?}");
        assert_eq!(
            problems[0].key,
            "workspace.metadata.xtask.cache.remote.token"
        );
        assert_eq!(problems[0].line, Some(2));
        assert!(problems[0].message.contains("TURBO_TOKEN"), "{text:?}");
        assert_eq!(problems[1].key, "workspace.metadata.xtask.cache.remote.url");
        assert!(text.iter().all(|t| !t.contains("hunter2")), "{text:?}");
    }
}

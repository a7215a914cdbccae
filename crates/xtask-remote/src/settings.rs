//! The effective remote cache settings: the manifest's `[workspace.metadata.xtask.cache.remote]`
//! overlaid with the environment. Turborepo's variable names work unchanged (`TURBO_API`,
//! `TURBO_TOKEN`, `TURBO_TEAM`, `TURBO_TEAMID`, `TURBO_REMOTE_CACHE_SIGNATURE_KEY`,
//! `TURBO_CACHE`, `TURBO_REMOTE_CACHE_READ_ONLY`, `TURBO_REMOTE_CACHE_TIMEOUT`), beside our own
//! `XTASK_REMOTE_CACHE_*`. Secrets come only from the environment and never appear in `Debug`
//! or `Display` output.

use std::fmt;
use std::time::Duration;

use xtask_model::{RemoteCacheConfig, RemoteMode, RemoteProtocol};

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_RETRIES: u32 = 2;
pub const DEFAULT_UPLOAD_CONCURRENCY: usize = 4;

/// A secret value (token, signature key). Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Which team a Turborepo request is for: `teamId=` or `slug=` in the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Team {
    Id(String),
    Slug(String),
}

impl Team {
    /// `team_...` is an id (as Vercel issues them), anything else a slug, as turbo does.
    pub fn parse(value: &str) -> Team {
        if value.starts_with("team_") {
            Team::Id(value.to_owned())
        } else {
            Team::Slug(value.to_owned())
        }
    }

    /// The query parameter: `teamId=...` or `slug=...`.
    pub fn query(&self) -> String {
        match self {
            Team::Id(id) => format!("teamId={}", encode_query(id)),
            Team::Slug(slug) => format!("slug={}", encode_query(slug)),
        }
    }

    /// The team id signatures are bound to: turbo signs with the team id, empty for a slug.
    pub fn signing_id(team: Option<&Team>) -> &str {
        match team {
            Some(Team::Id(id)) => id,
            _ => "",
        }
    }
}

/// Everything the client needs, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSettings {
    pub protocol: RemoteProtocol,
    /// The base URL, without a trailing slash.
    pub url: String,
    pub team: Option<Team>,
    pub token: Option<Secret>,
    /// `user:password` for HTTP basic auth (Bazel caches behind htpasswd).
    pub basic_auth: Option<Secret>,
    pub signature_key: Option<Secret>,
    pub mode: RemoteMode,
    pub timeout: Duration,
    pub retries: u32,
    pub upload_concurrency: usize,
}

impl RemoteSettings {
    pub fn can_read(&self) -> bool {
        self.mode != RemoteMode::Off
    }

    pub fn can_write(&self) -> bool {
        self.mode == RemoteMode::ReadWrite
    }

    /// One line for logs: protocol, URL, team, mode, and whether a token and a signature key
    /// are set (never their values).
    pub fn describe(&self) -> String {
        let protocol = match self.protocol {
            RemoteProtocol::Turbo => "turborepo API v8",
            RemoteProtocol::Bazel => "bazel HTTP cache",
        };
        let team = match &self.team {
            Some(Team::Id(id)) => format!(", team id {id}"),
            Some(Team::Slug(slug)) => format!(", team {slug}"),
            None => String::new(),
        };
        format!(
            "{} ({protocol}{team}, {}, token {}, signatures {})",
            self.url,
            self.mode.as_str(),
            if self.token.is_some() || self.basic_auth.is_some() {
                "set"
            } else {
                "not set"
            },
            if self.signature_key.is_some() {
                "on"
            } else {
                "off"
            },
        )
    }
}

/// A bad environment variable (the value is never echoed for secrets).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("environment variable {variable}: {message}")]
pub struct SettingsError {
    pub variable: &'static str,
    pub message: String,
}

/// Resolves the settings; `Ok(None)` when no remote cache is configured (no URL anywhere) or
/// its mode is `off`. `env` reads a variable (`std::env::var` in production).
pub fn resolve(
    config: &RemoteCacheConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<RemoteSettings>, SettingsError> {
    let var = |name: &str| env(name).filter(|value| !value.trim().is_empty());

    let xtask_url = var("XTASK_REMOTE_CACHE_URL");
    let turbo_api = var("TURBO_API");
    let (url, url_variable) = match (xtask_url, turbo_api) {
        (Some(url), _) => (url, Some("XTASK_REMOTE_CACHE_URL")),
        (None, Some(url)) => (url, Some("TURBO_API")),
        (None, None) => match &config.url {
            Some(url) => (url.clone(), None),
            None => return Ok(None),
        },
    };
    if let Some(variable) = url_variable
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(SettingsError {
            variable,
            message: format!("must start with http:// or https://, got {url:?}"),
        });
    }
    if url_has_credentials(&url) {
        return Err(SettingsError {
            variable: url_variable.unwrap_or("XTASK_REMOTE_CACHE_URL"),
            message: "must not contain credentials: set XTASK_REMOTE_CACHE_TOKEN or \
                      XTASK_REMOTE_CACHE_BASIC_AUTH instead"
                .into(),
        });
    }
    let url = url.trim_end_matches('/').to_owned();

    let protocol = match var("XTASK_REMOTE_CACHE_PROTOCOL") {
        Some(value) => match value.trim() {
            "turbo" => RemoteProtocol::Turbo,
            "bazel" => RemoteProtocol::Bazel,
            other => {
                return Err(SettingsError {
                    variable: "XTASK_REMOTE_CACHE_PROTOCOL",
                    message: format!("expected `turbo` or `bazel`, got {other:?}"),
                });
            }
        },
        None if url_variable == Some("TURBO_API") => RemoteProtocol::Turbo,
        None => config.protocol.unwrap_or(RemoteProtocol::Turbo),
    };

    let mode = resolve_mode(config, &var)?;
    if mode == RemoteMode::Off {
        return Ok(None);
    }

    let team = match (var("TURBO_TEAMID"), var("TURBO_TEAM")) {
        (Some(id), _) => Some(Team::Id(id)),
        (None, Some(team)) => Some(Team::parse(&team)),
        (None, None) => config.team.as_deref().map(Team::parse),
    };
    let token = var("XTASK_REMOTE_CACHE_TOKEN")
        .or_else(|| var("TURBO_TOKEN"))
        .map(Secret::new);
    let basic_auth = match var("XTASK_REMOTE_CACHE_BASIC_AUTH") {
        Some(value) if !value.contains(':') => {
            return Err(SettingsError {
                variable: "XTASK_REMOTE_CACHE_BASIC_AUTH",
                message: "expected USER:PASSWORD".into(),
            });
        }
        value => value.map(Secret::new),
    };
    let signature_key = env("TURBO_REMOTE_CACHE_SIGNATURE_KEY")
        .filter(|key| !key.is_empty())
        .map(Secret::new);

    let timeout = match var("XTASK_REMOTE_CACHE_TIMEOUT")
        .map(|v| ("XTASK_REMOTE_CACHE_TIMEOUT", v))
        .or_else(|| var("TURBO_REMOTE_CACHE_TIMEOUT").map(|v| ("TURBO_REMOTE_CACHE_TIMEOUT", v)))
    {
        Some((variable, value)) => match value.trim().parse::<u64>() {
            Ok(seconds) if seconds > 0 => Duration::from_secs(seconds),
            _ => {
                return Err(SettingsError {
                    variable,
                    message: format!("expected a whole number of seconds, got {value:?}"),
                });
            }
        },
        None => config
            .timeout_secs
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TIMEOUT),
    };

    Ok(Some(RemoteSettings {
        protocol,
        url,
        team,
        token,
        basic_auth,
        signature_key,
        mode,
        timeout,
        retries: config.retries.unwrap_or(DEFAULT_RETRIES),
        upload_concurrency: config
            .upload_concurrency
            .unwrap_or(DEFAULT_UPLOAD_CONCURRENCY)
            .max(1),
    }))
}

fn resolve_mode(
    config: &RemoteCacheConfig,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<RemoteMode, SettingsError> {
    if let Some(value) = var("XTASK_REMOTE_CACHE_MODE") {
        return RemoteMode::parse(&value).ok_or_else(|| SettingsError {
            variable: "XTASK_REMOTE_CACHE_MODE",
            message: format!("expected `read-write`, `read-only` or `off`, got {value:?}"),
        });
    }
    // turbo's `TURBO_CACHE=local:rw,remote:r`: the remote part, or off when it has none.
    if let Some(value) = var("TURBO_CACHE") {
        let mut remote = RemoteMode::Off;
        for part in value.split(',') {
            let Some((source, access)) = part.trim().split_once(':') else {
                return Err(SettingsError {
                    variable: "TURBO_CACHE",
                    message: format!("expected e.g. `local:rw,remote:r`, got {value:?}"),
                });
            };
            if source == "remote" {
                remote = match access {
                    "rw" | "wr" => RemoteMode::ReadWrite,
                    "r" => RemoteMode::ReadOnly,
                    // write-only is not offered: treat it as read-write's safe half.
                    "w" | "" => RemoteMode::Off,
                    other => {
                        return Err(SettingsError {
                            variable: "TURBO_CACHE",
                            message: format!("unknown access `{other}` for remote"),
                        });
                    }
                };
            }
        }
        return Ok(remote);
    }
    if var("TURBO_REMOTE_CACHE_READ_ONLY").is_some_and(|v| v == "1" || v == "true") {
        return Ok(RemoteMode::ReadOnly);
    }
    Ok(config.mode.unwrap_or(RemoteMode::ReadWrite))
}

/// `scheme://user:pass@host` or `scheme://user@host`.
fn url_has_credentials(url: &str) -> bool {
    let rest = url.split_once("://").map(|(_, rest)| rest).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.contains('@')
}

/// Percent-encodes a query value (unreserved characters pass).
pub(crate) fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn resolve_with(
        config: &RemoteCacheConfig,
        vars: &[(&str, &str)],
    ) -> Result<Option<RemoteSettings>, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        resolve(config, &|name| map.get(name).cloned())
    }

    #[test]
    fn nothing_configured_is_no_remote() {
        assert_eq!(resolve_with(&RemoteCacheConfig::default(), &[]), Ok(None));
    }

    #[test]
    fn turborepo_variables_work_unchanged() {
        let settings = resolve_with(
            &RemoteCacheConfig::default(),
            &[
                ("TURBO_API", "http://127.0.0.1:3000/"),
                ("TURBO_TOKEN", "tok"),
                ("TURBO_TEAM", "acme"),
                ("TURBO_REMOTE_CACHE_SIGNATURE_KEY", "key"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(settings.protocol, RemoteProtocol::Turbo);
        assert_eq!(settings.url, "http://127.0.0.1:3000");
        assert_eq!(settings.team, Some(Team::Slug("acme".into())));
        assert_eq!(settings.token, Some(Secret::new("tok")));
        assert_eq!(settings.mode, RemoteMode::ReadWrite);
        assert!(settings.signature_key.is_some());
        let shown = format!("{settings:?} {}", settings.describe());
        assert!(
            !shown.contains("tok\"") && !shown.contains("\"key\""),
            "{shown}"
        );
        assert!(
            shown.contains("token set") && shown.contains("signatures on"),
            "{shown}"
        );
    }

    #[test]
    fn environment_overrides_the_manifest() {
        let config = RemoteCacheConfig {
            protocol: Some(RemoteProtocol::Bazel),
            url: Some("http://127.0.0.1:9/".into()),
            team: Some("team_123".into()),
            mode: Some(RemoteMode::ReadWrite),
            timeout_secs: Some(5),
            retries: Some(0),
            upload_concurrency: Some(2),
        };
        let settings = resolve_with(&config, &[]).unwrap().unwrap();
        assert_eq!(settings.protocol, RemoteProtocol::Bazel);
        assert_eq!(settings.team, Some(Team::Id("team_123".into())));
        assert_eq!(settings.timeout, Duration::from_secs(5));
        let settings = resolve_with(
            &config,
            &[
                ("XTASK_REMOTE_CACHE_MODE", "read-only"),
                ("XTASK_REMOTE_CACHE_TIMEOUT", "7"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(settings.mode, RemoteMode::ReadOnly);
        assert_eq!(settings.timeout, Duration::from_secs(7));
        assert_eq!(
            resolve_with(&config, &[("XTASK_REMOTE_CACHE_MODE", "off")]),
            Ok(None)
        );
    }

    #[test]
    fn turbo_cache_variable_selects_the_remote_mode() {
        let config = RemoteCacheConfig {
            url: Some("http://127.0.0.1:9".into()),
            ..RemoteCacheConfig::default()
        };
        let mode = |value: &str| {
            resolve_with(&config, &[("TURBO_CACHE", value)]).map(|s| s.map(|s| s.mode))
        };
        assert_eq!(mode("local:rw,remote:r"), Ok(Some(RemoteMode::ReadOnly)));
        assert_eq!(mode("local:rw,remote:rw"), Ok(Some(RemoteMode::ReadWrite)));
        assert_eq!(mode("local:rw"), Ok(None));
        assert!(mode("bogus").is_err());
    }

    #[test]
    fn bad_variables_are_named_and_credentials_in_urls_refused() {
        let config = RemoteCacheConfig::default();
        let error = resolve_with(&config, &[("TURBO_API", "ftp://x")]).unwrap_err();
        assert_eq!(error.variable, "TURBO_API");
        let error = resolve_with(
            &config,
            &[("XTASK_REMOTE_CACHE_URL", "https://me:hunter2@cache.example")],
        )
        .unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
        let error = resolve_with(
            &config,
            &[
                ("TURBO_API", "http://127.0.0.1:1"),
                ("XTASK_REMOTE_CACHE_MODE", "sometimes"),
            ],
        )
        .unwrap_err();
        assert_eq!(error.variable, "XTASK_REMOTE_CACHE_MODE");
    }

    #[test]
    fn team_query_is_encoded() {
        assert_eq!(Team::parse("a b").query(), "slug=a%20b");
        assert_eq!(Team::parse("team_x").query(), "teamId=team_x");
    }
}

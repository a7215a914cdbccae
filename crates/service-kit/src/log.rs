//! Logging: the apps emit `tracing` events (`tracing::info!` and friends); [`LogSettings`]
//! installs `tracing-subscriber` to write them to stderr, filtered by `RUST_LOG` with
//! `EnvFilter` directives (`info`, `warn,api=debug`, `info,hyper=warn`; default `info`), as text
//! lines `<UTC time> <LEVEL> <target>: <message>` or, with `LOG_FORMAT=json` (what the generated
//! Kubernetes manifests set), one JSON object per line.
//!
//! A `RUST_LOG` or `LOG_FORMAT` that does not parse is reported with every other invalid
//! variable (the app exits 2), and logging falls back to `info` text lines to say so.

use tracing_subscriber::EnvFilter;

use crate::config::EnvReader;

/// Name of the variable holding the filter directives.
pub const RUST_LOG: &str = "RUST_LOG";
/// Name of the variable choosing the line format: `text` (default) or `json`.
pub const LOG_FORMAT: &str = "LOG_FORMAT";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-01-01T00:00:00.000000Z  INFO api::service: listening on 0.0.0.0:8080`.
    Text,
    /// `{"timestamp":"...","level":"INFO","fields":{"message":"..."},"target":"api::service"}`.
    Json,
}

/// The filter and format of an app's log lines, read from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// Validated `EnvFilter` directives.
    pub filter: String,
    pub format: LogFormat,
}

impl LogSettings {
    /// Reads `RUST_LOG` and `LOG_FORMAT`; bad values are recorded in `env`.
    pub fn read(env: &mut EnvReader) -> LogSettings {
        let filter = env.parse_with(
            RUST_LOG,
            "info".to_owned(),
            "EnvFilter directives such as `info` or `warn,api=debug`",
            |text| EnvFilter::try_new(text).is_ok().then(|| text.to_owned()),
        );
        let format =
            env.parse_with(
                LOG_FORMAT,
                LogFormat::Text,
                "`text` or `json`",
                |text| match text {
                    "text" => Some(LogFormat::Text),
                    "json" => Some(LogFormat::Json),
                    _ => None,
                },
            );
        LogSettings { filter, format }
    }

    /// Installs the process-wide subscriber writing to stderr. Does nothing when one is
    /// already installed (a second call, or a test harness).
    pub fn install(&self) {
        let filter = EnvFilter::try_new(&self.filter).unwrap_or_else(|_| EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        let _already_installed = match self.format {
            LogFormat::Text => builder.try_init(),
            LogFormat::Json => builder.json().try_init(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&'static str, &str)]) -> (LogSettings, Result<(), crate::ConfigError>) {
        let mut env = EnvReader::from_vars(vars.iter().copied());
        let settings = LogSettings::read(&mut env);
        (settings, env.finish())
    }

    #[test]
    fn rust_log_takes_env_filter_directives() {
        for directives in ["warn", "info,hyper=warn", "warn,api=debug", "off"] {
            let (settings, result) = read(&[(RUST_LOG, directives)]);
            assert!(result.is_ok(), "{directives}");
            assert_eq!(settings.filter, directives);
        }
        let (settings, result) = read(&[(RUST_LOG, "api=loud")]);
        assert_eq!(
            result.unwrap_err().to_string(),
            "invalid environment: `RUST_LOG` must be EnvFilter directives such as `info` or \
             `warn,api=debug`, got `api=loud`"
        );
        assert_eq!(settings.filter, "info", "a bad value falls back to info");
    }

    #[test]
    fn defaults_are_info_text_and_json_is_chosen_by_log_format() {
        let (settings, result) = read(&[("OTHER", "1")]);
        assert!(result.is_ok());
        assert_eq!(
            settings,
            LogSettings {
                filter: "info".into(),
                format: LogFormat::Text
            }
        );
        let (settings, _) = read(&[(LOG_FORMAT, "json")]);
        assert_eq!(settings.format, LogFormat::Json);
        let (_, result) = read(&[(LOG_FORMAT, "yaml")]);
        assert!(
            result
                .unwrap_err()
                .to_string()
                .contains("`LOG_FORMAT` must be `text` or `json`, got `yaml`")
        );
    }
}

//! Settings read from environment variables, validated, with every bad variable reported at once.
//!
//! Variables every service reads (see [`Config`]): `PORT`, `BIND_ADDR`, `SHUTDOWN_GRACE_MS`.
//! An unset variable takes its default; a set but unusable one (including an empty value) is an
//! error naming the variable, what it must be and the value found.

use std::collections::BTreeMap;
use std::fmt::{self, Display};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

/// Name of the variable holding the TCP port to listen on.
pub const PORT: &str = "PORT";
/// Name of the variable holding the IP address to listen on.
pub const BIND_ADDR: &str = "BIND_ADDR";
/// Name of the variable holding how long, in milliseconds, shutdown may wait for open connections.
pub const SHUTDOWN_GRACE_MS: &str = "SHUTDOWN_GRACE_MS";

/// Default of `BIND_ADDR`: every IPv4 interface, as a container expects.
pub const DEFAULT_BIND_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
/// Default of `SHUTDOWN_GRACE_MS`, below Kubernetes' default 30 s termination grace period.
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;
/// Largest accepted `SHUTDOWN_GRACE_MS` (one hour).
pub const MAX_SHUTDOWN_GRACE_MS: u64 = 3_600_000;

/// Settings every service reads: where to listen and how long to drain on shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `PORT`: 1-65535; the default is the app's.
    pub port: u16,
    /// `BIND_ADDR`: an IPv4 or IPv6 address; default `0.0.0.0`.
    pub bind_addr: IpAddr,
    /// `SHUTDOWN_GRACE_MS`: how long open connections may take to finish once shutdown begins;
    /// 0-3600000, default 10000.
    pub shutdown_grace: Duration,
}

/// A variable that is set but unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` must be {expected}, got `{value}`")]
pub struct InvalidVar {
    /// The variable's name, e.g. `PORT`.
    pub name: &'static str,
    /// The value found (lossily decoded if it was not UTF-8).
    pub value: String,
    /// What the value must be, e.g. "an integer from 1 to 65535".
    pub expected: String,
}

/// Every unusable variable found, in the order they were read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid environment: {}", JoinedProblems(.invalid))]
pub struct ConfigError {
    /// Never empty.
    pub invalid: Vec<InvalidVar>,
}

/// A snapshot of environment variables that parses values and collects every problem, so that a
/// service reports all bad variables before it does any work.
#[derive(Debug, Clone, Default)]
pub struct EnvReader {
    vars: BTreeMap<String, String>,
    invalid: Vec<InvalidVar>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env(default_port: u16) -> Result<Self, ConfigError> {
        let mut env = EnvReader::from_process();
        let config = Self::read(&mut env, default_port);
        env.finish()?;
        Ok(config)
    }

    /// Reads the given variables instead of the process environment (for tests).
    pub fn from_vars<I, K, V>(default_port: u16, vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut env = EnvReader::from_vars(vars);
        let config = Self::read(&mut env, default_port);
        env.finish()?;
        Ok(config)
    }

    /// Reads the settings from `env`, which records any problem; for apps that read more
    /// variables of their own before calling [`EnvReader::finish`].
    pub fn read(env: &mut EnvReader, default_port: u16) -> Self {
        let port = env.integer(PORT, default_port, 1..=u16::MAX);
        let bind_addr = env.parse_with(BIND_ADDR, DEFAULT_BIND_ADDR, "an IP address", |text| {
            text.parse().ok()
        });
        let shutdown_grace_ms = env.integer(
            SHUTDOWN_GRACE_MS,
            DEFAULT_SHUTDOWN_GRACE_MS,
            0..=MAX_SHUTDOWN_GRACE_MS,
        );
        Self {
            port,
            bind_addr,
            shutdown_grace: Duration::from_millis(shutdown_grace_ms),
        }
    }

    /// The address to listen on.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind_addr, self.port)
    }
}

impl EnvReader {
    /// Snapshots the process environment; names and values that are not UTF-8 are decoded lossily,
    /// so such a value is reported as invalid rather than ignored.
    pub fn from_process() -> Self {
        Self::from_vars(std::env::vars_os().map(|(name, value)| {
            (
                name.to_string_lossy().into_owned(),
                value.to_string_lossy().into_owned(),
            )
        }))
    }

    /// Uses the given variables instead of the process environment.
    pub fn from_vars<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: vars
                .into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
            invalid: Vec::new(),
        }
    }

    /// Reads an integer in `range`, or `default` when the variable is unset.
    pub fn integer<T>(&mut self, name: &'static str, default: T, range: RangeInclusive<T>) -> T
    where
        T: FromStr + PartialOrd + Display + Copy,
    {
        let expected = format!("an integer from {} to {}", range.start(), range.end());
        self.parse_with(name, default, &expected, |text| {
            text.parse().ok().filter(|value| range.contains(value))
        })
    }

    /// Reads a variable with `parse`, or `default` when it is unset. When `parse` returns `None`
    /// the problem is recorded (described by `expected`) and `default` is returned, so reading can
    /// go on and report every problem from [`EnvReader::finish`].
    pub fn parse_with<T>(
        &mut self,
        name: &'static str,
        default: T,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> T {
        let Some(text) = self.vars.get(name) else {
            return default;
        };
        if let Some(value) = parse(text) {
            return value;
        }
        self.invalid.push(InvalidVar {
            name,
            value: text.clone(),
            expected: expected.to_owned(),
        });
        default
    }

    /// Ends reading: an error listing every unusable variable, if there was any.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.invalid.is_empty() {
            return Ok(());
        }
        Err(ConfigError {
            invalid: self.invalid,
        })
    }
}

struct JoinedProblems<'a>(&'a [InvalidVar]);

impl Display for JoinedProblems<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.0.iter().enumerate() {
            if index > 0 {
                formatter.write_str("; ")?;
            }
            write!(formatter, "{problem}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(8080, vars.iter().copied())
    }

    #[test]
    fn unset_variables_take_their_defaults() {
        let config = config(&[("UNRELATED", "x")]).unwrap();
        assert_eq!(
            config,
            Config {
                port: 8080,
                bind_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                shutdown_grace: Duration::from_secs(10),
            }
        );
        assert_eq!(config.socket_addr().to_string(), "0.0.0.0:8080");
    }

    #[test]
    fn set_variables_override_the_defaults() {
        let config = config(&[
            ("PORT", "65535"),
            ("BIND_ADDR", "::1"),
            ("SHUTDOWN_GRACE_MS", "0"),
        ])
        .unwrap();
        assert_eq!(config.port, 65535);
        assert_eq!(config.bind_addr, IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(config.shutdown_grace, Duration::ZERO);
        assert_eq!(config.socket_addr().to_string(), "[::1]:65535");
    }

    #[test]
    fn a_bad_port_names_the_variable_and_the_value() {
        for bad in ["0", "65536", "-1", "http", "", " 80"] {
            let error = config(&[("PORT", bad)]).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!(
                    "invalid environment: `PORT` must be an integer from 1 to 65535, got `{bad}`"
                )
            );
        }
    }

    #[test]
    fn every_bad_variable_is_reported_in_reading_order() {
        let error = config(&[
            ("SHUTDOWN_GRACE_MS", "3600001"),
            ("BIND_ADDR", "localhost"),
            ("PORT", "0"),
        ])
        .unwrap_err();
        let names: Vec<_> = error.invalid.iter().map(|problem| problem.name).collect();
        assert_eq!(names, ["PORT", "BIND_ADDR", "SHUTDOWN_GRACE_MS"]);
        assert_eq!(
            error.to_string(),
            "invalid environment: `PORT` must be an integer from 1 to 65535, got `0`; \
             `BIND_ADDR` must be an IP address, got `localhost`; \
             `SHUTDOWN_GRACE_MS` must be an integer from 0 to 3600000, got `3600001`"
        );
    }

    #[test]
    fn apps_read_their_own_variables_through_the_same_reader() {
        let mut env = EnvReader::from_vars([("PORT", "x"), ("WORKER_INTERVAL_MS", "0")]);
        let config = Config::read(&mut env, 8081);
        let interval = env.integer("WORKER_INTERVAL_MS", 1000_u64, 1..=60_000);
        assert_eq!(config.port, 8081, "a bad value falls back to the default");
        assert_eq!(interval, 1000);
        let error = env.finish().unwrap_err();
        assert_eq!(error.invalid.len(), 2);
        assert_eq!(
            error.invalid[1],
            InvalidVar {
                name: "WORKER_INTERVAL_MS",
                value: "0".to_owned(),
                expected: "an integer from 1 to 60000".to_owned(),
            }
        );
    }
}

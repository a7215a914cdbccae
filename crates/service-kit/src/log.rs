//! Plain log lines on stderr, `<UTC time, RFC 3339> <LEVEL> <app>: <message>`, filtered by `RUST_LOG`.
//!
//! `RUST_LOG` holds one level (`off`, `error`, `warn`, `info`, `debug`, `trace`; any case),
//! default `info`. Per-module directives such as `info,hyper=warn` are not supported and are
//! reported as an invalid variable. Each line is written with one `write_all` so concurrent lines
//! do not interleave; a failed write to stderr is ignored, as there is nowhere else to report it.

use std::fmt::{self, Display};
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::EnvReader;

/// Name of the variable holding the most verbose level to write.
pub const RUST_LOG: &str = "RUST_LOG";

/// Severity of a log line, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The service cannot do what it was asked.
    Error,
    /// Something is wrong but the service goes on.
    Warn,
    /// Lifecycle events: listening, shutting down, stopped.
    Info,
    /// Per-job or per-request detail.
    Debug,
    /// Finer detail still.
    Trace,
}

/// Writes log lines for one app at or above a level; cheap to copy into tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logger {
    app: &'static str,
    max_level: Option<Level>,
}

impl Level {
    /// The upper-case name written in log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "ERROR",
            Self::Warn => "WARN",
            Self::Info => "INFO",
            Self::Debug => "DEBUG",
            Self::Trace => "TRACE",
        }
    }
}

impl Display for Level {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl Logger {
    /// A logger writing lines up to `max_level`; `None` writes nothing.
    pub const fn new(app: &'static str, max_level: Option<Level>) -> Self {
        Self { app, max_level }
    }

    /// A logger whose level comes from `RUST_LOG` (default `info`); a bad value is recorded in `env`.
    pub fn read(env: &mut EnvReader, app: &'static str) -> Self {
        let max_level = env.parse_with(
            RUST_LOG,
            Some(Level::Info),
            "one of off, error, warn, info, debug, trace",
            parse_max_level,
        );
        Self::new(app, max_level)
    }

    /// Whether lines at `level` are written.
    pub fn enabled(&self, level: Level) -> bool {
        self.max_level.is_some_and(|max_level| level <= max_level)
    }

    /// Writes one line at `level`, if enabled.
    pub fn log(&self, level: Level, message: impl Display) {
        if !self.enabled(level) {
            return;
        }
        let line = format_line(SystemTime::now(), level, self.app, message);
        let _ignored = std::io::stderr().lock().write_all(line.as_bytes());
    }

    /// Writes an `ERROR` line.
    pub fn error(&self, message: impl Display) {
        self.log(Level::Error, message);
    }

    /// Writes a `WARN` line.
    pub fn warn(&self, message: impl Display) {
        self.log(Level::Warn, message);
    }

    /// Writes an `INFO` line.
    pub fn info(&self, message: impl Display) {
        self.log(Level::Info, message);
    }

    /// Writes a `DEBUG` line.
    pub fn debug(&self, message: impl Display) {
        self.log(Level::Debug, message);
    }
}

/// Parses a `RUST_LOG` value: `Some(None)` for `off`, `None` when it is not a level.
pub fn parse_max_level(text: &str) -> Option<Option<Level>> {
    let level = match text.to_ascii_lowercase().as_str() {
        "off" => return Some(None),
        "error" => Level::Error,
        "warn" => Level::Warn,
        "info" => Level::Info,
        "debug" => Level::Debug,
        "trace" => Level::Trace,
        _ => return None,
    };
    Some(Some(level))
}

/// One log line, newline included.
pub fn format_line(time: SystemTime, level: Level, app: &str, message: impl Display) -> String {
    format!("{} {level} {app}: {message}\n", Rfc3339(time))
}

/// Formats a time as `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC; times before 1970 print as the epoch.
struct Rfc3339(SystemTime);

impl Display for Rfc3339 {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let since_epoch = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        let seconds = since_epoch.as_secs();
        let (year, month, day) = civil_from_days(seconds / 86_400);
        let second_of_day = seconds % 86_400;
        write!(
            formatter,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            second_of_day / 3600,
            second_of_day % 3600 / 60,
            second_of_day % 60,
            since_epoch.subsec_millis()
        )
    }
}

/// Year, month and day of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`,
/// restricted to days on or after the epoch).
fn civil_from_days(days_since_epoch: u64) -> (u64, u64, u64) {
    let days = days_since_epoch + 719_468;
    let era = days / 146_097;
    let day_of_era = days % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(seconds: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_millis(millis)
    }

    #[test]
    fn lines_carry_utc_time_level_app_and_message() {
        let cases = [
            (at(0, 0), "1970-01-01T00:00:00.000Z"),
            (at(951_782_400, 5), "2000-02-29T00:00:00.005Z"),
            (at(1_700_000_000, 999), "2023-11-14T22:13:20.999Z"),
            (at(4_107_542_399, 0), "2100-02-28T23:59:59.000Z"),
            (at(253_402_300_799, 0), "9999-12-31T23:59:59.000Z"),
        ];
        for (time, expected) in cases {
            assert_eq!(
                format_line(time, Level::Warn, "api", "disk full"),
                format!("{expected} WARN api: disk full\n")
            );
        }
    }

    #[test]
    fn rust_log_picks_the_most_verbose_level() {
        let read = |value: &str| {
            let mut env = EnvReader::from_vars([(RUST_LOG, value)]);
            let logger = Logger::read(&mut env, "api");
            (logger, env.finish())
        };
        let (logger, result) = read("WARN");
        assert!(result.is_ok());
        assert!(logger.enabled(Level::Error));
        assert!(logger.enabled(Level::Warn));
        assert!(!logger.enabled(Level::Info));

        let (logger, result) = read("off");
        assert!(result.is_ok());
        assert!(!logger.enabled(Level::Error));

        let (logger, result) = read("info,hyper=warn");
        assert_eq!(
            result.unwrap_err().to_string(),
            "invalid environment: `RUST_LOG` must be one of off, error, warn, info, debug, trace, \
             got `info,hyper=warn`"
        );
        assert!(
            logger.enabled(Level::Info),
            "a bad value falls back to info"
        );
        assert!(!logger.enabled(Level::Debug));
    }

    #[test]
    fn rust_log_defaults_to_info() {
        let mut env = EnvReader::from_vars([("OTHER", "1")]);
        let logger = Logger::read(&mut env, "worker");
        assert_eq!(logger, Logger::new("worker", Some(Level::Info)));
    }
}

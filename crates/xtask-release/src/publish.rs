//! `cargo publish` of one package, with crates.io's rate limit honoured: on HTTP 429 cargo
//! prints the registry's "Please try again after <HTTP date>"; the publish waits until then and
//! retries (bounded), or stops with that time so a rerun continues. A version the registry
//! already has counts as published (a previous run published it but stopped before recording).

use std::path::Path;
use std::time::Duration;

use xtask_util::timefmt::parse_http_date;

/// How a publish ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    Now,
    Already,
}

/// One `cargo publish` attempt's result.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub success: bool,
    pub output: String,
}

/// Limits of the retry loop.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Longest single wait for a rate limit; longer ones stop the release (rerun later).
    pub max_wait: Duration,
    pub max_attempts: usize,
    /// Wait when a 429 names no time.
    pub default_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        let max_wait = std::env::var("XTASK_RELEASE_MAX_RATE_LIMIT_WAIT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(900);
        RetryPolicy {
            max_wait: Duration::from_secs(max_wait),
            max_attempts: 5,
            default_wait: Duration::from_secs(60),
        }
    }
}

/// The `cargo publish` command line for `package`. A dry run also packages the workspace
/// dependencies being released with it (`dry_run_with`), which cargo then resolves from its
/// local overlay, since the registry does not have them yet.
pub fn publish_args(package: &str, dry_run_with: Option<&[String]>) -> Vec<String> {
    let mut args = vec!["publish".to_string(), "-p".to_string(), package.to_string()];
    if let Some(dependencies) = dry_run_with {
        args.push("--dry-run".to_string());
        for dependency in dependencies {
            args.push("-p".to_string());
            args.push(dependency.clone());
        }
    }
    args
}

/// Runs `attempt` until it succeeds, honouring rate limits with `sleep`.
pub fn publish_with_retries(
    package: &str,
    policy: RetryPolicy,
    now: impl Fn() -> i64,
    mut sleep: impl FnMut(Duration),
    mut attempt: impl FnMut() -> anyhow::Result<Attempt>,
    mut note: impl FnMut(&str),
) -> anyhow::Result<Published> {
    for number in 1..=policy.max_attempts {
        let result = attempt()?;
        if result.success {
            return Ok(Published::Now);
        }
        if is_already_published(&result.output) {
            return Ok(Published::Already);
        }
        let Some(until) = rate_limited(&result.output) else {
            anyhow::bail!(
                "`cargo publish -p {package}` failed:\n{}",
                result.output.trim_end()
            );
        };
        let wait = match until {
            Some(until) => Duration::from_secs(u64::try_from(until - now()).unwrap_or(0) + 1),
            None => policy.default_wait,
        };
        if wait > policy.max_wait || number == policy.max_attempts {
            let when = until.map_or_else(
                || "later".to_string(),
                |t| format!("after {}", xtask_util::timefmt::rfc3339(t)),
            );
            anyhow::bail!(
                "the registry rate-limits publishing (HTTP 429) while publishing `{package}`; run `cargo xtask release --execute` again {when} to continue"
            );
        }
        note(&format!(
            "{package}: rate limited (HTTP 429), retrying in {}s",
            wait.as_secs()
        ));
        sleep(wait);
    }
    anyhow::bail!("`cargo publish -p {package}` did not succeed")
}

/// `Some(until)` when the output is a rate-limit refusal (`until` = the retry time if given).
pub fn rate_limited(output: &str) -> Option<Option<i64>> {
    if !(output.contains("429") || output.contains("Too Many Requests")) {
        return None;
    }
    let until = output.find("try again after ").and_then(|at| {
        let rest = &output[at + "try again after ".len()..];
        let end = rest.find("GMT")? + 3;
        parse_http_date(&rest[..end])
    });
    Some(until)
}

fn is_already_published(output: &str) -> bool {
    output.contains("already exists on crates.io index")
        || (output.contains("crate version") && output.contains("is already uploaded"))
        || output.contains("already exists on")
}

/// Runs cargo with `args` in `dir`, capturing output.
pub fn run_cargo(dir: &Path, args: &[String]) -> anyhow::Result<Attempt> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = std::process::Command::new(&cargo)
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|error| anyhow::anyhow!("failed to run `cargo {}`: {error}", args.join(" ")))?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok(Attempt {
        success: output.status.success(),
        output: text,
    })
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    const LIMITED: &str = "error: failed to publish to registry at https://crates.io\n\nCaused by:\n  the remote server responded with an error (status 429 Too Many Requests): You have published too many new crates in a short period of time. Please try again after Fri, 18 Aug 2023 14:26:36 GMT or email help@crates.io to have your limit increased.\n";

    #[test]
    fn parses_the_retry_time() {
        assert_eq!(rate_limited(LIMITED), Some(Some(1_692_368_796)));
        assert_eq!(
            rate_limited("error: status 429 Too Many Requests"),
            Some(None)
        );
        assert_eq!(rate_limited("error: no matching package"), None);
    }

    #[test]
    fn waits_for_the_retry_time_then_succeeds() {
        let now = 1_692_368_796 - 30;
        let attempts = RefCell::new(0);
        let mut slept = Vec::new();
        let result = publish_with_retries(
            "core",
            RetryPolicy {
                max_wait: Duration::from_secs(60),
                max_attempts: 5,
                default_wait: Duration::from_secs(5),
            },
            || now,
            |d| slept.push(d),
            || {
                *attempts.borrow_mut() += 1;
                Ok(Attempt {
                    success: *attempts.borrow() == 2,
                    output: LIMITED.to_string(),
                })
            },
            |_| {},
        )
        .unwrap();
        assert_eq!(result, Published::Now);
        assert_eq!(slept, vec![Duration::from_secs(31)]);
    }

    #[test]
    fn a_long_limit_stops_with_the_time_and_already_published_counts() {
        let error = publish_with_retries(
            "core",
            RetryPolicy {
                max_wait: Duration::from_secs(10),
                max_attempts: 5,
                default_wait: Duration::from_secs(5),
            },
            || 1_692_368_796 - 3600,
            |_| panic!("must not sleep an hour"),
            || {
                Ok(Attempt {
                    success: false,
                    output: LIMITED.to_string(),
                })
            },
            |_| {},
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("again after 2023-08-18T14:26:36Z"),
            "{error}"
        );
        let already = publish_with_retries(
            "core",
            RetryPolicy::default(),
            || 0,
            |_| {},
            || {
                Ok(Attempt {
                    success: false,
                    output: "error: crate version `0.2.0` is already uploaded".into(),
                })
            },
            |_| {},
        )
        .unwrap();
        assert_eq!(already, Published::Already);
    }
}

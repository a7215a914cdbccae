//! sccache as `bench ci` compares with it: `RUSTC_WRAPPER=sccache` in front of plain cargo,
//! its shared cache a real WebDAV server (nginx on loopback), configured as sccache's
//! documentation recommends for CI (`CARGO_INCREMENTAL=0`: incremental crates are not
//! cacheable). Each fresh machine starts its own sccache server (as a CI job does) and the
//! figures of each run come from that server's own statistics.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::servers::{Nginx, Server};

/// An sccache client configured for one WebDAV server.
pub struct Sccache {
    program: PathBuf,
    port: u16,
    /// sccache's local dir (unused as a cache with WebDAV set; kept out of `$HOME`).
    dir: PathBuf,
    webdav: Server,
}

/// What one sccache server counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SccacheStats {
    pub requests: u64,
    pub hits: u64,
    pub misses: u64,
    /// Calls sccache cannot cache (bin crates' links, proc-macros, build scripts, ...).
    pub not_cached: u64,
    pub write_errors: u64,
}

impl Sccache {
    /// Starts the WebDAV server (`nginx`) and configures `program` to use it, its local dir
    /// under `work_dir`.
    pub fn start(program: PathBuf, nginx: &Path, work_dir: &Path) -> anyhow::Result<Sccache> {
        let webdav = crate::servers::nginx(nginx, Nginx::WebDav)?;
        let dir = work_dir.join("sccache-local");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("failed to create `{}`", dir.display()))?;
        Ok(Sccache {
            program,
            port: crate::servers::free_port()?,
            dir,
            webdav,
        })
    }

    /// Sets the wrapper and sccache's configuration on `command` (a cargo command).
    pub fn wrap(&self, command: &mut Command) {
        command.env("RUSTC_WRAPPER", &self.program);
        self.configure(command);
    }

    fn configure(&self, command: &mut Command) {
        command
            .env("SCCACHE_WEBDAV_ENDPOINT", self.webdav.url())
            .env("SCCACHE_SERVER_PORT", self.port.to_string())
            .env("SCCACHE_DIR", &self.dir)
            .env("SCCACHE_IDLE_TIMEOUT", "0")
            .env_remove("SCCACHE_LOG")
            .env_remove("RUSTC_WORKSPACE_WRAPPER");
    }

    /// A fresh machine's sccache server: the previous one stopped, a new one started.
    pub fn restart(&self) -> anyhow::Result<()> {
        self.stop();
        self.succeed(&["--start-server"]).map(drop)
    }

    /// The running server's statistics.
    pub fn stats(&self) -> anyhow::Result<SccacheStats> {
        let output = self.succeed(&["--show-stats", "--stats-format=json"])?;
        parse_stats(&output.stdout).with_context(|| {
            format!(
                "`{} --show-stats --stats-format=json` printed no statistics",
                self.program.display()
            )
        })
    }

    /// How many files the WebDAV server holds.
    pub fn stored_files(&self) -> usize {
        self.webdav.stored_files().len()
    }

    /// Stops the server (nothing to do when none runs).
    pub fn stop(&self) {
        let _ = self.client(&["--stop-server"]);
    }

    /// The client's output for `args`; an error, with its stderr, when it fails.
    fn succeed(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        let output = self.client(args)?;
        if !output.status.success() {
            bail!(
                "`{} {}` failed ({}):\n{}",
                self.program.display(),
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(output)
    }

    fn client(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        let mut command = Command::new(&self.program);
        command.args(args);
        self.configure(&mut command);
        command
            .output()
            .with_context(|| format!("failed to start `{}`", self.program.display()))
    }
}

impl Drop for Sccache {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The counts of `sccache --show-stats --stats-format=json` (`{"stats": {...}}`, counts per
/// language or reason summed).
fn parse_stats(json: &[u8]) -> anyhow::Result<SccacheStats> {
    let value: serde_json::Value = serde_json::from_slice(json)?;
    let stats = value
        .get("stats")
        .context("no `stats` object in the JSON")?;
    let number = |key: &str| stats[key].as_u64().unwrap_or(0);
    let summed = |key: &str| -> u64 {
        let value = &stats[key];
        let counts = value.get("counts").unwrap_or(value);
        counts.as_object().map_or(0, |map| {
            map.values().filter_map(serde_json::Value::as_u64).sum()
        })
    };
    Ok(SccacheStats {
        requests: number("compile_requests"),
        hits: summed("cache_hits"),
        misses: summed("cache_misses"),
        not_cached: summed("not_cached"),
        write_errors: number("cache_write_errors"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_sum_the_counts_per_language_and_reason() {
        let json = br#"{"stats":{"compile_requests":120,"requests_executed":100,
            "cache_hits":{"counts":{"Rust":70},"adv_counts":{}},
            "cache_misses":{"counts":{"Rust":5,"C/C++":2},"adv_counts":{}},
            "not_cached":{"crate-type":12,"-":3},
            "cache_write_errors":1}}"#;
        assert_eq!(
            parse_stats(json).unwrap(),
            SccacheStats {
                requests: 120,
                hits: 70,
                misses: 7,
                not_cached: 15,
                write_errors: 1,
            }
        );
        assert!(parse_stats(b"{}").is_err());
        assert!(parse_stats(b"not json").is_err());
    }
}

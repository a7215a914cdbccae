//! `cargo xtask cache doctor`: probes the configured server the way a run uses it and says
//! exactly what is wrong. Checks, in order: the settings (no secret shown), the server's status
//! endpoint (which also checks the token), writing a small canary record, reading it back
//! (byte for byte, signature verified), each with its latency. Read-only mode skips the write
//! and reads a record that is expected to be absent.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use xtask_model::RemoteProtocol;
use xtask_util::sha256_hex;

use crate::backend::{Backend, FetchError};
use crate::settings::RemoteSettings;

/// One probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
    pub millis: Option<u128>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoctorReport {
    pub server: String,
    pub checks: Vec<Check>,
}

impl DoctorReport {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|check| check.ok)
    }

    pub fn render(&self) -> String {
        let mut text = format!("remote cache: {}\n", self.server);
        for check in &self.checks {
            let latency = check
                .millis
                .map(|ms| format!(" ({ms} ms)"))
                .unwrap_or_default();
            text.push_str(&format!(
                "  [{}] {}{latency}: {}\n",
                if check.ok { "ok" } else { "FAIL" },
                check.name,
                check.detail
            ));
        }
        text.push_str(if self.ok() {
            "the remote cache works\n"
        } else {
            "the remote cache does NOT work: see FAIL above (runs still work, from the local cache)\n"
        });
        text
    }
}

pub fn doctor(settings: &RemoteSettings) -> DoctorReport {
    let backend = Backend::new(settings);
    let mut checks = Vec::new();
    let mut config_problems = Vec::new();
    if settings.protocol == RemoteProtocol::Turbo && settings.team.is_none() {
        config_problems
            .push("no team: set TURBO_TEAM (slug) or TURBO_TEAMID (most servers require one)");
    }
    if settings.protocol == RemoteProtocol::Turbo && settings.token.is_none() {
        config_problems.push("no token: set TURBO_TOKEN");
    }
    checks.push(Check {
        name: "settings",
        ok: config_problems.is_empty(),
        detail: if config_problems.is_empty() {
            settings.describe()
        } else {
            format!("{}; {}", settings.describe(), config_problems.join("; "))
        },
        millis: None,
    });

    let started = Instant::now();
    let status = backend.status();
    let status_ok = match &status {
        Ok(state) => settings.protocol != RemoteProtocol::Turbo || state == "enabled",
        Err(_) => false,
    };
    checks.push(Check {
        name: "status and authentication",
        ok: status_ok,
        detail: match status {
            Ok(state) if status_ok => format!("server answers: {state}"),
            Ok(state) => format!("the server says caching is `{state}`, not `enabled`"),
            Err(failure) => failure.kind.to_string(),
        },
        millis: Some(started.elapsed().as_millis()),
    });
    if !status_ok {
        return DoctorReport {
            server: settings.url.clone(),
            checks,
        };
    }

    let unix_nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let key =
        sha256_hex(format!("xtask-doctor-canary\0{unix_nanos}\0{}", std::process::id()).as_bytes());
    let canary = format!("xtask cache doctor canary {unix_nanos}\n").into_bytes();
    if settings.can_write() {
        let started = Instant::now();
        let written = backend.put_record(&key, &canary);
        checks.push(Check {
            name: "write",
            ok: written.is_ok(),
            detail: match &written {
                Ok(bytes) => format!("stored a {bytes}-byte canary"),
                Err(failure) => failure.kind.to_string(),
            },
            millis: Some(started.elapsed().as_millis()),
        });
        if written.is_err() {
            return DoctorReport {
                server: settings.url.clone(),
                checks,
            };
        }
    } else {
        checks.push(Check {
            name: "write",
            ok: true,
            detail: format!("skipped: mode is {}", settings.mode.as_str()),
            millis: None,
        });
    }

    let started = Instant::now();
    let read = backend.get_record(&key);
    let millis = Some(started.elapsed().as_millis());
    let (ok, detail) = match (read, settings.can_write()) {
        (Ok(Some(bytes)), _) if bytes == canary => (
            true,
            if settings.signature_key.is_some() {
                "read the canary back, signature verified".to_string()
            } else {
                "read the canary back".to_string()
            },
        ),
        (Ok(Some(_)), _) => (
            false,
            "the canary came back with different bytes".to_string(),
        ),
        (Ok(None), true) => (
            false,
            "the canary just written is not there (the server accepts writes but drops them)"
                .to_string(),
        ),
        (Ok(None), false) => (
            true,
            "reads work (an absent record answered 404)".to_string(),
        ),
        (Err(FetchError::Untrusted(reason)), _) => (false, reason),
        (Err(FetchError::Failure(failure)), _) => (false, failure.kind.to_string()),
    };
    checks.push(Check {
        name: "read",
        ok,
        detail,
        millis,
    });
    DoctorReport {
        server: settings.url.clone(),
        checks,
    }
}

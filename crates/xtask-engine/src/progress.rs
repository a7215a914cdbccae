//! Progress of one cargo call. Cargo's stderr is read line by line as it comes: when each
//! package starts compiling is remembered (a task's own time runs from then to its last
//! artifact, not from the start of the shared cargo call), and a line saying how far cargo got
//! is reported at least every [`interval`], so a log nobody watches live (CI) shows the run
//! moving during a long build.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::report::{Reporter, format_duration};

/// How often a long cargo call reports progress: 10 s, or `XTASK_PROGRESS_INTERVAL_MS`.
pub(crate) fn interval() -> Duration {
    std::env::var("XTASK_PROGRESS_INTERVAL_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::from_secs(10), Duration::from_millis)
}

/// Cargo's status verbs for a unit that starts compiling.
const STARTING: [&str; 3] = ["Compiling ", "Checking ", "Documenting "];
/// How many of the most recently started packages a progress line names.
const NAMED: usize = 3;

pub(crate) struct Progress {
    what: String,
    started: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// `name vversion` -> when cargo started compiling it.
    started: HashMap<String, Instant>,
    recent: VecDeque<String>,
    artifacts: usize,
}

impl Progress {
    /// `what` names the call in progress lines, e.g. `cargo build (9 packages)`.
    pub fn new(what: String) -> Progress {
        Progress {
            what,
            started: Instant::now(),
            state: Mutex::new(State::default()),
        }
    }

    /// Reads cargo's stderr to its end, noting when each package starts; returns all of it.
    pub fn read_stderr(&self, stderr: impl Read) -> Vec<u8> {
        let mut all = Vec::new();
        let mut reader = BufReader::new(stderr);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            if let Some(package) = starting_package(&String::from_utf8_lossy(&line))
                && let Ok(mut state) = self.state.lock()
            {
                state
                    .started
                    .entry(package.clone())
                    .or_insert_with(Instant::now);
                state.recent.push_back(package);
                if state.recent.len() > NAMED {
                    state.recent.pop_front();
                }
            }
            all.append(&mut line);
        }
        all
    }

    /// One more artifact is done.
    pub fn artifact(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.artifacts += 1;
        }
    }

    /// When cargo started compiling package `name` at `version`, if it did.
    pub fn started_at(&self, name: &str, version: &str) -> Option<Instant> {
        let state = self.state.lock().ok()?;
        state.started.get(&format!("{name} v{version}")).copied()
    }

    /// Reports a progress line every `every` until `done` is closed.
    pub fn heartbeat(&self, reporter: &Reporter, every: Duration, done: &Receiver<()>) {
        heartbeat(reporter, every, done, || self.line());
    }

    fn line(&self) -> String {
        let elapsed = format_duration(self.started.elapsed());
        let Ok(state) = self.state.lock() else {
            return format!("{}: still running ({elapsed})", self.what);
        };
        let mut line = format!(
            "{}: {} artifacts done, {} packages started ({elapsed})",
            self.what,
            state.artifacts,
            state.started.len()
        );
        if !state.recent.is_empty() {
            let recent: Vec<&str> = state.recent.iter().map(String::as_str).collect();
            line.push_str(&format!("; latest: {}", recent.join(", ")));
        }
        line
    }
}

/// Reports `line()` every `every` until `done` is closed.
fn heartbeat(reporter: &Reporter, every: Duration, done: &Receiver<()>, line: impl Fn() -> String) {
    while let Err(RecvTimeoutError::Timeout) = done.recv_timeout(every) {
        reporter.running(&line());
    }
}

/// Progress of a batch's test binaries, which the tool runs itself after the cargo call:
/// how many packages' tests are done and which are running, reported like a cargo call's.
pub(crate) struct TestRuns {
    what: String,
    started: Instant,
    total: usize,
    state: Mutex<(usize, Vec<String>)>,
}

impl TestRuns {
    pub fn new(what: String, total: usize) -> TestRuns {
        TestRuns {
            what,
            started: Instant::now(),
            total,
            state: Mutex::new((0, Vec::new())),
        }
    }

    pub fn running(&self, package: &str) {
        if let Ok(mut state) = self.state.lock() {
            state.1.push(package.to_string());
        }
    }

    pub fn finished(&self, package: &str) {
        if let Ok(mut state) = self.state.lock() {
            state.0 += 1;
            state.1.retain(|p| p != package);
        }
    }

    /// Reports a progress line every `every` until `done` is closed.
    pub fn heartbeat(&self, reporter: &Reporter, every: Duration, done: &Receiver<()>) {
        heartbeat(reporter, every, done, || self.line());
    }

    fn line(&self) -> String {
        let elapsed = format_duration(self.started.elapsed());
        let Ok(state) = self.state.lock() else {
            return format!("{}: tests still running ({elapsed})", self.what);
        };
        let mut line = format!(
            "{}: tests of {} of {} packages done ({elapsed})",
            self.what, state.0, self.total
        );
        if !state.1.is_empty() {
            line.push_str(&format!("; running: {}", state.1.join(", ")));
        }
        line
    }
}

/// `serde v1.0.200` from `   Compiling serde v1.0.200` (or `Checking`, with a path after it).
fn starting_package(line: &str) -> Option<String> {
    let rest = line.trim_start();
    let rest = STARTING.iter().find_map(|verb| rest.strip_prefix(verb))?;
    let mut words = rest.split_whitespace();
    let name = words.next()?;
    let version = words.next().filter(|v| v.starts_with('v'))?;
    Some(format!("{name} {version}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_cargo_status_lines_that_start_a_package() {
        assert_eq!(
            starting_package("   Compiling serde v1.0.200\n").as_deref(),
            Some("serde v1.0.200")
        );
        assert_eq!(
            starting_package("    Checking api v0.1.0 (/work/apps/api)\n").as_deref(),
            Some("api v0.1.0")
        );
        assert_eq!(starting_package("    Finished `dev` profile\n"), None);
        assert_eq!(starting_package("error: could not compile `api`\n"), None);
    }

    #[test]
    fn test_runs_say_how_many_packages_are_done_and_which_run() {
        let runs = TestRuns::new("cargo test (3 packages)".into(), 3);
        runs.running("a");
        runs.running("b");
        runs.finished("a");
        let line = runs.line();
        assert!(
            line.starts_with("cargo test (3 packages): tests of 1 of 3 packages done ("),
            "{line}"
        );
        assert!(line.ends_with("; running: b"), "{line}");
    }

    #[test]
    fn remembers_start_times_and_names_the_latest_packages() {
        let progress = Progress::new("cargo build (2 packages)".into());
        let stderr = "   Compiling a v0.1.0 (/w/a)\n   Compiling b v0.2.0 (/w/b)\nwarning: x\n";
        let all = progress.read_stderr(stderr.as_bytes());
        assert_eq!(all, stderr.as_bytes());
        progress.artifact();
        assert!(progress.started_at("a", "0.1.0").is_some());
        assert!(progress.started_at("b", "0.2.0").is_some());
        assert!(progress.started_at("c", "0.1.0").is_none());
        let line = progress.line();
        assert!(
            line.starts_with("cargo build (2 packages): 1 artifacts done, 2 packages started ("),
            "{line}"
        );
        assert!(line.ends_with("; latest: a v0.1.0, b v0.2.0"), "{line}");
    }
}

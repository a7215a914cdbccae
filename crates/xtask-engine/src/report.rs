//! The reporter: the one owner of the terminal. The engine sends it events; it renders them as
//! an indicatif progress bar with task lines on a terminal, or as plain lines when `CI` is set
//! or stderr is not a terminal. Everything goes to stderr; stdout is left for data.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How a task ended, as shown to the user and written to the run summary (or, in a dry run,
/// how it would start). Serialized from the cache's point of view: `hit`, `miss` (ran and
/// succeeded, or would run), `failed`, `skipped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskStatus {
    /// Restored from the cache.
    Hit,
    /// Not in the cache: ran and succeeded (its result was stored, if it may be).
    #[serde(rename = "miss")]
    Succeeded,
    /// Ran and failed.
    Failed,
    /// Not run because a dependency failed.
    Skipped,
    /// A dry run's task that is not in the cache: it would run.
    #[serde(rename = "miss")]
    WouldRun,
}

impl TaskStatus {
    /// The words the reporter shows for a finished task.
    pub fn word(self) -> &'static str {
        match self {
            TaskStatus::Hit => "cache hit",
            TaskStatus::Succeeded => "cache miss, done",
            TaskStatus::Failed => "FAILED",
            TaskStatus::Skipped => "skipped (a dependency failed)",
            TaskStatus::WouldRun => "cache miss, would run",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportMode {
    Progress,
    Plain,
}

impl ReportMode {
    /// Progress on an interactive stderr, plain lines under CI or when piped.
    pub fn detect() -> ReportMode {
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0");
        if !ci && std::io::stderr().is_terminal() {
            ReportMode::Progress
        } else {
            ReportMode::Plain
        }
    }
}

/// Totals printed at the end of a run.
#[derive(Debug, Clone, Default)]
pub struct RunTotals {
    pub tasks: usize,
    pub hits: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub skipped: usize,
    pub elapsed: Duration,
    pub saved: Duration,
    pub tests_passed: u64,
    pub tests_failed: u64,
    pub ran_tests: bool,
    /// What the remote cache did, when one is configured.
    pub remote: Option<xtask_remote::RemoteTotals>,
    /// Tasks whose results were not stored because an input changed while they ran.
    pub changed_during_run: Vec<String>,
    /// The wall time of the run's cargo calls (the rest of `elapsed` is the tool's).
    pub cargo: Duration,
}

/// One line of [`Reporter::tasks_finished`]: a task, its status, hash, time and log.
pub struct FinishedTask<'a> {
    pub label: &'a str,
    pub status: TaskStatus,
    pub hash: &'a str,
    pub duration: Duration,
    pub log: &'a [u8],
}

pub struct Reporter {
    mode: ReportMode,
    bar: Mutex<Option<ProgressBar>>,
    quiet_logs: bool,
}

impl Reporter {
    pub fn new(mode: ReportMode) -> Reporter {
        Reporter {
            mode,
            bar: Mutex::new(None),
            quiet_logs: false,
        }
    }

    /// Does not replay logs of cache hits (used by benchmarks and `--dry-run`).
    pub fn with_quiet_hits(mut self, quiet: bool) -> Reporter {
        self.quiet_logs = quiet;
        self
    }

    pub fn start(&self, total: usize) {
        if self.mode == ReportMode::Progress {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{pos}/{len}] {wide_msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            if let Ok(mut slot) = self.bar.lock() {
                *slot = Some(bar);
            }
        }
    }

    pub fn running(&self, what: &str) {
        match self.bar.lock().ok().and_then(|b| b.clone()) {
            Some(bar) => bar.set_message(what.to_string()),
            None => self.line(what),
        }
    }

    pub fn task_finished(
        &self,
        label: &str,
        status: TaskStatus,
        hash: &str,
        duration: Duration,
        log: &[u8],
    ) {
        self.tasks_finished(&[FinishedTask {
            label,
            status,
            hash,
            duration,
            log,
        }]);
    }

    /// Several finished tasks in one write (a fully cached run reports hundreds).
    pub fn tasks_finished(&self, tasks: &[FinishedTask<'_>]) {
        let mut text = String::new();
        for task in tasks {
            let short = &task.hash[..task.hash.len().min(12)];
            text.push_str(&format!(
                "{}: {} {short} ({})\n",
                task.label,
                task.status.word(),
                format_duration(task.duration)
            ));
            let replay = !(task.status == TaskStatus::Hit && self.quiet_logs);
            if replay {
                for line in String::from_utf8_lossy(task.log).lines() {
                    text.push_str(task.label);
                    text.push_str(": ");
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
        self.print(&text);
        if let Some(bar) = self.bar.lock().ok().and_then(|b| b.clone()) {
            bar.inc(tasks.len() as u64);
        }
    }

    pub fn warning(&self, message: &str) {
        self.print(&format!("warning: {message}\n"));
    }

    pub fn line(&self, message: &str) {
        self.print(&format!("{message}\n"));
    }

    pub fn finish(&self, totals: &RunTotals) {
        if let Some(bar) = self.bar.lock().ok().and_then(|mut b| b.take()) {
            bar.finish_and_clear();
        }
        let mut text = String::new();
        text.push_str(&format!(
            "\n Tasks:  {} successful, {} total{}{}\n",
            totals.hits + totals.succeeded,
            totals.tasks,
            if totals.failed > 0 {
                format!(", {} failed", totals.failed)
            } else {
                String::new()
            },
            if totals.skipped > 0 {
                format!(", {} skipped", totals.skipped)
            } else {
                String::new()
            },
        ));
        text.push_str(&format!(
            "Cached:  {} cached, {} total\n",
            totals.hits, totals.tasks
        ));
        text.push_str(&format!(
            "  Time:  {} (saved {})\n",
            format_duration(totals.elapsed),
            format_duration(totals.saved)
        ));
        if !totals.changed_during_run.is_empty() {
            text.push_str(&format!(
                "Not cached (inputs changed while running): {}\n",
                totals.changed_during_run.join(", ")
            ));
        }
        if let Some(remote) = &totals.remote {
            let mut line = format!(
                "Remote:  {} hits, {} uploaded",
                remote.hits, remote.uploaded
            );
            if remote.upload_failed > 0 {
                line.push_str(&format!(", {} not uploaded", remote.upload_failed));
            }
            if remote.rejected > 0 {
                line.push_str(&format!(", {} rejected", remote.rejected));
            }
            line.push_str(&format!(" ({}, {})", remote.server, remote.mode));
            if remote.disabled.is_some() {
                line.push_str(", switched off after a failure");
            }
            text.push_str(&line);
            text.push('\n');
        }
        if totals.ran_tests {
            text.push_str(&format!(
                "\n{} passed, {} failed\n",
                totals.tests_passed, totals.tests_failed
            ));
        }
        self.print(&text);
    }

    fn print(&self, text: &str) {
        match self.bar.lock().ok().and_then(|b| b.clone()) {
            Some(bar) => bar.suspend(|| write_stderr(text)),
            None => write_stderr(text),
        }
    }
}

fn write_stderr(text: &str) {
    let mut stderr = std::io::stderr().lock();
    // A closed stderr is not worth failing the run for.
    let _ = stderr.write_all(text.as_bytes());
}

pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.2}s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::TaskStatus;

    #[test]
    fn statuses_serialize_as_the_cache_sees_them() {
        let serialized = |status: TaskStatus| serde_json::to_string(&status).unwrap();
        assert_eq!(serialized(TaskStatus::Hit), r#""hit""#);
        assert_eq!(serialized(TaskStatus::Succeeded), r#""miss""#);
        assert_eq!(serialized(TaskStatus::WouldRun), r#""miss""#);
        assert_eq!(serialized(TaskStatus::Failed), r#""failed""#);
        assert_eq!(serialized(TaskStatus::Skipped), r#""skipped""#);
    }
}

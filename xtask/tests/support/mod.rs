//! Test support for the CLI tests: a private copy of a fixture workspace in a temp dir, the real
//! `xtask` binary run on it with a hermetic environment, the JSON run summary, snapshot filters.

// Each test binary (cli, remote, ...) uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;
use tempfile::TempDir;
use testkit::copy_dir;

/// Environment variables removed from every spawned command: they would redirect the target
/// or cache directory, change what cargo builds, or add noise to the output.
const REMOVED_ENV: [&str; 26] = [
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_TARGET_TMPDIR",
    "XTASK_CACHE_DIR",
    "XTASK_AFFECTED_BASE",
    "RUSTFLAGS",
    // CI sets it to 0 (`.ci/run`); the fixtures build as cargo does by default, and some tests
    // read which crates were compiled from `target/debug/incremental`.
    "CARGO_INCREMENTAL",
    "RUST_BACKTRACE",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "NO_COLOR",
    // A developer's remote cache must never leak into the tests.
    "TURBO_API",
    "TURBO_TOKEN",
    "TURBO_TEAM",
    "TURBO_TEAMID",
    "TURBO_CACHE",
    "TURBO_REMOTE_CACHE_SIGNATURE_KEY",
    "TURBO_REMOTE_CACHE_READ_ONLY",
    "TURBO_REMOTE_CACHE_TIMEOUT",
    "XTASK_REMOTE_CACHE_URL",
    "XTASK_REMOTE_CACHE_PROTOCOL",
    "XTASK_REMOTE_CACHE_MODE",
    "XTASK_REMOTE_CACHE_TOKEN",
    "XTASK_REMOTE_CACHE_BASIC_AUTH",
    "XTASK_REMOTE_CACHE_TIMEOUT",
];

/// The workspace-relative cache directory of the fixtures (the tool's default).
pub const CACHE_DIR: &str = "turbo-like-cache";

/// A private copy of `xtask/tests/fixtures/<name>`, plus a second temp dir (`tools`, outside
/// the workspace) holding a logging `cargo` wrapper and the run summaries.
pub struct Fixture {
    /// Canonical path of the workspace copy (the tool prints canonical paths).
    root: PathBuf,
    tools: PathBuf,
    summaries: AtomicUsize,
    // Dropped (deleted) with the fixture.
    _workspace_dir: TempDir,
    _tools_dir: TempDir,
}

/// What a finished `xtask` process did.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A task-running command (`build`, `test`, `run gen`, ...) with its `--summarize` JSON.
#[derive(Debug)]
pub struct TaskRun {
    pub output: Output,
    pub summary: Summary,
}

/// The JSON run summary written by `--summarize=PATH`.
#[derive(Debug, Deserialize)]
pub struct Summary {
    /// The whole run's wall time.
    pub duration_ms: u64,
    pub totals: Totals,
    pub tasks: Vec<TaskRecord>,
    /// Present when a remote cache is configured.
    #[serde(default)]
    pub remote: Option<RemoteTotals>,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct RemoteTotals {
    pub server: String,
    pub mode: String,
    pub hits: u64,
    pub misses: u64,
    pub rejected: u64,
    pub uploaded: u64,
    pub upload_failed: u64,
    pub bytes_downloaded: u64,
    pub bytes_uploaded: u64,
    pub disabled: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct Totals {
    pub tasks: usize,
    pub hits: usize,
    pub ran: usize,
    pub failed: usize,
    pub skipped: usize,
    pub saved_ms: u64,
}

#[derive(Debug, Deserialize)]
pub struct TaskRecord {
    pub task_id: String,
    pub package: String,
    pub task: String,
    pub hash: String,
    pub status: String,
    pub duration_ms: u64,
    pub inputs_count: usize,
    pub dependencies: Vec<String>,
    pub saved_ms: u64,
    /// A hit the remote cache supplied in this run (absent: false).
    #[serde(default)]
    pub remote_hit: bool,
}

impl Fixture {
    /// Copies `xtask/tests/fixtures/<name>` (without any `target/` or cache left in it).
    pub fn new(name: &str) -> Fixture {
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        assert!(
            source.join("Cargo.toml").is_file(),
            "no fixture at `{}`",
            source.display()
        );
        let (workspace_dir, root) = temp_dir("xtask-cli-");
        copy_dir(&source, &root);
        Fixture::assemble(workspace_dir, root)
    }

    /// A fixture whose workspace is `root` inside `workspace_dir`, with its own tools dir
    /// (the cargo wrapper that logs calls).
    fn assemble(workspace_dir: TempDir, root: PathBuf) -> Fixture {
        let (tools_dir, tools) = temp_dir("xtask-cli-tools-");
        write_cargo_wrapper(&tools);
        Fixture {
            root,
            tools,
            summaries: AtomicUsize::new(0),
            _workspace_dir: workspace_dir,
            _tools_dir: tools_dir,
        }
    }

    /// A workspace written from `files` (paths relative to a fresh temp dir) whose root is the
    /// subdirectory `workspace` of that dir (`"."` for the temp dir itself), so that files can also
    /// be placed next to or above the workspace. Executable files are not needed: use
    /// [`Fixture::set_executable`].
    pub fn from_files(workspace: &str, files: &[(&str, &str)]) -> Fixture {
        let (outer_dir, outer) = temp_dir("xtask-cli-");
        for (relative, contents) in files {
            let path = outer.join(relative);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).unwrap_or_else(|error| {
                    panic!("failed to create `{}`: {error}", parent.display())
                });
            }
            fs::write(&path, contents)
                .unwrap_or_else(|error| panic!("failed to write `{}`: {error}", path.display()));
        }
        let root = outer.join(workspace);
        fs::create_dir_all(&root)
            .unwrap_or_else(|error| panic!("failed to create `{}`: {error}", root.display()));
        let root = fs::canonicalize(root).expect("canonicalize the workspace dir");
        Fixture::assemble(outer_dir, root)
    }

    /// The workspace root of the copy.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The temp dir outside the workspace that spawned commands run in.
    pub fn tools(&self) -> &Path {
        &self.tools
    }

    /// An absolute path inside the workspace copy.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    pub fn exists(&self, relative: &str) -> bool {
        self.path(relative).exists()
    }

    pub fn read(&self, relative: &str) -> String {
        let path = self.path(relative);
        fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("failed to read `{}`: {error}", path.display()))
    }

    pub fn write(&self, relative: &str, contents: &str) {
        let path = self.path(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|error| panic!("failed to create `{}`: {error}", parent.display()));
        }
        fs::write(&path, contents)
            .unwrap_or_else(|error| panic!("failed to write `{}`: {error}", path.display()));
    }

    pub fn append(&self, relative: &str, contents: &str) {
        let text = self.read(relative);
        self.write(relative, &format!("{text}{contents}"));
    }

    /// Replaces exactly one occurrence of `from` in the file.
    pub fn replace(&self, relative: &str, from: &str, to: &str) {
        let text = self.read(relative);
        assert_eq!(
            text.matches(from).count(),
            1,
            "`{relative}` should contain {from:?} exactly once:\n{text}"
        );
        self.write(relative, &text.replacen(from, to, 1));
    }

    pub fn remove_dir(&self, relative: &str) {
        let path = self.path(relative);
        fs::remove_dir_all(&path)
            .unwrap_or_else(|error| panic!("failed to remove `{}`: {error}", path.display()));
    }

    /// A new CI machine at the same path: no `target/` and no local cache (whichever exist),
    /// only the remote cache.
    pub fn become_fresh_machine(&self) {
        for dir in ["target", CACHE_DIR] {
            if self.exists(dir) {
                self.remove_dir(dir);
            }
        }
    }

    /// `cargo xtask -C <root> ARGS` with a hermetic environment, waited for.
    pub fn xtask(&self, args: &[&str]) -> Output {
        self.xtask_env(args, &[])
    }

    /// Like [`Fixture::xtask`], with extra environment variables.
    pub fn xtask_env(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let output = self
            .xtask_command(args)
            .envs(envs.iter().copied())
            .output()
            .expect("failed to start the xtask binary");
        Output {
            code: output
                .status
                .code()
                .unwrap_or_else(|| panic!("xtask {args:?} was killed by a signal")),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// The command [`Fixture::xtask`] runs, for callers that spawn it themselves.
    pub fn xtask_command(&self, args: &[&str]) -> Command {
        self.xtask_command_at(Path::new(env!("CARGO_BIN_EXE_xtask")), args)
    }

    /// [`Fixture::xtask_command`] with the tool's binary at `program` (a copy of it).
    pub fn xtask_command_at(&self, program: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(program);
        command.arg("-C").arg(&self.root).args(args);
        self.hermetic(&mut command);
        command
    }

    /// Plain `cargo ARGS` (the real cargo, not the logging wrapper) run in the workspace root with
    /// the same hermetic environment as the tool, plus `envs`; waited for.
    pub fn cargo_env(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let real_cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut command = Command::new(real_cargo);
        command.args(args);
        self.hermetic(&mut command);
        // Cargo finds `.cargo/config.toml` from its working directory, as a user's shell would.
        command.current_dir(&self.root).envs(envs.iter().copied());
        let output = command.output().expect("failed to start cargo");
        Output {
            code: output
                .status
                .code()
                .unwrap_or_else(|| panic!("cargo {args:?} was killed by a signal")),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Sets or clears the executable bits of a file of the workspace.
    pub fn set_executable(&self, relative: &str, executable: bool) {
        use std::os::unix::fs::PermissionsExt;

        let path = self.path(relative);
        let mode = if executable { 0o755 } else { 0o644 };
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|error| panic!("failed to chmod `{}`: {error}", path.display()));
    }

    /// Runs a task command with `--summarize` and returns the output and the parsed summary.
    pub fn run(&self, args: &[&str]) -> TaskRun {
        self.run_env(args, &[])
    }

    /// Like [`Fixture::run`], with extra environment variables.
    pub fn run_env(&self, args: &[&str], envs: &[(&str, &str)]) -> TaskRun {
        let n = self.summaries.fetch_add(1, Ordering::Relaxed) + 1;
        let summary_path = self.tools.join(format!("summary-{n}.json"));
        let summarize = format!("--summarize={}", summary_path.display());
        let mut full: Vec<&str> = args.to_vec();
        full.push(&summarize);
        let output = self.xtask_env(&full, envs);
        let text = fs::read_to_string(&summary_path).unwrap_or_else(|error| {
            panic!("xtask {args:?} wrote no run summary ({error}); output:\n{output}")
        });
        let summary = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("invalid run summary ({error}):\n{text}"));
        TaskRun { output, summary }
    }

    /// `git ARGS` in the workspace copy, with a local identity; panics if it fails. Returns stdout.
    pub fn git(&self, args: &[&str]) -> String {
        let mut command = Command::new("git");
        command
            .args([
                "-c",
                "user.email=cli-test@example.com",
                "-c",
                "user.name=cli test",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(["-c", "init.defaultBranch=main"])
            .args(args);
        self.hermetic(&mut command);
        command.current_dir(&self.root);
        let output = command.output().expect("failed to start git");
        assert!(
            output.status.success(),
            "git {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The cargo command lines (arguments only) the tool ran so far, then forgets them.
    pub fn take_cargo_calls(&self) -> Vec<String> {
        let log = self.tools.join("cargo-calls.log");
        let text = fs::read_to_string(&log).unwrap_or_default();
        let _ = fs::remove_file(&log);
        text.lines().map(str::to_string).collect()
    }

    /// `text` with the workspace and tools paths replaced by `[WORKSPACE]` and `[TOOLS]`.
    pub fn redact(&self, text: &str) -> String {
        text.replace(&self.root.display().to_string(), "[WORKSPACE]")
            .replace(&self.tools.display().to_string(), "[TOOLS]")
    }

    /// The `v1/entries/<xx>/<hash>.json` of a task hash, parsed.
    pub fn cache_entry(&self, task_hash: &str) -> serde_json::Value {
        let relative = format!(
            "{CACHE_DIR}/v1/entries/{}/{task_hash}.json",
            &task_hash[..2]
        );
        serde_json::from_str(&self.read(&relative))
            .unwrap_or_else(|error| panic!("`{relative}` is not JSON: {error}"))
    }

    /// Every entry JSON of the local cache (`v1/entries/<xx>/<hash>.json`), parsed.
    pub fn cache_entries(&self) -> Vec<serde_json::Value> {
        let entries = self.path(&format!("{CACHE_DIR}/v1/entries"));
        let mut found = Vec::new();
        for shard in fs::read_dir(&entries)
            .unwrap_or_else(|error| panic!("read `{}`: {error}", entries.display()))
            .flatten()
        {
            for entry in fs::read_dir(shard.path())
                .expect("read an entries shard")
                .flatten()
            {
                let path = entry.path();
                let text = fs::read_to_string(&path)
                    .unwrap_or_else(|error| panic!("read `{}`: {error}", path.display()));
                found.push(
                    serde_json::from_str(&text).unwrap_or_else(|error| {
                        panic!("`{}` is not JSON: {error}", path.display())
                    }),
                );
            }
        }
        found
    }

    /// The path of a cache blob, from its sha256.
    pub fn cache_blob(&self, sha256: &str) -> PathBuf {
        self.path(&format!("{CACHE_DIR}/v1/blobs/{}/{sha256}", &sha256[..2]))
    }

    /// Every file of the workspace copy outside `target/` and the cache, workspace-relative.
    pub fn source_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        collect_files(&self.root, &self.root, &mut files);
        files.sort();
        files
    }

    fn hermetic(&self, command: &mut Command) {
        for name in REMOVED_ENV {
            command.env_remove(name);
        }
        // Never the test's own directory (the repository): relative paths land in `tools`.
        command.current_dir(&self.tools).stdin(Stdio::null());
        command
            .env("CI", "true")
            .env("CARGO", self.tools.join("cargo"));
        // git must not find a repository above the temp dir.
        if let Some(parent) = self.root.parent() {
            command.env("GIT_CEILING_DIRECTORIES", parent);
        }
    }
}

impl Output {
    /// The `warning:` lines of stderr.
    pub fn warnings(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("warning:"))
            .collect()
    }

    /// Panics with the whole output unless the exit code is `expected`.
    #[track_caller]
    pub fn assert_code(&self, expected: i32) -> &Output {
        assert_eq!(self.code, expected, "unexpected exit code; output:\n{self}");
        self
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl TaskRun {
    #[track_caller]
    pub fn assert_code(&self, expected: i32) -> &TaskRun {
        self.output.assert_code(expected);
        self
    }
}

impl Summary {
    /// `task_id -> status` of every task in the summary.
    pub fn statuses(&self) -> BTreeMap<String, String> {
        self.tasks
            .iter()
            .map(|t| (t.task_id.clone(), t.status.clone()))
            .collect()
    }

    pub fn task(&self, task_id: &str) -> &TaskRecord {
        self.tasks
            .iter()
            .find(|t| t.task_id == task_id)
            .unwrap_or_else(|| panic!("no `{task_id}` in the summary: {self:#?}"))
    }

    /// Every task's id, in summary order.
    pub fn task_ids(&self) -> Vec<&str> {
        self.tasks.iter().map(|t| t.task_id.as_str()).collect()
    }
}

/// A `task_id -> status` map, to compare with [`Summary::statuses`].
pub fn statuses(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(task, status)| (task.to_string(), status.to_string()))
        .collect()
}

/// `task` in each of the fixture's three packages, all with `status`.
pub fn all_packages(task: &str, status: &str) -> BTreeMap<String, String> {
    ["app", "core-lib", "util"]
        .iter()
        .map(|package| (format!("{package}:{task}"), status.to_string()))
        .collect()
}

/// Insta settings whose filters replace what changes from run to run: task hashes (full and
/// 12-digit), cargo's 16-digit metadata hashes in test binary names, and durations.
pub fn snapshot_settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\b[0-9a-f]{64}\b", "[HASH]");
    settings.add_filter(r"\b[0-9a-f]{12}\b", "[HASH]");
    settings.add_filter(r"-[0-9a-f]{16}\b", "-[METADATA]");
    settings.add_filter(r"\b\d+(\.\d+)?m?s\b", "[DURATION]");
    settings
}

/// A `cargo` that appends its arguments to `<tools>/cargo-calls.log`, then runs the real cargo.
fn write_cargo_wrapper(tools: &Path) {
    use std::os::unix::fs::PermissionsExt;

    let real_cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let log = tools.join("cargo-calls.log");
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{real_cargo}' \"$@\"\n",
        log.display()
    );
    let path = tools.join("cargo");
    fs::write(&path, script).expect("write the cargo wrapper");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
        .expect("make the cargo wrapper executable");
}

fn collect_files(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("failed to read `{}`: {error}", dir.display()))
    {
        let entry = entry.expect("read a directory entry");
        let path = entry.path();
        let name = entry.file_name();
        if entry.file_type().expect("read a file type").is_dir() {
            if name != "target" && name != CACHE_DIR && name != ".git" {
                collect_files(root, &path, files);
            }
        } else {
            files.push(
                path.strip_prefix(root)
                    .expect("under the root")
                    .to_path_buf(),
            );
        }
    }
}

/// A new temp dir named `<prefix>...` and its canonical path.
fn temp_dir(prefix: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("create a temp dir");
    let path = fs::canonicalize(dir.path()).expect("canonicalize the temp dir");
    (dir, path)
}

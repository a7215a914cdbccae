//! Soundness (issue 12): a cache hit is exactly what cargo would have produced, or it is a miss.
//! Each case writes a tiny workspace (path dependencies only, no network), runs `xtask build`,
//! `test`, `lint` or `fmt`, applies one mutation, runs the tool again, and after every tool run
//! runs plain cargo on the same tree (with its own `CARGO_TARGET_DIR`, so the two share no state).
//! A check agrees when both succeed or both fail and, when cargo succeeded, the built binaries
//! print the same, the same library files exist and the test counts match. All cases run in one
//! test that reports every disagreement at the end; a seeded differential test applies random
//! mutation sequences to one workspace and checks the same agreement at every step.
//!
//! The reference is cargo's own answer: `cargo build|test --no-fail-fast|clippy --all-targets --
//! -D warnings|fmt --check` with the same `-p` selection (`--workspace` without one), in a target
//! dir that persists through the case, except where cargo's fingerprint misses an input
//! (`clippy.toml`), where a fresh target dir is the truth. Fixture files are an hour old and the
//! tool runs twice before its first compared run, so its fast paths are as warm as a user's.
//!
//! `SOUNDNESS_CASE=substring` runs only the matching cases; `SOUNDNESS_SEED=n` (decimal or
//! `0x` hex) and `SOUNDNESS_STEPS=n` choose the differential test's sequence.

mod support;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use xtask_util::SplitMix64;

use support::{Fixture, Output};

/// A case: `Err` holds its first disagreement with plain cargo, with both results.
type Case = fn() -> Result<(), String>;

/// `(name, case)` pairs named after the case functions.
macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        &[$((stringify!($case), $case as Case)),*]
    };
}

/// The table: every case returns its first disagreement with plain cargo.
const CASES: &[(&str, Case)] = cases![
    // 1. failures are failures
    build_script_panic_fails_build,
    build_script_panic_fails_test,
    lib_error_fails_dependent_build,
    lib_error_fails_dependent_test,
    lib_error_fails_dependent_lint,
    lib_error_fails_dependent_with_build_script_build,
    lib_error_fails_dependent_with_build_script_test,
    lib_error_fails_dependent_with_build_script_lint,
    failing_test_is_never_a_cached_pass,
    // 2. feature unification
    features_build_selection_then_workspace,
    features_build_workspace_then_selection,
    features_test_counts_selection_then_workspace,
    features_test_counts_workspace_then_selection,
    test_counts_selection_then_workspace,
    // 3. files the compiler reads
    include_str_outside_package,
    include_str_outside_package_after_rm_target,
    gitignored_generated_file_included,
    symlinked_source_target_changes,
    build_script_reads_root_file,
    // 4. graph edges
    path_dependency_outside_workspace,
    patch_crates_io_to_member_build,
    patch_crates_io_to_member_test,
    patch_crates_io_member_edit_affects_dependents,
    patched_member_reached_through_a_registry_crate,
    // 5. env vars read at compile time
    env_macro_at_compile_time,
    option_env_at_compile_time,
    build_script_rerun_if_env_changed,
    rustflags_env_change,
    // 6. what tests read at run time
    test_reads_env_at_run_time,
    test_reads_fixture_outside_package,
    test_runs_script_that_lost_its_executable_bit,
    // 7. configuration
    parent_cargo_config_rustflags_build,
    parent_cargo_config_cfg_test_counts,
    cargo_home_config_rustflags,
    rustfmt_toml_max_width,
    dot_rustfmt_toml_max_width,
    clippy_toml_threshold,
    dot_clippy_toml_threshold,
    // 8. auto-discovered targets
    new_lib_with_failing_doctest_in_bin_package,
    // 9. edits during the build
    build_script_rewrites_source_during_build,
    source_edited_while_the_tool_builds,
    // 10. outputs
    cdylib_restored_after_rm_target,
    staticlib_restored_after_rm_target,
    binary_restored_after_rm_target,
    // 11. the cache directory
    cache_dir_invisible_to_git_and_affected,
    build_script_without_rerun_if_stays_fresh,
    // 12. shapes found on public workspaces
    member_shares_its_name_with_a_dependency,
    edit_put_back_with_an_older_mtime,
    edit_after_the_clock_was_set_back,
    dependency_put_back_under_a_changed_dependent,
    // 13. a fresh target dir gets cached cargo units (`run::layers`)
    units_restored_under_a_leaf_edit_build,
    units_restored_under_a_leaf_edit_test,
    units_from_a_remote_cache_on_fresh_machines,
    corrupt_or_missing_units_are_a_miss,
    units_across_a_lockfile_change,
    registry_units_kept_out_when_the_lockfile_changes_during_the_call,
    // 14. shapes of public workspaces, as fixtures of our own (`xtask/tests/fixtures/`)
    root_package_with_proc_macro_and_feature_gated_doctests,
    native_code_from_a_build_script,
    many_members_and_a_multicall_binary,
    // plain edits the cache must follow
    clippy_warning_in_test_code,
    misformatted_edit_fails_fmt,
];

#[test]
fn a_run_dead_of_a_full_disk_brings_the_free_space_into_the_report() {
    let dir = std::env::temp_dir();
    assert_eq!(
        full_disk_note(&["error[E0308]: mismatched types"], &dir),
        ""
    );
    let note = full_disk_note(
        &[
            "",
            "collect2: fatal error: ld terminated with signal 7 [Bus error]",
        ],
        &dir,
    );
    assert!(
        note.contains("full disk") && note.contains("Avail"),
        "{note}"
    );
}

#[test]
fn every_case_agrees_with_plain_cargo() {
    let filter = std::env::var("SOUNDNESS_CASE").unwrap_or_default();
    let mut failures = Vec::new();
    let mut ran = 0;
    for &(name, case) in CASES {
        if !name.contains(filter.as_str()) {
            continue;
        }
        ran += 1;
        let started = Instant::now();
        let result = std::panic::catch_unwind(case)
            .unwrap_or_else(|panic| Err(format!("the case panicked: {}", panic_text(&panic))));
        let verdict = if result.is_ok() { "ok" } else { "DISAGREES" };
        eprintln!(
            "soundness case {name}: {verdict} ({:.1?})",
            started.elapsed()
        );
        if let Err(report) = result {
            failures.push((name, report));
        }
    }
    assert!(ran > 0, "no case matches SOUNDNESS_CASE={filter:?}");
    if !failures.is_empty() {
        let names: Vec<&str> = failures.iter().map(|(name, _)| *name).collect();
        let reports: String = failures
            .iter()
            .map(|(name, report)| format!("\n===== {name}\n{report}\n"))
            .collect();
        panic!(
            "{} of {ran} cases disagree with plain cargo: {}\n{reports}",
            failures.len(),
            names.join(", ")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The comparison
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Task {
    Build,
    Test,
    Lint,
    Fmt,
}

impl Task {
    fn name(self) -> &'static str {
        match self {
            Task::Build => "build",
            Task::Test => "test",
            Task::Lint => "lint",
            Task::Fmt => "fmt",
        }
    }

    /// The plain cargo command the tool's task stands for, with the same `-p` selection
    /// (`--workspace` when there is none). `test` keeps going like the tool does.
    fn cargo_args(self, packages: &[&str]) -> Vec<String> {
        let mut args: Vec<&str> = match self {
            Task::Build => vec!["build"],
            Task::Test => vec!["test", "--no-fail-fast"],
            Task::Lint => vec!["clippy", "--all-targets"],
            Task::Fmt => vec!["fmt", "--check"],
        };
        if packages.is_empty() {
            if self != Task::Fmt {
                args.push("--workspace");
            }
        } else {
            for package in packages {
                args.extend(["-p", package]);
            }
        }
        if self == Task::Lint {
            args.extend(["--", "-D", "warnings"]);
        }
        args.into_iter().map(String::from).collect()
    }
}

/// What one run left for a user: the verdict, the binaries' output, the library files, the tests.
#[derive(Debug)]
struct Observed {
    success: bool,
    /// `name -> "exit N: stdout"` of each watched binary in `<target>/debug`; `None` if absent.
    binaries: Vec<(String, Option<String>)>,
    /// Whether each watched file under `<target>/debug` exists.
    artifacts: Vec<(String, bool)>,
    /// `(passed, failed)` for `test`; `None` when no count was printed.
    tests: Option<(u64, u64)>,
}

/// One workspace under test: the tool and plain cargo are run on it alternately.
struct Scenario {
    fixture: Fixture,
    /// Plain cargo's target dir, outside the workspace.
    plain_target: PathBuf,
    /// Whether plain cargo starts from an empty target dir at every check (for inputs that
    /// cargo's own fingerprints miss, where only a fresh build is the truth).
    fresh_plain: bool,
    checks: usize,
    env: Vec<(String, String)>,
    binaries: Vec<String>,
    artifacts: Vec<String>,
    steps: Vec<String>,
}

impl Scenario {
    /// `files` are relative to a temp dir; the workspace is its subdirectory `workspace`.
    fn new(workspace: &str, files: &[(&str, &str)]) -> Scenario {
        let depth = Path::new(workspace)
            .components()
            .filter(|c| matches!(c, std::path::Component::Normal(_)))
            .count();
        Scenario::around(Fixture::from_files(workspace, files), depth)
    }

    /// The scenario of `fixture`, whose workspace is `depth` directories below its temp dir.
    fn around(fixture: Fixture, depth: usize) -> Scenario {
        let plain_target = fixture.tools().join("plain-target");
        let scenario = Scenario {
            fixture,
            plain_target,
            fresh_plain: false,
            checks: 0,
            // Nothing may need the network; a path-only workspace never does.
            env: vec![("CARGO_NET_OFFLINE".to_string(), "true".to_string())],
            binaries: Vec::new(),
            artifacts: Vec::new(),
            steps: Vec::new(),
        };
        // A lock file from the start, as in a committed repository: its creation by the first
        // build must not be the change that makes the second run miss.
        if !scenario.fixture.exists("Cargo.lock") {
            let envs = scenario.envs();
            scenario
                .fixture
                .cargo_env(&["generate-lockfile", "--offline"], &envs)
                .assert_code(0);
        }
        // Files of a checked-out repository are not seconds old: no racy-timestamp fallback
        // of the tool may make the first runs more careful than they would be for a user.
        let outer = scenario
            .fixture
            .root()
            .ancestors()
            .nth(depth)
            .expect("the temp dir is an ancestor of the workspace");
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        set_mtimes(outer, an_hour_ago);
        scenario
    }

    /// A copy of `xtask/tests/fixtures/<name>` (its committed `Cargo.lock` included).
    fn from_fixture(name: &str) -> Scenario {
        Scenario::around(Fixture::new(name), 0)
    }

    /// Plain cargo builds from an empty target dir at every check.
    fn fresh_plain_target(mut self) -> Scenario {
        self.fresh_plain = true;
        self
    }

    /// Binaries in `target/debug` to run and compare after each build.
    fn watch_binaries(mut self, names: &[&str]) -> Scenario {
        self.binaries = names.iter().map(|n| n.to_string()).collect();
        self
    }

    /// The tool's `target/debug/<name>` prints `stdout` and exits 0: for cases whose point
    /// needs a build that succeeds (agreement alone also holds when both sides fail, as on a
    /// machine without the C compiler or `ar` a build script calls).
    fn expect_binary(&self, name: &str, stdout: &str) -> Result<(), String> {
        let path = self.fixture.path("target/debug").join(name);
        let printed = run_binary(&path, &self.envs());
        let expected = format!("exit Some(0): {stdout}");
        if printed.as_deref() == Some(expected.as_str()) {
            return Ok(());
        }
        Err(format!(
            "steps: {}\n`target/debug/{name}` should print {expected:?}, printed {printed:?}",
            self.steps.join("; ")
        ))
    }

    /// Files in `target/debug` whose existence is compared after each build.
    fn watch_artifacts(mut self, names: &[&str]) -> Scenario {
        self.artifacts = names.iter().map(|n| n.to_string()).collect();
        self
    }

    fn set_env(&mut self, name: &str, value: &str) {
        self.remove_env(name);
        self.env.push((name.to_string(), value.to_string()));
        self.steps.push(format!("set {name}={value}"));
    }

    fn remove_env(&mut self, name: &str) {
        self.env.retain(|(n, _)| n != name);
    }

    fn unset_env(&mut self, name: &str) {
        self.remove_env(name);
        self.steps.push(format!("unset {name}"));
    }

    fn write(&mut self, relative: &str, contents: &str) {
        self.fixture.write(relative, contents);
        self.steps.push(format!("write {relative}"));
    }

    fn replace(&mut self, relative: &str, from: &str, to: &str) {
        self.fixture.replace(relative, from, to);
        self.steps
            .push(format!("edit {relative}: {from:?} -> {to:?}"));
    }

    /// A new CI machine at the same path: no `target/`, no local cache (only a remote one).
    fn fresh_machine(&mut self) {
        self.fixture.become_fresh_machine();
        self.steps
            .push(format!("rm -rf target {}", support::CACHE_DIR));
    }

    /// `rm -rf target` (the tool's; plain cargo keeps its own).
    fn remove_target(&mut self) {
        if self.fixture.exists("target") {
            self.fixture.remove_dir("target");
        }
        self.steps.push("rm -rf target".to_string());
    }

    fn envs(&self) -> Vec<(&str, &str)> {
        self.env
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }

    /// Runs the task with the tool, then plain cargo on the same tree, and compares.
    fn check(&mut self, task: Task, packages: &[&str]) -> Result<(), String> {
        let mut args = vec![task.name()];
        for package in packages {
            args.extend(["-p", package]);
        }
        self.checks += 1;
        let warm_up = if self.checks == 1 { " (twice)" } else { "" };
        self.steps
            .push(format!("xtask {}{warm_up}", args.join(" ")));
        if self.fresh_plain {
            self.plain_target = self
                .fixture
                .tools()
                .join(format!("plain-target-{}", self.checks));
        }
        let envs = self.envs();
        if self.checks == 1 {
            // For a user the tool has run on this tree before: its fast paths (the cached
            // `cargo metadata`, the stat cache) are warm, and so must they be here.
            self.fixture.xtask_env(&args, &envs);
        }
        let tool_output = self.fixture.xtask_env(&args, &envs);
        let tool = self.observe(
            task,
            &tool_output,
            &self.fixture.path("target"),
            tool_counts,
        );

        let cargo_args = task.cargo_args(packages);
        let cargo_args: Vec<&str> = cargo_args.iter().map(String::as_str).collect();
        let plain_target = self.plain_target.display().to_string();
        let mut plain_envs = envs.clone();
        plain_envs.push(("CARGO_TARGET_DIR", &plain_target));
        let plain_output = self.fixture.cargo_env(&cargo_args, &plain_envs);
        let plain = self.observe(task, &plain_output, &self.plain_target, libtest_counts);

        let disagreements = disagreements(&tool, &plain);
        if disagreements.is_empty() {
            return Ok(());
        }
        Err(format!(
            "steps: {}\n\
             disagreement after `xtask {}` vs `cargo {}`:\n{}\n\
             tool:  {tool:?}\n\
             cargo: {plain:?}\n\
             --- tool\n{}\n--- cargo (exit code {})\n{}{}",
            self.steps.join("; "),
            args.join(" "),
            cargo_args.join(" "),
            disagreements.join("\n"),
            tail(&tool_output.to_string(), 60),
            plain_output.code,
            tail(&plain_output.stderr, 30),
            full_disk_note(
                &[&tool_output.to_string(), &plain_output.stderr],
                self.fixture.tools()
            ),
        ))
    }

    fn observe(
        &self,
        task: Task,
        output: &Output,
        target: &Path,
        counts: fn(&Output) -> Option<(u64, u64)>,
    ) -> Observed {
        let debug = target.join("debug");
        let watched = task == Task::Build;
        Observed {
            success: output.code == 0,
            binaries: if watched {
                self.binaries
                    .iter()
                    .map(|name| (name.clone(), run_binary(&debug.join(name), &self.envs())))
                    .collect()
            } else {
                Vec::new()
            },
            artifacts: if watched {
                self.artifacts
                    .iter()
                    .map(|name| (name.clone(), debug.join(name).is_file()))
                    .collect()
            } else {
                Vec::new()
            },
            tests: if task == Task::Test {
                counts(output)
            } else {
                None
            },
        }
    }
}

/// What differs between the tool's result and plain cargo's; empty when they agree. Outputs and
/// counts are only compared when cargo succeeded (a failed cargo run leaves old files behind).
fn disagreements(tool: &Observed, plain: &Observed) -> Vec<String> {
    let mut found = Vec::new();
    if tool.success != plain.success {
        found.push(format!(
            "  verdict: tool {}, cargo {}",
            verdict(tool.success),
            verdict(plain.success)
        ));
    }
    if !plain.success {
        return found;
    }
    for ((name, tool_binary), (_, plain_binary)) in tool.binaries.iter().zip(&plain.binaries) {
        if tool_binary != plain_binary {
            found.push(format!(
                "  target/debug/{name}: tool's prints {tool_binary:?}, cargo's prints {plain_binary:?}"
            ));
        }
    }
    for ((name, tool_exists), (_, plain_exists)) in tool.artifacts.iter().zip(&plain.artifacts) {
        if tool_exists != plain_exists {
            found.push(format!(
                "  target/debug/{name}: exists after the tool: {tool_exists}, after cargo: {plain_exists}"
            ));
        }
    }
    if tool.tests != plain.tests {
        found.push(format!(
            "  tests (passed, failed): tool {:?}, cargo {:?}",
            tool.tests, plain.tests
        ));
    }
    found
}

fn verdict(success: bool) -> &'static str {
    if success { "succeeded" } else { "failed" }
}

/// Sets the mtime of every file under `dir` (symlinks are not followed).
fn set_mtimes(dir: &Path, time: std::time::SystemTime) {
    for entry in fs::read_dir(dir).expect("read a fixture dir") {
        let entry = entry.expect("read a directory entry");
        let file_type = entry.file_type().expect("read a file type");
        if file_type.is_dir() {
            set_mtimes(&entry.path(), time);
        } else if file_type.is_file() {
            fs::File::options()
                .write(true)
                .open(entry.path())
                .and_then(|file| file.set_modified(time))
                .unwrap_or_else(|error| {
                    panic!(
                        "failed to set the mtime of `{}`: {error}",
                        entry.path().display()
                    )
                });
        }
    }
}

/// Sets the mtime of one file (its ctime becomes now, as with `touch -d`).
fn set_mtime(path: &Path, time: std::time::SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|file| file.set_modified(time))
        .unwrap_or_else(|error| panic!("failed to set the mtime of `{}`: {error}", path.display()));
}

/// Runs a built binary; `None` if it does not exist.
fn run_binary(path: &Path, envs: &[(&str, &str)]) -> Option<String> {
    if !path.is_file() {
        return None;
    }
    let output = Command::new(path)
        .envs(envs.iter().copied())
        .current_dir(path.parent().expect("a binary has a parent directory"))
        .output()
        .unwrap_or_else(|error| panic!("failed to run `{}`: {error}", path.display()));
    Some(format!(
        "exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout)
    ))
}

/// The tool's `N passed, N failed` summary line.
fn tool_counts(output: &Output) -> Option<(u64, u64)> {
    output.stderr.lines().rev().find_map(|line| {
        let (passed, failed) = line.trim().split_once(" passed, ")?;
        let failed = failed.strip_suffix(" failed")?;
        Some((passed.parse().ok()?, failed.parse().ok()?))
    })
}

/// The sum of libtest's `test result: ok. 3 passed; 1 failed; ...` lines on cargo's stdout.
fn libtest_counts(output: &Output) -> Option<(u64, u64)> {
    let mut total = None;
    for line in output.stdout.lines() {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            continue;
        };
        let (passed, failed) = total.get_or_insert((0, 0));
        for field in rest.split(';') {
            let mut words = field.split_whitespace().rev();
            let (Some(kind), Some(number)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(number) = number.parse::<u64>() else {
                continue;
            };
            match kind {
                "passed" => *passed += number,
                "failed" => *failed += number,
                _ => {}
            }
        }
    }
    total
}

/// The free space where the runs write, when one of them died the way a full disk kills a
/// build (a linker's bus error on its memory-mapped output, or `ENOSPC`): a disagreement that
/// only the machine caused must say so.
fn full_disk_note(outputs: &[&str], dir: &Path) -> String {
    const SIGNS: [&str; 2] = ["Bus error", "No space left on device"];
    if !outputs
        .iter()
        .any(|output| SIGNS.iter().any(|sign| output.contains(sign)))
    {
        return String::new();
    }
    let df = Command::new("df")
        .env("LC_ALL", "C")
        .arg("-h")
        .arg(dir)
        .output()
        .map(|df| String::from_utf8_lossy(&df.stdout).into_owned())
        .unwrap_or_else(|error| format!("(`df` did not run: {error})\n"));
    format!(
        "--- a run died as on a full disk; `df -h {}`:\n{df}",
        dir.display()
    )
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut out = String::new();
    if start > 0 {
        let _ = writeln!(out, "[... {start} lines]");
    }
    for line in &all[start..] {
        let _ = writeln!(out, "{line}");
    }
    out
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(not a string)".to_string())
}

// ---------------------------------------------------------------------------------------------
// Workspace pieces
// ---------------------------------------------------------------------------------------------

fn workspace_manifest(members: &[&str]) -> String {
    let members: Vec<String> = members.iter().map(|m| format!("{m:?}")).collect();
    format!(
        "[workspace]\nresolver = \"2\"\nmembers = [{}]\n",
        members.join(", ")
    )
}

/// A package manifest; `rest` is appended (dependencies, features, lib settings).
fn package_manifest(name: &str, rest: &str) -> String {
    format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [lints.rust]\nunexpected_cfgs = \"allow\"\n\n{rest}"
    )
}

const GITIGNORE: &str = "/target\n";

/// A one-member workspace `app` whose `main.rs` is `main`.
fn app_workspace(main: &str) -> Scenario {
    Scenario::new(
        ".",
        &[
            ("Cargo.toml", &workspace_manifest(&["app"])),
            ("app/Cargo.toml", &package_manifest("app", "")),
            ("app/src/main.rs", main),
        ],
    )
    .watch_binaries(&["app"])
}

const APP_MAIN: &str = "fn main() {\n    println!(\"app\");\n}\n\n#[test]\nfn works() {}\n";

// ---------------------------------------------------------------------------------------------
// 1. failures are failures
// ---------------------------------------------------------------------------------------------

const PANICKING_BUILD_SCRIPT: &str = "fn main() {\n    panic!(\"this build script fails\");\n}\n";

fn build_script_panic_fails_build() -> Result<(), String> {
    let mut s = app_workspace(APP_MAIN);
    s.check(Task::Build, &["app"])?;
    s.write("app/build.rs", PANICKING_BUILD_SCRIPT);
    s.check(Task::Build, &["app"])?;
    // The second run must not be a cached success either.
    s.check(Task::Build, &["app"])
}

fn build_script_panic_fails_test() -> Result<(), String> {
    let mut s = app_workspace(APP_MAIN);
    s.check(Task::Test, &["app"])?;
    s.write("app/build.rs", PANICKING_BUILD_SCRIPT);
    s.check(Task::Test, &["app"])?;
    s.check(Task::Test, &["app"])
}

const CORE_LIB: &str = "pub fn value() -> u32 {\n    42\n}\n";

fn core_and_app() -> Scenario {
    Scenario::new(
        ".",
        &[
            ("Cargo.toml", &workspace_manifest(&["core", "app"])),
            ("core/Cargo.toml", &package_manifest("core", "")),
            ("core/src/lib.rs", CORE_LIB),
            (
                "app/Cargo.toml",
                &package_manifest("app", "[dependencies]\ncore = { path = \"../core\" }\n"),
            ),
            (
                "app/src/main.rs",
                "fn main() {\n    println!(\"{}\", core::value());\n}\n\n\
                 #[test]\nfn value_is_positive() {\n    assert!(core::value() > 0);\n}\n",
            ),
        ],
    )
    .watch_binaries(&["app"])
}

fn lib_error_fails_dependents(task: Task) -> Result<(), String> {
    lib_error_fails_dependents_of(core_and_app(), task)
}

/// Like [`lib_error_fails_dependents`], where `app` also has a build script (which compiles
/// even when `core` does not).
fn lib_error_fails_dependents_with_build_script(task: Task) -> Result<(), String> {
    let s = core_and_app();
    s.fixture.write("app/build.rs", "fn main() {}\n");
    lib_error_fails_dependents_of(s, task)
}

fn lib_error_fails_dependents_of(mut s: Scenario, task: Task) -> Result<(), String> {
    s.check(task, &[])?;
    s.replace("core/src/lib.rs", "    42\n", "    \"not a number\"\n");
    s.check(task, &[])?;
    s.check(task, &["app"])
}

fn lib_error_fails_dependent_build() -> Result<(), String> {
    lib_error_fails_dependents(Task::Build)
}

fn lib_error_fails_dependent_test() -> Result<(), String> {
    lib_error_fails_dependents(Task::Test)
}

fn lib_error_fails_dependent_lint() -> Result<(), String> {
    lib_error_fails_dependents(Task::Lint)
}

fn lib_error_fails_dependent_with_build_script_build() -> Result<(), String> {
    lib_error_fails_dependents_with_build_script(Task::Build)
}

fn lib_error_fails_dependent_with_build_script_test() -> Result<(), String> {
    lib_error_fails_dependents_with_build_script(Task::Test)
}

fn lib_error_fails_dependent_with_build_script_lint() -> Result<(), String> {
    lib_error_fails_dependents_with_build_script(Task::Lint)
}

fn failing_test_is_never_a_cached_pass() -> Result<(), String> {
    let mut s = app_workspace(
        "fn main() {\n    println!(\"app\");\n}\n\n#[test]\nfn sum() {\n    assert_eq!(1 + 1, 2);\n}\n",
    );
    s.check(Task::Test, &[])?;
    s.replace("app/src/main.rs", "1 + 1, 2", "1 + 1, 3");
    s.check(Task::Test, &[])?;
    s.check(Task::Test, &[])
}

// ---------------------------------------------------------------------------------------------
// 2. feature unification
// ---------------------------------------------------------------------------------------------

/// `shared` has a feature `loud` that only `b` enables; `app` prints `shared::greeting()`.
fn feature_workspace() -> Scenario {
    Scenario::new(
        ".",
        &[
            ("Cargo.toml", &workspace_manifest(&["shared", "app", "b"])),
            (
                "shared/Cargo.toml",
                &package_manifest("shared", "[features]\nloud = []\n"),
            ),
            (
                "shared/src/lib.rs",
                "pub fn greeting() -> &'static str {\n    \
                 if cfg!(feature = \"loud\") { \"LOUD\" } else { \"quiet\" }\n}\n\n\
                 #[test]\nfn always() {}\n\n\
                 #[cfg(feature = \"loud\")]\n#[test]\nfn only_when_loud() {}\n",
            ),
            (
                "app/Cargo.toml",
                &package_manifest("app", "[dependencies]\nshared = { path = \"../shared\" }\n"),
            ),
            (
                "app/src/main.rs",
                "fn main() {\n    println!(\"app {}\", shared::greeting());\n}\n",
            ),
            (
                "b/Cargo.toml",
                &package_manifest(
                    "b",
                    "[dependencies]\nshared = { path = \"../shared\", features = [\"loud\"] }\n",
                ),
            ),
            (
                "b/src/main.rs",
                "fn main() {\n    println!(\"b {}\", shared::greeting());\n}\n",
            ),
        ],
    )
    .watch_binaries(&["app", "b"])
}

fn features_build_selection_then_workspace() -> Result<(), String> {
    let mut s = feature_workspace();
    s.check(Task::Build, &["app"])?;
    s.check(Task::Build, &[])
}

fn features_build_workspace_then_selection() -> Result<(), String> {
    let mut s = feature_workspace();
    s.check(Task::Build, &[])?;
    s.check(Task::Build, &["app"])
}

fn features_test_counts_selection_then_workspace() -> Result<(), String> {
    let mut s = feature_workspace();
    s.check(Task::Test, &["shared"])?;
    s.check(Task::Test, &[])
}

fn features_test_counts_workspace_then_selection() -> Result<(), String> {
    let mut s = feature_workspace();
    s.check(Task::Test, &[])?;
    s.check(Task::Test, &["shared"])
}

/// No features involved: a `-p` run then a full run count the same tests as cargo.
fn test_counts_selection_then_workspace() -> Result<(), String> {
    let mut s = core_and_app();
    s.fixture.append(
        "core/src/lib.rs",
        "\n#[test]\nfn one() {}\n\n#[test]\nfn two() {}\n",
    );
    s.check(Task::Test, &["core"])?;
    s.check(Task::Test, &[])?;
    s.check(Task::Test, &["app"])
}

// ---------------------------------------------------------------------------------------------
// 3. files the compiler reads
// ---------------------------------------------------------------------------------------------

fn include_str_workspace() -> Scenario {
    Scenario::new(
        ".",
        &[
            ("Cargo.toml", &workspace_manifest(&["app"])),
            ("shared.txt", "one\n"),
            ("app/Cargo.toml", &package_manifest("app", "")),
            (
                "app/src/main.rs",
                "fn main() {\n    print!(\"{}\", include_str!(\"../../shared.txt\"));\n}\n",
            ),
        ],
    )
    .watch_binaries(&["app"])
}

fn include_str_outside_package() -> Result<(), String> {
    let mut s = include_str_workspace();
    s.check(Task::Build, &[])?;
    s.write("shared.txt", "two\n");
    s.check(Task::Build, &[])
}

fn include_str_outside_package_after_rm_target() -> Result<(), String> {
    let mut s = include_str_workspace();
    s.check(Task::Build, &[])?;
    s.write("shared.txt", "two\n");
    s.remove_target();
    s.check(Task::Build, &[])
}

fn gitignored_generated_file_included() -> Result<(), String> {
    let mut s = Scenario::new(
        ".",
        &[
            ("Cargo.toml", &workspace_manifest(&["app"])),
            (".gitignore", "/target\n/app/src/generated.txt\n"),
            ("app/Cargo.toml", &package_manifest("app", "")),
            ("app/src/generated.txt", "one\n"),
            (
                "app/src/main.rs",
                "fn main() {\n    print!(\"{}\", include_str!(\"generated.txt\"));\n}\n",
            ),
        ],
    )
    .watch_binaries(&["app"]);
    s.fixture.git(&["init", "-q"]);
    s.fixture.git(&["add", "-A"]);
    s.fixture.git(&["commit", "-q", "-m", "init"]);
    s.check(Task::Build, &[])?;
    s.write("app/src/generated.txt", "two\n");
    s.check(Task::Build, &[])
}

fn symlinked_source_target_changes() -> Result<(), String> {
    let mut s = Scenario::new(
        ".",
        &[
            ("Cargo.toml", &workspace_manifest(&["app"])),
            ("real/message.txt", "one\n"),
            ("app/Cargo.toml", &package_manifest("app", "")),
            (
                "app/src/main.rs",
                "fn main() {\n    print!(\"{}\", include_str!(\"message.txt\"));\n}\n",
            ),
        ],
    )
    .watch_binaries(&["app"]);
    std::os::unix::fs::symlink(
        "../../real/message.txt",
        s.fixture.path("app/src/message.txt"),
    )
    .expect("create a symlink");
    s.check(Task::Build, &[])?;
    s.write("real/message.txt", "two\n");
    s.check(Task::Build, &[])
}

fn build_script_reads_root_file() -> Result<(), String> {
    let mut s = Scenario::new(
        ".",
        &[
            ("Cargo.toml", &workspace_manifest(&["app"])),
            ("config.txt", "one"),
            ("app/Cargo.toml", &package_manifest("app", "")),
            (
                "app/build.rs",
                "fn main() {\n    \
                 println!(\"cargo:rerun-if-changed=../config.txt\");\n    \
                 let text = std::fs::read_to_string(\"../config.txt\").unwrap();\n    \
                 println!(\"cargo:rustc-env=CONFIG={}\", text.trim());\n}\n",
            ),
            (
                "app/src/main.rs",
                "fn main() {\n    println!(\"{}\", env!(\"CONFIG\"));\n}\n",
            ),
        ],
    )
    .watch_binaries(&["app"]);
    s.check(Task::Build, &[])?;
    s.write("config.txt", "two");
    s.check(Task::Build, &[])
}

// ---------------------------------------------------------------------------------------------
// 4. graph edges
// ---------------------------------------------------------------------------------------------

fn path_dependency_outside_workspace() -> Result<(), String> {
    let mut s = Scenario::new(
        "ws",
        &[
            ("ws/Cargo.toml", &workspace_manifest(&["app"])),
            (
                "ws/app/Cargo.toml",
                &package_manifest(
                    "app",
                    "[dependencies]\nextlib = { path = \"../../extlib\" }\n",
                ),
            ),
            (
                "ws/app/src/main.rs",
                "fn main() {\n    println!(\"{}\", extlib::message());\n}\n",
            ),
            ("extlib/Cargo.toml", &package_manifest("extlib", "")),
            (
                "extlib/src/lib.rs",
                "pub fn message() -> &'static str {\n    \"one\"\n}\n",
            ),
        ],
    )
    .watch_binaries(&["app"]);
    s.check(Task::Build, &[])?;
    s.replace("../extlib/src/lib.rs", "\"one\"", "\"two\"");
    s.check(Task::Build, &[])
}

/// `app` depends on `hack = "0.1"` from crates.io, patched to the member `hack`; the lock file
/// is written so that nothing needs the registry index.
fn patch_workspace() -> Scenario {
    let mut manifest = workspace_manifest(&["app", "hack"]);
    manifest.push_str("\n[patch.crates-io]\nhack = { path = \"hack\" }\n");
    Scenario::new(
        ".",
        &[
            ("Cargo.toml", &manifest),
            (
                "Cargo.lock",
                "version = 4\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n\
                 dependencies = [\n \"hack\",\n]\n\n[[package]]\nname = \"hack\"\nversion = \"0.1.0\"\n",
            ),
            (
                "app/Cargo.toml",
                &package_manifest("app", "[dependencies]\nhack = \"0.1\"\n"),
            ),
            (
                "app/src/main.rs",
                "fn main() {\n    println!(\"{}\", hack::VALUE);\n}\n\n\
                 #[test]\nfn value() {\n    assert_eq!(hack::VALUE, 1);\n}\n",
            ),
            ("hack/Cargo.toml", &package_manifest("hack", "")),
            ("hack/src/lib.rs", "pub const VALUE: u32 = 1;\n"),
        ],
    )
    .watch_binaries(&["app"])
}

fn patch_crates_io_to_member_build() -> Result<(), String> {
    let mut s = patch_workspace();
    s.check(Task::Build, &[])?;
    s.replace("hack/src/lib.rs", "= 1;", "= 2;");
    s.check(Task::Build, &[])
}

fn patch_crates_io_to_member_test() -> Result<(), String> {
    let mut s = patch_workspace();
    s.check(Task::Test, &[])?;
    s.replace("hack/src/lib.rs", "= 1;", "= 2;");
    s.check(Task::Test, &[])
}

/// `affected` follows the `[patch]` edge like cargo does: an edit of `hack` affects `app`.
fn patch_crates_io_member_edit_affects_dependents() -> Result<(), String> {
    let mut s = patch_workspace();
    s.fixture.write(".gitignore", GITIGNORE);
    s.fixture.git(&["init", "-q"]);
    s.fixture.git(&["add", "-A"]);
    s.fixture.git(&["commit", "-q", "-m", "init"]);
    s.replace("hack/src/lib.rs", "= 1;", "= 2;");
    let affected = s.fixture.xtask(&["affected", "--since", "HEAD"]);
    let names: Vec<&str> = affected
        .stdout
        .lines()
        .filter_map(|line| line.split('\t').next())
        .collect();
    if affected.code == 0 && names.contains(&"hack") && names.contains(&"app") {
        Ok(())
    } else {
        Err(format!(
            "steps: {}\n`xtask affected --since HEAD` must list `hack` and `app` (cargo builds \
             `app` with the patched `hack`):\n{affected}",
            s.steps.join("; ")
        ))
    }
}

/// `app` depends on the registry crate `mid` (vendored: a directory source, so nothing needs
/// the network), and `mid` depends on `hack = "0.1"`, which the root `[patch.crates-io]`
/// builds from the member `hack`. Only the lock file shows that `app` builds `hack` (the shape
/// of cc-rs, where `rusqlite -> libsqlite3-sys` build-depends on the patched root `cc`).
fn patched_member_reached_through_a_registry_crate() -> Result<(), String> {
    let mut manifest = workspace_manifest(&["app", "hack"]);
    manifest.push_str("\n[patch.crates-io]\nhack = { path = \"hack\" }\n");
    let mut s = Scenario::new(
        ".",
        &[
            ("Cargo.toml", &manifest),
            (
                ".cargo/config.toml",
                "[source.crates-io]\nreplace-with = \"vendored\"\n\n\
                 [source.vendored]\ndirectory = \"vendor\"\n",
            ),
            (
                "vendor/mid/Cargo.toml",
                "[package]\nname = \"mid\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
                 [dependencies]\nhack = \"0.1\"\n",
            ),
            (
                "vendor/mid/src/lib.rs",
                "pub fn value() -> u32 {\n    hack::VALUE\n}\n",
            ),
            (
                "vendor/mid/.cargo-checksum.json",
                r#"{"files":{},"package":"0000000000000000000000000000000000000000000000000000000000000001"}"#,
            ),
            (
                "app/Cargo.toml",
                &package_manifest("app", "[dependencies]\nmid = \"0.1\"\n"),
            ),
            (
                "app/src/main.rs",
                "fn main() {\n    println!(\"{}\", mid::value());\n}\n",
            ),
            ("hack/Cargo.toml", &package_manifest("hack", "")),
            ("hack/src/lib.rs", "pub const VALUE: u32 = 1;\n"),
        ],
    )
    .watch_binaries(&["app"]);
    // `-p app`: a full build would select `hack` too, and cargo would rebuild `app` anyway.
    s.check(Task::Build, &["app"])?;
    s.replace("hack/src/lib.rs", "= 1;", "= 2;");
    s.check(Task::Build, &["app"])
}

// ---------------------------------------------------------------------------------------------
// 5. env vars read at compile time
// ---------------------------------------------------------------------------------------------

fn env_macro_at_compile_time() -> Result<(), String> {
    let mut s = app_workspace("fn main() {\n    println!(\"{}\", env!(\"GREETING\"));\n}\n");
    s.set_env("GREETING", "hello");
    s.check(Task::Build, &[])?;
    s.set_env("GREETING", "bye");
    s.check(Task::Build, &[])
}

fn option_env_at_compile_time() -> Result<(), String> {
    let mut s = app_workspace(
        "fn main() {\n    println!(\"{}\", option_env!(\"GREETING\").unwrap_or(\"none\"));\n}\n",
    );
    s.check(Task::Build, &[])?;
    s.set_env("GREETING", "bye");
    s.check(Task::Build, &[])
}

fn build_script_rerun_if_env_changed() -> Result<(), String> {
    let mut s = app_workspace("fn main() {\n    println!(\"{}\", env!(\"MESSAGE\"));\n}\n");
    s.fixture.write(
        "app/build.rs",
        "fn main() {\n    \
         println!(\"cargo:rerun-if-env-changed=GREETING\");\n    \
         let greeting = std::env::var(\"GREETING\").unwrap_or_else(|_| \"none\".to_string());\n    \
         println!(\"cargo:rustc-env=MESSAGE={greeting}\");\n}\n",
    );
    s.set_env("GREETING", "hello");
    s.check(Task::Build, &[])?;
    s.set_env("GREETING", "bye");
    s.check(Task::Build, &[])
}

const CFG_LOUD_MAIN: &str = "fn main() {\n    \
    println!(\"{}\", if cfg!(loud) { \"LOUD\" } else { \"quiet\" });\n}\n\n\
    #[test]\nfn always() {}\n\n#[cfg(loud)]\n#[test]\nfn only_when_loud() {}\n";

fn rustflags_env_change() -> Result<(), String> {
    let mut s = app_workspace(CFG_LOUD_MAIN);
    s.check(Task::Build, &[])?;
    s.set_env("RUSTFLAGS", "--cfg loud");
    s.check(Task::Build, &[])
}

// ---------------------------------------------------------------------------------------------
// 6. what tests read at run time
// ---------------------------------------------------------------------------------------------

fn test_reads_env_at_run_time() -> Result<(), String> {
    let mut s = app_workspace(
        "fn main() {}\n\n#[test]\nfn expected() {\n    \
         assert_eq!(std::env::var(\"EXPECTED\").as_deref(), Ok(\"1\"));\n}\n",
    );
    s.set_env("EXPECTED", "1");
    s.check(Task::Test, &[])?;
    s.set_env("EXPECTED", "2");
    s.check(Task::Test, &[])
}

fn test_reads_fixture_outside_package() -> Result<(), String> {
    let mut s = Scenario::new(
        ".",
        &[
            ("Cargo.toml", &workspace_manifest(&["app"])),
            ("fixtures/data.txt", "ok\n"),
            ("app/Cargo.toml", &package_manifest("app", "")),
            (
                "app/src/main.rs",
                "fn main() {}\n\n#[test]\nfn fixture() {\n    \
                 let path = concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/../fixtures/data.txt\");\n    \
                 assert_eq!(std::fs::read_to_string(path).unwrap(), \"ok\\n\");\n}\n",
            ),
        ],
    );
    s.check(Task::Test, &[])?;
    s.write("fixtures/data.txt", "broken\n");
    s.check(Task::Test, &[])
}

fn test_runs_script_that_lost_its_executable_bit() -> Result<(), String> {
    let mut s = app_workspace(
        "fn main() {}\n\n#[test]\nfn script() {\n    \
         let script = concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/check.sh\");\n    \
         assert!(std::process::Command::new(script).status().unwrap().success());\n}\n",
    );
    s.fixture.write("app/check.sh", "#!/bin/sh\nexit 0\n");
    s.fixture.set_executable("app/check.sh", true);
    s.check(Task::Test, &[])?;
    s.fixture.set_executable("app/check.sh", false);
    s.steps.push("chmod -x app/check.sh".to_string());
    s.check(Task::Test, &[])
}

// ---------------------------------------------------------------------------------------------
// 7. configuration
// ---------------------------------------------------------------------------------------------

/// The workspace in `ws/`, so that `.cargo/config.toml` can go in its parent.
fn nested_app_workspace(main: &str) -> Scenario {
    Scenario::new(
        "ws",
        &[
            ("ws/Cargo.toml", &workspace_manifest(&["app"])),
            ("ws/app/Cargo.toml", &package_manifest("app", "")),
            ("ws/app/src/main.rs", main),
        ],
    )
    .watch_binaries(&["app"])
}

const LOUD_CONFIG: &str = "[build]\nrustflags = [\"--cfg\", \"loud\"]\n";

fn parent_cargo_config_rustflags_build() -> Result<(), String> {
    let mut s = nested_app_workspace(CFG_LOUD_MAIN);
    s.check(Task::Build, &[])?;
    s.write("../.cargo/config.toml", LOUD_CONFIG);
    s.check(Task::Build, &[])
}

fn parent_cargo_config_cfg_test_counts() -> Result<(), String> {
    let mut s = nested_app_workspace(CFG_LOUD_MAIN);
    s.check(Task::Test, &[])?;
    s.write("../.cargo/config.toml", LOUD_CONFIG);
    s.check(Task::Test, &[])
}

fn cargo_home_config_rustflags() -> Result<(), String> {
    let mut s = nested_app_workspace(CFG_LOUD_MAIN);
    let cargo_home = s.fixture.path("../cargo-home");
    fs::create_dir_all(&cargo_home).expect("create CARGO_HOME");
    // rustup's proxies find their toolchains through RUSTUP_HOME, not CARGO_HOME.
    let rustup_home = std::env::var("RUSTUP_HOME")
        .unwrap_or_else(|_| format!("{}/.rustup", std::env::var("HOME").expect("HOME is set")));
    s.remove_env("RUSTUP_HOME");
    s.env.push(("RUSTUP_HOME".to_string(), rustup_home));
    s.set_env("CARGO_HOME", &cargo_home.display().to_string());
    s.check(Task::Build, &[])?;
    s.write("../cargo-home/config.toml", LOUD_CONFIG);
    s.check(Task::Build, &[])
}

/// Formatted for the default `max_width` (100), not for 80.
const WIDE_MAIN: &str = "fn main() {\n    \
    let (alpha, bravo, charlie, delta) = (1, 2, 3, 4);\n    \
    let total_of_values = alpha + bravo + charlie + delta + alpha + bravo + charlie + delta;\n    \
    println!(\"{total_of_values}\");\n}\n";

fn rustfmt_config(file: &str) -> Result<(), String> {
    let mut s = app_workspace(WIDE_MAIN);
    s.check(Task::Fmt, &[])?;
    s.write(file, "max_width = 80\n");
    s.check(Task::Fmt, &[])
}

fn rustfmt_toml_max_width() -> Result<(), String> {
    rustfmt_config("rustfmt.toml")
}

fn dot_rustfmt_toml_max_width() -> Result<(), String> {
    rustfmt_config(".rustfmt.toml")
}

const THREE_ARGUMENTS_MAIN: &str = "fn add(a: u32, b: u32, c: u32) -> u32 {\n    a + b + c\n}\n\n\
    fn main() {\n    println!(\"{}\", add(1, 2, 3));\n}\n";

fn clippy_config(file: &str) -> Result<(), String> {
    // cargo's fingerprint of a clippy run does not cover `clippy.toml`: only a fresh lint is
    // the truth.
    let mut s = app_workspace(THREE_ARGUMENTS_MAIN).fresh_plain_target();
    s.check(Task::Lint, &[])?;
    s.write(file, "too-many-arguments-threshold = 2\n");
    s.check(Task::Lint, &[])
}

fn clippy_toml_threshold() -> Result<(), String> {
    clippy_config("clippy.toml")
}

fn dot_clippy_toml_threshold() -> Result<(), String> {
    clippy_config(".clippy.toml")
}

// ---------------------------------------------------------------------------------------------
// 8. auto-discovered targets
// ---------------------------------------------------------------------------------------------

fn new_lib_with_failing_doctest_in_bin_package() -> Result<(), String> {
    let mut s = app_workspace(APP_MAIN);
    s.check(Task::Test, &[])?;
    s.write(
        "app/src/lib.rs",
        "/// ```\n/// assert_eq!(app::two(), 3);\n/// ```\npub fn two() -> u32 {\n    2\n}\n",
    );
    s.check(Task::Test, &[])
}

// ---------------------------------------------------------------------------------------------
// 9. edits during the build
// ---------------------------------------------------------------------------------------------

/// The build script rewrites `message.txt` (read by `include_str!`) while the build runs, so
/// the binary is built from contents the key computed before the build never saw. Once the file
/// is back to its old contents, cargo compiles those; a hit would restore the other binary.
fn build_script_rewrites_source_during_build() -> Result<(), String> {
    let mut s =
        app_workspace("fn main() {\n    print!(\"{}\", include_str!(\"message.txt\"));\n}\n");
    s.fixture.write("app/src/message.txt", "one\n");
    s.fixture.write(
        "app/build.rs",
        "fn main() {\n    \
         println!(\"cargo:rerun-if-changed=build.rs\");\n    \
         std::fs::write(\"src/message.txt\", \"two\\n\").unwrap();\n}\n",
    );
    s.check(Task::Build, &[])?;
    s.write("app/src/message.txt", "one\n");
    s.check(Task::Build, &[])
}

/// An edit made by the user while the tool builds: the build script of `app` announces that
/// it runs (the tool has hashed its inputs by then) and waits until the test has edited
/// `main.rs`, so rustc compiles the edited file. Once the edit is undone, cargo compiles the old
/// source again; a hit under the key computed before the build would restore the edited one.
fn source_edited_while_the_tool_builds() -> Result<(), String> {
    let mut s = nested_app_workspace("fn main() {\n    println!(\"old\");\n}\n");
    s.fixture.write(
        "app/build.rs",
        "use std::path::Path;\n\n\
         fn main() {\n    \
         println!(\"cargo:rerun-if-changed=build.rs\");\n    \
         let sync = Path::new(env!(\"CARGO_MANIFEST_DIR\")).join(\"../../sync\");\n    \
         if sync.is_dir() && !sync.join(\"go\").exists() {\n        \
         std::fs::write(sync.join(\"started\"), \"\").unwrap();\n        \
         for _ in 0..600 {\n            \
         if sync.join(\"go\").exists() {\n                \
         break;\n            \
         }\n            \
         std::thread::sleep(std::time::Duration::from_millis(100));\n        \
         }\n    \
         }\n}\n",
    );
    // `sync/` is next to the workspace, outside every package.
    let sync = s.fixture.path("../sync");
    fs::create_dir_all(&sync).expect("create the sync dir");
    let envs = s.envs();
    let mut child = s
        .fixture
        .xtask_command(&["build"])
        .envs(envs.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start xtask");
    let started = Instant::now();
    while !sync.join("started").exists() && started.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    s.fixture
        .replace("app/src/main.rs", "println!(\"old\")", "println!(\"new\")");
    fs::write(sync.join("go"), "").expect("write the go file");
    let status = child.wait().expect("wait for xtask");
    s.steps.push(format!(
        "xtask build (main.rs edited to print `new` while its build script ran; exit {status})"
    ));
    s.check(Task::Build, &[])?;
    s.replace("app/src/main.rs", "println!(\"new\")", "println!(\"old\")");
    s.check(Task::Build, &[])
}

// ---------------------------------------------------------------------------------------------
// 10. outputs
// ---------------------------------------------------------------------------------------------

fn library_restored_after_rm_target(crate_type: &str, file: &str) -> Result<(), String> {
    let mut s = Scenario::new(
        ".",
        &[
            ("Cargo.toml", &workspace_manifest(&["native"])),
            (
                "native/Cargo.toml",
                &package_manifest(
                    "native",
                    &format!("[lib]\ncrate-type = [\"{crate_type}\"]\n"),
                ),
            ),
            (
                "native/src/lib.rs",
                "#[no_mangle]\npub extern \"C\" fn answer() -> u32 {\n    42\n}\n",
            ),
        ],
    )
    .watch_artifacts(&[file]);
    s.check(Task::Build, &[])?;
    s.remove_target();
    s.check(Task::Build, &[])
}

fn cdylib_restored_after_rm_target() -> Result<(), String> {
    library_restored_after_rm_target("cdylib", "libnative.so")
}

fn staticlib_restored_after_rm_target() -> Result<(), String> {
    library_restored_after_rm_target("staticlib", "libnative.a")
}

fn binary_restored_after_rm_target() -> Result<(), String> {
    let mut s = core_and_app();
    s.check(Task::Build, &[])?;
    s.remove_target();
    s.check(Task::Build, &[])
}

// ---------------------------------------------------------------------------------------------
// 11. the cache directory
// ---------------------------------------------------------------------------------------------

/// A committed repository that ignores only `target/`: after a build, plain cargo would leave
/// `git status` clean and nothing changed since HEAD; so must the tool.
fn cache_dir_invisible_to_git_and_affected() -> Result<(), String> {
    let mut s = core_and_app();
    s.fixture.write(".gitignore", GITIGNORE);
    s.fixture.git(&["init", "-q"]);
    s.fixture.git(&["add", "-A"]);
    s.fixture.git(&["commit", "-q", "-m", "init"]);
    s.check(Task::Build, &[])?;
    let status = s
        .fixture
        .git(&["status", "--porcelain", "--untracked-files=all"]);
    let affected = s.fixture.xtask(&["affected", "--since", "HEAD"]);
    let mut problems = Vec::new();
    if !status.trim().is_empty() {
        problems.push(format!(
            "`git status --porcelain` after a build:\n{}",
            tail(&status, 20)
        ));
    }
    if affected.code != 0 || !affected.stdout.trim().is_empty() {
        problems.push(format!(
            "`xtask affected --since HEAD` on a clean tree:\n{affected}"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// A root package whose build script prints no `rerun-if` line: cargo then watches the whole
/// package directory, which is the workspace root. After the tool's build, a plain `cargo build`
/// in the same target dir must find the package fresh, as it would after a cargo build.
fn build_script_without_rerun_if_stays_fresh() -> Result<(), String> {
    let mut manifest = package_manifest("app", "");
    manifest.push_str("\n[workspace]\n");
    let mut s = Scenario::new(
        ".",
        &[
            ("Cargo.toml", &manifest),
            (".gitignore", GITIGNORE),
            ("build.rs", "fn main() {}\n"),
            ("src/main.rs", "fn main() {\n    println!(\"app\");\n}\n"),
        ],
    )
    .watch_binaries(&["app"]);
    s.fixture.git(&["init", "-q"]);
    s.fixture.git(&["add", "-A"]);
    s.fixture.git(&["commit", "-q", "-m", "init"]);
    s.check(Task::Build, &[])?;
    s.check(Task::Build, &[])?;
    let mut envs = s.envs();
    let after_tool = s.fixture.cargo_env(&["build", "-v"], &envs);
    // The reference: the same command after plain cargo's own two builds.
    let plain_target = s.plain_target.display().to_string();
    envs.push(("CARGO_TARGET_DIR", &plain_target));
    let after_cargo = s.fixture.cargo_env(&["build", "-v"], &envs);
    let rebuilt = |output: &Output| {
        output
            .stderr
            .lines()
            .any(|line| line.trim_start().starts_with("Compiling app"))
    };
    if after_tool.code == after_cargo.code && rebuilt(&after_tool) == rebuilt(&after_cargo) {
        Ok(())
    } else {
        Err(format!(
            "steps: {}\n`cargo build -v` rebuilt `app` after the tool's builds: {}, after \
             cargo's: {}\n--- after the tool\n{after_tool}\n--- after cargo\n{after_cargo}",
            s.steps.join("; "),
            rebuilt(&after_tool),
            rebuilt(&after_cargo),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// 12. shapes found on public workspaces
// ---------------------------------------------------------------------------------------------

/// A member named like another package of the lock file (clap's root package `clap` beside the
/// registry `clap` its dev-dependencies pull in): `cargo build --workspace` builds it, while
/// `cargo build -p util` is ambiguous and fails, so the tool must select it unambiguously.
fn member_shares_its_name_with_a_dependency() -> Result<(), String> {
    let mut s = Scenario::new(
        "ws",
        &[
            ("ws/Cargo.toml", &workspace_manifest(&["app", "util"])),
            ("ws/util/Cargo.toml", &package_manifest("util", "")),
            (
                "ws/util/src/lib.rs",
                "/// ```\n/// assert_eq!(util::NAME, \"member\");\n/// ```\n\
                 pub const NAME: &str = \"member\";\n",
            ),
            (
                "ws/app/Cargo.toml",
                &package_manifest(
                    "app",
                    "[dependencies]\nutil = { path = \"../util\" }\n\
                     old_util = { package = \"util\", path = \"../../vendor/util\" }\n",
                ),
            ),
            (
                "ws/app/src/main.rs",
                "fn main() {\n    println!(\"{} {}\", util::NAME, old_util::NAME);\n}\n\n\
                 #[test]\nfn names_differ() {\n    assert_ne!(util::NAME, old_util::NAME);\n}\n",
            ),
            (
                "vendor/util/Cargo.toml",
                "[package]\nname = \"util\"\nversion = \"0.2.0\"\nedition = \"2021\"\n",
            ),
            (
                "vendor/util/src/lib.rs",
                "pub const NAME: &str = \"vendored\";\n",
            ),
        ],
    )
    .watch_binaries(&["app"]);
    for task in [Task::Build, Task::Test, Task::Lint, Task::Fmt] {
        s.check(task, &[])?;
    }
    Ok(())
}

/// An edited file whose modification time goes back to before the last build (an older copy
/// put back with `cp -p`, `tar x` or `rsync -a`): cargo compares mtimes and would find `core`
/// up to date. A fresh cargo build is the truth, also after `rm -rf target`.
fn edit_put_back_with_an_older_mtime() -> Result<(), String> {
    let mut s = core_and_app().fresh_plain_target();
    s.check(Task::Build, &[])?;
    s.replace("core/src/lib.rs", "    42\n", "    7\n");
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    set_mtime(&s.fixture.path("core/src/lib.rs"), two_hours_ago);
    s.steps
        .push("set the mtime of core/src/lib.rs two hours back".to_string());
    s.check(Task::Build, &[])?;
    s.check(Task::Test, &[])?;
    s.remove_target();
    s.check(Task::Build, &[])
}

/// The clock was ahead when cargo last compiled (or was set back since): every edit made now
/// looks older than the artifacts, and cargo would find `core` up to date.
fn edit_after_the_clock_was_set_back() -> Result<(), String> {
    let mut s = core_and_app().fresh_plain_target();
    s.check(Task::Build, &[])?;
    // Artifacts written while the clock read a day later: date them so, and let cargo
    // compile (find everything fresh) once under them.
    let tomorrow = std::time::SystemTime::now() + std::time::Duration::from_secs(86_400);
    set_mtimes(&s.fixture.path("target"), tomorrow);
    let envs = s.envs();
    let forced = s.fixture.xtask_env(&["build", "--force"], &envs);
    if forced.code != 0 {
        return Err(format!("`xtask build --force` failed:\n{forced}"));
    }
    s.steps
        .push("date target/ a day ahead; xtask build --force".to_string());
    s.replace("core/src/lib.rs", "    42\n", "    7\n");
    s.check(Task::Build, &[])
}

/// `core` put back to an older version with its old mtime (a hit: that version is cached)
/// while `app` changed (a miss), built with `-p app` (so the cargo call selects `app` only):
/// cargo links `app`
/// against the `core` artifacts in `target/`, which hold the newer `core` and which it takes
/// as up to date. The guard must look past the call's selection.
fn dependency_put_back_under_a_changed_dependent() -> Result<(), String> {
    let mut s = core_and_app().fresh_plain_target();
    s.check(Task::Build, &[])?;
    s.replace("core/src/lib.rs", "    42\n", "    7\n");
    s.check(Task::Build, &[])?;
    s.replace("core/src/lib.rs", "    7\n", "    42\n");
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    set_mtime(&s.fixture.path("core/src/lib.rs"), two_hours_ago);
    s.steps
        .push("set the mtime of core/src/lib.rs two hours back".to_string());
    s.replace(
        "app/src/main.rs",
        "println!(\"{}\", ",
        "println!(\"value {}\", ",
    );
    s.check(Task::Build, &["app"])
}

// ---------------------------------------------------------------------------------------------
// 13. a fresh target dir gets cached cargo units
// ---------------------------------------------------------------------------------------------

/// `core` (a build script, and the crates.io crate `anyhow`, which has one too, from the local
/// registry: the registry layer) under the binaries `app` and `tool`. `anyhow` at the version this repository's own
/// `Cargo.lock` holds: building this repository fetched it, on any machine, before this test.
fn units_workspace() -> Scenario {
    let anyhow = format!(
        "[dependencies]\nanyhow = \"={}\"\n",
        locked_version("anyhow")
    );
    Scenario::new(
        ".",
        &[
            ("Cargo.toml", &workspace_manifest(&["core", "app", "tool"])),
            (
                "core/Cargo.toml",
                &package_manifest("core", &anyhow),
            ),
            (
                "core/build.rs",
                "fn main() {\n    println!(\"cargo:rerun-if-changed=build.rs\");\n    \
                 println!(\"cargo:rustc-env=CORE_GREETING=hello\");\n}\n",
            ),
            (
                "core/src/lib.rs",
                "pub fn value() -> anyhow::Result<String> {\n    \
                 Ok(format!(\"{} {}\", env!(\"CORE_GREETING\"), 42))\n}\n",
            ),
            (
                "app/Cargo.toml",
                &package_manifest("app", "[dependencies]\ncore = { path = \"../core\" }\n"),
            ),
            (
                "app/src/main.rs",
                "fn main() {\n    println!(\"{}\", core::value().unwrap());\n}\n\n\
                 #[test]\nfn value_is_greeting() {\n    assert!(core::value().unwrap().starts_with(\"hello\"));\n}\n",
            ),
            // A second binary, a hit whenever only `app` is edited: its executable is stored
            // once, in its task's entry, and linked back into its unit (`unit_links`).
            (
                "tool/Cargo.toml",
                &package_manifest("tool", "[dependencies]\ncore = { path = \"../core\" }\n"),
            ),
            (
                "tool/src/main.rs",
                "fn main() {\n    println!(\"tool: {}\", core::value().unwrap());\n}\n",
            ),
        ],
    )
    .watch_binaries(&["app", "tool"])
    .fresh_plain_target()
}

/// The version of `name` in this repository's `Cargo.lock` (the first, if several).
fn locked_version(name: &str) -> String {
    let path = testkit::workspace_root().join("Cargo.lock");
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("failed to read `{}`: {error}", path.display()));
    let lock = xtask_hash::Lockfile::parse(&text, &path)
        .unwrap_or_else(|error| panic!("`{}`: {error}", path.display()));
    lock.versions(name)
        .first()
        .unwrap_or_else(|| panic!("`{name}` is not in `{}`", path.display()))
        .to_string()
}

/// A CI machine: `rm -rf target` (the cache stays warm, as a remote cache would be), an edit
/// in the leaf `app` (its dependencies' units restored), then an edit in `core` (its units must
/// never be restored, nor `app`'s), then `core` put back (everything a hit).
fn units_restored_under_a_leaf_edit(task: Task) -> Result<(), String> {
    let mut s = units_workspace();
    s.check(task, &[])?;
    s.remove_target();
    s.replace(
        "app/src/main.rs",
        "fn main() {",
        "fn main() {\n    println!(\"edited\");",
    );
    s.check(task, &[])?;
    s.remove_target();
    s.replace("core/src/lib.rs", "42", "7");
    s.check(task, &[])?;
    s.remove_target();
    s.replace("core/build.rs", "hello", "hi");
    s.check(task, &[])?;
    s.remove_target();
    s.replace("core/build.rs", "hi", "hello");
    s.replace("core/src/lib.rs", "7", "42");
    s.check(task, &[])?;
    s.remove_target();
    s.replace("app/src/main.rs", "\"edited\"", "\"edited again\"");
    s.check(task, &[])
}

fn units_restored_under_a_leaf_edit_build() -> Result<(), String> {
    units_restored_under_a_leaf_edit(Task::Build)
}

fn units_restored_under_a_leaf_edit_test() -> Result<(), String> {
    units_restored_under_a_leaf_edit(Task::Test)
}

/// Fresh CI machines (no `target/`, no local cache) with a warm turborepo-remote-cache: the
/// hits' units come inside their tasks' artifacts (companions), the registry layer by its own
/// key. A leaf edit, an edit under it, and `test` after `build` on the same machine, each
/// agreeing with plain cargo.
fn units_from_a_remote_cache_on_fresh_machines() -> Result<(), String> {
    let server = testkit::servers::turborepo_remote_cache("soundness-token", None);
    let mut s = units_workspace();
    s.set_env("TURBO_API", &server.url());
    s.set_env("TURBO_TOKEN", "soundness-token");
    s.set_env("TURBO_TEAM", "soundness");
    s.check(Task::Build, &[])?;
    s.check(Task::Test, &[])?;
    s.fresh_machine();
    s.replace(
        "app/src/main.rs",
        "fn main() {",
        "fn main() {\n    println!(\"edited\");",
    );
    s.check(Task::Build, &[])?;
    s.check(Task::Test, &[])?;
    s.fresh_machine();
    s.replace("core/src/lib.rs", "42", "7");
    s.check(Task::Build, &[])?;
    s.fresh_machine();
    s.replace("core/src/lib.rs", "7", "42");
    s.check(Task::Test, &[])?;
    // The tasks' artifacts carried their units: what the fresh machines' lookups asked for.
    let with_units = server
        .stored_files()
        .iter()
        .filter(|file| {
            fs::read(server.storage.join(file))
                .is_ok_and(|bytes| bytes.windows(20).any(|w| w == b"companion/entry.json"))
        })
        .count();
    if with_units == 0 {
        return Err("no artifact on the server carries its task's units".to_string());
    }
    Ok(())
}

/// `Cargo.lock` changes between two fresh machines (a new member, as a dependency bump
/// elsewhere would): the registry layer is keyed by the whole lock file and misses, while the
/// hits' package units, keyed by their task hashes, are still restored; cargo rebuilds what
/// sits on the registry units it compiled again, and every result is cargo's.
fn units_across_a_lockfile_change() -> Result<(), String> {
    let mut s = units_workspace();
    s.check(Task::Build, &[])?;
    s.remove_target();
    s.replace("Cargo.toml", "\"tool\"]", "\"tool\", \"extra\"]");
    s.fixture
        .write("extra/Cargo.toml", &package_manifest("extra", ""));
    s.fixture.write("extra/src/lib.rs", "pub fn extra() {}\n");
    s.steps
        .push("add the member `extra` (Cargo.lock changes)".to_string());
    s.replace(
        "app/src/main.rs",
        "fn main() {",
        "fn main() {\n    println!(\"edited\");",
    );
    s.check(Task::Build, &[])?;
    s.remove_target();
    s.replace("app/src/main.rs", "\"edited\"", "\"edited again\"");
    s.check(Task::Build, &[])
}

/// `core`'s build script writes to `Cargo.lock` while cargo runs: cargo may then have built
/// other crates than the registry layer's key (taken before the call) says, so the layer is
/// not stored; the next run, with the lock file left alone, stores it.
fn registry_units_kept_out_when_the_lockfile_changes_during_the_call() -> Result<(), String> {
    let s = units_workspace();
    let lock = fs::read_to_string(s.fixture.path("Cargo.lock")).map_err(|e| e.to_string())?;
    let build_script =
        fs::read_to_string(s.fixture.path("core/build.rs")).map_err(|e| e.to_string())?;
    s.fixture.write(
        "core/build.rs",
        "use std::io::Write as _;\n\
         fn main() {\n    \
         let lock = std::path::Path::new(env!(\"CARGO_MANIFEST_DIR\")).join(\"../Cargo.lock\");\n    \
         let mut file = std::fs::OpenOptions::new().append(true).open(lock).unwrap();\n    \
         writeln!(file, \"# written by a build script\").unwrap();\n    \
         println!(\"cargo:rerun-if-changed=build.rs\");\n    \
         println!(\"cargo:rustc-env=CORE_GREETING=hello\");\n}\n",
    );
    let envs = s.envs();
    let warning = "registry units not cached: `Cargo.lock` changed while cargo ran";
    let first = s.fixture.xtask_env(&["build"], &envs);
    if first.code != 0 || !first.stderr.contains(warning) {
        return Err(format!("expected exit 0 and `{warning}`:\n{first}"));
    }
    // The lock file and the build script as they were: nothing changes during the call.
    s.fixture.write("Cargo.lock", &lock);
    s.fixture.write("core/build.rs", &build_script);
    let second = s.fixture.xtask_env(&["build"], &envs);
    if second.code != 0 || second.stderr.contains(warning) {
        return Err(format!("expected exit 0 and no warning:\n{second}"));
    }
    Ok(())
}

/// The archives of every cargo units entry truncated (corrupt), then removed (a partial
/// entry): each is a miss, and cargo builds those units itself.
fn corrupt_or_missing_units_are_a_miss() -> Result<(), String> {
    let mut s = units_workspace();
    s.check(Task::Build, &[])?;
    for (n, damage) in ["truncate", "remove"].into_iter().enumerate() {
        let damaged = damage_unit_archives(&s.fixture, damage == "remove");
        if damaged == 0 {
            return Err("no cargo units entry in the cache to damage".to_string());
        }
        s.steps.push(format!(
            "{damage} the archives of {damaged} cargo units entries"
        ));
        s.remove_target();
        s.replace(
            "app/src/main.rs",
            "fn main() {",
            &format!("fn main() {{\n    println!(\"edit {n}\");"),
        );
        s.check(Task::Build, &[])?;
    }
    Ok(())
}

/// Truncates (or removes) the archive blob of every cargo units entry (a manifest with a
/// `layer`) in the fixture's cache; returns how many.
fn damage_unit_archives(fixture: &Fixture, remove: bool) -> usize {
    let mut damaged = 0;
    for json in fixture.cache_entries() {
        if json["manifest"]["layer"].is_null() {
            continue;
        }
        let sha256 = json["archive"]["sha256"]
            .as_str()
            .expect("an archive digest");
        let blob = fixture.cache_blob(sha256);
        if remove {
            let _ = fs::remove_file(&blob);
        } else {
            let bytes = fs::read(&blob).unwrap_or_default();
            fs::write(&blob, &bytes[..bytes.len() / 2]).expect("truncate a blob");
        }
        damaged += 1;
    }
    damaged
}

// ---------------------------------------------------------------------------------------------
// Plain edits the cache must follow
// ---------------------------------------------------------------------------------------------

fn clippy_warning_in_test_code() -> Result<(), String> {
    let mut s = app_workspace(APP_MAIN);
    s.check(Task::Lint, &[])?;
    s.fixture.append(
        "app/src/main.rs",
        "\n#[test]\nfn copies() {\n    let x = 1u32;\n    assert_eq!(x.clone(), 1);\n}\n",
    );
    s.steps.push("append a clone_on_copy to a test".to_string());
    s.check(Task::Lint, &[])
}

fn misformatted_edit_fails_fmt() -> Result<(), String> {
    let mut s = app_workspace(APP_MAIN);
    s.check(Task::Fmt, &[])?;
    s.replace(
        "app/src/main.rs",
        "    println!(\"app\");",
        "println!( \"app\" ) ;",
    );
    s.check(Task::Fmt, &[])
}

/// `xtask/tests/fixtures/root-package`: a root package with a proc-macro member (its tests link
/// libstd dynamically) and a library member whose doctests depend on a feature only the root
/// package enables (ripgrep's and clap's shape; issue 13's first findings).
fn root_package_with_proc_macro_and_feature_gated_doctests() -> Result<(), String> {
    let mut s = Scenario::from_fixture("root-package").watch_binaries(&["tool"]);
    s.check(Task::Test, &[])?;
    // Alone, `tool-core` has one doctest; in the workspace, with `extra` unified, two.
    s.check(Task::Test, &["tool-core"])?;
    s.check(Task::Test, &["tool-derive"])?;
    s.check(Task::Build, &[])?;
    s.expect_binary("tool", "struct Settings / hello / extra\n")?;
    s.check(Task::Lint, &[])?;
    s.check(Task::Fmt, &[])?;
    // A one-line edit of the proc-macro changes the root binary and fails its test.
    s.replace(
        "crates/derive/src/lib.rs",
        "{kind} {name}",
        "{kind}: {name}",
    );
    s.check(Task::Build, &[])?;
    s.check(Task::Test, &[])?;
    s.remove_target();
    s.check(Task::Build, &[])?;
    s.check(Task::Test, &["tool-derive"])
}

/// `xtask/tests/fixtures/native`: a build script compiles C code into a static library (tree-
/// sitter's shape); an edit of the header it watches through `rerun-if-changed=csrc`.
fn native_code_from_a_build_script() -> Result<(), String> {
    let mut s = Scenario::from_fixture("native").watch_binaries(&["calc"]);
    s.check(Task::Build, &[])?;
    s.expect_binary("calc", "2 + 3 = 5\n")?;
    s.check(Task::Test, &[])?;
    s.replace(
        "crates/native/csrc/calc.h",
        "#define CALC_OFFSET 0",
        "#define CALC_OFFSET 1",
    );
    s.check(Task::Build, &[])?;
    s.check(Task::Test, &[])?;
    s.replace(
        "crates/native/csrc/calc.h",
        "#define CALC_OFFSET 1",
        "#define CALC_OFFSET 0",
    );
    s.remove_target();
    s.check(Task::Build, &["calc"])?;
    s.expect_binary("calc", "2 + 3 = 5\n")?;
    s.check(Task::Test, &[])
}

/// Members of [`many_members_and_a_multicall_binary`] besides `multi`.
const MANY: usize = 54;

/// Coreutils' shape (113 members: one library and one binary per utility, and a multicall
/// binary depending on every one), generated: a one-line edit of one utility misses exactly
/// that utility and the multicall binary, and after `rm -rf target` every binary restored
/// prints what cargo's fresh build of the edited tree prints.
fn many_members_and_a_multicall_binary() -> Result<(), String> {
    let names: Vec<String> = (0..MANY).map(|i| format!("u{i:02}")).collect();
    let mut members: Vec<&str> = names.iter().map(String::as_str).collect();
    members.push("multi");
    let mut files: Vec<(String, String)> = vec![
        ("ws/Cargo.toml".into(), workspace_manifest(&members)),
        ("ws/.gitignore".into(), GITIGNORE.into()),
    ];
    let mut multi_deps = String::from("[dependencies]\n");
    let mut multi_calls = String::new();
    for name in &names {
        files.push((format!("ws/{name}/Cargo.toml"), package_manifest(name, "")));
        files.push((
            format!("ws/{name}/src/lib.rs"),
            format!("pub fn run() -> String {{\n    \"{name} ok\".to_string()\n}}\n"),
        ));
        files.push((
            format!("ws/{name}/src/main.rs"),
            format!("fn main() {{\n    println!(\"{{}}\", {name}::run());\n}}\n"),
        ));
        multi_deps.push_str(&format!("{name} = {{ path = \"../{name}\" }}\n"));
        multi_calls.push_str(&format!("    println!(\"{{}}\", {name}::run());\n"));
    }
    files.push((
        "ws/multi/Cargo.toml".into(),
        package_manifest("multi", &multi_deps),
    ));
    files.push((
        "ws/multi/src/main.rs".into(),
        format!("fn main() {{\n{multi_calls}}}\n"),
    ));
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(path, contents)| (path.as_str(), contents.as_str()))
        .collect();
    let mut s = Scenario::new("ws", &files).watch_binaries(&["multi", "u07", "u30"]);
    s.check(Task::Build, &[])?;
    s.replace("u07/src/lib.rs", "\"u07 ok\"", "\"u07 edited\"");
    let planned = s.fixture.xtask_env(&["build", "--dry-run=json"], &s.envs());
    let value: serde_json::Value = serde_json::from_str(&planned.stdout)
        .map_err(|error| format!("--dry-run=json printed no JSON ({error}): {planned}"))?;
    let misses: Vec<&str> = value["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|task| task["status"] != "hit")
        .filter_map(|task| task["task_id"].as_str())
        .collect();
    if misses != ["multi:build", "u07:build"] {
        return Err(format!(
            "a one-line edit of u07 should miss u07 and multi only, not {misses:?}"
        ));
    }
    s.check(Task::Build, &[])?;
    s.remove_target();
    s.check(Task::Build, &[])?;
    s.check(Task::Test, &["u07", "multi"])
}

// ---------------------------------------------------------------------------------------------
// The seeded differential test
// ---------------------------------------------------------------------------------------------

const DEFAULT_SEED: u64 = 0x5eed_0012;
const DEFAULT_STEPS: u64 = 12;

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => {
            let text = text.trim();
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("{name}={text:?} is not a number"))
        }
        Err(_) => default,
    }
}

/// `ws/` holds `shared` (feature `loud`, enabled only by `b`), `app` (prints a constant, a
/// compile-time env var, `shared::greeting()` and `cfg!(loud)`; one test that can be flipped) and
/// `b`. The parent directory's `.cargo/config.toml` may set `--cfg loud`.
fn differential_workspace() -> Scenario {
    Scenario::new(
        "ws",
        &[
            (
                "ws/Cargo.toml",
                &workspace_manifest(&["shared", "app", "b"]),
            ),
            (
                "ws/shared/Cargo.toml",
                &package_manifest("shared", "[features]\nloud = []\n"),
            ),
            (
                "ws/shared/src/lib.rs",
                "pub fn greeting() -> &'static str {\n    \
                 if cfg!(feature = \"loud\") { \"LOUD\" } else { \"quiet\" }\n}\n\n\
                 #[test]\nfn always() {}\n\n\
                 #[cfg(feature = \"loud\")]\n#[test]\nfn only_when_loud() {}\n",
            ),
            (
                "ws/app/Cargo.toml",
                &package_manifest("app", "[dependencies]\nshared = { path = \"../shared\" }\n"),
            ),
            (
                "ws/app/src/main.rs",
                "const NUMBER: u32 = 0;\n\nfn main() {\n    println!(\n        \
                 \"{} {} {} {}\",\n        NUMBER,\n        \
                 option_env!(\"GREETING\").unwrap_or(\"none\"),\n        \
                 shared::greeting(),\n        cfg!(loud)\n    );\n}\n\n\
                 #[test]\nfn flippable() {\n    assert_eq!(1 + 1, 2);\n}\n\n\
                 #[cfg(loud)]\n#[test]\nfn only_when_loud() {}\n",
            ),
            (
                "ws/b/Cargo.toml",
                &package_manifest(
                    "b",
                    "[dependencies]\nshared = { path = \"../shared\", features = [\"loud\"] }\n",
                ),
            ),
            (
                "ws/b/src/main.rs",
                "fn main() {\n    println!(\"b {}\", shared::greeting());\n}\n",
            ),
        ],
    )
    .watch_binaries(&["app", "b"])
}

#[test]
fn random_mutation_sequences_agree_with_plain_cargo() {
    let seed = env_number("SOUNDNESS_SEED", DEFAULT_SEED);
    let steps = env_number("SOUNDNESS_STEPS", DEFAULT_STEPS);
    let mut rng = SplitMix64::new(seed);
    let mut s = differential_workspace();
    let selections: [&[&str]; 4] = [&[], &["app"], &["app", "b"], &["shared"]];
    let mut selection: &[&str] = &[];
    let mut number = 0u64;
    let mut passing = true;
    let mut loud_config = false;
    for step in 0..steps {
        match rng.below(7) {
            0 => {
                let next = rng.below(1000) + 1;
                s.replace(
                    "app/src/main.rs",
                    &format!("const NUMBER: u32 = {number};"),
                    &format!("const NUMBER: u32 = {next};"),
                );
                number = next;
            }
            1 => match rng.below(3) {
                0 => s.unset_env("GREETING"),
                1 => s.set_env("GREETING", "hello"),
                _ => s.set_env("GREETING", "bye"),
            },
            2 => {
                selection = selections[rng.below(selections.len() as u64) as usize];
                s.steps.push(format!("select {selection:?}"));
            }
            3 => s.remove_target(),
            4 => {
                loud_config = !loud_config;
                let config = if loud_config {
                    LOUD_CONFIG
                } else {
                    "[build]\n"
                };
                s.write("../.cargo/config.toml", config);
            }
            5 => {
                let (from, to) = if passing {
                    ("2);", "3);")
                } else {
                    ("3);", "2);")
                };
                s.replace(
                    "app/src/main.rs",
                    &format!("1 + 1, {from}"),
                    &format!("1 + 1, {to}"),
                );
                passing = !passing;
            }
            _ => s.steps.push("no change".to_string()),
        }
        let task = if rng.below(2) == 0 {
            Task::Build
        } else {
            Task::Test
        };
        if let Err(report) = s.check(task, selection) {
            panic!(
                "step {step} of the sequence with SOUNDNESS_SEED={seed:#x} disagrees with plain \
                 cargo (rerun with that seed; steps so far are listed first):\n{report}"
            );
        }
    }
}

//! End-to-end tests of the `xtask` binary: each test copies a fixture workspace into a temp dir,
//! runs the real binary on it (`-C <copy>`, `CI=true`, no inherited target or cache dir) and
//! checks exit codes, the `--summarize` JSON, files on disk and, for human-facing output,
//! insta snapshots with hashes, durations and paths filtered out.

mod support;

use std::fs;
use std::time::{Duration, SystemTime};

use support::{CACHE_DIR, Fixture, Output, Totals, all_packages, snapshot_settings, statuses};

const APP_MAIN: &str = "apps/app/src/main.rs";
const UTIL_LIB: &str = "crates/util/src/lib.rs";
const CORE_LIB: &str = "crates/core/src/lib.rs";
/// The package directories of the `basic` fixture.
const PACKAGE_DIRS: [&str; 3] = ["apps/app", "crates/core", "crates/util"];

/// Asserts that no cargo command but `cargo metadata` ran since the last check (so nothing
/// was compiled, linted, formatted or tested).
#[track_caller]
fn assert_only_metadata_ran(fixture: &Fixture) {
    let calls = fixture.take_cargo_calls();
    assert!(
        calls.iter().all(|call| call.starts_with("metadata ")),
        "expected no cargo command besides `cargo metadata`, got:\n{}",
        calls.join("\n")
    );
}

/// The cargo calls since the last check that are `cargo <subcommand> ...`.
fn cargo_calls_of(fixture: &Fixture, subcommand: &str) -> Vec<String> {
    let prefix = format!("{subcommand} ");
    fixture
        .take_cargo_calls()
        .into_iter()
        .filter(|call| call.starts_with(&prefix))
        .collect()
}

#[test]
fn second_build_is_all_hits_and_compiles_nothing() {
    let fixture = Fixture::new("basic");
    let first = fixture.run(&["build"]);
    first.assert_code(0);
    assert_eq!(first.summary.statuses(), all_packages("build", "miss"));
    assert_eq!(
        first.summary.totals,
        Totals {
            tasks: 3,
            hits: 0,
            ran: 3,
            failed: 0,
            skipped: 0,
            saved_ms: 0
        }
    );
    for task in &first.summary.tasks {
        assert_eq!(task.task_id, format!("{}:{}", task.package, task.task));
        assert_eq!(
            task.inputs_count, 2,
            "{}: its Cargo.toml and one source file",
            task.task_id
        );
        assert_eq!(task.hash.len(), 64, "{}: a sha256", task.task_id);
        assert!(
            task.dependencies.is_empty(),
            "cargo orders builds itself: {:?}",
            task.dependencies
        );
    }
    assert_eq!(
        cargo_calls_of(&fixture, "build").len(),
        1,
        "the three misses run as one cargo build"
    );
    let _settings = snapshot_settings().bind_to_scope();
    insta::assert_snapshot!("build_first_run", fixture.redact(&first.output.stderr));

    let second = fixture.run(&["build"]);
    second.assert_code(0);
    assert_eq!(second.summary.statuses(), all_packages("build", "hit"));
    assert_eq!(
        (second.summary.totals.hits, second.summary.totals.ran),
        (3, 0)
    );
    for task in &second.summary.tasks {
        let original = first.summary.task(&task.task_id);
        assert_eq!(
            task.hash, original.hash,
            "{} changed its hash",
            task.task_id
        );
        assert_eq!(
            task.saved_ms, original.duration_ms,
            "{}: a hit saves the original run's time",
            task.task_id
        );
    }
    let saved: u64 = second.summary.tasks.iter().map(|t| t.saved_ms).sum();
    assert_eq!(second.summary.totals.saved_ms, saved);
    assert!(
        saved > 0,
        "compiling took no time? {:?}",
        first.summary.tasks
    );
    assert_only_metadata_ran(&fixture);
    assert!(
        !second.output.stderr.contains("Compiling"),
        "{}",
        second.output
    );
    insta::assert_snapshot!("build_second_run", fixture.redact(&second.output.stderr));
}

#[test]
fn each_task_counts_its_own_time_and_a_long_cargo_call_reports_progress() {
    let fixture = Fixture::new("basic");
    // app -> util -> core-lib: cargo compiles them one after the other in one call, and
    // core-lib's build script takes 3 s.
    fixture.write(
        "crates/core/build.rs",
        "fn main() { std::thread::sleep(std::time::Duration::from_secs(3)); }\n",
    );
    let run = fixture.run_env(&["build"], &[("XTASK_PROGRESS_INTERVAL_MS", "500")]);
    run.assert_code(0);
    let own = |id: &str| run.summary.task(id).duration_ms;
    assert!(own("core-lib:build") >= 3000, "{:?}", run.summary.tasks);
    // Not measured from the start of the shared cargo call: util and app do not carry
    // core-lib's 3 s.
    for id in ["util:build", "app:build"] {
        assert!(own(id) < 2500, "{id}: {:?}", run.summary.tasks);
    }
    let total: u64 = run.summary.tasks.iter().map(|t| t.duration_ms).sum();
    assert!(
        total <= run.summary.duration_ms,
        "own times of a chain cannot add up to more than the run: {total} ms > {} ms",
        run.summary.duration_ms
    );
    // Piped output: progress lines while cargo runs, naming what it started.
    let progress: Vec<&str> = run
        .output
        .stderr
        .lines()
        .filter(|line| line.starts_with("cargo build (3 packages): "))
        .collect();
    assert!(
        progress
            .iter()
            .any(|line| line.contains("packages started") && line.contains("core-lib v0.1.0")),
        "{}",
        run.output
    );
    // A hit saves what the task itself took.
    let second = fixture.run(&["build"]);
    assert_eq!(second.summary.totals.saved_ms, total);
}

#[test]
fn a_hit_never_overwrites_the_running_tool_binary() {
    // `cargo xtask` runs the binary cargo has just built for the alias; the workspace build
    // unifies features differently, so the cached one differs. Restoring it on every call
    // rewrote the running binary and made the next alias call relink it: a fight with cargo.
    let fixture = Fixture::new("basic");
    fixture.run(&["build"]).assert_code(0);
    let app = fixture.path("target/debug/app");
    let tool = fs::read(env!("CARGO_BIN_EXE_xtask")).expect("read the tool binary");
    fs::remove_file(&app).expect("remove app");
    fs::write(&app, &tool).expect("copy the tool to target/debug/app");
    fixture.set_executable("target/debug/app", true);
    let output = fixture
        .xtask_command_at(&app, &["build"])
        .output()
        .expect("run the tool as target/debug/app");
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("app:build: cache hit"),
        "{output:?}"
    );
    assert!(
        fs::read(&app).expect("read app") == tool,
        "the running binary was overwritten by the cached app"
    );
    // Any other caller gets the cached binary back.
    fixture.run(&["build"]).assert_code(0);
    assert_restored_app_runs(&fixture);
}

#[test]
fn a_long_test_run_reports_progress_while_the_tests_run() {
    let fixture = Fixture::new("basic");
    fixture.append(
        CORE_LIB,
        "#[cfg(test)]\nmod slow {\n    #[test]\n    fn takes_two_seconds() {\n        \
         std::thread::sleep(std::time::Duration::from_secs(2));\n    }\n}\n",
    );
    let run = fixture.run_env(&["test"], &[("XTASK_PROGRESS_INTERVAL_MS", "400")]);
    run.assert_code(0);
    assert!(
        run.output.stderr.lines().any(|line| line
            .starts_with("cargo test (3 packages): tests of ")
            && line.contains("running: core-lib")),
        "{}",
        run.output
    );
}

#[test]
fn touching_every_source_file_keeps_every_task_a_hit() {
    let fixture = Fixture::new("basic");
    fixture.run(&["build"]).assert_code(0);
    let later = SystemTime::now() + Duration::from_secs(3600);
    let files = fixture.source_files();
    assert!(
        files.len() >= 8,
        "expected the fixture's manifests and sources, got {files:?}"
    );
    for relative in &files {
        let file = fs::File::options()
            .write(true)
            .open(fixture.root().join(relative))
            .expect("open a source file");
        file.set_modified(later).expect("set the mtime");
    }
    fixture.take_cargo_calls();

    let run = fixture.run(&["build"]);
    run.assert_code(0);
    assert_eq!(run.summary.statuses(), all_packages("build", "hit"));
    assert_only_metadata_ran(&fixture);
}

#[test]
fn editing_a_package_misses_it_and_its_dependents_only() {
    let fixture = Fixture::new("basic");
    let first = fixture.run(&["build"]);
    first.assert_code(0);
    fixture.take_cargo_calls();

    fixture.append(APP_MAIN, "// an edit of the leaf\n");
    let leaf = fixture.run(&["build"]);
    leaf.assert_code(0);
    assert_eq!(
        leaf.summary.statuses(),
        statuses(&[
            ("app:build", "miss"),
            ("core-lib:build", "hit"),
            ("util:build", "hit")
        ])
    );
    assert_ne!(
        leaf.summary.task("app:build").hash,
        first.summary.task("app:build").hash
    );
    let builds = cargo_calls_of(&fixture, "build");
    assert_eq!(builds.len(), 1, "{builds:?}");
    // Cargo is given the whole selection the keys were planned for (features unify across
    // it); it skips the fresh units itself. Each package by its id, which no dependency of
    // the same name can make ambiguous.
    let root = fixture.root().display();
    let selection: Vec<String> = [
        "apps/app#0.1.0",
        "crates/core#core-lib@0.1.0",
        "crates/util#0.1.0",
    ]
    .iter()
    .map(|spec| format!("-p path+file://{root}/{spec}"))
    .collect();
    assert!(
        builds[0].ends_with(&format!(" {}", selection.join(" "))),
        "the build selects what the keys assume: {builds:?}"
    );

    fixture.append(CORE_LIB, "// an edit at the bottom of the graph\n");
    let bottom = fixture.run(&["build"]);
    bottom.assert_code(0);
    assert_eq!(bottom.summary.statuses(), all_packages("build", "miss"));
    for task in &bottom.summary.tasks {
        assert_ne!(
            task.hash,
            leaf.summary.task(&task.task_id).hash,
            "{} kept its hash",
            task.task_id
        );
    }
}

#[test]
fn deleted_target_dir_is_restored_from_the_cache() {
    let fixture = Fixture::new("basic");
    fixture.run(&["build"]).assert_code(0);
    fixture.remove_dir("target");
    fixture.take_cargo_calls();

    let run = fixture.run(&["build"]);
    run.assert_code(0);
    assert_eq!(run.summary.statuses(), all_packages("build", "hit"));
    assert_only_metadata_ran(&fixture);
    assert_restored_app_runs(&fixture);
}

/// Runs the fixture's `target/debug/app` and checks it prints `app says 84`.
#[track_caller]
fn assert_restored_app_runs(fixture: &Fixture) {
    assert_eq!(run_app(fixture), "app says 84\n");
}

/// What the fixture's `target/debug/app` prints.
#[track_caller]
fn run_app(fixture: &Fixture) -> String {
    let binary = fixture.path("target/debug/app");
    assert!(binary.is_file(), "`{}` does not exist", binary.display());
    let output = std::process::Command::new(&binary)
        .output()
        .expect("run the app");
    assert!(output.status.success(), "the app failed: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn reverting_an_edit_restores_the_earlier_binary_over_the_newer_one() {
    let fixture = Fixture::new("basic");
    fixture.run(&["build"]).assert_code(0);
    fixture.replace(APP_MAIN, "app says", "app v2 says");
    let edited = fixture.run(&["build"]);
    edited.assert_code(0);
    assert_eq!(edited.summary.task("app:build").status, "miss");
    assert_eq!(run_app(&fixture), "app v2 says 84\n");

    fixture.replace(APP_MAIN, "app v2 says", "app says");
    fixture.take_cargo_calls();
    let reverted = fixture.run(&["build"]);
    reverted.assert_code(0);
    assert_eq!(reverted.summary.statuses(), all_packages("build", "hit"));
    assert_only_metadata_ran(&fixture);
    assert_restored_app_runs(&fixture);
}

/// An integration test that appends its package's name to `<workspace>/test-runs.log`, so the
/// tests can see which test binaries really ran.
const RECORDING_TEST: &str = r#"
#[test]
fn records_that_it_ran() {
    use std::io::Write;
    let log = concat!(env!("CARGO_MANIFEST_DIR"), "/../../test-runs.log");
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    writeln!(file, "{}", env!("CARGO_PKG_NAME")).unwrap();
}
"#;

/// The packages whose test binaries ran since the last call, sorted; clears the log.
fn take_test_runs(fixture: &Fixture) -> Vec<String> {
    let log = fixture.path("test-runs.log");
    let text = fs::read_to_string(&log).unwrap_or_default();
    let _ = fs::remove_file(&log);
    let mut packages: Vec<String> = text.lines().map(str::to_string).collect();
    packages.sort();
    packages
}

#[test]
fn test_results_are_cached_and_failures_are_not() {
    let fixture = Fixture::new("basic");
    for dir in PACKAGE_DIRS {
        fixture.write(&format!("{dir}/tests/records.rs"), RECORDING_TEST);
    }

    let first = fixture.run(&["test"]);
    first.assert_code(0);
    assert_eq!(first.summary.statuses(), all_packages("test", "miss"));
    assert_eq!(take_test_runs(&fixture), ["app", "core-lib", "util"]);
    // core-lib's and util's unit tests plus one recording test per package.
    assert!(
        first.output.stderr.contains("\n5 passed, 0 failed\n"),
        "{}",
        first.output
    );
    fixture.take_cargo_calls();

    let second = fixture.run(&["test"]);
    second.assert_code(0);
    assert_eq!(second.summary.statuses(), all_packages("test", "hit"));
    assert_eq!(second.summary.totals.ran, 0);
    assert_eq!(
        take_test_runs(&fixture),
        Vec::<String>::new(),
        "no test binary may run on a hit"
    );
    assert_only_metadata_ran(&fixture);

    fixture.replace(
        UTIL_LIB,
        "assert_eq!(super::doubled(), 84);",
        "assert_eq!(super::doubled(), 85);",
    );
    let failing = fixture.run(&["test"]);
    failing.assert_code(1);
    assert_eq!(
        failing.summary.statuses(),
        // app depends on util, so its hash changed too.
        statuses(&[
            ("app:test", "miss"),
            ("core-lib:test", "hit"),
            ("util:test", "failed")
        ])
    );
    assert_eq!(failing.summary.totals.failed, 1);
    assert!(
        failing.output.stderr.contains("util:test: FAILED"),
        "{}",
        failing.output
    );
    assert!(
        failing.output.stderr.contains("right: 85"),
        "the failure's log is shown: {}",
        failing.output
    );
    assert_eq!(take_test_runs(&fixture), ["app", "util"]);

    let again = fixture.run(&["test"]);
    again.assert_code(1);
    assert_eq!(
        again.summary.statuses(),
        statuses(&[
            ("app:test", "hit"),
            ("core-lib:test", "hit"),
            ("util:test", "failed")
        ])
    );
    assert!(
        again.output.stderr.contains("util:test: FAILED"),
        "{}",
        again.output
    );
    assert_eq!(
        take_test_runs(&fixture),
        ["util"],
        "a failure is never cached: util's tests run again"
    );

    fixture.replace(
        UTIL_LIB,
        "assert_eq!(super::doubled(), 85);",
        "assert_eq!(super::doubled(), 84);",
    );
    let fixed = fixture.run(&["test"]);
    fixed.assert_code(0);
    // The sources are the first run's again, so every result comes from the cache.
    assert_eq!(fixed.summary.statuses(), all_packages("test", "hit"));
    assert_eq!(
        fixed.summary.task("util:test").hash,
        first.summary.task("util:test").hash
    );
}

/// Builds, damages the archive blob of `app:build`'s entry with `corrupt`, deletes `target/`
/// and checks the next build warns, rebuilds app and re-caches it.
fn corrupted_archive_is_rebuilt(corrupt: impl Fn(&mut Vec<u8>)) {
    let fixture = Fixture::new("basic");
    let first = fixture.run(&["build"]);
    first.assert_code(0);
    let app_hash = &first.summary.task("app:build").hash;
    let entry = fixture.cache_entry(app_hash);
    let archive_sha = entry["archive"]["sha256"]
        .as_str()
        .expect("the entry names its archive");
    let blob = fixture.cache_blob(archive_sha);
    let mut bytes = fs::read(&blob).expect("read the archive blob");
    corrupt(&mut bytes);
    fs::write(&blob, &bytes).expect("write the damaged blob");
    fixture.remove_dir("target");

    let damaged = fixture.run(&["build"]);
    damaged.assert_code(0);
    assert_eq!(
        damaged.summary.statuses(),
        statuses(&[
            ("app:build", "miss"),
            ("core-lib:build", "hit"),
            ("util:build", "hit")
        ])
    );
    let warnings = damaged.output.warnings();
    assert_eq!(warnings.len(), 1, "{}", damaged.output);
    assert!(
        warnings[0].contains("app:build") && warnings[0].contains(archive_sha),
        "{}",
        warnings[0]
    );
    assert_restored_app_runs(&fixture);

    let healed = fixture.run(&["build"]);
    healed.assert_code(0);
    assert_eq!(healed.summary.statuses(), all_packages("build", "hit"));
    assert!(
        !healed.output.stderr.contains("warning"),
        "{}",
        healed.output
    );
}

#[test]
fn truncated_archive_is_a_warned_miss() {
    corrupted_archive_is_rebuilt(|bytes| bytes.truncate(bytes.len() / 2));
}

#[test]
fn bit_flipped_archive_is_a_warned_miss() {
    corrupted_archive_is_rebuilt(|bytes| {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x10;
    });
}

#[test]
fn corrupt_entry_json_is_a_warned_miss() {
    let fixture = Fixture::new("basic");
    let first = fixture.run(&["build"]);
    first.assert_code(0);
    let hash = &first.summary.task("util:build").hash;
    let entry = format!("{CACHE_DIR}/v1/entries/{}/{hash}.json", &hash[..2]);
    let text = fixture.read(&entry);
    fixture.write(&entry, &text[..text.len() / 2]);

    let damaged = fixture.run(&["build"]);
    damaged.assert_code(0);
    assert_eq!(
        damaged.summary.statuses(),
        statuses(&[
            ("app:build", "hit"),
            ("core-lib:build", "hit"),
            ("util:build", "miss")
        ])
    );
    let warnings = damaged.output.warnings();
    assert_eq!(warnings.len(), 1, "{}", damaged.output);
    assert!(
        warnings[0].contains("util:build") && warnings[0].contains(hash.as_str()),
        "{}",
        warnings[0]
    );

    let healed = fixture.run(&["build"]);
    healed.assert_code(0);
    assert_eq!(healed.summary.statuses(), all_packages("build", "hit"));
    assert!(
        !healed.output.stderr.contains("warning"),
        "{}",
        healed.output
    );
}

/// Runs `args`, expects exit code 3 with nothing written, and returns the redacted stderr.
#[track_caller]
fn invalid_config(fixture: &Fixture, args: &[&str]) -> String {
    let output = fixture.xtask(args);
    output.assert_code(3);
    assert_eq!(output.stdout, "");
    assert!(
        !fixture.exists(CACHE_DIR),
        "the cache dir was created:\n{output}"
    );
    assert!(!fixture.exists("target"), "something was built:\n{output}");
    fixture.redact(&output.stderr)
}

#[test]
fn config_unknown_key() {
    let fixture = Fixture::new("basic");
    fixture.append("Cargo.toml", "bogus = 1\n");
    let stderr = invalid_config(&fixture, &["build"]);
    assert!(stderr.contains("[WORKSPACE]/Cargo.toml:"), "{stderr}");
    assert!(
        stderr.contains("`workspace.metadata.xtask.tasks.gen.bogus`"),
        "{stderr}"
    );
    insta::assert_snapshot!(stderr);
}

#[test]
fn config_wrong_type() {
    let fixture = Fixture::new("basic");
    fixture.replace(
        "Cargo.toml",
        r#"outputs = ["out/**"]"#,
        r#"outputs = "out""#,
    );
    let stderr = invalid_config(&fixture, &["build"]);
    assert!(stderr.contains("[WORKSPACE]/Cargo.toml:11:"), "{stderr}");
    assert!(
        stderr.contains("`workspace.metadata.xtask.tasks.gen.outputs`"),
        "the key is named: {stderr}"
    );
    insta::assert_snapshot!(stderr);
}

const CYCLE: &str = r#"
[workspace.metadata.xtask.tasks.a]
command = ["true"]
depends_on = ["b"]

[workspace.metadata.xtask.tasks.b]
command = ["true"]
depends_on = ["a"]
"#;

#[test]
fn config_task_cycle_names_file_key_and_cycle() {
    let fixture = Fixture::new("basic");
    fixture.append("Cargo.toml", CYCLE);
    let stderr = invalid_config(&fixture, &["run", "a"]);
    assert!(
        stderr.contains("a -> ") && stderr.contains("b -> "),
        "the cycle is listed: {stderr}"
    );
    assert!(
        stderr.contains("[WORKSPACE]/Cargo.toml"),
        "the file is named: {stderr}"
    );
    assert!(
        stderr.contains("`workspace.metadata.xtask.tasks.a.depends_on`")
            || stderr.contains("`workspace.metadata.xtask.tasks.b.depends_on`"),
        "the key is named: {stderr}"
    );
    insta::assert_snapshot!(stderr);
}

#[test]
fn config_task_cycle_fails_every_command() {
    let fixture = Fixture::new("basic");
    fixture.append("Cargo.toml", CYCLE);
    // The configuration is invalid whatever task is asked for (exit code 3 is documented for
    // "task cycle"; problems are reported before any work).
    let stderr = invalid_config(&fixture, &["build"]);
    assert!(stderr.contains("cycle"), "{stderr}");
}

#[test]
fn config_port_out_of_range() {
    let fixture = Fixture::new("basic");
    fixture.append(
        "apps/app/Cargo.toml",
        "\n[package.metadata.xtask.app]\nport = 0\n",
    );
    let stderr = invalid_config(&fixture, &["build"]);
    assert!(
        stderr.contains("[WORKSPACE]/apps/app/Cargo.toml:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`package.metadata.xtask.app.port`: must be 1-65535, got 0"),
        "{stderr}"
    );
    insta::assert_snapshot!(stderr);
}

#[test]
fn config_dependency_on_unknown_package() {
    let fixture = Fixture::new("basic");
    fixture.replace(
        "Cargo.toml",
        r#"depends_on = ["^gen"]"#,
        r#"depends_on = ["nosuch#gen"]"#,
    );
    let stderr = invalid_config(&fixture, &["build"]);
    assert!(stderr.contains("nosuch#gen"), "{stderr}");
    // The mistake is in one place: the workspace manifest, at the workspace task's key.
    assert!(
        stderr.contains("invalid configuration (1 problem)"),
        "reported once: {stderr}"
    );
    assert!(
        stderr.contains("[WORKSPACE]/Cargo.toml"),
        "the file is named: {stderr}"
    );
    assert!(
        stderr.contains("`workspace.metadata.xtask.tasks.gen.depends_on`"),
        "the key is named: {stderr}"
    );
    insta::assert_snapshot!(stderr);
}

#[test]
fn unknown_package_is_a_usage_error_with_exit_code_3() {
    let fixture = Fixture::new("basic");
    let stderr = invalid_config(&fixture, &["build", "-p", "nope"]);
    insta::assert_snapshot!(stderr, @"error: unknown package `nope`: workspace packages are app, core-lib, util");
}

#[test]
fn why_names_the_changed_file_and_the_changed_dependency() {
    let fixture = Fixture::new("basic");
    let why = |task: &str| -> String {
        let output = fixture.xtask(&["why", task]);
        output.assert_code(0);
        assert_eq!(output.stderr, "", "`why` prints its answer on stdout");
        output.stdout
    };
    let mut text = format!("# before any build\n{}", why("app:build"));
    fixture.run(&["build"]).assert_code(0);
    text += &format!("# after a build\n{}", why("app:build"));

    let original = fixture.read(APP_MAIN);
    fixture.append(APP_MAIN, "// edited\n");
    let after_leaf_edit = why("app:build");
    assert!(
        after_leaf_edit.contains("input changed: apps/app/src/main.rs"),
        "{after_leaf_edit}"
    );
    text += &format!("# after editing {APP_MAIN}\n{after_leaf_edit}");

    fixture.write(APP_MAIN, &original);
    fixture.append(CORE_LIB, "// edited\n");
    let app = why("app:build");
    assert!(
        app.contains("workspace dependency changed: core-lib"),
        "{app}"
    );
    assert!(
        !app.contains(APP_MAIN),
        "app's own file is unchanged again: {app}"
    );
    let util = why("util:build");
    assert!(
        util.contains("workspace dependency changed: core-lib"),
        "{util}"
    );
    let core = why("core-lib:build");
    assert!(
        core.contains("input changed: crates/core/src/lib.rs"),
        "{core}"
    );
    text += &format!("# after editing {CORE_LIB}\n{app}{util}{core}");

    let _settings = snapshot_settings().bind_to_scope();
    insta::assert_snapshot!(text);
}

/// What the fixture's `gen` task writes for a package: the byte count of its `src/*.rs`.
#[test]
fn why_compares_with_the_recent_run_closest_to_the_current_state() {
    let fixture = Fixture::new("basic");
    let original = fixture.read(APP_MAIN);
    // Run A: as checked out. Run B (the last run): a notes file added.
    fixture.run(&["build"]).assert_code(0);
    fixture.write("apps/app/notes.txt", "b\n");
    fixture.run(&["build"]).assert_code(0);
    // Now: the notes file gone again (as in A) and main.rs edited. Against the last run
    // (B) both changed; against A, the closest run, only main.rs did.
    fs::remove_file(fixture.path("apps/app/notes.txt")).expect("remove notes");
    fixture.append(APP_MAIN, "// edited\n");
    let output = fixture.xtask(&["why", "app:build"]);
    assert_blames_the_app_main(&output);
    assert!(!output.stdout.contains("notes.txt"), "{output}");
    fixture.write(APP_MAIN, &original);
    let back = fixture.xtask(&["why", "app:build"]);
    assert!(back.stdout.contains("cache hit"), "{back}");
}

/// A workspace where one package cannot build (coreutils' SELinux tools on a machine without
/// libselinux) is built with `-p` for the others; `why` about such a run must plan the same
/// selection and profile, or it blames feature unification and the profile for every miss.
#[test]
fn why_explains_a_run_with_its_selection_and_profile() {
    let fixture = Fixture::new("basic");
    fixture
        .run(&["build", "-p", "app", "-p", "util", "--release"])
        .assert_code(0);
    fixture.append(APP_MAIN, "// edited\n");
    let output = fixture.xtask(&["why", "app:build", "-p", "app", "-p", "util", "--release"]);
    assert_blames_the_app_main(&output);
    assert!(
        !output.stdout.contains("feature unification") && !output.stdout.contains("profile"),
        "only the edit differs from that run: {output}"
    );
    let outside = fixture.xtask(&["why", "core-lib:build", "-p", "app"]);
    outside.assert_code(3);
    assert!(outside.stderr.contains("add `-p core-lib`"), "{outside}");
}

/// `why` succeeded and names the edited `apps/app/src/main.rs`.
fn assert_blames_the_app_main(output: &Output) {
    output.assert_code(0);
    assert!(
        output
            .stdout
            .contains("input changed: apps/app/src/main.rs"),
        "{output}"
    );
}

fn expected_size(fixture: &Fixture, dir: &str) -> String {
    let mut total = 0;
    for entry in fs::read_dir(fixture.path(&format!("{dir}/src"))).expect("read src") {
        let path = entry.expect("read an entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            total += fs::metadata(&path).expect("stat a source").len();
        }
    }
    total.to_string()
}

#[test]
fn custom_task_outputs_are_cached_and_restored() {
    let fixture = Fixture::new("basic");
    let first = fixture.run(&["run", "gen"]);
    first.assert_code(0);
    assert_eq!(first.summary.statuses(), all_packages("gen", "miss"));
    // `depends_on = ["^gen"]`: dependencies first, in the summary and in the dependency lists.
    assert_eq!(
        first.summary.task_ids(),
        ["core-lib:gen", "util:gen", "app:gen"]
    );
    assert_eq!(
        first.summary.task("core-lib:gen").dependencies,
        Vec::<String>::new()
    );
    assert_eq!(
        first.summary.task("util:gen").dependencies,
        ["core-lib:gen"]
    );
    assert_eq!(first.summary.task("app:gen").dependencies, ["util:gen"]);
    let finished_at = |task: &str| {
        first
            .output
            .stderr
            .find(&format!("{task}: cache miss"))
            .unwrap_or_else(|| panic!("{task} did not finish"))
    };
    assert!(
        finished_at("core-lib:gen") < finished_at("util:gen"),
        "{}",
        first.output
    );
    assert!(
        finished_at("util:gen") < finished_at("app:gen"),
        "{}",
        first.output
    );
    let sizes: Vec<String> = PACKAGE_DIRS
        .iter()
        .map(|dir| fixture.read(&format!("{dir}/out/size.txt")))
        .collect();
    for (dir, size) in PACKAGE_DIRS.iter().zip(&sizes) {
        assert_eq!(
            size.trim(),
            expected_size(&fixture, dir),
            "{dir}/out/size.txt"
        );
    }

    let second = fixture.run(&["run", "gen"]);
    second.assert_code(0);
    assert_eq!(second.summary.statuses(), all_packages("gen", "hit"));

    for dir in PACKAGE_DIRS {
        fixture.remove_dir(&format!("{dir}/out"));
    }
    let restored = fixture.run(&["run", "gen"]);
    restored.assert_code(0);
    assert_eq!(restored.summary.statuses(), all_packages("gen", "hit"));
    for (dir, size) in PACKAGE_DIRS.iter().zip(&sizes) {
        assert_eq!(
            &fixture.read(&format!("{dir}/out/size.txt")),
            size,
            "{dir}/out/size.txt is restored"
        );
    }
    assert_only_metadata_ran(&fixture);
}

#[test]
fn upstream_tasks_finish_before_their_dependents_start() {
    let fixture = Fixture::new("basic");
    // Every package directory is two levels below the root, so `../../order.log` is shared.
    fixture.replace(
        "Cargo.toml",
        r#"command = ["sh", "-c", "mkdir -p out && cat src/*.rs | wc -c > out/size.txt"]"#,
        r#"command = ["sh", "-c", "echo start $XTASK_PACKAGE >> ../../order.log; sleep 0.2; echo end $XTASK_PACKAGE >> ../../order.log"]"#,
    );
    let run = fixture.run(&["run", "gen", "--jobs", "3"]);
    run.assert_code(0);
    assert_eq!(
        fixture.read("order.log").lines().collect::<Vec<_>>(),
        [
            "start core-lib",
            "end core-lib",
            "start util",
            "end util",
            "start app",
            "end app"
        ]
    );
}

#[test]
fn failing_custom_task_fails_the_run_and_is_not_cached() {
    let fixture = Fixture::new("basic");
    fixture.replace(
        "Cargo.toml",
        r#"command = ["sh", "-c", "mkdir -p out && cat src/*.rs | wc -c > out/size.txt"]"#,
        r#"command = ["sh", "-c", "exit 3"]"#,
    );
    for attempt in 1..=2 {
        let run = fixture.run(&["run", "gen"]);
        run.assert_code(1);
        assert_eq!(
            run.summary.statuses(),
            statuses(&[
                ("app:gen", "skipped"),
                ("core-lib:gen", "failed"),
                ("util:gen", "skipped")
            ]),
            "attempt {attempt}"
        );
        assert_eq!(
            run.summary.totals,
            Totals {
                tasks: 3,
                hits: 0,
                ran: 1,
                failed: 1,
                skipped: 2,
                saved_ms: 0
            }
        );
        assert!(
            run.output.stderr.contains("core-lib:gen: FAILED"),
            "{}",
            run.output
        );
        assert!(run.output.stderr.contains("exit code 3"), "{}", run.output);
        assert!(
            !fixture.exists(&format!("{CACHE_DIR}/v1/entries")),
            "a failure was cached"
        );
    }
}

#[test]
fn graph_formats() {
    let fixture = Fixture::new("basic");
    let graph = |args: &[&str]| -> String {
        let mut full = vec!["graph"];
        full.extend_from_slice(args);
        let output = fixture.xtask(&full);
        output.assert_code(0);
        assert_eq!(output.stderr, "");
        output.stdout
    };

    let json = graph(&["--format", "json"]);
    let value: serde_json::Value =
        serde_json::from_str(&json).expect("graph --format json prints JSON");
    let edges: Vec<(String, Vec<String>)> = value["packages"]
        .as_array()
        .expect("a package list")
        .iter()
        .map(|package| {
            let dependencies = package["dependencies"]
                .as_array()
                .expect("a dependency list");
            let names = dependencies
                .iter()
                .map(|d| d["package"].as_str().expect("a name").to_string())
                .collect();
            (package["name"].as_str().expect("a name").to_string(), names)
        })
        .collect();
    assert_eq!(
        edges,
        [
            ("app".to_string(), vec!["util".to_string()]),
            ("core-lib".to_string(), vec![]),
            ("util".to_string(), vec!["core-lib".to_string()]),
        ]
    );
    insta::assert_snapshot!("graph_json", json);

    let dot = graph(&[]);
    assert!(dot.contains(r#""app" -> "util""#), "{dot}");
    assert!(dot.contains(r#""util" -> "core-lib""#), "{dot}");
    assert!(
        !dot.contains(r#""app" -> "core-lib""#),
        "only direct edges: {dot}"
    );
    assert_eq!(graph(&["--format", "dot"]), dot, "dot is the default");
    insta::assert_snapshot!("graph_dot", dot);

    insta::assert_snapshot!("graph_mermaid", graph(&["--format", "mermaid"]));
    insta::assert_snapshot!(
        "graph_mermaid_gen_tasks",
        graph(&["--format", "mermaid", "--task", "gen"])
    );
    assert!(
        !fixture.exists("target") && !fixture.exists(CACHE_DIR),
        "graph writes nothing"
    );
}

/// `task_id -> status` of a `--dry-run=json` output.
fn dry_run_statuses(output: &Output) -> std::collections::BTreeMap<String, String> {
    let value: serde_json::Value =
        serde_json::from_str(&output.stdout).expect("--dry-run=json prints JSON");
    value["tasks"]
        .as_array()
        .expect("a task list")
        .iter()
        .map(|t| {
            (
                t["task_id"].as_str().expect("an id").to_string(),
                t["status"].as_str().expect("a status").to_string(),
            )
        })
        .collect()
}

#[test]
fn dry_run_runs_nothing_and_reports_cache_status() {
    let fixture = Fixture::new("basic");
    let fresh = fixture.xtask(&["build", "--dry-run=json"]);
    fresh.assert_code(0);
    assert_eq!(dry_run_statuses(&fresh), all_packages("build", "miss"));
    assert!(!fixture.exists("target"), "a dry run built something");
    assert!(!fixture.exists(CACHE_DIR), "a dry run wrote the cache");
    assert_only_metadata_ran(&fixture);
    let _settings = snapshot_settings().bind_to_scope();
    insta::assert_snapshot!("dry_run_json_fresh", fresh.stdout);

    let gen_dry_run = fixture.xtask(&["run", "gen", "--dry-run=json"]);
    gen_dry_run.assert_code(0);
    assert_eq!(dry_run_statuses(&gen_dry_run), all_packages("gen", "miss"));
    assert!(
        PACKAGE_DIRS
            .iter()
            .all(|dir| !fixture.exists(&format!("{dir}/out"))),
        "a dry run ran `gen`"
    );

    let build = fixture.run(&["build"]);
    build.assert_code(0);
    let after = fixture.xtask(&["build", "--dry-run=json"]);
    after.assert_code(0);
    assert_eq!(dry_run_statuses(&after), all_packages("build", "hit"));
    let value: serde_json::Value = serde_json::from_str(&after.stdout).expect("JSON");
    for task in value["tasks"].as_array().expect("a task list") {
        let id = task["task_id"].as_str().expect("an id");
        assert_eq!(
            task["hash"].as_str(),
            Some(build.summary.task(id).hash.as_str()),
            "{id}: the dry run's hash is the run's"
        );
    }
}

#[test]
fn no_cache_writes_no_entries() {
    let fixture = Fixture::new("basic");
    let uncached = fixture.run(&["build", "--no-cache"]);
    uncached.assert_code(0);
    assert_eq!(uncached.summary.statuses(), all_packages("build", "miss"));
    assert!(
        !fixture.exists(&format!("{CACHE_DIR}/v1/entries")),
        "--no-cache stored entries"
    );

    let next = fixture.run(&["build"]);
    next.assert_code(0);
    assert_eq!(next.summary.statuses(), all_packages("build", "miss"));
    let third = fixture.run(&["build"]);
    assert_eq!(
        third.summary.statuses(),
        all_packages("build", "hit"),
        "a normal build does store"
    );
}

#[test]
fn cache_stats_and_clean() {
    let fixture = Fixture::new("basic");
    fixture.run(&["build"]).assert_code(0);
    let mut settings = snapshot_settings();
    // The archive sizes depend on the toolchain; the configured limit does not.
    settings.add_filter(r"size: .*", "size: [SIZE]");
    settings.add_filter(r"entries \(.*\)", "entries ([SIZE])");
    let _settings = settings.bind_to_scope();

    let stats = fixture.xtask(&["cache", "stats"]);
    stats.assert_code(0);
    // Three build entries and the cargo units of each package (`run::layers`).
    assert!(stats.stdout.contains("\nentries: 6\n"), "{stats}");
    insta::assert_snapshot!("cache_stats_after_build", fixture.redact(&stats.stdout));

    let clean = fixture.xtask(&["cache", "clean"]);
    clean.assert_code(0);
    assert!(clean.stdout.contains("removed 6 entries"), "{clean}");
    insta::assert_snapshot!("cache_clean", fixture.redact(&clean.stdout));
    let stats = fixture.xtask(&["cache", "stats"]);
    assert!(stats.stdout.contains("\nentries: 0\n"), "{stats}");

    let run = fixture.run(&["build"]);
    run.assert_code(0);
    assert_eq!(run.summary.statuses(), all_packages("build", "miss"));
}

#[test]
fn affected_lists_the_changed_package_and_its_dependents() {
    let fixture = Fixture::new("basic");
    fixture.git(&["init", "-q"]);
    fixture.git(&["add", "-A"]);
    fixture.git(&["commit", "-q", "-m", "fixture"]);
    let nothing = fixture.xtask(&["affected", "--since", "HEAD"]);
    nothing.assert_code(0);
    assert_eq!(nothing.stdout, "", "nothing changed yet");

    fixture.append(UTIL_LIB, "// changed\n");
    let affected = fixture.xtask(&["affected", "--since", "HEAD"]);
    affected.assert_code(0);
    let names: Vec<&str> = affected
        .stdout
        .lines()
        .filter_map(|line| line.split('\t').next())
        .collect();
    assert_eq!(names, ["app", "util"], "{affected}");
    insta::assert_snapshot!(affected.stdout);

    let dry_run = fixture.xtask(&["build", "--affected=HEAD", "--dry-run=json"]);
    dry_run.assert_code(0);
    assert_eq!(
        dry_run_statuses(&dry_run),
        statuses(&[("app:build", "miss"), ("util:build", "miss")])
    );
}

#[test]
fn lint_and_fmt_pass_and_unformatted_code_fails_fmt() {
    let fixture = Fixture::new("basic");
    let lint = fixture.run(&["lint"]);
    lint.assert_code(0);
    assert_eq!(lint.summary.statuses(), all_packages("lint", "miss"));
    let fmt = fixture.run(&["fmt"]);
    fmt.assert_code(0);
    assert_eq!(fmt.summary.statuses(), all_packages("fmt", "miss"));

    fixture.write(APP_MAIN, "fn  main( ){}\n");
    let unformatted = fixture.run(&["fmt"]);
    unformatted.assert_code(1);
    assert_eq!(
        unformatted.summary.statuses(),
        statuses(&[
            ("app:fmt", "failed"),
            ("core-lib:fmt", "hit"),
            ("util:fmt", "hit")
        ])
    );
    let stderr = &unformatted.output.stderr;
    assert!(stderr.contains("app:fmt: FAILED"), "{}", unformatted.output);
    assert!(
        stderr.contains(&format!(
            "app:fmt: Diff in {}",
            fixture.path(APP_MAIN).display()
        )),
        "{}",
        unformatted.output
    );
}

#[test]
fn concurrent_builds_of_one_workspace_share_the_cache() {
    let fixture = Fixture::new("basic");
    let children: Vec<_> = (0..2)
        .map(|_| {
            let mut command = fixture.xtask_command(&["build"]);
            command
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            command.spawn().expect("start xtask")
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().expect("wait for xtask");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        assert!(!stderr.contains("warning"), "{stderr}");
    }

    let third = fixture.run(&["build"]);
    third.assert_code(0);
    assert_eq!(third.summary.statuses(), all_packages("build", "hit"));
    assert_restored_app_runs(&fixture);
}

/// The names `affected` prints (first column), from its output.
fn affected_names(output: &Output) -> Vec<&str> {
    output
        .stdout
        .lines()
        .filter_map(|line| line.split('\t').next())
        .collect()
}

#[test]
fn affected_without_a_base_finds_the_default_branch_or_says_what_to_pass() {
    let fixture = Fixture::new("basic");
    fixture.git(&["init", "-q", "-b", "trunk"]);
    fixture.git(&["add", "-A"]);
    fixture.git(&["commit", "-q", "-m", "fixture"]);
    fixture.append(UTIL_LIB, "// changed\n");

    // No origin/HEAD, main or master: a clear user error naming what to pass, not git's.
    for args in [&["affected"][..], &["build", "--affected", "--dry-run"][..]] {
        let output = fixture.xtask(args);
        output.assert_code(3);
        let stderr = fixture.redact(&output.stderr);
        for needed in [
            "[WORKSPACE]",
            "origin/HEAD",
            "--since REF",
            "XTASK_AFFECTED_BASE",
        ] {
            assert!(
                stderr.contains(needed),
                "{args:?}: no {needed:?} in:\n{stderr}"
            );
        }
        assert!(!stderr.contains("fatal:"), "{stderr}");
    }
    // A named base that is not a commit: the same kind of error, naming it.
    let unknown = fixture.xtask(&["affected", "--since", "no-such-ref"]);
    unknown.assert_code(3);
    assert!(
        unknown.stderr.contains("`no-such-ref` is not a commit"),
        "{unknown}"
    );

    // `master` (the commit before the change) is found...
    fixture.git(&["branch", "master"]);
    fixture.git(&["commit", "-q", "-am", "util changed"]);
    let on_master = fixture.xtask(&["affected"]);
    on_master.assert_code(0);
    assert_eq!(affected_names(&on_master), ["app", "util"], "{on_master}");

    // ... `main` wins over it, and origin/HEAD over both.
    fixture.git(&["branch", "main", "trunk"]);
    let on_main = fixture.xtask(&["affected"]);
    on_main.assert_code(0);
    assert_eq!(affected_names(&on_main), Vec::<&str>::new(), "{on_main}");

    fixture.git(&["update-ref", "refs/remotes/origin/trunk", "master"]);
    fixture.git(&[
        "symbolic-ref",
        "refs/remotes/origin/HEAD",
        "refs/remotes/origin/trunk",
    ]);
    let on_origin = fixture.xtask(&["affected"]);
    on_origin.assert_code(0);
    assert_eq!(affected_names(&on_origin), ["app", "util"], "{on_origin}");
    let dry_run = fixture.xtask(&["build", "--affected", "--dry-run=json"]);
    dry_run.assert_code(0);
    assert_eq!(
        dry_run_statuses(&dry_run),
        statuses(&[("app:build", "miss"), ("util:build", "miss")])
    );

    // XTASK_AFFECTED_BASE overrides the default branch.
    let from_env = fixture.xtask_env(&["affected"], &[("XTASK_AFFECTED_BASE", "main")]);
    from_env.assert_code(0);
    assert_eq!(affected_names(&from_env), Vec::<&str>::new(), "{from_env}");
}

#[test]
fn affected_outside_a_git_repository_is_a_short_environment_error() {
    let fixture = Fixture::new("basic");
    let output = fixture.xtask(&["affected", "--since", "HEAD"]);
    output.assert_code(4);
    let stderr = fixture.redact(&output.stderr);
    assert!(
        stderr.contains("[WORKSPACE]"),
        "the directory is named: {stderr}"
    );
    assert!(
        stderr.to_lowercase().contains("not a git repository"),
        "{stderr}"
    );
    // Not git's 100-line `git diff --no-index` usage text.
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.len() <= 3,
        "a short message, got {} lines starting with:\n{}",
        lines.len(),
        lines[..5.min(lines.len())].join("\n")
    );
}

#[test]
fn usage_and_environment_errors_have_their_exit_codes() {
    let fixture = Fixture::new("basic");
    let usage = fixture.xtask(&["build", "--dry-run=xml"]);
    usage.assert_code(2);
    assert!(usage.stderr.contains("xml"), "{usage}");
    let unknown_command = fixture.xtask(&["deploy"]);
    unknown_command.assert_code(2);

    let missing = fixture.path("no-such-dir");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("-C")
        .arg(&missing)
        .arg("build")
        .env("CI", "true")
        .current_dir(fixture.tools())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run xtask");
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&missing.display().to_string()),
        "the directory is named: {stderr}"
    );

    let bad_task_id = fixture.xtask(&["why", "app"]);
    bad_task_id.assert_code(3);
    assert!(
        bad_task_id.stderr.contains("expected PACKAGE:TASK"),
        "{bad_task_id}"
    );
    let unknown_task = fixture.xtask(&["run", "nosuch"]);
    unknown_task.assert_code(3);
    assert!(
        unknown_task.stderr.contains("unknown task `nosuch`"),
        "{unknown_task}"
    );
    assert!(!fixture.exists("target") && !fixture.exists(CACHE_DIR));
}

#[test]
fn relative_summary_path_is_relative_to_the_directory_given_with_c() {
    let fixture = Fixture::new("basic");
    // The process runs in another directory (`tools`); `-C` means "as if started in DIR".
    let output = fixture.xtask(&["run", "gen", "--summarize=run-summary.json"]);
    output.assert_code(0);
    assert!(
        !fixture.tools().join("run-summary.json").exists(),
        "written relative to the process's directory"
    );
    assert!(
        fixture.exists("run-summary.json"),
        "not written relative to `-C`:\n{output}"
    );
}

#[test]
fn ci_runs_the_setup_command_first_and_stops_when_it_fails() {
    let fixture = Fixture::new("basic");
    let marker = fixture.tools().join("setup-ran");
    fixture.append(
        "Cargo.toml",
        &format!(
            "\n[workspace.metadata.xtask.ci]\nsetup = [\"sh\", \"-c\", \"echo installing the tools >&2; touch '{}'; echo done\"]\n",
            marker.display()
        ),
    );
    let ci = fixture.xtask(&["ci", "-j", "2"]);
    ci.assert_code(0);
    assert!(marker.exists(), "the setup command did not run:\n{ci}");
    let position = |needle: &str| {
        ci.stderr
            .find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{ci}"))
    };
    // Said on stderr, relayed line by line, before the first check; stdout stays data only.
    let announced = position("==> sh -c echo installing the tools");
    assert!(announced < position("\ninstalling the tools\n"), "{ci}");
    assert!(
        position("\ndone\n") < position("==> cargo xtask fmt"),
        "{ci}"
    );
    assert_eq!(ci.stdout, "", "{ci}");

    fixture.replace("Cargo.toml", "touch '", "exit 7; touch '");
    fs::remove_file(&marker).unwrap();
    let failed = fixture.xtask(&["ci", "-j", "2"]);
    failed.assert_code(4);
    assert!(
        failed
            .stderr
            .contains("(`[workspace.metadata.xtask.ci] setup`) failed in"),
        "{failed}"
    );
    assert!(!failed.stderr.contains("==> cargo xtask fmt"), "{failed}");
    assert!(!marker.exists());
}

#[test]
fn graph_shows_the_platform_of_a_target_specific_edge() {
    let fixture = Fixture::new("basic");
    fixture.append(
        "apps/app/Cargo.toml",
        "\n[target.'cfg(target_os = \"windows\")'.dependencies]\ncore-lib = { path = \"../../crates/core\" }\n",
    );
    let dot = fixture.xtask(&["graph"]);
    dot.assert_code(0);
    assert!(
        dot.stdout
            .contains(r#""app" -> "core-lib" [label="cfg(target_os = \"windows\")"];"#),
        "{dot}"
    );
    assert!(dot.stdout.contains("  \"app\" -> \"util\";\n"), "{dot}");
    let mermaid = fixture.xtask(&["graph", "--format", "mermaid"]);
    mermaid.assert_code(0);
    assert!(
        mermaid
            .stdout
            .contains(r#"app -->|"cfg(target_os = #quot;windows#quot;)"| core_lib"#),
        "{mermaid}"
    );
    let json = fixture.xtask(&["graph", "--format", "json"]);
    json.assert_code(0);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    let app = &value["packages"][0];
    assert_eq!(app["name"], "app");
    assert_eq!(
        app["dependencies"],
        serde_json::json!([
            {"package": "core-lib", "kind": "normal", "platform": "cfg(target_os = \"windows\")"},
            {"package": "util", "kind": "normal"},
        ])
    );
}

#[test]
fn dry_run_lists_the_workspace_packages_cargo_tasks_build_against() {
    let fixture = Fixture::new("basic");
    for task in ["build", "test", "lint"] {
        let json = fixture.xtask(&[task, "--dry-run=json"]);
        json.assert_code(0);
        let value: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
        let dependencies: Vec<(String, serde_json::Value)> = value["tasks"]
            .as_array()
            .expect("a task list")
            .iter()
            .map(|t| {
                (
                    t["task_id"].as_str().unwrap().to_string(),
                    t["builds_against"].clone(),
                )
            })
            .collect();
        assert_eq!(
            dependencies,
            [
                (
                    format!("app:{task}"),
                    serde_json::json!(["core-lib", "util"])
                ),
                (format!("core-lib:{task}"), serde_json::json!([])),
                (format!("util:{task}"), serde_json::json!(["core-lib"])),
            ],
            "{json}"
        );
        let text = fixture.xtask(&[task, "--dry-run"]);
        text.assert_code(0);
        let app_line = text
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("app:{task} ")))
            .unwrap_or_else(|| panic!("no app:{task} row:\n{text}"));
        assert!(app_line.ends_with("  core-lib, util"), "{text}");
    }
}

/// One package of the selection does not compile: the others' doctests still run (without it
/// in the `cargo test --doc` call), their results are reported, and not stored, since they
/// ran under another selection than their keys describe.
#[test]
fn doctests_beside_a_package_that_does_not_compile_are_reported_not_stored() {
    let package = |name: &str| {
        format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n")
    };
    let fixture = Fixture::from_files(
        ".",
        &[
            (
                "Cargo.toml",
                "[workspace]\nresolver = \"2\"\nmembers = [\"broken\", \"good\"]\n",
            ),
            ("broken/Cargo.toml", &package("broken")),
            ("broken/src/lib.rs", "pub fn f() -> u32 { \"no\" }\n"),
            ("good/Cargo.toml", &package("good")),
            (
                "good/src/lib.rs",
                "/// ```\n/// assert_eq!(good::two(), 2);\n/// ```\npub fn two() -> u32 {\n    2\n}\n",
            ),
        ],
    );
    for _ in 0..2 {
        let run = fixture.run(&["test"]);
        run.assert_code(1);
        assert_eq!(
            run.summary.statuses(),
            statuses(&[("broken:test", "failed"), ("good:test", "miss")]),
            "{}",
            run.output
        );
        let stderr = &run.output.stderr;
        assert!(
            stderr.contains("good:test: result not cached: its doctests ran without"),
            "{}",
            run.output
        );
        assert!(stderr.contains("1 passed, 0 failed"), "{}", run.output);
    }
}

/// A failure no package's messages own (here `core-lib`'s build script, under every package
/// of the call): the error output is shown once, under the first package, and every other
/// failed package says where it is, instead of repeating it.
#[test]
fn an_unattributed_cargo_failure_is_shown_once() {
    let fixture = Fixture::new("basic");
    fixture.write(
        "crates/core/build.rs",
        "fn main() {\n    panic!(\"build script refuses: marker-3141\");\n}\n",
    );
    let run = fixture.run(&["build"]);
    run.assert_code(1);
    assert_eq!(
        run.summary.statuses(),
        statuses(&[
            ("app:build", "failed"),
            ("core-lib:build", "failed"),
            ("util:build", "failed"),
        ]),
        "{}",
        run.output
    );
    let output = format!("{}", run.output);
    assert_eq!(
        output.matches("marker-3141").count(),
        1,
        "cargo's error output is repeated:\n{output}"
    );
    assert_eq!(
        output
            .matches("error: not built: cargo failed (its error output is shown once, under `")
            .count(),
        2,
        "{output}"
    );
}

/// `--shard K/N`: the shards' requested tasks partition the unsharded run's, with no overlap,
/// and a malformed shard is a usage error that names the flag.
#[test]
fn shards_partition_the_unsharded_run() {
    let fixture = Fixture::new("basic");
    let requested = |args: &[&str]| -> std::collections::BTreeSet<String> {
        let output = fixture.xtask(args);
        output.assert_code(0);
        dry_run_statuses(&output)
            .into_keys()
            .filter(|id| id.ends_with(":test"))
            .collect()
    };
    let whole = requested(&["test", "--dry-run=json"]);
    assert!(
        whole.len() >= 2,
        "the fixture has several test tasks: {whole:?}"
    );
    for count in [1, 2, 3] {
        let mut union = std::collections::BTreeSet::new();
        for index in 1..=count {
            let shard = format!("{index}/{count}");
            let part = requested(&["test", "--dry-run=json", "--shard", &shard]);
            assert!(
                union.is_disjoint(&part),
                "shard {shard} overlaps another: {part:?} vs {union:?}"
            );
            union.extend(part);
        }
        assert_eq!(
            union, whole,
            "the {count} shards together are the whole run"
        );
    }
    for bad in ["0/3", "4/3", "x"] {
        let output = fixture.xtask(&["test", "--shard", bad]);
        output.assert_code(2);
        assert!(
            output.stderr.contains("--shard") && output.stderr.contains(bad),
            "{bad}: {}",
            output.stderr
        );
    }
}

/// `--shard` balances by the local cache's last-run records: with `util:test` recorded at 10 s
/// and the others at 1 ms, 2 shards give `util` a shard of its own; without records the
/// packages are spread by name (`app`, `core-lib`, `util` -> 1, 2, 1).
#[test]
fn shards_are_balanced_by_recorded_durations() {
    let fixture = Fixture::new("basic");
    let shard_with = |shard: &str, by_duration: &str| -> Vec<String> {
        let output = fixture.xtask_env(
            &["test", "--dry-run=json", "--shard", shard],
            &[("XTASK_SHARD_BY_DURATION", by_duration)],
        );
        output.assert_code(0);
        dry_run_statuses(&output)
            .into_keys()
            .filter_map(|id| id.strip_suffix(":test").map(str::to_string))
            .collect()
    };
    let shard_of = |shard: &str| shard_with(shard, "1");
    assert_eq!(shard_of("1/2"), ["app", "util"]);
    assert_eq!(shard_of("2/2"), ["core-lib"]);

    let cache = xtask_cache::LocalCache::new(
        fixture.path(CACHE_DIR),
        xtask_cache::CacheOptions {
            max_size_bytes: None,
        },
    );
    for (number, (package, duration_ms)) in [("app", 1), ("core-lib", 1), ("util", 10_000)]
        .into_iter()
        .enumerate()
    {
        let task_hash = format!("{:064x}", number + 1);
        cache
            .store(xtask_cache::NewEntry {
                task_hash: &task_hash,
                manifest: serde_json::json!({}),
                outputs: Vec::new(),
                log: b"",
                duration_ms,
                exit_code: 0,
            })
            .expect("store a record");
        cache
            .set_last(package, "test", &task_hash)
            .expect("set the last run");
    }
    assert_eq!(shard_of("1/2"), ["util"]);
    assert_eq!(shard_of("2/2"), ["app", "core-lib"]);
    // Without the opt-in, local records change nothing: shards on machines with different
    // caches still agree.
    assert_eq!(shard_with("1/2", ""), ["app", "util"]);
    assert_eq!(shard_with("2/2", ""), ["core-lib"]);
}

/// Cargo compiles independent packages side by side and `fmt` checks every package in one
/// call, so the packages' own spans overlap (on clap, the own times of `test` added up to
/// 3433 s after a 962 s run, and `fmt` saved 9 s after 1.3 s). A hit saves at most the time
/// its run took: the own times of one run never add up to more than the run.
#[test]
fn own_times_of_side_by_side_tasks_add_up_to_no_more_than_the_run() {
    let manifest = |name: &str| {
        format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n")
    };
    let sleep = "fn main() {\n    std::thread::sleep(std::time::Duration::from_secs(2));\n}\n";
    let lib = "#[test]\nfn works() {\n    assert_eq!(1 + 1, 2);\n}\n";
    let mut files = vec![(
        "Cargo.toml".to_string(),
        "[workspace]\nresolver = \"2\"\nmembers = [\"a\", \"b\", \"c\"]\n".to_string(),
    )];
    for name in ["a", "b", "c"] {
        files.push((format!("{name}/Cargo.toml"), manifest(name)));
        files.push((format!("{name}/build.rs"), sleep.to_string()));
        files.push((format!("{name}/src/lib.rs"), lib.to_string()));
    }
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(path, text)| (path.as_str(), text.as_str()))
        .collect();
    let fixture = Fixture::from_files(".", &files);
    // Three build scripts at once, however many cores the machine has.
    let jobs = [("CARGO_BUILD_JOBS", "3")];
    for task in ["build", "test", "fmt"] {
        let run = fixture.run_env(&[task], &jobs);
        run.assert_code(0);
        let total: u64 = run.summary.tasks.iter().map(|t| t.duration_ms).sum();
        assert!(
            total <= run.summary.duration_ms,
            "{task}: own times add up to {total} ms in a {} ms run: {:?}",
            run.summary.duration_ms,
            run.summary.tasks
        );
        let again = fixture.run_env(&[task], &jobs);
        assert_eq!(again.summary.totals.hits, 3, "{}", again.output);
        assert_eq!(again.summary.totals.saved_ms, total);
    }
}

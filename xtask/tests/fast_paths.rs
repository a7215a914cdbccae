//! End-to-end tests of the fast paths of an unchanged run (cached `cargo metadata`, stat cache,
//! listing cache, outputs recognised in place): the real binary skips work when nothing
//! changed, and still sees every real change, made right after the last run (same second)
//! and keeping the file's size. Fast-path caches are written only into an existing cache
//! directory, so a fresh checkout's dry run or `graph` writes nothing.

mod support;

use support::{Fixture, statuses};

const UTIL_LIB: &str = "crates/util/src/lib.rs";

fn metadata_calls(fixture: &Fixture) -> usize {
    fixture
        .take_cargo_calls()
        .iter()
        .filter(|call| call.starts_with("metadata "))
        .count()
}

#[test]
fn an_unchanged_run_skips_cargo_metadata_and_every_real_change_is_seen() {
    let fixture = Fixture::new("basic");
    fixture.run(&["run", "gen"]).assert_code(0);
    // The first run creates the cache; the fast paths write only into an existing cache (so
    // a dry run or `graph` on a fresh checkout writes nothing), from the second run on.
    fixture.run(&["run", "gen"]).assert_code(0);
    assert_eq!(
        metadata_calls(&fixture),
        2,
        "the first runs load the metadata"
    );

    let unchanged = fixture.run(&["run", "gen"]);
    unchanged.assert_code(0);
    assert_eq!(
        unchanged.summary.statuses(),
        statuses(&[
            ("app:gen", "hit"),
            ("core-lib:gen", "hit"),
            ("util:gen", "hit")
        ])
    );
    assert_eq!(
        metadata_calls(&fixture),
        0,
        "an unchanged run reuses the metadata"
    );

    // A same-size source edit, right after the last run.
    fixture.replace(UTIL_LIB, "fn doubled", "fn tripled");
    fixture.replace(UTIL_LIB, "* 2", "* 3");
    let edited = fixture.run(&["run", "gen"]);
    edited.assert_code(0);
    assert_eq!(
        edited.summary.statuses(),
        statuses(&[
            ("app:gen", "miss"),
            ("core-lib:gen", "hit"),
            ("util:gen", "miss")
        ]),
        "{}",
        edited.output
    );
    // And a second same-size edit in the same second as that run.
    fixture.replace(UTIL_LIB, "* 3", "* 4");
    let again = fixture.run(&["run", "gen"]);
    assert_eq!(again.summary.task("util:gen").status, "miss");
    assert_eq!(metadata_calls(&fixture), 0, "no manifest changed");

    // A same-size manifest edit: cargo metadata runs again.
    fixture.replace(
        "crates/util/Cargo.toml",
        "doctest = false",
        "doctest =false ",
    );
    fixture.run(&["run", "gen"]).assert_code(0);
    assert_eq!(
        metadata_calls(&fixture),
        1,
        "a manifest edit reloads the metadata"
    );

    // A new member matched by the `crates/*` glob (the root manifest is unchanged).
    fixture.write(
        "crates/extra/Cargo.toml",
        "[package]\nname = \"extra\"\nversion.workspace = true\nedition.workspace = true\n",
    );
    fixture.write("crates/extra/src/lib.rs", "//! Extra.\n");
    let grown = fixture.run(&["run", "gen"]);
    grown.assert_code(0);
    assert_eq!(grown.summary.task("extra:gen").status, "miss");
    assert_eq!(metadata_calls(&fixture), 1);

    // A new source file in an existing package: the listing cache sees it.
    fixture.write("crates/extra/src/more.rs", "//! More.\n");
    let listed = fixture.run(&["run", "gen"]);
    assert_eq!(listed.summary.task("extra:gen").status, "miss");
    assert_eq!(
        fixture.read("crates/extra/out/size.txt").trim(),
        ("//! Extra.\n".len() + "//! More.\n".len()).to_string()
    );
}

#[test]
fn an_output_changed_in_place_with_the_same_size_is_restored() {
    let fixture = Fixture::new("basic");
    fixture.run(&["run", "gen"]).assert_code(0);
    fixture.run(&["run", "gen"]).assert_code(0);
    let path = "crates/core/out/size.txt";
    let original = fixture.read(path);
    // Same size, different content, right after the run that recorded its stat.
    let tampered: String = original
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect::<String>()
        .replace("99", "98");
    assert_eq!(tampered.len(), original.len());
    assert_ne!(tampered, original);
    fixture.write(path, &tampered);
    let run = fixture.run(&["run", "gen"]);
    run.assert_code(0);
    assert_eq!(run.summary.task("core-lib:gen").status, "hit");
    assert_eq!(fixture.read(path), original, "the output is restored");
}

#[test]
fn a_corrupt_fast_path_cache_is_ignored_and_rebuilt() {
    let fixture = Fixture::new("basic");
    fixture.run(&["run", "gen"]).assert_code(0);
    fixture.run(&["run", "gen"]).assert_code(0);
    let fast_dir = fixture.path(&format!("{}/v1/fast", support::CACHE_DIR));
    let mut corrupted = 0;
    for entry in std::fs::read_dir(&fast_dir).expect("the fast-path directory exists") {
        let path = entry.expect("read an entry").path();
        let bytes = std::fs::read(&path).expect("read a fast-path file");
        std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate it");
        corrupted += 1;
    }
    assert!(
        corrupted >= 3,
        "stat cache, listings and metadata are there"
    );
    fixture.replace(UTIL_LIB, "fn doubled", "fn tripled");
    let run = fixture.run(&["run", "gen"]);
    run.assert_code(0);
    assert_eq!(run.summary.task("util:gen").status, "miss");
    assert_eq!(run.summary.task("core-lib:gen").status, "hit");
    assert_eq!(
        metadata_calls(&fixture),
        3,
        "the corrupt metadata record is rebuilt"
    );
}

/// Runs `run gen` until a run-level record of a fully cached run exists, then forges every
/// task's log in it, so that a replay of the record shows itself in the output (a fresh run
/// prints the real, empty logs). Checks that the next run is such a replay; returns its
/// output.
fn prime_replay(fixture: &Fixture) -> String {
    let fast_dir = fixture.path(&format!("{}/v1/fast", support::CACHE_DIR));
    let records = || -> Vec<std::path::PathBuf> {
        let Ok(entries) = std::fs::read_dir(&fast_dir) else {
            return Vec::new();
        };
        entries
            .map(|entry| entry.expect("read an entry").path())
            .filter(|path| {
                path.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("run-") && n != "run-clock")
            })
            .collect()
    };
    // Only this environment's record (another one's may be left from an earlier step).
    for record in records() {
        std::fs::remove_file(record).expect("remove a record");
    }
    for _ in 0..3 {
        fixture.xtask(&["run", "gen"]).assert_code(0);
    }
    let records = records();
    assert_eq!(records.len(), 1, "one run-level record: {records:?}");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&records[0]).expect("read the record"))
            .expect("the record is JSON");
    for task in record["tasks"].as_array_mut().expect("tasks") {
        task["log"] = serde_json::Value::from("forged by the test");
    }
    std::fs::write(&records[0], serde_json::to_vec(&record).expect("encode")).expect("write");
    let replayed = fixture.xtask(&["run", "gen"]);
    replayed.assert_code(0);
    assert!(
        replayed.stderr.contains("util:gen: forged by the test"),
        "the record is replayed:\n{}",
        replayed.stderr
    );
    replayed.stderr
}

/// The short hash a run reported for `label`.
fn reported_hash<'a>(stderr: &'a str, label: &str) -> &'a str {
    stderr
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{label}: cache ")))
        .and_then(|rest| rest.split_whitespace().find(|w| w.len() == 12))
        .unwrap_or_else(|| panic!("no status line for {label}:\n{stderr}"))
}

fn replayed(output: &support::Output) -> bool {
    output.stderr.contains("forged by the test")
}

#[test]
fn a_replayed_fully_cached_run_still_sees_every_change_made_right_after_it() {
    let fixture = Fixture::new("basic");

    // A same-size source edit, in the same second as the replay.
    prime_replay(&fixture);
    fixture.replace(UTIL_LIB, "fn doubled", "fn tripled");
    let edited = fixture.xtask(&["run", "gen"]);
    edited.assert_code(0);
    assert!(!replayed(&edited), "{}", edited.stderr);
    assert!(
        edited.stderr.contains("util:gen: cache miss"),
        "{}",
        edited.stderr
    );
    assert!(
        edited.stderr.contains("core-lib:gen: cache hit"),
        "{}",
        edited.stderr
    );

    // A new source file, then the same file removed again.
    prime_replay(&fixture);
    fixture.write("crates/core/src/more.rs", "//! More.\n");
    let grown = fixture.xtask(&["run", "gen"]);
    assert!(!replayed(&grown), "{}", grown.stderr);
    assert!(
        grown.stderr.contains("core-lib:gen: cache miss"),
        "{}",
        grown.stderr
    );

    // A same-size edit of the root `.gitignore` that drops a source file.
    let before = prime_replay(&fixture);
    let gitignore = fixture.read(".gitignore");
    let ignoring = format!("{}\n/crates/core/src/more.rs", gitignore.trim_end());
    fixture.write(".gitignore", &ignoring);
    let ignored = fixture.xtask(&["run", "gen"]);
    assert!(!replayed(&ignored), "{}", ignored.stderr);
    // Its inputs are those it had before `more.rs`: that earlier entry is the hit.
    assert_ne!(
        reported_hash(&ignored.stderr, "core-lib:gen"),
        reported_hash(&before, "core-lib:gen"),
        "{}",
        ignored.stderr
    );

    // A same-size manifest edit.
    prime_replay(&fixture);
    fixture.replace(
        "crates/util/Cargo.toml",
        "doctest = false",
        "doctest =false ",
    );
    let manifest = fixture.xtask(&["run", "gen"]);
    assert!(!replayed(&manifest), "{}", manifest.stderr);

    // Another environment is another record.
    prime_replay(&fixture);
    let other_env = fixture.xtask_env(&["run", "gen"], &[("XTASK_TEST_OTHER", "1")]);
    assert!(!replayed(&other_env), "{}", other_env.stderr);

    // A new member directory.
    prime_replay(&fixture);
    fixture.write(
        "crates/extra/Cargo.toml",
        "[package]\nname = \"extra\"\nversion.workspace = true\nedition.workspace = true\n",
    );
    fixture.write("crates/extra/src/lib.rs", "//! Extra.\n");
    let member = fixture.xtask(&["run", "gen"]);
    assert!(!replayed(&member), "{}", member.stderr);
    assert!(
        member.stderr.contains("extra:gen: cache miss"),
        "{}",
        member.stderr
    );
}

#[test]
fn a_replay_restores_deleted_and_edited_outputs_from_the_entries() {
    let fixture = Fixture::new("basic");
    prime_replay(&fixture);
    let path = "crates/core/out/size.txt";
    let original = fixture.read(path);
    fixture.remove_dir("crates/util/out");
    // Same size, other content, right after the replay that found it in place.
    let tampered: String = original
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect::<String>()
        .replace("99", "98");
    assert_ne!(tampered, original);
    fixture.write(path, &tampered);
    let restored = fixture.xtask(&["run", "gen"]);
    restored.assert_code(0);
    assert!(
        replayed(&restored),
        "deleted outputs keep the record:\n{}",
        restored.stderr
    );
    assert!(
        restored.stderr.contains("util:gen: cache hit"),
        "{}",
        restored.stderr
    );
    assert_eq!(
        fixture.read(path),
        original,
        "the edited output is restored"
    );
    assert!(
        fixture.exists("crates/util/out/size.txt"),
        "the deleted one too"
    );
    // A file appears where a deleted output directory was: a new input, not a replay.
    fixture.remove_dir("crates/util/out");
    fixture.write("crates/util/out", "not a directory\n");
    let shadowed = fixture.xtask(&["run", "gen"]);
    assert!(!replayed(&shadowed), "{}", shadowed.stderr);
}

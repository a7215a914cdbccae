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

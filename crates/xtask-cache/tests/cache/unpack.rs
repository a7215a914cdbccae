//! `unpack_fresh`: one pass into an empty staging directory. The blob is verified against the
//! entry, each member's listing, kind and size against its record; files are created new,
//! never over anything, and dated as asked; symlink outputs are refused before anything is
//! written.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use xtask_cache::{CacheError, EntryMeta, OutputRoot};

use crate::support::{
    Fixture, RawMember, allow_all, file_record, list_tree, mode_of, mtime, noise, raw_archive,
    symlink_record, task_hash,
};

use OutputRoot::Target;

/// A date well before now, so a file left at its creation time would be caught.
fn long_ago() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000)
}

/// Unpacks `meta` into a new empty `staging` directory, expecting an error; returns both.
fn unpack_failing(fixture: &Fixture, meta: &EntryMeta) -> (PathBuf, CacheError) {
    let staging = fixture.path("staging");
    fs::create_dir_all(&staging).expect("staging");
    let error = fixture
        .cache
        .unpack_fresh(meta, &staging, &allow_all(), long_ago(), &|_| true)
        .expect_err("must fail");
    (staging, error)
}

#[test]
fn every_output_is_written_with_its_content_mode_and_the_given_date() {
    let fixture = Fixture::new();
    let outputs = vec![
        fixture.source_file(
            Target,
            "debug/deps/liba-0123456789abcdef.rlib",
            &noise(1, 200_000),
            0o644,
        ),
        fixture.source_file(
            Target,
            "debug/build/a-0123456789abcdef/build-script-build",
            &noise(2, 3_000),
            0o755,
        ),
        fixture.source_file(
            Target,
            "debug/.fingerprint/a-0123456789abcdef/lib-a",
            b"fingerprint",
            0o644,
        ),
    ];
    let meta = fixture.store(&task_hash("units"), outputs, b"");
    let staging = fixture.path("staging");
    fs::create_dir_all(&staging).expect("staging");

    let written = fixture
        .cache
        .unpack_fresh(&meta, &staging, &allow_all(), long_ago(), &|_| true)
        .expect("unpack");

    assert_eq!(written, 3);
    let source = fixture.source_roots().target;
    for record in &meta.outputs {
        let unpacked = staging.join(&record.path);
        assert_eq!(
            fs::read(&unpacked).expect("unpacked"),
            fs::read(source.join(&record.path)).expect("source"),
            "{}",
            record.path
        );
        assert_eq!(mode_of(&unpacked), record.mode, "{}", record.path);
        assert_eq!(mtime(&unpacked), long_ago(), "{}", record.path);
    }
}

#[test]
fn a_member_whose_size_differs_from_its_record_is_corrupt() {
    let fixture = Fixture::new();
    // The blob matches the entry, but the member does not match its own record.
    let archive = raw_archive(&[RawMember::file("target/debug/deps/a.rlib", b"tampered!")]);
    let meta = fixture.plant(
        &task_hash("tampered member"),
        vec![file_record(Target, "debug/deps/a.rlib", b"original", 0o644)],
        &archive,
    );
    let (_, error) = unpack_failing(&fixture, &meta);
    assert!(
        matches!(error, CacheError::Corrupt { .. }),
        "expected Corrupt, got {error:?}"
    );
}

#[test]
fn a_member_not_listed_in_the_entry_is_refused() {
    let fixture = Fixture::new();
    let archive = raw_archive(&[
        RawMember::file("target/debug/deps/a.rlib", b"a"),
        RawMember::file("target/debug/deps/extra.rlib", b"extra"),
    ]);
    let meta = fixture.plant(
        &task_hash("extra member"),
        vec![file_record(Target, "debug/deps/a.rlib", b"a", 0o644)],
        &archive,
    );
    let (staging, error) = unpack_failing(&fixture, &meta);
    assert!(
        matches!(error, CacheError::UnsafePath { .. }),
        "expected UnsafePath, got {error:?}"
    );
    assert!(!staging.join("debug/deps/extra.rlib").exists());
}

#[test]
fn a_flipped_byte_in_the_blob_is_corrupt_and_nothing_is_written() {
    let fixture = Fixture::new();
    let outputs = vec![fixture.source_file(
        Target,
        "debug/deps/liba-0123456789abcdef.rlib",
        &noise(3, 100_000),
        0o644,
    )];
    let meta = fixture.store(&task_hash("flipped"), outputs, b"");
    let archive = fixture.blob_path(&meta.archive.sha256);
    let mut bytes = fs::read(&archive).expect("read archive");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    fs::write(&archive, &bytes).expect("write archive");
    let (staging, error) = unpack_failing(&fixture, &meta);
    assert!(
        matches!(error, CacheError::Corrupt { .. }),
        "expected Corrupt, got {error:?}"
    );
    assert!(list_tree(&staging).is_empty(), "{:?}", list_tree(&staging));
}

#[test]
fn a_symlink_output_is_refused_before_anything_is_written() {
    let fixture = Fixture::new();
    let archive = raw_archive(&[
        RawMember::symlink("target/debug/deps", "/etc"),
        RawMember::file("target/debug/deps/passwd", b"x"),
    ]);
    let meta = fixture.plant(
        &task_hash("symlink"),
        vec![
            symlink_record(Target, "debug/deps", "/etc"),
            file_record(Target, "debug/deps/passwd", b"x", 0o644),
        ],
        &archive,
    );
    let (staging, error) = unpack_failing(&fixture, &meta);
    assert!(
        matches!(error, CacheError::UnsafePath { .. }),
        "expected UnsafePath, got {error:?}"
    );
    assert!(list_tree(&staging).is_empty(), "{:?}", list_tree(&staging));
}

#[test]
fn a_file_already_in_the_directory_is_never_overwritten() {
    let fixture = Fixture::new();
    let outputs = vec![fixture.source_file(Target, "debug/deps/a.rlib", b"new", 0o644)];
    let meta = fixture.store(&task_hash("not fresh"), outputs, b"");
    let staging = fixture.path("staging");
    fs::create_dir_all(staging.join("debug/deps")).expect("staging");
    fs::write(staging.join("debug/deps/a.rlib"), b"old").expect("old file");
    let error = fixture
        .cache
        .unpack_fresh(&meta, &staging, &allow_all(), long_ago(), &|_| true)
        .expect_err("must fail");
    assert!(
        matches!(error, CacheError::Io { .. }),
        "expected Io, got {error:?}"
    );
    assert_eq!(fs::read(staging.join("debug/deps/a.rlib")).unwrap(), b"old");
}

#[test]
fn only_the_wanted_outputs_are_written_and_the_members_after_a_passed_one_are_intact() {
    let fixture = Fixture::new();
    let outputs = vec![
        fixture.source_file(
            Target,
            "debug/deps/liba-0123456789abcdef.rlib",
            &noise(4, 300_000),
            0o644,
        ),
        fixture.source_file(
            Target,
            "debug/deps/libb-0123456789abcdef.rlib",
            &noise(5, 200_000),
            0o644,
        ),
        fixture.source_file(
            Target,
            "debug/.fingerprint/b-0123456789abcdef/lib-b",
            b"fingerprint b",
            0o644,
        ),
    ];
    let meta = fixture.store(&task_hash("some wanted"), outputs, b"");
    let staging = fixture.path("staging");
    fs::create_dir_all(&staging).expect("staging");

    let written = fixture
        .cache
        .unpack_fresh(&meta, &staging, &allow_all(), long_ago(), &|path| {
            !path.contains("liba-")
        })
        .expect("unpack");

    assert_eq!(written, 2);
    assert!(
        !staging
            .join("debug/deps/liba-0123456789abcdef.rlib")
            .exists()
    );
    let source = fixture.source_roots().target;
    for path in [
        "debug/deps/libb-0123456789abcdef.rlib",
        "debug/.fingerprint/b-0123456789abcdef/lib-b",
    ] {
        assert_eq!(
            fs::read(staging.join(path)).expect("unpacked"),
            fs::read(source.join(path)).expect("source"),
            "{path}"
        );
        assert_eq!(mtime(&staging.join(path)), long_ago(), "{path}");
    }
}

#[test]
fn a_member_passed_over_is_still_checked_against_its_record() {
    let fixture = Fixture::new();
    let archive = raw_archive(&[
        RawMember::file("target/debug/deps/a.rlib", b"tampered!"),
        RawMember::file("target/debug/deps/b.rlib", b"b"),
    ]);
    let meta = fixture.plant(
        &task_hash("tampered, not wanted"),
        vec![
            file_record(Target, "debug/deps/a.rlib", b"original", 0o644),
            file_record(Target, "debug/deps/b.rlib", b"b", 0o644),
        ],
        &archive,
    );
    let staging = fixture.path("staging");
    fs::create_dir_all(&staging).expect("staging");
    let error = fixture
        .cache
        .unpack_fresh(&meta, &staging, &allow_all(), long_ago(), &|path| {
            path.ends_with("b.rlib")
        })
        .expect_err("must fail");
    assert!(
        matches!(error, CacheError::Corrupt { .. }),
        "expected Corrupt, got {error:?}"
    );
}

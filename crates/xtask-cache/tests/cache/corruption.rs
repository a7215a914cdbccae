//! Bad data in the cache is reported as `Corrupt`, never a panic, and never leaves a partial file.

use std::fs;

use xtask_cache::{CacheError, OutputRoot};

use crate::support::{
    Fixture, RawMember, allow_all, file_record, list_tree, noise, raw_archive, task_hash,
    write_file,
};

fn assert_corrupt(error: &CacheError) {
    assert!(
        matches!(error, CacheError::Corrupt { .. }),
        "expected Corrupt, got {error:?}"
    );
}

/// Stores an entry with two sizeable outputs and returns it.
fn stored_entry(fixture: &Fixture, hash: &str) -> xtask_cache::EntryMeta {
    let outputs = vec![
        fixture.source_file(
            OutputRoot::Workspace,
            "out/a.bin",
            &noise(1, 100_000),
            0o644,
        ),
        fixture.source_file(OutputRoot::Target, "debug/b.bin", &noise(2, 100_000), 0o755),
    ];
    fixture.store(hash, outputs, b"log")
}

#[test]
fn a_truncated_archive_is_corrupt_and_nothing_is_written() {
    let fixture = Fixture::new();
    let meta = stored_entry(&fixture, &task_hash("truncated"));
    let archive = fixture.blob_path(&meta.archive.sha256);
    let bytes = fs::read(&archive).expect("read archive");
    fs::write(&archive, &bytes[..bytes.len() / 2]).expect("truncate");

    let roots = fixture.fresh_roots("restored");
    let error = fixture
        .cache
        .restore(&meta, &roots, &allow_all())
        .expect_err("truncated");
    assert_corrupt(&error);
    assert!(
        list_tree(&roots.workspace).is_empty(),
        "{:?}",
        list_tree(&roots.workspace)
    );
}

#[test]
fn a_flipped_byte_is_corrupt_and_nothing_is_written() {
    let fixture = Fixture::new();
    let meta = stored_entry(&fixture, &task_hash("bit flip"));
    let archive = fixture.blob_path(&meta.archive.sha256);
    let mut bytes = fs::read(&archive).expect("read archive");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&archive, &bytes).expect("flip");

    let roots = fixture.fresh_roots("restored");
    let error = fixture
        .cache
        .restore(&meta, &roots, &allow_all())
        .expect_err("flipped");
    assert_corrupt(&error);
    assert!(
        list_tree(&roots.workspace).is_empty(),
        "{:?}",
        list_tree(&roots.workspace)
    );
}

#[test]
fn a_missing_archive_blob_is_corrupt() {
    let fixture = Fixture::new();
    let meta = stored_entry(&fixture, &task_hash("missing"));
    fs::remove_file(fixture.blob_path(&meta.archive.sha256)).expect("remove archive");
    let error = fixture
        .cache
        .restore(&meta, &fixture.fresh_roots("restored"), &allow_all())
        .expect_err("missing");
    assert_corrupt(&error);
}

#[test]
fn a_member_that_does_not_match_its_record_is_never_left_half_written() {
    let fixture = Fixture::new();
    let hash = task_hash("content mismatch");
    // The archive blob itself is intact (its sha256 matches the entry), but the record's sha256
    // is of other bytes: the file must not be renamed into place.
    let mut record = file_record(OutputRoot::Workspace, "out.txt", b"expected", 0o644);
    record.sha256 = Some(xtask_util::sha256_hex(b"something else"));
    let meta = fixture.plant(
        &hash,
        vec![record],
        &raw_archive(&[RawMember::file("workspace/out.txt", b"expected")]),
    );

    let roots = fixture.fresh_roots("restored");
    fs::write(roots.workspace.join("out.txt"), b"old content").expect("existing output");
    let error = fixture
        .cache
        .restore(&meta, &roots, &allow_all())
        .expect_err("mismatch");
    assert_corrupt(&error);
    assert_eq!(
        fs::read(roots.workspace.join("out.txt")).expect("read"),
        b"old content"
    );
    assert_eq!(
        list_tree(&roots.workspace),
        ["out.txt"],
        "no temp file is left behind"
    );
}

#[test]
fn bad_entry_json_is_corrupt() {
    let fixture = Fixture::new();
    let hash = task_hash("bad json");
    let good = stored_entry(&fixture, &hash);
    let good_json: serde_json::Value =
        serde_json::from_slice(&fs::read(fixture.entry_path(&hash)).expect("read entry"))
            .expect("parse");

    let mut newer_format = good_json.clone();
    newer_format["format"] = serde_json::json!(2);
    let mut other_hash = good_json.clone();
    other_hash["task_hash"] = serde_json::json!(task_hash("other"));
    let mut unknown_field = good_json.clone();
    unknown_field["surprise"] = serde_json::json!(true);
    let mut bad_root = good_json.clone();
    bad_root["outputs"][0]["root"] = serde_json::json!("home");
    let mut traversing_blob = good_json;
    traversing_blob["archive"]["sha256"] = serde_json::json!("../../../../../../etc/passwd");

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"{ not json".to_vec()),
        ("empty", Vec::new()),
        ("newer format", newer_format.to_string().into_bytes()),
        ("other task hash", other_hash.to_string().into_bytes()),
        ("unknown field", unknown_field.to_string().into_bytes()),
        (
            "root other than workspace/target",
            bad_root.to_string().into_bytes(),
        ),
        (
            "blob name that is a path",
            traversing_blob.to_string().into_bytes(),
        ),
    ];
    for (case, bytes) in cases {
        write_file(&fixture.entry_path(&hash), &bytes, 0o644);
        let error = fixture.cache.lookup(&hash).expect_err(case);
        assert_corrupt(&error);
        let message = error.to_string();
        assert!(
            message.contains(&format!("{hash}.json")),
            "{case}: the message names the file: {message}"
        );
    }
    // And restore refuses a hand-made meta with a traversing blob name too.
    let mut meta = good;
    meta.log.sha256 = "../../escape".to_owned();
    assert_corrupt(&fixture.cache.read_log(&meta).expect_err("bad log name"));
}

#[test]
fn a_tampered_log_is_corrupt() {
    let fixture = Fixture::new();
    let meta = fixture.store(&task_hash("log"), Vec::new(), b"the real log");
    fs::write(fixture.blob_path(&meta.log.sha256), b"the fake log").expect("tamper");
    assert_corrupt(&fixture.cache.read_log(&meta).expect_err("tampered"));
    fs::write(fixture.blob_path(&meta.log.sha256), b"the real lo").expect("truncate");
    assert_corrupt(&fixture.cache.read_log(&meta).expect_err("truncated"));
    fs::remove_file(fixture.blob_path(&meta.log.sha256)).expect("remove");
    assert_corrupt(&fixture.cache.read_log(&meta).expect_err("missing"));
}

#[test]
fn an_empty_log_is_known_by_its_digest_and_not_read() {
    let fixture = Fixture::new();
    let meta = fixture.store(&task_hash("empty log"), Vec::new(), b"");
    assert!(xtask_cache::is_empty_blob(&meta.log));
    // Whatever happens to the shared empty blob, the log is the empty string its digest names.
    let _ = fs::remove_file(fixture.blob_path(&meta.log.sha256));
    assert_eq!(fixture.cache.read_log(&meta).expect("empty log"), b"");
    // A log that claims another digest is still read and checked.
    let mut claimed = meta;
    claimed.log.size = 1;
    assert_corrupt(&fixture.cache.read_log(&claimed).expect_err("not empty"));
}

#[test]
fn an_archive_that_matches_its_entry_but_does_not_decode_is_corrupt() {
    let fixture = Fixture::new();
    let data = noise(3, 4_000);
    let record = file_record(OutputRoot::Workspace, "out.bin", &data, 0o644);
    let whole = raw_archive(&[RawMember::file("workspace/out.bin", &data)]);
    let mut tar_cut_mid_member = Vec::new();
    zstd::stream::copy_decode(&whole[..], &mut tar_cut_mid_member).expect("decode");
    tar_cut_mid_member.truncate(512 + 1_000);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("half a zstd frame", whole[..whole.len() / 2].to_vec()),
        ("not zstd at all", b"plain text, not an archive".to_vec()),
        (
            "a tar cut in the middle of a member",
            zstd::stream::encode_all(&tar_cut_mid_member[..], 3).expect("encode"),
        ),
        (
            "an empty tar",
            zstd::stream::encode_all(&[0_u8; 1024][..], 3).expect("encode"),
        ),
    ];
    for (index, (case, archive)) in cases.into_iter().enumerate() {
        // `plant` records the sha256 of these bytes, so the blob check passes: decoding must fail.
        let meta = fixture.plant(
            &task_hash(&format!("undecodable {index}")),
            vec![record.clone()],
            &archive,
        );
        let roots = fixture.fresh_roots(&format!("restored-{index}"));
        let error = fixture
            .cache
            .restore(&meta, &roots, &allow_all())
            .expect_err(case);
        assert!(
            matches!(error, CacheError::Corrupt { .. }),
            "{case}: {error:?}"
        );
        assert!(
            list_tree(&roots.workspace).is_empty(),
            "{case}: nothing written"
        );
    }
}

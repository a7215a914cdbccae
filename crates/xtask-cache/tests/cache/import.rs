//! Import of an entry fetched from elsewhere: a verified copy restores like the original; any
//! mismatch (tampered archive or log, entry of another task, unsafe output path) is rejected
//! and writes nothing.

use std::fs;

use xtask_cache::{CacheError, CacheOptions, EntryParts, LocalCache, OutputRoot};

use crate::support::{Fixture, allow_all, list_tree, task_hash};

fn stored_parts(fixture: &Fixture, hash: &str) -> EntryParts {
    let outputs = vec![
        fixture.source_file(OutputRoot::Workspace, "out/a.txt", b"alpha\n", 0o644),
        fixture.source_file(OutputRoot::Target, "debug/app", b"\x7fELF-ish", 0o755),
    ];
    let meta = fixture.store(hash, outputs, b"compiled\n");
    fixture.cache.read_parts(&meta).expect("read parts")
}

fn other_cache(fixture: &Fixture) -> LocalCache {
    LocalCache::new(fixture.path("other-cache"), CacheOptions::default())
}

#[test]
fn an_imported_entry_restores_like_the_original() {
    let fixture = Fixture::new();
    let hash = task_hash("import");
    let parts = stored_parts(&fixture, &hash);
    let other = other_cache(&fixture);
    let meta = other
        .import(&hash, &parts, "http://127.0.0.1:1/", &allow_all())
        .expect("import");
    assert_eq!(other.lookup(&hash).unwrap(), Some(meta.clone()));
    assert_eq!(other.read_log(&meta).unwrap(), b"compiled\n");
    let roots = fixture.fresh_roots("machine-b");
    let stats = other.restore(&meta, &roots, &allow_all()).expect("restore");
    assert_eq!(stats.restored, 2);
    assert_eq!(
        fs::read(roots.workspace.join("out/a.txt")).unwrap(),
        b"alpha\n"
    );
    assert_eq!(
        fs::read(roots.target.join("debug/app")).unwrap(),
        b"\x7fELF-ish"
    );
}

#[test]
fn a_tampered_or_mismatched_entry_is_rejected_and_nothing_is_written() {
    let fixture = Fixture::new();
    let hash = task_hash("import");
    let parts = stored_parts(&fixture, &hash);
    let mut tampered_archive = parts.clone();
    let last = tampered_archive.archive.len() - 1;
    tampered_archive.archive[last] ^= 1;
    let mut tampered_log = parts.clone();
    tampered_log.log = b"compiled!\n".to_vec();
    let mut wrong_size = parts.clone();
    wrong_size.archive.push(0);
    let mut bad_json = parts.clone();
    bad_json.entry = b"{ not json".to_vec();
    let mut unsafe_path = parts.clone();
    unsafe_path.entry = String::from_utf8(parts.entry.clone())
        .unwrap()
        .replace("\"out/a.txt\"", "\"../escape.txt\"")
        .into_bytes();
    let cases = [
        (
            "tampered archive",
            &hash,
            &tampered_archive,
            "archive's sha256",
        ),
        ("tampered log", &hash, &tampered_log, "log has"),
        (
            "archive with an extra byte",
            &hash,
            &wrong_size,
            "archive has",
        ),
        ("not JSON", &hash, &bad_json, "not valid JSON"),
        ("unsafe output path", &hash, &unsafe_path, "escape.txt"),
        (
            "entry of another task",
            &task_hash("other"),
            &parts,
            "expected",
        ),
    ];
    let other = other_cache(&fixture);
    for (case, task, parts, expected) in cases {
        let error = other
            .import(task, parts, "http://127.0.0.1:1/", &allow_all())
            .expect_err(case);
        assert!(
            matches!(error, CacheError::Rejected { .. }),
            "{case}: {error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("http://127.0.0.1:1/"), "{case}: {message}");
        assert!(message.contains(expected), "{case}: {message}");
        assert_eq!(other.lookup(task).unwrap(), None, "{case}");
    }
    // Nothing but (possibly) empty temp and lock files exists in the other cache.
    let files: Vec<String> = list_tree(&fixture.path("other-cache"))
        .into_iter()
        .filter(|path| !path.ends_with("/lock") && !path.ends_with('/'))
        .collect();
    assert!(
        files
            .iter()
            .all(|p| !p.contains("entries") && !p.contains("blobs")),
        "{files:?}"
    );
}

/// A blob already in place (named by its sha256, of the right size) is not written again: the
/// second entry sharing a log keeps the first one's file. One of the wrong size is replaced,
/// and a same-size blob with other bytes is caught when the entry is read.
#[test]
fn a_blob_already_in_place_is_kept_and_a_wrong_one_is_replaced_or_caught() {
    use std::os::unix::fs::MetadataExt;
    let fixture = Fixture::new();
    let (first, second) = (task_hash("first"), task_hash("second"));
    let first_parts = stored_parts(&fixture, &first);
    let second_parts = stored_parts(&fixture, &second);
    let other = other_cache(&fixture);
    let meta = other
        .import(&first, &first_parts, "http://127.0.0.1:1/", &allow_all())
        .expect("import");
    let log = other.blob_file(&meta.log).expect("a blob name");
    let inode = fs::metadata(&log).expect("the log blob").ino();
    let second_meta = other
        .import(&second, &second_parts, "http://127.0.0.1:1/", &allow_all())
        .expect("import");
    assert_eq!(second_meta.log.sha256, meta.log.sha256);
    assert_eq!(fs::metadata(&log).unwrap().ino(), inode, "rewritten");

    // Cut short: replaced by the next import.
    fs::write(&log, b"short").unwrap();
    other
        .import(&second, &second_parts, "http://127.0.0.1:1/", &allow_all())
        .expect("import");
    assert_eq!(other.read_log(&second_meta).unwrap(), b"compiled\n");

    // The same size, other bytes: kept, and reading the log says so.
    fs::write(&log, b"COMPILED\n").unwrap();
    other
        .import(&second, &second_parts, "http://127.0.0.1:1/", &allow_all())
        .expect("import");
    let error = other.read_log(&second_meta).expect_err("a corrupt log");
    assert!(matches!(error, CacheError::Corrupt { .. }), "{error}");
}

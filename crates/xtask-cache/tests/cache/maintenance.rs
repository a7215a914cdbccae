//! Prune (LRU eviction, unreferenced blobs, stale temp files, the lock), clean, stats, last,
//! and concurrent stores.

use std::fs;
use std::thread;
use std::time::Duration;

use xtask_cache::{CacheError, CacheOptions, OutputRoot, RestoreStats};

use crate::support::{Fixture, allow_all, list_tree, noise, set_mtime, task_hash, write_file};

/// Stores an entry with one 20 kB incompressible output unique to `name`.
fn store_unique(fixture: &Fixture, name: &str, seed: u64) -> xtask_cache::EntryMeta {
    let output = fixture.source_file(
        OutputRoot::Workspace,
        &format!("{name}.bin"),
        &noise(seed, 20_000),
        0o644,
    );
    fixture.store(&task_hash(name), vec![output], name.as_bytes())
}

#[test]
fn prune_evicts_least_recently_used_entries_first_and_their_blobs() {
    let fixture = Fixture::new();
    let a = store_unique(&fixture, "a", 1);
    let b = store_unique(&fixture, "b", 2);
    let c = store_unique(&fixture, "c", 3);
    // Stored a, b, c; used c longest ago, then a, then b.
    set_mtime(
        &fixture.entry_path(&c.task_hash),
        Duration::from_secs(3 * 3600),
    );
    set_mtime(
        &fixture.entry_path(&a.task_hash),
        Duration::from_secs(2 * 3600),
    );
    set_mtime(&fixture.entry_path(&b.task_hash), Duration::from_secs(3600));

    let before = fixture.cache.stats().expect("stats");
    assert_eq!((before.entries, before.blobs), (3, 6));
    let stats = fixture
        .cache
        .prune(Some(before.total_bytes - 1))
        .expect("prune");
    assert!(!stats.skipped);
    assert_eq!(stats.entries_evicted, 1);
    assert_eq!(stats.blobs_removed, 2);
    assert_eq!(
        fixture.cache.lookup(&c.task_hash).expect("lookup c"),
        None,
        "c was least recently used"
    );
    assert!(!fixture.blob_path(&c.archive.sha256).exists());
    assert!(!fixture.blob_path(&c.log.sha256).exists());
    let after = fixture.cache.stats().expect("stats");
    assert_eq!(after.total_bytes, stats.bytes_remaining);
    assert_eq!(before.total_bytes - after.total_bytes, stats.bytes_freed);
    for kept in [&a, &b] {
        let found = fixture
            .cache
            .lookup(&kept.task_hash)
            .expect("lookup")
            .expect("kept");
        let roots = fixture.fresh_roots(&format!("restore-{}", &kept.task_hash[..8]));
        assert_eq!(
            fixture
                .cache
                .restore(&found, &roots, &allow_all())
                .expect("restore kept")
                .restored,
            1
        );
    }

    // A cap just below a and b together evicts a (older) and keeps b.
    let stats = fixture
        .cache
        .prune(Some(after.total_bytes - 1))
        .expect("prune");
    assert_eq!(stats.entries_evicted, 1);
    assert_eq!(fixture.cache.lookup(&a.task_hash).expect("lookup a"), None);
    assert!(
        fixture
            .cache
            .lookup(&b.task_hash)
            .expect("lookup b")
            .is_some()
    );
}

#[test]
fn prune_keeps_blobs_that_remaining_entries_share() {
    let fixture = Fixture::new();
    let output = fixture.source_file(OutputRoot::Target, "shared.bin", &noise(7, 10_000), 0o644);
    let old = fixture.store(&task_hash("old"), vec![output.clone()], b"old log");
    let new = fixture.store(&task_hash("new"), vec![output], b"new log");
    assert_eq!(old.archive, new.archive);
    set_mtime(
        &fixture.entry_path(&old.task_hash),
        Duration::from_secs(3600),
    );

    let total = fixture.cache.stats().expect("stats").total_bytes;
    let stats = fixture.cache.prune(Some(total - 1)).expect("prune");
    assert_eq!(
        (stats.entries_evicted, stats.blobs_removed),
        (1, 1),
        "only the old log blob goes"
    );
    assert!(fixture.blob_path(&new.archive.sha256).exists());
    let roots = fixture.fresh_roots("restored");
    assert_eq!(
        fixture
            .cache
            .restore(&new, &roots, &allow_all())
            .expect("restore")
            .restored,
        1
    );
}

#[test]
fn prune_removes_unreferenced_blobs_corrupt_entries_and_stale_temp_files_without_evicting() {
    let fixture = Fixture::with_options(CacheOptions::default());
    let kept = store_unique(&fixture, "kept", 1);
    let orphan = fixture.blob_path(&task_hash("orphan blob"));
    write_file(&orphan, b"left by a crashed store", 0o644);
    let corrupt_entry = fixture.entry_path(&task_hash("corrupt"));
    write_file(&corrupt_entry, b"{", 0o644);
    let tmp = fixture.cache.root().join("v1/tmp");
    write_file(&tmp.join("stale"), b"old", 0o644);
    set_mtime(&tmp.join("stale"), Duration::from_secs(2 * 3600));
    write_file(&tmp.join("fresh"), b"a store in progress", 0o644);
    let readme = fixture.cache.root().join("README.md");
    write_file(&readme, b"# cache\n", 0o644);

    let stats = fixture.cache.prune(None).expect("prune");
    assert_eq!(stats.entries_evicted, 0, "no cap, no eviction");
    assert_eq!(stats.entries_removed_invalid, 1);
    assert_eq!(stats.blobs_removed, 1);
    assert_eq!(stats.tmp_files_removed, 1);
    assert!(!orphan.exists() && !corrupt_entry.exists() && !tmp.join("stale").exists());
    assert!(tmp.join("fresh").exists() && readme.exists());
    assert!(
        fixture
            .cache
            .lookup(&kept.task_hash)
            .expect("lookup")
            .is_some()
    );
}

#[test]
fn the_prune_after_a_run_sweeps_daily_and_evicts_whenever_over_the_cap() {
    let fixture = Fixture::with_options(CacheOptions::default());
    let a = store_unique(&fixture, "a", 1);
    let orphan = fixture.blob_path(&task_hash("orphan blob"));
    write_file(&orphan, b"left by a crashed store", 0o644);
    // A new cache counts as swept; one without the marker (made by an older version) was
    // never swept: the first prune after a run sweeps it.
    let marker = fixture.cache.root().join("v1/last-sweep");
    assert!(marker.is_file(), "a new cache is marked swept");
    fs::remove_file(&marker).expect("remove the marker");
    let first = fixture.cache.prune_if_due(None).expect("prune");
    assert_eq!(first.blobs_removed, 1);
    assert!(!orphan.exists());
    // Swept within the day and under the cap: nothing is read or removed.
    write_file(&orphan, b"left by a crashed store", 0o644);
    let under = fixture.cache.prune_if_due(None).expect("prune");
    assert_eq!(under.blobs_removed + under.entries_evicted, 0);
    assert!(orphan.exists());
    assert_eq!(
        under.bytes_remaining,
        fixture.cache.stats().expect("stats").total_bytes
    );
    // Over the cap: the full prune, at once.
    let b = store_unique(&fixture, "b", 2);
    set_mtime(&fixture.entry_path(&a.task_hash), Duration::from_secs(3600));
    // 1000 bytes under the total: more than the orphan blob frees, less than one entry.
    let cap = fixture.cache.stats().expect("stats").total_bytes - 1000;
    let over = fixture.cache.prune_if_due(Some(cap)).expect("prune");
    assert_eq!(over.entries_evicted, 1);
    assert!(!orphan.exists());
    assert_eq!(fixture.cache.lookup(&a.task_hash).expect("lookup"), None);
    assert!(
        fixture
            .cache
            .lookup(&b.task_hash)
            .expect("lookup")
            .is_some()
    );
    // A day after the last sweep: swept again, under the cap.
    write_file(&orphan, b"left by a crashed store", 0o644);
    set_mtime(&marker, xtask_cache::SWEEP_EVERY + Duration::from_secs(60));
    let daily = fixture.cache.prune_if_due(None).expect("prune");
    assert_eq!(daily.blobs_removed, 1);
    assert!(!orphan.exists());
}

#[test]
fn the_prune_after_a_run_of_an_empty_cache_does_nothing() {
    let fixture = Fixture::with_options(CacheOptions::default());
    let stats = fixture.cache.prune_if_due(Some(0)).expect("prune");
    assert_eq!(stats.bytes_remaining, 0);
    assert!(!fixture.cache.root().join("v1").exists());
}

#[test]
fn prune_without_a_cap_uses_the_configured_one() {
    let fixture = Fixture::with_options(CacheOptions {
        max_size_bytes: Some(0),
    });
    let meta = store_unique(&fixture, "evicted", 1);
    let stats = fixture.cache.prune(None).expect("prune");
    assert_eq!(stats.entries_evicted, 1);
    assert_eq!(fixture.cache.lookup(&meta.task_hash).expect("lookup"), None);
    assert_eq!(fixture.cache.stats().expect("stats").total_bytes, 0);
}

#[test]
fn prune_is_skipped_while_another_process_holds_the_lock() {
    let fixture = Fixture::new();
    let meta = store_unique(&fixture, "locked", 1);
    let orphan = fixture.blob_path(&task_hash("orphan"));
    write_file(&orphan, b"orphan", 0o644);
    let lock = fs::File::options()
        .read(true)
        .write(true)
        .open(fixture.cache.root().join("v1/lock"))
        .expect("open lock");
    lock.lock().expect("hold the lock");

    let stats = fixture.cache.prune(Some(0)).expect("prune");
    assert!(stats.skipped);
    assert!(orphan.exists());
    assert!(
        fixture
            .cache
            .lookup(&meta.task_hash)
            .expect("lookup")
            .is_some()
    );

    drop(lock);
    assert!(!fixture.cache.prune(Some(0)).expect("prune").skipped);
    assert!(!orphan.exists());
}

#[test]
fn clean_removes_v1_but_keeps_the_readme_and_other_files() {
    let fixture = Fixture::new();
    let meta = store_unique(&fixture, "cleaned", 1);
    fixture
        .cache
        .set_last("pkg", "build", &meta.task_hash)
        .expect("set last");
    let root = fixture.cache.root().to_path_buf();
    write_file(&root.join("README.md"), b"# cache\n", 0o644);
    write_file(&root.join("notes.txt"), b"mine", 0o644);
    let before = fixture.cache.stats().expect("stats");

    let stats = fixture.cache.clean().expect("clean");
    assert_eq!(stats.entries_removed, 1);
    assert_eq!(stats.bytes_removed, before.total_bytes);
    assert_eq!(
        list_tree(&root),
        [".gitignore", "CACHEDIR.TAG", "README.md", "notes.txt"]
    );
    assert_eq!(fixture.cache.lookup(&meta.task_hash).expect("lookup"), None);
    assert_eq!(fixture.cache.last("pkg", "build").expect("last"), None);
    assert_eq!(
        fixture.cache.clean().expect("clean again").entries_removed,
        0
    );
}

#[test]
fn stats_count_entries_blobs_and_bytes() {
    let fixture = Fixture::new();
    let first = store_unique(&fixture, "first", 1);
    store_unique(&fixture, "second", 2);
    set_mtime(
        &fixture.entry_path(&first.task_hash),
        Duration::from_secs(3600),
    );
    let stats = fixture.cache.stats().expect("stats");
    assert_eq!((stats.entries, stats.blobs), (2, 4));
    let on_disk: u64 = ["v1/entries", "v1/blobs"]
        .iter()
        .flat_map(|dir| {
            list_tree(&fixture.cache.root().join(dir))
                .into_iter()
                .map(move |path| (dir, path))
        })
        .map(|(dir, path)| {
            fs::metadata(fixture.cache.root().join(dir).join(path)).expect("metadata")
        })
        .filter(fs::Metadata::is_file)
        .map(|metadata| metadata.len())
        .sum();
    assert_eq!(stats.total_bytes, on_disk);
    let (oldest, newest) = (
        stats.oldest_entry.expect("oldest"),
        stats.newest_entry.expect("newest"),
    );
    assert!(newest.duration_since(oldest).expect("ordered") > Duration::from_secs(3500));
}

#[test]
fn last_round_trips_and_rejects_names_that_are_not_one_path_component() {
    let fixture = Fixture::new();
    assert_eq!(fixture.cache.last("app", "build").expect("last"), None);
    fixture
        .cache
        .set_last("app", "build", &task_hash("one"))
        .expect("set");
    fixture
        .cache
        .set_last("app", "test", &task_hash("two"))
        .expect("set");
    fixture
        .cache
        .set_last("app", "build", &task_hash("three"))
        .expect("overwrite");
    assert_eq!(
        fixture.cache.last("app", "build").expect("last"),
        Some(task_hash("three"))
    );
    assert_eq!(
        fixture.cache.last("app", "test").expect("last"),
        Some(task_hash("two"))
    );
    assert!(fixture.cache.root().join("v1/last/build/app").is_file());

    for (package, task) in [
        ("../x", "build"),
        ("app", ".."),
        ("", "build"),
        ("a/b", "build"),
    ] {
        let error = fixture
            .cache
            .set_last(package, task, &task_hash("x"))
            .expect_err("invalid name");
        assert!(matches!(error, CacheError::InvalidName { .. }), "{error:?}");
    }
    let error = fixture
        .cache
        .set_last("app", "build", "not-a-hash")
        .expect_err("invalid hash");
    assert!(
        matches!(error, CacheError::InvalidTaskHash { .. }),
        "{error:?}"
    );

    write_file(
        &fixture.cache.root().join("v1/last/build/broken"),
        b"garbage\n",
        0o644,
    );
    assert!(matches!(
        fixture.cache.last("broken", "build"),
        Err(CacheError::Corrupt { .. })
    ));
    // What a crash can leave of a record written without an fsync: no record, not an error,
    // and the next run writes it again.
    write_file(&fixture.cache.root().join("v1/last/build/torn"), b"", 0o644);
    assert_eq!(fixture.cache.last("torn", "build").expect("empty"), None);
    fixture
        .cache
        .set_last("torn", "build", &task_hash("four"))
        .expect("set over an empty record");
    assert_eq!(
        fixture.cache.recent("torn", "build").expect("recent"),
        [task_hash("four")]
    );
}

#[test]
fn concurrent_stores_of_one_hash_with_a_concurrent_prune_leave_a_valid_entry() {
    let fixture = Fixture::new();
    let hash = task_hash("contended");
    let outputs = vec![
        fixture.source_file(OutputRoot::Workspace, "out/a.bin", &noise(1, 50_000), 0o644),
        fixture.source_file(OutputRoot::Target, "debug/b", &noise(2, 5_000), 0o755),
    ];
    let logs: Vec<Vec<u8>> = (0..6)
        .map(|thread| format!("log of thread {thread}").into_bytes())
        .collect();

    thread::scope(|scope| {
        for log in &logs {
            let (fixture, hash, outputs) = (&fixture, &hash, &outputs);
            scope.spawn(move || {
                for _ in 0..5 {
                    fixture.store(hash, outputs.clone(), log);
                    if let Some(meta) = fixture.cache.lookup(hash).expect("lookup during stores") {
                        assert!(logs_contain(
                            &fixture.cache.read_log(&meta).expect("log"),
                            log.len()
                        ));
                    }
                }
            });
        }
        let fixture = &fixture;
        scope.spawn(move || {
            for _ in 0..20 {
                fixture.cache.prune(None).expect("prune");
            }
        });
    });

    let meta = fixture.cache.lookup(&hash).expect("lookup").expect("hit");
    assert!(logs.contains(&fixture.cache.read_log(&meta).expect("read log")));
    let roots = fixture.fresh_roots("restored");
    assert_eq!(
        fixture
            .cache
            .restore(&meta, &roots, &allow_all())
            .expect("restore"),
        RestoreStats {
            restored: 2,
            already_in_place: 0
        }
    );
    assert_eq!(fixture.cache.stats().expect("stats").entries, 1);
    assert!(
        list_tree(&fixture.cache.root().join("v1/tmp")).is_empty(),
        "no temp files left"
    );
}

/// Any thread's log has the same length pattern ("log of thread N").
fn logs_contain(log: &[u8], length: usize) -> bool {
    log.starts_with(b"log of thread ") && log.len() == length
}

//! Store then restore: bytes, modes and symlinks survive; in-place outputs are skipped; entries
//! are replaced; archives are deterministic.

use std::fs;
use std::time::Duration;

use xtask_cache::{CacheError, CacheOptions, LocalCache, OutputKind, OutputRoot, RestoreStats};

use crate::support::{Fixture, allow_all, list_tree, mode_of, mtime, set_mtime, task_hash};

/// Outputs of a typical task: workspace files with different modes, a relative symlink and a
/// file under the target dir.
fn sample_outputs(fixture: &Fixture) -> Vec<xtask_cache::OutputFile> {
    vec![
        fixture.source_file(
            OutputRoot::Workspace,
            "dist/app.js",
            b"console.log(1)\n",
            0o644,
        ),
        fixture.source_file(
            OutputRoot::Workspace,
            "bin/tool",
            b"#!/bin/sh\necho hi\n",
            0o755,
        ),
        fixture.source_symlink(OutputRoot::Workspace, "bin/latest", "tool"),
        fixture.source_file(
            OutputRoot::Target,
            "debug/libfoo.rlib",
            &[0, 1, 2, 255],
            0o600,
        ),
    ]
}

#[test]
fn store_then_restore_into_fresh_dirs_reproduces_bytes_modes_and_symlinks() {
    let fixture = Fixture::new();
    let hash = task_hash("round trip");
    let stored = fixture.store(&hash, sample_outputs(&fixture), b"compiling foo\n");

    assert_eq!(
        fixture.cache.lookup(&hash).expect("lookup"),
        Some(stored.clone())
    );
    let members: Vec<String> = stored
        .outputs
        .iter()
        .map(|record| record.member_name())
        .collect();
    assert_eq!(
        members,
        [
            "target/debug/libfoo.rlib",
            "workspace/bin/latest",
            "workspace/bin/tool",
            "workspace/dist/app.js"
        ]
    );
    assert_eq!(stored.outputs[1].kind, OutputKind::Symlink);
    assert_eq!(stored.outputs[1].link_target.as_deref(), Some("tool"));
    assert_eq!(stored.outputs[2].mode, 0o755);
    assert_eq!(
        fixture.cache.read_log(&stored).expect("read log"),
        b"compiling foo\n"
    );

    let roots = fixture.fresh_roots("restored");
    let stats = fixture
        .cache
        .restore(&stored, &roots, &allow_all())
        .expect("restore");
    assert_eq!(
        stats,
        RestoreStats {
            restored: 4,
            already_in_place: 0
        }
    );

    let source = fixture.source_roots();
    for (root, path) in [
        (OutputRoot::Workspace, "dist/app.js"),
        (OutputRoot::Workspace, "bin/tool"),
        (OutputRoot::Target, "debug/libfoo.rlib"),
    ] {
        let original = source.path(root).join(path);
        let restored = roots.path(root).join(path);
        assert_eq!(
            fs::read(&restored).expect("read restored"),
            fs::read(&original).expect("read original"),
            "{path}"
        );
        assert_eq!(mode_of(&restored), mode_of(&original), "{path}");
    }
    let link = roots.workspace.join("bin/latest");
    assert!(
        fs::symlink_metadata(&link)
            .expect("link metadata")
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        fs::read_link(&link).expect("read link").to_str(),
        Some("tool")
    );
    // No temp files left next to the outputs.
    assert_eq!(
        list_tree(&roots.workspace),
        [
            "bin",
            "bin/latest",
            "bin/tool",
            "dist",
            "dist/app.js",
            "target",
            "target/debug",
            "target/debug/libfoo.rlib"
        ]
    );
}

#[test]
fn restore_skips_outputs_in_place_and_does_not_open_the_archive() {
    let fixture = Fixture::new();
    let hash = task_hash("in place");
    let meta = fixture.store(&hash, sample_outputs(&fixture), b"log");
    let roots = fixture.fresh_roots("restored");
    fixture
        .cache
        .restore(&meta, &roots, &allow_all())
        .expect("first restore");

    // Everything is in place: the archive is never read, so deleting it does not matter.
    fs::remove_file(fixture.blob_path(&meta.archive.sha256)).expect("delete archive blob");
    let stats = fixture
        .cache
        .restore(&meta, &roots, &allow_all())
        .expect("restore with everything in place");
    assert_eq!(
        stats,
        RestoreStats {
            restored: 0,
            already_in_place: 4
        }
    );

    // One output changed: now the archive is needed, and it is gone.
    fs::write(roots.workspace.join("dist/app.js"), b"edited").expect("edit output");
    let error = fixture
        .cache
        .restore(&meta, &roots, &allow_all())
        .expect_err("archive is missing");
    assert!(matches!(error, CacheError::Corrupt { .. }), "{error:?}");
    assert_eq!(
        fs::read(roots.workspace.join("dist/app.js")).expect("read"),
        b"edited"
    );
}

#[test]
fn restore_rewrites_only_outputs_that_differ_in_content_or_mode() {
    let fixture = Fixture::new();
    let meta = fixture.store(&task_hash("partial"), sample_outputs(&fixture), b"log");
    let roots = fixture.fresh_roots("restored");
    fixture
        .cache
        .restore(&meta, &roots, &allow_all())
        .expect("first restore");

    fs::write(roots.workspace.join("dist/app.js"), b"console.log(2)\n")
        .expect("same size, other content");
    fs::set_permissions(
        roots.workspace.join("bin/tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    let stats = fixture
        .cache
        .restore(&meta, &roots, &allow_all())
        .expect("restore");
    assert_eq!(
        stats,
        RestoreStats {
            restored: 2,
            already_in_place: 2
        }
    );
    assert_eq!(
        fs::read(roots.workspace.join("dist/app.js")).expect("read"),
        b"console.log(1)\n"
    );
    assert_eq!(mode_of(&roots.workspace.join("bin/tool")), 0o755);
}

#[test]
fn identical_outputs_give_identical_archives_whatever_their_mtime() {
    let fixture = Fixture::new();
    let outputs = sample_outputs(&fixture);
    let first = fixture.store(&task_hash("first"), outputs.clone(), b"log");
    set_mtime(
        &outputs[0].absolute_path,
        Duration::from_secs(3600 * 24 * 30),
    );
    let second = fixture.store(&task_hash("second"), outputs, b"log");
    assert_eq!(first.archive, second.archive);
    assert_eq!(
        fixture.cache.stats().expect("stats").blobs,
        2,
        "archive and log are shared"
    );
}

#[test]
fn an_entry_without_outputs_stores_and_restores() {
    let fixture = Fixture::new();
    let hash = task_hash("library build");
    let meta = fixture.store(&hash, Vec::new(), b"");
    assert!(meta.outputs.is_empty());
    assert!(
        meta.archive.size > 0,
        "an empty tar is still a valid zstd frame"
    );
    let roots = fixture.fresh_roots("restored");
    let stats = fixture
        .cache
        .restore(&meta, &roots, &allow_all())
        .expect("restore");
    assert_eq!(
        stats,
        RestoreStats {
            restored: 0,
            already_in_place: 0
        }
    );
    assert!(list_tree(&roots.workspace).is_empty());
    assert_eq!(fixture.cache.read_log(&meta).expect("log"), b"");
}

#[test]
fn store_replaces_an_existing_entry() {
    let fixture = Fixture::new();
    let hash = task_hash("forced");
    let outputs = sample_outputs(&fixture);
    let first = fixture.store(&hash, outputs.clone(), b"first run");
    let second = fixture.store(&hash, outputs, b"second run");
    assert_ne!(first.log, second.log);
    let found = fixture.cache.lookup(&hash).expect("lookup").expect("hit");
    assert_eq!(found, second);
    assert_eq!(fixture.cache.read_log(&found).expect("log"), b"second run");
}

#[test]
fn new_and_a_miss_do_no_io() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("not-yet");
    let cache = LocalCache::new(
        root.clone(),
        CacheOptions {
            max_size_bytes: Some(1),
        },
    );
    assert_eq!(cache.root(), root);
    assert_eq!(cache.lookup(&task_hash("anything")).expect("lookup"), None);
    assert_eq!(cache.last("pkg", "build").expect("last"), None);
    assert_eq!(
        cache.stats().expect("stats"),
        xtask_cache::CacheStats::default()
    );
    assert!(!cache.prune(None).expect("prune").skipped);
    assert!(
        !root.exists(),
        "nothing may be created by new, lookup, last, stats or prune"
    );
}

#[test]
fn invalid_task_hashes_are_rejected_before_any_path_is_built() {
    let fixture = Fixture::new();
    for bad in [
        "",
        "ABC",
        "../../../../etc/passwd",
        &task_hash("x").to_uppercase(),
        &task_hash("x")[..63],
    ] {
        let error = fixture.cache.lookup(bad).expect_err(bad);
        assert!(
            matches!(error, CacheError::InvalidTaskHash { .. }),
            "{bad}: {error:?}"
        );
        let error = fixture
            .cache
            .store(crate::support::new_entry(bad, Vec::new(), b""))
            .expect_err(bad);
        assert!(
            matches!(error, CacheError::InvalidTaskHash { .. }),
            "{bad}: {error:?}"
        );
    }
    assert!(!fixture.cache.root().exists());
}

#[test]
fn store_rejects_directories_absolute_symlinks_and_unnormalized_paths() {
    let fixture = Fixture::new();
    let hash = task_hash("bad outputs");
    fs::create_dir_all(fixture.path("src-ws/dist")).expect("mkdir");
    let directory = xtask_cache::OutputFile {
        root: OutputRoot::Workspace,
        relative_path: "dist".to_owned(),
        absolute_path: fixture.path("src-ws/dist"),
    };
    let absolute_link = fixture.source_symlink(OutputRoot::Workspace, "abs-link", "/etc/passwd");
    let escaping_link = fixture.source_symlink(OutputRoot::Workspace, "up-link", "../outside");
    let mut dotted = fixture.source_file(OutputRoot::Workspace, "ok.txt", b"ok", 0o644);
    dotted.relative_path = "./ok.txt".to_owned();

    for output in [directory, absolute_link, escaping_link] {
        let error = fixture
            .cache
            .store(crate::support::new_entry(&hash, vec![output], b""))
            .expect_err("unsupported");
        assert!(
            matches!(error, CacheError::UnsupportedOutput { .. }),
            "{error:?}"
        );
    }
    let error = fixture
        .cache
        .store(crate::support::new_entry(&hash, vec![dotted], b""))
        .expect_err("unsafe");
    assert!(matches!(error, CacheError::UnsafePath { .. }), "{error:?}");
    assert_eq!(
        fixture.cache.lookup(&hash).expect("lookup"),
        None,
        "nothing committed"
    );
}

#[test]
fn restore_refreshes_the_lru_time_only_when_it_is_older_than_ten_minutes() {
    let fixture = Fixture::new();
    let hash = task_hash("lru");
    let meta = fixture.store(&hash, sample_outputs(&fixture), b"log");
    let entry_path = fixture.entry_path(&hash);
    let roots = fixture.source_roots();

    set_mtime(&entry_path, Duration::from_secs(5 * 60));
    let recent = mtime(&entry_path);
    fixture
        .cache
        .restore(&meta, &roots, &allow_all())
        .expect("restore");
    assert_eq!(
        mtime(&entry_path),
        recent,
        "a 5-minute-old entry is not touched"
    );

    set_mtime(&entry_path, Duration::from_secs(60 * 60));
    let old = mtime(&entry_path);
    fixture
        .cache
        .restore(&meta, &roots, &allow_all())
        .expect("restore");
    let refreshed = mtime(&entry_path);
    assert!(
        refreshed > old + Duration::from_secs(50 * 60),
        "an hour-old entry is refreshed"
    );
}

#[test]
fn an_archive_prepared_ahead_is_the_one_a_store_would_build() {
    let fixture = Fixture::new();
    let outputs = sample_outputs(&fixture);
    let prepared = fixture
        .cache
        .prepare_outputs(outputs.clone())
        .expect("prepared");
    let ahead = fixture
        .cache
        .store_prepared(
            crate::support::new_entry(&task_hash("ahead"), outputs.clone(), b"log\n"),
            Some(prepared),
        )
        .expect("store prepared");
    let now = fixture.store(&task_hash("now"), outputs, b"log\n");
    assert_eq!(ahead.archive, now.archive, "the same deterministic archive");
    assert_eq!(ahead.outputs, now.outputs);
    let roots = fixture.fresh_roots("restored");
    fixture
        .cache
        .restore(&ahead, &roots, &allow_all())
        .expect("restore");
    assert_eq!(
        fs::read(roots.workspace.join("bin/tool")).expect("read"),
        b"#!/bin/sh\necho hi\n"
    );
}

#[test]
fn an_output_changed_after_its_archive_was_prepared_is_archived_again() {
    let fixture = Fixture::new();
    let outputs = sample_outputs(&fixture);
    let prepared = fixture
        .cache
        .prepare_outputs(outputs.clone())
        .expect("prepared");
    // The build replaces an output after it was archived (cargo re-links a binary): same
    // size, same mode, another file.
    let tool = outputs
        .iter()
        .find(|o| o.relative_path == "bin/tool")
        .expect("bin/tool")
        .absolute_path
        .clone();
    fs::remove_file(&tool).expect("remove");
    crate::support::write_file(&tool, b"#!/bin/sh\necho yo\n", 0o755);
    let stored = fixture
        .cache
        .store_prepared(
            crate::support::new_entry(&task_hash("changed"), outputs, b"log\n"),
            Some(prepared),
        )
        .expect("store");
    let roots = fixture.fresh_roots("restored");
    fixture
        .cache
        .restore(&stored, &roots, &allow_all())
        .expect("restore");
    assert_eq!(
        fs::read(roots.workspace.join("bin/tool")).expect("read"),
        b"#!/bin/sh\necho yo\n",
        "never the stale archive"
    );
}

#[test]
fn small_and_large_archives_restore_alike() {
    // A small archive is read into memory and decompressed once; one over 1 MiB is read
    // through its verified handle for each pass. Both restore the same bytes.
    let fixture = Fixture::new();
    let large = crate::support::noise(7, 3 << 20);
    for (name, bytes) in [("small", b"small\n".to_vec()), ("large", large)] {
        let hash = task_hash(name);
        let outputs = vec![fixture.source_file(OutputRoot::Workspace, name, &bytes, 0o644)];
        let stored = fixture.store(&hash, outputs, b"");
        assert_eq!(
            stored.archive.size > (1 << 20),
            name == "large",
            "the {name} archive is {} bytes",
            stored.archive.size
        );
        let roots = fixture.fresh_roots(name);
        let stats = fixture
            .cache
            .restore(&stored, &roots, &allow_all())
            .expect("restore");
        assert_eq!(stats.restored, 1);
        assert_eq!(fs::read(roots.workspace.join(name)).expect("read"), bytes);
    }
}

//! Entries that are lexically clean but escape when resolved (symlinks restored earlier in the
//! same entry, symlinks already on disk, chains, loops), and entries that stay inside their root
//! but outside the task's allowed outputs: restore refuses each with `UnsafePath` and writes
//! nothing, inside or outside the root.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use xtask_cache::{AllowedOutputs, CacheError, EntryMeta, OutputRecord, OutputRoot, RestoreRoots};

use crate::support::{
    Fixture, RawMember, allow_all, file_record, list_tree, raw_archive, symlink_record, task_hash,
};

/// One output of a hand-made entry: a file with content or a symlink with its target.
enum Out {
    File(OutputRoot, &'static str, &'static [u8]),
    Link(OutputRoot, &'static str, &'static str),
}

/// Plants an entry whose archive holds `outputs` in the given order.
fn plant(fixture: &Fixture, name: &str, outputs: &[Out]) -> EntryMeta {
    let mut records: Vec<OutputRecord> = Vec::new();
    let mut names = Vec::new();
    for output in outputs {
        let (record, member) = match *output {
            Out::File(root, path, data) => (
                file_record(root, path, data, 0o644),
                format!("{}/{path}", root.as_str()),
            ),
            Out::Link(root, path, target) => (
                symlink_record(root, path, target),
                format!("{}/{path}", root.as_str()),
            ),
        };
        records.push(record);
        names.push(member);
    }
    let members: Vec<RawMember<'_>> = outputs
        .iter()
        .zip(&names)
        .map(|(output, name)| match *output {
            Out::File(_, _, data) => RawMember::file(name, data),
            Out::Link(_, _, target) => RawMember::symlink(name, target),
        })
        .collect();
    fixture.plant(&task_hash(name), records, &raw_archive(&members))
}

/// A fresh `<tmp>/<name>/ws` (with `Cargo.toml`) next to `<tmp>/<name>/outside/`, prepared by
/// `prepare`; restores `meta` with `allowed`, asserts `UnsafePath` and that the whole of
/// `<tmp>/<name>` is exactly as before (names, and the content of `Cargo.toml`).
fn assert_refused(
    fixture: &Fixture,
    name: &str,
    meta: &EntryMeta,
    allowed: &AllowedOutputs,
    prepare: impl FnOnce(&Path, &Path),
) -> String {
    let box_dir = fixture.path(name);
    let workspace = box_dir.join("ws");
    let outside = box_dir.join("outside");
    fs::create_dir_all(&workspace).expect("create workspace");
    fs::create_dir_all(&outside).expect("create outside");
    fs::write(workspace.join("Cargo.toml"), b"original").expect("manifest");
    prepare(&workspace, &outside);
    let before = list_tree(&box_dir);
    let roots = RestoreRoots {
        target: workspace.join("target"),
        workspace: workspace.clone(),
        keep: Vec::new(),
    };
    let error = fixture
        .cache
        .restore(meta, &roots, allowed)
        .expect_err("must be refused");
    assert!(
        matches!(error, CacheError::UnsafePath { .. }),
        "expected UnsafePath, got {error:?}"
    );
    assert_eq!(list_tree(&box_dir), before, "nothing may be written");
    assert_eq!(
        fs::read(workspace.join("Cargo.toml")).expect("manifest"),
        b"original"
    );
    error.to_string()
}

use OutputRoot::{Target, Workspace};

#[test]
fn a_symlink_restored_earlier_cannot_be_followed_out_by_a_later_one() {
    let fixture = Fixture::new();
    // `out/sub -> ..` is the root; `out/esc -> sub/../x` is lexically `out/x` but really `../x`.
    let meta = plant(
        &fixture,
        "sub then esc",
        &[
            Out::Link(Workspace, "out/sub", ".."),
            Out::Link(Workspace, "out/esc", "sub/../x"),
        ],
    );
    let message = assert_refused(&fixture, "case", &meta, &allow_all(), |_, _| {});
    assert!(message.contains("workspace/out/esc"), "{message}");
    assert!(message.contains("`out/sub` -> `..`"), "{message}");

    // The same escape when the later link is listed first in the archive is still refused:
    // once the entry is in place it would resolve outside.
    let meta = plant(
        &fixture,
        "esc then sub",
        &[
            Out::Link(Workspace, "out/esc", "sub/../x"),
            Out::Link(Workspace, "out/sub", ".."),
        ],
    );
    assert_refused(&fixture, "case reversed", &meta, &allow_all(), |_, _| {});
}

#[test]
fn a_chain_of_symlinks_that_are_each_lexically_inside_is_refused() {
    let fixture = Fixture::new();
    let meta = plant(
        &fixture,
        "chain",
        &[
            Out::Link(Workspace, "a/b/up", "../.."),
            Out::Link(Workspace, "a/b/c", "up/a/b/up/.."),
        ],
    );
    assert_refused(&fixture, "case", &meta, &allow_all(), |_, _| {});

    // A file written through a chain of links, each inside, that lands elsewhere.
    let meta = plant(
        &fixture,
        "file through chain 2",
        &[
            Out::Link(Workspace, "d/up", ".."),
            Out::Link(Workspace, "d/one", "up/d/up/d/up"),
            Out::File(Workspace, "d/one/d/payload", b"written at the root"),
        ],
    );
    // Resolves inside (`d/payload`) but that is not among the allowed outputs.
    let allowed = AllowedOutputs::package_globs(
        "d",
        &["one".to_owned(), "one/**".to_owned(), "up".to_owned()],
    )
    .expect("globs");
    let message = assert_refused(&fixture, "chain allowed", &meta, &allowed, |_, _| {});
    assert!(message.contains("resolves to `d/payload`"), "{message}");
}

#[test]
fn a_symlink_loop_is_refused() {
    let fixture = Fixture::new();
    let meta = plant(
        &fixture,
        "loop",
        &[
            Out::Link(Workspace, "a", "b"),
            Out::Link(Workspace, "b", "a"),
            Out::File(Workspace, "a/x", b"never"),
        ],
    );
    let message = assert_refused(&fixture, "case", &meta, &allow_all(), |_, _| {});
    assert!(message.contains("too many levels of symlinks"), "{message}");
}

#[test]
fn symlinks_on_disk_are_resolved_not_trusted() {
    let fixture = Fixture::new();
    let file = plant(
        &fixture,
        "file under a",
        &[Out::File(Workspace, "a/file.txt", b"payload")],
    );
    // A relative chain on disk that ends outside.
    assert_refused(&fixture, "relative chain", &file, &allow_all(), |ws, _| {
        symlink("b", ws.join("a")).expect("a");
        symlink("../outside", ws.join("b")).expect("b");
    });
    // An absolute link into the root followed by `..`.
    assert_refused(
        &fixture,
        "absolute dot dot",
        &file,
        &allow_all(),
        |ws, _| {
            fs::create_dir_all(ws.join("real")).expect("real");
            let target = format!("{}/real/../..", ws.display());
            symlink(target, ws.join("a")).expect("a");
        },
    );
    // An absolute link outside.
    assert_refused(
        &fixture,
        "absolute outside",
        &file,
        &allow_all(),
        |ws, outside| {
            symlink(outside, ws.join("a")).expect("a");
        },
    );
    // A link on disk that a symlink of the entry would be resolved through.
    let link = plant(
        &fixture,
        "link through disk",
        &[Out::Link(Workspace, "l", "ext/file")],
    );
    assert_refused(
        &fixture,
        "entry link via disk",
        &link,
        &allow_all(),
        |ws, _| {
            symlink("../outside", ws.join("ext")).expect("ext");
        },
    );

    // An absolute link on disk that stays inside is followed.
    let ok_dir = fixture.path("inside");
    let workspace = ok_dir.join("ws");
    fs::create_dir_all(workspace.join("real")).expect("real");
    symlink(workspace.join("real"), workspace.join("a")).expect("a");
    let roots = RestoreRoots {
        target: workspace.join("target"),
        workspace: workspace.clone(),
        keep: Vec::new(),
    };
    fixture
        .cache
        .restore(&file, &roots, &allow_all())
        .expect("an inner absolute link is fine");
    assert_eq!(
        fs::read(workspace.join("real/file.txt")).expect("read"),
        b"payload"
    );
}

#[test]
fn a_member_outside_the_allowed_outputs_is_refused_even_if_inside_the_root() {
    let fixture = Fixture::new();
    let cargo = AllowedOutputs::cargo_artifacts(&["debug"]);
    for (index, out) in [
        Out::File(Target, "debug/deps/libfoo-123.rlib", b"poisoned"),
        Out::File(Target, "debug/build/foo-123/output", b"poisoned"),
        Out::File(Target, "debug/.fingerprint/foo-123/lib-foo", b"poisoned"),
        Out::File(Target, "debug/incremental/foo/x", b"poisoned"),
        Out::File(Workspace, "Cargo.toml", b"poisoned"),
        Out::File(Workspace, "src/main.rs", b"poisoned"),
        Out::Link(Target, "debug/deps", "../elsewhere"),
    ]
    .into_iter()
    .enumerate()
    {
        let meta = plant(
            &fixture,
            &format!("outside {index}"),
            &[Out::File(Target, "debug/app", b"binary"), out],
        );
        let message = assert_refused(&fixture, &format!("box {index}"), &meta, &cargo, |_, _| {});
        assert!(message.contains("outside the task's outputs"), "{message}");
    }

    // The uplifted artifacts themselves restore.
    let meta = plant(
        &fixture,
        "uplifted",
        &[
            Out::File(Target, "debug/app", b"binary"),
            Out::File(Target, "debug/examples/demo", b"example"),
            Out::File(Target, "debug/libshared.so", b"cdylib"),
        ],
    );
    let roots = fixture.fresh_roots("restored");
    fixture
        .cache
        .restore(&meta, &roots, &cargo)
        .expect("uplifted artifacts restore");
    assert_eq!(
        fs::read(roots.target.join("debug/examples/demo")).expect("read"),
        b"example"
    );
}

#[test]
fn a_file_through_an_allowed_symlink_is_checked_where_it_lands() {
    let fixture = Fixture::new();
    let allowed = AllowedOutputs::package_globs("pkg", &["out/**".to_owned()]).expect("globs");
    // `pkg/out/sub -> ../..` is the workspace root: `pkg/out/sub/Cargo.toml` matches `out/**`
    // as written but overwrites the root manifest.
    let meta = plant(
        &fixture,
        "through sub",
        &[
            Out::Link(Workspace, "pkg/out/sub", "../.."),
            Out::File(Workspace, "pkg/out/sub/Cargo.toml", b"poisoned"),
        ],
    );
    let message = assert_refused(&fixture, "case", &meta, &allowed, |_, _| {});
    assert!(message.contains("resolves to `Cargo.toml`"), "{message}");

    // The same through a symlinked target directory on disk: `debug` -> `debug/deps`.
    let cargo = AllowedOutputs::cargo_artifacts(&["debug"]);
    let meta = plant(
        &fixture,
        "through disk",
        &[Out::File(Target, "debug/libfoo-123.rlib", b"poisoned")],
    );
    assert_refused(&fixture, "disk", &meta, &cargo, |ws, _| {
        let target = ws.join("target");
        fs::create_dir_all(target.join("real/deps")).expect("deps");
        symlink("real/deps", target.join("debug")).expect("debug link");
    });
}

#[test]
fn import_rejects_entries_outside_the_allowed_outputs() {
    let fixture = Fixture::new();
    let meta = plant(
        &fixture,
        "import outside",
        &[Out::File(Target, "debug/deps/libfoo.rlib", b"poisoned")],
    );
    let parts = fixture.cache.read_parts(&meta).expect("parts");
    let other = xtask_cache::LocalCache::new(fixture.path("other-cache"), Default::default());
    let error = other
        .import(
            &meta.task_hash,
            &parts,
            "http://127.0.0.1:1/",
            &AllowedOutputs::cargo_artifacts(&["debug"]),
        )
        .expect_err("rejected");
    assert!(matches!(error, CacheError::Rejected { .. }), "{error:?}");
    assert!(
        error.to_string().contains("target/debug/deps/libfoo.rlib"),
        "{error}"
    );
    assert!(!fixture.path("other-cache").exists(), "nothing written");
}

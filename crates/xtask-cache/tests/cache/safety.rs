//! Hostile entries and archives: restore refuses them with `UnsafePath` and writes nothing.

use std::fs;

use xtask_cache::{CacheError, EntryMeta, OutputRecord, OutputRoot, RestoreRoots};

use crate::support::{
    Fixture, RawMember, allow_all, file_record, list_tree, raw_archive, symlink_record, task_hash,
};

/// Restores `meta` into a fresh workspace under `<tmp>/box/ws` and asserts it is refused with
/// `UnsafePath` and that nothing at all was written anywhere under `<tmp>/box`.
fn assert_refused(fixture: &Fixture, meta: &EntryMeta) -> String {
    let box_dir = fixture.path("box");
    let workspace = box_dir.join("ws");
    fs::create_dir_all(&workspace).expect("create workspace");
    let roots = RestoreRoots {
        target: workspace.join("target"),
        workspace,
        keep: Vec::new(),
    };
    let error = fixture
        .cache
        .restore(meta, &roots, &allow_all())
        .expect_err("must be refused");
    assert!(
        matches!(error, CacheError::UnsafePath { .. }),
        "expected UnsafePath, got {error:?}"
    );
    assert_eq!(list_tree(&box_dir), ["ws"], "nothing may be written");
    assert!(!fixture.path("escape").exists());
    error.to_string()
}

fn ok_record() -> OutputRecord {
    file_record(OutputRoot::Workspace, "ok.txt", b"fine", 0o644)
}

#[test]
fn a_member_with_dot_dot_is_refused_even_after_valid_members() {
    let fixture = Fixture::new();
    let archive = raw_archive(&[
        RawMember::file("workspace/ok.txt", b"fine"),
        RawMember::file("workspace/../../../escape", b"pwned"),
    ]);
    let meta = fixture.plant(&task_hash("dot dot member"), vec![ok_record()], &archive);
    let message = assert_refused(&fixture, &meta);
    assert!(message.contains("`..`"), "{message}");
}

#[test]
fn a_record_with_dot_dot_is_refused() {
    let fixture = Fixture::new();
    let record = file_record(OutputRoot::Workspace, "../../escape", b"pwned", 0o644);
    let archive = raw_archive(&[RawMember::file("workspace/../../escape", b"pwned")]);
    let meta = fixture.plant(&task_hash("dot dot record"), vec![record], &archive);
    assert_refused(&fixture, &meta);
}

#[test]
fn absolute_members_and_records_are_refused() {
    let fixture = Fixture::new();
    let outside = fixture.path("escape");
    let outside = outside.to_str().expect("utf-8 temp path");
    let cases: Vec<(Vec<OutputRecord>, String)> = vec![
        (vec![ok_record()], outside.to_owned()),
        (vec![ok_record()], format!("workspace/{outside}")),
        (
            vec![file_record(OutputRoot::Workspace, outside, b"pwned", 0o644)],
            format!("workspace/{outside}"),
        ),
    ];
    for (index, (records, member)) in cases.into_iter().enumerate() {
        let archive = raw_archive(&[RawMember::file(&member, b"pwned")]);
        let meta = fixture.plant(&task_hash(&format!("absolute {index}")), records, &archive);
        assert_refused(&fixture, &meta);
    }
}

#[test]
fn dot_and_empty_components_and_unknown_roots_are_refused() {
    let fixture = Fixture::new();
    for (index, member) in [
        "workspace/./ok.txt",
        "workspace//ok.txt",
        "home/ok.txt",
        "ok.txt",
        "workspace/",
    ]
    .into_iter()
    .enumerate()
    {
        let archive = raw_archive(&[RawMember::file(member, b"fine")]);
        let meta = fixture.plant(
            &task_hash(&format!("component {index}")),
            vec![ok_record()],
            &archive,
        );
        assert_refused(&fixture, &meta);
    }
}

#[test]
fn symlinks_that_leave_their_root_are_refused() {
    let fixture = Fixture::new();
    // Listed in the outputs: refused by the record check.
    let archive = raw_archive(&[RawMember::symlink("workspace/link", "../../etc")]);
    let meta = fixture.plant(
        &task_hash("escaping symlink"),
        vec![symlink_record(OutputRoot::Workspace, "link", "../../etc")],
        &archive,
    );
    let message = assert_refused(&fixture, &meta);
    assert!(message.contains("leaves its root"), "{message}");

    // The record is harmless but the archived link is not: refused by the member check.
    let archive = raw_archive(&[RawMember::symlink("workspace/dir/link", "../../etc")]);
    let meta = fixture.plant(
        &task_hash("mismatched symlink"),
        vec![symlink_record(
            OutputRoot::Workspace,
            "dir/link",
            "../sibling",
        )],
        &archive,
    );
    assert_refused(&fixture, &meta);

    // Absolute targets.
    let archive = raw_archive(&[RawMember::symlink("target/link", "/etc/passwd")]);
    let meta = fixture.plant(
        &task_hash("absolute symlink"),
        vec![symlink_record(OutputRoot::Target, "link", "/etc/passwd")],
        &archive,
    );
    assert_refused(&fixture, &meta);
}

#[test]
fn members_not_listed_in_the_outputs_are_refused() {
    let fixture = Fixture::new();
    let archive = raw_archive(&[
        RawMember::file("workspace/ok.txt", b"fine"),
        RawMember::file("workspace/extra.txt", b"smuggled"),
    ]);
    let meta = fixture.plant(&task_hash("unlisted"), vec![ok_record()], &archive);
    let message = assert_refused(&fixture, &meta);
    assert!(message.contains("workspace/extra.txt"), "{message}");
}

#[test]
fn hard_links_devices_and_directories_are_refused() {
    let fixture = Fixture::new();
    for typeflag in [b'1', b'3', b'4', b'5', b'6'] {
        let member = RawMember {
            name: "workspace/ok.txt",
            typeflag,
            link_name: "workspace/other",
            data: b"",
            mode: 0o644,
        };
        let archive = raw_archive(&[member]);
        let meta = fixture.plant(
            &task_hash(&format!("type {typeflag}")),
            vec![ok_record()],
            &archive,
        );
        assert_refused(&fixture, &meta);
    }
}

#[test]
fn setuid_modes_and_duplicate_records_are_refused() {
    let fixture = Fixture::new();
    let archive = raw_archive(&[RawMember::file("workspace/ok.txt", b"fine")]);
    let mut setuid = ok_record();
    setuid.mode = 0o4755;
    let meta = fixture.plant(&task_hash("setuid"), vec![setuid], &archive);
    assert_refused(&fixture, &meta);

    let meta = fixture.plant(
        &task_hash("duplicate"),
        vec![ok_record(), ok_record()],
        &archive,
    );
    assert_refused(&fixture, &meta);
}

#[test]
fn an_existing_symlinked_parent_that_leads_outside_is_refused() {
    let fixture = Fixture::new();
    let hash = task_hash("symlinked parent");
    let outputs = vec![
        fixture.source_file(OutputRoot::Workspace, "a.txt", b"a", 0o644),
        fixture.source_file(OutputRoot::Workspace, "out/file.txt", b"payload", 0o644),
    ];
    let meta = fixture.store(&hash, outputs, b"log");

    let outside = fixture.path("outside");
    fs::create_dir_all(&outside).expect("outside dir");
    let roots = fixture.fresh_roots("restored");
    std::os::unix::fs::symlink(&outside, roots.workspace.join("out")).expect("symlink parent");

    let error = fixture
        .cache
        .restore(&meta, &roots, &allow_all())
        .expect_err("must be refused");
    assert!(matches!(error, CacheError::UnsafePath { .. }), "{error:?}");
    assert!(
        list_tree(&outside).is_empty(),
        "nothing written outside: {:?}",
        list_tree(&outside)
    );
    assert!(
        !roots.workspace.join("a.txt").exists(),
        "nothing written at all"
    );

    // A symlinked parent that stays inside the root is fine.
    fs::remove_file(roots.workspace.join("out")).expect("remove link");
    fs::create_dir_all(roots.workspace.join("real")).expect("real dir");
    std::os::unix::fs::symlink("real", roots.workspace.join("out")).expect("inner symlink");
    fixture
        .cache
        .restore(&meta, &roots, &allow_all())
        .expect("restore through an inner symlink");
    assert_eq!(
        fs::read(roots.workspace.join("real/file.txt")).expect("read"),
        b"payload"
    );
}

#[test]
fn an_existing_symlink_at_the_destination_is_replaced_not_followed() {
    let fixture = Fixture::new();
    let meta = fixture.store(
        &task_hash("destination symlink"),
        vec![fixture.source_file(OutputRoot::Workspace, "out.txt", b"new", 0o644)],
        b"log",
    );
    let victim = fixture.path("victim.txt");
    fs::write(&victim, b"precious").expect("victim");
    let roots = fixture.fresh_roots("restored");
    std::os::unix::fs::symlink(&victim, roots.workspace.join("out.txt")).expect("symlink");

    fixture
        .cache
        .restore(&meta, &roots, &allow_all())
        .expect("restore");
    assert_eq!(fs::read(&victim).expect("read victim"), b"precious");
    let restored = roots.workspace.join("out.txt");
    assert!(fs::symlink_metadata(&restored).expect("metadata").is_file());
    assert_eq!(fs::read(&restored).expect("read"), b"new");
}

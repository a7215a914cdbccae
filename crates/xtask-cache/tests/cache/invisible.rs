//! The cache directory is invisible to what it caches: created with a `.gitignore` of `*` and a
//! `CACHEDIR.TAG`, so git never reports it (and `affected` never sees it).

use std::fs;
use std::path::Path;
use std::process::Command;

use xtask_cache::{CacheOptions, LocalCache, OutputRoot};

use crate::support::{Fixture, new_entry, task_hash};

fn git(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("run git (a test dependency, like cargo's own tests)")
}

#[test]
fn a_store_inside_a_git_repository_leaves_git_status_clean() {
    let fixture = Fixture::new();
    let repo = fixture.path("repo");
    fs::create_dir_all(&repo).expect("repo dir");
    assert!(git(&repo, &["init", "-q"]).status.success());
    fs::write(repo.join("tracked.txt"), b"x").expect("tracked");
    assert!(git(&repo, &["add", "tracked.txt"]).status.success());

    let cache = LocalCache::new(repo.join("turbo-like-cache"), CacheOptions::default());
    let output = fixture.source_file(OutputRoot::Workspace, "out.txt", b"output", 0o644);
    cache
        .store(new_entry(&task_hash("invisible"), vec![output], b"log"))
        .expect("store");
    cache
        .set_last("pkg", "build", &task_hash("invisible"))
        .expect("last");

    let status = git(&repo, &["status", "--porcelain", "--untracked-files=all"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        !status.contains("turbo-like-cache"),
        "git reports the cache:\n{status}"
    );
    assert_eq!(status.trim(), "A  tracked.txt");
    for path in ["turbo-like-cache/v1/lock", "turbo-like-cache/CACHEDIR.TAG"] {
        let ignored = git(&repo, &["check-ignore", "-v", path]);
        assert!(
            ignored.status.success(),
            "git check-ignore {path}: {}{}",
            String::from_utf8_lossy(&ignored.stdout),
            String::from_utf8_lossy(&ignored.stderr)
        );
    }

    let tag = fs::read_to_string(repo.join("turbo-like-cache/CACHEDIR.TAG")).expect("tag");
    assert!(
        tag.starts_with("Signature: 8a477f597d28d172789f06886806bc55"),
        "{tag}"
    );
    let gitignore = fs::read_to_string(repo.join("turbo-like-cache/.gitignore")).expect("ignore");
    assert!(gitignore.lines().any(|line| line == "*"), "{gitignore}");
}

#[test]
fn existing_markers_are_never_overwritten_and_clean_keeps_them() {
    let fixture = Fixture::new();
    let root = fixture.path("shared-cache");
    fs::create_dir_all(&root).expect("root");
    fs::write(root.join(".gitignore"), b"# mine\n").expect("own gitignore");
    let cache = LocalCache::new(root.clone(), CacheOptions::default());
    cache.create_dirs().expect("create");
    assert_eq!(
        fs::read(root.join(".gitignore")).expect("read"),
        b"# mine\n"
    );
    assert!(root.join("CACHEDIR.TAG").is_file());
    assert!(root.join("v1").is_dir());

    cache.clean().expect("clean");
    assert!(
        root.join("CACHEDIR.TAG").is_file(),
        "clean keeps the markers"
    );
    // A store after a clean in the same process recreates `v1/`.
    cache
        .store(new_entry(&task_hash("after clean"), Vec::new(), b"log"))
        .expect("store after clean");
    cache.prune(None).expect("prune after clean");
}

#[test]
fn new_and_a_lookup_write_no_markers() {
    let fixture = Fixture::new();
    let root = fixture.path("never-written");
    let cache = LocalCache::new(root.clone(), CacheOptions::default());
    assert!(
        cache
            .lookup(&task_hash("missing"))
            .expect("lookup")
            .is_none()
    );
    assert!(!root.exists());
}

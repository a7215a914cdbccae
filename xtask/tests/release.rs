//! End-to-end tests of `cargo xtask release` on the `release` fixture: a workspace of tiny
//! std-only crates given a scripted history of conventional commits in a temp dir, then the
//! real binary: the plan (snapshot), `--execute` (versions, requirements, Cargo.lock,
//! changelogs, commit, tags, `sha256sum -c`, byte-identical archives from two runs, SBOM),
//! `--push` to a bare repository, the refusals (tree unchanged), and interrupted executions that
//! a rerun finishes without a duplicate commit, tag or publish (`cargo publish --dry-run`
//! against a registry index on disk). With two apps (`[package.metadata.xtask.app]`): their
//! images pushed to a real registry on loopback (Debian's `docker-registry`), checked with
//! skopeo, crashes between and inside the pushes that reruns finish without pushing a
//! manifest twice (counted in the registry's access log), an unreachable registry and a
//! missing registry key.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;
use testkit::copy_dir;

/// Commit dates of the scripted history (fixed, so commit ids are too).
const EPOCH: i64 = 1_714_000_000;

/// A temp dir holding the workspace (`ws`, always at the same path within it), a registry
/// index, a logging cargo wrapper and a bare "origin".
struct ReleaseFixture {
    base: PathBuf,
    _dir: TempDir,
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Run {
    #[track_caller]
    fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, Some(code), "{self}");
        self
    }
}

impl ReleaseFixture {
    fn new() -> ReleaseFixture {
        let dir = tempfile::Builder::new()
            .prefix("xtask-release-")
            .tempdir()
            .expect("temp dir");
        let base = fs::canonicalize(dir.path()).expect("canonicalize");
        let fixture = ReleaseFixture { base, _dir: dir };
        fixture.write_tools();
        fixture.make_index();
        fixture.create_workspace();
        fixture
    }

    fn root(&self) -> PathBuf {
        self.base.join("ws")
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root().join(relative)
    }

    fn read(&self, relative: &str) -> String {
        fs::read_to_string(self.path(relative)).unwrap_or_else(|e| panic!("read {relative}: {e}"))
    }

    fn write(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// The workspace from the fixture, with its scripted history, at `ws/`.
    fn create_workspace(&self) {
        let root = self.root();
        if root.exists() {
            fs::remove_dir_all(&root).unwrap();
        }
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/release"),
            &root,
        );
        self.git(&["init", "--quiet", "--initial-branch=main"]);
        self.commit_all("chore: initial import", 0);
        for tag in ["base-v0.1.0", "text-v1.2.0", "hello-v0.3.0", "idle-v0.5.0"] {
            self.git(&["tag", "-a", tag, "-m", tag]);
        }
        self.edit(
            "crates/base/src/lib.rs",
            "hello, {name}",
            "hello there, {name}",
        );
        self.edit(
            "crates/base/src/lib.rs",
            "\"hello, ada\"",
            "\"hello there, ada\"",
        );
        self.commit_all("feat(base)!: a warmer greeting", 1);
        self.edit(
            "crates/text/src/lib.rs",
            "base::greet(name))",
            "base::greet(name).trim())",
        );
        self.commit_all("fix(text): no trailing whitespace", 2);
        self.edit("apps/hello/src/main.rs", "\"world\"", "\"everyone\"");
        self.commit_all("Greet everyone", 3);
        self.write("crates/base/README.md", "# base\n");
        self.commit_all("docs(base): a README", 4);
    }

    fn edit(&self, relative: &str, from: &str, to: &str) {
        let text = self.read(relative);
        assert!(text.contains(from), "{relative} lacks {from:?}");
        self.write(relative, &text.replacen(from, to, 1));
    }

    fn commit_all(&self, message: &str, n: i64) {
        self.git(&["add", "-A"]);
        let date = format!("@{} +0000", EPOCH + n * 3600);
        let mut command = self.git_command(&["commit", "--quiet", "-m", message]);
        command
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date);
        run_ok(command);
    }

    fn git_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(testkit::tool("git"));
        command.args(args).current_dir(self.root());
        self.hermetic(&mut command);
        command
    }

    /// `git ARGS` in the workspace; panics on failure; returns stdout.
    fn git(&self, args: &[&str]) -> String {
        run_ok(self.git_command(args))
    }

    fn hermetic(&self, command: &mut Command) {
        for name in [
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_TARGET_DIR",
            "XTASK_CACHE_DIR",
            "RUSTFLAGS",
            "GIT_DIR",
            "GIT_WORK_TREE",
            "GIT_INDEX_FILE",
            "SOURCE_DATE_EPOCH",
            "XTASK_RELEASE_CRASH_AFTER",
            "XTASK_REGISTRY_USERNAME",
            "XTASK_REGISTRY_PASSWORD",
        ] {
            command.env_remove(name);
        }
        command
            .stdin(Stdio::null())
            .env("CI", "true")
            .env("CARGO", self.base.join("tools/cargo"))
            .env(
                "CARGO_REGISTRIES_FIXTURE_INDEX",
                format!("file://{}", self.base.join("index").display()),
            )
            .env("XTASK_RELEASE_PUBLISH_DRY_RUN", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CEILING_DIRECTORIES", &self.base)
            .env("GIT_AUTHOR_NAME", "release test")
            .env("GIT_AUTHOR_EMAIL", "release@example.com")
            .env("GIT_COMMITTER_NAME", "release test")
            .env("GIT_COMMITTER_EMAIL", "release@example.com");
    }

    /// `xtask -C ws release ARGS`, with `env` added.
    fn release(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
        command
            .arg("-C")
            .arg(self.root())
            .arg("release")
            .args(args)
            .current_dir(self.base.join("tools"));
        self.hermetic(&mut command);
        // The release commit's time, fixed so two runs make the same commit.
        let date = format!("@{} +0000", EPOCH + 10 * 3600);
        command
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date);
        for (key, value) in env {
            command.env(key, value);
        }
        let output: Output = command.output().expect("start xtask");
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// The `cargo publish` command lines run so far.
    fn publish_calls(&self) -> Vec<String> {
        fs::read_to_string(self.base.join("tools/cargo-calls.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("publish "))
            .map(str::to_string)
            .collect()
    }

    /// Everything that says what the repository is: HEAD, tags, status, state files.
    fn repository_state(&self) -> String {
        let state_files: Vec<String> = fs::read_dir(self.path("target/release-state"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        format!(
            "HEAD {}\ntags {}\nstatus {}\nstate files {state_files:?}\ndist {}",
            self.git(&["rev-parse", "HEAD"]).trim(),
            self.git(&["tag", "--list"])
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            self.git(&["status", "--porcelain", "--untracked-files=all"]),
            self.path("target/dist").exists()
        )
    }

    fn write_tools(&self) {
        use std::os::unix::fs::PermissionsExt;
        let tools = self.base.join("tools");
        fs::create_dir_all(&tools).unwrap();
        let real_cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let script = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{real_cargo}' \"$@\"\n",
            tools.join("cargo-calls.log").display()
        );
        fs::write(tools.join("cargo"), script).unwrap();
        fs::set_permissions(tools.join("cargo"), fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A registry index on disk (git, as cargo reads `file://` indexes) for `registry = "fixture"`.
    fn make_index(&self) {
        let index = self.base.join("index");
        fs::create_dir_all(&index).unwrap();
        fs::write(
            index.join("config.json"),
            format!("{{\"dl\":\"file://{}/dl/{{crate}}-{{version}}.crate\",\"api\":\"http://127.0.0.1:9\"}}", self.base.display()),
        )
        .unwrap();
        for args in [
            &["init", "--quiet"][..],
            &["add", "-A"],
            &["commit", "--quiet", "-m", "index"],
        ] {
            let mut command = Command::new(testkit::tool("git"));
            command.args(args).current_dir(&index);
            self.hermetic(&mut command);
            run_ok(command);
        }
    }
}

fn run_ok(mut command: Command) -> String {
    let output = command.output().expect("start command");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn snapshot_settings(fixture: &ReleaseFixture) -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&regex_escape(&fixture.base.display().to_string()), "[BASE]");
    settings.add_filter(
        r"x86_64-unknown-linux-gnu|aarch64-unknown-linux-gnu",
        "[HOST]",
    );
    settings
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '-' || c == '_' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

#[test]
fn the_plan_changes_nothing() {
    let fixture = ReleaseFixture::new();
    let before = fixture.repository_state();
    let run = fixture.release(&[], &[]);
    run.assert_code(0);
    assert!(run.stderr.contains("nothing was changed"), "{run}");
    assert_eq!(fixture.repository_state(), before);
    let _settings = snapshot_settings(&fixture).bind_to_scope();
    insta::assert_snapshot!("release_plan", run.stdout);

    // Explicit bumps and package selection.
    let run = fixture.release(&["base", "--bump", "1.0.0"], &[]);
    run.assert_code(0);
    assert!(
        run.stdout.contains("base   0.1.0 -> 1.0.0  (--bump 1.0.0)"),
        "{run}"
    );
    assert!(
        run.stdout
            .contains("text   1.2.0 -> 1.2.1  (dependency `base` is released; patch"),
        "{run}"
    );
    assert!(!run.stdout.contains("idle"), "{run}");
    let run = fixture.release(&["nope"], &[]);
    run.assert_code(3);
    assert!(run.stderr.contains("unknown package `nope`"), "{run}");
    let run = fixture.release(&["--bump", "0.0.1"], &[]);
    run.assert_code(3);
    assert!(
        run.stderr.contains("a release must increase the version"),
        "{run}"
    );
    assert_eq!(fixture.repository_state(), before);
}

/// Asserts what a finished release of the fixture left behind; returns the archive's bytes.
fn assert_released(fixture: &ReleaseFixture) -> Vec<u8> {
    // Versions and requirements, comments kept.
    let text = fixture.read("crates/text/Cargo.toml");
    assert!(text.contains("version = \"1.2.1\""), "{text}");
    assert!(
        text.contains("# the greeting itself\nbase = { path = \"../base\", version = \"0.2.0\", registry = \"fixture\" }"),
        "{text}"
    );
    assert!(
        fixture
            .read("crates/base/Cargo.toml")
            .contains("version = \"0.2.0\"")
    );
    let hello = fixture.read("apps/hello/Cargo.toml");
    assert!(
        hello.contains("version = \"0.3.1\"") && hello.contains("version = \"1.2.1\" }"),
        "{hello}"
    );
    assert!(
        fixture
            .read("crates/idle/Cargo.toml")
            .contains("version = \"0.5.0\"")
    );
    let lock = fixture.read("Cargo.lock");
    for (name, version) in [
        ("base", "0.2.0"),
        ("text", "1.2.1"),
        ("hello", "0.3.1"),
        ("idle", "0.5.0"),
    ] {
        assert!(
            lock.contains(&format!("name = \"{name}\"\nversion = \"{version}\"")),
            "{name} {version}:\n{lock}"
        );
    }
    // Changelogs.
    let changelog = fixture.read("crates/base/CHANGELOG.md");
    assert!(changelog.starts_with("# Changelog\n"), "{changelog}");
    assert!(
        changelog.contains("## [Unreleased]\n\n## [0.2.0] - 2024-04-25\n"),
        "{changelog}"
    );
    assert!(
        changelog.contains("- **Breaking:** **base:** a warmer greeting"),
        "{changelog}"
    );
    assert!(
        fixture
            .read("apps/hello/CHANGELOG.md")
            .contains("### Uncategorized\n\n- Greet everyone")
    );
    assert!(!fixture.path("crates/idle/CHANGELOG.md").exists());
    // One release commit on top of the history, holding exactly the planned files, and the tags.
    let log = fixture.git(&["log", "--format=%s", "HEAD~1..HEAD"]);
    assert_eq!(log.trim(), "release: base 0.2.0, text 1.2.1, hello 0.3.1");
    assert_eq!(
        fixture.git(&["log", "--format=%s", "-2"]).lines().nth(1),
        Some("docs(base): a README")
    );
    let changed = fixture.git(&["show", "--name-only", "--format=", "HEAD"]);
    let mut changed: Vec<&str> = changed.lines().collect();
    changed.sort();
    assert_eq!(
        changed,
        vec![
            "Cargo.lock",
            "apps/hello/CHANGELOG.md",
            "apps/hello/Cargo.toml",
            "crates/base/CHANGELOG.md",
            "crates/base/Cargo.toml",
            "crates/text/CHANGELOG.md",
            "crates/text/Cargo.toml",
        ]
    );
    let head = fixture.git(&["rev-parse", "HEAD"]);
    for tag in ["base-v0.2.0", "text-v1.2.1", "hello-v0.3.1"] {
        assert_eq!(
            fixture.git(&["rev-parse", &format!("{tag}^{{commit}}")]),
            head,
            "{tag}"
        );
        assert_eq!(
            fixture.git(&["cat-file", "-t", tag]).trim(),
            "tag",
            "{tag} is annotated"
        );
    }
    assert_eq!(fixture.git(&["tag", "--list"]).lines().count(), 7);
    assert_eq!(fixture.git(&["status", "--porcelain"]), "");

    // Artifacts: the checksums verify, the archive holds the release binary, the SBOM its closure.
    let dist = fixture.path("target/dist/0.3.1");
    let mut names: Vec<String> = fs::read_dir(&dist)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    let archive_name = names
        .iter()
        .find(|n| n.ends_with(".tar.gz"))
        .expect("an archive")
        .clone();
    assert!(archive_name.starts_with("hello-0.3.1-"), "{archive_name}");
    let mut check = Command::new(testkit::tool("sha256sum"));
    check.args(["-c", "SHA256SUMS"]).current_dir(&dist);
    let checked = run_ok(check);
    assert_eq!(checked.lines().count(), 2, "{checked}");
    assert!(checked.lines().all(|l| l.ends_with(": OK")), "{checked}");
    let archive = fs::read(dist.join(&archive_name)).unwrap();
    let mut list = Command::new(testkit::tool("tar"));
    list.args(["-tvzf", &archive_name, "--numeric-owner", "--full-time"])
        .current_dir(&dist);
    let listing = run_ok(list);
    let entries: Vec<Vec<&str>> = listing
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let paths: Vec<&str> = entries.iter().map(|e| e[e.len() - 1]).collect();
    assert_eq!(
        paths,
        vec![
            "hello-0.3.1/",
            "hello-0.3.1/CHANGELOG.md",
            "hello-0.3.1/README.md",
            "hello-0.3.1/hello"
        ]
    );
    for entry in &entries {
        assert_eq!(entry[1], "0/0", "numeric owner 0: {listing}");
        // The released commit's time (the last scripted commit): 2024-04-25 03:06:40 UTC.
        assert_eq!(entry[3], "2024-04-25", "{listing}");
    }
    assert!(
        entries[3][0] == "-rwxr-xr-x" && entries[1][0] == "-rw-r--r--",
        "{listing}"
    );
    let binary = fixture.path("target/release/hello");
    let output = run_ok(Command::new(&binary));
    assert_eq!(output, "hello there, everyone!\n");
    let sbom: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dist.join("hello-0.3.1.cdx.json")).unwrap())
            .unwrap();
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    assert_eq!(sbom["specVersion"], "1.5");
    assert_eq!(
        sbom["metadata"]["component"]["purl"],
        "pkg:cargo/hello@0.3.1"
    );
    let purls: Vec<&str> = sbom["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["purl"].as_str().unwrap())
        .collect();
    assert_eq!(purls, vec!["pkg:cargo/base@0.2.0", "pkg:cargo/text@1.2.1"]);
    archive
}

#[test]
fn execute_releases_and_two_runs_give_identical_archives() {
    let fixture = ReleaseFixture::new();
    let plan = fixture.release(&[], &[]);
    plan.assert_code(0);
    let run = fixture.release(&["--execute"], &[]);
    run.assert_code(0);
    assert_eq!(
        run.stdout, plan.stdout,
        "--execute applies exactly the printed plan"
    );
    let first = assert_released(&fixture);
    let first_commit = fixture.git(&["rev-parse", "HEAD"]);
    // Publishing: each publishable package once, in dependency order, as a dry run.
    assert_eq!(
        fixture.publish_calls(),
        vec![
            "publish -p base --dry-run",
            "publish -p text --dry-run -p base"
        ]
    );
    // A rerun has nothing left to do.
    let again = fixture.release(&["--execute"], &[]);
    again.assert_code(0);
    assert!(again.stdout.contains("Nothing to release"), "{again}");
    assert_eq!(fixture.publish_calls().len(), 2);

    // The same history released again from scratch (same path, fresh target and cache).
    fixture.create_workspace();
    fixture.release(&["--execute"], &[]).assert_code(0);
    let second = assert_released(&fixture);
    assert_eq!(fixture.git(&["rev-parse", "HEAD"]), first_commit);
    assert!(first == second, "the two runs' archives differ");
}

#[test]
fn push_sends_the_commit_and_tags_to_the_remote() {
    let fixture = ReleaseFixture::new();
    let origin = fixture.base.join("origin.git");
    run_ok({
        let mut c = Command::new(testkit::tool("git"));
        c.args(["init", "--quiet", "--bare"]).arg(&origin);
        c
    });
    fixture.git(&["remote", "add", "origin", &origin.display().to_string()]);
    fixture
        .release(
            &["--execute", "--push"],
            &[("XTASK_RELEASE_PUBLISH_DRY_RUN", "1")],
        )
        .assert_code(0);
    let mut command = Command::new(testkit::tool("git"));
    command
        .arg("--git-dir")
        .arg(&origin)
        .args(["for-each-ref", "--format=%(refname)"]);
    let refs = run_ok(command);
    assert_eq!(
        refs.lines().collect::<Vec<_>>(),
        vec![
            "refs/heads/main",
            "refs/tags/base-v0.2.0",
            "refs/tags/hello-v0.3.1",
            "refs/tags/text-v1.2.1"
        ]
    );
}

#[test]
fn refusals_change_nothing() {
    let fixture = ReleaseFixture::new();
    // Dirty tree.
    fixture.write("crates/base/notes.txt", "wip\n");
    let before = fixture.repository_state();
    let run = fixture.release(&["--execute"], &[]);
    run.assert_code(5);
    assert!(
        run.stderr
            .contains("uncommitted changes (crates/base/notes.txt)"),
        "{run}"
    );
    assert_eq!(fixture.repository_state(), before);
    fs::remove_file(fixture.path("crates/base/notes.txt")).unwrap();

    // Wrong branch.
    fixture.git(&["checkout", "--quiet", "-b", "feature"]);
    let before = fixture.repository_state();
    let run = fixture.release(&["--execute"], &[]);
    run.assert_code(5);
    assert!(
        run.stderr
            .contains("on branch `feature`, but releases are cut from `main`"),
        "{run}"
    );
    assert_eq!(fixture.repository_state(), before);
    fixture.git(&["checkout", "--quiet", "main"]);

    // Failing tests.
    fixture.edit(
        "crates/base/src/lib.rs",
        "\"hello there, ada\"",
        "\"goodbye, ada\"",
    );
    fixture.commit_all("test(base): expect a farewell", 5);
    let before = fixture.repository_state();
    let run = fixture.release(&["--execute"], &[]);
    run.assert_code(5);
    assert!(run.stderr.contains("`cargo xtask test` failed"), "{run}");
    assert_eq!(fixture.repository_state(), before);
    assert!(fixture.publish_calls().is_empty());
}

#[test]
fn an_interrupted_release_is_finished_by_a_rerun_without_duplicates() {
    let fixture = ReleaseFixture::new();
    let base = fixture.git(&["rev-parse", "HEAD"]);
    // 1. Crash after the files are written, before the commit.
    let run = fixture.release(&["--execute"], &[("XTASK_RELEASE_CRASH_AFTER", "files")]);
    assert_eq!(run.code, None, "killed by SIGABRT: {run}");
    assert_eq!(fixture.git(&["rev-parse", "HEAD"]), base);
    assert!(
        fixture
            .git(&["status", "--porcelain"])
            .contains("crates/base/Cargo.toml")
    );
    // 2. The rerun resumes (not refused for its own edits) and crashes after one publish.
    let run = fixture.release(
        &["--execute"],
        &[("XTASK_RELEASE_CRASH_AFTER", "publish:base")],
    );
    assert_eq!(run.code, None, "{run}");
    assert!(
        run.stderr.contains("an interrupted release is recorded"),
        "{run}"
    );
    assert_eq!(fixture.publish_calls(), vec!["publish -p base --dry-run"]);
    // The plan-only view shows what is done and changes nothing.
    let view = fixture.release(&[], &[]);
    view.assert_code(0);
    assert!(view.stdout.contains("Already done (from the state file): commit, tag:base-v0.2.0, tag:text-v1.2.1, tag:hello-v0.3.1, dist, publish:base"), "{view}");
    // 3. The rerun finishes: one commit, each tag once, each publish once.
    let run = fixture.release(&["--execute"], &[]);
    run.assert_code(0);
    assert!(run.stderr.contains("release complete"), "{run}");
    assert_eq!(
        fixture
            .git(&["rev-list", "--count", &format!("{}..HEAD", base.trim())])
            .trim(),
        "1"
    );
    assert_eq!(
        fixture.publish_calls(),
        vec![
            "publish -p base --dry-run",
            "publish -p text --dry-run -p base"
        ]
    );
    assert_released(&fixture);
    let state: serde_json::Value = serde_json::from_str(
        &fixture.read(&format!("target/release-state/{}.json", &base.trim()[..12])),
    )
    .unwrap();
    assert_eq!(state["complete"], true);
    let steps: Vec<&str> = state["done"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        vec![
            "commit",
            "tag:base-v0.2.0",
            "tag:text-v1.2.1",
            "tag:hello-v0.3.1",
            "dist",
            "publish:base",
            "publish:text"
        ]
    );
}

#[test]
fn a_crash_after_the_commit_but_before_its_record_is_recognised() {
    let fixture = ReleaseFixture::new();
    let base = fixture.git(&["rev-parse", "HEAD"]);
    fixture.release(&["--execute"], &[("XTASK_RELEASE_CRASH_AFTER", "commit")]);
    // Forget that the commit and nothing else was recorded, as if the crash came just before.
    let path = fixture.path(&format!("target/release-state/{}.json", &base.trim()[..12]));
    let mut state: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(state["done"].as_array().unwrap().len(), 1);
    state["done"] = serde_json::json!([]);
    state["release_commit"] = serde_json::Value::Null;
    fs::write(&path, serde_json::to_string(&state).unwrap()).unwrap();
    let run = fixture.release(&["--execute"], &[]);
    run.assert_code(0);
    assert!(run.stderr.contains("made by the interrupted run"), "{run}");
    assert_eq!(
        fixture
            .git(&["rev-list", "--count", &format!("{}..HEAD", base.trim())])
            .trim(),
        "1"
    );
    assert_released(&fixture);
}

// ---- images ------------------------------------------------------------------------------

impl ReleaseFixture {
    /// Makes `hello` an app and adds a second app, `bye` (never released before), both with
    /// `[package.metadata.xtask.app]`; with `registry`, the deploy section naming it; a bare
    /// `origin` for `--push`. Committed, so the tree is clean.
    fn add_apps(&self, registry: Option<&str>) {
        let hello = self.read("apps/hello/Cargo.toml");
        self.write(
            "apps/hello/Cargo.toml",
            &format!("{hello}\n[package.metadata.xtask.app]\nport = 8080\n"),
        );
        self.write(
            "apps/bye/Cargo.toml",
            "[package]\nname = \"bye\"\nversion = \"0.1.0\"\nedition.workspace = true\nlicense.workspace = true\npublish = false\n\n[package.metadata.xtask.app]\nport = 8081\n",
        );
        self.write(
            "apps/bye/src/main.rs",
            "//! Says goodbye.\n\nfn main() {\n    println!(\"bye\");\n}\n",
        );
        if let Some(registry) = registry {
            let root = self.read("Cargo.toml");
            self.write(
                "Cargo.toml",
                &format!(
                    "{root}\n[workspace.metadata.xtask.deploy]\nnamespace = \"fixture\"\nregistry = \"{registry}\"\ndomain = \"fixture.example.com\"\n"
                ),
            );
        }
        let mut lock = Command::new(self.base.join("tools/cargo"));
        lock.args(["metadata", "--offline", "--format-version", "1"])
            .current_dir(self.root())
            .stdout(Stdio::null());
        self.hermetic(&mut lock);
        run_ok(lock);
        self.commit_all("feat(hello): ship as a container", 5);
        let origin = self.base.join("origin.git");
        run_ok({
            let mut c = Command::new(testkit::tool("git"));
            c.args(["init", "--quiet", "--bare"]).arg(&origin);
            c
        });
        self.git(&["remote", "add", "origin", &origin.display().to_string()]);
    }

    fn state(&self) -> serde_json::Value {
        let dir = self.path("target/release-state");
        let files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        serde_json::from_str(&fs::read_to_string(&files[0]).unwrap()).unwrap()
    }
}

fn done_steps(state: &serde_json::Value) -> Vec<String> {
    state["done"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["step"].as_str().unwrap().to_string())
        .collect()
}

/// How many manifests the registry accepted (201) for `name:tag`: its access log's PUTs.
fn manifest_puts(registry: &testkit::servers::Server, name: &str, tag: &str) -> usize {
    let request = format!("\"PUT /v2/{name}/manifests/{tag} HTTP/1.1\" 201");
    registry
        .log()
        .lines()
        .filter(|l| l.contains(&request))
        .count()
}

/// `skopeo inspect` of `reference` in the loopback registry (`--config` for the image config).
fn skopeo_inspect(reference: &str, config: bool) -> serde_json::Value {
    let mut command = Command::new(testkit::tool("skopeo"));
    command.args(["inspect", "--tls-verify=false"]);
    if config {
        command.arg("--config");
    }
    command.arg(format!("docker://{reference}"));
    serde_json::from_str(&run_ok(command)).unwrap()
}

#[test]
fn images_are_pushed_once_across_crashes_and_the_state_records_their_digests() {
    let registry = testkit::servers::docker_registry();
    let prefix = format!("127.0.0.1:{}/team", registry.port);
    let fixture = ReleaseFixture::new();
    fixture.add_apps(Some(&prefix));
    // 1. Crash right after the first image push is recorded.
    let run = fixture.release(
        &["--execute", "--push"],
        &[("XTASK_RELEASE_CRASH_AFTER", "image-push:bye")],
    );
    assert_eq!(run.code, None, "killed by SIGABRT: {run}");
    assert!(
        run.stdout
            .contains(&format!("  image {prefix}/bye:0.1.0\n"))
            && run
                .stdout
                .contains(&format!("  image {prefix}/hello:0.3.1\n")),
        "{run}"
    );
    assert_eq!(manifest_puts(&registry, "team/bye", "0.1.0"), 1);
    assert_eq!(manifest_puts(&registry, "team/hello", "0.3.1"), 0);
    let state = fixture.state();
    assert_eq!(
        state["images"]["bye"]["pushed"],
        format!("{prefix}/bye:0.1.0")
    );
    assert!(state["images"]["hello"]["pushed"].is_null(), "{state:#}");
    // 2. The rerun skips the recorded push and crashes after pushing the second image, before
    //    recording it.
    let run = fixture.release(
        &["--execute"],
        &[(
            "XTASK_RELEASE_CRASH_AFTER",
            "before-record:image-push:hello",
        )],
    );
    assert_eq!(run.code, None, "{run}");
    assert_eq!(manifest_puts(&registry, "team/bye", "0.1.0"), 1);
    assert_eq!(manifest_puts(&registry, "team/hello", "0.3.1"), 1);
    let state = fixture.state();
    assert!(state["images"]["hello"]["pushed"].is_null(), "{state:#}");
    assert!(!done_steps(&state).contains(&"image-push:hello".to_string()));
    // 3. The last rerun finds the second image in the registry with its digest, pushes
    //    nothing, and finishes.
    let run = fixture.release(&["--execute"], &[]);
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("was already in the registry (pushed by the interrupted run)"),
        "{run}"
    );
    assert_eq!(manifest_puts(&registry, "team/bye", "0.1.0"), 1);
    assert_eq!(manifest_puts(&registry, "team/hello", "0.3.1"), 1);

    let state = fixture.state();
    assert_eq!(state["complete"], true);
    assert_eq!(
        done_steps(&state),
        vec![
            "commit",
            "tag:base-v0.2.0",
            "tag:bye-v0.1.0",
            "tag:text-v1.2.1",
            "tag:hello-v0.3.1",
            "dist",
            "image:bye",
            "image:hello",
            "publish:base",
            "publish:text",
            "image-push:bye",
            "image-push:hello",
            "push"
        ]
    );
    for (app, tag) in [("bye", "0.1.0"), ("hello", "0.3.1")] {
        let reference = format!("{prefix}/{app}:{tag}");
        let recorded = &state["images"][app];
        assert_eq!(recorded["pushed"], reference.as_str());
        assert_eq!(recorded["tag"], tag);
        let digest = recorded["digest"].as_str().unwrap();
        assert!(digest.starts_with("sha256:"), "{state:#}");
        // The registry holds the tag with the recorded digest, and the image runs as non-root.
        assert_eq!(skopeo_inspect(&reference, false)["Digest"], digest, "{app}");
        let config = skopeo_inspect(&reference, true);
        assert_eq!(config["config"]["User"], "65532:65532", "{app}");
        assert_eq!(config["config"]["Entrypoint"][0], format!("/app/{app}"));
        // The image record `deploy` reads says the same.
        let record: serde_json::Value =
            serde_json::from_str(&fixture.read(&format!("target/xtask/images/{app}.json")))
                .unwrap();
        assert_eq!(record["digest"], digest);
        assert_eq!(record["pushed"], true);
        assert_eq!(record["repository"], format!("{prefix}/{app}"));
    }
    // Nothing secret in the state file.
    let text = fs::read_to_string(
        fs::read_dir(fixture.path("target/release-state"))
            .unwrap()
            .flatten()
            .next()
            .unwrap()
            .path(),
    )
    .unwrap();
    assert!(!text.contains("PASSWORD") && !text.contains("Authorization"));
}

#[test]
fn an_unreachable_registry_fails_the_push_and_a_rerun_continues() {
    let port = testkit::servers::free_port();
    let prefix = format!("127.0.0.1:{port}/team");
    let fixture = ReleaseFixture::new();
    fixture.add_apps(Some(&prefix));
    let run = fixture.release(&["--execute", "--push"], &[]);
    run.assert_code(4);
    assert!(
        run.stderr.contains(&format!(
            "pushing the image of `bye` to `{prefix}/bye:0.1.0` failed (the registry is `registry` in `[workspace.metadata.xtask.deploy]`"
        )),
        "{run}"
    );
    let state = fixture.state();
    assert_eq!(state["complete"], false);
    assert_eq!(
        done_steps(&state).last().map(String::as_str),
        Some("publish:text"),
        "{state:#}"
    );
    assert!(state["images"]["bye"]["pushed"].is_null(), "{state:#}");
    assert!(
        state["images"]["bye"]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    // The registry comes up; the rerun pushes each image once and finishes.
    let registry = testkit::servers::docker_registry_on(port);
    let run = fixture.release(&["--execute"], &[]);
    run.assert_code(0);
    assert_eq!(manifest_puts(&registry, "team/bye", "0.1.0"), 1);
    assert_eq!(manifest_puts(&registry, "team/hello", "0.3.1"), 1);
    assert_eq!(fixture.state()["complete"], true);
}

#[test]
fn push_without_a_configured_registry_is_refused_naming_the_key() {
    let fixture = ReleaseFixture::new();
    fixture.add_apps(None);
    let before = fixture.repository_state();
    let run = fixture.release(&["--execute", "--push"], &[]);
    run.assert_code(3);
    assert!(
        run.stderr.contains(
            "--push ships the images of `bye`, `hello` but no registry is configured: set `registry` in `[workspace.metadata.xtask.deploy]`"
        ),
        "{run}"
    );
    assert_eq!(fixture.repository_state(), before);
    // Without --push the images are built, tagged and recorded, and nothing is pushed.
    let run = fixture.release(&["--execute"], &[]);
    run.assert_code(0);
    let state = fixture.state();
    assert!(done_steps(&state).contains(&"image:hello".to_string()));
    assert!(state["images"]["hello"]["pushed"].is_null());
    let index = fixture.read("target/xtask/images/hello/oci/index.json");
    assert!(
        index.contains("\"org.opencontainers.image.ref.name\":\"0.3.1\""),
        "{index}"
    );
}

#[test]
fn artifacts_builds_the_current_versions_and_changes_nothing() {
    let fixture = ReleaseFixture::new();
    fixture.add_apps(None);
    let head = fixture.git(&["rev-parse", "HEAD"]);
    let run = fixture.release(&["--artifacts"], &[]);
    run.assert_code(0);
    let host = std::env::consts::ARCH.to_string() + "-unknown-linux-gnu";
    let files: Vec<String> = run
        .stdout
        .lines()
        .map(|l| l.replace(&host, "HOST"))
        .collect();
    assert_eq!(
        files,
        vec![
            "target/dist/0.1.0/bye-0.1.0-HOST.tar.gz",
            "target/dist/0.1.0/bye-0.1.0.cdx.json",
            "target/dist/0.1.0/SHA256SUMS",
            "target/dist/0.3.0/hello-0.3.0-HOST.tar.gz",
            "target/dist/0.3.0/hello-0.3.0.cdx.json",
            "target/dist/0.3.0/SHA256SUMS",
            "target/xtask/images/bye/bye.tar",
            "target/xtask/images/hello/hello.tar",
        ],
        "{run}"
    );
    for file in run.stdout.lines() {
        assert!(fixture.path(file).is_file(), "{file}");
    }
    let mut check = Command::new(testkit::tool("sha256sum"));
    check
        .args(["-c", "SHA256SUMS"])
        .current_dir(fixture.path("target/dist/0.3.0"));
    assert_eq!(run_ok(check).lines().count(), 2);
    let mut inspect = Command::new(testkit::tool("skopeo"));
    inspect.args(["inspect", "--config"]).arg(format!(
        "docker-archive:{}",
        fixture
            .path("target/xtask/images/hello/hello.tar")
            .display()
    ));
    let config: serde_json::Value = serde_json::from_str(&run_ok(inspect)).unwrap();
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.version"],
        "0.3.0"
    );
    // No release was planned or cut.
    assert_eq!(fixture.git(&["rev-parse", "HEAD"]), head);
    assert_eq!(fixture.git(&["status", "--porcelain"]), "");
    assert!(!fixture.path("target/release-state").exists());
    fixture
        .release(&["--artifacts", "--execute"], &[])
        .assert_code(2);
}

//! End-to-end tests of `cargo xtask release` on the `release` fixture: a workspace of tiny
//! std-only crates given a scripted history of conventional commits in a temp dir, then the
//! real binary: the plan (snapshot), `--execute` (versions, requirements, Cargo.lock,
//! changelogs, commit, tags, `sha256sum -c`, byte-identical archives from two runs, SBOM),
//! `--push` to a bare repository, the refusals (tree unchanged), and interrupted executions that
//! a rerun finishes without a duplicate commit, tag or publish (`cargo publish --dry-run`
//! against a registry index on disk).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

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
        self.commit_all("feat(base)!: a warmer greeting", 1);
        self.edit(
            "crates/text/src/lib.rs",
            "format!(\"{}!\"",
            "format!(\"{}!\".trim()",
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

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            if entry.file_name() != "target" {
                copy_dir(&entry.path(), &target);
            }
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
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

//! The launcher against plain cargo on a workspace of its own: whenever the launcher says the
//! binary is fresh, `cargo build` of it must compile nothing, and after every change cargo
//! would rebuild for, the launcher must ask cargo.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use xtask_launch::{Launch, Prepared, Tool, is_fresh, prepare, stamp_path};

const TOOL: Tool<'static> = Tool {
    package: "tool",
    bin: "tool",
    profile: "tool",
};

/// A workspace with one binary package, `tool`, which prints its message.
struct Fixture {
    dir: tempfile::TempDir,
    env: Vec<(OsString, OsString)>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let fixture = Fixture {
            dir,
            // The fixture's own target directory, for the host.
            env: std::env::vars_os()
                .filter(|(name, _)| {
                    name.to_str().is_some_and(|name| {
                        name != "CARGO_TARGET_DIR" && !name.starts_with("CARGO_BUILD_")
                    })
                })
                .collect(),
        };
        fixture.write(
            "Cargo.toml",
            "[workspace]\nmembers = [\"tool\"]\nresolver = \"3\"\n\n\
             [profile.tool]\ninherits = \"dev\"\n",
        );
        fixture.write(
            "tool/Cargo.toml",
            "[package]\nname = \"tool\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
        );
        fixture.write(
            "tool/src/main.rs",
            "mod message;\nfn main() { println!(\"{}\", message::TEXT); }\n",
        );
        fixture.write("tool/src/message.rs", "pub const TEXT: &str = \"one\";\n");
        fixture
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, path: &str, text: &str) {
        let path = self.root().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn launch(&self) -> Launch {
        Launch {
            cargo: std::env::var_os("CARGO").map_or_else(|| "cargo".into(), PathBuf::from),
            root: self.root().to_path_buf(),
            bin: self.root().join("target/tool/tool"),
            cwd: self.root().to_path_buf(),
            cargo_home: std::env::var_os("CARGO_HOME").map(PathBuf::from),
            env: self.env.clone(),
        }
    }

    fn prepare(&self) -> Prepared {
        prepare(&self.launch(), TOOL).unwrap()
    }

    /// What the binary prints.
    fn run_tool(&self) -> String {
        let output = Command::new(self.root().join("target/tool/tool"))
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap()
    }

    /// Whether plain `cargo build` of the tool, with the same environment, compiles anything.
    fn cargo_compiles(&self) -> bool {
        let output = Command::new(self.launch().cargo)
            .args(["build", "--profile", "tool", "-p", "tool", "--bin", "tool"])
            .current_dir(self.root())
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stderr).contains("Compiling")
    }

    /// After a change: the launcher asks cargo (which rebuilds), then the next call is fresh
    /// and cargo agrees that it is.
    fn assert_rebuilt_after(&self, change: &str) {
        assert!(
            !is_fresh(&self.launch()),
            "the launcher called the binary fresh after {change}"
        );
        self.prepare_until_stamped(change);
        assert_eq!(self.prepare(), Prepared::Fresh, "after {change}");
        assert!(
            !self.cargo_compiles(),
            "the launcher called the binary fresh after {change}, but cargo compiles it"
        );
        assert_eq!(
            self.prepare(),
            Prepared::Fresh,
            "after {change} and cargo's no-op"
        );
    }

    /// Prepares until a stamp is written: an input changed less than the clock margin before
    /// the build leaves none, and the next call asks cargo again.
    fn prepare_until_stamped(&self, change: &str) {
        for _ in 0..20 {
            match self.prepare() {
                Prepared::Built => return,
                Prepared::BuiltUnstamped => {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Prepared::Fresh => panic!("fresh right after {change}"),
            }
        }
        panic!("no stamp written after {change}");
    }
}

#[test]
fn the_launcher_is_fresh_exactly_when_cargo_would_compile_nothing() {
    let fixture = Fixture::new();
    assert!(!stamp_path(&fixture.launch().bin).exists());
    fixture.prepare_until_stamped("the first build");
    assert_eq!(fixture.run_tool(), "one\n");
    assert_eq!(fixture.prepare(), Prepared::Fresh);
    assert!(!fixture.cargo_compiles());

    // A source file's same-size edit.
    fixture.write("tool/src/message.rs", "pub const TEXT: &str = \"two\";\n");
    fixture.assert_rebuilt_after("a same-size source edit");
    assert_eq!(fixture.run_tool(), "two\n");

    // A new build script, which the package's manifest does not name.
    fixture.write(
        "tool/build.rs",
        "fn main() { println!(\"cargo:rustc-env=FROM_BUILD=three\"); }\n",
    );
    fixture.assert_rebuilt_after("a new build script");
    fixture.write(
        "tool/src/message.rs",
        "pub const TEXT: &str = env!(\"FROM_BUILD\");\n",
    );
    fixture.assert_rebuilt_after("a source edit reading the build script's variable");
    assert_eq!(fixture.run_tool(), "three\n");

    // The package's manifest, the root manifest's profile, the lockfile.
    fixture.write(
        "tool/Cargo.toml",
        "[package]\nname = \"tool\"\nversion = \"0.2.0\"\nedition = \"2024\"\n",
    );
    fixture.assert_rebuilt_after("a package manifest edit");
    fixture.write(
        "Cargo.toml",
        "[workspace]\nmembers = [\"tool\"]\nresolver = \"3\"\n\n\
         [profile.tool]\ninherits = \"dev\"\nopt-level = 1\n",
    );
    fixture.assert_rebuilt_after("a profile change in the root manifest");

    // A new cargo configuration file where the user runs the alias.
    fixture.write(
        ".cargo/config.toml",
        "[build]\nrustflags = [\"--cfg\", \"x\"]\n",
    );
    fixture.assert_rebuilt_after("a new .cargo/config.toml");
}

#[test]
fn the_environment_cargo_reads_and_the_binary_itself_are_watched() {
    let mut fixture = Fixture::new();
    fixture.prepare_until_stamped("the first build");

    fixture
        .env
        .push(("RUSTFLAGS".into(), "--cfg launcher_test".into()));
    fixture.assert_rebuilt_after("RUSTFLAGS set");

    // A variable no build reads changes nothing.
    fixture.env.push(("RUST_BACKTRACE".into(), "full".into()));
    assert!(is_fresh(&fixture.launch()));

    // The binary deleted, or replaced by another build.
    std::fs::remove_file(fixture.launch().bin).unwrap();
    fixture.assert_rebuilt_after("the binary deleted");
    let bin = fixture.launch().bin;
    let copy = bin.with_extension("copy");
    std::fs::copy(&bin, &copy).unwrap();
    std::fs::rename(&copy, &bin).unwrap();
    assert!(
        !is_fresh(&fixture.launch()),
        "a replaced binary called fresh"
    );
}

#[test]
fn a_failed_build_exits_with_cargos_code_and_leaves_no_stamp() {
    let fixture = Fixture::new();
    fixture.write("tool/src/message.rs", "pub const TEXT: &str = 1;\n");
    let error = prepare(&fixture.launch(), TOOL).unwrap_err();
    assert_eq!(error.exit_code(), 101);
    assert!(!stamp_path(&fixture.launch().bin).exists());
}

#[test]
fn a_binary_that_cannot_start_is_an_environment_error_naming_it() {
    let fixture = Fixture::new();
    let launch = fixture.launch();
    let error = xtask_launch::exec(&launch, Vec::new()).unwrap_err();
    assert_eq!(error.exit_code(), xtask_launch::EXIT_ENVIRONMENT);
    let xtask_launch::LaunchError::Environment(message) = error else {
        panic!("not an environment error: {error:?}");
    };
    assert!(message.contains("target/tool/tool"), "{message}");
}

#[test]
fn no_stamp_is_written_when_an_input_changed_after_the_build_started() {
    let fixture = Fixture::new();
    fixture.prepare_until_stamped("the first build");
    let launch = fixture.launch();
    std::fs::remove_file(stamp_path(&launch.bin)).unwrap();
    // A build that started an hour ago: every source was written after it.
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    assert!(!xtask_launch::write_stamp(&launch, long_ago).unwrap());
    assert!(!stamp_path(&launch.bin).exists());
    // One that started now: every input is older.
    let now = std::time::SystemTime::now() + std::time::Duration::from_millis(200);
    assert!(xtask_launch::write_stamp(&launch, now).unwrap());
    assert!(is_fresh(&launch));
}

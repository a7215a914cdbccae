//! The first step of `cargo xtask`: start the tool's binary at once when nothing it is built from
//! changed since cargo last built it, else have cargo build it first.
//!
//! The alias was `cargo run --profile tool --package xtask`: before every command cargo loaded the
//! workspace and then checked the freshness of the tool's whole dependency closure (about 150
//! units), which cost about as much as a `cargo build` no-op of the workspace. The alias now runs
//! this package, which has no dependencies, so cargo's part is the workspace's load and one unit.
//!
//! This package then decides as cargo would, from a stamp it writes right after cargo built (or
//! found fresh) the tool's binary: the binary is started at once only when every path the stamp
//! names is in the same state (size, modification and change times, inode, mode), and the
//! environment cargo and the build scripts read is the same. The paths: the binary, every source
//! file its dep-info lists (cargo lists the workspace's packages' sources
//! and the files build scripts asked to be watched), every `Cargo.toml` and `build.rs` (present or
//! absent) of those packages, the root manifest and lockfile, the toolchain's `cargo` and `rustc`,
//! and the cargo configuration files cargo would read from the current directory. Anything else
//! (no stamp, an unreadable one, any difference) runs `cargo build` of the tool first, so cargo
//! decides what to rebuild exactly as the old alias did, and stamps again. A stamp is only written
//! when no input changed while cargo was building: an edit during the build leaves no stamp, and
//! the next call asks cargo again.
//!
//! The stamp holds paths, environment variable names and one 64-bit fingerprint: no value of any
//! environment variable (a token in `CARGO_REGISTRIES_*_TOKEN` never reaches a file).

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::hash::{DefaultHasher, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// Which binary the alias starts: package, binary target and cargo profile.
#[derive(Debug, Clone, Copy)]
pub struct Tool<'a> {
    pub package: &'a str,
    pub bin: &'a str,
    pub profile: &'a str,
}

/// This workspace's tool: `cargo build --profile tool --package xtask --bin xtask`.
pub const TOOL: Tool<'static> = Tool {
    package: "xtask",
    bin: "xtask",
    profile: "tool",
};

/// Exit code when the tool cannot be started (its binary missing after cargo's build, or `exec`
/// failing): the tool's own "the environment failed".
pub const EXIT_ENVIRONMENT: i32 = 4;

/// Everything one launch reads from its process: kept apart so that tests can give their own.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The cargo that runs the alias (`$CARGO`).
    pub cargo: PathBuf,
    /// The workspace root (the directory of `Cargo.lock`).
    pub root: PathBuf,
    /// The tool's binary: `target/<profile>/<bin>`.
    pub bin: PathBuf,
    /// The directory the user ran `cargo xtask` in (cargo reads configuration from it upwards).
    pub cwd: PathBuf,
    /// `$CARGO_HOME`, for its `config.toml`.
    pub cargo_home: Option<PathBuf>,
    /// The environment cargo gets.
    pub env: Vec<(OsString, OsString)>,
}

/// What [`prepare`] did before the binary could start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prepared {
    /// The stamp matched: cargo was not asked.
    Fresh,
    /// Cargo built (or found fresh) the binary, and a stamp was written.
    Built,
    /// Cargo built (or found fresh) the binary, but no stamp was written (an input changed while
    /// cargo was building, or the stamp could not be written): the next call asks cargo again.
    BuiltUnstamped,
}

/// Why the binary cannot start.
#[derive(Debug)]
pub enum LaunchError {
    /// Cargo's build failed (its own messages are on stderr); the exit code to leave with.
    Build(i32),
    /// Cargo could not be run, or the binary is missing after its build.
    Environment(String),
}

impl LaunchError {
    pub fn exit_code(&self) -> i32 {
        match self {
            LaunchError::Build(code) => *code,
            LaunchError::Environment(_) => EXIT_ENVIRONMENT,
        }
    }
}

/// Margin under the build's start time that every input must be older than for a stamp to be
/// written: file systems stamp times from a coarse clock (one scheduler tick), which can read a
/// little earlier than the clock the start time was taken from.
const CLOCK_MARGIN: Duration = Duration::from_millis(100);

/// The first line of a stamp; a stamp of another format is not read.
const STAMP_HEADER: &str = "xtask-launch stamp 1";

/// Makes sure `launch.bin` is what `cargo build` of `tool` would give now.
pub fn prepare(launch: &Launch, tool: Tool) -> Result<Prepared, LaunchError> {
    if is_fresh(launch) {
        return Ok(Prepared::Fresh);
    }
    let started = SystemTime::now();
    build(launch, tool)?;
    if !launch.bin.is_file() {
        return Err(LaunchError::Environment(format!(
            "cargo built `{}` but {} is not there",
            tool.package,
            launch.bin.display()
        )));
    }
    Ok(match write_stamp(launch, started) {
        Ok(true) => Prepared::Built,
        Ok(false) | Err(_) => Prepared::BuiltUnstamped,
    })
}

/// Runs `cargo build --profile P --package X --bin B` with the launch's environment, its
/// messages on the user's terminal.
fn build(launch: &Launch, tool: Tool) -> Result<(), LaunchError> {
    let status = Command::new(&launch.cargo)
        .args([
            "build",
            "--profile",
            tool.profile,
            "--package",
            tool.package,
        ])
        .args(["--bin", tool.bin])
        .current_dir(&launch.cwd)
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .status()
        .map_err(|e| {
            LaunchError::Environment(format!("could not run {}: {e}", launch.cargo.display()))
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(LaunchError::Build(status.code().unwrap_or(101)))
    }
}

/// Where the stamp of `bin` lives: beside it.
pub fn stamp_path(bin: &Path) -> PathBuf {
    let mut name = bin.file_name().unwrap_or_default().to_os_string();
    name.push(".launch-stamp");
    bin.with_file_name(name)
}

/// A stamp's content: the watched paths, the extra environment variables, the fingerprint.
#[derive(Debug, Default, PartialEq, Eq)]
struct Stamp {
    fingerprint: u64,
    env_names: BTreeSet<String>,
    paths: Vec<PathBuf>,
}

impl Stamp {
    fn render(&self) -> Option<String> {
        let mut text = format!("{STAMP_HEADER}\nfingerprint {:016x}\n", self.fingerprint);
        for name in &self.env_names {
            text.push_str(&format!("env {name}\n"));
        }
        for path in &self.paths {
            let path = path.to_str()?;
            if path.contains('\n') {
                return None;
            }
            text.push_str(&format!("path {path}\n"));
        }
        Some(text)
    }

    fn parse(text: &str) -> Option<Stamp> {
        let mut lines = text.lines();
        if lines.next()? != STAMP_HEADER {
            return None;
        }
        let fingerprint = lines.next()?.strip_prefix("fingerprint ")?;
        let mut stamp = Stamp {
            fingerprint: u64::from_str_radix(fingerprint, 16).ok()?,
            ..Stamp::default()
        };
        for line in lines {
            if let Some(name) = line.strip_prefix("env ") {
                stamp.env_names.insert(name.to_owned());
            } else if let Some(path) = line.strip_prefix("path ") {
                stamp.paths.push(PathBuf::from(path));
            } else {
                return None;
            }
        }
        Some(stamp)
    }
}

/// Whether the stamp beside the binary matches the current state of everything it names.
pub fn is_fresh(launch: &Launch) -> bool {
    let Ok(text) = std::fs::read_to_string(stamp_path(&launch.bin)) else {
        return false;
    };
    let Some(stamp) = Stamp::parse(&text) else {
        return false;
    };
    // The binary must be one of the paths: a stamp naming other paths is not this binary's.
    if !stamp.paths.iter().any(|path| path == &launch.bin) {
        return false;
    }
    fingerprint(launch, &stamp.paths, &stamp.env_names) == stamp.fingerprint
}

/// Writes the stamp after a successful build that started at `started`. `Ok(false)`: not
/// written, because an input is not older than the build (it may have changed while cargo read
/// it) or a path cannot be written in a stamp.
pub fn write_stamp(launch: &Launch, started: SystemTime) -> io::Result<bool> {
    let dep_info = launch.bin.with_extension("d");
    let sources = dep_info_paths(&std::fs::read_to_string(&dep_info)?, &launch.bin);
    let inputs = inputs_around(&sources, &launch.root);
    // The dep-info itself is not watched: cargo rewrites it on a no-op build after a rebuild.
    let mut paths = vec![launch.bin.clone()];
    paths.extend(toolchain_binaries(&launch.cargo));
    paths.extend(inputs.iter().cloned());
    let env_names = build_script_env_names(launch.bin.parent().unwrap_or(Path::new(".")));
    let stamp = Stamp {
        fingerprint: fingerprint(launch, &paths, &env_names),
        env_names,
        paths,
    };
    // Checked after the fingerprint's stats: an input changed since the build started, before
    // or while they were taken, leaves no stamp; one changed after them differs next time.
    let threshold = started.checked_sub(CLOCK_MARGIN).unwrap_or(started);
    let configs = config_files(&launch.cwd, launch.cargo_home.as_deref());
    if inputs
        .iter()
        .chain(&configs)
        .any(|path| !is_older_than(path, threshold))
    {
        return Ok(false);
    }
    let Some(text) = stamp.render() else {
        return Ok(false);
    };
    let path = stamp_path(&launch.bin);
    let temp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&temp, text)?;
    std::fs::rename(&temp, &path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })?;
    Ok(true)
}

/// Whether both the modification and the change time of `path` are before `threshold` (a path
/// that does not exist is: its absence is what the stamp records).
fn is_older_than(path: &Path, threshold: SystemTime) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return true;
    };
    let modified = meta.modified().is_ok_and(|time| time < threshold);
    modified && changed_before(&meta, threshold)
}

#[cfg(unix)]
fn changed_before(meta: &std::fs::Metadata, threshold: SystemTime) -> bool {
    use std::os::unix::fs::MetadataExt;
    let changed = Duration::new(
        u64::try_from(meta.ctime()).unwrap_or(0),
        u32::try_from(meta.ctime_nsec()).unwrap_or(0),
    );
    SystemTime::UNIX_EPOCH + changed < threshold
}

#[cfg(not(unix))]
fn changed_before(_meta: &std::fs::Metadata, _threshold: SystemTime) -> bool {
    true
}

/// The files of a cargo dep-info file (`target: dep dep ...`, spaces in paths escaped as `\ `),
/// the target itself left out.
fn dep_info_paths(text: &str, target: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for line in text.lines() {
        let mut current = String::new();
        let mut chars = line.chars().peekable();
        let mut words = Vec::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars
                    .peek()
                    .is_some_and(|next| *next == ' ' || *next == '\\') =>
                {
                    current.extend(chars.next());
                }
                ' ' => words.push(std::mem::take(&mut current)),
                _ => current.push(c),
            }
        }
        words.push(current);
        for word in words {
            let word = word.strip_suffix(':').unwrap_or(&word);
            if !word.is_empty() && Path::new(word) != target {
                paths.push(PathBuf::from(word));
            }
        }
    }
    paths.sort();
    paths.dedup();
    paths
}

/// The inputs a build of the tool reads besides the dep-info's sources: each source's package
/// manifest and build script (present or absent), the root manifest and lockfile.
fn inputs_around(sources: &[PathBuf], root: &Path) -> Vec<PathBuf> {
    let mut packages = BTreeSet::new();
    for source in sources {
        let package = source
            .ancestors()
            .skip(1)
            .take_while(|dir| dir.starts_with(root))
            .find(|dir| dir.join("Cargo.toml").is_file());
        packages.extend(package.map(Path::to_path_buf));
    }
    packages.insert(root.to_path_buf());
    let mut inputs = sources.to_vec();
    for package in packages {
        inputs.push(package.join("Cargo.toml"));
        inputs.push(package.join("build.rs"));
    }
    inputs.push(root.join("Cargo.lock"));
    inputs.sort();
    inputs.dedup();
    inputs
}

/// The toolchain's `cargo`, and the `rustc` beside it: `rustup update` replaces both.
fn toolchain_binaries(cargo: &Path) -> Vec<PathBuf> {
    let rustc = cargo.with_file_name(format!("rustc{}", std::env::consts::EXE_SUFFIX));
    vec![cargo.to_path_buf(), rustc]
}

/// The cargo configuration files cargo reads from `cwd` (every ancestor's `.cargo/config` and
/// `.cargo/config.toml`, then `$CARGO_HOME`'s), those that exist.
fn config_files(cwd: &Path, cargo_home: Option<&Path>) -> Vec<PathBuf> {
    let dirs = cwd.ancestors().map(|dir| dir.join(".cargo"));
    dirs.chain(cargo_home.map(Path::to_path_buf))
        .flat_map(|dir| [dir.join("config"), dir.join("config.toml")])
        .filter(|path| path.is_file())
        .collect()
}

/// The environment variables build scripts of the tool's build asked cargo to watch
/// (`cargo:rerun-if-env-changed=NAME` in `<profile dir>/build/*/output`).
fn build_script_env_names(profile_dir: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let Ok(scripts) = std::fs::read_dir(profile_dir.join("build")) else {
        return names;
    };
    for script in scripts.flatten() {
        let Ok(output) = std::fs::read_to_string(script.path().join("output")) else {
            continue;
        };
        for line in output.lines() {
            let name = line
                .strip_prefix("cargo:rerun-if-env-changed=")
                .or_else(|| line.strip_prefix("cargo::rerun-if-env-changed="));
            names.extend(name.map(str::to_owned));
        }
    }
    names
}

/// Whether cargo, rustc or a build script may read the variable `name` (every `CARGO*` and
/// `RUST*` variable but a few only read at run time, and the C toolchain's: compilers, flags,
/// `pkg-config`).
fn is_build_env(name: &str) -> bool {
    const RUN_TIME: [&str; 5] = [
        "RUST_BACKTRACE",
        "RUST_LIB_BACKTRACE",
        "RUST_LOG",
        "RUST_MIN_STACK",
        "RUST_RECURSION_COUNT",
    ];
    const C_TOOLCHAIN: [&str; 11] = [
        "CC",
        "CXX",
        "CFLAGS",
        "CXXFLAGS",
        "CPPFLAGS",
        "AR",
        "LDFLAGS",
        "PKG_CONFIG",
        "TARGET_",
        "HOST_",
        "CRATE_CC",
    ];
    if RUN_TIME.contains(&name) || name.starts_with("CARGO_TERM_") {
        return false;
    }
    name.starts_with("CARGO") || name.starts_with("RUST") || {
        C_TOOLCHAIN.iter().any(|prefix| name.starts_with(prefix))
    }
}

/// One number for the state of `paths`, of the configuration files, and of the environment
/// cargo and the build scripts read (`env_names` beside [`is_build_env`]'s).
fn fingerprint(launch: &Launch, paths: &[PathBuf], env_names: &BTreeSet<String>) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(STAMP_HEADER.as_bytes());
    for path in paths {
        hash_path_state(&mut hasher, path);
    }
    hasher.write_u8(0xff);
    for path in config_files(&launch.cwd, launch.cargo_home.as_deref()) {
        hash_path_state(&mut hasher, &path);
    }
    hasher.write_u8(0xff);
    let mut env: Vec<(&OsStr, &OsStr)> = launch
        .env
        .iter()
        .filter(|(name, _)| {
            name.to_str()
                .is_some_and(|name| is_build_env(name) || env_names.contains(name))
        })
        .map(|(name, value)| (name.as_os_str(), value.as_os_str()))
        .collect();
    env.sort();
    for (name, value) in env {
        hasher.write(name.as_encoded_bytes());
        hasher.write_u8(b'=');
        hasher.write(value.as_encoded_bytes());
        hasher.write_u8(0);
    }
    hasher.finish()
}

/// Hashes the path and its state: absent, or size, times, inode and mode.
fn hash_path_state(hasher: &mut DefaultHasher, path: &Path) {
    hasher.write(path.as_os_str().as_encoded_bytes());
    hasher.write_u8(0);
    match std::fs::metadata(path) {
        Err(_) => hasher.write_u8(0),
        Ok(meta) => {
            hasher.write_u8(1);
            hasher.write_u64(meta.len());
            hash_times(hasher, &meta);
        }
    }
}

#[cfg(unix)]
fn hash_times(hasher: &mut DefaultHasher, meta: &std::fs::Metadata) {
    use std::os::unix::fs::MetadataExt;
    for value in [
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
    ] {
        hasher.write_i64(value);
    }
    hasher.write_u64(meta.ino());
    hasher.write_u64(meta.dev());
    hasher.write_u32(meta.mode());
}

#[cfg(not(unix))]
fn hash_times(hasher: &mut DefaultHasher, meta: &std::fs::Metadata) {
    let modified = meta
        .modified()
        .ok()
        .and_then(|time| time.duration_since(SystemTime::UNIX_EPOCH).ok());
    hasher.write_u128(modified.map_or(0, |since| since.as_nanos()));
}

/// The launch of this process: `$CARGO`, the workspace of `$CARGO_MANIFEST_DIR` (cargo sets
/// both for `cargo run`), the tool's binary beside this one.
pub fn from_process(tool: Tool) -> Result<Launch, LaunchError> {
    let exe = std::env::current_exe()
        .map_err(|e| LaunchError::Environment(format!("cannot find the launcher's path: {e}")))?;
    let bin = exe.with_file_name(format!("{}{}", tool.bin, std::env::consts::EXE_SUFFIX));
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let root = manifest_dir
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .unwrap_or(&manifest_dir)
        .to_path_buf();
    let cwd = std::env::current_dir()
        .map_err(|e| LaunchError::Environment(format!("cannot read the current directory: {e}")))?;
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")));
    Ok(Launch {
        cargo: std::env::var_os("CARGO").map_or_else(|| "cargo".into(), PathBuf::from),
        root,
        bin,
        cwd,
        cargo_home,
        env: std::env::vars_os()
            .filter(|(name, _)| !name.to_str().is_some_and(is_set_by_cargo_run))
            .collect(),
    })
}

/// The variables `cargo run` sets for the package it runs (this launcher), which describe it
/// and not the user's environment. They are not passed on: build scripts watch some of them
/// (`ring`'s `rerun-if-env-changed=CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`), so a build with
/// them and one without (the user's own `cargo build`) would rebuild each other's units.
fn is_set_by_cargo_run(name: &str) -> bool {
    matches!(
        name,
        "CARGO_MANIFEST_DIR"
            | "CARGO_MANIFEST_PATH"
            | "CARGO_CRATE_NAME"
            | "CARGO_BIN_NAME"
            | "CARGO_PRIMARY_PACKAGE"
    ) || name.starts_with("CARGO_PKG_")
}

/// Replaces this process with the tool's binary, given `args` and the launch's environment (on
/// Unix; elsewhere runs it and returns its exit code). Returns on Unix only when the binary
/// cannot be started.
pub fn exec(launch: &Launch, args: impl IntoIterator<Item = OsString>) -> Result<i32, LaunchError> {
    let mut command = Command::new(&launch.bin);
    command
        .args(args)
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k, v)));
    let cannot_start = |error: io::Error| {
        LaunchError::Environment(format!("could not start {}: {error}", launch.bin.display()))
    };
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        Err(cannot_start(command.exec()))
    }
    #[cfg(not(unix))]
    {
        let status = command.status().map_err(cannot_start)?;
        Ok(status.code().unwrap_or(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep_info_paths_unescape_spaces_and_leave_the_target_out() {
        let text = "/w/target/tool/xtask: /w/a.rs /w/my\\ dir/b.rs /w/a.rs\n\n/w/a.rs:\n";
        let paths = dep_info_paths(text, Path::new("/w/target/tool/xtask"));
        assert_eq!(
            paths,
            [PathBuf::from("/w/a.rs"), PathBuf::from("/w/my dir/b.rs")]
        );
    }

    #[test]
    fn a_stamp_reads_back_and_other_text_is_no_stamp() {
        let stamp = Stamp {
            fingerprint: 0x0123_4567_89ab_cdef,
            env_names: ["CC".to_owned()].into(),
            paths: vec![PathBuf::from("/w/a.rs"), PathBuf::from("/w/b c.rs")],
        };
        let text = stamp.render().unwrap();
        assert_eq!(Stamp::parse(&text), Some(stamp));
        assert_eq!(Stamp::parse("xtask-launch stamp 0\nfingerprint 1\n"), None);
        assert_eq!(Stamp::parse(&format!("{text}other line\n")), None);
        let newline = Stamp {
            paths: vec![PathBuf::from("/w/a\nb.rs")],
            ..Stamp::default()
        };
        assert_eq!(newline.render(), None);
    }

    #[test]
    fn what_cargo_run_sets_for_the_launcher_is_not_passed_on() {
        for name in [
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_PRE",
        ] {
            assert!(is_set_by_cargo_run(name), "{name}");
        }
        for name in ["CARGO", "CARGO_HOME", "CARGO_TARGET_DIR", "RUSTFLAGS"] {
            assert!(!is_set_by_cargo_run(name), "{name}");
        }
    }

    #[test]
    fn build_env_is_cargo_rust_and_the_c_toolchain_but_not_run_time_settings() {
        for name in [
            "RUSTFLAGS",
            "CARGO_PROFILE_TOOL_OPT_LEVEL",
            "RUSTUP_TOOLCHAIN",
            "CC",
        ] {
            assert!(is_build_env(name), "{name}");
        }
        for name in [
            "RUST_BACKTRACE",
            "RUST_RECURSION_COUNT",
            "CARGO_TERM_COLOR",
            "HOME",
        ] {
            assert!(!is_build_env(name), "{name}");
        }
    }

    #[test]
    fn an_input_changed_after_the_build_started_is_not_older() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.rs");
        std::fs::write(&file, "x").unwrap();
        let long_ago = SystemTime::now() - Duration::from_secs(3600);
        assert!(!is_older_than(&file, long_ago));
        assert!(is_older_than(
            &file,
            SystemTime::now() + Duration::from_secs(1)
        ));
        assert!(is_older_than(&dir.path().join("missing.rs"), long_ago));
    }
}

//! What cargo's tools were seen to read: rustc's dep-info files (`*.d`: every source file,
//! `include_*!` targets anywhere, and `# env-dep:` lines for `env!` / `option_env!`), each
//! build script's `rerun-if-changed` / `rerun-if-env-changed` lines, and, for tests, the
//! env vars and paths named by string literals in the test sources (what a test reads at run
//! time leaves no dep-info). Turned into [`ObservedInputs`] per package after a cargo batch.
//!
//! Not recorded: files under the target directory (outputs of units whose own inputs are
//! recorded), under `$CARGO_HOME` (registry and git checkouts, pinned by `Cargo.lock`
//! checksums) and `$RUSTUP_HOME` (the toolchain, pinned by `rustc -vV`), and the env vars
//! cargo itself sets for rustc (`CARGO_PKG_*`, `OUT_DIR`, a build script's `rustc-env`, ...),
//! which follow from the manifest and the recorded build script inputs.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use xtask_hash::{ObservedInputs, env_value_digest, observed_digest, portable_path};

/// Raw observations for one package, before digesting.
#[derive(Debug, Default, Clone)]
pub struct Observation {
    /// Absolute paths read.
    pub files: BTreeSet<PathBuf>,
    /// Env vars read (names).
    pub env: BTreeSet<String>,
    /// Env vars cargo set for rustc from a build script's `rustc-env` (not the user's).
    pub cargo_set_env: BTreeSet<String>,
}

/// Paths that are never recorded (see the module docs).
#[derive(Debug, Clone)]
pub struct Exclusions {
    pub prefixes: Vec<PathBuf>,
}

impl Exclusions {
    pub fn new(target_dir: &Path) -> Exclusions {
        let mut prefixes = vec![target_dir.to_path_buf()];
        prefixes.extend(
            crate::fast::cargo_home()
                .into_iter()
                .chain(crate::fast::rustup_home()),
        );
        // Remapped standard library paths and the like.
        prefixes.push(PathBuf::from("/rustc"));
        Exclusions { prefixes }
    }

    fn excluded(&self, path: &Path) -> bool {
        self.prefixes.iter().any(|p| path.starts_with(p))
    }
}

/// The earliest time a change made while a task ran can carry (see
/// [`RunStart::changed_since`]).
#[derive(Debug, Clone, Copy)]
pub struct RunStart(pub SystemTime);

/// File-system timestamps come from the kernel's coarse clock, which may lag the precise clock
/// `SystemTime::now()` reads by a tick: a write just after the start can be stamped just before.
const COARSE_CLOCK_SLACK: std::time::Duration = std::time::Duration::from_millis(20);

impl RunStart {
    /// Now, as the file system's clock reads it: `marker` written afresh, its mtime. A later
    /// write carries that time or a later one, an earlier write that time at most (the same
    /// tick counts as during the run). Without the marker, [`RunStart::by_system_clock`].
    ///
    /// Reading the system clock instead needs [`COARSE_CLOCK_SLACK`] before it, and an input
    /// edited in the 20 ms before a run (a script's edit, then the build) then counted as
    /// changed during it: its result was not stored.
    pub fn by_file_system(marker: &Path) -> RunStart {
        let Some(nanos) = xtask_hash::file_system_clock(marker) else {
            return RunStart::by_system_clock();
        };
        let _ = std::fs::remove_file(marker);
        let at = u64::try_from(nanos).ok().and_then(|nanos| {
            SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::from_nanos(nanos))
        });
        at.map_or_else(RunStart::by_system_clock, RunStart)
    }

    /// Now by the system clock, less [`COARSE_CLOCK_SLACK`].
    pub fn by_system_clock() -> RunStart {
        let now = SystemTime::now();
        RunStart(now.checked_sub(COARSE_CLOCK_SLACK).unwrap_or(now))
    }

    /// Whether the file of `metadata` changed between the start and now. On Unix this is its
    /// ctime, which every write sets to the current time and no one can set: the mtime can be
    /// set to any time (`cp -p`, `tar x`, `touch -d`), so one put back with an old mtime during
    /// the run would look untouched. A time after now (a file dated in the future: written
    /// before the clock was set back, or extracted from a machine whose clock ran ahead) was
    /// not set by a write during the run, which would carry the current time; counting it
    /// would make every result of such a tree uncacheable (seen on coreutils).
    pub fn changed_since(self, metadata: &std::fs::Metadata) -> bool {
        changed_at(metadata).is_some_and(|at| self.covers(at, SystemTime::now()))
    }

    /// Whether a change at `at` falls between the start and `now` (now read from the precise
    /// clock, so within the coarse clock's slack after it).
    fn covers(self, at: SystemTime, now: SystemTime) -> bool {
        let end = now.checked_add(COARSE_CLOCK_SLACK).unwrap_or(now);
        self.0 <= at && at <= end
    }
}

#[cfg(unix)]
fn changed_at(metadata: &std::fs::Metadata) -> Option<SystemTime> {
    use std::os::unix::fs::MetadataExt;
    let seconds = u64::try_from(metadata.ctime()).ok()?;
    let nanos = u32::try_from(metadata.ctime_nsec()).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::new(seconds, nanos))
}

#[cfg(not(unix))]
fn changed_at(metadata: &std::fs::Metadata) -> Option<SystemTime> {
    metadata.modified().ok()
}

/// Digests an observation: the files (portable paths), the user's env vars.
///
/// Returns the observed inputs and the files that changed after `started` (a result built
/// from them must not be stored).
pub fn digest_observation(
    workspace_root: &Path,
    observation: &Observation,
    exclusions: &Exclusions,
    started: RunStart,
) -> (ObservedInputs, Vec<String>) {
    let mut files = FileDigests::default();
    digest_observation_with(workspace_root, observation, exclusions, started, &mut files)
}

/// Observed files digested once per batch: a stored task takes its closure's observations,
/// so a dependency's files are asked for by each of its stored dependents, and one file can
/// be named by several packages (a shared `include_str!` target, a `rerun-if-changed` path,
/// a fixture the tests name); each is read, hashed and checked for a change during the run
/// once.
#[derive(Debug, Default)]
pub struct FileDigests(HashMap<PathBuf, Option<DigestedFile>>);

/// One observed file: its portable path, [`observed_digest`], and whether it changed while
/// the run went on.
#[derive(Debug)]
struct DigestedFile {
    portable: String,
    digest: String,
    changed: bool,
}

impl FileDigests {
    /// `file` digested (once), or `None` when it is never recorded (see [`Exclusions`]).
    fn digest(
        &mut self,
        workspace_root: &Path,
        file: &Path,
        exclusions: &Exclusions,
        started: RunStart,
    ) -> Option<&DigestedFile> {
        self.0
            .entry(file.to_path_buf())
            .or_insert_with(|| {
                let file = xtask_hash::normalize(file);
                if exclusions.excluded(&file) {
                    return None;
                }
                let changed = std::fs::metadata(&file)
                    .is_ok_and(|metadata| metadata.is_file() && started.changed_since(&metadata));
                Some(DigestedFile {
                    portable: portable_path(workspace_root, &file),
                    digest: observed_digest(&file),
                    changed,
                })
            })
            .as_ref()
    }
}

/// [`digest_observation`], with the files digested through `files`.
pub fn digest_observation_with(
    workspace_root: &Path,
    observation: &Observation,
    exclusions: &Exclusions,
    started: RunStart,
    files: &mut FileDigests,
) -> (ObservedInputs, Vec<String>) {
    let mut observed = ObservedInputs::default();
    let mut changed = Vec::new();
    for file in &observation.files {
        let Some(digested) = files.digest(workspace_root, file, exclusions, started) else {
            continue;
        };
        if digested.changed {
            changed.push(digested.portable.clone());
        }
        observed
            .files
            .insert(digested.portable.clone(), digested.digest.clone());
    }
    for name in &observation.env {
        if is_cargo_set_env(name) || observation.cargo_set_env.contains(name) {
            continue;
        }
        observed.env.insert(
            name.clone(),
            std::env::var(name).ok().map(|v| env_value_digest(&v)),
        );
    }
    (observed, changed)
}

/// Env vars a test may read whose values describe the machine or the invocation, not the
/// code under test: passed through to tests but never observed, as Turborepo passes them
/// (`cargo xtask` and the binary itself, CI and a laptop, differ in them; keying tests on
/// them would share nothing). A test whose verdict depends on one should declare it in
/// `env`.
fn is_pass_through_env(name: &str) -> bool {
    matches!(
        name,
        "PATH"
            | "HOME"
            | "USER"
            | "LOGNAME"
            | "SHELL"
            | "TMPDIR"
            | "TERM"
            | "LANG"
            | "TZ"
            | "PWD"
            | "CARGO_HOME"
            | "RUSTUP_HOME"
            | "RUSTUP_TOOLCHAIN"
            | "LD_LIBRARY_PATH"
            | "CARGO"
            | "CARGO_TARGET_DIR"
    ) || name.starts_with("LC_")
        || name.starts_with("XDG_")
}

/// Env vars cargo sets for rustc and build scripts itself.
fn is_cargo_set_env(name: &str) -> bool {
    matches!(
        name,
        "CARGO"
            | "OUT_DIR"
            | "CARGO_CRATE_NAME"
            | "CARGO_PRIMARY_PACKAGE"
            | "CARGO_TARGET_TMPDIR"
            | "CARGO_RUSTC_CURRENT_DIR"
            | "CARGO_MAKEFLAGS"
            | "CARGO_ENCODED_RUSTFLAGS"
            | "TARGET"
            | "HOST"
            | "NUM_JOBS"
            | "OPT_LEVEL"
            | "DEBUG"
            | "PROFILE"
            | "RUSTC"
            | "RUSTDOC"
            | "RUSTC_LINKER"
    ) || [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_BIN_",
        "CARGO_CFG_",
        "CARGO_FEATURE_",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
}

/// The files and env vars of a rustc dep-info file. Relative paths are relative to
/// `base` (rustc's working directory: the workspace root).
pub fn read_dep_info(path: &Path, base: &Path, into: &mut Observation) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    for line in text.lines() {
        if let Some(env) = line.strip_prefix("# env-dep:") {
            let name = env.split_once('=').map_or(env, |(name, _)| name);
            into.env.insert(name.to_string());
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        // `target: dep dep ...`; spaces inside paths are escaped as `\ `.
        let Some((_, deps)) = split_rule(line) else {
            continue;
        };
        for dep in split_escaped(deps) {
            let dep = PathBuf::from(dep);
            into.files.insert(if dep.is_absolute() {
                dep
            } else {
                base.join(dep)
            });
        }
    }
    true
}

/// Splits a make rule at its first unescaped `: `.
fn split_rule(line: &str) -> Option<(&str, &str)> {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b':' if bytes.get(i + 1).is_none_or(|b| *b == b' ') => {
                return Some((&line[..i], line.get(i + 1..).unwrap_or("")));
            }
            _ => i += 1,
        }
    }
    None
}

fn split_escaped(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                current.push(' ');
                chars.next();
            }
            ' ' => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Reads the dep-info rustc wrote for one artifact file of the target `target_name`:
/// `deps/foo-HASH.d` for `deps/libfoo-HASH.rlib`; for a build script (its own directory),
/// every `.d` file beside it; for a file cargo uplifted out of `deps/` (`debug/app`), every
/// `deps/<crate>-*.d` of that target (more files and names than the current unit's is only
/// more conservative). Cargo's rewritten `debug/app.d` is read only when there is none
/// (`examples/` keeps its units beside the uplifted files): it drops the `# env-dep:` lines,
/// and it lists the sources of the artifact's whole path-dependency closure, which are each
/// dependency's own observation (a dependent's task takes its closure's) and made every
/// dependent of a crate read and record that crate's files again (112,620 paths for 3,000
/// files in a 500-crate tree).
pub fn read_artifact_dep_info(
    artifact_file: &Path,
    target_name: &str,
    base: &Path,
    listings: &mut DepInfoListings,
    into: &mut Observation,
) {
    let Some(dir) = artifact_file.parent() else {
        return;
    };
    let Some(stem) = artifact_file.file_stem().map(|s| s.to_string_lossy()) else {
        return;
    };
    if stem.starts_with("build-script-") || stem.starts_with("build_script_") {
        for path in listings.with_prefix(dir, "") {
            read_dep_info(&path, base, into);
        }
        return;
    }
    if dir.file_name().is_some_and(|d| d != "deps") {
        // Uplifted: rustc's own dep-info of the crate's units, in `deps/`.
        let crate_name = target_name.replace('-', "_");
        let own = listings.with_prefix(&dir.join("deps"), &format!("{crate_name}-"));
        for path in &own {
            read_dep_info(path, base, into);
        }
        if !own.is_empty() {
            return;
        }
    }
    let mut candidates = vec![dir.join(format!("{stem}.d"))];
    if let Some(without_lib) = stem.strip_prefix("lib") {
        candidates.push(dir.join(format!("{without_lib}.d")));
    }
    if let Some(found) = candidates.into_iter().find(|c| c.is_file()) {
        read_dep_info(&found, base, into);
    }
}

/// The `.d` files of the directories one cargo call's dep-info is read from, each listed
/// once: `deps/` holds thousands of files, and every uplifted artifact of the call looks in
/// it for its crate's files.
#[derive(Debug, Default)]
pub struct DepInfoListings(HashMap<PathBuf, Vec<String>>);

impl DepInfoListings {
    /// The `.d` files in `dir` whose names start with `prefix`.
    fn with_prefix(&mut self, dir: &Path, prefix: &str) -> Vec<PathBuf> {
        let names = self.0.entry(dir.to_path_buf()).or_insert_with(|| {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return Vec::new();
            };
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|name| Path::new(name).extension().is_some_and(|e| e == "d"))
                .collect()
        });
        names
            .iter()
            .filter(|name| name.starts_with(prefix))
            .map(|name| dir.join(name))
            .collect()
    }
}

/// A build script's `output` file (beside its `out` dir): `rerun-if-changed` paths (relative
/// to `package_dir`), `rerun-if-env-changed` names, and the `rustc-env` names it set.
pub fn read_build_script_output(out_dir: &Path, package_dir: &Path, into: &mut Observation) {
    let Some(output) = out_dir.parent().map(|d| d.join("output")) else {
        return;
    };
    let Ok(text) = std::fs::read_to_string(output) else {
        return;
    };
    for line in text.lines() {
        let Some(directive) = line
            .strip_prefix("cargo::")
            .or_else(|| line.strip_prefix("cargo:"))
        else {
            continue;
        };
        let Some((key, value)) = directive.split_once('=') else {
            continue;
        };
        match key {
            "rerun-if-changed" => {
                let path = Path::new(value);
                into.files.insert(if path.is_absolute() {
                    path.to_path_buf()
                } else {
                    package_dir.join(path)
                });
            }
            "rerun-if-env-changed" => {
                into.env.insert(value.to_string());
            }
            "rustc-env" => {
                if let Some((name, _)) = value.split_once('=') {
                    into.cargo_set_env.insert(name.to_string());
                }
            }
            _ => {}
        }
    }
}

/// What test sources name that a test may read at run time: string literals that name an
/// existing path outside `package_dir`, relative to the package directory (tests run there,
/// and `concat!(env!("CARGO_MANIFEST_DIR"), "/../x")` is such a path) or to the workspace
/// root (`root.join("README.md")`), and the env vars read with `env::var("NAME")` /
/// `var_os("NAME")`. A heuristic: a name built at run time is not seen; declare such inputs
/// with `inputs` and `env`. Only paths inside the workspace (a literal like
/// `"../../../etc/passwd"` in a path-safety test is data, not an input), never the workspace
/// root itself, a directory holding or inside `skip` (the target directory and the cache's
/// own state), or anything under `.git` (git's own state changes with every command).
pub fn scan_test_sources(
    sources: &[PathBuf],
    package_dir: &Path,
    workspace_root: &Path,
    skip: &[&Path],
    into: &mut Observation,
) {
    for source in sources {
        let Ok(text) = std::fs::read_to_string(source) else {
            continue;
        };
        for literal in string_literals(&text) {
            let literal = literal.trim_start_matches('/');
            if literal.is_empty()
                || literal.len() > 512
                || literal.contains(char::is_whitespace)
                || literal.contains('\\')
                || !(literal.contains('/') || literal.contains('.'))
            {
                continue;
            }
            for base in [package_dir, workspace_root] {
                let candidate = xtask_hash::normalize(&base.join(literal));
                let too_wide = !candidate.starts_with(workspace_root)
                    || candidate == workspace_root
                    || skip
                        .iter()
                        .any(|s| s.starts_with(&candidate) || candidate.starts_with(s))
                    || candidate.components().any(|c| c.as_os_str() == ".git");
                if !too_wide && !candidate.starts_with(package_dir) && candidate.exists() {
                    into.files.insert(candidate);
                }
            }
        }
        for pattern in ["var(\"", "var_os(\""] {
            for (at, _) in text.match_indices(pattern) {
                let rest = &text[at + pattern.len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty()
                    && rest[name.len()..].starts_with('"')
                    && !is_pass_through_env(&name)
                {
                    into.env.insert(name);
                }
            }
        }
    }
}

/// The contents of the plain `"..."` string literals in Rust source (escapes kept as
/// written; raw strings and chars are skipped well enough for path-like literals).
fn string_literals(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'"' {
            let start = i + 1;
            let mut j = start;
            while j < bytes.len() && bytes[j] != b'"' {
                if bytes[j] == b'\\' {
                    j += 1;
                }
                j += 1;
            }
            if j <= bytes.len()
                && let Some(literal) = text.get(start..j.min(bytes.len()))
            {
                out.push(literal);
            }
            i = j + 1;
        } else if bytes[i] == b'\'' && bytes.get(i + 2) == Some(&b'\'') {
            i += 3;
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dep_info_with_env_deps_and_escaped_spaces() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("app-1.d");
        std::fs::write(
            &d,
            "/t/deps/app-1: src/main.rs ../shared\\ dir/x.txt /abs/y.rs\n\n\
             src/main.rs:\n# env-dep:GREETING=hi\n# env-dep:UNSET\n",
        )
        .unwrap();
        let mut observation = Observation::default();
        assert!(read_dep_info(&d, Path::new("/w/ws"), &mut observation));
        let files: Vec<_> = observation.files.iter().cloned().collect();
        assert_eq!(
            files,
            vec![
                PathBuf::from("/abs/y.rs"),
                PathBuf::from("/w/ws/../shared dir/x.txt"),
                PathBuf::from("/w/ws/src/main.rs"),
            ]
        );
        assert_eq!(
            observation.env.iter().cloned().collect::<Vec<_>>(),
            vec!["GREETING".to_string(), "UNSET".to_string()]
        );
    }

    #[test]
    fn an_uplifted_artifact_reads_its_crates_own_dep_info_not_its_closures() {
        let dir = tempfile::tempdir().unwrap();
        let debug = dir.path().join("debug");
        std::fs::create_dir_all(debug.join("deps")).unwrap();
        std::fs::create_dir_all(debug.join("examples")).unwrap();
        // Cargo's rewritten dep-info lists the dependency's sources too, without env-deps.
        std::fs::write(
            debug.join("app.d"),
            "/w/debug/app: /w/app/src/main.rs /w/dep/src/lib.rs\n",
        )
        .unwrap();
        std::fs::write(
            debug.join("deps/app-1.d"),
            "/w/debug/deps/app-1: /w/app/src/main.rs /w/app/src/cli.rs\n\n# env-dep:GREETING\n",
        )
        .unwrap();
        std::fs::write(
            debug.join("deps/dep-2.d"),
            "/w/debug/deps/libdep-2.rlib: /w/dep/src/lib.rs\n",
        )
        .unwrap();
        std::fs::write(
            debug.join("examples/demo.d"),
            "/w/debug/examples/demo: /w/app/examples/demo.rs\n",
        )
        .unwrap();
        let base = Path::new("/w");
        let mut listings = DepInfoListings::default();
        let mut app = Observation::default();
        read_artifact_dep_info(&debug.join("app"), "app", base, &mut listings, &mut app);
        assert_eq!(
            app.files.iter().cloned().collect::<Vec<_>>(),
            vec![
                PathBuf::from("/w/app/src/cli.rs"),
                PathBuf::from("/w/app/src/main.rs")
            ]
        );
        assert!(app.env.contains("GREETING"));
        // An example's units are beside it: its uplifted dep-info is what there is.
        let mut demo = Observation::default();
        let example = debug.join("examples/demo");
        read_artifact_dep_info(&example, "demo", base, &mut listings, &mut demo);
        assert!(demo.files.contains(Path::new("/w/app/examples/demo.rs")));
    }

    #[test]
    fn a_file_named_by_many_observations_is_digested_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let shared = root.join("dep/src/lib.rs");
        std::fs::create_dir_all(shared.parent().unwrap()).unwrap();
        std::fs::write(&shared, "pub fn f() {}\n").unwrap();
        let mut observation = Observation::default();
        observation.files.insert(shared.clone());
        let exclusions = Exclusions {
            prefixes: vec![root.join("target")],
        };
        let started = RunStart(SystemTime::UNIX_EPOCH);
        let mut files = FileDigests::default();
        let (first, changed) =
            digest_observation_with(root, &observation, &exclusions, started, &mut files);
        assert_eq!(changed, vec!["dep/src/lib.rs".to_string()]);
        // Rewritten: the batch's memo keeps what it read first, a fresh digest sees it.
        std::fs::write(&shared, "pub fn g() {}\n").unwrap();
        let (again, _) =
            digest_observation_with(root, &observation, &exclusions, started, &mut files);
        assert_eq!(again, first);
        let (fresh, _) = digest_observation(root, &observation, &exclusions, started);
        assert_ne!(fresh, first);
    }

    #[test]
    fn reads_build_script_directives() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("out")).unwrap();
        std::fs::write(
            dir.path().join("output"),
            "cargo:rerun-if-changed=data.txt\ncargo::rerun-if-env-changed=GREETING\n\
             cargo:rustc-env=BUILT=1\ncargo:warning=x\n",
        )
        .unwrap();
        let mut observation = Observation::default();
        read_build_script_output(
            &dir.path().join("out"),
            Path::new("/w/ws/app"),
            &mut observation,
        );
        assert!(observation.files.contains(Path::new("/w/ws/app/data.txt")));
        assert!(observation.env.contains("GREETING"));
        assert!(observation.cargo_set_env.contains("BUILT"));
    }

    #[test]
    fn cargo_set_env_and_excluded_paths_are_not_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir_all(root.join("target")).unwrap();
        std::fs::write(root.join("target/gen.rs"), "").unwrap();
        std::fs::write(dir.path().join("shared.txt"), "x").unwrap();
        let mut observation = Observation::default();
        observation.files.insert(root.join("target/gen.rs"));
        observation.files.insert(root.join("../shared.txt"));
        observation.env.insert("CARGO_PKG_NAME".into());
        observation.env.insert("BUILT".into());
        observation.env.insert("GREETING".into());
        observation.cargo_set_env.insert("BUILT".into());
        let exclusions = Exclusions {
            prefixes: vec![root.join("target")],
        };
        let (observed, changed) = digest_observation(
            &root,
            &observation,
            &exclusions,
            RunStart(SystemTime::now() + std::time::Duration::from_secs(3600)),
        );
        assert_eq!(
            observed.files.keys().cloned().collect::<Vec<_>>(),
            vec!["../shared.txt".to_string()]
        );
        assert_eq!(
            observed.env.keys().cloned().collect::<Vec<_>>(),
            vec!["GREETING".to_string()]
        );
        assert!(changed.is_empty());
        let (_, changed) = digest_observation(
            &root,
            &observation,
            &exclusions,
            RunStart(SystemTime::UNIX_EPOCH),
        );
        assert_eq!(changed, vec!["../shared.txt".to_string()]);
    }

    #[test]
    fn a_file_dated_in_the_future_but_written_before_the_run_did_not_change_during_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lib.rs");
        std::fs::write(&file, "pub fn f() {}\n").unwrap();
        let in_a_year = SystemTime::now() + std::time::Duration::from_secs(365 * 86_400);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(in_a_year)
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let started = RunStart::by_system_clock();
        let metadata = std::fs::metadata(&file).unwrap();
        assert!(
            !started.changed_since(&metadata),
            "dated ahead, written before"
        );
        // Put back with an old mtime during the run: its ctime says so.
        std::fs::write(&file, "pub fn g() {}\n").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400))
            .unwrap();
        assert!(started.changed_since(&std::fs::metadata(&file).unwrap()));
    }

    #[test]
    fn only_a_change_between_the_start_and_now_counts() {
        let start = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let now = start + std::time::Duration::from_secs(60);
        let run = RunStart(start);
        let at = |seconds: i64| {
            let offset = std::time::Duration::from_secs(seconds.unsigned_abs());
            if seconds < 0 {
                start - offset
            } else {
                start + offset
            }
        };
        assert!(run.covers(at(0), now));
        assert!(run.covers(at(30), now));
        assert!(run.covers(at(60), now));
        assert!(!run.covers(at(-1), now), "before the run");
        // Dated after now: written before the clock was set back, not during the run.
        assert!(!run.covers(at(61), now));
        assert!(!run.covers(at(365 * 86_400), now));
    }

    #[test]
    fn the_start_is_the_file_systems_clock() {
        let dir = tempfile::tempdir().unwrap();
        let before = dir.path().join("before.rs");
        std::fs::write(&before, "pub fn f() {}\n").unwrap();
        // A tick of the coarse clock or more: what a user's edit right before a run leaves.
        std::thread::sleep(std::time::Duration::from_millis(12));
        let marker = dir.path().join("clock");
        let start = RunStart::by_file_system(&marker);
        assert!(!marker.exists(), "the marker is not left behind");
        assert!(!start.changed_since(&std::fs::metadata(&before).unwrap()));
        let during = dir.path().join("during.rs");
        std::fs::write(&during, "pub fn g() {}\n").unwrap();
        assert!(start.changed_since(&std::fs::metadata(&during).unwrap()));
        // The system clock's start reaches back a slack: the same edit counts as during.
        let by_system = RunStart::by_system_clock();
        std::fs::write(&before, "pub fn h() {}\n").unwrap();
        assert!(by_system.changed_since(&std::fs::metadata(&before).unwrap()));
    }

    #[test]
    fn test_sources_name_outside_paths_and_env_vars() {
        let dir = tempfile::tempdir().unwrap();
        let package = dir.path().join("ws/app");
        std::fs::create_dir_all(package.join("tests")).unwrap();
        std::fs::create_dir_all(dir.path().join("ws/fixtures")).unwrap();
        std::fs::write(dir.path().join("ws/fixtures/data.txt"), "x").unwrap();
        let source = package.join("tests/t.rs");
        std::fs::write(
            &source,
            r#"let a = std::fs::read_to_string("../fixtures/data.txt");
               let b = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");
               let c = std::env::var("MODE"); let d = std::env::var_os("OTHER");
               let p = std::env::var("PATH"); let h = std::env::var_os("CARGO_HOME");
               let e = "../missing.txt"; let f = 'x';"#,
        )
        .unwrap();
        let mut observation = Observation::default();
        std::fs::write(dir.path().join("ws/README.md"), "x").unwrap();
        std::fs::write(
            package.join("tests/u.rs"),
            r#"let r = root.join("README.md"); let w = ".."; let t = "../target";
               let g = ".git/HEAD"; let e = "../../../outside.txt";
               let s = "cache/v1/fast/stat-cache"; let k = "cache/README.md";"#,
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("ws/target")).unwrap();
        std::fs::create_dir_all(dir.path().join("ws/.git")).unwrap();
        std::fs::write(dir.path().join("ws/.git/HEAD"), "ref").unwrap();
        std::fs::write(dir.path().join("outside.txt"), "x").unwrap();
        // The cache's own state changes during every run; what else the cache holds does not.
        std::fs::create_dir_all(dir.path().join("ws/cache/v1/fast")).unwrap();
        std::fs::write(dir.path().join("ws/cache/v1/fast/stat-cache"), "x").unwrap();
        std::fs::write(dir.path().join("ws/cache/README.md"), "x").unwrap();
        scan_test_sources(
            &[source, package.join("tests/u.rs")],
            &package,
            &dir.path().join("ws"),
            &[
                &dir.path().join("ws/target"),
                &dir.path().join("ws/cache/v1"),
            ],
            &mut observation,
        );
        let files: Vec<_> = observation.files.iter().cloned().collect();
        assert_eq!(
            files,
            vec![
                dir.path().join("ws/README.md"),
                dir.path().join("ws/cache/README.md"),
                dir.path().join("ws/fixtures"),
                dir.path().join("ws/fixtures/data.txt")
            ]
        );
        assert_eq!(
            observation.env.iter().cloned().collect::<Vec<_>>(),
            vec!["MODE".to_string(), "OTHER".to_string()]
        );
    }
}

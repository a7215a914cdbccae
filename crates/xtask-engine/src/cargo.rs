//! Cargo-aware execution: all cache misses of one built-in task run as ONE cargo invocation
//! (`cargo build -p a -p b ... --message-format=json`), so cargo parallelises them; the JSON
//! messages attribute diagnostics and artifacts to packages, which gives per-package logs,
//! results and outputs. `test` builds the test binaries in one invocation and then runs each
//! package's binaries itself (the way nextest does), so results are known per package.

use std::collections::HashMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use cargo_metadata::Message;
use xtask_cache::{OutputFile, OutputRoot};
use xtask_model::{CargoTask, PackageIndex, Workspace};

use crate::freshness::{CompileRecord, Stale};
use crate::observe::Observation;
use crate::plan::CargoSettings;
use crate::process::{cargo_command, run_captured};
use crate::progress::{Progress, TestRuns};
use crate::report::Reporter;
use crate::units::UnitsSeen;

/// The result of one package's task within a batch.
#[derive(Debug, Default)]
pub struct PackageResult {
    pub success: bool,
    pub log: Vec<u8>,
    pub outputs: Vec<OutputFile>,
    pub duration: Duration,
    /// When cargo started compiling it, if it did (the run report's timeline).
    pub started: Option<Instant>,
    pub tests_passed: u64,
    pub tests_failed: u64,
    /// Why a successful result must not be stored (it ran under other conditions than its
    /// key describes), if so.
    pub not_cacheable: Option<String>,
}

/// What one cargo batch did.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// One result per wanted package, in order.
    pub results: Vec<PackageResult>,
    /// What rustc and build scripts read, per workspace package compiled in the batch.
    pub observations: HashMap<PackageIndex, Observation>,
    /// What they read for path packages outside the workspace (charged to every task).
    pub outside: Observation,
    /// When the batch started: an input modified at or after it changed during the run.
    pub started: Option<std::time::SystemTime>,
    /// The units cargo's compiling call used (see `run::layers`).
    pub units: UnitsSeen,
}

/// Called with a package and its output files as soon as cargo has produced every target the
/// package must produce, while the batch goes on (to archive them meanwhile).
pub type OnBuilt<'a> = &'a (dyn Fn(PackageIndex, Vec<OutputFile>) + Sync);

/// One cargo batch: `task` for the `wanted` packages, cargo selecting all of `selection`.
#[derive(Clone, Copy)]
pub struct Batch<'a> {
    pub workspace: &'a Workspace,
    pub task: CargoTask,
    pub selection: &'a [PackageIndex],
    pub wanted: &'a [PackageIndex],
    pub settings: &'a CargoSettings,
    pub jobs: usize,
    pub reporter: &'a Reporter,
    /// For `build`: told of each package whose outputs are complete.
    pub on_built: Option<OnBuilt<'a>>,
}

/// Runs `task` for the `wanted` packages in one cargo invocation that selects every package
/// of `selection` (a superset of `wanted`), so features unify exactly as the task keys
/// assume (see `plan::cargo_selection`). Returns one result per wanted package, in order.
pub fn run_batch(batch: &Batch<'_>) -> anyhow::Result<BatchOutcome> {
    let Batch {
        workspace,
        task,
        selection,
        wanted,
        settings,
        jobs,
        reporter,
        on_built,
    } = *batch;
    let mut started = batch_start(workspace);
    let wall = Instant::now();
    let call = Call {
        workspace,
        task,
        settings,
        reporter,
        wanted: wanted.len(),
        on_built,
    };
    let mut outcome = match task {
        CargoTask::Build | CargoTask::Lint => {
            let mut compiled = compile(&call, selection)?;
            if task == CargoTask::Lint {
                let unseen = unseen_clippy_configs(workspace, wanted, &compiled.observations);
                if !unseen.is_empty() {
                    // Cargo replayed a lint result made before these configs existed: make
                    // it lint those packages again, as cargo users do, by touching them.
                    started = touch_sources(workspace, &unseen)?;
                    compiled = compile(&call, selection)?;
                }
            }
            let results = pick(compiled.results, selection, wanted);
            BatchOutcome {
                results,
                observations: compiled.observations,
                outside: compiled.outside,
                started: None,
                units: compiled.units,
            }
        }
        CargoTask::Test => test(&call, selection, wanted, jobs)?,
        CargoTask::Fmt => BatchOutcome {
            results: fmt(workspace, wanted)?,
            ..BatchOutcome::default()
        },
    };
    outcome.started = Some(started);
    bound_to_wall_time(&mut outcome.results, wall.elapsed());
    Ok(outcome)
}

/// Scales the packages' own times down, keeping their proportions, so that together they
/// never exceed the wall time of the batch: cargo compiles packages side by side, `test` runs
/// them on `jobs` threads and `fmt` checks all in one call, so their spans overlap, and a hit
/// saves at most the time the batch took (on clap, the own times of one `test` batch added up
/// to 3433 s after 962 s).
fn bound_to_wall_time(results: &mut [PackageResult], wall: Duration) {
    let total: Duration = results.iter().map(|result| result.duration).sum();
    if total <= wall {
        return;
    }
    let ratio = wall.as_secs_f64() / total.as_secs_f64();
    for result in results {
        result.duration = result.duration.mul_f64(ratio);
    }
}

/// The packages whose clippy configuration (the `.clippy.toml` or `clippy.toml` clippy finds
/// from `CLIPPY_CONF_DIR` or the package directory up) exists but is not in the dep-info of
/// their lint units: clippy tracks the file it read, so a config created after the last lint
/// is one cargo does not know about.
fn unseen_clippy_configs(
    workspace: &Workspace,
    wanted: &[PackageIndex],
    observations: &HashMap<PackageIndex, Observation>,
) -> Vec<PackageIndex> {
    wanted
        .iter()
        .copied()
        .filter(|package| {
            let start = std::env::var_os("CLIPPY_CONF_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace.packages[*package].dir.clone());
            let config = start.ancestors().find_map(|dir| {
                [".clippy.toml", "clippy.toml"]
                    .iter()
                    .map(|name| dir.join(name))
                    .find(|path| path.is_file())
            });
            config.is_some_and(|config| {
                !observations
                    .get(package)
                    .is_some_and(|o| o.files.iter().any(|f| xtask_hash::normalize(f) == config))
            })
        })
        .collect()
}

/// Sets the modification time of every target source root of `packages` to now (their
/// content is untouched), so cargo's fingerprint sees them as changed. Returns a moment
/// after the touch: the start of the run whose inputs must not change.
fn touch_sources(
    workspace: &Workspace,
    packages: &[PackageIndex],
) -> anyhow::Result<std::time::SystemTime> {
    let now = std::time::SystemTime::now();
    for &package in packages {
        for target in &workspace.packages[package].targets {
            let file = std::fs::File::options()
                .append(true)
                .open(&target.src_path)
                .with_context(|| format!("failed to open `{}`", target.src_path.display()))?;
            file.set_modified(now)
                .with_context(|| format!("failed to touch `{}`", target.src_path.display()))?;
        }
    }
    // Strictly after the touch, so the touched files do not count as changed during the run.
    std::thread::sleep(Duration::from_millis(10));
    Ok(batch_start(workspace))
}

/// The moment a batch starts, by the file system's clock (see `observe::RunStart`).
fn batch_start(workspace: &Workspace) -> std::time::SystemTime {
    let marker = workspace
        .target_dir
        .join("xtask")
        .join(format!("batch-start-{}", std::process::id()));
    crate::observe::RunStart::by_file_system(&marker).0
}

/// The results of `wanted` out of results indexed like `selection`.
fn pick<T: Default>(
    mut all: Vec<T>,
    selection: &[PackageIndex],
    wanted: &[PackageIndex],
) -> Vec<T> {
    wanted
        .iter()
        .map(|p| {
            selection
                .iter()
                .position(|s| s == p)
                .map(|i| std::mem::take(&mut all[i]))
                .unwrap_or_default()
        })
        .collect()
}

struct Compiled {
    results: Vec<PackageResult>,
    /// Test executables per package (only for `cargo test --no-run`).
    test_binaries: Vec<Vec<PathBuf>>,
    observations: HashMap<PackageIndex, Observation>,
    outside: Observation,
    /// The latest mtime of the artifacts of each package that built.
    built_at: HashMap<PackageIndex, std::time::SystemTime>,
    units: UnitsSeen,
}

/// `-p SPEC` for each package, each spec naming exactly that package (see [`package_spec`]).
fn selection_args(workspace: &Workspace, packages: &[PackageIndex]) -> Vec<String> {
    packages
        .iter()
        .flat_map(|&p| {
            [
                "-p".to_string(),
                package_spec(&workspace.packages[p]).to_string(),
            ]
        })
        .collect()
}

/// How cargo is told to select `package`: its package id, which is a package id spec
/// (`path+file:///dir#name@version`) since cargo 1.77 and names that package only. A bare name
/// is ambiguous as soon as the lock file holds another package of that name (clap's root
/// package `clap` beside the registry `clap` its dev-dependencies use): cargo then refuses
/// `-p clap`. An id in cargo's older format (`name version (source)`) is no spec: the name.
fn package_spec(package: &xtask_model::Package) -> &str {
    if package.id.starts_with("path+") {
        &package.id
    } else {
        &package.name
    }
}

/// `-p NAME` for each package: what `cargo fmt` takes (it selects among the workspace's
/// members by name only, so a name is never ambiguous there).
fn name_args(workspace: &Workspace, packages: &[PackageIndex]) -> Vec<String> {
    packages
        .iter()
        .flat_map(|&p| ["-p".to_string(), workspace.packages[p].name.clone()])
        .collect()
}

/// The targets `task` must produce an artifact for before a package counts as built when
/// cargo failed (targets with `required-features` may be skipped by cargo, so they are not
/// required). Named as [`target_label`] names artifacts.
fn required_targets(package: &xtask_model::Package, task: CargoTask) -> Vec<String> {
    package
        .targets
        .iter()
        .filter(|t| t.required_features.is_empty())
        .filter(|t| match task {
            CargoTask::Build => t.is_lib() || t.is_bin(),
            CargoTask::Test => t.test && (t.is_lib() || t.is_bin() || kind_is(t, "test")),
            CargoTask::Lint => !kind_is(t, "custom-build"),
            CargoTask::Fmt => false,
        })
        .map(|t| target_label(&t.name, t.is_lib(), t.kinds.first().map(String::as_str)))
        .collect()
}

fn kind_is(target: &xtask_model::Target, kind: &str) -> bool {
    target.kinds.iter().any(|k| k == kind)
}

fn target_label(name: &str, is_lib: bool, kind: Option<&str>) -> String {
    if is_lib {
        format!("lib:{name}")
    } else {
        format!("{}:{name}", kind.unwrap_or("?"))
    }
}

const LIB_KINDS: [&str; 6] = ["lib", "rlib", "dylib", "cdylib", "staticlib", "proc-macro"];
/// Artifact kinds whose files `cargo build` leaves for users in the target directory.
const OUTPUT_KINDS: [&str; 5] = ["bin", "cdylib", "dylib", "staticlib", "example"];

/// One cargo call of a batch: what it is for and whom it reports to.
struct Call<'a> {
    workspace: &'a Workspace,
    task: CargoTask,
    settings: &'a CargoSettings,
    reporter: &'a Reporter,
    /// How many packages the batch is for (progress lines say so).
    wanted: usize,
    on_built: Option<OnBuilt<'a>>,
}

/// `cargo build` / `cargo clippy` / `cargo test --no-run` with JSON messages. Progress is
/// reported while it runs (see [`Progress`]). Packages whose artifacts cargo would wrongly
/// take as up to date are cleaned first, and what the call built is recorded for the next
/// one (see [`crate::freshness`]).
fn compile(call: &Call<'_>, packages: &[PackageIndex]) -> anyhow::Result<Compiled> {
    let workspace = call.workspace;
    let mut record = CompileRecord::load(&workspace.target_dir, call.settings, call.task);
    clean_stale(call, &record.stale(workspace, std::time::SystemTime::now()))?;
    let compiled = compile_reporting(call, packages)?;
    record.update(workspace, packages, &compiled.built_at, |package| {
        compiled
            .observations
            .get(&package)
            .map(|observation| observation.files.clone())
            .unwrap_or_default()
    });
    if let Err(error) = record.save() {
        call.reporter.warning(&format!(
            "failed to record what cargo built in `{}`: {error}",
            workspace.target_dir.display()
        ));
    }
    Ok(compiled)
}

/// `cargo clean -p NAME` of each stale package, in the profile and target of the call, each
/// announced with its reason.
fn clean_stale(call: &Call<'_>, stale: &[Stale]) -> anyhow::Result<()> {
    if stale.is_empty() {
        return Ok(());
    }
    let workspace = call.workspace;
    let mut command = cargo_command();
    command
        .args(["clean", "--manifest-path"])
        .arg(&workspace.manifest_path);
    for package in stale {
        let name = &workspace.packages[package.package].name;
        call.reporter.warning(&format!(
            "{name}: {}; running `cargo clean -p {name}` first",
            package.reason
        ));
        command.args(["-p", name]);
    }
    if call.settings.release {
        command.arg("--release");
    }
    if let Some(target) = &call.settings.target {
        command.args(["--target", &target.triple]);
    }
    let captured = run_captured(command, "`cargo clean`", &workspace.root)?;
    anyhow::ensure!(
        captured.success,
        "`cargo clean` of packages cargo would not rebuild failed:\n{}",
        String::from_utf8_lossy(&captured.output).trim_end()
    );
    Ok(())
}

fn compile_reporting(call: &Call<'_>, packages: &[PackageIndex]) -> anyhow::Result<Compiled> {
    let plural = if call.wanted == 1 { "" } else { "s" };
    let progress = Progress::new(format!(
        "cargo {} ({} package{plural})",
        call.task.name(),
        call.wanted
    ));
    let every = crate::progress::interval();
    std::thread::scope(|scope| {
        let (done, heartbeat) = std::sync::mpsc::channel::<()>();
        let progress = &progress;
        scope.spawn(move || progress.heartbeat(call.reporter, every, &heartbeat));
        let compiled = compile_watched(call, packages, progress);
        drop(done);
        compiled
    })
}

fn compile_watched(
    call: &Call<'_>,
    packages: &[PackageIndex],
    progress: &Progress,
) -> anyhow::Result<Compiled> {
    let (workspace, task, settings) = (call.workspace, call.task, call.settings);
    let started = Instant::now();
    let mut command = cargo_command();
    let mut base = settings.command(task);
    let trailing: Vec<String> = match base.iter().position(|a| a == "--") {
        Some(at) => base.split_off(at),
        None => Vec::new(),
    };
    command.args(&base[1..]);
    // `cargo test` spells "keep going after a failed crate" differently.
    if task == CargoTask::Test {
        command.args(["--no-run", "--no-fail-fast"]);
    } else {
        command.arg("--keep-going");
    }
    if let Some(target) = &settings.target {
        // The planned hash covers exactly these flags (see `plan`).
        command
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env("RUSTFLAGS", &target.rustflags);
    }
    command
        .args(["--message-format=json", "--manifest-path"])
        .arg(&workspace.manifest_path)
        .args(selection_args(workspace, packages))
        .args(&trailing)
        .current_dir(&workspace.root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let description = base.join(" ");
    let mut child = command
        .spawn()
        .with_context(|| format!("failed to start `{description}`"))?;
    let stderr = child.stderr.take().context("cargo stderr")?;
    std::thread::scope(|scope| {
        let stderr_thread = scope.spawn(|| progress.read_stderr(stderr));
        let parsed = parse_messages(call, packages, &mut child, progress);
        let stderr = stderr_thread.join().unwrap_or_default();
        parsed.and_then(|parsed| finish_compile(call, packages, parsed, &stderr, started, progress))
    })
}

/// What the JSON messages of one cargo call said, before cargo's stderr is read.
struct Parsed {
    results: Vec<PackageResult>,
    errors: Vec<bool>,
    /// Target labels each package produced.
    seen: Vec<std::collections::HashSet<String>>,
    /// When each package's last artifact arrived.
    last_artifact: Vec<Option<Instant>>,
    /// Whether `on_built` was told of each package.
    announced: Vec<bool>,
    test_binaries: Vec<Vec<PathBuf>>,
    dep_infos: Vec<(Option<PackageIndex>, PathBuf, String)>,
    build_outputs: Vec<(Option<PackageIndex>, PathBuf, PathBuf)>,
    units: UnitsSeen,
    status: std::process::ExitStatus,
}

/// Reads cargo's JSON messages to the end and waits for it.
fn parse_messages(
    call: &Call<'_>,
    packages: &[PackageIndex],
    child: &mut std::process::Child,
    progress: &Progress,
) -> anyhow::Result<Parsed> {
    let workspace = call.workspace;
    let slot: HashMap<&str, usize> = packages
        .iter()
        .enumerate()
        .map(|(i, &p)| (workspace.packages[p].id.as_str(), i))
        .collect();
    let index_of: HashMap<&str, PackageIndex> = workspace
        .packages
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    let n = packages.len();
    let mut parsed = Parsed {
        results: packages.iter().map(|_| PackageResult::default()).collect(),
        errors: vec![false; n],
        seen: vec![Default::default(); n],
        last_artifact: vec![None; n],
        announced: vec![false; n],
        test_binaries: vec![Vec::new(); n],
        dep_infos: Vec::new(),
        build_outputs: Vec::new(),
        units: UnitsSeen::default(),
        status: std::process::ExitStatus::default(),
    };
    let stdout = child.stdout.take().context("cargo stdout")?;
    for message in Message::parse_stream(BufReader::new(stdout)) {
        let Ok(message) = message else { continue };
        parsed.units.message(&index_of, &message);
        match message {
            Message::CompilerArtifact(artifact) => {
                progress.artifact();
                let id = artifact.package_id.repr.as_str();
                // Read once cargo has exited: it writes an uplifted file's dep-info after
                // announcing the artifact.
                if let Some(owner) = owner_of(&index_of, id) {
                    for file in &artifact.filenames {
                        parsed.dep_infos.push((
                            owner,
                            file.clone().into_std_path_buf(),
                            artifact.target.name.clone(),
                        ));
                    }
                }
                if let Some(&i) = slot.get(id) {
                    note_artifact(call, &mut parsed, i, artifact)?;
                    announce_if_built(call, &mut parsed, i, packages[i]);
                }
            }
            Message::BuildScriptExecuted(script) => {
                let id = script.package_id.repr.as_str();
                let (owner, package_dir) = match index_of.get(id) {
                    Some(&p) => (Some(p), workspace.packages[p].dir.clone()),
                    None if id.starts_with("path+") => (None, path_package_dir(id)),
                    None => continue,
                };
                parsed.build_outputs.push((
                    owner,
                    script.out_dir.clone().into_std_path_buf(),
                    package_dir,
                ));
            }
            Message::CompilerMessage(message) => {
                if let Some(&i) = slot.get(message.package_id.repr.as_str()) {
                    note_diagnostic(&mut parsed, i, &message.message);
                }
            }
            _ => {}
        }
    }
    parsed.status = child.wait().context("failed to wait for cargo")?;
    parsed.units.complete = parsed.status.success();
    Ok(parsed)
}

/// Who owns package `id` among the packages whose reads are observed: `Some(Some(p))` a
/// workspace package, `Some(None)` a path package outside the workspace, `None` neither.
fn owner_of(index_of: &HashMap<&str, PackageIndex>, id: &str) -> Option<Option<PackageIndex>> {
    match index_of.get(id) {
        Some(&p) => Some(Some(p)),
        None if id.starts_with("path+") => Some(None),
        None => None,
    }
}

/// A diagnostic of wanted package `i`: into its log; an error fails it.
fn note_diagnostic(
    parsed: &mut Parsed,
    i: usize,
    diagnostic: &cargo_metadata::diagnostic::Diagnostic,
) {
    if let Some(rendered) = &diagnostic.rendered {
        parsed.results[i].log.extend_from_slice(rendered.as_bytes());
    }
    if matches!(
        diagnostic.level,
        cargo_metadata::diagnostic::DiagnosticLevel::Error
            | cargo_metadata::diagnostic::DiagnosticLevel::Ice
    ) {
        parsed.errors[i] = true;
    }
}

/// Tells `call.on_built` of package `i` (`package`) once every target it must produce is
/// there, with its output files (once; none for a package without outputs).
fn announce_if_built(call: &Call<'_>, parsed: &mut Parsed, i: usize, package: PackageIndex) {
    let Some(on_built) = call.on_built else {
        return;
    };
    if parsed.announced[i] || parsed.results[i].outputs.is_empty() || parsed.errors[i] {
        return;
    }
    let complete = required_targets(&call.workspace.packages[package], call.task)
        .iter()
        .all(|label| parsed.seen[i].contains(label));
    if complete {
        parsed.announced[i] = true;
        on_built(package, parsed.results[i].outputs.clone());
    }
}

/// An artifact of wanted package `i`: its target, its test binary or its output files.
fn note_artifact(
    call: &Call<'_>,
    parsed: &mut Parsed,
    i: usize,
    artifact: cargo_metadata::Artifact,
) -> anyhow::Result<()> {
    let kinds: Vec<String> = artifact.target.kind.iter().map(|k| k.to_string()).collect();
    if kinds.iter().any(|k| k == "custom-build") {
        return Ok(());
    }
    let is_lib = kinds.iter().any(|k| LIB_KINDS.contains(&k.as_str()));
    parsed.seen[i].insert(target_label(
        &artifact.target.name,
        is_lib,
        kinds.first().map(String::as_str),
    ));
    parsed.last_artifact[i] = Some(Instant::now());
    if artifact.profile.test {
        if let Some(executable) = artifact.executable {
            parsed.test_binaries[i].push(executable.into_std_path_buf());
        }
        return Ok(());
    }
    if call.task != CargoTask::Build || !kinds.iter().any(|k| OUTPUT_KINDS.contains(&k.as_str())) {
        return Ok(());
    }
    for file in &artifact.filenames {
        let file = file.as_std_path();
        // Uplifted files only: `deps/` holds cargo's own copies.
        if file
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|d| d == "deps")
        {
            continue;
        }
        if file
            .extension()
            .is_some_and(|e| e == "rlib" || e == "rmeta" || e == "d")
        {
            continue;
        }
        parsed.results[i]
            .outputs
            .push(target_output(call.workspace, file)?);
    }
    Ok(())
}

/// Once cargo has exited: what its units read, and each package's result and own time.
fn finish_compile(
    call: &Call<'_>,
    packages: &[PackageIndex],
    parsed: Parsed,
    stderr: &[u8],
    started: Instant,
    progress: &Progress,
) -> anyhow::Result<Compiled> {
    let workspace = call.workspace;
    let mut observations: HashMap<PackageIndex, Observation> = HashMap::new();
    let mut outside = Observation::default();
    let mut built_at = artifact_times(&parsed.dep_infos);
    let mut listings = crate::observe::DepInfoListings::default();
    for (owner, file, target_name) in parsed.dep_infos {
        let into = match owner {
            Some(p) => observations.entry(p).or_default(),
            None => &mut outside,
        };
        let root = &workspace.root;
        crate::observe::read_artifact_dep_info(&file, &target_name, root, &mut listings, into);
    }
    for (owner, out_dir, package_dir) in parsed.build_outputs {
        let into = match owner {
            Some(p) => observations.entry(p).or_default(),
            None => &mut outside,
        };
        crate::observe::read_build_script_output(&out_dir, &package_dir, into);
    }
    let stderr_text = String::from_utf8_lossy(stderr);
    let mut results = parsed.results;
    let mut shown_under: Option<&str> = None;
    for (i, result) in results.iter_mut().enumerate() {
        let package = &workspace.packages[packages[i]];
        // When cargo failed, a package counts as built only if every target it must
        // produce was produced (a failed build script or dependency produces none).
        let complete = required_targets(package, call.task)
            .iter()
            .all(|label| parsed.seen[i].contains(label));
        let error = parsed.errors[i];
        result.success = !error && (parsed.status.success() || complete);
        if !result.success && !error {
            // Nothing attributable: a build script, a dependency or cargo itself failed.
            let text = unattributed_failure(&mut shown_under, &package.name, &stderr_text);
            result.log.extend_from_slice(text.as_bytes());
        }
        // Its own time: from when cargo started compiling it (else the call's start) to
        // its last artifact (else now); nothing when cargo found it fresh.
        let own_start = progress.started_at(&package.name, &package.version);
        result.started = own_start;
        result.duration = match (own_start, parsed.last_artifact[i]) {
            (None, Some(_)) => Duration::ZERO,
            (start, end) => end
                .unwrap_or_else(Instant::now)
                .saturating_duration_since(start.unwrap_or(started)),
        };
        result
            .outputs
            .sort_by(|a, b| a.relative_path.cmp(&b.relative_path));
        result
            .outputs
            .dedup_by(|a, b| a.relative_path == b.relative_path);
    }
    for (i, result) in results.iter().enumerate() {
        if !result.success {
            built_at.remove(&packages[i]);
        }
    }
    Ok(Compiled {
        results,
        test_binaries: parsed.test_binaries,
        observations,
        outside,
        built_at,
        units: parsed.units,
    })
}

/// The latest mtime of each workspace package's artifact files.
fn artifact_times(
    artifacts: &[(Option<PackageIndex>, PathBuf, String)],
) -> HashMap<PackageIndex, std::time::SystemTime> {
    let mut times: HashMap<PackageIndex, std::time::SystemTime> = HashMap::new();
    for (owner, file, _) in artifacts {
        let (Some(package), Ok(modified)) = (
            owner,
            std::fs::metadata(file).and_then(|metadata| metadata.modified()),
        ) else {
            continue;
        };
        let latest = times.entry(*package).or_insert(modified);
        *latest = (*latest).max(modified);
    }
    times
}

/// The directory of a `path+file:///dir#name@version` package id.
fn path_package_dir(id: &str) -> PathBuf {
    let rest = id.strip_prefix("path+file://").unwrap_or(id);
    PathBuf::from(rest.split('#').next().unwrap_or(rest))
}

/// The log of a failed package that no message of cargo's names: cargo's error output under
/// the first such package (`shown_under` records which), a pointer to it under the others (the
/// same output under each repeated it a hundred times on coreutils, on a full disk).
fn unattributed_failure<'a>(
    shown_under: &mut Option<&'a str>,
    package: &'a str,
    stderr: &str,
) -> String {
    match shown_under {
        None => {
            *shown_under = Some(package);
            relevant_stderr(stderr)
        }
        Some(first) => format!(
            "error: not built: cargo failed (its error output is shown once, under `{first}`)\n"
        ),
    }
}

/// Cargo's error lines, without its progress chatter.
fn relevant_stderr(stderr: &str) -> String {
    let mut out = String::new();
    let mut keep = false;
    for line in stderr.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("error") || trimmed.starts_with("warning: build failed") {
            keep = true;
        } else if [
            "Compiling ",
            "Checking ",
            "Finished ",
            "Blocking ",
            "Running ",
            "Fresh ",
            "Downloaded ",
            "Locking ",
        ]
        .iter()
        .any(|p| trimmed.starts_with(p))
        {
            keep = false;
        }
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    if out.is_empty() {
        "error: cargo failed before this package was built\n".to_string()
    } else {
        out
    }
}

fn target_output(workspace: &Workspace, path: &Path) -> anyhow::Result<OutputFile> {
    let relative = path.strip_prefix(&workspace.target_dir).with_context(|| {
        format!(
            "artifact `{}` is outside the target directory `{}`",
            path.display(),
            workspace.target_dir.display()
        )
    })?;
    Ok(OutputFile {
        root: OutputRoot::Target,
        relative_path: relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
        absolute_path: path.to_path_buf(),
    })
}

/// `cargo test --no-run` once over the whole selection, then each wanted package's test
/// binaries, packages in parallel on `jobs` threads, and beside them the doctests of every
/// wanted package in one `cargo test --doc`.
fn test(
    call: &Call<'_>,
    selection: &[PackageIndex],
    wanted: &[PackageIndex],
    jobs: usize,
) -> anyhow::Result<BatchOutcome> {
    let workspace = call.workspace;
    let compiled = compile(call, selection)?;
    let failed: Vec<PackageIndex> = selection
        .iter()
        .zip(&compiled.results)
        .filter(|(_, result)| !result.success)
        .map(|(&package, _)| package)
        .collect();
    let mut results = pick(compiled.results, selection, wanted);
    let test_binaries = pick(compiled.test_binaries, selection, wanted);
    let mut observations = compiled.observations;
    // What a test reads at run time leaves no dep-info: scan its sources (see `observe`).
    for &package in wanted {
        let p = &workspace.packages[package];
        let sources: Vec<PathBuf> = observations
            .get(&package)
            .map(|o| {
                o.files
                    .iter()
                    .filter(|f| f.starts_with(&p.dir) && f.extension().is_some_and(|e| e == "rs"))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let into = observations.entry(package).or_default();
        // The cache's own state (`v1/`) changes during every run; its README does not.
        let cache_state = workspace.cache_dir().join("v1");
        crate::observe::scan_test_sources(
            &sources,
            &p.dir,
            &workspace.root,
            &[&workspace.target_dir, &cache_state],
            into,
        );
    }
    let mut work: Vec<usize> = (0..wanted.len()).filter(|&i| results[i].success).collect();
    // Biggest first: the package whose test binaries take longest should not start last, when
    // every other thread is idle (on ripgrep, the root package's integration tests ran for 5 s
    // after the other nine packages; it is the second biggest, after `ignore`). A package's
    // test binaries' size stands in for their run time, which nothing knows before they run.
    work.sort_by_key(|&i| std::cmp::Reverse(total_size(&test_binaries[i])));
    let doctests = Doctests::plan(workspace, selection, &failed, wanted, &results);
    let (runs, doctests_ran) =
        run_tests_and_doctests(call, wanted, &test_binaries, &work, jobs, doctests.as_ref());
    for (&i, ran) in work.iter().zip(runs) {
        let ran = ran?;
        let result = &mut results[i];
        result.log.extend_from_slice(&ran.log);
        result.success = ran.success;
        result.tests_passed = ran.tests_passed;
        result.tests_failed = ran.tests_failed;
        result.duration += ran.duration;
    }
    if let (Some(doctests), Some(ran)) = (doctests, doctests_ran) {
        doctests.record(workspace, wanted, ran?, &mut results);
    }
    Ok(BatchOutcome {
        results,
        observations,
        outside: compiled.outside,
        started: None,
        units: compiled.units,
    })
}

/// [`run_tests`], with the doctests' own cargo call beside the test binaries: rustdoc
/// compiling doctests is most of their time, and waiting for the last binary left a core idle.
fn run_tests_and_doctests(
    call: &Call<'_>,
    wanted: &[PackageIndex],
    test_binaries: &[Vec<PathBuf>],
    work: &[usize],
    jobs: usize,
    doctests: Option<&Doctests>,
) -> (
    Vec<anyhow::Result<PackageResult>>,
    Option<anyhow::Result<DoctestRun>>,
) {
    std::thread::scope(|scope| {
        let doctests_ran =
            doctests.map(|doctests| scope.spawn(|| doctests.run(call.workspace, call.settings)));
        let runs = run_tests(call, wanted, test_binaries, work, jobs);
        let doctests_ran = doctests_ran.map(|handle| {
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        (runs, doctests_ran)
    })
}

/// Runs the test binaries of the wanted packages `work` (indices into `wanted`) on `jobs`
/// threads, reporting progress while they run.
fn run_tests(
    call: &Call<'_>,
    wanted: &[PackageIndex],
    test_binaries: &[Vec<PathBuf>],
    work: &[usize],
    jobs: usize,
) -> Vec<anyhow::Result<PackageResult>> {
    let workspace = call.workspace;
    let plural = if wanted.len() == 1 { "" } else { "s" };
    let what = format!("cargo test ({} package{plural})", wanted.len());
    let progress = TestRuns::new(what, work.len());
    std::thread::scope(|scope| {
        let (done, heartbeat) = std::sync::mpsc::channel::<()>();
        let progress = &progress;
        let every = crate::progress::interval();
        scope.spawn(move || progress.heartbeat(call.reporter, every, &heartbeat));
        let runs = xtask_util::parallel_map(work, jobs.max(1), |&i| {
            let name = &workspace.packages[wanted[i]].name;
            progress.running(name);
            let ran = run_package_tests(workspace, wanted[i], &test_binaries[i], call.settings);
            progress.finished(name);
            ran
        });
        drop(done);
        runs
    })
}

/// The bytes of `files` (a file that cannot be read counts as empty).
fn total_size(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .filter_map(|file| std::fs::metadata(file).ok())
        .map(|metadata| metadata.len())
        .sum()
}

/// The environment cargo gives a package's test processes: its manifest facts and a library
/// path with the toolchain's and the target directory's libraries (proc-macro and dylib
/// crates link `libstd-*.so`).
fn test_environment(
    workspace: &Workspace,
    package: &xtask_model::Package,
    settings: &CargoSettings,
) -> Vec<(String, std::ffi::OsString)> {
    let mut env: Vec<(String, std::ffi::OsString)> = vec![
        ("CARGO_MANIFEST_DIR".into(), package.dir.clone().into()),
        (
            "CARGO_MANIFEST_PATH".into(),
            package.dir.join("Cargo.toml").into(),
        ),
        ("CARGO_PKG_NAME".into(), package.name.clone().into()),
        ("CARGO_PKG_VERSION".into(), package.version.clone().into()),
        (
            "CARGO_CRATE_NAME".into(),
            package.name.replace('-', "_").into(),
        ),
        (
            "CARGO".into(),
            std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
        ),
    ];
    let version = package.version.split(['-', '+']).next().unwrap_or("");
    let mut numbers = version.split('.');
    for name in ["MAJOR", "MINOR", "PATCH"] {
        env.push((
            format!("CARGO_PKG_VERSION_{name}"),
            numbers.next().unwrap_or("0").to_string().into(),
        ));
    }
    let pre = package
        .version
        .split_once('-')
        .map(|(_, pre)| pre.split('+').next().unwrap_or(""))
        .unwrap_or("");
    env.push(("CARGO_PKG_VERSION_PRE".into(), pre.to_string().into()));
    let mut profile_dir = workspace.target_dir.clone();
    if let Some(target) = &settings.target {
        profile_dir.push(&target.triple);
    }
    profile_dir.push(if settings.release { "release" } else { "debug" });
    let mut library_path = vec![profile_dir.join("deps"), profile_dir.clone()];
    if let Some(sysroot_lib) = sysroot_library_dir() {
        library_path.push(sysroot_lib);
    }
    if let Some(existing) = std::env::var_os("LD_LIBRARY_PATH") {
        library_path.extend(std::env::split_paths(&existing));
    }
    if let Ok(joined) = std::env::join_paths(library_path) {
        env.push(("LD_LIBRARY_PATH".into(), joined));
    }
    env
}

/// `<sysroot>/lib/rustlib/<host>/lib` (where `libstd-*.so` is), asked of rustc once per
/// process (cargo puts it on the library path of every test it runs).
fn sysroot_library_dir() -> Option<PathBuf> {
    static LIBDIR: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    LIBDIR
        .get_or_init(|| {
            let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
            let output = std::process::Command::new(rustc)
                .args(["--print", "target-libdir"])
                .output()
                .ok()?;
            let dir = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
            dir.is_dir().then_some(dir)
        })
        .clone()
}

fn run_package_tests(
    workspace: &Workspace,
    package: PackageIndex,
    binaries: &[PathBuf],
    settings: &CargoSettings,
) -> anyhow::Result<PackageResult> {
    let started = Instant::now();
    let p = &workspace.packages[package];
    let mut result = PackageResult {
        success: true,
        ..PackageResult::default()
    };
    let mut binaries = binaries.to_vec();
    binaries.sort();
    binaries.dedup();
    let env = test_environment(workspace, p, settings);
    for binary in &binaries {
        let shown = binary.strip_prefix(&workspace.target_dir).unwrap_or(binary);
        result
            .log
            .extend_from_slice(format!("running {}\n", shown.display()).as_bytes());
        let mut command = std::process::Command::new(binary);
        command.envs(env.iter().map(|(k, v)| (k, v)));
        let captured = run_captured(
            command,
            &format!("test binary `{}`", binary.display()),
            &p.dir,
        )?;
        count_tests(&captured.output, &mut result);
        result.log.extend_from_slice(&captured.output);
        if !captured.success {
            result.log.extend_from_slice(
                format!("test binary `{}` failed\n", shown.display()).as_bytes(),
            );
        }
        result.success &= captured.success;
    }
    result.duration = started.elapsed();
    Ok(result)
}

/// The doctests of every wanted package whose library has them, in ONE `cargo test --doc`
/// over the packages of the selection that have doctests (a subset fixed by the selection,
/// so the same key always runs the same unification); its output is split at cargo's
/// `Doc-tests <crate>` lines and charged to each package.
struct Doctests {
    /// Indices into `wanted` of the packages charged with doctests (those that compiled).
    charged: Vec<usize>,
    /// The packages `cargo test --doc` selects.
    selection: Vec<PackageIndex>,
    /// A package of the selection with doctests failed to compile and was left out.
    narrowed: bool,
}

/// What one `cargo test --doc` call printed and how long it took.
struct DoctestRun {
    captured: crate::process::Captured,
    took: Duration,
}

impl Doctests {
    /// `None` when no wanted package that compiled has doctests.
    fn plan(
        workspace: &Workspace,
        selection: &[PackageIndex],
        failed: &[PackageIndex],
        wanted: &[PackageIndex],
        compiled: &[PackageResult],
    ) -> Option<Doctests> {
        let has_doctests = |p: PackageIndex| {
            workspace.packages[p]
                .targets
                .iter()
                .any(|t| t.is_lib() && t.doctest)
        };
        let charged: Vec<usize> = (0..wanted.len())
            .filter(|&i| compiled[i].success && has_doctests(wanted[i]))
            .collect();
        if charged.is_empty() {
            return None;
        }
        // The whole selection, packages without doctests too: they take part in feature
        // unification (a binary-only root package turning on a member's feature changes which
        // doctests that member has, as under `cargo test --workspace`). A package that did not
        // compile would stop cargo before any doctest runs: leave it out. Then the doctests ran
        // under another selection than the keys describe, so their results are reported but
        // not stored.
        Some(Doctests {
            charged,
            selection: selection
                .iter()
                .copied()
                .filter(|p| !failed.contains(p))
                .collect(),
            narrowed: selection.iter().any(|p| failed.contains(p)),
        })
    }

    fn run(&self, workspace: &Workspace, settings: &CargoSettings) -> anyhow::Result<DoctestRun> {
        let started = Instant::now();
        let mut command = cargo_command();
        command
            .args(["test", "--doc", "--no-fail-fast", "--manifest-path"])
            .arg(&workspace.manifest_path)
            .args(selection_args(workspace, &self.selection));
        if settings.release {
            command.arg("--release");
        }
        let captured = run_captured(command, "`cargo test --doc`", &workspace.root)?;
        Ok(DoctestRun {
            captured,
            took: started.elapsed(),
        })
    }

    /// Charges each package its section of the output: log, counts, pass or fail (added to
    /// what its test binaries gave).
    fn record(
        &self,
        workspace: &Workspace,
        wanted: &[PackageIndex],
        ran: DoctestRun,
        results: &mut [PackageResult],
    ) {
        let crate_of = |p: PackageIndex| -> Option<String> {
            workspace.packages[p]
                .targets
                .iter()
                .find(|t| t.is_lib())
                .map(|t| t.name.replace('-', "_"))
        };
        let (sections, preamble) = doctest_sections(&String::from_utf8_lossy(&ran.captured.output));
        let share = ran.took / self.charged.len() as u32;
        for &i in &self.charged {
            let result = &mut results[i];
            result.log.extend_from_slice(b"running doctests\n");
            match crate_of(wanted[i]).and_then(|c| sections.get(&c)) {
                Some(section) => {
                    record_doctests(result, section, self.narrowed);
                    // Its own share: the time libtest reports for its doctests.
                    result.duration += reported_time(section).unwrap_or(share);
                }
                None => {
                    // cargo failed before this crate's doctests ran: that is not a pass.
                    result.log.extend_from_slice(preamble.as_bytes());
                    result
                        .log
                        .extend_from_slice(b"error: the doctests of this package did not run\n");
                    result.success = false;
                    result.duration += share;
                }
            }
        }
    }
}

/// `cargo test --doc`'s output split at its `Doc-tests <crate>` lines: each crate's section,
/// and what came before the first (cargo's errors), without cargo's progress lines.
fn doctest_sections(text: &str) -> (HashMap<String, String>, String) {
    let mut sections: HashMap<String, String> = HashMap::new();
    let mut current: Option<String> = None;
    let mut preamble = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("Doc-tests ") {
            current = Some(name.trim().to_string());
            continue;
        }
        if ["Compiling ", "Finished ", "Running ", "Blocking ", "Fresh "]
            .iter()
            .any(|p| trimmed.starts_with(p))
        {
            continue;
        }
        let into = match &current {
            Some(name) => sections.entry(name.clone()).or_default(),
            None => &mut preamble,
        };
        into.push_str(line);
        into.push('\n');
    }
    (sections, preamble)
}

/// One crate's doctest section into its result: log, counts, pass or fail.
fn record_doctests(result: &mut PackageResult, section: &str, narrowed: bool) {
    let mut counts = PackageResult::default();
    count_tests(section.as_bytes(), &mut counts);
    result.log.extend_from_slice(section.as_bytes());
    result.tests_passed += counts.tests_passed;
    result.tests_failed += counts.tests_failed;
    let passed = section
        .lines()
        .any(|l| l.trim().starts_with("test result: ok."));
    result.success &= counts.tests_failed == 0 && passed;
    if narrowed {
        result.not_cacheable = Some(
            "its doctests ran without a package of the selection that failed to compile"
                .to_string(),
        );
    }
}

/// The time in libtest's `test result: ... finished in 1.23s` line.
fn reported_time(section: &str) -> Option<Duration> {
    let line = section
        .lines()
        .find(|l| l.trim_start().starts_with("test result:"))?;
    let seconds = line
        .rsplit_once("finished in ")?
        .1
        .trim()
        .strip_suffix('s')?;
    Duration::try_from_secs_f64(seconds.parse().ok()?).ok()
}

/// Adds libtest's `test result: ok. 3 passed; 1 failed; ...` lines to the counts.
pub(crate) fn count_tests(output: &[u8], result: &mut PackageResult) {
    for line in String::from_utf8_lossy(output).lines() {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            continue;
        };
        for part in rest.split(';') {
            let words: Vec<&str> = part.split_whitespace().collect();
            let Some(position) = words.iter().position(|w| *w == "passed" || *w == "failed") else {
                continue;
            };
            let Some(number) = position
                .checked_sub(1)
                .and_then(|i| words[i].parse::<u64>().ok())
            else {
                continue;
            };
            if words[position] == "passed" {
                result.tests_passed += number;
            } else {
                result.tests_failed += number;
            }
        }
    }
}

/// `cargo fmt --check -p ...` once; files named in rustfmt's `Diff in PATH` lines (and in its
/// errors) are attributed to their package.
fn fmt(workspace: &Workspace, packages: &[PackageIndex]) -> anyhow::Result<Vec<PackageResult>> {
    let started = Instant::now();
    let mut command = cargo_command();
    command
        .args(["fmt", "--check", "--manifest-path"])
        .arg(&workspace.manifest_path)
        .args(name_args(workspace, packages))
        .args(["--", "--color=never"]);
    let captured = run_captured(command, "`cargo fmt --check`", &workspace.root)?;
    let mut results: Vec<PackageResult> = packages
        .iter()
        .map(|_| PackageResult {
            success: true,
            ..PackageResult::default()
        })
        .collect();
    let text = String::from_utf8_lossy(&captured.output);
    let mut current: Option<usize> = None;
    let mut attributed = false;
    for line in text.lines() {
        if let Some(path) = diff_path(line) {
            current = package_slot_of_file(workspace, packages, path);
            if let Some(i) = current {
                results[i].success = false;
                attributed = true;
            }
        }
        if let Some(i) = current {
            results[i].log.extend_from_slice(line.as_bytes());
            results[i].log.push(b'\n');
        }
    }
    if !captured.success && !attributed {
        for result in &mut results {
            result.success = false;
            result.log.extend_from_slice(text.as_bytes());
        }
    }
    for result in &mut results {
        result.duration = started.elapsed();
    }
    Ok(results)
}

/// The file of a rustfmt `Diff in /path/file.rs:12:` or `Diff in /path/file.rs at line 12:` line,
/// or of an error's `--> /path/file.rs:3:5` line.
fn diff_path(line: &str) -> Option<&str> {
    let rest = line
        .strip_prefix("Diff in ")
        .or_else(|| line.trim_start().strip_prefix("--> "))?;
    let end = rest
        .find(" at line")
        .or_else(|| rest.find(".rs:").map(|i| i + 3))
        .unwrap_or(rest.len());
    Some(rest[..end].trim_end_matches(':'))
}

fn package_slot_of_file(
    workspace: &Workspace,
    packages: &[PackageIndex],
    path: &str,
) -> Option<usize> {
    let path = Path::new(path);
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        workspace.root.join(path)
    };
    packages
        .iter()
        .enumerate()
        .filter(|(_, p)| absolute.starts_with(&workspace.packages[**p].dir))
        .max_by_key(|(_, p)| workspace.packages[**p].dir.as_os_str().len())
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_times_are_scaled_to_the_wall_time_in_proportion() {
        let mut results: Vec<PackageResult> = [3, 1]
            .iter()
            .map(|&s| PackageResult {
                duration: Duration::from_secs(s),
                ..PackageResult::default()
            })
            .collect();
        bound_to_wall_time(&mut results, Duration::from_secs(2));
        let own: Vec<Duration> = results.iter().map(|r| r.duration).collect();
        assert_eq!(
            own,
            [Duration::from_millis(1500), Duration::from_millis(500)]
        );
        bound_to_wall_time(&mut results, Duration::from_secs(5));
        assert_eq!(
            results[0].duration,
            Duration::from_millis(1500),
            "never scaled up"
        );
    }

    #[test]
    fn reads_the_time_libtest_reports() {
        let section = "running 2 tests\ntest result: ok. 2 passed; 0 failed; 0 ignored; \
                       0 measured; 0 filtered out; finished in 0.53s\n";
        assert_eq!(reported_time(section), Some(Duration::from_millis(530)));
        assert_eq!(reported_time("no result line\n"), None);
    }

    #[test]
    fn counts_libtest_results() {
        let mut result = PackageResult::default();
        count_tests(
            b"test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out\n\
              test result: FAILED. 2 passed; 1 failed; 0 ignored\n",
            &mut result,
        );
        assert_eq!((result.tests_passed, result.tests_failed), (5, 1));
    }

    #[test]
    fn finds_rustfmt_diff_paths() {
        assert_eq!(
            diff_path("Diff in /w/crates/a/src/lib.rs:12:"),
            Some("/w/crates/a/src/lib.rs")
        );
        assert_eq!(
            diff_path("Diff in /w/src/main.rs at line 1:"),
            Some("/w/src/main.rs")
        );
        assert_eq!(diff_path(" --> /w/src/x.rs:3:5"), Some("/w/src/x.rs"));
        assert_eq!(diff_path("fn main() {}"), None);
    }
}

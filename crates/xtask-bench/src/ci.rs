//! `cargo xtask bench ci`: the fresh CI machine. A workspace (default: this one) is built once
//! with a real, empty `turborepo-remote-cache` on loopback (every result uploaded: the warm
//! remote cache of a CI setup), then one line is appended to one file of a leaf crate and
//! `xtask build` is timed three ways, side by side in one run, each on the same path (cargo's
//! units hold absolute paths, and CI checks out to a fixed one):
//!
//! 1. today: a fresh copy (empty `target/`, empty local cache; the previous copy is moved
//!    aside and deleted after the timed runs, as a fresh machine has no freshly deleted
//!    files), warm remote, the unit layers
//!    off (`XTASK_UNIT_LAYERS=0`): hits restore final binaries only, and cargo compiles the
//!    changed crate's whole dependency closure;
//! 2. layers: the same with the unit layers (the registry layer and the hits' package units
//!    restored before cargo runs);
//! 3. warm: the same edit in the copy that was just built (a warm `target/`);
//! 4. plain cargo on a fresh machine (`cargo build --workspace`, no cache at all);
//! 5. sccache: `cargo build --workspace` with `RUSTC_WRAPPER=sccache` on a fresh machine, its
//!    shared cache (nginx WebDAV on loopback) seeded by a cold build of the unedited tree on
//!    another fresh machine (the `sccache seed` row), each run with a new sccache server.
//!
//! Every run has `CARGO_INCREMENTAL=0`, as the generated `ci.yml` sets it (rustc's incremental
//! state is not among the cached units, so with it a fresh machine recompiles the changed
//! crates from scratch where a warm `target/` recompiles them incrementally: on ripgrep, 4.0 s
//! against 3.3 s without it, 9.6 to 11.8 s against 2.4 to 4.0 s with it); `--incremental`
//! keeps cargo's default, to show that difference.
//!
//! Each edit appends a different comment, so every timed run has its own miss. Targets (issue
//! 15): (2) at least 10x faster than (1), and within 1.5x of (3). (2), (3) and (5) are medians
//! of `--iterations` runs; the seeds, (1) and (4) run once (each is a cold build of a real
//! workspace).
//! Every timed run starts after a `sync`; a run where other processes took CPU says
//! `DISTURBED:`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::load::CpuCounters;
use crate::sccache::{Sccache, SccacheStats};
use crate::servers::{self, RemoteCacheTools, Server};
use crate::synthetic;
use crate::timing::{format_duration, ratio, time_once};

const TOKEN: &str = "bench-token";

/// Targets: layers vs today (at least), layers vs warm (at most).
pub const SPEEDUP_TARGET: f64 = 10.0;
pub const WARM_TARGET: f64 = 1.5;

#[derive(Debug, Clone)]
pub struct CiBenchOptions {
    /// The workspace to copy (a git work tree).
    pub source: PathBuf,
    /// The file of a leaf crate to append a line to, relative to the workspace root.
    pub edit: PathBuf,
    pub xtask: PathBuf,
    /// Where the copy goes (it is replaced for each fresh machine).
    pub work_dir: PathBuf,
    pub node: Option<PathBuf>,
    pub remote_cache_server: Option<PathBuf>,
    pub sccache: Option<PathBuf>,
    pub nginx: Option<PathBuf>,
    pub tools_dir: PathBuf,
    /// Keep cargo's default incremental compilation instead of `CARGO_INCREMENTAL=0`.
    pub incremental: bool,
    /// Runs of (2), (3) and (5) each (medians); the seeds, (1) and (4) are cold builds, run
    /// once.
    pub iterations: usize,
}

/// One timed run: its wall time, cargo's part, what missed, and whether others took CPU
/// meanwhile.
#[derive(Debug, Clone, Default)]
struct Timed {
    took: Duration,
    cargo: Duration,
    /// `misses / tasks` of an xtask run, sccache's counts of an sccache run.
    misses: String,
    others_cores: f64,
}

pub fn bench_ci(options: &CiBenchOptions) -> anyhow::Result<String> {
    let server_tools = RemoteCacheTools::find(
        options.node.as_deref(),
        options.remote_cache_server.as_deref(),
        &options.tools_dir,
    )?;
    let sccache_program = crate::tools::tool_or_given(
        options.sccache.as_deref(),
        "--sccache",
        &options.tools_dir,
        "sccache",
        "sccache",
    )?;
    // The floor row's decompressor: found before the long runs, not after them.
    let zstd = crate::tools::require_tool(&options.tools_dir, "zstd", "bench")?;
    let nginx = crate::tools::tool_or_given(
        options.nginx.as_deref(),
        "--nginx",
        &options.tools_dir,
        "nginx",
        "remote-cache",
    )?;
    let server = servers::turborepo_remote_cache(&server_tools, TOKEN, None)?;
    let tree = options.work_dir.join("tree");
    let summary = options.work_dir.join("summary.json");
    let before = CpuCounters::read()?;
    crate::cold::progress("bench ci: seeding the remote cache (a cold build, uploading)");
    crate::cold::copy_work_tree(&options.source, &tree)?;
    let seed = timed(options, &tree, &server, true, &summary)?;
    let iterations = options.iterations.max(1);
    let mut warm = Vec::new();
    for n in 0..iterations {
        crate::cold::progress(&format!(
            "bench ci: (3) the edit on a warm target/ ({}/{iterations})",
            n + 1
        ));
        append_edit(&tree, &options.edit, 300 + n)?;
        warm.push(timed(options, &tree, &server, true, &summary)?);
    }
    crate::cold::progress("bench ci: (1) fresh machine, final binaries only");
    fresh_machine(options, &tree, 1)?;
    append_edit(&tree, &options.edit, 1)?;
    let today = timed(options, &tree, &server, false, &summary)?;
    let layers = fresh_machines(
        options,
        &tree,
        ("(2) fresh machine, unit layers", 200),
        || timed(options, &tree, &server, true, &summary),
    )?;
    crate::cold::progress("bench ci: the floor (the restored target/ written by tar and zstd)");
    let floor = restore_floor(&tree.join("target"), &options.work_dir, &zstd)?;
    crate::cold::progress("bench ci: (4) fresh machine, plain cargo");
    fresh_machine(options, &tree, 400)?;
    append_edit(&tree, &options.edit, 400)?;
    let plain = timed_cargo(options, &tree, None)?;
    // From here, sccache's server (not a child of this process) compiles: it is not "others".
    let whole = CpuCounters::read()?.since(&before);
    let sccache = Sccache::start(sccache_program, &nginx, &options.work_dir)?;
    crate::cold::progress("bench ci: sccache seed (a cold build with RUSTC_WRAPPER=sccache)");
    fresh_machine(options, &tree, 500)?;
    let sccache_seed = timed_cargo(options, &tree, Some(&sccache))?;
    if sccache.stored_files() == 0 {
        bail!("the sccache seed stored nothing on the WebDAV server");
    }
    let with_sccache = fresh_machines(options, &tree, ("(5) fresh machine, sccache", 600), || {
        timed_cargo(options, &tree, Some(&sccache))
    })?;
    drop(sccache);
    remove_discarded(&options.work_dir)?;
    let rows = Rows {
        seed,
        today,
        layers: median_run(layers),
        floor,
        warm: median_run(warm),
        plain,
        sccache_seed,
        sccache: median_run(with_sccache),
    };
    Ok(report(
        options,
        &rows,
        whole.other_cores() + whole.steal_cores(),
    ))
}

/// Every row of the report.
struct Rows {
    seed: Timed,
    today: Timed,
    layers: Timed,
    floor: Timed,
    warm: Timed,
    plain: Timed,
    sccache_seed: Timed,
    sccache: Timed,
}

/// The least a fresh machine's restore can cost here: the `target/` that run (2) left, archived
/// as the cache archives it (tar, zstd level 1; untimed), then extracted by `tar` with `zstd`
/// into a new directory, timed: the same files decompressed and written, with no network, no
/// digest and no cargo. (2)'s own part (its time less cargo's) cannot go below it, so (3) plus
/// this is the closest to (3) that any restore reaches on this machine.
fn restore_floor(target: &Path, work_dir: &Path, zstd: &Path) -> anyhow::Result<Timed> {
    let archive = work_dir.join("floor.tar.zst");
    let extracted = work_dir.join("floor-extracted");
    // An earlier run that stopped halfway may have left it: the timed extraction starts empty.
    set_aside(work_dir, &extracted, "floor-earlier")?;
    let (files, bytes) = file_count_and_size(target)?;
    let mut pack = Command::new("tar");
    pack.arg("-I")
        .arg(format!("{} -1 -q", zstd.display()))
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(target)
        .arg(".");
    time_once(&mut pack)?;
    std::fs::create_dir_all(&extracted)
        .with_context(|| format!("failed to create `{}`", extracted.display()))?;
    let mut unpack = Command::new("tar");
    unpack
        .arg("-I")
        .arg(format!("{} -q", zstd.display()))
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&extracted);
    crate::timing::sync()?;
    let before = CpuCounters::read()?;
    let took = time_once(&mut unpack)?;
    let window = CpuCounters::read()?.since(&before);
    std::fs::remove_file(&archive)
        .with_context(|| format!("failed to remove `{}`", archive.display()))?;
    set_aside(work_dir, &extracted, "floor")?;
    Ok(Timed {
        took,
        cargo: Duration::ZERO,
        misses: format!("{files} files, {} MB", bytes / 1_000_000),
        others_cores: window.other_cores() + window.steal_cores(),
    })
}

/// How many regular files are under `dir`, and their total size (symlinks are not followed).
fn file_count_and_size(dir: &Path) -> anyhow::Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    crate::runner::walk_files(dir, &[], |metadata| {
        if metadata.is_file() {
            files += 1;
            bytes += metadata.len();
        }
    })?;
    Ok((files, bytes))
}

/// The synthetic tree of `crates` crates ([`synthetic::Shape::standard`]) with crates.io
/// dependencies ([`synthetic::REGISTRY_DEPENDENCIES`], at the versions of `lockfile`), written
/// anew under `parent`: the workspace `bench ci --synthetic` measures.
pub fn synthetic_source(parent: &Path, crates: usize, lockfile: &Path) -> anyhow::Result<PathBuf> {
    let shape = synthetic::Shape::standard(crates);
    let dir = parent.join(format!("n{crates}-registry"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("failed to remove `{}`", dir.display()))?;
    }
    std::fs::create_dir_all(parent)
        .with_context(|| format!("failed to create `{}`", parent.display()))?;
    synthetic::write_tree(&dir, &shape, true)?;
    synthetic::add_registry_dependencies(
        &dir,
        &shape,
        &synthetic::REGISTRY_DEPENDENCIES,
        lockfile,
    )?;
    Ok(dir)
}

/// A fresh copy of the workspace at `tree`, the previous one set aside (`discarded-n`).
fn fresh_machine(options: &CiBenchOptions, tree: &Path, n: usize) -> anyhow::Result<()> {
    set_aside(&options.work_dir, tree, &n.to_string())?;
    crate::cold::copy_work_tree(&options.source, tree)
}

/// Moves `dir`, if it exists, to `discarded-<name>` in `work_dir` (replacing what a crashed
/// run left there), to be deleted only after the timed runs ([`remove_discarded`]): deleting
/// a built `target/` just before a timed run made ext4 scan its recently freed inodes on every
/// file the run then created (a fifth of the tool's CPU in the unit restore), which no fresh
/// CI machine pays.
fn set_aside(work_dir: &Path, dir: &Path, name: &str) -> anyhow::Result<()> {
    let aside = work_dir.join(format!("discarded-{name}"));
    if aside.exists() {
        std::fs::remove_dir_all(&aside)
            .with_context(|| format!("failed to remove `{}`", aside.display()))?;
    }
    if dir.exists() {
        std::fs::rename(dir, &aside)
            .with_context(|| format!("failed to move `{}` aside", dir.display()))?;
    }
    Ok(())
}

/// `--iterations` runs of `run`, each on a fresh machine at `tree` with its own edit
/// (numbered from `first`).
fn fresh_machines(
    options: &CiBenchOptions,
    tree: &Path,
    (label, first): (&str, usize),
    mut run: impl FnMut() -> anyhow::Result<Timed>,
) -> anyhow::Result<Vec<Timed>> {
    let iterations = options.iterations.max(1);
    let mut runs = Vec::new();
    for n in 0..iterations {
        crate::cold::progress(&format!("bench ci: {label} ({}/{iterations})", n + 1));
        fresh_machine(options, tree, first + n)?;
        append_edit(tree, &options.edit, first + n)?;
        runs.push(run()?);
    }
    Ok(runs)
}

/// Deletes the trees [`fresh_machine`] moved aside.
fn remove_discarded(work_dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(work_dir)
        .with_context(|| format!("failed to list `{}`", work_dir.display()))?
        .flatten()
    {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("discarded-")
        {
            std::fs::remove_dir_all(entry.path())
                .with_context(|| format!("failed to remove `{}`", entry.path().display()))?;
        }
    }
    Ok(())
}

/// The run of median wall time (the upper one of an even count).
fn median_run(mut runs: Vec<Timed>) -> Timed {
    runs.sort_by_key(|run| run.took);
    runs.get(runs.len() / 2).cloned().unwrap_or_default()
}

/// Appends a comment line numbered `n` to `file` in `tree`.
fn append_edit(tree: &Path, file: &Path, n: usize) -> anyhow::Result<()> {
    use std::io::Write;
    let path = tree.join(file);
    let mut handle = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .with_context(|| format!("failed to open `{}`", path.display()))?;
    writeln!(handle, "// bench ci edit {n}")
        .with_context(|| format!("failed to write `{}`", path.display()))
}

/// `xtask build` in `tree` with the remote cache, timed, with its run summary's figures.
fn timed(
    options: &CiBenchOptions,
    tree: &Path,
    server: &Server,
    layers: bool,
    summary: &Path,
) -> anyhow::Result<Timed> {
    let mut command = Command::new(&options.xtask);
    command
        .arg("-C")
        .arg(tree)
        .arg("build")
        .arg(format!("--summarize={}", summary.display()))
        .env("CI", "true")
        .env("TURBO_API", server.url())
        .env("TURBO_TOKEN", TOKEN)
        .env("TURBO_TEAM", "bench")
        .env("XTASK_UNIT_LAYERS", if layers { "1" } else { "0" });
    if options.incremental {
        command.env_remove("CARGO_INCREMENTAL");
    } else {
        command.env("CARGO_INCREMENTAL", "0");
    }
    for variable in [
        "XTASK_REMOTE_CACHE_URL",
        "XTASK_CACHE_DIR",
        "CARGO_TARGET_DIR",
    ] {
        command.env_remove(variable);
    }
    // The previous build's writes (a whole `target/`) would otherwise be written back during
    // this run, which a fresh CI machine does not have to do.
    crate::timing::sync()?;
    let before = CpuCounters::read()?;
    let took = time_once(&mut command)?;
    let window = CpuCounters::read()?.since(&before);
    let text = std::fs::read_to_string(summary)
        .with_context(|| format!("failed to read `{}`", summary.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("`{}` is not JSON", summary.display()))?;
    let totals = &json["totals"];
    let tasks = totals["tasks"].as_u64().unwrap_or(0);
    let hits = totals["hits"].as_u64().unwrap_or(0);
    if totals["failed"].as_u64().unwrap_or(0) > 0 {
        bail!(
            "`xtask build` failed in `{}`; see {}",
            tree.display(),
            summary.display()
        );
    }
    Ok(Timed {
        took,
        cargo: Duration::from_millis(totals["cargo_ms"].as_u64().unwrap_or(0)),
        misses: format!("{} / {tasks}", tasks.saturating_sub(hits)),
        others_cores: window.other_cores() + window.steal_cores(),
    })
}

/// `cargo build --workspace` in `tree`, timed, with `sccache` as `RUSTC_WRAPPER` (a new
/// sccache server, started before the clock as a CI job's setup does) or without.
fn timed_cargo(
    options: &CiBenchOptions,
    tree: &Path,
    sccache: Option<&Sccache>,
) -> anyhow::Result<Timed> {
    let mut command = crate::tools::cargo_command();
    command
        .args(["build", "--workspace"])
        .current_dir(tree)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTC_WRAPPER");
    if options.incremental {
        command.env_remove("CARGO_INCREMENTAL");
    } else {
        command.env("CARGO_INCREMENTAL", "0");
    }
    if let Some(sccache) = sccache {
        sccache.restart()?;
        sccache.wrap(&mut command);
    }
    crate::timing::sync()?;
    let before = CpuCounters::read()?;
    let took = time_once(&mut command)?;
    let window = CpuCounters::read()?.since(&before);
    let misses = match sccache {
        Some(sccache) => sccache_counts(&sccache.stats()?),
        None => "-".to_string(),
    };
    Ok(Timed {
        took,
        cargo: took,
        misses,
        others_cores: window.other_cores() + window.steal_cores(),
    })
}

/// An sccache run's column: its server's counts.
fn sccache_counts(stats: &SccacheStats) -> String {
    let mut text = format!(
        "sccache: {} hits, {} misses, {} not cacheable, of {} calls",
        stats.hits, stats.misses, stats.not_cached, stats.requests
    );
    if stats.write_errors > 0 {
        text.push_str(&format!(", {} write errors", stats.write_errors));
    }
    text
}

fn report(options: &CiBenchOptions, rows: &Rows, others: f64) -> String {
    let named = [
        ("seed: cold build, uploading", &rows.seed),
        ("(1) fresh machine, final binaries only", &rows.today),
        ("(2) fresh machine, unit layers", &rows.layers),
        ("floor: (2)'s target/ written by tar and zstd", &rows.floor),
        ("(3) warm target/", &rows.warm),
        ("(4) fresh machine, plain cargo", &rows.plain),
        (
            "sccache seed: cold build, RUSTC_WRAPPER=sccache",
            &rows.sccache_seed,
        ),
        ("(5) fresh machine, sccache (WebDAV)", &rows.sccache),
    ];
    let mut text = format!(
        "bench ci: `{}`, one line appended to `{}`, the machines in `{}`, \
         turborepo-remote-cache and nginx WebDAV on loopback, {}, (2), (3) and (5) medians of \
         {} runs, the seeds, (1) and (4) one run each (cold builds)\n\n\
         | run | time | cargo | misses / tasks (the floor: what it wrote) | others' cores |\n\
         |---|---|---|---|---|\n",
        options.source.display(),
        options.edit.display(),
        options.work_dir.display(),
        if options.incremental {
            "cargo's default incremental compilation"
        } else {
            "CARGO_INCREMENTAL=0 (as the generated ci.yml)"
        },
        options.iterations.max(1),
    );
    for (name, row) in named {
        let cargo = if row.cargo.is_zero() {
            "-".to_string()
        } else {
            format_duration(row.cargo)
        };
        text.push_str(&format!(
            "| {name} | {} | {cargo} | {} | {:.2} |\n",
            format_duration(row.took),
            row.misses,
            row.others_cores
        ));
    }
    let speedup = ratio(rows.today.took, rows.layers.took);
    let versus_warm = ratio(rows.layers.took, rows.warm.took);
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    text.push_str(&format!(
        "\n(2) vs (1): {speedup:.1}x faster (target >= {SPEEDUP_TARGET}x: {})\n\
         (2) vs (3): {versus_warm:.2}x (target <= {WARM_TARGET}x: {})\n\
         (2) less its cargo time: {}, the floor {}: (3) plus the floor is {:.2}x of (3), the \
         closest any restore comes here\n\
         (2) vs (5), sccache: {:.2}x faster\n\
         (2) vs (4), plain cargo: {:.1}x faster\n",
        verdict(speedup >= SPEEDUP_TARGET),
        verdict(versus_warm <= WARM_TARGET),
        format_duration(rows.layers.took.saturating_sub(rows.layers.cargo)),
        format_duration(rows.floor.took),
        ratio(rows.warm.took + rows.floor.took, rows.warm.took),
        ratio(rows.sccache.took, rows.layers.took),
        ratio(rows.plain.took, rows.layers.took),
    ));
    text.push_str(
        "(the sccache rows' others' cores include sccache's own server, which runs the compiles \
         outside this process tree: they are not counted as disturbance)\n",
    );
    let sccache_rows = [&rows.sccache_seed, &rows.sccache];
    if others > crate::load::DISTURBED_CORES
        || named.iter().any(|(_, r)| {
            !sccache_rows.iter().any(|s| std::ptr::eq(*s, *r))
                && r.others_cores > crate::load::DISTURBED_CORES
        })
    {
        text.push_str(&format!(
            "DISTURBED: other processes took {others:.2} cores on average over the run (up to \
             the sccache rows)\n"
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_counts_the_files_under_a_tree_and_their_bytes_not_links() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("debug/deps")).unwrap();
        std::fs::write(dir.path().join("debug/deps/a.rlib"), [0u8; 1000]).unwrap();
        std::fs::write(dir.path().join("debug/app"), [0u8; 24]).unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("debug/link")).unwrap();
        assert_eq!(file_count_and_size(dir.path()).unwrap(), (2, 1024));
    }

    #[test]
    fn the_floor_extracts_the_tree_again_and_sets_the_copy_aside() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let zstd =
            crate::tools::require_tool(&crate::tools::tools_dir(&root), "zstd", "bench").unwrap();
        let work = tempfile::tempdir().unwrap();
        let target = work.path().join("target");
        std::fs::create_dir_all(target.join("debug/deps")).unwrap();
        std::fs::write(target.join("debug/deps/a.rlib"), [7u8; 1000]).unwrap();
        std::fs::write(target.join("debug/app"), [9u8; 24]).unwrap();
        // What a run that stopped halfway left: not extracted over.
        std::fs::create_dir_all(work.path().join("floor-extracted")).unwrap();
        std::fs::write(work.path().join("floor-extracted/stale"), b"x").unwrap();

        let floor = restore_floor(&target, work.path(), &zstd).unwrap();

        assert_eq!(floor.misses, "2 files, 0 MB");
        assert!(floor.cargo.is_zero());
        let copy = work.path().join("discarded-floor");
        assert_eq!(
            std::fs::read(copy.join("debug/deps/a.rlib")).unwrap(),
            [7u8; 1000]
        );
        assert_eq!(std::fs::read(copy.join("debug/app")).unwrap(), [9u8; 24]);
        assert!(!copy.join("stale").exists());
        assert!(!work.path().join("floor.tar.zst").exists());
        assert!(!work.path().join("floor-extracted").exists());
    }

    #[test]
    fn the_report_compares_with_both_targets_and_says_disturbed() {
        let s = |secs: u64| Timed {
            took: Duration::from_secs(secs),
            cargo: Duration::from_secs(secs),
            misses: "1 / 20".to_string(),
            others_cores: 0.0,
        };
        let rows = |today, layers, warm| Rows {
            seed: s(300),
            today: s(today),
            layers: s(layers),
            floor: Timed {
                took: Duration::from_secs(4),
                cargo: Duration::ZERO,
                misses: "600 files, 500 MB".to_string(),
                others_cores: 0.0,
            },
            warm: s(warm),
            plain: s(250),
            sccache_seed: s(320),
            sccache: s(40),
        };
        let options = CiBenchOptions {
            source: PathBuf::from("/w"),
            edit: PathBuf::from("a/src/lib.rs"),
            xtask: PathBuf::from("xtask"),
            work_dir: PathBuf::from("/tmp"),
            node: None,
            remote_cache_server: None,
            sccache: None,
            nginx: None,
            tools_dir: PathBuf::from("/t"),
            incremental: false,
            iterations: 3,
        };
        let text = report(&options, &rows(200, 10, 8), 0.0);
        assert!(text.contains("20.0x faster (target >= 10x: met)"), "{text}");
        assert!(text.contains("1.25x (target <= 1.5x: met)"), "{text}");
        assert!(
            text.contains(
                "| floor: (2)'s target/ written by tar and zstd | 4.00 s | - | 600 files, 500 MB |"
            ),
            "{text}"
        );
        // (2) is 10 s of which cargo 10 s; (3) 8 s plus the floor's 4 s is 1.5x of (3).
        assert!(
            text.contains("(2) less its cargo time: 0 ms, the floor 4.00 s: (3) plus the floor is 1.50x of (3)"),
            "{text}"
        );
        assert!(!text.contains("DISTURBED"), "{text}");
        assert!(text.contains("CARGO_INCREMENTAL=0"), "{text}");
        assert!(text.contains("medians of 3 runs"), "{text}");
        assert!(text.contains("the machines in `/tmp`"), "{text}");
        assert!(text.contains("(2) vs (5), sccache: 4.00x faster"), "{text}");
        assert!(
            text.contains("(2) vs (4), plain cargo: 25.0x faster"),
            "{text}"
        );
        assert!(text.contains("| 1 / 20 |"), "{text}");
        // sccache's server compiles outside the process tree: not a disturbance.
        let mut busy_sccache = rows(200, 10, 8);
        busy_sccache.sccache.others_cores = 1.7;
        busy_sccache.sccache_seed.others_cores = 1.7;
        let text = report(&options, &busy_sccache, 0.0);
        assert!(!text.contains("DISTURBED"), "{text}");
        let mut busy_plain = rows(200, 10, 8);
        busy_plain.plain.others_cores = 0.5;
        assert!(report(&options, &busy_plain, 0.0).contains("DISTURBED"));
        let text = report(&options, &rows(50, 10, 5), 1.0);
        assert!(
            text.contains("5.0x faster (target >= 10x: NOT met)"),
            "{text}"
        );
        assert!(text.contains("2.00x (target <= 1.5x: NOT met)"), "{text}");
        assert!(
            text.contains("DISTURBED: other processes took 1.00 cores"),
            "{text}"
        );
    }
}

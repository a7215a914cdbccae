//! `cargo xtask bench image`: for `apps/api` (the first app when there is no `api`), side by
//! side in one run: image assembly once the static binary exists (target under 300 ms), a
//! cached no-op `image` run (target under 100 ms), and `podman build` of the same binary into a
//! FROM-scratch image. Reports medians and ratios on stdout.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use xtask_engine::report::{ReportMode, Reporter};
use xtask_engine::{CliResult, Location, Outcome, load_workspace};

use crate::generate::apps;
use crate::image::{ImageOptions, build_image, image_spec};
use crate::oci;

/// Runs per measurement.
const RUNS: usize = 5;
/// Target of image assembly.
const ASSEMBLY_TARGET: Duration = Duration::from_millis(300);
/// Target of a cached no-op image run.
const NOOP_TARGET: Duration = Duration::from_millis(100);

/// `cargo xtask bench image`: runs the benchmark; the report on stdout, exit code 1 when a
/// target is missed.
pub fn bench_image(location: &Location, jobs: usize) -> CliResult {
    let workspace = load_workspace(location)?;
    let all = apps(&workspace);
    let app = all
        .iter()
        .find(|a| a.package.name == "api")
        .or(all.first())
        .copied()
        .context("no app (package with [package.metadata.xtask.app]) to benchmark")?;
    let options = ImageOptions {
        location: Location {
            manifest_path: Some(workspace.manifest_path.clone()),
            directory: None,
        },
        app: app.package.name.clone(),
        tag: None,
        base: None,
        push: None,
        jobs,
    };
    let loud = Reporter::new(ReportMode::Plain);
    // Setup, untimed: the binary (built or restored) and a cached image.
    let built = build_image(&options, &loud)?;
    let quiet = Reporter::new(ReportMode::Plain).with_quiet_hits(true);

    let scratch = tempfile::tempdir().context("failed to create a temporary directory")?;
    let assembly = median(RUNS, |i| {
        let started = Instant::now();
        let bytes = std::fs::read(&built.binary)
            .with_context(|| format!("failed to read `{}`", built.binary.display()))?;
        let spec = image_spec(&workspace, app, &options, bytes)?;
        let image = oci::assemble(&spec)?;
        let dir = scratch.path().join(format!("run-{i}"));
        oci::write_layout(&image, &dir.join("oci"))?;
        oci::write_docker_archive(&image, &dir.join("image.tar"), spec.created_epoch)?;
        Ok(started.elapsed())
    })?;
    let noop = median(RUNS, |_| {
        let started = Instant::now();
        let again = build_image(&options, &quiet)?;
        if !again.cache_hit || again.record.digest != built.record.digest {
            bail!("the no-op image run was not a cache hit of the same image");
        }
        Ok(started.elapsed())
    })?;
    let tools_conf = workspace
        .target_dir
        .join("ci-tools")
        .join("containers.conf");
    let podman = median(3, |i| {
        podman_build(&built.binary, scratch.path(), &tools_conf, i)
    })?;

    let binary_size = std::fs::metadata(&built.binary)
        .map(|m| m.len())
        .unwrap_or_default();
    let ratio = |d: Duration| podman.as_secs_f64() / d.as_secs_f64().max(1e-9);
    let verdict = |d: Duration, target: Duration| if d < target { "ok" } else { "MISSED" };
    let report = format!(
        "bench image: {app} ({size:.1} MiB static binary), medians of {RUNS} runs ({podman_runs} for podman)\n\
         {:<44} {:>9}  {:>16}  target\n\
         {:<44} {:>7.1}ms  {:>15.1}x  < {} ms: {}\n\
         {:<44} {:>7.1}ms  {:>15.1}x  < {} ms: {}\n\
         {:<44} {:>7.1}ms  {:>15.1}x\n",
        "measurement",
        "time",
        "faster than podman",
        "image assembly (binary exists)",
        ms(assembly),
        ratio(assembly),
        ASSEMBLY_TARGET.as_millis(),
        verdict(assembly, ASSEMBLY_TARGET),
        "cached no-op `cargo xtask image` run",
        ms(noop),
        ratio(noop),
        NOOP_TARGET.as_millis(),
        verdict(noop, NOOP_TARGET),
        "podman build FROM scratch (same binary)",
        ms(podman),
        1.0,
        app = app.package.name,
        size = binary_size as f64 / 1_048_576.0,
        podman_runs = 3,
    );
    Ok(Outcome::passed(assembly < ASSEMBLY_TARGET && noop < NOOP_TARGET).with_stdout(report))
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn median(
    runs: usize,
    mut measure: impl FnMut(usize) -> anyhow::Result<Duration>,
) -> anyhow::Result<Duration> {
    let mut times = (0..runs)
        .map(&mut measure)
        .collect::<anyhow::Result<Vec<_>>>()?;
    times.sort();
    Ok(times[times.len() / 2])
}

/// `podman build --no-cache` of `FROM scratch` + `COPY` of the binary, in private storage.
fn podman_build(
    binary: &Path,
    scratch: &Path,
    containers_conf: &Path,
    run: usize,
) -> anyhow::Result<Duration> {
    let context = scratch.join(format!("podman-context-{run}"));
    std::fs::create_dir_all(&context)
        .with_context(|| format!("failed to create `{}`", context.display()))?;
    std::fs::copy(binary, context.join("app"))
        .with_context(|| format!("failed to copy `{}`", binary.display()))?;
    std::fs::write(
        context.join("Containerfile"),
        "FROM scratch\nCOPY app /app/app\nUSER 65532:65532\nENTRYPOINT [\"/app/app\"]\n",
    )
    .context("failed to write the Containerfile")?;
    let storage = scratch.join("podman-storage");
    let started = Instant::now();
    let output = podman_command(&storage, containers_conf)
        .args([
            "build",
            "--no-cache",
            "--network=none",
            "-q",
            "-t",
            "bench-image:latest",
            "-f",
        ])
        .arg(context.join("Containerfile"))
        .arg(&context)
        .stdin(Stdio::null())
        .output()
        .context(
            "failed to run `podman build` (install it with `bash .ci/install-tools containers`)",
        )?;
    let took = started.elapsed();
    if !output.status.success() {
        bail!(
            "`podman build` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(took)
}

/// podman with private storage under `storage`, and `containers_conf` (the one
/// `.ci/tools.d/containers.sh` writes) when `CONTAINERS_CONF` is not set.
pub fn podman_command(storage: &Path, containers_conf: &Path) -> Command {
    let mut command = Command::new("podman");
    command
        .arg("--root")
        .arg(storage.join("root"))
        .arg("--runroot")
        .arg(storage.join("run"))
        .args(["--storage-driver", "vfs"]);
    if std::env::var_os("CONTAINERS_CONF").is_none() && containers_conf.is_file() {
        command.env("CONTAINERS_CONF", containers_conf);
    }
    command
}

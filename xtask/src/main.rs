//! `cargo xtask`: the command line of the build tool. Parses flags with clap and calls one
//! library function per command, which returns its outcome (exit code and stdout) or an
//! error carrying its exit code; `main` prints and exits. No logic lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use xtask_engine::report::{ReportMode, Reporter};
use xtask_engine::{
    AffectedOptions, Base, CacheAction, CiOptions, CliError, CliResult, DryRunFormat, GraphFormat,
    GraphOptions, GraphView, Location, Outcome, RunOptions, SummaryPath, TaskName, WhyOptions,
    job_count, run_tasks,
};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  a task (or a check) failed
  2  the command line is invalid
  3  the configuration is invalid (unknown key, wrong type, bad value, task cycle, unknown
     task or package, an `affected` base that is not a commit or no default branch to
     compare with); nothing ran and nothing was written to the cache
  4  the environment failed (cargo metadata, git, the file system, a registry)
  5  release refused (dirty tree, wrong branch, failing tests); nothing was changed

Environment:
  XTASK_CACHE_DIR      local cache directory (default: turbo-like-cache/ in the workspace)
  XTASK_AFFECTED_BASE  default git ref for --affected and `affected` (default: the branch
                       origin/HEAD points at, else main, else master; none: exit 3)
  CI                   when set, plain line output instead of progress bars
  XTASK_SHARD_BY_DURATION=1  --shard balances by the local cache's recorded durations (only
                       when every shard starts from the same cache; default: by count)
  XTASK_UNIT_LAYERS=0  no cargo units from or into the cache (a fresh target/ then compiles
                       every dependency of a changed crate; default: on)
  SOURCE_DATE_EPOCH    file times of release archives and images (default: the last commit's)
  XTASK_RELEASE_PUBLISH_DRY_RUN=1  `release --execute` runs `cargo publish --dry-run`
  XTASK_RELEASE_MAX_RATE_LIMIT_WAIT  longest wait (seconds) for a registry rate limit (900)
  XTASK_REGISTRY_USERNAME, XTASK_REGISTRY_PASSWORD
                       credentials for `image --push` and `release --execute --push` (Basic,
                       or for a Bearer token)
  XTASK_KUBECTL        the kubectl program `deploy` and `smoke --env` run (default: kubectl
                       on PATH)";

/// Cached builds, tests and custom tasks for Cargo workspaces.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, after_help = EXIT_CODES, max_term_width = 100)]
struct Cli {
    /// Run as if started in DIR (the workspace is the nearest Cargo.toml at or above it).
    #[arg(short = 'C', global = true, value_name = "DIR")]
    directory: Option<PathBuf>,
    /// Path to the workspace's Cargo.toml.
    #[arg(long, global = true, value_name = "PATH")]
    manifest_path: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build every package (`cargo build`), restoring unchanged ones from the cache.
    Build(TaskArgs),
    /// Run every package's tests; unchanged packages' passing results come from the cache.
    Test(TaskArgs),
    /// Lint with clippy (`--all-targets -- -D warnings`).
    Lint(TaskArgs),
    /// Check formatting (`cargo fmt --check`).
    Fmt(TaskArgs),
    /// Run a custom task defined in `[workspace.metadata.xtask.tasks]`.
    Run {
        /// The task name.
        task: TaskName,
        #[command(flatten)]
        args: TaskArgs,
    },
    /// Print the package graph, or the task graph of --task, as dot, mermaid, JSON or an
    /// interactive HTML page.
    Graph {
        /// Show the task graph of this task (repeatable).
        #[arg(long = "task", value_name = "TASK")]
        tasks: Vec<TaskName>,
        #[arg(long, value_enum, default_value_t = GraphFormatArg::Dot)]
        format: GraphFormatArg,
        /// With --format html: colour the packages changed since REF and their dependents (default as for `affected`).
        #[arg(long, value_name = "REF", num_args = 0..=1, require_equals = true, default_missing_value = "")]
        affected: Option<Base>,
    },
    /// Explain why PKG:TASK would run: what changed since its last cached run, file by file.
    Why {
        /// The task, as PACKAGE:TASK (e.g. `api:build`).
        task: String,
        /// Compare with the last upload to the remote cache (e.g. CI's) instead of the last
        /// local run.
        #[arg(long)]
        remote: bool,
        /// The packages the run to explain selected, as given to it (a cargo task's key holds
        /// the selection). Repeatable.
        #[arg(short, long = "package", value_name = "PKG")]
        packages: Vec<String>,
        /// The run to explain used the release profile.
        #[arg(long)]
        release: bool,
    },
    /// List packages changed since a git ref and the packages that depend on them.
    Affected {
        /// The git ref to compare with (default: $XTASK_AFFECTED_BASE, else origin/HEAD's branch, `main` or `master`).
        #[arg(long, value_name = "REF")]
        since: Option<String>,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Inspect or maintain the local cache.
    Cache {
        #[command(subcommand)]
        action: CacheCommand,
    },
    /// Build and start the apps, then on every change rebuild (through the cache) and restart
    /// only the apps whose inputs changed; Ctrl-C stops them all.
    Dev(DevArgs),
    /// Generate each app's Dockerfiles, .dockerignore, compose.yaml and .env.example.
    Docker {
        /// Check that the committed files are current instead of writing (exit 1 on drift).
        #[arg(long)]
        check: bool,
    },
    /// Write the minimal workspace subset (members and lockfile) that builds APP.
    Prune {
        /// The package to build.
        app: String,
        /// Where to write it (must not exist or be empty).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Build APP's static binary (cached) and a reproducible OCI image of it, without Docker.
    Image {
        /// The app (a package with [package.metadata.xtask.app]).
        app: String,
        /// The image tag (default: the package version).
        #[arg(long, value_name = "T")]
        tag: Option<String>,
        /// A base image given as a local OCI layout, DIR or DIR:TAG (default: scratch).
        #[arg(long, value_name = "DIR[:TAG]")]
        base: Option<String>,
        /// Push to REGISTRY (HOST[:PORT][/NAMESPACE]) with the OCI distribution API.
        #[arg(long, value_name = "REGISTRY")]
        push: Option<String>,
    },
    /// Benchmarks, reported as ratios measured side by side in one run.
    Bench {
        #[command(subcommand)]
        bench: BenchCommand,
    },
    /// Plan a release (versions, changelogs, tags, artifacts, publishing); --execute applies it.
    Release(ReleaseArgs),
    /// Run `[workspace.metadata.xtask.ci] setup` (here: install the tools the tests use when
    /// missing), then every check (fmt, clippy, all tests including generated-file drift)
    /// through the cache; `ci generate` writes the GitHub Actions workflows.
    #[command(args_conflicts_with_subcommands = true)]
    Ci {
        #[command(subcommand)]
        action: Option<CiCommand>,
        /// Parallel jobs (default: the number of cores).
        #[arg(short, long, value_name = "N")]
        jobs: Option<usize>,
        /// Ignore cache hits.
        #[arg(long)]
        force: bool,
        /// Run only shard K of N: a deterministic, duration-balanced share of the packages.
        #[arg(long, value_name = "K/N")]
        shard: Option<xtask_engine::Shard>,
    },
    /// Generate the Kustomize base and overlays in k8s/ from the apps' metadata.
    K8s {
        /// Write nothing; fail (exit 1) with a diff when k8s/ is out of date.
        #[arg(long)]
        check: bool,
    },
    /// Render ENV's overlay with built images pinned by digest, apply it with kubectl, wait for
    /// every rollout and roll back a failed one.
    Deploy {
        /// The environment.
        #[arg(value_enum)]
        environment: EnvironmentArg,
        /// Print the plan (images, rendered objects, kubectl steps) without running it.
        #[arg(long)]
        dry_run: bool,
        /// Roll back instead: `kubectl rollout undo` of every app's Deployment, each awaited.
        #[arg(long, conflicts_with = "dry_run")]
        rollback: bool,
    },
    /// Check running apps: readiness (polled while an app becomes ready), health, metrics and
    /// the requests each app declares in `[[package.metadata.xtask.app.smoke]]`; exit 1 when
    /// any check fails. Default: the apps on 127.0.0.1 at their ports (as `dev` runs them).
    Smoke(SmokeArgs),
}

#[derive(Debug, Args)]
struct SmokeArgs {
    /// Check the apps deployed to ENV, through `kubectl port-forward`.
    #[arg(
        long = "env",
        value_enum,
        value_name = "ENV",
        conflicts_with = "base_url"
    )]
    environment: Option<EnvironmentArg>,
    /// Check one app (name it with --app when there are several) at this URL.
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// Only this app (repeatable; default: every app).
    #[arg(long = "app", value_name = "APP")]
    apps: Vec<String>,
    /// Seconds each request may take.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    timeout: u64,
    /// Seconds an app may take to become ready.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    ready_within: u64,
}

#[derive(Debug, Subcommand)]
enum CiCommand {
    /// Write .github/workflows/ (ci, images, deploy) from the workspace.
    Generate {
        /// Write nothing; fail (exit 1) with a diff when the workflows are out of date.
        #[arg(long)]
        check: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EnvironmentArg {
    Dev,
    Staging,
    Production,
}

impl From<EnvironmentArg> for xtask_deploy::Environment {
    fn from(environment: EnvironmentArg) -> xtask_deploy::Environment {
        match environment {
            EnvironmentArg::Dev => xtask_deploy::Environment::Dev,
            EnvironmentArg::Staging => xtask_deploy::Environment::Staging,
            EnvironmentArg::Production => xtask_deploy::Environment::Production,
        }
    }
}

#[derive(Debug, Args)]
struct DevArgs {
    /// The apps to run (packages with `[package.metadata.xtask.app]`); default: every app.
    #[arg(value_name = "APP")]
    apps: Vec<String>,
    /// How long a stopped app may take to exit after SIGTERM before SIGKILL (e.g. 500ms, 10s).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = xtask_dev::parse_duration)]
    grace_period: std::time::Duration,
    /// Quiet time that ends a burst of file changes that did not settle into a complete save
    /// (e.g. 30ms); a complete save starts the build at once.
    #[arg(long, value_name = "DURATION", default_value = "30ms", value_parser = xtask_dev::parse_duration)]
    debounce: std::time::Duration,
    /// Let each new process bind its port itself instead of inheriting the socket `dev` holds.
    #[arg(long)]
    no_socket_handover: bool,
    /// Build with the release profile.
    #[arg(long)]
    release: bool,
    /// Parallel jobs (default: the number of cores).
    #[arg(short, long, value_name = "N")]
    jobs: Option<usize>,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// `dev`: a one-line edit until the new process answers, split into the tool's overhead and
    /// cargo's time (runs on a copy of the workspace).
    Dev {
        /// The app to edit (default: the first app).
        #[arg(long, value_name = "APP")]
        app: Option<String>,
        /// Measured edits (after one warm-up edit).
        #[arg(long, value_name = "N", default_value_t = 5)]
        iterations: usize,
    },
    /// Image assembly and a cached no-op `image` run for apps/api, beside `podman build`.
    Image,
    /// Cold build, cold test and warm test against cargo on a copy of a workspace (each tool
    /// on its own copy), with the tool's own part of each run.
    Cold {
        /// The workspace (a git work tree; default: this one).
        #[arg(long, value_name = "PATH")]
        workspace: Option<PathBuf>,
        /// Runs per scenario.
        #[arg(long, value_name = "N", default_value_t = 1)]
        iterations: usize,
        /// Only the cold build.
        #[arg(long)]
        build_only: bool,
        /// Only this package, with both tools (`-p`; repeatable), instead of the whole
        /// workspace: for a workspace some of whose members cannot build here.
        #[arg(short = 'p', long = "package", value_name = "NAME")]
        packages: Vec<String>,
    },
    /// The fresh CI machine: a one-line edit in a leaf crate, `xtask build` on an empty
    /// `target/` with a warm remote cache (turborepo-remote-cache on loopback), without and with
    /// the cached cargo units, and on a warm `target/`.
    Ci {
        /// The workspace (a git work tree; default: this one).
        #[arg(long, value_name = "PATH", conflicts_with = "synthetic")]
        workspace: Option<PathBuf>,
        /// Instead of a workspace, the synthetic tree of N crates with crates.io dependencies
        /// (`anyhow`, `serde_json`, `sha2`, at this workspace's locked versions) added to each.
        #[arg(long, value_name = "N")]
        synthetic: Option<usize>,
        /// The package whose first target's source gets the edit (default: the first, by
        /// name, of the members no other member depends on).
        #[arg(long, value_name = "NAME")]
        package: Option<String>,
        /// `node` (default: target/ci-tools/bin, then PATH).
        #[arg(long, value_name = "PATH")]
        node: Option<PathBuf>,
        /// turborepo-remote-cache's `dist/cli.js` (default: `turborepo-remote-cache` in
        /// target/ci-tools/bin, then PATH).
        #[arg(long, value_name = "PATH")]
        remote_cache_server: Option<PathBuf>,
        /// `sccache`, compared as `RUSTC_WRAPPER` with nginx WebDAV as its shared cache
        /// (default: target/ci-tools/bin, then PATH; `bash .ci/install-tools sccache`).
        #[arg(long, value_name = "PATH")]
        sccache: Option<PathBuf>,
        /// `nginx`, sccache's WebDAV server (default: target/ci-tools/bin, then PATH).
        #[arg(long, value_name = "PATH")]
        nginx: Option<PathBuf>,
        /// Keep cargo's default incremental compilation (default: `CARGO_INCREMENTAL=0`, as
        /// the generated ci.yml sets it).
        #[arg(long)]
        incremental: bool,
        /// Runs of the fresh machine with the units, with sccache, and of the warm `target/`
        /// (medians); the seeds and the runs without a cache are cold builds, run once.
        #[arg(long, default_value_t = 3, value_name = "N")]
        iterations: usize,
        /// Where the copies (the machines) go (default: target/bench/ci). A new CI machine
        /// has a new file system: on a disk where many files were deleted lately, ext4
        /// without a journal scans the freed inodes for every file it creates, and the
        /// restoring rows pay for it. A directory on a newly made file system measures what
        /// a new machine's disk gives.
        #[arg(long, value_name = "DIR")]
        work_dir: Option<PathBuf>,
    },
    /// The README's commands (`build`, `lint`, `test`) in this workspace, all cached, against
    /// cargo's no-op equivalents, and the `cargo xtask` alias's own cost.
    Readme {
        /// Runs per command (after one warm-up).
        #[arg(long, value_name = "N", default_value_t = 5)]
        iterations: usize,
    },
    /// Remote cache: a second machine's full restore from a loopback server vs a cold build,
    /// and the upload overhead, on a synthetic workspace.
    Remote {
        /// Crates in the synthetic workspace.
        #[arg(long, value_name = "N", default_value_t = 500)]
        crates: usize,
        /// `build` (cargo) or `size` (the synthetic tree's shell task, as turbo runs it).
        #[arg(long, value_name = "TASK", default_value = "build")]
        task: String,
        /// Cold builds per variant (each restore is measured 3 times per iteration).
        #[arg(long, value_name = "N", default_value_t = 1)]
        iterations: usize,
        /// `node` (default: target/ci-tools/bin, then PATH).
        #[arg(long, value_name = "PATH")]
        node: Option<PathBuf>,
        /// turborepo-remote-cache's `dist/cli.js` (default: `turborepo-remote-cache` in
        /// target/ci-tools/bin, then PATH).
        #[arg(long, value_name = "PATH")]
        remote_cache_server: Option<PathBuf>,
    },
    /// The task runner side by side with Turborepo on synthetic trees (fully cached, outputs
    /// deleted, dry run, leaf and root change, cold, big inputs, `cargo build` no-op, memory);
    /// writes the table to BENCHMARKS.md.
    Runner {
        /// Tree sizes, comma-separated.
        #[arg(long, value_name = "N,N", value_delimiter = ',', default_values_t = [100, 500])]
        crates: Vec<usize>,
        /// Runs per tool of each quick scenario.
        #[arg(long, value_name = "N", default_value_t = 10)]
        iterations: usize,
        /// Runs per tool of root change and cold at N <= 100.
        #[arg(long, value_name = "N", default_value_t = 10)]
        slow_iterations: usize,
        /// Runs per tool of root change and cold above N = 100 (turbo's cold run takes minutes).
        #[arg(long, value_name = "N", default_value_t = 3)]
        large_slow_iterations: usize,
        /// Skip the big-inputs tree (50 crates, 20 files of 200 kB each).
        #[arg(long)]
        skip_big: bool,
        /// Skip `xtask build` against `cargo build` no-op and the `cargo xtask` alias cost.
        #[arg(long)]
        skip_cargo: bool,
        /// Print the table only; do not write BENCHMARKS.md.
        #[arg(long)]
        no_write: bool,
        /// Keep N cores busy (one busy-loop thread each) for the whole run; the report says so.
        #[arg(long, value_name = "N", default_value_t = 0)]
        load: usize,
        /// The xtask binary to time (default: `cargo build --release -p xtask` of this repository).
        #[arg(long, value_name = "PATH")]
        xtask: Option<PathBuf>,
        /// The turbo binary (default: target/ci-tools/bin, then PATH).
        #[arg(long, value_name = "PATH")]
        turbo: Option<PathBuf>,
        /// npm, which turbo runs the tasks with (default: target/ci-tools/bin, then PATH).
        #[arg(long, value_name = "PATH")]
        npm: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// Entries, size and limit of the local cache.
    Stats,
    /// Delete every cache entry.
    Clean,
    /// Evict least-recently-used entries down to the size limit and drop unreferenced blobs.
    Prune,
    /// Probe the configured remote cache (status, auth, write, read, latency); exit 4 if broken.
    Doctor,
}

#[derive(Debug, Args)]
struct TaskArgs {
    /// Only these packages (and the tasks they depend on). Repeatable.
    #[arg(short, long = "package", value_name = "PKG")]
    packages: Vec<String>,
    /// Only packages changed since REF (default: $XTASK_AFFECTED_BASE, else origin/HEAD's branch, `main` or `master`) and their dependents.
    #[arg(long, value_name = "REF", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    affected: Option<Base>,
    /// Ignore cache hits and run every task (results are still cached).
    #[arg(long)]
    force: bool,
    /// Do not write results to the cache (hits are still used; with --force the cache is bypassed).
    #[arg(long)]
    no_cache: bool,
    /// Print what would run (hash, cache status, inputs) without running anything.
    #[arg(long, value_enum, value_name = "FORMAT", num_args = 0..=1, require_equals = true, default_missing_value = "text")]
    dry_run: Option<DryRunArg>,
    /// Write a JSON run summary (per task: hash, status, start, duration, inputs count, why it ran) to PATH or the cache's runs/, and an HTML report beside it (same name, .html).
    #[arg(long, value_name = "PATH", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    summarize: Option<SummaryPath>,
    /// Write a Chrome trace of the run to FILE (open it in Perfetto or chrome://tracing).
    #[arg(long, value_name = "FILE")]
    profile: Option<PathBuf>,
    /// Parallel jobs (default: the number of cores).
    #[arg(short, long, value_name = "N")]
    jobs: Option<usize>,
    /// Build with the release profile.
    #[arg(long)]
    release: bool,
    /// Run only shard K of N: a deterministic, duration-balanced share of the packages (their dependencies still run or come from the cache).
    #[arg(long, value_name = "K/N")]
    shard: Option<xtask_engine::Shard>,
}

#[derive(Debug, Args)]
struct ReleaseArgs {
    /// Release only these packages (and their dependents); default: every changed package.
    #[arg(value_name = "PKG")]
    packages: Vec<String>,
    /// patch, minor, major, an exact version X.Y.Z, or auto (from conventional commits).
    #[arg(long, value_name = "BUMP", default_value = "auto")]
    bump: xtask_release::BumpRequest,
    /// Apply the plan: commit, tag, build artifacts and the released apps' images, publish
    /// (resumes an interrupted release).
    #[arg(long)]
    execute: bool,
    /// With --execute, push each released app's image to `registry` of
    /// [workspace.metadata.xtask.deploy], then the release commit and tags to the configured
    /// remote.
    #[arg(long, requires = "execute")]
    push: bool,
    /// Plan no release: build the dist archives, SBOMs and images of the current versions
    /// (what a version tag's checkout holds) into the target directory and print their paths
    /// (the generated release.yml attaches them to the GitHub release).
    #[arg(long, conflicts_with_all = ["execute", "push", "bump"])]
    artifacts: bool,
    /// Parallel jobs for the tests and builds (default: the number of cores).
    #[arg(short, long, value_name = "N")]
    jobs: Option<usize>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DryRunArg {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum GraphFormatArg {
    Dot,
    Mermaid,
    Json,
    Html,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let location = Location {
        manifest_path: cli.manifest_path,
        directory: cli.directory,
    };
    let exit_code = match dispatch(cli.command, location).and_then(write_stdout) {
        Ok(exit_code) => exit_code,
        Err(error) => {
            eprintln_error(&error.error);
            error.exit_code
        }
    };
    ExitCode::from(exit_code as u8)
}

/// Writes a command's data to stdout; its exit code.
fn write_stdout(outcome: Outcome) -> Result<i32, CliError> {
    xtask_engine::stdout::write(&outcome.stdout)?;
    Ok(outcome.exit_code)
}

#[expect(
    clippy::print_stderr,
    reason = "the CLI reports fatal errors on stderr"
)]
fn eprintln_error(error: &anyhow::Error) {
    eprintln!("error: {error:#}");
}

/// One library call per command.
fn dispatch(command: Command, location: Location) -> CliResult {
    let reporter = || Reporter::new(ReportMode::detect());
    match command {
        Command::Build(args) => run_tasks(&args.options(TaskName::BUILD, location), &reporter()),
        Command::Test(args) => run_tasks(&args.options(TaskName::TEST, location), &reporter()),
        Command::Lint(args) => run_tasks(&args.options(TaskName::LINT, location), &reporter()),
        Command::Fmt(args) => run_tasks(&args.options(TaskName::FMT, location), &reporter()),
        Command::Run { task, args } => run_tasks(&args.options(task, location), &reporter()),
        Command::Graph {
            tasks,
            format,
            affected,
        } => xtask_engine::graph(&GraphOptions {
            location,
            tasks,
            view: format.into(),
            affected,
        }),
        Command::Why {
            task,
            remote,
            packages,
            release,
        } => xtask_engine::why(&WhyOptions {
            location,
            task_id: task,
            remote,
            packages,
            release,
        }),
        Command::Affected { since, json } => xtask_engine::affected(&AffectedOptions {
            location,
            base: Base::from_option(since),
            json,
        }),
        Command::Cache { action } => xtask_engine::cache(&location, action.into()),
        Command::Dev(args) => xtask_dev::dev(xtask_dev::DevOptions {
            location,
            apps: args.apps,
            grace_period: args.grace_period,
            debounce: args.debounce,
            socket_handover: !args.no_socket_handover,
            release: args.release,
            jobs: job_count(args.jobs),
            ports: Default::default(),
        }),
        Command::Bench {
            bench: BenchCommand::Dev { app, iterations },
        } => xtask_dev::bench_dev(&xtask_dev::BenchOptions {
            location,
            app,
            iterations,
            jobs: job_count(None),
        }),
        Command::Release(args) => xtask_release::release(
            &xtask_release::ReleaseOptions {
                location,
                packages: args.packages,
                bump: args.bump,
                execute: args.execute,
                push: args.push,
                artifacts: args.artifacts,
                jobs: job_count(args.jobs),
            },
            &reporter(),
        ),
        Command::Docker { check } => xtask_container::docker(
            &xtask_container::DockerOptions { location, check },
            &reporter(),
        ),
        Command::Prune { app, out } => xtask_container::prune(
            &xtask_container::PruneOptions { location, app, out },
            &reporter(),
        ),
        Command::Image {
            app,
            tag,
            base,
            push,
        } => xtask_container::image(
            &xtask_container::ImageOptions {
                location,
                app,
                tag,
                base,
                push,
                jobs: job_count(None),
            },
            &reporter(),
        ),
        Command::Bench {
            bench: BenchCommand::Image,
        } => xtask_container::bench_image(&location, job_count(None)),
        Command::Bench {
            bench:
                BenchCommand::Cold {
                    workspace: source,
                    iterations,
                    build_only,
                    packages,
                },
        } => {
            let workspace = xtask_engine::load_workspace(&location)?;
            print(&xtask_bench::cold::bench_cold(
                &xtask_bench::cold::ColdBenchOptions {
                    source: source.unwrap_or_else(|| workspace.root.clone()),
                    xtask: current_exe()?,
                    work_dir: workspace.target_dir.join("bench").join("cold"),
                    iterations,
                    build_only,
                    packages,
                },
            )?)
        }
        Command::Bench {
            bench:
                BenchCommand::Ci {
                    workspace: source,
                    synthetic,
                    package,
                    node,
                    remote_cache_server,
                    sccache,
                    nginx,
                    incremental,
                    iterations,
                    work_dir,
                },
        } => {
            let workspace = xtask_engine::load_workspace(&location)?;
            let source = match synthetic {
                Some(crates) => xtask_bench::ci::synthetic_source(
                    &workspace.target_dir.join("bench").join("ci-synthetic"),
                    crates,
                    &workspace.root.join("Cargo.lock"),
                )?,
                None => source.unwrap_or_else(|| workspace.root.clone()),
            };
            let measured = if source == workspace.root {
                workspace.clone()
            } else {
                xtask_engine::load_workspace(&Location {
                    manifest_path: None,
                    directory: Some(source.clone()),
                })?
            };
            print(&xtask_bench::ci::bench_ci(
                &xtask_bench::ci::CiBenchOptions {
                    edit: leaf_source(&measured, package.as_deref())?,
                    source,
                    xtask: current_exe()?,
                    work_dir: match work_dir {
                        Some(dir) => xtask_bench::tools::given_path(&dir, "--work-dir")?,
                        None => workspace.target_dir.join("bench").join("ci"),
                    },
                    node,
                    remote_cache_server,
                    sccache,
                    nginx,
                    tools_dir: xtask_bench::tools::tools_dir(&workspace.root),
                    incremental,
                    iterations,
                },
            )?)
        }
        Command::Bench {
            bench: BenchCommand::Readme { iterations },
        } => {
            let workspace = xtask_engine::load_workspace(&location)?;
            print(&xtask_bench::readme::bench_readme(
                &xtask_bench::readme::ReadmeBenchOptions {
                    root: workspace.root.clone(),
                    xtask: current_exe()?,
                    iterations,
                },
            )?)
        }
        Command::Bench {
            bench:
                BenchCommand::Remote {
                    crates,
                    task,
                    iterations,
                    node,
                    remote_cache_server,
                },
        } => {
            let workspace = xtask_engine::load_workspace(&location)?;
            print(&xtask_bench::remote::bench_remote(
                &xtask_bench::remote::RemoteBenchOptions {
                    xtask: current_exe()?,
                    crates,
                    task,
                    iterations,
                    work_dir: workspace.target_dir.join("bench"),
                    node,
                    remote_cache_server,
                    tools_dir: xtask_bench::tools::tools_dir(&workspace.root),
                },
            )?)
        }
        Command::Bench {
            bench:
                BenchCommand::Runner {
                    crates,
                    iterations,
                    slow_iterations,
                    large_slow_iterations,
                    skip_big,
                    skip_cargo,
                    no_write,
                    load,
                    xtask,
                    turbo,
                    npm,
                },
        } => {
            let workspace = xtask_engine::load_workspace(&location)?;
            print(&xtask_bench::runner::bench_runner_in(
                &workspace.root,
                &workspace.target_dir,
                &xtask_bench::runner::RunnerBenchOptions {
                    xtask,
                    turbo,
                    npm,
                    tools_dir: xtask_bench::tools::tools_dir(&workspace.root),
                    load,
                    crates,
                    iterations,
                    slow_iterations,
                    large_slow_iterations,
                    skip_big,
                    skip_cargo,
                    work_dir: workspace.target_dir.join("bench"),
                    write_to: (!no_write).then(|| workspace.root.join("BENCHMARKS.md")),
                },
            )?)
        }
        Command::Ci {
            action: Some(CiCommand::Generate { check }),
            ..
        } => xtask_deploy::ci_generate(
            &xtask_deploy::GenerateOptions { location, check },
            &reporter(),
        ),
        Command::K8s { check } => xtask_deploy::k8s(
            &xtask_deploy::GenerateOptions { location, check },
            &reporter(),
        ),
        Command::Deploy {
            environment,
            rollback: true,
            ..
        } => xtask_deploy::rollback(
            &xtask_deploy::RollbackOptions {
                location,
                environment: environment.into(),
            },
            &reporter(),
        ),
        Command::Smoke(args) => xtask_deploy::smoke_command(
            &xtask_deploy::SmokeOptions {
                location,
                target: xtask_deploy::SmokeWhere::new(
                    args.environment.map(Into::into),
                    args.base_url,
                ),
                apps: args.apps,
                settings: xtask_deploy::SmokeSettings::from_secs(args.timeout, args.ready_within),
            },
            &reporter(),
        ),
        Command::Deploy {
            environment,
            dry_run,
            rollback: false,
        } => xtask_deploy::deploy(
            &xtask_deploy::DeployOptions {
                location,
                environment: environment.into(),
                dry_run,
                smoke: xtask_deploy::SmokeSettings::default(),
            },
            &reporter(),
        ),
        Command::Ci {
            action: None,
            jobs,
            force,
            shard,
        } => xtask_engine::ci(
            &CiOptions {
                location,
                jobs: job_count(jobs),
                force,
                shard,
            },
            &reporter(),
        ),
    }
}

impl TaskArgs {
    /// The run of `task` these flags ask for.
    fn options(self, task: TaskName, location: Location) -> RunOptions {
        RunOptions {
            packages: self.packages,
            affected: self.affected,
            force: self.force,
            no_cache: self.no_cache,
            dry_run: self.dry_run.map(DryRunFormat::from),
            summarize: self.summarize,
            profile: self.profile,
            jobs: job_count(self.jobs),
            release: self.release,
            shard: self.shard,
            ..RunOptions::new(location, vec![task])
        }
    }
}

impl From<DryRunArg> for DryRunFormat {
    fn from(format: DryRunArg) -> DryRunFormat {
        match format {
            DryRunArg::Text => DryRunFormat::Text,
            DryRunArg::Json => DryRunFormat::Json,
        }
    }
}

impl From<GraphFormatArg> for GraphView {
    fn from(format: GraphFormatArg) -> GraphView {
        match format {
            GraphFormatArg::Dot => GraphView::Text(GraphFormat::Dot),
            GraphFormatArg::Mermaid => GraphView::Text(GraphFormat::Mermaid),
            GraphFormatArg::Json => GraphView::Text(GraphFormat::Json),
            GraphFormatArg::Html => GraphView::Html,
        }
    }
}

impl From<CacheCommand> for CacheAction {
    fn from(command: CacheCommand) -> CacheAction {
        match command {
            CacheCommand::Stats => CacheAction::Stats,
            CacheCommand::Clean => CacheAction::Clean,
            CacheCommand::Prune => CacheAction::Prune,
            CacheCommand::Doctor => CacheAction::Doctor,
        }
    }
}

/// `std::env::current_exe`, for the benchmarks that run this binary.
/// `bench ci`'s edit: the first target's source of `package`, or of the first member (by
/// name) that no other member depends on, relative to the workspace root.
fn leaf_source(
    workspace: &xtask_engine::Workspace,
    package: Option<&str>,
) -> anyhow::Result<PathBuf> {
    let depended_on: std::collections::HashSet<usize> = workspace
        .packages
        .iter()
        .flat_map(|p| p.dependencies.iter().map(|edge| edge.to))
        .collect();
    let mut candidates: Vec<&xtask_engine::Package> = workspace
        .packages
        .iter()
        .enumerate()
        .filter(|(i, p)| match package {
            Some(name) => p.name == name,
            None => !depended_on.contains(i),
        })
        .map(|(_, p)| p)
        .collect();
    candidates.sort_by(|a, b| a.name.cmp(&b.name));
    let chosen = candidates
        .into_iter()
        .find_map(|p| p.targets.first())
        .ok_or_else(|| anyhow::anyhow!("no package to edit (`--package NAME` names one)"))?;
    Ok(chosen
        .src_path
        .strip_prefix(&workspace.root)
        .unwrap_or(&chosen.src_path)
        .to_path_buf())
}

fn current_exe() -> anyhow::Result<PathBuf> {
    Ok(std::env::current_exe()?)
}

fn print(text: &str) -> CliResult {
    Ok(Outcome::print(text))
}

//! `cargo xtask`: the command line of the build tool. Parses flags with clap and calls one
//! engine function per command; no logic lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use xtask_engine::report::{ReportMode, Reporter};
use xtask_engine::{
    Base, CacheAction, CiOptions, DryRunFormat, GraphFormat, Location, RunOptions, SummaryPath,
    TaskName, exit_code,
};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  a task (or a check) failed
  2  the command line is invalid
  3  the configuration is invalid (unknown key, wrong type, bad value, task cycle, unknown
     task or package, an `affected` base that is not a commit or no default branch to
     compare with); nothing ran and nothing was written to the cache
  4  the environment failed (cargo metadata, git, the file system)
  5  release refused (dirty tree, wrong branch, failing tests); nothing was changed

Environment:
  XTASK_CACHE_DIR      local cache directory (default: turbo-like-cache/ in the workspace)
  XTASK_AFFECTED_BASE  default git ref for --affected and `affected` (default: the branch
                       origin/HEAD points at, else main, else master; none: exit 3)
  CI                   when set, plain line output instead of progress bars
  SOURCE_DATE_EPOCH    file times of release archives and images (default: the last commit's)
  XTASK_RELEASE_PUBLISH_DRY_RUN=1  `release --execute` runs `cargo publish --dry-run`
  XTASK_RELEASE_MAX_RATE_LIMIT_WAIT  longest wait (seconds) for a registry rate limit (900)
  XTASK_REGISTRY_USERNAME, XTASK_REGISTRY_PASSWORD
                       credentials for `image --push` (Basic, or for a Bearer token)
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
    /// Print the package graph, or the task graph of --task, as dot, mermaid or JSON.
    Graph {
        /// Show the task graph of this task (repeatable).
        #[arg(long = "task", value_name = "TASK")]
        tasks: Vec<TaskName>,
        #[arg(long, value_enum, default_value_t = GraphFormatArg::Dot)]
        format: GraphFormatArg,
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
    /// Quiet time that ends a burst of file changes (e.g. 30ms).
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
    affected: Option<String>,
    /// Ignore cache hits and run every task (results are still cached).
    #[arg(long)]
    force: bool,
    /// Do not write results to the cache (hits are still used; with --force the cache is bypassed).
    #[arg(long)]
    no_cache: bool,
    /// Print what would run (hash, cache status, inputs) without running anything.
    #[arg(long, value_enum, value_name = "FORMAT", num_args = 0..=1, require_equals = true, default_missing_value = "text")]
    dry_run: Option<DryRunArg>,
    /// Write a JSON run summary (per task: hash, status, duration, inputs count) to PATH or the cache's runs/.
    #[arg(long, value_name = "PATH", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    summarize: Option<PathBuf>,
    /// Parallel jobs (default: the number of cores).
    #[arg(short, long, value_name = "N")]
    jobs: Option<usize>,
    /// Build with the release profile.
    #[arg(long)]
    release: bool,
}

#[derive(Debug, Args)]
struct ReleaseArgs {
    /// Release only these packages (and their dependents); default: every changed package.
    #[arg(value_name = "PKG")]
    packages: Vec<String>,
    /// patch, minor, major, an exact version X.Y.Z, or auto (from conventional commits).
    #[arg(long, value_name = "BUMP", default_value = "auto")]
    bump: xtask_release::BumpRequest,
    /// Apply the plan: commit, tag, build artifacts, publish (resumes an interrupted release).
    #[arg(long)]
    execute: bool,
    /// With --execute, push the release commit and tags to the configured remote.
    #[arg(long, requires = "execute")]
    push: bool,
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let location = Location {
        manifest_path: cli.manifest_path,
        directory: cli.directory,
    };
    match dispatch(cli.command, location) {
        Ok(code) => ExitCode::from(code as u8),
        Err(error) => {
            let code = xtask_engine::exit_code_for(&error);
            eprintln_error(&error);
            ExitCode::from(code as u8)
        }
    }
}

#[expect(
    clippy::print_stderr,
    reason = "the CLI reports fatal errors on stderr"
)]
fn eprintln_error(error: &anyhow::Error) {
    eprintln!("error: {error:#}");
}

fn jobs(jobs: Option<usize>) -> usize {
    jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    })
    .max(1)
}

fn dispatch(command: Command, location: Location) -> anyhow::Result<i32> {
    let reporter = || Reporter::new(ReportMode::detect());
    match command {
        Command::Build(args) => run_tasks(TaskName::BUILD, args, location, &reporter()),
        Command::Test(args) => run_tasks(TaskName::TEST, args, location, &reporter()),
        Command::Lint(args) => run_tasks(TaskName::LINT, args, location, &reporter()),
        Command::Fmt(args) => run_tasks(TaskName::FMT, args, location, &reporter()),
        Command::Run { task, args } => run_tasks(task, args, location, &reporter()),
        Command::Graph { tasks, format } => {
            let format = match format {
                GraphFormatArg::Dot => GraphFormat::Dot,
                GraphFormatArg::Mermaid => GraphFormat::Mermaid,
                GraphFormatArg::Json => GraphFormat::Json,
            };
            print(&xtask_engine::graph(&location, &tasks, format)?)
        }
        Command::Why {
            task,
            remote,
            packages,
            release,
        } => {
            let options = xtask_engine::WhyOptions {
                location,
                task,
                packages,
                release,
                jobs: jobs(None),
                remote,
            };
            print(&xtask_engine::why(&options)?.render())
        }
        Command::Affected { since, json } => {
            let affected = xtask_engine::affected(&location, &Base::from_option(since))?;
            let text = if json {
                format!("{}\n", serde_json_string(&affected)?)
            } else {
                affected
                    .iter()
                    .map(|p| format!("{}\t{}\t{}\n", p.name, p.path, p.reason))
                    .collect()
            };
            print(&text)
        }
        Command::Cache { action } => {
            let action = match action {
                CacheCommand::Stats => CacheAction::Stats,
                CacheCommand::Clean => CacheAction::Clean,
                CacheCommand::Prune => CacheAction::Prune,
                CacheCommand::Doctor => {
                    let (report, ok) = xtask_engine::cache_doctor(&location)?;
                    print(&report)?;
                    return Ok(if ok {
                        exit_code::SUCCESS
                    } else {
                        exit_code::ENVIRONMENT
                    });
                }
            };
            print(&xtask_engine::cache_command(&location, action)?)
        }
        Command::Dev(args) => xtask_dev::dev(xtask_dev::DevOptions {
            location,
            apps: args.apps,
            grace_period: args.grace_period,
            debounce: args.debounce,
            socket_handover: !args.no_socket_handover,
            release: args.release,
            jobs: jobs(args.jobs),
            ports: Default::default(),
        }),
        Command::Bench {
            bench: BenchCommand::Dev { app, iterations },
        } => print(&xtask_dev::bench_dev(&xtask_dev::BenchOptions {
            location,
            app,
            iterations: iterations.max(1),
            jobs: jobs(None),
        })?),
        Command::Release(args) => {
            xtask_release::release(
                &xtask_release::ReleaseOptions {
                    location,
                    packages: args.packages,
                    bump: args.bump,
                    execute: args.execute,
                    push: args.push,
                    jobs: jobs(args.jobs),
                },
                &reporter(),
            )?;
            Ok(exit_code::SUCCESS)
        }
        Command::Docker { check } => {
            let options = xtask_container::DockerOptions { location, check };
            xtask_container::docker(&options, &reporter())
        }
        Command::Prune { app, out } => {
            let out = match &location.directory {
                Some(dir) if out.is_relative() => dir.join(out),
                _ => out,
            };
            let options = xtask_container::PruneOptions { location, app, out };
            xtask_container::prune(&options, &reporter())
        }
        Command::Image {
            app,
            tag,
            base,
            push,
        } => {
            let options = xtask_container::ImageOptions {
                location,
                app,
                tag,
                base,
                push,
                jobs: jobs(None),
            };
            xtask_container::image(&options, &reporter())
        }
        Command::Bench {
            bench: BenchCommand::Image,
        } => xtask_container::bench_image(&location, jobs(None)),
        Command::Bench {
            bench:
                BenchCommand::Remote {
                    crates,
                    task,
                    iterations,
                },
        } => {
            let workspace = xtask_engine::load_workspace(&location)?;
            print(&xtask_bench::remote::bench_remote(
                &xtask_bench::remote::RemoteBenchOptions {
                    xtask: std::env::current_exe()?,
                    crates,
                    task,
                    iterations,
                    work_dir: workspace.target_dir.join("bench"),
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
                },
        } => {
            let workspace = xtask_engine::load_workspace(&location)?;
            print(&xtask_bench::runner::bench_runner_in(
                &workspace.root,
                &workspace.target_dir,
                xtask_bench::runner::RunnerBenchOptions {
                    xtask: PathBuf::new(),
                    turbo: PathBuf::new(),
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
        } => success(xtask_deploy::ci_generate(
            &xtask_deploy::GenerateOptions { location, check },
            &reporter(),
        )?),
        Command::K8s { check } => success(xtask_deploy::k8s(
            &xtask_deploy::GenerateOptions { location, check },
            &reporter(),
        )?),
        Command::Deploy {
            environment,
            rollback: true,
            ..
        } => success(xtask_deploy::rollback(
            &xtask_deploy::RollbackOptions {
                location,
                environment: environment.into(),
            },
            &reporter(),
        )?),
        Command::Smoke(args) => {
            let target = match (args.environment, args.base_url) {
                (Some(environment), _) => xtask_deploy::SmokeWhere::Environment(environment.into()),
                (None, Some(url)) => xtask_deploy::SmokeWhere::BaseUrl(url),
                (None, None) => xtask_deploy::SmokeWhere::Local,
            };
            let report = xtask_deploy::smoke(
                &xtask_deploy::SmokeOptions {
                    location,
                    target,
                    apps: args.apps,
                    settings: xtask_deploy::SmokeSettings {
                        request_timeout: std::time::Duration::from_secs(args.timeout.max(1)),
                        ready_within: std::time::Duration::from_secs(args.ready_within),
                        ..xtask_deploy::SmokeSettings::default()
                    },
                },
                &reporter(),
            )?;
            xtask_engine::output::write_stdout(&report.render())?;
            success(report.passed())
        }
        Command::Deploy {
            environment,
            dry_run,
            rollback: false,
        } => {
            let outcome = xtask_deploy::deploy(
                &xtask_deploy::DeployOptions {
                    location,
                    environment: environment.into(),
                    dry_run,
                    smoke: xtask_deploy::SmokeSettings::default(),
                },
                &reporter(),
            )?;
            if dry_run {
                print(&outcome.plan.render())?;
            }
            success(outcome.success)
        }
        Command::Ci {
            action: None,
            jobs: j,
            force,
        } => {
            let ok = xtask_engine::ci(
                &CiOptions {
                    location,
                    jobs: jobs(j),
                    force,
                },
                &reporter(),
            )?;
            Ok(if ok {
                exit_code::SUCCESS
            } else {
                exit_code::TASK_FAILED
            })
        }
    }
}

fn run_tasks(
    task: TaskName,
    args: TaskArgs,
    location: Location,
    reporter: &Reporter,
) -> anyhow::Result<i32> {
    let options = RunOptions {
        packages: args.packages,
        // `--affected` alone (an empty REF) is the default base of the workspace's repository.
        affected: args
            .affected
            .map(|base| Base::from_option(Some(base).filter(|b| !b.is_empty()))),
        force: args.force,
        no_cache: args.no_cache,
        dry_run: args.dry_run.map(|f| match f {
            DryRunArg::Text => DryRunFormat::Text,
            DryRunArg::Json => DryRunFormat::Json,
        }),
        summarize: args.summarize.map(|path| {
            if path.as_os_str().is_empty() {
                SummaryPath::InCache
            } else {
                SummaryPath::At(path)
            }
        }),
        jobs: jobs(args.jobs),
        release: args.release,
        ..RunOptions::new(location, vec![task])
    };
    let outcome = xtask_engine::run(&options, reporter)?;
    Ok(if outcome.success {
        exit_code::SUCCESS
    } else {
        exit_code::TASK_FAILED
    })
}

fn success(ok: bool) -> anyhow::Result<i32> {
    Ok(if ok {
        exit_code::SUCCESS
    } else {
        exit_code::TASK_FAILED
    })
}

fn print(text: &str) -> anyhow::Result<i32> {
    xtask_engine::output::write_stdout(text)?;
    Ok(exit_code::SUCCESS)
}

fn serde_json_string(value: &impl serde::Serialize) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(value)?)
}

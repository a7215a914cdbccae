//! Cargo-aware execution: all cache misses of one built-in task run as ONE cargo invocation
//! (`cargo build -p a -p b ... --message-format=json`), so cargo parallelises them; the JSON
//! messages attribute diagnostics and artifacts to packages, which gives per-package logs,
//! results and outputs. `test` builds the test binaries in one invocation and then runs each
//! package's binaries itself (the way nextest does), so results are known per package.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use cargo_metadata::Message;
use xtask_cache::{OutputFile, OutputRoot};
use xtask_model::{CargoTask, PackageIndex, Workspace};

use crate::plan::CargoSettings;
use crate::process::{cargo_command, run_captured};

/// The result of one package's task within a batch.
#[derive(Debug, Default)]
pub struct PackageResult {
    pub success: bool,
    pub log: Vec<u8>,
    pub outputs: Vec<OutputFile>,
    pub duration: Duration,
    pub tests_passed: u64,
    pub tests_failed: u64,
}

/// Runs `task` for `packages` in one cargo invocation. Returns one result per package, in order.
pub fn run_batch(
    workspace: &Workspace,
    task: CargoTask,
    packages: &[PackageIndex],
    settings: &CargoSettings,
    jobs: usize,
) -> anyhow::Result<Vec<PackageResult>> {
    match task {
        CargoTask::Build | CargoTask::Lint => {
            compile(workspace, task, packages, settings).map(|c| c.results)
        }
        CargoTask::Test => test(workspace, packages, settings, jobs),
        CargoTask::Fmt => fmt(workspace, packages),
    }
}

struct Compiled {
    results: Vec<PackageResult>,
    /// Test executables per package (only for `cargo test --no-run`).
    test_binaries: Vec<Vec<PathBuf>>,
}

fn selection_args(workspace: &Workspace, packages: &[PackageIndex]) -> Vec<String> {
    packages
        .iter()
        .flat_map(|&p| ["-p".to_string(), workspace.packages[p].name.clone()])
        .collect()
}

/// `cargo build` / `cargo clippy` / `cargo test --no-run` with JSON messages.
fn compile(
    workspace: &Workspace,
    task: CargoTask,
    packages: &[PackageIndex],
    settings: &CargoSettings,
) -> anyhow::Result<Compiled> {
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
    let mut stderr = child.stderr.take().context("cargo stderr")?;
    let stderr_thread = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = stderr.read_to_end(&mut buffer);
        buffer
    });

    let slot: HashMap<&str, usize> = packages
        .iter()
        .enumerate()
        .map(|(i, &p)| (workspace.packages[p].id.as_str(), i))
        .collect();
    let mut results: Vec<PackageResult> =
        packages.iter().map(|_| PackageResult::default()).collect();
    let mut errors = vec![false; packages.len()];
    let mut artifacts = vec![false; packages.len()];
    let mut test_binaries = vec![Vec::new(); packages.len()];
    let stdout = child.stdout.take().context("cargo stdout")?;
    for message in Message::parse_stream(BufReader::new(stdout)) {
        let Ok(message) = message else { continue };
        match message {
            Message::CompilerArtifact(artifact) => {
                let Some(&i) = slot.get(artifact.package_id.repr.as_str()) else {
                    continue;
                };
                artifacts[i] = true;
                results[i].duration = started.elapsed();
                if let Some(executable) = artifact.executable {
                    let executable = executable.into_std_path_buf();
                    if artifact.profile.test {
                        test_binaries[i].push(executable);
                    } else if task == CargoTask::Build
                        && artifact.target.kind.iter().any(|k| k.to_string() == "bin")
                    {
                        results[i]
                            .outputs
                            .push(target_output(workspace, &executable)?);
                    }
                }
            }
            Message::CompilerMessage(message) => {
                let Some(&i) = slot.get(message.package_id.repr.as_str()) else {
                    continue;
                };
                if let Some(rendered) = &message.message.rendered {
                    results[i].log.extend_from_slice(rendered.as_bytes());
                }
                if matches!(
                    message.message.level,
                    cargo_metadata::diagnostic::DiagnosticLevel::Error
                        | cargo_metadata::diagnostic::DiagnosticLevel::Ice
                ) {
                    errors[i] = true;
                }
            }
            _ => {}
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("failed to wait for `{description}`"))?;
    let stderr = stderr_thread.join().unwrap_or_default();
    let stderr_text = String::from_utf8_lossy(&stderr);
    for (i, result) in results.iter_mut().enumerate() {
        result.success = !errors[i] && (status.success() || artifacts[i]);
        if !result.success && !errors[i] {
            // Nothing attributable: a dependency failed, or cargo itself did. Show cargo's words.
            result
                .log
                .extend_from_slice(relevant_stderr(&stderr_text).as_bytes());
        }
        if result.duration.is_zero() {
            result.duration = started.elapsed();
        }
        result
            .outputs
            .sort_by(|a, b| a.relative_path.cmp(&b.relative_path));
        result
            .outputs
            .dedup_by(|a, b| a.relative_path == b.relative_path);
    }
    Ok(Compiled {
        results,
        test_binaries,
    })
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

/// `cargo test --no-run` once, then each package's test binaries (and doctests), packages in
/// parallel on `jobs` threads.
fn test(
    workspace: &Workspace,
    packages: &[PackageIndex],
    settings: &CargoSettings,
    jobs: usize,
) -> anyhow::Result<Vec<PackageResult>> {
    let compiled = compile(workspace, CargoTask::Test, packages, settings)?;
    let mut results = compiled.results;
    let work: Vec<usize> = (0..packages.len())
        .filter(|&i| results[i].success)
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let outcomes: std::sync::Mutex<Vec<(usize, anyhow::Result<PackageResult>)>> =
        std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, work.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&i) = work.get(n) else { break };
                    let outcome = run_package_tests(
                        workspace,
                        packages[i],
                        &compiled.test_binaries[i],
                        settings,
                    );
                    if let Ok(mut all) = outcomes.lock() {
                        all.push((i, outcome));
                    }
                }
            });
        }
    });
    for (i, outcome) in outcomes.into_inner().unwrap_or_default() {
        let ran = outcome?;
        let result = &mut results[i];
        result.log.extend_from_slice(&ran.log);
        result.success = ran.success;
        result.tests_passed = ran.tests_passed;
        result.tests_failed = ran.tests_failed;
        result.duration += ran.duration;
    }
    Ok(results)
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
    for binary in &binaries {
        let shown = binary.strip_prefix(&workspace.target_dir).unwrap_or(binary);
        result
            .log
            .extend_from_slice(format!("running {}\n", shown.display()).as_bytes());
        let mut command = std::process::Command::new(binary);
        command
            .env("CARGO_MANIFEST_DIR", &p.dir)
            .env("CARGO_PKG_NAME", &p.name)
            .env("CARGO_PKG_VERSION", &p.version)
            .env("CARGO_CRATE_NAME", p.name.replace('-', "_"));
        let captured = run_captured(
            command,
            &format!("test binary `{}`", binary.display()),
            &p.dir,
        )?;
        count_tests(&captured.output, &mut result);
        result.log.extend_from_slice(&captured.output);
        result.success &= captured.success;
    }
    if result.success && p.targets.iter().any(|t| t.is_lib() && t.doctest) {
        let mut command = cargo_command();
        command
            .args(["test", "--doc", "--manifest-path"])
            .arg(&workspace.manifest_path)
            .args(["-p", &p.name]);
        if settings.release {
            command.arg("--release");
        }
        result.log.extend_from_slice(b"running doctests\n");
        let captured = run_captured(command, "`cargo test --doc`", &workspace.root)?;
        count_tests(&captured.output, &mut result);
        let text = String::from_utf8_lossy(&captured.output);
        let filtered: String = text
            .lines()
            .filter(|l| {
                ![
                    "Compiling ",
                    "Finished ",
                    "Running ",
                    "Doc-tests ",
                    "Blocking ",
                ]
                .iter()
                .any(|p| l.trim_start().starts_with(p))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        result.log.extend_from_slice(filtered.as_bytes());
        result.success &= captured.success;
    }
    result.duration = started.elapsed();
    Ok(result)
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
        .args(selection_args(workspace, packages))
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

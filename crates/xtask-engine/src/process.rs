//! Spawning child processes with their output captured: one pipe for stdout and stderr so
//! the captured log keeps the order the child wrote it in.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Context;

/// Output of a finished child.
#[derive(Debug)]
pub struct Captured {
    pub success: bool,
    pub code: Option<i32>,
    pub output: Vec<u8>,
}

/// Runs `command` to completion with stdin closed and stdout+stderr merged into one log.
pub fn run_captured(mut command: Command, what: &str, cwd: &Path) -> anyhow::Result<Captured> {
    let (mut reader, writer) = std::io::pipe().context("failed to create a pipe")?;
    let writer_err = writer.try_clone().context("failed to create a pipe")?;
    command
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer_err);
    let mut child = command
        .spawn()
        .with_context(|| format!("failed to start {what} in `{}`", cwd.display()))?;
    // Drop our copies of the write end (they live in `command`), so reading ends at exit.
    drop(command);
    let mut output = Vec::new();
    reader
        .read_to_end(&mut output)
        .with_context(|| format!("failed to read the output of {what}"))?;
    let status = child
        .wait()
        .with_context(|| format!("failed to wait for {what}"))?;
    Ok(Captured {
        success: status.success(),
        code: status.code(),
        output,
    })
}

/// The cargo to run: `$CARGO` (set when we run under `cargo xtask`) or `cargo` from PATH.
pub fn cargo_command() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// The host target triple (`host:` of `$RUSTC -vV`, or `rustc -vV`), run in `dir` so rustup
/// honours the toolchain file there.
pub fn host_triple(dir: &Path) -> anyhow::Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        .arg("-vV")
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("failed to run `{} -vV`", rustc.to_string_lossy()))?;
    anyhow::ensure!(
        output.status.success(),
        "`{} -vV` failed in `{}`: {}",
        rustc.to_string_lossy(),
        dir.display(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(|host| host.trim().to_string())
        .with_context(|| {
            format!(
                "`{} -vV` printed no `host:` line: {text}",
                rustc.to_string_lossy()
            )
        })
}

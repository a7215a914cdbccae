//! Finding the real tools the benchmarks (and, through `testkit`, the tests) run: a path given
//! on the command line, else `target/ci-tools/bin/NAME` (where `.ci/install-tools` links
//! them), else `PATH`. A missing tool is an error that names it and the command installing it.

use std::env;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Where `.ci/install-tools` installs under a workspace (`target/ci-tools`), or `CI_TOOLS`.
pub fn tools_dir(workspace_root: &Path) -> PathBuf {
    match env::var_os("CI_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root.join("target").join("ci-tools"),
    }
}

/// Finds the executable `name` in `tools_dir/bin`, then on `PATH`.
pub fn find_tool(tools_dir: &Path, name: &str) -> Option<PathBuf> {
    let mut dirs = vec![tools_dir.join("bin")];
    if let Some(path) = env::var_os("PATH") {
        dirs.extend(env::split_paths(&path));
    }
    dirs.into_iter()
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// [`find_tool`], or an error naming the tool, where it was looked for, and the command that
/// installs it (`bash .ci/install-tools GROUP`, the group in `.ci/tools.d/`).
pub fn require_tool(tools_dir: &Path, name: &str, group: &str) -> anyhow::Result<PathBuf> {
    match find_tool(tools_dir, name) {
        Some(path) => Ok(path),
        None => bail!("{}", missing_tool_message(tools_dir, name, group)),
    }
}

/// A tool given on the command line (`--turbo PATH`): it must be an executable file; returned
/// as an absolute path.
pub fn given_tool(path: &Path, flag: &str) -> anyhow::Result<PathBuf> {
    if !is_executable(path) {
        bail!("`{flag} {}` is not an executable file", path.display());
    }
    given_path(path, flag)
}

/// A path given on the command line (`--work-dir DIR`), made absolute: the benchmarks run from
/// other directories (each tree's copy), and a relative path means the caller's directory.
pub fn given_path(path: &Path, flag: &str) -> anyhow::Result<PathBuf> {
    std::path::absolute(path)
        .with_context(|| format!("`{flag} {}`: no absolute path", path.display()))
}

/// `given` when set (checked), else [`require_tool`].
pub fn tool_or_given(
    given: Option<&Path>,
    flag: &str,
    tools_dir: &Path,
    name: &str,
    group: &str,
) -> anyhow::Result<PathBuf> {
    match given {
        Some(path) => given_tool(path, flag),
        None => require_tool(tools_dir, name, group),
    }
}

/// The message of a missing tool.
pub fn missing_tool_message(tools_dir: &Path, name: &str, group: &str) -> String {
    let install = if group.is_empty() {
        "bash .ci/install-tools".to_string()
    } else {
        format!("bash .ci/install-tools {group}")
    };
    format!(
        "required tool `{name}` not found in {} or on PATH: run `{install}`",
        tools_dir.join("bin").display()
    )
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The cargo to run: `$CARGO` (the cargo that started `cargo xtask`), else `cargo`.
pub fn cargo_program() -> PathBuf {
    PathBuf::from(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// A command running [`cargo_program`].
pub fn cargo_command() -> std::process::Command {
    std::process::Command::new(cargo_program())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_tool_on_path_and_names_a_missing_one_with_its_install_command() {
        let dir = Path::new("/nonexistent-tools");
        assert!(find_tool(dir, "sh").is_some());
        let error = require_tool(dir, "no-such-tool-xtask", "bench").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("`no-such-tool-xtask`"), "{message}");
        assert!(
            message.contains("bash .ci/install-tools bench"),
            "{message}"
        );
        let given = given_tool(Path::new("/nonexistent/turbo"), "--turbo").unwrap_err();
        assert!(
            given.to_string().contains("--turbo /nonexistent/turbo"),
            "{given}"
        );
    }
}

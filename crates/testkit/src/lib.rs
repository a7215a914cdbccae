//! Test-only helpers shared by the tests of every crate (a dev-dependency only): finding real
//! tools, private copies of fixture trees ([`copy_dir`]), the text of a finished process
//! ([`output_text`]), and guards over real servers started on loopback and free ports
//! ([`servers`]).
//!
//! Real tools (servers, validators, container tools) are installed by `.ci/install-tools` into
//! `target/ci-tools/`; [`tool`] finds them there or on `PATH`. A missing tool fails the test with
//! the command that installs it: tests never skip silently. The lookup itself, like the server
//! code, has one home, `xtask_bench::tools` (the benchmarks need it at run time); these are the
//! test-side wrappers, which panic where the runtime code returns errors.

mod files;
pub mod servers;

use std::path::{Path, PathBuf};
use std::process::Output;

pub use files::copy_dir;

/// A finished process's stdout followed by its stderr, lossily decoded (for assertion
/// messages and `contains` checks).
pub fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The repository root (the directory of the workspace `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    // crates/testkit -> the root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("testkit lives two levels below the workspace root")
        .to_path_buf()
}

/// Where `.ci/install-tools` installs (`target/ci-tools`), honouring `CI_TOOLS`.
pub fn tools_dir() -> PathBuf {
    xtask_bench::tools::tools_dir(&workspace_root())
}

/// Finds an executable: `target/ci-tools/bin/NAME` first, then `PATH`. Panics with the
/// install command when it is missing.
pub fn tool(name: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| {
        panic!(
            "{}",
            xtask_bench::tools::missing_tool_message(&tools_dir(), name, "")
        )
    })
}

/// Like [`tool`], but `None` when missing.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    xtask_bench::tools::find_tool(&tools_dir(), name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_tool_on_path_and_names_a_missing_one() {
        assert!(find_tool("sh").is_some());
        assert!(find_tool("no-such-tool-xtask").is_none());
        let message = std::panic::catch_unwind(|| tool("no-such-tool-xtask")).unwrap_err();
        let message = message.downcast_ref::<String>().unwrap();
        assert!(message.contains("no-such-tool-xtask"), "{message}");
        assert!(message.contains(".ci/install-tools"), "{message}");
    }

    #[test]
    fn output_text_is_stdout_then_stderr() {
        use std::os::unix::process::ExitStatusExt as _;
        let output = Output {
            status: std::process::ExitStatus::from_raw(0),
            stdout: b"out\n".to_vec(),
            stderr: b"err \xff\n".to_vec(),
        };
        assert_eq!(output_text(&output), "out\nerr \u{fffd}\n");
    }

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
    }
}

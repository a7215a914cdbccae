//! Tidy tests: keep the repository's own rules true (module docs, no ignored tests, docs that
//! match the CLI and the crate list, the two README commands, the cache directory's tracking).

use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::workspace_root;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target"
            || name == "fixtures"
            || name == "snapshots"
            || name.to_string_lossy().starts_with('.')
        {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn all_rust_files() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut files = Vec::new();
    for dir in ["xtask", "crates", "apps"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(
        files.len() > 20,
        "expected the repository's sources, found {}",
        files.len()
    );
    files
}

#[test]
fn every_source_module_starts_with_a_doc_line() {
    let missing: Vec<String> = all_rust_files()
        .into_iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "src"))
        .filter(|p| {
            !std::fs::read_to_string(p)
                .unwrap_or_default()
                .trim_start()
                .starts_with("//!")
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a `//!` doc line:\n{}",
        missing.join("\n")
    );
}

#[test]
fn no_test_is_ignored() {
    let needle = format!("#[{}", "ignore");
    let offenders: Vec<String> = all_rust_files()
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .contains(&needle)
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "ignored tests are not allowed:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn readme_shows_the_two_commands_and_ci_runs_the_test_command() {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    assert!(
        readme.contains("cargo xtask build"),
        "README.md must show `cargo xtask build`"
    );
    assert!(
        readme.contains("cargo xtask ci"),
        "README.md must show `cargo xtask ci`"
    );
    let ci = std::fs::read_to_string(root.join(".ci/run")).expect(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == "cargo xtask ci"),
        ".ci/run must run `cargo xtask ci`"
    );
    // The test command installs the tools its tests need on a fresh machine by itself.
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    let ci_table = manifest
        .split("\n[workspace.metadata.xtask.ci]\n")
        .nth(1)
        .expect("Cargo.toml must have a [workspace.metadata.xtask.ci] table");
    assert!(
        ci_table
            .lines()
            .take_while(|l| !l.starts_with('['))
            .any(|l| l.trim() == r#"setup = ["bash", ".ci/install-tools"]"#),
        "`[workspace.metadata.xtask.ci] setup` in Cargo.toml must run `bash .ci/install-tools`"
    );
}

#[test]
fn every_crate_is_in_the_codemap_and_the_crates_readme() {
    let root = workspace_root();
    let architecture =
        std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let crates_readme =
        std::fs::read_to_string(root.join("crates/README.md")).expect("crates/README.md");
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("crates"))
        .expect("crates/")
        .flatten()
    {
        if !entry.path().join("Cargo.toml").is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            architecture.contains(&format!("crates/{name}")),
            "ARCHITECTURE.md has no codemap entry for crates/{name}"
        );
        assert!(
            crates_readme.contains(&format!("`{name}`")),
            "crates/README.md does not list `{name}`"
        );
        checked += 1;
    }
    assert!(checked >= 5, "expected the engine crates, found {checked}");
}

#[test]
fn only_the_cache_readme_is_tracked() {
    let gitignore =
        std::fs::read_to_string(workspace_root().join(".gitignore")).expect(".gitignore");
    assert!(gitignore.lines().any(|l| l.trim() == "/turbo-like-cache/*"));
    assert!(
        gitignore
            .lines()
            .any(|l| l.trim() == "!/turbo-like-cache/README.md")
    );
    assert!(
        workspace_root()
            .join("turbo-like-cache/README.md")
            .is_file(),
        "turbo-like-cache/README.md documents the format"
    );
}

/// Every flag that `--help` of every subcommand shows is documented in README.md.
#[test]
fn every_cli_flag_is_documented_in_the_readme() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README.md");
    let help = |args: &[&str]| -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .arg("--help")
            .output()
            .expect("run xtask --help");
        assert!(
            output.status.success(),
            "`xtask {} --help` failed",
            args.join(" ")
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let top = help(&[]);
    let subcommands: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    assert!(
        subcommands.len() >= 10,
        "expected every command in --help, got {subcommands:?}"
    );
    let mut missing = Vec::new();
    for command in &subcommands {
        if !readme.contains(&format!("cargo xtask {command}")) {
            missing.push(format!("command `{command}`"));
        }
        // Option lines look like `  -p, --package <PKG>  Only these packages`.
        for line in help(&[command])
            .lines()
            .chain(top.lines())
            .filter(|l| l.trim_start().starts_with('-'))
        {
            for word in line.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == '=')
            {
                if word.starts_with("--")
                    && word.len() > 2
                    && word != "--help"
                    && word != "--version"
                    && !readme.contains(word)
                {
                    missing.push(format!("flag `{word}` of `{command}`"));
                }
            }
        }
    }
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "README.md does not document:\n{}",
        missing.join("\n")
    );
}

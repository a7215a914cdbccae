//! Tidy tests: keep the repository's own rules true (module docs, no ignored tests, docs that
//! match the CLI and the crate list, the crate graph and its layers as ARCHITECTURE.md documents
//! them, the two README commands, the cache directory's tracking).

use std::collections::{BTreeMap, BTreeSet};
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

/// One row of the crate graph table in ARCHITECTURE.md.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DocumentedCrate {
    layer: u32,
    group: String,
    depends_on: BTreeSet<String>,
}

/// A workspace member's manifest: its package name and its `[dependencies]` on other members.
#[derive(Debug, Clone)]
struct MemberManifest {
    name: String,
    /// Workspace-relative, for messages.
    path: String,
    depends_on: BTreeSet<String>,
}

/// The heading of the table [`documented_crate_graph`] reads.
const CRATE_GRAPH_HEADING: &str = "## Crate graph";

/// The groups a crate can belong to; a `tool` crate never depends on an `apps` crate.
const GROUPS: [&str; 3] = ["tool", "apps", "test"];

/// Parses the table under [`CRATE_GRAPH_HEADING`]: `| layer | group | crate | depends on |`,
/// crate names in backticks, dependencies separated by commas.
fn documented_crate_graph(architecture: &str) -> Result<BTreeMap<String, DocumentedCrate>, String> {
    let section = architecture
        .split_once(&format!("\n{CRATE_GRAPH_HEADING}\n"))
        .map(|(_, rest)| rest)
        .ok_or_else(|| format!("ARCHITECTURE.md has no `{CRATE_GRAPH_HEADING}` section"))?;
    let rows = section
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2); // the header and the `|---|` line
    let mut crates = BTreeMap::new();
    for row in rows {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        let [layer, group, name, depends_on] = cells[..] else {
            return Err(format!("crate graph row `{row}` does not have 4 cells"));
        };
        let layer = layer
            .parse()
            .map_err(|_| format!("crate graph row `{row}`: layer `{layer}` is not a number"))?;
        if !GROUPS.contains(&group) {
            return Err(format!(
                "crate graph row `{row}`: group `{group}` is not one of {GROUPS:?}"
            ));
        }
        let depends_on = depends_on
            .split(',')
            .map(|name| name.trim().trim_matches('`').to_owned())
            .filter(|name| !name.is_empty())
            .collect();
        let documented = DocumentedCrate {
            layer,
            group: group.to_owned(),
            depends_on,
        };
        let name = name.trim_matches('`').to_owned();
        if crates.insert(name.clone(), documented).is_some() {
            return Err(format!("crate graph lists `{name}` twice"));
        }
    }
    if crates.is_empty() {
        return Err(format!(
            "the `{CRATE_GRAPH_HEADING}` section has no table rows"
        ));
    }
    Ok(crates)
}

/// Every workspace member (the root manifest's `members`: literal paths and `dir/*`) with
/// its dependencies on other members: `[dependencies]` and `[build-dependencies]`, also under
/// `[target.'cfg(..)']`; `[dev-dependencies]` are left out.
fn workspace_manifests(root: &Path) -> Vec<MemberManifest> {
    let read = |path: &Path| -> toml::Table {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|error| panic!("failed to read `{}`: {error}", path.display()));
        text.parse()
            .unwrap_or_else(|error| panic!("failed to parse `{}`: {error}", path.display()))
    };
    let root_manifest = read(&root.join("Cargo.toml"));
    let members = root_manifest["workspace"]["members"]
        .as_array()
        .expect("`[workspace] members` is an array");
    let mut dirs = Vec::new();
    for member in members {
        let member = member.as_str().expect("a member is a string");
        match member.strip_suffix("/*") {
            Some(parent) => {
                let mut children: Vec<PathBuf> = std::fs::read_dir(root.join(parent))
                    .unwrap_or_else(|error| panic!("failed to list `{parent}`: {error}"))
                    .map(|entry| entry.expect("a directory entry").path())
                    .filter(|path| path.join("Cargo.toml").is_file())
                    .collect();
                children.sort();
                dirs.extend(children);
            }
            None if member.contains('*') => panic!("unsupported members pattern `{member}`"),
            None => dirs.push(root.join(member)),
        }
    }
    let manifests: Vec<(PathBuf, toml::Table)> = dirs
        .into_iter()
        .map(|dir| {
            let path = dir.join("Cargo.toml");
            let table = read(&path);
            (path, table)
        })
        .collect();
    let names: BTreeSet<String> = manifests
        .iter()
        .map(|(_, table)| package_name(table))
        .collect();
    manifests
        .iter()
        .map(|(path, table)| MemberManifest {
            name: package_name(table),
            path: path
                .strip_prefix(root)
                .unwrap_or(path)
                .display()
                .to_string(),
            depends_on: dependency_names(table)
                .into_iter()
                .filter(|name| names.contains(name))
                .collect(),
        })
        .collect()
}

fn package_name(manifest: &toml::Table) -> String {
    manifest["package"]["name"]
        .as_str()
        .expect("`[package] name` is a string")
        .to_owned()
}

/// The package names of the normal and build dependencies (a renamed one by its `package`).
fn dependency_names(manifest: &toml::Table) -> BTreeSet<String> {
    let targets = manifest
        .get("target")
        .and_then(toml::Value::as_table)
        .into_iter()
        .flat_map(|targets| targets.values().filter_map(toml::Value::as_table));
    std::iter::once(manifest)
        .chain(targets)
        .flat_map(|parent| {
            ["dependencies", "build-dependencies"]
                .into_iter()
                .filter_map(|section| parent.get(section).and_then(toml::Value::as_table))
        })
        .flat_map(|table| table.iter())
        .map(|(key, value)| {
            value
                .get("package")
                .and_then(toml::Value::as_str)
                .unwrap_or(key)
                .to_owned()
        })
        .collect()
}

/// Every difference between the documented graph and the manifests, and every documented
/// edge that breaks the layering.
fn crate_graph_problems(
    documented: &BTreeMap<String, DocumentedCrate>,
    manifests: &[MemberManifest],
) -> Vec<String> {
    let mut problems = Vec::new();
    for manifest in manifests {
        let Some(row) = documented.get(&manifest.name) else {
            problems.push(format!(
                "`{}` ({}) is missing from the crate graph in ARCHITECTURE.md",
                manifest.name, manifest.path
            ));
            continue;
        };
        for missing in manifest.depends_on.difference(&row.depends_on) {
            problems.push(format!(
                "`{} -> {missing}`: {} has this dependency, ARCHITECTURE.md's crate graph does not",
                manifest.name, manifest.path
            ));
        }
        for extra in row.depends_on.difference(&manifest.depends_on) {
            problems.push(format!(
                "`{} -> {extra}`: ARCHITECTURE.md's crate graph has this dependency, {} does not",
                manifest.name, manifest.path
            ));
        }
    }
    for name in documented.keys() {
        if !manifests.iter().any(|manifest| &manifest.name == name) {
            problems.push(format!(
                "`{name}` is in ARCHITECTURE.md's crate graph but is not a workspace member"
            ));
        }
    }
    for (name, row) in documented {
        for dependency in &row.depends_on {
            let Some(target) = documented.get(dependency) else {
                continue; // reported above when it is a member; else not one of ours
            };
            if target.layer >= row.layer {
                problems.push(format!(
                    "`{name} -> {dependency}` points upward or sideways: layer {} depends on layer {}",
                    row.layer, target.layer
                ));
            }
            if row.group == "tool" && target.group == "apps" {
                problems.push(format!(
                    "`{name} -> {dependency}`: a tool crate depends on an apps crate"
                ));
            }
        }
    }
    problems
}

#[test]
fn architecture_crate_graph_matches_every_manifest_and_its_layers() {
    let root = workspace_root();
    let architecture =
        std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let documented =
        documented_crate_graph(&architecture).unwrap_or_else(|error| panic!("{error}"));
    let manifests = workspace_manifests(&root);
    assert!(
        manifests.len() >= 10,
        "expected the workspace's members, found {manifests:?}"
    );
    let problems = crate_graph_problems(&documented, &manifests);
    assert!(
        problems.is_empty(),
        "ARCHITECTURE.md's crate graph (`{CRATE_GRAPH_HEADING}`) and the Cargo.toml files \
         disagree; fix whichever is wrong:\n{}",
        problems.join("\n")
    );
}

/// The check above can fail, and says which crate and edge: a table that drifts from the
/// manifests, and an edge upward.
#[test]
fn crate_graph_check_names_the_crate_and_the_edge() {
    let table = "\n## Crate graph\n\nText.\n\n\
        | layer | group | crate | depends on |\n|---|---|---|---|\n\
        | 0 | tool | `a` | |\n\
        | 1 | tool | `b` | `a`, `c` |\n\
        | 2 | tool | `c` | |\n\
        | 1 | apps | `app` | |\n\
        | 3 | tool | `d` | `app` |\n";
    let documented = documented_crate_graph(table).unwrap();
    assert_eq!(
        documented["b"].depends_on,
        BTreeSet::from(["a".into(), "c".into()])
    );
    let manifest = |name: &str, depends_on: &[&str]| MemberManifest {
        name: name.into(),
        path: format!("crates/{name}/Cargo.toml"),
        depends_on: depends_on.iter().map(|name| (*name).to_owned()).collect(),
    };
    let manifests = [
        manifest("a", &["b"]),
        manifest("b", &["a", "c"]),
        manifest("c", &[]),
        manifest("app", &[]),
        manifest("d", &["app"]),
        manifest("e", &[]),
    ];
    let problems = crate_graph_problems(&documented, &manifests);
    assert_eq!(
        problems,
        [
            "`a -> b`: crates/a/Cargo.toml has this dependency, ARCHITECTURE.md's crate graph does not",
            "`e` (crates/e/Cargo.toml) is missing from the crate graph in ARCHITECTURE.md",
            "`b -> c` points upward or sideways: layer 1 depends on layer 2",
            "`d -> app`: a tool crate depends on an apps crate",
        ]
    );
    let mut drifted = documented.clone();
    drifted.get_mut("c").unwrap().depends_on.insert("a".into());
    drifted.remove("d");
    let problems = crate_graph_problems(&drifted, &manifests[..5]);
    assert!(
        problems.contains(
            &"`c -> a`: ARCHITECTURE.md's crate graph has this dependency, crates/c/Cargo.toml does not"
                .to_owned()
        ),
        "{problems:?}"
    );
    assert!(
        problems.contains(
            &"`d` (crates/d/Cargo.toml) is missing from the crate graph in ARCHITECTURE.md"
                .to_owned()
        ),
        "{problems:?}"
    );
    assert!(documented_crate_graph("# no table\n").is_err());
}

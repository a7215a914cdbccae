//! The engine's structure, checked: no import cycle between its modules, a crate root that
//! only declares and re-exports, and no function in the run path longer than the limit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest function allowed in the run path, in lines.
const MAX_FUNCTION_LINES: usize = 80;
/// The run path: the files a `cargo xtask build` goes through.
const RUN_PATH: [&str; 6] = [
    "run",
    "plan.rs",
    "cargo.rs",
    "progress.rs",
    "observe.rs",
    "fast.rs",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, with its module path (`run::cache` for `run/cache.rs`,
/// `run` for `run/mod.rs`).
fn modules(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("failed to read `{}`: {error}", dir.display()))
        .flatten()
        .map(|entry| entry.path())
        .collect();
    entries.sort();
    for path in entries {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        if path.is_dir() {
            let mut inner = prefix.to_vec();
            inner.push(stem);
            modules(&path, &inner, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let mut name = prefix.to_vec();
            if stem != "mod" && stem != "lib" {
                name.push(stem);
            }
            out.insert(name.join("::"), path);
        }
    }
}

/// The code of a file without its `#[cfg(test)]` module (tests may use anything).
fn non_test_code(path: &Path) -> String {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("failed to read `{}`: {error}", path.display()));
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// The modules `module` refers to through `crate::` and `super::` paths, resolved against
/// `known` (the longest known module a path names).
fn references(module: &str, code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let parent: Vec<&str> = {
        let mut parts: Vec<&str> = module.split("::").collect();
        parts.pop();
        parts
    };
    let mut found = BTreeSet::new();
    let mut paths: Vec<String> = Vec::new();
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent.clone())] {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            rest = &rest[at + prefix.len()..];
            // `use crate::{a::X, b::Y}` names several paths.
            let group: String = if rest.starts_with('{') {
                rest[1..rest.find('}').unwrap_or(rest.len())].to_string()
            } else {
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect()
            };
            for path in group.split(',') {
                let mut full: Vec<String> = base.iter().map(|s| s.to_string()).collect();
                full.extend(
                    path.trim()
                        .split("::")
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                );
                paths.push(full.join("::"));
            }
        }
    }
    for path in paths {
        let parts: Vec<&str> = path.split("::").collect();
        for len in (1..=parts.len()).rev() {
            let candidate = parts[..len].join("::");
            if known.contains(&candidate) {
                if candidate != module {
                    found.insert(candidate);
                }
                break;
            }
        }
    }
    found
}

#[test]
fn the_engine_modules_have_no_import_cycle() {
    let mut files = BTreeMap::new();
    modules(&src(), &[], &mut files);
    files.remove(""); // lib.rs: declarations and re-exports only (checked below).
    let known: BTreeSet<String> = files.keys().cloned().collect();
    let graph: BTreeMap<String, BTreeSet<String>> = files
        .iter()
        .map(|(module, path)| {
            (
                module.clone(),
                references(module, &non_test_code(path), &known),
            )
        })
        .collect();
    // A parent module declares (and may use) its children: a child that names its parent
    // closes a cycle too.
    let mut graph = graph;
    for module in known.iter() {
        if let Some((parent, _)) = module.rsplit_once("::") {
            graph
                .entry(parent.to_string())
                .or_default()
                .insert(module.clone());
        }
    }
    let mut done = BTreeSet::new();
    for start in graph.keys() {
        find_cycle(&graph, start, &mut Vec::new(), &mut done);
    }
    assert!(
        graph.contains_key("run::schedule"),
        "the scheduler has its own module"
    );
}

/// Depth-first search from `module`; panics with the cycle when one closes.
fn find_cycle(
    graph: &BTreeMap<String, BTreeSet<String>>,
    module: &str,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) {
    if let Some(at) = path.iter().position(|m| m == module) {
        panic!("import cycle: {} -> {module}", path[at..].join(" -> "));
    }
    if done.contains(module) {
        return;
    }
    path.push(module.to_string());
    for next in graph.get(module).into_iter().flatten() {
        find_cycle(graph, next, path, done);
    }
    path.pop();
    done.insert(module.to_string());
}

#[test]
fn the_crate_root_only_declares_and_re_exports() {
    let lib = non_test_code(&src().join("lib.rs"));
    for line in lib.lines() {
        let line = line.trim();
        let allowed = line.is_empty()
            || line.starts_with("//")
            || line.starts_with("mod ")
            || line.starts_with("pub mod ")
            || line.starts_with("pub use ")
            || line.starts_with("pub(crate) use ")
            || !line.starts_with(|c: char| c.is_ascii_alphabetic() || c == '#');
        assert!(allowed, "lib.rs defines something: `{line}`");
    }
}

#[test]
fn no_function_in_the_run_path_is_longer_than_the_limit() {
    let mut files = BTreeMap::new();
    modules(&src(), &[], &mut files);
    let mut long = Vec::new();
    for path in files.values() {
        let relative = path.strip_prefix(src()).unwrap_or(path);
        let first = relative
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().to_string())
            .unwrap_or_default();
        if !RUN_PATH.contains(&first.as_str()) {
            continue;
        }
        let code = non_test_code(path);
        let lines: Vec<&str> = code.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            let indent = line.len() - line.trim_start().len();
            let trimmed = line.trim_start();
            let is_fn = ["fn ", "pub fn ", "pub(crate) fn ", "pub(super) fn "]
                .iter()
                .any(|p| trimmed.starts_with(p));
            if is_fn && !trimmed.ends_with(';') {
                let close = format!("{}}}", " ".repeat(indent));
                let end = (i..lines.len())
                    .find(|&j| lines[j] == close)
                    .unwrap_or(lines.len() - 1);
                let length = end - i + 1;
                if length > MAX_FUNCTION_LINES {
                    long.push(format!("{}:{} ({length} lines)", relative.display(), i + 1));
                }
                i = end;
            }
            i += 1;
        }
    }
    assert!(
        long.is_empty(),
        "functions longer than {MAX_FUNCTION_LINES} lines in the run path:\n{}",
        long.join("\n")
    );
}

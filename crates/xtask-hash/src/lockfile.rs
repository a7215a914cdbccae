//! `Cargo.lock` reading: which locked external crates a workspace package builds against.
//!
//! Reads lockfile versions 3 and 4 (and the `[[package]]` tables of older ones). Only
//! `name`, `version`, `source`, `checksum` and `dependencies` are read; other keys are ignored
//! so a newer cargo adding one does not break hashing. A package with a `source` is external
//! (registry, git); one without is a workspace or path package.
//!
//! Dependency strings resolve as cargo writes them: `"name"` (the only package of that name),
//! `"name version"`, `"name version (source)"`. An ambiguous string resolves to every
//! candidate, so the closure can be too large (a cache miss) but never too small (a wrong
//! hit); a string naming no package is skipped.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::HashError;

/// A parsed `Cargo.lock`, indexed for closure queries.
#[derive(Debug, Clone)]
pub struct Lockfile {
    packages: Vec<LockedNode>,
    /// Package name -> indices into `packages`.
    by_name: HashMap<String, Vec<usize>>,
}

/// One external package as it goes into a task key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    /// Where it comes from, as written in the lockfile (`registry+https://...`, `git+...`).
    pub source: String,
    /// The registry checksum; git packages have none.
    pub checksum: Option<String>,
}

#[derive(Debug, Clone)]
struct LockedNode {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
    dependencies: Vec<usize>,
}

/// The lockfile as written: only the keys read.
#[derive(Deserialize)]
struct RawLockfile {
    #[serde(default)]
    package: Vec<RawPackage>,
}

#[derive(Deserialize)]
struct RawPackage {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
    #[serde(default)]
    dependencies: Vec<String>,
}

impl Lockfile {
    /// Parses the text of a `Cargo.lock`; `path` is only used to name it in errors. The same
    /// text as the last successful parse gives that parse again (see the module doc).
    pub fn parse(text: &str, path: &Path) -> Result<Lockfile, HashError> {
        static LAST: Mutex<Option<(String, Lockfile)>> = Mutex::new(None);
        let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((last_text, lockfile)) = last.as_ref()
            && last_text == text
        {
            return Ok(lockfile.clone());
        }
        let lockfile = Lockfile::parse_text(text, path)?;
        *last = Some((text.to_string(), lockfile.clone()));
        Ok(lockfile)
    }

    fn parse_text(text: &str, path: &Path) -> Result<Lockfile, HashError> {
        let raw: RawLockfile = toml::from_str(text).map_err(|source| HashError::Lockfile {
            path: path.to_path_buf(),
            source,
        })?;
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::with_capacity(raw.package.len());
        for (index, package) in raw.package.iter().enumerate() {
            by_name.entry(package.name.clone()).or_default().push(index);
        }
        let packages = raw
            .package
            .iter()
            .map(|package| {
                let mut dependencies = Vec::with_capacity(package.dependencies.len());
                for dependency in &package.dependencies {
                    resolve(&raw.package, &by_name, dependency, &mut dependencies);
                }
                LockedNode {
                    name: package.name.clone(),
                    version: package.version.clone(),
                    source: package.source.clone(),
                    checksum: package.checksum.clone(),
                    dependencies,
                }
            })
            .collect();
        Ok(Lockfile { packages, by_name })
    }

    /// The versions of the packages named `name`, in the lockfile's order (cargo sorts them
    /// by version); empty when there is none.
    pub fn versions(&self, name: &str) -> Vec<&str> {
        self.by_name.get(name).map_or_else(Vec::new, |indices| {
            indices
                .iter()
                .map(|&i| self.packages[i].version.as_str())
                .collect()
        })
    }

    /// The external (non-workspace: has a `source`) packages reachable from the workspace
    /// package `name`@`version`, through any package (workspace path packages too). Sorted,
    /// deduplicated. A package not in the lockfile gives an empty list (a fresh package
    /// without a lock entry).
    pub fn external_closure(&self, name: &str, version: &str) -> Vec<LockedPackage> {
        let Some(candidates) = self.by_name.get(name) else {
            return Vec::new();
        };
        let mut matching = candidates
            .iter()
            .copied()
            .filter(|&index| self.packages[index].version == version);
        // Prefer the workspace package when a registry crate has the same name and version.
        let start = matching
            .clone()
            .find(|&index| self.packages[index].source.is_none())
            .or_else(|| matching.next());
        let Some(start) = start else {
            return Vec::new();
        };
        let mut visited = vec![false; self.packages.len()];
        visited[start] = true;
        let mut stack = vec![start];
        let mut closure = Vec::new();
        while let Some(index) = stack.pop() {
            for &dependency in &self.packages[index].dependencies {
                if visited[dependency] {
                    continue;
                }
                visited[dependency] = true;
                stack.push(dependency);
                let node = &self.packages[dependency];
                if let Some(source) = &node.source {
                    closure.push(LockedPackage {
                        name: node.name.clone(),
                        version: node.version.clone(),
                        source: source.clone(),
                        checksum: node.checksum.clone(),
                    });
                }
            }
        }
        closure.sort_unstable();
        closure.dedup();
        closure
    }
}

impl Lockfile {
    /// The path packages (no `source`: workspace members, other path dependencies) that the
    /// package `name`@`version` reaches through at least one external package, as
    /// `(name, version)`, sorted. Workspace-to-workspace edges are the model's business
    /// (with their kinds); these are the ones only the lockfile shows, e.g. a member that a
    /// root `[patch]` substitutes for a crate some registry dependency depends on.
    pub fn path_packages_reached_through_externals(
        &self,
        name: &str,
        version: &str,
    ) -> Vec<(String, String)> {
        let Some(start) = self.by_name.get(name).and_then(|candidates| {
            candidates.iter().copied().find(|&index| {
                self.packages[index].version == version && self.packages[index].source.is_none()
            })
        }) else {
            return Vec::new();
        };
        // (package, reached through an external package)
        let mut visited = vec![[false; 2]; self.packages.len()];
        visited[start][0] = true;
        let mut stack = vec![(start, false)];
        let mut reached = Vec::new();
        while let Some((index, via_external)) = stack.pop() {
            for &dependency in &self.packages[index].dependencies {
                let node = &self.packages[dependency];
                let is_path = node.source.is_none();
                if is_path && !via_external {
                    // A direct workspace edge: the model follows it.
                    continue;
                }
                let via = via_external || !is_path;
                if visited[dependency][usize::from(via)] {
                    continue;
                }
                visited[dependency][usize::from(via)] = true;
                if is_path {
                    reached.push((node.name.clone(), node.version.clone()));
                }
                stack.push((dependency, via));
            }
        }
        reached.sort_unstable();
        reached.dedup();
        reached
    }
}

/// Appends the indices a dependency string names.
fn resolve(
    packages: &[RawPackage],
    by_name: &HashMap<String, Vec<usize>>,
    dependency: &str,
    out: &mut Vec<usize>,
) {
    let (name, rest) = match dependency.split_once(' ') {
        Some((name, rest)) => (name, Some(rest)),
        None => (dependency, None),
    };
    let Some(candidates) = by_name.get(name) else {
        return;
    };
    let (version, source) = match rest {
        None => (None, None),
        Some(rest) => match rest.split_once(' ') {
            Some((version, source)) => {
                let source = source
                    .strip_prefix('(')
                    .and_then(|source| source.strip_suffix(')'))
                    .unwrap_or(source);
                (Some(version), Some(source))
            }
            None => (Some(rest), None),
        },
    };
    out.extend(candidates.iter().copied().filter(|&index| {
        let package = &packages[index];
        version.is_none_or(|version| package.version == version)
            && source.is_none_or(|source| package.source.as_deref() == Some(source))
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTRY: &str = "registry+https://github.com/rust-lang/crates.io-index";

    /// A v4 lockfile: `app` -> `lib` (path) -> `serde`; `app` -> `toml 0.8` -> `serde`;
    /// `lib` -> `toml 0.5` (two versions, so cargo writes `name version`); a git crate;
    /// an unresolvable string; a dependency cycle.
    const LOCK_V4: &str = r#"
# This file is automatically @generated by Cargo.
# It is not intended for manual editing.
version = 4

[[package]]
name = "app"
version = "0.1.0"
dependencies = [
 "gitdep",
 "lib",
 "toml 0.8.0",
]

[[package]]
name = "lib"
version = "0.1.0"
dependencies = [
 "no-such-crate",
 "serde",
 "toml 0.5.11 (registry+https://github.com/rust-lang/crates.io-index)",
]

[[package]]
name = "serde"
version = "1.0.200"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "aaaa"
dependencies = [
 "serde_derive",
]

[[package]]
name = "serde_derive"
version = "1.0.200"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "bbbb"
dependencies = [
 "serde",
]

[[package]]
name = "toml"
version = "0.5.11"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "cccc"
dependencies = [
 "serde",
]

[[package]]
name = "toml"
version = "0.8.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "dddd"
dependencies = [
 "serde",
]

[[package]]
name = "gitdep"
version = "0.3.0"
source = "git+https://example.com/gitdep?branch=main#0123456789abcdef"

[[package]]
name = "unrelated"
version = "2.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "eeee"
"#;

    fn registry(name: &str, version: &str, checksum: &str) -> LockedPackage {
        LockedPackage {
            name: name.to_owned(),
            version: version.to_owned(),
            source: REGISTRY.to_owned(),
            checksum: Some(checksum.to_owned()),
        }
    }

    fn parse(text: &str) -> Lockfile {
        Lockfile::parse(text, Path::new("Cargo.lock")).unwrap()
    }

    #[test]
    fn an_edited_lockfile_is_parsed_again_and_the_same_text_parses_the_same() {
        let closure = |lockfile: &Lockfile| lockfile.external_closure("lib", "0.1.0");
        let first = closure(&parse(LOCK_V4));
        let edited = LOCK_V4.replace("checksum = \"aaaa\"", "checksum = \"ffff\"");
        let after_edit = closure(&parse(&edited));
        assert_ne!(after_edit, first);
        assert!(after_edit.contains(&registry("serde", "1.0.200", "ffff")));
        assert_eq!(closure(&parse(LOCK_V4)), first);
        assert_eq!(
            closure(&parse(LOCK_V4)),
            closure(&Lockfile::parse_text(LOCK_V4, Path::new("x")).unwrap())
        );
        // A parse error is never remembered.
        assert!(Lockfile::parse("[[package]]\nname = 1", Path::new("Cargo.lock")).is_err());
        assert_eq!(closure(&parse(LOCK_V4)), first);
    }

    #[test]
    fn closure_walks_through_path_packages_sorted_and_deduplicated() {
        let lockfile = parse(LOCK_V4);
        assert_eq!(
            lockfile.external_closure("app", "0.1.0"),
            [
                LockedPackage {
                    name: "gitdep".to_owned(),
                    version: "0.3.0".to_owned(),
                    source: "git+https://example.com/gitdep?branch=main#0123456789abcdef"
                        .to_owned(),
                    checksum: None,
                },
                registry("serde", "1.0.200", "aaaa"),
                registry("serde_derive", "1.0.200", "bbbb"),
                registry("toml", "0.5.11", "cccc"),
                registry("toml", "0.8.0", "dddd"),
            ]
        );
        assert_eq!(
            lockfile.external_closure("lib", "0.1.0"),
            [
                registry("serde", "1.0.200", "aaaa"),
                registry("serde_derive", "1.0.200", "bbbb"),
                registry("toml", "0.5.11", "cccc"),
            ]
        );
    }

    #[test]
    fn versions_of_a_name_in_the_lockfiles_order() {
        let lock = parse(LOCK_V4);
        assert_eq!(lock.versions("toml"), ["0.5.11", "0.8.0"]);
        assert_eq!(lock.versions("serde"), ["1.0.200"]);
        assert!(lock.versions("no-such-crate").is_empty());
    }

    #[test]
    fn unknown_package_or_version_gives_an_empty_closure() {
        let lockfile = parse(LOCK_V4);
        assert!(lockfile.external_closure("fresh", "0.1.0").is_empty());
        assert!(lockfile.external_closure("app", "9.9.9").is_empty());
    }

    #[test]
    fn reads_v3_lockfiles() {
        let lockfile = parse(&LOCK_V4.replace("version = 4", "version = 3"));
        assert_eq!(lockfile.external_closure("app", "0.1.0").len(), 5);
    }

    #[test]
    fn ambiguous_dependency_strings_resolve_to_every_candidate() {
        let text = format!(
            r#"
version = 3
[[package]]
name = "app"
version = "0.1.0"
dependencies = ["dup"]

[[package]]
name = "dup"
version = "1.0.0"
source = "{REGISTRY}"

[[package]]
name = "dup"
version = "2.0.0"
source = "{REGISTRY}"
"#
        );
        let versions: Vec<String> = parse(&text)
            .external_closure("app", "0.1.0")
            .into_iter()
            .map(|package| package.version)
            .collect();
        assert_eq!(versions, ["1.0.0", "2.0.0"]);
    }

    #[test]
    fn an_empty_lockfile_parses() {
        assert!(
            parse("version = 4\n")
                .external_closure("app", "0.1.0")
                .is_empty()
        );
    }

    #[test]
    fn parse_error_names_the_path() {
        let error = Lockfile::parse("[[package]]\nname = 1\n", Path::new("ws/Cargo.lock"))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("failed to parse `ws/Cargo.lock`: "),
            "{error}"
        );
    }

    #[test]
    fn path_packages_reached_only_through_externals() {
        // `app` -> `rusqlite` (registry) -> `cc` (a workspace member, patched in); `app` ->
        // `lib` (path, direct: the model's edge, not reported).
        let text = format!(
            r#"version = 4
[[package]]
name = "app"
version = "0.1.0"
dependencies = ["lib", "rusqlite"]

[[package]]
name = "lib"
version = "0.1.0"

[[package]]
name = "rusqlite"
version = "1.0.0"
source = "{REGISTRY}"
checksum = "aa"
dependencies = ["cc"]

[[package]]
name = "cc"
version = "1.2.0"
dependencies = ["lib"]
"#
        );
        let lock = Lockfile::parse(&text, Path::new("Cargo.lock")).unwrap();
        assert_eq!(
            lock.path_packages_reached_through_externals("app", "0.1.0"),
            vec![
                ("cc".to_string(), "1.2.0".to_string()),
                ("lib".to_string(), "0.1.0".to_string())
            ]
        );
        assert!(
            lock.path_packages_reached_through_externals("lib", "0.1.0")
                .is_empty()
        );
    }
}

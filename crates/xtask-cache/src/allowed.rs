//! Where a restore may write: the task's declared outputs, given by the caller.
//!
//! An entry names its own output paths, and an entry may come from a remote cache. Restore and
//! import check every output path against an [`AllowedOutputs`] before writing anything, so an
//! entry can never overwrite `Cargo.toml`, a source file or cargo's own state in
//! `target/debug/deps` even when its archive and JSON are consistent. Restore checks both the
//! path as recorded and the path it resolves to on disk (through symlinks already there and
//! symlinks the same entry restores earlier).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::CacheError;
use crate::meta::OutputRoot;

/// The set of paths a restore may write, as rules over `(root, relative path)`.
///
/// Build it from what the task declares: [`AllowedOutputs::cargo_artifacts`] for a cargo task,
/// [`AllowedOutputs::package_globs`] for a custom task's `outputs`, [`AllowedOutputs::directory`]
/// for a directory the caller owns; combine them with [`AllowedOutputs::or`].
#[derive(Debug, Clone, Default)]
pub struct AllowedOutputs {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
enum Rule {
    /// What cargo uplifts for users under the target directory.
    CargoArtifacts { profile_dirs: Vec<String> },
    /// Everything under `dir` (`""` = the whole root).
    Directory { root: OutputRoot, dir: String },
    /// Workspace paths inside `package_dir` whose package-relative path matches `include` and
    /// not `exclude` (the semantics of a custom task's `outputs`).
    PackageGlobs {
        package_dir: String,
        globs: Arc<CompiledGlobs>,
    },
}

/// A custom task's `outputs` globs, compiled once per process for each distinct list (every
/// package of a workspace usually shares one: compiling a glob set per task would cost more
/// than the rest of a fully cached run).
#[derive(Debug)]
struct CompiledGlobs {
    include: GlobSet,
    exclude: GlobSet,
}

impl CompiledGlobs {
    fn of(globs: &[String]) -> Result<Arc<CompiledGlobs>, CacheError> {
        static COMPILED: Mutex<Option<HashMap<Vec<String>, Arc<CompiledGlobs>>>> = Mutex::new(None);
        let mut compiled = COMPILED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let compiled = compiled.get_or_insert_with(HashMap::new);
        if let Some(found) = compiled.get(globs) {
            return Ok(found.clone());
        }
        let mut include = GlobSetBuilder::new();
        let mut exclude = GlobSetBuilder::new();
        for glob in globs {
            let (set, pattern) = match glob.strip_prefix('!') {
                Some(pattern) => (&mut exclude, pattern),
                None => (&mut include, glob.as_str()),
            };
            set.add(Glob::new(pattern).map_err(|error| invalid_glob(glob, &error))?);
        }
        let sets = Arc::new(CompiledGlobs {
            include: include
                .build()
                .map_err(|error| invalid_glob(&globs.join(", "), &error))?,
            exclude: exclude
                .build()
                .map_err(|error| invalid_glob(&globs.join(", "), &error))?,
        });
        compiled.insert(globs.to_vec(), sets.clone());
        Ok(sets)
    }
}

/// File names cargo uses for its own state next to uplifted artifacts; never an artifact.
const CARGO_RESERVED_NAMES: &[&str] = &["build", "deps", "examples", "incremental", "native"];

impl AllowedOutputs {
    /// Nothing may be written (a task without outputs).
    pub fn nothing() -> AllowedOutputs {
        AllowedOutputs::default()
    }

    /// The artifacts cargo leaves for users in the target directory ([`OutputRoot::Target`]):
    /// `<profile>/<file>`, `<profile>/examples/<file>`, `<triple>/<profile>/<file>` and
    /// `<triple>/<profile>/examples/<file>`, where `<profile>` is one of `profile_dirs` (e.g.
    /// `debug`, `release`), `<triple>` contains a `-`, and `<file>` does not start with `.` and
    /// is not one of cargo's own directories (`deps`, `build`, `incremental`, `examples`,
    /// `native`). Never `deps/`, `build/`, `.fingerprint/` or `incremental/` contents.
    pub fn cargo_artifacts<S: AsRef<str>>(profile_dirs: &[S]) -> AllowedOutputs {
        AllowedOutputs {
            rules: vec![Rule::CargoArtifacts {
                profile_dirs: profile_dirs
                    .iter()
                    .map(|dir| dir.as_ref().to_owned())
                    .collect(),
            }],
        }
    }

    /// Everything under `dir` (relative to `root`, `/`-separated; `""` = the whole root).
    pub fn directory(root: OutputRoot, dir: &str) -> AllowedOutputs {
        AllowedOutputs {
            rules: vec![Rule::Directory {
                root,
                dir: dir.trim_matches('/').to_owned(),
            }],
        }
    }

    /// A custom task's declared `outputs`: workspace paths ([`OutputRoot::Workspace`]) inside
    /// `package_dir` (workspace-relative, `""` for a package at the root) whose path relative to
    /// the package matches one of `globs` and none of its `!` globs, exactly as the engine
    /// collects them after a run.
    pub fn package_globs(
        package_dir: &str,
        globs: &[String],
    ) -> Result<AllowedOutputs, CacheError> {
        Ok(AllowedOutputs {
            rules: vec![Rule::PackageGlobs {
                package_dir: package_dir.trim_matches('/').to_owned(),
                globs: CompiledGlobs::of(globs)?,
            }],
        })
    }

    /// The union of both sets.
    #[must_use]
    pub fn or(mut self, other: AllowedOutputs) -> AllowedOutputs {
        self.rules.extend(other.rules);
        self
    }

    /// Whether a restore may write `path` (relative to `root`, already checked to be a
    /// normalized relative path).
    pub fn allows(&self, root: OutputRoot, path: &str) -> bool {
        self.rules.iter().any(|rule| rule.allows(root, path))
    }

    /// A short description for error messages.
    pub(crate) fn describe(&self) -> String {
        if self.rules.is_empty() {
            return "the task declares no outputs".to_owned();
        }
        let parts: Vec<String> = self
            .rules
            .iter()
            .map(|rule| match rule {
                Rule::CargoArtifacts { profile_dirs } => format!(
                    "cargo artifacts of the {} profile directories in the target root",
                    profile_dirs.join("/")
                ),
                Rule::Directory { root, dir } if dir.is_empty() => {
                    format!("anything in the {} root", root.as_str())
                }
                Rule::Directory { root, dir } => format!("`{dir}/` in the {} root", root.as_str()),
                Rule::PackageGlobs { package_dir, .. } => {
                    format!("the declared outputs of the package at `{package_dir}`")
                }
            })
            .collect();
        format!("the task may only write {}", parts.join(" or "))
    }
}

impl Rule {
    fn allows(&self, root: OutputRoot, path: &str) -> bool {
        match self {
            Rule::CargoArtifacts { profile_dirs } => {
                root == OutputRoot::Target && is_cargo_artifact(profile_dirs, path)
            }
            Rule::Directory {
                root: allowed_root,
                dir,
            } => {
                *allowed_root == root
                    && (dir.is_empty()
                        || path
                            .strip_prefix(dir.as_str())
                            .is_some_and(|rest| rest.starts_with('/')))
            }
            Rule::PackageGlobs { package_dir, globs } => {
                if root != OutputRoot::Workspace {
                    return false;
                }
                let relative = if package_dir.is_empty() {
                    Some(path)
                } else {
                    path.strip_prefix(package_dir.as_str())
                        .and_then(|rest| rest.strip_prefix('/'))
                };
                relative.is_some_and(|relative| {
                    globs.include.is_match(relative) && !globs.exclude.is_match(relative)
                })
            }
        }
    }
}

fn is_cargo_artifact(profile_dirs: &[String], path: &str) -> bool {
    let is_profile = |name: &str| profile_dirs.iter().any(|dir| dir == name);
    let is_triple = |name: &str| name.contains('-') && !name.starts_with('.') && !is_profile(name);
    let is_file = |name: &str| !name.starts_with('.') && !CARGO_RESERVED_NAMES.contains(&name);
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        [profile, file] | [profile, "examples", file] => is_profile(profile) && is_file(file),
        [triple, profile, file] | [triple, profile, "examples", file] => {
            is_triple(triple) && is_profile(profile) && is_file(file)
        }
        _ => false,
    }
}

fn invalid_glob(glob: &str, error: &globset::Error) -> CacheError {
    CacheError::InvalidOutputGlob {
        glob: glob.to_owned(),
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_artifacts_are_the_uplifted_paths_only() {
        let allowed = AllowedOutputs::cargo_artifacts(&["debug", "release"]);
        let target = |path| allowed.allows(OutputRoot::Target, path);
        for path in [
            "debug/app",
            "debug/libshared.so",
            "release/app",
            "debug/examples/demo",
            "x86_64-unknown-linux-musl/release/app",
            "x86_64-unknown-linux-musl/debug/examples/demo",
        ] {
            assert!(target(path), "{path} must be allowed");
        }
        for path in [
            "app",
            "CACHEDIR.TAG",
            "debug/.cargo-lock",
            "debug/deps/libfoo.rlib",
            "debug/deps",
            "debug/build/foo-123/out/x",
            "debug/.fingerprint/foo-123/bin-foo",
            "debug/incremental/foo/x",
            "debug/examples/deps",
            "bench/app",
            "xtask/images/api.json",
            "debug/sub/app",
            "release/x86_64-unknown-linux-musl/app",
            "debug/release/app",
            "x86_64-unknown-linux-musl/release/deps/app",
        ] {
            assert!(!target(path), "{path} must not be allowed");
        }
        assert!(!allowed.allows(OutputRoot::Workspace, "debug/app"));
    }

    #[test]
    fn package_globs_match_relative_to_the_package_only() {
        let allowed = AllowedOutputs::package_globs(
            "apps/web",
            &["dist/**".to_owned(), "!dist/private/**".to_owned()],
        )
        .expect("valid globs");
        let workspace = |path| allowed.allows(OutputRoot::Workspace, path);
        assert!(workspace("apps/web/dist/index.html"));
        assert!(workspace("apps/web/dist/a/b.js"));
        assert!(!workspace("apps/web/dist/private/key"));
        assert!(!workspace("apps/web/Cargo.toml"));
        assert!(!workspace("apps/web/src/main.rs"));
        assert!(!workspace("apps/webdist/x"));
        assert!(!workspace("dist/index.html"));
        assert!(!workspace("Cargo.toml"));
        assert!(!allowed.allows(OutputRoot::Target, "apps/web/dist/index.html"));

        let root_package = AllowedOutputs::package_globs("", &["out/*".to_owned()]).expect("ok");
        assert!(root_package.allows(OutputRoot::Workspace, "out/x"));
        assert!(!root_package.allows(OutputRoot::Workspace, "Cargo.toml"));

        let error =
            AllowedOutputs::package_globs("a", &["out/[".to_owned()]).expect_err("an invalid glob");
        assert!(error.to_string().contains("out/["), "{error}");
    }

    #[test]
    fn directories_nothing_and_unions() {
        let images = AllowedOutputs::directory(OutputRoot::Target, "xtask/images/api");
        assert!(images.allows(OutputRoot::Target, "xtask/images/api/oci/index.json"));
        assert!(!images.allows(OutputRoot::Target, "xtask/images/api2/x"));
        assert!(!images.allows(OutputRoot::Target, "xtask/images/api"));
        assert!(!images.allows(OutputRoot::Workspace, "xtask/images/api/x"));
        let whole = AllowedOutputs::directory(OutputRoot::Workspace, "");
        assert!(whole.allows(OutputRoot::Workspace, "anything/at/all"));
        assert!(!AllowedOutputs::nothing().allows(OutputRoot::Workspace, "a"));
        let both = images.or(AllowedOutputs::cargo_artifacts(&["debug"]));
        assert!(both.allows(OutputRoot::Target, "debug/app"));
        assert!(both.allows(OutputRoot::Target, "xtask/images/api/x"));
    }
}

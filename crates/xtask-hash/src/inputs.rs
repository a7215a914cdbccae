//! Input discovery: which files under a package (or the workspace root) a task hash covers.
//!
//! An entry of the walk is an input only if it passes every one of these rules:
//!
//! - Symlinks are never followed. A symlink (to a file or a directory) is itself an input,
//!   whose content is its target string (see [`crate::hash_file`]).
//! - Hidden files are inputs; a `.git` entry (directory or file) is never entered or listed.
//! - Directories listed in [`InputSpec::exclude_dirs`] are never entered.
//! - Exclude globs (a leading `!` in [`InputSpec::include`], and every
//!   [`InputSpec::exclude_globs`] entry) drop matching files; a directory they match is not
//!   entered at all. A trailing `/` is ignored, so `dist/` and `dist` both drop the directory.
//! - Include globs match files only (write `src/**`, not `src`); no include glob means every
//!   file.
//! - `.gitignore` and `.ignore` files are respected whether or not there is a git repository,
//!   with the `ignore` crate's precedence (any `.ignore` rule over any `.gitignore` rule,
//!   deeper files over shallower ones). Those between the workspace root and the walked
//!   directory apply too; those above the workspace root, the global git excludes file and
//!   `.git/info/exclude` never do, so inputs do not depend on the machine. One simplification:
//!   an ignore file above the walked directory can drop files but cannot re-include (`!`) a
//!   file that an ignore file inside it drops.
//! - Only regular files and symlinks are inputs (no FIFOs, sockets or devices).
//!
//! Globs use `globset` with `literal_separator`: `*` does not cross `/`, `**` does.
//! Results are sorted by workspace-relative path. The walk is sequential: one package is
//! small, and callers get parallelism by discovering several packages at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::{DirEntry, Match, WalkBuilder};
use xtask_util::{RelPath, RelPathError};

use crate::HashError;

/// What to walk for one task's inputs.
#[derive(Debug, Clone, Copy)]
pub struct InputSpec<'a> {
    /// Absolute path of the workspace root.
    pub workspace_root: &'a Path,
    /// Absolute path of the package directory, inside `workspace_root` (may equal it).
    pub package_dir: &'a Path,
    /// Globs relative to `package_dir`; empty means every file. A leading `!` makes a glob
    /// an exclude glob.
    pub include: &'a [String],
    /// Extra exclude globs relative to `package_dir`: the task's own declared outputs.
    pub exclude_globs: &'a [String],
    /// Absolute directories never entered: the target dir, the cache dir, packages nested
    /// inside this one.
    pub exclude_dirs: &'a [PathBuf],
}

/// One input file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InputFile {
    /// Workspace-relative path with `/` separators: what goes in the key.
    pub relative_path: String,
    /// Where the file is on this machine: what gets read.
    pub absolute_path: PathBuf,
}

/// Lists the input files of a package, sorted by `relative_path`.
pub fn discover_inputs(spec: &InputSpec<'_>) -> Result<Vec<InputFile>, HashError> {
    discover_inputs_visiting(spec, None)
}

/// [`discover_inputs`], also collecting every directory the walk entered into `visited`.
pub(crate) fn discover_inputs_visiting(
    spec: &InputSpec<'_>,
    visited: Option<&mut Vec<PathBuf>>,
) -> Result<Vec<InputFile>, HashError> {
    // Fails early, with a clear error, when the package is not inside the workspace.
    relative_string(spec.package_dir, spec.workspace_root)?;
    let mut include = Vec::new();
    let mut exclude = Vec::new();
    for glob in spec.include {
        match glob.strip_prefix('!') {
            Some(negated) => exclude.push(negated),
            None => include.push(glob.as_str()),
        }
    }
    exclude.extend(spec.exclude_globs.iter().map(String::as_str));
    let filter = EntryFilter {
        glob_base: spec.package_dir.to_path_buf(),
        include: compile_globs(&include)?,
        exclude: compile_globs(&exclude)?,
        exclude_dirs: spec
            .exclude_dirs
            .iter()
            .filter(|dir| dir.starts_with(spec.package_dir))
            .cloned()
            .collect(),
        outer_ignores: OuterIgnores::load(spec.workspace_root, spec.package_dir),
    };
    let mut files = Vec::new();
    walk_files(
        spec.workspace_root,
        spec.package_dir,
        None,
        filter,
        &mut files,
        visited,
    )?;
    files.sort_unstable_by(|a, b| a.relative_path.cmp(&b.relative_path));
    Ok(files)
}

/// Lists the existing files matching workspace-root-relative `globs` (`Cargo.toml`,
/// `rust-toolchain*`, `.cargo/config*`), sorted by `relative_path`.
///
/// Only what the globs can match is read: a glob without a `/` looks at the root directory
/// alone, `.cargo/config*` at `.cargo/` alone, and only a `**` walks a subtree. A glob
/// without glob characters is a plain path: it is an input whenever it exists, even if an
/// ignore file lists it (a gitignored `Cargo.lock` still counts). Files found through
/// patterns follow the rules of [`discover_inputs`]. A leading `!` excludes.
pub fn discover_global_inputs(
    workspace_root: &Path,
    globs: &[String],
) -> Result<Vec<InputFile>, HashError> {
    let mut include = Vec::new();
    let mut exclude = Vec::new();
    for glob in globs {
        let (list, pattern) = match glob.strip_prefix('!') {
            Some(negated) => (&mut exclude, negated),
            None => (&mut include, glob.as_str()),
        };
        check_root_relative(pattern)?;
        list.push(pattern);
    }
    let exclude_set = compile_globs(&exclude)?;
    let include_set = compile_globs(&include)?;

    let mut literal_paths = Vec::new();
    // Literal directory prefix -> how deep below it the globs reach (None: unbounded).
    let mut walks: BTreeMap<&str, Option<usize>> = BTreeMap::new();
    for &pattern in &include {
        match split_literal_prefix(pattern) {
            GlobShape::Literal => literal_paths.push(pattern),
            GlobShape::Pattern { prefix, max_depth } => {
                let depth = walks.entry(prefix).or_insert(Some(0));
                *depth = match (*depth, max_depth) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
        }
    }

    let mut files = Vec::new();
    for literal in literal_paths {
        let absolute_path = workspace_root.join(literal);
        let metadata = match std::fs::symlink_metadata(&absolute_path) {
            Ok(metadata) => metadata,
            Err(error) if is_missing(&error) => continue,
            Err(source) => {
                return Err(HashError::Read {
                    path: literal.into(),
                    source,
                });
            }
        };
        let file_type = metadata.file_type();
        let excluded = exclude_set
            .as_ref()
            .is_some_and(|set| set.is_match_candidate(&Candidate::new(literal)));
        if (file_type.is_file() || file_type.is_symlink()) && !excluded {
            files.push(InputFile {
                relative_path: literal.to_owned(),
                absolute_path,
            });
        }
    }
    for (prefix, max_depth) in walks {
        let start_dir = workspace_root.join(prefix);
        match std::fs::symlink_metadata(&start_dir) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => continue,
            Err(error) if is_missing(&error) => continue,
            Err(source) => {
                return Err(HashError::Read {
                    path: start_dir,
                    source,
                });
            }
        }
        let filter = EntryFilter {
            glob_base: workspace_root.to_path_buf(),
            include: include_set.clone(),
            exclude: exclude_set.clone(),
            exclude_dirs: HashSet::new(),
            outer_ignores: OuterIgnores::load(workspace_root, &start_dir),
        };
        walk_files(
            workspace_root,
            &start_dir,
            max_depth,
            filter,
            &mut files,
            None,
        )?;
    }
    files.sort_unstable_by(|a, b| a.relative_path.cmp(&b.relative_path));
    files.dedup_by(|a, b| a.relative_path == b.relative_path);
    Ok(files)
}

/// Walks `start_dir` with `filter` and appends every kept regular file and symlink.
fn walk_files(
    workspace_root: &Path,
    start_dir: &Path,
    max_depth: Option<usize>,
    filter: EntryFilter,
    files: &mut Vec<InputFile>,
    mut visited: Option<&mut Vec<PathBuf>>,
) -> Result<(), HashError> {
    let filter = Arc::new(filter);
    let mut builder = WalkBuilder::new(start_dir);
    builder
        .hidden(false)
        .parents(false)
        .ignore(true)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .follow_links(false)
        .max_depth(max_depth)
        .current_dir(workspace_root)
        .filter_entry(move |entry| filter.keeps(entry));
    for entry in builder.build() {
        let entry = entry.map_err(|source| HashError::Walk {
            path: start_dir.to_path_buf(),
            source,
        })?;
        let Some(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir()
            && let Some(visited) = visited.as_deref_mut()
        {
            visited.push(entry.path().to_path_buf());
        }
        if !(file_type.is_file() || file_type.is_symlink()) {
            continue;
        }
        let relative_path = relative_string(entry.path(), workspace_root)?;
        files.push(InputFile {
            relative_path,
            absolute_path: entry.into_path(),
        });
    }
    Ok(())
}

/// The decisions the `ignore` walker does not make itself. Owned, because the walker wants
/// a `'static` filter.
struct EntryFilter {
    /// Globs are matched against paths relative to this directory.
    glob_base: PathBuf,
    /// Files must match this, if set.
    include: Option<GlobSet>,
    /// Files and directories matching this are dropped.
    exclude: Option<GlobSet>,
    exclude_dirs: HashSet<PathBuf>,
    outer_ignores: OuterIgnores,
}

impl EntryFilter {
    /// Whether the walker should yield (and, for a directory, enter) `entry`.
    fn keeps(&self, entry: &DirEntry) -> bool {
        if entry.file_name() == ".git" {
            return false;
        }
        let is_dir = entry
            .file_type()
            .is_some_and(|file_type| file_type.is_dir());
        let path = entry.path();
        if is_dir && self.exclude_dirs.contains(path) {
            return false;
        }
        if self.include.is_some() || self.exclude.is_some() {
            let Ok(relative) = path.strip_prefix(&self.glob_base) else {
                return false;
            };
            let candidate = Candidate::new(relative);
            if self
                .exclude
                .as_ref()
                .is_some_and(|set| set.is_match_candidate(&candidate))
            {
                return false;
            }
            if !is_dir
                && self
                    .include
                    .as_ref()
                    .is_some_and(|set| !set.is_match_candidate(&candidate))
            {
                return false;
            }
        }
        !self.outer_ignores.drops(path, is_dir)
    }
}

/// The `.ignore` / `.gitignore` files of the directories between the workspace root
/// (inclusive) and the walked directory (exclusive), which the walker does not read.
struct OuterIgnores {
    /// The walked directory.
    walk_root: PathBuf,
    /// `.ignore` matchers, deepest directory first.
    dot_ignores: Vec<Gitignore>,
    /// `.gitignore` matchers, deepest directory first, stopping at a repository root.
    gitignores: Vec<Gitignore>,
    /// Ignore files inside the walk, loaded only when an outer rule matches.
    inner_cache: Mutex<HashMap<PathBuf, Arc<DirIgnores>>>,
}

/// The ignore files of one directory inside the walk.
struct DirIgnores {
    dot_ignore: Gitignore,
    gitignore: Gitignore,
    has_git: bool,
}

impl OuterIgnores {
    fn load(workspace_root: &Path, walk_root: &Path) -> OuterIgnores {
        let mut dot_ignores = Vec::new();
        let mut gitignores = Vec::new();
        let mut saw_git = walk_root.join(".git").exists();
        if walk_root != workspace_root {
            for dir in walk_root.ancestors().skip(1) {
                if !dir.starts_with(workspace_root) {
                    break;
                }
                let dot_ignore = load_ignore_file(dir, ".ignore");
                if !dot_ignore.is_empty() {
                    dot_ignores.push(dot_ignore);
                }
                if !saw_git {
                    let gitignore = load_ignore_file(dir, ".gitignore");
                    if !gitignore.is_empty() {
                        gitignores.push(gitignore);
                    }
                    saw_git = dir.join(".git").exists();
                }
            }
        }
        OuterIgnores {
            walk_root: walk_root.to_path_buf(),
            dot_ignores,
            gitignores,
            inner_cache: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the outer ignore files drop `path`, given that the walker (which read the
    /// ignore files inside the walk) kept it.
    fn drops(&self, path: &Path, is_dir: bool) -> bool {
        if self.dot_ignores.is_empty() && self.gitignores.is_empty() {
            return false;
        }
        let outer_dot_ignore = first_match(&self.dot_ignores, path, is_dir);
        let outer_gitignore = first_match(&self.gitignores, path, is_dir);
        if !outer_dot_ignore.is_ignore() && !outer_gitignore.is_ignore() {
            return false;
        }
        // Rare path: an outer rule drops it; an inner rule may re-include it.
        let mut inner_dot_ignore = Match::None;
        let mut inner_gitignore = Match::None;
        let mut saw_git = false;
        let mut dir = path.parent();
        while let Some(current) = dir {
            if !current.starts_with(&self.walk_root) {
                break;
            }
            let ignores = self.inner(current);
            if inner_dot_ignore.is_none() {
                inner_dot_ignore = ignores.dot_ignore.matched(path, is_dir).map(|_| ());
            }
            if !saw_git && inner_gitignore.is_none() {
                inner_gitignore = ignores.gitignore.matched(path, is_dir).map(|_| ());
            }
            saw_git |= ignores.has_git;
            dir = current.parent();
        }
        let outer_gitignore = if saw_git {
            Match::None
        } else {
            outer_gitignore
        };
        inner_dot_ignore
            .or(outer_dot_ignore)
            .or(inner_gitignore)
            .or(outer_gitignore)
            .is_ignore()
    }

    fn inner(&self, dir: &Path) -> Arc<DirIgnores> {
        let mut cache = self
            .inner_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        cache
            .entry(dir.to_path_buf())
            .or_insert_with(|| {
                Arc::new(DirIgnores {
                    dot_ignore: load_ignore_file(dir, ".ignore"),
                    gitignore: load_ignore_file(dir, ".gitignore"),
                    has_git: dir.join(".git").exists(),
                })
            })
            .clone()
    }
}

/// The first non-`None` match among `matchers`, as a plain ignore/whitelist answer.
fn first_match(matchers: &[Gitignore], path: &Path, is_dir: bool) -> Match<()> {
    matchers
        .iter()
        .map(|matcher| matcher.matched(path, is_dir).map(|_| ()))
        .find(|found| !found.is_none())
        .unwrap_or(Match::None)
}

/// The matcher of `dir/name`, empty when it does not exist. Malformed lines are skipped,
/// as git does; the walker reports those inside the walk.
fn load_ignore_file(dir: &Path, name: &str) -> Gitignore {
    let path = dir.join(name);
    if !path.is_file() {
        return Gitignore::empty();
    }
    let mut builder = GitignoreBuilder::new(dir);
    // Partial errors (a bad line) still leave the good lines in the builder.
    let _partial_error = builder.add(path);
    builder.build().unwrap_or_else(|_| Gitignore::empty())
}

/// Compiles globs into one set; `None` when there are none.
fn compile_globs(globs: &[&str]) -> Result<Option<GlobSet>, HashError> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for &glob in globs {
        let trimmed = glob.trim_end_matches('/');
        let pattern = if trimmed.is_empty() { glob } else { trimmed };
        let compiled = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|source| HashError::Glob {
                glob: glob.to_owned(),
                source,
            })?;
        builder.add(compiled);
    }
    let set = builder.build().map_err(|source| HashError::Glob {
        glob: globs.join(", "),
        source,
    })?;
    Ok(Some(set))
}

/// Rejects global globs that could reach outside the workspace root.
fn check_root_relative(glob: &str) -> Result<(), HashError> {
    let reason = if glob.is_empty() {
        "a glob must not be empty"
    } else if glob.starts_with('/') || Path::new(glob).is_absolute() {
        "a global input glob must be relative to the workspace root"
    } else if glob.split('/').any(|part| part == ".." || part == ".") {
        "a global input glob must not contain `.` or `..` components"
    } else {
        return Ok(());
    };
    Err(HashError::GlobNotAllowed {
        glob: glob.to_owned(),
        reason,
    })
}

/// How much of the tree a root-relative glob can reach.
#[derive(Debug, PartialEq, Eq)]
enum GlobShape<'a> {
    /// No glob characters: a plain path.
    Literal,
    /// Walk `prefix` (workspace-relative, `""` for the root) down to `max_depth` levels
    /// (`None`: no limit, the glob has a `**`).
    Pattern {
        prefix: &'a str,
        max_depth: Option<usize>,
    },
}

fn split_literal_prefix(glob: &str) -> GlobShape<'_> {
    let is_literal = |part: &str| !part.contains(['*', '?', '[', '{', '\\']);
    let mut prefix_len = 0;
    for part in glob.split('/') {
        if !is_literal(part) {
            let prefix = glob[..prefix_len].trim_end_matches('/');
            let rest = &glob[prefix_len..];
            let max_depth = if rest.contains("**") {
                None
            } else {
                // Counting every `/` can only overestimate the depth (e.g. inside `{a/b,c}`),
                // which walks a little more but never misses a file.
                Some(rest.split('/').count())
            };
            return GlobShape::Pattern { prefix, max_depth };
        }
        prefix_len += part.len() + 1;
    }
    GlobShape::Literal
}

/// `path` relative to `base` with `/` separators (a [`RelPath`]); errors if it is not inside
/// `base` or not valid UTF-8.
fn relative_string(path: &Path, base: &Path) -> Result<String, HashError> {
    match RelPath::new(base, path) {
        Ok(relative) => Ok(relative.into_string()),
        Err(RelPathError::NotUtf8 { path }) => Err(HashError::NonUtf8Path { path }),
        Err(_) => Err(HashError::OutsideWorkspace {
            path: path.to_path_buf(),
            workspace_root: base.to_path_buf(),
        }),
    }
}

/// Whether an error means "there is nothing at this path".
fn is_missing(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `files` (path, content) under `root`, creating directories.
    fn write_tree(root: &Path, files: &[(&str, &str)]) {
        for (path, content) in files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
    }

    fn strings(globs: &[&str]) -> Vec<String> {
        globs.iter().map(|glob| (*glob).to_owned()).collect()
    }

    #[derive(Default)]
    struct Discover<'a> {
        package: &'a str,
        include: &'a [&'a str],
        exclude_globs: &'a [&'a str],
        exclude_dirs: &'a [&'a str],
    }

    fn discover(root: &Path, options: Discover<'_>) -> Vec<String> {
        let package_dir = root.join(options.package);
        let include = strings(options.include);
        let exclude_globs = strings(options.exclude_globs);
        let exclude_dirs: Vec<PathBuf> = options
            .exclude_dirs
            .iter()
            .map(|dir| root.join(dir))
            .collect();
        let files = discover_inputs(&InputSpec {
            workspace_root: root,
            package_dir: &package_dir,
            include: &include,
            exclude_globs: &exclude_globs,
            exclude_dirs: &exclude_dirs,
        })
        .unwrap();
        for file in &files {
            assert_eq!(file.absolute_path, root.join(&file.relative_path));
        }
        files.into_iter().map(|file| file.relative_path).collect()
    }

    fn global(root: &Path, globs: &[&str]) -> Vec<String> {
        discover_global_inputs(root, &strings(globs))
            .unwrap()
            .into_iter()
            .map(|file| file.relative_path)
            .collect()
    }

    #[test]
    fn lists_every_file_sorted_with_workspace_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_tree(
            root,
            &[
                ("crates/a/src/lib.rs", ""),
                ("crates/a/src/a-b.rs", ""),
                ("crates/a/src/a/mod.rs", ""),
                ("crates/a/Cargo.toml", ""),
                ("crates/a/.hidden", ""),
                ("crates/other/src/lib.rs", ""),
            ],
        );
        std::fs::create_dir_all(root.join("crates/a/empty-dir")).unwrap();
        let files = discover(
            root,
            Discover {
                package: "crates/a",
                ..Discover::default()
            },
        );
        assert_eq!(
            files,
            [
                "crates/a/.hidden",
                "crates/a/Cargo.toml",
                "crates/a/src/a-b.rs",
                "crates/a/src/a/mod.rs",
                "crates/a/src/lib.rs",
            ]
        );
    }

    #[test]
    fn respects_gitignore_and_ignore_without_a_git_repository() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_tree(
            root,
            &[
                (".gitignore", "/target\n*.log\n"),
                ("crates/a/.gitignore", "generated/\n!keep.log\n"),
                ("crates/a/.ignore", "scratch.txt\n"),
                ("crates/a/src/lib.rs", ""),
                ("crates/a/debug.log", ""),
                ("crates/a/keep.log", ""),
                ("crates/a/generated/out.rs", ""),
                ("crates/a/scratch.txt", ""),
                ("crates/a/target/x", ""),
                ("target/debug/x", ""),
            ],
        );
        assert!(!root.join(".git").exists());
        let files = discover(
            root,
            Discover {
                package: "crates/a",
                ..Discover::default()
            },
        );
        // The root `/target` is anchored at the root: `crates/a/target` stays an input.
        assert_eq!(
            files,
            [
                "crates/a/.gitignore",
                "crates/a/.ignore",
                "crates/a/keep.log",
                "crates/a/src/lib.rs",
                "crates/a/target/x",
            ]
        );
        let from_root = discover(root, Discover::default());
        assert!(!from_root.iter().any(|path| path.starts_with("target/")));
        assert!(from_root.contains(&"crates/a/keep.log".to_owned()));
        assert!(!from_root.contains(&"crates/a/debug.log".to_owned()));
    }

    #[test]
    fn dot_ignore_outranks_gitignore_across_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // Inside one walk the `ignore` crate decides: a root `.ignore` re-include beats a
        // deeper `.gitignore` exclude.
        write_tree(
            root,
            &[
                (".ignore", "!secret.env\n"),
                ("crates/a/.gitignore", "*.env\n"),
                ("crates/a/secret.env", ""),
                ("crates/a/other.env", ""),
            ],
        );
        assert_eq!(
            discover(root, Discover::default()),
            [".ignore", "crates/a/.gitignore", "crates/a/secret.env",]
        );
        // From the package, the root `.ignore` is an outer file: it still beats the
        // package's `.gitignore`, here to drop what that file re-includes.
        write_tree(
            root,
            &[
                (".ignore", "*.env\n"),
                ("crates/a/.gitignore", "!secret.env\n"),
            ],
        );
        assert_eq!(
            discover(
                root,
                Discover {
                    package: "crates/a",
                    ..Discover::default()
                }
            ),
            ["crates/a/.gitignore"]
        );
    }

    #[test]
    fn ignore_files_above_the_workspace_root_do_not_apply() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(
            dir.path(),
            &[
                (".gitignore", "*.rs\n"),
                (".ignore", "*.rs\n"),
                ("workspace/crates/a/src/lib.rs", ""),
            ],
        );
        let root = dir.path().join("workspace");
        assert_eq!(
            discover(
                &root,
                Discover {
                    package: "crates/a",
                    ..Discover::default()
                }
            ),
            ["crates/a/src/lib.rs"]
        );
        assert_eq!(
            discover(&root, Discover::default()),
            ["crates/a/src/lib.rs"]
        );
    }

    #[test]
    fn a_repository_root_stops_outer_gitignores() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_tree(
            root,
            &[
                (".gitignore", "*.txt\n"),
                ("vendor/sub/.git/HEAD", "ref: refs/heads/main\n"),
                ("vendor/sub/notes.txt", ""),
                ("crates/a/notes.txt", ""),
            ],
        );
        // A nested repository is its own world for `.gitignore`, as for git.
        assert_eq!(
            discover(
                root,
                Discover {
                    package: "vendor/sub",
                    ..Discover::default()
                }
            ),
            ["vendor/sub/notes.txt"]
        );
        assert!(
            discover(
                root,
                Discover {
                    package: "crates/a",
                    ..Discover::default()
                }
            )
            .is_empty()
        );
    }

    #[test]
    fn an_inner_gitignore_can_reinclude_what_an_outer_one_drops() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_tree(
            root,
            &[
                (".gitignore", "*.txt\n"),
                ("crates/a/docs/.gitignore", "!keep.txt\n"),
                ("crates/a/docs/keep.txt", ""),
                ("crates/a/docs/drop.txt", ""),
            ],
        );
        assert_eq!(
            discover(
                root,
                Discover {
                    package: "crates/a",
                    ..Discover::default()
                }
            ),
            ["crates/a/docs/.gitignore", "crates/a/docs/keep.txt"]
        );
    }

    #[test]
    fn never_enters_dot_git() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_tree(
            root,
            &[
                (".git/HEAD", ""),
                (".git/objects/ab/cdef", ""),
                (".github/workflows/ci.yml", ""),
                ("crates/sub/.git", "gitdir: ../../.git/modules/sub\n"),
                ("src/main.rs", ""),
            ],
        );
        assert_eq!(
            discover(root, Discover::default()),
            [".github/workflows/ci.yml", "src/main.rs",]
        );
    }

    #[test]
    fn include_and_exclude_globs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_tree(
            root,
            &[
                ("crates/a/build.rs", ""),
                ("crates/a/src/lib.rs", ""),
                ("crates/a/src/gen/big.rs", ""),
                ("crates/a/src/notes.md", ""),
                ("crates/a/dist/app.js", ""),
                ("crates/a/README.md", ""),
            ],
        );
        let package = "crates/a";
        // `*` does not cross `/`; `**` does.
        assert_eq!(
            discover(
                root,
                Discover {
                    package,
                    include: &["*.rs"],
                    ..Discover::default()
                }
            ),
            ["crates/a/build.rs"]
        );
        assert_eq!(
            discover(
                root,
                Discover {
                    package,
                    include: &["src/**/*.rs", "!src/gen"],
                    ..Discover::default()
                }
            ),
            ["crates/a/src/lib.rs"]
        );
        // Only excludes: everything else is an input.
        assert_eq!(
            discover(
                root,
                Discover {
                    package,
                    include: &["!**/*.md"],
                    exclude_globs: &["dist/"],
                    ..Discover::default()
                }
            ),
            [
                "crates/a/build.rs",
                "crates/a/src/gen/big.rs",
                "crates/a/src/lib.rs",
            ]
        );
        assert_eq!(
            discover(
                root,
                Discover {
                    package,
                    exclude_globs: &["dist/**", "src/gen/*.rs"],
                    ..Discover::default()
                }
            ),
            [
                "crates/a/README.md",
                "crates/a/build.rs",
                "crates/a/src/lib.rs",
                "crates/a/src/notes.md",
            ]
        );
    }

    #[test]
    fn exclude_dirs_are_not_entered() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_tree(
            root,
            &[
                ("Cargo.toml", ""),
                ("src/main.rs", ""),
                ("crates/nested/src/lib.rs", ""),
                ("target/debug/out", ""),
                (".xtask-cache/entry", ""),
            ],
        );
        assert_eq!(
            discover(
                root,
                Discover {
                    exclude_dirs: &["crates/nested", "target", ".xtask-cache/", "elsewhere"],
                    ..Discover::default()
                }
            ),
            ["Cargo.toml", "src/main.rs"]
        );
    }

    #[test]
    fn a_cache_dir_anywhere_in_the_workspace_is_never_an_input() {
        // As `xtask-cache` creates it: a `.gitignore` of `*` and a `CACHEDIR.TAG`. Not entered
        // even when the caller forgets to list it in `exclude_dirs`, nor by a global `**`.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_tree(
            root,
            &[
                ("Cargo.toml", ""),
                ("src/main.rs", ""),
                ("src/build-cache/.gitignore", "*\n"),
                (
                    "src/build-cache/CACHEDIR.TAG",
                    "Signature: 8a477f597d28d172789f06886806bc55\n",
                ),
                ("src/build-cache/v1/entries/ab/x.json", "{}"),
            ],
        );
        assert_eq!(
            discover(root, Discover::default()),
            ["Cargo.toml", "src/main.rs"]
        );
        assert_eq!(global(root, &["**"]), ["Cargo.toml", "src/main.rs"]);
        // And listed in `exclude_dirs` (how the engine passes `XTASK_CACHE_DIR` or
        // `[workspace.metadata.xtask.cache] dir`), even without its markers.
        std::fs::remove_file(root.join("src/build-cache/.gitignore")).unwrap();
        assert_eq!(
            discover(
                root,
                Discover {
                    exclude_dirs: &["src/build-cache"],
                    ..Discover::default()
                }
            ),
            ["Cargo.toml", "src/main.rs"]
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_inputs_and_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_tree(
            root,
            &[("shared/data.txt", ""), ("crates/a/src/lib.rs", "")],
        );
        std::os::unix::fs::symlink("../../shared", root.join("crates/a/shared-dir")).unwrap();
        std::os::unix::fs::symlink("src/lib.rs", root.join("crates/a/alias.rs")).unwrap();
        std::os::unix::fs::symlink("nowhere", root.join("crates/a/dangling")).unwrap();
        assert_eq!(
            discover(
                root,
                Discover {
                    package: "crates/a",
                    ..Discover::default()
                }
            ),
            [
                "crates/a/alias.rs",
                "crates/a/dangling",
                "crates/a/shared-dir",
                "crates/a/src/lib.rs",
            ]
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir_all(&root).unwrap();
        let outside = dir.path().join("elsewhere");
        let error = discover_inputs(&InputSpec {
            workspace_root: &root,
            package_dir: &outside,
            include: &[],
            exclude_globs: &[],
            exclude_dirs: &[],
        })
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            format!(
                "`{}` is not inside the workspace root `{}`",
                outside.display(),
                root.display()
            )
        );
        let bad = strings(&["src/[.rs"]);
        let error = discover_inputs(&InputSpec {
            workspace_root: &root,
            package_dir: &root,
            include: &bad,
            exclude_globs: &[],
            exclude_dirs: &[],
        })
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("invalid glob `src/[.rs`: "), "{error}");
    }

    #[test]
    fn global_inputs_read_only_what_the_globs_reach() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_tree(
            root,
            &[
                ("Cargo.toml", ""),
                ("Cargo.lock", ""),
                (".gitignore", "Cargo.lock\n*.local\n"),
                ("rust-toolchain.toml", ""),
                ("crates/a/rust-toolchain.toml", ""),
                (".cargo/config.toml", ""),
                (".cargo/sub/config.toml", ""),
                ("proto/a.proto", ""),
                ("proto/deep/b.proto", ""),
                ("proto/deep/c.local", ""),
            ],
        );
        std::fs::create_dir_all(root.join("somedir")).unwrap();
        assert_eq!(
            global(
                root,
                &[
                    "Cargo.toml",
                    "Cargo.lock",
                    "rust-toolchain*",
                    ".cargo/config*",
                    "missing.toml",
                    "missing-dir/*.toml",
                    "somedir",
                ]
            ),
            [
                ".cargo/config.toml",
                "Cargo.lock",
                "Cargo.toml",
                "rust-toolchain.toml",
            ]
        );
        assert_eq!(
            global(root, &["proto/**", "!proto/deep/b.proto"]),
            ["proto/a.proto"]
        );
        assert_eq!(
            global(root, &["**/*.proto", "proto/*.proto"]),
            ["proto/a.proto", "proto/deep/b.proto",]
        );
    }

    #[test]
    fn global_globs_must_stay_inside_the_workspace() {
        let dir = tempfile::tempdir().unwrap();
        for glob in ["../secrets/*", "/etc/passwd", "./Cargo.toml", ""] {
            let error = discover_global_inputs(dir.path(), &strings(&[glob]))
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with(&format!("invalid glob `{glob}`: ")),
                "{error}"
            );
        }
    }

    #[test]
    fn glob_shapes() {
        assert_eq!(split_literal_prefix("Cargo.toml"), GlobShape::Literal);
        assert_eq!(
            split_literal_prefix(".cargo/config.toml"),
            GlobShape::Literal
        );
        assert_eq!(
            split_literal_prefix("rust-toolchain*"),
            GlobShape::Pattern {
                prefix: "",
                max_depth: Some(1)
            }
        );
        assert_eq!(
            split_literal_prefix(".cargo/config*"),
            GlobShape::Pattern {
                prefix: ".cargo",
                max_depth: Some(1)
            }
        );
        assert_eq!(
            split_literal_prefix("crates/*/build.rs"),
            GlobShape::Pattern {
                prefix: "crates",
                max_depth: Some(2)
            }
        );
        assert_eq!(
            split_literal_prefix("a/b/**/*.proto"),
            GlobShape::Pattern {
                prefix: "a/b",
                max_depth: None
            }
        );
    }
}

//! Cargo's units as its JSON messages and its target directory name them: a unit is cargo's
//! metadata hash `H` in one profile directory (`target/debug`, `target/<triple>/debug`), and
//! its files are `deps/<name>-H[.ext]`, `build/<name>-H/` and `.fingerprint/<name>-H/`.
//! Collected per owner during a cargo call for `run::layers`, which caches them.
//!
//! What this module does NOT do: it never reads or writes the cache, never decides what may be
//! stored or restored, and starts no process.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};

use xtask_model::PackageIndex;

/// One unit: its profile directory (absolute: `target/debug`, `target/<triple>/debug`) and
/// cargo's metadata hash (the `-H` of its file and directory names).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Unit {
    pub profile_dir: PathBuf,
    pub hash: String,
}

/// The units one cargo call used (compiled or found fresh), from its JSON messages.
#[derive(Debug, Default)]
pub(crate) struct UnitsSeen {
    pub registry: BTreeSet<Unit>,
    pub workspace: HashMap<PackageIndex, BTreeSet<Unit>>,
    /// The bin targets of each workspace package that cargo built (their JSON names only the
    /// uplifted file, so their units are found by name in `.fingerprint/`).
    pub bins: HashMap<PackageIndex, BTreeSet<String>>,
    /// Cargo exited successfully: every unit of the call is complete.
    pub complete: bool,
}

/// Who owns a unit.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Owner {
    Workspace(PackageIndex),
    Registry,
    /// Git and path packages outside the workspace: never stored (cargo builds them, and
    /// everything built on them, again).
    Other,
}

impl UnitsSeen {
    /// Notes the units a JSON message of cargo names (artifacts and build script runs).
    pub fn message(
        &mut self,
        index_of: &HashMap<&str, PackageIndex>,
        message: &cargo_metadata::Message,
    ) {
        match message {
            cargo_metadata::Message::CompilerArtifact(artifact) => {
                let is_bin = artifact.target.kind.iter().any(|k| k.to_string() == "bin");
                self.artifact(
                    owner_of(index_of, &artifact.package_id.repr),
                    is_bin.then_some(artifact.target.name.as_str()),
                    artifact.filenames.iter().map(|f| f.as_std_path()),
                );
            }
            cargo_metadata::Message::BuildScriptExecuted(script) => self.build_script_run(
                owner_of(index_of, &script.package_id.repr),
                script.out_dir.as_std_path(),
            ),
            _ => {}
        }
    }

    /// The files of an artifact (`compiler-artifact` `filenames`).
    fn artifact<'a>(
        &mut self,
        owner: Owner,
        bin: Option<&str>,
        files: impl IntoIterator<Item = &'a Path>,
    ) {
        for file in files {
            if let Some(unit) = unit_of(file) {
                self.add(owner, unit);
            }
        }
        if let (Owner::Workspace(package), Some(bin)) = (owner, bin) {
            self.bins
                .entry(package)
                .or_default()
                .insert(bin.to_string());
        }
    }

    /// A build script run (`build-script-executed` `out_dir`: `build/<name>-H/out`).
    fn build_script_run(&mut self, owner: Owner, out_dir: &Path) {
        if let Some(unit) = unit_of(out_dir) {
            self.add(owner, unit);
        }
    }

    fn add(&mut self, owner: Owner, unit: Unit) {
        match owner {
            Owner::Workspace(package) => {
                self.workspace.entry(package).or_default().insert(unit);
            }
            Owner::Registry => {
                self.registry.insert(unit);
            }
            Owner::Other => {}
        }
    }
}

/// The owner of cargo package id `id`, given the workspace's ids.
pub(crate) fn owner_of(index_of: &HashMap<&str, PackageIndex>, id: &str) -> Owner {
    match index_of.get(id) {
        Some(&package) => Owner::Workspace(package),
        None if id.starts_with("registry+") || id.starts_with("sparse+") => Owner::Registry,
        None => Owner::Other,
    }
}

/// The files of one unit, relative to the target directory.
#[derive(Debug, Default)]
pub(crate) struct UnitFiles {
    /// The unit's directory under `.fingerprint/`, if the unit has one.
    pub fingerprint_dir: Option<String>,
    pub fingerprint: Vec<String>,
    pub other: Vec<String>,
}

/// Target-relative paths grouped by unit, as (profile directory, hash) -> files; paths that
/// are not unit files (see [`parse_relative`]) are left out.
pub(crate) fn group_by_unit<'a>(
    paths: impl IntoIterator<Item = &'a str>,
) -> BTreeMap<(String, String), UnitFiles> {
    let mut units: BTreeMap<(String, String), UnitFiles> = BTreeMap::new();
    for path in paths {
        let Some((profile, hash, place)) = parse_relative(path) else {
            continue;
        };
        let files = units.entry((profile, hash)).or_default();
        match place {
            Place::Fingerprint(dir) => {
                files.fingerprint_dir = Some(dir);
                files.fingerprint.push(path.to_string());
            }
            Place::Other => files.other.push(path.to_string()),
        }
    }
    units
}

enum Place {
    /// Under `.fingerprint/<dir>`.
    Fingerprint(String),
    Other,
}

/// `<profile>/{deps,build,.fingerprint}/...` split into the profile directory, the unit's
/// hash and where it lies; `None` for anything else (or a path with `.`, `..`, or a root).
fn parse_relative(relative: &str) -> Option<(String, String, Place)> {
    let path = Path::new(relative);
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let parts: Vec<&str> = relative.split('/').collect();
    let at = parts
        .iter()
        .position(|p| matches!(*p, "deps" | "build" | ".fingerprint"))?;
    if at == 0 || at + 1 >= parts.len() {
        return None;
    }
    let profile = parts[..at].join("/");
    match parts[at] {
        "deps" if parts.len() == at + 2 => {
            let hash = metadata_hash(parts[at + 1].split('.').next()?)?;
            Some((profile, hash, Place::Other))
        }
        "build" if parts.len() > at + 2 => {
            Some((profile, metadata_hash(parts[at + 1])?, Place::Other))
        }
        ".fingerprint" if parts.len() > at + 2 => {
            let dir = parts[at + 1];
            Some((
                profile,
                metadata_hash(dir)?,
                Place::Fingerprint(dir.to_string()),
            ))
        }
        _ => None,
    }
}

/// The unit of a file cargo named: `<profile>/deps/<name>-H[.ext]` or
/// `<profile>/build/<name>-H/<file>`; `None` for uplifted files and anything else.
fn unit_of(file: &Path) -> Option<Unit> {
    let parent = file.parent()?;
    let parent_name = parent.file_name()?.to_str()?;
    if parent_name == "deps" {
        let name = file.file_name()?.to_str()?;
        return Some(Unit {
            profile_dir: parent.parent()?.to_path_buf(),
            hash: metadata_hash(name.split('.').next()?)?,
        });
    }
    let grandparent = parent.parent()?;
    if grandparent.file_name()? == "build" {
        return Some(Unit {
            profile_dir: grandparent.parent()?.to_path_buf(),
            hash: metadata_hash(parent_name)?,
        });
    }
    None
}

/// The 16 hex digits after the last `-` of `name`.
pub(crate) fn metadata_hash(name: &str) -> Option<String> {
    let (_, hash) = name.rsplit_once('-')?;
    (hash.len() == 16
        && hash
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then(|| hash.to_string())
}

/// The files of `units` in their profile directories, each directory read once.
pub(crate) fn unit_files(units: &BTreeSet<Unit>) -> Vec<PathBuf> {
    let mut by_profile: BTreeMap<&Path, BTreeSet<&str>> = BTreeMap::new();
    for unit in units {
        by_profile
            .entry(&unit.profile_dir)
            .or_default()
            .insert(&unit.hash);
    }
    let mut files = Vec::new();
    for (profile, hashes) in by_profile {
        for (dir, whole_dirs) in [("deps", false), ("build", true), (".fingerprint", true)] {
            let Ok(entries) = std::fs::read_dir(profile.join(dir)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let stem = if whole_dirs {
                    name
                } else {
                    name.split('.').next().unwrap_or(name)
                };
                if metadata_hash(stem).is_some_and(|h| hashes.contains(h.as_str())) {
                    collect_files(&entry.path(), &mut files);
                }
            }
        }
    }
    files
}

/// `path` if it is a file or symlink, else every file and symlink under it.
fn collect_files(path: &Path, into: &mut Vec<PathBuf>) {
    let Ok(metadata) = std::fs::symlink_metadata(path) else {
        return;
    };
    if !metadata.is_dir() {
        into.push(path.to_path_buf());
        return;
    }
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            collect_files(&entry.path(), into);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_named_by_their_metadata_hash() {
        let unit = |p: &str| unit_of(Path::new(p)).map(|u| (u.profile_dir, u.hash));
        let debug = PathBuf::from("/t/debug");
        assert_eq!(
            unit("/t/debug/deps/libanyhow-f85147e1c9d68eab.rlib"),
            Some((debug.clone(), "f85147e1c9d68eab".to_string()))
        );
        assert_eq!(
            unit("/t/debug/build/libc-67228cd19e374ab2/out"),
            Some((debug.clone(), "67228cd19e374ab2".to_string()))
        );
        assert_eq!(
            unit("/t/debug/build/libc-67228cd19e374ab2/build-script-build"),
            Some((debug, "67228cd19e374ab2".to_string()))
        );
        assert_eq!(unit("/t/debug/app"), None);
        assert_eq!(unit("/t/debug/deps/libx-NOTAHASH.rlib"), None);
    }

    #[test]
    fn only_unit_paths_are_placed() {
        let parsed = |p: &str| parse_relative(p).map(|(profile, hash, _)| (profile, hash));
        let hash = "0123456789abcdef".to_string();
        assert_eq!(
            parsed("debug/deps/libx-0123456789abcdef.rmeta"),
            Some(("debug".to_string(), hash.clone()))
        );
        assert_eq!(
            parsed("x86_64-unknown-linux-gnu/debug/.fingerprint/x-0123456789abcdef/lib-x"),
            Some(("x86_64-unknown-linux-gnu/debug".to_string(), hash.clone()))
        );
        assert_eq!(
            parsed("debug/build/x-0123456789abcdef/out/gen.rs"),
            Some(("debug".to_string(), hash))
        );
        assert_eq!(parsed("debug/app"), None);
        assert_eq!(parsed("deps/libx-0123456789abcdef.rlib"), None);
        assert_eq!(parsed("debug/../deps/libx-0123456789abcdef.rlib"), None);
        assert_eq!(parsed("debug/deps/sub/libx-0123456789abcdef.rlib"), None);
    }
}

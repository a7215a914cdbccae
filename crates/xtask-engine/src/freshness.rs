//! A guard for cargo's own change detection, which compares modification times: a file whose
//! content changed while its mtime did not move past the artifacts built from it (an older
//! copy put back with `cp -p`, `tar x`, `rsync -a` or `touch -d`, or any edit after the clock
//! was set back) looks unchanged to cargo. Cargo then hands the tool the old artifact for the
//! new key, and the tool would store it and restore it from then on, even after `rm -rf
//! target`, where a fresh cargo build gives the new one.
//!
//! After every compiling cargo call, `<target>/xtask/compiled/<profile>-<task>.json` records,
//! for each package of the selection that built, when its artifacts were written (the latest
//! artifact mtime) and the files its units read (rustc's dep-info and its build script's
//! `rerun-if-changed` paths, see `observe`). Before the next call a recorded package is stale
//! when
//! - its artifacts are dated after now (the clock was set back since): every file edited since
//!   looks older than them; or
//! - one of its files has an mtime at or before the artifacts but a ctime after them: it was
//!   written after they were built and its mtime was set back (a ctime cannot be set back).
//!
//! Stale packages are removed with `cargo clean -p NAME` (same profile and target) before the
//! call, so cargo builds them again. Every recorded package is checked, not only the call's
//! selection: a stale dependency would end up linked into the selection's new artifacts. The
//! record lives in the target directory, so `rm -rf target` and `cargo clean` take it with the
//! artifacts it describes.
//!
//! Not covered: packages this target directory holds from plain cargo runs only (no record),
//! and path dependencies outside the workspace.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use xtask_hash::FileStat;
use xtask_model::{CargoTask, PackageIndex, Workspace};

use crate::plan::CargoSettings;

/// Artifacts dated this far after now mean the clock was set back (not a coarse file-system
/// timestamp or a small skew).
const CLOCK_TOLERANCE: Duration = Duration::from_secs(5);

const RECORD_VERSION: u32 = 1;

/// What the last compiling calls of one task and profile left in the target directory.
#[derive(Debug)]
pub(crate) struct CompileRecord {
    path: PathBuf,
    /// By package id.
    packages: BTreeMap<String, Compiled>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Compiled {
    /// The latest mtime of the package's artifacts, in nanoseconds since the Unix epoch.
    built_at_ns: i128,
    /// Absolute paths of the files its units read.
    files: BTreeSet<PathBuf>,
}

#[derive(Serialize, Deserialize)]
struct RecordFile {
    version: u32,
    packages: BTreeMap<String, Compiled>,
}

/// A package whose artifacts cargo would wrongly take as up to date, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stale {
    pub package: PackageIndex,
    pub reason: String,
}

impl CompileRecord {
    /// The record of `task` under `settings`' profile and target in `target_dir`; empty when
    /// there is none or it does not parse (the guard then covers what is compiled from now on).
    pub fn load(target_dir: &Path, settings: &CargoSettings, task: CargoTask) -> CompileRecord {
        let mut name = String::new();
        if let Some(target) = &settings.target {
            name.push_str(&target.triple);
            name.push('-');
        }
        name.push_str(if settings.release { "release" } else { "debug" });
        let path = target_dir
            .join("xtask")
            .join("compiled")
            .join(format!("{name}-{}.json", task.name()));
        let packages = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<RecordFile>(&bytes).ok())
            .filter(|file| file.version == RECORD_VERSION)
            .map(|file| file.packages)
            .unwrap_or_default();
        CompileRecord { path, packages }
    }

    /// The workspace packages whose recorded artifacts cargo would take as up to date though
    /// a file they were built from changed behind an older mtime. Every recorded package is
    /// checked, not only the call's selection: cargo links the selection against the
    /// artifacts already in the target directory, so a stale dependency (a hit, not rebuilt)
    /// would end up inside the new artifacts too.
    pub fn stale(&self, workspace: &Workspace, now: SystemTime) -> Vec<Stale> {
        let now_ns = nanos(now);
        (0..workspace.packages.len())
            .filter_map(|package| {
                let compiled = self.packages.get(&workspace.packages[package].id)?;
                let reason = stale_reason(compiled, now_ns)?;
                Some(Stale { package, reason })
            })
            .collect()
    }

    /// Records what one cargo call compiled or found fresh: each workspace package with
    /// artifacts in `built` (the latest mtime of its artifacts) and the files `read` by its
    /// units. A package of `selection` that did not build is forgotten (cargo has no complete
    /// artifacts of it to trust).
    pub fn update(
        &mut self,
        workspace: &Workspace,
        selection: &[PackageIndex],
        built: &HashMap<PackageIndex, SystemTime>,
        read: impl Fn(PackageIndex) -> BTreeSet<PathBuf>,
    ) {
        for &package in selection {
            if !built.contains_key(&package) {
                self.packages.remove(&workspace.packages[package].id);
            }
        }
        for (&package, &at) in built {
            let compiled = Compiled {
                built_at_ns: nanos(at),
                files: read(package),
            };
            self.packages
                .insert(workspace.packages[package].id.clone(), compiled);
        }
    }

    /// Writes the record (atomically).
    pub fn save(&self) -> anyhow::Result<()> {
        let file = RecordFile {
            version: RECORD_VERSION,
            packages: self.packages.clone(),
        };
        let bytes = serde_json::to_vec(&file)?;
        Ok(xtask_util::write_atomically(&self.path, &bytes)?)
    }
}

/// Why cargo would take `compiled`'s artifacts as up to date though they are not, if so.
fn stale_reason(compiled: &Compiled, now_ns: i128) -> Option<String> {
    let tolerance = i128::try_from(CLOCK_TOLERANCE.as_nanos()).unwrap_or(i128::MAX);
    if compiled.built_at_ns > now_ns.saturating_add(tolerance) {
        return Some(
            "its artifacts are dated after now (the clock was set back): cargo would take \
             every file edited since for older than them"
                .to_string(),
        );
    }
    compiled.files.iter().find_map(|file| {
        let (mtime, ctime) = file_times(file)?;
        (mtime <= compiled.built_at_ns && ctime > compiled.built_at_ns).then(|| {
            format!(
                "`{}` was written after it was built, with an older modification time \
                 (copied with its times, or the clock was set back): cargo would not see it",
                file.display()
            )
        })
    })
}

/// The mtime and ctime of `path` in nanoseconds, following symlinks as cargo does; `None`
/// when it is gone (cargo rebuilds what read a missing file by itself). Without a ctime (not
/// Unix) [`FileStat`] gives the mtime for both, and only the clock check applies.
fn file_times(path: &Path) -> Option<(i128, i128)> {
    let stat = FileStat::from_metadata(&std::fs::metadata(path).ok()?);
    Some((stat.mtime_ns, stat.ctime_ns))
}

/// `time` in nanoseconds since the Unix epoch (negative before it).
pub(crate) fn nanos(time: SystemTime) -> i128 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
        Err(before) => -i128::try_from(before.duration().as_nanos()).unwrap_or(i128::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(built_at: SystemTime, files: &[&Path]) -> Compiled {
        Compiled {
            built_at_ns: nanos(built_at),
            files: files.iter().map(|f| f.to_path_buf()).collect(),
        }
    }

    #[test]
    fn a_file_written_after_the_build_with_an_older_mtime_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lib.rs");
        std::fs::write(&file, "pub fn f() {}\n").unwrap();
        let built_at = SystemTime::now() - Duration::from_secs(60);
        let record = compiled(built_at, &[&file]);
        // Written now (ctime now), mtime now: cargo sees it, nothing to do.
        assert_eq!(stale_reason(&record, nanos(SystemTime::now())), None);
        // The same write with its mtime set back before the build: cargo would not see it.
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(built_at - Duration::from_secs(3600))
            .unwrap();
        let reason = stale_reason(&record, nanos(SystemTime::now())).unwrap();
        assert!(reason.contains("lib.rs"), "{reason}");
        // Built after that write: the artifacts hold it.
        let rebuilt = compiled(SystemTime::now() + Duration::from_secs(1), &[&file]);
        let later = SystemTime::now() + Duration::from_secs(2);
        assert_eq!(stale_reason(&rebuilt, nanos(later)), None);
    }

    #[test]
    fn artifacts_from_the_future_are_stale_and_missing_files_are_left_to_cargo() {
        let now = SystemTime::now();
        let missing = Path::new("/nonexistent/xtask/freshness/lib.rs");
        let ahead = compiled(now + Duration::from_secs(3600), &[missing]);
        assert!(stale_reason(&ahead, nanos(now)).is_some());
        let within_tolerance = compiled(now + Duration::from_secs(1), &[missing]);
        assert_eq!(stale_reason(&within_tolerance, nanos(now)), None);
    }
}

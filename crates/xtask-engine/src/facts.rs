//! What a run's result depends on in the file system, as stats to compare: collected at the
//! end of a fully cached run ([`Facts`]) for the run-level record (`run/unchanged.rs`), and
//! checked on the next run ([`FileFact::holds`], [`DirFact::holds`]), one `lstat` per path.
//!
//! Three kinds of fact:
//! - a file whose content was read (a manifest, an input, an entry): its `lstat` (size,
//!   mtime, ctime, inode, kind) must be the same;
//! - a directory whose entries mattered: its `lstat` must be the same, or, when it is not,
//!   its entries are read again and must agree with the rule recorded for it (the entries
//!   that must be there with the same kind, names that must not appear, whether other names
//!   may come and go, whether the directory itself may be gone): a directory's stat changes
//!   with any entry, including ones no answer depends on, such as a task's deleted `out/`;
//! - a path that did not exist: when the nearest existing directory above it is a fact
//!   already, a rule on it, that the first missing component must not appear there (no
//!   extra `lstat`); otherwise the path itself must still be missing (one failing `lstat`,
//!   which no other entry of a busy directory such as `/tmp` or `$HOME` can disturb).
//!
//! Why a stat that holds means an unchanged fact: every recorded stat is strictly older than
//! the file system's clock read before the recording run read anything (git's racy-timestamp
//! rule), so nothing changed while the run read it; any later change to a file or directory
//! sets its ctime to the time of the change, which no tool can set back.
//! Not recorded (the record is then not written): symlinks anywhere but among inputs and
//! outputs (whose content is the link itself), and paths that changed during the run.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use xtask_hash::FileStat;

/// An `lstat`: `[size, mtime_ns, ctime_ns, inode, kind]` (`f` file, `l` symlink, `o` other,
/// directories included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stat(u64, i128, i128, u64, u8);

impl Stat {
    pub(crate) fn of(path: &Path) -> io::Result<Stat> {
        let stat = FileStat::of(path)?;
        Ok(Stat(
            stat.size,
            stat.mtime_ns,
            stat.ctime_ns,
            stat.inode,
            stat.kind,
        ))
    }

    pub(crate) fn mtime_ns(&self) -> i128 {
        self.1
    }

    pub(crate) fn older_than(&self, clock_ns: i128) -> bool {
        self.1 < clock_ns && self.2 < clock_ns
    }

    fn is_symlink(&self) -> bool {
        self.4 == b'l'
    }
}

/// A file whose content the run read: `[path, stat]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FileFact(pub PathBuf, pub Stat);

impl FileFact {
    /// The file (its path relative to `root`, or absolute) has the recorded stat.
    pub(crate) fn holds(&self, root: &Path) -> bool {
        Stat::of(&root.join(&self.0)).is_ok_and(|stat| stat == self.1)
    }
}

/// A directory entry's kind as the directory lists it: `d`, `f`, `l` or `o`.
fn entry_kind(file_type: std::fs::FileType) -> u8 {
    if file_type.is_dir() {
        b'd'
    } else if file_type.is_file() {
        b'f'
    } else if file_type.is_symlink() {
        b'l'
    } else {
        b'o'
    }
}

fn list_dir(path: &Path) -> io::Result<BTreeMap<String, u8>> {
    let mut entries = BTreeMap::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "non-UTF-8 name"))?;
        entries.insert(name, entry_kind(entry.file_type()?));
    }
    Ok(entries)
}

/// A directory whose entries mattered, and what about them (see the module doc).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DirFact {
    pub path: PathBuf,
    pub stat: Stat,
    /// `[name, kind, needed]`: every entry at record time (a closed directory), or only the
    /// needed ones (an open one). A needed entry must be there with its kind; any other entry
    /// of a closed directory may be gone, or there with its kind.
    pub entries: Vec<(String, u8, bool)>,
    /// Names that are not recorded may appear.
    pub open: bool,
    /// Names that must not appear.
    pub absent: Vec<String>,
    /// The directory itself may be gone (nothing under it was needed).
    pub may_vanish: bool,
}

impl DirFact {
    /// The directory (its path relative to `root`, or absolute) has the recorded stat, or
    /// entries that agree with its rule.
    pub(crate) fn holds(&self, root: &Path) -> bool {
        let path = root.join(&self.path);
        match Stat::of(&path) {
            Ok(stat) if stat == self.stat => true,
            Ok(_) => list_dir(&path).is_ok_and(|now| self.agrees_with(&now)),
            Err(error) => error.kind() == io::ErrorKind::NotFound && self.may_vanish,
        }
    }

    fn agrees_with(&self, now: &BTreeMap<String, u8>) -> bool {
        let recorded: BTreeMap<&str, (u8, bool)> = self
            .entries
            .iter()
            .map(|(name, kind, needed)| (name.as_str(), (*kind, *needed)))
            .collect();
        let needed_there = self
            .entries
            .iter()
            .filter(|(_, _, needed)| *needed)
            .all(|(name, kind, _)| now.get(name) == Some(kind));
        let none_forbidden = self.absent.iter().all(|name| !now.contains_key(name));
        let nothing_new = now
            .iter()
            .all(|(name, kind)| match recorded.get(name.as_str()) {
                Some((recorded_kind, _)) => recorded_kind == kind,
                None => self.open,
            });
        needed_there && none_forbidden && nothing_new
    }
}

/// What one directory's answers need of it (several sources combine: the strictest wins).
#[derive(Debug, Clone)]
struct DirRule {
    open: bool,
    /// Every entry there at record time is needed.
    all_needed: bool,
    needed: BTreeSet<String>,
    absent: BTreeSet<String>,
    may_vanish: bool,
}

impl Default for DirRule {
    fn default() -> DirRule {
        DirRule {
            open: true,
            all_needed: false,
            needed: BTreeSet::new(),
            absent: BTreeSet::new(),
            may_vanish: true,
        }
    }
}

/// The facts of one run, collected after it (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct Facts {
    files: BTreeMap<PathBuf, bool>,
    dirs: BTreeMap<PathBuf, DirRule>,
    /// Missing paths: (nearest existing directory, first missing name, path).
    missing: Vec<(PathBuf, String, PathBuf)>,
    /// Why no record can be made, if one cannot.
    refused: Option<String>,
}

/// The collected facts, each stat'ed once.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct CheckedFacts {
    pub files: Vec<FileFact>,
    pub dirs: Vec<DirFact>,
    pub missing: Vec<MissingFact>,
}

/// A path that must still be missing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MissingFact(pub PathBuf);

impl MissingFact {
    pub(crate) fn holds(&self, root: &Path) -> bool {
        is_missing(&root.join(&self.0))
    }
}

fn is_missing(path: &Path) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(_) => false,
        Err(error) => {
            error.kind() == io::ErrorKind::NotFound || error.kind() == io::ErrorKind::NotADirectory
        }
    }
}

impl CheckedFacts {
    /// The same facts with paths inside `root` relative to it (a smaller record to read).
    pub(crate) fn relative_to(mut self, root: &Path) -> CheckedFacts {
        let relative = |path: &mut PathBuf| {
            if let Ok(inside) = path.strip_prefix(root) {
                *path = inside.to_path_buf();
            }
        };
        self.files.iter_mut().for_each(|fact| relative(&mut fact.0));
        self.dirs
            .iter_mut()
            .for_each(|fact| relative(&mut fact.path));
        self.missing
            .iter_mut()
            .for_each(|fact| relative(&mut fact.0));
        self
    }
}

impl Facts {
    /// The content of `path` was read (following no symlink).
    pub(crate) fn file(&mut self, path: &Path) {
        self.files.entry(path.to_path_buf()).or_insert(false);
    }

    /// `path` is an input or an output: a symlink's content is its target string.
    pub(crate) fn link_or_file(&mut self, path: &Path) {
        self.files.entry(path.to_path_buf()).or_insert(true);
    }

    /// `path` was looked for and not found.
    pub(crate) fn absent(&mut self, path: &Path) {
        if !is_missing(path) {
            return self.refuse(format!("`{}` is there after all", path.display()));
        }
        let mut missing = path;
        for ancestor in path.ancestors().skip(1) {
            if std::fs::symlink_metadata(ancestor).is_ok_and(|m| m.is_dir()) {
                let Some(name) = missing.file_name().and_then(|n| n.to_str()) else {
                    return self.refuse(format!("`{}` has no plain name", path.display()));
                };
                self.missing
                    .push((ancestor.to_path_buf(), name.to_owned(), path.to_path_buf()));
                return;
            }
            missing = ancestor;
        }
        self.refuse(format!("no directory above `{}`", path.display()));
    }

    /// Every entry of `path` mattered, and no other may appear (a directory whose listing
    /// was read as a whole).
    pub(crate) fn dir_closed(&mut self, path: &Path) {
        self.dir(path, false, &[], false);
        if let Some(rule) = self.dirs.get_mut(path) {
            rule.all_needed = true;
        }
    }

    /// `path`'s entries matter through a rule: closed or open, the names that must stay, and
    /// whether the directory may be gone.
    pub(crate) fn dir(&mut self, path: &Path, open: bool, needed: &[&str], may_vanish: bool) {
        let rule = self.dirs.entry(path.to_path_buf()).or_default();
        rule.open &= open;
        rule.needed.extend(needed.iter().map(|n| n.to_string()));
        rule.may_vanish &= may_vanish;
    }

    /// No record can be made (the first reason is kept).
    pub(crate) fn refuse(&mut self, reason: String) {
        self.refused.get_or_insert(reason);
    }

    /// Stats every fact; `Err` with the reason when a record cannot be made: a fact changed
    /// at or after `clock_ns` (while the run read it), is not what it was taken for, or a
    /// source refused.
    pub(crate) fn check(mut self, clock_ns: i128) -> Result<CheckedFacts, String> {
        if let Some(reason) = self.refused {
            return Err(reason);
        }
        let mut checked = CheckedFacts::default();
        for (dir, name, path) in self.missing {
            match self.dirs.get_mut(&dir) {
                Some(rule) => {
                    rule.absent.insert(name);
                    rule.may_vanish = false;
                }
                None if is_missing(&path) => checked.missing.push(MissingFact(path)),
                None => return Err(format!("`{}` appeared during the run", path.display())),
            }
        }
        for (path, symlink_allowed) in self.files {
            let stat = Stat::of(&path).map_err(|error| format!("`{}`: {error}", path.display()))?;
            if !stat.older_than(clock_ns) {
                return Err(format!("`{}` changed during the run", path.display()));
            }
            if stat.is_symlink() && !symlink_allowed {
                return Err(format!("`{}` is a symlink", path.display()));
            }
            checked.files.push(FileFact(path, stat));
        }
        for (path, rule) in self.dirs {
            let stat = Stat::of(&path).map_err(|error| format!("`{}`: {error}", path.display()))?;
            if !stat.older_than(clock_ns) {
                return Err(format!("`{}` changed during the run", path.display()));
            }
            let now = list_dir(&path).map_err(|error| format!("`{}`: {error}", path.display()))?;
            let mut rule = rule;
            if rule.all_needed {
                rule.needed.extend(now.keys().cloned());
            }
            if rule.needed.iter().any(|name| !now.contains_key(name))
                || rule.absent.iter().any(|name| now.contains_key(name))
            {
                return Err(format!("`{}` changed during the run", path.display()));
            }
            let entries = now
                .into_iter()
                .filter(|(name, _)| !rule.open || rule.needed.contains(name))
                .map(|(name, kind)| {
                    let needed = rule.needed.contains(&name);
                    (name, kind, needed)
                })
                .collect();
            checked.dirs.push(DirFact {
                path,
                stat,
                entries,
                open: rule.open,
                absent: rule.absent.into_iter().collect(),
                may_vanish: rule.may_vanish,
            });
        }
        Ok(checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settle() {
        std::thread::sleep(std::time::Duration::from_millis(30));
    }

    fn clock(dir: &Path) -> i128 {
        xtask_hash::file_system_clock(&dir.join("clock")).unwrap()
    }

    #[test]
    fn a_same_size_edit_in_the_same_tick_and_a_new_name_are_seen() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("ws");
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(root.join("src/lib.rs"), "a").unwrap();
        settle();
        let now = clock(temp.path());
        let mut facts = Facts::default();
        facts.file(&root.join("src/lib.rs"));
        facts.dir(&root.join("src"), false, &["lib.rs"], false);
        facts.absent(&root.join("build.rs"));
        let checked = facts.check(now).unwrap();
        let all = |c: &CheckedFacts| {
            let root = Path::new("/");
            c.files.iter().all(|f| f.holds(root))
                && c.dirs.iter().all(|f| f.holds(root))
                && c.missing.iter().all(|f| f.holds(root))
        };
        assert!(all(&checked));
        std::fs::write(root.join("src/lib.rs"), "b").unwrap();
        assert!(!all(&checked), "a same-size edit right away");
        std::fs::write(root.join("src/lib.rs"), "a").unwrap();
        assert!(
            !all(&checked),
            "even back to the same bytes: the ctime moved"
        );

        let mut facts = Facts::default();
        facts.dir(&root.join("src"), false, &["lib.rs"], false);
        facts.absent(&root.join("build.rs"));
        settle();
        let checked = facts.check(clock(temp.path())).unwrap();
        assert!(all(&checked));
        std::fs::write(root.join("build.rs"), "").unwrap();
        assert!(!all(&checked), "a file that was looked for appears");
        std::fs::remove_file(root.join("build.rs")).unwrap();
        assert!(all(&checked), "gone again");
        std::fs::write(root.join("src/new.rs"), "").unwrap();
        assert!(!all(&checked), "a new name in a closed directory");
    }

    #[test]
    fn an_unneeded_entry_may_go_and_come_back_with_its_kind_only() {
        let temp = tempfile::tempdir().unwrap();
        let package = temp.path().join("p");
        std::fs::create_dir_all(package.join("out")).unwrap();
        std::fs::write(package.join("out/size.txt"), "1").unwrap();
        std::fs::write(package.join("Cargo.toml"), "").unwrap();
        settle();
        let now = clock(temp.path());
        let mut facts = Facts::default();
        facts.dir(&package, false, &["Cargo.toml"], false);
        facts.dir(&package.join("out"), false, &[], true);
        let checked = facts.check(now).unwrap();
        let all = || checked.dirs.iter().all(|f| f.holds(Path::new("/")));
        std::fs::remove_dir_all(package.join("out")).unwrap();
        assert!(all(), "a directory nothing was read from may go");
        std::fs::create_dir_all(package.join("out")).unwrap();
        std::fs::write(package.join("out/size.txt"), "2").unwrap();
        assert!(all(), "and come back");
        std::fs::write(package.join("out/other.txt"), "").unwrap();
        assert!(!all(), "but not with a new name");
        std::fs::remove_dir_all(package.join("out")).unwrap();
        std::fs::write(package.join("out"), "").unwrap();
        assert!(!all(), "nor as a file");
    }

    #[test]
    fn a_fact_newer_than_the_clock_makes_no_record() {
        let temp = tempfile::tempdir().unwrap();
        let now = clock(temp.path());
        std::fs::write(temp.path().join("late"), "").unwrap();
        let mut facts = Facts::default();
        facts.file(&temp.path().join("late"));
        // The clock and the write can share a tick: not strictly older either way.
        assert!(facts.check(now).is_err());
    }
}

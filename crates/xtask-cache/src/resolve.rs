//! Resolving output paths and symlink targets the way the operating system will when the
//! restore writes them: through symlinks already on disk and symlinks the same restore has
//! written before, never leaving the root.
//!
//! A lexical check alone is not enough: with `out/sub -> ..` restored first, `out/esc ->
//! sub/../x` is lexically inside but resolves to `../x`. So restore simulates its writes in
//! archive order with a [`Resolver`] per root, before writing anything.

use std::collections::HashMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// More symlinks than this on one path is refused (Linux's own limit is 40).
const MAX_LINK_HOPS: usize = 40;

/// Resolves root-relative paths against the disk plus what the restore wrote so far.
pub(crate) struct Resolver {
    root: PathBuf,
    root_name: &'static str,
    /// The root's canonical path, when it exists (absolute symlink targets are compared to it).
    canonical_root: Option<PathBuf>,
    /// Resolved root-relative paths written so far: `Some(target)` for a symlink, `None` for a
    /// file (which replaces whatever was on disk there).
    written: HashMap<String, Option<String>>,
}

impl Resolver {
    /// A resolver of paths under `root`, whose canonical path is `canonical_root` (`None`
    /// when the root does not exist yet).
    pub(crate) fn new(
        root: &Path,
        root_name: &'static str,
        canonical_root: Option<PathBuf>,
    ) -> Resolver {
        Resolver {
            root: root.to_path_buf(),
            root_name,
            canonical_root,
            written: HashMap::new(),
        }
    }

    /// Records that the restore writes `location` (a resolved path): a symlink to `link_target`,
    /// or a file when `None`.
    pub(crate) fn record_write(&mut self, location: String, link_target: Option<String>) {
        self.written.insert(location, link_target);
    }

    /// Where writing `path` lands, relative to the root: its parent resolved through every
    /// symlink, then its own name (the last component is replaced, never followed).
    pub(crate) fn resolve_location(&self, path: &str) -> Result<String, String> {
        let (parent, name) = match path.rsplit_once('/') {
            Some((parent, name)) => (parent, name),
            None => ("", path),
        };
        let mut resolved = self.walk(Vec::new(), parent)?;
        resolved.push(name.to_owned());
        Ok(resolved.join("/"))
    }

    /// What the symlink at `location` (a resolved path) pointing at `target` resolves to,
    /// following every symlink.
    pub(crate) fn resolve_target(&self, location: &str, target: &str) -> Result<String, String> {
        let mut start: Vec<String> = location.split('/').map(str::to_owned).collect();
        start.pop();
        if target.starts_with('/') {
            let remainder = self
                .strip_root(target)
                .ok_or_else(|| format!("the symlink points to `{target}`, outside the root"))?;
            return Ok(self.walk(Vec::new(), &remainder)?.join("/"));
        }
        Ok(self.walk(start, target)?.join("/"))
    }

    fn walk(&self, start: Vec<String>, rest: &str) -> Result<Vec<String>, String> {
        let mut resolved = start;
        let mut pending: Vec<String> = rest.split('/').rev().map(str::to_owned).collect();
        let mut hops = 0;
        let mut via: Option<(String, String)> = None;
        while let Some(component) = pending.pop() {
            match component.as_str() {
                "" | "." => continue,
                ".." => {
                    if resolved.pop().is_none() {
                        return Err(match via {
                            Some((link, target)) => format!(
                                "it resolves through the symlink `{link}` -> `{target}` to outside the {} root",
                                self.root_name
                            ),
                            None => format!("it leads outside the {} root", self.root_name),
                        });
                    }
                    continue;
                }
                _ => {}
            }
            resolved.push(component);
            let key = resolved.join("/");
            let link = match self.written.get(&key) {
                Some(written) => written.clone(),
                None => self.disk_link(&key)?,
            };
            let Some(target) = link else {
                continue;
            };
            hops += 1;
            if hops > MAX_LINK_HOPS {
                return Err(format!("too many levels of symlinks at `{key}`"));
            }
            resolved.pop();
            let target_rest = if target.starts_with('/') {
                resolved.clear();
                self.strip_root(&target).ok_or_else(|| {
                    format!(
                        "the symlink `{key}` points to `{target}`, outside the {} root",
                        self.root_name
                    )
                })?
            } else {
                target.clone()
            };
            pending.extend(target_rest.split('/').rev().map(str::to_owned));
            via = Some((key, target));
        }
        Ok(resolved)
    }

    /// The target of the symlink at `key` on disk, or `None` when there is none (or no file).
    fn disk_link(&self, key: &str) -> Result<Option<String>, String> {
        let path = self.root.join(key);
        match fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                let target = fs::read_link(&path)
                    .map_err(|error| format!("cannot read the symlink `{key}`: {error}"))?;
                target
                    .to_str()
                    .map(|target| Some(target.to_owned()))
                    .ok_or_else(|| format!("the symlink `{key}` has a non-UTF-8 target"))
            }
            _ => Ok(None),
        }
    }

    /// An absolute path inside the root as a root-relative path (`""` for the root itself).
    fn strip_root(&self, absolute: &str) -> Option<String> {
        let absolute = Path::new(absolute);
        let remainder = self
            .canonical_root
            .as_deref()
            .and_then(|canonical| absolute.strip_prefix(canonical).ok())
            .or_else(|| absolute.strip_prefix(&self.root).ok())?;
        let mut parts = Vec::new();
        for component in remainder.components() {
            match component {
                Component::Normal(part) => parts.push(part.to_str()?.to_owned()),
                Component::CurDir => {}
                // `..` right after the root prefix would leave it: keep it for `walk` to judge.
                Component::ParentDir => parts.push("..".to_owned()),
                Component::RootDir | Component::Prefix(_) => return None,
            }
        }
        Some(parts.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_links_count_and_chains_are_followed() {
        let temp = tempfile::tempdir().expect("tempdir");
        let canonical = fs::canonicalize(temp.path()).ok();
        let mut resolver = Resolver::new(temp.path(), "workspace", canonical);
        assert_eq!(resolver.resolve_location("out/a"), Ok("out/a".to_owned()));
        resolver.record_write("out/sub".to_owned(), Some("..".to_owned()));
        assert_eq!(resolver.resolve_target("out/sub", ".."), Ok(String::new()));
        let error = resolver
            .resolve_target("out/esc", "sub/../x")
            .map(|_| ())
            .expect_err("escapes through out/sub");
        assert!(error.contains("`out/sub` -> `..`"), "{error}");
        resolver.record_write("out/a".to_owned(), Some("b".to_owned()));
        resolver.record_write("out/b".to_owned(), Some("sub/../../".to_owned()));
        assert!(resolver.resolve_location("out/a/x").is_err());
        resolver.record_write("loop".to_owned(), Some("loop".to_owned()));
        let error = resolver
            .resolve_location("loop/x")
            .expect_err("a loop is refused");
        assert!(error.contains("too many levels"), "{error}");
    }
}

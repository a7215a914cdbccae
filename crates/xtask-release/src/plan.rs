//! The release plan: which packages move from what version to what and why, every file the
//! release commit will contain (manifests, changelogs), the tags, the artifacts and the publish
//! order. Computed from the workspace model and git; serialised into the state file, so
//! `--execute` (and a rerun after an interruption) applies exactly this plan.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use semver::Version;
use serde::{Deserialize, Serialize};
use xtask_engine::CliError;
use xtask_model::{DepKind, ReleaseMode, Workspace};

use crate::changelog;
use crate::commits::{Commit, Level};
use crate::git::Git;
use crate::manifest::{Manifest, RequirementUpdate, VersionSource};
use crate::version::{BumpRequest, bump, effective_level};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub lockstep: bool,
    pub branch: String,
    pub remote: String,
    /// HEAD when the plan was made: the commit being released.
    pub base_commit: String,
    /// Artifact mtimes and changelog dates: `SOURCE_DATE_EPOCH`, else the base commit's time.
    pub timestamp: i64,
    /// Released packages in dependency order.
    pub packages: Vec<PackageRelease>,
    pub requirement_updates: Vec<RequirementUpdate>,
    /// Every file of the release commit besides `Cargo.lock`: workspace-relative path and its
    /// new contents.
    pub files: Vec<PlannedFile>,
    pub commit_message: String,
    pub tags: Vec<PlannedTag>,
    pub apps: Vec<PlannedApp>,
    /// The OCI images of the released apps (packages with `[package.metadata.xtask.app]`),
    /// built through `cargo xtask image`'s machinery and tagged with the release version.
    #[serde(default)]
    pub images: Vec<PlannedImage>,
    /// Packages to `cargo publish`, in dependency order.
    pub publish: Vec<String>,
    pub push: bool,
    /// Where `--push` sends the images: `registry` of `[workspace.metadata.xtask.deploy]`
    /// (the one `images.yml` pushes to); set only with `--push` and images.
    #[serde(default)]
    pub registry: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackageRelease {
    pub name: String,
    pub relative_dir: String,
    pub from: String,
    pub to: String,
    pub reason: String,
    pub previous_tag: Option<String>,
    pub changelog_path: String,
    pub changelog_section: String,
    pub publish: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedFile {
    pub path: String,
    pub contents: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedTag {
    pub name: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedApp {
    pub package: String,
    pub version: String,
    pub binaries: Vec<String>,
    /// Relative to the target directory: `dist/VERSION`.
    pub dist_dir: String,
    pub archive: String,
    pub sbom: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedImage {
    /// The app's package.
    pub app: String,
    /// The image tag: the released version.
    pub tag: String,
}

/// The configuration key naming the registry `--push` sends images to.
pub const REGISTRY_KEY: &str = "`registry` in `[workspace.metadata.xtask.deploy]`";

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }

    /// The steps `--execute` takes, in order; each is recorded in the state file when done.
    pub fn steps(&self) -> Vec<String> {
        let mut steps = vec!["commit".to_string()];
        steps.extend(self.tags.iter().map(|t| format!("tag:{}", t.name)));
        if !self.apps.is_empty() {
            steps.push("dist".to_string());
        }
        steps.extend(self.images.iter().map(|i| format!("image:{}", i.app)));
        steps.extend(self.publish.iter().map(|p| format!("publish:{p}")));
        if self.push {
            steps.extend(self.images.iter().map(|i| format!("image-push:{}", i.app)));
            steps.push("push".to_string());
        }
        steps
    }

    /// Turns `--push` on (for a fresh plan, or a resumed one run again with `--push`):
    /// the images need the configured registry, a configuration error (exit code 3) naming
    /// [`REGISTRY_KEY`] when it is missing.
    pub fn enable_push(&mut self, workspace: &Workspace) -> anyhow::Result<()> {
        self.push = true;
        if self.images.is_empty() {
            return Ok(());
        }
        let registry = workspace.config.deploy.as_ref().map(|d| d.registry.clone());
        match registry {
            Some(registry) => {
                self.registry = Some(registry);
                Ok(())
            }
            None => Err(CliError::config(format!(
                "--push ships the images of {} but no registry is configured: set {REGISTRY_KEY} of `{}` (images are `<registry>/<app>:<version>`)",
                self.images
                    .iter()
                    .map(|i| format!("`{}`", i.app))
                    .collect::<Vec<_>>()
                    .join(", "),
                workspace.manifest_path.display()
            ))
            .into()),
        }
    }
}

/// What to plan.
#[derive(Debug, Clone)]
pub struct PlanRequest<'a> {
    /// Only these packages (and their dependents); empty = every package.
    pub packages: &'a [String],
    pub bump: &'a BumpRequest,
    pub push: bool,
    pub host: &'a str,
}

pub fn make_plan(
    workspace: &Workspace,
    git: &Git,
    request: &PlanRequest<'_>,
) -> anyhow::Result<Plan> {
    let config = &workspace.config.release;
    let lockstep = config.mode == ReleaseMode::Lockstep;
    let base_commit = git.head()?;
    let timestamp = artifact_timestamp(git, &base_commit)?;
    let date = xtask_util::timefmt::date(timestamp);
    for name in request.packages {
        workspace.require_package(name).map_err(CliError::from)?;
    }

    let root_text = read(workspace, "Cargo.toml")?;
    let root_manifest = Manifest::parse("Cargo.toml", &root_text)?;
    let manifest_rel = |index: usize| -> String {
        let dir = &workspace.packages[index].relative_dir;
        if dir.is_empty() {
            "Cargo.toml".to_string()
        } else {
            format!("{dir}/Cargo.toml")
        }
    };

    // Commits of each package since its last release tag.
    let pathspecs = |index: usize| -> Vec<String> {
        let dir = &workspace.packages[index].relative_dir;
        let mut specs = vec![if dir.is_empty() {
            ".".to_string()
        } else {
            dir.clone()
        }];
        for other in &workspace.packages {
            let nested = if dir.is_empty() {
                !other.relative_dir.is_empty()
            } else {
                other.relative_dir.starts_with(&format!("{dir}/"))
            };
            if nested {
                specs.push(format!(":(exclude){}", other.relative_dir));
            }
        }
        specs
    };
    let lockstep_version = if lockstep {
        let version = root_manifest.workspace_package_version().or_else(|| {
            workspace
                .packages
                .iter()
                .map(|p| p.version.clone())
                .max_by(|a, b| {
                    let (a, b) = (Version::parse(a).ok(), Version::parse(b).ok());
                    a.cmp(&b)
                })
        });
        Some(version.context("lockstep mode needs at least one package")?)
    } else {
        None
    };
    let previous_tag = |index: usize| -> anyhow::Result<Option<String>> {
        let package = &workspace.packages[index];
        let tag = match &lockstep_version {
            Some(version) => config.tag("", version),
            None => config.tag(&package.name, &package.version),
        };
        Ok(git.tag_commit(&tag)?.map(|_| tag))
    };
    let mut commits: BTreeMap<usize, Vec<Commit>> = BTreeMap::new();
    let mut tags: BTreeMap<usize, Option<String>> = BTreeMap::new();
    for index in 0..workspace.packages.len() {
        let tag = previous_tag(index)?;
        let range = match &tag {
            Some(tag) => format!("refs/tags/{tag}..HEAD"),
            None => "HEAD".to_string(),
        };
        let log = git.log(&range, &pathspecs(index))?;
        commits.insert(
            index,
            log.iter()
                .map(|e| Commit::parse(&e.sha, &e.subject, &e.body))
                .collect(),
        );
        tags.insert(index, tag);
    }
    let selected: BTreeSet<usize> = if request.packages.is_empty() {
        (0..workspace.packages.len()).collect()
    } else {
        request
            .packages
            .iter()
            .filter_map(|n| workspace.package_index(n))
            .collect()
    };
    let wanted =
        |index: usize| -> Option<Level> { commits[&index].iter().map(Commit::level).max() };

    // New versions and reasons.
    let mut releases: BTreeMap<usize, (Version, String)> = BTreeMap::new();
    let parse = |text: &str, name: &str| -> anyhow::Result<Version> {
        Version::parse(text).with_context(|| format!("`{name}` has an invalid version {text:?}"))
    };
    if let Some(current) = &lockstep_version {
        let current_version = parse(current, "workspace")?;
        let first = tags.values().all(Option::is_none);
        let level = selected.iter().filter_map(|&i| wanted(i)).max();
        let target = match (request.bump, level) {
            (BumpRequest::Exact(version), _) => {
                Some((version.clone(), format!("--bump {version}")))
            }
            (BumpRequest::Level(level), _) => Some((
                bump(&current_version, *level),
                format!("--bump {}", level.name()),
            )),
            (BumpRequest::Auto, Some(_)) if first => Some((
                current_version.clone(),
                format!(
                    "first release: `{}` is not tagged yet",
                    config.tag("", current)
                ),
            )),
            (BumpRequest::Auto, Some(level)) => {
                let effective = effective_level(&current_version, level);
                Some((
                    bump(&current_version, effective),
                    describe_auto(level, effective),
                ))
            }
            (BumpRequest::Auto, None) => None,
        };
        if let Some((version, reason)) = target {
            for index in 0..workspace.packages.len() {
                releases.insert(index, (version.clone(), reason.clone()));
            }
        }
    } else {
        for &index in &selected {
            let package = &workspace.packages[index];
            let current = parse(&package.version, &package.name)?;
            let untagged = tags[&index].is_none();
            let target = match (request.bump, wanted(index)) {
                (BumpRequest::Exact(version), _) => {
                    Some((version.clone(), format!("--bump {version}")))
                }
                (BumpRequest::Level(level), _) => {
                    Some((bump(&current, *level), format!("--bump {}", level.name())))
                }
                (BumpRequest::Auto, Some(_)) if untagged => Some((
                    current.clone(),
                    format!(
                        "first release: `{}` is not tagged yet",
                        config.tag(&package.name, &package.version)
                    ),
                )),
                (BumpRequest::Auto, Some(level)) => {
                    let effective = effective_level(&current, level);
                    Some((bump(&current, effective), describe_auto(level, effective)))
                }
                (BumpRequest::Auto, None) => None,
            };
            if let Some(target) = target {
                releases.insert(index, target);
            }
        }
        // Dependents (normal and build edges) of released packages are released too: their
        // requirements change with them.
        loop {
            let mut added = false;
            for (index, package) in workspace.packages.iter().enumerate() {
                if releases.contains_key(&index) {
                    continue;
                }
                let updated: Vec<&str> = package
                    .dependencies
                    .iter()
                    .filter(|e| e.kind != DepKind::Dev && releases.contains_key(&e.to))
                    .map(|e| workspace.packages[e.to].name.as_str())
                    .collect();
                if let Some(first) = updated.first() {
                    let current = parse(&package.version, &package.name)?;
                    let level = wanted(index).unwrap_or(Level::Patch);
                    let effective = effective_level(&current, level);
                    let reason = format!(
                        "dependency `{first}` is released{}",
                        if commits[&index].is_empty() {
                            String::new()
                        } else {
                            format!("; {}", describe_auto(level, effective))
                        }
                    );
                    releases.insert(index, (bump(&current, effective), reason));
                    added = true;
                }
            }
            if !added {
                break;
            }
        }
    }

    for (index, (version, _)) in &releases {
        let package = &workspace.packages[*index];
        let current = parse(&package.version, &package.name)?;
        let first = tags[index].is_none() && version == &current;
        if version < &current || (version == &current && !first) {
            return Err(CliError::config(format!(
                "`{}` would go from {current} to {version}: a release must increase the version",
                package.name
            ))
            .into());
        }
    }

    // Dependency order (dependencies first), by name within a level.
    let order = dependency_order(workspace, &releases.keys().copied().collect());
    let released_versions: BTreeMap<String, Version> = releases
        .iter()
        .map(|(i, (v, _))| (workspace.packages[*i].name.clone(), v.clone()))
        .collect();

    // Manifests.
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    let mut requirement_updates = Vec::new();
    let mut root = Manifest::parse("Cargo.toml", &root_text)?;
    let mut root_changed = false;
    if let (Some(_), Some((version, _))) = (&lockstep_version, releases.values().next()) {
        root_changed |= root.set_workspace_package_version(version);
    }
    for index in 0..workspace.packages.len() {
        let path = manifest_rel(index);
        let is_root = path == "Cargo.toml";
        let mut own;
        let manifest: &mut Manifest = if is_root {
            &mut root
        } else {
            own = Manifest::parse(&path, &read(workspace, &path)?)?;
            &mut own
        };
        let mut changed = false;
        if let Some((version, _)) = releases.get(&index) {
            match manifest.version_source()? {
                VersionSource::Own => {
                    manifest.set_package_version(version)?;
                    changed = true;
                }
                VersionSource::Workspace if lockstep => {}
                VersionSource::Workspace => {
                    return Err(CliError::config(format!(
                        "`{path}` takes its version from `[workspace.package]` (`version.workspace = true`): per-package releases need each package's own `version`; use `mode = \"lockstep\"` in `[workspace.metadata.xtask.release]` or give the package its own version"
                    ))
                    .into());
                }
            }
        }
        let updates = manifest.update_requirements(&released_versions);
        changed |= !updates.is_empty();
        requirement_updates.extend(updates);
        if is_root {
            root_changed |= changed;
        } else if changed {
            files.insert(path, manifest.render());
        }
    }
    if workspace
        .packages
        .iter()
        .all(|p| !p.relative_dir.is_empty())
    {
        // No root package: `[workspace.dependencies]` still names released packages.
        let updates = root.update_requirements(&released_versions);
        root_changed |= !updates.is_empty();
        requirement_updates.extend(updates);
    }
    if root_changed {
        files.insert("Cargo.toml".to_string(), root.render());
    }

    // Changelogs.
    let mut packages = Vec::new();
    for &index in &order {
        let package = &workspace.packages[index];
        let (version, reason) = &releases[&index];
        let mut notes: Vec<String> = package
            .dependencies
            .iter()
            .filter(|e| e.kind != DepKind::Dev)
            .filter_map(|e| {
                let dep = &workspace.packages[e.to];
                released_versions
                    .get(&dep.name)
                    .filter(|_| !lockstep)
                    .map(|v| format!("Updated dependency `{}` to {v}", dep.name))
            })
            .collect();
        notes.dedup();
        if commits[&index].is_empty() && notes.is_empty() {
            notes.push(if lockstep {
                format!("Released with the workspace at {version} (no changes of its own)")
            } else {
                format!("Released at {version} (no changes since the last release)")
            });
        }
        let section = changelog::section(&version.to_string(), &date, &commits[&index], &notes);
        let changelog_path = if package.relative_dir.is_empty() {
            changelog::FILE_NAME.to_string()
        } else {
            format!("{}/{}", package.relative_dir, changelog::FILE_NAME)
        };
        let existing = std::fs::read_to_string(workspace.root.join(&changelog_path)).ok();
        files.insert(
            changelog_path.clone(),
            changelog::insert(existing.as_deref(), &section),
        );
        packages.push(PackageRelease {
            name: package.name.clone(),
            relative_dir: package.relative_dir.clone(),
            from: package.version.clone(),
            to: version.to_string(),
            reason: reason.clone(),
            previous_tag: tags[&index].clone(),
            changelog_path,
            changelog_section: section,
            publish: package.publish,
        });
    }

    // Tags and the commit message.
    let tags: Vec<PlannedTag> = match (&lockstep_version, packages.first()) {
        (Some(_), Some(first)) => vec![PlannedTag {
            name: config.tag("", &first.to),
            message: format!("release {}", first.to),
        }],
        (Some(_), None) => Vec::new(),
        (None, _) => packages
            .iter()
            .map(|p| PlannedTag {
                name: config.tag(&p.name, &p.to),
                message: format!("{} {}", p.name, p.to),
            })
            .collect(),
    };
    for tag in &tags {
        if git.tag_commit(&tag.name)?.is_some() {
            return Err(CliError::config(format!(
                "tag `{}` already exists: that version was released before",
                tag.name
            ))
            .into());
        }
    }
    let title = match (&lockstep_version, packages.first()) {
        (Some(_), Some(first)) => format!("release: v{}", first.to),
        _ => format!(
            "release: {}",
            packages
                .iter()
                .map(|p| format!("{} {}", p.name, p.to))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let body: String = packages
        .iter()
        .map(|p| format!("- {} {} -> {} ({})\n", p.name, p.from, p.to, p.reason))
        .collect();
    let commit_message = format!("{title}\n\n{body}");

    // Artifacts: the released packages with binaries.
    let apps = packages
        .iter()
        .filter_map(|release| planned_app(workspace, &release.name, &release.to, request.host))
        .collect();
    let images = packages
        .iter()
        .filter_map(|release| planned_image(workspace, &release.name, &release.to))
        .collect();
    let publish = packages
        .iter()
        .filter(|p| p.publish)
        .map(|p| p.name.clone())
        .collect();

    let mut plan = Plan {
        lockstep,
        branch: config.branch.clone(),
        remote: config.remote.clone(),
        base_commit,
        timestamp,
        packages,
        requirement_updates,
        files: files
            .into_iter()
            .map(|(path, contents)| PlannedFile { path, contents })
            .collect(),
        commit_message,
        tags,
        apps,
        images,
        publish,
        push: false,
        registry: None,
    };
    if request.push {
        plan.enable_push(workspace)?;
    }
    Ok(plan)
}

/// Artifact mtimes, SBOM times and changelog dates: `SOURCE_DATE_EPOCH`, else `commit`'s time.
pub fn artifact_timestamp(git: &Git, commit: &str) -> anyhow::Result<i64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) if !text.is_empty() => Ok(text.trim().parse().map_err(|_| {
            CliError::config(format!(
                "SOURCE_DATE_EPOCH must be a Unix time in seconds, got {text:?}"
            ))
        })?),
        _ => git.commit_time(commit),
    }
}

/// The dist archive and SBOM of package `name` at `version`, if it has binaries.
pub fn planned_app(
    workspace: &Workspace,
    name: &str,
    version: &str,
    host: &str,
) -> Option<PlannedApp> {
    let package = &workspace.packages[workspace.package_index(name)?];
    let binaries: Vec<String> = package
        .targets
        .iter()
        .filter(|t| t.is_bin())
        .map(|t| t.name.clone())
        .collect();
    (!binaries.is_empty()).then(|| PlannedApp {
        package: name.to_string(),
        version: version.to_string(),
        binaries,
        dist_dir: format!("dist/{version}"),
        archive: format!("{name}-{version}-{host}.tar.gz"),
        sbom: format!("{name}-{version}.cdx.json"),
    })
}

/// The image of package `name` at `version`, if it is an app (`[package.metadata.xtask.app]`
/// and a binary).
pub fn planned_image(workspace: &Workspace, name: &str, version: &str) -> Option<PlannedImage> {
    let package = &workspace.packages[workspace.package_index(name)?];
    (package.app.is_some() && package.targets.iter().any(|t| t.is_bin())).then(|| PlannedImage {
        app: name.to_string(),
        tag: version.to_string(),
    })
}

fn describe_auto(wanted: Level, effective: Level) -> String {
    if wanted == effective {
        format!(
            "{}: conventional commits ask for a {} bump",
            effective.name(),
            wanted.name()
        )
    } else {
        format!(
            "{}: conventional commits ask for a {} bump, which is {} under cargo's 0.x rules",
            effective.name(),
            wanted.name(),
            effective.name()
        )
    }
}

/// `packages` with every package after its (normal and build) workspace dependencies.
pub fn dependency_order(workspace: &Workspace, packages: &BTreeSet<usize>) -> Vec<usize> {
    let mut order = Vec::new();
    let mut done: BTreeSet<usize> = BTreeSet::new();
    while done.len() < packages.len() {
        let before = done.len();
        for &index in packages {
            if done.contains(&index) {
                continue;
            }
            let ready = workspace.packages[index]
                .dependencies
                .iter()
                .filter(|e| e.kind != DepKind::Dev && packages.contains(&e.to) && e.to != index)
                .all(|e| done.contains(&e.to));
            if ready {
                order.push(index);
            }
        }
        done.extend(order.iter().copied());
        if done.len() == before {
            // A cycle (only possible through dev-dependencies cargo rejects); keep name order.
            order.extend(packages.iter().filter(|i| !done.contains(i)));
            break;
        }
    }
    order
}

fn read(workspace: &Workspace, relative: &str) -> anyhow::Result<String> {
    let path = workspace.root.join(relative);
    std::fs::read_to_string(&path).with_context(|| format!("failed to read `{}`", path.display()))
}

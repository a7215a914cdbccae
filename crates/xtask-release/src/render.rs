//! The plan as text for people (stdout). A pure function of the plan.

use crate::plan::Plan;

pub fn render_plan(plan: &Plan, done: &[String]) -> String {
    let mut text = String::new();
    let mode = if plan.lockstep {
        "lockstep"
    } else {
        "per-package"
    };
    text.push_str(&format!(
        "Release plan ({mode} versions, branch `{}`, releasing commit {})\n",
        plan.branch,
        &plan.base_commit[..plan.base_commit.len().min(12)]
    ));
    if plan.is_empty() {
        text.push_str("\nNothing to release: no package changed since its last release tag.\n");
        return text;
    }
    let width = plan
        .packages
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(0);
    text.push_str("\nVersions:\n");
    for package in &plan.packages {
        text.push_str(&format!(
            "  {:width$}  {} -> {}  ({})\n",
            package.name, package.from, package.to, package.reason
        ));
    }
    if !plan.requirement_updates.is_empty() {
        text.push_str("\nDependency requirements:\n");
        for update in &plan.requirement_updates {
            text.push_str(&format!(
                "  {} [{}] {}: \"{}\" -> \"{}\"\n",
                update.manifest, update.table, update.dependency, update.from, update.to
            ));
        }
    }
    text.push_str("\nChangelogs:\n");
    for package in &plan.packages {
        text.push_str(&format!("  {}\n", package.changelog_path));
        for line in package.changelog_section.lines() {
            if line.is_empty() {
                text.push_str("    |\n");
            } else {
                text.push_str(&format!("    | {line}\n"));
            }
        }
    }
    text.push_str("\nGit:\n");
    text.push_str(&format!(
        "  commit \"{}\" changing {} files and Cargo.lock\n",
        plan.commit_message.lines().next().unwrap_or(""),
        plan.files.len()
    ));
    for tag in &plan.tags {
        text.push_str(&format!(
            "  annotated tag {} (\"{}\")\n",
            tag.name, tag.message
        ));
    }
    if !plan.apps.is_empty() {
        text.push_str("\nArtifacts (release builds through the cache; in the target directory):\n");
        let mut dirs: Vec<&str> = plan.apps.iter().map(|a| a.dist_dir.as_str()).collect();
        dirs.dedup();
        for app in &plan.apps {
            text.push_str(&format!(
                "  {}/{}  ({})\n",
                app.dist_dir,
                app.archive,
                app.binaries.join(", ")
            ));
            text.push_str(&format!(
                "  {}/{}  (CycloneDX 1.5 SBOM)\n",
                app.dist_dir, app.sbom
            ));
        }
        for dir in dirs {
            text.push_str(&format!("  {dir}/SHA256SUMS\n"));
        }
    }
    if !plan.images.is_empty() {
        text.push_str("\nImages (static binaries and OCI images through the cache, as `cargo xtask image`):\n");
        for image in &plan.images {
            text.push_str(&format!(
                "  {}:{}  (target/xtask/images/{}/)\n",
                image.app, image.tag, image.app
            ));
        }
    }
    text.push_str("\nPublish (cargo publish, dependency order):\n");
    if plan.publish.is_empty() {
        text.push_str("  nothing: every released package has `publish = false`\n");
    }
    for name in &plan.publish {
        if let Some(package) = plan.packages.iter().find(|p| &p.name == name) {
            text.push_str(&format!("  {} {}\n", package.name, package.to));
        }
    }
    let skipped: Vec<&str> = plan
        .packages
        .iter()
        .filter(|p| !p.publish)
        .map(|p| p.name.as_str())
        .collect();
    if !plan.publish.is_empty() && !skipped.is_empty() {
        text.push_str(&format!(
            "  not published (publish = false): {}\n",
            skipped.join(", ")
        ));
    }
    if plan.push {
        text.push_str("\nPush (--push):\n");
        if let Some(registry) = &plan.registry {
            for image in &plan.images {
                text.push_str(&format!("  image {registry}/{}:{}\n", image.app, image.tag));
            }
        }
        text.push_str(&format!("  the commit and tags to `{}`\n", plan.remote));
    } else {
        text.push_str("\nPush: no (without --push nothing leaves the machine)\n");
    }
    if !done.is_empty() {
        text.push_str(&format!(
            "\nAlready done (from the state file): {}\n",
            done.join(", ")
        ));
    }
    text
}

//! CycloneDX 1.5 JSON SBOMs from `cargo metadata`: the app as the subject, and as components
//! its resolved dependency closure (normal and build dependencies; dev-dependencies are not
//! shipped), each with its `pkg:cargo/NAME@VERSION` purl. Deterministic: sorted components, the
//! release's timestamp, a serial number derived from the content.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use cargo_metadata::{DependencyKind, Metadata, PackageId};
use serde_json::{Value, json};
use xtask_util::sha256_hex;

/// The SBOM of `app` (a workspace package name) at `timestamp` (RFC 3339).
pub fn sbom(metadata: &Metadata, app: &str, timestamp: &str) -> anyhow::Result<String> {
    let resolve = metadata
        .resolve
        .as_ref()
        .context("`cargo metadata` has no dependency resolution")?;
    let packages: BTreeMap<&PackageId, &cargo_metadata::Package> =
        metadata.packages.iter().map(|p| (&p.id, p)).collect();
    let root = metadata
        .workspace_packages()
        .into_iter()
        .find(|p| p.name.as_str() == app)
        .with_context(|| format!("`{app}` is not a workspace package"))?;
    let nodes: BTreeMap<&PackageId, &cargo_metadata::Node> =
        resolve.nodes.iter().map(|n| (&n.id, n)).collect();

    // The closure over normal and build edges.
    let mut closure: BTreeSet<&PackageId> = BTreeSet::new();
    let mut edges: BTreeMap<&PackageId, BTreeSet<&PackageId>> = BTreeMap::new();
    let mut stack = vec![&root.id];
    while let Some(id) = stack.pop() {
        if !closure.insert(id) {
            continue;
        }
        let Some(node) = nodes.get(id) else { continue };
        for dep in &node.deps {
            let shipped = dep
                .dep_kinds
                .iter()
                .any(|k| k.kind != DependencyKind::Development);
            if shipped {
                edges.entry(id).or_default().insert(&dep.pkg);
                stack.push(&dep.pkg);
            }
        }
    }
    let purl = |id: &PackageId| -> String {
        match packages.get(id) {
            Some(p) => format!("pkg:cargo/{}@{}", p.name, p.version),
            None => id.repr.clone(),
        }
    };
    let component = |id: &PackageId, kind: &str| -> Value {
        let mut value = json!({ "type": kind, "bom-ref": purl(id), "purl": purl(id) });
        if let Some(p) = packages.get(id) {
            value["name"] = json!(p.name.as_str());
            value["version"] = json!(p.version.to_string());
            if let Some(license) = &p.license {
                value["licenses"] = json!([{ "expression": license }]);
            }
            if let Some(description) = &p.description {
                value["description"] = json!(description.trim());
            }
        }
        value
    };
    let mut components: Vec<Value> = closure
        .iter()
        .filter(|id| **id != &root.id)
        .map(|id| component(id, "library"))
        .collect();
    components.sort_by_key(|c| c["bom-ref"].as_str().unwrap_or("").to_string());
    components.dedup_by_key(|c| c["bom-ref"].as_str().unwrap_or("").to_string());
    let mut dependencies: Vec<Value> = closure
        .iter()
        .map(|id| {
            let mut depends: Vec<String> = edges
                .get(id)
                .map(|set| set.iter().map(|d| purl(d)).collect())
                .unwrap_or_default();
            depends.sort();
            depends.dedup();
            json!({ "ref": purl(id), "dependsOn": depends })
        })
        .collect();
    dependencies.sort_by_key(|d| d["ref"].as_str().unwrap_or("").to_string());
    dependencies.dedup_by_key(|d| d["ref"].as_str().unwrap_or("").to_string());

    let mut document = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": { "components": [{ "type": "application", "name": "cargo-xtask", "version": xtask_engine::TOOL_VERSION }] },
            "component": component(&root.id, "application"),
        },
        "components": components,
        "dependencies": dependencies,
    });
    // A serial number that is a function of the content (UUID layout, version 5 bits).
    let digest = sha256_hex(document.to_string().as_bytes());
    let serial = format!(
        "urn:uuid:{}-{}-5{}-8{}-{}",
        &digest[..8],
        &digest[8..12],
        &digest[13..16],
        &digest[17..20],
        &digest[20..32]
    );
    document["serialNumber"] = json!(serial);
    let mut text = serde_json::to_string_pretty(&document).context("failed to encode the SBOM")?;
    text.push('\n');
    Ok(text)
}

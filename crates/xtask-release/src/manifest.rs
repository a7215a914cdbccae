//! Edits of `Cargo.toml` files with `toml_edit`, so comments, ordering and formatting survive:
//! a package's version, `[workspace.package] version`, and the version requirements that
//! workspace members (and `[workspace.dependencies]`) have on released packages.

use std::collections::BTreeMap;

use semver::Version;
use toml_edit::{DocumentMut, Item, TableLike, Value};

use crate::version::requirement_for;

/// A requirement that changes: `manifest`'s `table.dependency` from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RequirementUpdate {
    /// Workspace-relative manifest path.
    pub manifest: String,
    /// Dotted table, e.g. `dependencies` or `target.'cfg(unix)'.dev-dependencies`.
    pub table: String,
    pub dependency: String,
    pub from: String,
    pub to: String,
}

/// A parsed manifest being edited.
pub struct Manifest {
    document: DocumentMut,
    /// Workspace-relative path, for messages and [`RequirementUpdate::manifest`].
    path: String,
}

/// Where a package's version comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSource {
    /// `version = "X.Y.Z"` in `[package]`.
    Own,
    /// `version.workspace = true`.
    Workspace,
}

impl Manifest {
    pub fn parse(path: &str, text: &str) -> anyhow::Result<Manifest> {
        let document = text
            .parse::<DocumentMut>()
            .map_err(|error| anyhow::anyhow!("failed to parse `{path}`: {error}"))?;
        Ok(Manifest {
            document,
            path: path.to_string(),
        })
    }

    pub fn render(&self) -> String {
        self.document.to_string()
    }

    pub fn version_source(&self) -> anyhow::Result<VersionSource> {
        let version = self
            .document
            .get("package")
            .and_then(|p| p.get("version"))
            .ok_or_else(|| anyhow::anyhow!("`{}` has no `package.version`", self.path))?;
        if version.is_str() {
            Ok(VersionSource::Own)
        } else if version
            .as_table_like()
            .and_then(|t| t.get("workspace"))
            .and_then(Item::as_bool)
            == Some(true)
        {
            Ok(VersionSource::Workspace)
        } else {
            anyhow::bail!(
                "`{}`: `package.version` must be a string or `version.workspace = true`",
                self.path
            )
        }
    }

    /// Sets `[package] version` (which must be the package's own).
    pub fn set_package_version(&mut self, version: &Version) -> anyhow::Result<()> {
        let item = self
            .document
            .get_mut("package")
            .and_then(|p| p.get_mut("version"))
            .ok_or_else(|| anyhow::anyhow!("`{}` has no `package.version`", self.path))?;
        replace_string(item, &version.to_string());
        Ok(())
    }

    /// Sets `[workspace.package] version`; `false` when there is none.
    pub fn set_workspace_package_version(&mut self, version: &Version) -> bool {
        match self
            .document
            .get_mut("workspace")
            .and_then(|w| w.get_mut("package"))
            .and_then(|p| p.get_mut("version"))
        {
            Some(item) if item.is_str() => {
                replace_string(item, &version.to_string());
                true
            }
            _ => false,
        }
    }

    pub fn workspace_package_version(&self) -> Option<String> {
        self.document
            .get("workspace")
            .and_then(|w| w.get("package"))
            .and_then(|p| p.get("version"))
            .and_then(Item::as_str)
            .map(str::to_string)
    }

    /// Moves every path dependency on a released package that carries a `version` to the new
    /// version (in `[dependencies]`, dev, build, `target.*` and `[workspace.dependencies]`).
    pub fn update_requirements(
        &mut self,
        released: &BTreeMap<String, Version>,
    ) -> Vec<RequirementUpdate> {
        let mut updates = Vec::new();
        let path = self.path.clone();
        let root = self.document.as_table_mut();
        let mut tables: Vec<(String, &mut dyn TableLike)> = Vec::new();
        for (key, item) in root.iter_mut() {
            match key.get() {
                "dependencies" | "dev-dependencies" | "build-dependencies" => {
                    if let Some(table) = item.as_table_like_mut() {
                        tables.push((key.get().to_string(), table));
                    }
                }
                "target" => {
                    let Some(targets) = item.as_table_like_mut() else {
                        continue;
                    };
                    for (cfg, target) in targets.iter_mut() {
                        let Some(target) = target.as_table_like_mut() else {
                            continue;
                        };
                        let cfg = cfg.get().to_string();
                        for (kind, table) in target.iter_mut() {
                            if matches!(
                                kind.get(),
                                "dependencies" | "dev-dependencies" | "build-dependencies"
                            ) && let Some(table) = table.as_table_like_mut()
                            {
                                tables.push((format!("target.'{cfg}'.{}", kind.get()), table));
                            }
                        }
                    }
                }
                "workspace" => {
                    if let Some(table) = item
                        .as_table_like_mut()
                        .and_then(|w| w.get_mut("dependencies"))
                        .and_then(Item::as_table_like_mut)
                    {
                        tables.push(("workspace.dependencies".to_string(), table));
                    }
                }
                _ => {}
            }
        }
        for (table_name, table) in tables {
            for (key, entry) in table.iter_mut() {
                let Some(entry) = entry.as_table_like_mut() else {
                    continue;
                };
                let name = entry
                    .get("package")
                    .and_then(Item::as_str)
                    .unwrap_or(key.get())
                    .to_string();
                let Some(version) = released.get(&name) else {
                    continue;
                };
                if entry.get("path").is_none() {
                    continue;
                }
                let Some(item) = entry.get_mut("version") else {
                    continue;
                };
                let Some(from) = item.as_str().map(str::to_string) else {
                    continue;
                };
                let to = requirement_for(&from, version);
                if to != from {
                    replace_string(item, &to);
                    updates.push(RequirementUpdate {
                        manifest: path.clone(),
                        table: table_name.clone(),
                        dependency: key.get().to_string(),
                        from,
                        to,
                    });
                }
            }
        }
        updates
    }
}

/// Replaces a string value, keeping the whitespace and comments around it.
fn replace_string(item: &mut Item, text: &str) {
    if let Some(value) = item.as_value_mut() {
        let decor = value.decor().clone();
        let mut new = Value::from(text);
        *new.decor_mut() = decor;
        *value = new;
    } else {
        *item = toml_edit::value(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_keep_comments_and_layout() {
        let text = "[package]\nname = \"app\"\nversion = \"0.1.0\" # bumped by release\n\n\
                    # our libraries\n[dependencies]\nutil = { path = \"../util\", version = \"=0.1.0\" }  # pinned\n\
                    core = { package = \"core-lib\", path = \"../core\", version = \"0.1\" }\nserde = \"1\"\n\
                    [target.'cfg(unix)'.dev-dependencies]\nutil = { path = \"../util\", version = \"0.1.0\" }\n\
                    [dev-dependencies.other]\npath = \"../other\"\n";
        let mut manifest = Manifest::parse("apps/app/Cargo.toml", text).unwrap();
        assert_eq!(manifest.version_source().unwrap(), VersionSource::Own);
        manifest
            .set_package_version(&Version::parse("0.1.1").unwrap())
            .unwrap();
        let released = BTreeMap::from([
            ("util".to_string(), Version::parse("0.2.0").unwrap()),
            ("core-lib".to_string(), Version::parse("1.0.0").unwrap()),
            ("other".to_string(), Version::parse("3.0.0").unwrap()),
        ]);
        let updates = manifest.update_requirements(&released);
        assert_eq!(
            manifest.render(),
            text.replace("\"0.1.0\" # bumped", "\"0.1.1\" # bumped")
                .replace("\"=0.1.0\" }  # pinned", "\"=0.2.0\" }  # pinned")
                .replace("version = \"0.1\" }", "version = \"1.0.0\" }")
                .replace(
                    "dev-dependencies]\nutil = { path = \"../util\", version = \"0.1.0\" }",
                    "dev-dependencies]\nutil = { path = \"../util\", version = \"0.2.0\" }"
                )
        );
        let described: Vec<String> = updates
            .iter()
            .map(|u| format!("{} {} {} -> {}", u.table, u.dependency, u.from, u.to))
            .collect();
        assert_eq!(
            described,
            vec![
                "dependencies util =0.1.0 -> =0.2.0",
                "dependencies core 0.1 -> 1.0.0",
                "target.'cfg(unix)'.dev-dependencies util 0.1.0 -> 0.2.0",
            ]
        );
    }

    #[test]
    fn inherited_versions() {
        let mut manifest = Manifest::parse(
            "Cargo.toml",
            "[workspace.package]\nversion = \"1.0.0\"  # shared\n[package]\nname = \"x\"\nversion.workspace = true\n",
        )
        .unwrap();
        assert_eq!(manifest.version_source().unwrap(), VersionSource::Workspace);
        assert!(manifest.set_workspace_package_version(&Version::new(1, 1, 0)));
        assert!(manifest.render().contains("version = \"1.1.0\"  # shared"));
        assert_eq!(
            manifest.workspace_package_version().as_deref(),
            Some("1.1.0")
        );
    }
}

//! Version arithmetic with cargo's compatibility rules.
//!
//! Cargo reads a requirement `"X.Y.Z"` as the caret requirement `^X.Y.Z`, whose compatible
//! range stops at the first non-zero component: `^1.2.3` is `>=1.2.3, <2.0.0`, `^0.2.3` is
//! `>=0.2.3, <0.3.0`, `^0.0.3` is `=0.0.3`. A release must break exactly the users it has to, so
//! `auto` maps what the commits ask for onto that range:
//!
//! | version | breaking (`!`, `BREAKING CHANGE`) | `feat` | anything else |
//! |---|---|---|---|
//! | `>= 1.0.0` | major | minor | patch |
//! | `0.y.z` (y > 0) | minor (0.y+1.0) | patch | patch |
//! | `0.0.z` | patch (0.0.z+1: every 0.0 release is breaking for cargo) | patch | patch |
//!
//! An explicit `--bump patch|minor|major` is applied literally (`major` on `0.3.1` gives
//! `1.0.0`). A pre-release version (`1.0.0-rc.1`) is released as its final version by `patch`.

use std::fmt;
use std::str::FromStr;

use semver::{BuildMetadata, Prerelease, Version};

use crate::commits::Level;

/// What `--bump` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BumpRequest {
    /// From the conventional commits, with cargo's 0.x rules.
    Auto,
    /// This level, literally.
    Level(Level),
    /// Exactly this version.
    Exact(Version),
}

impl FromStr for BumpRequest {
    type Err = String;

    fn from_str(text: &str) -> Result<BumpRequest, String> {
        match text {
            "auto" => Ok(BumpRequest::Auto),
            "patch" => Ok(BumpRequest::Level(Level::Patch)),
            "minor" => Ok(BumpRequest::Level(Level::Minor)),
            "major" => Ok(BumpRequest::Level(Level::Major)),
            other => Version::parse(other).map(BumpRequest::Exact).map_err(|error| {
                format!("expected patch, minor, major, auto or a version X.Y.Z, got {other:?}: {error}")
            }),
        }
    }
}

impl fmt::Display for BumpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BumpRequest::Auto => f.write_str("auto"),
            BumpRequest::Level(level) => f.write_str(level.name()),
            BumpRequest::Exact(version) => write!(f, "{version}"),
        }
    }
}

/// The level `auto` uses for a version, given what the commits ask for (cargo's 0.x rules).
pub fn effective_level(version: &Version, wanted: Level) -> Level {
    match (version.major, version.minor) {
        (0, 0) => Level::Patch,
        (0, _) => match wanted {
            Level::Major => Level::Minor,
            Level::Minor | Level::Patch => Level::Patch,
        },
        _ => wanted,
    }
}

/// `version` moved by `level` (literally).
pub fn bump(version: &Version, level: Level) -> Version {
    let mut next = version.clone();
    next.build = BuildMetadata::EMPTY;
    if !version.pre.is_empty() {
        next.pre = Prerelease::EMPTY;
        if level == Level::Patch {
            return next;
        }
    }
    match level {
        Level::Patch => next.patch += 1,
        Level::Minor => {
            next.minor += 1;
            next.patch = 0;
        }
        Level::Major => {
            next.major += 1;
            next.minor = 0;
            next.patch = 0;
        }
    }
    next
}

/// A dependency requirement moved to `version`, keeping its operator (`=`, `~`, `^`, `>=`).
pub fn requirement_for(old_requirement: &str, version: &Version) -> String {
    let trimmed = old_requirement.trim();
    let operator: String = trimmed
        .chars()
        .take_while(|c| matches!(c, '=' | '^' | '~' | '>' | '<' | ' '))
        .collect();
    format!("{}{version}", operator.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn cargo_zero_rules() {
        let cases = [
            ("1.2.3", Level::Major, "2.0.0"),
            ("1.2.3", Level::Minor, "1.3.0"),
            ("1.2.3", Level::Patch, "1.2.4"),
            ("0.2.3", Level::Major, "0.3.0"),
            ("0.2.3", Level::Minor, "0.2.4"),
            ("0.2.3", Level::Patch, "0.2.4"),
            ("0.0.3", Level::Major, "0.0.4"),
            ("0.0.3", Level::Minor, "0.0.4"),
        ];
        for (from, wanted, to) in cases {
            let next = bump(&v(from), effective_level(&v(from), wanted));
            assert_eq!(next, v(to), "{from} with {wanted:?}");
            // The rule's point: a breaking change leaves cargo's compatible range, others stay.
            let requirement = semver::VersionReq::parse(from).unwrap();
            assert_eq!(
                requirement.matches(&next),
                wanted != Level::Major && !(from.starts_with("0.0.")),
                "{from} -> {next}"
            );
        }
    }

    #[test]
    fn literal_levels_and_prereleases() {
        assert_eq!(bump(&v("0.3.1"), Level::Major), v("1.0.0"));
        assert_eq!(bump(&v("1.0.0-rc.1"), Level::Patch), v("1.0.0"));
        assert_eq!(bump(&v("1.0.0-rc.1"), Level::Minor), v("1.1.0"));
        assert_eq!(requirement_for("=0.1.0", &v("0.2.0")), "=0.2.0");
        assert_eq!(requirement_for("0.1", &v("0.2.0")), "0.2.0");
        assert_eq!(requirement_for("~ 0.1", &v("0.2.0")), "~0.2.0");
        assert_eq!(
            "1.2.3".parse::<BumpRequest>(),
            Ok(BumpRequest::Exact(v("1.2.3")))
        );
        assert!("huge".parse::<BumpRequest>().is_err());
    }
}

//! Conventional commits (`type(scope)!: description`, `BREAKING CHANGE:` footers): what a
//! commit says about the next version, and where its changelog entry goes. Commits that do not
//! follow the convention are kept (as "Uncategorized"), never dropped.

use serde::{Deserialize, Serialize};

/// How far a version moves, in semver terms (before cargo's 0.x rules are applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Patch,
    Minor,
    Major,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Patch => "patch",
            Level::Minor => "minor",
            Level::Major => "major",
        }
    }
}

/// A commit as the changelog and the bump see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    pub short_sha: String,
    /// The conventional type, lowercased; `None` when the subject does not follow the convention.
    pub kind: Option<String>,
    pub scope: Option<String>,
    pub breaking: bool,
    /// The description after `type: `, or the whole subject of a non-conventional commit.
    pub description: String,
}

/// The Keep a Changelog sections, in the order they are written, then ours for the rest.
pub const SECTIONS: [&str; 8] = [
    "Added",
    "Changed",
    "Deprecated",
    "Removed",
    "Fixed",
    "Security",
    "Other",
    "Uncategorized",
];

impl Commit {
    pub fn parse(sha: &str, subject: &str, body: &str) -> Commit {
        let short_sha = sha.chars().take(7).collect();
        let footer_breaking = body.lines().any(|line| {
            line.starts_with("BREAKING CHANGE:") || line.starts_with("BREAKING-CHANGE:")
        });
        match parse_subject(subject) {
            Some((kind, scope, bang, description)) => Commit {
                short_sha,
                kind: Some(kind),
                scope,
                breaking: bang || footer_breaking,
                description,
            },
            None => Commit {
                short_sha,
                kind: None,
                scope: None,
                breaking: footer_breaking,
                description: subject.trim().to_string(),
            },
        }
    }

    /// What this commit asks of the version: breaking -> major, `feat` -> minor, anything else
    /// that changed the package -> patch.
    pub fn level(&self) -> Level {
        if self.breaking {
            Level::Major
        } else if self.kind.as_deref() == Some("feat") {
            Level::Minor
        } else {
            Level::Patch
        }
    }

    /// The changelog section (one of [`SECTIONS`]).
    pub fn section(&self) -> &'static str {
        if self.breaking {
            return "Changed";
        }
        match self.kind.as_deref() {
            None => "Uncategorized",
            Some("feat") => "Added",
            Some("fix") => "Fixed",
            Some("perf" | "refactor" | "revert") => "Changed",
            Some("deprecate" | "deprecated") => "Deprecated",
            Some("remove" | "removed") => "Removed",
            Some("security" | "sec") => "Security",
            Some(_) => "Other",
        }
    }

    /// The changelog line (without the leading `- `).
    pub fn entry(&self) -> String {
        let mut text = String::new();
        if self.breaking {
            text.push_str("**Breaking:** ");
        }
        if self.section() == "Other"
            && let Some(kind) = &self.kind
        {
            text.push_str(kind);
            text.push_str(": ");
        }
        if let Some(scope) = &self.scope {
            text.push_str(&format!("**{scope}:** "));
        }
        text.push_str(&self.description);
        text.push_str(&format!(" ({})", self.short_sha));
        text
    }
}

/// `type(scope)!: description` -> (type, scope, `!`, description).
fn parse_subject(subject: &str) -> Option<(String, Option<String>, bool, String)> {
    let (head, description) = subject.split_once(':')?;
    let description = description.strip_prefix(' ')?.trim();
    if description.is_empty() {
        return None;
    }
    let (head, bang) = match head.strip_suffix('!') {
        Some(head) => (head, true),
        None => (head, false),
    };
    let (kind, scope) = match head.split_once('(') {
        Some((kind, rest)) => {
            let scope = rest.strip_suffix(')')?;
            if scope.is_empty() || scope.contains(['(', ')']) {
                return None;
            }
            (kind, Some(scope.to_string()))
        }
        None => (head, None),
    };
    if kind.is_empty() || !kind.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    Some((
        kind.to_ascii_lowercase(),
        scope,
        bang,
        description.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conventional_subjects() {
        let c = Commit::parse("0123456789", "feat(parser)!: drop the old syntax", "");
        assert_eq!(
            (c.kind.as_deref(), c.scope.as_deref(), c.breaking, c.level()),
            (Some("feat"), Some("parser"), true, Level::Major)
        );
        assert_eq!(
            c.entry(),
            "**Breaking:** **parser:** drop the old syntax (0123456)"
        );
        let c = Commit::parse("abc", "Fix: handle empty input", "");
        assert_eq!((c.section(), c.level()), ("Fixed", Level::Patch));
        let c = Commit::parse("abc", "feat: greet", "");
        assert_eq!((c.section(), c.level()), ("Added", Level::Minor));
        let c = Commit::parse("abc", "docs: typo", "");
        assert_eq!(
            (c.section(), c.entry().as_str()),
            ("Other", "docs: typo (abc)")
        );
        let c = Commit::parse(
            "abc",
            "refactor: x",
            "body\n\nBREAKING CHANGE: the API moved",
        );
        assert!(c.breaking);
    }

    #[test]
    fn unconventional_subjects_are_kept() {
        for subject in [
            "Update README",
            "feat:missing space",
            "feat(): empty scope",
            "wip stuff: more",
            "feat: ",
        ] {
            let c = Commit::parse("abcdef012", subject, "");
            assert_eq!(c.kind, None, "{subject}");
            assert_eq!(c.section(), "Uncategorized");
            assert_eq!(c.level(), Level::Patch);
            assert_eq!(c.description, subject.trim());
        }
    }
}

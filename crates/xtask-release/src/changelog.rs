//! `CHANGELOG.md` in the Keep a Changelog layout: one `## [X.Y.Z] - DATE` section per release,
//! entries grouped by type, inserted below `## [Unreleased]` (whose hand-written notes move into
//! the release). Pure functions of their inputs.

use std::collections::BTreeMap;

use crate::commits::{Commit, SECTIONS};

pub const FILE_NAME: &str = "CHANGELOG.md";

const HEADER: &str = "# Changelog\n\n\
All notable changes to this package are documented in this file.\n\n\
The format is based on [Keep a Changelog](https://keepachangelog.com/en/1.1.0/),\n\
and this package adheres to [Semantic Versioning](https://semver.org/spec/v2.0.0.html).\n\n\
## [Unreleased]\n";

/// The section of one release. `notes` are extra `Changed` entries (e.g. updated dependencies).
pub fn section(version: &str, date: &str, commits: &[Commit], notes: &[String]) -> String {
    let mut groups: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let index = |name: &str| SECTIONS.iter().position(|s| *s == name).unwrap_or(0);
    // Breaking changes first within their section.
    let mut ordered: Vec<&Commit> = commits.iter().filter(|c| c.breaking).collect();
    ordered.extend(commits.iter().filter(|c| !c.breaking));
    for commit in ordered {
        groups
            .entry(index(commit.section()))
            .or_default()
            .push(commit.entry());
    }
    for note in notes {
        groups
            .entry(index("Changed"))
            .or_default()
            .push(note.clone());
    }
    let mut text = format!("## [{version}] - {date}\n");
    for (i, entries) in groups {
        text.push_str(&format!("\n### {}\n\n", SECTIONS[i]));
        for entry in entries {
            text.push_str(&format!("- {entry}\n"));
        }
    }
    text
}

/// `existing` (or a new changelog) with `section` as its newest release.
pub fn insert(existing: Option<&str>, section: &str) -> String {
    let existing = existing.unwrap_or(HEADER);
    let lines: Vec<&str> = existing.split_inclusive('\n').collect();
    let is_release_heading = |line: &str| line.starts_with("## ");
    let unreleased = lines
        .iter()
        .position(|l| l.trim_end().eq_ignore_ascii_case("## [unreleased]"));
    let (head, notes, rest) = match unreleased {
        Some(at) => {
            let next = lines[at + 1..]
                .iter()
                .position(|l| is_release_heading(l))
                .map_or(lines.len(), |p| at + 1 + p);
            (
                lines[..=at].concat(),
                lines[at + 1..next].concat(),
                lines[next..].concat(),
            )
        }
        None => {
            let first = lines
                .iter()
                .position(|l| is_release_heading(l))
                .unwrap_or(lines.len());
            (
                lines[..first].concat(),
                String::new(),
                lines[first..].concat(),
            )
        }
    };
    let mut text = head.trim_end().to_string();
    text.push_str("\n\n");
    let notes = notes.trim();
    match section.split_once('\n') {
        Some((heading, body)) if !notes.is_empty() => {
            text.push_str(heading);
            text.push_str("\n\n");
            text.push_str(notes);
            text.push('\n');
            text.push_str(body);
        }
        _ => text.push_str(section),
    }
    if !rest.trim().is_empty() {
        text.push('\n');
        text.push_str(rest.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_changelog_groups_by_type() {
        let commits = [
            Commit::parse("1111111a", "fix: empty names", ""),
            Commit::parse("2222222b", "feat(api)!: new greeting", ""),
            Commit::parse("3333333c", "tidy up", ""),
            Commit::parse("4444444d", "feat: wave", ""),
            Commit::parse("5555555e", "chore: deps", ""),
        ];
        let text = insert(
            None,
            &section(
                "0.2.0",
                "2024-05-01",
                &commits,
                &["Updated `util` to 0.1.1".into()],
            ),
        );
        insta::assert_snapshot!(text);
    }

    #[test]
    fn unreleased_notes_move_into_the_release_and_history_stays() {
        let old = "# Changelog\n\nIntro.\n\n## [Unreleased]\n\nHand-written note.\n\n## [0.1.0] - 2024-01-01\n\n### Added\n\n- first\n";
        let text = insert(
            Some(old),
            &section(
                "0.1.1",
                "2024-02-01",
                &[Commit::parse("abcdef0", "fix: x", "")],
                &[],
            ),
        );
        assert_eq!(
            text,
            "# Changelog\n\nIntro.\n\n## [Unreleased]\n\n## [0.1.1] - 2024-02-01\n\nHand-written note.\n\n### Fixed\n\n- x (abcdef0)\n\n## [0.1.0] - 2024-01-01\n\n### Added\n\n- first\n"
        );
    }
}

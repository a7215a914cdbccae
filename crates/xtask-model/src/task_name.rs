//! The name of a task: one type for the built-in names and the custom ones, so code compares
//! names with [`TaskName::BUILD`] and friends, not with string literals.

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::ops::Deref;

use crate::config::CargoTask;

/// A task name such as `build` or `gen`. Ordered, compared, displayed and serialized as its
/// text.
///
/// Names the configuration defines are checked there (lowercase letters, digits, `-`, `_`,
/// starting with a letter); a name from the command line may name no task, which the task graph
/// reports with the names that exist.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct TaskName(Cow<'static, str>);

impl TaskName {
    pub const BUILD: TaskName = TaskName(Cow::Borrowed("build"));
    pub const TEST: TaskName = TaskName(Cow::Borrowed("test"));
    pub const LINT: TaskName = TaskName(Cow::Borrowed("lint"));
    pub const FMT: TaskName = TaskName(Cow::Borrowed("fmt"));

    pub fn new(name: impl Into<String>) -> TaskName {
        TaskName(Cow::Owned(name.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The built-in cargo task of this name, if it is one.
    pub fn cargo_task(&self) -> Option<CargoTask> {
        CargoTask::from_name(self.as_str())
    }
}

impl fmt::Display for TaskName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Deref for TaskName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// Maps keyed by name can be looked up with a `&str` (ordering and hashing are the text's).
impl Borrow<str> for TaskName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for TaskName {
    fn from(name: &str) -> TaskName {
        TaskName::new(name)
    }
}

impl From<String> for TaskName {
    fn from(name: String) -> TaskName {
        TaskName::new(name)
    }
}

impl PartialEq<str> for TaskName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for TaskName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn built_in_names_are_equal_to_the_same_name_given_as_text() {
        assert_eq!(TaskName::new("build"), TaskName::BUILD);
        assert_eq!(TaskName::from("test".to_string()), TaskName::TEST);
        assert_ne!(TaskName::from("gen"), TaskName::LINT);
        assert_eq!(TaskName::FMT.cargo_task(), Some(CargoTask::Fmt));
        assert_eq!(TaskName::new("gen").cargo_task(), None);
    }

    #[test]
    fn names_order_and_look_up_as_text() {
        let mut names = vec![
            TaskName::TEST,
            TaskName::new("gen"),
            TaskName::BUILD,
            TaskName::new("codegen"),
        ];
        names.sort();
        assert_eq!(names, ["build", "codegen", "gen", "test"]);
        let by_name: BTreeMap<TaskName, u8> = [(TaskName::LINT, 1), (TaskName::new("gen"), 2)]
            .into_iter()
            .collect();
        assert_eq!(by_name.get("gen"), Some(&2));
        assert_eq!(by_name[&TaskName::LINT], 1);
        assert_eq!(TaskName::new("gen").to_string(), "gen");
    }
}

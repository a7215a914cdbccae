//! The critical path of a run: the chain of tasks that decided when it ended. It ends at the
//! task that ended last; each step back goes to the predecessor that ended last (the one that
//! task waited for longest). A task's predecessors are its task-graph dependencies and, for a
//! cargo task, the same task of the packages it builds against (cargo builds those first
//! inside the one call). Skipped tasks never ran, so they are never on it.

use std::collections::HashMap;

use crate::{TaskData, TaskStatus};

/// Indices into `tasks` of the critical path, first task first; empty for no tasks.
pub fn critical_path(tasks: &[TaskData]) -> Vec<usize> {
    let by_id: HashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    let end = |i: usize| tasks[i].start_ms + tasks[i].duration_ms;
    // The latest end; among equals the later start (the longer chain behind it), then the
    // later task in order (dependencies come first).
    let ran = |i: &usize| tasks[*i].status != TaskStatus::Skipped;
    let Some(last) = (0..tasks.len())
        .filter(ran)
        .max_by_key(|&i| (end(i), tasks[i].start_ms, i))
    else {
        return Vec::new();
    };
    let mut path = vec![last];
    let mut current = last;
    // A chain is at most every task long: a bound against inconsistent data.
    while path.len() < tasks.len() {
        let task = &tasks[current];
        let same_task_of = |package: &String| {
            by_id
                .get(format!("{package}:{}", task.task).as_str())
                .copied()
        };
        let before = task
            .dependencies
            .iter()
            .filter_map(|id| by_id.get(id.as_str()).copied())
            .chain(task.builds_against.iter().filter_map(same_task_of))
            .filter(|&p| p != current && !path.contains(&p) && ran(&p))
            // What ended after this task cannot have held it up.
            .filter(|&p| end(p) <= end(current))
            .max_by_key(|&p| (end(p), tasks[p].start_ms, p));
        match before {
            Some(p) => {
                path.push(p);
                current = p;
            }
            None => break,
        }
    }
    path.reverse();
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, start_ms: u64, duration_ms: u64, dependencies: &[&str]) -> TaskData {
        let (package, name) = id.split_once(':').unwrap();
        TaskData {
            id: id.to_string(),
            package: package.to_string(),
            task: name.to_string(),
            status: TaskStatus::Miss,
            start_ms,
            duration_ms,
            dependencies: dependencies.iter().map(|d| d.to_string()).collect(),
            ..TaskData::default()
        }
    }

    fn ids(tasks: &[TaskData], path: &[usize]) -> Vec<String> {
        path.iter().map(|&i| tasks[i].id.clone()).collect()
    }

    #[test]
    fn follows_the_dependency_that_ended_last() {
        let tasks = vec![
            task("a:gen", 0, 100, &[]),
            task("b:gen", 0, 300, &[]),
            task("c:gen", 300, 50, &["a:gen", "b:gen"]),
            task("d:gen", 0, 200, &[]),
            TaskData {
                status: TaskStatus::Skipped,
                ..task("e:gen", 350, 0, &["c:gen"])
            },
        ];
        assert_eq!(
            ids(&tasks, &critical_path(&tasks)),
            ["b:gen", "c:gen"],
            "c waited for b (ended at 300), not a (100); d ended before c; e never ran"
        );
    }

    #[test]
    fn a_cargo_task_waits_for_the_packages_it_builds_against() {
        let mut app = task("app:build", 40, 60, &[]);
        app.builds_against = vec!["lib".into(), "not-in-run".into()];
        let tasks = vec![task("lib:build", 0, 40, &[]), app];
        assert_eq!(
            ids(&tasks, &critical_path(&tasks)),
            ["lib:build", "app:build"]
        );
    }

    #[test]
    fn no_tasks_no_path_and_a_cycle_in_bad_data_ends() {
        assert!(critical_path(&[]).is_empty());
        let tasks = vec![task("a:x", 0, 10, &["b:x"]), task("b:x", 0, 10, &["a:x"])];
        let path = critical_path(&tasks);
        assert_eq!(path.len(), 2, "{path:?}");
    }
}

//! Task definitions: the built-in cargo tasks, custom tasks, `depends_on`, and how a
//! `[...tasks.NAME]` table is applied on top of the definition it overrides.

use std::fmt;

use toml::Spanned;

use super::raw::RawTask;
use super::{ManifestSource, validate_env_names};
use crate::error::ConfigProblem;
use crate::task_name::TaskName;

/// The built-in cargo tasks, in the order their batches run.
pub const BUILTIN_TASKS: [TaskName; 4] = [
    TaskName::FMT,
    TaskName::LINT,
    TaskName::BUILD,
    TaskName::TEST,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CargoTask {
    /// `cargo build`
    Build,
    /// `cargo test` (test binaries run per package)
    Test,
    /// `cargo clippy --all-targets -- -D warnings`
    Lint,
    /// `cargo fmt --check`
    Fmt,
}

impl CargoTask {
    pub fn name(self) -> &'static str {
        match self {
            CargoTask::Build => "build",
            CargoTask::Test => "test",
            CargoTask::Lint => "lint",
            CargoTask::Fmt => "fmt",
        }
    }

    /// The task name of this built-in task.
    pub fn task_name(self) -> TaskName {
        match self {
            CargoTask::Build => TaskName::BUILD,
            CargoTask::Test => TaskName::TEST,
            CargoTask::Lint => TaskName::LINT,
            CargoTask::Fmt => TaskName::FMT,
        }
    }

    pub fn from_name(name: &str) -> Option<CargoTask> {
        match name {
            "build" => Some(CargoTask::Build),
            "test" => Some(CargoTask::Test),
            "lint" => Some(CargoTask::Lint),
            "fmt" => Some(CargoTask::Fmt),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskKind {
    Cargo(CargoTask),
    /// A program with arguments, run without a shell in the package directory.
    Custom {
        program: String,
        args: Vec<String>,
    },
}

/// One entry of `depends_on`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum DependsOn {
    /// `^task`: the task in every workspace dependency of the package.
    Upstream(TaskName),
    /// `task`: the task in the same package.
    SamePackage(TaskName),
    /// `pkg#task`: the task of one named package.
    Package { package: String, task: TaskName },
}

impl DependsOn {
    pub fn task(&self) -> &TaskName {
        match self {
            DependsOn::Upstream(t) | DependsOn::SamePackage(t) => t,
            DependsOn::Package { task, .. } => task,
        }
    }
}

impl fmt::Display for DependsOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DependsOn::Upstream(t) => write!(f, "^{t}"),
            DependsOn::SamePackage(t) => write!(f, "{t}"),
            DependsOn::Package { package, task } => write!(f, "{package}#{task}"),
        }
    }
}

/// Which manifest a part of a task definition comes from, for locating problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskOrigin {
    /// Built into the tool.
    Builtin,
    /// `[workspace.metadata.xtask.tasks.NAME]` in the root manifest.
    Workspace,
    /// `[package.metadata.xtask.tasks.NAME]` in the package's manifest.
    Package,
}

/// The effective definition of a task for one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDef {
    pub name: TaskName,
    pub kind: TaskKind,
    /// Globs relative to the package directory; empty means every non-ignored file.
    pub inputs: Vec<String>,
    /// Globs relative to the package directory of files the task writes.
    pub outputs: Vec<String>,
    /// Environment variables whose values enter the task hash.
    pub env: Vec<String>,
    pub depends_on: Vec<DependsOn>,
    /// `false` for tasks that must always run (never read nor written to the cache).
    pub cache: bool,
    /// Where `depends_on` was declared.
    pub depends_on_origin: TaskOrigin,
}

/// The name, dotted key and position of a `[...tasks.NAME]` table; `None` (with a problem
/// recorded) when the name is invalid.
pub(super) fn task_entry(
    source: &ManifestSource<'_>,
    prefix: &str,
    name: Spanned<String>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<(TaskName, String, Option<usize>)> {
    let key = format!("{prefix}.tasks.{}", name.get_ref());
    let offset = Some(name.span().start);
    let name = name.into_inner();
    if !is_valid_task_name(&name) {
        problems.push(source.problem(
            &key,
            offset,
            "task names use lowercase letters, digits, `-` and `_`, starting with a letter",
        ));
        return None;
    }
    Some((TaskName::new(name), key, offset))
}

pub(super) fn builtin_task(cargo: CargoTask) -> TaskDef {
    TaskDef {
        name: cargo.task_name(),
        kind: TaskKind::Cargo(cargo),
        inputs: Vec::new(),
        outputs: Vec::new(),
        env: Vec::new(),
        depends_on: Vec::new(),
        cache: true,
        depends_on_origin: TaskOrigin::Builtin,
    }
}

/// Where a `[...tasks.NAME]` table is, for locating its problems.
pub(super) struct TaskLocation<'a, 'text> {
    pub(super) origin: TaskOrigin,
    pub(super) source: &'a ManifestSource<'text>,
    pub(super) key: &'a str,
    pub(super) offset: Option<usize>,
    pub(super) name: &'a TaskName,
}

/// Builds a task definition from `raw` on top of `base` (a built-in or workspace definition).
pub(super) fn apply_task(
    location: TaskLocation<'_, '_>,
    base: Option<TaskDef>,
    raw: RawTask,
    problems: &mut Vec<ConfigProblem>,
) -> Option<TaskDef> {
    let TaskLocation {
        origin,
        source,
        key,
        offset,
        name,
    } = location;
    let before = problems.len();
    let mut def = match (base, raw.command) {
        (Some(base), None) => base,
        (
            Some(TaskDef {
                kind: TaskKind::Cargo(_),
                ..
            }),
            Some(_),
        ) => {
            problems.push(source.problem(
                format!("{key}.command"),
                offset,
                format!("`{name}` is a built-in cargo task; its command cannot be changed (define a custom task with another name)"),
            ));
            return None;
        }
        (base, Some(command)) => {
            let Some((program, args)) = command.split_first() else {
                problems.push(source.problem(
                    format!("{key}.command"),
                    offset,
                    "must name a program: [\"program\", \"arg\", ...]",
                ));
                return None;
            };
            if program.trim().is_empty() {
                problems.push(source.problem(
                    format!("{key}.command"),
                    offset,
                    "the program must not be empty",
                ));
            }
            let kind = TaskKind::Custom {
                program: program.clone(),
                args: args.to_vec(),
            };
            match base {
                Some(base) => TaskDef { kind, ..base },
                None => TaskDef {
                    name: name.clone(),
                    kind,
                    inputs: Vec::new(),
                    outputs: Vec::new(),
                    env: Vec::new(),
                    depends_on: Vec::new(),
                    cache: true,
                    depends_on_origin: origin,
                },
            }
        }
        (None, None) => {
            problems.push(source.problem(
                key,
                offset,
                format!(
                    "task `{name}` is not defined at the workspace level, so it needs a `command`"
                ),
            ));
            return None;
        }
    };
    if let Some(inputs) = raw.inputs {
        def.inputs = plain_globs(source, &format!("{key}.inputs"), offset, inputs, problems);
    }
    if let Some(outputs) = raw.outputs {
        for output in &outputs {
            if output.starts_with('/') || output.split('/').any(|c| c == "..") {
                problems.push(source.problem(
                    format!("{key}.outputs"),
                    offset,
                    format!("outputs stay inside the package: {output:?}"),
                ));
            }
        }
        def.outputs = plain_globs(source, &format!("{key}.outputs"), offset, outputs, problems);
    }
    if let Some(env) = raw.env {
        let spanned: Vec<Spanned<String>> =
            env.into_iter().map(|e| Spanned::new(0..0, e)).collect();
        def.env = validate_env_names(source, &format!("{key}.env"), &spanned, problems);
    }
    if let Some(depends_on) = raw.depends_on {
        def.depends_on_origin = origin;
        def.depends_on = depends_on
            .iter()
            .filter_map(|spec| match parse_depends_on(spec.get_ref()) {
                Ok(dep) => Some(dep),
                Err(message) => {
                    problems.push(source.problem(
                        format!("{key}.depends_on"),
                        Some(spec.span().start),
                        message,
                    ));
                    None
                }
            })
            .collect();
    }
    if let Some(cache) = raw.cache {
        def.cache = cache;
    }
    (problems.len() == before).then_some(def)
}

fn parse_depends_on(spec: &str) -> Result<DependsOn, String> {
    let check = |task: &str| {
        if is_valid_task_name(task) {
            Ok(TaskName::new(task))
        } else {
            Err(format!(
                "invalid dependency {spec:?}: expected `task`, `^task` or `package#task`"
            ))
        }
    };
    if let Some(task) = spec.strip_prefix('^') {
        return Ok(DependsOn::Upstream(check(task)?));
    }
    if let Some((package, task)) = spec.split_once('#') {
        if package.is_empty() {
            return Err(format!(
                "invalid dependency {spec:?}: the package name is empty"
            ));
        }
        return Ok(DependsOn::Package {
            package: package.to_string(),
            task: check(task)?,
        });
    }
    Ok(DependsOn::SamePackage(check(spec)?))
}

pub(crate) fn is_valid_task_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn plain_globs(
    source: &ManifestSource<'_>,
    key: &str,
    offset: Option<usize>,
    globs: Vec<String>,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<String> {
    for glob in &globs {
        let pattern = glob.strip_prefix('!').unwrap_or(glob);
        if let Err(error) = globset::Glob::new(pattern) {
            problems.push(source.problem(
                key,
                offset,
                format!("invalid glob {glob:?}: {}", error.kind()),
            ));
        }
    }
    globs
}

pub(super) fn compile_name_globs(
    source: &ManifestSource<'_>,
    key: &str,
    offset: Option<usize>,
    globs: &[String],
    problems: &mut Vec<ConfigProblem>,
) -> Option<globset::GlobSet> {
    let mut builder = globset::GlobSetBuilder::new();
    for glob in globs {
        match globset::Glob::new(glob) {
            Ok(g) => {
                builder.add(g);
            }
            Err(error) => {
                problems.push(source.problem(
                    format!("{key}.packages"),
                    offset,
                    format!("invalid glob {glob:?}: {}", error.kind()),
                ));
                return None;
            }
        }
    }
    builder.build().ok()
}

/// Does the workspace-level task apply to this package?
pub(crate) fn applies_to(filter: &Option<globset::GlobSet>, package: &str) -> bool {
    filter.as_ref().is_none_or(|set| set.is_match(package))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_CACHE_MAX_SIZE;
    use crate::config::tests::workspace;

    #[test]
    fn builtins_exist_without_configuration() {
        let (parsed, problems) = workspace("[workspace]\nmembers = []\n");
        assert!(problems.is_empty());
        assert_eq!(
            parsed.config.task_names,
            vec!["build", "fmt", "lint", "test"]
        );
        assert_eq!(
            parsed.config.cache.max_size_bytes,
            Some(DEFAULT_CACHE_MAX_SIZE)
        );
        assert_eq!(
            parsed.tasks["lint"].0.kind,
            TaskKind::Cargo(CargoTask::Lint)
        );
    }

    #[test]
    fn custom_task_is_parsed() {
        let (parsed, problems) = workspace(
            "[workspace.metadata.xtask.tasks.gen]\ncommand = [\"sh\", \"-c\", \"true\"]\noutputs = [\"out/**\"]\n\
             depends_on = [\"^gen\", \"build\", \"core#gen\"]\nenv = [\"MODE\"]\npackages = [\"c*\"]\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let (def, filter) = &parsed.tasks["gen"];
        assert_eq!(
            def.kind,
            TaskKind::Custom {
                program: "sh".into(),
                args: vec!["-c".into(), "true".into()]
            }
        );
        assert_eq!(
            def.depends_on,
            vec![
                DependsOn::Upstream("gen".into()),
                DependsOn::SamePackage("build".into()),
                DependsOn::Package {
                    package: "core".into(),
                    task: "gen".into()
                }
            ]
        );
        assert!(applies_to(filter, "core") && !applies_to(filter, "api"));
    }
}

//! The task graph: nodes are (package, task) pairs, edges come from `depends_on`
//! (`^task`, `task`, `package#task`). Also the package-level questions the CLI asks of the
//! dependency graph: reverse dependents and the packages affected by a set of changed files.
//!
//! Invariants: `xtask-graph` does no IO and runs no process; it is a pure function of the
//! [`Workspace`] model and the request. A cycle is an error that names every node of the cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use xtask_model::{
    CargoTask, DepKind, DependsOn, PackageIndex, TaskDef, TaskKind, TaskName, TaskOrigin, Workspace,
};

/// Index of a node in [`TaskGraph::nodes`].
pub type NodeIndex = usize;

#[derive(Debug, Clone)]
pub struct TaskNode {
    pub package: PackageIndex,
    pub task: TaskName,
    pub def: TaskDef,
    /// Nodes this one depends on, sorted.
    pub dependencies: Vec<NodeIndex>,
    /// Whether the user asked for this node (as opposed to it being pulled in as a dependency).
    pub requested: bool,
}

#[derive(Debug, Clone, Default)]
pub struct TaskGraph {
    pub nodes: Vec<TaskNode>,
    /// Every node after all its dependencies.
    pub topological_order: Vec<NodeIndex>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GraphError {
    #[error("unknown task `{task}`: defined tasks are {}", .known.iter().map(TaskName::as_str).collect::<Vec<_>>().join(", "))]
    UnknownTask {
        task: TaskName,
        known: Vec<TaskName>,
    },
    #[error("task cycle: {}\n  declared in:\n{}", .cycle.join(" -> "), .declared_in.iter().map(|d| format!("  - {d}")).collect::<Vec<_>>().join("\n"))]
    Cycle {
        cycle: Vec<String>,
        declared_in: Vec<String>,
    },
}

/// What to build the graph for.
#[derive(Debug, Clone)]
pub struct GraphRequest<'a> {
    pub tasks: &'a [TaskName],
    /// The packages the tasks are requested in (all packages when the user selected none).
    pub packages: &'a [PackageIndex],
}

impl TaskGraph {
    /// Expands the requested tasks in the requested packages and everything they depend on.
    pub fn build(
        workspace: &Workspace,
        request: &GraphRequest<'_>,
    ) -> Result<TaskGraph, GraphError> {
        for task in request.tasks {
            if !workspace.config.task_names.contains(task)
                && !workspace
                    .packages
                    .iter()
                    .any(|p| p.tasks.contains_key(task))
            {
                let mut known: BTreeSet<TaskName> =
                    workspace.config.task_names.iter().cloned().collect();
                known.extend(
                    workspace
                        .packages
                        .iter()
                        .flat_map(|p| p.tasks.keys().cloned()),
                );
                return Err(GraphError::UnknownTask {
                    task: task.clone(),
                    known: known.into_iter().collect(),
                });
            }
        }
        let mut graph = TaskGraph::default();
        let mut index: BTreeMap<(PackageIndex, TaskName), NodeIndex> = BTreeMap::new();
        let mut stack: Vec<NodeIndex> = Vec::new();
        for &package in request.packages {
            for task in request.tasks {
                if let Some(node) = graph.add(workspace, &mut index, package, task, true) {
                    stack.push(node);
                }
            }
        }
        while let Some(node) = stack.pop() {
            let package = graph.nodes[node].package;
            let mut dependencies = Vec::new();
            for dep in graph.nodes[node].def.depends_on.clone() {
                let targets: Vec<PackageIndex> = match &dep {
                    DependsOn::SamePackage(_) => vec![package],
                    DependsOn::Package { package: name, .. } => {
                        workspace.package_index(name).into_iter().collect()
                    }
                    DependsOn::Upstream(task) => upstream_packages(workspace, package, task),
                };
                for target in targets {
                    let existed = index.contains_key(&(target, dep.task().clone()));
                    if let Some(dep_node) =
                        graph.add(workspace, &mut index, target, dep.task(), false)
                    {
                        dependencies.push(dep_node);
                        if !existed {
                            stack.push(dep_node);
                        }
                    }
                }
            }
            dependencies.sort_unstable();
            dependencies.dedup();
            graph.nodes[node].dependencies = dependencies;
        }
        graph.topological_order = graph.topological_sort(workspace)?;
        Ok(graph)
    }

    fn add(
        &mut self,
        workspace: &Workspace,
        index: &mut BTreeMap<(PackageIndex, TaskName), NodeIndex>,
        package: PackageIndex,
        task: &TaskName,
        requested: bool,
    ) -> Option<NodeIndex> {
        if let Some(&node) = index.get(&(package, task.clone())) {
            self.nodes[node].requested |= requested;
            return Some(node);
        }
        let def = workspace.packages[package].tasks.get(task)?.clone();
        let node = self.nodes.len();
        self.nodes.push(TaskNode {
            package,
            task: task.clone(),
            def,
            dependencies: Vec::new(),
            requested,
        });
        index.insert((package, task.clone()), node);
        Some(node)
    }

    /// `package:task` of a node.
    pub fn label(&self, workspace: &Workspace, node: NodeIndex) -> String {
        format!(
            "{}:{}",
            workspace.packages[self.nodes[node].package].name, self.nodes[node].task
        )
    }

    /// The manifest and key where a node's `depends_on` comes from.
    fn declared_in(&self, workspace: &Workspace, node: NodeIndex) -> String {
        let n = &self.nodes[node];
        match n.def.depends_on_origin {
            TaskOrigin::Workspace => format!(
                "`{}`: `workspace.metadata.xtask.tasks.{}.depends_on`",
                workspace.manifest_path.display(),
                n.task
            ),
            TaskOrigin::Package => format!(
                "`{}`: `package.metadata.xtask.tasks.{}.depends_on`",
                workspace.packages[n.package].manifest_path.display(),
                n.task
            ),
            TaskOrigin::Builtin => format!("the built-in `{}` task", n.task),
        }
    }

    /// Builds the graph of every task in every package, so a cycle is an error for every
    /// command, not only for the ones that request a task on it. Cheap when no task declares
    /// `depends_on` (no cycle is possible then).
    pub fn validate(workspace: &Workspace) -> Result<(), GraphError> {
        let any_dependency = workspace
            .packages
            .iter()
            .any(|p| p.tasks.values().any(|d| !d.depends_on.is_empty()));
        if !any_dependency {
            return Ok(());
        }
        let packages: Vec<PackageIndex> = (0..workspace.packages.len()).collect();
        TaskGraph::build(
            workspace,
            &GraphRequest {
                tasks: &workspace.config.task_names,
                packages: &packages,
            },
        )
        .map(|_| ())
    }

    fn topological_sort(&self, workspace: &Workspace) -> Result<Vec<NodeIndex>, GraphError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let mut marks = vec![Mark::New; self.nodes.len()];
        let mut order = Vec::with_capacity(self.nodes.len());
        // Deterministic: visit roots in (package, task) order.
        let mut roots: Vec<NodeIndex> = (0..self.nodes.len()).collect();
        roots.sort_by(|&a, &b| {
            (self.nodes[a].package, &self.nodes[a].task)
                .cmp(&(self.nodes[b].package, &self.nodes[b].task))
        });
        for root in roots {
            if marks[root] != Mark::New {
                continue;
            }
            // Iterative DFS with an explicit path, so deep graphs do not overflow the stack.
            let mut path: Vec<(NodeIndex, usize)> = vec![(root, 0)];
            marks[root] = Mark::Active;
            while let Some(&mut (node, ref mut next)) = path.last_mut() {
                if let Some(&dep) = self.nodes[node].dependencies.get(*next) {
                    *next += 1;
                    match marks[dep] {
                        Mark::Done => {}
                        Mark::Active => {
                            let start = path.iter().position(|&(n, _)| n == dep).unwrap_or(0);
                            let nodes: Vec<NodeIndex> =
                                path[start..].iter().map(|&(n, _)| n).collect();
                            let mut cycle: Vec<String> =
                                nodes.iter().map(|&n| self.label(workspace, n)).collect();
                            cycle.push(self.label(workspace, dep));
                            let mut declared_in: Vec<String> = nodes
                                .iter()
                                .map(|&n| self.declared_in(workspace, n))
                                .collect();
                            declared_in.sort();
                            declared_in.dedup();
                            return Err(GraphError::Cycle { cycle, declared_in });
                        }
                        Mark::New => {
                            marks[dep] = Mark::Active;
                            path.push((dep, 0));
                        }
                    }
                } else {
                    marks[node] = Mark::Done;
                    order.push(node);
                    path.pop();
                }
            }
        }
        Ok(order)
    }

    /// Nodes that depend on each node (reverse edges).
    pub fn dependents(&self) -> Vec<Vec<NodeIndex>> {
        let mut dependents = vec![Vec::new(); self.nodes.len()];
        for (node, n) in self.nodes.iter().enumerate() {
            for &dep in &n.dependencies {
                dependents[dep].push(node);
            }
        }
        dependents
    }
}

/// Which edge kinds `^task` follows: the built-in `build` follows normal and build
/// dependencies (dev-dependencies do not take part in `cargo build`); every other task follows
/// all three kinds, as Turborepo's `^` follows dependencies and devDependencies.
pub fn upstream_kinds(task: &TaskDef) -> &'static [DepKind] {
    match task.kind {
        TaskKind::Cargo(CargoTask::Build) => &[DepKind::Normal, DepKind::Build],
        _ => &[DepKind::Normal, DepKind::Build, DepKind::Dev],
    }
}

fn upstream_packages(
    workspace: &Workspace,
    package: PackageIndex,
    task: &TaskName,
) -> Vec<PackageIndex> {
    let kinds: &[DepKind] = match workspace.packages[package].tasks.get(task) {
        Some(def) => upstream_kinds(def),
        None => &[DepKind::Normal, DepKind::Build, DepKind::Dev],
    };
    let mut out: Vec<PackageIndex> = workspace.packages[package]
        .dependencies
        .iter()
        .filter(|e| kinds.contains(&e.kind) && e.to != package)
        .map(|e| e.to)
        .collect();
    out.dedup();
    out
}

/// The workspace dependencies of `package`, transitively, following `kinds` on the first hop
/// and normal+build edges after it (a dependency's dev-dependencies never reach its dependents).
pub fn dependency_closure(
    workspace: &Workspace,
    package: PackageIndex,
    first_hop: &[DepKind],
) -> BTreeSet<PackageIndex> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<PackageIndex> = workspace.packages[package]
        .dependencies
        .iter()
        .filter(|e| first_hop.contains(&e.kind))
        .map(|e| e.to)
        .collect();
    while let Some(p) = stack.pop() {
        if p == package || !seen.insert(p) {
            continue;
        }
        stack.extend(
            workspace.packages[p]
                .dependencies
                .iter()
                .filter(|e| e.kind != DepKind::Dev)
                .map(|e| e.to),
        );
    }
    seen
}

/// Packages that depend on each package (any edge kind), for `affected`.
pub fn reverse_dependencies(workspace: &Workspace) -> Vec<Vec<PackageIndex>> {
    let mut reverse = vec![Vec::new(); workspace.packages.len()];
    for (from, package) in workspace.packages.iter().enumerate() {
        for edge in &package.dependencies {
            if !reverse[edge.to].contains(&from) {
                reverse[edge.to].push(from);
            }
        }
    }
    reverse
}

/// Why a package is affected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AffectedReason {
    /// A file of the package changed.
    Changed { file: String },
    /// A workspace dependency is affected.
    Dependency { package: String },
    /// A global input (root manifest, toolchain, cargo config) changed.
    Global { file: String },
}

impl fmt::Display for AffectedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AffectedReason::Changed { file } => write!(f, "changed: {file}"),
            AffectedReason::Dependency { package } => write!(f, "depends on {package}"),
            AffectedReason::Global { file } => write!(f, "global input changed: {file}"),
        }
    }
}

/// Packages touched by `changed_files` (workspace-relative) and every package that depends on
/// them, each with the first reason found. `is_global` says whether a file affects everything.
pub fn affected_packages(
    workspace: &Workspace,
    changed_files: &[String],
    is_global: impl Fn(&str) -> bool,
) -> BTreeMap<PackageIndex, AffectedReason> {
    let mut affected = BTreeMap::new();
    if let Some(file) = changed_files.iter().find(|f| is_global(f)) {
        for package in 0..workspace.packages.len() {
            affected.insert(package, AffectedReason::Global { file: file.clone() });
        }
        return affected;
    }
    let mut queue = Vec::new();
    for file in changed_files {
        if let Some(package) = workspace.package_of_path(file)
            && !affected.contains_key(&package)
        {
            affected.insert(package, AffectedReason::Changed { file: file.clone() });
            queue.push(package);
        }
    }
    let reverse = reverse_dependencies(workspace);
    while let Some(package) = queue.pop() {
        for &dependent in &reverse[package] {
            if let std::collections::btree_map::Entry::Vacant(entry) = affected.entry(dependent) {
                entry.insert(AffectedReason::Dependency {
                    package: workspace.packages[package].name.clone(),
                });
                queue.push(dependent);
            }
        }
    }
    affected
}

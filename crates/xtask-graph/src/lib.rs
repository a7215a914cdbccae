//! The task graph: nodes are (package, task) pairs, edges come from `depends_on`
//! (`^task`, `task`, `package#task`). Also the package-level questions the CLI asks of the
//! dependency graph: reverse dependents and the packages affected by a set of changed files.
//!
//! Invariants: `xtask-graph` does no IO and runs no process; it is a pure function of the
//! [`Workspace`] model and the request. A cycle is an error that names every node of the cycle.

pub mod shard;

pub use shard::{Shard, ShardError, WeightedPackage, partition};

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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use xtask_model::{
        BUILTIN_TASKS, CacheConfig, CiConfig, Edge, Package, ReleaseConfig, WorkspaceConfig,
    };

    use super::*;

    /// A workspace built in memory (nothing is read): members `crates/<name>` with the
    /// built-in tasks, the workspace's custom tasks and their own; packages are sorted by
    /// name, as the model sorts them.
    #[derive(Default)]
    struct TestWorkspace {
        packages: Vec<TestPackage>,
        workspace_tasks: Vec<TaskDef>,
    }

    struct TestPackage {
        name: &'static str,
        dependencies: Vec<(&'static str, DepKind)>,
        tasks: Vec<TaskDef>,
    }

    impl TestWorkspace {
        /// A member depending on `dependencies` (other members, by name).
        fn package(mut self, name: &'static str, dependencies: &[(&'static str, DepKind)]) -> Self {
            self.packages.push(TestPackage {
                name,
                dependencies: dependencies.to_vec(),
                tasks: Vec::new(),
            });
            self
        }

        /// `[workspace.metadata.xtask.tasks.NAME] depends_on = [...]`, in every member: a
        /// custom task, or a built-in one given dependencies.
        fn workspace_task(mut self, name: &str, depends_on: &[&str]) -> Self {
            self.workspace_tasks
                .push(task(name, depends_on, TaskOrigin::Workspace));
            self
        }

        /// `[package.metadata.xtask.tasks.NAME]` of the member added last only.
        fn package_task(mut self, name: &str, depends_on: &[&str]) -> Self {
            let def = task(name, depends_on, TaskOrigin::Package);
            self.packages
                .last_mut()
                .expect("a package_task follows its package")
                .tasks
                .push(def);
            self
        }

        fn build(mut self) -> Workspace {
            self.packages.sort_by_key(|p| p.name);
            let root = PathBuf::from("/ws");
            let index = |name: &str| {
                self.packages
                    .iter()
                    .position(|p| p.name == name)
                    .unwrap_or_else(|| panic!("no test package `{name}`"))
            };
            let packages = self
                .packages
                .iter()
                .map(|p| {
                    let mut dependencies: Vec<Edge> = p
                        .dependencies
                        .iter()
                        .map(|&(to, kind)| Edge {
                            to: index(to),
                            kind,
                            platform: None,
                        })
                        .collect();
                    dependencies.sort();
                    let mut tasks: BTreeMap<TaskName, TaskDef> = BUILTIN_TASKS
                        .iter()
                        .map(|name| (name.clone(), task(name.as_str(), &[], TaskOrigin::Builtin)))
                        .collect();
                    for def in self.workspace_tasks.iter().chain(&p.tasks) {
                        tasks.insert(def.name.clone(), def.clone());
                    }
                    let dir = root.join("crates").join(p.name);
                    Package {
                        name: p.name.to_string(),
                        version: "0.1.0".into(),
                        id: format!("path+file:///ws/crates/{}#0.1.0", p.name),
                        manifest_path: dir.join("Cargo.toml"),
                        dir,
                        relative_dir: format!("crates/{}", p.name),
                        edition: "2024".into(),
                        publish: false,
                        targets: Vec::new(),
                        features: BTreeMap::new(),
                        dependencies,
                        tasks,
                        app: None,
                    }
                })
                .collect();
            let mut task_names: Vec<TaskName> = BUILTIN_TASKS.to_vec();
            task_names.extend(self.workspace_tasks.iter().map(|d| d.name.clone()));
            task_names.sort();
            task_names.dedup();
            Workspace {
                manifest_path: root.join("Cargo.toml"),
                target_dir: root.join("target"),
                root,
                packages,
                config: WorkspaceConfig {
                    global_inputs: Vec::new(),
                    env: Vec::new(),
                    cache: CacheConfig::default(),
                    task_names,
                    release: ReleaseConfig::default(),
                    deploy: None,
                    ci: CiConfig::default(),
                },
            }
        }
    }

    /// A task definition; `depends_on` as written in a manifest (`^task`, `task`, `pkg#task`).
    fn task(name: &str, depends_on: &[&str], origin: TaskOrigin) -> TaskDef {
        let kind = match CargoTask::from_name(name) {
            Some(cargo) => TaskKind::Cargo(cargo),
            None => TaskKind::Custom {
                program: "true".into(),
                args: Vec::new(),
            },
        };
        let depends_on = depends_on
            .iter()
            .map(|dep| match (dep.strip_prefix('^'), dep.split_once('#')) {
                (Some(task), _) => DependsOn::Upstream(TaskName::new(task)),
                (None, Some((package, task))) => DependsOn::Package {
                    package: package.into(),
                    task: TaskName::new(task),
                },
                (None, None) => DependsOn::SamePackage(TaskName::new(*dep)),
            })
            .collect();
        TaskDef {
            name: TaskName::new(name),
            kind,
            inputs: Vec::new(),
            outputs: Vec::new(),
            env: Vec::new(),
            depends_on,
            cache: true,
            depends_on_origin: origin,
        }
    }

    fn build_graph(workspace: &Workspace, tasks: &[&str], packages: &[&str]) -> TaskGraph {
        try_build_graph(workspace, tasks, packages).expect("the graph builds")
    }

    fn try_build_graph(
        workspace: &Workspace,
        tasks: &[&str],
        packages: &[&str],
    ) -> Result<TaskGraph, GraphError> {
        let tasks: Vec<TaskName> = tasks.iter().map(|t| TaskName::new(*t)).collect();
        let packages: Vec<PackageIndex> = packages
            .iter()
            .map(|p| workspace.package_index(p).expect("a test package"))
            .collect();
        TaskGraph::build(
            workspace,
            &GraphRequest {
                tasks: &tasks,
                packages: &packages,
            },
        )
    }

    /// `package:task` of every node, in topological order.
    fn order(workspace: &Workspace, graph: &TaskGraph) -> Vec<String> {
        graph
            .topological_order
            .iter()
            .map(|&node| graph.label(workspace, node))
            .collect()
    }

    /// `package:task` of what `label` depends on.
    fn dependencies_of(workspace: &Workspace, graph: &TaskGraph, label: &str) -> Vec<String> {
        let node = (0..graph.nodes.len())
            .find(|&n| graph.label(workspace, n) == label)
            .unwrap_or_else(|| panic!("no node `{label}`"));
        graph.nodes[node]
            .dependencies
            .iter()
            .map(|&d| graph.label(workspace, d))
            .collect()
    }

    fn requested(workspace: &Workspace, graph: &TaskGraph) -> Vec<(String, bool)> {
        (0..graph.nodes.len())
            .map(|n| (graph.label(workspace, n), graph.nodes[n].requested))
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect()
    }

    fn names(workspace: &Workspace, packages: impl IntoIterator<Item = PackageIndex>) -> Vec<&str> {
        packages
            .into_iter()
            .map(|p| workspace.packages[p].name.as_str())
            .collect()
    }

    /// app -> lib -> core (normal edges), `gen` depends on `^gen`.
    fn chain() -> Workspace {
        TestWorkspace::default()
            .package("app", &[("lib", DepKind::Normal)])
            .package("lib", &[("core", DepKind::Normal)])
            .package("core", &[])
            .workspace_task("gen", &["^gen"])
            .build()
    }

    #[test]
    fn upstream_dependencies_come_first_in_topological_order() {
        let workspace = chain();
        let graph = build_graph(&workspace, &["gen"], &["app", "core", "lib"]);
        assert_eq!(
            order(&workspace, &graph),
            ["core:gen", "lib:gen", "app:gen"]
        );
        // `^gen` is the direct dependencies' `gen`; the rest comes through them.
        assert_eq!(dependencies_of(&workspace, &graph, "app:gen"), ["lib:gen"]);
        assert_eq!(dependencies_of(&workspace, &graph, "lib:gen"), ["core:gen"]);
        assert!(dependencies_of(&workspace, &graph, "core:gen").is_empty());
        let dependents = graph.dependents();
        let core = (0..graph.nodes.len())
            .find(|&n| graph.label(&workspace, n) == "core:gen")
            .unwrap();
        assert_eq!(
            names(
                &workspace,
                dependents[core].iter().map(|&n| graph.nodes[n].package)
            ),
            ["lib"]
        );
    }

    #[test]
    fn a_task_asked_for_in_one_package_pulls_in_what_it_depends_on() {
        let workspace = chain();
        let graph = build_graph(&workspace, &["gen"], &["app"]);
        assert_eq!(
            order(&workspace, &graph),
            ["core:gen", "lib:gen", "app:gen"]
        );
        assert_eq!(
            requested(&workspace, &graph),
            [
                ("app:gen".to_string(), true),
                ("core:gen".to_string(), false),
                ("lib:gen".to_string(), false)
            ]
        );
        // Asked for in `lib` too: requested, and still one node.
        let graph = build_graph(&workspace, &["gen"], &["app", "lib"]);
        assert_eq!(graph.nodes.len(), 3);
        assert_eq!(
            requested(&workspace, &graph),
            [
                ("app:gen".to_string(), true),
                ("core:gen".to_string(), false),
                ("lib:gen".to_string(), true)
            ]
        );
    }

    #[test]
    fn upstream_build_skips_dev_dependencies_and_custom_tasks_follow_them() {
        let workspace = TestWorkspace::default()
            .package(
                "app",
                &[
                    ("lib", DepKind::Normal),
                    ("codegen", DepKind::Build),
                    ("testutil", DepKind::Dev),
                ],
            )
            .package("lib", &[])
            .package("codegen", &[])
            .package("testutil", &[])
            .workspace_task("build", &["^build"])
            .workspace_task("check", &["^check"])
            .build();
        let build = build_graph(&workspace, &["build"], &["app"]);
        assert_eq!(
            dependencies_of(&workspace, &build, "app:build"),
            ["codegen:build", "lib:build"]
        );
        let check = build_graph(&workspace, &["check"], &["app"]);
        assert_eq!(
            dependencies_of(&workspace, &check, "app:check"),
            ["codegen:check", "lib:check", "testutil:check"]
        );
    }

    #[test]
    fn same_package_and_named_package_dependencies() {
        let workspace = TestWorkspace::default()
            .package("app", &[])
            .package_task("bundle", &["build", "assets#gen"])
            .package("assets", &[])
            .workspace_task("gen", &[])
            .build();
        let graph = build_graph(&workspace, &["bundle"], &["app", "assets"]);
        // `assets` has no `bundle`: only app's node is requested.
        assert_eq!(
            requested(&workspace, &graph),
            [
                ("app:build".to_string(), false),
                ("app:bundle".to_string(), true),
                ("assets:gen".to_string(), false)
            ]
        );
        assert_eq!(
            dependencies_of(&workspace, &graph, "app:bundle"),
            ["app:build", "assets:gen"]
        );
        let order = order(&workspace, &graph);
        assert_eq!(order.last().map(String::as_str), Some("app:bundle"));
    }

    #[test]
    fn every_node_comes_after_its_dependencies() {
        let workspace = TestWorkspace::default()
            .package("a", &[("b", DepKind::Normal), ("c", DepKind::Normal)])
            .package("b", &[("d", DepKind::Normal)])
            .package("c", &[("d", DepKind::Build)])
            .package("d", &[])
            .workspace_task("gen", &["^gen", "build"])
            .workspace_task("build", &["^build"])
            .build();
        let graph = build_graph(&workspace, &["gen"], &["a", "b", "c", "d"]);
        assert_eq!(graph.nodes.len(), 8);
        let position: BTreeMap<NodeIndex, usize> = graph
            .topological_order
            .iter()
            .enumerate()
            .map(|(at, &node)| (node, at))
            .collect();
        assert_eq!(position.len(), graph.nodes.len(), "every node once");
        for (node, n) in graph.nodes.iter().enumerate() {
            for dep in &n.dependencies {
                assert!(
                    position[dep] < position[&node],
                    "{} before {}",
                    graph.label(&workspace, *dep),
                    graph.label(&workspace, node)
                );
            }
        }
    }

    #[test]
    fn a_cycle_names_every_node_on_it_and_where_it_is_declared() {
        let workspace = TestWorkspace::default()
            .package("app", &[])
            .workspace_task("a", &["b"])
            .workspace_task("b", &["a"])
            .build();
        let error = try_build_graph(&workspace, &["a"], &["app"]).unwrap_err();
        assert_eq!(
            error,
            GraphError::Cycle {
                cycle: vec!["app:a".into(), "app:b".into(), "app:a".into()],
                declared_in: vec![
                    "`/ws/Cargo.toml`: `workspace.metadata.xtask.tasks.a.depends_on`".into(),
                    "`/ws/Cargo.toml`: `workspace.metadata.xtask.tasks.b.depends_on`".into(),
                ],
            }
        );
        assert_eq!(
            error.to_string(),
            "task cycle: app:a -> app:b -> app:a\n  declared in:\n  \
             - `/ws/Cargo.toml`: `workspace.metadata.xtask.tasks.a.depends_on`\n  \
             - `/ws/Cargo.toml`: `workspace.metadata.xtask.tasks.b.depends_on`"
        );
        // Found for every command, whatever it asks for.
        assert_eq!(TaskGraph::validate(&workspace), Err(error));
    }

    #[test]
    fn a_cycle_across_packages_names_the_package_manifest() {
        let workspace = TestWorkspace::default()
            .package("app", &[("lib", DepKind::Normal)])
            .package("lib", &[])
            .package_task("gen", &["app#gen"])
            .workspace_task("gen", &["^gen"])
            .build();
        let Err(GraphError::Cycle { cycle, declared_in }) =
            try_build_graph(&workspace, &["gen"], &["app"])
        else {
            panic!("expected a cycle");
        };
        assert_eq!(cycle, ["app:gen", "lib:gen", "app:gen"]);
        assert_eq!(
            declared_in,
            [
                "`/ws/Cargo.toml`: `workspace.metadata.xtask.tasks.gen.depends_on`",
                "`/ws/crates/lib/Cargo.toml`: `package.metadata.xtask.tasks.gen.depends_on`",
            ]
        );
    }

    #[test]
    fn a_task_that_depends_on_itself_is_a_cycle() {
        let workspace = TestWorkspace::default()
            .package("app", &[])
            .workspace_task("gen", &["gen"])
            .build();
        let error = try_build_graph(&workspace, &["gen"], &["app"]).unwrap_err();
        assert!(
            matches!(&error, GraphError::Cycle { cycle, .. } if cycle == &["app:gen", "app:gen"]),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_task_lists_the_defined_ones() {
        let workspace = TestWorkspace::default()
            .package("app", &[])
            .package_task("bundle", &[])
            .workspace_task("gen", &[])
            .build();
        let error = try_build_graph(&workspace, &["nope"], &["app"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown task `nope`: defined tasks are build, bundle, fmt, gen, lint, test"
        );
        // A task only one package defines is known.
        assert!(try_build_graph(&workspace, &["bundle"], &["app"]).is_ok());
        // Without any `depends_on` there is nothing to validate.
        assert_eq!(TaskGraph::validate(&workspace), Ok(()));
    }

    /// app -normal-> lib -normal-> core, app -build-> codegen, app -dev-> fixtures -normal->
    /// data, lib -dev-> testutil, testutil -dev-> lib (a cycle cargo allows through dev edges).
    fn layered() -> Workspace {
        TestWorkspace::default()
            .package(
                "app",
                &[
                    ("lib", DepKind::Normal),
                    ("codegen", DepKind::Build),
                    ("fixtures", DepKind::Dev),
                ],
            )
            .package(
                "lib",
                &[("core", DepKind::Normal), ("testutil", DepKind::Dev)],
            )
            .package("core", &[])
            .package("codegen", &[])
            .package("fixtures", &[("data", DepKind::Normal)])
            .package("data", &[])
            .package("testutil", &[("lib", DepKind::Dev)])
            .build()
    }

    #[test]
    fn the_dependency_closure_follows_dev_edges_on_the_first_hop_only() {
        let workspace = layered();
        let app = workspace.package_index("app").unwrap();
        let build = dependency_closure(&workspace, app, &[DepKind::Normal, DepKind::Build]);
        assert_eq!(names(&workspace, build), ["codegen", "core", "lib"]);
        let test = dependency_closure(
            &workspace,
            app,
            &[DepKind::Normal, DepKind::Build, DepKind::Dev],
        );
        assert_eq!(
            names(&workspace, test),
            ["codegen", "core", "data", "fixtures", "lib"]
        );
        // A package is never in its own closure, even through a dev-dependency cycle.
        let lib = workspace.package_index("lib").unwrap();
        let lib_test = dependency_closure(
            &workspace,
            lib,
            &[DepKind::Normal, DepKind::Build, DepKind::Dev],
        );
        assert_eq!(names(&workspace, lib_test), ["core", "testutil"]);
    }

    fn affected(workspace: &Workspace, files: &[&str]) -> Vec<(String, String)> {
        let files: Vec<String> = files.iter().map(|f| f.to_string()).collect();
        affected_packages(workspace, &files, |file| file == "Cargo.lock")
            .into_iter()
            .map(|(p, reason)| (workspace.packages[p].name.clone(), reason.to_string()))
            .collect()
    }

    #[test]
    fn a_changed_file_affects_its_package_and_every_dependent() {
        let workspace = layered();
        assert_eq!(
            affected(&workspace, &["crates/core/src/lib.rs"]),
            [
                ("app".to_string(), "depends on lib".to_string()),
                (
                    "core".to_string(),
                    "changed: crates/core/src/lib.rs".to_string()
                ),
                ("lib".to_string(), "depends on core".to_string()),
                ("testutil".to_string(), "depends on lib".to_string()),
            ]
        );
        // Dev-dependents are affected too; the first changed file of a package is its reason.
        assert_eq!(
            affected(&workspace, &["crates/data/a.txt", "crates/data/b.txt"]),
            [
                ("app".to_string(), "depends on fixtures".to_string()),
                ("data".to_string(), "changed: crates/data/a.txt".to_string()),
                ("fixtures".to_string(), "depends on data".to_string()),
            ]
        );
        // Outside every package: nothing.
        assert!(affected(&workspace, &["README.md", "crates/datalog/x"]).is_empty());
    }

    #[test]
    fn a_global_input_affects_every_package() {
        let workspace = layered();
        let all = affected(&workspace, &["crates/core/src/lib.rs", "Cargo.lock"]);
        assert_eq!(all.len(), workspace.packages.len());
        assert!(
            all.iter()
                .all(|(_, reason)| reason == "global input changed: Cargo.lock"),
            "{all:?}"
        );
        assert_eq!(
            reverse_dependencies(&workspace)[workspace.package_index("lib").unwrap()]
                .iter()
                .map(|&p| workspace.packages[p].name.as_str())
                .collect::<BTreeSet<_>>(),
            BTreeSet::from(["app", "testutil"])
        );
    }
}

//! The scheduler: a pure state machine over the task graph. It knows which tasks are pending,
//! running or done, and answers "what can start now?"; it runs nothing and prints nothing.
//!
//! Rules:
//! - a task whose dependency failed or was skipped is skipped, and so on down the graph;
//! - a custom task starts once all its dependencies are done, at most `max_custom` at a time;
//! - cargo tasks of one built-in task (build, test, ...) start together as one batch, once no
//!   custom task they depend on is still to run (cargo orders the cargo tasks among
//!   themselves); one batch runs at a time, built-in tasks in their declared order.

use xtask_model::CargoTask;

use crate::report::TaskStatus;

pub(crate) type Node = usize;

/// What the scheduler needs to know of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Custom,
    Cargo(CargoTask),
}

/// Work the scheduler hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Work {
    /// These cargo tasks of `task`, in one cargo invocation.
    Batch {
        task: CargoTask,
        nodes: Vec<Node>,
    },
    Custom(Node),
}

/// The result of one [`Scheduler::next`]: tasks newly skipped, and work to start.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Step {
    pub skipped: Vec<Node>,
    pub start: Vec<Work>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Running,
    Done(TaskStatus),
}

pub(crate) struct Scheduler {
    dependencies: Vec<Vec<Node>>,
    kinds: Vec<Kind>,
    /// Dependencies first.
    order: Vec<Node>,
    state: Vec<State>,
    batch_running: bool,
    running_custom: usize,
    max_custom: usize,
}

impl Scheduler {
    /// `order` lists every node, dependencies first.
    pub fn new(
        dependencies: Vec<Vec<Node>>,
        kinds: Vec<Kind>,
        order: Vec<Node>,
        max_custom: usize,
    ) -> Scheduler {
        let n = kinds.len();
        Scheduler {
            dependencies,
            kinds,
            order,
            state: vec![State::Pending; n],
            batch_running: false,
            running_custom: 0,
            max_custom: max_custom.max(1),
        }
    }

    pub fn from_graph(graph: &xtask_graph::TaskGraph, max_custom: usize) -> Scheduler {
        let kinds = graph
            .nodes
            .iter()
            .map(|node| match node.def.kind {
                xtask_model::TaskKind::Cargo(task) => Kind::Cargo(task),
                xtask_model::TaskKind::Custom { .. } => Kind::Custom,
            })
            .collect();
        let dependencies = graph
            .nodes
            .iter()
            .map(|node| node.dependencies.clone())
            .collect();
        Scheduler::new(
            dependencies,
            kinds,
            graph.topological_order.clone(),
            max_custom,
        )
    }

    /// A task finished before scheduling started (a cache hit).
    pub fn already_done(&mut self, node: Node, status: TaskStatus) {
        self.state[node] = State::Done(status);
    }

    /// Skips what can no longer run and hands out what can start now.
    pub fn next(&mut self) -> Step {
        let mut step = Step::default();
        let mut ready_custom = Vec::new();
        let mut ready_cargo: Option<(usize, CargoTask, Vec<Node>)> = None;
        for i in 0..self.order.len() {
            let node = self.order[i];
            if self.state[node] != State::Pending {
                continue;
            }
            if self.blocked(node) {
                self.state[node] = State::Done(TaskStatus::Skipped);
                step.skipped.push(node);
                continue;
            }
            match self.kinds[node] {
                Kind::Custom if self.dependencies_done(node) => ready_custom.push(node),
                Kind::Custom => {}
                Kind::Cargo(task) if !self.waits_for_custom(node) => {
                    let rank = batch_rank(task);
                    match &mut ready_cargo {
                        Some((best, _, nodes)) if *best == rank => nodes.push(node),
                        Some((best, _, _)) if *best < rank => {}
                        _ => ready_cargo = Some((rank, task, vec![node])),
                    }
                }
                Kind::Cargo(_) => {}
            }
        }
        if !self.batch_running
            && let Some((_, task, nodes)) = ready_cargo
        {
            for &node in &nodes {
                self.state[node] = State::Running;
            }
            self.batch_running = true;
            step.start.push(Work::Batch { task, nodes });
        }
        for node in ready_custom {
            if self.running_custom >= self.max_custom {
                break;
            }
            self.state[node] = State::Running;
            self.running_custom += 1;
            step.start.push(Work::Custom(node));
        }
        step
    }

    /// A custom task ended.
    pub fn custom_finished(&mut self, node: Node, status: TaskStatus) {
        self.running_custom -= 1;
        self.state[node] = State::Done(status);
    }

    /// The running batch ended; each of its tasks with its status.
    pub fn batch_finished(&mut self, outcomes: &[(Node, TaskStatus)]) {
        self.batch_running = false;
        for &(node, status) in outcomes {
            self.state[node] = State::Done(status);
        }
    }

    /// Nothing is running: after a [`Scheduler::next`] that started nothing, the run is over.
    pub fn idle(&self) -> bool {
        self.running_custom == 0 && !self.batch_running
    }

    fn blocked(&self, node: Node) -> bool {
        self.dependencies[node].iter().any(|&d| {
            matches!(
                self.state[d],
                State::Done(TaskStatus::Failed | TaskStatus::Skipped)
            )
        })
    }

    fn dependencies_done(&self, node: Node) -> bool {
        self.dependencies[node]
            .iter()
            .all(|&d| matches!(self.state[d], State::Done(_)))
    }

    fn waits_for_custom(&self, node: Node) -> bool {
        self.dependencies[node]
            .iter()
            .any(|&d| !matches!(self.state[d], State::Done(_)) && self.kinds[d] == Kind::Custom)
    }
}

/// Batches of built-in tasks run in their declared order (build before test ...).
fn batch_rank(task: CargoTask) -> usize {
    xtask_model::BUILTIN_TASKS
        .iter()
        .position(|t| *t == task.name())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: TaskStatus = TaskStatus::Miss;
    const FAILED: TaskStatus = TaskStatus::Failed;

    fn scheduler(edges: &[(Node, Node)], kinds: &[Kind], max_custom: usize) -> Scheduler {
        let mut dependencies = vec![Vec::new(); kinds.len()];
        for &(from, to) in edges {
            dependencies[from].push(to);
        }
        // The tests list nodes dependencies first.
        let order = (0..kinds.len()).collect();
        Scheduler::new(dependencies, kinds.to_vec(), order, max_custom)
    }

    const BUILD: Kind = Kind::Cargo(CargoTask::Build);
    const TEST: Kind = Kind::Cargo(CargoTask::Test);
    const CUSTOM: Kind = Kind::Custom;

    #[test]
    fn cargo_tasks_of_one_kind_start_as_one_batch_without_waiting_for_each_other() {
        // 1 depends on 0, both builds: cargo orders them inside one invocation.
        let mut s = scheduler(&[(1, 0)], &[BUILD, BUILD], 4);
        let step = s.next();
        assert_eq!(
            step.start,
            vec![Work::Batch {
                task: CargoTask::Build,
                nodes: vec![0, 1]
            }]
        );
        assert!(!s.idle());
        s.batch_finished(&[(0, OK), (1, OK)]);
        assert_eq!(s.next(), Step::default());
        assert!(s.idle());
    }

    #[test]
    fn one_batch_at_a_time_in_builtin_order() {
        let mut s = scheduler(&[], &[TEST, BUILD], 4);
        let first = s.next();
        assert_eq!(
            first.start,
            vec![Work::Batch {
                task: CargoTask::Build,
                nodes: vec![1]
            }]
        );
        // The test batch waits while the build batch runs.
        assert_eq!(s.next(), Step::default());
        s.batch_finished(&[(1, OK)]);
        assert_eq!(
            s.next().start,
            vec![Work::Batch {
                task: CargoTask::Test,
                nodes: vec![0]
            }]
        );
    }

    #[test]
    fn a_cargo_task_waits_for_the_custom_tasks_it_depends_on() {
        // 1 (build) depends on 0 (codegen).
        let mut s = scheduler(&[(1, 0)], &[CUSTOM, BUILD], 4);
        assert_eq!(s.next().start, vec![Work::Custom(0)]);
        assert_eq!(s.next(), Step::default());
        s.custom_finished(0, OK);
        assert_eq!(
            s.next().start,
            vec![Work::Batch {
                task: CargoTask::Build,
                nodes: vec![1]
            }]
        );
    }

    #[test]
    fn a_custom_task_waits_for_every_dependency_including_cargo_ones() {
        let mut s = scheduler(&[(1, 0)], &[BUILD, CUSTOM], 4);
        assert_eq!(
            s.next().start,
            vec![Work::Batch {
                task: CargoTask::Build,
                nodes: vec![0]
            }]
        );
        s.batch_finished(&[(0, OK)]);
        assert_eq!(s.next().start, vec![Work::Custom(1)]);
    }

    #[test]
    fn dependents_of_a_failure_are_skipped_transitively_and_others_go_on() {
        // 1 -> 0, 2 -> 1, 3 independent.
        let mut s = scheduler(&[(1, 0), (2, 1)], &[CUSTOM, CUSTOM, CUSTOM, CUSTOM], 4);
        assert_eq!(s.next().start, vec![Work::Custom(0), Work::Custom(3)]);
        s.custom_finished(0, FAILED);
        s.custom_finished(3, OK);
        let step = s.next();
        assert_eq!(step.skipped, vec![1, 2]);
        assert!(step.start.is_empty());
        assert!(s.idle());
    }

    #[test]
    fn dependents_of_a_failed_batch_task_are_skipped() {
        let mut s = scheduler(&[(2, 0)], &[BUILD, BUILD, CUSTOM], 4);
        s.next();
        s.batch_finished(&[(0, FAILED), (1, OK)]);
        assert_eq!(s.next().skipped, vec![2]);
    }

    #[test]
    fn custom_tasks_are_bounded_by_max_custom() {
        let mut s = scheduler(&[], &[CUSTOM, CUSTOM, CUSTOM], 2);
        assert_eq!(s.next().start, vec![Work::Custom(0), Work::Custom(1)]);
        assert_eq!(s.next(), Step::default());
        s.custom_finished(1, OK);
        assert_eq!(s.next().start, vec![Work::Custom(2)]);
    }

    #[test]
    fn hits_count_as_done_and_a_skipped_hit_dependency_is_impossible() {
        let mut s = scheduler(&[(1, 0)], &[CUSTOM, CUSTOM], 4);
        s.already_done(0, TaskStatus::Hit);
        assert_eq!(s.next().start, vec![Work::Custom(1)]);
    }

    #[test]
    fn a_graph_of_hits_only_is_idle_at_once() {
        let mut s = scheduler(&[(1, 0)], &[BUILD, CUSTOM], 4);
        s.already_done(0, TaskStatus::Hit);
        s.already_done(1, TaskStatus::Hit);
        assert_eq!(s.next(), Step::default());
        assert!(s.idle());
    }

    #[test]
    fn zero_jobs_still_runs_one_custom_task() {
        let mut s = scheduler(&[], &[CUSTOM], 0);
        assert_eq!(s.next().start, vec![Work::Custom(0)]);
    }
}

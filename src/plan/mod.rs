//! Job -> Plan: the dependency graph (petgraph), the selection, waves for display and the
//! longest remaining path of each step (the scheduler's priority).
//!
//! A `Plan` is immutable once built. Validation guarantees the graph is acyclic before a plan
//! is built from a job.

pub(crate) mod capacity;
pub(crate) mod fan_out;
pub(crate) mod graph;
mod needs;
pub(crate) mod render;
mod select;

pub(crate) use needs::StepNeeds;
pub use select::{SelectionError, select};

use std::collections::HashMap;
use std::sync::Arc;

use indexmap::IndexSet;
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::job::model::{Job, StepId};

/// The graph of a job and the steps selected to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub job: Arc<Job>,
    /// Every step of the job; an edge goes from a dependency to its dependent.
    pub graph: DiGraph<StepId, ()>,
    /// Step id -> node.
    pub index: HashMap<StepId, NodeIndex>,
    /// Steps that run, in job order.
    pub selected: IndexSet<StepId>,
    /// Topological levels of the selected steps (display only: never a barrier).
    pub waves: Vec<Vec<StepId>>,
    /// Number of selected steps on the longest path from a step to the end, itself included.
    pub remaining: HashMap<StepId, u32>,
    /// What the scheduler must know of each step (exclusive resources, the run view), so it
    /// never looks at what a step does.
    pub(crate) needs: HashMap<StepId, StepNeeds>,
}

/// The job's dependencies form a cycle (validation reports it with its path first).
#[derive(Debug, thiserror::Error)]
#[error("the dependencies form a cycle through step `{0}`")]
pub struct CycleError(pub StepId);

impl Plan {
    /// A plan with every step selected.
    pub fn new(job: Arc<Job>) -> Result<Plan, CycleError> {
        let all: IndexSet<StepId> = job.steps.keys().cloned().collect();
        Plan::with_selected(job, all)
    }

    /// A plan that runs only `selected` (a dependency outside it counts as satisfied).
    pub fn with_selected(job: Arc<Job>, selected: IndexSet<StepId>) -> Result<Plan, CycleError> {
        let mut graph = DiGraph::new();
        let mut index = HashMap::new();
        for id in job.steps.keys() {
            index.insert(id.clone(), graph.add_node(id.clone()));
        }
        for (id, step) in &job.steps {
            for dep in &step.depends_on {
                if let (Some(&from), Some(&to)) = (index.get(dep), index.get(id)) {
                    graph.add_edge(from, to, ());
                }
            }
        }
        let order = petgraph::algo::toposort(&graph, None)
            .map_err(|cycle| CycleError(graph[cycle.node_id()].clone()))?;
        // Keep job order in the selection whatever order the caller gave.
        let selected: IndexSet<StepId> = job
            .steps
            .keys()
            .filter(|id| selected.contains(*id))
            .cloned()
            .collect();

        // Waves: level = 1 + max level of selected parents.
        let mut level: HashMap<NodeIndex, usize> = HashMap::new();
        for &n in &order {
            if !selected.contains(&graph[n]) {
                continue;
            }
            let l = graph
                .neighbors_directed(n, Direction::Incoming)
                .filter_map(|p| level.get(&p).map(|l| l + 1))
                .max()
                .unwrap_or(0);
            level.insert(n, l);
        }
        let depth = level.values().copied().max().map_or(0, |m| m + 1);
        let mut waves = vec![Vec::new(); depth];
        for id in &selected {
            waves[level[&index[id]]].push(id.clone());
        }

        // Longest remaining path, walking the topological order backwards.
        let mut remaining: HashMap<StepId, u32> = HashMap::new();
        for &n in order.iter().rev() {
            let id = &graph[n];
            if !selected.contains(id) {
                continue;
            }
            let below = graph
                .neighbors_directed(n, Direction::Outgoing)
                .filter_map(|c| remaining.get(&graph[c]).copied())
                .max()
                .unwrap_or(0);
            remaining.insert(id.clone(), below + 1);
        }

        let needs = job
            .steps
            .iter()
            .map(|(id, step)| (id.clone(), StepNeeds::of(step)))
            .collect();
        Ok(Plan {
            job,
            graph,
            index,
            selected,
            waves,
            remaining,
            needs,
        })
    }

    /// Selected dependencies of a step (unselected ones count as satisfied).
    pub fn parents(&self, id: &str) -> Vec<StepId> {
        self.neighbors(id, Direction::Incoming)
    }

    /// Selected dependents of a step.
    pub fn children(&self, id: &str) -> Vec<StepId> {
        self.neighbors(id, Direction::Outgoing)
    }

    fn neighbors(&self, id: &str, dir: Direction) -> Vec<StepId> {
        let Some(&n) = self.index.get(id) else {
            return Vec::new();
        };
        let mut out: Vec<StepId> = self
            .graph
            .neighbors_directed(n, dir)
            .map(|m| self.graph[m].clone())
            .filter(|m| self.selected.contains(m))
            .collect();
        out.sort_by_key(|m| self.job.steps.get_index_of(m));
        out
    }
}

#[cfg(test)]
mod tests;

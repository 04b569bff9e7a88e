//! `depends_on`: unknown ids, self-dependencies, repeats and cycles (reported with their
//! path, `a -> b -> c -> a`, in run order: each step runs before the next).

use std::collections::{HashMap, HashSet, VecDeque};

use indexmap::IndexMap;
use petgraph::graph::{DiGraph, NodeIndex};

use super::Checker;
use crate::job::Code;
use crate::job::model::{Step, StepId};
use crate::job::raw::RawJob;
use crate::suggest::hint_for;

/// Checks every `depends_on` entry, then looks for cycles among the valid edges. Invalid
/// entries are removed from the model so later stages never see them.
pub(super) fn check(c: &mut Checker<'_>, raw: &RawJob, steps: &mut IndexMap<StepId, Step>) {
    let ids: Vec<&str> = raw.steps.get().keys().map(|k| k.get().as_str()).collect();
    let mut graph: DiGraph<&str, ()> = DiGraph::new();
    let nodes: HashMap<&str, NodeIndex> = ids.iter().map(|id| (*id, graph.add_node(*id))).collect();

    for (id, step) in raw.steps.get() {
        let id = id.get().as_str();
        let mut seen = HashSet::new();
        for dep in step.get().depends_on.iter().flat_map(|d| d.get().iter()) {
            let name = dep.get().as_str();
            if name == id {
                c.error(
                    Code::SelfDependency,
                    dep.loc(),
                    format!("step `{id}` depends on itself"),
                    "itself",
                );
            } else if !nodes.contains_key(name) {
                let help = if c.suggestions_left() {
                    hint_for(name, ids.iter().copied())
                } else {
                    None
                };
                c.error_help(
                    Code::UnknownDependency,
                    dep.loc(),
                    format!("unknown step `{name}` in `depends_on` of `{id}`"),
                    "no such step",
                    help,
                );
            } else if !seen.insert(name) {
                c.error(
                    Code::DuplicateDependency,
                    dep.loc(),
                    format!("`{name}` is listed twice in `depends_on`"),
                    "repeated",
                );
            } else {
                graph.add_edge(nodes[name], nodes[id], ());
            }
        }
    }
    for step in steps.values_mut() {
        let own = step.id.clone();
        let mut seen = HashSet::new();
        step.depends_on
            .retain(|d| *d != own && nodes.contains_key(d.as_str()) && seen.insert(d.clone()));
    }

    let order: HashMap<NodeIndex, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (nodes[id], i))
        .collect();
    let mut cycles = Vec::new();
    for scc in petgraph::algo::tarjan_scc(&graph) {
        if scc.len() < 2 {
            continue;
        }
        let members: HashSet<NodeIndex> = scc.iter().copied().collect();
        let Some(&start) = scc.iter().min_by_key(|n| order[n]) else {
            continue;
        };
        if let Some(path) = shortest_cycle(&graph, start, &members) {
            cycles.push(path);
        }
    }
    cycles.sort_by_key(|p| order[&p[0]]);
    for path in cycles {
        let names: Vec<&str> = path.iter().map(|n| graph[*n]).collect();
        let mut shown = names.join(" -> ");
        shown.push_str(" -> ");
        shown.push_str(names[0]);
        // Label the entry that closes the cycle: the first step depends on the last one.
        let first = names[0];
        let last = names[names.len() - 1];
        let entry = raw
            .steps
            .get()
            .iter()
            .find(|(k, _)| k.get() == first)
            .and_then(|(_, s)| s.get().depends_on.as_ref())
            .and_then(|d| d.get().iter().find(|dep| dep.get() == last));
        if let Some(entry) = entry {
            c.error_help(
                Code::DependencyCycle,
                entry.loc(),
                format!("dependency cycle: {shown}"),
                "closes the cycle",
                Some("remove one of these dependencies".into()),
            );
        }
    }
}

/// The shortest path `start -> ... -> x` inside `members` with an edge `x -> start`.
pub(crate) fn shortest_cycle(
    graph: &DiGraph<&str, ()>,
    start: NodeIndex,
    members: &HashSet<NodeIndex>,
) -> Option<Vec<NodeIndex>> {
    let mut prev: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    let mut visited = HashSet::from([start]);
    while let Some(n) = queue.pop_front() {
        // Neighbours in a stable order (petgraph lists the newest edge first).
        let mut next: Vec<NodeIndex> = graph.neighbors(n).collect();
        next.sort();
        for m in next {
            if m == start {
                let mut path = vec![n];
                let mut cur = n;
                while let Some(&p) = prev.get(&cur) {
                    path.push(p);
                    cur = p;
                }
                path.reverse();
                return Some(path);
            }
            if members.contains(&m) && visited.insert(m) {
                prev.insert(m, n);
                queue.push_back(m);
            }
        }
    }
    None
}

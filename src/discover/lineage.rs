//! Lineage edges (dataflow → dataflow, dataflow → dataset, dataset → report) and the path
//! questions `validate --lineage` asks of them.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::Serialize;

/// What a lineage node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A Power BI (Gen1) dataflow.
    Dataflow,
    Dataset,
    Report,
}

impl NodeKind {
    /// `dataflow`, `dataset` or `report`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Dataflow => "dataflow",
            NodeKind::Dataset => "dataset",
            NodeKind::Report => "report",
        }
    }
}

/// One end of an edge. Names are absent for items outside the discovered workspaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    pub kind: NodeKind,
    pub workspace_id: String,
    /// The workspace's name when known.
    pub workspace: Option<String>,
    pub id: String,
    /// The item's name when known.
    pub name: Option<String>,
}

impl Node {
    /// The graph key: ids are GUIDs, unique across the tenant; case is not significant.
    pub fn key(&self) -> NodeKey {
        NodeKey::new(self.kind, &self.id)
    }

    /// `Workspace / Name`, falling back on ids.
    pub fn label(&self) -> String {
        format!(
            "{} / {}",
            self.workspace.as_deref().unwrap_or(&self.workspace_id),
            self.name.as_deref().unwrap_or(&self.id)
        )
    }
}

/// A node's identity in the lineage graph.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeKey {
    pub kind: NodeKind,
    /// Lowercase id.
    pub id: String,
}

impl NodeKey {
    /// The key of item `id` of `kind`.
    pub fn new(kind: NodeKind, id: &str) -> Self {
        NodeKey {
            kind,
            id: id.to_ascii_lowercase(),
        }
    }
}

/// `from` feeds `to`: `to` reads `from`'s data, so `from` must be refreshed first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub from: Node,
    pub to: Node,
}

/// The edges as an adjacency list, for reachability.
#[derive(Debug, Default)]
pub(crate) struct Graph {
    next: HashMap<NodeKey, Vec<NodeKey>>,
    prev: HashMap<NodeKey, Vec<NodeKey>>,
}

impl Graph {
    /// The graph of `edges`.
    pub(crate) fn new(edges: &[Edge]) -> Self {
        let mut next: HashMap<NodeKey, Vec<NodeKey>> = HashMap::new();
        let mut prev: HashMap<NodeKey, Vec<NodeKey>> = HashMap::new();
        for e in edges {
            let (from, to) = (e.from.key(), e.to.key());
            let list = next.entry(from.clone()).or_default();
            if !list.contains(&to) {
                list.push(to.clone());
                prev.entry(to).or_default().push(from);
            }
        }
        Graph { next, prev }
    }

    /// The nearest nodes upstream of `to` for which `stop` holds, each with the nodes in
    /// between (nearest first): walking back from `to`, a stop node is recorded and not
    /// walked through, so `a -> b -> c` with stops `a`, `b` gives only `b` for `c`.
    pub(crate) fn nearest_upstream(
        &self,
        to: &NodeKey,
        stop: impl Fn(&NodeKey) -> bool,
    ) -> Vec<(NodeKey, Vec<NodeKey>)> {
        let mut out = Vec::new();
        let mut seen: HashSet<NodeKey> = HashSet::from([to.clone()]);
        // (node, nodes between it and `to`)
        let mut queue: VecDeque<(NodeKey, Vec<NodeKey>)> = VecDeque::from([(to.clone(), vec![])]);
        while let Some((n, via)) = queue.pop_front() {
            for p in self.prev.get(&n).map(Vec::as_slice).unwrap_or_default() {
                if !seen.insert(p.clone()) {
                    continue;
                }
                if stop(p) {
                    out.push((p.clone(), via.clone()));
                } else {
                    let mut v = vec![p.clone()];
                    v.extend(via.iter().cloned());
                    queue.push_back((p.clone(), v));
                }
            }
        }
        out
    }

    /// A shortest path `from` → ... → `to` (both included), when there is one. A node does
    /// not reach itself through an empty path.
    pub(crate) fn path(&self, from: &NodeKey, to: &NodeKey) -> Option<Vec<NodeKey>> {
        let mut parent: HashMap<&NodeKey, &NodeKey> = HashMap::new();
        let mut seen: HashSet<&NodeKey> = HashSet::new();
        let mut queue: VecDeque<&NodeKey> = VecDeque::new();
        seen.insert(from);
        queue.push_back(from);
        while let Some(n) = queue.pop_front() {
            for m in self.next.get(n).map(Vec::as_slice).unwrap_or_default() {
                if m == to {
                    let mut path = vec![m.clone(), n.clone()];
                    let mut cur = n;
                    while let Some(p) = parent.get(cur) {
                        path.push((*p).clone());
                        cur = p;
                    }
                    path.reverse();
                    return Some(path);
                }
                if seen.insert(m) {
                    parent.insert(m, n);
                    queue.push_back(m);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(kind: NodeKind, id: &str) -> Node {
        Node {
            kind,
            workspace_id: "w".into(),
            workspace: Some("W".into()),
            id: id.into(),
            name: Some(id.to_uppercase()),
        }
    }

    fn edge(a: (NodeKind, &str), b: (NodeKind, &str)) -> Edge {
        Edge {
            from: node(a.0, a.1),
            to: node(b.0, b.1),
        }
    }

    #[test]
    fn paths_follow_edges_and_report_the_shortest() {
        use NodeKind::*;
        let g = Graph::new(&[
            edge((Dataflow, "raw"), (Dataflow, "clean")),
            edge((Dataflow, "clean"), (Dataset, "model")),
            edge((Dataflow, "raw"), (Dataset, "model")),
            edge((Dataset, "model"), (Report, "book")),
        ]);
        let raw = NodeKey::new(Dataflow, "RAW");
        let book = NodeKey::new(Report, "book");
        let p = g.path(&raw, &book).unwrap();
        assert_eq!(p.len(), 3, "raw -> model -> book: {p:?}");
        assert!(g.path(&book, &raw).is_none());
        assert!(g.path(&raw, &raw).is_none(), "no cycle, no self path");
        assert_eq!(
            g.path(&raw, &NodeKey::new(Dataflow, "clean"))
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn nearest_upstream_stops_at_steps() {
        use NodeKind::*;
        let g = Graph::new(&[
            edge((Dataflow, "raw"), (Dataflow, "clean")),
            edge((Dataflow, "clean"), (Dataflow, "mid")),
            edge((Dataflow, "mid"), (Dataset, "model")),
        ]);
        let steps = [
            NodeKey::new(Dataflow, "raw"),
            NodeKey::new(Dataflow, "clean"),
        ];
        let up = g.nearest_upstream(&NodeKey::new(Dataset, "model"), |k| steps.contains(k));
        assert_eq!(up.len(), 1);
        assert_eq!(up[0].0, NodeKey::new(Dataflow, "clean"));
        assert_eq!(up[0].1, vec![NodeKey::new(Dataflow, "mid")]);
    }

    #[test]
    fn labels_fall_back_on_ids() {
        let n = Node {
            kind: NodeKind::Dataflow,
            workspace_id: "w-id".into(),
            workspace: None,
            id: "d-id".into(),
            name: None,
        };
        assert_eq!(n.label(), "w-id / d-id");
    }
}

//! Capacity-aware limits: from what the service says about each step's workspace (its
//! capacity, that capacity's SKU, or shared capacity) to plain data the engine respects
//! (named limits a step joins, like `pools:`) and the warnings `plan` and `run` print.
//!
//! Only `dataset` steps (semantic-model refreshes) count: the documented per-SKU limit is
//! the capacity's model refresh parallelism (src/powerbi/skus.rs, docs/capacity.md).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::Serialize;

use crate::job::model::{Job, StepId, StepKind};
use crate::powerbi::skus::{SHARED_DAILY_REFRESHES, refresh_limit};

/// What the service says about one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WorkspaceCapacity {
    /// On a dedicated capacity: its id, and its SKU and name when the caller can read them
    /// (`GET capacities` lists only capacities the caller has a right on).
    Dedicated {
        capacity_id: String,
        sku: Option<String>,
        name: Option<String>,
    },
    /// On shared (Pro) capacity.
    Shared,
    /// The workspace could not be read (its step will fail on its own with the reason).
    Unknown(String),
}

/// The facts for a job: per (connection, workspace as written).
pub(crate) type Facts = HashMap<(String, String), WorkspaceCapacity>;

/// One capacity's limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct CapacityLimit {
    /// The limit's name as the engine knows it (`capacity:<id>`).
    pub key: String,
    pub capacity_id: String,
    pub name: Option<String>,
    pub sku: String,
    /// Model refreshes at once.
    pub limit: u32,
    /// The `dataset` steps on it, in job order.
    pub steps: Vec<StepId>,
}

/// What the capacities mean for a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct CapacityPlan {
    /// One per capacity with a known SKU, in the order of their first step.
    pub limits: Vec<CapacityLimit>,
    /// Warnings (shared capacity, unknown SKU, unreadable workspace), in job order.
    pub warnings: Vec<String>,
}

impl CapacityPlan {
    /// The engine's data: limit name -> size, step -> limit names.
    pub(crate) fn pools(&self) -> (HashMap<String, u32>, HashMap<StepId, Vec<String>>) {
        let mut sizes = HashMap::new();
        let mut members: HashMap<StepId, Vec<String>> = HashMap::new();
        for l in &self.limits {
            sizes.insert(l.key.clone(), l.limit);
            for s in &l.steps {
                members.entry(s.clone()).or_default().push(l.key.clone());
            }
        }
        (sizes, members)
    }

    /// The lines `plan --capacities` prints.
    pub(crate) fn to_text(&self) -> String {
        let mut o = String::new();
        if self.limits.is_empty() {
            let _ = writeln!(o, "capacity limits: none");
        } else {
            let _ = writeln!(o, "capacity limits (model refreshes at once, by SKU):");
        }
        for l in &self.limits {
            let name = l.name.as_deref().unwrap_or("?");
            let _ = writeln!(
                o,
                "  capacity {name} ({}, {}): at most {} at once: {}",
                l.sku,
                l.capacity_id,
                l.limit,
                l.steps.join(", ")
            );
        }
        for w in &self.warnings {
            let _ = writeln!(o, "warning: {w}");
        }
        o
    }
}

/// The workspaces whose capacity matters: those of the selected `dataset` steps, per
/// connection, in job order, without duplicates.
pub(crate) fn workspaces_to_learn(job: &Job, selected: &[StepId]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for id in selected {
        let Some(step) = job.steps.get(id) else {
            continue;
        };
        if let StepKind::Dataset(d) = &step.kind {
            let key = (step.connection.clone(), d.workspace.clone());
            if !out.contains(&key) {
                out.push(key);
            }
        }
    }
    out
}

/// Turns the facts into limits and warnings for the selected steps.
pub(crate) fn plan(job: &Job, selected: &[StepId], facts: &Facts) -> CapacityPlan {
    let mut limits: Vec<CapacityLimit> = Vec::new();
    let mut warnings = Vec::new();
    // Shared workspaces and capacities without a known SKU: the steps on each, in job order.
    let mut shared: BTreeMap<usize, (String, Vec<StepId>, bool)> = BTreeMap::new();
    let mut unknown_sku: BTreeMap<usize, (String, String, Vec<StepId>)> = BTreeMap::new();
    for (n, id) in selected.iter().enumerate() {
        let Some(step) = job.steps.get(id) else {
            continue;
        };
        let StepKind::Dataset(d) = &step.kind else {
            continue;
        };
        let key = (step.connection.clone(), d.workspace.clone());
        match facts.get(&key) {
            Some(WorkspaceCapacity::Dedicated {
                capacity_id,
                sku,
                name,
            }) => {
                let limit = sku.as_deref().and_then(refresh_limit);
                match (sku, limit) {
                    (Some(sku), Some(limit)) => {
                        let ckey = format!("capacity:{}", capacity_id.to_ascii_lowercase());
                        match limits.iter_mut().find(|l| l.key == ckey) {
                            Some(l) => l.steps.push(id.clone()),
                            None => limits.push(CapacityLimit {
                                key: ckey,
                                capacity_id: capacity_id.clone(),
                                name: name.clone(),
                                sku: sku.clone(),
                                limit,
                                steps: vec![id.clone()],
                            }),
                        }
                    }
                    _ => {
                        let first = unknown_sku
                            .iter()
                            .find(|(_, (c, _, _))| c.eq_ignore_ascii_case(capacity_id))
                            .map(|(k, _)| *k)
                            .unwrap_or(n);
                        unknown_sku
                            .entry(first)
                            .or_insert_with(|| {
                                (
                                    capacity_id.clone(),
                                    sku.clone().unwrap_or_default(),
                                    Vec::new(),
                                )
                            })
                            .2
                            .push(id.clone());
                    }
                }
            }
            Some(WorkspaceCapacity::Shared) => {
                let first = shared
                    .iter()
                    .find(|(_, (w, _, _))| *w == d.workspace)
                    .map(|(k, _)| *k)
                    .unwrap_or(n);
                let entry = shared
                    .entry(first)
                    .or_insert_with(|| (d.workspace.clone(), Vec::new(), false));
                entry.1.push(id.clone());
                entry.2 |= d.refresh.is_some();
            }
            Some(WorkspaceCapacity::Unknown(why)) => warnings.push(format!(
                "step `{id}`: the capacity of workspace `{}` is unknown ({why}); no capacity limit applies to it",
                d.workspace
            )),
            None => {}
        }
    }
    for (_, (workspace, steps, enhanced)) in shared {
        let mut w = format!(
            "workspace `{workspace}` is on shared capacity: the service allows {SHARED_DAILY_REFRESHES} refreshes of a model per day, scheduled and API refreshes together, each attempt counting (steps: {})",
            steps.join(", ")
        );
        if enhanced {
            w.push_str("; enhanced refresh (`refresh:`) is refused there");
        }
        warnings.push(w);
    }
    for (_, (capacity, sku, steps)) in unknown_sku {
        let why = if sku.is_empty() {
            "the identity cannot read it (GET capacities does not list it)".to_string()
        } else {
            format!("its SKU `{sku}` has no documented refresh limit")
        };
        warnings.push(format!(
            "capacity {capacity}: {why}; no capacity limit applies to steps {}",
            steps.join(", ")
        ));
    }
    CapacityPlan { limits, warnings }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        let yaml = r#"
version: 1
name: t
connections: { default: { access_token: x } }
steps:
  a: { type: dataset, workspace: Big, dataset: A }
  b: { type: dataset, workspace: Big, dataset: B }
  c: { type: dataset, workspace: Pro, dataset: C, refresh: {} }
  d: { type: dataset, workspace: Hidden, dataset: D }
  e: { type: webhook, url: "https://hooks.example.com/x" }
"#;
        crate::job::load_bytes("t.yaml", yaml.as_bytes(), &[], &|_| None)
            .unwrap()
            .job
    }

    #[test]
    fn limits_and_warnings_from_the_facts() {
        let job = job();
        let selected: Vec<StepId> = job.steps.keys().cloned().collect();
        assert_eq!(
            workspaces_to_learn(&job, &selected),
            vec![
                ("default".to_string(), "Big".to_string()),
                ("default".into(), "Pro".into()),
                ("default".into(), "Hidden".into())
            ]
        );
        let mut facts = Facts::new();
        facts.insert(
            ("default".into(), "Big".into()),
            WorkspaceCapacity::Dedicated {
                capacity_id: "ABC".into(),
                sku: Some("F4".into()),
                name: Some("nightly".into()),
            },
        );
        facts.insert(("default".into(), "Pro".into()), WorkspaceCapacity::Shared);
        facts.insert(
            ("default".into(), "Hidden".into()),
            WorkspaceCapacity::Dedicated {
                capacity_id: "DEF".into(),
                sku: None,
                name: None,
            },
        );
        let p = plan(&job, &selected, &facts);
        assert_eq!(p.limits.len(), 1);
        assert_eq!(p.limits[0].limit, 2);
        assert_eq!(p.limits[0].steps, vec!["a", "b"]);
        let (sizes, members) = p.pools();
        assert_eq!(sizes["capacity:abc"], 2);
        assert_eq!(members["b"], vec!["capacity:abc"]);
        assert!(!members.contains_key("c"));
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
        assert!(p.warnings[0].contains("shared capacity"));
        assert!(p.warnings[0].contains("enhanced refresh"));
        assert!(p.warnings[1].contains("capacity DEF: the identity cannot read it"));
    }
}

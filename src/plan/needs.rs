//! What the engine must know about a step without knowing what it does: the exclusive
//! resources it holds while it runs, and whether its attempts read the run so far. Worked out
//! here, once per step when the plan is built, so the scheduler never looks at step types.

use crate::job::model::{Step, StepKind};

/// A step's scheduling needs, as plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StepNeeds {
    /// Keys of the remote resources the step holds from its first attempt to its last: no
    /// two steps holding one key run at once.
    pub(crate) exclusive: Vec<String>,
    /// Its attempts read the final statuses and stats of the other steps (a webhook can send
    /// `${steps.<id>.status}`); other steps get only the run's summary.
    pub(crate) run_view: bool,
}

impl StepNeeds {
    /// The needs of `step`.
    pub(crate) fn of(step: &Step) -> StepNeeds {
        StepNeeds {
            exclusive: resource_key(step).into_iter().collect(),
            run_view: matches!(step.kind, StepKind::Webhook(_)),
        }
    }
}

/// The remote resource a step refreshes, when two steps on it must not overlap.
///
/// Names are compared case-insensitively (the service does); a name and the GUID of the same
/// item are not recognised as one resource before resolution, which the docs say.
fn resource_key(step: &Step) -> Option<String> {
    let norm = |s: &str| s.trim().to_lowercase();
    match &step.kind {
        StepKind::Dataflow(d) => Some(format!(
            "dataflow\u{1f}{}\u{1f}{}",
            norm(&d.workspace),
            norm(&d.dataflow)
        )),
        StepKind::SasFlow(s) => s.wait_for.as_ref().map(|w| {
            format!(
                "dataflow\u{1f}{}\u{1f}{}",
                norm(&w.workspace),
                norm(&w.dataflow)
            )
        }),
        StepKind::Dataset(d) => Some(format!(
            "dataset\u{1f}{}\u{1f}{}",
            norm(&d.workspace),
            norm(&d.dataset)
        )),
        StepKind::FabricJob(f) => Some(format!(
            "{}\u{1f}{}\u{1f}{}",
            f.item_type.name(),
            norm(&f.workspace),
            norm(&f.item)
        )),
        // A data check or a freshness check reads; it holds no resource.
        StepKind::Report(_)
        | StepKind::Webhook(_)
        | StepKind::DataCheck(_)
        | StepKind::Freshness(_) => None,
        // Two steps on one capacity (a resume and a suspend, say) would undo each other:
        // they run one at a time. The ARM id is the key, however the step names it.
        StepKind::Capacity(c) => Some(format!(
            "capacity\u{1f}{}",
            c.target()
                .map(|t| t.id())
                .unwrap_or_else(|_| c.capacity.clone())
                .to_lowercase()
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::plan::Plan;

    fn plan(steps: &str) -> Plan {
        let yaml = format!("version: 1\nname: t\nsteps:\n{steps}");
        let job = crate::job::load_bytes("t.yaml", yaml.as_bytes(), &[], &|_| None)
            .map(|l| l.job)
            .unwrap_or_else(|e| panic!("{e:?}"));
        Plan::new(Arc::new(job)).unwrap()
    }

    #[test]
    fn a_sas_flow_waiting_for_a_dataflow_holds_that_dataflow() {
        let p = plan(concat!(
            "  df: { type: dataflow, workspace: Data Admin, dataflow: Master Order List }\n",
            "  flow: { type: sas_flow, url: \"https://flow.example.com/x?sig=s\", ",
            "wait_for: { workspace: data admin, dataflow: master order list } }\n",
            "  plain: { type: sas_flow, url: \"https://flow.example.com/y?sig=s\" }\n",
            "  ds: { type: dataset, workspace: Data Admin, dataset: Master Order List }\n",
        ));
        let df = &p.needs["df"].exclusive;
        assert_eq!(df.len(), 1);
        assert_eq!(&p.needs["flow"].exclusive, df);
        assert!(p.needs["plain"].exclusive.is_empty());
        // A dataset and a dataflow of the same name are different resources.
        assert_ne!(&p.needs["ds"].exclusive, df);
    }

    #[test]
    fn two_steps_on_one_capacity_hold_the_same_resource() {
        let p = plan(concat!(
            "  by_id: { type: capacity, action: resume, capacity: ",
            "/subscriptions/S/resourceGroups/RG/providers/Microsoft.Fabric/capacities/nightly }\n",
            "  by_name: { type: capacity, action: suspend, capacity: nightly, ",
            "subscription: s, resource_group: rg }\n",
        ));
        assert_eq!(p.needs["by_id"].exclusive.len(), 1);
        assert_eq!(p.needs["by_id"], p.needs["by_name"]);
    }

    #[test]
    fn only_webhooks_read_the_run_view() {
        let p = plan(concat!(
            "  ds: { type: dataset, workspace: W, dataset: D }\n",
            "  hook: { type: webhook, url: \"https://h.example.com/x\", depends_on: [ds] }\n",
        ));
        assert!(!p.needs["ds"].run_view);
        assert!(p.needs["hook"].run_view);
        assert!(p.needs["hook"].exclusive.is_empty());
    }
}

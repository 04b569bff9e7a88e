//! The limits a step must fit in before it starts: the global concurrency, its named pools
//! (its `pool:` and the data limits it joins, see [`super::DataLimits`]), and its remote
//! resource (one in-flight step per workspace + dataset / dataflow).
//!
//! The scheduler is a single task, so these are plain counters rather than semaphores: a step
//! takes its permits when it starts and gives them back when it reaches a final status.

use std::collections::{HashMap, HashSet};

use crate::job::model::{Job, Step, StepKind};

/// The remote resource a step refreshes, when two steps on it must not overlap.
///
/// Names are compared case-insensitively (the service does); a name and the GUID of the same
/// item are not recognised as one resource before resolution, which the docs say.
pub(super) fn resource_key(step: &Step) -> Option<String> {
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
        StepKind::Report(_) | StepKind::Webhook(_) => None,
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

/// Permits in use.
#[derive(Debug)]
pub(super) struct Limits {
    concurrency: usize,
    in_flight: usize,
    pool_limits: HashMap<String, usize>,
    pool_used: HashMap<String, usize>,
    busy_resources: HashSet<String>,
}

impl Limits {
    /// Limits of `job`, with `concurrency` overriding `job.concurrency`, plus the named
    /// limits given as data (`extra`; a name also under `pools:` keeps the smaller size).
    pub(super) fn new(job: &Job, concurrency: Option<u32>, extra: &HashMap<String, u32>) -> Limits {
        let concurrency = concurrency.unwrap_or(job.concurrency).max(1) as usize;
        let mut pool_limits: HashMap<String, usize> = job
            .pools
            .iter()
            .map(|(k, v)| (k.clone(), (*v).max(1) as usize))
            .collect();
        for (k, v) in extra {
            let size = (*v).max(1) as usize;
            pool_limits
                .entry(k.clone())
                .and_modify(|s| *s = (*s).min(size))
                .or_insert(size);
        }
        Limits {
            concurrency,
            in_flight: 0,
            pool_limits,
            pool_used: HashMap::new(),
            busy_resources: HashSet::new(),
        }
    }

    /// True when nothing more can start at all.
    pub(super) fn full(&self) -> bool {
        self.in_flight >= self.concurrency
    }

    /// True when a step with these pools and resource can start now.
    pub(super) fn fits(&self, pools: &[String], resource: Option<&str>) -> bool {
        if self.full() {
            return false;
        }
        for pool in pools {
            // A pool the job does not declare is rejected by validation; if one slips
            // through, it has no limit of its own rather than blocking the step forever.
            if let Some(&limit) = self.pool_limits.get(pool)
                && self.pool_used.get(pool).copied().unwrap_or(0) >= limit
            {
                return false;
            }
        }
        resource.is_none_or(|r| !self.busy_resources.contains(r))
    }

    /// Takes the permits of a starting step.
    pub(super) fn acquire(&mut self, pools: &[String], resource: Option<&str>) {
        self.in_flight += 1;
        for pool in pools {
            *self.pool_used.entry(pool.clone()).or_insert(0) += 1;
        }
        if let Some(r) = resource {
            self.busy_resources.insert(r.to_string());
        }
    }

    /// Gives back the permits of a finished step.
    pub(super) fn release(&mut self, pools: &[String], resource: Option<&str>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        for pool in pools {
            if let Some(used) = self.pool_used.get_mut(pool) {
                *used = used.saturating_sub(1);
            }
        }
        if let Some(r) = resource {
            self.busy_resources.remove(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::model::{DataflowStep, Generation, NotifyOption, SasFlowStep, WaitFor};
    use crate::secret::Secret;

    fn with_kind(kind: StepKind) -> Step {
        Step {
            kind,
            ..crate::engine::tests::step("s", &[])
        }
    }

    fn dataflow(workspace: &str, name: &str) -> StepKind {
        StepKind::Dataflow(DataflowStep {
            workspace: workspace.into(),
            dataflow: name.into(),
            generation: Generation::Gen1,
            notify: NotifyOption::NoNotification,
            process_type: None,
            execute_option: None,
            parameters: Default::default(),
        })
    }

    fn sas(wait_for: Option<(&str, &str)>) -> StepKind {
        StepKind::SasFlow(SasFlowStep {
            url: Secret::new("https://flow.example.invalid/x?sig=s"),
            method: "POST".into(),
            headers: Default::default(),
            body: None,
            expect_status: Vec::new(),
            wait_for: wait_for.map(|(w, d)| WaitFor {
                workspace: w.into(),
                dataflow: d.into(),
            }),
            oauth: false,
        })
    }

    #[test]
    fn a_sas_flow_waiting_for_a_dataflow_holds_that_dataflow() {
        let df = resource_key(&with_kind(dataflow("Data Admin", "Master Order List")));
        let flow = resource_key(&with_kind(sas(Some(("data admin", "master order list")))));
        assert!(df.is_some());
        assert_eq!(df, flow);
        assert_eq!(resource_key(&with_kind(sas(None))), None);
        // A dataset and a dataflow of the same name are different resources.
        let ds = resource_key(&crate::engine::tests::dataset(
            "d",
            &[],
            "Data Admin",
            "Master Order List",
        ));
        assert_ne!(ds, df);
    }

    #[test]
    fn two_steps_on_one_capacity_hold_the_same_resource() {
        use crate::job::model::{CapacityAction, CapacityStep};
        let by_id = with_kind(StepKind::Capacity(CapacityStep {
            action: CapacityAction::Resume,
            capacity:
                "/subscriptions/S/resourceGroups/RG/providers/Microsoft.Fabric/capacities/nightly"
                    .into(),
            subscription: None,
            resource_group: None,
        }));
        let by_name = with_kind(StepKind::Capacity(CapacityStep {
            action: CapacityAction::Suspend,
            capacity: "nightly".into(),
            subscription: Some("s".into()),
            resource_group: Some("rg".into()),
        }));
        assert!(resource_key(&by_id).is_some());
        assert_eq!(resource_key(&by_id), resource_key(&by_name));
    }

    #[test]
    fn pools_and_resources_are_counted() {
        let mut job = crate::engine::tests::job(Vec::new(), 3);
        job.pools.insert("p".into(), 1);
        let mut limits = Limits::new(&job, None, &HashMap::new());
        let p = ["p".to_string()];
        assert!(limits.fits(&p, Some("r")));
        limits.acquire(&p, Some("r"));
        assert!(!limits.fits(&p, None), "pool full");
        assert!(!limits.fits(&[], Some("r")), "resource busy");
        assert!(limits.fits(&["undeclared".to_string()], None));
        limits.acquire(&[], None);
        limits.acquire(&[], None);
        assert!(limits.full());
        limits.release(&p, Some("r"));
        assert!(limits.fits(&p, Some("r")));
    }

    #[test]
    fn a_step_fits_only_when_every_pool_it_joins_has_room() {
        let mut job = crate::engine::tests::job(Vec::new(), 10);
        job.pools.insert("p".into(), 5);
        let extra = HashMap::from([("capacity:c".to_string(), 2), ("p".to_string(), 9)]);
        let mut limits = Limits::new(&job, None, &extra);
        let both = ["p".to_string(), "capacity:c".to_string()];
        let cap = ["capacity:c".to_string()];
        limits.acquire(&both, None);
        limits.acquire(&cap, None);
        assert!(!limits.fits(&both, None), "the capacity limit is full");
        assert!(limits.fits(&["p".to_string()], None));
        limits.release(&cap, None);
        assert!(limits.fits(&both, None));
        // A data limit never widens a pool of the job.
        for _ in 0..4 {
            limits.acquire(&["p".to_string()], None);
        }
        assert!(!limits.fits(&["p".to_string()], None));
    }
}

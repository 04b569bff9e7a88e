//! Fabric capacities as Azure Resource Manager serves them: a settled state (Active or
//! Paused) and at most one long-running operation (resume, suspend, SKU update) at a time,
//! its effect applied when the clock passes its end (nothing runs in the background).

use tokio::time::Instant;
use uuid::Uuid;

use super::World;
use crate::sim::profile::{CapacityOperation, CapacitySpec, CapacityStartState};

/// One capacity.
#[derive(Debug, Clone)]
pub(crate) struct Capacity {
    /// ARM name.
    pub name: String,
    pub subscription: String,
    pub resource_group: String,
    pub region: String,
    /// The Power BI / Fabric capacity GUID (workspaces' `capacityId`).
    pub id: Uuid,
    pub sku: String,
    /// Active (true) or Paused, when no operation runs.
    pub active: bool,
    /// The operation running now (index into [`World::arm_operations`]).
    pub operation: Option<usize>,
    pub spec: CapacitySpec,
}

/// One accepted long-running operation.
#[derive(Debug, Clone)]
pub(crate) struct ArmOperation {
    pub id: Uuid,
    pub capacity: usize,
    pub kind: CapacityOperation,
    /// The SKU a scale sets.
    pub sku: Option<String>,
    pub started: Instant,
    pub ends: Instant,
    pub fails: bool,
}

impl ArmOperation {
    /// `InProgress`, `Succeeded` or `Failed` at `now`.
    pub(crate) fn status(&self, now: Instant) -> &'static str {
        if now < self.ends {
            "InProgress"
        } else if self.fails {
            "Failed"
        } else {
            "Succeeded"
        }
    }
}

impl Capacity {
    pub(crate) fn from_spec(name: &str, spec: &CapacitySpec) -> Capacity {
        Capacity {
            name: name.to_string(),
            subscription: spec.subscription.clone(),
            resource_group: spec.resource_group.clone(),
            region: spec.region.clone(),
            id: spec
                .id
                .unwrap_or_else(|| super::derived_uuid(&["capacity", name])),
            sku: spec.sku.clone(),
            active: spec.state == CapacityStartState::Active,
            operation: None,
            spec: spec.clone(),
        }
    }

    /// The ARM resource id.
    pub(crate) fn arm_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Fabric/capacities/{}",
            self.subscription, self.resource_group, self.name
        )
    }
}

impl World {
    /// Applies every operation that ended by `now`.
    pub(crate) fn settle_capacities(&mut self, now: Instant) {
        for c in 0..self.capacities.len() {
            let Some(op) = self.capacities[c].operation else {
                continue;
            };
            let op = self.arm_operations[op].clone();
            if now < op.ends {
                continue;
            }
            let cap = &mut self.capacities[c];
            cap.operation = None;
            if op.fails {
                continue;
            }
            match op.kind {
                CapacityOperation::Resume => cap.active = true,
                CapacityOperation::Suspend => cap.active = false,
                CapacityOperation::Scale => {
                    if let Some(sku) = op.sku {
                        cap.sku = sku;
                    }
                }
            }
        }
    }

    /// The `properties.state` of capacity `c` (after [`World::settle_capacities`]).
    pub(crate) fn capacity_state(&self, c: usize) -> &'static str {
        let cap = &self.capacities[c];
        match cap.operation.map(|o| self.arm_operations[o].kind) {
            Some(CapacityOperation::Resume) => "Resuming",
            Some(CapacityOperation::Suspend) => "Pausing",
            Some(CapacityOperation::Scale) => "Updating",
            None if cap.active => "Active",
            None => "Paused",
        }
    }

    /// The capacity with this ARM path (names compared case-insensitively, as ARM does).
    pub(crate) fn find_capacity(
        &self,
        subscription: &str,
        group: &str,
        name: &str,
    ) -> Option<usize> {
        self.capacities.iter().position(|c| {
            c.subscription.eq_ignore_ascii_case(subscription)
                && c.resource_group.eq_ignore_ascii_case(group)
                && c.name.eq_ignore_ascii_case(name)
        })
    }

    /// Starts an operation on capacity `c`; returns its index.
    pub(crate) fn start_capacity_operation(
        &mut self,
        c: usize,
        kind: CapacityOperation,
        sku: Option<String>,
        now: Instant,
    ) -> usize {
        let cap = &self.capacities[c];
        let unit: f64 = rand::Rng::random(&mut self.rng);
        let duration = self.scale(cap.spec.transition.pick(unit));
        let fails = cap.spec.fail.contains(&kind);
        let index = self.arm_operations.len();
        let id = super::derived_uuid(&["arm-operation", &cap.name, &index.to_string()]);
        self.arm_operations.push(ArmOperation {
            id,
            capacity: c,
            kind,
            sku,
            started: now,
            ends: now + duration,
            fails,
        });
        self.capacities[c].operation = Some(index);
        let key = crate::sim::resource_key("capacity", "", &self.capacities[c].name);
        self.counters.resources.entry(key).or_default().triggers += 1;
        index
    }
}

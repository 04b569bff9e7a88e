//! Auto-provisioning: what a job names and the profile does not declare is added with the
//! profile's `defaults:`.

use indexmap::IndexMap;

use super::{
    DataflowRef, DataflowSpec, DatasetSpec, FabricDataflowSpec, ItemSpec, Profile, ReportSpec,
    WorkspaceSpec,
};

/// What a job names, to be provisioned when the profile does not declare it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provision {
    pub workspaces: Vec<WorkspaceWants>,
    /// Flow names.
    pub flows: Vec<String>,
    /// Webhook names.
    pub hooks: Vec<String>,
    /// Fabric capacities `capacity` steps name.
    pub capacities: Vec<CapacityWants>,
}

/// A capacity a job names, and how it should start: paused when the job's first step on it
/// resumes it (so a rehearsal shows the resume), active otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapacityWants {
    pub target: crate::job::model::CapacityRef,
    pub paused: bool,
}

/// The items a job names in one workspace (names or GUIDs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceWants {
    /// Workspace name or GUID.
    pub name: String,
    pub datasets: Vec<String>,
    /// Gen1 dataflows.
    pub dataflows: Vec<String>,
    /// Gen2 dataflows.
    pub fabric_dataflows: Vec<String>,
    pub reports: Vec<String>,
    /// Other Fabric items that run jobs: (name or GUID, Fabric item type).
    pub items: Vec<(String, String)>,
    /// What the job's exports say about reports it names (a report the profile declares keeps
    /// what the profile says).
    pub report_hints: Vec<ReportHint>,
}

/// What an export says about its report: paginated (it asks for parameters or a format only
/// paginated reports have), and the row-level-security roles its identities name (the model
/// made for the report then defines them, so the rehearsal exports as the tenant would).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportHint {
    pub report: String,
    pub paginated: bool,
    pub rls_roles: Vec<String>,
}

/// Finds the key of `map` whose name, or whose explicit id, is `wanted`.
fn find_key<T>(
    map: &IndexMap<String, T>,
    wanted: &str,
    id_of: impl Fn(&T) -> Option<uuid::Uuid>,
) -> Option<String> {
    if map.contains_key(wanted) {
        return Some(wanted.to_string());
    }
    // Power BI names are unique regardless of case (`$filter` compares that way too).
    let lower = wanted.to_lowercase();
    if let Some(name) = map.keys().find(|k| k.to_lowercase() == lower) {
        return Some(name.clone());
    }
    let guid = uuid::Uuid::parse_str(wanted).ok()?;
    map.iter()
        .find(|(name, spec)| {
            id_of(spec) == Some(guid) || uuid::Uuid::parse_str(name).ok() == Some(guid)
        })
        .map(|(name, _)| name.clone())
}

/// A spec for a resource named by `wanted`: a GUID becomes its id (and its name).
fn provisioned_id(wanted: &str) -> Option<uuid::Uuid> {
    uuid::Uuid::parse_str(wanted).ok()
}

impl Profile {
    /// Adds every workspace, item, flow and hook a job names that the profile does not
    /// declare; they get the profile's `defaults:`. A GUID names a resource by id.
    pub fn provision(&mut self, wants: &Provision) {
        for ws in &wants.workspaces {
            let key = find_key(&self.workspaces, &ws.name, |w| w.id).unwrap_or_else(|| {
                let spec = WorkspaceSpec {
                    id: provisioned_id(&ws.name),
                    ..WorkspaceSpec::default()
                };
                self.workspaces.insert(ws.name.clone(), spec);
                ws.name.clone()
            });
            let Some(spec) = self.workspaces.get_mut(&key) else {
                continue;
            };
            for name in &ws.datasets {
                if find_key(&spec.datasets, name, |d| d.id).is_none() {
                    spec.datasets.insert(
                        name.clone(),
                        DatasetSpec {
                            id: provisioned_id(name),
                            ..DatasetSpec::default()
                        },
                    );
                }
            }
            for name in &ws.dataflows {
                if find_key(&spec.dataflows, name, |d| d.id).is_none() {
                    spec.dataflows.insert(
                        name.clone(),
                        DataflowSpec {
                            id: provisioned_id(name),
                            ..DataflowSpec::default()
                        },
                    );
                }
            }
            for name in &ws.fabric_dataflows {
                if find_key(&spec.fabric_dataflows, name, |d| d.id).is_none() {
                    spec.fabric_dataflows.insert(
                        name.clone(),
                        FabricDataflowSpec {
                            id: provisioned_id(name),
                            ..FabricDataflowSpec::default()
                        },
                    );
                }
            }
            for (name, item_type) in &ws.items {
                if find_key(&spec.items, name, |i| i.id).is_none() {
                    spec.items.insert(
                        name.clone(),
                        ItemSpec {
                            id: provisioned_id(name),
                            item_type: item_type.clone(),
                            ..ItemSpec::default()
                        },
                    );
                }
            }
            for name in &ws.reports {
                if find_key(&spec.reports, name, |r| r.id).is_none() {
                    let hint = ws.report_hints.iter().find(|h| &h.report == name);
                    let paginated = hint.is_some_and(|h| h.paginated);
                    let roles = hint.map(|h| h.rls_roles.clone()).unwrap_or_default();
                    // A model of its own, with the roles the identities name.
                    let dataset = (!roles.is_empty()).then(|| {
                        let model =
                            spec.datasets
                                .entry(name.clone())
                                .or_insert_with(|| DatasetSpec {
                                    id: provisioned_id(&format!("{name} model")),
                                    ..DatasetSpec::default()
                                });
                        for role in &roles {
                            if !model.rls_roles.contains(role) {
                                model.rls_roles.push(role.clone());
                            }
                        }
                        name.clone()
                    });
                    spec.reports.insert(
                        name.clone(),
                        ReportSpec {
                            id: provisioned_id(name),
                            paginated,
                            dataset,
                            ..ReportSpec::default()
                        },
                    );
                }
            }
        }
        for flow in &wants.flows {
            self.flows.entry(flow.clone()).or_default();
        }
        for hook in &wants.hooks {
            self.hooks.entry(hook.clone()).or_default();
        }
        for cap in &wants.capacities {
            let t = &cap.target;
            self.capacities
                .entry(t.name.clone())
                .or_insert_with(|| super::CapacitySpec {
                    subscription: t.subscription.clone(),
                    resource_group: t.resource_group.clone(),
                    state: if cap.paused {
                        super::CapacityStartState::Paused
                    } else {
                        super::CapacityStartState::Active
                    },
                    ..Default::default()
                });
        }
    }

    /// Makes `flow` start a refresh of the Gen1 dataflow `dataflow` in `workspace` on each
    /// accepted call (provisioning all three when missing), so `wait_for` can be exercised.
    pub fn wire_flow(&mut self, flow: &str, workspace: &str, dataflow: &str) {
        self.provision(&Provision {
            workspaces: vec![WorkspaceWants {
                name: workspace.to_string(),
                dataflows: vec![dataflow.to_string()],
                ..WorkspaceWants::default()
            }],
            flows: vec![flow.to_string()],
            hooks: Vec::new(),
            capacities: Vec::new(),
        });
        if let Some(spec) = self.flows.get_mut(flow) {
            spec.starts_dataflow = Some(DataflowRef {
                workspace: workspace.to_string(),
                dataflow: dataflow.to_string(),
            });
        }
    }
}

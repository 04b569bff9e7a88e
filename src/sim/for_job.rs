//! The simulator a job runs against: everything the job names provisioned (workspaces,
//! items, flows, hooks, capacities), and the job pointed at it. `run --simulate`,
//! `plan --capacities --simulate` and `validate --lineage --simulate` share it, so they see
//! the same estate.

use super::{CapacityWants, DataflowRef, FlowSpec, Profile, Provision, SimError, SimServer};
use crate::job::model::{CapacityAction, Credentials, Generation, Job, StepKind};
use crate::powerbi::ClientConfig;
use crate::secret::Secret;

/// One item a job names in a workspace, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WantedItem {
    Dataset(String),
    /// A Gen1 (Power BI) dataflow.
    Dataflow(String),
    /// A Dataflow Gen2 (Fabric).
    FabricDataflow(String),
    Report(String),
    /// Another Fabric item that runs jobs: name or GUID, and its Fabric item type.
    FabricItem {
        name: String,
        item_type: String,
    },
}

impl Provision {
    /// Adds `item` to workspace `workspace` (both created once, in the order first named).
    pub fn want(&mut self, workspace: &str, item: WantedItem) {
        let ws = match self.workspaces.iter().position(|w| w.name == workspace) {
            Some(i) => &mut self.workspaces[i],
            None => {
                self.workspaces.push(super::WorkspaceWants {
                    name: workspace.to_string(),
                    ..Default::default()
                });
                let last = self.workspaces.len() - 1;
                &mut self.workspaces[last]
            }
        };
        let (list, name) = match item {
            WantedItem::Dataset(name) => (&mut ws.datasets, name),
            WantedItem::Dataflow(name) => (&mut ws.dataflows, name),
            WantedItem::FabricDataflow(name) => (&mut ws.fabric_dataflows, name),
            WantedItem::Report(name) => (&mut ws.reports, name),
            WantedItem::FabricItem { name, item_type } => {
                if !ws.items.iter().any(|(n, _)| *n == name) {
                    ws.items.push((name, item_type));
                }
                return;
            }
        };
        if !list.contains(&name) {
            list.push(name);
        }
    }

    /// What `job` names, for the simulator to provision.
    pub fn for_job(job: &Job) -> Provision {
        let mut wants = Provision::default();
        // Workspaces in the order steps first name them; then the Power BI items, then the
        // Fabric items, each in step order.
        let mut items: Vec<(&str, WantedItem)> = Vec::new();
        let mut fabric_items: Vec<(&str, WantedItem)> = Vec::new();
        let mut workspaces: Vec<&str> = Vec::new();
        let mut report_hints: Vec<(&str, super::ReportHint)> = Vec::new();
        let templates = job.awaiting_discovery();
        for (_, spec) in &templates {
            workspaces.push(&spec.workspace);
        }
        for (id, step) in &job.steps {
            if templates.iter().any(|(t, _)| t == id) {
                // `${each.value}` is no name: discovery finds what the simulator already holds.
                continue;
            }
            // A `freshness` step names its resource as the step that refreshes it does.
            let resource = match &step.kind {
                StepKind::Freshness(f) => refreshed(&f.target),
                other => refreshed(other),
            };
            if let Some((workspace, item, fabric)) = resource {
                workspaces.push(workspace);
                if fabric {
                    fabric_items.push((workspace, item));
                } else {
                    items.push((workspace, item));
                }
            }
            match &step.kind {
                // Their resource is taken above.
                StepKind::Dataset(_)
                | StepKind::Dataflow(_)
                | StepKind::FabricJob(_)
                | StepKind::Freshness(_) => {}
                StepKind::Report(s) => {
                    workspaces.push(&s.workspace);
                    let mut roles: Vec<String> = Vec::new();
                    for role in s.export.identities.iter().flat_map(|i| &i.roles) {
                        if !roles.contains(role) {
                            roles.push(role.clone());
                        }
                    }
                    report_hints.push((
                        &s.workspace,
                        super::ReportHint {
                            report: s.report.clone(),
                            paginated: s.export.format.paginated_only()
                                || !s.export.parameters.is_empty(),
                            rls_roles: roles,
                        },
                    ));
                    items.push((&s.workspace, WantedItem::Report(s.report.clone())));
                }
                StepKind::SasFlow(s) => {
                    wants.flows.push(id.clone());
                    if let Some(w) = &s.wait_for {
                        workspaces.push(&w.workspace);
                        items.push((&w.workspace, WantedItem::Dataflow(w.dataflow.clone())));
                    }
                }
                StepKind::Webhook(_) => wants.hooks.push(id.clone()),
                StepKind::DataCheck(s) => {
                    workspaces.push(&s.workspace);
                    items.push((&s.workspace, WantedItem::Dataset(s.dataset.clone())));
                }
                StepKind::Capacity(s) => {
                    if let Ok(target) = s.target()
                        && !wants.capacities.iter().any(|c| c.target == target)
                    {
                        let paused = s.action == CapacityAction::Resume;
                        wants.capacities.push(CapacityWants { target, paused });
                    }
                }
            }
        }
        for name in workspaces {
            if !wants.workspaces.iter().any(|w| w.name == name) {
                wants.workspaces.push(super::WorkspaceWants {
                    name: name.to_string(),
                    ..Default::default()
                });
            }
        }
        for (workspace, item) in items {
            wants.want(workspace, item);
        }
        for (workspace, hint) in report_hints {
            let Some(w) = wants.workspaces.iter_mut().find(|w| w.name == workspace) else {
                continue;
            };
            match w.report_hints.iter_mut().find(|h| h.report == hint.report) {
                Some(h) => {
                    h.paginated |= hint.paginated;
                    for role in hint.rls_roles {
                        if !h.rls_roles.contains(&role) {
                            h.rls_roles.push(role);
                        }
                    }
                }
                None => w.report_hints.push(hint),
            }
        }
        for (workspace, item) in fabric_items {
            wants.want(workspace, item);
        }
        wants
    }
}

/// A simulator holding what `job` names (`profile` with every missing workspace, item, flow
/// and hook provisioned). The warnings are the profile's flows and hooks that no step of the
/// job uses (they are keyed by step id).
pub async fn start_for_job(
    job: &Job,
    mut profile: Profile,
) -> Result<(SimServer, Vec<String>), SimError> {
    let warnings = unused_profile_entries(job, &profile);
    // A flow awaited with `wait_for` starts that dataflow, as the real flow would.
    for (id, step) in &job.steps {
        if let StepKind::SasFlow(s) = &step.kind
            && let Some(w) = &s.wait_for
            && !profile.flows.contains_key(id)
        {
            profile.flows.insert(
                id.clone(),
                FlowSpec {
                    starts_dataflow: Some(DataflowRef {
                        workspace: w.workspace.clone(),
                        dataflow: w.dataflow.clone(),
                    }),
                    ..Default::default()
                },
            );
        }
    }
    profile.provision(&Provision::for_job(job));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let sim = super::start(profile, addr).await?;
    Ok((sim, warnings))
}

/// The profile's `flows:` and `hooks:` that name no `sas_flow` / `webhook` step of the job:
/// a misspelt step id there leaves the step on a default flow and the entry silently unused.
fn unused_profile_entries(job: &Job, profile: &Profile) -> Vec<String> {
    let ids = |kind: fn(&StepKind) -> bool| -> Vec<&str> {
        job.steps
            .iter()
            .filter(|(_, s)| kind(&s.kind))
            .map(|(id, _)| id.as_str())
            .collect()
    };
    let flows = ids(|k| matches!(k, StepKind::SasFlow(_)));
    let hooks = ids(|k| matches!(k, StepKind::Webhook(_)));
    let mut warnings = Vec::new();
    for (what, step_type, names, steps) in [
        (
            "flow",
            "sas_flow",
            profile.flows.keys().collect::<Vec<_>>(),
            &flows,
        ),
        ("hook", "webhook", profile.hooks.keys().collect(), &hooks),
    ] {
        for name in names {
            if steps.contains(&name.as_str()) {
                continue;
            }
            let near = crate::suggest::did_you_mean(name, steps.iter().copied())
                .map(|n| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default();
            warnings.push(format!(
                "the simulator profile's {what} `{name}` matches no `{step_type}` step of `{}` and is unused{near}",
                job.name
            ));
        }
    }
    warnings
}

impl SimServer {
    /// `job` with every remote pointed at this simulator: SAS flows and webhooks get its
    /// URLs, connections its credentials.
    pub fn point_job_at(&self, mut job: Job) -> Job {
        for (id, step) in job.steps.iter_mut() {
            match &mut step.kind {
                StepKind::SasFlow(s) => s.url = Secret::new(self.flow_url(id)),
                StepKind::Webhook(s) => s.url = Secret::new(self.hook_url(id)),
                _ => {}
            }
        }
        for conn in job.connections.values_mut() {
            self.simulate_credentials(&mut conn.credentials);
        }
        job
    }

    /// `credentials` replaced by ones this simulator accepts, of the same kind of identity:
    /// a managed identity is kept (the simulator serves IMDS), a token given as is or the
    /// Azure CLI's (a signed-in user) becomes the simulator's user token, so what the
    /// service allows users only still works (and what it refuses app identities is still
    /// refused); any other becomes the simulator's client credentials.
    pub fn simulate_credentials(&self, credentials: &mut Credentials) {
        match credentials {
            Credentials::ManagedIdentity { .. } => {}
            Credentials::AccessToken { .. } | Credentials::AzureCli { .. } => {
                *credentials = Credentials::AccessToken {
                    access_token: Secret::new(self.user_token_for_any_audience()),
                };
            }
            _ => *credentials = self.job_credentials(),
        }
    }

    /// A client configuration that sends every call (Power BI, Fabric, Entra, IMDS) here.
    pub fn client_config(&self) -> Result<ClientConfig, url::ParseError> {
        let base = url::Url::parse(&self.base_url())?;
        Ok(ClientConfig::for_cloud(Default::default()).with_single_base(&base))
    }

    /// The client credentials this simulator accepts, as a job connection's.
    pub fn job_credentials(&self) -> Credentials {
        Credentials::ClientSecret {
            tenant_id: self.tenant_id(),
            client_id: self.client_id(),
            client_secret: Secret::new(self.client_secret()),
        }
    }
}

/// The resource a refresh step (`dataset`, `dataflow`, `fabric_job`) works on: its
/// workspace, the item, and whether it is a Fabric item (provisioned after the Power BI ones).
fn refreshed(kind: &StepKind) -> Option<(&str, WantedItem, bool)> {
    match kind {
        StepKind::Dataset(s) => Some((
            s.workspace.as_str(),
            WantedItem::Dataset(s.dataset.clone()),
            false,
        )),
        StepKind::Dataflow(s) => {
            let item = match s.generation {
                Generation::Gen1 => WantedItem::Dataflow(s.dataflow.clone()),
                Generation::Gen2 => WantedItem::FabricDataflow(s.dataflow.clone()),
            };
            Some((s.workspace.as_str(), item, false))
        }
        StepKind::FabricJob(s) => Some((
            s.workspace.as_str(),
            WantedItem::FabricItem {
                name: s.item.clone(),
                item_type: s.item_type.fabric_type().to_string(),
            },
            true,
        )),
        _ => None,
    }
}

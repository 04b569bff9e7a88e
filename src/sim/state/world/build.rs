//! Building the simulated estate from a profile: workspaces and items, the reports' models,
//! the past runs a first run can read, and the runs already going when it starts.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{World, collapse_whitespace, scheduled_run_kind};
use crate::sim::introspect::{Counters, ResourceCounters};
use crate::sim::profile::{OutcomeSpec, Profile, ResolvedKnobs, StartedBy};
use crate::sim::state::model::{Flow, Hook, Item, ItemKind, RefreshOrigin, Run, Workspace};
use crate::sim::state::{Clock, base64url, derived_uuid};

impl World {
    /// Builds the estate a profile describes; runs marked `running_at_start` begin now.
    pub(crate) fn build(profile: &Profile, clock: &Clock) -> World {
        let mut world = World {
            workspaces: Vec::new(),
            items: Vec::new(),
            item_by_id: HashMap::new(),
            runs: Vec::new(),
            run_by_id: HashMap::new(),
            runs_of_item: HashMap::new(),
            flows: Vec::new(),
            hooks: Vec::new(),
            capacities: profile
                .capacities
                .iter()
                .map(|(name, spec)| crate::sim::state::Capacity::from_spec(name, spec))
                .collect(),
            arm_operations: Vec::new(),
            tokens: HashMap::new(),
            any_audience: Default::default(),
            counters: Counters::default(),
            requests: VecDeque::new(),
            rng: StdRng::seed_from_u64(profile.seed),
            api_calls: 0,
            dataset_queries: HashMap::new(),
            execute_queries: profile.execute_queries.clone(),
            query_times: HashMap::new(),
            next_history_id: 1_277_491_253,
            seed: profile.seed,
            time_scale: profile.time_scale,
        };
        let defaults = &profile.defaults;
        for (ws_name, spec) in &profile.workspaces {
            let ws = world.workspaces.len();
            world.workspaces.push(Workspace {
                id: spec
                    .id
                    .unwrap_or_else(|| derived_uuid(&["workspace", ws_name])),
                name: ws_name.clone(),
                shared_capacity: spec.shared_capacity,
                capacity: spec
                    .capacity
                    .as_ref()
                    .and_then(|c| profile.capacities.get_index_of(c)),
            });
            for (name, d) in &spec.datasets {
                let id =
                    d.id.unwrap_or_else(|| derived_uuid(&["dataset", ws_name, name]));
                let index = world.add_item(
                    ws,
                    id,
                    name,
                    ItemKind::Dataset {
                        tables: d.tables.clone(),
                        upstream: d.upstream_dataflows.clone(),
                        refreshable: d.refreshable.unwrap_or(true),
                        rls_roles: d.rls_roles.clone(),
                    },
                    d.knobs().resolve(defaults),
                    "dataset",
                );
                if !d.queries.is_empty() {
                    let answers = d
                        .queries
                        .iter()
                        .map(|(q, rows)| {
                            let rows = rows.iter().cloned().map(serde_json::Value::Object);
                            (collapse_whitespace(q), rows.collect())
                        })
                        .collect();
                    world.dataset_queries.insert(index, answers);
                }
            }
            for (name, d) in &spec.dataflows {
                let id =
                    d.id.unwrap_or_else(|| derived_uuid(&["dataflow", ws_name, name]));
                world.add_item(
                    ws,
                    id,
                    name,
                    ItemKind::Dataflow {
                        upstream: d.upstream_dataflows.clone(),
                    },
                    d.knobs().resolve(defaults),
                    "dataflow",
                );
            }
            for (name, d) in &spec.fabric_dataflows {
                let id =
                    d.id.unwrap_or_else(|| derived_uuid(&["fabric_dataflow", ws_name, name]));
                world.add_item(
                    ws,
                    id,
                    name,
                    ItemKind::FabricDataflow,
                    d.knobs().resolve(defaults),
                    "fabric_dataflow",
                );
            }
            for (name, i) in &spec.items {
                let id =
                    i.id.unwrap_or_else(|| derived_uuid(&["item", ws_name, name]));
                world.add_item(
                    ws,
                    id,
                    name,
                    ItemKind::Other {
                        item_type: i.item_type.clone(),
                        job_types: i.job_types.clone(),
                    },
                    i.knobs().resolve(defaults),
                    "item",
                );
            }
            for (name, r) in &spec.reports {
                let id =
                    r.id.unwrap_or_else(|| derived_uuid(&["report", ws_name, name]));
                // A paginated report reads a model only when the profile names one (its
                // data source); the service lists no `datasetId` for it either way.
                let dataset = if r.paginated && r.dataset.is_none() {
                    None
                } else {
                    Some(world.dataset_for_report(ws, name, r.dataset.as_deref(), defaults))
                };
                world.add_item(
                    ws,
                    id,
                    name,
                    ItemKind::Report {
                        dataset,
                        paginated: r.paginated,
                    },
                    r.knobs().resolve(defaults),
                    "report",
                );
            }
        }
        for (name, f) in &profile.flows {
            world.flows.push(Flow {
                name: name.clone(),
                id: f
                    .id
                    .clone()
                    .unwrap_or_else(|| derived_uuid(&["flow", name]).simple().to_string()),
                sig: f.sig.clone().unwrap_or_else(|| {
                    let digest =
                        Sha256::digest(format!("sig\u{0}{}\u{0}{name}", profile.seed).as_bytes());
                    base64url(&digest)
                }),
                oauth: f.oauth,
                statuses: f.statuses.clone(),
                starts_dataflow: f
                    .starts_dataflow
                    .as_ref()
                    .map(|d| (d.workspace.clone(), d.dataflow.clone())),
                delay: f.delay.map(|d| d.0).unwrap_or(Duration::ZERO),
                calls: 0,
            });
        }
        for (name, h) in &profile.hooks {
            world.hooks.push(Hook {
                name: name.clone(),
                statuses: h.statuses.clone(),
                expects: match h.kind {
                    crate::sim::profile::HookKind::Any => crate::sim::cards::Expects::Any,
                    crate::sim::profile::HookKind::Teams => crate::sim::cards::Expects::Teams,
                    crate::sim::profile::HookKind::Slack => crate::sim::cards::Expects::Slack,
                },
                calls: 0,
            });
        }
        world.add_past_runs(clock);
        world.start_running_at_start(clock);
        world
    }

    fn add_item(
        &mut self,
        workspace: usize,
        id: Uuid,
        name: &str,
        kind: ItemKind,
        knobs: ResolvedKnobs,
        counter_kind: &str,
    ) -> usize {
        let index = self.items.len();
        let counter_key = crate::sim::introspect::resource_key(
            counter_kind,
            &self.workspaces[workspace].name,
            name,
        );
        self.counters
            .resources
            .insert(counter_key.clone(), ResourceCounters::default());
        self.items.push(Item {
            id,
            workspace,
            name: name.to_string(),
            kind,
            knobs,
            triggers: 0,
            counter_key,
        });
        self.item_by_id.insert(id, index);
        index
    }

    /// The dataset a report shows: named, same name, first in the workspace, or a new one.
    fn dataset_for_report(
        &mut self,
        ws: usize,
        report: &str,
        named: Option<&str>,
        defaults: &crate::sim::profile::Knobs,
    ) -> Uuid {
        let in_ws = |w: &World, name: &str| {
            w.items
                .iter()
                .find(|i| {
                    i.workspace == ws
                        && i.name == name
                        && matches!(i.kind, ItemKind::Dataset { .. })
                })
                .map(|i| i.id)
        };
        if let Some(id) = named.and_then(|n| in_ws(self, n)) {
            return id;
        }
        if let Some(id) = in_ws(self, report) {
            return id;
        }
        if let Some(first) = self
            .items
            .iter()
            .find(|i| i.workspace == ws && matches!(i.kind, ItemKind::Dataset { .. }))
        {
            return first.id;
        }
        let ws_name = self.workspaces[ws].name.clone();
        let id = derived_uuid(&["dataset", &ws_name, report]);
        self.add_item(
            ws,
            id,
            report,
            ItemKind::Dataset {
                tables: Vec::new(),
                upstream: Vec::new(),
                refreshable: true,
                rls_roles: Vec::new(),
            },
            crate::sim::profile::Knobs::default().resolve(defaults),
            "dataset",
        );
        id
    }

    /// `past_runs`: successful runs that ended before the start, newest an hour before it.
    fn add_past_runs(&mut self, clock: &Clock) {
        let now = clock.start();
        for index in 0..self.items.len() {
            let item = &self.items[index];
            let Some(kind) = scheduled_run_kind(item, RefreshOrigin::Scheduled) else {
                continue;
            };
            // Oldest first, so the history lists the newest first like the service.
            for k in (1..=u64::from(item.knobs.past_runs)).rev() {
                let duration = self.draw_past(index, k);
                let ended = Duration::from_secs(3600 * k);
                let Some(created) = now.checked_sub(ended + duration) else {
                    continue;
                };
                let id = self.new_run_id(&kind, created, clock);
                self.push_run(Run {
                    id,
                    item: index,
                    kind: kind.clone(),
                    created,
                    queue: Duration::ZERO,
                    duration: Some(duration),
                    outcome: OutcomeSpec::Succeed,
                    visible_after: Duration::ZERO,
                    cancelled: None,
                    history_id: 0,
                });
            }
        }
    }

    fn start_running_at_start(&mut self, clock: &Clock) {
        let now = clock.start();
        for index in 0..self.items.len() {
            let item = &self.items[index];
            if !item.knobs.running_at_start {
                continue;
            }
            let origin = match item.knobs.running_at_start_by {
                StartedBy::Schedule => RefreshOrigin::Scheduled,
                StartedBy::Api => RefreshOrigin::ViaApi,
                StartedBy::EnhancedApi => RefreshOrigin::ViaEnhancedApi,
            };
            let Some(kind) = scheduled_run_kind(item, origin) else {
                continue;
            };
            let (duration, _) = self.draw(index, u64::MAX);
            let never = self.items[index].knobs.never_ends;
            let id = self.new_run_id(&kind, now, clock);
            self.push_run(Run {
                id,
                item: index,
                kind,
                created: now,
                queue: Duration::ZERO,
                duration: if never { None } else { Some(duration) },
                outcome: OutcomeSpec::Succeed,
                visible_after: Duration::ZERO,
                cancelled: None,
                history_id: 0,
            });
        }
    }
}

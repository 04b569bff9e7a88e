//! The mutable world: builds the estate from a profile and starts, finds and counts runs.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use uuid::Uuid;

use super::model::{
    EnhancedRequest, Flow, Hook, Item, ItemKind, RefreshOrigin, Run, RunKind, TokenInfo, Workspace,
};
use super::{Clock, base64url, derived_u64, derived_uuid, fabric_time};
use crate::sim::introspect::{Counters, RecordedRequest, ResourceCounters};
use crate::sim::profile::{OutcomeSpec, Profile, ResolvedKnobs, StartedBy};

/// Everything that changes while the simulator runs (behind one mutex: requests are short).
pub(crate) struct World {
    pub workspaces: Vec<Workspace>,
    pub items: Vec<Item>,
    item_by_id: HashMap<Uuid, usize>,
    pub runs: Vec<Run>,
    run_by_id: HashMap<String, usize>,
    /// Runs of each item, oldest first.
    runs_of_item: HashMap<usize, Vec<usize>>,
    pub flows: Vec<Flow>,
    pub hooks: Vec<Hook>,
    /// Fabric capacities (ARM) and the operations started on them, oldest first.
    pub capacities: Vec<super::Capacity>,
    pub arm_operations: Vec<super::ArmOperation>,
    pub tokens: HashMap<String, TokenInfo>,
    /// User tokens that stand for a static `access_token` under `run --simulate`: the
    /// simulator cannot know the real token's audience, so they pass either API.
    pub any_audience: std::collections::HashSet<String>,
    pub counters: Counters,
    pub requests: VecDeque<RecordedRequest>,
    /// Draws for global fractions (throttling, 503s, drops, latency ranges).
    pub rng: StdRng,
    /// Power BI / Fabric calls so far (for `throttle.every`).
    pub api_calls: u64,
    /// `executeQueries` answers per dataset item index: (whitespace-collapsed query, rows).
    pub dataset_queries: HashMap<usize, Vec<(String, Vec<serde_json::Value>)>>,
    /// The Execute Queries settings of the profile.
    pub execute_queries: crate::sim::profile::ExecuteQueriesSpec,
    /// When each caller kind's recent queries came (the per-minute limit).
    pub query_times: HashMap<u8, VecDeque<tokio::time::Instant>>,
    next_history_id: i64,
    seed: u64,
    time_scale: f64,
}

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
                .map(|(name, spec)| super::Capacity::from_spec(name, spec))
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

    /// The per-attempt draws of an item: (scaled duration, dropped?). Deterministic for a
    /// seed, an item and an attempt number, whatever the order of concurrent requests.
    fn draw(&self, item: usize, attempt: u64) -> (Duration, bool) {
        let it = &self.items[item];
        let mix = derived_u64(self.seed, &[&it.id.to_string(), &attempt.to_string()]);
        let mut rng = StdRng::seed_from_u64(mix);
        let unit: f64 = rng.random();
        let drop_draw: f64 = rng.random();
        let duration = self.scale(it.knobs.duration.pick(unit));
        (duration, drop_draw < it.knobs.drop_probability)
    }

    /// The duration of the `k`-th past run of an item (`past_duration`), like [`Self::draw`].
    fn draw_past(&self, item: usize, k: u64) -> Duration {
        let it = &self.items[item];
        let mix = derived_u64(self.seed, &[&it.id.to_string(), "past", &k.to_string()]);
        let unit: f64 = StdRng::seed_from_u64(mix).random();
        self.scale(it.knobs.past_duration.pick(unit))
    }

    /// Divides a simulated duration by `time_scale`.
    pub(crate) fn scale(&self, d: Duration) -> Duration {
        Duration::from_secs_f64(d.as_secs_f64() / self.time_scale)
    }

    fn new_run_id(&mut self, kind: &RunKind, now: Instant, clock: &Clock) -> String {
        let n = self.runs.len() as u64;
        match kind {
            // Observed shape: `2020-08-27T16:07:47.2487692Z@<guid>$2`.
            RunKind::Transaction { .. } => format!(
                "{}Z@{}${}",
                fabric_time(clock.wall(now)),
                derived_uuid(&["txn", &self.seed.to_string(), &n.to_string()]),
                n + 1
            ),
            // Opaque, base64-like, with characters that must be URL-encoded.
            RunKind::Export { .. } => {
                let raw = derived_uuid(&["export", &self.seed.to_string(), &n.to_string()]);
                let mut id = base64url(raw.as_bytes())
                    .replace('-', "+")
                    .replace('_', "/");
                id.push('=');
                id
            }
            _ => derived_uuid(&["run", &self.seed.to_string(), &n.to_string()]).to_string(),
        }
    }

    fn push_run(&mut self, mut run: Run) -> usize {
        let index = self.runs.len();
        if matches!(run.kind, RunKind::Refresh { .. }) {
            run.history_id = self.next_history_id;
            self.next_history_id += 1;
        }
        self.run_by_id.insert(run.id.clone(), index);
        self.runs_of_item.entry(run.item).or_default().push(index);
        self.runs.push(run);
        index
    }

    /// Starts a new run of an item for its next attempt. Returns the run index, or `None`
    /// when the trigger is silently dropped.
    pub(crate) fn trigger(&mut self, item: usize, kind: RunKind, clock: &Clock) -> Option<usize> {
        self.trigger_after(item, kind, clock, Duration::ZERO)
    }

    /// [`World::trigger`] for a run that begins `delay` from now (a flow's dataflow refresh).
    pub(crate) fn trigger_after(
        &mut self,
        item: usize,
        kind: RunKind,
        clock: &Clock,
        delay: Duration,
    ) -> Option<usize> {
        let attempt = self.items[item].triggers;
        self.items[item].triggers += 1;
        self.count(item, |c| c.triggers += 1);
        let (duration, dropped) = self.draw(item, attempt);
        // Power BI drops refresh requests under load; exports and Fabric jobs are not dropped.
        let droppable = matches!(kind, RunKind::Refresh { .. } | RunKind::Transaction { .. });
        if dropped && droppable {
            return None;
        }
        let knobs = &self.items[item].knobs;
        let outcome = knobs
            .outcomes
            .get(attempt as usize)
            .or(knobs.outcomes.last())
            .cloned()
            .unwrap_or_default();
        let never = knobs.never_ends;
        let queue = self.scale(knobs.queue_time);
        let lag = self.scale(knobs.history_lag);
        let now = clock.now() + self.scale(delay);
        let id = self.new_run_id(&kind, now, clock);
        Some(self.push_run(Run {
            id,
            item,
            kind,
            created: now,
            queue,
            duration: if never { None } else { Some(duration) },
            outcome,
            visible_after: lag,
            cancelled: None,
            history_id: 0,
        }))
    }

    /// A run that ends at once, e.g. a Deduped job instance.
    pub(crate) fn record_instant(&mut self, item: usize, kind: RunKind, clock: &Clock) -> usize {
        self.count(item, |c| c.triggers += 1);
        let now = clock.now();
        let id = self.new_run_id(&kind, now, clock);
        self.push_run(Run {
            id,
            item,
            kind,
            created: now,
            queue: Duration::ZERO,
            duration: Some(Duration::ZERO),
            outcome: OutcomeSpec::Succeed,
            visible_after: Duration::ZERO,
            cancelled: None,
            history_id: 0,
        })
    }

    /// Runs of an item, newest first.
    pub(crate) fn runs_of(&self, item: usize) -> impl Iterator<Item = (usize, &Run)> {
        self.runs_of_item
            .get(&item)
            .into_iter()
            .flat_map(|v| v.iter().rev())
            .map(|&i| (i, &self.runs[i]))
    }

    /// The run of an item still going at `now` (the newest one), if any.
    pub(crate) fn active_run(&self, item: usize, now: Instant) -> Option<usize> {
        self.runs_of(item)
            .find(|(_, r)| !r.phase(now).is_terminal())
            .map(|(i, _)| i)
    }

    pub(crate) fn run_by_id(&self, id: &str) -> Option<usize> {
        self.run_by_id.get(id).copied()
    }

    pub(crate) fn item_by_id(&self, id: Uuid) -> Option<usize> {
        self.item_by_id.get(&id).copied()
    }

    /// A workspace by GUID string (as in a URL).
    pub(crate) fn workspace_by_id(&self, id: &str) -> Option<usize> {
        let id = Uuid::parse_str(id).ok()?;
        self.workspaces.iter().position(|w| w.id == id)
    }

    /// An item of a workspace by GUID string.
    pub(crate) fn item_in(&self, ws: usize, id: &str) -> Option<usize> {
        let id = Uuid::parse_str(id).ok()?;
        self.item_by_id(id)
            .filter(|&i| self.items[i].workspace == ws)
    }

    /// An item by workspace and item name or GUID (for flows wired to a dataflow).
    pub(crate) fn find_named(&self, workspace: &str, name: &str) -> Option<usize> {
        let ws = self
            .workspaces
            .iter()
            .position(|w| w.name == workspace || w.id.to_string() == workspace)?;
        self.items.iter().position(|i| {
            i.workspace == ws
                && matches!(i.kind, ItemKind::Dataflow { .. })
                && (i.name == name || i.id.to_string() == name)
        })
    }

    /// A Gen1 dataflow by name: first in `ws`, then anywhere.
    pub(crate) fn dataflow_named(&self, ws: usize, name: &str) -> Option<usize> {
        let is_df = |i: &Item| {
            matches!(i.kind, ItemKind::Dataflow { .. })
                && (i.name == name || i.id.to_string() == name)
        };
        self.items
            .iter()
            .position(|i| i.workspace == ws && is_df(i))
            .or_else(|| self.items.iter().position(is_df))
    }

    /// Bumps a resource's counters.
    pub(crate) fn count(&mut self, item: usize, f: impl FnOnce(&mut ResourceCounters)) {
        let key = &self.items[item].counter_key;
        if let Some(c) = self.counters.resources.get_mut(key) {
            f(c);
        }
    }

    /// Bumps a named (flow / hook) resource's counters.
    pub(crate) fn count_key(&mut self, key: &str, f: impl FnOnce(&mut ResourceCounters)) {
        f(self.counters.resources.entry(key.to_string()).or_default());
    }

    /// Retry-After seconds for a run: the knob, else the remaining time rounded up (max 60).
    pub(crate) fn retry_after(&self, run: usize, now: Instant) -> u64 {
        let r = &self.runs[run];
        if let Some(v) = self.items[r.item].knobs.retry_after {
            return v;
        }
        match r.remaining(now) {
            Some(rem) => rem.as_secs_f64().ceil().clamp(0.0, 60.0) as u64,
            None => 60,
        }
    }

    /// Records a request, forgetting the oldest beyond `limit`.
    pub(crate) fn record(&mut self, request: RecordedRequest, limit: usize) {
        if limit == 0 {
            return;
        }
        while self.requests.len() >= limit {
            self.requests.pop_front();
        }
        self.requests.push_back(request);
    }
}

/// The run an item has without a trigger of ours (running at start, or in its past
/// history): a dataset refresh started by `origin`, a scheduled Gen1 transaction, or a
/// scheduled job of the item's own type. Reports have none.
fn scheduled_run_kind(item: &Item, origin: RefreshOrigin) -> Option<RunKind> {
    Some(match &item.kind {
        ItemKind::Dataset { .. } => RunKind::Refresh {
            origin,
            enhanced: (origin == RefreshOrigin::ViaEnhancedApi).then(EnhancedRequest::default),
        },
        ItemKind::Dataflow { .. } => RunKind::Transaction { scheduled: true },
        ItemKind::FabricDataflow | ItemKind::Other { .. } => RunKind::Job {
            job_type: item.job_type("Execute").unwrap_or_else(|| {
                item.job_type("DefaultJob")
                    .unwrap_or_else(|| "DefaultJob".to_string())
            }),
            scheduled: true,
            deduped: false,
        },
        ItemKind::Report { .. } => return None,
    })
}

/// `text` with every run of whitespace made one space, trimmed: how the simulator matches a
/// query against the profile's answers.
pub(crate) fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

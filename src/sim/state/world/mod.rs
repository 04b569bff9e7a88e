//! The mutable world: builds the estate from a profile and starts, finds and counts runs.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;
use uuid::Uuid;

use super::model::{
    EnhancedRequest, Flow, Hook, Item, ItemKind, RefreshOrigin, Run, RunKind, TokenInfo, Workspace,
};
use super::{Clock, base64url, derived_u64, derived_uuid, fabric_time};
use crate::sim::introspect::{Counters, RecordedRequest, ResourceCounters};
use crate::sim::profile::OutcomeSpec;

mod build;

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

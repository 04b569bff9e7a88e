//! The simulated estate and its clock: workspaces, items, runs (refreshes, transactions,
//! exports, job instances), tokens, counters and recorded requests.
//!
//! Runs are not driven by timers: each run records when it was created and how long it
//! takes, and its phase is computed from the clock when asked. That keeps the simulator
//! cheap, exact and compatible with `tokio::time::pause()`.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use uuid::Uuid;

use super::introspect::{Counters, RecordedRequest, ResourceCounters};
use super::profile::{
    Credentials, DurationSpec, OutcomeSpec, Profile, ResolvedKnobs, StartedBy, Throttle,
};

/// Settings fixed for the simulator's lifetime.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// `http://127.0.0.1:PORT`, used in `Location` headers and continuation URIs.
    pub base_url: String,
    pub credentials: Credentials,
    pub token_lifetime: Duration,
    pub latency: DurationSpec,
    pub throttle: Option<Throttle>,
    pub transient_503: f64,
    pub connection_drop: f64,
    pub page_size: usize,
    pub strict_audience: bool,
    pub gen2_user_token_only: bool,
    pub max_recorded_requests: usize,
    pub seed: u64,
}

/// Simulated time: a monotonic instant (tokio's, so tests may pause it) plus the wall-clock
/// time it corresponds to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start: Instant,
    wall: DateTime<Utc>,
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            start: Instant::now(),
            wall: Utc::now(),
        }
    }

    pub fn now(&self) -> Instant {
        Instant::now()
    }

    /// The wall-clock time of `at`.
    pub fn wall(&self, at: Instant) -> DateTime<Utc> {
        let since = at.saturating_duration_since(self.start);
        self.wall + chrono::Duration::from_std(since).unwrap_or_default()
    }

    pub fn start(&self) -> Instant {
        self.start
    }
}

/// Power BI timestamps: `2024-05-01T10:00:00.123Z`.
pub(crate) fn pbi_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Fabric job timestamps: 7 fractional digits and no `Z` (powerbi-api.md section 0).
pub(crate) fn fabric_time(t: DateTime<Utc>) -> String {
    format!(
        "{}.{:07}",
        t.format("%Y-%m-%dT%H:%M:%S"),
        t.timestamp_subsec_nanos() / 100
    )
}

/// A stable GUID from names, so the same profile always yields the same ids.
pub(crate) fn derived_uuid(parts: &[&str]) -> Uuid {
    let digest = Sha256::digest(parts.join("\u{0}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// A 64-bit number from names and a seed (for per-resource random streams).
pub(crate) fn derived_u64(seed: u64, parts: &[&str]) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(seed.to_le_bytes());
    hasher.update(parts.join("\u{0}").as_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(bytes)
}

/// Unpadded base64url (JWT-shaped tokens, SAS signatures, export ids).
pub(crate) fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A workspace (Power BI group = Fabric workspace).
#[derive(Debug, Clone)]
pub(crate) struct Workspace {
    pub id: Uuid,
    pub name: String,
    pub shared_capacity: bool,
}

/// What an item is.
#[derive(Debug, Clone)]
pub(crate) enum ItemKind {
    Dataset {
        tables: Vec<String>,
        upstream: Vec<String>,
    },
    /// Gen1 dataflow (Power BI only; not a Fabric item).
    Dataflow { upstream: Vec<String> },
    /// Dataflow Gen2 (Fabric item type `Dataflow`).
    FabricDataflow,
    Report {
        dataset: Option<Uuid>,
        paginated: bool,
    },
    /// Any other Fabric item that runs jobs.
    Other {
        item_type: String,
        job_types: Vec<String>,
    },
}

/// One item of a workspace.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub id: Uuid,
    /// Index into [`World::workspaces`].
    pub workspace: usize,
    pub name: String,
    pub kind: ItemKind,
    pub knobs: ResolvedKnobs,
    /// Triggers so far (picks the next outcome).
    pub triggers: u64,
    /// Key in [`Counters::resources`].
    pub counter_key: String,
}

impl Item {
    /// The Fabric item type, or `None` for what Fabric does not list (Gen1 dataflows).
    pub fn fabric_type(&self) -> Option<&str> {
        match &self.kind {
            ItemKind::Dataset { .. } => Some("SemanticModel"),
            ItemKind::Dataflow { .. } => None,
            ItemKind::FabricDataflow => Some("Dataflow"),
            ItemKind::Report {
                paginated: false, ..
            } => Some("Report"),
            ItemKind::Report {
                paginated: true, ..
            } => Some("PaginatedReport"),
            ItemKind::Other { item_type, .. } => Some(item_type),
        }
    }

    /// Canonical job type for a requested one, or `None` when the item does not run it.
    /// `Refresh` is an alias of `Execute` for dataflows (powerbi-api.md 3b).
    pub fn job_type(&self, requested: &str) -> Option<String> {
        let accepted: Vec<&str> = match &self.kind {
            ItemKind::FabricDataflow => vec!["Execute", "ApplyChanges"],
            ItemKind::Other {
                item_type,
                job_types,
            } if job_types.is_empty() => match item_type.as_str() {
                "DataPipeline" => vec!["Pipeline", "Execute"],
                "Notebook" => vec!["RunNotebook"],
                _ => vec!["DefaultJob"],
            },
            ItemKind::Other { job_types, .. } => job_types.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        let wanted = match (&self.kind, requested.to_ascii_lowercase().as_str()) {
            (ItemKind::FabricDataflow, "refresh") => "execute".to_string(),
            (ItemKind::FabricDataflow, "publish") => "applychanges".to_string(),
            (_, other) => other.to_string(),
        };
        accepted
            .into_iter()
            .find(|a| a.eq_ignore_ascii_case(&wanted))
            .map(str::to_string)
    }
}

/// How a dataset refresh was started (history `refreshType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshOrigin {
    Scheduled,
    ViaApi,
    ViaEnhancedApi,
}

impl RefreshOrigin {
    pub fn wire(self) -> &'static str {
        match self {
            RefreshOrigin::Scheduled => "Scheduled",
            RefreshOrigin::ViaApi => "ViaApi",
            RefreshOrigin::ViaEnhancedApi => "ViaEnhancedApi",
        }
    }
}

/// The parameters of an enhanced refresh, as echoed by execution details.
#[derive(Debug, Clone, Default)]
pub(crate) struct EnhancedRequest {
    pub refresh_type: String,
    pub commit_mode: String,
    pub objects: Vec<(String, Option<String>)>,
}

/// What a run is.
#[derive(Debug, Clone)]
pub(crate) enum RunKind {
    Refresh {
        origin: RefreshOrigin,
        enhanced: Option<EnhancedRequest>,
    },
    Transaction {
        /// Started by the schedule (running at start) rather than on demand.
        scheduled: bool,
    },
    Export {
        format: String,
    },
    Job {
        job_type: String,
        scheduled: bool,
        deduped: bool,
    },
}

/// One refresh / transaction / export / job instance.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub id: String,
    /// Index into [`World::items`].
    pub item: usize,
    pub kind: RunKind,
    pub created: Instant,
    /// `NotStarted` time (already scaled).
    pub queue: Duration,
    /// Running time (already scaled); `None` never ends.
    pub duration: Option<Duration>,
    pub outcome: OutcomeSpec,
    /// Hidden from history / transactions until `created + visible_after`.
    pub visible_after: Duration,
    pub cancelled: Option<Instant>,
    /// History `id` (an integer the client must not use).
    pub history_id: i64,
}

/// Where a run is at some instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    Queued,
    Running,
    Succeeded,
    Failed {
        code: String,
        message: String,
    },
    TimedOut,
    /// Export failed because the service is busy: resubmit after Retry-After.
    Busy,
    Cancelled,
    Deduped,
}

impl Phase {
    pub fn is_terminal(&self) -> bool {
        !matches!(self, Phase::Queued | Phase::Running)
    }
}

impl Run {
    /// When it ends (or ended) on its own, if ever.
    pub fn natural_end(&self) -> Option<Instant> {
        self.duration.map(|d| self.created + self.queue + d)
    }

    /// When it ended, if it has by `now`.
    pub fn ended_at(&self, now: Instant) -> Option<Instant> {
        let natural = self.natural_end().filter(|end| *end <= now);
        match (self.cancelled, natural) {
            (Some(c), Some(n)) => Some(c.min(n)),
            (Some(c), None) => Some(c),
            (None, n) => n,
        }
    }

    /// When it started running (after the queue).
    pub fn started_at(&self) -> Instant {
        self.created + self.queue
    }

    pub fn visible(&self, now: Instant) -> bool {
        now >= self.created + self.visible_after
    }

    /// Time until it ends on its own (`None` when it never does).
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        self.natural_end()
            .map(|end| end.saturating_duration_since(now))
    }

    pub fn phase(&self, now: Instant) -> Phase {
        if let RunKind::Job { deduped: true, .. } = self.kind {
            return Phase::Deduped;
        }
        let natural = self.natural_end().filter(|end| *end <= now);
        if let Some(c) = self.cancelled
            && natural.is_none_or(|n| c < n)
        {
            return Phase::Cancelled;
        }
        if natural.is_none() {
            return if now < self.started_at() {
                Phase::Queued
            } else {
                Phase::Running
            };
        }
        match &self.outcome {
            OutcomeSpec::Succeed => Phase::Succeeded,
            OutcomeSpec::TimedOut => Phase::TimedOut,
            OutcomeSpec::Busy => Phase::Busy,
            OutcomeSpec::Fail { code, message } => {
                let (dcode, dmessage) = default_failure(&self.kind);
                Phase::Failed {
                    code: code.clone().unwrap_or_else(|| dcode.to_string()),
                    message: message.clone().unwrap_or_else(|| dmessage.to_string()),
                }
            }
        }
    }
}

/// The error a failed run reports when the profile gives no code or message.
fn default_failure(kind: &RunKind) -> (&'static str, &'static str) {
    match kind {
        RunKind::Refresh { .. } => (
            "ModelRefreshFailed_CredentialsNotSpecified",
            "The credentials provided for the data source are invalid. (simulated)",
        ),
        RunKind::Transaction { .. } => (
            "DataflowRefreshFailed",
            "Error: The dataflow refresh failed. (simulated)",
        ),
        RunKind::Export { .. } => ("ExportFailed", "The export failed. (simulated)"),
        RunKind::Job { .. } => ("JobFailed", "The job instance failed. (simulated)"),
    }
}

/// Who holds a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Principal {
    /// A service principal (client credentials).
    App,
    ManagedIdentity,
    User,
}

/// Which API a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audience {
    PowerBi,
    Fabric,
    Flow,
}

impl Audience {
    /// The audience of a resource URI (`https://analysis.windows.net/powerbi/api`).
    pub fn from_resource(resource: &str) -> Option<Audience> {
        match resource.trim_end_matches('/') {
            "https://analysis.windows.net/powerbi/api" => Some(Audience::PowerBi),
            "https://api.fabric.microsoft.com" => Some(Audience::Fabric),
            "https://service.flow.microsoft.com" => Some(Audience::Flow),
            _ => None,
        }
    }

    pub fn uri(self) -> &'static str {
        match self {
            Audience::PowerBi => "https://analysis.windows.net/powerbi/api",
            Audience::Fabric => "https://api.fabric.microsoft.com",
            Audience::Flow => "https://service.flow.microsoft.com/",
        }
    }
}

/// An issued access token.
#[derive(Debug, Clone)]
pub(crate) struct TokenInfo {
    pub audience: Audience,
    pub principal: Principal,
    pub expires: Instant,
}

/// A flow (SAS trigger).
#[derive(Debug, Clone)]
pub(crate) struct Flow {
    pub name: String,
    pub id: String,
    pub sig: String,
    pub statuses: Vec<u16>,
    pub starts_dataflow: Option<(String, String)>,
    pub delay: Duration,
    pub calls: u64,
}

/// A webhook sink.
#[derive(Debug, Clone)]
pub(crate) struct Hook {
    pub name: String,
    pub statuses: Vec<u16>,
    pub calls: u64,
}

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
    pub tokens: HashMap<String, TokenInfo>,
    pub counters: Counters,
    pub requests: VecDeque<RecordedRequest>,
    /// Draws for global fractions (throttling, 503s, drops, latency ranges).
    pub rng: StdRng,
    /// Power BI / Fabric calls so far (for `throttle.every`).
    pub api_calls: u64,
    next_history_id: i64,
    seed: u64,
    time_scale: f64,
}

impl World {
    /// Builds the estate a profile describes; runs marked `running_at_start` begin now.
    pub fn build(profile: &Profile, clock: &Clock) -> World {
        let mut world = World {
            workspaces: Vec::new(),
            items: Vec::new(),
            item_by_id: HashMap::new(),
            runs: Vec::new(),
            run_by_id: HashMap::new(),
            runs_of_item: HashMap::new(),
            flows: Vec::new(),
            hooks: Vec::new(),
            tokens: HashMap::new(),
            counters: Counters::default(),
            requests: VecDeque::new(),
            rng: StdRng::seed_from_u64(profile.seed),
            api_calls: 0,
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
            });
            for (name, d) in &spec.datasets {
                let id =
                    d.id.unwrap_or_else(|| derived_uuid(&["dataset", ws_name, name]));
                world.add_item(
                    ws,
                    id,
                    name,
                    ItemKind::Dataset {
                        tables: d.tables.clone(),
                        upstream: d.upstream_dataflows.clone(),
                    },
                    d.knobs().resolve(defaults),
                    "dataset",
                );
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
                let dataset = if r.paginated {
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
                calls: 0,
            });
        }
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
        let counter_key =
            super::introspect::resource_key(counter_kind, &self.workspaces[workspace].name, name);
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
        defaults: &super::profile::Knobs,
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
            },
            super::profile::Knobs::default().resolve(defaults),
            "dataset",
        );
        id
    }

    fn start_running_at_start(&mut self, clock: &Clock) {
        let now = clock.start();
        for index in 0..self.items.len() {
            let item = &self.items[index];
            if !item.knobs.running_at_start {
                continue;
            }
            let kind = match &item.kind {
                ItemKind::Dataset { .. } => {
                    let origin = match item.knobs.running_at_start_by {
                        StartedBy::Schedule => RefreshOrigin::Scheduled,
                        StartedBy::Api => RefreshOrigin::ViaApi,
                        StartedBy::EnhancedApi => RefreshOrigin::ViaEnhancedApi,
                    };
                    RunKind::Refresh {
                        origin,
                        enhanced: (origin == RefreshOrigin::ViaEnhancedApi)
                            .then(EnhancedRequest::default),
                    }
                }
                ItemKind::Dataflow { .. } => RunKind::Transaction { scheduled: true },
                ItemKind::FabricDataflow | ItemKind::Other { .. } => RunKind::Job {
                    job_type: item.job_type("Execute").unwrap_or_else(|| {
                        item.job_type("DefaultJob")
                            .unwrap_or_else(|| "DefaultJob".to_string())
                    }),
                    scheduled: true,
                    deduped: false,
                },
                ItemKind::Report { .. } => continue,
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

    /// Divides a simulated duration by `time_scale`.
    pub fn scale(&self, d: Duration) -> Duration {
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
    pub fn trigger(&mut self, item: usize, kind: RunKind, clock: &Clock) -> Option<usize> {
        self.trigger_after(item, kind, clock, Duration::ZERO)
    }

    /// [`World::trigger`] for a run that begins `delay` from now (a flow's dataflow refresh).
    pub fn trigger_after(
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
    pub fn record_instant(&mut self, item: usize, kind: RunKind, clock: &Clock) -> usize {
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
    pub fn runs_of(&self, item: usize) -> impl Iterator<Item = (usize, &Run)> {
        self.runs_of_item
            .get(&item)
            .into_iter()
            .flat_map(|v| v.iter().rev())
            .map(|&i| (i, &self.runs[i]))
    }

    /// The run of an item still going at `now` (the newest one), if any.
    pub fn active_run(&self, item: usize, now: Instant) -> Option<usize> {
        self.runs_of(item)
            .find(|(_, r)| !r.phase(now).is_terminal())
            .map(|(i, _)| i)
    }

    pub fn run_by_id(&self, id: &str) -> Option<usize> {
        self.run_by_id.get(id).copied()
    }

    pub fn item_by_id(&self, id: Uuid) -> Option<usize> {
        self.item_by_id.get(&id).copied()
    }

    /// A workspace by GUID string (as in a URL).
    pub fn workspace_by_id(&self, id: &str) -> Option<usize> {
        let id = Uuid::parse_str(id).ok()?;
        self.workspaces.iter().position(|w| w.id == id)
    }

    /// An item of a workspace by GUID string.
    pub fn item_in(&self, ws: usize, id: &str) -> Option<usize> {
        let id = Uuid::parse_str(id).ok()?;
        self.item_by_id(id)
            .filter(|&i| self.items[i].workspace == ws)
    }

    /// An item by workspace and item name or GUID (for flows wired to a dataflow).
    pub fn find_named(&self, workspace: &str, name: &str) -> Option<usize> {
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
    pub fn dataflow_named(&self, ws: usize, name: &str) -> Option<usize> {
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
    pub fn count(&mut self, item: usize, f: impl FnOnce(&mut ResourceCounters)) {
        let key = &self.items[item].counter_key;
        if let Some(c) = self.counters.resources.get_mut(key) {
            f(c);
        }
    }

    /// Bumps a named (flow / hook) resource's counters.
    pub fn count_key(&mut self, key: &str, f: impl FnOnce(&mut ResourceCounters)) {
        f(self.counters.resources.entry(key.to_string()).or_default());
    }

    /// Retry-After seconds for a run: the knob, else the remaining time rounded up (max 60).
    pub fn retry_after(&self, run: usize, now: Instant) -> u64 {
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
    pub fn record(&mut self, request: RecordedRequest, limit: usize) {
        if limit == 0 {
            return;
        }
        while self.requests.len() >= limit {
            self.requests.pop_front();
        }
        self.requests.push_back(request);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_known_values() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn fabric_time_has_seven_digits_and_no_zone() {
        let t = DateTime::parse_from_rfc3339("2023-04-22T06:35:00.7812154Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(fabric_time(t), "2023-04-22T06:35:00.7812154");
        assert_eq!(pbi_time(t), "2023-04-22T06:35:00.781Z");
    }

    #[test]
    fn ids_are_deterministic() {
        assert_eq!(derived_uuid(&["a", "b"]), derived_uuid(&["a", "b"]));
        assert_ne!(derived_uuid(&["a", "b"]), derived_uuid(&["ab"]));
    }
}

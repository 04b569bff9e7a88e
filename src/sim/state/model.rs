//! The estate's nouns: workspaces, items, runs and their phases, tokens, flows, hooks.

use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use crate::sim::profile::{OutcomeSpec, ResolvedKnobs};

/// A workspace (Power BI group = Fabric workspace).
#[derive(Debug, Clone)]
pub(crate) struct Workspace {
    pub id: Uuid,
    pub name: String,
    pub shared_capacity: bool,
    /// Index into `World::capacities`; `None` on a dedicated workspace means the built-in
    /// capacity nobody lists.
    pub capacity: Option<usize>,
}

/// What an item is.
#[derive(Debug, Clone)]
pub(crate) enum ItemKind {
    Dataset {
        tables: Vec<String>,
        upstream: Vec<String>,
        /// `isRefreshable` (false for DirectQuery and live connections).
        refreshable: bool,
        /// Row-level security roles of the model (none: no RLS).
        rls_roles: Vec<String>,
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
    pub(crate) fn fabric_type(&self) -> Option<&str> {
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
    pub(crate) fn job_type(&self, requested: &str) -> Option<String> {
        let accepted: Vec<&str> = match &self.kind {
            ItemKind::FabricDataflow => vec!["Execute", "ApplyChanges"],
            ItemKind::Other {
                item_type,
                job_types,
            } if job_types.is_empty() => match item_type.as_str() {
                "DataPipeline" => vec!["Pipeline", "Execute"],
                "Notebook" => vec!["RunNotebook", "Execute"],
                "SparkJobDefinition" => vec!["sparkjob"],
                "CopyJob" => vec!["CopyJob"],
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
    pub(crate) fn wire(self) -> &'static str {
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
    pub(crate) fn is_terminal(&self) -> bool {
        !matches!(self, Phase::Queued | Phase::Running)
    }
}

impl Run {
    /// When it ends (or ended) on its own, if ever.
    pub(crate) fn natural_end(&self) -> Option<Instant> {
        self.duration.map(|d| self.created + self.queue + d)
    }

    /// When it ended, if it has by `now`.
    pub(crate) fn ended_at(&self, now: Instant) -> Option<Instant> {
        let natural = self.natural_end().filter(|end| *end <= now);
        match (self.cancelled, natural) {
            (Some(c), Some(n)) => Some(c.min(n)),
            (Some(c), None) => Some(c),
            (None, n) => n,
        }
    }

    /// When it started running (after the queue).
    pub(crate) fn started_at(&self) -> Instant {
        self.created + self.queue
    }

    pub(crate) fn visible(&self, now: Instant) -> bool {
        now >= self.created + self.visible_after
    }

    /// Time until it ends on its own (`None` when it never does).
    pub(crate) fn remaining(&self, now: Instant) -> Option<Duration> {
        self.natural_end()
            .map(|end| end.saturating_duration_since(now))
    }

    pub(crate) fn phase(&self, now: Instant) -> Phase {
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
    /// `https://service.flow.microsoft.com` without its trailing slash: what Entra issues for
    /// the scope `https://service.flow.microsoft.com/.default` (one slash), which flow
    /// triggers refuse (powerbi-api.md pitfall 18).
    FlowWithoutSlash,
    /// Azure Resource Manager (`https://management.azure.com`).
    Management,
}

impl Audience {
    /// The audience of a resource URI (`https://analysis.windows.net/powerbi/api`).
    /// Sovereign clouds' resources count as the same API: the simulator stands in for
    /// every cloud.
    pub(crate) fn from_resource(resource: &str) -> Option<Audience> {
        match resource.trim_end_matches('/') {
            "https://analysis.windows.net/powerbi/api"
            | "https://analysis.usgovcloudapi.net/powerbi/api"
            | "https://high.analysis.usgovcloudapi.net/powerbi/api"
            | "https://mil.analysis.usgovcloudapi.net/powerbi/api"
            | "https://analysis.chinacloudapi.cn/powerbi/api" => Some(Audience::PowerBi),
            "https://api.fabric.microsoft.com"
            | "https://api.fabric.microsoft.us"
            | "https://api.fabric.microsoft.cn" => Some(Audience::Fabric),
            "https://service.flow.microsoft.com" => Some(Audience::Flow),
            "https://management.azure.com"
            | "https://management.usgovcloudapi.net"
            | "https://management.chinacloudapi.cn" => Some(Audience::Management),
            _ => None,
        }
    }

    pub(crate) fn uri(self) -> &'static str {
        match self {
            Audience::PowerBi => "https://analysis.windows.net/powerbi/api",
            Audience::Fabric => "https://api.fabric.microsoft.com",
            Audience::Flow => "https://service.flow.microsoft.com/",
            Audience::FlowWithoutSlash => "https://service.flow.microsoft.com",
            Audience::Management => "https://management.azure.com/",
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
    /// Restricted to the tenant's users: a flow-audience bearer token, no SAS.
    pub oauth: bool,
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
    /// What the sink checks in a body before it accepts it.
    pub expects: crate::sim::cards::Expects,
    pub calls: u64,
}

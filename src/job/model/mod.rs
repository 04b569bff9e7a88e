//! The validated job: what the plan, the engine and the executors consume.
//!
//! Produced by the parser/validator from the raw YAML types. Defaults are applied, workspace
//! aliases are expanded, and every value is checked. Strings may still hold `${env.NAME}`
//! references until [`crate::job::interpolate`] resolves them before a run (`validate` keeps
//! them unresolved so CI can validate without production secrets).

use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;

use crate::secret::Secret;

mod steps;

pub(crate) use steps::notebook_parameter_type;
pub use steps::{
    CapacityAction, CapacityRef, CapacityStep, CommitMode, DataCheckStep, DataflowStep,
    DatasetStep, EffectiveIdentity, EnhancedRefresh, ExecuteOption, Expectation, ExportFormat,
    ExportSpec, FabricItemType, FabricJobStep, FreshnessStep, Generation, NotifyOption,
    ProcessType, RefreshObject, RefreshType, ReportStep, SasFlowStep, Severity, WaitFor,
    WebhookFormat, WebhookStep,
};

/// A step id: `[A-Za-z_][A-Za-z0-9_-]*`.
pub(crate) type StepId = String;

/// One job file, validated.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// `name:` (`[a-z0-9_-]+`).
    pub name: String,
    pub description: Option<String>,
    /// The file the job came from, as given on the command line.
    pub file: PathBuf,
    /// SHA-256 of the file's bytes (hex), to detect a changed job on resume.
    pub file_hash: String,
    /// `vars:` after `--var` overrides.
    pub vars: IndexMap<String, String>,
    /// Auth profiles; always holds `default` (implicit from the environment when omitted).
    pub connections: IndexMap<String, Connection>,
    /// Global limit of steps in flight.
    pub concurrency: u32,
    /// Named limits; a step joins one with `pool:`.
    pub pools: IndexMap<String, u32>,
    /// Keep `dataset` steps within each capacity's documented refresh parallelism
    /// (`capacity_limits: auto`, the default); `false` with `capacity_limits: off`.
    pub capacity_limits: bool,
    /// Steps in file order; a step with `for_each` is there once per value, as `step[key]`.
    pub steps: IndexMap<StepId, Step>,
    /// The steps with `for_each`, by the id the file gives them, in file order.
    pub fan_outs: IndexMap<StepId, FanOut>,
}

impl Job {
    /// The run-time fan-outs not expanded yet (their template is in [`Job::steps`] under the
    /// fan-out's own id), with what to discover.
    pub fn awaiting_discovery(&self) -> Vec<(&str, &DiscoverSpec)> {
        self.fan_outs
            .iter()
            .filter_map(|(id, f)| match &f.source {
                FanOutSource::Discover(d) if self.steps.contains_key(id) => Some((id.as_str(), d)),
                _ => None,
            })
            .collect()
    }

    /// The fan-out an expansion id (`step[key]`) belongs to, with its key.
    pub fn fan_out_of(&self, id: &str) -> Option<(&str, &str)> {
        let (parent, key) = split_expansion_id(id)?;
        let (parent, fan_out) = self.fan_outs.get_key_value(parent)?;
        let item = fan_out.items.iter().find(|i| i.key == key)?;
        Some((parent.as_str(), item.key.as_str()))
    }
}

/// `step[key]` -> (`step`, `key`).
pub fn split_expansion_id(id: &str) -> Option<(&str, &str)> {
    let inner = id.strip_suffix(']')?;
    let (parent, key) = inner.split_once('[')?;
    (!parent.is_empty() && !key.is_empty()).then_some((parent, key))
}

/// A step with `for_each`: where its values come from and what it expanded into.
#[derive(Debug, Clone, Serialize)]
pub struct FanOut {
    pub source: FanOutSource,
    /// One per value, in order; each is the step `parent[key]` of [`Job::steps`].
    pub items: Vec<FanOutItem>,
    /// The steps whose `depends_on` names the step: they depend on every expansion (on
    /// none when it expanded to no step), and `--select step+` takes them.
    #[serde(skip)]
    pub dependents: Vec<StepId>,
}

impl FanOut {
    /// The id of the expansion with `key` of the step `parent`.
    pub fn expansion_id(parent: &str, key: &str) -> StepId {
        format!("{parent}[{key}]")
    }
}

/// Where the values of a `for_each` come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FanOutSource {
    /// Written in the job file.
    List,
    /// `"${vars.NAME}"`: a comma-separated list (`--var NAME=a,b` overrides it).
    Var { name: String },
    /// A file of values, one per line.
    File { path: String },
    /// What discovery finds when the run starts: until then the fan-out has no items and
    /// [`Job::steps`] holds the step once, under its own id, as a template.
    Discover(DiscoverSpec),
}

/// `for_each.discover`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiscoverSpec {
    /// Workspace name or GUID (aliases expanded).
    pub workspace: String,
    /// Case-insensitive name pattern (`*`, `?`).
    pub name: String,
    /// Leave out the semantic models other steps of the job name.
    pub exclude_named: bool,
}

/// One value of a `for_each`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FanOutItem {
    /// `[A-Za-z0-9_-]+`, unique in the fan-out: the value with every other character
    /// replaced by `_`.
    pub key: String,
    /// `${each.value}`.
    pub value: String,
}

/// Sovereign cloud of a connection: decides the default hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Cloud {
    #[default]
    Public,
    Usgov,
    Usgovhigh,
    Usdod,
    China,
}

/// How a connection obtains its bearer tokens.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Credentials {
    /// Entra ID client credentials with a secret.
    ClientSecret {
        tenant_id: String,
        client_id: String,
        client_secret: Secret,
    },
    /// A bearer token given as is (same token for every scope).
    AccessToken { access_token: Secret },
    /// Entra ID client credentials with a certificate: a client assertion (a JWT signed
    /// RS256 with the certificate's private key) read from a PEM file holding key and
    /// certificate.
    ClientCertificate {
        tenant_id: String,
        client_id: String,
        /// The PEM file (the path is no secret; the key inside it is).
        certificate_path: String,
    },
    /// Workload identity federation: the token in `token_file` (GitHub Actions OIDC, Azure
    /// DevOps, AKS) is sent as the client assertion; the file is read at each token request
    /// because its issuer rotates it.
    WorkloadIdentity {
        tenant_id: String,
        client_id: String,
        token_file: String,
    },
    /// Azure managed identity: the App Service / Container Apps identity endpoint when
    /// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set, the VM metadata service (IMDS)
    /// otherwise; `client_id` picks a user-assigned identity.
    ManagedIdentity { client_id: Option<String> },
    /// The signed-in Azure CLI (`az account get-access-token`); `tenant_id` passes `--tenant`.
    AzureCli { tenant_id: Option<String> },
}

impl Credentials {
    /// The kind in words, as `auth check` prints it.
    pub fn kind(&self) -> &'static str {
        match self {
            Credentials::ClientSecret { .. } => "client secret",
            Credentials::AccessToken { .. } => "access token",
            Credentials::ClientCertificate { .. } => "client certificate",
            Credentials::WorkloadIdentity { .. } => "workload identity federation",
            Credentials::ManagedIdentity { .. } => "managed identity",
            Credentials::AzureCli { .. } => "Azure CLI",
        }
    }
}

/// An auth profile (`connections.<name>`).
#[derive(Debug, Clone, Serialize)]
pub struct Connection {
    pub name: String,
    pub cloud: Cloud,
    pub credentials: Credentials,
    /// Why these credentials: `None` when declared in `connections:`, else which environment
    /// variables made the implicit `default` pick them (shown by `auth check`).
    #[serde(skip)]
    pub picked_because: Option<String>,
}

/// When a step runs, given its parents' final statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TriggerRule {
    #[default]
    AllSuccess,
    AllDone,
    AllFailed,
    OneFailed,
    OneSuccess,
    NoneFailed,
    Always,
}

/// What to do when a refresh of the same resource is already running remotely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IfRunning {
    /// Wait for it to end, then trigger our own.
    #[default]
    Wait,
    /// Take the running refresh as ours and report its outcome.
    Adopt,
    /// Fail the step.
    Fail,
    /// Cancel it where the API allows, then trigger.
    Restart,
}

/// One step, with defaults applied.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub id: StepId,
    pub kind: StepKind,
    pub depends_on: Vec<StepId>,
    pub trigger: TriggerRule,
    /// CEL condition, already known to parse.
    pub when: Option<String>,
    pub pool: Option<String>,
    pub tags: Vec<String>,
    /// Name of a key of [`Job::connections`].
    pub connection: String,
    /// Per attempt.
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// Re-runs after a failed attempt (0..=100).
    pub retries: u32,
    #[serde(with = "humantime_serde_compat")]
    pub retry_backoff: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub max_backoff: Duration,
    /// Longest pause between two status checks.
    #[serde(with = "humantime_serde_compat")]
    pub poll_interval: Duration,
    pub if_running: IfRunning,
    /// A failure of this step does not fail the run nor its dependents' trigger rules.
    pub continue_on_error: bool,
    /// Skip the trigger when a successful refresh ended within this window.
    #[serde(with = "humantime_serde_compat::option")]
    pub skip_if_fresh: Option<Duration>,
    /// How long the step usually takes (retries included); past it the step is flagged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_duration: Option<ExpectedDuration>,
    /// What a step past its expected duration does to the run.
    #[serde(skip_serializing_if = "OnOverrun::is_warn")]
    pub on_overrun: OnOverrun,
}

/// `expected_duration`: stated, or learned from the step's past runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedDuration {
    /// As written in the job file.
    Stated(#[serde(with = "humantime_serde_compat")] Duration),
    /// `auto`: learned when the run starts (local history, else the service's run history).
    Auto,
}

/// `on_overrun`: what a step running past its expected duration does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnOverrun {
    /// Flag it (live and in every report); the run's status is unchanged.
    #[default]
    Warn,
    /// Flag it and fail the run; the step runs to its end and keeps its own status.
    Fail,
}

impl OnOverrun {
    fn is_warn(&self) -> bool {
        *self == OnOverrun::Warn
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OnOverrun::Warn => "warn",
            OnOverrun::Fail => "fail",
        }
    }
}

impl Step {
    /// The step type's name as written in the job file.
    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }
}

/// The type-specific part of a step.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepKind {
    SasFlow(SasFlowStep),
    Dataflow(DataflowStep),
    Dataset(DatasetStep),
    Report(ReportStep),
    Webhook(WebhookStep),
    FabricJob(FabricJobStep),
    Capacity(CapacityStep),
    DataCheck(DataCheckStep),
    Freshness(FreshnessStep),
}

impl StepKind {
    /// `sas_flow`, `dataflow`, `dataset`, `report`, `webhook` or `fabric_job`.
    pub fn type_name(&self) -> &'static str {
        match self {
            StepKind::SasFlow(_) => "sas_flow",
            StepKind::Dataflow(_) => "dataflow",
            StepKind::Dataset(_) => "dataset",
            StepKind::Report(_) => "report",
            StepKind::Webhook(_) => "webhook",
            StepKind::FabricJob(_) => "fabric_job",
            StepKind::Capacity(_) => "capacity",
            StepKind::DataCheck(_) => "data_check",
            StepKind::Freshness(_) => "freshness",
        }
    }

    /// Whether the step starts remote work and watches it (`dataset`, `dataflow`, `sas_flow`
    /// with `wait_for`): only then do `poll_interval` and `if_running` apply.
    pub(crate) fn watches_remote_run(&self) -> bool {
        match self {
            StepKind::Dataset(_) | StepKind::Dataflow(_) | StepKind::FabricJob(_) => true,
            StepKind::SasFlow(s) => s.wait_for.is_some(),
            StepKind::Report(_)
            | StepKind::Webhook(_)
            | StepKind::Capacity(_)
            | StepKind::DataCheck(_)
            | StepKind::Freshness(_) => false,
        }
    }

    /// The workspace (name or GUID, aliases expanded) a Power BI / Fabric step works in.
    pub fn workspace(&self) -> Option<&str> {
        match self {
            StepKind::SasFlow(s) => s.wait_for.as_ref().map(|w| w.workspace.as_str()),
            StepKind::Dataflow(s) => Some(&s.workspace),
            StepKind::Dataset(s) => Some(&s.workspace),
            StepKind::Report(s) => Some(&s.workspace),
            StepKind::Webhook(_) | StepKind::Capacity(_) => None,
            StepKind::FabricJob(s) => Some(&s.workspace),
            StepKind::DataCheck(s) => Some(&s.workspace),
            StepKind::Freshness(s) => s.target.workspace(),
        }
    }

    /// A short human name of the remote resource (`Data Admin / ORDER_LIST`).
    pub fn resource_label(&self) -> String {
        match self {
            StepKind::SasFlow(s) => crate::secret::redact_url(s.url.expose()),
            StepKind::Dataflow(s) => format!("{} / {}", s.workspace, s.dataflow),
            StepKind::Dataset(s) => format!("{} / {}", s.workspace, s.dataset),
            StepKind::Report(s) => format!("{} / {}", s.workspace, s.report),
            StepKind::Webhook(s) => crate::secret::redact_url(s.url.expose()),
            StepKind::FabricJob(s) => format!("{} / {}", s.workspace, s.item),
            StepKind::Capacity(s) => s.label(),
            StepKind::DataCheck(s) => format!("{} / {}", s.workspace, s.dataset),
            StepKind::Freshness(s) => s.target.resource_label(),
        }
    }
}

/// A header value: credential-like header names hold a [`Secret`].
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum HeaderValue {
    Plain(String),
    Secret(Secret),
}

impl HeaderValue {
    /// The value to send.
    pub(crate) fn expose(&self) -> &str {
        match self {
            HeaderValue::Plain(s) => s,
            HeaderValue::Secret(s) => s.expose(),
        }
    }
}

/// Serde helpers that write durations as humantime strings (`1h 30m`).
pub(crate) mod humantime_serde_compat {
    use std::time::Duration;

    pub(crate) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub(crate) mod option {
        use std::time::Duration;

        pub(crate) fn serialize<S: serde::Serializer>(
            d: &Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }
    }
}

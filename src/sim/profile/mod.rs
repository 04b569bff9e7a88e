//! The simulator profile: which workspaces and items exist and how each behaves.
//!
//! A profile is YAML (documented in docs/simulator.md; JSON Schema in
//! schemas/pbibatch-sim-profile.schema.json). Every behaviour knob of a resource can also be
//! set once under `defaults:`; a resource's own value wins, then `defaults:`, then the built-in
//! value (short deterministic durations, every attempt succeeds).

mod capacity;
mod items;
mod provision;
mod values;

use std::path::Path;
use std::time::Duration;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub(super) use capacity::{CapacityOperation, CapacitySpec, CapacityStartState};
pub(super) use items::HookKind;
pub use items::{
    DataflowRef, DataflowSpec, DatasetSpec, FabricDataflowSpec, FlowSpec, HookSpec, ItemSpec,
    ReportSpec,
};
pub use provision::{CapacityWants, Provision, ReportHint, WorkspaceWants};
pub use values::{DurationSpec, FailDetail, HumanDuration, OutcomeSpec};

use super::SimError;

/// The built-in duration of a resource's operations when neither it nor `defaults:` says.
pub(super) const BUILTIN_DURATION: DurationSpec =
    DurationSpec::Range(Duration::from_millis(200), Duration::from_millis(800));

/// The longest duration a profile may give (keeps every instant and date representable).
const MAX_DURATION: Duration = Duration::from_secs(10 * 366 * 24 * 3600);
const MIN_TIME_SCALE: f64 = 0.001;
const MAX_TIME_SCALE: f64 = 1e9;

fn check_duration(at: &str, d: Duration, problems: &mut Vec<String>) {
    if d > MAX_DURATION {
        problems.push(format!("{at}: durations are limited to 10 years"));
    }
}

/// A simulator profile (the YAML file given to `sim serve --profile` or `--sim-profile`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(title = "pbibatch simulator profile")]
pub struct Profile {
    /// Seed of every random choice (duration ranges, fractions): same seed, same run.
    pub seed: u64,
    /// Simulated durations (operation durations, queue times, history lags, flow delays) are
    /// divided by this factor: `60` plays a 10-minute refresh in 10 seconds. Latency, token
    /// lifetime and Retry-After values are not scaled.
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub time_scale: f64,
    /// Lifetime of the access tokens the token endpoints issue (`expires_in`).
    pub token_lifetime: HumanDuration,
    /// Delay added before each Power BI / Fabric answer (fixed or a range).
    pub latency: DurationSpec,
    /// Answer some Power BI / Fabric calls with 429 + Retry-After.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttle: Option<Throttle>,
    /// Fraction (0..=1) of Power BI / Fabric calls answered with a transient 503.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub transient_503: f64,
    /// Fraction (0..=1) of Power BI / Fabric calls whose connection is closed without an answer.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub connection_drop: f64,
    /// Page size of the paged Fabric lists (`continuationToken`).
    #[schemars(range(min = 1))]
    pub page_size: usize,
    /// A Power BI call needs a Power BI token and a Fabric call a Fabric token (401 otherwise).
    pub strict_audience: bool,
    /// Strict rules to relax, by name (every rule holds by default; a run that relaxes one
    /// says so): `app_only_notify`, `identity_support`, `dataflow_gen2_service_principal`,
    /// `content_type`, `request_schema`, `query_parameters`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub relax: Vec<super::strict::Rule>,
    /// `ExportTo` answers 307 (to the same URL with `preferClientRouting=true`) unless the
    /// call already asks for client routing, as a non-home cluster does.
    pub redirect_exports: bool,
    /// The most requests kept for `/_sim/requests` (the oldest are forgotten first).
    pub max_recorded_requests: usize,
    /// The credentials the token endpoints accept.
    pub credentials: Credentials,
    /// Behaviour every resource gets unless it says otherwise.
    pub defaults: Knobs,
    /// Workspaces by name.
    pub workspaces: IndexMap<String, WorkspaceSpec>,
    /// Power Automate / Logic Apps HTTP-trigger flows by name.
    pub flows: IndexMap<String, FlowSpec>,
    /// Webhook sinks by name (`POST /hooks/{name}`).
    pub hooks: IndexMap<String, HookSpec>,
    /// Fabric capacities by ARM name: served by Azure Resource Manager (resume, suspend,
    /// scale) and listed by Power BI `GET capacities`; a workspace joins one with `capacity:`.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub capacities: IndexMap<String, CapacitySpec>,
    /// The tenant settings and limits of the Execute Queries API (`data_check` steps).
    #[serde(skip_serializing_if = "ExecuteQueriesSpec::is_default")]
    pub execute_queries: ExecuteQueriesSpec,
}

/// The Execute Queries API's tenant settings and per-user limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ExecuteQueriesSpec {
    /// The tenant setting "Dataset Execute Queries REST API" (Integration settings); `false`:
    /// every query is answered 401 `PowerBINotAuthorizedException`.
    pub enabled: bool,
    /// "Allow service principals to use Power BI APIs" (Developer settings) for this API;
    /// `false`: a service principal's query is answered 401.
    pub service_principals: bool,
    /// Queries per minute per caller before 429 + `Retry-After` (the service allows 120).
    #[schemars(range(min = 1))]
    pub per_minute: u32,
}

impl Default for ExecuteQueriesSpec {
    fn default() -> Self {
        ExecuteQueriesSpec {
            enabled: true,
            service_principals: true,
            per_minute: 120,
        }
    }
}

impl ExecuteQueriesSpec {
    fn is_default(&self) -> bool {
        *self == ExecuteQueriesSpec::default()
    }
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            seed: 0,
            time_scale: 1.0,
            token_lifetime: HumanDuration::secs(3599),
            latency: DurationSpec::Fixed(Duration::ZERO),
            throttle: None,
            transient_503: 0.0,
            connection_drop: 0.0,
            page_size: 100,
            strict_audience: true,
            relax: Vec::new(),
            redirect_exports: false,
            max_recorded_requests: 100_000,
            credentials: Credentials::default(),
            defaults: Knobs::default(),
            workspaces: IndexMap::new(),
            flows: IndexMap::new(),
            hooks: IndexMap::new(),
            capacities: IndexMap::new(),
            execute_queries: ExecuteQueriesSpec::default(),
        }
    }
}

/// The throttling rule: which calls get 429.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Throttle {
    /// Every Nth Power BI / Fabric call (counting from the first) is throttled.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub every: Option<u64>,
    /// This fraction (0..=1) of calls is throttled, drawn with the seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub fraction: Option<f64>,
    /// The `Retry-After` value in seconds (integer, as the services send).
    pub retry_after: u64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            every: None,
            fraction: None,
            retry_after: 1,
        }
    }
}

/// Client credentials and managed identity the simulator accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Credentials {
    /// The tenant in `POST /{tenant}/oauth2/v2.0/token`.
    pub tenant_id: String,
    /// The application (client) id.
    pub client_id: String,
    /// The client secret value.
    pub client_secret: String,
    /// The client id of the managed identity the IMDS endpoint serves.
    pub managed_identity_client_id: String,
    /// The client secret has passed its expiry date: the right secret gets `AADSTS7000222`.
    pub client_secret_expired: bool,
    /// Certificates registered on the app (PEM, public part): a client assertion signed by
    /// one of their keys is accepted, any other gets `AADSTS700027`.
    pub certificates: Vec<String>,
    /// The federated identity credential registered on the app (workload identity
    /// federation); the simulator is also the issuer of such tokens (`/_sim` helpers).
    pub federated: FederatedCredential,
    /// The secret of the App Service / Container Apps identity endpoint (`IDENTITY_HEADER`,
    /// sent back as `X-IDENTITY-HEADER`).
    pub identity_header: String,
    /// Statuses of the first IMDS calls, in order (`[410, 404, 503]`), before it answers
    /// normally: Azure's own transient answers, which clients must retry.
    pub imds_failures: Vec<u16>,
}

impl Default for Credentials {
    fn default() -> Self {
        Credentials {
            tenant_id: "5f0c6b2e-3a8d-4c1e-9b7a-0d2f4e6a8c10".into(),
            client_id: "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d".into(),
            client_secret: "sim~client~secret~value".into(),
            managed_identity_client_id: "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b".into(),
            client_secret_expired: false,
            certificates: Vec::new(),
            federated: FederatedCredential::default(),
            identity_header: "sim-identity-header-value".into(),
            imds_failures: Vec::new(),
        }
    }
}

/// A federated identity credential: which external tokens the app trusts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FederatedCredential {
    /// The token's `iss` (GitHub Actions: `https://token.actions.githubusercontent.com`).
    pub issuer: String,
    /// The token's `sub` (GitHub: `repo:ORG/REPO:ref:refs/heads/main`), case-sensitive.
    pub subject: String,
    /// The token's `aud`.
    pub audience: String,
}

impl Default for FederatedCredential {
    fn default() -> Self {
        FederatedCredential {
            issuer: "https://token.actions.githubusercontent.com".into(),
            subject: "repo:contoso/nightly-refresh:ref:refs/heads/main".into(),
            audience: "api://AzureADTokenExchange".into(),
        }
    }
}

/// How a refresh that is already running when the simulator starts was started (history
/// `refreshType`); only `enhanced_api` can be cancelled through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StartedBy {
    /// A scheduled refresh (`Scheduled`).
    #[default]
    Schedule,
    /// A standard API refresh (`ViaApi`).
    Api,
    /// An enhanced API refresh (`ViaEnhancedApi`), cancellable.
    EnhancedApi,
}

/// Behaviour knobs of one resource (also the shape of `defaults:`). Unset knobs inherit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    /// How long an operation runs (`0s` ends at once; `2s..10s` draws a value per attempt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<DurationSpec>,
    /// Outcome of the 1st, 2nd, ... trigger; the last entry repeats. Default `[succeed]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcomes: Option<Vec<OutcomeSpec>>,
    /// A refresh of this resource is already running when the simulator starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_at_start: Option<bool>,
    /// How that running refresh was started (datasets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_at_start_by: Option<StartedBy>,
    /// Operations never end on their own (only a cancel ends them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub never_ends: Option<bool>,
    /// A refresh appears in history / transactions only this long after it was triggered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_lag: Option<HumanDuration>,
    /// Probability (0..=1) that a trigger is accepted but silently dropped (never runs, never
    /// shows in history), as Power BI does under load.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub drop_probability: Option<f64>,
    /// Time spent queued (`NotStarted`) before running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_time: Option<HumanDuration>,
    /// `Retry-After` seconds on Fabric job and export answers; default: the remaining time,
    /// rounded up, at most 60.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// Successful runs in the resource's history before the simulator starts (at most 100),
    /// one an hour, the last ending an hour before the start, each lasting a `duration`
    /// draw: what the service's history shows of a resource that refreshes every night.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100))]
    pub past_runs: Option<u32>,
    /// How long each of those past runs took; default `duration`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub past_duration: Option<DurationSpec>,
}

/// The most `past_runs` a resource may have.
pub(super) const MAX_PAST_RUNS: u32 = 100;

/// A resource's knobs after inheritance: what the state machine uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedKnobs {
    pub duration: DurationSpec,
    pub outcomes: Vec<OutcomeSpec>,
    pub running_at_start: bool,
    pub running_at_start_by: StartedBy,
    pub never_ends: bool,
    pub history_lag: Duration,
    pub drop_probability: f64,
    pub queue_time: Duration,
    pub retry_after: Option<u64>,
    pub past_runs: u32,
    pub past_duration: DurationSpec,
}

impl Knobs {
    /// This resource's knobs, falling back on `defaults`, then the built-in values.
    pub fn resolve(&self, defaults: &Knobs) -> ResolvedKnobs {
        ResolvedKnobs {
            duration: self
                .duration
                .or(defaults.duration)
                .unwrap_or(BUILTIN_DURATION),
            outcomes: self
                .outcomes
                .clone()
                .or_else(|| defaults.outcomes.clone())
                .filter(|o| !o.is_empty())
                .unwrap_or_else(|| vec![OutcomeSpec::Succeed]),
            running_at_start: self
                .running_at_start
                .or(defaults.running_at_start)
                .unwrap_or(false),
            running_at_start_by: self
                .running_at_start_by
                .or(defaults.running_at_start_by)
                .unwrap_or_default(),
            never_ends: self.never_ends.or(defaults.never_ends).unwrap_or(false),
            history_lag: self
                .history_lag
                .or(defaults.history_lag)
                .map(|d| d.0)
                .unwrap_or(Duration::ZERO),
            drop_probability: self
                .drop_probability
                .or(defaults.drop_probability)
                .unwrap_or(0.0),
            queue_time: self
                .queue_time
                .or(defaults.queue_time)
                .map(|d| d.0)
                .unwrap_or(Duration::ZERO),
            retry_after: self.retry_after.or(defaults.retry_after),
            past_runs: self.past_runs.or(defaults.past_runs).unwrap_or(0),
            past_duration: self
                .past_duration
                .or(defaults.past_duration)
                .or(self.duration)
                .or(defaults.duration)
                .unwrap_or(BUILTIN_DURATION),
        }
    }

    fn check(&self, at: &str, problems: &mut Vec<String>) {
        if let Some(n) = self.past_runs
            && n > MAX_PAST_RUNS
        {
            problems.push(format!("{at}: past_runs must be at most {MAX_PAST_RUNS}"));
        }
        if let Some(p) = self.drop_probability
            && !(0.0..=1.0).contains(&p)
        {
            problems.push(format!("{at}: drop_probability must be within 0..=1"));
        }
        if let Some(d) = self.duration {
            check_duration(&format!("{at}.duration"), d.max(), problems);
        }
        if let Some(d) = self.past_duration {
            check_duration(&format!("{at}.past_duration"), d.max(), problems);
        }
        for (name, d) in [
            ("history_lag", self.history_lag),
            ("queue_time", self.queue_time),
        ] {
            if let Some(d) = d {
                check_duration(&format!("{at}.{name}"), d.0, problems);
            }
        }
    }
}

/// One workspace (a Power BI group, and the same id as a Fabric workspace).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WorkspaceSpec {
    /// The GUID; generated from the name when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub id: Option<uuid::Uuid>,
    /// On shared (Pro) capacity: enhanced refresh and export are refused with 400.
    pub shared_capacity: bool,
    /// The capacity (a key of `capacities:`) the workspace is assigned to; without it a
    /// dedicated workspace is on a built-in capacity nobody lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<String>,
    /// Semantic models (Power BI datasets; Fabric `SemanticModel` items).
    pub datasets: IndexMap<String, DatasetSpec>,
    /// Dataflows Gen1 (Power BI REST).
    pub dataflows: IndexMap<String, DataflowSpec>,
    /// Dataflows Gen2 (Fabric items of type `Dataflow`).
    pub fabric_dataflows: IndexMap<String, FabricDataflowSpec>,
    /// Power BI and paginated reports.
    pub reports: IndexMap<String, ReportSpec>,
    /// Other Fabric items (pipelines, notebooks, ...) that run jobs.
    pub items: IndexMap<String, ItemSpec>,
}

impl Profile {
    /// Reads and checks a profile file.
    pub fn load(path: &Path) -> Result<Profile, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Profile::from_yaml(&text).map_err(|e| match e {
            SimError::Profile { message, .. } => SimError::Profile {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses and checks a profile from YAML text (an empty text is the default profile).
    pub fn from_yaml(text: &str) -> Result<Profile, SimError> {
        let profile: Profile = if text.trim().is_empty() {
            Profile::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| SimError::Profile {
                path: "<profile>".into(),
                message: e.to_string(),
            })?
        };
        profile.check().map_err(|problems| SimError::Profile {
            path: "<profile>".into(),
            message: problems.join("; "),
        })?;
        Ok(profile)
    }

    /// Every rule serde cannot express; all problems at once.
    pub(crate) fn check(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if !(self.time_scale.is_finite()
            && (MIN_TIME_SCALE..=MAX_TIME_SCALE).contains(&self.time_scale))
        {
            problems.push(format!(
                "time_scale must be a number within {MIN_TIME_SCALE}..={MAX_TIME_SCALE}"
            ));
        }
        check_duration("token_lifetime", self.token_lifetime.0, &mut problems);
        check_duration("latency", self.latency.max(), &mut problems);
        for (name, flow) in &self.flows {
            if let Some(d) = flow.delay {
                check_duration(&format!("flows.{name}.delay"), d.0, &mut problems);
            }
        }
        for (name, value) in [
            ("transient_503", self.transient_503),
            ("connection_drop", self.connection_drop),
        ] {
            if !(0.0..=1.0).contains(&value) {
                problems.push(format!("{name} must be within 0..=1"));
            }
        }
        if let Some(t) = &self.throttle {
            if t.every == Some(0) {
                problems.push("throttle.every must be at least 1".to_string());
            }
            if let Some(f) = t.fraction
                && !(0.0..=1.0).contains(&f)
            {
                problems.push("throttle.fraction must be within 0..=1".to_string());
            }
        }
        if self.page_size == 0 {
            problems.push("page_size must be at least 1".to_string());
        }
        self.defaults.check("defaults", &mut problems);
        for (ws, spec) in &self.workspaces {
            for (name, d) in &spec.datasets {
                d.knobs()
                    .check(&format!("workspaces.{ws}.datasets.{name}"), &mut problems);
            }
            for (name, d) in &spec.dataflows {
                d.knobs()
                    .check(&format!("workspaces.{ws}.dataflows.{name}"), &mut problems);
            }
            for (name, d) in &spec.fabric_dataflows {
                d.knobs().check(
                    &format!("workspaces.{ws}.fabric_dataflows.{name}"),
                    &mut problems,
                );
            }
            for (name, r) in &spec.reports {
                r.knobs()
                    .check(&format!("workspaces.{ws}.reports.{name}"), &mut problems);
                if let Some(ds) = &r.dataset
                    && !spec.datasets.contains_key(ds)
                {
                    problems.push(format!(
                        "workspaces.{ws}.reports.{name}.dataset: no dataset `{ds}` in this workspace"
                    ));
                }
            }
            for (name, i) in &spec.items {
                i.knobs()
                    .check(&format!("workspaces.{ws}.items.{name}"), &mut problems);
                if i.item_type.trim().is_empty() {
                    problems.push(format!("workspaces.{ws}.items.{name}.type is required"));
                }
            }
        }
        for (name, flow) in &self.flows {
            for s in &flow.statuses {
                if !(100..=599).contains(s) {
                    problems.push(format!("flows.{name}.statuses: {s} is not an HTTP status"));
                }
            }
        }
        for (name, hook) in &self.hooks {
            for s in &hook.statuses {
                if !(100..=599).contains(s) {
                    problems.push(format!("hooks.{name}.statuses: {s} is not an HTTP status"));
                }
            }
        }
        for (name, cap) in &self.capacities {
            cap.check(&format!("capacities.{name}"), &mut problems);
        }
        for (ws, spec) in &self.workspaces {
            if let Some(cap) = &spec.capacity {
                if !self.capacities.contains_key(cap) {
                    problems.push(format!(
                        "workspaces.{ws}.capacity: `{cap}` is not under `capacities:`"
                    ));
                }
                if spec.shared_capacity {
                    problems.push(format!(
                        "workspaces.{ws}: `capacity` and `shared_capacity: true` exclude each other"
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The JSON Schema of the profile file (what schemas/pbibatch-sim-profile.schema.json holds).
    pub fn json_schema() -> serde_json::Value {
        let schema = schemars::schema_for!(Profile);
        serde_json::to_value(schema).unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests;

//! The job file as written: serde types that mirror the YAML one to one.
//!
//! Every struct denies unknown fields. Values that a diagnostic may have to point at are
//! wrapped in [`Sp`] (serde-saphyr's `Spanned`, plus a JSON Schema that forwards to the inner
//! type). Steps are ONE flat struct with every type-specific key optional: serde-saphyr loses
//! spans inside internally tagged enums, so `type` stays a spanned field and
//! [`crate::job::validate`] dispatches on it and rejects keys that do not belong to the type
//! (see [`crate::job::keys`]). The same types generate the JSON Schema (`pbibatch schema`).

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_saphyr::{Location, Spanned};

/// A value with the place it came from in the YAML text.
#[derive(Debug, Clone)]
pub(crate) struct Sp<T>(pub Spanned<T>);

impl<T> Sp<T> {
    /// The value.
    pub(crate) fn get(&self) -> &T {
        &self.0.value
    }

    /// Where the value is used (the alias for an alias).
    pub(crate) fn loc(&self) -> Location {
        self.0.referenced
    }
}

impl<T: PartialEq> PartialEq for Sp<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0.value == other.0.value
    }
}

impl<T: Eq> Eq for Sp<T> {}

impl<T: Hash> Hash for Sp<T> {
    // Map keys compare by value only; duplicate keys are rejected by the parser anyway.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.value.hash(state);
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Sp<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Spanned::<T>::deserialize(d).map(Sp)
    }
}

impl<T: JsonSchema> JsonSchema for Sp<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// A whole job file (version 1).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "pbibatch job file")]
pub(crate) struct RawJob {
    /// File format version; must be 1.
    pub version: Sp<u32>,
    /// Job name, `[a-z0-9_-]+`.
    pub name: Sp<String>,
    /// Free text shown in reports.
    pub description: Option<String>,
    /// Variables: `${vars.NAME}` in string values; `--var NAME=VALUE` overrides.
    pub vars: Option<IndexMap<Sp<String>, Sp<String>>>,
    /// Auth profiles; a step uses `default` unless it names one with `connection:`.
    /// Omitted: an implicit `default` reads AZURE_TENANT_ID / AZURE_CLIENT_ID /
    /// AZURE_CLIENT_SECRET, or PBIBATCH_ACCESS_TOKEN when that is set.
    pub connections: Option<IndexMap<Sp<String>, Sp<RawConnection>>>,
    /// Workspace aliases: alias -> workspace name or GUID.
    pub workspaces: Option<IndexMap<Sp<String>, Sp<String>>>,
    /// Settings every step inherits unless it overrides them.
    pub defaults: Option<RawDefaults>,
    /// Steps in flight at once (1..=10000, default 4).
    pub concurrency: Option<Sp<i64>>,
    /// Named limits (1..=10000); a step joins one with `pool:`.
    pub pools: Option<IndexMap<Sp<String>, Sp<i64>>>,
    /// `auto` (default): at most as many `dataset` refreshes at once on a capacity as its
    /// SKU allows, learned from the service when the run starts; `off`: no such limit.
    pub capacity_limits: Option<Sp<RawCapacityLimits>>,
    /// Steps: step id -> step. Order is kept. Ids match `[A-Za-z_][A-Za-z0-9_-]*`.
    // Boxed: a step is a few KB of optional spanned fields; moving it on every map growth
    // cost more than parsing it (10,000-step files).
    pub steps: Sp<IndexMap<Sp<String>, Box<Sp<RawStep>>>>,
}

/// `connections.<name>`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Connection")]
pub(crate) struct RawConnection {
    /// Entra ID tenant (GUID or domain).
    pub tenant_id: Option<Sp<String>>,
    /// App registration (client) id.
    pub client_id: Option<Sp<String>>,
    /// Client secret (use `${env.NAME}`).
    pub client_secret: Option<Sp<String>>,
    /// A bearer token used as is (use `${env.NAME}`).
    pub access_token: Option<Sp<String>>,
    /// A PEM file holding the private key and the certificate registered on the app (with
    /// `tenant_id` and `client_id`): the token request carries a signed client assertion.
    pub client_certificate_path: Option<Sp<String>>,
    /// Workload identity federation: a file holding the federated token (GitHub Actions OIDC,
    /// Azure DevOps, AKS: `${env.AZURE_FEDERATED_TOKEN_FILE}`), with `tenant_id` and `client_id`.
    pub federated_token_file: Option<Sp<String>>,
    /// Azure managed identity: `true`, or `{ client_id: ... }` for a user-assigned one. Uses
    /// the App Service / Container Apps identity endpoint when `IDENTITY_ENDPOINT` is set.
    pub managed_identity: Option<Sp<RawManagedIdentity>>,
    /// `true`: tokens from the signed-in Azure CLI (`az account get-access-token`);
    /// `tenant_id` may name the tenant.
    pub azure_cli: Option<Sp<bool>>,
    /// Sovereign cloud (default `public`).
    pub cloud: Option<Sp<RawCloud>>,
}

/// `managed_identity: true | false | { client_id }`.
#[derive(Debug, JsonSchema)]
#[schemars(untagged)]
#[schemars(rename = "ManagedIdentity")]
pub(crate) enum RawManagedIdentity {
    /// `true` = system-assigned identity; `false` = not used.
    Enabled(bool),
    /// A user-assigned identity.
    UserAssigned(RawUserAssigned),
}

/// `managed_identity: { client_id }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "UserAssignedIdentity")]
pub(crate) struct RawUserAssigned {
    /// Client id of the user-assigned identity.
    pub client_id: Sp<String>,
}

impl<'de> Deserialize<'de> for RawManagedIdentity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawManagedIdentity;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`true` or a mapping with `client_id`")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(RawManagedIdentity::Enabled(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawUserAssigned::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawManagedIdentity::UserAssigned)
            }
        }
        d.deserialize_any(V)
    }
}

/// Sovereign clouds.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "Cloud")]
pub(crate) enum RawCloud {
    Public,
    Usgov,
    Usgovhigh,
    Usdod,
    China,
}

/// `defaults:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Defaults")]
pub(crate) struct RawDefaults {
    /// Per attempt (humantime, e.g. `2h`; default 2h).
    pub timeout: Option<Sp<String>>,
    /// Re-runs after a failed attempt (0..=100, default 0), or the long form.
    pub retries: Option<Sp<RawRetries>>,
    /// First pause before a retry; doubles each retry (default 30s).
    pub retry_backoff: Option<Sp<String>>,
    /// Cap of the retry pause (default 10m).
    pub max_backoff: Option<Sp<String>>,
    /// Longest pause between two status checks (default 15s).
    pub poll_interval: Option<Sp<String>>,
    /// A refresh of the same resource is already running (default `wait`).
    pub if_running: Option<Sp<RawIfRunning>>,
    /// Connection used by steps that name none (default `default`).
    pub connection: Option<Sp<String>>,
}

/// `retries: N` or `retries: { count, backoff, max_backoff }`.
#[derive(Debug, JsonSchema)]
#[schemars(untagged)]
#[schemars(rename = "Retries")]
pub(crate) enum RawRetries {
    /// Re-runs after a failed attempt.
    Count(i64),
    /// The long form.
    Long(Box<RawRetriesLong>),
}

/// The long form of `retries`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "RetriesLong")]
pub(crate) struct RawRetriesLong {
    /// Re-runs after a failed attempt (0..=100).
    pub count: Sp<i64>,
    /// First pause before a retry; doubles each retry.
    pub backoff: Option<Sp<String>>,
    /// Cap of the retry pause.
    pub max_backoff: Option<Sp<String>>,
}

impl<'de> Deserialize<'de> for RawRetries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawRetries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of retries or a mapping with `count`")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(RawRetries::Count(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(RawRetries::Count(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawRetriesLong::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|l| RawRetries::Long(Box::new(l)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Trigger rules.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "TriggerRule")]
pub(crate) enum RawTrigger {
    AllSuccess,
    AllDone,
    AllFailed,
    OneFailed,
    OneSuccess,
    NoneFailed,
    Always,
}

/// `if_running` policies.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "IfRunning")]
pub(crate) enum RawIfRunning {
    Wait,
    Adopt,
    Fail,
    Restart,
}

/// Step types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "StepType")]
pub(crate) enum RawStepType {
    SasFlow,
    Dataflow,
    Dataset,
    Report,
    Webhook,
    FabricJob,
    Capacity,
    DataCheck,
    Freshness,
}

impl RawStepType {
    /// Every type, in documentation order.
    pub(crate) const ALL: [RawStepType; 9] = [
        RawStepType::SasFlow,
        RawStepType::Dataflow,
        RawStepType::Dataset,
        RawStepType::Report,
        RawStepType::Webhook,
        RawStepType::FabricJob,
        RawStepType::Capacity,
        RawStepType::DataCheck,
        RawStepType::Freshness,
    ];

    /// The name as written in a job file.
    pub(crate) fn name(self) -> &'static str {
        match self {
            RawStepType::SasFlow => "sas_flow",
            RawStepType::Dataflow => "dataflow",
            RawStepType::Dataset => "dataset",
            RawStepType::Report => "report",
            RawStepType::Webhook => "webhook",
            RawStepType::FabricJob => "fabric_job",
            RawStepType::Capacity => "capacity",
            RawStepType::DataCheck => "data_check",
            RawStepType::Freshness => "freshness",
        }
    }
}

/// Notification option (Gen1 dataflow, standard dataset refresh).
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "Notify")]
pub(crate) enum RawNotify {
    NoNotification,
    MailOnFailure,
    /// Datasets only.
    MailOnCompletion,
}

/// Gen1 `processType`.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "ProcessType")]
pub(crate) enum RawProcessType {
    Default,
    ProcessFull,
}

/// Gen2 `executeOption`.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "ExecuteOption")]
pub(crate) enum RawExecuteOption {
    SkipApplyChanges,
    ApplyChangesIfNeeded,
}

/// Enhanced refresh type.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "RefreshType")]
pub(crate) enum RawRefreshType {
    Full,
    ClearValues,
    Calculate,
    DataOnly,
    Automatic,
    Defragment,
}

/// Enhanced refresh commit mode.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "CommitMode")]
pub(crate) enum RawCommitMode {
    Transactional,
    PartialBatch,
}

/// One step. `type` decides which of the type-specific keys are allowed.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Step")]
pub(crate) struct RawStep {
    /// `sas_flow`, `dataflow`, `dataset`, `report`, `webhook`, `fabric_job` or `capacity`.
    #[serde(rename = "type")]
    pub step_type: Sp<RawStepType>,
    /// Steps that must be final before this one starts.
    pub depends_on: Option<Sp<Vec<Sp<String>>>>,
    /// When the step runs given its dependencies' statuses (default `all_success`).
    pub trigger: Option<Sp<RawTrigger>>,
    /// CEL condition over `vars`, `env`, `run` and `steps.<dep>`; false = skipped.
    pub when: Option<Sp<String>>,
    /// A pool declared under `pools:`.
    pub pool: Option<Sp<String>>,
    /// Free labels for `--select tag:T`.
    pub tags: Option<Vec<Sp<String>>>,
    /// A connection declared under `connections:` (default `default`); dataflow, dataset,
    /// report and sas_flow with `wait_for` (the steps that call Power BI or Fabric).
    pub connection: Option<Sp<String>>,
    /// Per attempt.
    pub timeout: Option<Sp<String>>,
    /// Re-runs after a failed attempt, or `{ count, backoff, max_backoff }`.
    pub retries: Option<Sp<RawRetries>>,
    /// First pause before a retry; doubles each retry.
    pub retry_backoff: Option<Sp<String>>,
    /// Cap of the retry pause.
    pub max_backoff: Option<Sp<String>>,
    /// Longest pause between two status checks; dataflow, dataset and sas_flow with
    /// `wait_for` (the steps that watch a remote run).
    pub poll_interval: Option<Sp<String>>,
    /// A refresh of the same resource is already running: wait, adopt, fail or restart;
    /// dataflow, dataset and sas_flow with `wait_for`.
    pub if_running: Option<Sp<RawIfRunning>>,
    /// A failure of this step does not fail the run nor its dependents' trigger rules.
    pub continue_on_error: Option<Sp<bool>>,
    /// Skip the trigger when a successful refresh ended within this window
    /// (dataset and Gen1 dataflow).
    pub skip_if_fresh: Option<Sp<String>>,
    /// Fan-out: one step per value, with ids `step[key]`; `${each.key}` and `${each.value}`
    /// in the step's strings. A list, a `"${vars.NAME}"` holding a comma-separated list,
    /// `{ file: PATH }` (one value per line) or `{ discover: {...} }` (found when the run
    /// starts).
    pub for_each: Option<Sp<RawForEach>>,

    /// sas_flow, webhook: the URL (a secret; use `${env.NAME}`).
    pub url: Option<Sp<String>>,
    /// sas_flow, webhook: HTTP method (default POST).
    pub method: Option<Sp<String>>,
    /// sas_flow, webhook: extra headers.
    pub headers: Option<Sp<IndexMap<String, Sp<String>>>>,
    /// sas_flow, webhook: body (any YAML, sent as JSON).
    pub body: Option<Sp<serde_json::Value>>,
    /// sas_flow, webhook: accepted HTTP statuses (default any 2xx).
    pub expect_status: Option<Sp<Vec<Sp<i64>>>>,
    /// sas_flow: wait for this Gen1 dataflow's refresh after the trigger.
    pub wait_for: Option<Sp<RawWaitFor>>,
    /// sas_flow: the trigger accepts only users of the tenant ("Who can trigger the flow?"
    /// not "Anyone"): send an OAuth token of the step's connection for
    /// `https://service.flow.microsoft.com//.default` instead of the SAS signature.
    pub oauth: Option<Sp<bool>>,
    /// webhook: a ready payload instead of `body`: `teams` (an Adaptive Card for a Teams
    /// Workflows webhook), `slack` (Block Kit blocks) or `plain` (`{"text": ...}`, default).
    pub format: Option<Sp<RawWebhookFormat>>,
    /// webhook (`format: teams` or `slack`): a link the message offers (e.g. the run in
    /// Kestra); may use `${run.id}` and `${run.job}`.
    pub link: Option<Sp<String>>,

    /// dataflow, dataset, report, fabric_job: workspace alias, name or GUID.
    pub workspace: Option<Sp<String>>,
    /// dataflow: name or GUID.
    pub dataflow: Option<Sp<String>>,
    /// dataflow: 1 (Power BI, default) or 2 (Fabric Dataflow Gen2).
    pub generation: Option<Sp<i64>>,
    /// dataflow (Gen1), dataset (standard refresh): notification option.
    pub notify: Option<Sp<RawNotify>>,
    /// dataflow (Gen1): `default` or `process_full`.
    pub process_type: Option<Sp<RawProcessType>>,
    /// dataflow (Gen2): `skip_apply_changes` or `apply_changes_if_needed`.
    pub execute_option: Option<Sp<RawExecuteOption>>,
    /// dataflow (Gen2), fabric_job (pipeline, notebook): parameter values.
    pub parameters: Option<Sp<IndexMap<String, serde_json::Value>>>,

    /// dataset: name or GUID.
    pub dataset: Option<Sp<String>>,
    /// dataset: enhanced refresh options (present = enhanced refresh).
    pub refresh: Option<Sp<RawRefresh>>,

    /// report: name or GUID.
    pub report: Option<Sp<String>>,
    /// report: export to file.
    pub export: Option<Sp<RawExport>>,

    /// capacity: `resume`, `suspend` or `scale`.
    pub action: Option<Sp<RawCapacityAction>>,
    /// capacity: the Fabric capacity's Azure resource id
    /// (`/subscriptions/.../providers/Microsoft.Fabric/capacities/NAME`), or its name with
    /// `subscription` and `resource_group`.
    pub capacity: Option<Sp<String>>,
    /// capacity: Azure subscription id (with a capacity name).
    pub subscription: Option<Sp<String>>,
    /// capacity: Azure resource group (with a capacity name).
    pub resource_group: Option<Sp<String>>,
    /// capacity (`action: scale`): the SKU to set, `F2` .. `F2048`.
    pub sku: Option<Sp<String>>,
    /// fabric_job: `pipeline`, `notebook`, `spark_job_definition` or `copy_job`.
    pub item_type: Option<Sp<RawItemType>>,
    /// fabric_job: the item's name or GUID.
    pub item: Option<Sp<String>>,
    /// fabric_job (notebook): the session configuration of the run.
    pub configuration: Option<Sp<RawNotebookConfiguration>>,

    /// data_check: the DAX query sent to the semantic model (Execute Queries API; one
    /// query, one result table).
    pub query: Option<Sp<String>>,
    /// data_check: what the answer must satisfy: `{ rows: { min, max } }`,
    /// `{ value: { min, max, equals }, column }` or `{ no_rows: true }`.
    pub expect: Option<Sp<RawExpect>>,
    /// data_check: `error` (default: a failed check fails the step) or `warn` (the step
    /// succeeds with a warning).
    pub severity: Option<Sp<RawSeverity>>,
    /// freshness: fail when the last successful refresh / run of the resource ended longer
    /// ago than this (humantime, e.g. `26h`).
    pub max_age: Option<Sp<String>>,
    /// freshness: warn (the step still succeeds) when it ended longer ago than this.
    pub warn_after: Option<Sp<String>>,
    /// data_check: the UPN the query runs as on a model with row-level security
    /// (`impersonatedUserName`).
    pub impersonated_user: Option<Sp<String>>,
}

/// `expect:` of a data_check step: exactly one of `rows`, `value` or `no_rows`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Expect")]
pub(crate) struct RawExpect {
    /// Bounds of the number of rows returned.
    pub rows: Option<Sp<RawBounds>>,
    /// Bounds of the one value of the answer (first row; `column` names it when the table
    /// has several columns).
    pub value: Option<Sp<RawBounds>>,
    /// With `value`: the column, as the service names it (`[Total]`, `Sales[Amount]`, or
    /// just `Total`).
    pub column: Option<Sp<String>>,
    /// `true`: the query returns the violations; any row fails the check.
    pub no_rows: Option<Sp<bool>>,
}

/// Bounds of a checked number: `min` and/or `max` (inclusive), or `equals`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Bounds")]
pub(crate) struct RawBounds {
    /// At least this (inclusive).
    pub min: Option<Sp<f64>>,
    /// At most this (inclusive).
    pub max: Option<Sp<f64>>,
    /// Exactly this value (a number, string or boolean); not with `min`/`max`.
    pub equals: Option<Sp<serde_json::Value>>,
}

/// `severity:` of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "Severity")]
pub(crate) enum RawSeverity {
    /// A failed check fails the step.
    Error,
    /// A failed check leaves the step succeeded, with a warning in every output.
    Warn,
}

/// `for_each:` of a step.
#[derive(Debug, JsonSchema)]
#[schemars(untagged)]
#[schemars(rename = "ForEach")]
pub(crate) enum RawForEach {
    /// The values, inline.
    List(#[schemars(length(min = 1))] Vec<Sp<String>>),
    /// A string: `"${vars.NAME}"` holding a comma-separated list (`--var NAME=a,b,c`).
    Text(#[schemars(regex(pattern = r"^\$\{vars\.[A-Za-z_][A-Za-z0-9_]*\}$"))] String),
    /// The long form.
    Long(Box<RawForEachLong>),
}

/// The long form of `for_each`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ForEachLong")]
pub(crate) struct RawForEachLong {
    /// A text file of values, one per line (blank lines and `#` comments skipped), relative to
    /// the job file's folder.
    pub file: Option<Sp<String>>,
    /// The items discovery finds when the run starts (a resumed run keeps the ones its first
    /// run found).
    pub discover: Option<Sp<RawDiscover>>,
}

/// `for_each.discover`: what to list when the run starts.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Discover")]
pub(crate) struct RawDiscover {
    /// Workspace alias, name or GUID.
    pub workspace: Sp<String>,
    /// What to list: `semantic_models` (the refreshable ones).
    pub items: Sp<RawDiscoverItems>,
    /// Names to keep, case-insensitive, `*` any run of characters, `?` one (default `*`).
    pub name: Option<Sp<String>>,
    /// Leave out the items other steps of the job name (default `false`).
    pub exclude_named: Option<Sp<bool>>,
}

/// `for_each.discover.items`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "DiscoverItems")]
pub(crate) enum RawDiscoverItems {
    /// Semantic models whose `isRefreshable` is not false (DirectQuery and live connections
    /// have nothing to refresh).
    SemanticModels,
}

impl<'de> Deserialize<'de> for RawForEach {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawForEach;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a list of values, \"${vars.NAME}\" or a mapping with `file` or `discover`",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawForEach::Text(v.to_string()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<Sp<String>>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(RawForEach::List)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawForEachLong::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|l| RawForEach::Long(Box::new(l)))
            }
        }
        d.deserialize_any(V)
    }
}

/// The Fabric items a `fabric_job` step runs through the Job Scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "ItemType")]
pub(crate) enum RawItemType {
    /// Data pipeline (`DataPipeline`).
    Pipeline,
    /// Notebook (`Notebook`).
    Notebook,
    /// Spark job definition (`SparkJobDefinition`).
    SparkJobDefinition,
    /// Copy job (`CopyJob`).
    CopyJob,
}

/// `configuration:` of a notebook `fabric_job` step (the run's session configuration).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "NotebookConfiguration")]
pub(crate) struct RawNotebookConfiguration {
    /// Spark properties, e.g. `spark.sql.shuffle.partitions: "64"`.
    pub conf: Option<IndexMap<String, Sp<String>>>,
    /// The environment to run in.
    pub environment: Option<Sp<RawItemRef>>,
    /// The default lakehouse of the session.
    pub default_lakehouse: Option<Sp<RawLakehouseRef>>,
    /// Run on the starter pool.
    pub use_starter_pool: Option<Sp<bool>>,
    /// Run on this workspace pool.
    pub use_workspace_pool: Option<Sp<String>>,
}

/// An item named by id and/or name.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ItemRef")]
pub(crate) struct RawItemRef {
    /// The item GUID.
    pub id: Option<Sp<String>>,
    /// The item name.
    pub name: Option<Sp<String>>,
}

/// A lakehouse named by id and/or name, in this or another workspace.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "LakehouseRef")]
pub(crate) struct RawLakehouseRef {
    /// The lakehouse GUID.
    pub id: Option<Sp<String>>,
    /// The lakehouse name.
    pub name: Option<Sp<String>>,
    /// The GUID of the workspace that holds it (default: the notebook's).
    pub workspace_id: Option<Sp<String>>,
}

/// `capacity_limits:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "CapacityLimits")]
pub(crate) enum RawCapacityLimits {
    Auto,
    Off,
}

/// `action:` of a capacity step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "CapacityAction")]
pub(crate) enum RawCapacityAction {
    /// Resume a paused capacity and wait until it is `Active` (no-op when already active).
    Resume,
    /// Suspend (pause) the capacity and wait until it is `Paused` (no-op when already paused).
    Suspend,
    /// Change the SKU (`sku:`) and wait until the capacity reports it.
    Scale,
}

/// `format:` of a webhook step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "WebhookFormat")]
pub(crate) enum RawWebhookFormat {
    /// `{"text": "<run summary>"}` (Slack and generic endpoints; the default).
    Plain,
    /// A Teams Workflows message: an Adaptive Card with the run's status, counts, failed
    /// steps and their errors, run id and `link`.
    Teams,
    /// A Slack message with Block Kit blocks (and `text` as the notification fallback).
    Slack,
}

/// `wait_for:` of a sas_flow step.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "WaitFor")]
pub(crate) struct RawWaitFor {
    /// Workspace alias, name or GUID.
    pub workspace: Sp<String>,
    /// Gen1 dataflow name or GUID.
    pub dataflow: Sp<String>,
}

/// `refresh:` of a dataset step (enhanced refresh).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "EnhancedRefresh")]
pub(crate) struct RawRefresh {
    /// Refresh type (default `full`).
    #[serde(rename = "type")]
    pub refresh_type: Option<Sp<RawRefreshType>>,
    /// `transactional` (default) or `partial_batch`.
    pub commit_mode: Option<Sp<RawCommitMode>>,
    /// Tables / partitions to refresh; all when omitted.
    pub objects: Option<Vec<Sp<RawRefreshObject>>>,
    /// Apply the incremental refresh policy.
    pub apply_refresh_policy: Option<bool>,
    /// `YYYY-MM-DD` date for the incremental refresh policy.
    pub effective_date: Option<Sp<String>>,
    /// Parallel processing threads (1..=10000).
    pub max_parallelism: Option<Sp<i64>>,
    /// Service-side retries (0..=100).
    pub retry_count: Option<Sp<i64>>,
    /// Service-side timeout (under 24h).
    pub timeout: Option<Sp<String>>,
}

/// One `objects` entry.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "RefreshObject")]
pub(crate) struct RawRefreshObject {
    /// Table name.
    pub table: Sp<String>,
    /// Partition name; the whole table when omitted.
    pub partition: Option<Sp<String>>,
}

/// One effective identity of `export.identities` (row-level security).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "EffectiveIdentity")]
pub(crate) struct RawIdentity {
    /// The user name the model's RLS rules see (`USERPRINCIPALNAME()`), at most 256
    /// characters.
    #[schemars(length(min = 1, max = 256))]
    pub username: Sp<String>,
    /// RLS roles of the model to apply (at most 50, each at most 50 characters, no `,`).
    #[schemars(length(max = 50))]
    pub roles: Option<Vec<Sp<String>>>,
    /// Power BI reports: the semantic models (names or GUIDs, in the report's workspace) the
    /// identity applies to; default: the report's own model.
    pub datasets: Option<Vec<Sp<String>>>,
}

/// `export:` of a report step.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Export")]
pub(crate) struct RawExport {
    /// PDF, PPTX, PNG; paginated reports also IMAGE, XLSX, DOCX, CSV, XML, MHTML,
    /// ACCESSIBLEPDF.
    #[schemars(extend("enum" = ["PDF", "PPTX", "PNG", "IMAGE", "XLSX", "DOCX", "CSV", "XML", "MHTML", "ACCESSIBLEPDF"]))]
    pub format: Sp<String>,
    /// Where to write the file (relative to the working directory).
    pub path: Sp<String>,
    /// Page names to export; all when omitted.
    pub pages: Option<Vec<Sp<String>>>,
    /// Bookmark name to apply.
    pub bookmark: Option<Sp<String>>,
    /// Paginated reports: parameter values (`paginatedReportConfiguration.parameterValues`).
    pub parameters: Option<IndexMap<String, Sp<String>>>,
    /// Power BI reports: one report-level filter in the URL filter syntax
    /// (`Store/Region eq 'West'`), sent as `powerBIReportConfiguration.reportLevelFilters`.
    pub filter: Option<Sp<String>>,
    /// Row-level security: the effective identities to export as (one for a paginated report).
    pub identities: Option<Sp<Vec<Sp<RawIdentity>>>>,
    /// Locale, e.g. `en-US`.
    pub locale: Option<Sp<String>>,
    /// Include hidden pages (PDF/PPTX/PNG).
    pub include_hidden_pages: Option<bool>,
}

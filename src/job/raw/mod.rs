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

mod values;

pub(crate) use values::{
    RawBounds, RawCapacityAction, RawCapacityLimits, RawDiscover, RawDiscoverItems, RawExpect,
    RawExport, RawForEach, RawIdentity, RawItemType, RawNotebookConfiguration, RawRefresh,
    RawSeverity, RawWaitFor, RawWebhookFormat,
};

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
    /// How long a step usually takes, retries included: a duration (`45m`) or `auto`
    /// (learned from the step's past runs); a step running past it is flagged (default none).
    pub expected_duration: Option<Sp<String>>,
    /// A step that runs past its `expected_duration`: `warn` (default) flags it; `fail` also
    /// fails the run (the step itself is not stopped).
    pub on_overrun: Option<Sp<RawOnOverrun>>,
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

/// `on_overrun` choices.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "OnOverrun")]
pub(crate) enum RawOnOverrun {
    Warn,
    Fail,
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
    /// How long the step usually takes, retries included: a duration (`45m`) or `auto`
    /// (learned from its past runs); running past it flags the step, live and in reports.
    pub expected_duration: Option<Sp<String>>,
    /// Past its `expected_duration`: `warn` (default) flags the step; `fail` also fails the
    /// run (the step itself is not stopped).
    pub on_overrun: Option<Sp<RawOnOverrun>>,
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

//! Per-item profile entries: datasets, dataflows, reports, Fabric items, flows and hooks.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{DurationSpec, HumanDuration, Knobs, OutcomeSpec, StartedBy};

/// Declares a struct with the common [`Knobs`] fields plus its own, because serde's `flatten`
/// would disable `deny_unknown_fields` and blur error messages.
macro_rules! with_knobs {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            /// See `Knobs::duration`.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub duration: Option<DurationSpec>,
            /// See `Knobs::outcomes`.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub outcomes: Option<Vec<OutcomeSpec>>,
            /// See `Knobs::running_at_start`.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub running_at_start: Option<bool>,
            /// See `Knobs::running_at_start_by`.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub running_at_start_by: Option<StartedBy>,
            /// See `Knobs::never_ends`.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub never_ends: Option<bool>,
            /// See `Knobs::history_lag`.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub history_lag: Option<HumanDuration>,
            /// See `Knobs::drop_probability`.
            #[serde(skip_serializing_if = "Option::is_none")]
            #[schemars(range(min = 0.0, max = 1.0))]
            pub drop_probability: Option<f64>,
            /// See `Knobs::queue_time`.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub queue_time: Option<HumanDuration>,
            /// See `Knobs::retry_after`.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub retry_after: Option<u64>,
            /// See `Knobs::past_runs`.
            #[serde(skip_serializing_if = "Option::is_none")]
            #[schemars(range(max = 100))]
            pub past_runs: Option<u32>,
            /// See `Knobs::past_duration`.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub past_duration: Option<DurationSpec>,
        }

        impl $name {
            /// The behaviour knobs of this resource.
            pub fn knobs(&self) -> Knobs {
                Knobs {
                    duration: self.duration,
                    outcomes: self.outcomes.clone(),
                    running_at_start: self.running_at_start,
                    running_at_start_by: self.running_at_start_by,
                    never_ends: self.never_ends,
                    history_lag: self.history_lag,
                    drop_probability: self.drop_probability,
                    queue_time: self.queue_time,
                    retry_after: self.retry_after,
                    past_runs: self.past_runs,
                    past_duration: self.past_duration,
                }
            }
        }
    };
}

with_knobs! {
    /// A semantic model.
    pub struct DatasetSpec {
        /// The GUID; generated from the workspace and name when absent.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schemars(with = "Option<String>")]
        pub id: Option<uuid::Uuid>,
        /// Tables reported in execution details when a refresh names no objects.
        pub tables: Vec<String>,
        /// Names of Gen1 dataflows this model reads (lineage), in this workspace or elsewhere.
        pub upstream_dataflows: Vec<String>,
        /// `false`: a DirectQuery or live-connection model. It is listed with
        /// `isRefreshable: false` and `POST .../refreshes` answers 400. Default `true`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub refreshable: Option<bool>,
        /// Row-level security roles defined in the model. With any, the model is listed with
        /// `isEffectiveIdentityRequired: true` and an export by a service principal must name
        /// an identity with some of these roles; without, an export naming an identity for it
        /// is refused.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub rls_roles: Vec<String>,
        /// The answers of `executeQueries`: DAX query text (compared with runs of whitespace
        /// collapsed) -> the rows of its one result table. The simulator evaluates no DAX: a
        /// query not listed here is answered with the service's DAX error (400
        /// `DatasetExecuteQueriesError`).
        #[serde(skip_serializing_if = "IndexMap::is_empty")]
        pub queries: IndexMap<String, Vec<serde_json::Map<String, serde_json::Value>>>,
    }
}

with_knobs! {
    /// A Gen1 dataflow.
    pub struct DataflowSpec {
        /// The GUID (`objectId`); generated when absent.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schemars(with = "Option<String>")]
        pub id: Option<uuid::Uuid>,
        /// Names of Gen1 dataflows this one reads (linked entities).
        pub upstream_dataflows: Vec<String>,
    }
}

with_knobs! {
    /// A Dataflow Gen2 (Fabric item type `Dataflow`, job type `Execute`).
    pub struct FabricDataflowSpec {
        /// The item GUID; generated when absent.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schemars(with = "Option<String>")]
        pub id: Option<uuid::Uuid>,
    }
}

with_knobs! {
    /// A report; its knobs drive exports.
    pub struct ReportSpec {
        /// The GUID; generated when absent.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schemars(with = "Option<String>")]
        pub id: Option<uuid::Uuid>,
        /// The dataset it shows (a name in the same workspace); default: the dataset with the
        /// report's name, else the workspace's first dataset, else one made for it. For a
        /// paginated report, the model it reads (none by default); its row-level security
        /// then applies to the export's identity.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub dataset: Option<String>,
        /// A paginated report (`PaginatedReport`, no `datasetId`).
        pub paginated: bool,
    }
}

with_knobs! {
    /// Another Fabric item that runs jobs (a pipeline, a notebook...).
    pub struct ItemSpec {
        /// The item GUID; generated when absent.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schemars(with = "Option<String>")]
        pub id: Option<uuid::Uuid>,
        /// The Fabric item type, e.g. `DataPipeline`, `Notebook` (required).
        #[serde(rename = "type")]
        pub item_type: String,
        /// Job types it accepts; default by type (`Pipeline`/`Execute` for pipelines,
        /// `RunNotebook`/`Execute` for notebooks, `sparkjob` for Spark job definitions,
        /// `CopyJob` for copy jobs, `DefaultJob` otherwise).
        pub job_types: Vec<String>,
    }
}

/// A dataflow a flow refreshes when triggered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataflowRef {
    /// Workspace name or GUID.
    pub workspace: String,
    /// Gen1 dataflow name or GUID.
    pub dataflow: String,
}

/// A Power Automate / Logic Apps "When an HTTP request is received" flow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FlowSpec {
    /// The workflow id in the URL; generated when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The SAS signature the URL must carry; generated when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
    /// Status of the 1st, 2nd, ... call (the last repeats); default `[202]`.
    pub statuses: Vec<u16>,
    /// "Who can trigger the flow?" is restricted to the tenant's users: the trigger wants a
    /// bearer token for `https://service.flow.microsoft.com/` and no SAS parameters.
    pub oauth: bool,
    /// A Gen1 dataflow refresh the flow starts on each accepted call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts_dataflow: Option<DataflowRef>,
    /// Time between the call and the dataflow refresh starting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<HumanDuration>,
}

/// A webhook sink.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HookSpec {
    /// Status of the 1st, 2nd, ... call (the last repeats); default `[200]`.
    pub statuses: Vec<u16>,
    /// What the sink is: `any` (default: accepts any body, but still checks one that claims
    /// to be a Teams message or Slack blocks), `teams` (a Teams Workflows webhook: Adaptive
    /// Cards only, answers 202) or `slack` (a Slack incoming webhook: `text` and/or valid
    /// `blocks`, answers `ok`).
    #[serde(skip_serializing_if = "HookKind::is_any")]
    pub kind: HookKind,
}

/// What a webhook sink stands for (`hooks.<name>.kind`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HookKind {
    #[default]
    Any,
    Teams,
    Slack,
}

impl HookKind {
    fn is_any(&self) -> bool {
        *self == HookKind::Any
    }
}

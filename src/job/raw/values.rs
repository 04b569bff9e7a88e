//! The values of a step's keys as written: expectations, `for_each`, item and capacity
//! references, refresh, export and webhook settings.

use std::fmt;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::{RawCommitMode, RawRefreshType, Sp};

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

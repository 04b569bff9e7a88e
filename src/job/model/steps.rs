//! The step kinds of a validated job: what each step type's keys became, with defaults
//! applied and values checked.

use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;

use super::{HeaderValue, StepKind, humantime_serde_compat};
use crate::secret::Secret;

/// `sas_flow`: POST to a Power Automate / Logic Apps HTTP trigger URL.
#[derive(Debug, Clone, Serialize)]
pub struct SasFlowStep {
    /// The whole URL is a credential (`sig`).
    pub url: Secret,
    /// Default `POST`.
    pub method: String,
    pub headers: IndexMap<String, HeaderValue>,
    /// YAML converted to JSON.
    pub body: Option<serde_json::Value>,
    /// Accepted statuses; empty = any 2xx.
    pub expect_status: Vec<u16>,
    pub wait_for: Option<WaitFor>,
    /// Send an OAuth token of the step's connection for the flow audience
    /// (`https://service.flow.microsoft.com//.default`) instead of the SAS signature.
    pub oauth: bool,
}

/// After a SAS trigger, wait for this Gen1 dataflow's transaction started after the trigger.
#[derive(Debug, Clone, Serialize)]
pub struct WaitFor {
    pub workspace: String,
    pub dataflow: String,
}

/// Dataflow generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum Generation {
    /// Power BI dataflow, refreshed through Power BI REST.
    #[default]
    #[serde(rename = "1")]
    Gen1,
    /// Fabric Dataflow Gen2, run through the Fabric job scheduler (`Execute`).
    #[serde(rename = "2")]
    Gen2,
}

/// `notifyOption` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum NotifyOption {
    #[default]
    NoNotification,
    MailOnFailure,
    /// Datasets (standard refresh) only.
    MailOnCompletion,
}

/// Gen1 `processType` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ProcessType {
    #[serde(rename = "default")]
    Default,
    #[serde(rename = "processFull")]
    ProcessFull,
}

/// Gen2 `executionData.executeOption`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ExecuteOption {
    SkipApplyChanges,
    ApplyChangesIfNeeded,
}

/// `dataflow`: Gen1 (Power BI REST) or Gen2 (Fabric job).
#[derive(Debug, Clone, Serialize)]
pub struct DataflowStep {
    pub workspace: String,
    /// Name or GUID.
    pub dataflow: String,
    pub generation: Generation,
    /// Gen1 only; always sent.
    pub notify: NotifyOption,
    /// Gen1 only.
    pub process_type: Option<ProcessType>,
    /// Gen2 only.
    pub execute_option: Option<ExecuteOption>,
    /// Gen2 public parameters: name -> value.
    pub parameters: IndexMap<String, serde_json::Value>,
}

/// `fabric_job`: a Fabric item run as a job instance through the Job Scheduler.
#[derive(Debug, Clone, Serialize)]
pub struct FabricJobStep {
    pub workspace: String,
    /// Name or GUID.
    pub item: String,
    pub item_type: FabricItemType,
    /// Pipeline or notebook parameters: name -> value.
    pub parameters: IndexMap<String, serde_json::Value>,
    /// Notebook session configuration, in the service's JSON (`conf`, `environment`,
    /// `defaultLakehouse`, `useStarterPool`, `useWorkspacePool`).
    pub configuration: Option<serde_json::Value>,
}

/// The item types a `fabric_job` step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FabricItemType {
    Pipeline,
    Notebook,
    SparkJobDefinition,
    CopyJob,
}

impl FabricItemType {
    /// The name a job file uses (`pipeline`, ...).
    pub fn name(self) -> &'static str {
        match self {
            FabricItemType::Pipeline => "pipeline",
            FabricItemType::Notebook => "notebook",
            FabricItemType::SparkJobDefinition => "spark_job_definition",
            FabricItemType::CopyJob => "copy_job",
        }
    }

    /// The Fabric item type (`DataPipeline`, ...).
    pub(crate) fn fabric_type(self) -> &'static str {
        match self {
            FabricItemType::Pipeline => "DataPipeline",
            FabricItemType::Notebook => "Notebook",
            FabricItemType::SparkJobDefinition => "SparkJobDefinition",
            FabricItemType::CopyJob => "CopyJob",
        }
    }

    /// What people call it (`pipeline`, `Spark job definition`, ...).
    pub(crate) fn noun(self) -> &'static str {
        match self {
            FabricItemType::Pipeline => "pipeline",
            FabricItemType::Notebook => "notebook",
            FabricItemType::SparkJobDefinition => "Spark job definition",
            FabricItemType::CopyJob => "copy job",
        }
    }

    /// Whether its job takes `parameters:`.
    pub(crate) fn takes_parameters(self) -> bool {
        matches!(self, FabricItemType::Pipeline | FabricItemType::Notebook)
    }

    /// The type of a Fabric item type name, if a `fabric_job` runs it.
    pub(crate) fn from_fabric_type(fabric_type: &str) -> Option<FabricItemType> {
        [
            FabricItemType::Pipeline,
            FabricItemType::Notebook,
            FabricItemType::SparkJobDefinition,
            FabricItemType::CopyJob,
        ]
        .into_iter()
        .find(|t| t.fabric_type().eq_ignore_ascii_case(fabric_type))
    }
}

/// The notebook parameter type of a value (`string`, `int`, `float`, `bool`: the types the
/// notebook run API takes), `None` for what a notebook parameter cannot hold.
pub(crate) fn notebook_parameter_type(v: &serde_json::Value) -> Option<&'static str> {
    match v {
        serde_json::Value::String(_) => Some("string"),
        serde_json::Value::Bool(_) => Some("bool"),
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => Some("int"),
        serde_json::Value::Number(_) => Some("float"),
        _ => None,
    }
}

/// `dataset`: semantic model refresh.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetStep {
    pub workspace: String,
    /// Name or GUID.
    pub dataset: String,
    /// Standard refresh only (`notifyOption`, default `NoNotification`).
    pub notify: NotifyOption,
    /// Present = enhanced refresh.
    pub refresh: Option<EnhancedRefresh>,
}

/// Enhanced refresh type (`type` on the wire, PascalCase).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RefreshType {
    Full,
    ClearValues,
    Calculate,
    DataOnly,
    Automatic,
    Defragment,
}

/// Enhanced refresh `commitMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CommitMode {
    Transactional,
    PartialBatch,
}

/// One `objects` entry of an enhanced refresh.
#[derive(Debug, Clone, Serialize)]
pub struct RefreshObject {
    pub table: String,
    pub partition: Option<String>,
}

/// The `refresh:` block of a dataset step: what the enhanced refresh body carries.
#[derive(Debug, Clone, Serialize, Default)]
pub struct EnhancedRefresh {
    pub refresh_type: Option<RefreshType>,
    pub commit_mode: Option<CommitMode>,
    pub objects: Vec<RefreshObject>,
    pub apply_refresh_policy: Option<bool>,
    /// `YYYY-MM-DD` or an RFC 3339 date-time, sent as is.
    pub effective_date: Option<String>,
    pub max_parallelism: Option<u32>,
    pub retry_count: Option<u32>,
    /// Service-side timeout, sent as `hh:mm:ss` (< 24 h).
    #[serde(with = "humantime_serde_compat::option")]
    pub timeout: Option<Duration>,
}

/// Export formats of `ExportTo` (exactly the service's list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ExportFormat {
    Pdf,
    Pptx,
    Png,
    /// Paginated reports only from here on.
    Image,
    Xlsx,
    Docx,
    Csv,
    Xml,
    Mhtml,
    Accessiblepdf,
}

impl ExportFormat {
    /// The wire name (`PDF`, `ACCESSIBLEPDF`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            ExportFormat::Pdf => "PDF",
            ExportFormat::Pptx => "PPTX",
            ExportFormat::Png => "PNG",
            ExportFormat::Image => "IMAGE",
            ExportFormat::Xlsx => "XLSX",
            ExportFormat::Docx => "DOCX",
            ExportFormat::Csv => "CSV",
            ExportFormat::Xml => "XML",
            ExportFormat::Mhtml => "MHTML",
            ExportFormat::Accessiblepdf => "ACCESSIBLEPDF",
        }
    }

    /// True for the formats only paginated reports support.
    pub(crate) fn paginated_only(&self) -> bool {
        !matches!(
            self,
            ExportFormat::Pdf | ExportFormat::Pptx | ExportFormat::Png
        )
    }
}

/// `report`: export to file.
#[derive(Debug, Clone, Serialize)]
pub struct ReportStep {
    pub workspace: String,
    /// Name or GUID.
    pub report: String,
    pub export: ExportSpec,
}

/// The `export:` block of a report step.
#[derive(Debug, Clone, Serialize)]
pub struct ExportSpec {
    pub format: ExportFormat,
    /// Where the file is written (relative paths resolve against the working directory).
    pub path: PathBuf,
    /// Page (internal) names; empty = all pages.
    pub pages: Vec<String>,
    /// Default bookmark name.
    pub bookmark: Option<String>,
    /// Paginated report parameter values.
    pub parameters: IndexMap<String, String>,
    pub locale: Option<String>,
    pub include_hidden_pages: Option<bool>,
    /// Power BI reports: one report-level filter (URL filter syntax).
    pub filter: Option<String>,
    /// Row-level security identities to export as.
    pub identities: Vec<EffectiveIdentity>,
}

/// An effective identity of an export (row-level security).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EffectiveIdentity {
    pub username: String,
    pub roles: Vec<String>,
    /// Semantic model names or GUIDs; empty: the report's own model.
    pub datasets: Vec<String>,
}

/// `webhook`: any HTTP call, by default a Teams/Slack-compatible `{"text": ...}`.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookStep {
    pub url: Secret,
    pub method: String,
    pub headers: IndexMap<String, HeaderValue>,
    /// May use `${run.job}`, `${run.status}`, `${run.id}`, `${run.summary}`,
    /// `${steps.<id>.status}`, resolved when the step runs.
    pub body: Option<serde_json::Value>,
    pub expect_status: Vec<u16>,
    /// The ready payload sent when there is no `body` (default `plain`).
    pub format: WebhookFormat,
    /// A link the Teams card / Slack message offers; may use `${run.id}`, `${run.job}`.
    pub link: Option<String>,
}

/// The ready payloads of a `webhook` step (`format:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// `{"text": "<run summary>"}`.
    #[default]
    Plain,
    /// A Teams Workflows message carrying an Adaptive Card.
    Teams,
    /// A Slack message with Block Kit blocks.
    Slack,
}

/// How a failed check counts (`severity:`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The step fails.
    #[default]
    Error,
    /// The step succeeds with a warning.
    Warn,
}

/// What a data check's answer must satisfy (`expect:`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Expectation {
    /// A violations query: any row fails.
    NoRows,
    /// The number of rows is within the bounds (inclusive).
    Rows { min: Option<u64>, max: Option<u64> },
    /// The value of `column` (or of the only column) in the first row.
    Value {
        column: Option<String>,
        min: Option<f64>,
        max: Option<f64>,
        equals: Option<serde_json::Value>,
    },
}

/// `data_check`: a DAX query against a semantic model (Execute Queries API) and an
/// assertion on its answer.
#[derive(Debug, Clone, Serialize)]
pub struct DataCheckStep {
    pub workspace: String,
    /// Name or GUID.
    pub dataset: String,
    /// One DAX query (`EVALUATE ...`).
    pub query: String,
    pub expect: Expectation,
    pub severity: Severity,
    /// `impersonatedUserName` (models with row-level security).
    pub impersonated_user: Option<String>,
}

/// `freshness`: reads the last successful refresh / run of a dataset, dataflow (Gen1 or
/// Gen2) or Fabric item from the service's history and fails (`max_age`) or warns
/// (`warn_after`) when it ended too long ago. Triggers nothing.
#[derive(Debug, Clone, Serialize)]
pub struct FreshnessStep {
    /// The resource, as the step that would refresh it (`dataset`, `dataflow` or
    /// `fabric_job`); only its listing of runs is read.
    pub target: Box<StepKind>,
    #[serde(with = "humantime_serde_compat::option")]
    pub max_age: Option<Duration>,
    #[serde(with = "humantime_serde_compat::option")]
    pub warn_after: Option<Duration>,
}

/// What a `capacity` step does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum CapacityAction {
    /// Resume until the capacity is `Active`.
    Resume,
    /// Suspend until the capacity is `Paused`.
    Suspend,
    /// Set the SKU (`F2` .. `F2048`) until the capacity reports it.
    Scale { sku: String },
}

impl CapacityAction {
    /// `resume`, `suspend` or `scale`.
    pub fn name(&self) -> &'static str {
        match self {
            CapacityAction::Resume => "resume",
            CapacityAction::Suspend => "suspend",
            CapacityAction::Scale { .. } => "scale",
        }
    }
}

/// A Fabric capacity as Azure Resource Manager names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapacityRef {
    pub subscription: String,
    pub resource_group: String,
    /// `[a-z][a-z0-9]*`, 3 to 63 characters.
    pub name: String,
}

impl CapacityRef {
    /// Parses `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Fabric/capacities/{name}`
    /// (segment names compared case-insensitively, as ARM does).
    pub(crate) fn parse_id(id: &str) -> Option<CapacityRef> {
        let parts: Vec<&str> = id.trim().trim_matches('/').split('/').collect();
        match parts.as_slice() {
            [subs, s, rgs, rg, providers, ns, caps, name]
                if subs.eq_ignore_ascii_case("subscriptions")
                    && rgs.eq_ignore_ascii_case("resourceGroups")
                    && providers.eq_ignore_ascii_case("providers")
                    && ns.eq_ignore_ascii_case("Microsoft.Fabric")
                    && caps.eq_ignore_ascii_case("capacities")
                    && !s.is_empty()
                    && !rg.is_empty()
                    && !name.is_empty() =>
            {
                Some(CapacityRef {
                    subscription: s.to_string(),
                    resource_group: rg.to_string(),
                    name: name.to_string(),
                })
            }
            _ => None,
        }
    }

    /// The ARM resource id.
    pub fn id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Fabric/capacities/{}",
            self.subscription, self.resource_group, self.name
        )
    }

    /// `resource group / name`, for progress and reports.
    pub fn label(&self) -> String {
        format!("{} / {}", self.resource_group, self.name)
    }
}

/// `capacity`: resume, suspend or scale a Fabric capacity through Azure Resource Manager.
/// The names stay as written (they may hold `${env.X}` until a run resolves them); the
/// [`CapacityRef`] is built by [`CapacityStep::target`].
#[derive(Debug, Clone, Serialize)]
pub struct CapacityStep {
    #[serde(flatten)]
    pub action: CapacityAction,
    /// The ARM resource id, or the capacity's name (then with the two fields below).
    pub capacity: String,
    pub subscription: Option<String>,
    pub resource_group: Option<String>,
}

impl CapacityStep {
    /// The capacity as ARM names it, or why the written values do not name one.
    pub fn target(&self) -> Result<CapacityRef, String> {
        let capacity = self.capacity.trim();
        if capacity.starts_with('/') {
            return CapacityRef::parse_id(capacity).ok_or_else(|| {
                format!(
                    "`{capacity}` is not a Fabric capacity resource id (/subscriptions/SUB/resourceGroups/RG/providers/Microsoft.Fabric/capacities/NAME)"
                )
            });
        }
        match (&self.subscription, &self.resource_group) {
            (Some(s), Some(rg)) if !s.trim().is_empty() && !rg.trim().is_empty() => {
                Ok(CapacityRef {
                    subscription: s.trim().to_string(),
                    resource_group: rg.trim().to_string(),
                    name: capacity.to_string(),
                })
            }
            _ => Err(format!(
                "capacity `{capacity}` is a name: give `subscription` and `resource_group`, or the resource id"
            )),
        }
    }

    /// `resource group / name` (or the value as written when it names no capacity yet).
    pub fn label(&self) -> String {
        self.target()
            .map(|t| t.label())
            .unwrap_or_else(|_| self.capacity.clone())
    }
}

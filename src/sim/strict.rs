//! The rules by which the simulator refuses what the real services refuse, each with the
//! service's own status and error body. They are all on by default; a profile may relax one
//! by name (`relax: [content_type]`), and a run says so (docs/simulator.md, "Strict rules").
//!
//! Request bodies are checked against [`Shape`]s written from the official request schemas in
//! `specs/`; `tests/it/sim_requests.rs` checks each shape against its schema, so the two cannot
//! drift apart unnoticed.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::http::{Api, fabric_error, pbi_error};
use super::state::Principal;

/// A rule of the strict simulator, by the name a profile's `relax:` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// `MailOnFailure` / `MailOnCompletion` on a dataset or Gen1 dataflow refresh with an
    /// app-only token: 400 `Invalid NotifyOption value '...' for app only owner requests`.
    AppOnlyNotify,
    /// Each operation accepts the identities its documentation's "Microsoft Entra supported
    /// identities" table lists; others get 400 `PrincipalTypeNotSupported`.
    IdentitySupport,
    /// A Dataflow Gen2 run started by a service principal or managed identity is accepted and
    /// then fails with `SPNBasedRefreshNotAllowed`, as the service does.
    DataflowGen2ServicePrincipal,
    /// A request body must be sent as `application/json`: 415 otherwise.
    ContentType,
    /// Request bodies must match the spec's request schema; unknown fields are refused.
    RequestSchema,
    /// Query parameters must be ones the operation documents, with valid values.
    QueryParameters,
}

impl Rule {
    /// Every rule, in the order docs list them.
    pub const ALL: [Rule; 6] = [
        Rule::AppOnlyNotify,
        Rule::IdentitySupport,
        Rule::DataflowGen2ServicePrincipal,
        Rule::ContentType,
        Rule::RequestSchema,
        Rule::QueryParameters,
    ];

    /// The name a profile uses (`app_only_notify`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Rule::AppOnlyNotify => "app_only_notify",
            Rule::IdentitySupport => "identity_support",
            Rule::DataflowGen2ServicePrincipal => "dataflow_gen2_service_principal",
            Rule::ContentType => "content_type",
            Rule::RequestSchema => "request_schema",
            Rule::QueryParameters => "query_parameters",
        }
    }
}

/// The rules a profile relaxed; every other rule holds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rules {
    relaxed: Vec<Rule>,
}

impl Rules {
    pub(super) fn relaxing(relaxed: &[Rule]) -> Rules {
        Rules {
            relaxed: relaxed.to_vec(),
        }
    }

    /// Whether `rule` is enforced.
    pub(super) fn holds(&self, rule: Rule) -> bool {
        !self.relaxed.contains(&rule)
    }
}

/// Whether a token's identity is app-only (service principal, managed identity).
pub(crate) fn app_only(principal: Principal) -> bool {
    principal != Principal::User
}

/// The Power BI answer to a mail notify option sent with an app-only token (community
/// reports quoted in docs/simulator.md; the service has no mail recipient for an app).
pub(crate) fn app_only_notify(option: &str) -> Response {
    pbi_error(
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        &format!("Invalid NotifyOption value '{option}' for app only owner requests"),
    )
}

/// One operation's "Microsoft Entra supported identities" table.
#[derive(Debug, Clone, Copy)]
pub struct IdentitySupport {
    /// The spec file (under `specs/`) and operation id the table comes from.
    pub spec: &'static str,
    pub operation_id: &'static str,
    /// `User` row.
    pub user: bool,
    /// `Service principal and Managed identities` row.
    pub app: bool,
}

const PLATFORM: &str = "fabric-rest-api-specs/platform/swagger.json";
const DATAFLOW: &str = "fabric-rest-api-specs/dataflow/swagger.json";
const POWER_BI: &str = "PowerBI-CSharp/swagger.json";

const fn op(spec: &'static str, operation_id: &'static str, app: bool) -> IdentitySupport {
    IdentitySupport {
        spec,
        operation_id,
        user: true,
        app,
    }
}

/// The identity support of every operation the simulator serves. Fabric rows copy the
/// tables in the specs' descriptions; the Power BI swagger has no table, and each operation
/// served here says "This API call can be called by a service principal profile".
pub const IDENTITY_SUPPORT: &[IdentitySupport] = &[
    op(PLATFORM, "Workspaces_ListWorkspaces", true),
    op(PLATFORM, "Workspaces_GetWorkspace", true),
    op(PLATFORM, "Items_ListItems", true),
    op(PLATFORM, "Items_GetItem", true),
    op(PLATFORM, "JobScheduler_RunOnDemandItemJob", true),
    op(PLATFORM, "JobScheduler_GetItemJobInstance", true),
    op(PLATFORM, "JobScheduler_ListItemJobInstances", true),
    op(PLATFORM, "JobScheduler_CancelItemJobInstance", true),
    op(DATAFLOW, "Items_ListDataflows", true),
    op(DATAFLOW, "Items_GetDataflow", true),
    op(DATAFLOW, "BackgroundJobs_RunOnDemandExecute", false),
    op(DATAFLOW, "BackgroundJobs_RunOnDemandApplyChanges", false),
    op(POWER_BI, "Groups_GetGroups", true),
    op(POWER_BI, "Groups_GetGroup", true),
    op(POWER_BI, "Datasets_GetDatasetsInGroup", true),
    op(POWER_BI, "Datasets_GetDatasetInGroup", true),
    op(POWER_BI, "Datasets_GetDatasetToDataflowsLinksInGroup", true),
    op(POWER_BI, "Datasets_RefreshDatasetInGroup", true),
    op(POWER_BI, "Datasets_GetRefreshHistoryInGroup", true),
    op(POWER_BI, "Datasets_GetRefreshExecutionDetailsInGroup", true),
    op(POWER_BI, "Datasets_CancelRefreshInGroup", true),
    op(POWER_BI, "Dataflows_GetDataflows", true),
    op(POWER_BI, "Dataflows_GetDataflow", true),
    op(POWER_BI, "Dataflows_RefreshDataflow", true),
    op(POWER_BI, "Dataflows_GetUpstreamDataflowsInGroup", true),
    op(POWER_BI, "Reports_GetReportsInGroup", true),
    op(POWER_BI, "Reports_GetReportInGroup", true),
    op(POWER_BI, "Reports_ExportToFileInGroup", true),
    op(POWER_BI, "Reports_GetExportToFileStatusInGroup", true),
    op(POWER_BI, "Reports_GetFileOfExportToFileInGroup", true),
];

/// Checks `principal` against the table row of `operation_id`; the Fabric refusal
/// (400 `PrincipalTypeNotSupported`, also in the `x-ms-public-api-error-code` header, which
/// Microsoft's own fabric-cicd client reads) when the row says No.
pub(crate) fn check_identity(
    rules: &Rules,
    operation_id: &str,
    principal: Principal,
) -> Result<(), Response> {
    if !rules.holds(Rule::IdentitySupport) {
        return Ok(());
    }
    let Some(row) = IDENTITY_SUPPORT
        .iter()
        .find(|r| r.operation_id == operation_id)
    else {
        return Ok(());
    };
    check_identity_row(rules, row, principal)
}

/// Checks `principal` against one identity table row (see [`check_identity`]).
pub(crate) fn check_identity_row(
    rules: &Rules,
    row: &IdentitySupport,
    principal: Principal,
) -> Result<(), Response> {
    if !rules.holds(Rule::IdentitySupport) {
        return Ok(());
    }
    let allowed = if app_only(principal) {
        row.app
    } else {
        row.user
    };
    if allowed {
        return Ok(());
    }
    let who = match principal {
        Principal::User => "a user",
        Principal::App => "a service principal",
        Principal::ManagedIdentity => "a managed identity",
    };
    let mut response = fabric_error(
        StatusCode::BAD_REQUEST,
        "PrincipalTypeNotSupported",
        &format!("The operation is not supported for the principal type: the caller is {who}"),
    );
    response.headers_mut().insert(
        "x-ms-public-api-error-code",
        HeaderValue::from_static("PrincipalTypeNotSupported"),
    );
    Err(response)
}

/// A non-empty body sent with a media type other than JSON: 415, as the services answer
/// (Power BI: Azure-Samples/powerbi-powershell#17, a refresh POSTed as a form).
pub(crate) fn check_content_type(
    rules: &Rules,
    api: Api,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Response> {
    if !rules.holds(Rule::ContentType) || body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = media.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        return Ok(());
    }
    let shown = if essence.is_empty() {
        "(none)"
    } else {
        essence
    };
    let message =
        format!("The request entity's media type '{shown}' is not supported for this resource.");
    Err(match api {
        Api::PowerBi => pbi_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            &message,
        ),
        Api::Fabric => fabric_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            &message,
        ),
        Api::Arm => super::http::arm_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            &message,
        ),
    })
}

/// The structure of a request body, written from a spec schema (checked against it by the
/// tests). Objects refuse unknown fields.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    String,
    /// A string from a closed set (compared case-insensitively, as the services do).
    Enum(&'static [&'static str]),
    Integer,
    Boolean,
    /// Any JSON value (a schema typed loosely, like `ItemJobParameter.value`).
    Any,
    /// Any JSON object (a schema `{"type": "object"}` with no properties).
    AnyObject,
    Array(&'static Shape),
    /// An object of any keys whose values all have one shape.
    Map(&'static Shape),
    Object(&'static [Field]),
}

/// A property of an [`Shape::Object`].
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub shape: Shape,
    pub required: bool,
}

const fn field(name: &'static str, shape: Shape) -> Field {
    Field {
        name,
        shape,
        required: false,
    }
}

const fn required(name: &'static str, shape: Shape) -> Field {
    Field {
        name,
        shape,
        required: true,
    }
}

/// Power BI `DatasetRefreshRequest`, plus `timeout`, which the service documents (enhanced
/// refresh) and the 2024 swagger lacks. `notifyOption`, required by the swagger, is not
/// required here: an enhanced refresh must omit it (both are listed in the tests' table of
/// known differences).
pub const DATASET_REFRESH_REQUEST: Shape = Shape::Object(&[
    field(
        "notifyOption",
        Shape::Enum(&["NoNotification", "MailOnFailure", "MailOnCompletion"]),
    ),
    field(
        "type",
        Shape::Enum(&[
            "Full",
            "ClearValues",
            "Calculate",
            "DataOnly",
            "Automatic",
            "Defragment",
        ]),
    ),
    field(
        "commitMode",
        Shape::Enum(&["Transactional", "PartialBatch"]),
    ),
    field("maxParallelism", Shape::Integer),
    field("retryCount", Shape::Integer),
    field(
        "objects",
        Shape::Array(&Shape::Object(&[
            field("table", Shape::String),
            field("partition", Shape::String),
        ])),
    ),
    field("applyRefreshPolicy", Shape::Boolean),
    field("effectiveDate", Shape::String),
    field("timeout", Shape::String),
]);

/// Power BI `DatasetExecuteQueriesRequest` (`executeQueries`).
pub const DATASET_EXECUTE_QUERIES_REQUEST: Shape = Shape::Object(&[
    required(
        "queries",
        Shape::Array(&Shape::Object(&[required("query", Shape::String)])),
    ),
    field(
        "serializerSettings",
        Shape::Object(&[field("includeNulls", Shape::Boolean)]),
    ),
    field("impersonatedUserName", Shape::String),
]);

/// Power BI `RefreshRequest` (Gen1 dataflow refresh).
pub const DATAFLOW_REFRESH_REQUEST: Shape = Shape::Object(&[required(
    "notifyOption",
    Shape::Enum(&["NoNotification", "MailOnFailure", "MailOnCompletion"]),
)]);

const EFFECTIVE_IDENTITY: Shape = Shape::Object(&[
    required("username", Shape::String),
    field("auditableContext", Shape::String),
    field("datasets", Shape::Array(&Shape::String)),
    field("roles", Shape::Array(&Shape::String)),
    field("customData", Shape::String),
    field(
        "identityBlob",
        Shape::Object(&[required("value", Shape::String)]),
    ),
    field("reports", Shape::Array(&Shape::String)),
]);

const PAGE_BOOKMARK: Shape =
    Shape::Object(&[field("name", Shape::String), field("state", Shape::String)]);

/// Power BI `ExportReportRequest` with both configurations.
pub const EXPORT_REPORT_REQUEST: Shape = Shape::Object(&[
    required(
        "format",
        Shape::Enum(&[
            "PPTX",
            "PDF",
            "PNG",
            "IMAGE",
            "XLSX",
            "DOCX",
            "CSV",
            "XML",
            "MHTML",
            "ACCESSIBLEPDF",
        ]),
    ),
    field(
        "powerBIReportConfiguration",
        Shape::Object(&[
            field(
                "settings",
                Shape::Object(&[
                    field("locale", Shape::String),
                    field("includeHiddenPages", Shape::Boolean),
                ]),
            ),
            field("datasetToBind", Shape::String),
            field("defaultBookmark", PAGE_BOOKMARK),
            field(
                "reportLevelFilters",
                Shape::Array(&Shape::Object(&[field("filter", Shape::String)])),
            ),
            field(
                "pages",
                Shape::Array(&Shape::Object(&[
                    required("pageName", Shape::String),
                    field("visualName", Shape::String),
                    field("bookmark", PAGE_BOOKMARK),
                ])),
            ),
            field("identities", Shape::Array(&EFFECTIVE_IDENTITY)),
        ]),
    ),
    field(
        "paginatedReportConfiguration",
        Shape::Object(&[
            field("identities", Shape::Array(&EFFECTIVE_IDENTITY)),
            field("formatSettings", Shape::AnyObject),
            field(
                "parameterValues",
                Shape::Array(&Shape::Object(&[
                    field("name", Shape::String),
                    field("value", Shape::String),
                ])),
            ),
        ]),
    ),
]);

/// Fabric `ItemJobParameter` (`value` typed `object` by the spec, but its own examples send
/// numbers and strings: see the tests' table of known differences).
const ITEM_JOB_PARAMETER: Shape = Shape::Object(&[
    required("parameterName", Shape::String),
    required("type", Shape::Enum(&["Automatic"])),
    required("value", Shape::Any),
]);

/// Fabric `RunOnDemandItemJobRequest` (generic job scheduler); `executionData` is any object
/// there and is checked per item type by [`execution_data_shape`].
pub const RUN_ON_DEMAND_ITEM_JOB_REQUEST: Shape = Shape::Object(&[
    field("executionData", Shape::AnyObject),
    field("parameters", Shape::Array(&Shape::AnyObject)),
]);

/// Fabric `DataflowExecutionPayload` (`executionData` of a Dataflow Gen2 `Execute` job).
pub const DATAFLOW_EXECUTION_PAYLOAD: Shape = Shape::Object(&[
    field(
        "executeOption",
        Shape::Enum(&["SkipApplyChanges", "ApplyChangesIfNeeded"]),
    ),
    field("parameters", Shape::Array(&ITEM_JOB_PARAMETER)),
]);

/// Fabric `RunOnDemandDataflowExecuteJobRequest` (the dataflow-specific execute endpoint).
pub const RUN_ON_DEMAND_DATAFLOW_EXECUTE_JOB_REQUEST: Shape =
    Shape::Object(&[field("executionData", DATAFLOW_EXECUTION_PAYLOAD)]);

/// Checks `value` against `shape`; the first problem, with its JSON path, when it does not fit.
pub fn check_shape(value: &Value, shape: &Shape) -> Result<(), String> {
    check_at(value, shape, "$")
}

fn check_at(value: &Value, shape: &Shape, at: &str) -> Result<(), String> {
    let wrong = |what: &str| Err(format!("'{at}' must be {what}, not {value}"));
    match shape {
        Shape::String if value.is_string() => Ok(()),
        Shape::String => wrong("a string"),
        Shape::Enum(allowed) => match value.as_str() {
            Some(s) if allowed.iter().any(|a| a.eq_ignore_ascii_case(s)) => Ok(()),
            _ => wrong(&format!("one of {}", allowed.join(", "))),
        },
        Shape::Integer if value.is_i64() || value.is_u64() => Ok(()),
        Shape::Integer => wrong("an integer"),
        Shape::Boolean if value.is_boolean() => Ok(()),
        Shape::Boolean => wrong("true or false"),
        Shape::Any => Ok(()),
        Shape::AnyObject if value.is_object() => Ok(()),
        Shape::AnyObject => wrong("an object"),
        Shape::Array(item) => {
            let Some(items) = value.as_array() else {
                return wrong("an array");
            };
            items
                .iter()
                .enumerate()
                .try_for_each(|(i, v)| check_at(v, item, &format!("{at}[{i}]")))
        }
        Shape::Map(item) => {
            let Some(map) = value.as_object() else {
                return wrong("an object");
            };
            map.iter()
                .try_for_each(|(k, v)| check_at(v, item, &format!("{at}.{k}")))
        }
        Shape::Object(fields) => {
            let Some(map) = value.as_object() else {
                return wrong("an object");
            };
            if let Some(unknown) = map.keys().find(|k| !fields.iter().any(|f| f.name == *k)) {
                return Err(format!(
                    "'{at}' has an unknown property '{unknown}' (allowed: {})",
                    fields.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
                ));
            }
            for f in *fields {
                match map.get(f.name) {
                    Some(v) => check_at(v, &f.shape, &format!("{at}.{}", f.name))?,
                    None if f.required => {
                        return Err(format!("'{at}' needs the property '{}'", f.name));
                    }
                    None => {}
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes_refuse_unknown_fields_and_wrong_types() {
        let ok = json!({"format": "pdf", "paginatedReportConfiguration": {"parameterValues": [{"name": "a", "value": "b"}]}});
        assert_eq!(check_shape(&ok, &EXPORT_REPORT_REQUEST), Ok(()));
        let unknown = json!({"format": "PDF", "paginatedReportConfiguration": {"parameters": []}});
        assert!(
            check_shape(&unknown, &EXPORT_REPORT_REQUEST)
                .unwrap_err()
                .contains("unknown property 'parameters'")
        );
        let typed =
            json!({"format": "PDF", "paginatedReportConfiguration": {"parameterValues": {"a": 1}}});
        assert!(
            check_shape(&typed, &EXPORT_REPORT_REQUEST)
                .unwrap_err()
                .contains("$.paginatedReportConfiguration.parameterValues")
        );
        assert!(check_shape(&json!({}), &EXPORT_REPORT_REQUEST).is_err());
        assert!(check_shape(&json!({"maxParallelism": 1.5}), &DATASET_REFRESH_REQUEST).is_err());
    }

    #[test]
    fn rule_names_match_serde() {
        for rule in Rule::ALL {
            assert_eq!(serde_json::to_value(rule).unwrap(), json!(rule.name()));
        }
    }
}

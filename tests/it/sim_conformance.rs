//! Simulator conformance: for each endpoint, the status is one the official OpenAPI file
//! lists and the JSON body validates against the spec's schema for it, after applying the
//! documented wire differences (listed once, in [`wire`]).
//!
//! Specs are read from `../shared/specs` relative to the repository (CI keeps `shared/`
//! beside it), or from `PBIBATCH_SPECS_DIR` when set (a git worktree elsewhere); a missing
//! directory fails every test here with a clear message.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use jsonschema::Draft;
use reqwest::Method;
use serde_json::{Value, json};

use crate::sim_support::{Answer, Api, seg, start};

const PBI: &str = "PowerBI-CSharp/swagger.json";
const FABRIC: &str = "fabric-rest-api-specs/platform/swagger.json";
const FABRIC_DATAFLOW: &str = "fabric-rest-api-specs/dataflow/swagger.json";

/// The documented differences between the wire and the specs (powerbi-api.md sections 0,
/// 1c, 2, 3c and 10), applied to a response body before it is validated. One place, so the
/// list stays reviewable.
mod wire {
    use serde_json::Value;

    /// Power BI properties the 2024 swagger spells in PascalCase; the wire uses camelCase
    /// (pitfall 13). Renamed back so their types are checked.
    const PASCAL_IN_SWAGGER: &[&str] = &[
        "createdDate",
        "contentProviderType",
        "createReportEmbedURL",
        "qnaEmbedURL",
        "isEffectiveIdentityRequired",
        "isEffectiveIdentityRolesRequired",
        "isOnPremGatewayRequired",
        "encryption",
        "isRefreshable",
        "isInPlaceSharingEnabled",
        "resourceFileExtension",
    ];

    /// Power BI fields on the wire that the 2024 swagger lacks: the history entry's integer
    /// `id` (section 1c, pitfall 5).
    const ABSENT_FROM_SWAGGER: &[&str] = &["id"];

    /// A Power BI body in the swagger's spelling.
    pub fn power_bi(operation: &str, mut body: Value) -> Value {
        rename_everywhere(&mut body);
        if let Some(obj) = body.as_object_mut()
            // The list wrapper is `@odata.context` on the wire, `odata.context` in the swagger.
            && let Some(ctx) = obj.remove("@odata.context")
        {
            obj.insert("odata.context".into(), ctx);
        }
        match operation {
            "GetRefreshHistory" => {
                for entry in body["value"].as_array_mut().into_iter().flatten() {
                    if let Some(o) = entry.as_object_mut() {
                        for f in ABSENT_FROM_SWAGGER {
                            o.remove(*f);
                        }
                    }
                }
            }
            // Execution details: `Cancelled` is a documented status (docs 2025, observed after
            // DELETE) missing from the 2024 enum, which `extendedStatus` already has.
            "GetRefreshExecutionDetails" if body["status"] == "Cancelled" => {
                body["status"] = Value::from("Unknown");
            }
            // Transaction cancel: the spec enum is camelCase, its example (and the wire)
            // PascalCase (pitfall 9).
            "CancelDataflowTransaction" => {
                if let Some(s) = body["status"].as_str() {
                    let mut c = s.chars();
                    let lower = c
                        .next()
                        .map(|f| f.to_lowercase().collect::<String>() + c.as_str())
                        .unwrap_or_default();
                    body["status"] = Value::from(lower);
                }
            }
            _ => {}
        }
        body
    }

    /// Fabric job-instance fields sent as `null` (the spec's own examples show
    /// `"failureReason": null`; `endTimeUtc` is null while the job runs, section 3c) that the
    /// spec types as non-nullable: dropped before validating.
    const NULL_ON_THE_WIRE: &[&str] = &["failureReason", "endTimeUtc"];

    /// A Fabric body in the spec's spelling: job timestamps come without `Z` and with 7
    /// fractional digits (section 0, pitfall 12); they are UTC, so `Z` is appended in case
    /// the spec asks for a `date-time` format. Nulls above are dropped.
    pub fn fabric(mut body: Value) -> Value {
        fn fix(v: &mut Value) {
            match v {
                Value::Object(map) => {
                    map.retain(|k, v| !(v.is_null() && NULL_ON_THE_WIRE.contains(&k.as_str())));
                    for (k, v) in map.iter_mut() {
                        if k.ends_with("TimeUtc")
                            && let Some(s) = v.as_str()
                            && !s.ends_with('Z')
                        {
                            *v = Value::from(format!("{s}Z"));
                        } else {
                            fix(v);
                        }
                    }
                }
                Value::Array(items) => items.iter_mut().for_each(fix),
                _ => {}
            }
        }
        fix(&mut body);
        body
    }

    fn rename_everywhere(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for name in PASCAL_IN_SWAGGER {
                    if let Some(value) = map.remove(*name) {
                        let mut c = name.chars();
                        let pascal = c
                            .next()
                            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                            .unwrap_or_default();
                        map.insert(pascal, value);
                    }
                }
                map.values_mut().for_each(rename_everywhere);
            }
            Value::Array(items) => items.iter_mut().for_each(rename_everywhere),
            _ => {}
        }
    }

    /// The legacy run-on-demand form (`POST .../jobs/instances?jobType=X`) is documented as
    /// still accepted but only the path form is in the spec: it is checked against that one.
    pub const LEGACY_JOB_FORM_CHECKED_AS: &str =
        "/workspaces/{workspaceId}/items/{itemId}/jobs/{jobType}/instances";
}

/// Power BI bodies the swagger has no schema for (section 0): the error envelopes and the
/// 429 `{"message"}`.
fn pbi_error_schema(status: u16) -> Value {
    if status == 429 {
        json!({"type": "object", "required": ["message"], "properties": {"message": {"type": "string", "pattern": "Retry in [0-9]+ seconds"}}})
    } else {
        json!({
            "type": "object",
            "required": ["error"],
            "properties": {"error": {
                "type": "object",
                "required": ["code"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "pbi.error": {"type": "object"}}
            }}
        })
    }
}

struct Specs {
    docs: HashMap<String, Value>,
}

fn specs_dir() -> PathBuf {
    let dir = std::env::var_os("PBIBATCH_SPECS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/specs"));
    assert!(
        dir.join(PBI).is_file() && dir.join(FABRIC).is_file(),
        "the official OpenAPI files are missing: expected them under {} (CI keeps shared/ beside the repository; set PBIBATCH_SPECS_DIR to read them from elsewhere)",
        dir.display()
    );
    dir
}

fn collect(dir: &Path, root: &Path, out: &mut HashMap<String, Value>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            // Examples hold refs outside the copied set; they are not schemas.
            if path.file_name().is_some_and(|n| n != "examples") {
                collect(&path, root, out);
            }
        } else if path.extension().is_some_and(|e| e == "json") {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&path).unwrap();
            out.insert(rel, serde_json::from_str(&text).unwrap());
        }
    }
}

fn specs() -> &'static Specs {
    static SPECS: OnceLock<Specs> = OnceLock::new();
    SPECS.get_or_init(|| {
        let dir = specs_dir();
        let mut docs = HashMap::new();
        collect(&dir, &dir, &mut docs);
        add_case_aliases(&mut docs);
        Specs { docs }
    })
}

/// Some spec files refer to `../Common/definitions.json` while the folder is `common`
/// (written on a case-insensitive file system): such targets are registered under the
/// spelling used by the reference too.
fn add_case_aliases(docs: &mut HashMap<String, Value>) {
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r.clone());
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut aliases = Vec::new();
    for (rel, doc) in docs.iter() {
        let mut found = Vec::new();
        refs(doc, &mut found);
        for r in found {
            let file = r.split('#').next().unwrap_or_default();
            if file.is_empty() {
                continue;
            }
            let target = url::Url::parse(&uri(rel)).unwrap().join(file).unwrap();
            let target_rel = target.path().trim_start_matches("/specs/").to_string();
            if !docs.contains_key(&target_rel)
                && let Some((_, doc)) = docs
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&target_rel))
            {
                aliases.push((target_rel, doc.clone()));
            }
        }
    }
    docs.extend(aliases);
}

fn uri(rel: &str) -> String {
    format!("file:///specs/{rel}")
}

impl Specs {
    /// The spec's response entry for an operation and status (`default` for errors).
    fn response(&self, spec: &str, path: &str, method: &str, status: u16) -> Value {
        let op = &self.docs[spec]["paths"][path][method];
        assert!(op.is_object(), "{spec}: no operation {method} {path}");
        let responses = op["responses"].as_object().unwrap();
        responses
            .get(&status.to_string())
            .or_else(|| (status >= 400).then(|| responses.get("default")).flatten())
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "{spec} {method} {path}: status {status} is not one the spec lists ({:?})",
                    responses.keys().collect::<Vec<_>>()
                )
            })
    }

    fn validate(&self, schema: &Value, base: &str, body: &Value, what: &str) {
        let errors = self.errors(schema, base, body, what);
        assert!(
            errors.is_empty(),
            "{what}: body does not match the spec:\n{}\nbody: {body:#}",
            errors.join("\n")
        );
    }

    fn errors(&self, schema: &Value, base: &str, body: &Value, what: &str) -> Vec<String> {
        let root = match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let absolute = url::Url::parse(&uri(base)).unwrap().join(r).unwrap();
                json!({"$ref": absolute.to_string()})
            }
            None => schema.clone(),
        };
        let resources = self
            .docs
            .iter()
            .map(|(rel, doc)| (uri(rel), Draft::Draft4.create_resource(doc.clone())));
        let validator = jsonschema::options()
            .with_draft(Draft::Draft4)
            .should_validate_formats(true)
            .with_resources(resources)
            .build(&root)
            .unwrap_or_else(|e| panic!("{what}: schema does not build: {e}"));
        validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect()
    }
}

/// Checks a Power BI answer against the swagger operation `method path` (spec path).
fn check_pbi(path: &str, method: &str, operation: &str, a: &Answer) {
    let what = format!("Power BI {method} {path} -> {}", a.status);
    if a.status >= 400 {
        specs().validate(&pbi_error_schema(a.status), PBI, &a.body, &what);
        return;
    }
    let response = specs().response(PBI, path, method, a.status);
    // The only headers the swagger lists are the enhanced refresh's, which it says are sent
    // only for enhanced requests: the refresh test checks them there.
    match response.get("schema") {
        None => assert!(
            a.bytes.is_empty(),
            "{what}: the spec has no body, got {:?}",
            String::from_utf8_lossy(&a.bytes)
        ),
        Some(s) if s["type"] == "file" => assert!(!a.bytes.is_empty(), "{what}: empty file"),
        Some(schema) => specs().validate(
            schema,
            PBI,
            &wire::power_bi(operation, a.body.clone()),
            &what,
        ),
    }
}

/// Checks a Fabric answer against `spec`'s operation `method path`.
fn check_fabric(spec: &str, path: &str, method: &str, a: &Answer) {
    let what = format!("Fabric {method} {path} -> {}", a.status);
    let response = specs().response(spec, path, method, a.status);
    match response.get("schema") {
        None => assert!(a.bytes.is_empty(), "{what}: the spec has no body"),
        Some(schema) => specs().validate(schema, spec, &wire::fabric(a.body.clone()), &what),
    }
    for header in response
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|h| h.keys())
    {
        assert!(
            a.header(header).is_some(),
            "{what}: missing header {header}"
        );
    }
}

const ESTATE: &str = r#"
token_lifetime: 30d
defaults: { duration: 1m }
workspaces:
  WS:
    datasets:
      Model: { upstream_dataflows: [DF], tables: [Sales] }
      Broken: { outcomes: [fail] }
    dataflows:
      DF: {}
      Child: { upstream_dataflows: [DF] }
    reports:
      Book: { dataset: Model }
      Busy: { outcomes: [busy] }
      Paged: { paginated: true }
    fabric_dataflows:
      G2: {}
      G2 fails: { outcomes: [fail] }
    items:
      Pipe: { type: DataPipeline }
  Other: {}
"#;

#[tokio::test(start_paused = true)]
async fn power_bi_discovery_conforms() {
    let sim = start(ESTATE).await;
    let api = Api::new(&sim).await;
    let (ws, model) = api.ids("WS", "Model");
    let (_, df) = api.ids("WS", "DF");
    let (_, child) = api.ids("WS", "Child");
    let (_, book) = api.ids("WS", "Book");
    let g = "/v1.0/myorg/groups/{groupId}";
    let cases = [
        (
            "/groups".to_string(),
            "/v1.0/myorg/groups".to_string(),
            "GetGroups",
        ),
        (
            "/groups?$filter=name%20eq%20'WS'&$top=5&$skip=0".into(),
            "/v1.0/myorg/groups".into(),
            "GetGroups",
        ),
        (format!("/groups/{ws}"), g.to_string(), "GetGroup"),
        (
            format!("/groups/{ws}/datasets"),
            format!("{g}/datasets"),
            "GetDatasets",
        ),
        (
            format!("/groups/{ws}/datasets/{model}"),
            format!("{g}/datasets/{{datasetId}}"),
            "GetDataset",
        ),
        (
            format!("/groups/{ws}/datasets/upstreamDataflows"),
            format!("{g}/datasets/upstreamDataflows"),
            "Links",
        ),
        (
            format!("/groups/{ws}/dataflows"),
            format!("{g}/dataflows"),
            "GetDataflows",
        ),
        (
            format!("/groups/{ws}/dataflows/{df}"),
            format!("{g}/dataflows/{{dataflowId}}"),
            "GetDataflow",
        ),
        (
            format!("/groups/{ws}/dataflows/{child}/upstreamDataflows"),
            format!("{g}/dataflows/{{dataflowId}}/upstreamDataflows"),
            "Upstream",
        ),
        (
            format!("/groups/{ws}/reports"),
            format!("{g}/reports"),
            "GetReports",
        ),
        (
            format!("/groups/{ws}/reports/{book}"),
            format!("{g}/reports/{{reportId}}"),
            "GetReport",
        ),
    ];
    for (url, spec_path, op) in cases {
        let a = api.pbi(Method::GET, &url, None).await;
        assert_eq!(a.status, 200, "{url}: {}", a.body);
        check_pbi(&spec_path, "get", op, &a);
    }
    let missing = api
        .pbi(
            Method::GET,
            &format!("/groups/{ws}/datasets/{}", uuid::Uuid::nil()),
            None,
        )
        .await;
    check_pbi(
        &format!("{g}/datasets/{{datasetId}}"),
        "get",
        "GetDataset",
        &missing,
    );
}

#[tokio::test(start_paused = true)]
async fn power_bi_refreshes_conform() {
    let sim = start(ESTATE).await;
    let api = Api::new(&sim).await;
    let (ws, model) = api.ids("WS", "Model");
    let spec_refreshes = "/v1.0/myorg/groups/{groupId}/datasets/{datasetId}/refreshes";
    let spec_one = "/v1.0/myorg/groups/{groupId}/datasets/{datasetId}/refreshes/{refreshId}";
    let path = format!("/groups/{ws}/datasets/{model}/refreshes");
    let standard = api
        .pbi(
            Method::POST,
            &path,
            Some(json!({"notifyOption": "NoNotification"})),
        )
        .await;
    check_pbi(spec_refreshes, "post", "Refresh", &standard);
    let conflict = api
        .pbi(Method::POST, &path, Some(json!({"type": "Full"})))
        .await;
    assert_eq!(conflict.status, 400);
    check_pbi(spec_refreshes, "post", "Refresh", &conflict);
    let history = api.pbi(Method::GET, &format!("{path}?$top=10"), None).await;
    check_pbi(spec_refreshes, "get", "GetRefreshHistory", &history);
    tokio::time::advance(Duration::from_secs(61)).await;
    let enhanced = api.pbi(Method::POST, &path, Some(json!({"type": "Full", "commitMode": "PartialBatch", "applyRefreshPolicy": false, "objects": [{"table": "Sales"}]}))).await;
    check_pbi(spec_refreshes, "post", "Refresh", &enhanced);
    for header in ["x-ms-request-id", "location"] {
        assert!(enhanced.header(header).is_some(), "{header}");
    }
    let id = enhanced.header("x-ms-request-id").unwrap().to_string();
    let running = api.pbi(Method::GET, &format!("{path}/{id}"), None).await;
    assert_eq!(running.status, 202);
    check_pbi(spec_one, "get", "GetRefreshExecutionDetails", &running);
    let history = api.pbi(Method::GET, &path, None).await;
    check_pbi(spec_refreshes, "get", "GetRefreshHistory", &history);
    let cancel = api.pbi(Method::DELETE, &format!("{path}/{id}"), None).await;
    check_pbi(spec_one, "delete", "Cancel", &cancel);
    let cancelled = api.pbi(Method::GET, &format!("{path}/{id}"), None).await;
    assert_eq!(cancelled.status, 200);
    check_pbi(spec_one, "get", "GetRefreshExecutionDetails", &cancelled);
    let again = api
        .pbi(Method::POST, &path, Some(json!({"type": "Full"})))
        .await;
    let id = again.header("x-ms-request-id").unwrap().to_string();
    tokio::time::advance(Duration::from_secs(61)).await;
    let done = api.pbi(Method::GET, &format!("{path}/{id}"), None).await;
    assert_eq!(done.status, 200);
    check_pbi(spec_one, "get", "GetRefreshExecutionDetails", &done);
    // A failed refresh: serviceExceptionJson and an error message.
    let (_, broken) = api.ids("WS", "Broken");
    let bpath = format!("/groups/{ws}/datasets/{broken}/refreshes");
    let b = api
        .pbi(Method::POST, &bpath, Some(json!({"type": "Full"})))
        .await;
    let bid = b.header("x-ms-request-id").unwrap().to_string();
    tokio::time::advance(Duration::from_secs(61)).await;
    check_pbi(
        spec_one,
        "get",
        "GetRefreshExecutionDetails",
        &api.pbi(Method::GET, &format!("{bpath}/{bid}"), None).await,
    );
    check_pbi(
        spec_refreshes,
        "get",
        "GetRefreshHistory",
        &api.pbi(Method::GET, &bpath, None).await,
    );
}

#[tokio::test(start_paused = true)]
async fn power_bi_dataflows_and_exports_conform() {
    let sim = start(ESTATE).await;
    let api = Api::new(&sim).await;
    let (ws, df) = api.ids("WS", "DF");
    let g = "/v1.0/myorg/groups/{groupId}";
    let refresh = api
        .pbi(
            Method::POST,
            &format!("/groups/{ws}/dataflows/{df}/refreshes"),
            Some(json!({"notifyOption": "MailOnFailure"})),
        )
        .await;
    assert_eq!(refresh.status, 200);
    check_pbi(
        &format!("{g}/dataflows/{{dataflowId}}/refreshes"),
        "post",
        "RefreshDataflow",
        &refresh,
    );
    let bad = api
        .pbi(
            Method::POST,
            &format!("/groups/{ws}/dataflows/{df}/refreshes"),
            None,
        )
        .await;
    check_pbi(
        &format!("{g}/dataflows/{{dataflowId}}/refreshes"),
        "post",
        "RefreshDataflow",
        &bad,
    );
    let tx = api
        .pbi(
            Method::GET,
            &format!("/groups/{ws}/dataflows/{df}/transactions"),
            None,
        )
        .await;
    check_pbi(
        &format!("{g}/dataflows/{{dataflowId}}/transactions"),
        "get",
        "Transactions",
        &tx,
    );
    let id = tx.body["value"][0]["id"].as_str().unwrap().to_string();
    let cancel = api
        .pbi(
            Method::POST,
            &format!("/groups/{ws}/dataflows/transactions/{}/cancel", seg(&id)),
            None,
        )
        .await;
    check_pbi(
        &format!("{g}/dataflows/transactions/{{transactionId}}/cancel"),
        "post",
        "CancelDataflowTransaction",
        &cancel,
    );
    let tx = api
        .pbi(
            Method::GET,
            &format!("/groups/{ws}/dataflows/{df}/transactions"),
            None,
        )
        .await;
    check_pbi(
        &format!("{g}/dataflows/{{dataflowId}}/transactions"),
        "get",
        "Transactions",
        &tx,
    );

    let export_spec = format!("{g}/reports/{{reportId}}/exports/{{exportId}}");
    for (name, format) in [("Book", "PPTX"), ("Busy", "PDF"), ("Paged", "XLSX")] {
        let (_, report) = api.ids("WS", name);
        let start = api
            .pbi(
                Method::POST,
                &format!("/groups/{ws}/reports/{report}/ExportTo"),
                Some(json!({"format": format})),
            )
            .await;
        assert_eq!(start.status, 202);
        check_pbi(
            &format!("{g}/reports/{{reportId}}/ExportTo"),
            "post",
            "ExportTo",
            &start,
        );
        let status_url = format!(
            "/groups/{ws}/reports/{report}/exports/{}",
            seg(start.body["id"].as_str().unwrap())
        );
        let running = api.pbi(Method::GET, &status_url, None).await;
        assert_eq!(running.status, 202);
        check_pbi(&export_spec, "get", "ExportStatus", &running);
        tokio::time::advance(Duration::from_secs(61)).await;
        let done = api.pbi(Method::GET, &status_url, None).await;
        assert_eq!(done.status, 200);
        check_pbi(&export_spec, "get", "ExportStatus", &done);
        if done.body["status"] == "Succeeded" {
            let file = api
                .pbi(Method::GET, &format!("{status_url}/file"), None)
                .await;
            check_pbi(&format!("{export_spec}/file"), "get", "File", &file);
        }
    }
}

#[tokio::test]
async fn power_bi_throttling_conforms() {
    let sim = start("throttle: { every: 1, retry_after: 3392 }\n").await;
    let api = Api::new(&sim).await;
    let a = api.pbi(Method::GET, "/groups", None).await;
    assert_eq!(a.status, 429);
    check_pbi("/v1.0/myorg/groups", "get", "GetGroups", &a);
    assert_eq!(a.header("retry-after"), Some("3392"));
}

#[tokio::test(start_paused = true)]
async fn fabric_conforms() {
    let sim = start(&format!("page_size: 1\n{ESTATE}")).await;
    let api = Api::new(&sim).await;
    let (ws, g2) = api.ids("WS", "G2");
    let workspaces = api.fabric(Method::GET, "/workspaces", None).await;
    assert!(workspaces.body["continuationToken"].is_string());
    check_fabric(FABRIC, "/workspaces", "get", &workspaces);
    let last = api
        .fabric_url(workspaces.body["continuationUri"].as_str().unwrap())
        .await;
    check_fabric(FABRIC, "/workspaces", "get", &last);
    check_fabric(
        FABRIC,
        "/workspaces/{workspaceId}",
        "get",
        &api.fabric(Method::GET, &format!("/workspaces/{ws}"), None)
            .await,
    );
    check_fabric(
        FABRIC,
        "/workspaces/{workspaceId}/items",
        "get",
        &api.fabric(Method::GET, &format!("/workspaces/{ws}/items"), None)
            .await,
    );
    check_fabric(
        FABRIC,
        "/workspaces/{workspaceId}/items",
        "get",
        &api.fabric(
            Method::GET,
            &format!("/workspaces/{ws}/items?type=Dataflow"),
            None,
        )
        .await,
    );
    check_fabric(
        FABRIC,
        "/workspaces/{workspaceId}/items/{itemId}",
        "get",
        &api.fabric(Method::GET, &format!("/workspaces/{ws}/items/{g2}"), None)
            .await,
    );
    check_fabric(
        FABRIC_DATAFLOW,
        "/workspaces/{workspaceId}/dataflows",
        "get",
        &api.fabric(Method::GET, &format!("/workspaces/{ws}/dataflows"), None)
            .await,
    );
    check_fabric(
        FABRIC_DATAFLOW,
        "/workspaces/{workspaceId}/dataflows/{dataflowId}",
        "get",
        &api.fabric(
            Method::GET,
            &format!("/workspaces/{ws}/dataflows/{g2}"),
            None,
        )
        .await,
    );
    let missing = api
        .fabric(
            Method::GET,
            &format!("/workspaces/{ws}/items/{}", uuid::Uuid::nil()),
            None,
        )
        .await;
    assert_eq!(missing.status, 404);
    check_fabric(
        FABRIC,
        "/workspaces/{workspaceId}/items/{itemId}",
        "get",
        &missing,
    );

    let run_spec = "/workspaces/{workspaceId}/items/{itemId}/jobs/{jobType}/instances";
    let run = api
        .fabric(
            Method::POST,
            &format!("/workspaces/{ws}/items/{g2}/jobs/Execute/instances"),
            None,
        )
        .await;
    check_fabric(FABRIC, run_spec, "post", &run);
    let location = run.header("location").unwrap().to_string();
    let job_spec = "/workspaces/{workspaceId}/items/{itemId}/jobs/instances/{jobInstanceId}";
    check_fabric(FABRIC, job_spec, "get", &api.fabric_url(&location).await);
    let dup = api
        .fabric(
            Method::POST,
            &format!("/workspaces/{ws}/items/{g2}/jobs/instances?jobType=Execute"),
            None,
        )
        .await;
    check_fabric(FABRIC, wire::LEGACY_JOB_FORM_CHECKED_AS, "post", &dup);
    check_fabric(
        FABRIC,
        job_spec,
        "get",
        &api.fabric_url(dup.header("location").unwrap()).await,
    );
    let cancel = api.fabric_url_post(&format!("{location}/cancel")).await;
    check_fabric(
        FABRIC,
        "/workspaces/{workspaceId}/items/{itemId}/jobs/instances/{jobInstanceId}/cancel",
        "post",
        &cancel,
    );
    check_fabric(FABRIC, job_spec, "get", &api.fabric_url(&location).await);
    let again = api.fabric_url_post(&format!("{location}/cancel")).await;
    assert_eq!(again.status, 400);
    check_fabric(
        FABRIC,
        "/workspaces/{workspaceId}/items/{itemId}/jobs/instances/{jobInstanceId}/cancel",
        "post",
        &again,
    );
    let execute = api
        .fabric(
            Method::POST,
            &format!("/workspaces/{ws}/dataflows/{g2}/jobs/execute/instances"),
            Some(json!({"executionData": {"executeOption": "SkipApplyChanges"}})),
        )
        .await;
    check_fabric(
        FABRIC_DATAFLOW,
        "/workspaces/{workspaceId}/dataflows/{dataflowId}/jobs/execute/instances",
        "post",
        &execute,
    );
    tokio::time::advance(Duration::from_secs(61)).await;
    let list = api
        .fabric(
            Method::GET,
            &format!("/workspaces/{ws}/items/{g2}/jobs/instances"),
            None,
        )
        .await;
    check_fabric(
        FABRIC,
        "/workspaces/{workspaceId}/items/{itemId}/jobs/instances",
        "get",
        &list,
    );
    let (_, fails) = api.ids("WS", "G2 fails");
    let f = api
        .fabric(
            Method::POST,
            &format!("/workspaces/{ws}/items/{fails}/jobs/Execute/instances"),
            None,
        )
        .await;
    tokio::time::advance(Duration::from_secs(61)).await;
    let failed = api.fabric_url(f.header("location").unwrap()).await;
    assert_eq!(failed.body["status"], "Failed");
    check_fabric(FABRIC, job_spec, "get", &failed);
    let (_, pipe) = api.ids("WS", "Pipe");
    let bad = api
        .fabric(
            Method::POST,
            &format!("/workspaces/{ws}/items/{pipe}/jobs/Nope/instances"),
            None,
        )
        .await;
    check_fabric(FABRIC, run_spec, "post", &bad);
}

#[tokio::test]
async fn fabric_throttling_conforms() {
    let sim = start("throttle: { every: 1, retry_after: 60 }\n").await;
    let api = Api::new(&sim).await;
    let a = api.fabric(Method::GET, "/workspaces", None).await;
    assert_eq!(a.status, 429);
    check_fabric(FABRIC, "/workspaces", "get", &a);
}

#[test]
fn the_validation_is_not_vacuous() {
    let export = json!({"$ref": "#/definitions/Export"});
    assert!(
        specs()
            .errors(
                &export,
                PBI,
                &json!({"status": "Succeeded", "percentComplete": 100}),
                "ok"
            )
            .is_empty()
    );
    assert!(
        !specs()
            .errors(&export, PBI, &json!({"status": "Finished"}), "bad enum")
            .is_empty()
    );
    assert!(
        !specs()
            .errors(
                &export,
                PBI,
                &json!({"percentComplete": "most"}),
                "bad type"
            )
            .is_empty()
    );
    let job = json!({"$ref": "./definitions/platform.json#/definitions/ItemJobInstance"});
    assert!(
        !specs()
            .errors(&job, FABRIC, &json!({"status": 5}), "bad type")
            .is_empty()
    );
    let error = json!({"$ref": "../common/definitions.json#/definitions/ErrorResponse"});
    assert!(
        !specs()
            .errors(
                &error,
                FABRIC,
                &json!({"message": "no code"}),
                "missing field"
            )
            .is_empty()
    );
}

#[test]
fn the_specs_are_where_ci_expects_them() {
    assert!(specs().docs.contains_key(PBI));
    assert!(
        specs()
            .docs
            .contains_key("fabric-rest-api-specs/common/definitions.json")
    );
}

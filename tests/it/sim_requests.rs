//! Request conformance: every request body the executors send, captured from the simulator's
//! request log, validates against the official request schema of its operation; the
//! simulator's own request shapes and identity table agree with the specs. The differences
//! between the specs and the wire are listed once, with their evidence, in `spec_differences.rs`.

use serde_json::{Value, json};

use crate::exec_support::{rig, run_step};
use crate::sim_specs::{FABRIC, FABRIC_DATAFLOW, PBI, specs};
use crate::spec_differences::allowed;
use pbibatch::sim::{self, Shape};

/// Validates `body` against `#/definitions/{schema}` of `spec`, allowing only listed
/// differences; returns the differences used.
fn conforms(spec: &str, definitions: &str, schema: &str, body: &Value, what: &str) {
    let r = json!({"$ref": format!("{definitions}#/definitions/{schema}")});
    let errors = specs().errors(&r, spec, body, what);
    let unexplained: Vec<&String> = errors
        .iter()
        .filter(|e| !allowed(schema, e) && !allowed("ItemJobParameter", e))
        .collect();
    assert!(
        unexplained.is_empty(),
        "{what}: the request does not match {schema}:\n{unexplained:#?}\nbody: {body:#}"
    );
}

const ESTATE: &str = r#"
workspaces:
  WS:
    datasets:
      Model: { duration: 0s, tables: [Sales], queries: { "EVALUATE ROW(\"n\", 1)": [{ "[n]": 1 }] } }
      Secure: { rls_roles: [Manager] }
    dataflows: { Flow: { duration: 0s } }
    fabric_dataflows: { G2: { duration: 0s, retry_after: 0 } }
    items:
      Load: { type: DataPipeline, duration: 0s, retry_after: 0 }
      Transform: { type: Notebook, duration: 0s, retry_after: 0 }
      Batch: { type: SparkJobDefinition, duration: 0s, retry_after: 0 }
      Copy: { type: CopyJob, duration: 0s, retry_after: 0 }
    reports:
      Book: { dataset: Model, duration: 0s }
      Paged: { paginated: true, duration: 0s }
      Secure Book: { dataset: Secure, duration: 0s }
      Secure Paged: { paginated: true, dataset: Secure, duration: 0s }
"#;

/// Each option combination the job format allows, one step each.
const STEPS: &str = r#"
version: 1
name: requests
connections: { default: { access_token: a-user-token } }
steps:
  std_none: { type: dataset, workspace: WS, dataset: Model }
  std_fail: { type: dataset, workspace: WS, dataset: Model, notify: mail_on_failure }
  std_done: { type: dataset, workspace: WS, dataset: Model, notify: mail_on_completion }
  std_no: { type: dataset, workspace: WS, dataset: Model, notify: no_notification }
  enh_min: { type: dataset, workspace: WS, dataset: Model, refresh: {} }
  enh_all:
    type: dataset
    workspace: WS
    dataset: Model
    refresh:
      type: data_only
      commit_mode: partial_batch
      max_parallelism: 4
      retry_count: 2
      apply_refresh_policy: false
      effective_date: "2025-01-31"   # a date alone, sent as the swagger's date-time
      timeout: 1h
      objects: [{ table: Sales }, { table: Sales, partition: Sales-2025 }]
  g1_none: { type: dataflow, workspace: WS, dataflow: Flow }
  g1_fail: { type: dataflow, workspace: WS, dataflow: Flow, notify: mail_on_failure }
  g1_default: { type: dataflow, workspace: WS, dataflow: Flow, process_type: default }
  g1_full: { type: dataflow, workspace: WS, dataflow: Flow, process_type: process_full }
  g2_none: { type: dataflow, generation: 2, workspace: WS, dataflow: G2 }
  g2_all:
    type: dataflow
    generation: 2
    workspace: WS
    dataflow: G2
    execute_option: apply_changes_if_needed
    parameters: { Region: EU, Year: 2025, Full: true }
  g2_skip: { type: dataflow, generation: 2, workspace: WS, dataflow: G2, execute_option: skip_apply_changes }
  pl_none: { type: fabric_job, workspace: WS, item: Load, item_type: pipeline }
  pl_all: { type: fabric_job, workspace: WS, item: Load, item_type: pipeline, parameters: { region: EU, days: 3, full: true } }
  nb_none: { type: fabric_job, workspace: WS, item: Transform, item_type: notebook }
  nb_all:
    type: fabric_job
    workspace: WS
    item: Transform
    item_type: notebook
    parameters: { region: EU, days: 3, ratio: 0.5, full: true }
    configuration:
      conf: { spark.sql.shuffle.partitions: "64" }
      environment: { id: 0c8d2b1e-0000-4000-8000-000000000002, name: Nightly }
      default_lakehouse: { name: Sales, id: 0c8d2b1e-0000-4000-8000-000000000003, workspace_id: 0c8d2b1e-0000-4000-8000-000000000001 }
      use_starter_pool: false
      use_workspace_pool: Large
  sjd_none: { type: fabric_job, workspace: WS, item: Batch, item_type: spark_job_definition }
  copy_none: { type: fabric_job, workspace: WS, item: Copy, item_type: copy_job }
  query_min: { type: data_check, workspace: WS, dataset: Model, query: "EVALUATE ROW(\"n\", 1)", expect: { rows: { min: 1 } } }
  query_all:
    type: data_check
    workspace: WS
    dataset: Model
    query: "EVALUATE ROW(\"n\", 1)"
    expect: { value: { equals: 1 } }
    impersonated_user: ann@contoso.com
  pbi_pdf: { type: report, workspace: WS, report: Book, export: { format: PDF, path: out/a.pdf } }
  pbi_all:
    type: report
    workspace: WS
    report: Book
    export: { format: PPTX, path: out/b.pptx, pages: [ReportSection1], bookmark: Saved, locale: fr-FR, include_hidden_pages: true }
  paged_all:
    type: report
    workspace: WS
    report: Paged
    export: { format: XLSX, path: out/c.xlsx, parameters: { Region: EU }, locale: de-DE }
  pbi_burst:
    type: report
    workspace: WS
    report: Secure Book
    export:
      format: PDF
      path: out/d.pdf
      filter: "Geo/Region eq 'EU'"
      identities: [{ username: eu@contoso.com, roles: [Manager], datasets: [Secure] }]
  paged_identity:
    type: report
    workspace: WS
    report: Secure Paged
    export:
      format: PDF
      path: out/e.pdf
      parameters: { Region: EU }
      identities: [{ username: eu@contoso.com, roles: [Manager] }]
"#;

#[tokio::test]
async fn every_request_the_executors_send_matches_its_schema() {
    let rig = rig(ESTATE).await;
    let out = tempfile::tempdir().unwrap();
    let text = STEPS.replace("out/", &format!("{}/", out.path().display()));
    let job = pbibatch::job::load_bytes("requests.yaml", text.as_bytes(), &[], &|_| None)
        .unwrap_or_else(|d| panic!("{d:?}"))
        .job;
    for step in job.steps.values() {
        run_step(&rig, step.clone()).await;
    }
    let mut seen = std::collections::BTreeSet::new();
    for r in rig.sim.requests() {
        let body = r.json();
        let kind = if r.path.contains("/datasets/") && r.path.ends_with("/refreshes") {
            (r.method == "POST").then_some(("pbi", "DatasetRefreshRequest"))
        } else if r.path.contains("/dataflows/") && r.path.ends_with("/refreshes") {
            Some(("pbi", "RefreshRequest"))
        } else if r.path.ends_with("/ExportTo") {
            Some(("pbi", "ExportReportRequest"))
        } else if r.path.ends_with("/executeQueries") {
            Some(("pbi", "DatasetExecuteQueriesRequest"))
        } else if r.method == "POST" && r.path.ends_with("/jobs/instances") {
            Some(("fabric", "RunOnDemandItemJobRequest"))
        } else {
            None
        };
        let Some((api, schema)) = kind else {
            // Polls, lists and cancels carry no body.
            if r.method != "POST" || !r.path.ends_with("/token") {
                assert!(
                    r.body.is_empty() || r.path.ends_with("/token"),
                    "{} {}: unexpected body {}",
                    r.method,
                    r.path,
                    r.body
                );
            }
            continue;
        };
        let what = format!(
            "{} {}?{}",
            r.method,
            r.path,
            r.query.clone().unwrap_or_default()
        );
        if schema == "RefreshRequest"
            && let Some(q) = &r.query
        {
            assert!(
                ["processType=default", "processType=processFull"].contains(&q.as_str()),
                "{what}"
            );
        }
        let Some(body) = body else {
            // A body-less trigger (a Gen2 run without options) is allowed by the spec.
            assert!(r.body.is_empty(), "{what}: not JSON: {}", r.body);
            seen.insert(format!("{schema} (no body)"));
            continue;
        };
        assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
        match api {
            "pbi" => conforms(PBI, "", schema, &body, &what),
            _ => {
                conforms(FABRIC, "./definitions/platform.json", schema, &body, &what);
                let job_type = r.query.as_deref().unwrap_or_default();
                if let Some(data) = body.get("executionData") {
                    match job_type {
                        "jobType=Execute" => conforms(
                            FABRIC_DATAFLOW,
                            "./definitions.json",
                            "DataflowExecutionPayload",
                            data,
                            &what,
                        ),
                        // The pipeline and notebook run bodies are documented on Microsoft
                        // Learn, not in the specs (src/sim/item_jobs.rs cites them): checked
                        // against the simulator's shapes, which the strict simulator applies.
                        "jobType=Pipeline" => {
                            sim::check_shape(data, &sim::PIPELINE_EXECUTION_DATA)
                                .unwrap_or_else(|e| panic!("{what}: {e}"));
                        }
                        "jobType=RunNotebook" => {
                            sim::check_shape(data, &sim::RUN_NOTEBOOK_EXECUTION_DATA)
                                .unwrap_or_else(|e| panic!("{what}: {e}"));
                        }
                        other => panic!("{what}: executionData sent with {other}"),
                    }
                }
            }
        }
        seen.insert(format!("{schema} {}", body));
    }
    // Each item type ran its job type.
    let job_types: std::collections::BTreeSet<String> = rig
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/jobs/instances"))
        .filter_map(|r| r.query.clone())
        .collect();
    assert_eq!(
        job_types.into_iter().collect::<Vec<_>>(),
        [
            "jobType=CopyJob",
            "jobType=Execute",
            "jobType=Pipeline",
            "jobType=RunNotebook",
            "jobType=sparkjob"
        ]
    );
    // Each kind of request was captured in each of its forms.
    let all = seen.iter().cloned().collect::<Vec<_>>().join("\n");
    for needle in [
        r#"DatasetRefreshRequest {"notifyOption":"MailOnFailure"}"#,
        r#"DatasetRefreshRequest {"notifyOption":"MailOnCompletion"}"#,
        r#"DatasetRefreshRequest {"notifyOption":"NoNotification"}"#,
        r#""commitMode":"PartialBatch""#,
        r#""timeout":"01:00:00""#,
        r#"RefreshRequest {"notifyOption":"MailOnFailure"}"#,
        r#""executeOption":"ApplyChangesIfNeeded""#,
        r#""executeOption":"SkipApplyChanges""#,
        r#""parameterName":"Region""#,
        r#""powerBIReportConfiguration""#,
        r#""paginatedReportConfiguration""#,
        r#""reportLevelFilters":[{"filter":"Geo/Region eq 'EU'"}]"#,
        r#"DatasetExecuteQueriesRequest {"queries":[{"query":"EVALUATE ROW(\"n\", 1)"}],"serializerSettings":{"includeNulls":true}}"#,
        r#""impersonatedUserName":"ann@contoso.com""#,
        r#""identities":[{"username":"eu@contoso.com","roles":["Manager"],"datasets":["#,
        r#""identities":[{"username":"eu@contoso.com","roles":["Manager"]}]"#,
        "RunOnDemandItemJobRequest (no body)",
        r#""parameters":{"region":"EU","days":3,"full":true}"#,
        r#""useWorkspacePool":"Large""#,
        r#""ratio":{"value":0.5,"type":"float"}"#,
    ] {
        assert!(all.contains(needle), "no request with {needle}:\n{all}");
    }
}

/// The simulator's request shapes against the spec schemas: the same properties, the same
/// required ones and the same enum values, recursively.
#[test]
fn the_simulators_request_shapes_are_the_specs() {
    let pbi = |name: &str| json!({"$ref": format!("#/definitions/{name}")});
    let cases: [(&str, Value, &Shape, &[&str]); 9] = [
        // `timeout` is documented (enhanced refresh) but missing from the 2024 swagger.
        (
            PBI,
            pbi("DatasetRefreshRequest"),
            &sim::DATASET_REFRESH_REQUEST,
            &["timeout"],
        ),
        (
            PBI,
            pbi("RefreshRequest"),
            &sim::DATAFLOW_REFRESH_REQUEST,
            &[],
        ),
        (
            PBI,
            pbi("DatasetExecuteQueriesRequest"),
            &sim::DATASET_EXECUTE_QUERIES_REQUEST,
            &[],
        ),
        (
            PBI,
            pbi("ExportReportRequest"),
            &sim::EXPORT_REPORT_REQUEST,
            &[],
        ),
        (
            FABRIC,
            json!({"$ref": "./definitions/platform.json#/definitions/RunOnDemandItemJobRequest"}),
            &sim::RUN_ON_DEMAND_ITEM_JOB_REQUEST,
            &[],
        ),
        (
            FABRIC_DATAFLOW,
            json!({"$ref": "./definitions.json#/definitions/DataflowExecutionPayload"}),
            &sim::DATAFLOW_EXECUTION_PAYLOAD,
            &[],
        ),
        (
            FABRIC_DATAFLOW,
            json!({"$ref": "./definitions.json#/definitions/RunOnDemandDataflowExecuteJobRequest"}),
            &sim::RUN_ON_DEMAND_DATAFLOW_EXECUTE_JOB_REQUEST,
            &[],
        ),
        (
            "fabric-rest-api-specs/sparkjobdefinition/swagger.json",
            json!({"$ref": "./definitions.json#/definitions/ExecutionData"}),
            &sim::SPARK_JOB_EXECUTION_DATA,
            &[],
        ),
        (
            "fabric-rest-api-specs/notebook/swagger.json",
            json!({"$ref": "./definitions.json#/definitions/RunNotebookRequest"}),
            &sim::RUN_NOTEBOOK_REQUEST,
            &[],
        ),
    ];
    for (spec, schema, shape, extra) in cases {
        let resolved = resolve(spec, &schema);
        compare(&resolved, spec, shape, extra, &schema.to_string());
    }
}

/// The schema a `$ref` points at (within `specs/`), with its file for further refs.
fn resolve(file: &str, schema: &Value) -> (String, Value) {
    let Some(r) = schema.get("$ref").and_then(Value::as_str) else {
        return (file.to_string(), schema.clone());
    };
    let (path, pointer) = r.split_once('#').unwrap_or((r, ""));
    let target = if path.is_empty() {
        file.to_string()
    } else {
        let base = url::Url::parse(&format!("file:///specs/{file}")).unwrap();
        base.join(path)
            .unwrap()
            .path()
            .trim_start_matches("/specs/")
            .to_string()
    };
    let doc = &specs().docs[&target];
    let found = doc
        .pointer(pointer)
        .unwrap_or_else(|| panic!("{r} in {target}"));
    resolve(&target, found)
}

fn compare(resolved: &(String, Value), _spec: &str, shape: &Shape, extra: &[&str], at: &str) {
    let (file, schema) = resolved;
    match shape {
        Shape::Object(fields) => {
            let props = schema["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let mut spec_names: Vec<&str> = props.keys().map(String::as_str).collect();
            spec_names.sort_unstable();
            let mut ours: Vec<&str> = fields
                .iter()
                .map(|f| f.name)
                .filter(|n| !extra.contains(n))
                .collect();
            ours.sort_unstable();
            assert_eq!(ours, spec_names, "{at}: properties");
            let required: Vec<&str> = schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            for f in *fields {
                // notifyOption: required by the swagger, omitted by enhanced refreshes
                // (spec_differences.rs).
                if f.name != "notifyOption" || !at.contains("DatasetRefreshRequest") {
                    assert_eq!(
                        f.required,
                        required.contains(&f.name),
                        "{at}.{}: required",
                        f.name
                    );
                }
                if let Some(p) = props.get(f.name) {
                    compare(
                        &resolve(file, p),
                        _spec,
                        &f.shape,
                        &[],
                        &format!("{at}.{}", f.name),
                    );
                }
            }
        }
        Shape::Enum(values) => {
            let spec: Vec<&str> = schema["enum"]
                .as_array()
                .unwrap_or_else(|| panic!("{at}: no enum in {schema}"))
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(values.to_vec(), spec, "{at}: enum");
        }
        Shape::Array(item) => {
            assert_eq!(schema["type"], "array", "{at}");
            compare(
                &resolve(file, &schema["items"]),
                _spec,
                item,
                &[],
                &format!("{at}[]"),
            );
        }
        Shape::String => assert_eq!(schema["type"], "string", "{at}"),
        Shape::Integer => assert_eq!(schema["type"], "integer", "{at}"),
        Shape::Boolean => assert_eq!(schema["type"], "boolean", "{at}"),
        Shape::AnyObject => assert_eq!(schema["type"], "object", "{at}"),
        // ItemJobParameter.value (spec_differences.rs).
        Shape::Any => assert_eq!(schema["type"], "object", "{at}"),
        Shape::Map(_) => panic!("{at}: no spec schema is a map; a Map shape comes from the docs"),
    }
}

/// The simulator's identity table against the "Microsoft Entra supported identities" tables
/// of the Fabric specs.
#[test]
fn the_identity_table_is_the_specs() {
    let item_rows = sim::ITEM_JOB_IDENTITY.iter().map(|(_, row)| row);
    for row in sim::IDENTITY_SUPPORT.iter().chain(item_rows) {
        let doc = &specs().docs[row.spec];
        let op = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|p| p.as_object().unwrap().values())
            .find(|o| o["operationId"] == row.operation_id)
            .unwrap_or_else(|| panic!("{}: no {}", row.spec, row.operation_id));
        let text = op["description"].as_str().unwrap_or_default();
        if row.spec.starts_with("fabric") {
            let user = text.contains("| User | Yes |");
            let app = text
                .lines()
                .any(|l| l.contains("Service principal") && l.contains("| Yes |"));
            assert_eq!(
                (row.user, row.app),
                (user, app),
                "{}: {text}",
                row.operation_id
            );
        } else {
            assert!(
                text.contains("can be called by a service principal profile")
                    || row.operation_id.starts_with("Dataflows_"),
                "{}",
                row.operation_id
            );
        }
    }
}

/// The ARM spec of Fabric capacities (specs/arm/fabric-capacities/). Its refs to Azure's
/// shared `common-types` do not resolve here, so only self-contained definitions are used.
fn arm_spec() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("specs/arm/fabric-capacities/2023-11-01/fabric.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Validates `body` against `#/definitions/{name}` of the ARM spec (Draft 4, as swagger).
fn arm_errors(spec: &Value, name: &str, body: &Value) -> Vec<String> {
    // Only the definitions that stand alone (the others refer to common-types).
    let local: serde_json::Map<String, Value> = spec["definitions"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, d)| !d.to_string().contains("../"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert!(local.contains_key(name), "{name} refers to common-types");
    let schema = json!({
        "$ref": format!("#/definitions/{name}"),
        "definitions": local,
    });
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    validator.iter_errors(body).map(|e| e.to_string()).collect()
}

/// The spec's path template of a request path: `{param}` segments match any segment.
fn arm_operation<'a>(spec: &'a Value, method: &str, path: &str) -> Option<&'a Value> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    spec["paths"]
        .as_object()?
        .iter()
        .find_map(|(template, ops)| {
            let t: Vec<&str> = template.trim_matches('/').split('/').collect();
            let matches = t.len() == segments.len()
                && t.iter()
                    .zip(&segments)
                    .all(|(t, s)| t.starts_with('{') || t == s);
            matches.then(|| ops.get(method.to_ascii_lowercase()))?
        })
}

#[tokio::test]
async fn every_capacity_request_matches_the_arm_spec() {
    use pbibatch::job::model::{CapacityAction, CapacityStep, StepKind};
    let rig = rig(
        "capacities:\n  nightly: { subscription: 11111111-2222-3333-4444-555555555555, resource_group: analytics, sku: F2, state: paused, transition: 100ms }\n",
    )
    .await;
    let spec = arm_spec();
    let version = spec["info"]["version"].as_str().unwrap().to_string();
    for action in [
        CapacityAction::Resume,
        CapacityAction::Scale { sku: "F8".into() },
        CapacityAction::Suspend,
    ] {
        let step = crate::exec_support::step(
            "cap",
            StepKind::Capacity(CapacityStep {
                action,
                capacity: "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/analytics/providers/Microsoft.Fabric/capacities/nightly".into(),
                subscription: None,
                resource_group: None,
            }),
        );
        let ran = run_step(&rig, step).await;
        assert_eq!(
            ran.outcome,
            pbibatch::executor::AttemptOutcome::Succeeded { adopted: false },
            "{ran:#?}"
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for r in rig.sim.requests() {
        if r.path.ends_with("/token") {
            // The token request asked for the management audience.
            if r.body.contains("management.azure.com") {
                seen.insert("token https://management.azure.com/.default".to_string());
                assert!(
                    r.body
                        .contains("scope=https%3A%2F%2Fmanagement.azure.com%2F.default"),
                    "{}",
                    r.body
                );
            }
            continue;
        }
        let what = format!("{} {}", r.method, r.path);
        let query = r.query.clone().unwrap_or_default();
        assert!(
            query
                .split('&')
                .any(|p| p == format!("api-version={version}")),
            "{what}: api-version {query}"
        );
        if r.path.contains("/operationstatuses/") || r.path.contains("/operationresults/") {
            // Followed from the answers' Azure-AsyncOperation / Location headers.
            assert_eq!(r.method, "GET", "{what}");
            seen.insert("GET operation status".into());
            continue;
        }
        let op = arm_operation(&spec, &r.method, &r.path)
            .unwrap_or_else(|| panic!("{what}: no such operation in the ARM spec"));
        let id = op["operationId"].as_str().unwrap();
        seen.insert(format!("{} {id}", r.method));
        if r.method == "PATCH" {
            let body = r.json().expect("a JSON body");
            let errors = arm_errors(&spec, "FabricCapacityUpdate", &body);
            assert!(errors.is_empty(), "{what}: {errors:?}\n{body}");
            assert_eq!(body, json!({"sku": {"name": "F8", "tier": "Fabric"}}));
            assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
        } else {
            assert!(r.body.is_empty(), "{what}: unexpected body {}", r.body);
        }
        assert!(
            r.header("authorization")
                .is_some_and(|a| a.starts_with("Bearer "))
        );
    }
    let all: Vec<String> = seen.into_iter().collect();
    assert_eq!(
        all,
        [
            "GET FabricCapacities_Get",
            "GET operation status",
            "PATCH FabricCapacities_Update",
            "POST FabricCapacities_Resume",
            "POST FabricCapacities_Suspend",
            "token https://management.azure.com/.default",
        ]
    );
}

#[tokio::test]
async fn the_simulators_capacity_answers_are_the_arm_specs() {
    let sim = crate::sim_support::start(
        "capacities:\n  nightly: { subscription: 11111111-2222-3333-4444-555555555555, resource_group: analytics, sku: F2, state: paused, transition: 60s, retry_after: 7 }\n",
    )
    .await;
    let spec = arm_spec();
    let token = crate::sim_support::token(&sim, "https://management.azure.com/.default").await;
    let client = crate::sim_support::client();
    let base = format!(
        "{}/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/analytics/providers/Microsoft.Fabric/capacities/nightly",
        sim.base_url()
    );
    let get = |url: String| client.get(url).bearer_auth(&token).send();
    // FabricCapacity: `properties` and `sku` (the TrackedResource part is in common-types).
    let body: Value = get(format!("{base}?api-version=2023-11-01"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (part, def) in [("properties", "FabricCapacityProperties"), ("sku", "RpSku")] {
        let errors = arm_errors(&spec, def, &body[part]);
        assert!(errors.is_empty(), "{def}: {errors:?}\n{body}");
    }
    assert_eq!(body["properties"]["state"], "Paused");
    assert_eq!(body["type"], "Microsoft.Fabric/capacities");
    // The resume's 202 carries the spec's headers (Location, Retry-After) and
    // Azure-AsyncOperation, as the spec's example does.
    let resume = client
        .post(format!("{base}/resume?api-version=2023-11-01"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resume.status(), 202);
    let declared = spec["paths"]["/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Fabric/capacities/{capacityName}/resume"]["post"]["responses"]["202"]["headers"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect::<Vec<_>>();
    for h in declared
        .iter()
        .map(String::as_str)
        .chain(["Azure-AsyncOperation"])
    {
        assert!(resume.headers().contains_key(h), "202 without {h}");
    }
    assert_eq!(resume.headers()["retry-after"], "7");
    let status_url = resume.headers()["azure-asyncoperation"]
        .to_str()
        .unwrap()
        .to_string();
    let location = resume.headers()["location"].to_str().unwrap().to_string();
    let status: Value = get(status_url).await.unwrap().json().await.unwrap();
    assert_eq!(status["status"], "InProgress");
    assert_eq!(get(location).await.unwrap().status(), 202);
    let body: Value = get(format!("{base}?api-version=2023-11-01"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["properties"]["state"], "Resuming");
    // Wrong state, unknown capacity, wrong audience: ARM's error bodies.
    let again = client
        .post(format!("{base}/resume?api-version=2023-11-01"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400);
    let err: Value = again.json().await.unwrap();
    assert_eq!(
        err,
        json!({"error": {"code": "BadRequest", "message": "Service is not ready to be updated"}})
    );
    let missing = get(format!(
        "{}?api-version=2023-11-01",
        base.replace("nightly", "nowhere")
    ))
    .await
    .unwrap();
    assert_eq!(missing.status(), 404);
    let err: Value = missing.json().await.unwrap();
    assert_eq!(err["error"]["code"], "ResourceNotFound");
    let pbi_token =
        crate::sim_support::token(&sim, "https://analysis.windows.net/powerbi/api/.default").await;
    let wrong = client
        .get(format!("{base}?api-version=2023-11-01"))
        .bearer_auth(pbi_token)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let err: Value = wrong.json().await.unwrap();
    assert_eq!(err["error"]["code"], "InvalidAuthenticationToken");
    let no_version = get(base.clone()).await.unwrap();
    assert_eq!(no_version.status(), 400);
}

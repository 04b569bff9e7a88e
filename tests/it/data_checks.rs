//! `data_check` steps end to end over loopback: the Execute Queries API as the simulator
//! serves it (answers declared in the profile, the service's errors and limits), the
//! assertion's verdict in every output, `severity: warn`, 429 + Retry-After, and the
//! tenant setting explained.

use std::net::SocketAddr;
use std::path::Path;

use pbibatch::sim::{Profile, SimServer};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{pbibatch, pbibatch_against, texts};
use crate::sim_support::{Api, seg};

const COUNT: &str = "EVALUATE ROW(\"n\", COUNTROWS('Orders'))";
const NEGATIVE: &str = "EVALUATE FILTER('Orders', 'Orders'[Amount] < 0)";
const REGIONS: &str = "EVALUATE VALUES('Regions'[Name])";

fn profile(extra: &str) -> String {
    let negative: Vec<Value> = (1..=6)
        .map(|i| json!({"Orders[Id]": i, "Orders[Amount]": -i}))
        .collect();
    format!(
        "defaults: {{ duration: 0s }}\n{extra}workspaces:\n  Sales:\n    datasets:\n      Revenue:\n        queries:\n          {}: [{{\"[n]\": 42}}]\n          {}: {}\n          {}: [{{\"Regions[Name]\": EU}}, {{\"Regions[Name]\": US}}, {{\"Regions[Name]\": null}}]\n",
        json!(COUNT),
        json!(NEGATIVE),
        Value::Array(negative),
        json!(REGIONS),
    )
}

async fn simulator(yaml: &str) -> SimServer {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    pbibatch::sim::start(Profile::from_yaml(yaml).unwrap(), addr)
        .await
        .unwrap()
}

/// Runs `job` in `dir` against `sim` with every output; the exit code, the terminal text and
/// the JSON report.
async fn run(
    sim: &SimServer,
    dir: &Path,
    job: &str,
    args: &[&str],
) -> (Option<i32>, String, Value) {
    std::fs::write(dir.join("job.yaml"), job).unwrap();
    let mut cmd = pbibatch_against(dir, sim);
    cmd.args(["run", "job.yaml", "--state", "none", "--report", "run.json"])
        .args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = texts(&out);
    let report = std::fs::read_to_string(dir.join("run.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    (out.status.code(), format!("{stdout}{stderr}"), report)
}

fn step<'r>(report: &'r Value, id: &str) -> &'r Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {report}"))
}

fn job(steps: &str) -> String {
    format!(
        "version: 1\nname: checks\ndefaults: {{ retries: 2, retry_backoff: 1s }}\nsteps:\n  model: {{ type: dataset, workspace: Sales, dataset: Revenue }}\n{steps}"
    )
}

#[tokio::test]
async fn checks_pass_fail_and_warn_with_the_offending_rows_in_every_output() {
    let sim = simulator(&profile("")).await;
    let dir = tempfile::tempdir().unwrap();
    let steps = format!(
        "  orders_loaded:\n    type: data_check\n    workspace: Sales\n    dataset: Revenue\n    query: {}\n    expect: {{ value: {{ min: 1 }} }}\n    depends_on: [model]\n  no_negative_amounts:\n    type: data_check\n    workspace: Sales\n    dataset: Revenue\n    query: {}\n    expect: {{ no_rows: true }}\n    depends_on: [model]\n  enough_regions:\n    type: data_check\n    workspace: Sales\n    dataset: Revenue\n    query: {}\n    expect: {{ rows: {{ min: 5 }} }}\n    severity: warn\n    impersonated_user: ann@contoso.com\n    depends_on: [model]\n",
        json!(COUNT),
        json!(NEGATIVE),
        json!(REGIONS)
    );
    let (code, out, report) = run(
        &sim,
        dir.path(),
        &job(&steps),
        &[
            "--junit",
            "junit.xml",
            "--summary",
            "summary.md",
            "--kestra",
        ],
    )
    .await;
    assert_eq!(code, Some(1), "{out}");

    // Passed: the observed value is in the report.
    let ok = step(&report, "orders_loaded");
    assert_eq!(ok["status"], "succeeded");
    assert_eq!(ok["check"]["passed"], true);
    assert_eq!(ok["check"]["assertion"], "[n] >= 1");
    assert_eq!(ok["check"]["observed"], "[n] = 42");

    // Failed (severity error): a failed assertion spends attempts like a failed refresh
    // (retries: 2, so 3 attempts); the report keeps the last attempt's check.
    let bad = step(&report, "no_negative_amounts");
    assert_eq!(bad["status"], "failed");
    assert_eq!(bad["check"]["passed"], false);
    assert_eq!(bad["check"]["rows"], 6);
    assert_eq!(bad["check"]["sample"].as_array().unwrap().len(), 5);
    let error = bad["error"].as_str().unwrap();
    assert!(
        error.starts_with("check failed: expected no rows, got 6 rows; first 5 (of 6): {\"Orders[Id]\":1,\"Orders[Amount]\":-1}"),
        "{error}"
    );
    assert_eq!(bad["attempts"].as_array().unwrap().len(), 3);

    // Warned: succeeded, with the warning; nulls kept (includeNulls) in the sample.
    let warn = step(&report, "enough_regions");
    assert_eq!(warn["status"], "succeeded");
    assert_eq!(warn["check"]["severity"], "warn");
    assert!(
        warn["warning"]
            .as_str()
            .unwrap()
            .starts_with("check warning: expected rows >= 5, got 3 rows")
    );
    assert_eq!(warn["check"]["sample"][2], json!({"Regions[Name]": null}));

    // JUnit: the failure message shows the offending values; the warning is on stderr.
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    assert!(
        junit.contains("message=\"check failed: expected no rows, got 6 rows; first 5 (of 6)"),
        "{junit}"
    );
    assert!(
        junit.contains("<system-err>warning: check warning: expected rows &gt;= 5, got 3 rows"),
        "{junit}"
    );
    assert!(
        junit.contains("name=\"check_result\" value=\"warning\""),
        "{junit}"
    );

    // Markdown: a Checks section with each verdict and the failed check's rows.
    let md = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(md.contains("### Checks"), "{md}");
    assert!(
        md.contains("| `orders_loaded` | ✅ passed | [n] &gt;= 1 | [n] = 42 |"),
        "{md}"
    );
    assert!(
        md.contains("| `no_negative_amounts` | ❌ failed | no rows | 6 rows |"),
        "{md}"
    );
    assert!(
        md.contains("| `enough_regions` | ⚠️ warning | rows &gt;= 5 | 3 rows |"),
        "{md}"
    );
    assert!(
        md.contains("`no_negative_amounts`: first 5 of 6 rows"),
        "{md}"
    );

    // Kestra outputs and log lines.
    let outputs = out
        .lines()
        .find(|l| l.starts_with("::{\"outputs\""))
        .unwrap();
    let outputs: Value =
        serde_json::from_str(outputs.trim_start_matches("::").trim_end_matches("::")).unwrap();
    assert_eq!(
        outputs["outputs"]["checks"]["enough_regions"]["result"],
        "warning"
    );
    assert_eq!(
        outputs["outputs"]["checks"]["no_negative_amounts"]["result"],
        "failed"
    );
    assert_eq!(
        outputs["outputs"]["checks"]["orders_loaded"]["observed"],
        "[n] = 42"
    );
    assert!(
        out.contains("enough_regions: check warning: expected rows >= 5, got 3 rows"),
        "{out}"
    );

    // The requests conform to the spec: one query per call, nulls kept, the impersonated
    // user, at the InGroup path of the model.
    let (ws, ds) = sim.ids("Sales", "Revenue").unwrap();
    let path = format!("/v1.0/myorg/groups/{ws}/datasets/{ds}/executeQueries");
    let posts: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == path)
        .collect();
    assert_eq!(posts.len(), 1 + 3 + 1, "one per attempt");
    for p in &posts {
        let body = p.json().unwrap();
        assert_eq!(body["queries"].as_array().unwrap().len(), 1);
        assert_eq!(body["serializerSettings"], json!({"includeNulls": true}));
    }
    assert!(
        posts
            .iter()
            .any(|p| p.json().unwrap()["impersonatedUserName"] == "ann@contoso.com")
    );
}

#[tokio::test]
async fn a_query_the_model_cannot_answer_is_the_services_dax_error_and_not_retried() {
    let sim = simulator(&profile("")).await;
    let dir = tempfile::tempdir().unwrap();
    let steps = "  typo:\n    type: data_check\n    workspace: Sales\n    dataset: Revenue\n    query: EVALUATE 'Ordres'\n    expect: { no_rows: true }\n";
    let (code, out, report) = run(&sim, dir.path(), &job(steps), &["--select", "typo"]).await;
    assert_eq!(code, Some(1), "{out}");
    let typo = step(&report, "typo");
    let error = typo["error"].as_str().unwrap();
    assert!(
        error.contains("answered 400: DatasetExecuteQueriesError"),
        "{error}"
    );
    assert!(error.contains("has no answer for this query"), "{error}");
    // A DAX error does not heal: no retry.
    assert_eq!(typo["attempts"].as_array().unwrap().len(), 1);
    assert!(typo.get("check").is_none());
}

#[tokio::test]
async fn the_tenant_setting_is_named_when_the_service_refuses_the_query() {
    for settings in [
        "execute_queries: { enabled: false }\n",
        "execute_queries: { service_principals: false }\n",
    ] {
        let sim = simulator(&profile(settings)).await;
        let dir = tempfile::tempdir().unwrap();
        let steps = format!(
            "  count:\n    type: data_check\n    workspace: Sales\n    dataset: Revenue\n    query: {}\n    expect: {{ value: {{ min: 1 }} }}\n",
            json!(COUNT)
        );
        let (code, out, report) = run(&sim, dir.path(), &job(&steps), &["--select", "count"]).await;
        assert_eq!(code, Some(1), "{out}");
        let error = step(&report, "count")["error"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            error.contains("answered 401: PowerBINotAuthorizedException"),
            "{error}"
        );
        assert!(
            error.contains("\"Dataset Execute Queries REST API\""),
            "{error}"
        );
        assert!(
            error.contains("\"Allow service principals to use Power BI APIs\""),
            "{error}"
        );
        assert_eq!(
            step(&report, "count")["attempts"].as_array().unwrap().len(),
            1
        );
    }
}

#[tokio::test]
async fn a_throttled_query_waits_for_retry_after_and_counts_once() {
    // Calls: workspace lookup, dataset list, then the query: every third call is throttled.
    let sim = simulator(&profile("throttle: { every: 3, retry_after: 1 }\n")).await;
    let dir = tempfile::tempdir().unwrap();
    let steps = format!(
        "  count:\n    type: data_check\n    workspace: Sales\n    dataset: Revenue\n    query: {}\n    expect: {{ value: {{ min: 1 }} }}\n",
        json!(COUNT)
    );
    let (code, out, report) = run(&sim, dir.path(), &job(&steps), &["--select", "count"]).await;
    assert_eq!(code, Some(0), "{out}");
    let count = step(&report, "count");
    assert_eq!(count["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(count["check"]["observed"], "[n] = 42");
    let posts: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/executeQueries"))
        .collect();
    assert_eq!(posts.len(), 2, "the throttled query was sent again");
    let at =
        |r: &pbibatch::sim::RecordedRequest| chrono::DateTime::parse_from_rfc3339(&r.time).unwrap();
    let gap = at(&posts[1]) - at(&posts[0]);
    assert!(gap >= chrono::Duration::milliseconds(950), "{gap:?}");
}

#[tokio::test]
async fn the_simulator_serves_execute_queries_strictly() {
    let sim = simulator(&profile("execute_queries: { per_minute: 2 }\n")).await;
    let api = Api::new(&sim).await;
    let (ws, ds) = api.ids("Sales", "Revenue");
    let path = format!("/groups/{}/datasets/{}/executeQueries", seg(&ws), seg(&ds));
    // Two queries in one call: refused.
    let two = api
        .pbi(
            Method::POST,
            &path,
            Some(json!({"queries": [{"query": COUNT}, {"query": COUNT}]})),
        )
        .await;
    assert_eq!(two.status, 400);
    // Nulls are left out unless asked for; the query text matches with whitespace collapsed.
    let spaced = REGIONS.replace(' ', "   \n ");
    let answer = api
        .pbi(
            Method::POST,
            &path,
            Some(json!({"queries": [{"query": spaced}]})),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["results"][0]["tables"][0]["rows"][2], json!({}));
    // The per-minute limit: 429 with Retry-After and Power BI's bare message.
    let third = api
        .pbi(
            Method::POST,
            &path,
            Some(json!({"queries": [{"query": COUNT}]})),
        )
        .await;
    assert_eq!(third.status, 429);
    let wait: u64 = third.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(third.body["message"].as_str().unwrap().contains("Retry in"));
}

#[tokio::test]
async fn the_simulator_refuses_a_body_outside_the_request_schema() {
    let sim = simulator(&profile("")).await;
    let api = Api::new(&sim).await;
    let (ws, ds) = api.ids("Sales", "Revenue");
    let path = format!("/groups/{}/datasets/{}/executeQueries", seg(&ws), seg(&ds));
    // DatasetExecuteQueriesRequest: `queries` (required) of {query}, `serializerSettings`
    // {includeNulls: boolean}, `impersonatedUserName` (string); nothing else.
    for body in [
        json!({"queries": [{"query": COUNT}], "maxRows": 10}),
        json!({"queries": [{"query": COUNT, "timeout": 5}]}),
        json!({"queries": [{"query": COUNT}], "serializerSettings": {"includeNulls": "yes"}}),
        json!({"queries": [{"query": COUNT}], "serializerSettings": {"dateFormat": "iso"}}),
        json!({"queries": [{"query": COUNT}], "impersonatedUserName": 7}),
        json!({"queries": [{"query": 1}]}),
    ] {
        let answer = api.pbi(Method::POST, &path, Some(body.clone())).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.body);
        assert_eq!(answer.body["error"]["code"], "InvalidRequest", "{body}");
    }
    let ok = api
        .pbi(
            Method::POST,
            &path,
            Some(json!({"queries": [{"query": COUNT}], "serializerSettings": {"includeNulls": false}, "impersonatedUserName": "ann@contoso.com"})),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[tokio::test]
async fn a_service_principal_cannot_query_a_model_with_row_level_security() {
    // The API's limitations: "regardless of the admin tenant setting, Service Principals
    // aren't supported for datasets with RLS"; the service answers 401 (observed: Fabric
    // community thread "Service Principal + RLS + ExecuteQueries REST API").
    let secure = format!(
        "      Secure:\n        rls_roles: [Manager]\n        queries:\n          {}: [{{\"[n]\": 7}}]\n",
        json!(COUNT)
    );
    let sim = simulator(&format!("{}{secure}", profile(""))).await;
    let steps = format!(
        "  secure_count:\n    type: data_check\n    workspace: Sales\n    dataset: Secure\n    query: {}\n    expect: {{ value: {{ min: 1 }} }}\n    impersonated_user: ann@contoso.com\n",
        json!(COUNT)
    );
    let dir = tempfile::tempdir().unwrap();
    let (code, out, report) = run(
        &sim,
        dir.path(),
        &job(&steps),
        &["--select", "secure_count"],
    )
    .await;
    assert_eq!(code, Some(1), "{out}");
    let secure_count = step(&report, "secure_count");
    let error = secure_count["error"].as_str().unwrap();
    assert!(
        error.contains("answered 401: PowerBINotAuthorizedException"),
        "{error}"
    );
    assert!(error.contains("row-level security"), "{error}");
    assert_eq!(secure_count["attempts"].as_array().unwrap().len(), 1);

    // A signed-in user may query it (the impersonated user's roles apply).
    let user = sim
        .user_token("https://analysis.windows.net/powerbi/api/.default")
        .unwrap();
    let as_user = job(&steps).replace(
        "defaults:",
        &format!("connections: {{ default: {{ access_token: {user} }} }}\ndefaults:"),
    );
    let dir = tempfile::tempdir().unwrap();
    let (code, out, report) = run(&sim, dir.path(), &as_user, &["--select", "secure_count"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        step(&report, "secure_count")["check"]["observed"],
        "[n] = 7"
    );
}

#[test]
fn the_example_runs_against_its_simulator_profile_with_a_warning() {
    let repo = crate::common::repo();
    let dir = tempfile::tempdir().unwrap();
    let out = pbibatch(&repo)
        .args([
            "run",
            "examples/data_checks.yaml",
            "--simulate",
            "--sim-profile",
            "examples/profiles/data_checks.yaml",
            "--state",
            "none",
            "--report",
        ])
        .arg(dir.path().join("run.json"))
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("run.json")).unwrap())
            .unwrap();
    assert_eq!(
        step(&report, "orders_loaded")["check"]["observed"],
        "[n] = 18250"
    );
    assert_eq!(
        step(&report, "no_negative_amounts")["check"]["passed"],
        true
    );
    let warn = step(&report, "all_regions_present");
    assert_eq!(
        (warn["status"].as_str(), warn["check"]["passed"].as_bool()),
        (Some("succeeded"), Some(false))
    );
}

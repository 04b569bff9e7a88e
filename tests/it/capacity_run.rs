//! `capacity` steps end to end: the real binary against a simulator started here and reached
//! the way a tenant is (`PBIBATCH_*_URL`, client credentials), judged by what the simulator
//! received (its request log) and what the run report says.

use std::net::SocketAddr;

use pbibatch::sim::{Profile, RecordedRequest, SimServer};
use serde_json::Value;

use crate::common::{pbibatch, texts};

const SUB: &str = "11111111-2222-3333-4444-555555555555";

async fn simulator(yaml: &str) -> SimServer {
    let profile = Profile::from_yaml(yaml).expect("valid profile");
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    pbibatch::sim::start(profile, addr).await.unwrap()
}

/// `pbibatch run job.yaml --report report.json` in a temp dir against `sim`; the exit code,
/// stdout + stderr and the report.
async fn run(sim: &SimServer, job: &str) -> (Option<i32>, String, Value) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.yaml"), job).unwrap();
    let base = sim.base_url();
    let mut cmd = pbibatch(dir.path());
    cmd.args([
        "run",
        "job.yaml",
        "--report",
        "report.json",
        "--state",
        "none",
    ])
    .env("PBIBATCH_POWERBI_URL", &base)
    .env("PBIBATCH_FABRIC_URL", &base)
    .env("PBIBATCH_AUTHORITY_URL", &base)
    .env("PBIBATCH_ARM_URL", &base)
    .env("AZURE_TENANT_ID", sim.tenant_id())
    .env("AZURE_CLIENT_ID", sim.client_id())
    .env("AZURE_CLIENT_SECRET", sim.client_secret());
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = texts(&out);
    let report = std::fs::read_to_string(dir.path().join("report.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    (out.status.code(), format!("{stdout}{stderr}"), report)
}

fn status<'a>(report: &'a Value, step: &str) -> &'a str {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == step)
        .and_then(|s| s["status"].as_str())
        .unwrap_or("?")
}

fn step_of<'a>(report: &'a Value, step: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == step)
        .unwrap()
}

fn arm(sim: &SimServer) -> Vec<RecordedRequest> {
    sim.requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/subscriptions/"))
        .collect()
}

fn capacity_path(name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/analytics/providers/Microsoft.Fabric/capacities/{name}"
    )
}

/// Index of the first request matching `pred` in the log.
fn first(log: &[RecordedRequest], pred: impl Fn(&RecordedRequest) -> bool) -> usize {
    log.iter().position(pred).expect("a matching request")
}

/// The state and SKU the simulator's ARM reports now.
async fn arm_state(sim: &SimServer, name: &str) -> (String, String) {
    let token = crate::sim_support::token(sim, "https://management.azure.com/.default").await;
    let url = format!(
        "{}{}?api-version=2023-11-01",
        sim.base_url(),
        capacity_path(name)
    );
    let body: Value = crate::sim_support::client()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        body["properties"]["state"].as_str().unwrap().to_string(),
        body["sku"]["name"].as_str().unwrap().to_string(),
    )
}

const ESTATE: &str = r#"
defaults: { duration: 300ms }
capacities:
  nightly: { subscription: 11111111-2222-3333-4444-555555555555, resource_group: analytics, sku: F8, state: paused, transition: 400ms }
workspaces:
  Sales:
    capacity: nightly
    datasets:
      Orders: {}
      Revenue: { outcomes: [fail] }
"#;

/// The pattern of the docs and examples/capacity_window.yaml: resume before, suspend after
/// with `trigger: all_done`.
const WINDOW: &str = r#"
version: 1
name: window
vars: { capacity: /subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/analytics/providers/Microsoft.Fabric/capacities/nightly }
defaults: { poll_interval: 200ms }
steps:
  resume_capacity: { type: capacity, action: resume, capacity: "${vars.capacity}" }
  orders: { type: dataset, workspace: Sales, dataset: Orders, depends_on: [resume_capacity] }
  revenue: { type: dataset, workspace: Sales, dataset: Revenue, depends_on: [resume_capacity] }
  suspend_capacity:
    type: capacity
    action: suspend
    capacity: "${vars.capacity}"
    depends_on: [orders, revenue]
    trigger: all_done
"#;

#[tokio::test]
async fn resume_work_suspend_even_when_a_step_fails() {
    let sim = simulator(ESTATE).await;
    let (code, text, report) = run(&sim, WINDOW).await;
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(status(&report, "resume_capacity"), "succeeded", "{text}");
    assert_eq!(status(&report, "orders"), "succeeded", "{text}");
    assert_eq!(status(&report, "revenue"), "failed", "{text}");
    assert_eq!(status(&report, "suspend_capacity"), "succeeded", "{text}");
    assert_eq!(arm_state(&sim, "nightly").await.0, "Paused");

    // One resume and one suspend; the resume before any refresh, the suspend after every
    // refresh ended (its request comes after both models' last status reads).
    let log = sim.requests();
    let path = capacity_path("nightly");
    let posts: Vec<&RecordedRequest> = log
        .iter()
        .filter(|r| r.method == "POST" && r.path.starts_with(&path))
        .collect();
    assert_eq!(posts.len(), 2, "{posts:#?}");
    assert!(posts[0].path.ends_with("/resume"));
    assert!(posts[1].path.ends_with("/suspend"));
    let resume = first(&log, |r| r.method == "POST" && r.path.ends_with("/resume"));
    let suspend = first(&log, |r| r.method == "POST" && r.path.ends_with("/suspend"));
    let first_refresh = first(&log, |r| {
        r.method == "POST" && r.path.ends_with("/refreshes")
    });
    let last_refresh_read = log
        .iter()
        .rposition(|r| r.method == "GET" && r.path.contains("/refreshes"))
        .unwrap();
    assert!(resume < first_refresh);
    assert!(last_refresh_read < suspend);
    // The refreshes started only once the capacity was Active again: the resume's operation
    // was followed to its end first.
    let ops = log[resume..first_refresh]
        .iter()
        .filter(|r| r.path.contains("/operationstatuses/"))
        .count();
    assert!(ops >= 1, "the resume operation was not followed");
    // Every ARM call carried the management token and the spec's api-version.
    for r in arm(&sim) {
        assert_eq!(
            r.query
                .as_deref()
                .map(|q| q.contains("api-version=2023-11-01")),
            Some(true),
            "{}",
            r.path
        );
    }
}

#[tokio::test]
async fn resuming_an_active_capacity_and_suspending_a_paused_one_send_nothing_that_changes_them() {
    let sim = simulator(
        r#"
capacities:
  active: { subscription: 11111111-2222-3333-4444-555555555555, resource_group: analytics, state: active }
  paused: { subscription: 11111111-2222-3333-4444-555555555555, resource_group: analytics, state: paused }
"#,
    )
    .await;
    let job = format!(
        r#"
version: 1
name: idempotent
steps:
  resume: {{ type: capacity, action: resume, capacity: active, subscription: {SUB}, resource_group: analytics }}
  suspend: {{ type: capacity, action: suspend, capacity: paused, subscription: {SUB}, resource_group: analytics }}
  scale: {{ type: capacity, action: scale, sku: F64, capacity: active, subscription: {SUB}, resource_group: analytics, depends_on: [resume] }}
"#
    );
    let (code, text, report) = run(&sim, &job).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("capacity already Active (F64): nothing sent"),
        "{text}"
    );
    assert!(
        text.contains("capacity already Paused (F64): nothing sent"),
        "{text}"
    );
    let changes: Vec<String> = arm(&sim)
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(changes.is_empty(), "{changes:#?}");
    for step in ["resume", "suspend", "scale"] {
        assert_eq!(status(&report, step), "succeeded");
        let triggers = &step_of(&report, step)["attempts"][0]["triggers"];
        assert_eq!(triggers.as_u64().unwrap_or(0), 0, "{step}");
    }
}

#[tokio::test]
async fn scale_patches_the_sku_and_waits_until_the_capacity_reports_it() {
    let sim = simulator(
        r#"
capacities:
  nightly: { subscription: 11111111-2222-3333-4444-555555555555, resource_group: analytics, sku: F2, transition: 500ms }
"#,
    )
    .await;
    let job = format!(
        r#"
version: 1
name: scale
defaults: {{ poll_interval: 100ms }}
steps:
  up: {{ type: capacity, action: scale, sku: f16, capacity: nightly, subscription: {SUB}, resource_group: analytics }}
"#
    );
    let (code, text, report) = run(&sim, &job).await;
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        arm_state(&sim, "nightly").await,
        ("Active".into(), "F16".into())
    );
    let patches: Vec<RecordedRequest> = arm(&sim)
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 1);
    assert_eq!(
        patches[0].json().unwrap(),
        serde_json::json!({"sku": {"name": "F16", "tier": "Fabric"}})
    );
    assert_eq!(patches[0].header("content-type"), Some("application/json"));
    // The step ended only after a read that reports the new SKU.
    let last_get = arm(&sim)
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == capacity_path("nightly"))
        .count();
    assert!(
        last_get >= 2,
        "the capacity was not read after the operation"
    );
    assert_eq!(step_of(&report, "up")["attempts"][0]["triggers"], 1);
}

#[tokio::test]
async fn the_operation_is_followed_honouring_retry_after() {
    let sim = simulator(
        r#"
capacities:
  nightly: { subscription: 11111111-2222-3333-4444-555555555555, resource_group: analytics, state: paused, transition: 2500ms, retry_after: 1 }
"#,
    )
    .await;
    let job = format!(
        r#"
version: 1
name: lro
defaults: {{ poll_interval: 100ms }}
steps:
  resume: {{ type: capacity, action: resume, capacity: nightly, subscription: {SUB}, resource_group: analytics }}
"#
    );
    let (code, text, _) = run(&sim, &job).await;
    assert_eq!(code, Some(0), "{text}");
    let log = arm(&sim);
    let times: Vec<chrono::DateTime<chrono::FixedOffset>> = log
        .iter()
        .filter(|r| r.method == "POST" || r.path.contains("/operationstatuses/"))
        .map(|r| chrono::DateTime::parse_from_rfc3339(&r.time).unwrap())
        .collect();
    // The trigger, then at least two status reads (the operation takes 2.5 s), each at least
    // the 1 s Retry-After after the previous request (the poll interval alone is 100 ms).
    assert!(times.len() >= 3, "{log:#?}");
    for pair in times.windows(2) {
        let gap = (pair[1] - pair[0]).num_milliseconds();
        assert!(
            gap >= 990,
            "a status read {gap} ms after the previous request"
        );
    }
    // The Location-only path is not used when Azure-AsyncOperation is given.
    assert!(!log.iter().any(|r| r.path.contains("/operationresults/")));
}

#[tokio::test]
async fn failing_arm_answers_fail_the_step_with_the_service_message() {
    let sim = simulator(
        r#"
capacities:
  locked: { subscription: 11111111-2222-3333-4444-555555555555, resource_group: analytics, state: paused, forbidden: true }
  broken: { subscription: 11111111-2222-3333-4444-555555555555, resource_group: analytics, state: paused, fail: [resume], transition: 200ms }
"#,
    )
    .await;
    let job = format!(
        r#"
version: 1
name: failing
defaults: {{ poll_interval: 100ms, retries: 2, retry_backoff: 100ms }}
steps:
  forbidden: {{ type: capacity, action: resume, capacity: locked, subscription: {SUB}, resource_group: analytics }}
  missing: {{ type: capacity, action: resume, capacity: nowhere, subscription: {SUB}, resource_group: analytics }}
  failing: {{ type: capacity, action: resume, capacity: broken, subscription: {SUB}, resource_group: analytics, retries: 0 }}
"#
    );
    let (code, text, report) = run(&sim, &job).await;
    assert_eq!(code, Some(1), "{text}");
    let forbidden = step_of(&report, "forbidden");
    assert_eq!(forbidden["status"], "failed");
    assert!(
        forbidden["error"]
            .as_str()
            .unwrap()
            .contains("AuthorizationFailed"),
        "{forbidden}"
    );
    // A refusal does not spend the retries.
    assert_eq!(forbidden["attempts"].as_array().unwrap().len(), 1);
    let missing = step_of(&report, "missing");
    assert!(
        missing["error"]
            .as_str()
            .unwrap()
            .contains("capacity `nowhere` not found"),
        "{missing}"
    );
    assert_eq!(missing["attempts"].as_array().unwrap().len(), 1);
    let failing = step_of(&report, "failing");
    assert_eq!(failing["status"], "failed");
    assert!(
        failing["error"]
            .as_str()
            .unwrap()
            .contains("CapacityOperationFailed"),
        "{failing}"
    );
    // Nothing was sent to the capacities the caller may not touch or that do not exist.
    assert!(
        !arm(&sim)
            .iter()
            .any(|r| r.method == "POST" && !r.path.contains("/broken/"))
    );
    assert_eq!(arm_state(&sim, "broken").await.0, "Paused");
}

fn capacity_step(
    action: pbibatch::job::model::CapacityAction,
    name: &str,
) -> pbibatch::job::model::Step {
    crate::exec_support::step(
        "cap",
        pbibatch::job::model::StepKind::Capacity(pbibatch::job::model::CapacityStep {
            action,
            capacity: name.into(),
            subscription: Some(SUB.into()),
            resource_group: Some("analytics".into()),
        }),
    )
}

fn posts(sim: &SimServer) -> usize {
    arm(sim).iter().filter(|r| r.method == "POST").count()
}

#[tokio::test]
async fn a_lost_answer_is_recovered_from_the_state_never_by_sending_again() {
    use pbibatch::sim::{Fault, FaultRule};
    let rig = crate::exec_support::rig(
        "capacities:\n  nightly: { subscription: 11111111-2222-3333-4444-555555555555, resource_group: analytics, state: paused, transition: 300ms }\n",
    )
    .await;
    rig.sim.arm_fault(FaultRule {
        method: "POST".into(),
        path: "*/capacities/nightly/resume".into(),
        nth: 1,
        fault: Fault::DropAfter,
    });
    let ran = crate::exec_support::run_step(
        &rig,
        capacity_step(pbibatch::job::model::CapacityAction::Resume, "nightly"),
    )
    .await;
    assert_eq!(
        ran.outcome,
        pbibatch::executor::AttemptOutcome::Succeeded { adopted: false },
        "{ran:#?}"
    );
    assert_eq!(posts(&rig.sim), 1);
    assert_eq!(arm_state(&rig.sim, "nightly").await.0, "Active");
}

#[tokio::test]
async fn a_retry_after_an_interrupted_attempt_follows_the_operation_instead_of_starting_another() {
    let rig = crate::exec_support::rig(
        "capacities:\n  nightly: { subscription: 11111111-2222-3333-4444-555555555555, resource_group: analytics, state: paused, transition: 1500ms }\n",
    )
    .await;
    let step = capacity_step(pbibatch::job::model::CapacityAction::Resume, "nightly");
    // Attempt 1 is stopped (a timeout, or the process killed) while the capacity resumes.
    let cancel = pbibatch::executor::Cancel::new();
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        stopper.cancel(pbibatch::executor::CancelReason::Timeout);
    });
    let first = crate::exec_support::run_step_with(
        &rig,
        step.clone(),
        crate::exec_support::AttemptOptions {
            cancel: Some(cancel),
            ..Default::default()
        },
    )
    .await;
    assert!(
        first.error().contains("goes on in Azure"),
        "{}",
        first.error()
    );
    assert_eq!(arm_state(&rig.sim, "nightly").await.0, "Resuming");
    // Attempt 2 (or a resumed run) reads the state first: it waits for the resume it sees,
    // it does not send another.
    let second = crate::exec_support::run_step(&rig, step).await;
    assert_eq!(
        second.outcome,
        pbibatch::executor::AttemptOutcome::Succeeded { adopted: false }
    );
    assert_eq!(posts(&rig.sim), 1);
    assert_eq!(arm_state(&rig.sim, "nightly").await.0, "Active");
}

/// The issue's "done when" job: resume the capacity, run a pipeline and a notebook, a Gen2
/// dataflow and a model refresh, export a report, suspend the capacity.
#[tokio::test]
async fn the_nightly_estate_runs_between_resume_and_suspend() {
    let sim = simulator(
        r#"
defaults: { duration: 200ms, history_lag: 0s }
capacities:
  nightly: { subscription: 11111111-2222-3333-4444-555555555555, resource_group: analytics, sku: F8, state: paused, transition: 300ms }
workspaces:
  Sales:
    capacity: nightly
    items:
      Nightly Load: { type: DataPipeline }
      Transform Sales: { type: Notebook }
    fabric_dataflows: { Staging: {} }
    datasets: { Sales: {} }
    reports: { Sales Book: { dataset: Sales } }
"#,
    )
    .await;
    // Dataflow Gen2 runs only for a signed-in user: the whole job uses a user's token.
    let token = sim.user_token_for_any_audience();
    let job = r#"
version: 1
name: estate
vars: { capacity: /subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/analytics/providers/Microsoft.Fabric/capacities/nightly }
connections: { default: { access_token: "${env.USER_TOKEN}" } }
defaults: { poll_interval: 200ms }
steps:
  resume_capacity: { type: capacity, action: resume, capacity: "${vars.capacity}" }
  load: { type: fabric_job, workspace: Sales, item: Nightly Load, item_type: pipeline, depends_on: [resume_capacity] }
  transform: { type: fabric_job, workspace: Sales, item: Transform Sales, item_type: notebook, depends_on: [load] }
  staging: { type: dataflow, generation: 2, workspace: Sales, dataflow: Staging, depends_on: [transform] }
  model: { type: dataset, workspace: Sales, dataset: Sales, depends_on: [staging] }
  book:
    type: report
    workspace: Sales
    report: Sales Book
    export: { format: PDF, path: sales_book.pdf }
    depends_on: [model]
  suspend_capacity:
    type: capacity
    action: suspend
    capacity: "${vars.capacity}"
    depends_on: [resume_capacity, load, transform, staging, model, book]
    trigger: all_done
"#;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.yaml"), job).unwrap();
    let base = sim.base_url();
    let mut cmd = pbibatch(dir.path());
    cmd.args([
        "run",
        "job.yaml",
        "--report",
        "report.json",
        "--state",
        "none",
    ])
    .env("PBIBATCH_POWERBI_URL", &base)
    .env("PBIBATCH_FABRIC_URL", &base)
    .env("PBIBATCH_AUTHORITY_URL", &base)
    .env("PBIBATCH_ARM_URL", &base)
    .env("USER_TOKEN", &token);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    for step in [
        "resume_capacity",
        "load",
        "transform",
        "staging",
        "model",
        "book",
        "suspend_capacity",
    ] {
        assert_eq!(
            status(&report, step),
            "succeeded",
            "{step}: {stdout}{stderr}"
        );
    }
    assert!(dir.path().join("sales_book.pdf").exists());
    assert_eq!(arm_state(&sim, "nightly").await.0, "Paused");
    // Every Fabric and Power BI call came after the capacity was resumed and before it was
    // suspended.
    let log = sim.requests();
    let resume = first(&log, |r| r.method == "POST" && r.path.ends_with("/resume"));
    let suspend = first(&log, |r| r.method == "POST" && r.path.ends_with("/suspend"));
    let work: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.method == "POST" && (r.path.starts_with("/v1/") || r.path.starts_with("/v1.0/"))
        })
        .map(|(i, _)| i)
        .collect();
    assert!(work.len() >= 5, "{work:?}");
    assert!(work.iter().all(|&i| resume < i && i < suspend));
}

#[tokio::test]
async fn an_operation_with_only_a_location_is_followed_there() {
    let sim = simulator(
        r#"
capacities:
  nightly: { subscription: 11111111-2222-3333-4444-555555555555, resource_group: analytics, state: paused, transition: 1500ms, retry_after: 1, async_operation: false }
"#,
    )
    .await;
    let job = format!(
        r#"
version: 1
name: location
defaults: {{ poll_interval: 100ms }}
steps:
  resume: {{ type: capacity, action: resume, capacity: nightly, subscription: {SUB}, resource_group: analytics }}
"#
    );
    let (code, text, _) = run(&sim, &job).await;
    assert_eq!(code, Some(0), "{text}");
    let log = arm(&sim);
    let results: Vec<&RecordedRequest> = log
        .iter()
        .filter(|r| r.path.contains("/operationresults/"))
        .collect();
    // 202 while it runs (1.5 s, read at most every Retry-After second), then 204.
    assert!(results.len() >= 2, "{log:#?}");
    assert!(!log.iter().any(|r| r.path.contains("/operationstatuses/")));
    let resume = log.iter().position(|r| r.method == "POST").unwrap();
    let last_result = log
        .iter()
        .rposition(|r| r.path.contains("/operationresults/"))
        .unwrap();
    // The state was read after the operation ended, and it is Active.
    assert!(
        log[last_result..]
            .iter()
            .any(|r| r.method == "GET" && r.path == capacity_path("nightly"))
    );
    assert!(resume < last_result);
    assert_eq!(arm_state(&sim, "nightly").await.0, "Active");
}

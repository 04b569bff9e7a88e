//! Simulator: Fabric workspaces, items and job instances.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::sim_support::{Api, answer, start};

const ESTATE: &str = r#"
page_size: 2
defaults:
  duration: 3m
workspaces:
  A: { fabric_dataflows: { Gen2 DF: {}, Queued DF: { queue_time: 1m } }, datasets: { Model: {} }, items: { Nightly: { type: DataPipeline } } }
  B: { fabric_dataflows: { Fails: { outcomes: [fail] } } }
  C: {}
  D: {}
  E: {}
"#;

#[tokio::test]
async fn workspaces_page_with_continuation_token_and_uri() {
    let sim = start(ESTATE).await;
    let api = Api::new(&sim).await;
    let first = api.fabric(Method::GET, "/workspaces", None).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["value"].as_array().unwrap().len(), 2);
    assert_eq!(first.body["value"][0]["displayName"], "A");
    assert!(first.body["value"][0].get("name").is_none());
    let token = first.body["continuationToken"].as_str().unwrap();
    let second = api
        .fabric(
            Method::GET,
            &format!("/workspaces?continuationToken={token}"),
            None,
        )
        .await;
    assert_eq!(second.body["value"][0]["displayName"], "C");
    let uri = second.body["continuationUri"].as_str().unwrap();
    let third = api.fabric_url(uri).await;
    assert_eq!(third.body["value"].as_array().unwrap().len(), 1);
    assert!(third.body.get("continuationToken").is_none());
    assert!(third.body.get("continuationUri").is_none());
    let bad = api
        .fabric(Method::GET, "/workspaces?continuationToken=%21%21", None)
        .await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn items_and_typed_lists() {
    let sim = start(ESTATE).await;
    let api = Api::new(&sim).await;
    let (ws, _) = api.ids("A", "");
    let mut names = Vec::new();
    let mut page = api
        .fabric(Method::GET, &format!("/workspaces/{ws}/items"), None)
        .await;
    loop {
        for v in page.body["value"].as_array().unwrap() {
            names.push((
                v["displayName"].as_str().unwrap().to_string(),
                v["type"].as_str().unwrap().to_string(),
            ));
            assert_eq!(v["workspaceId"], ws.as_str());
        }
        match page.body["continuationUri"].as_str() {
            Some(uri) => page = api.fabric_url(uri).await,
            None => break,
        }
    }
    names.sort();
    assert_eq!(
        names,
        vec![
            ("Gen2 DF".into(), "Dataflow".into()),
            ("Model".into(), "SemanticModel".into()),
            ("Nightly".into(), "DataPipeline".into()),
            ("Queued DF".into(), "Dataflow".into()),
        ]
    );
    let typed = api
        .fabric(Method::GET, &format!("/workspaces/{ws}/dataflows"), None)
        .await;
    assert!(
        typed.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["type"] == "Dataflow")
    );
    let filtered = api
        .fabric(
            Method::GET,
            &format!("/workspaces/{ws}/items?type=SemanticModel"),
            None,
        )
        .await;
    assert_eq!(filtered.body["value"][0]["displayName"], "Model");
    let (_, model) = api.ids("A", "Model");
    // A semantic model item has the dataset's id.
    let pbi = api
        .pbi(Method::GET, &format!("/groups/{ws}/datasets/{model}"), None)
        .await;
    assert_eq!(pbi.status, 200);
    let missing = api
        .fabric(
            Method::GET,
            &format!("/workspaces/{}/items", uuid::Uuid::nil()),
            None,
        )
        .await;
    assert_eq!(missing.status, 404);
    assert!(missing.body["errorCode"].is_string());
}

#[tokio::test(start_paused = true)]
async fn run_on_demand_both_forms_then_poll_and_dedupe() {
    let sim = start(ESTATE).await;
    let api = Api::as_user(&sim);
    let (ws, df) = api.ids("A", "Gen2 DF");
    let run = api
        .fabric(
            Method::POST,
            &format!("/workspaces/{ws}/items/{df}/jobs/instances?jobType=Execute"),
            None,
        )
        .await;
    assert_eq!(run.status, 202);
    assert!(run.bytes.is_empty());
    // The remaining time, capped at 60 s.
    assert_eq!(run.header("retry-after"), Some("60"));
    let location = run.header("location").unwrap().to_string();
    assert!(location.starts_with(&format!(
        "{}/v1/workspaces/{ws}/items/{df}/jobs/instances/",
        sim.base_url()
    )));
    let job = api.fabric_url(&location).await;
    assert_eq!(job.status, 200);
    assert_eq!(job.body["status"], "InProgress");
    assert_eq!(job.body["jobType"], "Execute");
    assert_eq!(job.body["invokeType"], "Manual");
    assert!(job.body["endTimeUtc"].is_null());
    assert!(job.body["failureReason"].is_null());
    let start = job.body["startTimeUtc"].as_str().unwrap();
    assert!(
        !start.ends_with('Z') && start.split('.').nth(1).unwrap().len() == 7,
        "{start}"
    );
    assert!(job.header("retry-after").is_some());
    // Same job type while running: Deduped. `Refresh` is `Execute`.
    let dup = api
        .fabric(
            Method::POST,
            &format!("/workspaces/{ws}/dataflows/{df}/jobs/Refresh/instances"),
            None,
        )
        .await;
    assert_eq!(dup.status, 202);
    let dup_location = dup.header("location").unwrap().to_string();
    assert!(dup_location.contains("/items/"), "{dup_location}");
    assert_eq!(
        api.fabric_url(&dup_location).await.body["status"],
        "Deduped"
    );
    tokio::time::advance(Duration::from_secs(180)).await;
    let done = api.fabric_url(&location).await;
    assert_eq!(done.body["status"], "Completed");
    assert!(done.body["endTimeUtc"].is_string());
    assert!(done.header("retry-after").is_none());
    // The dataflow-specific lowercase path form.
    let again = api
        .fabric(
            Method::POST,
            &format!("/workspaces/{ws}/dataflows/{df}/jobs/execute/instances"),
            Some(json!({"executionData": {"executeOption": "ApplyChangesIfNeeded"}})),
        )
        .await;
    assert_eq!(again.status, 202);
    let list = api
        .fabric(
            Method::GET,
            &format!("/workspaces/{ws}/items/{df}/jobs/instances"),
            None,
        )
        .await;
    assert_eq!(list.body["value"].as_array().unwrap().len(), 2);
    let c = sim.counters().resource("fabric_dataflow:A/Gen2 DF");
    assert_eq!(c.triggers, 3);
    // Bad job types and bodies.
    let bad = api
        .fabric(
            Method::POST,
            &format!("/workspaces/{ws}/items/{df}/jobs/instances?jobType=Nope"),
            None,
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["errorCode"], "InvalidJobType");
    let params = api
        .fabric(
            Method::POST,
            &format!("/workspaces/{ws}/items/{df}/jobs/ApplyChanges/instances"),
            Some(json!({"parameters": []})),
        )
        .await;
    assert_eq!(params.body["errorCode"], "FeatureNotAvailable");
    let (_, pipeline) = api.ids("A", "Nightly");
    let pipe = api
        .fabric(
            Method::POST,
            &format!("/workspaces/{ws}/items/{pipeline}/jobs/instances?jobType=Pipeline"),
            None,
        )
        .await;
    assert_eq!(pipe.status, 202);
}

#[tokio::test(start_paused = true)]
async fn queued_failed_and_cancelled_job_states() {
    let sim = start(ESTATE).await;
    let api = Api::as_user(&sim);
    let (ws, queued) = api.ids("A", "Queued DF");
    let run = api
        .fabric(
            Method::POST,
            &format!("/workspaces/{ws}/items/{queued}/jobs/Execute/instances"),
            None,
        )
        .await;
    let location = run.header("location").unwrap().to_string();
    assert_eq!(api.fabric_url(&location).await.body["status"], "NotStarted");
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(api.fabric_url(&location).await.body["status"], "InProgress");
    let cancel = answer(
        api.client
            .post(format!("{location}/cancel"))
            .bearer_auth(&api.fabric)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(cancel.status, 202);
    assert_eq!(cancel.header("location"), Some(location.as_str()));
    assert!(cancel.header("retry-after").is_some());
    let cancelled = api.fabric_url(&location).await;
    assert_eq!(cancelled.body["status"], "Cancelled");
    let again = answer(
        api.client
            .post(format!("{location}/cancel"))
            .bearer_auth(&api.fabric)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(again.status, 400);
    assert_eq!(again.body["errorCode"], "JobAlreadyCompleted");
    let (wsb, fails) = api.ids("B", "Fails");
    let run = api
        .fabric(
            Method::POST,
            &format!("/workspaces/{wsb}/items/{fails}/jobs/instances?jobType=Execute"),
            None,
        )
        .await;
    tokio::time::advance(Duration::from_secs(181)).await;
    let failed = api.fabric_url(run.header("location").unwrap()).await;
    assert_eq!(failed.body["status"], "Failed");
    assert!(failed.body["failureReason"]["errorCode"].is_string());
    assert!(failed.body["failureReason"]["message"].is_string());
}

/// Pipelines, notebooks, Spark job definitions and copy jobs: each runs its own job types,
/// its `executionData` is checked against the shape its job documents, and only the
/// notebook's `Execute` run takes top-level `parameters`.
#[tokio::test]
async fn item_jobs_take_their_job_types_and_bodies() {
    const ITEMS: &str = r#"
workspaces:
  W:
    items:
      Load: { type: DataPipeline, duration: 1m }
      Transform: { type: Notebook, duration: 1m }
      Batch: { type: SparkJobDefinition, duration: 1m }
      Copy: { type: CopyJob, duration: 1m }
"#;
    let sim = start(ITEMS).await;
    let api = Api::new(&sim).await;
    let (ws, _) = api.ids("W", "");
    let run = |item: &'static str, job_type: &'static str, body: Option<serde_json::Value>| {
        let api = &api;
        let ws = ws.clone();
        async move {
            let (_, id) = api.ids("W", item);
            api.fabric(
                Method::POST,
                &format!("/workspaces/{ws}/items/{id}/jobs/instances?jobType={job_type}"),
                body,
            )
            .await
        }
    };
    // Typed lists.
    for (collection, name) in [("sparkJobDefinitions", "Batch"), ("copyJobs", "Copy")] {
        let list = api
            .fabric(Method::GET, &format!("/workspaces/{ws}/{collection}"), None)
            .await;
        assert_eq!(list.body["value"][0]["displayName"], name, "{collection}");
    }
    // Each item type's job types, and the service's refusal of another one.
    for (item, ok, wrong) in [
        ("Load", "Pipeline", "RunNotebook"),
        ("Transform", "RunNotebook", "Pipeline"),
        ("Batch", "sparkjob", "CopyJob"),
        ("Copy", "CopyJob", "sparkjob"),
    ] {
        let answer = run(item, wrong, None).await;
        assert_eq!(answer.status, 400, "{item} {wrong}");
        assert_eq!(answer.body["errorCode"], "InvalidJobType", "{item} {wrong}");
        let answer = run(item, ok, None).await;
        assert_eq!(answer.status, 202, "{item} {ok}");
        assert!(answer.headers.contains_key("location"), "{item}");
        assert!(answer.headers.contains_key("retry-after"), "{item}");
    }
    // Bodies: what each job documents is taken, anything else is refused.
    let good = [
        (
            "Load",
            "Pipeline",
            json!({"executionData": {"parameters": {"region": "EU"}}}),
        ),
        (
            "Transform",
            "RunNotebook",
            json!({"executionData": {"parameters": {"p": {"value": 1, "type": "int"}}, "configuration": {"useStarterPool": true}}}),
        ),
        (
            "Transform",
            "Execute",
            json!({"executionData": {"compute": "Spark"}, "parameters": [{"name": "p", "type": "Integer", "value": 1}]}),
        ),
        (
            "Batch",
            "sparkjob",
            json!({"executionData": {"commandLineArguments": "--full", "mainClass": "Main"}}),
        ),
    ];
    for (item, job_type, body) in good {
        // One at a time: a second run of the same job type while one runs is deduped, not
        // refused.
        let answer = run(item, job_type, Some(body.clone())).await;
        assert_eq!(
            answer.status, 202,
            "{item} {job_type} {body}: {:?}",
            answer.body
        );
    }
    let bad = [
        (
            "Load",
            "Pipeline",
            json!({"executionData": {"params": {"region": "EU"}}}),
            "InvalidInput",
        ),
        (
            "Transform",
            "RunNotebook",
            json!({"executionData": {"parameters": {"p": {"value": 1, "type": "integer"}}}}),
            "InvalidInput",
        ),
        (
            "Transform",
            "RunNotebook",
            json!({"parameters": [{"name": "p", "type": "Integer", "value": 1}]}),
            "FeatureNotAvailable",
        ),
        (
            "Batch",
            "sparkjob",
            json!({"executionData": {"arguments": "--full"}}),
            "InvalidInput",
        ),
        (
            "Load",
            "Pipeline",
            json!({"parameters": [{"name": "p", "type": "Text", "value": "x"}]}),
            "FeatureNotAvailable",
        ),
    ];
    for (item, job_type, body, code) in bad {
        let answer = run(item, job_type, Some(body.clone())).await;
        assert_eq!(answer.status, 400, "{item} {job_type} {body}");
        assert_eq!(answer.body["errorCode"], code, "{item} {job_type} {body}");
    }
}

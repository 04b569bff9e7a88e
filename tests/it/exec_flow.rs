//! The sas_flow and webhook executors end to end against the simulator.

use indexmap::IndexMap;
use pbibatch::event::StepStatus;
use pbibatch::executor::{AttemptOutcome, RunView};
use pbibatch::job::model::{HeaderValue, SasFlowStep, StepKind, WaitFor, WebhookStep};
use pbibatch::secret::Secret;
use serde_json::json;

use crate::exec_support::{AttemptOptions, requests_to, rig, run_step, run_step_with, step};

fn flow(url: String, wait_for: Option<WaitFor>) -> StepKind {
    StepKind::SasFlow(SasFlowStep {
        url: Secret::new(url),
        method: "POST".into(),
        headers: IndexMap::new(),
        body: Some(json!({"dataflow": "Master Order List"})),
        expect_status: vec![],
        wait_for,
        oauth: false,
    })
}

fn hook(url: String, body: Option<serde_json::Value>) -> StepKind {
    let mut headers = IndexMap::new();
    headers.insert(
        "X-Api-Key".to_string(),
        HeaderValue::Secret(Secret::new("hook-key-123")),
    );
    StepKind::Webhook(WebhookStep {
        url: Secret::new(url),
        method: "POST".into(),
        headers,
        body,
        expect_status: vec![],
        format: pbibatch::job::model::WebhookFormat::Plain,
        link: None,
    })
}

#[tokio::test]
async fn sas_flow_posts_json_and_accepts_2xx() {
    let rig = rig("flows:\n  order_list: {}\n").await;
    let url = rig.sim.flow_url("order_list");
    let ran = run_step(&rig, step("flow", flow(url, None))).await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    let posts = requests_to(&rig.sim, "POST", "/triggers/manual/paths/invoke");
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].json(),
        Some(json!({"dataflow": "Master Order List"}))
    );
    assert!(posts[0].header("authorization").is_none());
}

#[tokio::test]
async fn sas_flow_failure_never_shows_the_signature() {
    let rig = rig("flows:\n  order_list: {statuses: [404], sig: TOPSECRETSIG}\n").await;
    let url = rig.sim.flow_url("order_list");
    assert!(url.contains("TOPSECRETSIG"));
    let ran = run_step(&rig, step("flow", flow(url, None))).await;
    let err = ran.error();
    assert!(err.contains("404"), "{err}");
    // On loopback (not a Power Automate host) the trigger shows its origin only.
    assert!(
        err.contains(&format!("POST {}/*** answered 404", rig.sim.base_url())),
        "{err}"
    );
    assert!(!err.contains("TOPSECRETSIG"), "{err}");
    for u in &ran.updates {
        assert!(!format!("{u:?}").contains("TOPSECRETSIG"));
    }
}

#[tokio::test]
async fn sas_flow_wait_for_follows_the_transaction_the_flow_started() {
    let rig = rig(
        "workspaces:\n  Data Admin:\n    dataflows:\n      Master Order List: {duration: 600ms}\nflows:\n  order_list:\n    delay: 300ms\n    starts_dataflow: {workspace: Data Admin, dataflow: Master Order List}\n",
    )
    .await;
    let url = rig.sim.flow_url("order_list");
    let wait_for = WaitFor {
        workspace: "Data Admin".into(),
        dataflow: "Master Order List".into(),
    };
    let ran = run_step(&rig, step("flow", flow(url, Some(wait_for)))).await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    // The transactions were read before the trigger and polled after it.
    let reqs = rig.sim.requests();
    let trigger = reqs
        .iter()
        .position(|r| r.path.contains("/triggers/"))
        .unwrap();
    assert!(
        reqs[..trigger]
            .iter()
            .any(|r| r.path.ends_with("/transactions"))
    );
    assert!(
        reqs[trigger..]
            .iter()
            .filter(|r| r.path.ends_with("/transactions"))
            .count()
            >= 2
    );
    assert!(ran.remote_id().is_some());
}

#[tokio::test]
async fn sas_flow_wait_for_fails_with_the_dataflow() {
    let rig = rig(
        "workspaces:\n  WS:\n    dataflows:\n      DF: {duration: 200ms, outcomes: [fail]}\nflows:\n  f:\n    starts_dataflow: {workspace: WS, dataflow: DF}\n",
    )
    .await;
    let url = rig.sim.flow_url("f");
    let wait_for = WaitFor {
        workspace: "WS".into(),
        dataflow: "DF".into(),
    };
    let ran = run_step(&rig, step("flow", flow(url, Some(wait_for)))).await;
    assert!(
        ran.error().contains("dataflow refresh Failed"),
        "{}",
        ran.error()
    );
}

#[tokio::test]
async fn webhook_default_body_is_a_text_summary() {
    let rig = rig("hooks:\n  teams: {}\n").await;
    let url = rig.sim.hook_url("teams");
    let ran = run_step(&rig, step("tell", hook(url, None))).await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    let posts = requests_to(&rig.sim, "POST", "/hooks/teams");
    assert_eq!(
        posts[0].json(),
        Some(json!({"text": "exec_test: 1 succeeded"}))
    );
    assert_eq!(posts[0].header("x-api-key"), Some("hook-key-123"));
}

#[tokio::test]
async fn webhook_body_placeholders_are_filled_from_the_run() {
    let rig = rig("hooks:\n  slack: {}\n").await;
    let url = rig.sim.hook_url("slack");
    let body =
        json!({"text": "${run.job} ${run.status}: ${steps.model.status}", "run": "${run.id}"});
    let view = RunView {
        run_id: "r-42".into(),
        job: "order_list".into(),
        status: "failed".into(),
        summary: "x".into(),
        steps: vec![("model".into(), StepStatus::Failed)],
        started_at: String::new(),
        ..RunView::default()
    };
    let ran = run_step_with(
        &rig,
        step("tell", hook(url, Some(body))),
        AttemptOptions {
            run_view: Some(view),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    assert_eq!(
        requests_to(&rig.sim, "POST", "/hooks/slack")[0].json(),
        Some(json!({"text": "order_list failed: failed", "run": "r-42"}))
    );
}

#[tokio::test]
async fn webhook_error_status_fails_without_leaking_the_key() {
    let rig = rig("hooks:\n  teams: {statuses: [400]}\n").await;
    let url = rig.sim.hook_url("teams");
    let ran = run_step(&rig, step("tell", hook(url, None))).await;
    let err = ran.error();
    assert!(err.contains("400"), "{err}");
    assert!(!err.contains("hook-key-123"));
}

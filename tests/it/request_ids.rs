//! The service's request id (Power BI's `RequestId` header, Fabric's `requestId`) is in every
//! error about a service answer, in the JSON report (text and `request_id`) and in JUnit, and
//! the simulator sends it as the real services do.

use pbibatch::powerbi::Api;
use pbibatch::powerbi::errors::ClientError;
use pbibatch::powerbi::http::RetryMode;
use reqwest::Method;

use crate::common::{pbibatch, texts};
use crate::exec_support::rig;

fn is_guid(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok()
}

#[tokio::test]
async fn request_ids_are_in_power_bi_and_fabric_errors() {
    let rig = rig("workspaces:\n  Sales:\n    datasets:\n      Orders: {}\n").await;
    let missing = uuid::Uuid::new_v4().to_string();
    for (api, segments) in [
        (Api::PowerBi, vec!["groups", missing.as_str(), "datasets"]),
        (Api::Fabric, vec!["workspaces", missing.as_str(), "items"]),
    ] {
        let url = rig.client.url("default", api, &segments, &[]).unwrap();
        let err = rig
            .client
            .call(
                "default",
                api,
                Method::GET,
                url,
                pbibatch::powerbi::http::Body::Empty,
                RetryMode::Idempotent,
            )
            .await
            .unwrap_err();
        let ClientError::Api { request_id, .. } = &err else {
            panic!("{api:?}: {err:?}");
        };
        let id = request_id
            .clone()
            .unwrap_or_else(|| panic!("{api:?}: {err}"));
        assert!(is_guid(&id), "{id}");
        assert!(
            err.to_string().ends_with(&format!(" (RequestId: {id})")),
            "{err}"
        );
    }
}

#[tokio::test]
async fn the_simulator_sends_request_ids_like_the_services() {
    let rig = rig("workspaces:\n  Sales:\n    datasets:\n      Orders: {}\n").await;
    let http = crate::sim_support::client();
    let base = rig.sim.base_url();
    // Power BI: a `RequestId` header on every answer, the guard's 401 included.
    for path in ["/v1.0/myorg/groups", "/v1.0/myorg/groups/x/datasets"] {
        let resp = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let id = resp.headers().get("requestid").expect("RequestId header");
        assert!(is_guid(id.to_str().unwrap()), "{id:?}");
    }
    // Fabric: `requestId` in every ErrorResponse.
    let resp = http
        .get(format!("{base}/v1/workspaces"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(is_guid(body["requestId"].as_str().unwrap()), "{body}");
}

const JOB: &str = "
version: 1
name: request_ids
defaults: { retries: 0 }
steps:
  model:
    type: dataset
    workspace: Pro
    dataset: Orders
    refresh: { type: full }
";

/// Enhanced refresh is refused in a shared-capacity (Pro) workspace.
const PROFILE: &str = "
workspaces:
  Pro:
    shared_capacity: true
    datasets:
      Orders: {}
";

#[test]
fn request_ids_reach_the_report_junit_and_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.yaml"), JOB).unwrap();
    std::fs::write(dir.path().join("profile.yaml"), PROFILE).unwrap();
    let out = pbibatch(dir.path())
        .args([
            "run",
            "job.yaml",
            "--simulate",
            "--sim-profile",
            "profile.yaml",
            "--report",
            "r.json",
            "--junit",
            "j.xml",
            "--summary",
            "s.md",
            "--progress",
            "never",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    let attempt = &report["steps"][0]["attempts"][0];
    let id = attempt["request_id"].as_str().expect("request_id");
    assert!(is_guid(id), "{attempt}");
    let named = format!("(RequestId: {id})");
    assert!(
        attempt["error"].as_str().unwrap().contains(&named),
        "{attempt}"
    );
    assert!(
        report["steps"][0]["error"]
            .as_str()
            .unwrap()
            .contains(&named)
    );
    let junit = std::fs::read_to_string(dir.path().join("j.xml")).unwrap();
    assert!(junit.contains(&named), "{junit}");
    let summary = std::fs::read_to_string(dir.path().join("s.md")).unwrap();
    assert!(summary.contains(id), "{summary}");
    assert!(stderr.contains(&named), "{stderr}");
    // `show --format json` gives the same attempt back from the store.
    let out = pbibatch(dir.path())
        .args(["show", "last", "--format", "json"])
        .output()
        .unwrap();
    let shown: serde_json::Value = serde_json::from_str(&texts(&out).0).unwrap();
    assert_eq!(shown["steps"][0]["attempts"][0]["request_id"], id);
}

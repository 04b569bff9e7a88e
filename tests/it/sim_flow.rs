//! Simulator: SAS-triggered flows, webhook sink and introspection.

use std::time::Duration;

use pbibatch::sim::{Profile, Provision, WorkspaceWants};
use reqwest::Method;
use serde_json::{Value, json};

use crate::sim_support::{Api, answer, client, start, start_profile};

const ESTATE: &str = r#"
defaults: { duration: 5m }
workspaces:
  Data Admin:
    dataflows:
      Master Order List: {}
flows:
  order_list:
    starts_dataflow: { workspace: Data Admin, dataflow: Master Order List }
    delay: 30s
  flaky:
    statuses: [500, 202]
hooks:
  teams: {}
  broken: { statuses: [503] }
"#;

#[tokio::test(start_paused = true)]
async fn sas_flow_starts_its_dataflow_after_the_delay() {
    let sim = start(ESTATE).await;
    let api = Api::new(&sim).await;
    let url = sim.flow_url("order_list");
    assert!(
        url.contains("/triggers/manual/paths/invoke?api-version=") && url.contains("&sv=1.0&sig="),
        "{url}"
    );
    let a = answer(
        client()
            .post(&url)
            .json(&json!({"dataflow": "Master Order List"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 202);
    assert!(a.bytes.is_empty());
    let run_id = a.header("x-ms-workflow-run-id").unwrap();
    assert!(
        run_id.starts_with("0858") && run_id.contains("CU"),
        "{run_id}"
    );
    let (ws, df) = api.ids("Data Admin", "Master Order List");
    let tx_path = format!("/groups/{ws}/dataflows/{df}/transactions");
    assert_eq!(
        api.pbi(Method::GET, &tx_path, None).await.body["value"],
        json!([])
    );
    tokio::time::advance(Duration::from_secs(31)).await;
    let tx = api.pbi(Method::GET, &tx_path, None).await;
    assert_eq!(tx.body["value"][0]["status"], "InProgress");
    tokio::time::advance(Duration::from_secs(300)).await;
    let tx = api.pbi(Method::GET, &tx_path, None).await;
    assert_eq!(tx.body["value"][0]["status"], "Success");
    assert_eq!(sim.counters().resource("flow:order_list").triggers, 1);
    assert_eq!(
        sim.counters()
            .resource("dataflow:Data Admin/Master Order List")
            .triggers,
        1
    );
}

#[tokio::test]
async fn sas_flow_refuses_bad_signatures_and_bearer_tokens() {
    let sim = start(ESTATE).await;
    let url = sim.flow_url("order_list");
    let (base, _) = url.split_once("&sig=").unwrap();
    for bad in [format!("{base}&sig=forged"), base.to_string()] {
        let a = answer(client().post(&bad).send().await.unwrap()).await;
        assert_eq!(a.status, 401);
        assert_eq!(a.body["error"]["code"], "DirectApiAuthorizationRequired");
        assert_eq!(
            a.body["error"]["message"],
            "The request must be authenticated only by Shared Access scheme."
        );
    }
    let with_bearer = answer(client().post(&url).bearer_auth("x").send().await.unwrap()).await;
    assert_eq!(with_bearer.status, 401);
    let unknown = answer(
        client()
            .post(format!("{}/workflows/nope/triggers/manual/paths/invoke?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=x", sim.base_url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(sim.flow_url("no-such-flow"), "");
}

#[tokio::test]
async fn flow_status_sequence_and_hooks() {
    let sim = start(ESTATE).await;
    let flaky = sim.flow_url("flaky");
    assert_eq!(client().post(&flaky).send().await.unwrap().status(), 500);
    assert_eq!(client().post(&flaky).send().await.unwrap().status(), 202);
    assert_eq!(client().post(&flaky).send().await.unwrap().status(), 202);
    let teams = sim.hook_url("teams");
    assert_eq!(teams, format!("{}/hooks/teams", sim.base_url()));
    let a = answer(
        client()
            .post(&teams)
            .json(&json!({"text": "run ok"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((a.status, a.bytes.as_slice()), (200, &b"1"[..]));
    assert_eq!(
        client()
            .post(sim.hook_url("broken"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    assert_eq!(
        client()
            .post(sim.hook_url("nobody"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let recorded: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path == "/hooks/teams")
        .collect();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].method, "POST");
    assert_eq!(recorded[0].json(), Some(json!({"text": "run ok"})));
    assert_eq!(recorded[0].header("content-type"), Some("application/json"));
    assert_eq!(sim.counters().resource("hook:teams").triggers, 1);
    assert_eq!(sim.counters().resource("flow:flaky").triggers, 3);
}

#[tokio::test]
async fn introspection_endpoints_mirror_the_server_methods() {
    let sim = start(ESTATE).await;
    let api = Api::new(&sim).await;
    api.pbi(Method::GET, "/groups?$top=1", None).await;
    let requests: Value = client()
        .get(format!("{}/_sim/requests", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = requests.as_array().unwrap();
    assert_eq!(list.len(), sim.requests().len());
    let token_call = &list[0];
    assert_eq!(token_call["method"], "POST");
    // Secrets as sent: this is a test tool.
    assert!(
        token_call["body"]
            .as_str()
            .unwrap()
            .contains("client_secret=")
    );
    let groups = list
        .iter()
        .find(|r| r["path"] == "/v1.0/myorg/groups")
        .unwrap();
    assert_eq!(groups["query"], "$top=1");
    assert!(
        groups["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h[0] == "authorization")
    );
    let counters: Value = client()
        .get(format!("{}/_sim/counters", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters["tokens_issued"], 2);
    assert_eq!(counters["requests"], 3);
    assert_eq!(serde_json::to_value(sim.counters()).unwrap()["requests"], 3);
}

#[tokio::test(start_paused = true)]
async fn provisioned_estate_runs_any_job_with_defaults() {
    let mut profile = Profile::default();
    profile.provision(&Provision {
        workspaces: vec![WorkspaceWants {
            name: "Sales".into(),
            datasets: vec!["Model".into()],
            dataflows: vec!["DF".into()],
            fabric_dataflows: vec!["G2".into()],
            reports: vec!["Book".into()],
            items: vec![("Load".into(), "DataPipeline".into())],
            report_hints: Vec::new(),
        }],
        flows: vec!["f".into()],
        hooks: vec!["h".into()],
        capacities: Vec::new(),
    });
    profile.wire_flow("f", "Sales", "DF");
    let sim = start_profile(profile).await;
    let api = Api::new(&sim).await;
    let (ws, ds) = api.ids("Sales", "Model");
    let path = format!("/groups/{ws}/datasets/{ds}/refreshes");
    assert_eq!(
        api.pbi(Method::POST, &path, Some(json!({"type": "Full"})))
            .await
            .status,
        202
    );
    // Built-in durations are 200-800 ms.
    tokio::time::advance(Duration::from_millis(800)).await;
    assert_eq!(
        api.pbi(Method::GET, &path, None).await.body["value"][0]["status"],
        "Completed"
    );
    assert_eq!(
        client()
            .post(sim.flow_url("f"))
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
    let (_, df) = api.ids("Sales", "DF");
    let tx = api
        .pbi(
            Method::GET,
            &format!("/groups/{ws}/dataflows/{df}/transactions"),
            None,
        )
        .await;
    assert_eq!(tx.body["value"].as_array().unwrap().len(), 1);
    assert_eq!(
        client()
            .post(sim.hook_url("h"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // The report got the dataset as its model.
    let (_, report) = api.ids("Sales", "Book");
    let r = api
        .pbi(Method::GET, &format!("/groups/{ws}/reports/{report}"), None)
        .await;
    assert_eq!(r.body["datasetId"], ds.as_str());
}

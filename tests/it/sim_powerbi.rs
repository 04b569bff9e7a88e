//! Simulator: Power BI discovery and semantic model refresh over loopback.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::sim_support::{Api, start};

const ESTATE: &str = r#"
defaults:
  duration: 10m
workspaces:
  Data Admin:
    datasets:
      ORDER_LIST: { tables: [Orders, Lines], upstream_dataflows: [Master Order List] }
      Quick: { duration: 0s }
      Broken: { duration: 1m, outcomes: [{fail: {code: ModelRefreshFailed_CredentialsNotSpecified, message: bad creds}}, succeed] }
    dataflows:
      Master Order List: {}
      Downstream: { upstream_dataflows: [Master Order List] }
    reports:
      Order Book: { dataset: ORDER_LIST }
      Invoice: { paginated: true }
  "O'Brien Team": {}
  Marketing EU: {}
"#;

#[tokio::test]
async fn every_power_bi_answer_carries_the_service_headers() {
    let sim = start(ESTATE).await;
    let api = Api::new(&sim).await;
    for path in [
        "/groups",
        "/groups/00000000-0000-0000-0000-000000000000/datasets",
        "/nothing/here",
    ] {
        let a = api.pbi(Method::GET, path, None).await;
        assert!(a.header("requestid").is_some(), "{path}");
        assert_eq!(a.header("request-redirected"), Some("true"), "{path}");
        assert!(
            a.header("home-cluster-uri")
                .unwrap()
                .starts_with("https://wabi-"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn groups_filter_top_and_skip() {
    let sim = start(ESTATE).await;
    let api = Api::new(&sim).await;
    let all = api.pbi(Method::GET, "/groups", None).await;
    assert_eq!(all.status, 200);
    assert!(all.body["@odata.context"].is_string());
    assert_eq!(all.body["value"].as_array().unwrap().len(), 3);
    let one = api
        .pbi(
            Method::GET,
            "/groups?$filter=name%20eq%20'Data%20Admin'",
            None,
        )
        .await;
    let value = one.body["value"].as_array().unwrap();
    assert_eq!(value.len(), 1);
    assert_eq!(value[0]["name"], "Data Admin");
    assert_eq!(value[0]["isOnDedicatedCapacity"], true);
    let quoted = api
        .pbi(
            Method::GET,
            "/groups?$filter=name%20eq%20'O''Brien%20Team'",
            None,
        )
        .await;
    assert_eq!(quoted.body["value"][0]["name"], "O'Brien Team");
    let either = api
        .pbi(
            Method::GET,
            "/groups?$filter=contains(name,'marketing')%20or%20name%20eq%20'Data%20Admin'",
            None,
        )
        .await;
    assert_eq!(either.body["value"].as_array().unwrap().len(), 2);
    let paged = api.pbi(Method::GET, "/groups?$top=1&$skip=1", None).await;
    assert_eq!(paged.body["value"].as_array().unwrap().len(), 1);
    assert_eq!(paged.body["value"][0]["name"], "O'Brien Team");
    let bad = api
        .pbi(Method::GET, "/groups?$filter=name%20ne%20'x'", None)
        .await;
    assert_eq!(bad.status, 400);
    let bad_top = api.pbi(Method::GET, "/groups?$top=many", None).await;
    assert_eq!(bad_top.status, 400);
}

#[tokio::test]
async fn datasets_reports_dataflows_and_lineage() {
    let sim = start(ESTATE).await;
    let api = Api::new(&sim).await;
    let (ws, ds) = api.ids("Data Admin", "ORDER_LIST");
    let (_, df) = api.ids("Data Admin", "Master Order List");
    let datasets = api
        .pbi(Method::GET, &format!("/groups/{ws}/datasets"), None)
        .await;
    let list = datasets.body["value"].as_array().unwrap();
    assert!(
        list.iter()
            .any(|d| d["name"] == "ORDER_LIST" && d["id"] == ds.as_str())
    );
    assert_eq!(list[0]["isRefreshable"], true);
    let one = api
        .pbi(Method::GET, &format!("/groups/{ws}/datasets/{ds}"), None)
        .await;
    assert_eq!(
        one.body["upstreamDataflows"][0]["targetDataflowId"],
        df.as_str()
    );
    let reports = api
        .pbi(Method::GET, &format!("/groups/{ws}/reports"), None)
        .await;
    let reports = reports.body["value"].as_array().unwrap().clone();
    let book = reports.iter().find(|r| r["name"] == "Order Book").unwrap();
    assert_eq!(book["datasetId"], ds.as_str());
    assert_eq!(book["reportType"], "PowerBIReport");
    let invoice = reports.iter().find(|r| r["name"] == "Invoice").unwrap();
    assert_eq!(invoice["reportType"], "PaginatedReport");
    assert!(invoice.get("datasetId").is_none());
    let dataflows = api
        .pbi(Method::GET, &format!("/groups/{ws}/dataflows"), None)
        .await;
    let first = &dataflows.body["value"][0];
    assert_eq!(first["objectId"], df.as_str());
    assert!(first.get("id").is_none());
    let links = api
        .pbi(
            Method::GET,
            &format!("/groups/{ws}/datasets/upstreamDataflows"),
            None,
        )
        .await;
    assert_eq!(
        links.body["value"][0],
        json!({"datasetObjectId": ds, "dataflowObjectId": df, "workspaceObjectId": ws})
    );
    let (_, down) = api.ids("Data Admin", "Downstream");
    let up = api
        .pbi(
            Method::GET,
            &format!("/groups/{ws}/dataflows/{down}/upstreamDataflows"),
            None,
        )
        .await;
    assert_eq!(
        up.body["value"][0],
        json!({"targetDataflowId": df, "groupId": ws})
    );
    let missing = api
        .pbi(
            Method::GET,
            &format!("/groups/{ws}/datasets/{}", uuid::Uuid::nil()),
            None,
        )
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"]["code"], "PowerBIEntityNotFound");
}

#[tokio::test(start_paused = true)]
async fn standard_refresh_is_202_without_id_and_found_in_history() {
    let sim = start(ESTATE).await;
    let api = Api::new(&sim).await;
    let (ws, ds) = api.ids("Data Admin", "ORDER_LIST");
    let path = format!("/groups/{ws}/datasets/{ds}/refreshes");
    let a = api
        .pbi(
            Method::POST,
            &path,
            Some(json!({"notifyOption": "NoNotification"})),
        )
        .await;
    assert_eq!(a.status, 202);
    assert!(a.bytes.is_empty());
    assert!(a.header("requestid").is_some());
    assert!(a.header("location").is_none());
    assert!(a.header("x-ms-request-id").is_none());
    let history = api.pbi(Method::GET, &format!("{path}?$top=5"), None).await;
    assert_eq!(history.status, 200);
    let entry = &history.body["value"][0];
    assert_eq!(entry["refreshType"], "ViaApi");
    assert_eq!(entry["status"], "Unknown");
    assert!(entry.get("endTime").is_none());
    assert!(entry["id"].is_i64());
    assert!(uuid::Uuid::parse_str(entry["requestId"].as_str().unwrap()).is_ok());
    assert_ne!(entry["requestId"].as_str(), a.header("requestid"));
    // One at a time.
    let again = api.pbi(Method::POST, &path, None).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.body["error"]["code"], "InvalidRequest");
    // Standard refreshes have no execution details and cannot be cancelled.
    let id = entry["requestId"].as_str().unwrap();
    assert_eq!(
        api.pbi(Method::GET, &format!("{path}/{id}"), None)
            .await
            .status,
        404
    );
    assert_eq!(
        api.pbi(Method::DELETE, &format!("{path}/{id}"), None)
            .await
            .status,
        400
    );
    tokio::time::advance(Duration::from_secs(600)).await;
    let done = api.pbi(Method::GET, &path, None).await;
    assert_eq!(done.body["value"][0]["status"], "Completed");
    assert!(done.body["value"][0]["endTime"].is_string());
    // A second refresh is listed first (newest first).
    assert_eq!(
        api.pbi(Method::POST, &path, Some(json!({}))).await.status,
        202
    );
    let both = api.pbi(Method::GET, &path, None).await;
    let value = both.body["value"].as_array().unwrap();
    assert_eq!(value.len(), 2);
    assert_eq!(value[0]["status"], "Unknown");
    assert_eq!(value[1]["status"], "Completed");
    let top1 = api.pbi(Method::GET, &format!("{path}?$top=1"), None).await;
    assert_eq!(top1.body["value"].as_array().unwrap().len(), 1);
    let c = sim.counters().resource("dataset:Data Admin/ORDER_LIST");
    assert_eq!((c.triggers, c.cancels), (2, 1));
    assert!(c.polls >= 4);
}

#[tokio::test(start_paused = true)]
async fn enhanced_refresh_details_and_cancel() {
    let sim = start(ESTATE).await;
    let api = Api::new(&sim).await;
    let (ws, ds) = api.ids("Data Admin", "ORDER_LIST");
    let path = format!("/groups/{ws}/datasets/{ds}/refreshes");
    let a = api
        .pbi(
            Method::POST,
            &path,
            Some(json!({"type": "full", "commitMode": "transactional", "maxParallelism": 4, "timeout": "01:00:00"})),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert!(a.bytes.is_empty());
    let id = a.header("x-ms-request-id").unwrap().to_string();
    let location = a.header("location").unwrap();
    assert_eq!(
        location,
        format!("{}/v1.0/myorg{path}/{id}", sim.base_url())
    );
    let details = api.pbi(Method::GET, &format!("{path}/{id}"), None).await;
    assert_eq!(details.status, 202);
    assert_eq!(details.body["status"], "Unknown");
    assert_eq!(details.body["extendedStatus"], "InProgress");
    assert_eq!(details.body["type"], "Full");
    assert_eq!(details.body["commitMode"], "Transactional");
    assert_eq!(details.body["objects"].as_array().unwrap().len(), 2);
    let history = api.pbi(Method::GET, &path, None).await;
    assert_eq!(history.body["value"][0]["refreshType"], "ViaEnhancedApi");
    assert_eq!(history.body["value"][0]["extendedStatus"], "InProgress");
    let cancel = api.pbi(Method::DELETE, &format!("{path}/{id}"), None).await;
    assert_eq!(cancel.status, 200);
    assert!(cancel.bytes.is_empty());
    let after = api.pbi(Method::GET, &format!("{path}/{id}"), None).await;
    assert_eq!(after.status, 200);
    assert_eq!(after.body["extendedStatus"], "Cancelled");
    let history = api.pbi(Method::GET, &path, None).await;
    assert_eq!(history.body["value"][0]["status"], "Cancelled");
    assert!(history.body["value"][0]["endTime"].is_string());
    // Cancelling a finished refresh is refused.
    assert_eq!(
        api.pbi(Method::DELETE, &format!("{path}/{id}"), None)
            .await
            .status,
        400
    );
    // Objects in the request are echoed.
    let b = api
        .pbi(
            Method::POST,
            &path,
            Some(
                json!({"type": "DataOnly", "objects": [{"table": "Orders", "partition": "2024"}]}),
            ),
        )
        .await;
    let id2 = b.header("x-ms-request-id").unwrap().to_string();
    tokio::time::advance(Duration::from_secs(600)).await;
    let done = api.pbi(Method::GET, &format!("{path}/{id2}"), None).await;
    assert_eq!(done.status, 200);
    assert_eq!(done.body["status"], "Completed");
    assert_eq!(
        done.body["objects"],
        json!([{"table": "Orders", "partition": "2024", "status": "Completed"}])
    );
}

#[tokio::test]
async fn refresh_bodies_are_checked() {
    let sim = start(ESTATE).await;
    let api = Api::new(&sim).await;
    let (ws, ds) = api.ids("Data Admin", "Quick");
    let path = format!("/groups/{ws}/datasets/{ds}/refreshes");
    for body in [
        json!({"notifyOption": "NoNotification", "type": "Full"}),
        json!({"notifyOption": "Sometimes"}),
        json!({"type": "Add"}),
        json!({"commit_mode": "Transactional"}),
        json!({"timeout": "24:00:00"}),
        json!({"objects": [{"partition": "x"}]}),
        json!({"commitMode": "PartialBatch", "applyRefreshPolicy": true}),
    ] {
        let a = api.pbi(Method::POST, &path, Some(body.clone())).await;
        assert_eq!(a.status, 400, "{body}");
        assert_eq!(a.body["error"]["code"], "InvalidRequest", "{body}");
    }
    assert_eq!(
        api.pbi_raw(Method::POST, &path, "{not json").await.status,
        400
    );
    // Zero duration: done at once, so back-to-back refreshes are accepted.
    for _ in 0..3 {
        assert_eq!(api.pbi(Method::POST, &path, None).await.status, 202);
    }
    let history = api.pbi(Method::GET, &path, None).await;
    assert!(
        history.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["status"] == "Completed")
    );
}

#[tokio::test(start_paused = true)]
async fn outcome_sequences_fail_then_succeed() {
    let sim = start(ESTATE).await;
    let api = Api::new(&sim).await;
    let (ws, ds) = api.ids("Data Admin", "Broken");
    let path = format!("/groups/{ws}/datasets/{ds}/refreshes");
    let a = api
        .pbi(Method::POST, &path, Some(json!({"type": "Full"})))
        .await;
    let id = a.header("x-ms-request-id").unwrap().to_string();
    tokio::time::advance(Duration::from_secs(61)).await;
    let details = api.pbi(Method::GET, &format!("{path}/{id}"), None).await;
    assert_eq!(details.body["status"], "Failed");
    assert_eq!(details.body["extendedStatus"], "Failed");
    assert_eq!(details.body["messages"][0]["type"], "Error");
    let history = api.pbi(Method::GET, &path, None).await;
    let exception = history.body["value"][0]["serviceExceptionJson"]
        .as_str()
        .unwrap();
    let inner: serde_json::Value = serde_json::from_str(exception).unwrap();
    assert_eq!(
        inner["errorCode"],
        "ModelRefreshFailed_CredentialsNotSpecified"
    );
    assert_eq!(api.pbi(Method::POST, &path, None).await.status, 202);
    tokio::time::advance(Duration::from_secs(61)).await;
    let history = api.pbi(Method::GET, &path, None).await;
    assert_eq!(history.body["value"][0]["status"], "Completed");
    // The last outcome repeats.
    assert_eq!(api.pbi(Method::POST, &path, None).await.status, 202);
    tokio::time::advance(Duration::from_secs(61)).await;
    let history = api.pbi(Method::GET, &path, None).await;
    assert_eq!(history.body["value"][0]["status"], "Completed");
}

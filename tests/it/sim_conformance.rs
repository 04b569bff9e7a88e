//! Simulator conformance: for each endpoint, the status is one the official OpenAPI file
//! lists and the JSON body validates against the spec's schema for it, after the documented
//! wire differences (spec_differences.rs).

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::sim_specs::{FABRIC, FABRIC_DATAFLOW, check_fabric, check_pbi};
use crate::sim_support::{Api, seg, start};
use crate::spec_differences;

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
            Some(json!({"notifyOption": "NoNotification"})),
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
    // Dataflow Gen2 runs for users only (sim_strict.rs has the service principal's answers).
    let api = Api::as_user(&sim);
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
    check_fabric(
        FABRIC,
        spec_differences::checked_path("/workspaces/{workspaceId}/items/{itemId}/jobs/instances"),
        "post",
        &dup,
    );
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

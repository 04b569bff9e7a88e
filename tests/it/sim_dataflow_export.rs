//! Simulator: Gen1 dataflow refresh and transactions, report export to file.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::sim_support::{Api, seg, start};

const ESTATE: &str = r#"
defaults:
  duration: 5m
workspaces:
  WS:
    dataflows:
      Sales DF: {}
      Flaky DF: { outcomes: [fail, succeed] }
    reports:
      Book: {}
      Slow Book: { duration: 2m }
      Busy Book: { duration: 1s, outcomes: [busy] }
      Bad Book: { duration: 1s, outcomes: [{fail: {code: ExportFailed, message: nope}}] }
      Paged: { paginated: true, duration: 0s }
    datasets:
      Book: {}
"#;

#[tokio::test(start_paused = true)]
async fn gen1_refresh_needs_notify_option_and_answers_200() {
    let sim = start(ESTATE).await;
    let api = Api::new(&sim).await;
    let (ws, df) = api.ids("WS", "Sales DF");
    let path = format!("/groups/{ws}/dataflows/{df}/refreshes");
    let empty = api.pbi(Method::POST, &path, None).await;
    assert_eq!(empty.status, 400);
    let completion = api
        .pbi(
            Method::POST,
            &path,
            Some(json!({"notifyOption": "MailOnCompletion"})),
        )
        .await;
    assert_eq!(completion.status, 400);
    let bad_type = api
        .pbi(
            Method::POST,
            &format!("{path}?processType=weird"),
            Some(json!({"notifyOption": "NoNotification"})),
        )
        .await;
    assert_eq!(bad_type.status, 400);
    let ok = api
        .pbi(
            Method::POST,
            &format!("{path}?processType=default"),
            Some(json!({"notifyOption": "NoNotification"})),
        )
        .await;
    assert_eq!(ok.status, 200);
    assert!(ok.bytes.is_empty());
    let busy = api
        .pbi(
            Method::POST,
            &path,
            Some(json!({"notifyOption": "MailOnFailure"})),
        )
        .await;
    assert_eq!(busy.status, 400);
    let tx = api
        .pbi(
            Method::GET,
            &format!("/groups/{ws}/dataflows/{df}/transactions"),
            None,
        )
        .await;
    assert_eq!(tx.status, 200);
    let entry = &tx.body["value"][0];
    let id = entry["id"].as_str().unwrap().to_string();
    assert!(
        id.contains('@') && id.contains('$') && id.contains(':'),
        "{id}"
    );
    assert_eq!(entry["status"], "InProgress");
    assert!(entry.get("endTime").is_none());
    tokio::time::advance(Duration::from_secs(300)).await;
    let tx = api
        .pbi(
            Method::GET,
            &format!("/groups/{ws}/dataflows/{df}/transactions?$top=1"),
            None,
        )
        .await;
    assert_eq!(tx.body["value"][0]["status"], "Success");
    assert!(tx.body["value"][0]["endTime"].is_string());
}

#[tokio::test(start_paused = true)]
async fn gen1_transactions_cancel_by_encoded_id_without_dataflow_segment() {
    let sim = start(ESTATE).await;
    let api = Api::new(&sim).await;
    let (ws, df) = api.ids("WS", "Sales DF");
    let body = Some(json!({"notifyOption": "NoNotification"}));
    assert_eq!(
        api.pbi(
            Method::POST,
            &format!("/groups/{ws}/dataflows/{df}/refreshes"),
            body
        )
        .await
        .status,
        200
    );
    let tx = api
        .pbi(
            Method::GET,
            &format!("/groups/{ws}/dataflows/{df}/transactions"),
            None,
        )
        .await;
    let id = tx.body["value"][0]["id"].as_str().unwrap().to_string();
    let cancel = api
        .pbi(
            Method::POST,
            &format!("/groups/{ws}/dataflows/transactions/{}/cancel", seg(&id)),
            None,
        )
        .await;
    assert_eq!(cancel.status, 200);
    assert_eq!(
        cancel.body,
        json!({"transactionId": id, "status": "SuccessfullyMarked"})
    );
    let again = api
        .pbi(
            Method::POST,
            &format!("/groups/{ws}/dataflows/transactions/{}/cancel", seg(&id)),
            None,
        )
        .await;
    assert_eq!(again.body["status"], "AlreadyConcluded");
    let unknown = api
        .pbi(
            Method::POST,
            &format!(
                "/groups/{ws}/dataflows/transactions/{}/cancel",
                seg("nope@x$1")
            ),
            None,
        )
        .await;
    assert_eq!(unknown.body["status"], "NotFound");
    let tx = api
        .pbi(
            Method::GET,
            &format!("/groups/{ws}/dataflows/{df}/transactions"),
            None,
        )
        .await;
    assert_eq!(tx.body["value"][0]["status"], "Cancelled");
    let c = sim.counters().resource("dataflow:WS/Sales DF");
    assert_eq!((c.triggers, c.cancels), (1, 2));
}

#[tokio::test(start_paused = true)]
async fn gen1_outcomes_fail_then_succeed() {
    let sim = start(ESTATE).await;
    let api = Api::new(&sim).await;
    let (ws, df) = api.ids("WS", "Flaky DF");
    let body = json!({"notifyOption": "NoNotification"});
    let tx_path = format!("/groups/{ws}/dataflows/{df}/transactions");
    api.pbi(
        Method::POST,
        &format!("/groups/{ws}/dataflows/{df}/refreshes"),
        Some(body.clone()),
    )
    .await;
    tokio::time::advance(Duration::from_secs(300)).await;
    assert_eq!(
        api.pbi(Method::GET, &tx_path, None).await.body["value"][0]["status"],
        "Failed"
    );
    api.pbi(
        Method::POST,
        &format!("/groups/{ws}/dataflows/{df}/refreshes"),
        Some(body),
    )
    .await;
    tokio::time::advance(Duration::from_secs(300)).await;
    let tx = api.pbi(Method::GET, &tx_path, None).await;
    assert_eq!(tx.body["value"][0]["status"], "Success");
    assert_eq!(tx.body["value"][1]["status"], "Failed");
}

#[tokio::test(start_paused = true)]
async fn export_runs_to_a_real_file() {
    let sim = start(ESTATE).await;
    let api = Api::new(&sim).await;
    let (ws, report) = api.ids("WS", "Slow Book");
    let start = api
        .pbi(
            Method::POST,
            &format!("/groups/{ws}/reports/{report}/ExportTo"),
            Some(json!({"format": "PDF"})),
        )
        .await;
    assert_eq!(start.status, 202, "{}", start.body);
    assert_eq!(start.body["reportId"], report.as_str());
    assert_eq!(start.body["resourceFileExtension"], ".pdf");
    let id = start.body["id"].as_str().unwrap().to_string();
    assert!(
        id.contains('/') || id.contains('+') || id.contains('='),
        "{id}"
    );
    let status_path = format!("/groups/{ws}/reports/{report}/exports/{}", seg(&id));
    let running = api.pbi(Method::GET, &status_path, None).await;
    assert_eq!(running.status, 202);
    assert_eq!(running.body["status"], "Running");
    assert!(
        running
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    tokio::time::advance(Duration::from_secs(120)).await;
    let done = api.pbi(Method::GET, &status_path, None).await;
    assert_eq!(done.status, 200);
    assert_eq!(done.body["status"], "Succeeded");
    assert_eq!(done.body["percentComplete"], 100);
    assert!(done.header("retry-after").is_none());
    let location = done.body["resourceLocation"].as_str().unwrap();
    let file = api
        .client
        .get(location)
        .bearer_auth(&api.pbi)
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    assert_eq!(file.headers()["content-type"], "application/pdf");
    let bytes = file.bytes().await.unwrap();
    assert!(bytes.starts_with(b"%PDF-") && bytes.ends_with(b"%%EOF\n"));
    assert_eq!(sim.counters().resource("report:WS/Slow Book").triggers, 1);
}

#[tokio::test(start_paused = true)]
async fn export_formats_and_failures() {
    let sim = start(ESTATE).await;
    let api = Api::new(&sim).await;
    let (ws, book) = api.ids("WS", "Book");
    // `Book` is both a dataset and a report; the report path picks the report.
    let (_, report) = {
        let reports = api
            .pbi(Method::GET, &format!("/groups/{ws}/reports"), None)
            .await;
        let r = reports.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "Book")
            .unwrap()
            .clone();
        assert_eq!(r["datasetId"], book.as_str());
        (ws.clone(), r["id"].as_str().unwrap().to_string())
    };
    for (format, magic, ct) in [
        ("PNG", &b"\x89PNG"[..], "image/png"),
        (
            "PPTX",
            &b"PK\x03\x04"[..],
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        ),
    ] {
        let s = api
            .pbi(
                Method::POST,
                &format!("/groups/{ws}/reports/{report}/ExportTo"),
                Some(json!({"format": format})),
            )
            .await;
        assert_eq!(s.status, 202);
        tokio::time::advance(Duration::from_secs(300)).await;
        let id = s.body["id"].as_str().unwrap();
        let file = api
            .pbi(
                Method::GET,
                &format!("/groups/{ws}/reports/{report}/exports/{}/file", seg(id)),
                None,
            )
            .await;
        assert_eq!(file.status, 200);
        assert!(file.bytes.starts_with(magic), "{format}");
        assert_eq!(file.header("content-type"), Some(ct));
    }
    let bad = api
        .pbi(
            Method::POST,
            &format!("/groups/{ws}/reports/{report}/ExportTo"),
            Some(json!({"format": "XLSX"})),
        )
        .await;
    assert_eq!(bad.status, 400);
    let missing = api
        .pbi(
            Method::POST,
            &format!("/groups/{ws}/reports/{report}/ExportTo"),
            Some(json!({})),
        )
        .await;
    assert_eq!(missing.status, 400);
    let (_, paged) = api.ids("WS", "Paged");
    let png = api
        .pbi(
            Method::POST,
            &format!("/groups/{ws}/reports/{paged}/ExportTo"),
            Some(json!({"format": "PNG"})),
        )
        .await;
    assert_eq!(png.status, 400);
    let xlsx = api
        .pbi(
            Method::POST,
            &format!("/groups/{ws}/reports/{paged}/ExportTo"),
            Some(json!({"format": "xlsx"})),
        )
        .await;
    assert_eq!(xlsx.status, 202);
    assert_eq!(xlsx.body["resourceFileExtension"], ".xlsx");
    // Failed with Retry-After (busy: resubmit) and without (permanent).
    for (name, retry) in [("Busy Book", true), ("Bad Book", false)] {
        let (_, r) = api.ids("WS", name);
        let s = api
            .pbi(
                Method::POST,
                &format!("/groups/{ws}/reports/{r}/ExportTo"),
                Some(json!({"format": "PDF"})),
            )
            .await;
        tokio::time::advance(Duration::from_secs(2)).await;
        let id = s.body["id"].as_str().unwrap();
        let status = api
            .pbi(
                Method::GET,
                &format!("/groups/{ws}/reports/{r}/exports/{}", seg(id)),
                None,
            )
            .await;
        assert_eq!(status.status, 200);
        assert_eq!(status.body["status"], "Failed");
        assert_eq!(status.header("retry-after").is_some(), retry, "{name}");
        let file = api
            .pbi(
                Method::GET,
                &format!("/groups/{ws}/reports/{r}/exports/{}/file", seg(id)),
                None,
            )
            .await;
        assert_eq!(file.status, 404);
    }
}

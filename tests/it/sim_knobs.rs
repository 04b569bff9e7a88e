//! Simulator: every profile knob, over loopback.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::sim_support::{Api, client, start};

const WS: &str =
    "workspaces:\n  WS:\n    datasets:\n      M: {}\n    fabric_dataflows:\n      G: {}\n";

#[tokio::test]
async fn throttle_every_nth_call_with_each_apis_429() {
    let sim = start(&format!("throttle: {{ every: 2, retry_after: 7 }}\n{WS}")).await;
    let api = Api::new(&sim).await;
    assert_eq!(api.pbi(Method::GET, "/groups", None).await.status, 200);
    let pbi = api.pbi(Method::GET, "/groups", None).await;
    assert_eq!(pbi.status, 429);
    assert_eq!(pbi.header("retry-after"), Some("7"));
    assert_eq!(
        pbi.body,
        json!({"message": "You have exceeded the amount of requests allowed in the current time frame and further requests will fail. Retry in 7 seconds."})
    );
    assert!(pbi.header("requestid").is_some());
    assert_eq!(
        api.fabric(Method::GET, "/workspaces", None).await.status,
        200
    );
    let fabric = api.fabric(Method::GET, "/workspaces", None).await;
    assert_eq!(fabric.status, 429);
    assert_eq!(fabric.header("retry-after"), Some("7"));
    assert_eq!(fabric.body["isRetriable"], true);
    assert!(fabric.body["errorCode"].is_string() && fabric.body["message"].is_string());
    assert_eq!(sim.counters().throttled, 2);
    // Token calls are never throttled.
    assert_eq!(sim.counters().tokens_issued, 2);
}

#[tokio::test]
async fn throttle_fraction_one_throttles_everything() {
    let sim = start(&format!("throttle: {{ fraction: 1.0 }}\n{WS}")).await;
    let api = Api::new(&sim).await;
    for _ in 0..3 {
        let a = api.pbi(Method::GET, "/groups", None).await;
        assert_eq!((a.status, a.header("retry-after")), (429, Some("1")));
    }
}

#[tokio::test]
async fn transient_503s() {
    let sim = start(&format!("transient_503: 1.0\n{WS}")).await;
    let api = Api::new(&sim).await;
    let a = api.pbi(Method::GET, "/groups", None).await;
    assert_eq!(a.status, 503);
    assert!(a.body["error"]["code"].is_string());
    let f = api.fabric(Method::GET, "/workspaces", None).await;
    assert_eq!(f.status, 503);
    assert_eq!(f.body["isRetriable"], true);
    assert_eq!(sim.counters().unavailable, 2);
}

#[tokio::test]
async fn connection_drops_close_without_an_answer() {
    let sim = start(&format!("connection_drop: 1.0\n{WS}")).await;
    let api = Api::new(&sim).await;
    let sent = client()
        .get(format!("{}/v1.0/myorg/groups", sim.base_url()))
        .bearer_auth(&api.pbi)
        .send()
        .await;
    assert!(sent.is_err(), "{sent:?}");
    assert!(sim.counters().dropped_connections >= 1);
}

#[tokio::test(start_paused = true)]
async fn latency_delays_each_answer() {
    let sim = start(&format!("latency: 5s\n{WS}")).await;
    let api = Api::new(&sim).await;
    let before = tokio::time::Instant::now();
    assert_eq!(api.pbi(Method::GET, "/groups", None).await.status, 200);
    assert!(tokio::time::Instant::now() - before >= Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn history_lag_hides_new_refreshes() {
    let sim = start(&format!(
        "defaults: {{ history_lag: 1m, duration: 10m }}\n{WS}"
    ))
    .await;
    let api = Api::new(&sim).await;
    let (ws, ds) = api.ids("WS", "M");
    let path = format!("/groups/{ws}/datasets/{ds}/refreshes");
    assert_eq!(api.pbi(Method::POST, &path, None).await.status, 202);
    assert_eq!(
        api.pbi(Method::GET, &path, None).await.body["value"],
        json!([])
    );
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(
        api.pbi(Method::GET, &path, None).await.body["value"][0]["status"],
        "Unknown"
    );
}

#[tokio::test(start_paused = true)]
async fn dropped_refreshes_never_show() {
    // Tokens outlive the hour the test skips.
    let sim = start(&format!(
        "token_lifetime: 2h\ndefaults: {{ drop_probability: 1.0, duration: 0s }}\n{WS}"
    ))
    .await;
    let api = Api::new(&sim).await;
    let (ws, ds) = api.ids("WS", "M");
    let path = format!("/groups/{ws}/datasets/{ds}/refreshes");
    assert_eq!(api.pbi(Method::POST, &path, None).await.status, 202);
    let enhanced = api
        .pbi(Method::POST, &path, Some(json!({"type": "Full"})))
        .await;
    assert_eq!(enhanced.status, 202);
    let id = enhanced.header("x-ms-request-id").unwrap().to_string();
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_eq!(
        api.pbi(Method::GET, &path, None).await.body["value"],
        json!([])
    );
    assert_eq!(
        api.pbi(Method::GET, &format!("{path}/{id}"), None)
            .await
            .status,
        404
    );
    assert_eq!(sim.counters().resource("dataset:WS/M").triggers, 2);
}

#[tokio::test(start_paused = true)]
async fn running_at_start_and_never_ending() {
    let sim = start(
        "token_lifetime: 30d\nworkspaces:\n  WS:\n    datasets:\n      M: { running_at_start: true, never_ends: true }\n    dataflows:\n      D: { running_at_start: true, duration: 1m }\n    fabric_dataflows:\n      G: { running_at_start: true, duration: 1m }\n",
    )
    .await;
    let api = Api::new(&sim).await;
    let (ws, m) = api.ids("WS", "M");
    let path = format!("/groups/{ws}/datasets/{m}/refreshes");
    let history = api.pbi(Method::GET, &path, None).await;
    let entry = history.body["value"][0].clone();
    assert_eq!(
        (entry["refreshType"].as_str(), entry["status"].as_str()),
        (Some("Scheduled"), Some("Unknown"))
    );
    assert_eq!(api.pbi(Method::POST, &path, None).await.status, 400);
    // Scheduled refreshes cannot be cancelled through the API.
    let id = entry["requestId"].as_str().unwrap();
    assert_eq!(
        api.pbi(Method::DELETE, &format!("{path}/{id}"), None)
            .await
            .status,
        400
    );
    tokio::time::advance(Duration::from_secs(86_400)).await;
    assert_eq!(
        api.pbi(Method::GET, &path, None).await.body["value"][0]["status"],
        "Unknown"
    );
    // An enhanced one running at start can be cancelled (if_running: restart).
    let sim2 = start(
        "workspaces:\n  WS:\n    datasets:\n      E: { running_at_start: true, running_at_start_by: enhanced_api, duration: 1h }\n",
    )
    .await;
    let api2 = Api::new(&sim2).await;
    let (ws2, e2) = api2.ids("WS", "E");
    let epath2 = format!("/groups/{ws2}/datasets/{e2}/refreshes");
    let h = api2.pbi(Method::GET, &epath2, None).await;
    assert_eq!(h.body["value"][0]["refreshType"], "ViaEnhancedApi");
    let id = h.body["value"][0]["requestId"].as_str().unwrap();
    assert_eq!(
        api2.pbi(Method::DELETE, &format!("{epath2}/{id}"), None)
            .await
            .status,
        200
    );
    assert_eq!(api2.pbi(Method::POST, &epath2, None).await.status, 202);
    // Gen1 and Gen2 running at start.
    let (_, d) = api.ids("WS", "D");
    let tx = api
        .pbi(
            Method::GET,
            &format!("/groups/{ws}/dataflows/{d}/transactions"),
            None,
        )
        .await;
    assert_eq!(tx.body["value"][0]["refreshType"], "Scheduled");
    let (_, g) = api.ids("WS", "G");
    let jobs = api
        .fabric(
            Method::GET,
            &format!("/workspaces/{ws}/items/{g}/jobs/instances"),
            None,
        )
        .await;
    assert_eq!(jobs.body["value"][0]["invokeType"], "Scheduled");
}

#[tokio::test(start_paused = true)]
async fn time_scale_shortens_durations() {
    let sim = start(&format!(
        "time_scale: 60\ndefaults: {{ duration: 10m }}\n{WS}"
    ))
    .await;
    let api = Api::new(&sim).await;
    let (ws, ds) = api.ids("WS", "M");
    let path = format!("/groups/{ws}/datasets/{ds}/refreshes");
    api.pbi(Method::POST, &path, None).await;
    tokio::time::advance(Duration::from_millis(9_900)).await;
    assert_eq!(
        api.pbi(Method::GET, &path, None).await.body["value"][0]["status"],
        "Unknown"
    );
    tokio::time::advance(Duration::from_millis(200)).await;
    assert_eq!(
        api.pbi(Method::GET, &path, None).await.body["value"][0]["status"],
        "Completed"
    );
}

#[tokio::test(start_paused = true)]
async fn two_line_profile_finishes_everything_at_once() {
    let sim = start(&format!("defaults:\n  duration: 0s\n{WS}")).await;
    let api = Api::as_user(&sim);
    let (ws, ds) = api.ids("WS", "M");
    let path = format!("/groups/{ws}/datasets/{ds}/refreshes");
    let a = api
        .pbi(Method::POST, &path, Some(json!({"type": "Full"})))
        .await;
    let id = a.header("x-ms-request-id").unwrap();
    let d = api.pbi(Method::GET, &format!("{path}/{id}"), None).await;
    assert_eq!(
        (d.status, d.body["extendedStatus"].as_str()),
        (200, Some("Completed"))
    );
    let (_, g) = api.ids("WS", "G");
    let run = api
        .fabric(
            Method::POST,
            &format!("/workspaces/{ws}/items/{g}/jobs/Execute/instances"),
            None,
        )
        .await;
    assert_eq!(run.header("retry-after"), Some("0"));
    assert_eq!(
        api.fabric_url(run.header("location").unwrap()).await.body["status"],
        "Completed"
    );
}

#[tokio::test(start_paused = true)]
async fn seeded_duration_ranges_are_deterministic() {
    let profile = format!("seed: 7\ndefaults: {{ duration: 1s..50s }}\n{WS}");
    let mut seen = Vec::new();
    for _ in 0..2 {
        let sim = start(&profile).await;
        let api = Api::new(&sim).await;
        let (ws, g) = api.ids("WS", "G");
        let mut waits = Vec::new();
        for _ in 0..3 {
            let run = api
                .fabric(
                    Method::POST,
                    &format!("/workspaces/{ws}/items/{g}/jobs/Execute/instances"),
                    None,
                )
                .await;
            waits.push(run.header("retry-after").unwrap().to_string());
            tokio::time::advance(Duration::from_secs(60)).await;
        }
        seen.push(waits);
    }
    assert_eq!(seen[0], seen[1]);
    assert!(seen[0].iter().any(|w| w != &seen[0][0]), "{seen:?}");
}

#[tokio::test]
async fn audience_check_can_be_relaxed_and_recording_capped() {
    let sim = start(&format!(
        "strict_audience: false\nmax_recorded_requests: 2\n{WS}"
    ))
    .await;
    let api = Api::new(&sim).await;
    let a = client()
        .get(format!("{}/v1.0/myorg/groups", sim.base_url()))
        .bearer_auth(&api.fabric)
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 200);
    assert_eq!(sim.requests().len(), 2);
    assert_eq!(sim.counters().requests, 3);
}

#[tokio::test]
async fn shared_capacity_refuses_enhanced_refresh_and_export() {
    let sim = start("workspaces:\n  Pro:\n    shared_capacity: true\n    datasets: { M: {} }\n    reports: { R: { dataset: M } }\n").await;
    let api = Api::new(&sim).await;
    let (ws, ds) = api.ids("Pro", "M");
    let path = format!("/groups/{ws}/datasets/{ds}/refreshes");
    assert_eq!(
        api.pbi(Method::POST, &path, Some(json!({"type": "Full"})))
            .await
            .status,
        400
    );
    assert_eq!(
        api.pbi(
            Method::POST,
            &path,
            Some(json!({"notifyOption": "NoNotification"}))
        )
        .await
        .status,
        202
    );
    let (_, r) = api.ids("Pro", "R");
    let e = api
        .pbi(
            Method::POST,
            &format!("/groups/{ws}/reports/{r}/ExportTo"),
            Some(json!({"format": "PDF"})),
        )
        .await;
    assert_eq!(e.status, 403);
    let groups = api.pbi(Method::GET, "/groups", None).await;
    assert_eq!(groups.body["value"][0]["isOnDedicatedCapacity"], false);
}

#[tokio::test]
async fn profiles_with_given_ids_and_credentials() {
    let sim = start(
        "credentials: { tenant_id: t1, client_id: c1, client_secret: s1 }\nworkspaces:\n  WS:\n    id: 3f2504e0-4f89-41d3-9a0c-0305e82c3301\n    datasets:\n      M: { id: 3f2504e0-4f89-41d3-9a0c-0305e82c3302 }\n",
    )
    .await;
    assert_eq!(
        (sim.tenant_id(), sim.client_id(), sim.client_secret()),
        ("t1".into(), "c1".into(), "s1".into())
    );
    let api = Api::new(&sim).await;
    let a = api
        .pbi(Method::GET, "/groups/3f2504e0-4f89-41d3-9a0c-0305e82c3301/datasets/3f2504e0-4f89-41d3-9a0c-0305e82c3302", None)
        .await;
    assert_eq!(a.body["name"], "M");
}

#[tokio::test]
async fn profile_files_load_and_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, "defaults:\n  duration: 0s\n").unwrap();
    assert!(pbibatch::sim::Profile::load(&good).is_ok());
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "defaults:\n  duration: soon\n").unwrap();
    let err = pbibatch::sim::Profile::load(&bad).unwrap_err().to_string();
    assert!(err.contains("bad.yaml") && err.contains("soon"), "{err}");
    let missing = pbibatch::sim::Profile::load(&dir.path().join("none.yaml"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("none.yaml"), "{missing}");
}

#[tokio::test]
async fn exports_can_redirect_to_client_routing() {
    let sim = start("redirect_exports: true\ndefaults: { duration: 0s }\nworkspaces:\n  WS:\n    reports: { R: {} }\n").await;
    let api = Api::new(&sim).await;
    let (ws, _) = api.ids("WS", "");
    // The report, not the dataset made for it under the same name.
    let r = sim.item_id("report", "WS", "R").unwrap();
    // Without following redirects: the 307 and where it points.
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = format!(
        "{}/v1.0/myorg/groups/{ws}/reports/{r}/ExportTo",
        sim.base_url()
    );
    let a = crate::sim_support::answer(
        raw.post(&url)
            .bearer_auth(&api.pbi)
            .json(&json!({"format": "PDF"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 307);
    assert_eq!(
        a.header("location"),
        Some(format!("{url}?preferClientRouting=true").as_str())
    );
    assert!(a.header("requestid").is_some());
    // A client that follows it (same method, body and Authorization) gets the export.
    let followed = api
        .pbi(
            Method::POST,
            &format!("/groups/{ws}/reports/{r}/ExportTo"),
            Some(json!({"format": "PDF"})),
        )
        .await;
    assert_eq!(followed.status, 202, "{}", followed.body);
    assert_eq!(sim.counters().resource("report:WS/R").triggers, 1);
}

#[tokio::test(start_paused = true)]
async fn timed_out_outcome_retry_after_knob_job_types_and_given_flow_ids() {
    let sim = start(
        r#"
defaults: { duration: 1m }
workspaces:
  WS:
    datasets:
      Slow: { outcomes: [timed_out] }
    fabric_dataflows:
      G: { retry_after: 9 }
    items:
      Book: { type: Notebook }
      Custom: { type: Lakehouse, job_types: [TableMaintenance] }
flows:
  given: { id: abc123, sig: s3cret }
"#,
    )
    .await;
    let api = Api::new(&sim).await;
    let (ws, slow) = api.ids("WS", "Slow");
    let path = format!("/groups/{ws}/datasets/{slow}/refreshes");
    let a = api
        .pbi(Method::POST, &path, Some(json!({"type": "Full"})))
        .await;
    let id = a.header("x-ms-request-id").unwrap().to_string();
    tokio::time::advance(Duration::from_secs(61)).await;
    let d = api.pbi(Method::GET, &format!("{path}/{id}"), None).await;
    assert_eq!(
        (d.body["status"].as_str(), d.body["extendedStatus"].as_str()),
        (Some("Failed"), Some("TimedOut"))
    );
    let (_, g) = api.ids("WS", "G");
    let run = api
        .fabric(
            Method::POST,
            &format!("/workspaces/{ws}/items/{g}/jobs/Execute/instances"),
            None,
        )
        .await;
    assert_eq!(run.header("retry-after"), Some("9"));
    assert_eq!(
        api.fabric_url(run.header("location").unwrap())
            .await
            .header("retry-after"),
        Some("9")
    );
    let (_, book) = api.ids("WS", "Book");
    let nb = api
        .fabric(
            Method::POST,
            &format!("/workspaces/{ws}/items/{book}/jobs/RunNotebook/instances"),
            None,
        )
        .await;
    assert_eq!(nb.status, 202);
    // `Execute` is the notebook spec's own job type (`notebooks/{id}/jobs/execute`); a
    // pipeline's is not a notebook's.
    let wrong = api
        .fabric(
            Method::POST,
            &format!("/workspaces/{ws}/items/{book}/jobs/Pipeline/instances"),
            None,
        )
        .await;
    assert_eq!(wrong.status, 400);
    let (_, custom) = api.ids("WS", "Custom");
    let tm = api
        .fabric(
            Method::POST,
            &format!("/workspaces/{ws}/items/{custom}/jobs/instances?jobType=TableMaintenance"),
            None,
        )
        .await;
    assert_eq!(tm.status, 202);
    let url = sim.flow_url("given");
    assert!(
        url.contains("/workflows/abc123/") && url.ends_with("&sig=s3cret"),
        "{url}"
    );
    assert_eq!(client().post(&url).send().await.unwrap().status(), 202);
}

#[tokio::test]
async fn start_checks_profiles_built_in_code() {
    let profile = pbibatch::sim::Profile {
        time_scale: 0.0,
        ..pbibatch::sim::Profile::default()
    };
    let err = pbibatch::sim::start(profile, "127.0.0.1:0".parse().unwrap())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("time_scale"), "{err}");
}

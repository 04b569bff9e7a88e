//! The strict simulator refuses what the services refuse, with their status and body, and a
//! profile may relax a rule only by name (docs/simulator.md, "Strict rules").

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::sim_support::{Api, start};

const ESTATE: &str = r#"
workspaces:
  WS:
    datasets: { Model: { duration: 1s } }
    dataflows: { Flow: { duration: 1s } }
    fabric_dataflows: { G2: { duration: 1s } }
    reports:
      Book: { dataset: Model, duration: 1s }
      Paged: { paginated: true, duration: 1s }
"#;

async fn refresh(api: &Api<'_>, body: serde_json::Value) -> crate::sim_support::Answer {
    let (ws, model) = api.ids("WS", "Model");
    api.pbi(
        Method::POST,
        &format!("/groups/{ws}/datasets/{model}/refreshes"),
        Some(body),
    )
    .await
}

async fn gen1(api: &Api<'_>, body: serde_json::Value) -> crate::sim_support::Answer {
    let (ws, flow) = api.ids("WS", "Flow");
    api.pbi(
        Method::POST,
        &format!("/groups/{ws}/dataflows/{flow}/refreshes"),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn strict_refuses_mail_notify_options_for_app_only_tokens() {
    let sim = start(ESTATE).await;
    let app = Api::new(&sim).await;
    for option in ["MailOnFailure", "MailOnCompletion"] {
        let a = refresh(&app, json!({"notifyOption": option})).await;
        assert_eq!(a.status, 400, "{option}: {}", a.body);
        assert_eq!(a.body["error"]["code"], "InvalidRequest");
        assert_eq!(
            a.body["error"]["message"],
            format!("Invalid NotifyOption value '{option}' for app only owner requests")
        );
    }
    let a = gen1(&app, json!({"notifyOption": "MailOnFailure"})).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(
        a.body["error"]["message"],
        "Invalid NotifyOption value 'MailOnFailure' for app only owner requests"
    );
    // No notification is fine for an app; a user may ask for mail.
    assert_eq!(
        refresh(&app, json!({"notifyOption": "NoNotification"}))
            .await
            .status,
        202
    );
    let user = Api::as_user(&sim);
    let (ws, flow) = user.ids("WS", "Flow");
    let a = user
        .pbi(
            Method::POST,
            &format!("/groups/{ws}/dataflows/{flow}/refreshes"),
            Some(json!({"notifyOption": "MailOnFailure"})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
}

#[tokio::test]
async fn strict_refuses_a_managed_identity_mail_notify_too() {
    let sim = start(ESTATE).await;
    let mi = client_imds_token(&sim).await;
    let (ws, model) = sim.ids("WS", "Model").unwrap();
    let a = crate::sim_support::answer(
        crate::sim_support::client()
            .post(format!(
                "{}/v1.0/myorg/groups/{ws}/datasets/{model}/refreshes",
                sim.base_url()
            ))
            .bearer_auth(mi)
            .json(&json!({"notifyOption": "MailOnFailure"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
}

async fn client_imds_token(sim: &pbibatch::sim::SimServer) -> String {
    let r = crate::sim_support::client()
        .get(format!(
            "{}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://analysis.windows.net/powerbi/api",
            sim.base_url()
        ))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

#[tokio::test(start_paused = true)]
async fn strict_gen2_by_a_service_principal_is_accepted_then_fails() {
    let sim = start(ESTATE).await;
    let app = Api::new(&sim).await;
    let (ws, g2) = app.ids("WS", "G2");
    let run = app
        .fabric(
            Method::POST,
            &format!("/workspaces/{ws}/items/{g2}/jobs/instances?jobType=Execute"),
            None,
        )
        .await;
    assert_eq!(run.status, 202, "{}", run.body);
    tokio::time::advance(Duration::from_secs(5)).await;
    let job = app.fabric_url(run.header("location").unwrap()).await;
    assert_eq!(job.body["status"], "Failed", "{}", job.body);
    assert_eq!(
        job.body["failureReason"]["errorCode"],
        "SPNBasedRefreshNotAllowed"
    );
    assert_eq!(
        job.body["failureReason"]["message"],
        format!("SPN based refresh is not allowed for the dataflow with id {g2}.")
    );
    // The same call by a user runs.
    let user = Api::as_user(&sim);
    let run = user
        .fabric(
            Method::POST,
            &format!("/workspaces/{ws}/items/{g2}/jobs/instances?jobType=Execute"),
            None,
        )
        .await;
    tokio::time::advance(Duration::from_secs(5)).await;
    let job = user.fabric_url(run.header("location").unwrap()).await;
    assert_eq!(job.body["status"], "Completed", "{}", job.body);
}

#[tokio::test]
async fn strict_dataflow_execute_endpoint_refuses_app_identities() {
    let sim = start(ESTATE).await;
    let app = Api::new(&sim).await;
    let (ws, g2) = app.ids("WS", "G2");
    let path = format!("/workspaces/{ws}/dataflows/{g2}/jobs/execute/instances");
    let a = app.fabric(Method::POST, &path, None).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.body["errorCode"], "PrincipalTypeNotSupported");
    assert_eq!(
        a.header("x-ms-public-api-error-code"),
        Some("PrincipalTypeNotSupported")
    );
    let user = Api::as_user(&sim);
    assert_eq!(user.fabric(Method::POST, &path, None).await.status, 202);
}

#[tokio::test]
async fn strict_refuses_json_sent_as_another_media_type() {
    let sim = start(ESTATE).await;
    let app = Api::new(&sim).await;
    let (ws, model) = app.ids("WS", "Model");
    let (_, g2) = app.ids("WS", "G2");
    let pbi = format!("/v1.0/myorg/groups/{ws}/datasets/{model}/refreshes");
    let body = r#"{"notifyOption":"NoNotification"}"#;
    for content_type in [Some("text/plain"), None] {
        let a = app.send_typed(Method::POST, &pbi, content_type, body).await;
        assert_eq!(a.status, 415, "{content_type:?}: {}", a.body);
        assert_eq!(a.body["error"]["code"], "UnsupportedMediaType");
    }
    let fabric = format!("/v1/workspaces/{ws}/items/{g2}/jobs/instances?jobType=Execute");
    let a = app
        .send_typed(Method::POST, &fabric, Some("text/plain"), "{}")
        .await;
    assert_eq!(a.status, 415, "{}", a.body);
    assert_eq!(a.body["errorCode"], "UnsupportedMediaType");
    // A charset parameter and an empty body without a type are fine.
    let a = app
        .send_typed(
            Method::POST,
            &pbi,
            Some("application/json; charset=utf-8"),
            body,
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
}

#[tokio::test]
async fn strict_refuses_bodies_outside_the_request_schemas() {
    let sim = start(ESTATE).await;
    let app = Api::new(&sim).await;
    let (ws, book) = app.ids("WS", "Book");
    let paged = sim.item_id("report", "WS", "Paged").unwrap();
    let export = |report: &str| format!("/groups/{ws}/reports/{report}/ExportTo");
    let cases = [
        (
            export(&paged),
            json!({"format": "PDF", "paginatedReportConfiguration": {"parameterValues": {"Region": "EU"}}}),
            "parameterValues",
        ),
        (
            export(&paged),
            json!({"format": "PDF", "paginatedReportConfiguration": {"parameters": []}}),
            "unknown property 'parameters'",
        ),
        (
            export(&book),
            json!({"format": "PDF", "powerBIReportConfiguration": {"pages": [{"visualName": "v"}]}}),
            "pageName",
        ),
        (
            export(&book),
            json!({"format": "PDF", "powerBIReportConfiguration": {"settings": {"locale": 7}}}),
            "locale",
        ),
    ];
    for (path, body, says) in cases {
        let a = app.pbi(Method::POST, &path, Some(body.clone())).await;
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        let message = a.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    let (_, g2) = app.ids("WS", "G2");
    let user = Api::as_user(&sim);
    let run = format!("/workspaces/{ws}/items/{g2}/jobs/instances?jobType=Execute");
    for body in [
        json!({"executionData": {"executeOption": "Sometimes"}}),
        json!({"executionData": {"executeOption": "SkipApplyChanges", "extra": 1}}),
        json!({"executionData": {"parameters": [{"parameterName": "A", "value": 1}]}}),
        json!({"jobParameters": {}}),
    ] {
        let a = user.fabric(Method::POST, &run, Some(body.clone())).await;
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        assert_eq!(a.body["errorCode"], "InvalidInput", "{body}");
    }
    let ok = user
        .fabric(
            Method::POST,
            &run,
            Some(
                json!({"executionData": {"executeOption": "ApplyChangesIfNeeded",
                "parameters": [{"parameterName": "A", "type": "Automatic", "value": 25}]}}),
            ),
        )
        .await;
    assert_eq!(ok.status, 202, "{}", ok.body);
}

#[tokio::test]
async fn strict_rules_are_relaxed_only_by_name() {
    let sim = start(&format!("relax: [app_only_notify, content_type]\n{ESTATE}")).await;
    assert_eq!(
        sim.relaxed_rules(),
        vec![
            pbibatch::sim::Rule::AppOnlyNotify,
            pbibatch::sim::Rule::ContentType
        ]
    );
    let app = Api::new(&sim).await;
    assert_eq!(
        refresh(&app, json!({"notifyOption": "MailOnFailure"}))
            .await
            .status,
        202
    );
    // Other rules still hold.
    let (ws, book) = app.ids("WS", "Book");
    let a = app
        .pbi(
            Method::POST,
            &format!("/groups/{ws}/reports/{book}/ExportTo"),
            Some(json!({"format": "PDF", "extra": true})),
        )
        .await;
    assert_eq!(a.status, 400);
    let profile = "relax: [lenient_everything]\n";
    let problem = pbibatch::sim::Profile::from_yaml(profile)
        .unwrap_err()
        .to_string();
    assert!(problem.contains("lenient_everything"), "{problem}");
}

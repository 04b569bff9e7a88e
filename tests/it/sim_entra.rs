//! Simulator: Entra token endpoint, IMDS and bearer checks.

use reqwest::Method;
use serde_json::Value;

use crate::sim_support::{Api, FABRIC_SCOPE, PBI_SCOPE, answer, client, start, token};

async fn token_call(base: &str, tenant: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let a = answer(
        client()
            .post(format!("{base}/{tenant}/oauth2/v2.0/token"))
            .form(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    (a.status, a.body)
}

#[tokio::test]
async fn token_endpoint_issues_tokens_with_numeric_expiry() {
    let sim = start("token_lifetime: 10m\n").await;
    let (status, body) = token_call(
        &sim.base_url(),
        &sim.tenant_id(),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &sim.client_id()),
            ("client_secret", &sim.client_secret()),
            ("scope", PBI_SCOPE),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["access_token"].as_str().unwrap().split('.').count(), 3);
    assert_eq!(sim.counters().tokens_issued, 1);
}

#[tokio::test]
async fn an_expired_secret_is_refused_with_7000222() {
    let sim = start("credentials:\n  client_secret_expired: true\n").await;
    let (id, secret) = (sim.client_id(), sim.client_secret());
    let form = vec![
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
        ("scope", PBI_SCOPE),
    ];
    let (status, body) = token_call(&sim.base_url(), &sim.tenant_id(), &form).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client", "{body}");
    assert_eq!(body["error_codes"][0], 7000222, "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with("AADSTS7000222: The provided client secret keys for app"),
        "{description}"
    );
    // A wrong secret is still "invalid", not "expired": the secret is checked first.
    let mut wrong = form.clone();
    wrong[2].1 = "wrong";
    let (status, body) = token_call(&sim.base_url(), &sim.tenant_id(), &wrong).await;
    assert_eq!(
        (status, body["error_codes"][0].as_u64()),
        (401, Some(7000215))
    );
    assert_eq!(sim.counters().tokens_issued, 0);
}

#[tokio::test]
async fn token_endpoint_returns_real_error_bodies() {
    let sim = start("").await;
    let base = sim.base_url();
    let (id, secret, tenant) = (sim.client_id(), sim.client_secret(), sim.tenant_id());
    // (form, tenant, status, error, first error code)
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, u16, &'a str, u64);
    let cases: Vec<Case> = vec![
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", "wrong"),
                ("scope", PBI_SCOPE),
            ],
            &tenant,
            401,
            "invalid_client",
            7000215,
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "00000000-0000-0000-0000-000000000000"),
                ("client_secret", &secret),
                ("scope", PBI_SCOPE),
            ],
            &tenant,
            400,
            "unauthorized_client",
            700016,
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
                ("scope", "https://analysis.windows.net/powerbi/api"),
            ],
            &tenant,
            400,
            "invalid_scope",
            70011,
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
                ("scope", "https://nothing.example/.default"),
            ],
            &tenant,
            400,
            "invalid_resource",
            500011,
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
                ("scope", PBI_SCOPE),
            ],
            "not-my-tenant",
            400,
            "invalid_request",
            90002,
        ),
        (
            vec![
                ("client_id", &id),
                ("client_secret", &secret),
                ("scope", PBI_SCOPE),
            ],
            &tenant,
            400,
            "invalid_request",
            900144,
        ),
        (
            vec![
                ("grant_type", "password"),
                ("client_id", &id),
                ("client_secret", &secret),
                ("scope", PBI_SCOPE),
            ],
            &tenant,
            400,
            "unsupported_grant_type",
            70003,
        ),
    ];
    for (form, tenant, status, error, code) in cases {
        let (got, body) = token_call(&base, tenant, &form).await;
        assert_eq!(got, status, "{body}");
        assert_eq!(body["error"], error, "{body}");
        assert_eq!(body["error_codes"][0], code, "{body}");
        let description = body["error_description"].as_str().unwrap();
        assert!(
            description.starts_with(&format!("AADSTS{code}:")),
            "{description}"
        );
        assert!(description.contains("Trace ID:"), "{description}");
        assert!(body["trace_id"].is_string() && body["correlation_id"].is_string());
    }
    assert_eq!(sim.counters().tokens_issued, 0);
}

#[tokio::test]
async fn basic_auth_client_credentials_are_accepted() {
    let sim = start("").await;
    let a = answer(
        client()
            .post(format!(
                "{}/{}/oauth2/v2.0/token",
                sim.base_url(),
                sim.tenant_id()
            ))
            .basic_auth(sim.client_id(), Some(sim.client_secret()))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", FABRIC_SCOPE),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
}

#[tokio::test]
async fn imds_returns_string_numbers_and_needs_the_metadata_header() {
    let sim = start("token_lifetime: 1h\n").await;
    let url = format!(
        "{}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://analysis.windows.net/powerbi/api",
        sim.base_url()
    );
    let missing = answer(client().get(&url).send().await.unwrap()).await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.body["error"], "invalid_request");
    let ok = answer(
        client()
            .get(&url)
            .header("Metadata", "true")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["expires_in"], "3600");
    assert!(
        ok.body["expires_on"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .is_ok()
    );
    assert_eq!(
        ok.body["resource"],
        "https://analysis.windows.net/powerbi/api"
    );
    assert_eq!(ok.body["token_type"], "Bearer");
    // The managed identity's token works against Power BI.
    let token = ok.body["access_token"].as_str().unwrap();
    let groups = answer(
        client()
            .get(format!("{}/v1.0/myorg/groups", sim.base_url()))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(groups.status, 200);
    let wrong_identity = answer(
        client()
            .get(format!(
                "{url}&client_id=11111111-1111-1111-1111-111111111111"
            ))
            .header("Metadata", "true")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(wrong_identity.status, 400);
    let named = answer(
        client()
            .get(format!(
                "{url}&client_id={}",
                sim.managed_identity_client_id()
            ))
            .header("Metadata", "true")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(named.status, 200);
}

#[tokio::test(start_paused = true)]
async fn expired_tokens_get_each_apis_error() {
    let sim = start("token_lifetime: 5m\nworkspaces:\n  WS: {}\n").await;
    let api = Api::new(&sim).await;
    assert_eq!(api.pbi(Method::GET, "/groups", None).await.status, 200);
    tokio::time::advance(std::time::Duration::from_secs(301)).await;
    let pbi = api.pbi(Method::GET, "/groups", None).await;
    assert_eq!(pbi.status, 403);
    assert_eq!(pbi.body["error"]["code"], "TokenExpired");
    let fabric = api.fabric(Method::GET, "/workspaces", None).await;
    assert_eq!(fabric.status, 401);
    assert_eq!(fabric.body["errorCode"], "TokenExpired");
    assert!(fabric.body["requestId"].is_string());
}

#[tokio::test]
async fn missing_and_wrong_audience_tokens_are_refused() {
    let sim = start("workspaces:\n  WS: {}\n").await;
    let base = sim.base_url();
    let none = answer(
        client()
            .get(format!("{base}/v1.0/myorg/groups"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(none.status, 401);
    assert!(none.header("www-authenticate").is_some());
    assert!(none.header("requestid").is_some());
    let fabric_token = token(&sim, FABRIC_SCOPE).await;
    let wrong = answer(
        client()
            .get(format!("{base}/v1.0/myorg/groups"))
            .bearer_auth(&fabric_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(wrong.status, 401);
    let pbi_token = token(&sim, PBI_SCOPE).await;
    let wrong = answer(
        client()
            .get(format!("{base}/v1/workspaces"))
            .bearer_auth(&pbi_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body["errorCode"].is_string());
    let bogus = answer(
        client()
            .get(format!("{base}/v1/workspaces"))
            .bearer_auth("not-a-token")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(bogus.status, 401);
    // A user token (as from PBIBATCH_ACCESS_TOKEN) works.
    let user = sim.user_token(PBI_SCOPE).unwrap();
    let ok = answer(
        client()
            .get(format!("{base}/v1.0/myorg/groups"))
            .bearer_auth(&user)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn sovereign_cloud_scopes_are_accepted() {
    let sim = start("workspaces:\n  WS: {}\n").await;
    for (scope, path) in [
        (
            "https://analysis.usgovcloudapi.net/powerbi/api/.default",
            "/v1.0/myorg/groups",
        ),
        (
            "https://analysis.chinacloudapi.cn/powerbi/api/.default",
            "/v1.0/myorg/groups",
        ),
        ("https://api.fabric.microsoft.us/.default", "/v1/workspaces"),
    ] {
        let t = token(&sim, scope).await;
        let a = answer(
            client()
                .get(format!("{}{path}", sim.base_url()))
                .bearer_auth(t)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(a.status, 200, "{scope}");
    }
}

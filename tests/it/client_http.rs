//! The client's HTTP layer and tokens against the simulator: throttling storms, transient
//! faults, token lifetime and sharing, Entra errors, the plain-http guard.

use std::path::PathBuf;
use std::time::Duration;

use chrono::DateTime;
use indexmap::IndexMap;
use pbibatch::executor::AttemptOutcome;
use pbibatch::job::model::{
    Cloud, Connection, Credentials, DataflowStep, DatasetStep, Generation, Job, NotifyOption,
    StepKind, WebhookStep,
};
use pbibatch::powerbi::{ClientConfig, PowerBiClient, check_urls};
use pbibatch::secret::Secret;
use pbibatch::sim::resource_key;
use url::Url;

use crate::exec_support::{Rig, requests_to, rig, run_step, sim_config, step};

fn dataset(ws: &str, ds: &str) -> StepKind {
    StepKind::Dataset(DatasetStep {
        workspace: ws.into(),
        dataset: ds.into(),
        notify: NotifyOption::NoNotification,
        refresh: None,
    })
}

/// Gaps between consecutive Power BI / Fabric requests, in request order.
fn api_gaps(rig: &Rig) -> Vec<chrono::Duration> {
    let times: Vec<_> = rig
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v1.0/") || r.path.starts_with("/v1/"))
        .map(|r| DateTime::parse_from_rfc3339(&r.time).unwrap())
        .collect();
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test]
async fn throttling_storm_honours_retry_after_and_spends_no_attempt() {
    // 30 % of the API calls get 429 + Retry-After: 1. The step polls every 100 ms, so any
    // pause of a second or more in this one-step, sequential conversation is a retry wait.
    let rig = rig(
        "seed: 7\nthrottle: {fraction: 0.3, retry_after: 1}\nworkspaces:\n  Sales:\n    datasets:\n      Orders: {duration: 2s}\n",
    )
    .await;
    let mut s = step("orders", dataset("Sales", "Orders"));
    s.poll_interval = Duration::from_millis(100);
    let ran = run_step(&rig, s).await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    let counters = rig.sim.counters();
    assert!(counters.throttled >= 3, "the storm happened: {counters:?}");
    // One trigger: no extra step attempt, no duplicate refresh.
    assert_eq!(
        counters
            .resource(&resource_key("dataset", "Sales", "Orders"))
            .triggers,
        1
    );
    // Each 429 was followed by at least Retry-After of silence before the next request.
    let waits = api_gaps(&rig)
        .into_iter()
        .filter(|g| *g >= chrono::Duration::seconds(1))
        .count();
    assert!(
        waits as u64 >= counters.throttled,
        "{waits} waits of >= 1 s for {} throttled answers",
        counters.throttled
    );
}

#[tokio::test]
async fn transient_503s_and_dropped_connections_are_retried_inside_the_client() {
    let rig = rig(
        "seed: 3\ntransient_503: 0.2\nconnection_drop: 0.1\nworkspaces:\n  Sales:\n    datasets:\n      Orders: {duration: 1s}\n",
    )
    .await;
    let mut s = step("orders", dataset("Sales", "Orders"));
    s.poll_interval = Duration::from_millis(100);
    let ran = run_step(&rig, s).await;
    assert_eq!(
        ran.outcome,
        AttemptOutcome::Succeeded { adopted: false },
        "{:?}",
        ran.outcome
    );
    let counters = rig.sim.counters();
    assert!(
        counters.unavailable + counters.dropped_connections > 0,
        "{counters:?}"
    );
    // A trigger whose answer was lost is looked for before it is sent again: exactly one
    // refresh was accepted.
    assert_eq!(
        counters
            .resource(&resource_key("dataset", "Sales", "Orders"))
            .triggers,
        1
    );
}

#[tokio::test]
async fn one_token_per_scope_even_under_concurrency() {
    let rig = rig(
        "workspaces:\n  Sales:\n    datasets:\n      A: {duration: 300ms}\n      B: {duration: 300ms}\n      C: {duration: 300ms}\n    fabric_dataflows:\n      G: {duration: 300ms, retry_after: 0}\n",
    )
    .await;
    let gen2 = StepKind::Dataflow(DataflowStep {
        workspace: "Sales".into(),
        dataflow: "G".into(),
        generation: Generation::Gen2,
        notify: NotifyOption::NoNotification,
        process_type: None,
        execute_option: None,
        parameters: IndexMap::new(),
    });
    let (a, b, c, g) = tokio::join!(
        run_step(&rig, step("a", dataset("Sales", "A"))),
        run_step(&rig, step("b", dataset("Sales", "B"))),
        run_step(&rig, step("c", dataset("Sales", "C"))),
        run_step(&rig, step("g", gen2)),
    );
    for ran in [a, b, c, g] {
        assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    }
    // One Power BI token and one Fabric token for the whole run.
    assert_eq!(rig.sim.counters().tokens_issued, 2);
    assert_eq!(rig.client.token_requests(), 2);
}

#[tokio::test]
async fn tokens_are_renewed_before_they_expire_mid_run() {
    let rig = rig(
        "token_lifetime: 2s\nworkspaces:\n  Sales:\n    datasets:\n      Orders: {duration: 5s}\n",
    )
    .await;
    let mut s = step("orders", dataset("Sales", "Orders"));
    s.poll_interval = Duration::from_millis(300);
    let ran = run_step(&rig, s).await;
    assert_eq!(
        ran.outcome,
        AttemptOutcome::Succeeded { adopted: false },
        "{:?}",
        ran.outcome
    );
    let issued = rig.sim.counters().tokens_issued;
    assert!(issued >= 2, "renewed at least once: {issued}");
    assert_eq!(rig.client.token_requests(), issued);
}

#[tokio::test]
async fn an_expired_static_token_fails_clearly() {
    let rig = rig("token_lifetime: 1s\nworkspaces:\n  Sales:\n    datasets:\n      Orders: {duration: 100ms}\n").await;
    let token = rig
        .sim
        .user_token("https://analysis.windows.net/powerbi/api/.default")
        .unwrap();
    let mut conns = IndexMap::new();
    conns.insert(
        "default".to_string(),
        Connection {
            name: "default".into(),
            cloud: Cloud::Public,
            credentials: Credentials::AccessToken {
                access_token: Secret::new(token.clone()),
            },
            picked_because: None,
        },
    );
    let client = PowerBiClient::new(sim_config(&rig.sim), conns.clone()).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stale = Rig {
        sim: rig.sim,
        client,
        connections: conns,
    };
    let ran = run_step(&stale, step("orders", dataset("Sales", "Orders"))).await;
    let err = ran.error();
    assert!(err.contains("TokenExpired"), "{err}");
    assert!(!err.contains(&token));
}

#[tokio::test]
async fn a_wrong_client_secret_is_explained_and_never_shown() {
    let rig = rig("workspaces:\n  Sales:\n    datasets:\n      Orders: {}\n").await;
    let mut conns = IndexMap::new();
    conns.insert(
        "default".to_string(),
        Connection {
            name: "default".into(),
            cloud: Cloud::Public,
            credentials: Credentials::ClientSecret {
                tenant_id: rig.sim.tenant_id(),
                client_id: rig.sim.client_id(),
                client_secret: Secret::new("Wrong~Secret~Value~42"),
            },
            picked_because: None,
        },
    );
    let client = PowerBiClient::new(sim_config(&rig.sim), conns.clone()).unwrap();
    let bad = Rig {
        sim: rig.sim,
        client,
        connections: conns,
    };
    let ran = run_step(&bad, step("orders", dataset("Sales", "Orders"))).await;
    let err = ran.error();
    assert!(err.contains("AADSTS"), "{err}");
    assert!(err.contains("connection `default`"), "{err}");
    assert!(!err.contains("Wrong~Secret~Value~42"), "{err}");
    assert!(!err.contains("Trace ID"), "{err}");
}

#[tokio::test]
async fn managed_identity_tokens_come_from_imds() {
    let rig = rig("workspaces:\n  Sales:\n    datasets:\n      Orders: {duration: 100ms}\n").await;
    let mut conns = IndexMap::new();
    conns.insert(
        "default".to_string(),
        Connection {
            name: "default".into(),
            cloud: Cloud::Public,
            credentials: Credentials::ManagedIdentity {
                client_id: Some(rig.sim.managed_identity_client_id()),
            },
            picked_because: None,
        },
    );
    let client = PowerBiClient::new(sim_config(&rig.sim), conns.clone()).unwrap();
    let mi = Rig {
        sim: rig.sim,
        client,
        connections: conns,
    };
    let ran = run_step(&mi, step("orders", dataset("Sales", "Orders"))).await;
    assert_eq!(
        ran.outcome,
        AttemptOutcome::Succeeded { adopted: false },
        "{:?}",
        ran.outcome
    );
    let imds = requests_to(&mi.sim, "GET", "/metadata/identity/oauth2/token");
    assert_eq!(imds.len(), 1);
    assert_eq!(imds[0].header("metadata"), Some("true"));
    let q = imds[0].query.clone().unwrap_or_default();
    assert!(
        q.contains("api-version=2018-02-01") && q.contains("resource="),
        "{q}"
    );
}

fn job_with(steps: Vec<pbibatch::job::model::Step>) -> Job {
    let mut connections = IndexMap::new();
    connections.insert(
        "default".to_string(),
        Connection {
            name: "default".into(),
            cloud: Cloud::Public,
            credentials: Credentials::AccessToken {
                access_token: Secret::new("t"),
            },
            picked_because: None,
        },
    );
    Job {
        name: "j".into(),
        description: None,
        file: PathBuf::from("j.yaml"),
        file_hash: String::new(),
        capacity_limits: true,
        vars: IndexMap::new(),
        connections,
        concurrency: 1,
        pools: IndexMap::new(),
        steps: steps.into_iter().map(|s| (s.id.clone(), s)).collect(),
        fan_outs: IndexMap::new(),
    }
}

#[tokio::test]
async fn plain_http_is_refused_unless_loopback() {
    let hook = |url: &str| {
        StepKind::Webhook(WebhookStep {
            url: Secret::new(url),
            method: "POST".into(),
            headers: IndexMap::new(),
            body: None,
            expect_status: vec![],
            format: pbibatch::job::model::WebhookFormat::Plain,
            link: None,
        })
    };
    let job = job_with(vec![
        step("ok", hook("http://127.0.0.1:9/hooks/x")),
        step("bad", hook("http://hooks.example.com/x?sig=SECRET")),
        step("model", dataset("Sales", "Orders")),
    ]);
    let remote = ClientConfig::for_cloud(Cloud::Public).with_bases(
        Some(Url::parse("http://api.example.com").unwrap()),
        None,
        None,
        None,
    );
    let problems = check_urls(&job.outbound(), &remote).unwrap_err();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("step `bad`") && p.contains("http://hooks.example.com/***"))
    );
    assert!(
        !problems.iter().any(|p| p.contains("SECRET")),
        "{problems:?}"
    );
    assert!(problems.iter().all(|p| !p.contains("SECRET")));
    assert!(problems.iter().any(|p| p.contains("Power BI base")));
    let loopback = ClientConfig::for_cloud(Cloud::Public)
        .with_single_base(&Url::parse("http://127.0.0.1:1").unwrap());
    let job = job_with(vec![
        step("ok", hook("http://localhost:9/x")),
        step("model", dataset("S", "O")),
    ]);
    assert_eq!(check_urls(&job.outbound(), &loopback), Ok(()));

    // And the client itself refuses to send to a non-loopback http base.
    let client = PowerBiClient::new(remote, job.connections.clone()).unwrap();
    let rig = Rig {
        sim: pbibatch::sim::start(
            pbibatch::sim::Profile::default(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap(),
        client,
        connections: job.connections.clone(),
    };
    let ran = run_step(&rig, step("model", dataset("Sales", "Orders"))).await;
    assert!(ran.error().contains("plain http"), "{}", ran.error());
}

//! `pbibatch auth check`: the real binary against a simulator started by the test, reached
//! through the `PBIBATCH_*_URL` overrides, as a user would point it at a tenant.

use std::process::Output;

use crate::common::{pbibatch, texts};
use crate::sim_support::{PBI_SCOPE, start};

/// Runs `auth check` (plus `args`) with `env` in a temp dir, off the async runtime so the
/// simulator keeps serving.
pub(crate) async fn auth_check(env: Vec<(&'static str, String)>, args: &[&str]) -> Output {
    let mut all = vec!["auth", "check"];
    all.extend_from_slice(args);
    pbibatch_with(env, &all).await
}

/// Runs `pbibatch args...` with `env` in a temp dir, off the async runtime.
async fn pbibatch_with(env: Vec<(&'static str, String)>, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = pbibatch(dir.path());
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || {
        let out = cmd.output().unwrap();
        drop(dir);
        out
    })
    .await
    .unwrap()
}

pub(crate) fn urls(base: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PBIBATCH_POWERBI_URL", base.to_string()),
        ("PBIBATCH_FABRIC_URL", base.to_string()),
        ("PBIBATCH_AUTHORITY_URL", base.to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_credentials_show_tenant_client_expiry_and_workspaces() {
    let sim = start("workspaces:\n  A: {}\n  B: {}\n  C: {}\n").await;
    let mut env = urls(&sim.base_url());
    env.push(("AZURE_TENANT_ID", sim.tenant_id()));
    env.push(("AZURE_CLIENT_ID", sim.client_id()));
    env.push(("AZURE_CLIENT_SECRET", sim.client_secret()));
    let out = auth_check(env, &[]).await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("connection `default` (client secret): ok"),
        "{stdout}"
    );
    assert!(stdout.contains(&sim.tenant_id()), "{stdout}");
    assert!(stdout.contains(&sim.client_id()), "{stdout}");
    assert_eq!(
        stdout.matches("token acquired, expires ").count(),
        2,
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("3 workspaces visible").count(),
        2,
        "{stdout}"
    );
    assert!(!stdout.contains(&sim.client_secret()) && !stderr.contains(&sim.client_secret()));
    assert!(
        !stdout.contains("eyJ") && !stderr.contains("eyJ"),
        "no token printed"
    );
}

/// `auth check` with `secret` fails with Entra's `code` and the advice `what_to_do`, and never
/// prints the secret.
async fn refused_secret_is_explained(
    sim: &pbibatch::sim::SimServer,
    secret: &str,
    code: &str,
    what_to_do: &str,
) {
    let mut env = urls(&sim.base_url());
    env.push(("AZURE_TENANT_ID", sim.tenant_id()));
    env.push(("AZURE_CLIENT_ID", sim.client_id()));
    env.push(("AZURE_CLIENT_SECRET", secret.to_string()));
    let out = auth_check(env, &[]).await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("(client secret): FAILED"), "{stdout}");
    assert!(stdout.contains(code), "{stdout}");
    assert!(
        stdout.contains(&format!("what to do: {what_to_do}")),
        "{stdout}"
    );
    assert!(
        !stdout.contains(secret) && !stderr.contains(secret),
        "the secret never shows"
    );
    assert_eq!(sim.counters().tokens_issued, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_explained() {
    let sim = start("").await;
    // The secret's ID (a GUID) pasted instead of its value: the classic mistake.
    refused_secret_is_explained(
        &sim,
        "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
        "AADSTS7000215",
        "the client secret is wrong: it is probably the secret's ID",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_secret_is_explained() {
    // The right secret, past its expiry date: Entra answers AADSTS7000222.
    let sim = start("credentials:\n  client_secret_expired: true\nworkspaces:\n  A: {}\n").await;
    refused_secret_is_explained(
        &sim,
        &sim.client_secret(),
        "AADSTS7000222",
        "the client secret has expired: create a new one",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_explained() {
    // Every token the simulator mints is expired at once.
    let sim = start("token_lifetime: 0s\nstrict_audience: false\nworkspaces:\n  A: {}\n").await;
    let token = sim.user_token(PBI_SCOPE).unwrap();
    let mut env = urls(&sim.base_url());
    env.push(("PBIBATCH_ACCESS_TOKEN", token.clone()));
    let out = auth_check(env, &[]).await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("connection `default` (access token): FAILED"),
        "{stdout}"
    );
    assert!(stdout.contains("already expired"), "{stdout}");
    assert!(stdout.contains("TokenExpired"), "{stdout}");
    assert!(
        stdout.contains("what to do: the access token has expired"),
        "{stdout}"
    );
    // The tenant comes from the token's claims; the token itself never shows.
    assert!(stdout.contains(&sim.tenant_id()), "{stdout}");
    assert!(!stdout.contains(&token) && !stderr.contains(&token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_connections_are_checked_by_name() {
    let sim = start("").await;
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.yaml");
    std::fs::write(
        &job,
        "version: 1\nname: j\nconnections:\n  prod: { tenant_id: \"${env.T}\", client_id: \"${env.C}\", client_secret: \"${env.S}\" }\nsteps:\n  m: { type: dataset, workspace: W, dataset: M, connection: prod }\n",
    )
    .unwrap();
    let job = job.to_string_lossy().into_owned();
    let mut env = urls(&sim.base_url());
    env.push(("T", sim.tenant_id()));
    env.push(("C", sim.client_id()));
    env.push(("S", sim.client_secret()));
    let out = auth_check(env.clone(), &["--job", &job, "--connection", "prod"]).await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("connection `prod` (client secret): ok"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("`default`"),
        "only the named one: {stdout}"
    );

    let out = auth_check(env, &["--job", &job, "--connection", "nope"]).await;
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no connection `nope`"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_environment_is_bad_input() {
    let out = auth_check(Vec::new(), &[]).await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("AZURE_CLIENT_SECRET"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_tenant_is_explained() {
    let sim = start("").await;
    let mut env = urls(&sim.base_url());
    env.push(("AZURE_TENANT_ID", "contoso.onmicrosoft.com".to_string()));
    env.push(("AZURE_CLIENT_ID", sim.client_id()));
    env.push(("AZURE_CLIENT_SECRET", sim.client_secret()));
    let out = auth_check(env, &[]).await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("AADSTS90002"), "{stdout}");
    assert!(
        stdout.contains("what to do: the tenant does not exist"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_reads_credentials_from_a_job() {
    let sim = start("workspaces:\n  Sales:\n    datasets: { Revenue: {} }\n").await;
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.yaml");
    std::fs::write(
        &job,
        "version: 1\nname: j\nconnections:\n  prod: { tenant_id: \"${env.T}\", client_id: \"${env.C}\", client_secret: \"${env.S}\" }\nsteps:\n  m: { type: dataset, workspace: Sales, dataset: Revenue, connection: prod }\n",
    )
    .unwrap();
    let job = job.to_string_lossy().into_owned();
    let mut env = urls(&sim.base_url());
    env.push(("T", sim.tenant_id()));
    env.push(("C", sim.client_id()));
    env.push(("S", sim.client_secret()));
    let out = pbibatch_with(
        env.clone(),
        &[
            "discover",
            "--job",
            &job,
            "--connection",
            "prod",
            "--format",
            "json",
        ],
    )
    .await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["workspaces"][0]["datasets"][0]["name"], "Revenue");

    // The live check of the same job, with the same credentials: all there, nothing to say.
    let out = pbibatch_with(env, &["validate", "--lineage", "--format", "short", &job]).await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(!stdout.contains("live:"), "{stdout}");

    // Without --job there is only `default`.
    let out = pbibatch_with(Vec::new(), &["discover", "--connection", "prod"]).await;
    assert_eq!(out.status.code(), Some(2));
}

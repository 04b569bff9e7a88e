//! `pbibatch auth check --job` with `data_check` steps: one Execute Queries probe per model
//! a connection's checks query, answered or explained, against a simulator started by the
//! test (reached through the `PBIBATCH_*_URL` overrides).

use pbibatch::sim::SimServer;

use crate::auth_cli::{auth_check, urls};
use crate::common::texts;
use crate::sim_support::{PBI_SCOPE, start};

/// The probe `auth check` sends: one constant row, no table read.
const PROBE: &str = "EVALUATE ROW(\"pbibatch\", 1)";

/// A profile with a plain model, a second one and a model with row-level security; none
/// declares the probe.
fn profile(extra: &str) -> String {
    format!(
        "strict_audience: false\n{extra}workspaces:\n  Sales:\n    datasets:\n      Revenue: {{}}\n      Costs: {{}}\n      Secure: {{ rls_roles: [Manager] }}\n"
    )
}

/// A job whose connection `default` is a service principal (`T`, `C`, `S` from the
/// environment), or a signed-in user (`TOKEN`) when `user`.
fn job(user: bool, steps: &str) -> String {
    let conn = if user {
        "default: { access_token: \"${env.TOKEN}\" }"
    } else {
        "default: { tenant_id: \"${env.T}\", client_id: \"${env.C}\", client_secret: \"${env.S}\" }"
    };
    format!(
        "version: 1\nname: j\nconnections:\n  {conn}\nsteps:\n  model: {{ type: dataset, workspace: Sales, dataset: Revenue }}\n{steps}"
    )
}

fn check(id: &str, dataset: &str) -> String {
    format!(
        "  {id}:\n    type: data_check\n    workspace: Sales\n    dataset: {dataset}\n    query: \"EVALUATE ROW(\\\"n\\\", COUNTROWS('Orders'))\"\n    expect: {{ value: {{ min: 1 }} }}\n    depends_on: [model]\n"
    )
}

/// Runs `auth check --job` for `job_text` against `sim`: exit code, stdout then stderr.
async fn run(sim: &SimServer, job_text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.yaml");
    std::fs::write(&path, job_text).unwrap();
    let path = path.to_string_lossy().into_owned();
    let mut env = urls(&sim.base_url());
    env.push(("T", sim.tenant_id()));
    env.push(("C", sim.client_id()));
    env.push(("S", sim.client_secret()));
    env.push(("TOKEN", sim.user_token(PBI_SCOPE).unwrap()));
    let out = auth_check(env, &["--job", &path]).await;
    let (stdout, stderr) = texts(&out);
    (out.status.code(), format!("{stdout}{stderr}"))
}

/// The `executeQueries` calls the simulator received: (dataset id, query).
fn queries(sim: &SimServer) -> Vec<(String, String)> {
    sim.requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/executeQueries"))
        .map(|r| {
            let dataset = r.path.split('/').rev().nth(1).unwrap().to_string();
            let body = r.json().unwrap();
            (
                dataset,
                body["queries"][0]["query"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_probe_runs_once_per_model_and_only_for_data_checks() {
    let sim = start(&profile("")).await;
    // A fan-out over the models found at run time has no names before the run: not probed.
    let fan_out = "  each_model:\n    type: data_check\n    for_each: { discover: { workspace: Sales, items: semantic_models } }\n    workspace: Sales\n    dataset: \"${each.value}\"\n    query: \"EVALUATE ROW(\\\"n\\\", 1)\"\n    expect: { rows: { min: 1 } }\n";
    let steps = format!(
        "{}{}{}{fan_out}",
        check("a", "Revenue"),
        check("b", "Revenue"),
        check("c", "Costs")
    );
    let (code, stdout) = run(&sim, &job(false, &steps)).await;
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("connection `default` (client secret): ok"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  queries     Sales / Revenue: ok\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  queries     Sales / Costs: ok\n"),
        "{stdout}"
    );
    // Once per distinct model, with the constant probe (not the step's own query).
    let (_, revenue) = sim.ids("Sales", "Revenue").unwrap();
    let (_, costs) = sim.ids("Sales", "Costs").unwrap();
    assert_eq!(
        queries(&sim),
        [(revenue, PROBE.to_string()), (costs, PROBE.to_string())]
    );

    // A job without data checks: the same report as before, and no query.
    let sim = start(&profile("")).await;
    let (code, stdout) = run(&sim, &job(false, "")).await;
    assert_eq!(code, Some(0), "{stdout}");
    assert!(!stdout.contains("queries"), "{stdout}");
    assert!(queries(&sim).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_probe_passes_for_a_user_and_a_service_principal_on_a_plain_model() {
    let sim = start(&profile("")).await;
    for user in [true, false] {
        let (code, stdout) = run(&sim, &job(user, &check("a", "Revenue"))).await;
        assert_eq!(code, Some(0), "{stdout}");
        assert!(
            stdout.contains("  queries     Sales / Revenue: ok\n"),
            "{stdout}"
        );
    }
    assert_eq!(queries(&sim).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_probe_explains_that_a_service_principal_cannot_query_a_model_with_rls() {
    let sim = start(&profile("")).await;
    let (code, stdout) = run(&sim, &job(false, &check("a", "Secure"))).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("connection `default` (client secret): FAILED"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  queries     Sales / Secure: failed: ")
            && stdout.contains("answered 401: PowerBINotAuthorizedException"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "              what to do: this model has row-level security (it requires an effective identity), and a service principal cannot query such a model, whatever the tenant settings: run this model's data checks on a connection that signs in as a user"
        ),
        "{stdout}"
    );
    // A signed-in user may query it.
    let (code, stdout) = run(&sim, &job(true, &check("a", "Secure"))).await;
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("  queries     Sales / Secure: ok\n"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_probe_names_the_tenant_settings_when_the_service_refuses() {
    // The tenant setting off: refused for everyone; a user is told of it alone.
    let sim = start(&profile("execute_queries: { enabled: false }\n")).await;
    let (code, stdout) = run(&sim, &job(true, &check("a", "Revenue"))).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("  queries     Sales / Revenue: failed: ")
            && stdout.contains("answered 401: PowerBINotAuthorizedException"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "what to do: an admin must enable the tenant setting \"Dataset Execute Queries REST API\" (Admin portal > Tenant settings > Integration settings); the identity needs Read and Build permission on the model"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("Service principals can use"), "{stdout}");

    // Service principals not allowed: a service principal is told of both settings.
    let sim = start(&profile("execute_queries: { service_principals: false }\n")).await;
    let (code, stdout) = run(&sim, &job(false, &check("a", "Revenue"))).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("\"Dataset Execute Queries REST API\" (Admin portal > Tenant settings > Integration settings) and, for a service principal, \"Service principals can use Fabric APIs\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("a service principal cannot query a model with row-level security or SSO"),
        "{stdout}"
    );
    // The model has no RLS: the RLS answer is not given.
    assert!(
        !stdout.contains("this model has row-level security"),
        "{stdout}"
    );
}

#[test]
fn the_example_checks_its_data_check_model_as_the_user_it_runs_as_on_the_simulator() {
    // `connection: analyst` is an access token (a user): on the simulator it stays a user,
    // as `run --simulate` keeps it, so the RLS model it checks answers.
    let out = crate::common::pbibatch(&crate::common::repo())
        .args([
            "auth",
            "check",
            "--job",
            "examples/after_the_refresh.yaml",
            "--simulate",
            "--sim-profile",
            "examples/profiles/after_the_refresh.yaml",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("connection `analyst` (access token): ok"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  queries     Sales / Sales: ok\n"),
        "{stdout}"
    );
}

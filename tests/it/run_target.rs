//! Runs belong to a target: a rehearsal (`--simulate`) and a run against a tenant share one
//! history store, and `--resume` never carries successes from one to the other.
//!
//! The "tenant" is a simulator started here, apart from the runs, and reached the way a real
//! tenant is: `PBIBATCH_POWERBI_URL` / `FABRIC_URL` / `AUTHORITY_URL` and client credentials.

use std::path::Path;

use pbibatch::sim::{SimServer, resource_key};

use crate::common::{pbibatch, repo, texts};

/// What the rehearsal's simulator does: everything succeeds at once, but the export fails.
const REHEARSAL: &str = "
defaults: { duration: 0s, history_lag: 0s }
workspaces:
  Data Admin:
    reports:
      Order Book: { outcomes: [fail] }
";

/// The tenant: the same resources; its first export fails, the next succeeds.
const TENANT: &str = "
defaults: { duration: 0s, history_lag: 0s }
workspaces:
  Data Admin:
    datasets:
      ORDER_LIST: {}
    dataflows:
      Master Order List: {}
    reports:
      Order Book: { dataset: ORDER_LIST, outcomes: [fail, succeed] }
flows:
  order_list_flow:
    starts_dataflow: { workspace: Data Admin, dataflow: Master Order List }
hooks:
  teams: {}
";

/// `pbibatch run job.yaml --retries 0 ARGS` in `dir`, against `tenant` when given (its URLs
/// and credentials in the environment), else with only what `args` says.
fn run(dir: &Path, tenant: Option<&SimServer>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = pbibatch(dir);
    cmd.args(["run", "job.yaml", "--retries", "0", "--progress", "never"])
        .args(args);
    if let Some(sim) = tenant {
        cmd.env("PBIBATCH_POWERBI_URL", sim.base_url())
            .env("PBIBATCH_FABRIC_URL", sim.base_url())
            .env("PBIBATCH_AUTHORITY_URL", sim.base_url())
            .env("AZURE_TENANT_ID", sim.tenant_id())
            .env("AZURE_CLIENT_ID", sim.client_id())
            .env("AZURE_CLIENT_SECRET", sim.client_secret())
            .env("ORDER_LIST_FLOW_URL", sim.flow_url("order_list_flow"))
            .env("TEAMS_WEBHOOK_URL", sim.hook_url("teams"));
    }
    let out = cmd.output().unwrap();
    let (stdout, stderr) = texts(&out);
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

/// The message without miette's wrapping and frame.
fn flat(text: &str) -> String {
    text.replace(['│', '×'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn triggers(sim: &SimServer, kind: &str, name: &str) -> u64 {
    sim.counters()
        .resource(&resource_key(kind, "Data Admin", name))
        .triggers
}

fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo().join("jobs/order_list.yaml"),
        dir.path().join("job.yaml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("rehearsal.yaml"), REHEARSAL).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_target_real_resume_of_a_simulated_run_is_refused_and_sends_nothing() {
    let dir = workdir();
    // The runbook's rehearsal: simulated, in the default store; the export fails.
    let (code, _, stderr) = run(
        dir.path(),
        None,
        &["--simulate", "--sim-profile", "rehearsal.yaml"],
    );
    assert_eq!(code, 1, "{stderr}");

    // The real resume, same store: refused before anything reaches the tenant.
    let tenant = crate::sim_support::start(TENANT).await;
    let (code, stdout, stderr) = run(
        dir.path(),
        Some(&tenant),
        &["--resume", "last", "--report", "r.json"],
    );
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    let base = tenant.base_url();
    let expected = format!(
        "ran against the simulator (--simulate); this run targets tenant {} at {base} \
         (Fabric {base}, authority {base}, cloud public): resume refused, nothing was sent; \
         run without --resume, or rehearse with --simulate --state <another file> so \
         rehearsals never share a history with real runs",
        tenant.tenant_id()
    );
    assert!(flat(&stderr).contains(&expected), "{stderr}");
    assert!(tenant.requests().is_empty(), "{:?}", tenant.requests());
    let c = tenant.counters();
    assert_eq!((c.requests, c.tokens_issued), (0, 0));
    assert!(!dir.path().join("r.json").exists());

    // `history` and `show` say which run was which.
    let out = pbibatch(dir.path()).args(["history"]).output().unwrap();
    let (history, _) = texts(&out);
    assert!(history.contains("TARGET"), "{history}");
    assert!(history.contains(" failed  simulated "), "{history}");
    assert_eq!(
        history.lines().count(),
        2,
        "the refused resume is no run: {history}"
    );
    tenant.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_target_resume_within_one_target_keeps_what_succeeded_there() {
    let dir = workdir();
    let tenant = crate::sim_support::start(TENANT).await;
    // A real run: the export fails on the tenant.
    let (code, _, stderr) = run(dir.path(), Some(&tenant), &[]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(triggers(&tenant, "dataset", "ORDER_LIST"), 1);

    // A rehearsal cannot continue it...
    let (code, _, stderr) = run(
        dir.path(),
        None,
        &[
            "--simulate",
            "--sim-profile",
            "rehearsal.yaml",
            "--resume",
            "last",
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        flat(&stderr).contains("this run targets the simulator (--simulate): resume refused"),
        "{stderr}"
    );

    // ...the real resume does: the model and the dataflow are not refreshed again.
    let (code, stdout, stderr) = run(
        dir.path(),
        Some(&tenant),
        &["--resume", "last", "--report", "r.json"],
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(triggers(&tenant, "dataset", "ORDER_LIST"), 1);
    assert_eq!(triggers(&tenant, "dataflow", "Master Order List"), 1);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(report["status"], "succeeded");

    // `show --format json` names the tenant and its endpoints, no secret.
    let out = pbibatch(dir.path())
        .args(["show", "last", "--format", "json"])
        .output()
        .unwrap();
    let (shown, _) = texts(&out);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let base = tenant.base_url();
    assert_eq!(
        shown["target"],
        serde_json::json!({
            "kind": "service",
            "tenants": [tenant.tenant_id()],
            "endpoints": [{
                "cloud": "public",
                "powerbi_url": base,
                "fabric_url": base,
                "authority_url": base,
            }],
        })
    );
    let db = std::fs::read(dir.path().join(".pbibatch/state.db")).unwrap();
    let secret = tenant.client_secret();
    assert!(
        !db.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the client secret reached the store"
    );
    tenant.shutdown().await;
}

//! `kill -9` of a real `pbibatch run` against the simulator, then `--resume last`: what
//! succeeded is not triggered again, the refresh that was in flight is re-attached (no extra
//! trigger in the simulator), the rest completes, and the final report is complete.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use pbibatch::sim::{SimServer, resource_key};
use pbibatch::store::Store;

use crate::common::{pbibatch, texts};

const PROFILE: &str = "
defaults: { duration: 0s }
workspaces:
  WS:
    datasets:
      Prep: {}
      Model: { duration: 5s }
      After: {}
      Flaky: { outcomes: [fail, succeed] }
";

/// prep -> model -> after, and an independent `flaky` that fails the first time.
const JOB: &str = "
version: 1
name: killed_job
defaults: { retries: 0, poll_interval: 1s }
steps:
  prep:   { type: dataset, workspace: WS, dataset: Prep }
  model:  { type: dataset, workspace: WS, dataset: Model, depends_on: [prep] }
  after:  { type: dataset, workspace: WS, dataset: After, depends_on: [model] }
  flaky:  { type: dataset, workspace: WS, dataset: Flaky }
";

fn run_cmd(dir: &Path, sim: &SimServer, extra: &[&str]) -> tokio::process::Command {
    let mut cmd = pbibatch(dir);
    cmd.args(["run", "job.yaml"])
        .args(extra)
        .env("PBIBATCH_POWERBI_URL", sim.base_url())
        .env("PBIBATCH_FABRIC_URL", sim.base_url())
        .env("PBIBATCH_AUTHORITY_URL", sim.base_url())
        .env("AZURE_TENANT_ID", sim.tenant_id())
        .env("AZURE_CLIENT_ID", sim.client_id())
        .env("AZURE_CLIENT_SECRET", sim.client_secret())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tokio::process::Command::from(cmd)
}

fn triggers(sim: &SimServer, dataset: &str) -> u64 {
    sim.counters()
        .resource(&resource_key("dataset", "WS", dataset))
        .triggers
}

/// True once the store shows `model` in flight with a remote handle and `flaky` failed.
fn ready_to_kill(state: &Path) -> bool {
    let Ok(Some(store)) = Store::open_existing(state) else {
        return false;
    };
    let Ok(run) = store.load_run("last") else {
        return false;
    };
    let step = |id: &str| run.steps.iter().find(|s| s.id == id);
    let model_in_flight = step("model").is_some_and(|s| {
        s.status == "running"
            && s.attempts
                .last()
                .and_then(|a| a.remote.as_ref())
                .is_some_and(|r| r.handle.is_some())
    });
    let flaky_failed = step("flaky").is_some_and(|s| s.status == "failed");
    model_in_flight && flaky_failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_kill_9_then_resume_reattaches_the_refresh_in_flight() {
    let sim = crate::sim_support::start(PROFILE).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.yaml"), JOB).unwrap();
    let state = dir.path().join(".pbibatch/state.db");

    let mut first = run_cmd(dir.path(), &sim, &["--report", "first.json"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Wait for an observable state, not for a time: the bound only keeps a broken build
    // from hanging the suite.
    let mut waited = 0;
    while !ready_to_kill(&state) {
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended before it could be killed"
        );
        assert!(waited < 1200, "the first run never reached the kill point");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    assert!(
        !dir.path().join("first.json").exists(),
        "a killed run writes no report"
    );

    let killed = Store::open(&state).unwrap().load_run("last").unwrap();
    assert_eq!(killed.status, "incomplete");
    assert_eq!((triggers(&sim, "Prep"), triggers(&sim, "Model")), (1, 1));
    assert_eq!(triggers(&sim, "Flaky"), 1);

    let out = run_cmd(
        dir.path(),
        &sim,
        &["--resume", "last", "--report", "second.json"],
    )
    .output()
    .await
    .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");

    // Nothing that succeeded or was in flight was triggered again.
    assert_eq!(triggers(&sim, "Prep"), 1, "prep re-triggered");
    assert_eq!(
        triggers(&sim, "Model"),
        1,
        "model re-triggered instead of re-attached"
    );
    assert_eq!(triggers(&sim, "After"), 1);
    assert_eq!(triggers(&sim, "Flaky"), 2);

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("second.json")).unwrap())
            .unwrap();
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["resumed_from"], killed.run_id.as_str());
    assert_eq!(report["counts"]["succeeded"], 4);
    let step = |id: &str| {
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(
        step("prep")["reason"],
        format!("succeeded in run {}", killed.run_id)
    );
    assert_eq!(step("prep")["attempts"].as_array().unwrap().len(), 0);
    assert_eq!(step("model")["status"], "succeeded");
    assert_eq!(step("model")["attempts"].as_array().unwrap().len(), 1);

    // The history tells the same story, and `show` agrees with the report.
    let store = Store::open(&state).unwrap();
    let runs = store.history(Some("killed_job"), 10).unwrap();
    let statuses: Vec<&str> = runs.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["succeeded", "incomplete"]);
    let mut shown = store.load_run("last").unwrap().to_json();
    let extras = shown.as_object_mut().unwrap();
    extras.remove("job_hash");
    extras.remove("arguments");
    let target = extras.remove("target").unwrap();
    assert_eq!(target["kind"], "service");
    assert_eq!(target["tenants"][0], sim.tenant_id().as_str());
    assert_eq!(shown, report);
    assert!(store.lock_holder("killed_job").unwrap().is_none());
    sim.shutdown().await;
}

const FLOW_PROFILE: &str = "
workspaces:
  WS:
    dataflows:
      Master: { duration: 4s }
flows:
  order_list:
    delay: 200ms
    starts_dataflow: { workspace: WS, dataflow: Master }
hooks:
  teams: {}
";

/// The main job's first step: a Power Automate flow that refreshes a Gen1 dataflow.
fn flow_job(sim: &SimServer) -> String {
    format!(
        "
version: 1
name: killed_flow
defaults: {{ retries: 0, poll_interval: 1s }}
steps:
  master_order_list:
    type: sas_flow
    url: \"{}\"
    body: {{ dataflow: Master }}
    wait_for: {{ workspace: WS, dataflow: Master }}
  model: {{ type: webhook, url: \"{}\", depends_on: [master_order_list] }}
",
        sim.flow_url("order_list"),
        sim.hook_url("teams")
    )
}

/// True once the store shows the flow step waiting on a transaction it found.
fn flow_waiting(state: &Path) -> bool {
    let Ok(Some(store)) = Store::open_existing(state) else {
        return false;
    };
    let Ok(run) = store.load_run("last") else {
        return false;
    };
    run.steps.iter().any(|s| {
        s.id == "master_order_list"
            && s.status == "running"
            && s.attempts
                .last()
                .and_then(|a| a.remote.as_ref())
                .and_then(|r| r.handle.as_ref())
                .is_some_and(|h| h.run_id().is_some())
    })
}

fn flow_posts(sim: &SimServer) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains("/triggers/manual/paths/invoke"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_kill_9_while_a_flow_waits_then_resume_does_not_fire_the_flow_again() {
    let sim = crate::sim_support::start(FLOW_PROFILE).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.yaml"), flow_job(&sim)).unwrap();
    let state = dir.path().join(".pbibatch/state.db");

    let mut first = run_cmd(dir.path(), &sim, &[])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut waited = 0;
    while !flow_waiting(&state) {
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended before it could be killed"
        );
        assert!(waited < 1200, "the first run never reached the kill point");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    assert_eq!(flow_posts(&sim), 1);

    let out = run_cmd(
        dir.path(),
        &sim,
        &["--resume", "last", "--report", "r.json"],
    )
    .output()
    .await
    .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(flow_posts(&sim), 1, "the resumed run fired the flow again");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    let flow = &report["steps"][0];
    assert_eq!(flow["status"], "succeeded");
    assert_eq!(flow["attempts"][0]["triggers"], 0);
    sim.shutdown().await;
}

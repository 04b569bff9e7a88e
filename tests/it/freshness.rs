//! `freshness` steps end to end over loopback: the last successful run of a dataset, a Gen1
//! dataflow and a pipeline read from the service's history (the simulator's past runs end
//! 1 h, 2 h, ... before it starts), judged against `max_age` / `warn_after`, nothing
//! triggered, the verdict in the report.

use std::net::SocketAddr;

use pbibatch::sim::{Profile, SimServer};
use serde_json::Value;

use crate::common::{pbibatch_against, texts};

async fn simulator() -> SimServer {
    let profile = Profile::from_yaml(
        "workspaces:\n  Sales:\n    datasets:\n      Revenue: { past_runs: 3, past_duration: 5m }\n      Never: {}\n    dataflows:\n      Orders: { past_runs: 2, past_duration: 5m }\n    items:\n      Load: { type: DataPipeline, past_runs: 2, past_duration: 5m }\n",
    )
    .unwrap();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    pbibatch::sim::start(profile, addr).await.unwrap()
}

const JOB: &str = r#"version: 1
name: fresh
defaults: { retries: 2 }
steps:
  revenue_fresh: { type: freshness, workspace: Sales, dataset: Revenue, max_age: 2h }
  revenue_warn: { type: freshness, workspace: Sales, dataset: Revenue, warn_after: 30m, max_age: 3h }
  revenue_stale: { type: freshness, workspace: Sales, dataset: Revenue, max_age: 30m }
  never_refreshed: { type: freshness, workspace: Sales, dataset: Never, max_age: 1d }
  orders_fresh: { type: freshness, workspace: Sales, dataflow: Orders, max_age: 90m }
  load_fresh: { type: freshness, workspace: Sales, item: Load, item_type: pipeline, max_age: 90m }
"#;

#[tokio::test]
async fn freshness_reads_the_history_judges_the_age_and_triggers_nothing() {
    let sim = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.yaml"), JOB).unwrap();
    let mut cmd = pbibatch_against(dir.path(), &sim);
    cmd.args(["run", "job.yaml", "--state", "none", "--report", "run.json"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("run.json")).unwrap())
            .unwrap();
    let step = |id: &str| {
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()
            .clone()
    };
    for id in ["revenue_fresh", "orders_fresh", "load_fresh"] {
        let s = step(id);
        assert_eq!(s["status"], "succeeded", "{id}: {s}");
        assert_eq!(s["check"]["passed"], true, "{id}: {s}");
        assert!(
            s["check"]["observed"]
                .as_str()
                .unwrap()
                .contains("(1h ago)"),
            "{id}: {s}"
        );
    }
    let warn = step("revenue_warn");
    assert_eq!(warn["status"], "succeeded");
    assert!(
        warn["warning"].as_str().unwrap().starts_with(
            "check warning: expected last success at most 3h, warn after 30m ago, got ended "
        ),
        "{warn}"
    );
    let stale = step("revenue_stale");
    assert_eq!(stale["status"], "failed");
    assert!(
        stale["error"]
            .as_str()
            .unwrap()
            .starts_with("check failed: expected last success at most 30m ago, got ended "),
        "{stale}"
    );
    // A stale resource does not freshen by asking again: no retry.
    assert_eq!(stale["attempts"].as_array().unwrap().len(), 1);
    let never = step("never_refreshed");
    assert_eq!(never["status"], "failed");
    assert_eq!(
        never["check"]["observed"],
        "no successful run in the service's history"
    );
    // Nothing was triggered: only reads.
    let writes: Vec<String> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET" && !r.path.contains("/oauth2/"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
}

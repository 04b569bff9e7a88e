//! A first run already knows durations: with no local history, the service's own run history
//! ranks the steps (longest remaining work first), and every attempt reports the status reads
//! it made. The real binary against its simulator (`--simulate`).

use std::path::Path;

use crate::common::{pbibatch, texts};

/// Three independent refreshes, one slot: the order they start in is the ranking.
const JOB: &str = r#"
version: 1
name: first_run
concurrency: 1
defaults: { retries: 0, poll_interval: 1s }
steps:
  quick_a: { type: dataset, workspace: Sales, dataset: A }
  quick_b: { type: dataset, workspace: Sales, dataset: B }
  slow: { type: dataset, workspace: Sales, dataset: C }
"#;

fn run(dir: &Path, profile: &str) -> serde_json::Value {
    std::fs::write(dir.join("job.yaml"), JOB).unwrap();
    std::fs::write(dir.join("profile.yaml"), profile).unwrap();
    let out = pbibatch(dir)
        .args([
            "run",
            "--simulate",
            "--sim-profile",
            "profile.yaml",
            "--report",
            "r.json",
            "--state",
            "state.db",
            "job.yaml",
        ])
        .output()
        .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    serde_json::from_str(&std::fs::read_to_string(dir.join("r.json")).unwrap()).unwrap()
}

/// Step ids in the order they started.
fn start_order(report: &serde_json::Value) -> Vec<String> {
    let mut steps: Vec<(String, String)> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["started_at"].as_str().unwrap().to_string(),
                s["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    steps.sort();
    steps.into_iter().map(|(_, id)| id).collect()
}

#[test]
fn a_first_run_ranks_steps_by_the_services_run_history() {
    // Control: without history in the service, ties go in job order.
    let plain = tempfile::tempdir().unwrap();
    let report = run(
        plain.path(),
        "time_scale: 20\nworkspaces:\n  Sales:\n    datasets:\n      A: { duration: 2s }\n      B: { duration: 2s }\n      C: { duration: 40s }\n",
    );
    assert_eq!(start_order(&report), ["quick_a", "quick_b", "slow"]);

    // The same job where each model refreshed three times before: the slow one goes first.
    let known = tempfile::tempdir().unwrap();
    let report = run(
        known.path(),
        "time_scale: 20\ndefaults: { past_runs: 3 }\nworkspaces:\n  Sales:\n    datasets:\n      A: { duration: 2s }\n      B: { duration: 2s }\n      C: { duration: 40s }\n",
    );
    assert_eq!(start_order(&report)[0], "slow", "{report:#}");
}

#[test]
fn every_attempt_reports_the_status_reads_it_made() {
    let dir = tempfile::tempdir().unwrap();
    let report = run(
        dir.path(),
        "workspaces:\n  Sales:\n    datasets:\n      A: { duration: 3s }\n      B: { duration: 0s }\n      C: { duration: 0s }\n",
    );
    for step in report["steps"].as_array().unwrap() {
        let attempt = &step["attempts"][0];
        // At least the history read before the trigger and the one that found the refresh.
        let reads = attempt["reads"].as_u64().unwrap();
        assert!(reads >= 2, "{step:#}");
        assert_eq!(attempt["triggers"], 1, "{step:#}");
    }
    let slow = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "quick_a")
        .unwrap();
    // A 3 s refresh polled from 1 s pauses takes more reads than an instant one.
    assert!(
        slow["attempts"][0]["reads"].as_u64().unwrap() > 2,
        "{slow:#}"
    );

    // `show` rebuilds the same figure from the state store.
    let out = pbibatch(dir.path())
        .args(["show", "last", "--state", "state.db", "--format", "json"])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("\"reads\""), "{stdout}");
}

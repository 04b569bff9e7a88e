//! Capacity-aware limits end to end: the real binary against a simulator whose workspaces
//! sit on capacities with SKUs; the concurrency is counted from the simulator's run log (when
//! each refresh was created and ended), not from timing on the client side.

use std::net::SocketAddr;

use pbibatch::sim::{Profile, SimServer};

use crate::common::{pbibatch, pbibatch_against, texts};

const ESTATE: &str = r#"
defaults: { duration: 500ms, history_lag: 0s }
capacities:
  small: { subscription: 11111111-2222-3333-4444-555555555555, resource_group: analytics, sku: F4 }
workspaces:
  Sales:
    capacity: small
    datasets: { M1: {}, M2: {}, M3: {}, M4: {}, M5: {}, M6: {} }
  Pro Team:
    shared_capacity: true
    datasets: { Budget: {} }
"#;

fn job(extra: &str) -> String {
    let mut steps = String::new();
    for i in 1..=6 {
        steps.push_str(&format!(
            "  m{i}: {{ type: dataset, workspace: Sales, dataset: M{i} }}\n"
        ));
    }
    format!(
        "version: 1\nname: limits\nconcurrency: 10\n{extra}defaults: {{ poll_interval: 100ms }}\nsteps:\n{steps}  budget: {{ type: dataset, workspace: Pro Team, dataset: Budget }}\n"
    )
}

async fn simulator() -> SimServer {
    let profile = Profile::from_yaml(ESTATE).unwrap();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    pbibatch::sim::start(profile, addr).await.unwrap()
}

async fn run(sim: &SimServer, job: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.yaml"), job).unwrap();
    let mut cmd = pbibatch_against(dir.path(), sim);
    cmd.args(["run", "job.yaml", "--state", "none"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = texts(&out);
    (out.status.code(), format!("{stdout}{stderr}"))
}

/// The most refreshes of the `Sales` workspace's models the simulator had alive at once.
fn most_at_once(sim: &SimServer) -> usize {
    let mut edges: Vec<(u64, i32)> = Vec::new();
    for r in sim.runs() {
        if r.kind == "refresh" && r.resource.starts_with("dataset:Sales/") {
            edges.push((r.created_ms, 1));
            edges.push((r.ended_ms.expect("every refresh ended"), -1));
        }
    }
    // At the same instant an end comes before a start: a refresh triggered when the previous
    // one ended does not overlap it.
    edges.sort();
    let (mut alive, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        alive += d;
        most = most.max(alive);
    }
    most as usize
}

#[tokio::test]
async fn refreshes_on_one_capacity_stay_within_its_sku_and_shared_capacity_is_warned() {
    let sim = simulator().await;
    let (code, text) = run(&sim, &job("")).await;
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        sim.runs()
            .iter()
            .filter(|r| r.resource.starts_with("dataset:Sales/"))
            .count(),
        6
    );
    // F4 allows 2 model refreshes at once (docs/capacity.md); concurrency 10 would run 6.
    assert_eq!(most_at_once(&sim), 2, "{text}");
    assert!(
        text.contains("warning: workspace `Pro Team` is on shared capacity: the service allows 8 refreshes of a model per day"),
        "{text}"
    );
    // Learning the capacities cost one `GET capacities`; the workspace lookups are the ones
    // the steps make anyway (one per workspace).
    let requests = sim.requests();
    let count = |f: &dyn Fn(&pbibatch::sim::RecordedRequest) -> bool| {
        requests.iter().filter(|r| f(r)).count()
    };
    assert_eq!(count(&|r| r.path == "/v1.0/myorg/capacities"), 1);
    assert_eq!(count(&|r| r.path == "/v1.0/myorg/groups"), 2);
}

#[tokio::test]
async fn capacity_limits_off_leaves_only_the_jobs_own_limits() {
    let sim = simulator().await;
    let (code, text) = run(&sim, &job("capacity_limits: off\n")).await;
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(most_at_once(&sim), 6, "{text}");
    assert!(!text.contains("shared capacity"), "{text}");
    assert!(
        !sim.requests()
            .iter()
            .any(|r| r.path == "/v1.0/myorg/capacities")
    );
}

#[test]
fn plan_shows_the_capacity_limits_it_will_respect() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.yaml"), job("")).unwrap();
    std::fs::write(dir.path().join("estate.yaml"), ESTATE).unwrap();
    let out = pbibatch(dir.path())
        .args([
            "plan",
            "job.yaml",
            "--capacities",
            "--simulate",
            "--sim-profile",
            "estate.yaml",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let tail = stdout
        .split_once("capacity limits")
        .map(|(_, t)| format!("capacity limits{t}"))
        .unwrap_or_else(|| panic!("no capacity section:\n{stdout}"));
    insta::assert_snapshot!("plan_capacities", tail);

    // Without --capacities, plan stays offline and says nothing about capacities.
    let out = pbibatch(dir.path())
        .args(["plan", "job.yaml"])
        .output()
        .unwrap();
    let (stdout, _) = texts(&out);
    assert!(!stdout.contains("capacity limits"), "{stdout}");
}

/// A fan-out over the six models of `Sales`: written as a list, or found at run time.
fn fan_out_job(extra: &str, for_each: &str, pool: &str) -> String {
    format!(
        "version: 1\nname: limits\nconcurrency: 10\n{extra}defaults: {{ poll_interval: 100ms }}\nsteps:\n  models:\n    type: dataset\n    workspace: Sales\n    dataset: \"${{each.value}}\"\n    for_each: {for_each}\n{pool}"
    )
}

const SIX: &str = "[M1, M2, M3, M4, M5, M6]";
const DISCOVER: &str = "{ discover: { workspace: Sales, items: semantic_models, name: \"M*\" } }";

#[tokio::test]
async fn a_pool_limit_holds_across_the_expansions_of_a_fan_out() {
    // Issue 18, point 3: limits apply to the expansions, one pool slot per expansion, for a
    // listed fan-out and a discovered one alike.
    for for_each in [SIX, DISCOVER] {
        let sim = simulator().await;
        let job = fan_out_job(
            "capacity_limits: off\npools: { model_pool: 2 }\n",
            for_each,
            "    pool: model_pool\n",
        );
        let (code, text) = run(&sim, &job).await;
        assert_eq!(code, Some(0), "{text}");
        assert_eq!(
            sim.runs()
                .iter()
                .filter(|r| r.resource.starts_with("dataset:Sales/"))
                .count(),
            6,
            "{for_each}: {text}"
        );
        assert_eq!(most_at_once(&sim), 2, "{for_each}: {text}");
    }
}

#[tokio::test]
async fn the_capacity_limit_holds_across_the_expansions_of_a_fan_out() {
    for for_each in [SIX, DISCOVER] {
        let sim = simulator().await;
        let (code, text) = run(&sim, &fan_out_job("", for_each, "")).await;
        assert_eq!(code, Some(0), "{text}");
        // F4 allows 2 model refreshes at once; concurrency 10 would run all 6.
        assert_eq!(most_at_once(&sim), 2, "{for_each}: {text}");
        // And the job's own `concurrency` holds too.
        let sim = simulator().await;
        let (code, text) = run(
            &sim,
            &fan_out_job("capacity_limits: off\n", for_each, "")
                .replace("concurrency: 10", "concurrency: 3"),
        )
        .await;
        assert_eq!(code, Some(0), "{text}");
        assert_eq!(most_at_once(&sim), 3, "{for_each}: {text}");
    }
}

//! The `fabric_job` step (pipelines, notebooks, Spark job definitions, copy jobs) end to end
//! against the simulator: the Job Scheduler request of each item type, `failureReason`,
//! timeout and interrupt cancel the job instance, resume follows it, a lost trigger answer is
//! recovered from the listing without a second start, `if_running`, `skip_if_fresh`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use pbibatch::engine::{self, EngineOptions};
use pbibatch::event::{RemoteHandle, StepStatus};
use pbibatch::executor::{AttemptOutcome, Cancel, CancelReason, Dispatcher};
use pbibatch::job::model::{FabricItemType, FabricJobStep, IfRunning, StepKind};
use pbibatch::plan::Plan;
use pbibatch::reporter::Reporters;
use pbibatch::sim::{Fault, FaultRule};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::exec_support::{
    AttemptOptions, Rig, job, requests_to, rig, run_step, run_step_with, step,
};

fn fabric(item_type: FabricItemType, item: &str) -> FabricJobStep {
    FabricJobStep {
        workspace: "WS".into(),
        item: item.into(),
        item_type,
        parameters: IndexMap::new(),
        configuration: None,
    }
}

fn pipeline(item: &str) -> StepKind {
    StepKind::FabricJob(fabric(FabricItemType::Pipeline, item))
}

async fn until_seen(rig: &Rig, method: &str, fragment: &str) {
    for _ in 0..600 {
        if !requests_to(&rig.sim, method, fragment).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the simulator never saw {method} {fragment}");
}

const ESTATE: &str = r#"
workspaces:
  WS:
    items:
      Nightly Load: { type: DataPipeline, duration: 300ms, retry_after: 0 }
      Transform: { type: Notebook, duration: 300ms, retry_after: 0 }
      Spark Batch: { type: SparkJobDefinition, duration: 300ms, retry_after: 0 }
      Copy Orders: { type: CopyJob, duration: 300ms, retry_after: 0 }
"#;

#[tokio::test]
async fn each_item_type_runs_its_job_type_with_its_parameters() {
    let rig = rig(ESTATE).await;
    let mut p = fabric(FabricItemType::Pipeline, "Nightly Load");
    p.parameters.insert("region".into(), json!("EU"));
    p.parameters.insert("days".into(), json!(3));
    let mut n = fabric(FabricItemType::Notebook, "Transform");
    n.parameters.insert("region".into(), json!("EU"));
    n.parameters.insert("full".into(), json!(true));
    n.configuration = Some(json!({
        "conf": {"spark.sql.shuffle.partitions": "64"},
        "defaultLakehouse": {"name": "Sales"},
        "useStarterPool": true
    }));
    let cases = [
        (
            StepKind::FabricJob(p),
            "jobType=Pipeline",
            Some(json!({"executionData": {"parameters": {"region": "EU", "days": 3}}})),
        ),
        (
            StepKind::FabricJob(n),
            "jobType=RunNotebook",
            Some(json!({"executionData": {
                "parameters": {
                    "region": {"value": "EU", "type": "string"},
                    "full": {"value": true, "type": "bool"}
                },
                "configuration": {
                    "conf": {"spark.sql.shuffle.partitions": "64"},
                    "defaultLakehouse": {"name": "Sales"},
                    "useStarterPool": true
                }
            }})),
        ),
        (
            StepKind::FabricJob(fabric(FabricItemType::SparkJobDefinition, "Spark Batch")),
            "jobType=sparkjob",
            None,
        ),
        (
            StepKind::FabricJob(fabric(FabricItemType::CopyJob, "Copy Orders")),
            "jobType=CopyJob",
            None,
        ),
    ];
    for (i, (kind, query, body)) in cases.into_iter().enumerate() {
        let ran = run_step(&rig, step("job", kind)).await;
        assert_eq!(
            ran.outcome,
            AttemptOutcome::Succeeded { adopted: false },
            "{query}: {:?}",
            ran.updates
        );
        let posts = requests_to(&rig.sim, "POST", "/jobs/instances");
        assert_eq!(posts.len(), i + 1, "{query}");
        let post = posts.last().unwrap();
        assert_eq!(post.query.as_deref(), Some(query));
        assert_eq!(post.json(), body, "{query}");
        // The item was found by name among the workspace's items of its type.
        assert!(
            ran.updates
                .iter()
                .any(|u| u.resource.as_ref().is_some_and(|r| !r.name.is_empty())),
            "{query}"
        );
    }
}

#[tokio::test]
async fn an_item_named_by_id_is_run_without_a_lookup_and_a_wrong_name_is_refused() {
    let rig = rig(ESTATE).await;
    let (_, id) = rig.sim.ids("WS", "Transform").unwrap();
    let ran = run_step(
        &rig,
        step(
            "nb",
            StepKind::FabricJob(fabric(FabricItemType::Notebook, &id)),
        ),
    )
    .await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    assert!(requests_to(&rig.sim, "GET", "/items").iter().all(|r| {
        // Only the workspace list; no item listing was needed.
        !r.query.as_deref().unwrap_or("").contains("type=Notebook")
    }));
    // A pipeline called like the notebook is not the notebook.
    let ran = run_step(&rig, step("p", pipeline("Transfrom"))).await;
    assert!(
        matches!(ran.outcome, AttemptOutcome::Refused { .. }),
        "{:?}",
        ran.outcome
    );
    assert!(
        ran.error().contains("pipeline `Transfrom` not found"),
        "{}",
        ran.error()
    );
}

#[tokio::test]
async fn a_failed_job_reports_its_failure_reason() {
    let rig = rig(
        "workspaces:\n  WS:\n    items:\n      Transform:\n        type: Notebook\n        duration: 200ms\n        retry_after: 0\n        outcomes: [{fail: {code: NotebookExecutionFailed, message: \"NameError: name 'regoin' is not defined\"}}]\n",
    )
    .await;
    let ran = run_step(
        &rig,
        step(
            "nb",
            StepKind::FabricJob(fabric(FabricItemType::Notebook, "Transform")),
        ),
    )
    .await;
    assert!(
        matches!(ran.outcome, AttemptOutcome::Failed { .. }),
        "{:?}",
        ran.outcome
    );
    assert!(
        ran.error()
            .contains("NotebookExecutionFailed: NameError: name 'regoin' is not defined"),
        "{}",
        ran.error()
    );
}

#[tokio::test]
async fn an_interrupt_cancels_the_job_instance() {
    let rig = rig(
        "workspaces:\n  WS:\n    items:\n      Nightly Load: {type: DataPipeline, never_ends: true, retry_after: 0}\n",
    )
    .await;
    let cancel = Cancel::new();
    let (ran, ()) = tokio::join!(
        run_step_with(
            &rig,
            step("p", pipeline("Nightly Load")),
            AttemptOptions {
                cancel: Some(cancel.clone()),
                ..Default::default()
            }
        ),
        async {
            until_seen(&rig, "GET", "/jobs/instances/").await;
            cancel.cancel(CancelReason::Interrupt { detach: false });
        }
    );
    assert!(
        ran.error().contains("interrupted; cancel requested"),
        "{}",
        ran.error()
    );
    let cancels = requests_to(&rig.sim, "POST", "/cancel");
    assert_eq!(cancels.len(), 1);
    assert!(cancels[0].path.contains("/jobs/instances/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_past_its_timeout_cancels_the_job_and_ends_timed_out() {
    let yaml = "workspaces:\n  WS:\n    items:\n      Transform: {type: Notebook, never_ends: true, retry_after: 0}\n";
    let profile = pbibatch::sim::Profile::from_yaml(yaml).unwrap();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let sim = pbibatch::sim::start(profile, addr).await.unwrap();
    let mut connections = IndexMap::new();
    connections.insert(
        "default".to_string(),
        crate::exec_support::sim_connection(&sim),
    );
    let client = pbibatch::powerbi::PowerBiClient::new(
        crate::exec_support::sim_config(&sim),
        connections.clone(),
    )
    .unwrap();
    let rig = Rig {
        sim,
        client,
        connections,
    };
    let mut s = step(
        "nb",
        StepKind::FabricJob(fabric(FabricItemType::Notebook, "Transform")),
    );
    s.timeout = Duration::from_secs(1);
    let job = Arc::new(job(&rig, vec![s]));
    let plan = Arc::new(Plan::new(job.clone()).unwrap());
    let executor = Arc::new(Dispatcher::new(rig.client.clone(), job));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let reporters = Reporters::new().spawn(rx);
    let opts = EngineOptions {
        run_id: "timeout".into(),
        ..EngineOptions::default()
    };
    engine::run(plan, executor, opts, CancellationToken::new(), tx).await;
    let report = reporters.await.unwrap();
    let nb = report.step("nb").unwrap();
    assert_eq!(nb.status, StepStatus::TimedOut, "{nb:?}");
    let cancels = requests_to(&rig.sim, "POST", "/cancel");
    assert_eq!(cancels.len(), 1, "the timed-out job instance is cancelled");
    let starts = requests_to(&rig.sim, "POST", "/jobs/instances")
        .into_iter()
        .filter(|r| r.path.ends_with("/jobs/instances"))
        .count();
    assert_eq!(starts, 1);
}

#[tokio::test]
async fn a_resumed_step_follows_its_job_instance_instead_of_starting_another() {
    let rig = rig(
        "workspaces:\n  WS:\n    items:\n      Nightly Load: {type: DataPipeline, duration: 1500ms, retry_after: 0}\n",
    )
    .await;
    let s = step("p", pipeline("Nightly Load"));
    // A first process starts the job and is killed while it runs (the job keeps running).
    let cancel = Cancel::new();
    let (first, ()) = tokio::join!(
        run_step_with(
            &rig,
            s.clone(),
            AttemptOptions {
                cancel: Some(cancel.clone()),
                ..Default::default()
            }
        ),
        async {
            until_seen(&rig, "GET", "/jobs/instances/").await;
            cancel.cancel(CancelReason::Interrupt { detach: true });
        }
    );
    let handle = first
        .handle()
        .expect("the attempt recorded its job instance");
    assert!(
        matches!(
            &handle,
            RemoteHandle::FabricJob {
                job_instance_id: Some(_),
                ..
            }
        ),
        "{handle:?}"
    );
    // The resumed run reads that job instance again and follows it to its end.
    let ran = run_step_with(
        &rig,
        s,
        AttemptOptions {
            reattach: Some(handle),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    assert_eq!(requests_to(&rig.sim, "POST", "/jobs/instances").len(), 1);
    assert!(
        ran.updates.iter().any(|u| u
            .note
            .as_deref()
            .is_some_and(|n| n.contains("re-attaching"))),
        "{:?}",
        ran.updates
    );
}

#[tokio::test]
async fn a_lost_trigger_answer_is_recovered_from_the_listing_without_a_second_start() {
    let rig = rig(
        "workspaces:\n  WS:\n    items:\n      Copy Orders: {type: CopyJob, duration: 800ms, retry_after: 0}\n",
    )
    .await;
    // The service starts the job, then the connection drops before its answer arrives.
    rig.sim.arm_fault(FaultRule {
        method: "POST".into(),
        path: "*/jobs/instances".into(),
        nth: 1,
        fault: Fault::DropAfter,
    });
    let ran = run_step(
        &rig,
        step(
            "copy",
            StepKind::FabricJob(fabric(FabricItemType::CopyJob, "Copy Orders")),
        ),
    )
    .await;
    assert_eq!(
        ran.outcome,
        AttemptOutcome::Succeeded { adopted: false },
        "{:?}",
        ran.updates
    );
    let started = requests_to(&rig.sim, "POST", "/jobs/instances");
    assert_eq!(started.len(), 1, "no second start");
    assert!(
        requests_to(&rig.sim, "GET", "/jobs/instances")
            .iter()
            .any(|r| r.path.ends_with("/jobs/instances")),
        "the job instances were listed"
    );

    // A killed process whose trigger answer was never recorded: the next attempt finds the
    // job instance by difference with the ones listed before the trigger.
    let (ws, item) = rig.sim.ids("WS", "Copy Orders").unwrap();
    let before: Vec<String> = vec![ran.remote_id().unwrap()];
    let s = step(
        "copy",
        StepKind::FabricJob(fabric(FabricItemType::CopyJob, "Copy Orders")),
    );
    let cancel = Cancel::new();
    let (_, ()) = tokio::join!(
        run_step_with(
            &rig,
            s.clone(),
            AttemptOptions {
                cancel: Some(cancel.clone()),
                ..Default::default()
            }
        ),
        async {
            while requests_to(&rig.sim, "POST", "/jobs/instances").len() < 2 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            cancel.cancel(CancelReason::Interrupt { detach: true });
        }
    );
    let ran = run_step_with(
        &rig,
        s,
        AttemptOptions {
            reattach: Some(RemoteHandle::FabricJob {
                workspace_id: ws,
                item_id: item,
                job_instance_id: None,
                known_before: before,
            }),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    assert_eq!(requests_to(&rig.sim, "POST", "/jobs/instances").len(), 2);
}

#[tokio::test]
async fn if_running_fail_adopt_and_wait() {
    const BUSY: &str = "workspaces:\n  WS:\n    items:\n      Nightly Load: {type: DataPipeline, duration: 600ms, running_at_start: true, retry_after: 0}\n";
    let rig = rig(BUSY).await;
    let mut s = step("p", pipeline("Nightly Load"));
    s.if_running = IfRunning::Fail;
    let ran = run_step(&rig, s.clone()).await;
    assert!(ran.error().contains("already running"), "{}", ran.error());
    s.if_running = IfRunning::Adopt;
    let ran = run_step(&rig, s.clone()).await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: true });
    assert!(requests_to(&rig.sim, "POST", "/jobs/instances").is_empty());

    let rig = crate::exec_support::rig(BUSY).await;
    s.if_running = IfRunning::Wait;
    let ran = run_step(&rig, s).await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    // One trigger, sent after the scheduled run ended.
    assert_eq!(requests_to(&rig.sim, "POST", "/jobs/instances").len(), 1);
}

#[tokio::test]
async fn skip_if_fresh_reads_the_job_instances() {
    let rig = rig(ESTATE).await;
    let first = run_step(&rig, step("p", pipeline("Nightly Load"))).await;
    assert_eq!(first.outcome, AttemptOutcome::Succeeded { adopted: false });
    let mut s = step("p", pipeline("Nightly Load"));
    s.skip_if_fresh = Some(Duration::from_secs(3600));
    let second = run_step(&rig, s).await;
    assert!(
        matches!(second.outcome, AttemptOutcome::Skipped { .. }),
        "{:?}",
        second.outcome
    );
    assert_eq!(requests_to(&rig.sim, "POST", "/jobs/instances").len(), 1);
}

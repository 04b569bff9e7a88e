//! The store between two real engine runs: the first one "dies" with a refresh in flight (the
//! recorder stops mid-stream, exactly what a `kill -9` leaves), the second resumes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use indexmap::IndexMap;
use pbibatch::engine::{EngineOptions, ResumeState};
use pbibatch::event::{RunEvent, RunEventKind};
use pbibatch::executor::{AttemptContext, AttemptOutcome, AttemptUpdate, Executor, RemoteHandle};
use pbibatch::job::model::{
    DatasetStep, IfRunning, Job, NotifyOption, Step, StepKind, TriggerRule,
};
use pbibatch::plan::Plan;
use pbibatch::store::{RunMeta, Store, StoreRecorder, step_hashes};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn dataset(id: &str, deps: &[&str]) -> Step {
    Step {
        id: id.into(),
        kind: StepKind::Dataset(DatasetStep {
            workspace: "Data Admin".into(),
            dataset: id.to_uppercase(),
            notify: NotifyOption::NoNotification,
            refresh: None,
        }),
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        trigger: TriggerRule::AllSuccess,
        when: None,
        pool: None,
        tags: Vec::new(),
        connection: "default".into(),
        timeout: Duration::from_secs(3600),
        retries: 0,
        retry_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(1),
        poll_interval: Duration::from_secs(1),
        if_running: IfRunning::Wait,
        continue_on_error: false,
        skip_if_fresh: None,
    }
}

/// extract -> model -> report, plus an independent `flaky`.
fn job() -> Job {
    let steps: IndexMap<String, Step> = [
        dataset("extract", &[]),
        dataset("model", &["extract"]),
        dataset("report", &["model"]),
        dataset("flaky", &[]),
    ]
    .into_iter()
    .map(|s| (s.id.clone(), s))
    .collect();
    Job {
        name: "nightly".into(),
        description: None,
        file: "jobs/nightly.yaml".into(),
        file_hash: "a".repeat(64),
        vars: IndexMap::new(),
        connections: IndexMap::new(),
        concurrency: 4,
        pools: IndexMap::new(),
        steps,
    }
}

fn handle() -> RemoteHandle {
    RemoteHandle::EnhancedRefresh {
        workspace_id: "ws".into(),
        dataset_id: "MODEL".into(),
        request_id: "req-model".into(),
    }
}

/// First run: `model` triggers, reports its handle and hangs; `flaky` fails.
/// Resumed run: everything succeeds; every call is logged with its re-attach handle.
#[derive(Default)]
struct Fake {
    resumed: bool,
    calls: Mutex<Vec<(String, Option<RemoteHandle>)>>,
}

impl Executor for Fake {
    fn execute(&self, ctx: AttemptContext) -> BoxFuture<'static, AttemptOutcome> {
        self.calls
            .lock()
            .unwrap()
            .push((ctx.step.id.clone(), ctx.reattach.clone()));
        let resumed = self.resumed;
        async move {
            match (resumed, ctx.step.id.as_str()) {
                (false, "model") => {
                    ctx.update(AttemptUpdate {
                        remote_status: Some("Unknown".into()),
                        remote_id: Some("req-model".into()),
                        handle: Some(handle()),
                        ..AttemptUpdate::default()
                    });
                    ctx.cancel.cancelled().await;
                    AttemptOutcome::Cancelled { error: None }
                }
                (false, "flaky") => AttemptOutcome::Failed {
                    error: "capacity is overloaded".into(),
                },
                _ => AttemptOutcome::Succeeded { adopted: false },
            }
        }
        .boxed()
    }
}

/// Runs the engine, recording events until `stop_recording` says the process "dies".
async fn run(
    job: &Arc<Job>,
    store: Store,
    executor: Arc<Fake>,
    run_id: &str,
    resume: Option<ResumeState>,
    mut stop_recording: impl FnMut(&[RunEvent]) -> bool,
) {
    let plan = Arc::new(Plan::new(job.clone()).unwrap());
    let opts = EngineOptions {
        run_id: run_id.into(),
        resume,
        ..EngineOptions::default()
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let interrupt = CancellationToken::new();
    let engine = tokio::spawn(pbibatch::engine::run(
        plan,
        executor,
        opts,
        interrupt.clone(),
        tx,
    ));
    let mut recorder = StoreRecorder::new(
        store,
        RunMeta::from_job(job, serde_json::json!({ "job": "jobs/nightly.yaml" })),
    );
    let mut seen = Vec::new();
    let mut dead = false;
    while let Some(ev) = rx.recv().await {
        if dead {
            continue;
        }
        recorder.record(&ev).unwrap();
        seen.push(ev);
        if stop_recording(&seen) {
            // The process is gone: nothing after this reaches the store. Stop the engine so
            // the test ends (its later events are dropped above).
            dead = true;
            interrupt.cancel();
        }
    }
    engine.await.unwrap();
}

#[tokio::test]
async fn store_engine_resume_reattaches_and_keeps_succeeded_steps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let job = Arc::new(job());

    let first = Arc::new(Fake::default());
    run(
        &job,
        Store::open(&path).unwrap(),
        first.clone(),
        "run-1",
        None,
        |seen| {
            let handle_seen = seen.iter().any(|e| {
                matches!(&e.kind, RunEventKind::StepProgress { step, update, .. }
                if step == "model" && update.handle.is_some())
            });
            let flaky_done = seen.iter().any(
                |e| matches!(&e.kind, RunEventKind::StepFinished { step, .. } if step == "flaky"),
            );
            handle_seen && flaky_done
        },
    )
    .await;

    let store = Store::open(&path).unwrap();
    let died = store.load_run("run-1").unwrap();
    assert_eq!(died.status, "incomplete");
    let statuses: HashMap<&str, &str> = died
        .steps
        .iter()
        .map(|s| (s.id.as_str(), s.status.as_str()))
        .collect();
    assert_eq!(
        statuses,
        HashMap::from([
            ("extract", "succeeded"),
            ("model", "running"),
            ("report", "pending"),
            ("flaky", "failed"),
        ])
    );

    let resume = store
        .resume_state("last", "nightly", &job.file_hash, false, &step_hashes(&job))
        .unwrap();
    let second = Arc::new(Fake {
        resumed: true,
        ..Fake::default()
    });
    run(
        &job,
        store,
        second.clone(),
        "run-2",
        Some(resume.into()),
        |_| false,
    )
    .await;

    // `extract` was not run again, `model` was re-attached (not triggered), the rest ran.
    let mut calls = second.calls.lock().unwrap().clone();
    calls.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        calls,
        [
            ("flaky".to_string(), None),
            ("model".to_string(), Some(handle())),
            ("report".to_string(), None),
        ]
    );
    let store = Store::open(&path).unwrap();
    let done = store.load_run("last").unwrap();
    assert_eq!(done.run_id, "run-2");
    assert_eq!(done.status, "succeeded");
    assert_eq!(done.resumed_from.as_deref(), Some("run-1"));
    assert_eq!(done.counts["succeeded"], 4);
    let extract = &done.steps[0];
    assert_eq!(extract.reason.as_deref(), Some("succeeded in run run-1"));
    assert!(extract.attempts.is_empty());
    assert_eq!(
        done.steps
            .iter()
            .find(|s| s.id == "model")
            .map(|s| s.attempts.len()),
        Some(1)
    );
}

//! The store between two real engine runs: the first one "dies" with a refresh in flight (the
//! recorder stops mid-stream, exactly what a `kill -9` leaves), the second resumes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use indexmap::IndexMap;
use pbibatch::engine::EngineOptions;
use pbibatch::event::{AttemptUpdate, RemoteHandle, RunEvent, RunEventKind};
use pbibatch::executor::{AttemptContext, AttemptOutcome, Executor};
use pbibatch::job::model::{
    DatasetStep, IfRunning, Job, NotifyOption, Step, StepKind, TriggerRule,
};
use pbibatch::plan::Plan;
use pbibatch::store::{RunMeta, RunSession, RunTarget, SessionOptions, Store, StoreRecorder};
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
        expected_duration: None,
        on_overrun: Default::default(),
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
        capacity_limits: true,
        vars: IndexMap::new(),
        connections: IndexMap::new(),
        concurrency: 4,
        pools: IndexMap::new(),
        steps,
        fan_outs: IndexMap::new(),
    }
}

fn handle() -> RemoteHandle {
    RemoteHandle::EnhancedRefresh {
        workspace_id: "ws".into(),
        dataset_id: "MODEL".into(),
        request_id: Some("req-model".into()),
        known_before: Vec::new(),
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
                    retry_after: None,
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
    resume: Option<pbibatch::engine::ResumeState>,
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
    let meta = RunMeta {
        target: RunTarget::Simulated,
        ..RunMeta::from_job(job, serde_json::json!({ "job": "jobs/nightly.yaml" }))
    };
    let mut recorder = StoreRecorder::new(store, meta);
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

    // The killed process left its lock behind; its pid is gone now.
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    drop(store);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO locks (job, token, run_id, pid, host, started_at, heartbeat_ms) \
             VALUES ('nightly', 't', 'run-1', ?1, ?2, '2026-03-01T02:00:00.000Z', ?3)",
            rusqlite::params![
                dead_pid,
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_string())
                    .unwrap_or_default(),
                chrono::Utc::now().timestamp_millis()
            ],
        )
        .unwrap();

    // The resumed run goes through the session as `pbibatch run` uses it.
    let mut session = RunSession::start(
        job.clone(),
        SessionOptions {
            state: Some(path.display().to_string()),
            resume: Some("last".into()),
            run_id: "run-2".into(),
            target: RunTarget::Simulated,
            ..SessionOptions::default()
        },
    )
    .await
    .unwrap()
    .unwrap();
    let second = Arc::new(Fake {
        resumed: true,
        ..Fake::default()
    });
    let plan = Arc::new(Plan::new(job.clone()).unwrap());
    let opts = EngineOptions {
        run_id: "run-2".into(),
        resume: session.take_resume(),
        priority_hint: session.priority_hint().clone(),
        ..EngineOptions::default()
    };
    assert!(opts.priority_hint.contains_key("extract"));
    let (tx, engine_rx) = mpsc::unbounded_channel();
    let (reporters_tx, mut reporters_rx) = mpsc::unbounded_channel();
    let forward = RunSession::forward(Some(session), engine_rx, reporters_tx);
    pbibatch::engine::run(plan, second.clone(), opts, CancellationToken::new(), tx).await;
    forward.await.unwrap().unwrap().finish().unwrap();
    // The reporters got every event too.
    let mut forwarded = Vec::new();
    while let Some(ev) = reporters_rx.recv().await {
        forwarded.push(ev);
    }
    assert!(matches!(
        forwarded.last().map(|e| &e.kind),
        Some(RunEventKind::RunFinished { .. })
    ));

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
    assert!(
        store.lock_holder("nightly").unwrap().is_none(),
        "lock released"
    );
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

#[test]
fn store_session_refuses_a_second_run_and_resume_without_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let job = job();
    let opts = |run_id: &str| SessionOptions {
        state: Some(path.display().to_string()),
        run_id: run_id.into(),
        ..SessionOptions::default()
    };
    let first = RunSession::begin(&job, opts("run-a"), &mut |_| {})
        .unwrap()
        .unwrap();
    let err = RunSession::begin(&job, opts("run-b"), &mut |_| {}).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("job `nightly` is already running: run `run-a` (pid "),
        "{err}"
    );
    first.finish().unwrap();
    RunSession::begin(&job, opts("run-b"), &mut |_| {})
        .unwrap()
        .unwrap()
        .finish()
        .unwrap();

    let none = SessionOptions {
        state: Some("none".into()),
        ..SessionOptions::default()
    };
    assert!(
        RunSession::begin(&job, none.clone(), &mut |_| {})
            .unwrap()
            .is_none()
    );
    let err = RunSession::begin(
        &job,
        SessionOptions {
            resume: Some("last".into()),
            ..none
        },
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "--resume needs a state store, but `--state none` (or PBIBATCH_STATE=none) disables it"
    );
}

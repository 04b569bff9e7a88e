//! Engine tests: a scripted fake executor under paused tokio time (no real sleeps).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use indexmap::{IndexMap, IndexSet};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::event::{
    AttemptUpdate, Counts, RemoteHandle, RunEvent, RunEventKind, RunStatus, StepStatus,
};
use crate::executor::{AttemptContext, AttemptOutcome, CancelReason, Executor};
use crate::job::model::{
    DatasetStep, IfRunning, Job, NotifyOption, Step, StepKind, TriggerRule, WebhookStep,
};
use crate::plan::Plan;
use crate::secret::Secret;

/// What the fake executor does in one attempt.
#[derive(Debug, Clone)]
pub(crate) enum Act {
    /// Succeeds after this long.
    Ok(Duration),
    /// Fails after this long.
    Fail(Duration, &'static str),
    /// Sends updates, then succeeds after this long.
    Updates(Vec<AttemptUpdate>, Duration),
    /// Runs until cancelled, then returns `Cancelled` (a cancel-aware executor).
    Hang,
    /// Never returns, even when cancelled.
    Stuck,
    /// Skips on purpose (a freshness skip: the only kind of skip an executor makes).
    Skip(&'static str),
    /// Succeeds, adopting a running refresh.
    Adopt(Duration),
    /// Panics after this long (a bug in an executor).
    Panic(Duration),
    /// Refuses at once: another attempt would meet the same answer.
    Refuse(&'static str),
}

/// One attempt as the fake executor saw it.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub step: String,
    pub attempt: u32,
    pub start: Duration,
    pub end: Option<Duration>,
    pub cancel: Option<CancelReason>,
    pub reattach: Option<RemoteHandle>,
    pub summary: String,
}

/// A scripted executor: per step a list of acts, one per attempt (the last one repeats).
pub(super) struct Fake {
    script: HashMap<String, Vec<Act>>,
    origin: Instant,
    pub calls: Arc<Mutex<Vec<Call>>>,
}

impl Fake {
    pub(super) fn new(script: &[(&str, Vec<Act>)]) -> Arc<Fake> {
        Arc::new(Fake {
            script: script
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            origin: Instant::now(),
            calls: Arc::default(),
        })
    }

    pub(super) fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// (step, start secs) of every attempt, in start order.
    pub(super) fn starts(&self) -> Vec<(String, u64)> {
        self.calls()
            .iter()
            .map(|c| (c.step.clone(), c.start.as_secs()))
            .collect()
    }
}

impl Executor for Fake {
    fn execute(&self, ctx: AttemptContext) -> BoxFuture<'static, AttemptOutcome> {
        let acts = self.script.get(&ctx.step.id).cloned().unwrap_or_default();
        let act = acts
            .get(ctx.attempt as usize - 1)
            .or(acts.last())
            .cloned()
            .unwrap_or(Act::Ok(Duration::from_secs(1)));
        let origin = self.origin;
        let calls = self.calls.clone();
        let index = {
            let mut c = calls.lock().unwrap();
            c.push(Call {
                step: ctx.step.id.clone(),
                attempt: ctx.attempt,
                start: origin.elapsed(),
                end: None,
                cancel: None,
                reattach: ctx.reattach.clone(),
                summary: ctx.run_view.summary.clone(),
            });
            c.len() - 1
        };
        async move {
            let outcome = match act {
                Act::Ok(d) => {
                    tokio::time::sleep(d).await;
                    AttemptOutcome::Succeeded { adopted: false }
                }
                Act::Adopt(d) => {
                    tokio::time::sleep(d).await;
                    AttemptOutcome::Succeeded { adopted: true }
                }
                Act::Fail(d, msg) => {
                    tokio::time::sleep(d).await;
                    AttemptOutcome::Failed {
                        error: msg.into(),
                        retry_after: None,
                    }
                }
                Act::Updates(updates, d) => {
                    for u in updates {
                        ctx.update(u);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    tokio::time::sleep(d).await;
                    AttemptOutcome::Succeeded { adopted: false }
                }
                Act::Hang => {
                    ctx.cancel.cancelled().await;
                    AttemptOutcome::Cancelled {
                        error: Some("cancelled remotely".into()),
                    }
                }
                Act::Stuck => futures::future::pending().await,
                Act::Panic(d) => {
                    tokio::time::sleep(d).await;
                    panic!("executor bug (scripted)");
                }
                Act::Skip(reason) => AttemptOutcome::Skipped {
                    reason: reason.into(),
                    kind: crate::executor::SkipKind::Fresh,
                },
                Act::Refuse(error) => AttemptOutcome::Refused {
                    error: error.into(),
                },
            };
            let mut c = calls.lock().unwrap();
            c[index].end = Some(origin.elapsed());
            c[index].cancel = ctx.cancel.reason();
            outcome
        }
        .boxed()
    }
}

pub(super) fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A webhook step (no remote resource) with test-friendly defaults.
pub(super) fn step(id: &str, deps: &[&str]) -> Step {
    Step {
        id: id.into(),
        kind: StepKind::Webhook(WebhookStep {
            url: Secret::new("https://hooks.example.invalid/x?sig=secret"),
            method: "POST".into(),
            headers: IndexMap::new(),
            body: None,
            expect_status: Vec::new(),
            format: crate::job::model::WebhookFormat::Plain,
            link: None,
        }),
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        trigger: TriggerRule::AllSuccess,
        when: None,
        pool: None,
        tags: Vec::new(),
        connection: "default".into(),
        timeout: secs(3600),
        retries: 0,
        retry_backoff: secs(30),
        max_backoff: secs(600),
        poll_interval: secs(15),
        if_running: IfRunning::Wait,
        continue_on_error: false,
        skip_if_fresh: None,
        expected_duration: None,
        on_overrun: Default::default(),
    }
}

/// A dataset step (its remote resource is workspace + dataset).
pub(super) fn dataset(id: &str, deps: &[&str], workspace: &str, name: &str) -> Step {
    Step {
        kind: StepKind::Dataset(DatasetStep {
            workspace: workspace.into(),
            dataset: name.into(),
            notify: NotifyOption::NoNotification,
            refresh: None,
        }),
        ..step(id, deps)
    }
}

pub(super) fn job(steps: Vec<Step>, concurrency: u32) -> Job {
    Job {
        name: "test_job".into(),
        description: None,
        file: PathBuf::from("jobs/test_job.yaml"),
        file_hash: String::new(),
        capacity_limits: true,
        vars: [("export".to_string(), "yes".to_string())]
            .into_iter()
            .collect(),
        connections: IndexMap::new(),
        concurrency,
        pools: IndexMap::new(),
        steps: steps.into_iter().map(|s| (s.id.clone(), s)).collect(),
        fan_outs: IndexMap::new(),
    }
}

pub(super) fn opts() -> EngineOptions {
    EngineOptions {
        run_id: "run-1".into(),
        ..EngineOptions::default()
    }
}

/// Runs a whole job; returns the run status and every event.
pub(crate) async fn run_job(
    job: Job,
    exec: Arc<Fake>,
    opts: EngineOptions,
    selected: Option<&[&str]>,
) -> (RunStatus, Vec<RunEvent>) {
    let token = CancellationToken::new();
    run_with(job, exec, opts, selected, token).await
}

pub(crate) async fn run_with(
    job: Job,
    exec: Arc<Fake>,
    opts: EngineOptions,
    selected: Option<&[&str]>,
    token: CancellationToken,
) -> (RunStatus, Vec<RunEvent>) {
    let job = Arc::new(job);
    let plan = match selected {
        Some(sel) => {
            let set: IndexSet<String> = sel.iter().map(|s| s.to_string()).collect();
            Plan::with_selected(job, set).unwrap()
        }
        None => Plan::new(job).unwrap(),
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let status = run(Arc::new(plan), exec, opts, token, tx).await;
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    (status, events)
}

/// Final status (and reason) of each step from the events.
pub(crate) fn finals(events: &[RunEvent]) -> HashMap<String, (StepStatus, Option<String>, u32)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            RunEventKind::StepFinished {
                step,
                status,
                reason,
                attempts,
                ..
            } => Some((step.clone(), (*status, reason.clone(), *attempts))),
            _ => None,
        })
        .collect()
}

pub(crate) fn status_of(events: &[RunEvent], id: &str) -> StepStatus {
    finals(events)[id].0
}

pub(crate) fn reason_of(events: &[RunEvent], id: &str) -> String {
    finals(events)[id].1.clone().unwrap_or_default()
}

mod limits;
mod overrun;
mod rules;
mod stamps;
mod stopping;

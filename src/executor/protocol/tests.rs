//! The driver against a scripted service, in paused time: every case counts the triggers
//! the service received (I1/I2) and checks the verdict against the service's (I3).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use tokio::sync::mpsc;

use super::*;
use crate::executor::{Cancel, RunView};
use crate::job::model::{Cloud, IfRunning};
use crate::job::model::{Step, StepKind, TriggerRule, WebhookStep};
use crate::powerbi::config::ClientConfig;
use crate::secret::Secret;

/// What the fake service does on a trigger.
#[derive(Debug, Clone)]
enum OnTrigger {
    /// Starts a run that ends after `polls` status reads with `ok`.
    Start { polls: u32, ok: bool },
    /// Starts the run, then the answer is lost (502).
    StartAndLose { polls: u32, ok: bool },
    /// Answers with this error and starts nothing.
    Refuse(ClientError),
}

#[derive(Debug, Default)]
struct Service {
    /// (id, polls left before the end, ok, ended)
    runs: Vec<(String, u32, bool)>,
    on_trigger: VecDeque<OnTrigger>,
    /// Errors answered to the next status reads, before the real answer.
    status_errors: VecDeque<ClientError>,
    triggers: u32,
    named: bool,
    listable: bool,
    harmless: bool,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<Service>>);

fn api(status: u16, code: &str, retry_after: Option<u64>) -> ClientError {
    ClientError::Api {
        status,
        code: Some(code.into()),
        message: String::new(),
        retry_after: retry_after.map(Duration::from_secs),
        method: "POST".into(),
        url: "https://api.powerbi.com/v1.0/myorg/x".into(),
        request_id: None,
    }
}

impl Fake {
    fn new(listable: bool, named: bool) -> Fake {
        let f = Fake::default();
        {
            let mut s = f.0.lock().unwrap();
            s.listable = listable;
            s.named = named;
        }
        f
    }
    fn on_trigger(self, t: OnTrigger) -> Fake {
        self.0.lock().unwrap().on_trigger.push_back(t);
        self
    }
    fn status_error(self, e: ClientError) -> Fake {
        self.0.lock().unwrap().status_errors.push_back(e);
        self
    }
    fn with_run(self, id: &str, polls: u32, ok: bool) -> Fake {
        self.0.lock().unwrap().runs.push((id.into(), polls, ok));
        self
    }
    fn triggers(&self) -> u32 {
        self.0.lock().unwrap().triggers
    }
    fn info(run: &(String, u32, bool)) -> RunInfo {
        let state = match (run.1, run.2) {
            (0, true) => RunState::Succeeded,
            (0, false) => RunState::Failed("it failed".into()),
            _ => RunState::Running,
        };
        RunInfo {
            id: run.0.clone(),
            state,
            status: None,
            percent: None,
            start: None,
            end: None,
            from_trigger: true,
            direct: true,
        }
    }
}

impl RemoteKind for Fake {
    fn noun(&self) -> &'static str {
        "run"
    }
    fn name(&self) -> &str {
        "thing"
    }
    fn listable(&self) -> bool {
        self.0.lock().unwrap().listable
    }
    async fn list(&self) -> Result<Vec<RunInfo>, ClientError> {
        let s = self.0.lock().unwrap();
        Ok(s.runs.iter().rev().map(Fake::info).collect())
    }
    async fn trigger(&self) -> Result<Triggered, ClientError> {
        let mut s = self.0.lock().unwrap();
        let t = s
            .on_trigger
            .pop_front()
            .unwrap_or(OnTrigger::Start { polls: 1, ok: true });
        let id = format!("r{}", s.runs.len() + 1);
        match t {
            OnTrigger::Refuse(e) => Err(e),
            OnTrigger::Start { polls, ok } => {
                s.triggers += 1;
                s.runs.push((id.clone(), polls, ok));
                Ok(if s.named {
                    Triggered::Named {
                        id,
                        first_wait: None,
                    }
                } else {
                    Triggered::Unnamed
                })
            }
            OnTrigger::StartAndLose { polls, ok } => {
                s.triggers += 1;
                s.runs.push((id, polls, ok));
                Err(api(502, "BadGateway", None))
            }
        }
    }
    async fn status(
        &self,
        run: &RunRef,
    ) -> Result<(Option<RunInfo>, Option<Duration>), ClientError> {
        let mut s = self.0.lock().unwrap();
        if let Some(e) = s.status_errors.pop_front() {
            return Err(e);
        }
        let Some(r) = s.runs.iter_mut().find(|r| r.0 == run.id) else {
            return Ok((None, None));
        };
        let info = Fake::info(r);
        r.1 = r.1.saturating_sub(1);
        Ok((Some(info), None))
    }
    fn handle(&self, run: Option<&RunRef>, known_before: &[String]) -> RemoteHandle {
        RemoteHandle::FabricJob {
            workspace_id: "w".into(),
            item_id: "i".into(),
            job_instance_id: run.map(|r| r.id.clone()),
            known_before: known_before.to_vec(),
        }
    }
    fn previous(&self, handle: &RemoteHandle) -> Option<Previous> {
        match handle {
            RemoteHandle::FabricJob {
                job_instance_id,
                known_before,
                ..
            } => Some(Previous {
                run: job_instance_id
                    .clone()
                    .map(|id| RunRef { id, direct: true }),
                known_before: known_before.clone(),
            }),
            _ => None,
        }
    }
    fn cancel_target(&self, run: &RunRef) -> CancelTarget {
        CancelTarget::Export {
            export_id: run.id.clone(),
        }
    }
    fn appear_within(&self) -> Duration {
        Duration::from_secs(30)
    }
    fn repeat_is_harmless(&self) -> bool {
        self.0.lock().unwrap().harmless
    }
}

fn step(if_running: IfRunning) -> Step {
    Step {
        id: "s".into(),
        kind: StepKind::Webhook(WebhookStep {
            url: Secret::new("https://hooks.example.invalid/x"),
            method: "POST".into(),
            headers: IndexMap::new(),
            body: None,
            expect_status: Vec::new(),
            format: crate::job::model::WebhookFormat::Plain,
            link: None,
        }),
        depends_on: Vec::new(),
        trigger: TriggerRule::AllSuccess,
        when: None,
        pool: None,
        tags: Vec::new(),
        connection: "default".into(),
        timeout: Duration::from_secs(3600),
        retries: 0,
        retry_backoff: Duration::from_secs(30),
        max_backoff: Duration::from_secs(600),
        poll_interval: Duration::from_secs(15),
        if_running,
        continue_on_error: false,
        skip_if_fresh: None,
        expected_duration: None,
        on_overrun: Default::default(),
    }
}

async fn attempt(
    fake: &Fake,
    if_running: IfRunning,
    reattach: Option<RemoteHandle>,
) -> (AttemptOutcome, Vec<AttemptUpdate>) {
    let client =
        PowerBiClient::new(ClientConfig::for_cloud(Cloud::default()), IndexMap::new()).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let ctx = AttemptContext {
        run_id: "run".into(),
        step: Arc::new(step(if_running)),
        attempt: 1,
        cancel: Cancel::new(),
        updates: tx,
        run_view: RunView::default(),
        reattach,
        durable: false,
        estimate: None,
    };
    let outcome = drive(&client, &ctx, fake).await;
    let mut updates = Vec::new();
    while let Ok((_, _, u)) = rx.try_recv() {
        updates.push(u);
    }
    (outcome, updates)
}

fn last_handle(updates: &[AttemptUpdate]) -> Option<RemoteHandle> {
    updates.iter().rev().find_map(|u| u.handle.clone())
}

#[tokio::test(start_paused = true)]
async fn a_long_retry_after_on_a_poll_keeps_following_the_run() {
    // Power BI answers 429 with Retry-After up to about an hour: the run is not
    // abandoned, no second trigger is sent, and the service's verdict is reported.
    let fake = Fake::new(true, true)
        .on_trigger(OnTrigger::Start { polls: 3, ok: true })
        .status_error(api(429, "TooManyRequests", Some(700)))
        .status_error(api(429, "TooManyRequests", Some(3400)))
        .status_error(api(503, "ServiceUnavailable", None));
    let started = tokio::time::Instant::now();
    let (outcome, _) = attempt(&fake, IfRunning::Wait, None).await;
    assert_eq!(outcome, AttemptOutcome::Succeeded { adopted: false });
    assert_eq!(fake.triggers(), 1);
    assert!(started.elapsed() >= Duration::from_secs(700 + 3400));
}

#[tokio::test(start_paused = true)]
async fn a_lost_trigger_answer_is_recovered_by_finding_the_run() {
    for named in [true, false] {
        let fake =
            Fake::new(true, named).on_trigger(OnTrigger::StartAndLose { polls: 2, ok: true });
        let (outcome, updates) = attempt(&fake, IfRunning::Wait, None).await;
        assert_eq!(outcome, AttemptOutcome::Succeeded { adopted: false });
        assert_eq!(fake.triggers(), 1, "named: {named}");
        assert_eq!(
            last_handle(&updates).and_then(|h| h.run_id().map(str::to_string)),
            Some("r1".into())
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_next_attempt_recovers_a_run_that_appeared_late() {
    // The answer was lost and the run was not listed in time: the attempt fails with a
    // handle that names the runs listed before its trigger; the next one finds the run.
    let fake = Fake::new(true, false).on_trigger(OnTrigger::Refuse(api(502, "BadGateway", None)));
    let (outcome, updates) = attempt(&fake, IfRunning::Wait, None).await;
    assert!(
        matches!(outcome, AttemptOutcome::Failed { .. }),
        "{outcome:?}"
    );
    let handle = last_handle(&updates).expect("a durable handle before the trigger");
    assert_eq!(handle.run_id(), None);
    // The run shows up after all (the service acted on the lost request).
    let fake = fake.with_run("late", 1, true);
    let before = fake.triggers();
    let (outcome, updates) = attempt(&fake, IfRunning::Wait, Some(handle)).await;
    assert_eq!(outcome, AttemptOutcome::Succeeded { adopted: false });
    assert_eq!(fake.triggers(), before, "no trigger while the run is alive");
    assert!(
        updates
            .iter()
            .any(|u| u.note.as_deref().is_some_and(|n| n.contains("late")))
    );
}

#[tokio::test(start_paused = true)]
async fn a_previous_run_is_followed_kept_or_replaced_by_its_state() {
    let handle = |id: &str| RemoteHandle::FabricJob {
        workspace_id: "w".into(),
        item_id: "i".into(),
        job_instance_id: Some(id.into()),
        known_before: Vec::new(),
    };
    // Alive: followed, not triggered again.
    let fake = Fake::new(true, true).with_run("old", 3, true);
    let (outcome, _) = attempt(&fake, IfRunning::Wait, Some(handle("old"))).await;
    assert_eq!(outcome, AttemptOutcome::Succeeded { adopted: false });
    assert_eq!(fake.triggers(), 0);
    // Ended successfully: succeeded, not triggered.
    let fake = Fake::new(true, true).with_run("old", 0, true);
    let (outcome, _) = attempt(&fake, IfRunning::Wait, Some(handle("old"))).await;
    assert_eq!(outcome, AttemptOutcome::Succeeded { adopted: false });
    assert_eq!(fake.triggers(), 0);
    // Ended unsuccessfully: a new run is triggered, once.
    let fake = Fake::new(true, true).with_run("old", 0, false);
    let (outcome, _) = attempt(&fake, IfRunning::Wait, Some(handle("old"))).await;
    assert_eq!(outcome, AttemptOutcome::Succeeded { adopted: false });
    assert_eq!(fake.triggers(), 1);
}

#[tokio::test(start_paused = true)]
async fn if_running_applies_before_any_trigger() {
    let fake = Fake::new(true, false).with_run("sched", 2, true);
    let (outcome, _) = attempt(&fake, IfRunning::Fail, None).await;
    assert!(
        matches!(outcome, AttemptOutcome::Refused { .. }),
        "{outcome:?}"
    );
    assert_eq!(fake.triggers(), 0);

    let fake = Fake::new(true, false).with_run("sched", 2, false);
    let (outcome, _) = attempt(&fake, IfRunning::Adopt, None).await;
    // The adopted run's own verdict: it failed.
    assert!(
        matches!(outcome, AttemptOutcome::Failed { .. }),
        "{outcome:?}"
    );
    assert_eq!(fake.triggers(), 0);

    let fake = Fake::new(true, false).with_run("sched", 2, true);
    let (outcome, _) = attempt(&fake, IfRunning::Wait, None).await;
    assert_eq!(outcome, AttemptOutcome::Succeeded { adopted: false });
    assert_eq!(fake.triggers(), 1);
}

#[tokio::test(start_paused = true)]
async fn refusals_and_throttling_are_told_apart() {
    let fake = Fake::new(true, true).on_trigger(OnTrigger::Refuse(api(
        403,
        "InsufficientPrivileges",
        None,
    )));
    let (outcome, _) = attempt(&fake, IfRunning::Wait, None).await;
    assert!(
        matches!(outcome, AttemptOutcome::Refused { .. }),
        "{outcome:?}"
    );

    let fake =
        Fake::new(true, true).on_trigger(OnTrigger::Refuse(api(429, "TooManyRequests", Some(900))));
    let (outcome, _) = attempt(&fake, IfRunning::Wait, None).await;
    match outcome {
        AttemptOutcome::Failed { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(900)))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.triggers(), 0);
}

#[tokio::test(start_paused = true)]
async fn harmless_work_is_started_again_and_every_start_is_counted() {
    let fake = Fake::new(false, true).on_trigger(OnTrigger::StartAndLose { polls: 1, ok: true });
    fake.0.lock().unwrap().harmless = true;
    let (outcome, updates) = attempt(&fake, IfRunning::Wait, None).await;
    assert_eq!(outcome, AttemptOutcome::Succeeded { adopted: false });
    assert_eq!(fake.triggers(), 2);
    assert_eq!(updates.iter().map(|u| u.triggers).sum::<u32>(), 2);
}

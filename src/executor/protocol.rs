//! The remote-run protocol: one driver for every step that starts work in the service.
//!
//! Each kind of remote work (dataset standard and enhanced refresh, Gen1 dataflow refresh,
//! Fabric item job, `sas_flow` with or without `wait_for`, report export) implements
//! [`RemoteKind`]: its requests and how its status words map to [`RunState`]. Everything
//! else lives here, written once:
//!
//! 1. **Recover** what an earlier attempt, or the run being resumed, left ([`RemoteHandle`]):
//!    a run it named is read again: still alive, it is followed; ended successfully, the step
//!    succeeds without a new trigger; ended unsuccessfully, a new one is triggered. A trigger
//!    whose answer was never recorded (the handle has no run id, only the runs listed before
//!    it) is looked for by set difference and adopted when it shows up.
//! 2. **Freshness** (`skip_if_fresh`): a successful run that ended within the window skips
//!    the trigger.
//! 3. **`if_running`**: a run of the same resource already alive is waited for, adopted,
//!    refused, or cancelled and waited for.
//! 4. **Trigger**, once: the handle with the runs listed just before is made durable first
//!    ([`AttemptContext::checkpoint`]), so a kill at any point leaves enough to find the run.
//!    An answer that says "already running" goes back to step 3; a lost answer (5xx, dropped
//!    connection) is recovered by finding the new run, never by sending again.
//! 5. **Follow** the run: status reads honour `Retry-After`, and a read answered 429 or 5xx
//!    is read again later (polling is safe to repeat) until the run ends or the step's
//!    timeout cancels it. No trigger is sent while the run is alive.
//! 6. **Conclude** with the service's own verdict; on timeout or interrupt, cancel the run
//!    where the API allows it ([`super::common::finish_cancelled`]).
//!
//! The invariants this gives (docs/architecture.md): I1 at most one trigger per attempt; I2
//! no trigger while a run the step started or adopted is alive; I3 `succeeded` only on a run
//! that ended successfully in the service (or a freshness skip); I4 a resumed run never
//! triggers a step whose previous run is alive or ended successfully.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::common::{
    CancelTarget, Stop, conclude, ended_within, guard_raw, is_transient, note, retry_after_of,
    skipped_fresh, took,
};
use super::poll::{Poller, sleep_or_cancel};
use super::{AttemptContext, AttemptOutcome};
use crate::event::{AttemptUpdate, RemoteHandle};
use crate::job::model::IfRunning;
use crate::powerbi::{ClientError, PowerBiClient};

/// Times a running run of the same resource is waited for (or cancelled) before giving up.
const MAX_RUNNING_ROUNDS: u32 = 5;
/// Starts of work that is harmless to repeat (exports) within one attempt, after a lost
/// answer or a failure with `Retry-After`; each counts in the attempt's `triggers`.
const MAX_HARMLESS_REPEATS: u32 = 3;
/// How long to look for the run that a trigger with a lost answer may have started.
const LOST_ANSWER_LOOK: Duration = Duration::from_secs(10);

/// Where a run stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RunState {
    Running,
    Succeeded,
    /// Ended without success (failed, cancelled, deduplicated, ...): the message says how.
    Failed(String),
}

/// A run as the service lists or reports it.
#[derive(Debug, Clone)]
pub(crate) struct RunInfo {
    pub id: String,
    pub state: RunState,
    /// The service's own status word, for progress.
    pub status: Option<String>,
    pub percent: Option<u8>,
    pub start: Option<String>,
    pub end: Option<String>,
    /// Could our trigger have started this run (a standard refresh is a `ViaApi` entry)?
    /// Only such runs are taken as ours when found by set difference.
    pub from_trigger: bool,
    /// Read by id (enhanced execution details, a job instance, an export) rather than found
    /// in the listing.
    pub direct: bool,
}

impl RunInfo {
    fn reference(&self) -> RunRef {
        RunRef {
            id: self.id.clone(),
            direct: self.direct,
        }
    }
}

/// Enough to read a run again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunRef {
    pub id: String,
    pub direct: bool,
}

/// What a trigger's answer says.
#[derive(Debug)]
pub(crate) enum Triggered {
    /// The service named the run; the first status read waits `first_wait` (`Retry-After`).
    Named {
        id: String,
        first_wait: Option<Duration>,
    },
    /// Accepted without an id: the run is found in the listing by set difference.
    Unnamed,
    /// The answer is the whole result (a flow trigger without `wait_for`).
    Done {
        remote_id: Option<String>,
        status: String,
    },
}

/// What an earlier attempt or run left for one resource (see [`RemoteKind::previous`]).
#[derive(Debug, Clone)]
pub(crate) struct Previous {
    /// The run it started or adopted, when its id was recorded.
    pub run: Option<RunRef>,
    /// The runs listed just before its trigger.
    pub known_before: Vec<String>,
}

/// One kind of remote work: its requests and status mapping. Nothing else: the
/// [`drive`] function owns the lifecycle.
pub(crate) trait RemoteKind: Send + Sync {
    /// What its runs are called in messages: "refresh", "transaction", "job instance", ...
    fn noun(&self) -> &'static str;
    /// The resource's display name.
    fn name(&self) -> &str;
    /// True when the service lists recent runs ([`RemoteKind::list`]); without a listing a
    /// lost trigger answer cannot be recovered and `if_running` / freshness do not apply.
    fn listable(&self) -> bool;
    /// Recent runs, newest first (empty when not [`RemoteKind::listable`]).
    fn list(&self) -> impl Future<Output = Result<Vec<RunInfo>, ClientError>> + Send;
    /// Sends the trigger once. Transient faults the service surely did not act on (connect
    /// errors, 429) are re-sent by the HTTP layer; anything else comes back here.
    fn trigger(&self) -> impl Future<Output = Result<Triggered, ClientError>> + Send;
    /// Reads one run's state (`None`: the service no longer knows it), and the answer's
    /// `Retry-After`.
    fn status(
        &self,
        run: &RunRef,
    ) -> impl Future<Output = Result<(Option<RunInfo>, Option<Duration>), ClientError>> + Send;
    /// The handle that lets a later attempt or a resumed run find `run` (or, with `None`, the
    /// run a trigger sent after listing `known_before` started).
    fn handle(&self, run: Option<&RunRef>, known_before: &[String]) -> RemoteHandle;
    /// What `handle` says about this resource, if it is one of its handles.
    fn previous(&self, handle: &RemoteHandle) -> Option<Previous>;
    /// How to cancel `run`.
    fn cancel_target(&self, run: &RunRef) -> CancelTarget;
    /// How long a run accepted without an id may take to show in the listing.
    fn appear_within(&self) -> Duration;
    /// True when sending the trigger twice is harmless and the only recovery from a lost
    /// answer (an export changes nothing in the service and cannot be listed).
    fn repeat_is_harmless(&self) -> bool {
        false
    }
    /// What follows the run's success (an export downloads its file).
    fn finish(&self, _run: &RunRef) -> impl Future<Output = Result<(), Stop>> + Send {
        async { Ok(()) }
    }
}

/// Runs one attempt of `kind` through the whole protocol.
pub(crate) async fn drive<K: RemoteKind>(
    client: &PowerBiClient,
    ctx: &AttemptContext,
    kind: &K,
) -> AttemptOutcome {
    if let Some(slot) = &ctx.estimate {
        // Estimating only: one listing, never a trigger.
        let runs = if kind.listable() {
            guard_raw(&ctx.cancel, kind.list()).await
        } else {
            Ok(Ok(Vec::new()))
        };
        let expected = match runs {
            Ok(Ok(runs)) => expected_duration(&runs),
            _ => None,
        };
        if let Ok(mut s) = slot.lock() {
            *s = expected;
        }
        return AttemptOutcome::Refused {
            error: "estimate only: nothing was triggered".into(),
        };
    }
    let mut driver = Driver {
        client,
        ctx,
        kind,
        target: None,
        reads: 0,
    };
    let result = driver.run().await;
    if driver.reads > 0 {
        ctx.update(AttemptUpdate {
            reads: driver.reads,
            ..AttemptUpdate::default()
        });
    }
    let target = driver.target.take();
    conclude(client, ctx, result, target.as_ref()).await
}

struct Driver<'a, K> {
    client: &'a PowerBiClient,
    ctx: &'a AttemptContext,
    kind: &'a K,
    /// The run to cancel on timeout or interrupt, once known.
    target: Option<CancelTarget>,
    /// Status reads sent (listings and run states), reported when the attempt ends.
    reads: u32,
}

impl<K: RemoteKind> Driver<'_, K> {
    async fn run(&mut self) -> Result<AttemptOutcome, Stop> {
        // 1. What an earlier attempt or the resumed run left.
        if let Some(prev) = self
            .ctx
            .reattach
            .as_ref()
            .and_then(|h| self.kind.previous(h))
            && let Some(outcome) = self.recover(prev).await?
        {
            return Ok(outcome);
        }

        let mut runs = self.list().await?;
        // 2. Freshness.
        if let Some(window) = self.ctx.step.skip_if_fresh
            && let Some(end) = runs
                .iter()
                .filter(|r| r.state == RunState::Succeeded)
                .find_map(|r| ended_within(r.end.as_deref(), window))
        {
            return Ok(skipped_fresh(end, window));
        }

        let mut rounds = 0;
        let mut harmless_repeats = 0;
        loop {
            // 3. A run of the same resource already alive.
            if let Some(running) = runs.iter().find(|r| r.state == RunState::Running).cloned() {
                rounds += 1;
                if rounds > MAX_RUNNING_ROUNDS {
                    return Err(Stop::Failed(format!(
                        "{} kept running other {}s; gave up after {MAX_RUNNING_ROUNDS} waits",
                        self.kind.name(),
                        self.kind.noun()
                    )));
                }
                if let Some(outcome) = self.if_running(running).await? {
                    return Ok(outcome);
                }
                runs = self.list().await?;
                continue;
            }

            // 4. Trigger, once; durable handle first.
            let known: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
            if self.kind.listable() {
                self.ctx
                    .checkpoint(AttemptUpdate {
                        handle: Some(self.kind.handle(None, &known)),
                        ..AttemptUpdate::default()
                    })
                    .await;
            }
            let started = Instant::now();
            let answer = guard_raw(&self.ctx.cancel, self.kind.trigger()).await?;
            self.ctx.update(AttemptUpdate {
                triggers: 1,
                ..AttemptUpdate::default()
            });
            let expected = expected_duration(&runs);
            match answer {
                Ok(Triggered::Named { id, first_wait }) => {
                    let run = RunRef { id, direct: true };
                    self.own(&run, &known);
                    let poller = Poller::starting_at(self.ctx.step.poll_interval, started)
                        .expecting(expected);
                    match self.follow(&run, None, first_wait, poller, false).await {
                        // The service ended it for want of room and said when to ask again:
                        // for work that is harmless to repeat, that is a new start.
                        Err(Stop::Wait { error, wait })
                            if self.kind.repeat_is_harmless()
                                && harmless_repeats < MAX_HARMLESS_REPEATS =>
                        {
                            harmless_repeats += 1;
                            self.ctx.update(note(format!(
                                "{error}; the service asked to retry in {}: starting it again",
                                humantime::format_duration(wait)
                            )));
                            sleep_or_cancel(&self.ctx.cancel, wait).await?;
                            continue;
                        }
                        other => return other,
                    }
                }
                Ok(Triggered::Unnamed) => {
                    let limit = self.kind.appear_within();
                    let Some(found) = self.find_new(&known, started, limit, expected).await? else {
                        return Err(Stop::Failed(format!(
                            "the {} of {} was accepted but never appeared in its history within \
                             {} (the service may have dropped it; the next attempt looks for it \
                             again before triggering)",
                            self.kind.noun(),
                            self.kind.name(),
                            humantime::format_duration(limit)
                        )));
                    };
                    let run = found.reference();
                    self.own(&run, &known);
                    let poller = Poller::starting_at(self.ctx.step.poll_interval, started)
                        .expecting(expected);
                    return self.follow(&run, Some(found), None, poller, false).await;
                }
                Ok(Triggered::Done { remote_id, status }) => {
                    self.ctx.update(AttemptUpdate {
                        remote_status: Some(status),
                        remote_id,
                        ..AttemptUpdate::default()
                    });
                    return Ok(AttemptOutcome::Succeeded { adopted: false });
                }
                Err(e) if e.is_already_running() && self.kind.listable() => {
                    // The service did not take it: apply `if_running` to the run it names.
                    runs = self.list().await?;
                    if !runs.iter().any(|r| r.state == RunState::Running) {
                        return Err(Stop::Failed(e.to_string()));
                    }
                    continue;
                }
                Err(e) if answer_lost(&e) => {
                    if self.kind.listable() {
                        let look = LOST_ANSWER_LOOK.min(self.kind.appear_within());
                        if let Some(found) = self.find_new(&known, started, look, None).await? {
                            tracing::info!(
                                step = %self.ctx.step.id,
                                "the trigger's answer was lost but {} {} started",
                                self.kind.noun(),
                                found.id
                            );
                            let run = found.reference();
                            self.own(&run, &known);
                            let poller = Poller::starting_at(self.ctx.step.poll_interval, started)
                                .expecting(expected);
                            return self.follow(&run, Some(found), None, poller, false).await;
                        }
                        return Err(Stop::Failed(format!(
                            "{e} (the answer was lost and no new {} appeared within {}; the \
                             next attempt looks for it again before triggering)",
                            self.kind.noun(),
                            humantime::format_duration(look)
                        )));
                    }
                    if self.kind.repeat_is_harmless() && harmless_repeats < MAX_HARMLESS_REPEATS {
                        harmless_repeats += 1;
                        self.ctx.update(note(format!(
                            "the {} request's answer was lost ({e}); starting it again (harmless: \
                             it changes nothing in the service)",
                            self.kind.noun()
                        )));
                        continue;
                    }
                    return Err(Stop::Failed(e.to_string()));
                }
                Err(e) => return Err(Stop::from(e)),
            }
        }
    }

    /// Step 1: follows or concludes what an earlier attempt left; `None` when a new trigger
    /// is due.
    async fn recover(&mut self, prev: Previous) -> Result<Option<AttemptOutcome>, Stop> {
        match prev.run {
            Some(run) => {
                let Some(info) = self.read_until_answered(&run).await? else {
                    self.ctx.update(note(format!(
                        "the earlier {} {} is no longer listed: triggering a new one",
                        self.kind.noun(),
                        run.id
                    )));
                    return Ok(None);
                };
                match &info.state {
                    RunState::Failed(why) => {
                        self.ctx.update(note(format!(
                            "the earlier {} {} ended: {why}; triggering a new one",
                            self.kind.noun(),
                            run.id
                        )));
                        Ok(None)
                    }
                    _ => {
                        self.ctx.update(note(format!(
                            "re-attaching to {} {} started earlier",
                            self.kind.noun(),
                            run.id
                        )));
                        // This attempt's own record of the run, so that a kill now still
                        // leaves it to the next resume.
                        self.own(&run, &prev.known_before);
                        let poller = Poller::new(self.ctx.step.poll_interval);
                        self.follow(&run, Some(info), None, poller, false)
                            .await
                            .map(Some)
                    }
                }
            }
            None if self.kind.listable() => {
                // A trigger may have gone out without its answer being recorded.
                let found = self
                    .find_new(
                        &prev.known_before,
                        Instant::now(),
                        self.kind.appear_within(),
                        None,
                    )
                    .await?;
                let Some(found) = found else {
                    return Ok(None);
                };
                self.ctx.update(note(format!(
                    "found {} {} started by an earlier attempt whose answer was not recorded",
                    self.kind.noun(),
                    found.id
                )));
                let run = found.reference();
                self.own(&run, &prev.known_before);
                let poller = Poller::new(self.ctx.step.poll_interval);
                self.follow(&run, Some(found), None, poller, false)
                    .await
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    /// Step 3: applies `if_running` to `running`; `Some` when the attempt ends with it.
    async fn if_running(&mut self, running: RunInfo) -> Result<Option<AttemptOutcome>, Stop> {
        let noun = self.kind.noun();
        let run = running.reference();
        match self.ctx.step.if_running {
            IfRunning::Fail => Err(Stop::Refused(format!(
                "a {noun} of {} is already running ({noun} {}, started {}); if_running is fail",
                self.kind.name(),
                running.id,
                running.start.as_deref().unwrap_or("at an unknown time")
            ))),
            IfRunning::Adopt => {
                self.ctx.update(AttemptUpdate {
                    remote_id: Some(running.id.clone()),
                    handle: Some(self.kind.handle(Some(&run), &[])),
                    note: Some(format!("adopting running {noun} {}", running.id)),
                    ..AttemptUpdate::default()
                });
                self.target = Some(self.kind.cancel_target(&run));
                let poller = Poller::new(self.ctx.step.poll_interval);
                self.follow(&run, Some(running), None, poller, true)
                    .await
                    .map(Some)
            }
            IfRunning::Restart => {
                self.ctx.update(note(format!(
                    "cancelling running {noun} {} (if_running: restart)",
                    running.id
                )));
                let conn = self.ctx.step.connection.as_str();
                let target = self.kind.cancel_target(&run);
                match guard_raw(&self.ctx.cancel, target.cancel(self.client, conn)).await? {
                    Ok(true) => {}
                    Ok(false) => self.ctx.update(note(format!(
                        "the API cannot cancel {noun} {}: waiting for it to end",
                        running.id
                    ))),
                    Err(e) => self.ctx.update(note(format!(
                        "cannot cancel {noun} {} ({e}): waiting for it to end",
                        running.id
                    ))),
                }
                self.wait_end(&run, running).await?;
                Ok(None)
            }
            IfRunning::Wait => {
                self.ctx.update(note(format!(
                    "waiting for running {noun} {} to end",
                    running.id
                )));
                self.wait_end(&run, running).await?;
                Ok(None)
            }
        }
    }

    /// Waits until another run ends (its outcome does not matter: ours is triggered next).
    async fn wait_end(&mut self, run: &RunRef, seen: RunInfo) -> Result<(), Stop> {
        let mut poller = Poller::new(self.ctx.step.poll_interval);
        let mut retry_after = None;
        let mut seen = Some(seen);
        loop {
            let info = match seen.take() {
                Some(i) => Some(i),
                None => {
                    poller.wait(&self.ctx.cancel, retry_after).await?;
                    match self.read_status(run).await? {
                        Ok((info, ra)) => {
                            retry_after = ra;
                            info
                        }
                        Err(e) if is_transient(&e) => {
                            retry_after = retry_after_of(&e);
                            continue;
                        }
                        Err(e) => return Err(Stop::from(e)),
                    }
                }
            };
            match info {
                Some(i) if i.state == RunState::Running => {}
                _ => return Ok(()),
            }
        }
    }

    /// Records `run` as this attempt's own: cancel target, remote id and durable handle.
    fn own(&mut self, run: &RunRef, known: &[String]) {
        self.target = Some(self.kind.cancel_target(run));
        self.ctx.update(AttemptUpdate {
            remote_id: Some(run.id.clone()),
            handle: Some(self.kind.handle(Some(run), known)),
            ..AttemptUpdate::default()
        });
    }

    /// Step 5 and 6: follows `run` to its end. `seen`: the run as a read just made found it.
    async fn follow(
        &mut self,
        run: &RunRef,
        seen: Option<RunInfo>,
        first_wait: Option<Duration>,
        mut poller: Poller,
        adopted: bool,
    ) -> Result<AttemptOutcome, Stop> {
        let mut seen = seen;
        let mut retry_after = first_wait;
        let mut wait_first = first_wait.is_some();
        let mut last: (Option<String>, Option<u8>) = (None, None);
        loop {
            let info = match seen.take() {
                Some(i) => Some(i),
                None => {
                    if wait_first {
                        poller.wait(&self.ctx.cancel, retry_after).await?;
                    }
                    wait_first = true;
                    match self.read_status(run).await? {
                        Ok((info, ra)) => {
                            retry_after = ra;
                            info
                        }
                        Err(e) if is_transient(&e) => {
                            // A status read is safe to repeat: keep the run, read again later.
                            retry_after = retry_after_of(&e);
                            self.ctx.update(note(format!(
                                "status read of {} {} answered {}: reading again{}",
                                self.kind.noun(),
                                run.id,
                                e.status().map_or_else(
                                    || "with no answer".to_string(),
                                    |s| s.to_string()
                                ),
                                retry_after
                                    .map(|d| format!(" in {}", humantime::format_duration(d)))
                                    .unwrap_or_default()
                            )));
                            continue;
                        }
                        Err(e) => {
                            return Err(Stop::Failed(format!(
                                "cannot read the state of {} {}: {e} (the next attempt reads it \
                                 again before triggering)",
                                self.kind.noun(),
                                run.id
                            )));
                        }
                    }
                }
            };
            let Some(info) = info else {
                return Err(Stop::Failed(format!(
                    "{} {} disappeared from {}",
                    self.kind.noun(),
                    run.id,
                    self.kind.name()
                )));
            };
            if (info.status.clone(), info.percent) != last {
                last = (info.status.clone(), info.percent);
                self.ctx.update(AttemptUpdate {
                    remote_status: info.status.clone(),
                    percent: info.percent,
                    remote_id: Some(run.id.clone()),
                    ..AttemptUpdate::default()
                });
            }
            match info.state {
                RunState::Running => {
                    wait_first = true;
                }
                RunState::Succeeded => {
                    self.kind.finish(run).await?;
                    return Ok(AttemptOutcome::Succeeded { adopted });
                }
                RunState::Failed(error) => {
                    return Err(match retry_after {
                        Some(wait) => Stop::Wait { error, wait },
                        None => Stop::Failed(error),
                    });
                }
            }
        }
    }

    /// One read of `run`'s state, counted.
    async fn read_status(
        &mut self,
        run: &RunRef,
    ) -> Result<Result<(Option<RunInfo>, Option<Duration>), ClientError>, Stop> {
        self.reads += 1;
        guard_raw(&self.ctx.cancel, self.kind.status(run)).await
    }

    /// One read of the listing, counted.
    async fn read_list(&mut self) -> Result<Result<Vec<RunInfo>, ClientError>, Stop> {
        self.reads += 1;
        guard_raw(&self.ctx.cancel, self.kind.list()).await
    }

    /// Reads `run` until the service answers (transient faults are read again).
    async fn read_until_answered(&mut self, run: &RunRef) -> Result<Option<RunInfo>, Stop> {
        let mut poller = Poller::new(self.ctx.step.poll_interval);
        loop {
            match self.read_status(run).await? {
                Ok((info, _)) => return Ok(info),
                Err(e) if is_transient(&e) => {
                    poller.wait(&self.ctx.cancel, retry_after_of(&e)).await?;
                }
                Err(e) => return Err(Stop::from(e)),
            }
        }
    }

    /// The listing, or nothing for kinds without one. Transient faults are read again.
    async fn list(&mut self) -> Result<Vec<RunInfo>, Stop> {
        if !self.kind.listable() {
            return Ok(Vec::new());
        }
        let mut poller = Poller::new(self.ctx.step.poll_interval);
        loop {
            match self.read_list().await? {
                Ok(runs) => return Ok(runs),
                Err(e) if is_transient(&e) && e.status() == Some(429) => {
                    poller.wait(&self.ctx.cancel, retry_after_of(&e)).await?;
                }
                Err(e) => return Err(Stop::from(e)),
            }
        }
    }

    /// Waits (bounded by `limit` from `started`) for a run not in `known` that our trigger
    /// could have started; the oldest such run is the closest to the trigger.
    ///
    /// With the run's usual duration `expected`, the first look waits for the poller's first
    /// check (the entry it finds is also the run's first status read), so a long run is not
    /// read early only to be found; without, it looks at once.
    async fn find_new(
        &mut self,
        known: &[String],
        started: Instant,
        limit: Duration,
        expected: Option<Duration>,
    ) -> Result<Option<RunInfo>, Stop> {
        if expected.is_some() {
            let first = Poller::starting_at(self.ctx.step.poll_interval, started)
                .expecting(expected)
                .pause_after(started.elapsed(), None);
            sleep_or_cancel(&self.ctx.cancel, first).await?;
        }
        let mut poller = Poller::starting_at(
            self.ctx.step.poll_interval.min(Duration::from_secs(5)),
            started,
        );
        loop {
            let runs = self.list().await?;
            if let Some(found) = runs
                .into_iter()
                .rev()
                .find(|r| r.from_trigger && !known.contains(&r.id))
            {
                return Ok(Some(found));
            }
            if started.elapsed() >= limit {
                return Ok(None);
            }
            poller.wait(&self.ctx.cancel, None).await?;
        }
    }
}

/// Successful runs whose durations make the estimate.
const ESTIMATE_RUNS: usize = 5;

/// The usual duration of the resource's runs: the median of its last successful ones (the
/// likely length of the next; one unusual run does not move it).
pub(crate) fn expected_duration(runs: &[RunInfo]) -> Option<Duration> {
    let mut durations: Vec<Duration> = runs
        .iter()
        .filter(|r| r.state == RunState::Succeeded)
        .filter_map(|r| took(r.start.as_deref(), r.end.as_deref()))
        .take(ESTIMATE_RUNS)
        .collect();
    durations.sort();
    durations.get(durations.len() / 2).copied()
}

/// True when a trigger's answer leaves it unknown whether the service acted: a 5xx (but not
/// 503 with `Retry-After`, which says it did not) or a connection that broke after sending.
fn answer_lost(e: &ClientError) -> bool {
    match e {
        ClientError::Api {
            status,
            retry_after,
            ..
        } => *status >= 500 && !(*status == 503 && retry_after.is_some()),
        ClientError::Transport { maybe_sent, .. } => *maybe_sent,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    //! The driver against a scripted service, in paused time: every case counts the triggers
    //! the service received (I1/I2) and checks the verdict against the service's (I3).

    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use indexmap::IndexMap;
    use tokio::sync::mpsc;

    use super::*;
    use crate::executor::{Cancel, RunView};
    use crate::job::model::Cloud;
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
        let fake =
            Fake::new(true, false).on_trigger(OnTrigger::Refuse(api(502, "BadGateway", None)));
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

        let fake = Fake::new(true, true).on_trigger(OnTrigger::Refuse(api(
            429,
            "TooManyRequests",
            Some(900),
        )));
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
        let fake =
            Fake::new(false, true).on_trigger(OnTrigger::StartAndLose { polls: 1, ok: true });
        fake.0.lock().unwrap().harmless = true;
        let (outcome, updates) = attempt(&fake, IfRunning::Wait, None).await;
        assert_eq!(outcome, AttemptOutcome::Succeeded { adopted: false });
        assert_eq!(fake.triggers(), 2);
        assert_eq!(updates.iter().map(|u| u.triggers).sum::<u32>(), 2);
    }
}

//! The driver: one attempt of a [`RemoteKind`] through recover, freshness, `if_running`,
//! trigger, follow and conclude (the steps the module doc of [`super`] lists).

use crate::event::AttemptUpdate;
use crate::executor::common::{
    CancelTarget, Stop, ended_within, guard_raw, is_transient, note, retry_after_of, skipped_fresh,
};
use crate::executor::poll::{Poller, sleep_or_cancel};
use crate::executor::{AttemptContext, AttemptOutcome};
use crate::job::model::IfRunning;
use crate::powerbi::{ClientError, PowerBiClient};
use std::time::Duration;
use tokio::time::Instant;

use super::*;

pub(super) struct Driver<'a, K> {
    pub(super) client: &'a PowerBiClient,
    pub(super) ctx: &'a AttemptContext,
    pub(super) kind: &'a K,
    /// The run to cancel on timeout or interrupt, once known.
    pub(super) target: Option<CancelTarget>,
    /// Status reads sent (listings and run states), reported when the attempt ends.
    pub(super) reads: u32,
}

impl<K: RemoteKind> Driver<'_, K> {
    pub(super) async fn run(&mut self) -> Result<AttemptOutcome, Stop> {
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

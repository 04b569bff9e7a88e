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

use super::common::{CancelTarget, Stop, conclude, guard_raw, took};
use super::{AttemptContext, AttemptOutcome};
use crate::event::{AttemptUpdate, RemoteHandle, Usual};
use crate::powerbi::{ClientError, PowerBiClient};

mod driver;
#[cfg(test)]
mod tests;

use driver::Driver;

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
        let listing = match runs {
            Ok(Ok(runs)) => super::Listing {
                listed: true,
                usual: usual_duration(&runs),
                last_success_end: runs
                    .iter()
                    .filter(|r| r.state == RunState::Succeeded)
                    .find_map(|r| r.end.clone()),
                error: None,
            },
            Ok(Err(e)) => super::Listing {
                listed: true,
                error: Some(e),
                ..super::Listing::default()
            },
            Err(_) => super::Listing::default(),
        };
        if let Ok(mut s) = slot.lock() {
            *s = listing;
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

/// Successful runs whose durations make the estimate.
const ESTIMATE_RUNS: usize = 5;

/// The usual duration of the resource's runs: the median of its last successful ones (the
/// likely length of the next; one unusual run does not move it).
pub(crate) fn expected_duration(runs: &[RunInfo]) -> Option<Duration> {
    usual_duration(runs).map(|u| u.median)
}

/// [`expected_duration`] with the number of runs it is the median of.
pub(crate) fn usual_duration(runs: &[RunInfo]) -> Option<Usual> {
    let mut durations: Vec<Duration> = runs
        .iter()
        .filter(|r| r.state == RunState::Succeeded)
        .filter_map(|r| took(r.start.as_deref(), r.end.as_deref()))
        .take(ESTIMATE_RUNS)
        .collect();
    durations.sort();
    let median = durations.get(durations.len() / 2).copied()?;
    Some(Usual {
        median,
        runs: durations.len() as u32,
    })
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

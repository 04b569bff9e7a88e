//! One step's attempts: timeout, cancellation, retries and backoff.
//!
//! Each started step runs as one task that drives its attempts one after the other and
//! reports to the scheduler over one channel (`AttemptReport`); it never emits events itself.
//!
//! - An attempt gets a fresh [`Cancel`]. When it runs past the step's `timeout` (counted from
//!   the attempt's start), the task fires [`CancelReason::Timeout`] and waits up to
//!   [`CANCEL_GRACE`] for the executor to return, so it can cancel the remote work; the attempt
//!   is then `timed_out` (unless the executor reports that the work succeeded after all).
//! - On interrupt the task fires [`CancelReason::Interrupt`] (with `detach`) and waits the same
//!   grace; the attempt and the step are `cancelled`.
//! - A `failed` or `timed_out` attempt is retried while `retries` remain, after
//!   [`backoff`]: `retry_backoff` doubling each retry, capped at `max_backoff`. An interrupt
//!   during the backoff ends the step `cancelled`. The step ends with the last attempt's status.
//! - An executor that returns `Cancelled` although nothing asked it to stop has failed.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::view::ViewState;
use crate::event::{AttemptUpdate, RemoteHandle, StepStatus};
use crate::executor::{AttemptContext, AttemptOutcome, Cancel, CancelReason, Executor, SkipKind};
use crate::job::model::{Step, StepId};

/// How long an executor may take to return after a cancel request (to cancel remotely).
pub(crate) const CANCEL_GRACE: Duration = Duration::from_secs(60);

/// The pause before retry number `retry` (from 1): `base * 2^(retry-1)`, at most `max`.
pub(crate) fn backoff(base: Duration, max: Duration, retry: u32) -> Duration {
    let factor = 2u32.saturating_pow(retry.saturating_sub(1));
    base.checked_mul(factor).unwrap_or(max).min(max)
}

/// What a step task tells the scheduler.
#[derive(Debug)]
pub(crate) enum AttemptReport {
    Started {
        step: usize,
        attempt: u32,
    },
    /// An executor's update, forwarded so it stays in order with the attempt's other reports.
    Progress {
        step: usize,
        attempt: u32,
        update: Box<AttemptUpdate>,
    },
    Finished {
        step: usize,
        attempt: u32,
        status: StepStatus,
        error: Option<String>,
        retry_in: Option<Duration>,
    },
    Done {
        step: usize,
        status: StepStatus,
        reason: Option<String>,
        attempts: u32,
        adopted: bool,
        /// Why the executor skipped, when it did: a freshness skip satisfies dependents.
        skip: Option<SkipKind>,
    },
}

/// Everything a step task needs.
pub(crate) struct StepTask {
    /// Index of the step in the scheduler's tables.
    pub index: usize,
    pub run_id: String,
    pub step: Arc<Step>,
    /// Its attempts get the final statuses and stats of the other steps in their
    /// [`crate::executor::RunView`] ([`crate::plan::StepNeeds::run_view`]).
    pub run_view: bool,
    pub executor: Arc<dyn Executor>,
    pub reports: mpsc::UnboundedSender<AttemptReport>,
    pub view: watch::Receiver<ViewState>,
    pub reattach: Option<RemoteHandle>,
    pub interrupt: CancellationToken,
    pub detach: bool,
    /// Updates are recorded in a state store that confirms writes ([`AttemptContext::durable`]).
    pub durable: bool,
}

/// The verdict on one attempt.
struct Verdict {
    status: StepStatus,
    error: Option<String>,
    adopted: bool,
    /// Another attempt would meet the same answer ([`AttemptOutcome::Refused`]).
    refused: bool,
    /// Set when the executor skipped its trigger on purpose.
    skip: Option<SkipKind>,
    /// The pause the service asked for before another try.
    retry_after: Option<Duration>,
}

impl Verdict {
    /// The verdict on an attempt that neither succeeded nor skipped.
    fn failed(status: StepStatus, error: String, refused: bool) -> Verdict {
        Verdict {
            status,
            error: Some(error),
            adopted: false,
            refused,
            skip: None,
            retry_after: None,
        }
    }
}

impl StepTask {
    /// Runs attempts until one ends the step; reports everything to the scheduler.
    pub(crate) async fn run(mut self) {
        let step = self.step.clone();
        // Executors' updates come here first and are forwarded as reports: one channel to the
        // scheduler keeps every step's story in order.
        let (updates_tx, mut updates_rx) = mpsc::unbounded_channel();
        let mut attempt = 0u32;
        // The last remote handle an attempt reported: the next attempt reads that run again
        // before it triggers anything (a run still alive is followed, not started twice).
        let mut last_handle = self.reattach.take();
        loop {
            attempt += 1;
            let _ = self.reports.send(AttemptReport::Started {
                step: self.index,
                attempt,
            });
            let cancel = Cancel::new();
            let ctx = AttemptContext {
                run_id: self.run_id.clone(),
                step: step.clone(),
                attempt,
                cancel: cancel.clone(),
                updates: updates_tx.clone(),
                run_view: self.view.borrow().run_view(self.run_view),
                reattach: last_handle.clone(),
                durable: self.durable,
                estimate: None,
            };
            let fut = self.executor.execute(ctx);
            let mut verdict = self
                .drive(fut, cancel, attempt, &mut updates_rx, &mut last_handle)
                .await;
            let retryable = matches!(verdict.status, StepStatus::Failed | StepStatus::TimedOut)
                && !verdict.refused;
            if verdict.refused && attempt <= step.retries {
                // Say why the retries the step asked for were not used.
                verdict.error = verdict
                    .error
                    .map(|e| format!("{e} (not retried: another attempt would fail the same way)"));
            }
            // Never sooner than the service asked (`Retry-After`), even past `max_backoff`.
            let retry_in = (retryable && attempt <= step.retries && !self.interrupt.is_cancelled())
                .then(|| {
                    backoff(step.retry_backoff, step.max_backoff, attempt)
                        .max(verdict.retry_after.unwrap_or_default())
                });
            let _ = self.reports.send(AttemptReport::Finished {
                step: self.index,
                attempt,
                status: verdict.status,
                error: verdict.error.clone(),
                retry_in,
            });
            if let Some(pause) = retry_in {
                tokio::select! {
                    biased;
                    _ = self.interrupt.cancelled() => {
                        self.done(
                            StepStatus::Cancelled,
                            Some(format!(
                                "run interrupted while waiting to retry (attempt {attempt}: {})",
                                verdict.error.as_deref().unwrap_or(verdict.status.as_str())
                            )),
                            attempt,
                            false,
                            None,
                        );
                        return;
                    }
                    _ = tokio::time::sleep(pause) => continue,
                }
            }
            let reason = match verdict.status {
                StepStatus::Failed | StepStatus::TimedOut if step.continue_on_error => {
                    Some(format!(
                        "{} (continue_on_error: the run and dependents go on)",
                        verdict.error.as_deref().unwrap_or(verdict.status.as_str())
                    ))
                }
                _ => verdict.error,
            };
            self.done(
                verdict.status,
                reason,
                attempt,
                verdict.adopted,
                verdict.skip,
            );
            return;
        }
    }

    fn done(
        &self,
        status: StepStatus,
        reason: Option<String>,
        attempts: u32,
        adopted: bool,
        skip: Option<SkipKind>,
    ) {
        let _ = self.reports.send(AttemptReport::Done {
            step: self.index,
            status,
            reason,
            attempts,
            adopted,
            skip,
        });
    }

    /// Runs one attempt under its timeout and the run's interrupt, forwarding its updates.
    async fn drive(
        &self,
        mut fut: BoxFuture<'static, AttemptOutcome>,
        cancel: Cancel,
        attempt: u32,
        updates: &mut Updates,
        last_handle: &mut Option<RemoteHandle>,
    ) -> Verdict {
        let timeout = self.step.timeout;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let requested = loop {
            tokio::select! {
                biased;
                Some((_, n, update)) = updates.recv() => self.forward(n, update, last_handle),
                outcome = &mut fut => {
                    self.drain(updates, last_handle);
                    return verdict(outcome, None, timeout);
                }
                _ = self.interrupt.cancelled() => break CancelReason::Interrupt { detach: self.detach },
                _ = &mut deadline => break CancelReason::Timeout,
            }
        };
        cancel.cancel(requested);
        let grace = tokio::time::sleep(CANCEL_GRACE);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                biased;
                Some((_, n, update)) = updates.recv() => self.forward(n, update, last_handle),
                outcome = &mut fut => {
                    self.drain(updates, last_handle);
                    return verdict(outcome, Some(requested), timeout);
                }
                _ = &mut grace => {
                    self.drain(updates, last_handle);
                    let (status, what) = stopped(requested, timeout);
                    return Verdict::failed(
                        status,
                        format!(
                            "{what}; the executor did not stop within {} of the cancel request (attempt {attempt})",
                            humantime::format_duration(CANCEL_GRACE)
                        ),
                        false,
                    );
                }
            }
        }
    }

    fn forward(&self, attempt: u32, update: AttemptUpdate, last_handle: &mut Option<RemoteHandle>) {
        if let Some(h) = &update.handle {
            *last_handle = Some(h.clone());
        }
        let _ = self.reports.send(AttemptReport::Progress {
            step: self.index,
            attempt,
            update: Box::new(update),
        });
    }

    /// Forwards what an executor sent before it returned.
    fn drain(&self, updates: &mut Updates, last_handle: &mut Option<RemoteHandle>) {
        while let Ok((_, n, update)) = updates.try_recv() {
            self.forward(n, update, last_handle);
        }
    }
}

/// The receiving end of the channel given to attempts as [`AttemptContext::updates`].
type Updates = mpsc::UnboundedReceiver<(StepId, u32, AttemptUpdate)>;

/// The status and message of an attempt stopped for `reason`.
fn stopped(reason: CancelReason, timeout: Duration) -> (StepStatus, String) {
    match reason {
        CancelReason::Timeout => (
            StepStatus::TimedOut,
            format!("timed out after {}", humantime::format_duration(timeout)),
        ),
        CancelReason::Interrupt { detach: false } => {
            (StepStatus::Cancelled, "cancelled: run interrupted".into())
        }
        CancelReason::Interrupt { detach: true } => (
            StepStatus::Cancelled,
            "cancelled: run interrupted (remote work left running)".into(),
        ),
    }
}

fn verdict(outcome: AttemptOutcome, requested: Option<CancelReason>, timeout: Duration) -> Verdict {
    let joined = |what: String, detail: Option<String>| match detail {
        Some(d) if !d.is_empty() => format!("{what}: {d}"),
        _ => what,
    };
    match (outcome, requested) {
        (AttemptOutcome::Succeeded { adopted }, _) => Verdict {
            status: StepStatus::Succeeded,
            error: None,
            adopted,
            refused: false,
            skip: None,
            retry_after: None,
        },
        (AttemptOutcome::Skipped { reason, kind }, _) => Verdict {
            status: StepStatus::Skipped,
            error: Some(reason),
            adopted: false,
            refused: false,
            skip: Some(kind),
            retry_after: None,
        },
        (AttemptOutcome::Failed { error, retry_after }, None) => Verdict {
            retry_after,
            ..Verdict::failed(StepStatus::Failed, error, false)
        },
        (AttemptOutcome::Refused { error }, None) => {
            Verdict::failed(StepStatus::Failed, error, true)
        }
        (AttemptOutcome::Cancelled { error }, None) => Verdict::failed(
            StepStatus::Failed,
            joined(
                "the executor stopped without a cancel request".into(),
                error,
            ),
            false,
        ),
        (
            AttemptOutcome::Failed { error, .. } | AttemptOutcome::Refused { error },
            Some(reason),
        ) => {
            let (status, what) = stopped(reason, timeout);
            Verdict::failed(status, joined(what, Some(error)), false)
        }
        (AttemptOutcome::Cancelled { error }, Some(reason)) => {
            let (status, what) = stopped(reason, timeout);
            Verdict::failed(status, joined(what, error), false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(30), s(600), 1), s(30));
        assert_eq!(backoff(s(30), s(600), 2), s(60));
        assert_eq!(backoff(s(30), s(600), 3), s(120));
        assert_eq!(backoff(s(30), s(600), 6), s(600));
        assert_eq!(backoff(s(30), s(600), 100), s(600));
    }
}

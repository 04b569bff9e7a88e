//! The engine: the only place that schedules attempts and emits [`crate::event::RunEvent`]s.
//!
//! # How a run proceeds
//!
//! Scheduling is eager, not wave by wave: a step becomes *resolvable* the moment every one of
//! its selected dependencies has a final status (a dependency outside the selection counts as
//! `succeeded`). Then, in this order:
//!
//! 1. Its trigger rule is applied to the parents' outcomes ([`trigger`]). A parent that ended
//!    `failed` or `timed_out` with `continue_on_error: true` counts as succeeded here, and so
//!    does a freshness skip (`skip_if_fresh`, reported `skipped` with a reason starting
//!    `fresh`: the resource's data is current); `failed`, `timed_out` and `upstream_failed`
//!    count as failed; any other `skipped` parent counts as skipped; a `cancelled` parent
//!    cancels the step.
//!    An unmet rule ends the step `upstream_failed` when a failure is what stopped it, and
//!    `skipped` otherwise; the reason names the rule and the parents that decided it.
//! 2. Its `when:` condition is evaluated ([`condition`]). `false` ends the step `skipped` with
//!    the reason `condition false: <expr>`; an evaluation error ends it `failed` with the message.
//!    Evaluation runs on a blocking thread, not on the scheduler's task, and may take at most
//!    10 s (validation already refuses expressions that could take long): an evaluation never
//!    holds off attempts' reports or an interrupt, which cancels the step at once.
//! 3. It joins the ready queue. Among ready steps the one with the longest remaining path to the
//!    end of the plan starts first (by `priority_hint` durations when given, else by step
//!    count), ties in job order. A step starts only when the global concurrency, its `pool:`
//!    and the data limits it joins ([`DataLimits`]: capacity-aware limits), and the exclusive
//!    resources the plan gives it ([`crate::plan::StepNeeds`]: one in-flight step per
//!    workspace + dataset / dataflow; a `sas_flow` with `wait_for` holds its dataflow, a
//!    `capacity` step its capacity) all have room; a blocked step does not block the ones
//!    behind it. The engine never looks at a step's type. A step holds its permits from its first attempt to its last,
//!    retry backoff included, so a retry is never starved by steps that started later.
//!
//! Attempts ([`attempt`]) run as tasks that report back to the scheduler; the scheduler turns
//! those reports and the executors' progress updates into events, in order, with increasing
//! `seq`. See [`attempt`] for timeouts, retries and backoff.
//!
//! # Stopping
//!
//! `--fail-fast`: the first step that ends `failed` or `timed_out` (and does not have
//! `continue_on_error`) stops the run from starting anything new. Running steps finish;
//! trigger rules are still applied as parents finish (so a child of a failed step still ends
//! `upstream_failed`), but a step that would start ends `cancelled` instead.
//!
//! Interrupt (the token passed to [`run`]): nothing new starts, every running attempt is
//! cancelled with [`CancelReason::Interrupt`](crate::executor::CancelReason) (`detach` from
//! the options), the engine waits for them (bounded), and every step without a final status
//! ends `cancelled`. The run ends `cancelled`.
//!
//! A run ends `failed` when a step ended `failed`, `timed_out` or `upstream_failed` (without
//! `continue_on_error`), or was `cancelled` because of `--fail-fast`, or ran past its expected
//! duration with `on_overrun: fail`; else `succeeded`.
//!
//! # Expected durations
//!
//! A step with an expected duration (`EngineOptions::expected`) is timed from its first
//! attempt: when it is still running at its limit (retries and backoffs included), the
//! scheduler emits `StepOverran` at once, so the flag shows live; a step that ends past its
//! limit before that timer fired gets its `StepOverran` just before its `StepFinished`, which
//! carries `overran: true` either way. Nothing is stopped: the step keeps its own status.

pub(crate) mod attempt;
pub(crate) mod condition;
mod limits;
mod scheduler;
pub(crate) mod trigger;
mod view;

use std::collections::HashMap;

use crate::event::{RemoteHandle, StepStatus};
use crate::job::model::StepId;

pub use scheduler::run;

/// How the engine runs one plan.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Id of this run, stamped on events and given to attempts.
    pub run_id: String,
    /// Overrides `job.concurrency` (`--concurrency`).
    pub concurrency: Option<u32>,
    /// `--fail-fast`: after the first failure start nothing new.
    pub fail_fast: bool,
    /// `--on-interrupt detach`: on interrupt, leave remote work running.
    pub detach_on_interrupt: bool,
    /// Environment seen by `when:` conditions as `env.X`.
    pub env: HashMap<String, String>,
    /// What an earlier run left, when resuming it.
    pub resume: Option<ResumeState>,
    /// Median past duration of steps, in seconds; empty = prioritise by `plan.remaining`.
    pub priority_hint: HashMap<StepId, f64>,
    /// A state store records the events and fires their checkpoints: executors wait for
    /// their handle to be written before they trigger ([`crate::event::Checkpoint`]).
    pub durable: bool,
    /// How long a `when:` evaluation may run before its step fails; `None` = 10 s.
    pub condition_limit: Option<std::time::Duration>,
    /// `--unselected-as failed`: a dependency left out of the selection counts as failed
    /// (else as succeeded) for trigger rules and `when:`.
    pub unselected_failed: bool,
    /// Limits that are not in the job file (capacity-aware limits learned from the service).
    pub limits: DataLimits,
    /// Expected durations (`expected_duration`, resolved): a step still running past its
    /// limit gets a `StepOverran`; with `on_overrun: fail` the run fails.
    pub expected: HashMap<StepId, crate::event::Expected>,
}

/// Named limits given as data rather than written under `pools:`: each has a size, and a
/// step joins any number of them (on top of its `pool:`). The engine knows nothing of what
/// they stand for (a capacity's refresh parallelism, for one).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DataLimits {
    /// Limit name -> steps in flight at once (at least 1).
    pub sizes: HashMap<String, u32>,
    /// Step -> the limits it joins.
    pub members: HashMap<StepId, Vec<String>>,
}

/// What a resumed run takes over from an earlier one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResumeState {
    /// The run being resumed (reported as `resumed_from`).
    pub run_id: String,
    /// Per step: keep its final status, or re-attach to its remote work.
    pub steps: HashMap<StepId, ResumeStep>,
}

/// What a resumed run does with one step.
#[derive(Debug, Clone, PartialEq)]
pub enum ResumeStep {
    /// The step keeps this final status without running (typically `succeeded`).
    Keep {
        status: StepStatus,
        reason: Option<String>,
    },
    /// The previous run died with remote work in flight: the first attempt re-attaches to it.
    Reattach(RemoteHandle),
}

#[cfg(test)]
mod tests;

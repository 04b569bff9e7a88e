//! `RunEvent`: the one contract between the engine and everything that reports on a run.
//!
//! Only the engine's scheduler emits events, in order, over one channel. Reporters (log lines,
//! progress, the JSON/JUnit/Markdown reports, the state store) are pure folds over this stream,
//! so what the terminal shows and what the files say cannot disagree.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::job::model::StepId;

pub(crate) mod check;
mod expect;
mod remote;
mod stamp;

pub use check::CheckResult;
pub use expect::{AUTO_MARGIN, AUTO_MIN_RUNS, Expected, ExpectedFrom, Usual};
pub use remote::{AttemptUpdate, Checkpoint, RemoteHandle};
pub use stamp::stamp;

/// Final status of a step (and of each attempt).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    PartialOrd,
    Ord,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Succeeded,
    Failed,
    TimedOut,
    Skipped,
    UpstreamFailed,
    Cancelled,
}

impl StepStatus {
    /// All six, in report order.
    pub const ALL: [StepStatus; 6] = [
        StepStatus::Succeeded,
        StepStatus::Failed,
        StepStatus::TimedOut,
        StepStatus::Skipped,
        StepStatus::UpstreamFailed,
        StepStatus::Cancelled,
    ];

    /// The snake_case name used in reports and `when:` expressions.
    pub fn as_str(&self) -> &'static str {
        match self {
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::TimedOut => "timed_out",
            StepStatus::Skipped => "skipped",
            StepStatus::UpstreamFailed => "upstream_failed",
            StepStatus::Cancelled => "cancelled",
        }
    }

    /// Counted as failed by trigger rules (`failed`, `timed_out`, `upstream_failed`).
    pub(crate) fn counts_as_failed(&self) -> bool {
        matches!(
            self,
            StepStatus::Failed | StepStatus::TimedOut | StepStatus::UpstreamFailed
        )
    }
}

impl std::fmt::Display for StepStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Final status of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

// Stamped by the scheduler on `StepFinished` (so far) and `RunFinished` (in all); also the
// `counts` of the run report, whose JSON Schema takes its description from the doc line.
/// Steps per final status.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Counts {
    pub succeeded: u32,
    pub failed: u32,
    pub timed_out: u32,
    pub skipped: u32,
    pub upstream_failed: u32,
    pub cancelled: u32,
}

impl Counts {
    /// The count of one status.
    pub fn get(&self, status: StepStatus) -> u32 {
        match status {
            StepStatus::Succeeded => self.succeeded,
            StepStatus::Failed => self.failed,
            StepStatus::TimedOut => self.timed_out,
            StepStatus::Skipped => self.skipped,
            StepStatus::UpstreamFailed => self.upstream_failed,
            StepStatus::Cancelled => self.cancelled,
        }
    }

    /// Counts one more step with this status.
    pub fn add(&mut self, status: StepStatus) {
        *self.slot(status) += 1;
    }

    /// Steps with a final status.
    pub fn total(&self) -> u32 {
        StepStatus::ALL.iter().map(|s| self.get(*s)).sum()
    }

    fn slot(&mut self, status: StepStatus) -> &mut u32 {
        match status {
            StepStatus::Succeeded => &mut self.succeeded,
            StepStatus::Failed => &mut self.failed,
            StepStatus::TimedOut => &mut self.timed_out,
            StepStatus::Skipped => &mut self.skipped,
            StepStatus::UpstreamFailed => &mut self.upstream_failed,
            StepStatus::Cancelled => &mut self.cancelled,
        }
    }

    /// `3 succeeded, 1 failed, 0 timed_out, 0 skipped, 0 upstream_failed, 0 cancelled`.
    pub fn line(&self) -> String {
        StepStatus::ALL
            .iter()
            .map(|s| format!("{} {}", self.get(*s), s.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The remote resource a step works on, once resolved to ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ResourceRef {
    pub workspace_id: Option<String>,
    pub item_id: Option<String>,
    pub name: String,
}

/// One event of a run, stamped by the scheduler.
///
/// The scheduler also stamps the facts every reader needs (a step's duration, the counts so
/// far, the run's duration), so readers fold them instead of re-deriving them.
#[derive(Debug, Clone, Serialize)]
pub struct RunEvent {
    /// 0, 1, 2, ... in emission order.
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub kind: RunEventKind,
}

/// What a static description of a step carries in `RunStarted`.
#[derive(Debug, Clone, Serialize)]
pub struct StepInfo {
    pub id: StepId,
    pub step_type: String,
    /// Human label of the resource (secrets redacted).
    pub resource: String,
    pub depends_on: Vec<StepId>,
    /// Its expected duration, resolved when the run started (`expected_duration`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<Expected>,
}

/// The kinds of event.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEventKind {
    /// First event of every run.
    RunStarted {
        run_id: String,
        job: String,
        job_file: String,
        /// Selected steps in job order.
        steps: Vec<StepInfo>,
        /// Set when this run resumes an earlier one.
        resumed_from: Option<String>,
    },
    /// An attempt began (attempts are numbered from 1).
    AttemptStarted { step: StepId, attempt: u32 },
    /// Something changed remotely while an attempt runs.
    StepProgress {
        step: StepId,
        attempt: u32,
        update: AttemptUpdate,
    },
    /// An attempt ended; `retry_in` is set when another attempt will follow.
    AttemptFinished {
        step: StepId,
        attempt: u32,
        status: StepStatus,
        error: Option<String>,
        remote_id: Option<String>,
        #[serde(with = "opt_secs")]
        retry_in: Option<Duration>,
    },
    /// A step is still running past its expected duration (once per step, before its
    /// `StepFinished`; also when it ends past it before the scheduler's timer fired).
    StepOverran {
        step: StepId,
        /// Its first attempt's start to this event.
        #[serde(with = "secs")]
        elapsed: Duration,
    },
    /// A step reached its final status (with or without attempts).
    StepFinished {
        step: StepId,
        status: StepStatus,
        /// Why it was skipped / not run / cancelled, or the last error.
        reason: Option<String>,
        attempts: u32,
        /// True when the remote refresh was adopted (`if_running: adopt`), not started by us.
        adopted: bool,
        /// From the start of the step's first attempt to this event (the same clock as the
        /// events' `at`); `None` when no attempt ran.
        #[serde(with = "opt_secs")]
        duration: Option<Duration>,
        /// Final statuses so far, this step's included.
        counts: Counts,
        /// Steps still running: their first attempt started and they have no final status
        /// yet (one waiting out a retry backoff included).
        running: u32,
        /// It ran past its expected duration (a `StepOverran` came first).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        overran: bool,
    },
    /// A stop was requested (signal or `--fail-fast`): nothing new starts.
    Stopping { reason: String },
    /// Last event of every run.
    RunFinished {
        status: RunStatus,
        /// Final statuses of all selected steps.
        counts: Counts,
        /// From `RunStarted` to this event.
        #[serde(with = "secs")]
        duration: Duration,
    },
}

mod opt_secs {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(
        d: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}

mod secs {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

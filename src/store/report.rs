//! A stored run as the run report: `pbibatch show --format json` prints for a finished run
//! exactly what `run --report` wrote ([`RunReport`]), plus what only the store knows.

use chrono::{DateTime, Utc};

use super::history::{RunDetails, StepDetails};
use crate::event::{Counts, RunStatus, StepStatus};
use crate::reporter::report::{ReportAttempt, ReportStep, RunReport, SCHEMA_VERSION};

/// What the reporter says of a step the stream left without an end.
const CUT_SHORT: &str = "the run ended before this step finished";

fn run_status(text: &str) -> Option<RunStatus> {
    [
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ]
    .into_iter()
    .find(|s| s.as_str() == text)
}

fn step_status(text: &str) -> Option<StepStatus> {
    StepStatus::ALL.into_iter().find(|s| s.as_str() == text)
}

fn secs(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_milliseconds().max(0) as f64 / 1000.0
}

impl RunDetails {
    /// The run report of a finished run (`None` while it is running or when it never
    /// finished: a report has final statuses only).
    pub fn to_report(&self) -> Option<RunReport> {
        let status = run_status(&self.status)?;
        let finished_at = self.finished_at?;
        let mut counts = Counts::default();
        let steps: Vec<ReportStep> = self
            .steps
            .iter()
            .map(|s| report_step(s, finished_at))
            .collect();
        for step in &steps {
            counts.add(step.status);
        }
        Some(RunReport {
            schema_version: SCHEMA_VERSION,
            run_id: self.run_id.clone(),
            job: self.job.clone(),
            job_file: self.job_file.clone(),
            resumed_from: self.resumed_from.clone(),
            status,
            started_at: self.started_at,
            finished_at,
            duration_secs: secs(self.started_at, finished_at),
            counts,
            steps,
        })
    }

    /// `show --format json`: the run report with `job_hash`, `arguments`, `target` and `stop_reason`
    /// added; for a run that did not finish, these details as they are (statuses `running`,
    /// `incomplete`, `pending`, and each attempt's remote handle).
    pub fn to_json(&self) -> serde_json::Value {
        let Some(report) = self.to_report() else {
            return serde_json::to_value(self).unwrap_or_default();
        };
        let mut value = serde_json::to_value(report).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.insert("job_hash".into(), self.job_hash.clone().into());
            object.insert("arguments".into(), self.arguments.clone());
            object.insert(
                "target".into(),
                serde_json::to_value(&self.target).unwrap_or_default(),
            );
            if let Some(reason) = &self.stop_reason {
                object.insert("stop_reason".into(), reason.clone().into());
            }
        }
        value
    }
}

/// One step as the reporter folds it (see `reporter::report::ReportBuilder`).
fn report_step(s: &StepDetails, run_end: DateTime<Utc>) -> ReportStep {
    let (status, reason, end) = match step_status(&s.status) {
        Some(status) => (status, s.reason.clone(), s.finished_at.unwrap_or(run_end)),
        None => (StepStatus::Cancelled, Some(CUT_SHORT.to_string()), run_end),
    };
    let attempts: Vec<ReportAttempt> = s
        .attempts
        .iter()
        .map(|a| match (step_status(&a.status), a.finished_at) {
            (Some(att_status), Some(att_end)) => ReportAttempt {
                triggers: a.triggers,
                reads: a.reads,
                number: a.number,
                status: att_status,
                started_at: a.started_at,
                finished_at: att_end,
                remote_id: a.remote_id.clone(),
                error: a.error.clone(),
                request_id: ReportAttempt::request_id_of(a.error.as_deref()),
            },
            // An attempt cut short by the step's end takes the step's status and reason.
            _ => ReportAttempt {
                triggers: a.triggers,
                reads: a.reads,
                number: a.number,
                status,
                started_at: a.started_at,
                finished_at: end,
                remote_id: a.remote_id.clone(),
                error: reason.clone(),
                request_id: None,
            },
        })
        .collect();
    let error = match status {
        StepStatus::Failed | StepStatus::TimedOut => attempts
            .last()
            .and_then(|a| a.error.clone())
            .or_else(|| reason.clone()),
        _ => None,
    };
    let mut step = ReportStep {
        id: s.id.clone(),
        step_type: s.step_type.clone(),
        status,
        reason,
        started_at: s.started_at,
        finished_at: s.started_at.map(|_| end),
        duration_secs: s.started_at.map(|start| secs(start, end)),
        resource: s.resource.clone().map(Into::into),
        adopted: s.adopted,
        attempts,
        error,
        // The store keeps statuses and attempts, not what a check found.
        check: None,
        warning: None,
        expected_duration: s.expected,
        overran: false,
        depends_on: s.depends_on.clone(),
        label: s.resource_label.clone(),
    };
    if s.overran {
        crate::reporter::report::flag_overrun(&mut step);
    }
    step
}

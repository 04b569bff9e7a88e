//! The fold of a run's events into a [`RunReport`] ([`ReportBuilder`]): one step at a time,
//! attempts opened and closed as their events arrive, and a stream cut short closed as
//! `cancelled`.

use chrono::{DateTime, Utc};
use indexmap::IndexMap;

use super::{ReportAttempt, ReportStep, RunReport, SCHEMA_VERSION, flag_overrun};
use crate::event::{Counts, RunEvent, RunEventKind, RunStatus, StepStatus};
use crate::job::model::StepId;
use crate::reporter::stamped_secs;

/// The attempt a step is in, while the fold reads its events.
#[derive(Debug, Clone)]
struct OpenAttempt {
    number: u32,
    started: DateTime<Utc>,
    remote_id: Option<String>,
    triggers: u32,
    reads: u32,
}

/// Incremental fold of events into a report.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReportBuilder {
    run_id: String,
    job: String,
    job_file: String,
    resumed_from: Option<String>,
    started_at: Option<DateTime<Utc>>,
    last_at: Option<DateTime<Utc>>,
    /// What `RunFinished` said: status, time, counts and duration.
    finished: Option<(RunStatus, DateTime<Utc>, Counts, f64)>,
    steps: IndexMap<StepId, StepFold>,
}

#[derive(Debug, Clone)]
struct StepFold {
    step: ReportStep,
    final_status: Option<StepStatus>,
    /// Start of the attempt in flight and its last remote id.
    open: Option<OpenAttempt>,
}

impl ReportBuilder {
    /// Applies one event.
    pub(crate) fn apply(&mut self, event: &RunEvent) {
        let at = event.at;
        self.last_at = Some(at);
        match &event.kind {
            RunEventKind::RunStarted {
                run_id,
                job,
                job_file,
                steps,
                resumed_from,
            } => {
                self.run_id = run_id.clone();
                self.job = job.clone();
                self.job_file = job_file.clone();
                self.resumed_from = resumed_from.clone();
                self.started_at = Some(at);
                self.steps = steps
                    .iter()
                    .map(|info| {
                        let step = ReportStep {
                            id: info.id.clone(),
                            step_type: info.step_type.clone(),
                            status: StepStatus::Cancelled,
                            reason: None,
                            started_at: None,
                            finished_at: None,
                            duration_secs: None,
                            resource: None,
                            adopted: false,
                            attempts: Vec::new(),
                            error: None,
                            check: None,
                            warning: None,
                            expected_duration: info.expected,
                            overran: false,
                            depends_on: info.depends_on.clone(),
                            label: info.resource.clone(),
                        };
                        (
                            info.id.clone(),
                            StepFold {
                                step,
                                final_status: None,
                                open: None,
                            },
                        )
                    })
                    .collect();
            }
            RunEventKind::AttemptStarted { step, attempt } => {
                if let Some(f) = self.steps.get_mut(step) {
                    f.step.started_at.get_or_insert(at);
                    f.open = Some(OpenAttempt {
                        number: *attempt,
                        started: at,
                        remote_id: None,
                        triggers: 0,
                        reads: 0,
                    });
                }
            }
            RunEventKind::StepProgress {
                step,
                attempt,
                update,
            } => {
                if let Some(f) = self.steps.get_mut(step) {
                    if let Some(r) = &update.resource {
                        f.step.resource = Some(r.clone().into());
                    }
                    // The last attempt's check replaces an earlier one's.
                    if let Some(check) = &update.check {
                        f.step.warning = check.is_warning().then(|| check.message());
                        f.step.check = Some((**check).clone());
                    }
                    if let Some(open) = &mut f.open
                        && open.number == *attempt
                    {
                        if let Some(id) = &update.remote_id {
                            open.remote_id = Some(id.clone());
                        }
                        open.triggers += update.triggers;
                        open.reads += update.reads;
                    }
                }
            }
            RunEventKind::AttemptFinished {
                step,
                attempt,
                status,
                error,
                remote_id,
                ..
            } => {
                if let Some(f) = self.steps.get_mut(step) {
                    let (started, seen, triggers, reads) = match f.open.take() {
                        Some(o) if o.number == *attempt => {
                            (o.started, o.remote_id, o.triggers, o.reads)
                        }
                        _ => (at, None, 0, 0),
                    };
                    f.step.attempts.push(ReportAttempt {
                        number: *attempt,
                        status: *status,
                        started_at: started,
                        finished_at: at,
                        remote_id: remote_id.clone().or(seen),
                        triggers: Some(triggers),
                        reads: Some(reads),
                        error: error.clone(),
                        request_id: ReportAttempt::request_id_of(error.as_deref()),
                    });
                }
            }
            RunEventKind::StepFinished {
                step,
                status,
                reason,
                adopted,
                duration,
                overran,
                ..
            } => {
                if let Some(f) = self.steps.get_mut(step) {
                    let duration = duration.map(stamped_secs);
                    close_step(f, *status, reason.clone(), *adopted, at, duration);
                    if *overran {
                        flag_overrun(&mut f.step);
                    }
                }
            }
            RunEventKind::StepOverran { .. } => {}
            RunEventKind::Stopping { .. } => {}
            RunEventKind::RunFinished {
                status,
                counts,
                duration,
            } => {
                self.finished = Some((*status, at, *counts, stamped_secs(*duration)));
            }
        }
    }

    /// The report so far. When the stream stopped before `RunFinished` (the program is
    /// going down), steps without a final status are reported `cancelled` and so is the run.
    pub(crate) fn finish(&self) -> RunReport {
        let now = self.last_at.unwrap_or_else(Utc::now);
        let started_at = self.started_at.unwrap_or(now);
        let finished_at = self.finished.map_or(now, |(_, at, ..)| at);
        let steps: Vec<ReportStep> = self
            .steps
            .values()
            .map(|f| {
                let mut f = f.clone();
                if f.final_status.is_none() {
                    let duration = f.step.started_at.map(|s| secs_between(s, finished_at));
                    close_step(
                        &mut f,
                        StepStatus::Cancelled,
                        Some("the run ended before this step finished".into()),
                        false,
                        finished_at,
                        duration,
                    );
                }
                f.step
            })
            .collect();
        // A stream cut short has no `RunFinished` to say how it ended: the run and every
        // step left open count as cancelled.
        let (status, counts, duration_secs) = match self.finished {
            Some((status, _, counts, duration)) => (status, counts, duration),
            None => {
                let mut counts = Counts::default();
                for step in &steps {
                    counts.add(step.status);
                }
                let duration = secs_between(started_at, finished_at);
                (RunStatus::Cancelled, counts, duration)
            }
        };
        RunReport {
            schema_version: SCHEMA_VERSION,
            run_id: self.run_id.clone(),
            job: self.job.clone(),
            job_file: self.job_file.clone(),
            resumed_from: self.resumed_from.clone(),
            status,
            started_at,
            finished_at,
            duration_secs,
            counts,
            steps,
        }
    }
}

fn close_step(
    f: &mut StepFold,
    status: StepStatus,
    reason: Option<String>,
    adopted: bool,
    at: DateTime<Utc>,
    duration_secs: Option<f64>,
) {
    // An attempt cut short by the end of the stream still shows.
    if let Some(open) = f.open.take() {
        f.step.attempts.push(ReportAttempt {
            number: open.number,
            status,
            started_at: open.started,
            finished_at: at,
            remote_id: open.remote_id,
            triggers: Some(open.triggers),
            reads: Some(open.reads),
            error: reason.clone(),
            request_id: None,
        });
    }
    f.final_status = Some(status);
    f.step.status = status;
    f.step.adopted = adopted;
    if f.step.started_at.is_some() {
        f.step.finished_at = Some(at);
        f.step.duration_secs = duration_secs;
    }
    f.step.error = match status {
        StepStatus::Failed | StepStatus::TimedOut => f
            .step
            .attempts
            .last()
            .and_then(|a| a.error.clone())
            .or_else(|| reason.clone()),
        _ => None,
    };
    f.step.reason = reason;
}

fn secs_between(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    let ms = (b - a).num_milliseconds().max(0);
    ms as f64 / 1000.0
}

//! The `--report` JSON: a fold over the run's events ([`ReportBuilder`]) into a [`RunReport`].
//!
//! Its JSON Schema (generated from these types by schemars) is committed at
//! `schemas/pbibatch-report.schema.json`; a test keeps the two in sync. Bump
//! [`SCHEMA_VERSION`] on any change that is not purely additive.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event::{Counts, ResourceRef, RunEvent, RunEventKind, RunStatus, StepStatus};
use crate::job::model::StepId;
use crate::reporter::stamped_secs;

/// Version of the report's shape.
pub const SCHEMA_VERSION: u32 = 1;

/// The report of one pbibatch run (`pbibatch run --report FILE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "pbibatch run report")]
pub struct RunReport {
    /// Version of this document's shape (currently 1).
    pub schema_version: u32,
    pub run_id: String,
    /// The job's `name:`.
    pub job: String,
    /// The job file as given on the command line.
    pub job_file: String,
    /// Set when this run resumed an earlier one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<String>,
    pub status: RunStatus,
    #[serde(with = "rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub started_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub finished_at: DateTime<Utc>,
    pub duration_secs: f64,
    /// Number of steps per final status (all six, zeros included).
    pub counts: Counts,
    /// Selected steps, in job order.
    pub steps: Vec<ReportStep>,
}

/// One step of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReportStep {
    pub id: StepId,
    /// The step's `type`, as in the job file (`dataset`, `fabric_job`, ...).
    #[serde(rename = "type")]
    pub step_type: String,
    pub status: StepStatus,
    /// Why it was skipped, not run or cancelled, or the last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Start of the first attempt (absent when no attempt ran).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rfc3339::option"
    )]
    #[schemars(with = "Option<String>", extend("format" = "date-time"))]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rfc3339::option"
    )]
    #[schemars(with = "Option<String>", extend("format" = "date-time"))]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<f64>,
    /// The remote resource, once resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ReportResource>,
    /// True when the remote refresh was adopted (`if_running: adopt`), not started by this run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopted: bool,
    pub attempts: Vec<ReportAttempt>,
    /// The error that decided a `failed` or `timed_out` status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What a check step (`data_check`) found on its last attempt: assertion, observed
    /// value, whether it passed, its severity and the first offending rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<crate::event::CheckResult>,
    /// Set on a step that succeeded with a warning (a failed check of `severity: warn`, or
    /// a run past its expected duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_duration: Option<crate::event::Expected>,
    /// True when the step ran past its expected duration (`expected_duration.secs`); with
    /// `on_overrun: fail` the run failed for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overran: bool,
    /// Selected dependencies (for the summary's critical path; not part of the JSON).
    #[serde(skip)]
    #[schemars(skip)]
    pub depends_on: Vec<StepId>,
    /// Human label of the resource, secrets redacted (not part of the JSON).
    #[serde(skip)]
    #[schemars(skip)]
    pub label: String,
}

/// The resolved remote resource of a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReportResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
    pub name: String,
}

impl From<ResourceRef> for ReportResource {
    fn from(r: ResourceRef) -> Self {
        ReportResource {
            workspace_id: r.workspace_id,
            item_id: r.item_id,
            name: r.name,
        }
    }
}

/// One attempt of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReportAttempt {
    /// From 1.
    pub number: u32,
    /// One of the final step statuses.
    pub status: StepStatus,
    #[serde(with = "rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub started_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub finished_at: DateTime<Utc>,
    /// Refresh request id, transaction id, job instance id or export id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    /// Triggers this attempt sent to the service: 0 when it followed or adopted a run
    /// started earlier, 1 normally, more only for an export restarted after a lost answer
    /// (harmless, and counted so that the history stays true). Absent where unknown (a
    /// report rebuilt from the state store by `show`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<u32>,
    /// Status reads the attempt made (run listings and run states): what watching the run
    /// cost against the service's request limits. Absent where unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reads: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The service's id of the answer that failed the attempt (Power BI's `RequestId` header,
    /// Fabric's `requestId`), also named in `error`: what Microsoft support asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ReportAttempt {
    /// The request id `error` names, if any.
    pub(crate) fn request_id_of(error: Option<&str>) -> Option<String> {
        error.and_then(crate::powerbi::errors::request_id_in)
    }
}

/// The attempt a step is in, while the fold reads its events.
#[derive(Debug, Clone)]
struct OpenAttempt {
    number: u32,
    started: DateTime<Utc>,
    remote_id: Option<String>,
    triggers: u32,
    reads: u32,
}

/// Why the report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("write report {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("serialize report: {0}")]
    Json(#[from] serde_json::Error),
}

impl RunReport {
    /// Folds a whole event stream.
    pub fn from_events(events: &[RunEvent]) -> RunReport {
        let mut b = ReportBuilder::default();
        for e in events {
            b.apply(e);
        }
        b.finish()
    }

    /// Writes the report as pretty JSON, atomically (temp file + rename in the same folder),
    /// creating parent folders.
    pub fn write_json(&self, path: &Path) -> Result<(), ReportError> {
        let text = serde_json::to_string_pretty(self)? + "\n";
        write_atomically(path, text.as_bytes())
    }

    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<&ReportStep> {
        self.steps.iter().find(|s| s.id == id)
    }
}

/// Writes `bytes` to `path` through a temporary file renamed into place.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let io = |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// The JSON Schema of [`RunReport`] (what `schemas/pbibatch-report.schema.json` holds).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RunReport)).unwrap_or_default()
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

impl RunReport {
    /// Steps that ran past their expected duration, in job order.
    pub(crate) fn overran(&self) -> impl Iterator<Item = &ReportStep> {
        self.steps.iter().filter(|s| s.overran)
    }
}

impl ReportStep {
    /// `overran: took 48m 12s, expected at most 30m 00s (stated)` for a step that ran past
    /// its expected duration.
    pub(crate) fn overrun_text(&self) -> Option<String> {
        if !self.overran {
            return None;
        }
        let expected = self.expected_duration.as_ref()?;
        let mut text =
            crate::reporter::overran_message(expected, self.duration_secs.unwrap_or_default());
        if expected.on_overrun == crate::job::model::OnOverrun::Fail {
            text.push_str(" (on_overrun: fail)");
        }
        Some(text)
    }
}

/// Marks a step that ran past its expected duration; a succeeded step also gets the flag as
/// its warning (after a check's warning, if any).
pub(crate) fn flag_overrun(step: &mut ReportStep) {
    step.overran = true;
    if step.status != StepStatus::Succeeded {
        return;
    }
    if let Some(message) = step.overrun_text() {
        step.warning = Some(match step.warning.take() {
            Some(w) => format!("{w}; {message}"),
            None => message,
        });
    }
}

fn secs_between(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    let ms = (b - a).num_milliseconds().max(0);
    ms as f64 / 1000.0
}

/// Timestamps as RFC 3339 in UTC with milliseconds (`2026-01-02T03:00:00.000Z`), one width
/// for every value so columns line up and strings sort.
mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }

    pub(super) mod option {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            let text: Option<String> = Option::deserialize(d)?;
            text.map(|text| {
                DateTime::parse_from_rfc3339(&text)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
        }
    }
}

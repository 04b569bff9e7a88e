//! The `--report` JSON: a fold over the run's events ([`ReportBuilder`]) into a [`RunReport`].
//!
//! Its JSON Schema (generated from these types by schemars) is committed at
//! `schemas/pbibatch-report.schema.json`; a test keeps the two in sync. Bump
//! [`SCHEMA_VERSION`] on any change that is not purely additive.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event::{Counts, ResourceRef, RunEvent, RunStatus, StepStatus};
use crate::job::model::StepId;

mod fold;

pub(crate) use fold::ReportBuilder;

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

impl RunReport {
    /// Steps that ran past their expected duration, in job order.
    pub(crate) fn overran(&self) -> impl Iterator<Item = &ReportStep> {
        self.steps.iter().filter(|s| s.overran)
    }
}

impl ReportStep {
    /// It ran past its expected duration with `on_overrun: fail`: the run failed for it.
    pub(crate) fn late_fails(&self) -> bool {
        self.overran && self.expected_duration.is_some_and(|e| e.fails_run())
    }

    /// `overran: took 48m 12s, expected at most 30m 00s (stated)` for a step that ran past
    /// its expected duration.
    pub(crate) fn overrun_text(&self) -> Option<String> {
        if !self.overran {
            return None;
        }
        let expected = self.expected_duration.as_ref()?;
        let mut text =
            crate::reporter::overran_message(expected, self.duration_secs.unwrap_or_default());
        if expected.fails_run() {
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

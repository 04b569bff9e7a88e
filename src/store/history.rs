//! What the history gives back: a run's line in `pbibatch history`, one run's details with its
//! steps and attempts (`pbibatch show`, `--resume`), in the shapes their JSON output has.

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::Serialize;

use super::RunTarget;
use crate::event::{RemoteHandle, ResourceRef};
use crate::job::model::StepId;

/// One line of `pbibatch history`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub job: String,
    pub job_file: String,
    /// `succeeded`, `failed`, `cancelled`; `running` while its process holds the job's lock;
    /// `incomplete` when the process ended without finishing the run (killed, crashed).
    pub status: String,
    #[serde(serialize_with = "millis::one")]
    pub started_at: DateTime<Utc>,
    #[serde(serialize_with = "millis::option")]
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_secs: Option<f64>,
    /// One number per final step status, all six present.
    pub counts: IndexMap<String, u32>,
    /// Steps the run selected.
    pub steps: u32,
    pub resumed_from: Option<String>,
    /// What the run ran against.
    pub target: RunTarget,
}

/// One run, with the content of the JSON run report (`pbibatch show`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunDetails {
    pub run_id: String,
    pub job: String,
    pub job_file: String,
    /// SHA-256 of the job file the run used.
    pub job_hash: String,
    /// As in [`RunSummary::status`].
    pub status: String,
    #[serde(serialize_with = "millis::one")]
    pub started_at: DateTime<Utc>,
    #[serde(serialize_with = "millis::option")]
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_secs: Option<f64>,
    pub counts: IndexMap<String, u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<String>,
    /// Why the run stopped early (signal, `--fail-fast`), when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// The command-line arguments of the run.
    pub arguments: serde_json::Value,
    /// What the run ran against.
    pub target: RunTarget,
    /// In job order.
    pub steps: Vec<StepDetails>,
}

/// One step of a stored run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepDetails {
    pub id: StepId,
    #[serde(rename = "type")]
    pub step_type: String,
    /// A final status; `running` (an attempt in flight) or `pending` (never started) in a run
    /// that did not finish.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(serialize_with = "millis::option")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(serialize_with = "millis::option")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceRef>,
    /// The remote refresh was adopted (`if_running: adopt`), not started by this run.
    pub adopted: bool,
    pub attempts: Vec<AttemptDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Human label of the resource (secrets redacted).
    #[serde(skip)]
    pub resource_label: String,
    /// The step's definition hash when the run started.
    #[serde(skip)]
    pub step_hash: Option<String>,
    /// Selected dependencies.
    #[serde(skip)]
    pub depends_on: Vec<StepId>,
    /// Its expected duration, as resolved when the run started.
    #[serde(rename = "expected_duration", skip_serializing_if = "Option::is_none")]
    pub expected: Option<crate::event::Expected>,
    /// It ran past its expected duration.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub overran: bool,
}

/// One attempt of a stored step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptDetails {
    pub number: u32,
    /// A final status, or `running` when the attempt never ended.
    pub status: String,
    #[serde(serialize_with = "millis::one")]
    pub started_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(serialize_with = "millis::option")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Triggers the attempt sent (unknown for attempts recorded by older versions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub triggers: Option<u32>,
    /// Status reads the attempt made (unknown for attempts recorded by older versions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reads: Option<u32>,
    /// The last known remote state (what a resumed run re-attaches to).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteState>,
}

/// What the store knows of an attempt's remote work.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteState {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handle: Option<RemoteHandle>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
}

/// Times in JSON as the run report writes them: RFC 3339, UTC, milliseconds.
mod millis {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::Serializer;

    pub(super) fn one<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub(super) fn option<S: Serializer>(
        t: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => one(t, s),
            None => s.serialize_none(),
        }
    }
}

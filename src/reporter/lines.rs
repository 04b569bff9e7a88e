//! Plain log lines, one per state change, each with an RFC 3339 timestamp: what stderr shows
//! when it is not a terminal (Kestra, CI).
//!
//! Only what the events carry is printed; resources appear through `StepInfo.resource`, which
//! the engine already redacted, so a secret has no way in.

use std::collections::HashMap;
use std::io::Write;

use chrono::SecondsFormat;

use super::{format_secs, stamped_secs};
use crate::event::{AttemptUpdate, RunEvent, RunEventKind, StepInfo};
use crate::job::model::StepId;

/// Writes one line per state change to `W` (stderr in use).
pub struct LineReporter<W: Write> {
    out: W,
    steps: HashMap<StepId, StepInfo>,
    /// What was last printed about each step's remote state, to print changes only.
    last_remote: HashMap<StepId, String>,
    run_id: String,
    /// One JSON object per line (`--log-format json`) instead of text.
    json: bool,
    /// `-v`: the service's status words beside the readable ones (see
    /// [`super::status_for_people`]).
    raw_status: bool,
}

impl<W: Write> LineReporter<W> {
    /// A reporter writing to `out`.
    pub fn new(out: W) -> Self {
        LineReporter {
            out,
            steps: HashMap::new(),
            last_remote: HashMap::new(),
            run_id: String::new(),
            json: false,
            raw_status: false,
        }
    }

    /// Shows the service's own status words too (`-v`).
    pub(crate) fn raw_status(mut self, raw: bool) -> Self {
        self.raw_status = raw;
        self
    }

    /// A reporter writing one JSON object per line to `out`: `timestamp`, `level`, `run_id`,
    /// `event`, `step`, `attempt`, `status`, `remote_id` (when the event has them) and the
    /// same `message` the text form prints.
    pub fn json(out: W) -> Self {
        LineReporter {
            json: true,
            ..LineReporter::new(out)
        }
    }

    /// The writer back (tests read what was written).
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Flushes the writer.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// The step's expected duration, described (`30m 00s (stated)`).
    fn expected(&self, step: &str) -> String {
        crate::reporter::expected_of(self.steps.get(step))
    }

    /// Prints the line(s) for one event, if it is a state change.
    pub fn apply(&mut self, event: &RunEvent) -> std::io::Result<()> {
        let ts = timestamp(event.at);
        let line = match &event.kind {
            RunEventKind::RunStarted {
                run_id,
                job,
                job_file,
                steps,
                resumed_from,
            } => {
                self.run_id = run_id.clone();
                self.steps = steps.iter().map(|s| (s.id.clone(), s.clone())).collect();
                let resumed = resumed_from
                    .as_ref()
                    .map(|r| format!(", resuming run {r}"))
                    .unwrap_or_default();
                let n = steps.len();
                let noun = if n == 1 { "step" } else { "steps" };
                Some(format!(
                    "run {run_id} started: job {job} ({job_file}), {n} {noun}{resumed}"
                ))
            }
            RunEventKind::AttemptStarted { step, attempt } => {
                self.last_remote.remove(step);
                let what = self
                    .steps
                    .get(step)
                    .map(|s| format!(" ({}, {})", s.step_type, s.resource))
                    .unwrap_or_default();
                Some(format!("{step}: attempt {attempt} started{what}"))
            }
            RunEventKind::StepProgress { step, update, .. } => {
                let text = progress_text(update, self.raw_status);
                if text.is_empty() || self.last_remote.get(step) == Some(&text) {
                    None
                } else {
                    self.last_remote.insert(step.clone(), text.clone());
                    Some(format!("{step}: {text}"))
                }
            }
            RunEventKind::AttemptFinished {
                step,
                attempt,
                status,
                error,
                retry_in,
                ..
            } => {
                let retry = retry_in
                    .map(|d| format!("; retry in {}", humantime::format_duration(d)))
                    .unwrap_or_default();
                match error {
                    Some(e) => Some(format!(
                        "{step}: attempt {attempt} {status}: {}{retry}",
                        one_line(e)
                    )),
                    None if retry_in.is_some() => {
                        Some(format!("{step}: attempt {attempt} {status}{retry}"))
                    }
                    None => None,
                }
            }
            RunEventKind::StepOverran { step, elapsed } => {
                let expected = self.expected(step);
                Some(format!(
                    "{step}: still running after {}, past its expected duration {expected}",
                    format_secs(stamped_secs(*elapsed))
                ))
            }
            RunEventKind::StepFinished {
                step,
                status,
                reason,
                attempts,
                adopted,
                duration,
                overran,
                ..
            } => {
                let mut text = format!("{step}: {status}");
                if let Some(d) = duration {
                    text.push_str(&format!(" in {}", format_secs(stamped_secs(*d))));
                }
                if *overran {
                    text.push_str(&format!(
                        " (overran: expected at most {})",
                        self.expected(step)
                    ));
                }
                if *attempts > 1 {
                    text.push_str(&format!(" after {attempts} attempts"));
                }
                if *adopted {
                    text.push_str(" (adopted a refresh already running)");
                }
                if let Some(r) = reason {
                    text.push_str(&format!(": {}", one_line(r)));
                }
                Some(text)
            }
            RunEventKind::Stopping { reason } => Some(format!("stopping: {reason}")),
            RunEventKind::RunFinished {
                status,
                counts,
                duration,
            } => Some(format!(
                "run {} finished: {} in {} ({})",
                self.run_id,
                status.as_str(),
                format_secs(stamped_secs(*duration)),
                counts.line()
            )),
        };
        match line {
            Some(line) if self.json => {
                let record = json_record(&ts, &self.run_id, event, &line);
                writeln!(self.out, "{record}")
            }
            Some(line) => writeln!(self.out, "{ts} {line}"),
            None => Ok(()),
        }
    }
}

/// The one timestamp format of log lines and log records: RFC 3339, UTC, milliseconds.
pub fn timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The JSON form of one log line: the message plus the ids a log pipeline filters on.
fn json_record(ts: &str, run_id: &str, event: &RunEvent, message: &str) -> serde_json::Value {
    let mut record = serde_json::json!({
        "timestamp": ts,
        "level": "INFO",
        "run_id": run_id,
    });
    let (name, step, attempt, status, remote_id): (
        &str,
        Option<&str>,
        Option<u32>,
        Option<String>,
        Option<&str>,
    ) = match &event.kind {
        RunEventKind::RunStarted { .. } => ("run_started", None, None, None, None),
        RunEventKind::AttemptStarted { step, attempt } => {
            ("attempt_started", Some(step), Some(*attempt), None, None)
        }
        RunEventKind::StepProgress {
            step,
            attempt,
            update,
        } => (
            "step_progress",
            Some(step),
            Some(*attempt),
            update.remote_status.clone(),
            update.remote_id.as_deref(),
        ),
        RunEventKind::AttemptFinished {
            step,
            attempt,
            status,
            remote_id,
            ..
        } => (
            "attempt_finished",
            Some(step),
            Some(*attempt),
            Some(status.to_string()),
            remote_id.as_deref(),
        ),
        RunEventKind::StepOverran { step, .. } => ("step_overran", Some(step), None, None, None),
        RunEventKind::StepFinished {
            step,
            status,
            attempts,
            ..
        } => (
            "step_finished",
            Some(step),
            Some(*attempts),
            Some(status.to_string()),
            None,
        ),
        RunEventKind::Stopping { .. } => ("stopping", None, None, None, None),
        RunEventKind::RunFinished { status, .. } => (
            "run_finished",
            None,
            None,
            Some(status.as_str().to_string()),
            None,
        ),
    };
    let failed = matches!(
        &event.kind,
        RunEventKind::AttemptFinished { status, .. } | RunEventKind::StepFinished { status, .. }
            if status.counts_as_failed()
    ) || matches!(
        &event.kind,
        RunEventKind::Stopping { .. }
            | RunEventKind::StepOverran { .. }
            | RunEventKind::StepFinished { overran: true, .. }
    );
    if failed {
        record["level"] = "WARN".into();
    }
    record["event"] = name.into();
    if let Some(step) = step {
        record["step"] = step.into();
    }
    if let Some(attempt) = attempt {
        record["attempt"] = attempt.into();
    }
    if let Some(status) = status {
        record["status"] = status.into();
    }
    if let Some(id) = remote_id {
        record["remote_id"] = id.into();
    }
    record["message"] = message.into();
    record
}

/// `remote status InProgress 40 % (id abc)`, or a note.
fn progress_text(update: &AttemptUpdate, raw: bool) -> String {
    let mut parts = Vec::new();
    if let Some(s) = &update.remote_status {
        let mut t = format!("remote status {}", super::status_for_people(s, raw));
        if let Some(p) = update.percent {
            t.push_str(&format!(" {p} %"));
        }
        if let Some(id) = &update.remote_id {
            t.push_str(&format!(" (id {id})"));
        }
        parts.push(t);
    }
    if let Some(note) = &update.note {
        parts.push(one_line(note));
    }
    if let Some(check) = &update.check {
        parts.push(one_line(&check.message()));
    }
    parts.join("; ")
}

/// Joins the lines of a multi-line message so one event stays one line.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ")
}

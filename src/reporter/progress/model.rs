//! The pure half of the live display: events folded into [`Change`]s.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::event::{AttemptUpdate, Counts, RunEvent, RunEventKind, StepInfo, StepStatus};
use crate::job::model::StepId;
use crate::reporter::{format_secs, stamped_secs};

/// One thing the live display does after an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The run began with this many selected steps.
    Start { total: u64 },
    /// Steps done so far and the tally shown beside the overall bar (`2 ✓ · 1 ✗`);
    /// `eta` is false while the time left cannot be estimated (nothing finished yet, or a
    /// step waits out a retry backoff of its own length): the ETA then shows `-`.
    Overall { done: u64, tally: String, eta: bool },
    /// Show or update a running step's line; `since` is the start of its first attempt;
    /// `retry_at` is when its next attempt starts, while it waits out a retry backoff (the
    /// line counts down to it).
    Show {
        step: StepId,
        line: String,
        since: DateTime<Utc>,
        retry_at: Option<DateTime<Utc>>,
    },
    /// The step is no longer running: remove its line.
    Hide { step: StepId },
    /// A permanent line above the bars.
    Print(String),
}

/// The running state of one step, as the display knows it.
#[derive(Debug, Clone)]
struct Running {
    attempt: u32,
    remote: String,
    since: DateTime<Utc>,
    /// While waiting out a retry backoff: when the next attempt starts.
    retry_at: Option<DateTime<Utc>>,
    /// Running past its expected duration.
    late: bool,
}

/// Pure fold of events into display [`Change`]s.
#[derive(Debug, Default)]
pub struct ProgressModel {
    steps: HashMap<StepId, StepInfo>,
    /// Final statuses so far, as the last event stamped them.
    counts: Counts,
    running: HashMap<StepId, Running>,
    /// Start of each step's first attempt: where a running step's clock starts.
    first_start: HashMap<StepId, DateTime<Utc>>,
    /// `-v`: the service's status words beside the readable ones.
    raw_status: bool,
}

impl ProgressModel {
    /// A model; `raw_status` (`-v`) shows the service's own status words too.
    pub fn new(raw_status: bool) -> Self {
        ProgressModel {
            raw_status,
            ..ProgressModel::default()
        }
    }

    /// The changes one event makes.
    pub fn apply(&mut self, event: &RunEvent) -> Vec<Change> {
        match &event.kind {
            RunEventKind::RunStarted { steps, .. } => {
                self.steps = steps.iter().map(|s| (s.id.clone(), s.clone())).collect();
                vec![
                    Change::Start {
                        total: steps.len() as u64,
                    },
                    self.overall(),
                ]
            }
            RunEventKind::AttemptStarted { step, attempt } => {
                let since = *self.first_start.entry(step.clone()).or_insert(event.at);
                let late = self.running.get(step).is_some_and(|r| r.late);
                self.running.insert(
                    step.clone(),
                    Running {
                        attempt: *attempt,
                        remote: "starting".into(),
                        since,
                        retry_at: None,
                        late,
                    },
                );
                let mut changes: Vec<Change> = self.show(step).into_iter().collect();
                if *attempt > 1 {
                    // A backoff ended: the ETA may be known again.
                    changes.push(self.overall());
                }
                changes
            }
            RunEventKind::StepProgress { step, update, .. } => {
                let text = remote_text(update, self.raw_status);
                match self.running.get_mut(step) {
                    Some(r) if !text.is_empty() && r.remote != text => {
                        r.remote = text;
                        self.show(step).into_iter().collect()
                    }
                    _ => Vec::new(),
                }
            }
            RunEventKind::AttemptFinished {
                step,
                attempt,
                status,
                error,
                retry_in: Some(retry_in),
                ..
            } => {
                let wait = humantime::format_duration(Duration::from_secs(retry_in.as_secs()));
                let why = error
                    .as_deref()
                    .map(|e| format!(": {}", first_line(e)))
                    .unwrap_or_default();
                let mut changes = vec![Change::Print(format!(
                    "↻ {step} attempt {attempt} {status}{why}; retry in {wait}"
                ))];
                if let Some(r) = self.running.get_mut(step) {
                    r.remote = status.to_string();
                    r.retry_at = chrono::Duration::from_std(*retry_in)
                        .ok()
                        .map(|d| event.at + d);
                    changes.extend(self.show(step));
                    changes.push(self.overall());
                }
                changes
            }
            RunEventKind::AttemptFinished { .. } => Vec::new(),
            RunEventKind::StepOverran { step, elapsed } => {
                let mut changes = vec![Change::Print(format!(
                    "⏱ {step} still running after {}, past its expected duration {}",
                    format_secs(stamped_secs(*elapsed)),
                    self.expected(step)
                ))];
                if let Some(r) = self.running.get_mut(step) {
                    r.late = true;
                    changes.extend(self.show(step));
                }
                changes
            }
            RunEventKind::StepFinished {
                step,
                status,
                reason,
                attempts,
                adopted,
                duration,
                counts,
                overran,
                ..
            } => {
                let was_running = self.running.remove(step).is_some();
                self.counts = *counts;
                let mut changes = Vec::new();
                if was_running {
                    changes.push(Change::Hide { step: step.clone() });
                }
                let duration = duration.map(stamped_secs);
                let mut line =
                    self.finished_line(step, *status, reason, *attempts, *adopted, duration);
                if *overran {
                    line.push_str(&format!(
                        " ⏱ overran: expected at most {}",
                        self.expected(step)
                    ));
                }
                changes.push(Change::Print(line));
                changes.push(self.overall());
                changes
            }
            RunEventKind::Stopping { reason } => {
                vec![Change::Print(format!("■ stopping: {}", first_line(reason)))]
            }
            RunEventKind::RunFinished { counts, .. } => {
                self.counts = *counts;
                let mut ids: Vec<StepId> = self.running.keys().cloned().collect();
                ids.sort();
                self.running.clear();
                ids.into_iter()
                    .map(|step| Change::Hide { step })
                    .chain([self.overall()])
                    .collect()
            }
        }
    }

    fn overall(&self) -> Change {
        let tally = StepStatus::ALL
            .iter()
            .filter(|s| self.counts.get(**s) > 0)
            .map(|s| format!("{} {}", self.counts.get(*s), symbol(*s)))
            .collect::<Vec<_>>()
            .join(" · ");
        Change::Overall {
            done: u64::from(self.counts.total()),
            tally,
            eta: self.counts.total() > 0 && self.running.values().all(|r| r.retry_at.is_none()),
        }
    }

    fn show(&self, step: &StepId) -> Option<Change> {
        let r = self.running.get(step)?;
        Some(Change::Show {
            step: step.clone(),
            // What changes first, the resource last: a narrow terminal cuts the end.
            line: format!(
                "{step} · {}{} · attempt {} · {}",
                if r.late { "⏱ late · " } else { "" },
                r.remote,
                r.attempt,
                self.what(step)
            ),
            since: r.since,
            retry_at: r.retry_at,
        })
    }

    /// The step's expected duration, described.
    fn expected(&self, step: &StepId) -> String {
        crate::reporter::expected_of(self.steps.get(step))
    }

    /// `dataset Data Admin / ORDER_LIST`, the resource shortened to stay readable.
    fn what(&self, step: &StepId) -> String {
        match self.steps.get(step) {
            Some(info) => format!(
                "{} {}",
                info.step_type,
                crate::term::shorten(&info.resource, 48)
            ),
            None => "?".into(),
        }
    }

    fn finished_line(
        &self,
        step: &StepId,
        status: StepStatus,
        reason: &Option<String>,
        attempts: u32,
        adopted: bool,
        duration: Option<f64>,
    ) -> String {
        let mut line = format!("{} {step} ({}) {status}", symbol(status), self.what(step));
        if let Some(d) = duration {
            line.push_str(&format!(" in {}", format_secs(d)));
        }
        if attempts > 1 {
            line.push_str(&format!(" after {attempts} attempts"));
        }
        if adopted {
            line.push_str(" (adopted a refresh already running)");
        }
        if let Some(r) = reason {
            line.push_str(&format!(": {}", first_line(r)));
        }
        line
    }
}

/// `✓` succeeded, `✗` failed or timed out, `-` not run (skipped, upstream_failed, cancelled).
fn symbol(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Succeeded => "✓",
        StepStatus::Failed | StepStatus::TimedOut => "✗",
        StepStatus::Skipped | StepStatus::UpstreamFailed | StepStatus::Cancelled => "-",
    }
}

/// `InProgress`, `Running 40 %`, or the executor's note when there is no status word.
fn remote_text(update: &AttemptUpdate, raw: bool) -> String {
    let status = update
        .remote_status
        .as_deref()
        .map(|s| crate::reporter::status_for_people(s, raw));
    match (status, update.percent, &update.note) {
        (Some(s), Some(p), _) => format!("{s} {p} %"),
        (Some(s), None, _) => s,
        (None, _, Some(note)) => first_line(note).to_string(),
        (None, _, None) => String::new(),
    }
}

fn first_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_status_reads_like_the_service() {
        let export = AttemptUpdate {
            remote_status: Some("Running".into()),
            percent: Some(40),
            ..AttemptUpdate::default()
        };
        assert_eq!(remote_text(&export, false), "Running 40 %");
        let refresh = AttemptUpdate {
            remote_status: Some("Unknown".into()),
            ..AttemptUpdate::default()
        };
        assert_eq!(remote_text(&refresh, false), "in progress");
        assert_eq!(remote_text(&refresh, true), "in progress (Unknown)");
        let waiting = AttemptUpdate {
            note: Some("waiting for a running refresh to end\nsecond line".into()),
            ..AttemptUpdate::default()
        };
        assert_eq!(
            remote_text(&waiting, false),
            "waiting for a running refresh to end"
        );
    }
}

//! The run as attempts see it ([`RunView`]): what webhooks put in `${run.summary}`.
//!
//! The scheduler updates one [`ViewState`] after every final status and publishes it over a
//! `watch` channel; each attempt takes a [`RunView`] from it when it starts. Counts are kept
//! incrementally so building a view costs O(1) for most steps: only steps whose plan needs say
//! so ([`crate::plan::StepNeeds::run_view`]: webhooks, which can send `${steps.<id>.status}`)
//! get the full list of final statuses.

use crate::event::StepStatus;
use crate::executor::RunView;
use crate::job::model::StepId;

/// At most this many step ids are named per status in the summary line.
const IDS_SHOWN: usize = 5;

/// At most this many failed steps keep their error for webhook cards.
pub(crate) const FAILURES_KEPT: usize = 10;

/// What the scheduler publishes after each final status.
#[derive(Debug, Clone, Default)]
pub(crate) struct ViewState {
    pub run_id: String,
    pub job: String,
    /// Final statuses in the order they were reached.
    pub finals: Vec<(StepId, StepStatus)>,
    /// When the run started (RFC 3339), for `${run.started_at}`.
    pub started_at: String,
    /// Attempts and seconds of each final step, in the order of `finals`.
    stats: Vec<(StepId, u32, f64)>,
    /// Steps per status, in [`StepStatus::ALL`] order.
    counts: [usize; 6],
    /// The first few failed / timed-out step ids, for the summary line.
    failed_ids: Vec<StepId>,
    timed_out_ids: Vec<StepId>,
    /// The first [`FAILURES_KEPT`] failed / timed-out steps with their last error.
    failures: Vec<(StepId, StepStatus, String)>,
    /// Steps that ran past their expected duration (count, and the first few ids).
    overran: usize,
    overran_ids: Vec<StepId>,
    /// Selected steps without a final status yet.
    pub unfinished: usize,
    /// A final status so far makes the run fail.
    pub failing: bool,
}

impl ViewState {
    /// A view of a run with `steps` selected steps, none final yet.
    pub(crate) fn new(run_id: String, job: String, steps: usize) -> ViewState {
        ViewState {
            run_id,
            job,
            unfinished: steps,
            ..ViewState::default()
        }
    }

    /// Records a final status.
    pub(crate) fn record(&mut self, id: &StepId, status: StepStatus, failing: bool) {
        self.finals.push((id.clone(), status));
        self.counts[slot(status)] += 1;
        let ids = match status {
            StepStatus::Failed => Some(&mut self.failed_ids),
            StepStatus::TimedOut => Some(&mut self.timed_out_ids),
            _ => None,
        };
        if let Some(ids) = ids
            && ids.len() < IDS_SHOWN
        {
            ids.push(id.clone());
        }
        self.unfinished = self.unfinished.saturating_sub(1);
        self.failing |= failing;
    }

    /// Records why a step failed or timed out (the first [`FAILURES_KEPT`] are kept), for
    /// the failed steps a Teams card or Slack message lists.
    pub(crate) fn record_failure(&mut self, id: &StepId, status: StepStatus, reason: Option<&str>) {
        if matches!(status, StepStatus::Failed | StepStatus::TimedOut)
            && self.failures.len() < FAILURES_KEPT
        {
            self.failures
                .push((id.clone(), status, reason.unwrap_or_default().to_string()));
        }
    }

    /// Records a step that ran past its expected duration (`failing`: `on_overrun: fail`).
    pub(crate) fn record_overrun(&mut self, id: &StepId, failing: bool) {
        self.overran += 1;
        if self.overran_ids.len() < IDS_SHOWN {
            self.overran_ids.push(id.clone());
        }
        self.failing |= failing;
    }

    /// Records the attempts and the duration of a step that reached its final status, for
    /// `${steps.<id>.attempts}` and `${steps.<id>.duration_secs}`.
    pub(crate) fn record_stats(&mut self, id: &StepId, attempts: u32, duration_secs: f64) {
        self.stats.push((id.clone(), attempts, duration_secs));
    }

    /// The view given to an attempt of a step that is itself still unfinished;
    /// `with_steps` fills [`RunView::steps`].
    pub(crate) fn run_view(&self, with_steps: bool) -> RunView {
        let status = if self.failing {
            "failed"
        } else if self.unfinished > 1 {
            "running"
        } else {
            "succeeded"
        };
        RunView {
            run_id: self.run_id.clone(),
            job: self.job.clone(),
            status: status.to_string(),
            summary: self.summary_line(),
            steps: if with_steps {
                self.finals.clone()
            } else {
                Vec::new()
            },
            started_at: self.started_at.clone(),
            stats: if with_steps {
                self.stats.clone()
            } else {
                Vec::new()
            },
            counts: if with_steps {
                StepStatus::ALL
                    .iter()
                    .map(|s| (*s, self.counts[slot(*s)]))
                    .collect()
            } else {
                Vec::new()
            },
            failures: if with_steps {
                self.failures.clone()
            } else {
                Vec::new()
            },
        }
    }

    /// One line: `order_list: 2 succeeded, 1 failed (a), 0 skipped`; timed out, upstream
    /// failed and cancelled counts are added when not zero. Failed and timed-out step ids are
    /// listed (at most five, then `...`).
    pub(crate) fn summary_line(&self) -> String {
        let part = |s: StepStatus, label: &str, always: bool, ids: Option<&Vec<StepId>>| {
            let n = self.counts[slot(s)];
            if n == 0 && !always {
                return None;
            }
            let mut text = format!("{n} {label}");
            if let Some(ids) = ids.filter(|ids| !ids.is_empty()) {
                let more = if n > ids.len() { ", ..." } else { "" };
                text.push_str(&format!(" ({}{more})", ids.join(", ")));
            }
            Some(text)
        };
        let parts: Vec<String> = [
            part(StepStatus::Succeeded, "succeeded", true, None),
            part(StepStatus::Failed, "failed", true, Some(&self.failed_ids)),
            part(
                StepStatus::TimedOut,
                "timed out",
                false,
                Some(&self.timed_out_ids),
            ),
            part(StepStatus::Skipped, "skipped", true, None),
            part(StepStatus::UpstreamFailed, "upstream failed", false, None),
            part(StepStatus::Cancelled, "cancelled", false, None),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut line = format!("{}: {}", self.job, parts.join(", "));
        if self.overran > 0 {
            let more = if self.overran > self.overran_ids.len() {
                ", ..."
            } else {
                ""
            };
            line.push_str(&format!(
                "; {} overran its expected duration ({}{more})",
                self.overran,
                self.overran_ids.join(", ")
            ));
        }
        line
    }
}

fn slot(status: StepStatus) -> usize {
    StepStatus::ALL
        .iter()
        .position(|s| *s == status)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(finals: &[(&str, StepStatus)]) -> ViewState {
        let mut v = ViewState::new("r".into(), "order_list".into(), finals.len() + 1);
        for (id, st) in finals {
            v.record(&id.to_string(), *st, false);
        }
        v
    }

    #[test]
    fn summary_line_names_the_steps_that_overran() {
        let mut v = view(&[("x", StepStatus::Succeeded)]);
        assert!(!v.run_view(false).summary.contains("overran"));
        v.record_overrun(&"x".to_string(), true);
        let view = v.run_view(false);
        assert_eq!(
            view.summary,
            "order_list: 1 succeeded, 0 failed, 0 skipped; 1 overran its expected duration (x)"
        );
        assert_eq!(view.status, "failed");
    }

    #[test]
    fn summary_line_lists_failures() {
        let v = view(&[
            ("x", StepStatus::Succeeded),
            ("a", StepStatus::Failed),
            ("y", StepStatus::Succeeded),
        ]);
        assert_eq!(
            v.summary_line(),
            "order_list: 2 succeeded, 1 failed (a), 0 skipped"
        );
        let v = view(&[("t", StepStatus::TimedOut), ("c", StepStatus::Cancelled)]);
        assert_eq!(
            v.summary_line(),
            "order_list: 0 succeeded, 0 failed, 1 timed out (t), 0 skipped, 1 cancelled"
        );
        let many: Vec<(String, StepStatus)> = (0..7)
            .map(|i| (format!("f{i}"), StepStatus::Failed))
            .collect();
        let refs: Vec<(&str, StepStatus)> = many.iter().map(|(i, s)| (i.as_str(), *s)).collect();
        assert_eq!(
            view(&refs).summary_line(),
            "order_list: 0 succeeded, 7 failed (f0, f1, f2, f3, f4, ...), 0 skipped"
        );
    }

    #[test]
    fn only_steps_that_ask_get_the_step_list() {
        let v = view(&[("a", StepStatus::Succeeded)]);
        assert!(v.run_view(false).steps.is_empty());
        assert_eq!(v.run_view(true).steps.len(), 1);
        // Only the asking step is left, and nothing failed.
        assert_eq!(v.run_view(true).status, "succeeded");
        let mut v = ViewState::new("r".into(), "j".into(), 3);
        v.record(&"a".to_string(), StepStatus::Succeeded, false);
        assert_eq!(v.run_view(false).status, "running");
        v.record(&"b".to_string(), StepStatus::Failed, true);
        assert_eq!(v.run_view(false).status, "failed");
    }
}

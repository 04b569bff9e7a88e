//! The run as attempts see it ([`RunView`]): what webhooks put in `${run.summary}`.

use crate::event::StepStatus;
use crate::executor::RunView;
use crate::job::model::StepId;

/// What the scheduler publishes (over a `watch` channel) after each final status.
#[derive(Debug, Clone, Default)]
pub struct ViewState {
    pub run_id: String,
    pub job: String,
    /// Final statuses in the order they were reached.
    pub finals: Vec<(StepId, StepStatus)>,
    /// Selected steps without a final status yet.
    pub unfinished: usize,
    /// A final status so far makes the run fail.
    pub failing: bool,
}

impl ViewState {
    /// The view given to an attempt of a step that is itself still unfinished.
    pub fn run_view(&self) -> RunView {
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
            summary: summary_line(&self.job, &self.finals),
            steps: self.finals.clone(),
        }
    }
}

/// One line: `order_list: 2 succeeded, 1 failed (a), 0 skipped`; timed out, upstream failed
/// and cancelled counts are added when not zero. Failed and timed-out step ids are listed
/// (at most five, then `...`).
pub fn summary_line(job: &str, finals: &[(StepId, StepStatus)]) -> String {
    let ids = |s: StepStatus| -> Vec<&str> {
        finals
            .iter()
            .filter(|(_, st)| *st == s)
            .map(|(id, _)| id.as_str())
            .collect()
    };
    let part = |s: StepStatus, label: &str, always: bool, list_ids: bool| -> Option<String> {
        let ids = ids(s);
        if ids.is_empty() && !always {
            return None;
        }
        let mut text = format!("{} {label}", ids.len());
        if list_ids && !ids.is_empty() {
            let shown: Vec<&str> = ids.iter().take(5).copied().collect();
            let more = if ids.len() > 5 { ", ..." } else { "" };
            text.push_str(&format!(" ({}{more})", shown.join(", ")));
        }
        Some(text)
    };
    let parts: Vec<String> = [
        part(StepStatus::Succeeded, "succeeded", true, false),
        part(StepStatus::Failed, "failed", true, true),
        part(StepStatus::TimedOut, "timed out", false, true),
        part(StepStatus::Skipped, "skipped", true, false),
        part(StepStatus::UpstreamFailed, "upstream failed", false, false),
        part(StepStatus::Cancelled, "cancelled", false, false),
    ]
    .into_iter()
    .flatten()
    .collect();
    format!("{job}: {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line_lists_failures() {
        let finals = vec![
            ("x".to_string(), StepStatus::Succeeded),
            ("a".to_string(), StepStatus::Failed),
            ("y".to_string(), StepStatus::Succeeded),
        ];
        assert_eq!(
            summary_line("order_list", &finals),
            "order_list: 2 succeeded, 1 failed (a), 0 skipped"
        );
        let finals = vec![
            ("t".to_string(), StepStatus::TimedOut),
            ("c".to_string(), StepStatus::Cancelled),
        ];
        assert_eq!(
            summary_line("j", &finals),
            "j: 0 succeeded, 0 failed, 1 timed out (t), 0 skipped, 1 cancelled"
        );
    }
}

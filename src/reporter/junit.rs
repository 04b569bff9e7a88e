//! The `--junit` XML: one `<testsuite>` per job, one `<testcase>` per step, rendered from the
//! folded [`RunReport`] with quick-junit (escaping and the attributes that CI consumers read).
//!
//! Mapping (DESIGN.md's precise rules): `failed` and `timed_out` become `<failure>` whose
//! `message` is the first line of the remote error and whose text is the whole error;
//! `skipped`, `upstream_failed` and `cancelled` become `<skipped>` with the reason. The status
//! word is the element's `type`, so a consumer can still tell a timeout from a failure. Every
//! attempt is listed in the test case's `<system-out>`, so an error that a retry recovered
//! from is not lost. Times are seconds.

use std::path::Path;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::report::{ReportError, ReportStep, RunReport, write_atomically};
use crate::event::StepStatus;

/// Why the JUnit file could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum JunitError {
    #[error("serialize junit xml: {0}")]
    Serialize(#[from] quick_junit::SerializeError),
    #[error(transparent)]
    Write(#[from] ReportError),
}

/// The JUnit XML of a run.
pub fn render(report: &RunReport) -> Result<String, JunitError> {
    let mut suite = TestSuite::new(report.job.as_str());
    suite
        .set_timestamp(report.started_at.fixed_offset())
        .set_time(seconds(report.duration_secs))
        .add_property(Property::new("run_id", report.run_id.as_str()))
        .add_property(Property::new("job_file", report.job_file.as_str()))
        .add_property(Property::new("status", report.status.as_str()));
    if let Some(from) = &report.resumed_from {
        suite.add_property(Property::new("resumed_from", from.as_str()));
    }
    suite.add_test_cases(report.steps.iter().map(|s| test_case(&report.job, s)));

    let mut xml = Report::new("pbibatch");
    xml.set_timestamp(report.started_at.fixed_offset())
        .set_time(seconds(report.duration_secs))
        .add_test_suite(suite);
    Ok(xml.to_string()?)
}

/// Renders and writes the file atomically (see [`write_atomically`]).
pub fn write(report: &RunReport, path: &Path) -> Result<(), JunitError> {
    let xml = render(report)?;
    write_atomically(path, xml.as_bytes())?;
    Ok(())
}

fn test_case(job: &str, step: &ReportStep) -> TestCase {
    let late_fail = step.late_fails();
    let status = match step.status {
        // Ran past its expected duration with `on_overrun: fail`: the run failed for it.
        StepStatus::Succeeded if late_fail => {
            let text = step.overrun_text().unwrap_or_else(|| "overran".into());
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status
                .set_message(first_line(&text))
                .set_type("overran")
                .set_description(text);
            status
        }
        StepStatus::Succeeded => TestCaseStatus::success(),
        StepStatus::Failed | StepStatus::TimedOut => {
            let error = step
                .error
                .as_deref()
                .or(step.reason.as_deref())
                .unwrap_or("no error message was reported");
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status
                .set_message(first_line(error))
                .set_type(step.status.as_str())
                .set_description(error);
            status
        }
        StepStatus::Skipped | StepStatus::UpstreamFailed | StepStatus::Cancelled => {
            let reason = step.reason.as_deref().unwrap_or(step.status.as_str());
            let mut status = TestCaseStatus::skipped();
            status
                .set_message(first_line(reason))
                .set_type(step.status.as_str())
                .set_description(reason);
            status
        }
    };
    let mut case = TestCase::new(step.id.as_str(), status);
    case.set_classname(format!("{job}.{}", step.step_type))
        .set_time(seconds(step.duration_secs.unwrap_or(0.0)))
        .add_property(Property::new("type", step.step_type.as_str()))
        .add_property(Property::new("status", step.status.as_str()))
        .add_property(Property::new("attempts", step.attempts.len().to_string()));
    if let Some(started) = step.started_at {
        case.set_timestamp(started.fixed_offset());
    }
    // One form for every step and outcome: the step's label, as in `plan` and the summary
    // table (`workspace / item` for Power BI and Fabric steps, the redacted URL for flows
    // and webhooks); the resolved ids are in the JSON report.
    if !step.label.is_empty() {
        case.add_property(Property::new("resource", step.label.as_str()));
    }
    if !step.attempts.is_empty() {
        case.set_system_out(attempt_log(step));
    }
    // A check: what was asserted and observed; a warning (the step passed) on stderr, which
    // CI test views show next to the passed case.
    if let Some(c) = &step.check {
        let verdict = match (c.passed, c.is_warning()) {
            (true, _) => "passed",
            (false, true) => "warning",
            (false, false) => "failed",
        };
        case.add_property(Property::new("check", c.assertion.as_str()))
            .add_property(Property::new("observed", c.observed.as_str()))
            .add_property(Property::new("check_result", verdict));
    }
    if let Some(e) = &step.expected_duration {
        if let Some(secs) = e.secs {
            case.add_property(Property::new("expected_duration_secs", format!("{secs}")));
        }
        case.add_property(Property::new("expected_from", e.from.as_str()))
            .add_property(Property::new("overran", step.overran.to_string()));
    }
    if let Some(w) = &step.warning {
        case.set_system_err(format!("warning: {w}\n"));
    }
    case
}

/// One line per attempt: `attempt 1 failed in 27.9s (remote id req-1): <error>`.
fn attempt_log(step: &ReportStep) -> String {
    let mut out = String::new();
    for a in &step.attempts {
        let secs = (a.finished_at - a.started_at).num_milliseconds().max(0) as f64 / 1000.0;
        out.push_str(&format!(
            "attempt {} {} in {}",
            a.number,
            a.status,
            super::format_secs(secs)
        ));
        if let Some(id) = &a.remote_id {
            out.push_str(&format!(" (remote id {id})"));
        }
        if let Some(e) = &a.error {
            out.push_str(": ");
            out.push_str(e);
        }
        out.push('\n');
    }
    out
}

/// Seconds as a [`Duration`]; negative or non-finite values (never produced by the fold) give 0
/// rather than a panic.
fn seconds(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or_default()
}

fn first_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

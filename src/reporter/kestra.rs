//! `--kestra`: the two lines a Kestra script task turns into task outputs and metrics.
//!
//! Kestra reads every stdout/stderr line of a script task and matches it against
//! `^::(\{.*})::$` (its `TaskLogLineMatcher`); the JSON inside is an object whose `outputs` is a
//! map and whose `metrics` is a list of `{"name", "type": "counter"|"timer", "value", "tags"}`
//! (tags are string to string; a timer's value is a number of seconds). See docs/kestra.md.
//!
//! Java's `.` does not match `\u{85}`, `\u{2028}` or `\u{2029}`, which JSON allows raw inside
//! strings: a remote error message holding one would make Kestra ignore the whole line, so those
//! are written as `\u` escapes.

use std::path::Path;

use serde_json::{Map, Value, json};

use super::report::RunReport;
use crate::event::StepStatus;

/// The `::{"outputs":{...}}::` line (no trailing newline).
///
/// Outputs: `run_id`, `job`, `status`, `duration_secs`, `counts` (all six statuses),
/// `failed_steps` (ids of steps that ended `failed` or `timed_out`), `errors` (step id to the
/// first line of its error, for those steps), `reports` (kind to path, as given) and, when
/// the run had check steps, `checks` (step id to `result`, `assertion`, `observed`); when a
/// step ran past its expected duration, `overran` (step id to `took_secs`, `expected_secs`,
/// `from`, `on_overrun`).
pub(crate) fn outputs_line(report: &RunReport, reports: &[(&str, &Path)]) -> String {
    let failed = failed_steps(report);
    let mut counts = Map::new();
    for s in StepStatus::ALL {
        counts.insert(s.as_str().into(), json!(report.counts.get(s)));
    }
    let mut errors = Map::new();
    for s in &failed {
        errors.insert(s.id.to_string(), json!(s.error));
    }
    let mut paths = Map::new();
    for (kind, path) in reports {
        paths.insert((*kind).into(), json!(path.display().to_string()));
    }
    let mut outputs = json!({
        "outputs": {
            "run_id": report.run_id,
            "job": report.job,
            "status": report.status.as_str(),
            "duration_secs": report.duration_secs,
            "counts": counts,
            "failed_steps": failed.iter().map(|s| s.id).collect::<Vec<_>>(),
            "errors": errors,
            "reports": paths,
        }
    });
    // Check steps: step id -> result (`passed`, `warning` or `failed`), assertion and
    // observed value; present only when the run had checks.
    let mut checks = Map::new();
    for step in &report.steps {
        if let Some(c) = &step.check {
            let result = match (c.passed, c.is_warning()) {
                (true, _) => "passed",
                (false, true) => "warning",
                (false, false) => "failed",
            };
            checks.insert(
                step.id.clone(),
                json!({"result": result, "assertion": c.assertion, "observed": c.observed}),
            );
        }
    }
    if !checks.is_empty() {
        outputs["outputs"]["checks"] = Value::Object(checks);
    }
    let mut overran = Map::new();
    for step in report.overran() {
        let e = step.expected_duration.as_ref();
        overran.insert(
            step.id.clone(),
            json!({
                "took_secs": step.duration_secs,
                "expected_secs": e.and_then(|e| e.secs),
                "from": e.map(|e| e.from.as_str()),
                "on_overrun": e.map(|e| e.on_overrun.as_str()),
            }),
        );
    }
    if !overran.is_empty() {
        outputs["outputs"]["overran"] = Value::Object(overran);
    }
    framed(&outputs)
}

/// The `::{"metrics":[...]}::` line (no trailing newline).
///
/// Metrics: one counter `steps.<status>` per final status (zeros included), a timer
/// `run.duration` for the run, and a timer `step.duration` per step that ran, tagged with its
/// `step` id, `type` and `status`. Every metric carries the `job` tag.
pub(crate) fn metrics_line(report: &RunReport) -> String {
    let mut metrics = Vec::new();
    for s in StepStatus::ALL {
        metrics.push(json!({
            "name": format!("steps.{s}"),
            "type": "counter",
            "value": report.counts.get(s),
            "tags": { "job": report.job },
        }));
    }
    metrics.push(json!({
        "name": "run.duration",
        "type": "timer",
        "value": report.duration_secs,
        "tags": { "job": report.job, "status": report.status.as_str() },
    }));
    for step in &report.steps {
        let Some(secs) = step.duration_secs else {
            continue;
        };
        metrics.push(json!({
            "name": "step.duration",
            "type": "timer",
            "value": secs,
            "tags": {
                "job": report.job,
                "step": step.id,
                "type": step.step_type,
                "status": step.status.as_str(),
            },
        }));
    }
    // Present when any step has an expected duration: a counter to alert on.
    if report.steps.iter().any(|s| s.expected_duration.is_some()) {
        metrics.push(json!({
            "name": "steps.overran",
            "type": "counter",
            "value": report.overran().count(),
            "tags": { "job": report.job },
        }));
    }
    framed(&json!({ "metrics": metrics }))
}

/// Both lines, each ending with a newline, ready for stdout.
pub fn render(report: &RunReport, reports: &[(&str, &Path)]) -> String {
    format!(
        "{}\n{}\n",
        outputs_line(report, reports),
        metrics_line(report)
    )
}

struct RunStepView<'a> {
    id: &'a str,
    error: String,
}

fn failed_steps(report: &RunReport) -> Vec<RunStepView<'_>> {
    report
        .steps
        .iter()
        .filter(|s| matches!(s.status, StepStatus::Failed | StepStatus::TimedOut))
        .map(|s| RunStepView {
            id: s.id.as_str(),
            error: s
                .error
                .as_deref()
                .or(s.reason.as_deref())
                .and_then(|e| e.lines().map(str::trim).find(|l| !l.is_empty()))
                .unwrap_or(s.status.as_str())
                .to_string(),
        })
        .collect()
}

/// `::<json>::` on one line that Java's `^::(\{.*})::$` matches.
fn framed(value: &Value) -> String {
    // serde_json escapes control characters (so `\n` never appears raw); only the three
    // characters Java treats as line ends on top of those remain.
    let json = value
        .to_string()
        .replace('\u{85}', "\\u0085")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    format!("::{json}::")
}

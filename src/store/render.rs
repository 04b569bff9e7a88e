//! What `pbibatch history` and `pbibatch show` print: the runs as tables.

use std::fmt::Write as _;

use super::history::{RunDetails, RunSummary};

/// The `history` table.
pub(crate) fn render_history(runs: &[RunSummary]) -> String {
    if runs.is_empty() {
        return "no runs recorded\n".into();
    }
    let mut rows = vec![vec![
        "RUN".to_string(),
        "JOB".into(),
        "STATUS".into(),
        "TARGET".into(),
        "STARTED (UTC)".into(),
        "DURATION".into(),
        "STEPS".into(),
    ]];
    for run in runs {
        let mut status = run.status.clone();
        if let Some(from) = &run.resumed_from {
            let _ = write!(status, " (resumed {from})");
        }
        rows.push(vec![
            run.run_id.clone(),
            run.job.clone(),
            status,
            run.target.short(),
            run.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            duration(run.duration_secs),
            counts_line(&run.counts, run.steps),
        ]);
    }
    crate::term::table(&rows, 2)
}

/// The `show` text: a header, then the run's summary table (the one `run` prints) for a
/// finished run, or one line per step with what is known of its remote work for a run that
/// did not finish.
pub(crate) fn render_run(run: &RunDetails) -> String {
    let report = run.to_report();
    let mut out = String::new();
    if report.is_none() {
        let _ = writeln!(out, "run       {}", run.run_id);
        let _ = writeln!(out, "job       {}", run.job);
        let _ = writeln!(out, "status    {}", run.status);
    }
    let _ = writeln!(out, "job file  {}", run.job_file);
    let _ = writeln!(out, "target    {}", run.target);
    let _ = writeln!(
        out,
        "started   {}",
        run.started_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    if let Some(end) = run.finished_at {
        let _ = writeln!(out, "finished  {}", end.format("%Y-%m-%d %H:%M:%S UTC"));
    }
    if let Some(from) = &run.resumed_from {
        let _ = writeln!(out, "resumes   {from}");
    }
    if let Some(reason) = &run.stop_reason {
        let _ = writeln!(out, "stopped   {reason}");
    }
    // A finished run reads like the summary printed at the end of `run`.
    if let Some(report) = report {
        out.push('\n');
        out.push_str(&crate::reporter::summary::render(&report, &[]));
        return out;
    }
    let _ = writeln!(
        out,
        "steps     {}",
        counts_line(&run.counts, run.steps.len() as u32)
    );
    out.push('\n');
    let mut rows = vec![vec![
        "STEP".to_string(),
        "TYPE".into(),
        "STATUS".into(),
        "ATTEMPTS".into(),
        "DURATION".into(),
        "REMOTE ID".into(),
        "DETAIL".into(),
    ]];
    for step in &run.steps {
        let mut status = step.status.clone();
        if step.adopted {
            status.push_str(" (adopted)");
        }
        let last = step.attempts.last();
        let remote_status = last
            .filter(|a| a.finished_at.is_none())
            .and_then(|a| a.remote.as_ref())
            .and_then(|r| r.status.as_ref());
        let detail = step
            .error
            .clone()
            .or_else(|| step.reason.clone())
            .or_else(|| remote_status.map(|s| format!("remote status {s}")))
            .unwrap_or_default();
        rows.push(vec![
            step.id.clone(),
            step.step_type.clone(),
            status,
            step.attempts.len().to_string(),
            duration(step.duration_secs),
            last.and_then(|a| a.remote_id.clone()).unwrap_or_default(),
            one_line(&detail),
        ]);
    }
    out.push_str(&crate::term::table(&rows, 2));
    if run.status == "incomplete" {
        let _ = write!(
            out,
            "\nfinish it with: pbibatch run {} --resume {}\n",
            run.job_file, run.run_id
        );
    }
    out
}

/// The reporters' duration style (`850ms`, `12.3s`, `4m 05s`, `1h 02m`), `-` when unknown.
fn duration(secs: Option<f64>) -> String {
    secs.map_or_else(|| "-".into(), crate::reporter::format_secs)
}

/// `3 succeeded, 1 failed` (zero counts left out), plus steps that never reached a final
/// status in a run that did not finish.
fn counts_line(counts: &indexmap::IndexMap<String, u32>, total: u32) -> String {
    let mut parts: Vec<String> = counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    let done: u32 = counts.values().sum();
    if done < total {
        parts.push(format!("{} unfinished", total - done));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

fn one_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > 80 {
        let cut: String = line.chars().take(77).collect();
        format!("{cut}...")
    } else {
        line.to_string()
    }
}

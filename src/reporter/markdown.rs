//! The `--summary` Markdown: a headline, the step table and a Mermaid `gantt` chart of the run,
//! rendered from the folded [`RunReport`]. The same text is appended to the file named by
//! `GITHUB_STEP_SUMMARY` when that is set, so a GitHub Actions job page shows it.
//!
//! The chart uses `dateFormat x` (Unix milliseconds, listed among Mermaid's gantt input
//! formats), so bars are exact and free of time zones; the axis shows `%H:%M:%S`.
//! The chart has one section per wave (a step's wave is the length of its longest chain of
//! selected dependencies, as `plan` shows it) and one bar per step that ran, from the start of
//! its first attempt to its final status. Steps that never started (skipped, not run, cancelled
//! before starting) have no time span: the table lists them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use chrono::SecondsFormat;

use super::format_secs;
use super::report::{ReportError, ReportStep, RunReport, write_atomically};
use crate::event::{RunStatus, StepStatus};

/// The Markdown of a run. `reports` are the other files written, as `(kind, path)`.
pub fn render(report: &RunReport, reports: &[(&str, &Path)]) -> String {
    let mut out = String::new();
    headline(report, &mut out);
    table(report, &mut out);
    checks(report, &mut out);
    late(report, &mut out);
    gantt(report, &mut out);
    if !reports.is_empty() {
        let _ = writeln!(out);
        for (kind, path) in reports {
            let _ = writeln!(out, "- {kind}: `{}`", path.display());
        }
    }
    out
}

/// Writes the Markdown to `path` (atomically) and, when `github_step_summary` is given,
/// appends it there too (GitHub Actions collects that file after the step).
pub fn write(
    report: &RunReport,
    reports: &[(&str, &Path)],
    path: Option<&Path>,
    github_step_summary: Option<&Path>,
) -> Result<(), ReportError> {
    let text = render(report, reports);
    if let Some(path) = path {
        write_atomically(path, text.as_bytes())?;
    }
    if let Some(gh) = github_step_summary {
        let io = |source| ReportError::Io {
            path: gh.to_path_buf(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(gh)
            .map_err(io)?;
        // A blank line first: earlier steps may have left a paragraph open.
        f.write_all(format!("\n{text}").as_bytes()).map_err(io)?;
    }
    Ok(())
}

/// A "Checks" section when the run had check steps: one row per check with its verdict,
/// assertion and observed value, then the first offending rows of each failed check.
fn checks(report: &RunReport, out: &mut String) {
    let checked: Vec<&ReportStep> = report.steps.iter().filter(|s| s.check.is_some()).collect();
    if checked.is_empty() {
        return;
    }
    let _ = writeln!(out, "### Checks\n");
    let _ = writeln!(out, "| check | result | expected | observed |");
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    for s in &checked {
        let Some(c) = &s.check else { continue };
        let result = match (c.passed, c.is_warning()) {
            (true, _) => "✅ passed",
            (false, true) => "⚠️ warning",
            (false, false) => "❌ failed",
        };
        let _ = writeln!(
            out,
            "| `{}` | {result} | {} | {} |",
            s.id,
            cell(&c.assertion),
            cell(&c.observed)
        );
    }
    for s in &checked {
        let Some(c) = &s.check else { continue };
        if c.sample.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "\n`{}`: first {} of {} rows\n\n```json",
            s.id,
            c.sample.len(),
            c.rows
        );
        for row in &c.sample {
            let _ = writeln!(out, "{}", serde_json::Value::Object(row.clone()));
        }
        let _ = writeln!(out, "```");
    }
    let _ = writeln!(out);
}

/// A "Late steps" section when a step ran past its expected duration.
fn late(report: &RunReport, out: &mut String) {
    let late: Vec<&ReportStep> = report.overran().collect();
    if late.is_empty() {
        return;
    }
    let _ = writeln!(out, "### Late steps\n");
    let _ = writeln!(out, "| step | took | expected at most | on_overrun |");
    let _ = writeln!(out, "| --- | ---: | --- | --- |");
    for s in late {
        let Some(e) = &s.expected_duration else {
            continue;
        };
        let verdict = match e.on_overrun {
            crate::job::model::OnOverrun::Warn => "⏱️ warn",
            crate::job::model::OnOverrun::Fail => "❌ fail",
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {verdict} |",
            s.id,
            s.duration_secs
                .map(format_secs)
                .unwrap_or_else(|| "-".into()),
            cell(&super::describe_expected(e)),
        );
    }
    let _ = writeln!(out);
}

fn headline(report: &RunReport, out: &mut String) {
    let icon = match report.status {
        RunStatus::Succeeded => "✅",
        RunStatus::Failed => "❌",
        RunStatus::Cancelled => "🚫",
    };
    let _ = writeln!(
        out,
        "## {icon} pbibatch `{}`: {}\n",
        report.job,
        report.status.as_str()
    );
    let resumed = report
        .resumed_from
        .as_ref()
        .map(|r| format!(" (resuming `{r}`)"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "Run `{}`{resumed} of `{}`, started {}, took **{}**.\n",
        report.run_id,
        report.job_file,
        report.started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        format_secs(report.duration_secs)
    );
    let counts = StepStatus::ALL
        .iter()
        .map(|s| {
            let n = report.counts.get(*s);
            if n > 0 {
                format!("**{n} {s}**")
            } else {
                format!("{n} {s}")
            }
        })
        .collect::<Vec<_>>()
        .join(" · ");
    let _ = writeln!(out, "{counts}\n");
}

fn table(report: &RunReport, out: &mut String) {
    let _ = writeln!(
        out,
        "| Step | Type | Status | Attempts | Started (UTC) | Duration | Remote id | Error or reason |"
    );
    let _ = writeln!(out, "| --- | --- | --- | ---: | --- | ---: | --- | --- |");
    for s in &report.steps {
        let remote = s
            .attempts
            .iter()
            .rev()
            .find_map(|a| a.remote_id.as_deref())
            .map(|id| format!("`{}`", cell(id)))
            .unwrap_or_else(|| "-".into());
        let started = s
            .started_at
            .map(|t| t.format("%H:%M:%S").to_string())
            .unwrap_or_else(|| "-".into());
        let detail = s
            .error
            .as_deref()
            .or(match s.status {
                StepStatus::Succeeded => None,
                _ => s.reason.as_deref(),
            })
            .map(cell)
            .or_else(|| s.warning.as_deref().map(|w| format!("⚠️ {}", cell(w))))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "| `{}` | {} | {} {} | {} | {} | {} | {} | {} |",
            s.id,
            s.step_type,
            status_icon(s.status),
            s.status,
            s.attempts.len(),
            started,
            s.duration_secs
                .map(format_secs)
                .unwrap_or_else(|| "-".into()),
            remote,
            detail
        );
    }
}

fn gantt(report: &RunReport, out: &mut String) {
    let ran: Vec<&ReportStep> = report
        .steps
        .iter()
        .filter(|s| s.started_at.is_some())
        .collect();
    if ran.is_empty() {
        let _ = writeln!(out, "\nNo step started, so there is no chart.");
        return;
    }
    let waves = waves(report);
    let _ = writeln!(out, "\n```mermaid\ngantt");
    let _ = writeln!(out, "    title {} run {}", report.job, report.run_id);
    // Unix milliseconds: exact, and free of any time zone or locale.
    let _ = writeln!(out, "    dateFormat x");
    let _ = writeln!(out, "    axisFormat %H:%M:%S");
    // Viewed days later, a marker for today would only stretch the axis.
    let _ = writeln!(out, "    todayMarker off");
    let mut by_wave: Vec<(usize, Vec<(usize, &ReportStep)>)> = Vec::new();
    for (i, s) in report.steps.iter().enumerate() {
        if s.started_at.is_none() {
            continue;
        }
        let w = waves.get(s.id.as_str()).copied().unwrap_or(0);
        match by_wave.iter_mut().find(|(k, _)| *k == w) {
            Some((_, v)) => v.push((i, s)),
            None => by_wave.push((w, vec![(i, s)])),
        }
    }
    by_wave.sort_by_key(|(w, _)| *w);
    for (w, steps) in by_wave {
        let _ = writeln!(out, "    section wave {}", w + 1);
        for (i, s) in steps {
            let Some(start) = s.started_at else { continue };
            let end = s.finished_at.unwrap_or(report.finished_at);
            let start_ms = start.timestamp_millis();
            // A bar needs a width to show; a step that took under a millisecond gets one.
            let end_ms = end.timestamp_millis().max(start_ms + 1);
            let tag = match s.status {
                StepStatus::Succeeded => "done, ",
                StepStatus::Failed | StepStatus::TimedOut => "crit, ",
                _ => "",
            };
            // The symbol first: a step id such as `section` or `title` would otherwise read as
            // a Mermaid keyword at the start of the line.
            let mut name = format!("{} {}", bar_symbol(s.status), s.id);
            if s.status != StepStatus::Succeeded {
                name.push_str(&format!(" {}", s.status));
            }
            if s.attempts.len() > 1 {
                name.push_str(&format!(" after {} attempts", s.attempts.len()));
            }
            let _ = writeln!(out, "    {name} :{tag}s{i}, {start_ms}, {end_ms}");
        }
    }
    let _ = writeln!(out, "```");
}

/// Wave of each step: 0 for a step with no selected dependency, else one more than its
/// deepest dependency.
fn waves(report: &RunReport) -> HashMap<&str, usize> {
    let deps: HashMap<&str, &[String]> = report
        .steps
        .iter()
        .map(|s| (s.id.as_str(), s.depends_on.as_slice()))
        .collect();
    let mut wave: HashMap<&str, usize> = HashMap::new();
    for s in &report.steps {
        // Iterative depth-first walk (job order need not be topological).
        let mut stack: Vec<(&str, bool)> = vec![(s.id.as_str(), false)];
        while let Some((id, expanded)) = stack.pop() {
            if wave.contains_key(id) {
                continue;
            }
            let parents: Vec<&str> = deps
                .get(id)
                .map(|d| {
                    d.iter()
                        .map(String::as_str)
                        .filter(|p| deps.contains_key(p))
                        .collect()
                })
                .unwrap_or_default();
            if !expanded {
                stack.push((id, true));
                stack.extend(
                    parents
                        .iter()
                        .filter(|p| !wave.contains_key(*p))
                        .map(|p| (*p, false)),
                );
                continue;
            }
            let w = parents
                .iter()
                .filter_map(|p| wave.get(p).map(|w| w + 1))
                .max()
                .unwrap_or(0);
            wave.insert(id, w);
        }
    }
    wave
}

fn bar_symbol(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Succeeded => "✓",
        StepStatus::Failed | StepStatus::TimedOut => "✗",
        _ => "-",
    }
}

fn status_icon(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Succeeded => "✅",
        StepStatus::Failed => "❌",
        StepStatus::TimedOut => "⏱️",
        StepStatus::Skipped => "⏭️",
        StepStatus::UpstreamFailed => "⛔",
        StepStatus::Cancelled => "🚫",
    }
}

/// Text safe inside a table cell: no raw pipes, HTML or line breaks, and at most 500
/// characters (the JSON report keeps the whole message).
fn cell(text: &str) -> String {
    let joined = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("<br>");
    let mut out = String::new();
    let mut count = 0;
    let mut rest = joined.as_str();
    while let Some(c) = rest.chars().next() {
        if count >= 500 {
            out.push('…');
            break;
        }
        if let Some(after) = rest.strip_prefix("<br>") {
            out.push_str("<br>");
            rest = after;
            count += 1;
            continue;
        }
        match c {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            c => out.push(c),
        }
        count += 1;
        rest = &rest[c.len_utf8()..];
    }
    out
}

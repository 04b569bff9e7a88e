//! The final summary printed on stderr: a table of steps, counts per status, the critical
//! path of this run and the paths of the reports written.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use super::format_secs;
use super::report::RunReport;

/// The longest chain of dependent steps by actual duration: `(step ids, seconds)`.
///
/// Steps without attempts weigh nothing; an empty chain means nothing ran.
pub fn critical_path(report: &RunReport) -> (Vec<String>, f64) {
    let index: HashMap<&str, usize> = report
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    // best[i] = (length of the heaviest chain ending at i, previous step on it).
    let mut best: Vec<Option<(f64, Option<usize>)>> = vec![None; report.steps.len()];
    // Job order need not be topological: resolve with an explicit stack, parents first.
    for start in 0..report.steps.len() {
        let mut stack = vec![(start, false)];
        while let Some((i, expanded)) = stack.pop() {
            if best[i].is_some() {
                continue;
            }
            let parents: Vec<usize> = report.steps[i]
                .depends_on
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .collect();
            if !expanded {
                stack.push((i, true));
                // A cycle cannot reach here (the plan is acyclic); `expanded` bounds the walk.
                stack.extend(
                    parents
                        .iter()
                        .filter(|p| best[**p].is_none())
                        .map(|p| (*p, false)),
                );
                continue;
            }
            let own = report.steps[i].duration_secs.unwrap_or(0.0);
            let prev = parents
                .iter()
                .filter_map(|p| best[*p].map(|(len, _)| (len, *p)))
                .max_by(|a, b| a.0.total_cmp(&b.0));
            best[i] = Some(match prev {
                Some((len, p)) if len > 0.0 => (len + own, Some(p)),
                _ => (own, None),
            });
        }
    }
    let end = best
        .iter()
        .enumerate()
        .filter_map(|(i, b)| b.map(|(len, _)| (len, i)))
        .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
    let Some((total, mut at)) = end else {
        return (Vec::new(), 0.0);
    };
    if total <= 0.0 {
        return (Vec::new(), 0.0);
    }
    let mut chain = vec![report.steps[at].id.clone()];
    while let Some((_, Some(prev))) = best[at] {
        chain.push(report.steps[prev].id.clone());
        at = prev;
    }
    chain.reverse();
    (chain, total)
}

/// Renders the summary with every cell whole (logs, CI, `show` into a file or pipe).
/// `reports` are (kind, path) of the files written, e.g. `("report", "run.json")`.
pub fn render(report: &RunReport, reports: &[(&str, PathBuf)]) -> String {
    render_for_width(report, reports, None)
}

/// Columns of the table: STEP, TYPE, STATUS, ATTEMPTS, DURATION, REMOTE ID, ERROR.
const REMOTE: usize = 5;
const ERROR: usize = 6;
/// Spaces between two columns.
const GAP: usize = 2;
/// A remote id shortened on a terminal keeps this many characters (a GUID's first group).
const SHORT_ID: usize = 8;

/// [`render`] fitted to a terminal `width` (`None`: no terminal, nothing shortened). On a
/// terminal, remote ids are shortened to their first characters (whole in the reports), then
/// the error is cut to the width left, then the step ids; if the table still does not fit,
/// the remote id column goes, then the errors move under the table, one line per step.
pub fn render_for_width(
    report: &RunReport,
    reports: &[(&str, PathBuf)],
    width: Option<usize>,
) -> String {
    let header = [
        "STEP",
        "TYPE",
        "STATUS",
        "ATTEMPTS",
        "DURATION",
        "REMOTE ID",
        "ERROR",
    ];
    let mut rows: Vec<[String; 7]> = report
        .steps
        .iter()
        .map(|s| {
            let remote = s
                .attempts
                .iter()
                .rev()
                .find_map(|a| a.remote_id.clone())
                .unwrap_or_else(|| "-".into());
            let error = s
                .error
                .as_deref()
                .or(match s.status {
                    crate::event::StepStatus::Succeeded => None,
                    _ => s.reason.as_deref(),
                })
                .map(first_line)
                .unwrap_or_else(|| "-".into());
            [
                s.id.clone(),
                s.step_type.clone(),
                s.status.as_str().to_string(),
                s.attempts.len().to_string(),
                s.duration_secs
                    .map(format_secs)
                    .unwrap_or_else(|| "-".into()),
                remote,
                error,
            ]
        })
        .collect();
    let mut shown: Vec<usize> = (0..header.len()).collect();
    if let Some(width) = width {
        fit(&header, &mut rows, &mut shown, width);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "run {} of {}: {} in {}",
        report.run_id,
        report.job,
        report.status.as_str(),
        format_secs(report.duration_secs)
    );
    let table: Vec<Vec<&str>> = std::iter::once(header.to_vec())
        .chain(rows.iter().map(|r| r.iter().map(String::as_str).collect()))
        .map(|cells: Vec<&str>| shown.iter().map(|c| cells[*c]).collect())
        .collect();
    out.push_str(&crate::term::table(&table, GAP));
    if !shown.contains(&ERROR) {
        let width = width.unwrap_or(usize::MAX);
        for row in rows.iter().filter(|r| r[ERROR] != "-") {
            let text = format!("{}: {}", row[0], row[ERROR]);
            let _ = writeln!(out, "{}", crate::term::shorten(&text, width));
        }
    }
    let mut counts = format!("counts: {}", report.counts.line());
    let too_wide = |text: &str| width.is_some_and(|w| crate::term::width(text) > w);
    if too_wide(&counts) {
        // On a narrow terminal the zeros go (the reports keep all six).
        let nonzero: Vec<String> = crate::event::StepStatus::ALL
            .iter()
            .filter(|s| report.counts.get(**s) > 0)
            .map(|s| format!("{} {}", report.counts.get(*s), s.as_str()))
            .collect();
        counts = format!("counts: {}", nonzero.join(", "));
    }
    let _ = writeln!(out, "{counts}");
    for s in report.overran() {
        if let Some(text) = s.overrun_text() {
            let line = format!("late: {} {text}", s.id);
            match width {
                Some(w) => {
                    let _ = writeln!(out, "{}", crate::term::shorten(&line, w));
                }
                None => {
                    let _ = writeln!(out, "{line}");
                }
            }
        }
    }
    let (chain, total) = critical_path(report);
    let path = if chain.is_empty() {
        "critical path: -".to_string()
    } else {
        format!(
            "critical path: {} ({})",
            chain.join(" -> "),
            format_secs(total)
        )
    };
    match width {
        Some(w) if too_wide(&path) => {
            let _ = writeln!(out, "{}", crate::term::shorten(&path, w));
        }
        _ => {
            let _ = writeln!(out, "{path}");
        }
    }
    for (kind, path) in reports {
        let _ = writeln!(out, "{kind}: {}", path.display());
    }
    out
}

/// Shortens cells (see [`render_for_width`]) until a row fits in `width` columns.
fn fit(header: &[&str; 7], rows: &mut [[String; 7]], shown: &mut Vec<usize>, width: usize) {
    let col_width = |rows: &[[String; 7]], c: usize| {
        rows.iter()
            .map(|r| crate::term::width(&r[c]))
            .chain([crate::term::width(header[c])])
            .max()
            .unwrap_or(0)
    };
    // Width of every shown column but the last (the error), with their gaps.
    let fixed = |rows: &[[String; 7]], shown: &[usize]| -> usize {
        shown
            .iter()
            .filter(|c| **c != ERROR)
            .map(|c| col_width(rows, *c) + GAP)
            .sum()
    };
    let total = |rows: &[[String; 7]], shown: &[usize]| fixed(rows, shown) + col_width(rows, ERROR);
    if total(rows, shown) <= width {
        return;
    }
    for row in rows.iter_mut() {
        row[REMOTE] = crate::term::shorten(&row[REMOTE], SHORT_ID + 1);
    }
    // The error keeps at least this much before the other columns give way.
    const MIN_ERROR: usize = 24;
    // Step ids are cut to a third of the width at most, never below 12 characters.
    let step_max = (width / 3).max(12);
    if col_width(rows, 0) > step_max {
        for row in rows.iter_mut() {
            row[0] = crate::term::shorten(&row[0], step_max);
        }
    }
    if fixed(rows, shown) + MIN_ERROR > width {
        shown.retain(|c| *c != REMOTE);
    }
    if fixed(rows, shown) + MIN_ERROR > width {
        // Still too narrow (80 columns): the errors move under the table, one line each.
        shown.retain(|c| *c != ERROR);
        return;
    }
    let room = width
        .saturating_sub(fixed(rows, shown))
        .max(MIN_ERROR.min(width));
    for row in rows.iter_mut() {
        row[ERROR] = crate::term::shorten(&row[ERROR], room);
    }
}

/// What `-q` ("errors only") prints at the end of a run that did not succeed: one `error:`
/// line per step that failed or timed out, with the first line of its error, then the run's
/// status and counts. Empty for a run that succeeded.
pub(crate) fn errors_only(report: &RunReport) -> String {
    use crate::event::{RunStatus, StepStatus};
    if report.status == RunStatus::Succeeded {
        return String::new();
    }
    let mut out = String::new();
    for s in &report.steps {
        if matches!(s.status, StepStatus::Failed | StepStatus::TimedOut) {
            let why = s
                .error
                .as_deref()
                .or(s.reason.as_deref())
                .map(|e| format!(": {}", first_line(e)))
                .unwrap_or_default();
            let _ = writeln!(out, "error: step {} {}{why}", s.id, s.status.as_str());
        }
        if let (true, Some(text)) = (s.late_fails(), s.overrun_text()) {
            let _ = writeln!(out, "error: step {} {text}", s.id);
        }
    }
    let _ = writeln!(
        out,
        "error: run {} of {} {} ({})",
        report.run_id,
        report.job,
        report.status.as_str(),
        report.counts.line()
    );
    out
}

/// First line of a message, at most 100 characters.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() > 100 {
        let cut: String = line.chars().take(99).collect();
        format!("{cut}…")
    } else {
        line.to_string()
    }
}

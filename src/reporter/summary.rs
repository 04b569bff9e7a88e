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

/// Renders the summary. `reports` are (kind, path) of the files written, e.g.
/// `("report", "run.json")`.
pub fn render(report: &RunReport, reports: &[(&str, PathBuf)]) -> String {
    let header = [
        "STEP",
        "TYPE",
        "STATUS",
        "ATTEMPTS",
        "DURATION",
        "REMOTE ID",
        "ERROR",
    ];
    let rows: Vec<[String; 7]> = report
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
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()).take(6) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i < 6 {
                let pad = widths[i].saturating_sub(cell.chars().count());
                text.push_str(cell);
                text.push_str(&" ".repeat(pad + 2));
            } else {
                text.push_str(cell);
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    let _ = writeln!(
        out,
        "run {} of {}: {} in {}",
        report.run_id,
        report.job,
        report.status.as_str(),
        format_secs(report.duration_secs)
    );
    line(header.to_vec(), &mut out);
    for row in &rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    let _ = writeln!(out, "counts: {}", report.counts.line());
    let (chain, total) = critical_path(report);
    if chain.is_empty() {
        let _ = writeln!(out, "critical path: -");
    } else {
        let _ = writeln!(
            out,
            "critical path: {} ({})",
            chain.join(" -> "),
            format_secs(total)
        );
    }
    for (kind, path) in reports {
        let _ = writeln!(out, "{kind}: {}", path.display());
    }
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

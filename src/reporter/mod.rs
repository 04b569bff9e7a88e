//! Reporters: pure consumers of the [`RunEvent`] stream. None of them calls back into the
//! engine, so what the terminal shows and what the files say are folds of the same events.
//!
//! - [`report`]: the `--report` JSON ([`report::RunReport`]).
//! - [`lines`]: plain log lines, one per state change (stderr when not a terminal).
//! - [`summary`]: the final summary table.
//! - [`progress`]: the live display on a terminal (instead of [`lines`]).
//! - [`junit`], [`markdown`], [`kestra`]: `--junit`, `--summary`, `--kestra`, rendered from the
//!   folded report at the end ([`ReportPaths::write_all`], [`kestra::render`]).
//! - [`Reporters`]: drains the event channel and feeds every enabled reporter.

pub mod junit;
pub mod kestra;
pub mod lines;
pub mod markdown;
pub mod progress;
pub mod report;
pub mod summary;
pub(crate) mod writable;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use crate::event::RunEvent;
use lines::LineReporter;
use progress::ProgressReporter;
use report::{ReportBuilder, ReportError, RunReport};

/// `run --progress`: when stderr shows the live display instead of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// On a terminal that can redraw (not `TERM=dumb`).
    Auto,
    /// On any terminal, even `TERM=dumb` (never into a pipe or file).
    Always,
    /// Log lines only.
    Never,
}

/// The reporters of one run, fed from the engine's event channel.
pub struct Reporters {
    report: ReportBuilder,
    lines: Option<LineReporter<Box<dyn Write + Send>>>,
    progress: Option<ProgressReporter>,
}

impl Default for Reporters {
    fn default() -> Self {
        Self::new()
    }
}

impl Reporters {
    /// Only the run report (always built: every file is written from it at the end).
    pub fn new() -> Self {
        Reporters {
            report: ReportBuilder::default(),
            lines: None,
            progress: None,
        }
    }

    /// What stderr shows during the run: the live display when [`progress::enabled`] says so
    /// for `mode` (stderr a terminal), else plain log lines.
    /// `raw_status` (`-v`) shows the service's own status words beside the readable ones.
    pub(crate) fn with_stderr(mut self, mode: ProgressMode, raw_status: bool) -> Self {
        let term = std::env::var("TERM").ok();
        if progress::enabled(mode, std::io::stderr().is_terminal(), term.as_deref()) {
            self.with_progress(ProgressReporter::stderr(raw_status))
        } else {
            let out: Box<dyn Write + Send> = Box::new(std::io::stderr());
            self.lines = Some(LineReporter::new(out).raw_status(raw_status));
            self
        }
    }

    /// Adds JSON log lines (`--log-format json`) written to `out`; no live display then, since
    /// JSON logs are read by machines.
    pub(crate) fn with_json_lines(mut self, out: Box<dyn Write + Send>) -> Self {
        self.lines = Some(LineReporter::json(out));
        self
    }

    /// Adds the live display.
    pub(crate) fn with_progress(mut self, progress: ProgressReporter) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Adds plain log lines written to `out` (e.g. `Box::new(std::io::stderr())`).
    pub fn with_lines(mut self, out: Box<dyn Write + Send>) -> Self {
        self.lines = Some(LineReporter::new(out));
        self
    }

    /// Feeds one event to every reporter. A broken log writer (closed stderr) stops the log
    /// lines, never the run.
    pub fn apply(&mut self, event: &RunEvent) {
        self.report.apply(event);
        if let Some(lines) = &mut self.lines
            && lines.apply(event).is_err()
        {
            self.lines = None;
        }
        if let Some(progress) = &mut self.progress {
            progress.apply(event);
        }
    }

    /// The report as the events so far make it (see [`ReportBuilder::finish`]).
    pub fn report(&self) -> RunReport {
        self.report.finish()
    }

    /// Drains `events` until the channel closes (the engine has returned), then gives the
    /// final report, from which the caller writes the files.
    pub(crate) async fn drain(
        mut self,
        mut events: mpsc::UnboundedReceiver<RunEvent>,
    ) -> RunReport {
        while let Some(event) = events.recv().await {
            self.apply(&event);
        }
        if let Some(lines) = &mut self.lines {
            let _ = lines.flush();
        }
        if let Some(progress) = &mut self.progress {
            progress.finish();
        }
        self.report()
    }

    /// [`Reporters::drain`] on its own task.
    pub fn spawn(
        self,
        events: mpsc::UnboundedReceiver<RunEvent>,
    ) -> tokio::task::JoinHandle<RunReport> {
        tokio::spawn(self.drain(events))
    }
}

/// Where the end-of-run files go. Relative paths resolve against the current directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportPaths {
    /// `--report`: the JSON run report.
    pub report: Option<PathBuf>,
    /// `--junit`: JUnit XML.
    pub junit: Option<PathBuf>,
    /// `--summary`: Markdown.
    pub summary: Option<PathBuf>,
    /// `GITHUB_STEP_SUMMARY`: with `--summary`, the Markdown is appended there too.
    pub github_step_summary: Option<PathBuf>,
}

impl ReportPaths {
    /// The paths from the command line, plus `GITHUB_STEP_SUMMARY` when it is set and not
    /// empty.
    pub fn new(report: Option<PathBuf>, junit: Option<PathBuf>, summary: Option<PathBuf>) -> Self {
        ReportPaths {
            report,
            junit,
            summary,
            github_step_summary: std::env::var_os("GITHUB_STEP_SUMMARY")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }

    /// The files that will be written, as `(kind, path)`: `report`, `junit`, `summary`.
    pub fn files(&self) -> Vec<(&'static str, &Path)> {
        [
            ("report", &self.report),
            ("junit", &self.junit),
            ("summary", &self.summary),
        ]
        .into_iter()
        .filter_map(|(k, p)| p.as_deref().map(|p| (k, p)))
        .collect()
    }

    /// Writes every requested file from the one report, each atomically. A file that cannot
    /// be written does not stop the others; the errors come back in order.
    pub fn write_all(&self, report: &RunReport) -> Vec<ReportError> {
        let mut errors = Vec::new();
        if let Some(path) = &self.report
            && let Err(e) = report.write_json(path)
        {
            errors.push(e);
        }
        if let Some(path) = &self.junit {
            match junit::write(report, path) {
                Ok(()) => {}
                Err(junit::JunitError::Write(e)) => errors.push(e),
                Err(junit::JunitError::Serialize(e)) => errors.push(ReportError::Io {
                    path: path.clone(),
                    source: std::io::Error::other(e.to_string()),
                }),
            }
        }
        // The Markdown is written last and names only the files that were written.
        let files: Vec<(&str, &Path)> = self
            .files()
            .into_iter()
            .filter(|(kind, path)| {
                *kind == "summary"
                    || !errors
                        .iter()
                        .any(|e| matches!(e, ReportError::Io { path: p, .. } if p == path))
            })
            .collect();
        if self.summary.is_some()
            && let Err(e) = markdown::write(
                report,
                &files,
                self.summary.as_deref(),
                self.github_step_summary.as_deref(),
            )
        {
            errors.push(e);
        }
        errors
    }
}

/// A remote status word for people. Power BI reports a running dataset refresh as `Unknown`
/// (its refresh history's word for "not finished yet"): shown as `in progress`, and as
/// `in progress (Unknown)` with `-v` (`raw`), which keeps the service's word for searches.
pub(crate) fn status_for_people(status: &str, raw: bool) -> String {
    match status {
        "Unknown" if raw => "in progress (Unknown)".into(),
        "Unknown" => "in progress".into(),
        other => other.to_string(),
    }
}

/// A duration stamped on an event, in seconds cut to whole milliseconds: the precision of
/// the timestamps the reports show, so a duration equals the difference of its two times.
pub fn stamped_secs(d: std::time::Duration) -> f64 {
    d.as_millis() as f64 / 1000.0
}

/// A duration for people: `850ms`, `12.3s`, `4m 05s`, `1h 02m`.
pub(crate) fn format_secs(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "-".into();
    }
    if secs < 1.0 {
        return format!("{}ms", (secs * 1000.0).round() as u64);
    }
    if secs < 60.0 {
        return format!("{secs:.1}s");
    }
    let total = secs.round() as u64;
    if total < 3600 {
        return format!("{}m {:02}s", total / 60, total % 60);
    }
    format!("{}h {:02}m", total / 3600, (total % 3600) / 60)
}

/// `30m 00s (stated)`, `22m 30s (1.5 × usual 15m 00s over 5 runs in the service)`, or
/// `unknown (auto: 1 of 3 past runs needed)`.
pub(crate) fn describe_expected(e: &crate::event::Expected) -> String {
    use crate::event::{AUTO_MARGIN, AUTO_MIN_RUNS, ExpectedFrom};
    match (e.secs, e.from) {
        (Some(s), ExpectedFrom::Stated) => format!("{} (stated)", format_secs(s)),
        (Some(s), from) => {
            let place = if from == ExpectedFrom::History {
                "past runs"
            } else {
                "runs in the service"
            };
            format!(
                "{} ({AUTO_MARGIN} × usual {} over {} {place})",
                format_secs(s),
                format_secs(e.usual_secs.unwrap_or_default()),
                e.runs.unwrap_or_default()
            )
        }
        (None, _) => format!(
            "unknown (auto: {} of {AUTO_MIN_RUNS} past runs needed)",
            e.runs.unwrap_or_default()
        ),
    }
}

/// [`describe_expected`] of a step as `RunStarted` described it (`?` without one).
pub(crate) fn expected_of(info: Option<&crate::event::StepInfo>) -> String {
    info.and_then(|s| s.expected.as_ref())
        .map(describe_expected)
        .unwrap_or_else(|| "?".into())
}

/// The flag of a step that took `took` seconds past its expected duration:
/// `overran: took 48m 12s, expected at most 30m 00s (stated)`.
pub(crate) fn overran_message(e: &crate::event::Expected, took: f64) -> String {
    format!(
        "overran: took {}, expected at most {}",
        format_secs(took),
        describe_expected(e)
    )
}

#[cfg(test)]
mod tests {
    use super::format_secs;

    #[test]
    fn durations_read_well() {
        assert_eq!(format_secs(0.85), "850ms");
        assert_eq!(format_secs(12.34), "12.3s");
        assert_eq!(format_secs(245.0), "4m 05s");
        assert_eq!(format_secs(3720.0), "1h 02m");
        assert_eq!(format_secs(f64::NAN), "-");
    }
}

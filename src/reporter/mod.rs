//! Reporters: pure consumers of the [`RunEvent`] stream. None of them calls back into the
//! engine, so what the terminal shows and what the files say are folds of the same events.
//!
//! - [`report`]: the `--report` JSON ([`report::RunReport`]).
//! - [`lines`]: plain log lines, one per state change (stderr when not a terminal).
//! - [`summary`]: the final summary table.
//! - [`Reporters`]: drains the event channel and feeds every enabled reporter.

pub mod lines;
pub mod report;
pub mod summary;

use std::io::Write;

use tokio::sync::mpsc;

use crate::event::RunEvent;
use lines::LineReporter;
use report::{ReportBuilder, RunReport};

/// The reporters of one run, fed from the engine's event channel.
pub struct Reporters {
    report: ReportBuilder,
    lines: Option<LineReporter<Box<dyn Write + Send>>>,
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
        }
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
    }

    /// The report as the events so far make it (see [`ReportBuilder::finish`]).
    pub fn report(&self) -> RunReport {
        self.report.finish()
    }

    /// Drains `events` until the channel closes (the engine has returned), then gives the
    /// final report, from which the caller writes the files.
    pub async fn drain(mut self, mut events: mpsc::UnboundedReceiver<RunEvent>) -> RunReport {
        while let Some(event) = events.recv().await {
            self.apply(&event);
        }
        if let Some(lines) = &mut self.lines {
            let _ = lines.flush();
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

/// A duration for people: `850ms`, `12.3s`, `4m 05s`, `1h 02m`.
pub fn format_secs(secs: f64) -> String {
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

//! Live progress on a terminal (indicatif): an overall bar (done / total, elapsed, ETA), one
//! line per running step (type, resource, remote status, attempt, elapsed), and one permanent
//! line per finished step (`✓` / `✗` / `-`, duration, the error or reason).
//!
//! Split in two so the text can be tested without a terminal: [`ProgressModel`] folds events
//! into [`Change`]s (pure, deterministic: durations come from event timestamps), and
//! [`ProgressReporter`] plays those changes on a `MultiProgress`. A non-terminal never gets
//! this display (see [`enabled`]): the plain [`super::lines`] take over there.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::format_secs;
use crate::cli::ProgressMode;
use crate::event::{RunEvent, RunEventKind, StepInfo, StepStatus};
use crate::executor::AttemptUpdate;
use crate::job::model::StepId;

/// Whether the live display is used: `never` never; `always` whenever stderr is a terminal;
/// `auto` when stderr is a terminal that can move its cursor (`TERM` is not `dumb`).
pub fn enabled(mode: ProgressMode, stderr_is_terminal: bool, term: Option<&str>) -> bool {
    match mode {
        ProgressMode::Never => false,
        ProgressMode::Always => stderr_is_terminal,
        ProgressMode::Auto => stderr_is_terminal && term != Some("dumb"),
    }
}

/// One thing the live display does after an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The run began with this many selected steps.
    Start { total: u64 },
    /// Steps done so far and the tally shown beside the overall bar (`2 ✓ · 1 ✗`).
    Overall { done: u64, tally: String },
    /// Show or update a running step's line; `since` is the start of its first attempt.
    Show {
        step: StepId,
        line: String,
        since: DateTime<Utc>,
    },
    /// The step is no longer running: remove its line.
    Hide { step: StepId },
    /// A permanent line above the bars.
    Print(String),
}

/// The running state of one step, as the display knows it.
#[derive(Debug, Clone)]
struct Running {
    attempt: u32,
    remote: String,
    since: DateTime<Utc>,
}

/// Pure fold of events into display [`Change`]s.
#[derive(Debug, Default)]
pub struct ProgressModel {
    steps: HashMap<StepId, StepInfo>,
    done: u64,
    tally: BTreeMap<StepStatus, u32>,
    running: HashMap<StepId, Running>,
    /// Start of each step's first attempt, for durations.
    first_start: HashMap<StepId, DateTime<Utc>>,
}

impl ProgressModel {
    /// The changes one event makes.
    pub fn apply(&mut self, event: &RunEvent) -> Vec<Change> {
        match &event.kind {
            RunEventKind::RunStarted { steps, .. } => {
                self.steps = steps.iter().map(|s| (s.id.clone(), s.clone())).collect();
                vec![
                    Change::Start {
                        total: steps.len() as u64,
                    },
                    self.overall(),
                ]
            }
            RunEventKind::AttemptStarted { step, attempt } => {
                let since = *self.first_start.entry(step.clone()).or_insert(event.at);
                self.running.insert(
                    step.clone(),
                    Running {
                        attempt: *attempt,
                        remote: "starting".into(),
                        since,
                    },
                );
                self.show(step).into_iter().collect()
            }
            RunEventKind::StepProgress { step, update, .. } => {
                let text = remote_text(update);
                match self.running.get_mut(step) {
                    Some(r) if !text.is_empty() && r.remote != text => {
                        r.remote = text;
                        self.show(step).into_iter().collect()
                    }
                    _ => Vec::new(),
                }
            }
            RunEventKind::AttemptFinished {
                step,
                attempt,
                status,
                error,
                retry_in: Some(wait),
                ..
            } => {
                let wait = humantime::format_duration(Duration::from_secs(wait.as_secs()));
                let why = error
                    .as_deref()
                    .map(|e| format!(": {}", first_line(e)))
                    .unwrap_or_default();
                let mut changes = vec![Change::Print(format!(
                    "↻ {step} attempt {attempt} {status}{why}; retry in {wait}"
                ))];
                if let Some(r) = self.running.get_mut(step) {
                    r.remote = format!("{status}, retry in {wait}");
                    changes.extend(self.show(step));
                }
                changes
            }
            RunEventKind::AttemptFinished { .. } => Vec::new(),
            RunEventKind::StepFinished {
                step,
                status,
                reason,
                attempts,
                adopted,
            } => {
                let was_running = self.running.remove(step).is_some();
                self.done += 1;
                *self.tally.entry(*status).or_default() += 1;
                let mut changes = Vec::new();
                if was_running {
                    changes.push(Change::Hide { step: step.clone() });
                }
                let duration = self
                    .first_start
                    .get(step)
                    .map(|s| (event.at - *s).num_milliseconds().max(0) as f64 / 1000.0);
                changes.push(Change::Print(
                    self.finished_line(step, *status, reason, *attempts, *adopted, duration),
                ));
                changes.push(self.overall());
                changes
            }
            RunEventKind::Stopping { reason } => {
                vec![Change::Print(format!("■ stopping: {}", first_line(reason)))]
            }
            RunEventKind::RunFinished { .. } => {
                let mut ids: Vec<StepId> = self.running.keys().cloned().collect();
                ids.sort();
                self.running.clear();
                ids.into_iter()
                    .map(|step| Change::Hide { step })
                    .chain([self.overall()])
                    .collect()
            }
        }
    }

    fn overall(&self) -> Change {
        let tally = self
            .tally
            .iter()
            .map(|(s, n)| format!("{n} {}", symbol(*s)))
            .collect::<Vec<_>>()
            .join(" · ");
        Change::Overall {
            done: self.done,
            tally,
        }
    }

    fn show(&self, step: &StepId) -> Option<Change> {
        let r = self.running.get(step)?;
        Some(Change::Show {
            step: step.clone(),
            // What changes first, the resource last: a narrow terminal cuts the end.
            line: format!(
                "{step} · {} · attempt {} · {}",
                r.remote,
                r.attempt,
                self.what(step)
            ),
            since: r.since,
        })
    }

    /// `dataset Data Admin / ORDER_LIST`, the resource shortened to stay readable.
    fn what(&self, step: &StepId) -> String {
        match self.steps.get(step) {
            Some(info) => format!("{} {}", info.step_type, shorten(&info.resource, 48)),
            None => "?".into(),
        }
    }

    fn finished_line(
        &self,
        step: &StepId,
        status: StepStatus,
        reason: &Option<String>,
        attempts: u32,
        adopted: bool,
        duration: Option<f64>,
    ) -> String {
        let mut line = format!("{} {step} ({}) {status}", symbol(status), self.what(step));
        if let Some(d) = duration {
            line.push_str(&format!(" in {}", format_secs(d)));
        }
        if attempts > 1 {
            line.push_str(&format!(" after {attempts} attempts"));
        }
        if adopted {
            line.push_str(" (adopted a refresh already running)");
        }
        if let Some(r) = reason {
            line.push_str(&format!(": {}", first_line(r)));
        }
        line
    }
}

/// The live display drawing on stderr, if any, so log records can be written around it.
static ON_STDERR: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// The writer for log records on stderr (give `log_writer` to tracing-subscriber's
/// `with_writer`). While the live display is drawn it lifts the bars, writes the record and
/// redraws them, so a warning never lands in the middle of a bar; otherwise it writes as is.
pub fn log_writer() -> LogWriter {
    LogWriter(Vec::new())
}

/// One log record, written to stderr when dropped (see [`log_writer`]).
pub struct LogWriter(Vec<u8>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let write = || {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(&self.0);
            let _ = err.flush();
        };
        // Clone out of the lock: the display is never drawn while the lock is held.
        let display = ON_STDERR.lock().ok().and_then(|d| d.clone());
        match display {
            Some(multi) => multi.suspend(write),
            None => write(),
        }
    }
}

/// The live display on a terminal.
pub struct ProgressReporter {
    model: ProgressModel,
    multi: MultiProgress,
    overall: Option<ProgressBar>,
    /// Lines of running steps that have a bar, in start order.
    bars: IndexMap<StepId, ProgressBar>,
    /// Running steps past [`MAX_RUNNING_LINES`]: shown as one "and N more" line until a
    /// line frees up.
    waiting: IndexMap<StepId, (String, DateTime<Utc>)>,
    more: Option<ProgressBar>,
    /// Redraw on a timer (elapsed times and spinners move); off in tests.
    steady_tick: bool,
}

/// At most this many running steps get their own line; the rest are counted on one line,
/// so a wide DAG does not scroll the terminal.
pub const MAX_RUNNING_LINES: usize = 16;

const TICK: Duration = Duration::from_millis(120);

impl ProgressReporter {
    /// The display on stderr; log records written through [`log_writer`] go around it until
    /// [`ProgressReporter::finish`].
    pub fn stderr() -> Self {
        let reporter = Self::with_draw_target(ProgressDrawTarget::stderr(), true);
        if let Ok(mut slot) = ON_STDERR.lock() {
            *slot = Some(reporter.multi.clone());
        }
        reporter
    }

    /// The display on any indicatif target (tests use an in-memory terminal).
    pub fn with_draw_target(target: ProgressDrawTarget, steady_tick: bool) -> Self {
        ProgressReporter {
            model: ProgressModel::default(),
            multi: MultiProgress::with_draw_target(target),
            overall: None,
            bars: IndexMap::new(),
            waiting: IndexMap::new(),
            more: None,
            steady_tick,
        }
    }

    /// Plays one event. A broken terminal only loses lines, never the run.
    pub fn apply(&mut self, event: &RunEvent) {
        for change in self.model.apply(event) {
            self.play(change);
        }
    }

    fn play(&mut self, change: Change) {
        match change {
            Change::Start { total } => {
                let bar = ProgressBar::new(total).with_style(overall_style());
                let bar = self.multi.insert(0, bar);
                if self.steady_tick {
                    bar.enable_steady_tick(TICK);
                }
                self.overall = Some(bar);
            }
            Change::Overall { done, tally } => {
                if let Some(bar) = &self.overall {
                    bar.set_position(done);
                    if !tally.is_empty() {
                        bar.set_message(format!(" · {tally}"));
                    }
                }
            }
            Change::Show { step, line, since } => {
                if let Some(bar) = self.bars.get(&step) {
                    bar.set_message(line);
                } else if self.bars.len() < MAX_RUNNING_LINES {
                    self.add_bar(step, line, since);
                } else {
                    self.waiting.insert(step, (line, since));
                    self.update_more();
                }
            }
            Change::Hide { step } => {
                if let Some(bar) = self.bars.shift_remove(&step) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                } else {
                    self.waiting.shift_remove(&step);
                }
                if self.bars.len() < MAX_RUNNING_LINES
                    && let Some((next, (line, since))) = self.waiting.shift_remove_index(0)
                {
                    self.add_bar(next, line, since);
                }
                self.update_more();
            }
            Change::Print(line) => {
                let _ = self.multi.println(line);
            }
        }
    }

    fn add_bar(&mut self, step: StepId, line: String, since: DateTime<Utc>) {
        let elapsed = (Utc::now() - since).to_std().unwrap_or_default();
        let bar = ProgressBar::new_spinner()
            .with_style(step_style())
            .with_message(line)
            .with_elapsed(elapsed);
        let bar = match &self.more {
            Some(more) => self.multi.insert_before(more, bar),
            None => self.multi.add(bar),
        };
        if self.steady_tick {
            bar.enable_steady_tick(TICK);
        } else {
            bar.tick();
        }
        self.bars.insert(step, bar);
    }

    fn update_more(&mut self) {
        match (self.waiting.len(), &self.more) {
            (0, Some(more)) => {
                more.finish_and_clear();
                self.multi.remove(more);
                self.more = None;
            }
            (0, None) => {}
            (n, Some(more)) => more.set_message(format!("… and {n} more running")),
            (n, None) => {
                let bar = ProgressBar::new_spinner()
                    .with_style(more_style())
                    .with_message(format!("… and {n} more running"));
                let bar = self.multi.add(bar);
                bar.tick();
                self.more = Some(bar);
            }
        }
    }

    /// Clears the bars (the permanent lines stay); call when the stream ends.
    pub fn finish(&mut self) {
        for (_, bar) in self.bars.drain(..) {
            bar.finish_and_clear();
        }
        if let Some(more) = self.more.take() {
            more.finish_and_clear();
        }
        if let Some(overall) = self.overall.take() {
            overall.finish_and_clear();
        }
        let _ = self.multi.clear();
        if let Ok(mut slot) = ON_STDERR.lock() {
            *slot = None;
        }
    }
}

fn overall_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30.cyan/blue}] {pos}/{len} steps · ETA {eta_known}{wide_msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .with_key("eta_known", eta_known)
    .progress_chars("=> ")
}

/// indicatif's ETA (from the rate of finished steps), or `-` before any step has finished,
/// where indicatif would claim `0s`.
fn eta_known(state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write) {
    let _ = if state.pos() == 0 {
        w.write_str("-")
    } else {
        write!(w, "{:#}", indicatif::HumanDuration(state.eta()))
    };
}

fn step_style() -> ProgressStyle {
    ProgressStyle::with_template("  {spinner:.cyan} {wide_msg} {elapsed:>6}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn more_style() -> ProgressStyle {
    ProgressStyle::with_template("    {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// `✓` succeeded, `✗` failed or timed out, `-` not run (skipped, upstream_failed, cancelled).
fn symbol(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Succeeded => "✓",
        StepStatus::Failed | StepStatus::TimedOut => "✗",
        StepStatus::Skipped | StepStatus::UpstreamFailed | StepStatus::Cancelled => "-",
    }
}

/// `InProgress`, `Running 40 %`, or the executor's note when there is no status word.
fn remote_text(update: &AttemptUpdate) -> String {
    match (&update.remote_status, update.percent, &update.note) {
        (Some(s), Some(p), _) => format!("{s} {p} %"),
        (Some(s), None, _) => s.clone(),
        (None, _, Some(note)) => first_line(note).to_string(),
        (None, _, None) => String::new(),
    }
}

fn first_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_only_on_a_terminal() {
        assert!(enabled(ProgressMode::Auto, true, Some("xterm-256color")));
        assert!(!enabled(ProgressMode::Auto, true, Some("dumb")));
        assert!(!enabled(ProgressMode::Auto, false, Some("xterm")));
        assert!(enabled(ProgressMode::Always, true, Some("dumb")));
        assert!(!enabled(ProgressMode::Always, false, None));
        assert!(!enabled(ProgressMode::Never, true, Some("xterm")));
    }

    #[test]
    fn remote_status_reads_like_the_service() {
        let export = AttemptUpdate {
            remote_status: Some("Running".into()),
            percent: Some(40),
            ..AttemptUpdate::default()
        };
        assert_eq!(remote_text(&export), "Running 40 %");
        let waiting = AttemptUpdate {
            note: Some("waiting for a running refresh to end\nsecond line".into()),
            ..AttemptUpdate::default()
        };
        assert_eq!(
            remote_text(&waiting),
            "waiting for a running refresh to end"
        );
        assert_eq!(shorten("abcdef", 4), "abc…");
    }
}

//! Live progress on a terminal (indicatif): an overall bar (done / total, elapsed, ETA), one
//! line per running step (type, resource, remote status, attempt, elapsed), and one permanent
//! line per finished step (`✓` / `✗` / `-`, duration, the error or reason).
//!
//! Split in two so the text can be tested without a terminal: [`ProgressModel`] folds events
//! into [`Change`]s (pure, deterministic: durations come from event timestamps), and
//! [`ProgressReporter`] plays those changes on a `MultiProgress`. A non-terminal never gets
//! this display (see [`enabled`]): the plain [`super::lines`] take over there.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{format_secs, stamped_secs};
use crate::cli::ProgressMode;
use crate::event::{AttemptUpdate, Counts, RunEvent, RunEventKind, StepInfo, StepStatus};
use crate::job::model::StepId;

/// Whether the live display is used: `never` never; `always` whenever stderr is a terminal;
/// `auto` when stderr is a terminal that can move its cursor (`TERM` is not `dumb`).
pub(crate) fn enabled(mode: ProgressMode, stderr_is_terminal: bool, term: Option<&str>) -> bool {
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
    /// Steps done so far and the tally shown beside the overall bar (`2 ✓ · 1 ✗`);
    /// `eta` is false while the time left cannot be estimated (nothing finished yet, or a
    /// step waits out a retry backoff of its own length): the ETA then shows `-`.
    Overall { done: u64, tally: String, eta: bool },
    /// Show or update a running step's line; `since` is the start of its first attempt;
    /// `retry_at` is when its next attempt starts, while it waits out a retry backoff (the
    /// line counts down to it).
    Show {
        step: StepId,
        line: String,
        since: DateTime<Utc>,
        retry_at: Option<DateTime<Utc>>,
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
    /// While waiting out a retry backoff: when the next attempt starts.
    retry_at: Option<DateTime<Utc>>,
}

/// Pure fold of events into display [`Change`]s.
#[derive(Debug, Default)]
pub struct ProgressModel {
    steps: HashMap<StepId, StepInfo>,
    /// Final statuses so far, as the last event stamped them.
    counts: Counts,
    running: HashMap<StepId, Running>,
    /// Start of each step's first attempt: where a running step's clock starts.
    first_start: HashMap<StepId, DateTime<Utc>>,
    /// `-v`: the service's status words beside the readable ones.
    raw_status: bool,
}

impl ProgressModel {
    /// A model; `raw_status` (`-v`) shows the service's own status words too.
    pub fn new(raw_status: bool) -> Self {
        ProgressModel {
            raw_status,
            ..ProgressModel::default()
        }
    }

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
                        retry_at: None,
                    },
                );
                let mut changes: Vec<Change> = self.show(step).into_iter().collect();
                if *attempt > 1 {
                    // A backoff ended: the ETA may be known again.
                    changes.push(self.overall());
                }
                changes
            }
            RunEventKind::StepProgress { step, update, .. } => {
                let text = remote_text(update, self.raw_status);
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
                retry_in: Some(retry_in),
                ..
            } => {
                let wait = humantime::format_duration(Duration::from_secs(retry_in.as_secs()));
                let why = error
                    .as_deref()
                    .map(|e| format!(": {}", first_line(e)))
                    .unwrap_or_default();
                let mut changes = vec![Change::Print(format!(
                    "↻ {step} attempt {attempt} {status}{why}; retry in {wait}"
                ))];
                if let Some(r) = self.running.get_mut(step) {
                    r.remote = status.to_string();
                    r.retry_at = chrono::Duration::from_std(*retry_in)
                        .ok()
                        .map(|d| event.at + d);
                    changes.extend(self.show(step));
                    changes.push(self.overall());
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
                duration,
                counts,
                ..
            } => {
                let was_running = self.running.remove(step).is_some();
                self.counts = *counts;
                let mut changes = Vec::new();
                if was_running {
                    changes.push(Change::Hide { step: step.clone() });
                }
                let duration = duration.map(stamped_secs);
                changes.push(Change::Print(
                    self.finished_line(step, *status, reason, *attempts, *adopted, duration),
                ));
                changes.push(self.overall());
                changes
            }
            RunEventKind::Stopping { reason } => {
                vec![Change::Print(format!("■ stopping: {}", first_line(reason)))]
            }
            RunEventKind::RunFinished { counts, .. } => {
                self.counts = *counts;
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
        let tally = StepStatus::ALL
            .iter()
            .filter(|s| self.counts.get(**s) > 0)
            .map(|s| format!("{} {}", self.counts.get(*s), symbol(*s)))
            .collect::<Vec<_>>()
            .join(" · ");
        Change::Overall {
            done: u64::from(self.counts.total()),
            tally,
            eta: self.counts.total() > 0 && self.running.values().all(|r| r.retry_at.is_none()),
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
            retry_at: r.retry_at,
        })
    }

    /// `dataset Data Admin / ORDER_LIST`, the resource shortened to stay readable.
    fn what(&self, step: &StepId) -> String {
        match self.steps.get(step) {
            Some(info) => format!(
                "{} {}",
                info.step_type,
                crate::term::shorten(&info.resource, 48)
            ),
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
pub(crate) fn log_writer() -> LogWriter {
    LogWriter(Vec::new())
}

/// One log record, written to stderr when dropped (see [`log_writer`]).
pub(crate) struct LogWriter(Vec<u8>);

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

/// Clears the live display for good before a last line is printed and the process exits (a
/// second Ctrl-C): the line then starts on a clean terminal, not under a stale frame.
pub(crate) fn clear_for_exit() {
    let display = ON_STDERR.lock().ok().and_then(|mut d| d.take());
    if let Some(multi) = display {
        let _ = multi.clear();
        multi.set_draw_target(ProgressDrawTarget::hidden());
    }
}

/// A running step's line waiting for room: text, start, next attempt (see [`Change::Show`]).
type WaitingLine = (String, DateTime<Utc>, Option<DateTime<Utc>>);

/// The live display on a terminal.
pub struct ProgressReporter {
    model: ProgressModel,
    multi: MultiProgress,
    overall: Option<ProgressBar>,
    /// Lines of running steps that have a bar, in start order.
    bars: IndexMap<StepId, ProgressBar>,
    /// Running steps past [`MAX_RUNNING_LINES`]: shown as one "and N more" line until a
    /// line frees up.
    waiting: IndexMap<StepId, WaitingLine>,
    more: Option<ProgressBar>,
    /// Redraw on a timer (elapsed times and spinners move); off in tests.
    steady_tick: bool,
    /// Whether the overall bar shows an ETA (see [`Change::Overall`]).
    eta: bool,
}

/// At most this many running steps get their own line; the rest are counted on one line,
/// so a wide DAG does not scroll the terminal.
pub const MAX_RUNNING_LINES: usize = 16;

const TICK: Duration = Duration::from_millis(120);

impl ProgressReporter {
    /// The display on stderr; log records written through [`log_writer`] go around it until
    /// [`ProgressReporter::finish`].
    pub fn stderr(raw_status: bool) -> Self {
        let mut reporter = Self::with_draw_target(ProgressDrawTarget::stderr(), true);
        reporter.model = ProgressModel::new(raw_status);
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
            eta: false,
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
                let bar = ProgressBar::new(total).with_style(overall_style(self.eta));
                let bar = self.multi.insert(0, bar);
                if self.steady_tick {
                    bar.enable_steady_tick(TICK);
                }
                self.overall = Some(bar);
            }
            Change::Overall { done, tally, eta } => {
                if let Some(bar) = &self.overall {
                    if eta != self.eta {
                        bar.set_style(overall_style(eta));
                        self.eta = eta;
                    }
                    bar.set_position(done);
                    if !tally.is_empty() {
                        bar.set_message(format!(" · {tally}"));
                    }
                }
            }
            Change::Show {
                step,
                line,
                since,
                retry_at,
            } => {
                if let Some(bar) = self.bars.get(&step) {
                    set_retry(bar, since, retry_at);
                    bar.set_message(line);
                } else if self.bars.len() < MAX_RUNNING_LINES {
                    self.add_bar(step, line, since, retry_at);
                } else {
                    self.waiting.insert(step, (line, since, retry_at));
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
                    && let Some((next, (line, since, retry_at))) =
                        self.waiting.shift_remove_index(0)
                {
                    self.add_bar(next, line, since, retry_at);
                }
                self.update_more();
            }
            Change::Print(line) => {
                let _ = self.multi.println(line);
            }
        }
    }

    fn add_bar(
        &mut self,
        step: StepId,
        line: String,
        since: DateTime<Utc>,
        retry_at: Option<DateTime<Utc>>,
    ) {
        let elapsed = (Utc::now() - since).to_std().unwrap_or_default();
        let bar = ProgressBar::new_spinner()
            .with_style(step_style())
            .with_message(line)
            .with_elapsed(elapsed);
        set_retry(&bar, since, retry_at);
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

/// The overall bar; `eta` false shows `ETA -` (see [`Change::Overall`]).
fn overall_style(eta: bool) -> ProgressStyle {
    let template = if eta {
        "{elapsed_precise} [{bar:30.cyan/blue}] {pos}/{len} steps · ETA {eta_mean}{wide_msg}"
    } else {
        "{elapsed_precise} [{bar:30.cyan/blue}] {pos}/{len} steps · ETA -{wide_msg}"
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("eta_mean", eta_mean)
        .progress_chars("=> ")
}

/// The time left at the mean pace of the steps finished so far (elapsed / done × left), `-`
/// before any step has finished. Not indicatif's own estimate: that one decays while nothing
/// finishes (a long refresh, a retry backoff) and climbs to days.
fn eta_mean(state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write) {
    let _ = w.write_str(&mean_eta(state.elapsed(), state.pos(), state.len()));
}

/// [`eta_mean`]'s text: `-` when nothing finished or the total is unknown.
fn mean_eta(elapsed: Duration, done: u64, total: Option<u64>) -> String {
    match total {
        Some(total) if done > 0 => {
            let left = total.saturating_sub(done);
            let secs = elapsed.as_secs_f64() / done as f64 * left as f64;
            format!(
                "{:#}",
                indicatif::HumanDuration(Duration::from_secs_f64(secs.min(1e9)))
            )
        }
        _ => "-".into(),
    }
}

fn step_style() -> ProgressStyle {
    ProgressStyle::with_template("  {spinner:.cyan} {wide_msg} {elapsed:>6}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// A running step waiting out a retry backoff: the line counts down to the next attempt.
/// The bar's length holds the deadline as milliseconds of the bar's own elapsed time (the
/// bar's clock starts at the step's first attempt), so the template counts down on every
/// tick without a timer of ours.
fn retry_style() -> ProgressStyle {
    ProgressStyle::with_template("  {spinner:.cyan} {wide_msg} retry in {retry_in:>4} {elapsed:>6}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .with_key("retry_in", retry_in)
}

fn retry_in(state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write) {
    let deadline = Duration::from_millis(state.len().unwrap_or(0));
    let _ = w.write_str(&countdown(deadline.saturating_sub(state.elapsed())));
}

/// `23s`, `4m 05s`; `now` at zero.
fn countdown(left: Duration) -> String {
    let secs = left.as_secs_f64().ceil() as u64;
    match secs {
        0 => "now".into(),
        s if s < 60 => format!("{s}s"),
        s => format!("{}m {:02}s", s / 60, s % 60),
    }
}

/// Switches a step's bar between its running and its backoff look.
fn set_retry(bar: &ProgressBar, since: DateTime<Utc>, retry_at: Option<DateTime<Utc>>) {
    match retry_at {
        Some(at) => {
            let deadline = (at - since).num_milliseconds().max(0) as u64;
            bar.set_length(deadline);
            bar.set_style(retry_style());
        }
        None => {
            bar.unset_length();
            bar.set_style(step_style());
        }
    }
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
fn remote_text(update: &AttemptUpdate, raw: bool) -> String {
    let status = update
        .remote_status
        .as_deref()
        .map(|s| super::status_for_people(s, raw));
    match (status, update.percent, &update.note) {
        (Some(s), Some(p), _) => format!("{s} {p} %"),
        (Some(s), None, _) => s,
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

    /// An in-memory terminal recording what indicatif does to it.
    #[derive(Debug, Clone, Default)]
    struct Screen(std::sync::Arc<Mutex<Vec<String>>>);

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            80
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push(format!("write {s}"));
            Ok(())
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push(format!("write {s}"));
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            self.0.lock().unwrap().push("clear".into());
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_last_line_before_exit_is_not_printed_under_a_stale_frame() {
        let screen = Screen::default();
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::term_like(Box::new(
            screen.clone(),
        )));
        let bar = multi.add(ProgressBar::new_spinner().with_message("model · in progress"));
        bar.tick();
        *ON_STDERR.lock().unwrap() = Some(multi);
        let drawn = screen.0.lock().unwrap().len();
        assert!(drawn > 0);

        clear_for_exit();
        let after_clear = screen.0.lock().unwrap().clone();
        assert!(
            after_clear[drawn..].iter().any(|e| e == "clear"),
            "the frame is cleared: {after_clear:?}"
        );
        assert!(ON_STDERR.lock().unwrap().is_none());
        // The bar's own ticks (a steady tick in a real run) draw nothing any more.
        bar.set_message("redrawn");
        bar.tick();
        assert_eq!(screen.0.lock().unwrap().len(), after_clear.len());
    }

    #[test]
    fn eta_is_the_mean_pace_and_unknown_before_a_step_finishes() {
        let min = Duration::from_secs(60);
        assert_eq!(mean_eta(min, 0, Some(4)), "-");
        assert_eq!(mean_eta(min, 1, Some(4)), "3m");
        assert_eq!(mean_eta(min, 2, Some(4)), "60s");
        // Nothing finishing for hours does not make the estimate climb past the pace.
        assert_eq!(mean_eta(min * 60, 3, Some(4)), "20m");
    }

    #[test]
    fn a_backoff_counts_down() {
        assert_eq!(countdown(Duration::from_millis(29_200)), "30s");
        assert_eq!(countdown(Duration::from_secs(245)), "4m 05s");
        assert_eq!(countdown(Duration::ZERO), "now");
    }

    #[test]
    fn remote_status_reads_like_the_service() {
        let export = AttemptUpdate {
            remote_status: Some("Running".into()),
            percent: Some(40),
            ..AttemptUpdate::default()
        };
        assert_eq!(remote_text(&export, false), "Running 40 %");
        let refresh = AttemptUpdate {
            remote_status: Some("Unknown".into()),
            ..AttemptUpdate::default()
        };
        assert_eq!(remote_text(&refresh, false), "in progress");
        assert_eq!(remote_text(&refresh, true), "in progress (Unknown)");
        let waiting = AttemptUpdate {
            note: Some("waiting for a running refresh to end\nsecond line".into()),
            ..AttemptUpdate::default()
        };
        assert_eq!(
            remote_text(&waiting, false),
            "waiting for a running refresh to end"
        );
    }
}

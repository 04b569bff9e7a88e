//! The half of the live display that draws: [`Change`]s played on indicatif bars.

use std::time::Duration;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::ON_STDERR;
use super::model::{Change, ProgressModel};
use crate::event::RunEvent;
use crate::job::model::StepId;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}

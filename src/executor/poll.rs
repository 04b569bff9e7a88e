//! The polling schedule shared by every executor.
//!
//! The pause before the next status check is 10 % of the time polled so far, at least
//! [`FIRST_PAUSE`] and at most the step's `poll_interval` (no hidden floor: a
//! `poll_interval` under one second is used as is), and never shorter than a `Retry-After`
//! the service sent. So completion is noticed within max(1 s, 10 % of the refresh's
//! duration) until the pauses reach `poll_interval`; from then on the poller behaves like a
//! fixed one. Cancellation is checked during every pause.
//!
//! When the usual duration E of the resource's runs is known (the median of its recent
//! successful runs in the service's history), the poller reads rarely until near it and
//! densely around it: its first check after the start is at [`WINDOW_START`] × E ×
//! (1 + [`WINDOW_FRACTION`]) (never later than `poll_interval` allows), then every
//! [`WINDOW_FRACTION`] of the elapsed time (at least [`FIRST_PAUSE`]) until
//! [`WINDOW_END`] × E, and from there the 10 % rule again (the estimate was wrong). A run
//! that ends within ±10 % of E is noticed within max(1 s, 2 % of its duration) with about as
//! many reads as a fixed 60 s poller (docs/performance.md), provided `poll_interval` lets the
//! pauses be that long; one that ends sooner is noticed at the first check.

use std::time::Duration;

use tokio::time::Instant;

use super::Cancel;

/// The first pause, and the shortest one while `poll_interval` allows it.
pub(crate) const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// The share of the elapsed polling time the next pause may take.
pub(crate) const ELAPSED_FRACTION: f64 = 0.1;
/// Where the window of likely ends starts, as a share of the expected duration.
pub(crate) const WINDOW_START: f64 = 0.9;
/// Where it ends.
pub(crate) const WINDOW_END: f64 = 1.1;
/// The share of the elapsed time each pause takes inside the window: the lag bound.
pub(crate) const WINDOW_FRACTION: f64 = 0.02;

/// The schedule of one polling loop.
#[derive(Debug, Clone)]
pub(crate) struct Poller {
    started: Instant,
    max: Duration,
    /// The usual duration of the resource's successful runs, when known.
    expected: Option<Duration>,
}

/// Polling was stopped by the attempt's cancellation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cancelled;

impl Poller {
    /// A schedule whose longest pause is `poll_interval`, counted from now.
    pub(crate) fn new(poll_interval: Duration) -> Self {
        Self::starting_at(poll_interval, Instant::now())
    }

    /// A schedule counted from `started` (the trigger time).
    pub(crate) fn starting_at(poll_interval: Duration, started: Instant) -> Self {
        Self {
            started,
            max: poll_interval,
            expected: None,
        }
    }

    /// Uses the usual duration of the resource's runs to check rarely far from it and densely
    /// around it.
    pub(crate) fn expecting(mut self, expected: Option<Duration>) -> Self {
        self.expected = expected.filter(|e| !e.is_zero());
        self
    }

    /// The pause before the next check, `elapsed` after the start.
    pub(crate) fn pause_after(&self, elapsed: Duration, retry_after: Option<Duration>) -> Duration {
        let first = FIRST_PAUSE.min(self.max);
        let dense = elapsed.mul_f64(ELAPSED_FRACTION).max(first).min(self.max);
        let pause = match self.expected {
            Some(expected) => {
                let first_in_window = expected.mul_f64(WINDOW_START * (1.0 + WINDOW_FRACTION));
                if elapsed < first_in_window {
                    // Straight to the first check of the window (poll_interval permitting).
                    (first_in_window - elapsed).max(first).min(self.max)
                } else if elapsed < expected.mul_f64(WINDOW_END) {
                    elapsed.mul_f64(WINDOW_FRACTION).max(first).min(self.max)
                } else {
                    dense
                }
            }
            None => dense,
        };
        match retry_after {
            Some(ra) => pause.max(ra),
            None => pause,
        }
    }

    /// Waits for the next check; `Err(Cancelled)` when the attempt is cancelled meanwhile.
    pub(crate) async fn wait(
        &mut self,
        cancel: &Cancel,
        retry_after: Option<Duration>,
    ) -> Result<(), Cancelled> {
        let pause = self.pause_after(self.started.elapsed(), retry_after);
        sleep_or_cancel(cancel, pause).await
    }
}

/// Sleeps `pause` unless `cancel` fires first.
pub(crate) async fn sleep_or_cancel(cancel: &Cancel, pause: Duration) -> Result<(), Cancelled> {
    if cancel.is_cancelled() {
        return Err(Cancelled);
    }
    tokio::select! {
        _ = cancel.cancelled() => Err(Cancelled),
        _ = tokio::time::sleep(pause) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn starts_at_one_second_and_grows_to_the_interval() {
        let p = Poller::new(secs(15.0));
        assert_eq!(p.pause_after(secs(0.0), None), secs(1.0));
        assert_eq!(p.pause_after(secs(9.0), None), secs(1.0));
        assert_eq!(p.pause_after(secs(60.0), None), secs(6.0));
        assert_eq!(p.pause_after(secs(600.0), None), secs(15.0));
    }

    #[test]
    fn a_short_interval_has_no_floor() {
        let p = Poller::new(secs(0.2));
        assert_eq!(p.pause_after(secs(0.0), None), secs(0.2));
        assert_eq!(p.pause_after(secs(100.0), None), secs(0.2));
    }

    #[test]
    fn retry_after_is_honoured() {
        let p = Poller::new(secs(15.0));
        assert_eq!(p.pause_after(secs(0.0), Some(secs(60.0))), secs(60.0));
        assert_eq!(p.pause_after(secs(300.0), Some(secs(2.0))), secs(15.0));
    }

    /// Detection latency stays within max(1 s, 10 %) of the duration while the pauses are
    /// under the interval; count polls for the figures in docs/executors.md.
    #[test]
    fn latency_bound_holds_for_simulated_durations() {
        let p = Poller::new(secs(15.0));
        for duration in [0.5, 3.0, 5.0, 20.0, 60.0, 140.0] {
            let mut t = 0.0;
            loop {
                t += p.pause_after(secs(t), None).as_secs_f64();
                if t >= duration {
                    break;
                }
            }
            let latency = t - duration;
            let bound = f64::max(1.0, 0.1 * duration) + 1e-9;
            assert!(latency <= bound, "duration {duration}: latency {latency}");
        }
    }

    fn simulate(p: &Poller, duration: f64) -> (u32, f64) {
        let mut t = 0.0;
        let mut polls = 0;
        loop {
            t += p.pause_after(secs(t), None).as_secs_f64();
            polls += 1;
            if t >= duration {
                return (polls, t - duration);
            }
        }
    }

    #[test]
    fn an_expected_duration_saves_checks_and_keeps_the_latency_bound() {
        let plain = Poller::new(secs(15.0));
        let informed = Poller::new(secs(15.0)).expecting(Some(secs(60.0)));
        let (plain_polls, _) = simulate(&plain, 60.0);
        for duration in [50.0, 55.0, 60.0, 65.0, 75.0] {
            let (polls, latency) = simulate(&informed, duration);
            // Inside the window max(1 s, 2 %), outside it 10 % (or the first check).
            let bound = if (54.0..=66.0).contains(&duration) {
                f64::max(1.0, 0.02 * duration)
            } else {
                0.11 * duration
            };
            assert!(latency <= bound + 1e-9, "{duration}: {latency}");
            if duration == 60.0 {
                assert!(polls * 2 < plain_polls, "{polls} vs {plain_polls}");
            }
        }
        // A refresh much quicker than usual is still noticed within poll_interval.
        let (_, latency) = simulate(&informed, 10.0);
        assert!(latency <= 15.0);
    }

    /// The goal of the estimate (issue "polls that know when to look"): a run within ±10 % of
    /// its usual duration costs at most the reads of a fixed 60 s poller and is noticed
    /// within max(1 s, 2 % of its duration), when `poll_interval` lets pauses be long.
    #[test]
    fn a_run_near_its_usual_duration_is_read_like_a_60s_poller_and_noticed_within_2_percent() {
        for expected in [600.0, 1800.0, 3600.0] {
            let p = Poller::new(secs(3600.0)).expecting(Some(secs(expected)));
            for share in [0.9, 0.95, 1.0, 1.05, 1.1] {
                let duration = expected * share;
                let (polls, latency) = simulate(&p, duration);
                let fixed_60 = (duration / 60.0).ceil() as u32;
                assert!(
                    polls <= fixed_60,
                    "E {expected} D {duration}: {polls} reads, a 60 s poller {fixed_60}"
                );
                let bound = f64::max(1.0, 0.02 * duration) + 1e-6;
                assert!(latency <= bound, "E {expected} D {duration}: lag {latency}");
            }
        }
    }

    /// Outside the window the estimate costs little: a quicker run is noticed at the first
    /// check, a much longer one falls back to the 10 % rule.
    #[test]
    fn a_run_far_from_its_usual_duration_falls_back_to_the_plain_rules() {
        let p = Poller::new(secs(15.0)).expecting(Some(secs(600.0)));
        let (_, latency) = simulate(&p, 5.0);
        assert!(latency <= 15.0, "{latency}");
        let long = Poller::new(secs(3600.0)).expecting(Some(secs(60.0)));
        assert_eq!(long.pause_after(secs(600.0), None), secs(60.0));
        assert_eq!(long.pause_after(secs(600.0), Some(secs(90.0))), secs(90.0));
    }

    #[tokio::test]
    async fn cancellation_interrupts_the_pause() {
        let cancel = Cancel::new();
        let mut p = Poller::new(secs(3600.0));
        let c2 = cancel.clone();
        let task = tokio::spawn(async move { p.wait(&c2, Some(secs(3600.0))).await });
        tokio::task::yield_now().await;
        cancel.cancel(super::super::CancelReason::Timeout);
        assert_eq!(task.await.unwrap(), Err(Cancelled));
    }
}

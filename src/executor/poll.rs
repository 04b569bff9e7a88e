//! The polling schedule shared by every executor.
//!
//! The pause before the next status check is 10 % of the time polled so far, at least
//! [`FIRST_PAUSE`] and at most the step's `poll_interval` (no hidden floor: a
//! `poll_interval` under one second is used as is), and never shorter than a `Retry-After`
//! the service sent. So completion is noticed within max(1 s, 10 % of the refresh's
//! duration) until the pauses reach `poll_interval`; from then on the poller behaves like a
//! fixed one. Cancellation is checked during every pause.
//!
//! When the duration of the last successful refresh is known (history, transactions), the
//! checks far from that expected end back off faster (50 % of the elapsed time instead of
//! 10 %) and tighten again from 80 % of it: the usual refresh is still noticed within
//! 10 % of its duration, with far fewer checks.

use std::time::Duration;

use tokio::time::Instant;

use super::Cancel;

/// The first pause, and the shortest one while `poll_interval` allows it.
pub const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// The share of the elapsed polling time the next pause may take.
pub const ELAPSED_FRACTION: f64 = 0.1;
/// The share used while far (before [`DENSE_FROM`]) from the expected end.
pub const RELAXED_FRACTION: f64 = 0.5;
/// The share of the expected duration from which checks are dense again.
pub const DENSE_FROM: f64 = 0.8;

/// The schedule of one polling loop.
#[derive(Debug, Clone)]
pub struct Poller {
    started: Instant,
    max: Duration,
    polls: u32,
    /// The duration of the last successful refresh of the same resource, when known.
    expected: Option<Duration>,
}

/// Polling was stopped by the attempt's cancellation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

impl Poller {
    /// A schedule whose longest pause is `poll_interval`, counted from now.
    pub fn new(poll_interval: Duration) -> Self {
        Self::starting_at(poll_interval, Instant::now())
    }

    /// A schedule counted from `started` (the trigger time).
    pub fn starting_at(poll_interval: Duration, started: Instant) -> Self {
        Self {
            started,
            max: poll_interval,
            polls: 0,
            expected: None,
        }
    }

    /// Uses the duration of the last successful refresh to check less often far from it.
    pub fn expecting(mut self, expected: Option<Duration>) -> Self {
        self.expected = expected.filter(|e| !e.is_zero());
        self
    }

    /// Status checks made so far.
    pub fn polls(&self) -> u32 {
        self.polls
    }

    /// The pause before the next check, `elapsed` after the start.
    pub fn pause_after(&self, elapsed: Duration, retry_after: Option<Duration>) -> Duration {
        let first = FIRST_PAUSE.min(self.max);
        let dense = elapsed.mul_f64(ELAPSED_FRACTION).max(first).min(self.max);
        let pause = match self.expected {
            Some(expected) if elapsed < expected.mul_f64(DENSE_FROM) => {
                let relaxed = elapsed.mul_f64(RELAXED_FRACTION).max(first).min(self.max);
                // Never sleep past the point where dense checks start.
                let until_dense = expected.mul_f64(DENSE_FROM) - elapsed;
                relaxed.min(until_dense.max(dense))
            }
            _ => dense,
        };
        match retry_after {
            Some(ra) => pause.max(ra),
            None => pause,
        }
    }

    /// Waits for the next check; `Err(Cancelled)` when the attempt is cancelled meanwhile.
    pub async fn wait(
        &mut self,
        cancel: &Cancel,
        retry_after: Option<Duration>,
    ) -> Result<(), Cancelled> {
        let pause = self.pause_after(self.started.elapsed(), retry_after);
        self.polls += 1;
        sleep_or_cancel(cancel, pause).await
    }
}

/// Sleeps `pause` unless `cancel` fires first.
pub async fn sleep_or_cancel(cancel: &Cancel, pause: Duration) -> Result<(), Cancelled> {
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
        for duration in [50.0, 60.0, 75.0] {
            let (polls, latency) = simulate(&informed, duration);
            assert!(latency <= 0.1 * duration + 1e-9, "{duration}: {latency}");
            if duration == 60.0 {
                assert!(polls * 2 < plain_polls, "{polls} vs {plain_polls}");
            }
        }
        // A refresh much quicker than usual is still noticed within poll_interval.
        let (_, latency) = simulate(&informed, 10.0);
        assert!(latency <= 15.0);
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

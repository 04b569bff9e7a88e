//! The polling schedule shared by every executor.
//!
//! The pause before the next status check is 10 % of the time polled so far, at least
//! [`FIRST_PAUSE`] and at most the step's `poll_interval` (no hidden floor: a
//! `poll_interval` under one second is used as is), and never shorter than a `Retry-After`
//! the service sent. So completion is noticed within max(1 s, 10 % of the refresh's
//! duration) until the pauses reach `poll_interval`; from then on the poller behaves like a
//! fixed one. Cancellation is checked during every pause.

use std::time::Duration;

use tokio::time::Instant;

use super::Cancel;

/// The first pause, and the shortest one while `poll_interval` allows it.
pub const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// The share of the elapsed polling time the next pause may take.
pub const ELAPSED_FRACTION: f64 = 0.1;

/// The schedule of one polling loop.
#[derive(Debug, Clone)]
pub struct Poller {
    started: Instant,
    max: Duration,
    polls: u32,
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
        }
    }

    /// Status checks made so far.
    pub fn polls(&self) -> u32 {
        self.polls
    }

    /// The pause before the next check, `elapsed` after the start.
    pub fn pause_after(&self, elapsed: Duration, retry_after: Option<Duration>) -> Duration {
        let by_elapsed = elapsed.mul_f64(ELAPSED_FRACTION).max(FIRST_PAUSE);
        let pause = by_elapsed.min(self.max);
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

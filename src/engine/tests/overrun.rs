//! Expected durations: a step still running at its limit is flagged at that moment (retries
//! and backoffs count), once, before its end; one within its limit never is; `on_overrun:
//! fail` fails the run and nothing else.

use super::*;
use crate::event::{Expected, ExpectedFrom};
use crate::job::model::OnOverrun;

fn expect(secs: f64, on_overrun: OnOverrun) -> Expected {
    Expected {
        secs: Some(secs),
        from: ExpectedFrom::Stated,
        usual_secs: None,
        runs: None,
        on_overrun,
    }
}

fn with_expected(pairs: &[(&str, Expected)]) -> EngineOptions {
    EngineOptions {
        expected: pairs.iter().map(|(id, e)| (id.to_string(), *e)).collect(),
        ..opts()
    }
}

/// `(seq, at - run start, step)` of every `StepOverran`.
fn overruns(events: &[RunEvent]) -> Vec<(u64, Duration, String)> {
    let start = events[0].at;
    events
        .iter()
        .filter_map(|e| match &e.kind {
            RunEventKind::StepOverran { step, elapsed } => {
                let since = (e.at - start).to_std().unwrap();
                assert_eq!(
                    *elapsed, since,
                    "elapsed is the time since the first attempt"
                );
                Some((e.seq, since, step.clone()))
            }
            _ => None,
        })
        .collect()
}

fn finished_overran(events: &[RunEvent], id: &str) -> (u64, bool) {
    events
        .iter()
        .find_map(|e| match &e.kind {
            RunEventKind::StepFinished { step, overran, .. } if step == id => {
                Some((e.seq, *overran))
            }
            _ => None,
        })
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_step_still_running_at_its_limit_is_flagged_then_and_keeps_its_status() {
    // `slow` fails after 4 s, waits 10 s, succeeds after 5 s: past 12 s during its backoff.
    // `quick` ends in 3 s, inside its 5 s.
    let exec = Fake::new(&[
        ("slow", vec![Act::Fail(secs(4), "boom"), Act::Ok(secs(5))]),
        ("quick", vec![Act::Ok(secs(3))]),
    ]);
    let slow = Step {
        retries: 1,
        retry_backoff: secs(10),
        ..step("slow", &[])
    };
    let j = job(vec![slow, step("quick", &[])], 8);
    let opts = with_expected(&[
        ("slow", expect(12.0, OnOverrun::Warn)),
        ("quick", expect(5.0, OnOverrun::Fail)),
    ]);
    let (status, events) = run_job(j, exec, opts, None).await;
    // Nothing with `on_overrun: fail` overran; `slow` only warns.
    assert_eq!(status, RunStatus::Succeeded);
    let flagged = overruns(&events);
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    let (seq, at, id) = &flagged[0];
    assert_eq!((id.as_str(), *at), ("slow", secs(12)));
    let (end_seq, overran) = finished_overran(&events, "slow");
    assert!(overran && end_seq > *seq);
    assert_eq!(status_of(&events, "slow"), StepStatus::Succeeded);
    assert!(!finished_overran(&events, "quick").1);
}

#[tokio::test(start_paused = true)]
async fn on_overrun_fail_fails_the_run_only() {
    let exec = Fake::new(&[
        ("load", vec![Act::Ok(secs(8))]),
        ("after", vec![Act::Ok(secs(1))]),
    ]);
    let j = job(vec![step("load", &[]), step("after", &["load"])], 8);
    let opts = with_expected(&[("load", expect(5.0, OnOverrun::Fail))]);
    let (status, events) = run_job(j, exec.clone(), opts, None).await;
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(status_of(&events, "load"), StepStatus::Succeeded);
    // The dependent ran, and saw the run as failing already.
    assert_eq!(status_of(&events, "after"), StepStatus::Succeeded);
    let calls = exec.calls();
    let after = calls.iter().find(|c| c.step == "after").unwrap();
    assert!(
        after
            .summary
            .contains("1 overran its expected duration (load)"),
        "{}",
        after.summary
    );
    assert_eq!(overruns(&events)[0].1, secs(5));
    // The same overrun with `warn` leaves the run succeeded.
    let exec = Fake::new(&[("load", vec![Act::Ok(secs(8))])]);
    let j = job(vec![step("load", &[])], 8);
    let opts = with_expected(&[("load", expect(5.0, OnOverrun::Warn))]);
    let (status, events) = run_job(j, exec, opts, None).await;
    assert_eq!(status, RunStatus::Succeeded);
    assert!(finished_overran(&events, "load").1);
}

#[tokio::test(start_paused = true)]
async fn a_step_that_never_started_is_never_flagged() {
    // `gated` is skipped by its condition and `child` ends upstream_failed: no attempt, no
    // clock, no flag, however long the run.
    let exec = Fake::new(&[("bad", vec![Act::Fail(secs(30), "boom")])]);
    let mut gated = step("gated", &[]);
    gated.when = Some("false".into());
    let j = job(vec![step("bad", &[]), step("child", &["bad"]), gated], 8);
    let opts = with_expected(&[
        ("child", expect(1.0, OnOverrun::Fail)),
        ("gated", expect(1.0, OnOverrun::Fail)),
    ]);
    let (status, events) = run_job(j, exec, opts, None).await;
    assert_eq!(status, RunStatus::Failed);
    assert!(overruns(&events).is_empty());
}

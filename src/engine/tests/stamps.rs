//! The facts the scheduler stamps on events so readers fold them: a step's duration, the
//! counts and running steps so far, and the run's duration.

use super::*;

/// `(step, duration)` of every `StepFinished`, in order.
fn durations(events: &[RunEvent]) -> Vec<(String, Option<Duration>)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            RunEventKind::StepFinished { step, duration, .. } => Some((step.clone(), *duration)),
            _ => None,
        })
        .collect()
}

/// `at` of the first `AttemptStarted` and of the `StepFinished` of `id`.
fn started_and_finished(events: &[RunEvent], id: &str) -> (RunEvent, RunEvent) {
    let first = events
        .iter()
        .find(|e| matches!(&e.kind, RunEventKind::AttemptStarted { step, .. } if step == id))
        .cloned()
        .unwrap();
    let last = events
        .iter()
        .find(|e| matches!(&e.kind, RunEventKind::StepFinished { step, .. } if step == id))
        .cloned()
        .unwrap();
    (first, last)
}

#[tokio::test(start_paused = true)]
async fn step_finished_carries_the_time_from_the_first_attempt_to_the_final_status() {
    // `quick` takes 3 s; `flaky` fails after 5 s, waits out a 10 s backoff, succeeds after
    // 7 s: 22 s from its first attempt; `after` never starts (its parent `gated` is skipped by its condition).
    let exec = Fake::new(&[
        ("quick", vec![Act::Ok(secs(3))]),
        ("flaky", vec![Act::Fail(secs(5), "boom"), Act::Ok(secs(7))]),
        ("fresh", vec![Act::Skip("fresh: refreshed 5m ago")]),
    ]);
    let flaky = Step {
        retries: 1,
        retry_backoff: secs(10),
        ..step("flaky", &["quick"])
    };
    let after = Step {
        trigger: TriggerRule::AllSuccess,
        ..step("after", &["gated"])
    };
    let mut gate = step("gated", &[]);
    gate.when = Some("false".into());
    let j = job(
        vec![step("quick", &[]), flaky, step("fresh", &[]), gate, after],
        8,
    );
    let (status, events) = run_job(j, exec, opts(), None).await;
    assert_eq!(status, RunStatus::Succeeded);
    let by_step: HashMap<String, Option<Duration>> = durations(&events).into_iter().collect();
    assert_eq!(by_step["quick"], Some(secs(3)));
    assert_eq!(by_step["flaky"], Some(secs(22)));
    // A step whose executor ran (and skipped) has a duration; steps never attempted do not.
    assert_eq!(by_step["fresh"], Some(Duration::ZERO));
    assert_eq!(by_step["gated"], None);
    assert_eq!(by_step["after"], None);
    // The duration is the difference of the two events' timestamps, exactly.
    for id in ["quick", "flaky"] {
        let (first, last) = started_and_finished(&events, id);
        let RunEventKind::StepFinished { duration, .. } = last.kind else {
            unreachable!()
        };
        assert_eq!(
            chrono::TimeDelta::from_std(duration.unwrap()).unwrap(),
            last.at - first.at,
            "{id}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn counts_and_running_steps_are_stamped_as_the_run_goes() {
    // a (2 s) and b (fails at 4 s) start together; c after a (3 s); d after b: upstream
    // failed; e after a and c is skipped by its condition.
    let exec = Fake::new(&[
        ("a", vec![Act::Ok(secs(2))]),
        ("b", vec![Act::Fail(secs(4), "no")]),
        ("c", vec![Act::Ok(secs(3))]),
    ]);
    let mut e = step("e", &["a", "c"]);
    e.when = Some("false".into());
    let j = job(
        vec![
            step("a", &[]),
            step("b", &[]),
            step("c", &["a"]),
            step("d", &["b"]),
            e,
        ],
        8,
    );
    let (status, events) = run_job(j, exec, opts(), None).await;
    assert_eq!(status, RunStatus::Failed);

    // Fold the events the way a reader would have had to, and compare at every step.
    let mut expected = Counts::default();
    let mut attempted: std::collections::HashSet<String> = Default::default();
    let mut stamped = Vec::new();
    for event in &events {
        match &event.kind {
            RunEventKind::AttemptStarted { step, .. } => {
                attempted.insert(step.clone());
            }
            RunEventKind::StepFinished {
                step,
                status,
                counts,
                running,
                ..
            } => {
                attempted.remove(step);
                let before = expected.total();
                expected.add(*status);
                assert_eq!(*counts, expected, "counts after {step}");
                assert_eq!(counts.total(), before + 1, "one more final status");
                assert_eq!(*running as usize, attempted.len(), "running after {step}");
                stamped.push((step.clone(), *running));
            }
            RunEventKind::RunFinished {
                counts, duration, ..
            } => {
                assert_eq!(*counts, expected, "the last counts are the run's");
                // a+c take 5 s, b 4 s: the run ends 5 s after it started (paused time).
                assert_eq!(*duration, secs(5));
                let first = events.first().unwrap();
                assert_eq!(
                    chrono::TimeDelta::from_std(*duration).unwrap(),
                    event.at - first.at
                );
            }
            _ => {}
        }
    }
    assert_eq!(
        expected,
        Counts {
            succeeded: 2,
            failed: 1,
            skipped: 1,
            upstream_failed: 1,
            ..Counts::default()
        }
    );
    // a ends while b is running, then c (started at 2 s) is running when b fails at 4 s.
    assert_eq!(stamped[0], ("a".to_string(), 1));
    assert_eq!(stamped[1], ("b".to_string(), 1));
}

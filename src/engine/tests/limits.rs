//! Eager start, priority, concurrency, pools, resources, retries and timeouts.

use super::*;

#[tokio::test(start_paused = true)]
async fn starts_eagerly_not_in_waves() {
    // a(1s) -> c ; b(10s). c must start at 1 s, long before the slow sibling b ends.
    let exec = Fake::new(&[
        ("a", vec![Act::Ok(secs(1))]),
        ("b", vec![Act::Ok(secs(10))]),
        ("c", vec![Act::Ok(secs(1))]),
    ]);
    let j = job(vec![step("a", &[]), step("b", &[]), step("c", &["a"])], 8);
    let (status, _) = run_job(j, exec.clone(), opts(), None).await;
    assert_eq!(status, RunStatus::Succeeded);
    let starts: HashMap<String, u64> = exec.starts().into_iter().collect();
    assert_eq!(starts["a"], 0);
    assert_eq!(starts["b"], 0);
    assert_eq!(starts["c"], 1);
}

#[tokio::test(start_paused = true)]
async fn longest_remaining_path_goes_first() {
    // Under concurrency 1: `short` comes first in the job but `long` heads a chain of three.
    let exec = Fake::new(&[]);
    let j = job(
        vec![
            step("short", &[]),
            step("long", &[]),
            step("long2", &["long"]),
            step("long3", &["long2"]),
            step("tie_a", &[]),
            step("tie_b", &[]),
        ],
        1,
    );
    run_job(j, exec.clone(), opts(), None).await;
    let order: Vec<String> = exec.starts().into_iter().map(|(s, _)| s).collect();
    assert_eq!(order[0], "long");
    // Ties (remaining 1) start in job order.
    let short = order.iter().position(|s| s == "short").unwrap();
    let tie_a = order.iter().position(|s| s == "tie_a").unwrap();
    let tie_b = order.iter().position(|s| s == "tie_b").unwrap();
    assert!(short < tie_a && tie_a < tie_b, "{order:?}");
}

#[tokio::test(start_paused = true)]
async fn priority_hint_weights_paths_by_duration() {
    // By step count `two` (2 steps) would lead; by past durations `slow` (100 s) does.
    let exec = Fake::new(&[]);
    let j = job(
        vec![step("two", &[]), step("two_b", &["two"]), step("slow", &[])],
        1,
    );
    let mut o = opts();
    o.priority_hint = [
        ("two".to_string(), 5.0),
        ("two_b".to_string(), 5.0),
        ("slow".to_string(), 100.0),
    ]
    .into();
    run_job(j, exec.clone(), o, None).await;
    assert_eq!(exec.starts()[0].0, "slow");
}

#[tokio::test(start_paused = true)]
async fn concurrency_override_and_global_limit() {
    let exec = Fake::new(&[]);
    let steps: Vec<Step> = (0..6).map(|i| step(&format!("s{i}"), &[])).collect();
    let mut o = opts();
    o.concurrency = Some(2);
    run_job(job(steps, 8), exec.clone(), o, None).await;
    let starts: Vec<u64> = exec.starts().into_iter().map(|(_, t)| t).collect();
    assert_eq!(starts, vec![0, 0, 1, 1, 2, 2]);
}

#[tokio::test(start_paused = true)]
async fn pool_limits_hold_and_do_not_block_others() {
    let exec = Fake::new(&[]);
    let mut steps: Vec<Step> = (0..3)
        .map(|i| Step {
            pool: Some("p1".into()),
            ..step(&format!("p{i}"), &[])
        })
        .collect();
    steps.push(step("free", &[]));
    let mut j = job(steps, 8);
    j.pools.insert("p1".into(), 1);
    run_job(j, exec.clone(), opts(), None).await;
    let starts: HashMap<String, u64> = exec.starts().into_iter().collect();
    assert_eq!(starts["p0"], 0);
    assert_eq!(starts["p1"], 1);
    assert_eq!(starts["p2"], 2);
    // A step outside the pool is not held behind the pool's queue.
    assert_eq!(starts["free"], 0);
}

#[tokio::test(start_paused = true)]
async fn one_step_per_remote_resource() {
    let exec = Fake::new(&[("a", vec![Act::Ok(secs(5))])]);
    let j = job(
        vec![
            dataset("a", &[], "Data Admin", "ORDER_LIST"),
            // Same dataset, other spelling of the name: must wait.
            dataset("b", &[], "data admin", "order_list"),
            // Another dataset in the same workspace: free to go.
            dataset("c", &[], "Data Admin", "OTHER"),
        ],
        8,
    );
    run_job(j, exec.clone(), opts(), None).await;
    let starts: HashMap<String, u64> = exec.starts().into_iter().collect();
    assert_eq!(starts["a"], 0);
    assert_eq!(starts["b"], 5);
    assert_eq!(starts["c"], 0);
}

/// The pause announced after each attempt (`None`: no retry follows).
fn retry_pauses(events: &[RunEvent]) -> Vec<Option<Duration>> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            RunEventKind::AttemptFinished { retry_in, .. } => Some(*retry_in),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn retries_with_doubling_backoff_in_virtual_time() {
    let exec = Fake::new(&[(
        "flaky",
        vec![
            Act::Fail(secs(1), "boom 1"),
            Act::Fail(secs(1), "boom 2"),
            Act::Fail(secs(1), "boom 3"),
            Act::Ok(secs(1)),
        ],
    )]);
    let s = Step {
        retries: 3,
        retry_backoff: secs(10),
        max_backoff: secs(15),
        ..step("flaky", &[])
    };
    let (status, events) = run_job(job(vec![s], 1), exec.clone(), opts(), None).await;
    assert_eq!(status, RunStatus::Succeeded);
    // Attempt 1 at 0, fails at 1, +10 s; attempt 2 at 11, fails at 12, +20 capped to 15;
    // attempt 3 at 27, fails at 28, +15 (cap); attempt 4 at 43.
    let starts: Vec<u64> = exec.starts().into_iter().map(|(_, t)| t).collect();
    assert_eq!(starts, vec![0, 11, 27, 43]);
    let numbers: Vec<u32> = exec.calls().iter().map(|c| c.attempt).collect();
    assert_eq!(numbers, vec![1, 2, 3, 4], "attempts are numbered from 1");
    let retry_in = retry_pauses(&events);
    assert_eq!(
        retry_in,
        vec![Some(secs(10)), Some(secs(15)), Some(secs(15)), None]
    );
    assert_eq!(finals(&events)["flaky"], (StepStatus::Succeeded, None, 4));
}

#[tokio::test(start_paused = true)]
async fn step_ends_with_last_attempt_status_when_retries_run_out() {
    let exec = Fake::new(&[("f", vec![Act::Fail(secs(1), "refresh failed: bad creds")])]);
    let s = Step {
        retries: 1,
        ..step("f", &[])
    };
    let (status, events) = run_job(job(vec![s], 1), exec.clone(), opts(), None).await;
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(
        finals(&events)["f"],
        (
            StepStatus::Failed,
            Some("refresh failed: bad creds".into()),
            2
        )
    );
}

#[tokio::test(start_paused = true)]
async fn a_refusal_does_not_spend_the_retries() {
    let exec = Fake::new(&[
        (
            "typo",
            vec![Act::Refuse("dataset `Ordres` not found"), Act::Ok(secs(1))],
        ),
        ("after", vec![Act::Ok(secs(1))]),
    ]);
    let s = Step {
        retries: 3,
        retry_backoff: secs(10),
        ..step("typo", &[])
    };
    let (status, events) = run_job(
        job(vec![s, step("after", &["typo"])], 1),
        exec.clone(),
        opts(),
        None,
    )
    .await;
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(exec.calls().len(), 1, "one attempt, no retry");
    assert_eq!(
        finals(&events)["typo"],
        (
            StepStatus::Failed,
            Some(
                "dataset `Ordres` not found (not retried: another attempt would fail the same way)"
                    .into()
            ),
            1
        )
    );
    assert_eq!(status_of(&events, "after"), StepStatus::UpstreamFailed);
    let retry_in = retry_pauses(&events);
    assert_eq!(retry_in, vec![None]);
}

#[tokio::test(start_paused = true)]
async fn a_refusal_without_retries_keeps_its_message() {
    let exec = Fake::new(&[("typo", vec![Act::Refuse("dataset `Ordres` not found")])]);
    let (_, events) = run_job(job(vec![step("typo", &[])], 1), exec, opts(), None).await;
    assert_eq!(
        finals(&events)["typo"],
        (
            StepStatus::Failed,
            Some("dataset `Ordres` not found".into()),
            1
        )
    );
}

#[tokio::test(start_paused = true)]
async fn timeout_cancels_the_attempt_and_ends_timed_out() {
    let exec = Fake::new(&[("slow", vec![Act::Hang])]);
    let s = Step {
        timeout: secs(30),
        retries: 1,
        retry_backoff: secs(5),
        ..step("slow", &[])
    };
    let (status, events) = run_job(job(vec![s], 1), exec.clone(), opts(), None).await;
    assert_eq!(status, RunStatus::Failed);
    let calls = exec.calls();
    assert_eq!(calls.len(), 2, "a timed-out attempt is retried");
    for c in &calls {
        assert_eq!(c.cancel, Some(CancelReason::Timeout));
    }
    assert_eq!(calls[0].end, Some(secs(30)));
    assert_eq!(calls[1].start, secs(35));
    let (st, reason, attempts) = finals(&events)["slow"].clone();
    assert_eq!(st, StepStatus::TimedOut);
    assert_eq!(attempts, 2);
    assert_eq!(reason.unwrap(), "timed out after 30s: cancelled remotely");
}

#[tokio::test(start_paused = true)]
async fn executor_that_ignores_cancel_is_abandoned_after_the_grace() {
    let exec = Fake::new(&[("stuck", vec![Act::Stuck])]);
    let s = Step {
        timeout: secs(10),
        ..step("stuck", &[])
    };
    let (status, events) = run_job(job(vec![s], 1), exec.clone(), opts(), None).await;
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(status_of(&events, "stuck"), StepStatus::TimedOut);
    assert!(reason_of(&events, "stuck").contains("did not stop within 1m"));
}

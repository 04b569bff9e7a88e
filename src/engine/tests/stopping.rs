//! `--fail-fast` and interrupts.

use super::*;

#[tokio::test(start_paused = true)]
async fn fail_fast_lets_running_steps_finish_and_starts_nothing_new() {
    let exec = Fake::new(&[
        ("bad", vec![Act::Fail(secs(1), "boom")]),
        ("running", vec![Act::Ok(secs(10))]),
    ]);
    let j = job(
        vec![
            step("bad", &[]),
            step("running", &[]),
            step("queued", &[]),
            step("after_bad", &["bad"]),
            step("after_running", &["running"]),
        ],
        2,
    );
    let mut o = opts();
    o.fail_fast = true;
    let (status, events) = run_job(j, exec.clone(), o, None).await;
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(status_of(&events, "running"), StepStatus::Succeeded);
    assert_eq!(status_of(&events, "after_bad"), StepStatus::UpstreamFailed);
    for id in ["queued", "after_running"] {
        assert_eq!(status_of(&events, id), StepStatus::Cancelled, "{id}");
        assert_eq!(
            reason_of(&events, id),
            "not started: --fail-fast after step `bad` failed"
        );
    }
    assert_eq!(exec.calls().len(), 2);
    let stopping: Vec<&RunEvent> = events
        .iter()
        .filter(|e| matches!(e.kind, RunEventKind::Stopping { .. }))
        .collect();
    assert_eq!(stopping.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn fail_fast_ignores_continue_on_error_failures() {
    let exec = Fake::new(&[("soft", vec![Act::Fail(secs(1), "meh")])]);
    let soft = Step {
        continue_on_error: true,
        ..step("soft", &[])
    };
    let mut o = opts();
    o.fail_fast = true;
    let (status, events) =
        run_job(job(vec![soft, step("next", &["soft"])], 1), exec, o, None).await;
    assert_eq!(status, RunStatus::Succeeded);
    assert_eq!(status_of(&events, "next"), StepStatus::Succeeded);
}

async fn interrupted(detach: bool) -> (RunStatus, Vec<RunEvent>, Arc<Fake>) {
    let exec = Fake::new(&[
        ("hang", vec![Act::Hang]),
        ("retrying", vec![Act::Fail(secs(1), "flaky")]),
    ]);
    let retrying = Step {
        retries: 5,
        retry_backoff: secs(60),
        ..step("retrying", &[])
    };
    let j = job(
        vec![
            step("hang", &[]),
            retrying,
            step("quick", &[]),
            step("child", &["hang"]),
            step("late", &["quick"]),
        ],
        3,
    );
    let j = Job {
        concurrency: 3,
        ..j
    };
    let mut o = opts();
    o.detach_on_interrupt = detach;
    let token = CancellationToken::new();
    let fire = token.clone();
    // `quick` and `late` run 1 s each; the signal comes at 5 s, during `retrying`'s backoff.
    tokio::spawn(async move {
        tokio::time::sleep(secs(5)).await;
        fire.cancel();
    });
    let (status, events) = run_with(j, exec.clone(), o, None, token).await;
    (status, events, exec)
}

#[tokio::test(start_paused = true)]
async fn interrupt_cancels_running_attempts_and_everything_left() {
    let (status, events, exec) = interrupted(false).await;
    assert_eq!(status, RunStatus::Cancelled);
    let hang = exec.calls().into_iter().find(|c| c.step == "hang").unwrap();
    assert_eq!(hang.cancel, Some(CancelReason::Interrupt { detach: false }));
    assert_eq!(hang.end, Some(secs(5)));
    assert_eq!(status_of(&events, "hang"), StepStatus::Cancelled);
    assert_eq!(
        reason_of(&events, "hang"),
        "cancelled: run interrupted: cancelled remotely"
    );
    assert_eq!(status_of(&events, "retrying"), StepStatus::Cancelled);
    assert!(reason_of(&events, "retrying").starts_with("run interrupted while waiting to retry"));
    assert_eq!(status_of(&events, "child"), StepStatus::Cancelled);
    assert_eq!(status_of(&events, "quick"), StepStatus::Succeeded);
    assert_eq!(status_of(&events, "late"), StepStatus::Succeeded);
    let stopping = events
        .iter()
        .find_map(|e| match &e.kind {
            RunEventKind::Stopping { reason } => Some(reason.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        stopping,
        "interrupted: starting nothing new, cancelling 2 running steps"
    );
    assert!(matches!(
        events.last().unwrap().kind,
        RunEventKind::RunFinished {
            status: RunStatus::Cancelled,
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn interrupt_with_detach_tells_the_executor() {
    let (status, events, exec) = interrupted(true).await;
    assert_eq!(status, RunStatus::Cancelled);
    let hang = exec.calls().into_iter().find(|c| c.step == "hang").unwrap();
    assert_eq!(hang.cancel, Some(CancelReason::Interrupt { detach: true }));
    assert_eq!(
        reason_of(&events, "hang"),
        "cancelled: run interrupted (remote work left running): cancelled remotely"
    );
}

#[tokio::test(start_paused = true)]
async fn interrupt_before_start_cancels_every_step() {
    let exec = Fake::new(&[]);
    let token = CancellationToken::new();
    token.cancel();
    let (status, events) = run_with(
        job(vec![step("a", &[]), step("b", &["a"])], 2),
        exec.clone(),
        opts(),
        None,
        token,
    )
    .await;
    assert_eq!(status, RunStatus::Cancelled);
    assert!(exec.calls().is_empty());
    assert_eq!(status_of(&events, "a"), StepStatus::Cancelled);
    assert_eq!(status_of(&events, "b"), StepStatus::Cancelled);
}

/// A `when:` that would spin for hours (seven nested comprehensions over 20 entries: 20^7
/// steps); validation refuses it, but the engine must not depend on that.
fn runaway_condition() -> String {
    let list = format!(
        "[{}]",
        (0..20).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
    );
    let mut expr = "a + b + c + d + e + f + g >= 0".to_string();
    for v in ["g", "f", "e", "d", "c", "b", "a"] {
        expr = format!("{list}.all({v}, {expr})");
    }
    expr
}

/// Runs `job` on a runtime of its own (real time: evaluation runs on real threads) and leaves
/// without waiting for a runaway evaluation's thread.
fn run_real_time(
    j: Job,
    exec: Arc<Fake>,
    o: EngineOptions,
    interrupt_after: Option<Duration>,
) -> (RunStatus, Vec<RunEvent>, Duration) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let out = rt.block_on(async move {
        let token = CancellationToken::new();
        if let Some(after) = interrupt_after {
            let t = token.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                t.cancel();
            });
        }
        let started = std::time::Instant::now();
        let (status, events) = run_with(j, exec, o, None, token).await;
        (status, events, started.elapsed())
    });
    rt.shutdown_background();
    out
}

#[test]
fn an_interrupt_is_not_held_off_by_a_long_condition() {
    let exec = Fake::new(&[("busy", vec![Act::Hang])]);
    let gated = Step {
        when: Some(runaway_condition()),
        ..step("gated", &["first"])
    };
    let j = job(
        vec![
            step("first", &[]),
            gated,
            step("after", &["gated"]),
            step("busy", &[]),
        ],
        4,
    );
    let mut o = opts();
    // Far longer than the test waits: only the interrupt can end this run in time.
    o.condition_limit = Some(Duration::from_secs(600));
    let (status, events, took) = run_real_time(j, exec, o, Some(Duration::from_millis(1500)));
    assert!(took < Duration::from_secs(30), "the run took {took:?}");
    assert_eq!(status, RunStatus::Cancelled);
    assert_eq!(status_of(&events, "first"), StepStatus::Succeeded);
    assert_eq!(status_of(&events, "busy"), StepStatus::Cancelled);
    assert_eq!(finals(&events)["gated"].0, StepStatus::Cancelled);
    assert_eq!(reason_of(&events, "gated"), "not started: run interrupted");
    assert_eq!(status_of(&events, "after"), StepStatus::Cancelled);
    assert!(matches!(
        events.last().map(|e| &e.kind),
        Some(RunEventKind::RunFinished { .. })
    ));
}

#[test]
fn a_condition_past_its_limit_fails_its_step_and_the_run_goes_on() {
    let exec = Fake::new(&[]);
    let gated = Step {
        when: Some(runaway_condition()),
        ..step("gated", &[])
    };
    let j = job(vec![gated, step("other", &[])], 4);
    let mut o = opts();
    o.condition_limit = Some(Duration::from_millis(300));
    let (status, events, took) = run_real_time(j, exec, o, None);
    assert!(took < Duration::from_secs(30), "the run took {took:?}");
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(status_of(&events, "other"), StepStatus::Succeeded);
    assert_eq!(status_of(&events, "gated"), StepStatus::Failed);
    let reason = reason_of(&events, "gated");
    assert!(reason.ends_with("still running after 300ms"), "{reason}");
}

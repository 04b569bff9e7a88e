//! Trigger rules, conditions, continue_on_error, selection, resume, events and counts.

use super::*;

/// `parent_ok` succeeds, `parent_bad` fails; `child` depends on both with `rule`.
async fn child_under(rule: TriggerRule) -> (StepStatus, String) {
    let exec = Fake::new(&[("parent_bad", vec![Act::Fail(secs(1), "nope")])]);
    let child = Step {
        trigger: rule,
        ..step("child", &["parent_ok", "parent_bad"])
    };
    let j = job(
        vec![step("parent_ok", &[]), step("parent_bad", &[]), child],
        4,
    );
    let (_, events) = run_job(j, exec, opts(), None).await;
    (status_of(&events, "child"), reason_of(&events, "child"))
}

#[tokio::test(start_paused = true)]
async fn every_trigger_rule_with_one_success_and_one_failure() {
    use StepStatus::*;
    let cases = [
        (TriggerRule::AllSuccess, UpstreamFailed),
        (TriggerRule::AllDone, Succeeded),
        (TriggerRule::AllFailed, Skipped),
        (TriggerRule::OneFailed, Succeeded),
        (TriggerRule::OneSuccess, Succeeded),
        (TriggerRule::NoneFailed, UpstreamFailed),
        (TriggerRule::Always, Succeeded),
    ];
    for (rule, want) in cases {
        let (got, reason) = child_under(rule).await;
        assert_eq!(got, want, "{rule:?}: {reason}");
    }
    assert_eq!(
        child_under(TriggerRule::AllSuccess).await.1,
        "trigger rule all_success: dependency `parent_bad` failed"
    );
}

/// `fresh` is skipped by its executor as fresh (`skip_if_fresh`); `child` depends on it, and on
/// `other` (scripted by `other_act`) when given, with `rule`.
async fn child_of_fresh(rule: TriggerRule, other: Option<Act>) -> (StepStatus, String) {
    let mut script = vec![(
        "fresh",
        vec![Act::Skip("fresh: a successful refresh ended")],
    )];
    let mut steps = vec![step("fresh", &[])];
    let deps: &[&str] = match &other {
        Some(act) => {
            script.push(("other", vec![act.clone()]));
            steps.push(step("other", &[]));
            &["fresh", "other"]
        }
        None => &["fresh"],
    };
    steps.push(Step {
        trigger: rule,
        ..step("child", deps)
    });
    let (_, events) = run_job(job(steps, 4), Fake::new(&script), opts(), None).await;
    assert_eq!(status_of(&events, "fresh"), StepStatus::Skipped);
    assert!(reason_of(&events, "fresh").starts_with("fresh"));
    (status_of(&events, "child"), reason_of(&events, "child"))
}

#[tokio::test(start_paused = true)]
async fn a_freshness_skip_counts_as_succeeded_under_every_trigger_rule() {
    use StepStatus::*;
    // Alone: exactly what a succeeded parent gives.
    let alone = [
        (TriggerRule::AllSuccess, Succeeded),
        (TriggerRule::AllDone, Succeeded),
        (TriggerRule::AllFailed, Skipped),
        (TriggerRule::OneFailed, Skipped),
        (TriggerRule::OneSuccess, Succeeded),
        (TriggerRule::NoneFailed, Succeeded),
        (TriggerRule::Always, Succeeded),
    ];
    for (rule, want) in alone {
        let (got, reason) = child_of_fresh(rule, None).await;
        assert_eq!(got, want, "{rule:?} after a fresh parent: {reason}");
    }
    assert_eq!(
        child_of_fresh(TriggerRule::AllFailed, None).await.1,
        "trigger rule all_failed: dependency `fresh` did not fail"
    );
    // Beside a failed parent: the same table as one success and one failure.
    let beside_failure = [
        (TriggerRule::AllSuccess, UpstreamFailed),
        (TriggerRule::AllDone, Succeeded),
        (TriggerRule::AllFailed, Skipped),
        (TriggerRule::OneFailed, Succeeded),
        (TriggerRule::OneSuccess, Succeeded),
        (TriggerRule::NoneFailed, UpstreamFailed),
        (TriggerRule::Always, Succeeded),
    ];
    for (rule, want) in beside_failure {
        let (got, reason) = child_of_fresh(rule, Some(Act::Fail(secs(1), "boom"))).await;
        assert_eq!(
            got, want,
            "{rule:?} after a fresh and a failed parent: {reason}"
        );
    }
    // Beside a skip that is not a freshness skip (condition false), that one still counts.
    let exec = Fake::new(&[(
        "fresh",
        vec![Act::Skip("fresh: a successful refresh ended")],
    )]);
    let gated = Step {
        when: Some("vars.export == 'no'".into()),
        ..step("gated", &[])
    };
    let child = step("child", &["fresh", "gated"]);
    let (_, events) = run_job(
        job(vec![step("fresh", &[]), gated, child], 4),
        exec,
        opts(),
        None,
    )
    .await;
    assert_eq!(
        reason_of(&events, "child"),
        "trigger rule all_success: dependency `gated` skipped"
    );
}

#[tokio::test(start_paused = true)]
async fn when_sees_a_freshness_skip_as_skipped_and_fresh() {
    let exec = Fake::new(&[(
        "fresh",
        vec![Act::Skip("fresh: a successful refresh ended")],
    )]);
    let child = Step {
        when: Some("steps.fresh.status == 'skipped' && steps.fresh.fresh".into()),
        ..step("child", &["fresh"])
    };
    let gated = Step {
        when: Some("steps.fresh.status == 'succeeded'".into()),
        ..step("gated", &["fresh"])
    };
    let (status, events) = run_job(
        job(vec![step("fresh", &[]), child, gated], 4),
        exec.clone(),
        opts(),
        None,
    )
    .await;
    assert_eq!(status, RunStatus::Succeeded);
    assert_eq!(status_of(&events, "child"), StepStatus::Succeeded);
    assert_eq!(
        finals(&events)["gated"],
        (
            StepStatus::Skipped,
            Some("condition false: steps.fresh.status == 'succeeded'".into()),
            0
        )
    );
    // A condition after a step that ran sees `fresh: false`.
    let exec = Fake::new(&[]);
    let after = Step {
        when: Some("!steps.a.fresh && steps.a.status == 'succeeded'".into()),
        ..step("after", &["a"])
    };
    let (_, events) = run_job(job(vec![step("a", &[]), after], 4), exec, opts(), None).await;
    assert_eq!(status_of(&events, "after"), StepStatus::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn one_failed_webhook_is_skipped_when_nothing_failed_and_runs_when_something_did() {
    let teams = |deps: &[&str]| Step {
        trigger: TriggerRule::OneFailed,
        ..step("tell_teams", deps)
    };
    let exec = Fake::new(&[]);
    let j = job(vec![step("a", &[]), teams(&["a"])], 4);
    let (status, events) = run_job(j, exec, opts(), None).await;
    assert_eq!(status, RunStatus::Succeeded);
    assert_eq!(status_of(&events, "tell_teams"), StepStatus::Skipped);
    assert_eq!(
        reason_of(&events, "tell_teams"),
        "trigger rule one_failed: no dependency failed"
    );

    // Upstream failure with an independent branch: the branch still runs, the webhook fires
    // on the upstream_failed grandchild, and the summary it sees names the failure.
    let exec = Fake::new(&[("a", vec![Act::Fail(secs(1), "boom")])]);
    let j = job(
        vec![
            step("a", &[]),
            step("b", &["a"]),
            step("independent", &[]),
            teams(&["b"]),
        ],
        4,
    );
    let (status, events) = run_job(j, exec.clone(), opts(), None).await;
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(status_of(&events, "b"), StepStatus::UpstreamFailed);
    assert_eq!(status_of(&events, "independent"), StepStatus::Succeeded);
    assert_eq!(status_of(&events, "tell_teams"), StepStatus::Succeeded);
    let call = exec
        .calls()
        .into_iter()
        .find(|c| c.step == "tell_teams")
        .unwrap();
    assert_eq!(
        call.summary,
        "test_job: 1 succeeded, 1 failed (a), 0 skipped, 1 upstream failed"
    );
}

#[tokio::test(start_paused = true)]
async fn skipped_parent_skips_all_success_child_but_not_none_failed() {
    let exec = Fake::new(&[]);
    let gated = Step {
        when: Some("vars.export == 'no'".into()),
        ..step("gated", &[])
    };
    let strict = step("strict", &["gated"]);
    let lenient = Step {
        trigger: TriggerRule::NoneFailed,
        ..step("lenient", &["gated"])
    };
    let (status, events) = run_job(
        job(vec![gated, strict, lenient], 4),
        exec.clone(),
        opts(),
        None,
    )
    .await;
    assert_eq!(status, RunStatus::Succeeded);
    assert_eq!(
        finals(&events)["gated"],
        (
            StepStatus::Skipped,
            Some("condition false: vars.export == 'no'".into()),
            0
        )
    );
    assert_eq!(status_of(&events, "strict"), StepStatus::Skipped);
    assert_eq!(status_of(&events, "lenient"), StepStatus::Succeeded);
    assert_eq!(exec.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn when_sees_dependencies_env_and_run() {
    let exec = Fake::new(&[("a", vec![Act::Fail(secs(1), "x"), Act::Ok(secs(2))])]);
    let a = Step {
        retries: 1,
        retry_backoff: secs(1),
        ..step("a", &[])
    };
    let b = Step {
        when: Some(
            "steps.a.status == 'succeeded' && steps.a.attempts == 2 && steps.a.duration_secs >= 4.0 && env.STAGE == 'prod' && run.job == 'test_job'"
                .into(),
        ),
        ..step("b", &["a"])
    };
    let mut o = opts();
    o.env = [("STAGE".to_string(), "prod".to_string())].into();
    let (_, events) = run_job(job(vec![a, b], 4), exec, o, None).await;
    assert_eq!(status_of(&events, "b"), StepStatus::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn condition_error_fails_the_step_with_the_message() {
    let exec = Fake::new(&[]);
    let s = Step {
        when: Some("vars.nope == 'x'".into()),
        ..step("s", &[])
    };
    let (status, events) = run_job(job(vec![s], 4), exec.clone(), opts(), None).await;
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(status_of(&events, "s"), StepStatus::Failed);
    assert!(
        reason_of(&events, "s").starts_with("evaluate condition `vars.nope == 'x'`"),
        "{}",
        reason_of(&events, "s")
    );
    assert!(exec.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn continue_on_error_is_truthful_but_does_not_fail_the_run() {
    let exec = Fake::new(&[("optional", vec![Act::Fail(secs(1), "gateway offline")])]);
    let optional = Step {
        continue_on_error: true,
        ..step("optional", &[])
    };
    let teams = Step {
        trigger: TriggerRule::OneFailed,
        ..step("teams", &["optional"])
    };
    let (status, events) = run_job(
        job(vec![optional, step("after", &["optional"]), teams], 4),
        exec,
        opts(),
        None,
    )
    .await;
    assert_eq!(status, RunStatus::Succeeded);
    assert_eq!(status_of(&events, "optional"), StepStatus::Failed);
    assert_eq!(
        reason_of(&events, "optional"),
        "gateway offline (continue_on_error: the run and dependents go on)"
    );
    assert_eq!(status_of(&events, "after"), StepStatus::Succeeded);
    assert_eq!(status_of(&events, "teams"), StepStatus::Skipped);
}

#[tokio::test(start_paused = true)]
async fn unselected_dependencies_count_as_satisfied() {
    let exec = Fake::new(&[]);
    let j = job(
        vec![
            step("up", &[]),
            step("mid", &["up"]),
            step("down", &["mid"]),
        ],
        4,
    );
    let (status, events) = run_job(j, exec.clone(), opts(), Some(&["mid", "down"])).await;
    assert_eq!(status, RunStatus::Succeeded);
    assert!(!finals(&events).contains_key("up"));
    assert_eq!(
        exec.starts(),
        vec![("mid".to_string(), 0), ("down".to_string(), 1)]
    );
}

#[tokio::test(start_paused = true)]
async fn skipped_and_adopted_outcomes() {
    let exec = Fake::new(&[
        ("fresh", vec![Act::Skip("refreshed 5 minutes ago")]),
        ("busy", vec![Act::Adopt(secs(3))]),
    ]);
    let (status, events) = run_job(
        job(vec![step("fresh", &[]), step("busy", &[])], 4),
        exec,
        opts(),
        None,
    )
    .await;
    assert_eq!(status, RunStatus::Succeeded);
    assert_eq!(
        finals(&events)["fresh"],
        (
            StepStatus::Skipped,
            Some("refreshed 5 minutes ago".into()),
            1
        )
    );
    let adopted = events.iter().any(|e| {
        matches!(&e.kind, RunEventKind::StepFinished { step, adopted: true, .. } if step == "busy")
    });
    assert!(adopted);
}

#[tokio::test(start_paused = true)]
async fn events_are_ordered_with_progress_and_counts() {
    let update = |status: &str| AttemptUpdate {
        remote_status: Some(status.into()),
        remote_id: Some("req-1".into()),
        ..AttemptUpdate::default()
    };
    let exec = Fake::new(&[
        (
            "a",
            vec![Act::Updates(
                vec![update("Unknown"), update("InProgress")],
                secs(2),
            )],
        ),
        ("b", vec![Act::Fail(secs(1), "x")]),
    ]);
    let j = job(vec![step("a", &[]), step("b", &[]), step("c", &["b"])], 4);
    let (status, events) = run_job(j, exec, opts(), None).await;
    assert_eq!(status, RunStatus::Failed);
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (0..events.len() as u64).collect::<Vec<_>>());
    assert!(matches!(events[0].kind, RunEventKind::RunStarted { .. }));
    let names: Vec<String> = events
        .iter()
        .map(|e| match &e.kind {
            RunEventKind::RunStarted { .. } => "run_started".to_string(),
            RunEventKind::AttemptStarted { step, attempt } => format!("start {step}#{attempt}"),
            RunEventKind::StepProgress { step, update, .. } => {
                format!("progress {step} {}", update.remote_status.clone().unwrap())
            }
            RunEventKind::AttemptFinished {
                step,
                status,
                remote_id,
                ..
            } => format!("attempt {step} {status} {remote_id:?}"),
            RunEventKind::StepFinished { step, status, .. } => format!("step {step} {status}"),
            RunEventKind::StepOverran { step, .. } => format!("overran {step}"),
            RunEventKind::Stopping { .. } => "stopping".into(),
            RunEventKind::RunFinished { .. } => "run_finished".into(),
        })
        .collect();
    let pos = |s: &str| names.iter().position(|n| n == s).unwrap();
    assert!(pos("start a#1") < pos("progress a Unknown"));
    assert!(pos("progress a Unknown") < pos("progress a InProgress"));
    assert!(pos("progress a InProgress") < pos("attempt a succeeded Some(\"req-1\")"));
    assert!(pos("attempt b failed None") < pos("step b failed"));
    assert!(pos("step b failed") < pos("step c upstream_failed"));
    assert_eq!(names.last().unwrap(), "run_finished");
    let RunEventKind::RunFinished { counts, .. } = &events.last().unwrap().kind else {
        panic!("last event is not RunFinished");
    };
    assert_eq!(
        *counts,
        Counts {
            succeeded: 1,
            failed: 1,
            upstream_failed: 1,
            ..Counts::default()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn resume_keeps_final_steps_and_reattaches_in_flight_ones() {
    let exec = Fake::new(&[]);
    let handle = RemoteHandle::FabricJob {
        workspace_id: "w".into(),
        item_id: "i".into(),
        job_instance_id: Some("j".into()),
        known_before: Vec::new(),
    };
    let mut o = opts();
    o.resume = Some(ResumeState {
        run_id: "run-0".into(),
        steps: [
            (
                "done".to_string(),
                ResumeStep::Keep {
                    status: StepStatus::Succeeded,
                    reason: None,
                },
            ),
            ("inflight".to_string(), ResumeStep::Reattach(handle.clone())),
        ]
        .into(),
    });
    let j = job(
        vec![
            step("done", &[]),
            step("inflight", &["done"]),
            step("last", &["inflight"]),
        ],
        4,
    );
    let (status, events) = run_job(j, exec.clone(), o, None).await;
    assert_eq!(status, RunStatus::Succeeded);
    let RunEventKind::RunStarted { resumed_from, .. } = &events[0].kind else {
        panic!("first event is not RunStarted");
    };
    assert_eq!(resumed_from.as_deref(), Some("run-0"));
    assert_eq!(
        finals(&events)["done"],
        (
            StepStatus::Succeeded,
            Some("kept from run run-0 (resumed)".into()),
            0
        )
    );
    let calls = exec.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].step, "inflight");
    assert_eq!(calls[0].reattach, Some(handle));
    assert_eq!(calls[1].reattach, None);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_executor_fails_its_step_not_the_run_loop() {
    let exec = Fake::new(&[("buggy", vec![Act::Panic(secs(1))])]);
    let (status, events) = run_job(
        job(
            vec![
                step("buggy", &[]),
                step("after", &["buggy"]),
                step("other", &[]),
            ],
            4,
        ),
        exec,
        opts(),
        None,
    )
    .await;
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(
        finals(&events)["buggy"],
        (
            StepStatus::Failed,
            Some("internal error: the attempt task ended without a result".into()),
            1
        )
    );
    assert_eq!(status_of(&events, "after"), StepStatus::UpstreamFailed);
    assert_eq!(status_of(&events, "other"), StepStatus::Succeeded);
}

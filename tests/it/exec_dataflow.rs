//! The dataflow executor (Gen1 and Gen2) end to end against the simulator.

use std::time::Duration;

use chrono::DateTime;
use indexmap::IndexMap;
use pbibatch::executor::{AttemptOutcome, Cancel, CancelReason, SkipKind};
use pbibatch::job::model::{
    DataflowStep, ExecuteOption, Generation, IfRunning, NotifyOption, ProcessType, StepKind,
};
use serde_json::json;

use crate::exec_support::{AttemptOptions, requests_to, rig, run_step, run_step_with, step};

fn gen1(ws: &str, df: &str) -> DataflowStep {
    DataflowStep {
        workspace: ws.into(),
        dataflow: df.into(),
        generation: Generation::Gen1,
        notify: NotifyOption::NoNotification,
        process_type: None,
        execute_option: None,
        parameters: IndexMap::new(),
    }
}

fn gen2(ws: &str, df: &str) -> DataflowStep {
    DataflowStep {
        generation: Generation::Gen2,
        ..gen1(ws, df)
    }
}

async fn until_seen(sim: &pbibatch::sim::SimServer, method: &str, fragment: &str) {
    for _ in 0..600 {
        if !requests_to(sim, method, fragment).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the simulator never saw {method} {fragment}");
}

#[tokio::test]
async fn gen1_refresh_sends_notify_option_and_polls_its_transaction() {
    let rig = rig(
        "workspaces:\n  Data Admin:\n    dataflows:\n      Master Order List: {duration: 400ms}\n",
    )
    .await;
    let mut df = gen1("Data Admin", "Master Order List");
    df.process_type = Some(ProcessType::ProcessFull);
    let ran = run_step(&rig, step("mol", StepKind::Dataflow(df))).await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    let posts = requests_to(&rig.sim, "POST", "/refreshes");
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].json(),
        Some(json!({"notifyOption": "NoNotification"}))
    );
    assert_eq!(posts[0].query.as_deref(), Some("processType=processFull"));
    assert!(ran.remote_id().is_some());
}

#[tokio::test]
async fn gen1_failure_fails_the_attempt() {
    let rig = rig(
        "workspaces:\n  WS:\n    dataflows:\n      DF:\n        duration: 200ms\n        outcomes: [{fail: {code: DailyDataflowRefreshLimitExceeded}}]\n",
    )
    .await;
    let ran = run_step(&rig, step("df", StepKind::Dataflow(gen1("WS", "DF")))).await;
    assert!(ran.error().contains("Failed"), "{}", ran.error());
}

#[tokio::test]
async fn gen1_timeout_cancels_the_transaction_with_an_encoded_id() {
    let rig = rig("workspaces:\n  WS:\n    dataflows:\n      DF: {never_ends: true}\n").await;
    let cancel = Cancel::new();
    let (ran, ()) = tokio::join!(
        run_step_with(
            &rig,
            step("df", StepKind::Dataflow(gen1("WS", "DF"))),
            AttemptOptions {
                cancel: Some(cancel.clone()),
                ..Default::default()
            }
        ),
        async {
            until_seen(&rig.sim, "POST", "/refreshes").await;
            // Let it find the new transaction first.
            for _ in 0..600 {
                if requests_to(&rig.sim, "GET", "/transactions").len() >= 3 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            cancel.cancel(CancelReason::Timeout);
        }
    );
    assert!(ran.error().contains("cancel requested"), "{}", ran.error());
    let cancels = requests_to(&rig.sim, "POST", "/cancel");
    assert_eq!(cancels.len(), 1);
    let path = &cancels[0].path;
    assert!(path.contains("/dataflows/transactions/"), "{path}");
    // The id's `:`, `@` and `$` travel percent-encoded.
    assert!(!path.contains('@') && !path.contains('$'), "{path}");
}

#[tokio::test]
async fn gen1_busy_with_each_if_running() {
    const BUSY: &str =
        "workspaces:\n  WS:\n    dataflows:\n      DF: {duration: 800ms, running_at_start: true}\n";
    for (mode, expect_posts) in [
        (IfRunning::Fail, 0),
        (IfRunning::Adopt, 0),
        (IfRunning::Wait, 1),
        (IfRunning::Restart, 1),
    ] {
        let rig = rig(BUSY).await;
        let mut s = step("df", StepKind::Dataflow(gen1("WS", "DF")));
        s.if_running = mode;
        let ran = run_step(&rig, s).await;
        match mode {
            IfRunning::Fail => assert!(ran.error().contains("already running")),
            IfRunning::Adopt => {
                assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: true })
            }
            _ => assert_eq!(
                ran.outcome,
                AttemptOutcome::Succeeded { adopted: false },
                "{mode:?}"
            ),
        }
        assert_eq!(
            requests_to(&rig.sim, "POST", "/refreshes").len(),
            expect_posts,
            "{mode:?}"
        );
        let cancels = requests_to(&rig.sim, "POST", "/cancel").len();
        assert_eq!(cancels, usize::from(mode == IfRunning::Restart), "{mode:?}");
    }
}

#[tokio::test]
async fn gen1_skip_if_fresh() {
    let rig = rig("workspaces:\n  WS:\n    dataflows:\n      DF: {duration: 100ms}\n").await;
    let first = run_step(&rig, step("df", StepKind::Dataflow(gen1("WS", "DF")))).await;
    assert_eq!(first.outcome, AttemptOutcome::Succeeded { adopted: false });
    let mut s = step("df", StepKind::Dataflow(gen1("WS", "DF")));
    s.skip_if_fresh = Some(Duration::from_secs(600));
    assert!(matches!(
        run_step(&rig, s).await.outcome,
        AttemptOutcome::Skipped {
            kind: SkipKind::Fresh,
            ..
        }
    ));
}

#[tokio::test]
async fn gen2_runs_an_execute_job_and_waits_for_retry_after_before_the_first_poll() {
    let rig = rig(
        "workspaces:\n  WS:\n    fabric_dataflows:\n      Sales Gen2: {duration: 1500ms, retry_after: 1}\n",
    )
    .await;
    let mut df = gen2("WS", "Sales Gen2");
    df.execute_option = Some(ExecuteOption::ApplyChangesIfNeeded);
    let ran = run_step(&rig, step("g2", StepKind::Dataflow(df))).await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    let posts = requests_to(&rig.sim, "POST", "/jobs/instances");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].query.as_deref(), Some("jobType=Execute"));
    assert_eq!(
        posts[0].json(),
        Some(json!({"executionData": {"executeOption": "ApplyChangesIfNeeded"}}))
    );
    // A Fabric call carries a Fabric-audience token: the simulator's strict audience check
    // would have answered 401 otherwise.
    let id = ran.remote_id().unwrap();
    let polls = requests_to(&rig.sim, "GET", &format!("/jobs/instances/{id}"));
    assert!(!polls.is_empty());
    let t0 = DateTime::parse_from_rfc3339(&posts[0].time).unwrap();
    let t1 = DateTime::parse_from_rfc3339(&polls[0].time).unwrap();
    assert!(
        t1 - t0 >= chrono::Duration::seconds(1),
        "first poll {t1} after trigger {t0}"
    );
}

#[tokio::test]
async fn gen2_failure_reason_is_reported() {
    let rig = rig(
        "workspaces:\n  WS:\n    fabric_dataflows:\n      DF:\n        duration: 200ms\n        retry_after: 0\n        outcomes: [{fail: {code: MashupError, message: 'The column Region was not found'}}]\n",
    )
    .await;
    let ran = run_step(&rig, step("g2", StepKind::Dataflow(gen2("WS", "DF")))).await;
    assert!(
        ran.error().contains("The column Region was not found"),
        "{}",
        ran.error()
    );
}

#[tokio::test]
async fn gen2_interrupt_cancels_the_job() {
    let rig = rig(
        "workspaces:\n  WS:\n    fabric_dataflows:\n      DF: {never_ends: true, retry_after: 0}\n",
    )
    .await;
    let cancel = Cancel::new();
    let (ran, ()) = tokio::join!(
        run_step_with(
            &rig,
            step("g2", StepKind::Dataflow(gen2("WS", "DF"))),
            AttemptOptions {
                cancel: Some(cancel.clone()),
                ..Default::default()
            }
        ),
        async {
            // The first poll of the job instance: its id is known by then.
            until_seen(&rig.sim, "GET", "/jobs/instances/").await;
            cancel.cancel(CancelReason::Interrupt { detach: false });
        }
    );
    assert!(
        ran.error().contains("interrupted; cancel requested"),
        "{}",
        ran.error()
    );
    let cancels = requests_to(&rig.sim, "POST", "/cancel");
    assert_eq!(cancels.len(), 1);
    assert!(cancels[0].path.contains("/jobs/instances/"));
}

#[tokio::test]
async fn gen2_busy_adopt_and_fail() {
    const BUSY: &str = "workspaces:\n  WS:\n    fabric_dataflows:\n      DF: {duration: 600ms, running_at_start: true, retry_after: 0}\n";
    let rig = rig(BUSY).await;
    let mut s = step("g2", StepKind::Dataflow(gen2("WS", "DF")));
    s.if_running = IfRunning::Fail;
    let ran = run_step(&rig, s.clone()).await;
    assert!(ran.error().contains("already running"), "{}", ran.error());
    s.if_running = IfRunning::Adopt;
    let ran = run_step(&rig, s).await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: true });
    assert!(requests_to(&rig.sim, "POST", "/jobs/instances").is_empty());
}

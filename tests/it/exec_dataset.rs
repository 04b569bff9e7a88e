//! The dataset executor end to end against the simulator.

use std::time::Duration;

use pbibatch::event::RemoteHandle;
use pbibatch::executor::{AttemptOutcome, Cancel, CancelReason, SkipKind};
use pbibatch::job::model::{
    DatasetStep, EnhancedRefresh, IfRunning, NotifyOption, RefreshType, StepKind,
};
use serde_json::json;

use crate::exec_support::{AttemptOptions, requests_to, rig, run_step, run_step_with, step};

fn standard(ws: &str, ds: &str) -> StepKind {
    StepKind::Dataset(DatasetStep {
        workspace: ws.into(),
        dataset: ds.into(),
        notify: NotifyOption::NoNotification,
        refresh: None,
    })
}

fn enhanced(ws: &str, ds: &str) -> StepKind {
    StepKind::Dataset(DatasetStep {
        workspace: ws.into(),
        dataset: ds.into(),
        notify: NotifyOption::NoNotification,
        refresh: Some(EnhancedRefresh {
            refresh_type: Some(RefreshType::Full),
            ..EnhancedRefresh::default()
        }),
    })
}

/// Waits (bounded) until the simulator saw a request; explicit synchronisation, no timing.
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
async fn standard_refresh_finds_its_own_entry_and_succeeds() {
    let rig = rig("workspaces:\n  Sales:\n    datasets:\n      Orders: {duration: 300ms}\n").await;
    let ran = run_step(&rig, step("orders", standard("Sales", "Orders"))).await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    let posts = requests_to(&rig.sim, "POST", "/refreshes");
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].json(),
        Some(json!({"notifyOption": "NoNotification"}))
    );
    // The workspace was looked up by name with an OData filter.
    let groups = requests_to(&rig.sim, "GET", "/v1.0/myorg/groups");
    assert!(groups.iter().any(|r| {
        r.query
            .as_deref()
            .is_some_and(|q| q.contains("$filter=name%20eq%20%27Sales%27"))
    }));
    let id = ran.remote_id().expect("our request id was reported");
    match ran.handle() {
        Some(RemoteHandle::StandardRefresh { request_id, .. }) => assert_eq!(request_id, Some(id)),
        other => panic!("unexpected handle {other:?}"),
    }
}

#[tokio::test]
async fn standard_refresh_survives_history_lag() {
    let rig = rig("workspaces:\n  Sales:\n    datasets:\n      Orders: {duration: 300ms, history_lag: 1500ms}\n").await;
    let ran = run_step(&rig, step("orders", standard("Sales", "Orders"))).await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
}

#[tokio::test]
async fn silently_dropped_refresh_is_a_clear_failure() {
    let rig = rig("workspaces:\n  Sales:\n    datasets:\n      Orders: {duration: 300ms, drop_probability: 1.0}\n").await;
    let ran = run_step(&rig, step("orders", standard("Sales", "Orders"))).await;
    let err = ran.error();
    assert!(err.contains("never appeared in its history"), "{err}");
}

#[tokio::test]
async fn standard_failure_surfaces_the_service_exception() {
    let rig = rig(
        "workspaces:\n  Sales:\n    datasets:\n      Orders:\n        duration: 200ms\n        outcomes: [{fail: {code: ModelRefreshFailed_CredentialsNotSpecified}}]\n",
    )
    .await;
    let ran = run_step(&rig, step("orders", standard("Sales", "Orders"))).await;
    let err = ran.error();
    assert!(
        err.contains("ModelRefreshFailed_CredentialsNotSpecified"),
        "{err}"
    );
}

#[tokio::test]
async fn enhanced_refresh_polls_execution_details() {
    let rig = rig("workspaces:\n  Sales:\n    datasets:\n      Orders: {duration: 500ms}\n").await;
    let ran = run_step(&rig, step("orders", enhanced("Sales", "Orders"))).await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    let posts = requests_to(&rig.sim, "POST", "/refreshes");
    assert_eq!(posts[0].json(), Some(json!({"type": "Full"})));
    let id = ran.remote_id().unwrap();
    assert!(!requests_to(&rig.sim, "GET", &format!("/refreshes/{id}")).is_empty());
}

#[tokio::test]
async fn enhanced_failure_surfaces_the_messages() {
    let rig = rig(
        "workspaces:\n  Sales:\n    datasets:\n      Orders:\n        duration: 200ms\n        outcomes: [{fail: {code: '0xC11C0020', message: 'The model was evicted'}}]\n",
    )
    .await;
    let ran = run_step(&rig, step("orders", enhanced("Sales", "Orders"))).await;
    let err = ran.error();
    assert!(err.contains("The model was evicted"), "{err}");
}

#[tokio::test]
async fn timeout_cancels_the_enhanced_refresh_with_delete() {
    let rig = rig("workspaces:\n  Sales:\n    datasets:\n      Orders: {never_ends: true}\n").await;
    let cancel = Cancel::new();
    let s = step("orders", enhanced("Sales", "Orders"));
    let task = {
        let cancel = cancel.clone();
        let rig = &rig;
        async move {
            run_step_with(
                rig,
                s,
                AttemptOptions {
                    cancel: Some(cancel),
                    ..Default::default()
                },
            )
            .await
        }
    };
    let (ran, ()) = tokio::join!(task, async {
        until_seen(&rig.sim, "GET", "/refreshes/").await;
        cancel.cancel(CancelReason::Timeout);
    });
    assert!(
        matches!(ran.outcome, AttemptOutcome::Cancelled { .. }),
        "{:?}",
        ran.outcome
    );
    assert!(ran.error().contains("cancel requested"), "{}", ran.error());
    let id = ran.remote_id().unwrap();
    assert_eq!(
        requests_to(&rig.sim, "DELETE", &format!("/refreshes/{id}")).len(),
        1
    );
}

#[tokio::test]
async fn detach_leaves_the_refresh_running() {
    let rig = rig("workspaces:\n  Sales:\n    datasets:\n      Orders: {never_ends: true}\n").await;
    let cancel = Cancel::new();
    let s = step("orders", enhanced("Sales", "Orders"));
    let (ran, ()) = tokio::join!(
        run_step_with(
            &rig,
            s,
            AttemptOptions {
                cancel: Some(cancel.clone()),
                ..Default::default()
            }
        ),
        async {
            until_seen(&rig.sim, "GET", "/refreshes/").await;
            cancel.cancel(CancelReason::Interrupt { detach: true });
        }
    );
    assert!(ran.error().contains("left running"), "{}", ran.error());
    assert!(requests_to(&rig.sim, "DELETE", "/refreshes/").is_empty());
}

const BUSY: &str = "workspaces:\n  Sales:\n    datasets:\n      Orders: {duration: 1s, running_at_start: true, running_at_start_by: enhanced_api}\n";

fn busy_step(if_running: IfRunning) -> pbibatch::job::model::Step {
    let mut s = step("orders", standard("Sales", "Orders"));
    s.if_running = if_running;
    s
}

#[tokio::test]
async fn busy_dataset_fail() {
    let rig = rig(BUSY).await;
    let ran = run_step(&rig, busy_step(IfRunning::Fail)).await;
    assert!(ran.error().contains("already running"), "{}", ran.error());
    assert!(requests_to(&rig.sim, "POST", "/refreshes").is_empty());
}

#[tokio::test]
async fn busy_dataset_adopt() {
    let rig = rig(BUSY).await;
    let ran = run_step(&rig, busy_step(IfRunning::Adopt)).await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: true });
    assert!(requests_to(&rig.sim, "POST", "/refreshes").is_empty());
}

#[tokio::test]
async fn busy_dataset_wait() {
    let rig = rig(BUSY).await;
    let ran = run_step(&rig, busy_step(IfRunning::Wait)).await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    assert_eq!(requests_to(&rig.sim, "POST", "/refreshes").len(), 1);
    assert!(requests_to(&rig.sim, "DELETE", "/refreshes/").is_empty());
}

#[tokio::test]
async fn busy_dataset_restart_cancels_then_triggers() {
    let rig = rig(BUSY).await;
    let ran = run_step(&rig, busy_step(IfRunning::Restart)).await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    assert_eq!(requests_to(&rig.sim, "DELETE", "/refreshes/").len(), 1);
    assert_eq!(requests_to(&rig.sim, "POST", "/refreshes").len(), 1);
}

#[tokio::test]
async fn skip_if_fresh_skips_after_a_recent_success() {
    let rig = rig("workspaces:\n  Sales:\n    datasets:\n      Orders: {duration: 200ms}\n").await;
    let first = run_step(&rig, step("orders", standard("Sales", "Orders"))).await;
    assert_eq!(first.outcome, AttemptOutcome::Succeeded { adopted: false });
    let mut s = step("orders", standard("Sales", "Orders"));
    s.skip_if_fresh = Some(Duration::from_secs(3600));
    let second = run_step(&rig, s).await;
    match second.outcome {
        AttemptOutcome::Skipped { reason, kind } => {
            assert!(reason.starts_with("fresh: "), "{reason}");
            assert_eq!(kind, SkipKind::Fresh);
        }
        other => panic!("expected a skip, got {other:?}"),
    }
    assert_eq!(requests_to(&rig.sim, "POST", "/refreshes").len(), 1);
}

#[tokio::test]
async fn skip_if_fresh_triggers_when_the_last_success_is_older_than_the_window() {
    let rig = rig("workspaces:\n  Sales:\n    datasets:\n      Orders: {duration: 200ms}\n").await;
    let first = run_step(&rig, step("orders", standard("Sales", "Orders"))).await;
    assert_eq!(first.outcome, AttemptOutcome::Succeeded { adopted: false });
    // Let the last success age past a short window.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut s = step("orders", standard("Sales", "Orders"));
    s.skip_if_fresh = Some(Duration::from_secs(1));
    let second = run_step(&rig, s).await;
    assert_eq!(second.outcome, AttemptOutcome::Succeeded { adopted: false });
    assert_eq!(requests_to(&rig.sim, "POST", "/refreshes").len(), 2);
}

#[tokio::test]
async fn unknown_dataset_lists_near_matches() {
    let rig =
        rig("workspaces:\n  Sales:\n    datasets:\n      Orders: {}\n      Order Lines: {}\n")
            .await;
    let ran = run_step(&rig, step("orders", standard("Sales", "Ordrs"))).await;
    let err = ran.error();
    assert!(err.contains("`Ordrs` not found"), "{err}");
    assert!(err.contains("`Orders`"), "{err}");
    let ran = run_step(&rig, step("orders", standard("Sals", "Orders"))).await;
    assert!(
        ran.error().contains("workspace `Sals` not found"),
        "{}",
        ran.error()
    );
    assert!(ran.error().contains("`Sales`"), "{}", ran.error());
}

#[tokio::test]
async fn reattach_polls_instead_of_triggering() {
    let rig = rig("workspaces:\n  Sales:\n    datasets:\n      Orders: {duration: 600ms}\n").await;
    let first = run_step(&rig, step("orders", enhanced("Sales", "Orders"))).await;
    let handle = first.handle().unwrap();
    let again = run_step_with(
        &rig,
        step("orders", enhanced("Sales", "Orders")),
        AttemptOptions {
            reattach: Some(handle),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(again.outcome, AttemptOutcome::Succeeded { adopted: false });
    assert_eq!(requests_to(&rig.sim, "POST", "/refreshes").len(), 1);
}

#[tokio::test]
async fn restart_of_a_scheduled_refresh_waits_because_it_cannot_be_cancelled() {
    let rig = rig(
        "workspaces:\n  Sales:\n    datasets:\n      Orders: {duration: 800ms, running_at_start: true, running_at_start_by: schedule}\n",
    )
    .await;
    let ran = run_step(&rig, busy_step(IfRunning::Restart)).await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    // Only enhanced refreshes can be cancelled: no DELETE is sent for a scheduled one; the
    // step waited for it to end, then triggered.
    assert!(requests_to(&rig.sim, "DELETE", "/refreshes/").is_empty());
    assert_eq!(requests_to(&rig.sim, "POST", "/refreshes").len(), 1);
    assert!(
        ran.updates
            .iter()
            .any(|u| u.note.as_deref().is_some_and(|n| n.contains("waiting")))
    );
}

#[tokio::test]
async fn a_directquery_model_is_refused_before_any_trigger() {
    let rig = rig("workspaces:\n  Sales:\n    datasets:\n      Live: {refreshable: false}\n").await;
    // By name: the dataset list says `isRefreshable: false`, so nothing is sent.
    let ran = run_step(&rig, step("live", standard("Sales", "Live"))).await;
    assert!(
        matches!(ran.outcome, AttemptOutcome::Refused { .. }),
        "no retry can help"
    );
    let err = ran.error();
    assert!(
        err.contains("dataset `Live` is not refreshable (DirectQuery or live connection)"),
        "{err}"
    );
    assert!(requests_to(&rig.sim, "POST", "/refreshes").is_empty());
    // By id (no list read): the service's 400 is what the user sees, and it is not retried
    // either: the service refuses the request as written.
    let (ws, ds) = rig.sim.ids("Sales", "Live").unwrap();
    let ran = run_step(&rig, step("live", standard(&ws, &ds))).await;
    assert!(matches!(ran.outcome, AttemptOutcome::Refused { .. }));
    let err = ran.error();
    assert!(err.contains("400"), "{err}");
    assert!(err.contains("isRefreshable is false"), "{err}");
    assert_eq!(requests_to(&rig.sim, "POST", "/refreshes").len(), 1);
}

#[tokio::test]
async fn an_unknown_name_is_refused_with_near_matches() {
    let rig = rig("workspaces:\n  Sales:\n    datasets:\n      Orders: {}\n").await;
    let ran = run_step(&rig, step("orders", standard("Sales", "Ordres"))).await;
    assert!(
        matches!(ran.outcome, AttemptOutcome::Refused { .. }),
        "{:?}",
        ran.outcome
    );
    let err = ran.error();
    assert!(err.contains("dataset `Ordres` not found"), "{err}");
    assert!(err.contains("Orders"), "near match offered: {err}");
    assert!(requests_to(&rig.sim, "POST", "/refreshes").is_empty());
}

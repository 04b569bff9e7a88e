//! The remote-run protocol end to end against the simulator: what an earlier attempt (or a
//! killed run being resumed) left is found again, never triggered twice (issue "Exactly
//! once, and true", cases 1–3).

use std::time::Duration;

use indexmap::IndexMap;
use pbibatch::executor::{AttemptOutcome, Cancel, CancelReason, RemoteHandle};
use pbibatch::job::model::{
    DataflowStep, DatasetStep, EnhancedRefresh, Generation, IfRunning, NotifyOption, SasFlowStep,
    StepKind, WaitFor,
};
use pbibatch::secret::Secret;
use serde_json::json;

use crate::exec_support::{AttemptOptions, Rig, requests_to, rig, run_step, run_step_with, step};

const FLOW: &str = "workspaces:\n  Data Admin:\n    dataflows:\n      Master Order List: {duration: 1500ms}\nflows:\n  order_list:\n    delay: 200ms\n    starts_dataflow: {workspace: Data Admin, dataflow: Master Order List}\n";

fn flow(rig: &Rig) -> StepKind {
    StepKind::SasFlow(SasFlowStep {
        url: Secret::new(rig.sim.flow_url("order_list")),
        method: "POST".into(),
        headers: IndexMap::new(),
        body: Some(json!({"dataflow": "Master Order List"})),
        expect_status: vec![],
        wait_for: Some(WaitFor {
            workspace: "Data Admin".into(),
            dataflow: "Master Order List".into(),
        }),
        oauth: false,
    })
}

fn flow_posts(rig: &Rig) -> usize {
    requests_to(&rig.sim, "POST", "/triggers/manual/paths/invoke").len()
}

/// Runs one attempt and stops it (leaving the remote work running, as a kill does) once
/// `ready` says so; returns the last handle it reported.
async fn attempt_cut_short(
    rig: &Rig,
    s: pbibatch::job::model::Step,
    ready: impl Fn(&Rig) -> bool,
) -> Option<RemoteHandle> {
    let cancel = Cancel::new();
    let (ran, ()) = tokio::join!(
        run_step_with(
            rig,
            s,
            AttemptOptions {
                cancel: Some(cancel.clone()),
                ..Default::default()
            }
        ),
        async {
            for _ in 0..400 {
                if ready(rig) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            cancel.cancel(CancelReason::Interrupt { detach: true });
        }
    );
    ran.handle()
}

#[tokio::test]
async fn a_resumed_flow_follows_its_transaction_instead_of_firing_again() {
    let rig = rig(FLOW).await;
    let s = step("master_order_list", flow(&rig));
    // The first run is cut short while it waits for the transaction the flow started.
    let handle = attempt_cut_short(&rig, s.clone(), |r| {
        requests_to(&r.sim, "GET", "/transactions").len() >= 3
    })
    .await
    .expect("the flow step records a handle");
    assert!(matches!(handle, RemoteHandle::DataflowTransaction { .. }));
    assert_eq!(flow_posts(&rig), 1);
    // The resumed attempt re-attaches: the flow is not invoked a second time.
    let ran = run_step_with(
        &rig,
        s,
        AttemptOptions {
            reattach: Some(handle),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    assert_eq!(flow_posts(&rig), 1, "the flow was fired twice");
    assert_eq!(ran.updates.iter().map(|u| u.triggers).sum::<u32>(), 0);
}

#[tokio::test]
async fn a_flow_killed_before_its_answer_was_recorded_is_found_by_difference() {
    let rig = rig(FLOW).await;
    let s = step("master_order_list", flow(&rig));
    // Cut short right after the POST: only the handle written before the trigger is known.
    let pending = attempt_cut_short(&rig, s.clone(), |r| flow_posts(r) == 1).await;
    let pending = match pending.expect("a handle is recorded before the trigger") {
        RemoteHandle::DataflowTransaction {
            workspace_id,
            dataflow_id,
            known_before,
            ..
        } => RemoteHandle::DataflowTransaction {
            workspace_id,
            dataflow_id,
            transaction_id: None,
            known_before,
        },
        other => panic!("{other:?}"),
    };
    let ran = run_step_with(
        &rig,
        s,
        AttemptOptions {
            reattach: Some(pending),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    assert_eq!(flow_posts(&rig), 1, "the flow was fired twice");
}

#[tokio::test]
async fn a_flow_waiting_for_a_dataflow_honours_if_running() {
    let busy = "workspaces:\n  Data Admin:\n    dataflows:\n      Master Order List: {duration: 800ms, running_at_start: true}\nflows:\n  order_list:\n    starts_dataflow: {workspace: Data Admin, dataflow: Master Order List}\n";
    let rig_fail = rig(busy).await;
    let mut s = step("master_order_list", flow(&rig_fail));
    s.if_running = IfRunning::Fail;
    let ran = run_step(&rig_fail, s).await;
    assert!(
        matches!(ran.outcome, AttemptOutcome::Refused { .. }),
        "{:?}",
        ran.outcome
    );
    assert!(ran.error().contains("already running"), "{}", ran.error());
    assert_eq!(flow_posts(&rig_fail), 0);

    let rig_wait = rig(busy).await;
    let mut s = step("master_order_list", flow(&rig_wait));
    s.if_running = IfRunning::Wait;
    let ran = run_step(&rig_wait, s).await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    assert_eq!(flow_posts(&rig_wait), 1);
    assert!(
        ran.updates
            .iter()
            .any(|u| u.note.as_deref().is_some_and(|n| n.contains("waiting")))
    );
}

fn enhanced(ws: &str, ds: &str) -> StepKind {
    StepKind::Dataset(DatasetStep {
        workspace: ws.into(),
        dataset: ds.into(),
        notify: NotifyOption::NoNotification,
        refresh: Some(EnhancedRefresh::default()),
    })
}

#[tokio::test]
async fn an_enhanced_refresh_whose_answer_was_not_recorded_is_not_triggered_again() {
    let rig = rig("workspaces:\n  Sales:\n    datasets:\n      Orders: {duration: 1s}\n").await;
    let s = step("orders", enhanced("Sales", "Orders"));
    attempt_cut_short(&rig, s.clone(), |r| {
        !requests_to(&r.sim, "POST", "/refreshes").is_empty()
    })
    .await;
    let (ws, ds) = rig.sim.ids("Sales", "Orders").unwrap();
    // What a kill between the trigger and its recorded answer leaves: the history read
    // before the trigger, no request id.
    let pending = RemoteHandle::EnhancedRefresh {
        workspace_id: ws,
        dataset_id: ds,
        request_id: None,
        known_before: Vec::new(),
    };
    let ran = run_step_with(
        &rig,
        s,
        AttemptOptions {
            reattach: Some(pending),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    assert_eq!(requests_to(&rig.sim, "POST", "/refreshes").len(), 1);
}

#[tokio::test]
async fn a_gen2_job_whose_answer_was_not_recorded_is_not_triggered_again() {
    let rig = rig(
        "workspaces:\n  WS:\n    fabric_dataflows:\n      DF: {duration: 1s, retry_after: 0}\n",
    )
    .await;
    let df = DataflowStep {
        workspace: "WS".into(),
        dataflow: "DF".into(),
        generation: Generation::Gen2,
        notify: NotifyOption::NoNotification,
        process_type: None,
        execute_option: None,
        parameters: IndexMap::new(),
    };
    let s = step("df", StepKind::Dataflow(df));
    attempt_cut_short(&rig, s.clone(), |r| {
        !requests_to(&r.sim, "POST", "/jobs/instances").is_empty()
    })
    .await;
    let (ws, item) = rig
        .sim
        .ids("WS", "DF")
        .expect("the simulator knows the dataflow");
    let pending = RemoteHandle::FabricJob {
        workspace_id: ws,
        item_id: item,
        job_instance_id: None,
        known_before: Vec::new(),
    };
    let ran = run_step_with(
        &rig,
        s,
        AttemptOptions {
            reattach: Some(pending),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    assert_eq!(requests_to(&rig.sim, "POST", "/jobs/instances").len(), 1);
}

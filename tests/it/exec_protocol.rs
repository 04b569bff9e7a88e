//! The remote-run protocol end to end against the simulator: what an earlier attempt (or a
//! killed run being resumed) left is found again, never triggered twice (issue "Exactly
//! once, and true", cases 1–3).

use std::time::Duration;

use indexmap::IndexMap;
use pbibatch::event::RemoteHandle;
use pbibatch::executor::{AttemptOutcome, Cancel, CancelReason};
use pbibatch::job::model::{
    DataflowStep, DatasetStep, EnhancedRefresh, Generation, IfRunning, NotifyOption, SasFlowStep,
    StepKind, WaitFor,
};
use pbibatch::secret::Secret;
use pbibatch::sim::{Fault, FaultRule};
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

/// The Dataflow Gen2 `DF` of workspace `WS`.
fn gen2_df() -> DataflowStep {
    DataflowStep {
        workspace: "WS".into(),
        dataflow: "DF".into(),
        generation: Generation::Gen2,
        notify: NotifyOption::NoNotification,
        process_type: None,
        execute_option: None,
        parameters: IndexMap::new(),
    }
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
    let df = gen2_df();
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

/// The same simulator and connections, with an HTTP retry budget of `budget`: a
/// `Retry-After` longer than it comes back to the executor, as an hour-long one does with the
/// default budget of 10 minutes.
fn with_budget(rig: Rig, budget: Duration) -> Rig {
    let mut cfg = crate::exec_support::sim_config(&rig.sim);
    cfg.retry.max_total_wait = budget;
    let client = pbibatch::powerbi::PowerBiClient::new(cfg, rig.connections.clone()).unwrap();
    Rig { client, ..rig }
}

#[tokio::test]
async fn a_poll_throttled_past_the_client_budget_keeps_following_the_refresh() {
    let rig = rig("workspaces:\n  Sales:\n    datasets:\n      Orders: {duration: 1500ms}\n").await;
    let rig = with_budget(rig, Duration::from_millis(500));
    rig.sim.arm_fault(FaultRule {
        method: "GET".into(),
        path: "*/refreshes/*".into(),
        nth: 1,
        fault: Fault::Throttle { retry_after: 2 },
    });
    let ran = run_step(&rig, step("orders", enhanced("Sales", "Orders"))).await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    assert_eq!(requests_to(&rig.sim, "POST", "/refreshes").len(), 1);
    assert!(
        ran.updates
            .iter()
            .any(|u| u.note.as_deref().is_some_and(|n| n.contains("429"))),
        "the throttled read is told"
    );
}

#[tokio::test]
async fn an_export_whose_answer_was_lost_is_started_again_and_both_starts_count() {
    let dir = tempfile::tempdir().unwrap();
    let rig = rig("workspaces:\n  Sales:\n    reports:\n      Book: {duration: 300ms}\n").await;
    rig.sim.arm_fault(FaultRule {
        method: "POST".into(),
        path: "*/ExportTo".into(),
        nth: 1,
        fault: Fault::DropAfter,
    });
    let export = pbibatch::job::model::ExportSpec {
        format: pbibatch::job::model::ExportFormat::Pdf,
        path: dir.path().join("book.pdf"),
        pages: vec![],
        bookmark: None,
        parameters: IndexMap::new(),
        locale: None,
        include_hidden_pages: None,
        filter: None,
        identities: vec![],
    };
    let s = step(
        "book",
        StepKind::Report(pbibatch::job::model::ReportStep {
            workspace: "Sales".into(),
            report: "Book".into(),
            export,
        }),
    );
    let ran = run_step(&rig, s).await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    assert_eq!(requests_to(&rig.sim, "POST", "/ExportTo").len(), 2);
    assert_eq!(ran.updates.iter().map(|u| u.triggers).sum::<u32>(), 2);
    assert!(dir.path().join("book.pdf").exists());
}

#[tokio::test]
async fn a_refused_trigger_is_not_retried() {
    // A 403 says the caller may not do this: another attempt meets the same answer. (The
    // Fabric `InsufficientPrivileges` answer is classified the same way: see the protocol's
    // unit tests.)
    let rig = rig("flows:\n  order_list: {statuses: [403]}\n").await;
    let s = step(
        "flow",
        StepKind::SasFlow(SasFlowStep {
            url: Secret::new(rig.sim.flow_url("order_list")),
            method: "POST".into(),
            headers: IndexMap::new(),
            body: None,
            expect_status: vec![],
            wait_for: None,
            oauth: false,
        }),
    );
    let ran = run_step(&rig, s).await;
    assert!(
        matches!(ran.outcome, AttemptOutcome::Refused { .. }),
        "{:?}",
        ran.outcome
    );
    assert!(ran.error().contains("403"), "{}", ran.error());
}

#[tokio::test]
async fn skip_if_fresh_reads_the_runs_of_gen2_dataflows_and_flows() {
    // Gen2: a job that completed a moment ago makes the next step fresh.
    let rig = rig(
        "workspaces:\n  WS:\n    fabric_dataflows:\n      DF: {duration: 100ms, retry_after: 0}\n",
    )
    .await;
    let df = gen2_df();
    let first = run_step(&rig, step("df", StepKind::Dataflow(df.clone()))).await;
    assert_eq!(first.outcome, AttemptOutcome::Succeeded { adopted: false });
    let mut s = step("df", StepKind::Dataflow(df));
    s.skip_if_fresh = Some(Duration::from_secs(3600));
    let second = run_step(&rig, s).await;
    assert!(
        matches!(second.outcome, AttemptOutcome::Skipped { .. }),
        "{:?}",
        second.outcome
    );
    assert_eq!(requests_to(&rig.sim, "POST", "/jobs/instances").len(), 1);

    // sas_flow + wait_for: the dataflow's transactions say it is fresh; the flow is not fired.
    let rig = rig_flow_fast().await;
    let first = run_step(&rig, step("f", flow(&rig))).await;
    assert_eq!(first.outcome, AttemptOutcome::Succeeded { adopted: false });
    let mut s = step("f", flow(&rig));
    s.skip_if_fresh = Some(Duration::from_secs(3600));
    let second = run_step(&rig, s).await;
    assert!(
        matches!(second.outcome, AttemptOutcome::Skipped { .. }),
        "{:?}",
        second.outcome
    );
    assert_eq!(flow_posts(&rig), 1);
}

async fn rig_flow_fast() -> Rig {
    rig("workspaces:\n  Data Admin:\n    dataflows:\n      Master Order List: {duration: 200ms}\nflows:\n  order_list:\n    starts_dataflow: {workspace: Data Admin, dataflow: Master Order List}\n").await
}

#[tokio::test]
async fn a_standard_refresh_whose_history_read_is_throttled_past_the_budget_is_still_found() {
    let rig = rig("workspaces:\n  Sales:\n    datasets:\n      Orders: {duration: 400ms}\n").await;
    let rig = with_budget(rig, Duration::from_millis(500));
    // The first history read is the one before the trigger; the second finds the refresh.
    rig.sim.arm_fault(FaultRule {
        method: "GET".into(),
        path: "*/refreshes".into(),
        nth: 2,
        fault: Fault::Throttle { retry_after: 2 },
    });
    let s = step(
        "orders",
        StepKind::Dataset(DatasetStep {
            workspace: "Sales".into(),
            dataset: "Orders".into(),
            notify: NotifyOption::NoNotification,
            refresh: None,
        }),
    );
    let ran = run_step(&rig, s).await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    assert_eq!(requests_to(&rig.sim, "POST", "/refreshes").len(), 1);
}

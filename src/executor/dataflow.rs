//! `dataflow`: Gen1 through Power BI REST (refresh + transactions), Gen2 through the Fabric
//! job scheduler (`Execute` job instance).

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::common::{
    CancelTarget, Stop, TriggerErrorKind, appear_wait, classify, conclude, ended_within, guard,
    guard_raw, is_one_of, note, resource_update, skipped_fresh, took,
};
use super::poll::{Poller, sleep_or_cancel};
use super::{AttemptContext, AttemptOutcome, AttemptUpdate, RemoteHandle};
use crate::job::model::{DataflowStep, Generation, IfRunning, ProcessType};
use crate::powerbi::PowerBiClient;
use crate::powerbi::api::{JobInstance, Transaction};
use crate::powerbi::resolve::ItemKind;

const MAX_AMBIGUOUS_TRIGGERS: u32 = 3;
const MAX_RUNNING_ROUNDS: u32 = 5;

/// Runs one attempt of a dataflow step.
pub(crate) async fn run(
    client: PowerBiClient,
    ctx: AttemptContext,
    df: DataflowStep,
) -> AttemptOutcome {
    let mut target: Option<CancelTarget> = None;
    let result = match df.generation {
        Generation::Gen1 => gen1(&client, &ctx, &df, &mut target).await,
        Generation::Gen2 => gen2(&client, &ctx, &df, &mut target).await,
    };
    conclude(&client, &ctx, result, target.as_ref()).await
}

// ---------------------------------------------------------------- Gen1 ----------------

/// A Gen1 transaction's state.
pub(crate) enum TxProgress {
    Running,
    Succeeded,
    Failed(String),
}

/// Transaction statuses are undocumented free text: `InProgress`/`NotStarted` (or none,
/// without an end time) run; success words succeed; anything else that ended failed.
pub(crate) fn tx_progress(t: &Transaction) -> TxProgress {
    let status = t.status.as_deref();
    let ended = t.end_time.as_deref().is_some_and(|e| !e.is_empty());
    if is_one_of(status, &["InProgress", "NotStarted", "Running", "Queued"]) {
        return TxProgress::Running;
    }
    if is_one_of(status, &["Success", "Succeeded", "Completed"]) {
        return TxProgress::Succeeded;
    }
    if status.is_none() && !ended {
        return TxProgress::Running;
    }
    if status.is_some()
        && !ended
        && !is_one_of(
            status,
            &["Failed", "Failure", "Cancelled", "Canceled", "Error"],
        )
    {
        // An unknown word with no end time: still running.
        return TxProgress::Running;
    }
    let word = status.unwrap_or("ended");
    let detail = match &t.error {
        Some(Value::String(s)) if !s.is_empty() => format!(": {s}"),
        Some(v @ Value::Object(_)) => v
            .get("message")
            .and_then(Value::as_str)
            .map(|m| format!(": {m}"))
            .unwrap_or_default(),
        _ => String::new(),
    };
    TxProgress::Failed(format!("dataflow refresh {word}{detail}"))
}

/// A Gen1 dataflow in a workspace, and the polling helpers around its transactions.
pub(crate) struct Gen1<'a> {
    pub client: &'a PowerBiClient,
    pub ctx: &'a AttemptContext,
    pub conn: &'a str,
    pub ws: String,
    pub df: String,
    pub name: String,
}

impl Gen1<'_> {
    /// Resolves the workspace and the dataflow by name.
    pub(crate) async fn resolve<'a>(
        client: &'a PowerBiClient,
        ctx: &'a AttemptContext,
        workspace: &str,
        dataflow: &str,
    ) -> Result<Gen1<'a>, Stop> {
        let conn = ctx.step.connection.as_str();
        let ws = guard(&ctx.cancel, client.workspace_id(conn, workspace)).await?;
        let item = guard(
            &ctx.cancel,
            client.resolve_item(conn, &ws, ItemKind::DataflowGen1, dataflow),
        )
        .await?;
        ctx.update(resource_update(&ws, &item.id, &item.name));
        Ok(Gen1 {
            client,
            ctx,
            conn,
            ws,
            df: item.id,
            name: item.name,
        })
    }

    pub(crate) async fn transactions(&self) -> Result<Vec<Transaction>, Stop> {
        guard(
            &self.ctx.cancel,
            self.client
                .dataflow_transactions(self.conn, &self.ws, &self.df),
        )
        .await
    }

    pub(crate) fn target(&self, transaction_id: &str) -> CancelTarget {
        CancelTarget::Transaction {
            workspace_id: self.ws.clone(),
            transaction_id: transaction_id.to_string(),
        }
    }

    pub(crate) fn handle(
        &self,
        transaction_id: Option<&str>,
        known: &HashSet<String>,
    ) -> RemoteHandle {
        RemoteHandle::DataflowTransaction {
            workspace_id: self.ws.clone(),
            dataflow_id: self.df.clone(),
            transaction_id: transaction_id.map(str::to_string),
            known_before: known.iter().cloned().collect(),
        }
    }

    /// Waits for a transaction not in `known` to appear (bounded by `limit`).
    pub(crate) async fn find_new(
        &self,
        known: &HashSet<String>,
        started: Instant,
        limit: Duration,
    ) -> Result<Option<String>, Stop> {
        let mut poller = Poller::starting_at(
            self.ctx.step.poll_interval.min(Duration::from_secs(5)),
            started,
        );
        loop {
            let txs = self.transactions().await?;
            if let Some(t) = txs.iter().rev().find(|t| !known.contains(&t.id)) {
                return Ok(Some(t.id.clone()));
            }
            if started.elapsed() >= limit {
                return Ok(None);
            }
            poller.wait(&self.ctx.cancel, None).await?;
        }
    }

    /// Polls transaction `id` to a final state.
    pub(crate) async fn poll(&self, id: &str, mut poller: Poller) -> Result<TxProgress, Stop> {
        let mut last: Option<String> = None;
        loop {
            let txs = self.transactions().await?;
            let Some(t) = txs.iter().find(|t| t.id == id) else {
                return Err(Stop::Failed(format!(
                    "transaction {id} disappeared from the transactions of dataflow {}",
                    self.name
                )));
            };
            if t.status != last {
                last = t.status.clone();
                self.ctx.update(AttemptUpdate {
                    remote_status: t.status.clone(),
                    remote_id: Some(id.to_string()),
                    ..AttemptUpdate::default()
                });
            }
            match tx_progress(t) {
                TxProgress::Running => {}
                done => return Ok(done),
            }
            poller.wait(&self.ctx.cancel, None).await?;
        }
    }
}

/// How long the last successful transaction took (the likely length of the next one).
pub(crate) fn expected_duration(txs: &[Transaction]) -> Option<Duration> {
    txs.iter()
        .filter(|t| matches!(tx_progress(t), TxProgress::Succeeded))
        .find_map(|t| took(t.start_time.as_deref(), t.end_time.as_deref()))
}

fn tx_outcome(p: TxProgress, adopted: bool) -> AttemptOutcome {
    match p {
        TxProgress::Succeeded | TxProgress::Running => AttemptOutcome::Succeeded { adopted },
        TxProgress::Failed(error) => AttemptOutcome::Failed { error },
    }
}

fn process_type_word(p: ProcessType) -> &'static str {
    match p {
        ProcessType::Default => "default",
        ProcessType::ProcessFull => "processFull",
    }
}

fn notify_word(n: crate::job::model::NotifyOption) -> &'static str {
    match n {
        crate::job::model::NotifyOption::NoNotification => "NoNotification",
        crate::job::model::NotifyOption::MailOnFailure => "MailOnFailure",
        // Not supported for dataflows: validation should refuse it; send the closest.
        crate::job::model::NotifyOption::MailOnCompletion => "MailOnFailure",
    }
}

async fn gen1(
    client: &PowerBiClient,
    ctx: &AttemptContext,
    df: &DataflowStep,
    target: &mut Option<CancelTarget>,
) -> Result<AttemptOutcome, Stop> {
    let g = Gen1::resolve(client, ctx, &df.workspace, &df.dataflow).await?;
    let poll_interval = ctx.step.poll_interval;

    if let Some(RemoteHandle::DataflowTransaction {
        transaction_id,
        known_before,
        ..
    }) = ctx.reattach.clone()
    {
        let id = match transaction_id {
            Some(id) => Some(id),
            None => {
                let known: HashSet<String> = known_before.into_iter().collect();
                g.find_new(&known, Instant::now(), appear_wait(poll_interval))
                    .await?
            }
        };
        if let Some(id) = id {
            *target = Some(g.target(&id));
            let p = g.poll(&id, Poller::new(poll_interval)).await?;
            return Ok(tx_outcome(p, false));
        }
    }

    let mut txs = g.transactions().await?;
    if let Some(window) = ctx.step.skip_if_fresh
        && let Some(end) = txs
            .iter()
            .filter(|t| matches!(tx_progress(t), TxProgress::Succeeded))
            .find_map(|t| ended_within(t.end_time.as_deref(), window))
    {
        return Ok(skipped_fresh(end, window));
    }

    let mut rounds = 0;
    let mut ambiguous = 0;
    loop {
        if let Some(running) = txs
            .iter()
            .find(|t| matches!(tx_progress(t), TxProgress::Running))
            .cloned()
        {
            rounds += 1;
            if rounds > MAX_RUNNING_ROUNDS {
                return Err(Stop::Failed(format!(
                    "dataflow {} kept running other refreshes; gave up after {MAX_RUNNING_ROUNDS} waits",
                    g.name
                )));
            }
            match ctx.step.if_running {
                IfRunning::Fail => {
                    return Err(Stop::Failed(format!(
                        "a refresh of dataflow {} is already running (transaction {}); if_running is fail",
                        g.name, running.id
                    )));
                }
                IfRunning::Adopt => {
                    ctx.update(AttemptUpdate {
                        remote_id: Some(running.id.clone()),
                        note: Some(format!("adopting running transaction {}", running.id)),
                        ..AttemptUpdate::default()
                    });
                    *target = Some(g.target(&running.id));
                    let p = g.poll(&running.id, Poller::new(poll_interval)).await?;
                    return Ok(tx_outcome(p, true));
                }
                IfRunning::Restart => {
                    ctx.update(note(format!(
                        "cancelling running transaction {} (if_running: restart)",
                        running.id
                    )));
                    match guard_raw(
                        &ctx.cancel,
                        client.cancel_transaction(g.conn, &g.ws, &running.id),
                    )
                    .await?
                    {
                        Ok(_) => {}
                        Err(e) => ctx.update(note(format!(
                            "cannot cancel transaction {} ({e}); waiting for it to end",
                            running.id
                        ))),
                    }
                    g.poll(&running.id, Poller::new(poll_interval)).await?;
                }
                IfRunning::Wait => {
                    ctx.update(note(format!(
                        "waiting for running transaction {} to end",
                        running.id
                    )));
                    g.poll(&running.id, Poller::new(poll_interval)).await?;
                }
            }
            txs = g.transactions().await?;
            continue;
        }

        let known: HashSet<String> = txs.iter().map(|t| t.id.clone()).collect();
        ctx.update(AttemptUpdate {
            handle: Some(g.handle(None, &known)),
            ..AttemptUpdate::default()
        });
        let started = Instant::now();
        let answer = guard_raw(
            &ctx.cancel,
            client.trigger_dataflow_refresh(
                g.conn,
                &g.ws,
                &g.df,
                notify_word(df.notify),
                df.process_type.map(process_type_word),
            ),
        )
        .await?;
        if let Err(e) = answer {
            match classify(&e) {
                TriggerErrorKind::AlreadyRunning => {
                    txs = g.transactions().await?;
                    if !txs
                        .iter()
                        .any(|t| matches!(tx_progress(t), TxProgress::Running))
                    {
                        return Err(e.into());
                    }
                    continue;
                }
                TriggerErrorKind::Ambiguous => {
                    ambiguous += 1;
                    if g.find_new(
                        &known,
                        started,
                        Duration::from_secs(10).min(appear_wait(poll_interval)),
                    )
                    .await?
                    .is_none()
                    {
                        if ambiguous >= MAX_AMBIGUOUS_TRIGGERS {
                            return Err(e.into());
                        }
                        txs = g.transactions().await?;
                        continue;
                    }
                    tracing::info!(step = %ctx.step.id, "dataflow trigger answer was lost but a transaction started");
                }
                TriggerErrorKind::Other => return Err(e.into()),
            }
        }
        let Some(id) = g
            .find_new(&known, started, appear_wait(poll_interval))
            .await?
        else {
            return Err(Stop::Failed(format!(
                "the refresh of dataflow {} was accepted but no new transaction appeared within {} (the service may have dropped it)",
                g.name,
                humantime::format_duration(appear_wait(poll_interval))
            )));
        };
        *target = Some(g.target(&id));
        ctx.update(AttemptUpdate {
            remote_id: Some(id.clone()),
            handle: Some(g.handle(Some(&id), &known)),
            ..AttemptUpdate::default()
        });
        let poller = Poller::starting_at(poll_interval, started).expecting(expected_duration(&txs));
        let p = g.poll(&id, poller).await?;
        return Ok(tx_outcome(p, false));
    }
}

// ---------------------------------------------------------------- Gen2 ----------------

enum JobProgress {
    Running,
    Succeeded,
    Failed(String),
}

const JOB_RUNNING: &[&str] = &["NotStarted", "InProgress"];

fn job_progress(j: &JobInstance, step: &str) -> JobProgress {
    let status = j.status.as_deref();
    if is_one_of(status, &["Completed", "Succeeded"]) {
        return JobProgress::Succeeded;
    }
    if is_one_of(status, &["Failed"]) {
        let reason = j
            .failure_reason
            .as_ref()
            .and_then(|r| {
                let code = r.get("errorCode").and_then(Value::as_str);
                let msg = r.get("message").and_then(Value::as_str);
                match (code, msg) {
                    (Some(c), Some(m)) => Some(format!("{c}: {m}")),
                    (Some(c), None) => Some(c.to_string()),
                    (None, Some(m)) => Some(m.to_string()),
                    _ => None,
                }
            })
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        return JobProgress::Failed(format!("job instance {} failed{reason}", j.id));
    }
    if is_one_of(status, &["Cancelled", "Canceled"]) {
        return JobProgress::Failed(format!("job instance {} was cancelled remotely", j.id));
    }
    if is_one_of(status, &["Deduped"]) {
        return JobProgress::Failed(format!(
            "job instance {} was deduped: a job of the same type was already running, so the service skipped this one",
            j.id
        ));
    }
    if !is_one_of(status, JOB_RUNNING) {
        tracing::warn!(
            step,
            status = status.unwrap_or(""),
            "unknown job status, treated as running"
        );
    }
    JobProgress::Running
}

/// The `RunOnDemandItemJob` body for a Gen2 dataflow, when it needs one.
pub fn gen2_body(df: &DataflowStep) -> Option<Value> {
    if df.execute_option.is_none() && df.parameters.is_empty() {
        return None;
    }
    let mut data = serde_json::Map::new();
    if let Some(o) = df.execute_option {
        data.insert("executeOption".into(), json!(o));
    }
    if !df.parameters.is_empty() {
        let params: Vec<Value> = df
            .parameters
            .iter()
            .map(|(k, v)| json!({"parameterName": k, "type": "Automatic", "value": v}))
            .collect();
        data.insert("parameters".into(), Value::Array(params));
    }
    Some(json!({ "executionData": data }))
}

async fn gen2(
    client: &PowerBiClient,
    ctx: &AttemptContext,
    df: &DataflowStep,
    target: &mut Option<CancelTarget>,
) -> Result<AttemptOutcome, Stop> {
    let conn = ctx.step.connection.as_str();
    let step = ctx.step.id.as_str();
    let ws = guard(&ctx.cancel, client.workspace_id(conn, &df.workspace)).await?;
    let item = guard(
        &ctx.cancel,
        client.resolve_item(conn, &ws, ItemKind::DataflowGen2, &df.dataflow),
    )
    .await?;
    ctx.update(resource_update(&ws, &item.id, &item.name));
    let poll_interval = ctx.step.poll_interval;
    let job_target = |id: &str| CancelTarget::FabricJob {
        workspace_id: ws.clone(),
        item_id: item.id.clone(),
        job_id: id.to_string(),
    };
    let poll = |id: String, mut poller: Poller, first_wait: Option<Duration>| {
        let ws = ws.clone();
        let item_id = item.id.clone();
        async move {
            if let Some(w) = first_wait {
                sleep_or_cancel(&ctx.cancel, w).await?;
            }
            let mut last: Option<String> = None;
            loop {
                let (job, retry_after) =
                    guard(&ctx.cancel, client.fabric_job(conn, &ws, &item_id, &id)).await?;
                if job.status != last {
                    last = job.status.clone();
                    ctx.update(AttemptUpdate {
                        remote_status: job.status.clone(),
                        remote_id: Some(id.clone()),
                        ..AttemptUpdate::default()
                    });
                }
                match job_progress(&job, step) {
                    JobProgress::Running => {}
                    JobProgress::Succeeded => return Ok::<_, Stop>(Ok(())),
                    JobProgress::Failed(m) => return Ok(Err(m)),
                }
                poller.wait(&ctx.cancel, retry_after).await?;
            }
        }
    };
    let finish = |r: Result<(), String>, adopted: bool| match r {
        Ok(()) => AttemptOutcome::Succeeded { adopted },
        Err(error) => AttemptOutcome::Failed { error },
    };

    if let Some(RemoteHandle::FabricJob {
        job_instance_id, ..
    }) = ctx.reattach.clone()
    {
        *target = Some(job_target(&job_instance_id));
        let r = poll(job_instance_id, Poller::new(poll_interval), None).await?;
        return Ok(finish(r, false));
    }

    let mut jobs = guard(&ctx.cancel, client.fabric_jobs(conn, &ws, &item.id)).await?;
    if let Some(window) = ctx.step.skip_if_fresh
        && let Some(end) = jobs
            .iter()
            .filter(|j| is_one_of(j.status.as_deref(), &["Completed"]))
            .find_map(|j| ended_within(j.end_time_utc.as_deref(), window))
    {
        return Ok(skipped_fresh(end, window));
    }
    let body = gen2_body(df);
    let mut rounds = 0;
    let mut ambiguous = 0;
    loop {
        if let Some(active) = jobs
            .iter()
            .find(|j| is_one_of(j.status.as_deref(), JOB_RUNNING))
            .cloned()
        {
            rounds += 1;
            if rounds > MAX_RUNNING_ROUNDS {
                return Err(Stop::Failed(format!(
                    "dataflow {} kept running other jobs; gave up after {MAX_RUNNING_ROUNDS} waits",
                    item.name
                )));
            }
            match ctx.step.if_running {
                IfRunning::Fail => {
                    return Err(Stop::Failed(format!(
                        "a job of dataflow {} is already running (job instance {}); if_running is fail",
                        item.name, active.id
                    )));
                }
                IfRunning::Adopt => {
                    ctx.update(AttemptUpdate {
                        remote_id: Some(active.id.clone()),
                        note: Some(format!("adopting running job instance {}", active.id)),
                        ..AttemptUpdate::default()
                    });
                    *target = Some(job_target(&active.id));
                    let r = poll(active.id.clone(), Poller::new(poll_interval), None).await?;
                    return Ok(finish(r, true));
                }
                IfRunning::Restart => {
                    ctx.update(note(format!(
                        "cancelling running job instance {} (if_running: restart)",
                        active.id
                    )));
                    if let Err(e) = guard_raw(
                        &ctx.cancel,
                        client.cancel_fabric_job(conn, &ws, &item.id, &active.id),
                    )
                    .await?
                    {
                        ctx.update(note(format!(
                            "cannot cancel job instance {} ({e}); waiting for it to end",
                            active.id
                        )));
                    }
                    // The other job's outcome does not matter: ours is triggered next.
                    let _ = poll(active.id.clone(), Poller::new(poll_interval), None).await?;
                }
                IfRunning::Wait => {
                    ctx.update(note(format!(
                        "waiting for running job instance {} to end",
                        active.id
                    )));
                    // The other job's outcome does not matter: ours is triggered next.
                    let _ = poll(active.id.clone(), Poller::new(poll_interval), None).await?;
                }
            }
            jobs = guard(&ctx.cancel, client.fabric_jobs(conn, &ws, &item.id)).await?;
            continue;
        }
        let known: HashSet<String> = jobs.iter().map(|j| j.id.clone()).collect();
        let started = Instant::now();
        let answer = guard_raw(
            &ctx.cancel,
            client.run_fabric_job(conn, &ws, &item.id, "Execute", body.clone()),
        )
        .await?;
        let (id, first_wait) = match answer {
            Ok(v) => v,
            Err(e) => match classify(&e) {
                TriggerErrorKind::AlreadyRunning => {
                    jobs = guard(&ctx.cancel, client.fabric_jobs(conn, &ws, &item.id)).await?;
                    if !jobs
                        .iter()
                        .any(|j| is_one_of(j.status.as_deref(), JOB_RUNNING))
                    {
                        return Err(e.into());
                    }
                    continue;
                }
                TriggerErrorKind::Ambiguous => {
                    ambiguous += 1;
                    sleep_or_cancel(&ctx.cancel, Duration::from_secs(2)).await?;
                    jobs = guard(&ctx.cancel, client.fabric_jobs(conn, &ws, &item.id)).await?;
                    if let Some(new) = jobs.iter().find(|j| !known.contains(&j.id)) {
                        (new.id.clone(), None)
                    } else if ambiguous >= MAX_AMBIGUOUS_TRIGGERS {
                        return Err(e.into());
                    } else {
                        continue;
                    }
                }
                TriggerErrorKind::Other => return Err(e.into()),
            },
        };
        *target = Some(job_target(&id));
        ctx.update(AttemptUpdate {
            remote_id: Some(id.clone()),
            handle: Some(RemoteHandle::FabricJob {
                workspace_id: ws.clone(),
                item_id: item.id.clone(),
                job_instance_id: id.clone(),
            }),
            ..AttemptUpdate::default()
        });
        // The first poll waits at least the Retry-After of the 202.
        let r = poll(id, Poller::starting_at(poll_interval, started), first_wait).await?;
        return Ok(finish(r, false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::model::{ExecuteOption, NotifyOption};
    use indexmap::IndexMap;

    fn step() -> DataflowStep {
        DataflowStep {
            workspace: "w".into(),
            dataflow: "d".into(),
            generation: Generation::Gen2,
            notify: NotifyOption::NoNotification,
            process_type: None,
            execute_option: None,
            parameters: IndexMap::new(),
        }
    }

    #[test]
    fn gen2_body_only_when_needed() {
        assert_eq!(gen2_body(&step()), None);
        let mut s = step();
        s.execute_option = Some(ExecuteOption::ApplyChangesIfNeeded);
        s.parameters.insert("Region".into(), json!("EU"));
        assert_eq!(
            gen2_body(&s),
            Some(
                json!({"executionData": {"executeOption": "ApplyChangesIfNeeded",
                "parameters": [{"parameterName": "Region", "type": "Automatic", "value": "EU"}]}})
            )
        );
    }

    #[test]
    fn transaction_statuses() {
        let t = |status: Option<&str>, end: Option<&str>| Transaction {
            id: "x".into(),
            status: status.map(str::to_string),
            end_time: end.map(str::to_string),
            ..Transaction::default()
        };
        assert!(matches!(
            tx_progress(&t(Some("InProgress"), None)),
            TxProgress::Running
        ));
        assert!(matches!(tx_progress(&t(None, None)), TxProgress::Running));
        assert!(matches!(
            tx_progress(&t(Some("success"), Some("e"))),
            TxProgress::Succeeded
        ));
        assert!(matches!(
            tx_progress(&t(Some("Failed"), Some("e"))),
            TxProgress::Failed(_)
        ));
        assert!(matches!(
            tx_progress(&t(Some("Weird"), None)),
            TxProgress::Running
        ));
    }

    #[test]
    fn job_statuses() {
        let j = |s: &str| JobInstance {
            id: "j".into(),
            status: Some(s.into()),
            failure_reason: Some(json!({"errorCode": "E1", "message": "boom"})),
            ..JobInstance::default()
        };
        assert!(matches!(
            job_progress(&j("InProgress"), "s"),
            JobProgress::Running
        ));
        assert!(matches!(
            job_progress(&j("SomethingNew"), "s"),
            JobProgress::Running
        ));
        assert!(matches!(
            job_progress(&j("Completed"), "s"),
            JobProgress::Succeeded
        ));
        match job_progress(&j("Failed"), "s") {
            JobProgress::Failed(m) => assert!(m.contains("E1: boom")),
            _ => panic!(),
        }
        assert!(matches!(
            job_progress(&j("Deduped"), "s"),
            JobProgress::Failed(_)
        ));
    }
}

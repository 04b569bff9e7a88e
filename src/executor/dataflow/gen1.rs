//! Dataflow Gen1: Power BI REST refresh, found and followed through its transactions.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::{MAX_AMBIGUOUS_TRIGGERS, MAX_RUNNING_ROUNDS};
use crate::executor::common::{
    CancelTarget, Stop, TriggerErrorKind, appear_wait, classify, ended_within, guard, guard_raw,
    is_one_of, note, resource_update, skipped_fresh, took,
};
use crate::executor::poll::Poller;
use crate::executor::{AttemptContext, AttemptOutcome, AttemptUpdate, RemoteHandle};
use crate::job::model::{DataflowStep, IfRunning, ProcessType};
use crate::powerbi::PowerBiClient;
use crate::powerbi::api::Transaction;
use crate::powerbi::resolve::ItemKind;

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
    ) -> Result<Option<Transaction>, Stop> {
        let mut poller = Poller::starting_at(
            self.ctx.step.poll_interval.min(Duration::from_secs(5)),
            started,
        );
        loop {
            let txs = self.transactions().await?;
            if let Some(t) = txs.into_iter().rev().find(|t| !known.contains(&t.id)) {
                return Ok(Some(t));
            }
            if started.elapsed() >= limit {
                return Ok(None);
            }
            poller.wait(&self.ctx.cancel, None).await?;
        }
    }

    /// Polls transaction `id` to a final state. `seen`: the transaction as a read just made
    /// found it (by [`Gen1::find_new`]), used instead of a first read of its own.
    pub(crate) async fn poll(
        &self,
        id: &str,
        mut poller: Poller,
        seen: Option<Transaction>,
    ) -> Result<TxProgress, Stop> {
        let mut last: Option<String> = None;
        let mut seen = seen.filter(|t| t.id == id);
        loop {
            let found = match seen.take() {
                Some(t) => Some(t),
                None => self.transactions().await?.into_iter().find(|t| t.id == id),
            };
            let Some(t) = &found else {
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

pub(super) async fn gen1(
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
        let found = match transaction_id {
            Some(id) => Some((id, None)),
            None => {
                let known: HashSet<String> = known_before.into_iter().collect();
                g.find_new(&known, Instant::now(), appear_wait(poll_interval))
                    .await?
                    .map(|t| (t.id.clone(), Some(t)))
            }
        };
        if let Some((id, seen)) = found {
            *target = Some(g.target(&id));
            let p = g.poll(&id, Poller::new(poll_interval), seen).await?;
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
                    let p = g
                        .poll(
                            &running.id,
                            Poller::new(poll_interval),
                            Some(running.clone()),
                        )
                        .await?;
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
                    g.poll(&running.id, Poller::new(poll_interval), None)
                        .await?;
                }
                IfRunning::Wait => {
                    ctx.update(note(format!(
                        "waiting for running transaction {} to end",
                        running.id
                    )));
                    g.poll(
                        &running.id,
                        Poller::new(poll_interval),
                        Some(running.clone()),
                    )
                    .await?;
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
        let Some(found) = g
            .find_new(&known, started, appear_wait(poll_interval))
            .await?
        else {
            return Err(Stop::Failed(format!(
                "the refresh of dataflow {} was accepted but no new transaction appeared within {} (the service may have dropped it)",
                g.name,
                humantime::format_duration(appear_wait(poll_interval))
            )));
        };
        let id = found.id.clone();
        *target = Some(g.target(&id));
        ctx.update(AttemptUpdate {
            remote_id: Some(id.clone()),
            handle: Some(g.handle(Some(&id), &known)),
            ..AttemptUpdate::default()
        });
        let poller = Poller::starting_at(poll_interval, started).expecting(expected_duration(&txs));
        // The read that found the transaction also gives its first status.
        let p = g.poll(&id, poller, Some(found)).await?;
        return Ok(tx_outcome(p, false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

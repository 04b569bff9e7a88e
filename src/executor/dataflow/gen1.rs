//! Dataflow Gen1: Power BI REST refresh, found and followed through its transactions.

use std::time::Duration;

use serde_json::Value;

use crate::event::RemoteHandle;
use crate::executor::common::{CancelTarget, Stop, appear_wait, conclude, is_one_of, resolve};
use crate::executor::protocol::{
    Previous, RemoteKind, RunInfo, RunRef, RunState, Triggered, drive,
};
use crate::executor::{AttemptContext, AttemptOutcome};
use crate::job::model::{DataflowStep, ProcessType};
use crate::powerbi::api::Transaction;
use crate::powerbi::resolve::ItemKind;
use crate::powerbi::{ClientError, PowerBiClient};

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

/// A Gen1 dataflow's transactions: the listing and status half of its [`RemoteKind`], shared
/// by the `dataflow` step and by `sas_flow` with `wait_for` (which triggers it differently).
pub(crate) struct Gen1 {
    pub client: PowerBiClient,
    pub conn: String,
    pub ws: String,
    pub df: String,
    pub name: String,
    pub poll_interval: Duration,
}

impl Gen1 {
    /// Resolves the workspace and the dataflow by name.
    pub(crate) async fn resolve(
        client: &PowerBiClient,
        ctx: &AttemptContext,
        workspace: &str,
        dataflow: &str,
    ) -> Result<Gen1, Stop> {
        let conn = ctx.step.connection.as_str();
        let (ws, item) = resolve(client, ctx, workspace, ItemKind::DataflowGen1, dataflow).await?;
        Ok(Gen1 {
            client: client.clone(),
            conn: conn.to_string(),
            ws,
            df: item.id,
            name: item.name,
            poll_interval: ctx.step.poll_interval,
        })
    }

    fn info(t: Transaction) -> RunInfo {
        RunInfo {
            state: match tx_progress(&t) {
                TxProgress::Running => RunState::Running,
                TxProgress::Succeeded => RunState::Succeeded,
                TxProgress::Failed(m) => RunState::Failed(m),
            },
            status: t.status,
            percent: None,
            start: t.start_time,
            end: t.end_time,
            from_trigger: true,
            direct: false,
            id: t.id,
        }
    }

    pub(crate) async fn list(&self) -> Result<Vec<RunInfo>, ClientError> {
        Ok(self
            .client
            .dataflow_transactions(&self.conn, &self.ws, &self.df)
            .await?
            .into_iter()
            .map(Gen1::info)
            .collect())
    }

    pub(crate) async fn status(
        &self,
        run: &RunRef,
    ) -> Result<(Option<RunInfo>, Option<Duration>), ClientError> {
        let found = self.list().await?.into_iter().find(|t| t.id == run.id);
        Ok((found, None))
    }

    pub(crate) fn handle(&self, run: Option<&RunRef>, known_before: &[String]) -> RemoteHandle {
        RemoteHandle::DataflowTransaction {
            workspace_id: self.ws.clone(),
            dataflow_id: self.df.clone(),
            transaction_id: run.map(|r| r.id.clone()),
            known_before: known_before.to_vec(),
        }
    }

    pub(crate) fn previous(&self, handle: &RemoteHandle) -> Option<Previous> {
        match handle {
            RemoteHandle::DataflowTransaction {
                dataflow_id,
                transaction_id,
                known_before,
                ..
            } if dataflow_id == &self.df => Some(Previous {
                run: transaction_id
                    .clone()
                    .map(|id| RunRef { id, direct: false }),
                known_before: known_before.clone(),
            }),
            _ => None,
        }
    }

    pub(crate) fn cancel_target(&self, run: &RunRef) -> CancelTarget {
        CancelTarget::Transaction {
            workspace_id: self.ws.clone(),
            transaction_id: run.id.clone(),
        }
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

/// A Gen1 dataflow refresh through Power BI REST.
struct Refresh {
    runs: Gen1,
    notify: &'static str,
    process_type: Option<&'static str>,
}

impl RemoteKind for Refresh {
    fn noun(&self) -> &'static str {
        "transaction"
    }

    fn name(&self) -> &str {
        &self.runs.name
    }

    fn listable(&self) -> bool {
        true
    }

    async fn list(&self) -> Result<Vec<RunInfo>, ClientError> {
        self.runs.list().await
    }

    async fn trigger(&self) -> Result<Triggered, ClientError> {
        let g = &self.runs;
        g.client
            .trigger_dataflow_refresh(&g.conn, &g.ws, &g.df, self.notify, self.process_type)
            .await?;
        Ok(Triggered::Unnamed)
    }

    async fn status(
        &self,
        run: &RunRef,
    ) -> Result<(Option<RunInfo>, Option<Duration>), ClientError> {
        self.runs.status(run).await
    }

    fn handle(&self, run: Option<&RunRef>, known_before: &[String]) -> RemoteHandle {
        self.runs.handle(run, known_before)
    }

    fn previous(&self, handle: &RemoteHandle) -> Option<Previous> {
        self.runs.previous(handle)
    }

    fn cancel_target(&self, run: &RunRef) -> CancelTarget {
        self.runs.cancel_target(run)
    }

    fn appear_within(&self) -> Duration {
        appear_wait(self.runs.poll_interval)
    }
}

/// Runs one attempt of a Gen1 dataflow step.
pub(super) async fn run(
    client: &PowerBiClient,
    ctx: &AttemptContext,
    df: &DataflowStep,
) -> AttemptOutcome {
    match Gen1::resolve(client, ctx, &df.workspace, &df.dataflow).await {
        Ok(runs) => {
            let kind = Refresh {
                runs,
                notify: notify_word(df.notify),
                process_type: df.process_type.map(process_type_word),
            };
            drive(client, ctx, &kind).await
        }
        Err(stop) => conclude(client, ctx, Err(stop), None).await,
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

//! Dataflow Gen2: a Fabric `Execute` job instance.

use std::time::Duration;

use serde_json::{Value, json};

use crate::executor::common::{CancelTarget, appear_wait, conclude, is_one_of, resolve};
use crate::executor::protocol::{
    Previous, RemoteKind, RunInfo, RunRef, RunState, Triggered, drive,
};
use crate::executor::{AttemptContext, AttemptOutcome, RemoteHandle};
use crate::job::model::DataflowStep;
use crate::powerbi::api::JobInstance;
use crate::powerbi::resolve::ItemKind;
use crate::powerbi::{ClientError, PowerBiClient};

const JOB_RUNNING: &[&str] = &["NotStarted", "InProgress"];

fn job_progress(j: &JobInstance, step: &str) -> RunState {
    let status = j.status.as_deref();
    if is_one_of(status, &["Completed", "Succeeded"]) {
        return RunState::Succeeded;
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
        return RunState::Failed(format!("job instance {} failed{reason}", j.id));
    }
    if is_one_of(status, &["Cancelled", "Canceled"]) {
        return RunState::Failed(format!("job instance {} was cancelled remotely", j.id));
    }
    if is_one_of(status, &["Deduped"]) {
        return RunState::Failed(format!(
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
    RunState::Running
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

/// A Fabric item job (`Execute` of a Dataflow Gen2) as one [`RemoteKind`].
pub(crate) struct FabricJob {
    pub client: PowerBiClient,
    pub conn: String,
    pub ws: String,
    pub item: String,
    pub name: String,
    pub step: String,
    pub job_type: &'static str,
    pub body: Option<Value>,
    pub poll_interval: Duration,
}

impl FabricJob {
    fn info(&self, j: JobInstance) -> RunInfo {
        RunInfo {
            state: job_progress(&j, &self.step),
            status: j.status,
            percent: None,
            start: j.start_time_utc,
            end: j.end_time_utc,
            // Only jobs of our type are runs our trigger could have started.
            from_trigger: j
                .job_type
                .as_deref()
                .is_none_or(|t| t.eq_ignore_ascii_case(self.job_type)),
            direct: true,
            id: j.id,
        }
    }
}

impl RemoteKind for FabricJob {
    fn noun(&self) -> &'static str {
        "job instance"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn listable(&self) -> bool {
        true
    }

    async fn list(&self) -> Result<Vec<RunInfo>, ClientError> {
        Ok(self
            .client
            .fabric_jobs(&self.conn, &self.ws, &self.item)
            .await?
            .into_iter()
            .map(|j| self.info(j))
            .collect())
    }

    async fn trigger(&self) -> Result<Triggered, ClientError> {
        let (id, first_wait) = self
            .client
            .run_fabric_job(
                &self.conn,
                &self.ws,
                &self.item,
                self.job_type,
                self.body.clone(),
            )
            .await?;
        Ok(Triggered::Named { id, first_wait })
    }

    async fn status(
        &self,
        run: &RunRef,
    ) -> Result<(Option<RunInfo>, Option<Duration>), ClientError> {
        match self
            .client
            .fabric_job(&self.conn, &self.ws, &self.item, &run.id)
            .await
        {
            Ok((job, retry_after)) => Ok((Some(self.info(job)), retry_after)),
            Err(e) if e.status() == Some(404) => Ok((None, None)),
            Err(e) => Err(e),
        }
    }

    fn handle(&self, run: Option<&RunRef>, known_before: &[String]) -> RemoteHandle {
        RemoteHandle::FabricJob {
            workspace_id: self.ws.clone(),
            item_id: self.item.clone(),
            job_instance_id: run.map(|r| r.id.clone()),
            known_before: known_before.to_vec(),
        }
    }

    fn previous(&self, handle: &RemoteHandle) -> Option<Previous> {
        match handle {
            RemoteHandle::FabricJob {
                item_id,
                job_instance_id,
                known_before,
                ..
            } if item_id == &self.item => Some(Previous {
                run: job_instance_id
                    .clone()
                    .map(|id| RunRef { id, direct: true }),
                known_before: known_before.clone(),
            }),
            _ => None,
        }
    }

    fn cancel_target(&self, run: &RunRef) -> CancelTarget {
        CancelTarget::FabricJob {
            workspace_id: self.ws.clone(),
            item_id: self.item.clone(),
            job_id: run.id.clone(),
        }
    }

    fn appear_within(&self) -> Duration {
        appear_wait(self.poll_interval)
    }
}

/// Runs one attempt of a Gen2 dataflow step.
pub(super) async fn run(
    client: &PowerBiClient,
    ctx: &AttemptContext,
    df: &DataflowStep,
) -> AttemptOutcome {
    let conn = ctx.step.connection.as_str();
    match resolve(
        client,
        ctx,
        &df.workspace,
        ItemKind::DataflowGen2,
        &df.dataflow,
    )
    .await
    {
        Ok((ws, item)) => {
            let kind = FabricJob {
                client: client.clone(),
                conn: conn.to_string(),
                ws,
                item: item.id,
                name: item.name,
                step: ctx.step.id.to_string(),
                job_type: "Execute",
                body: gen2_body(df),
                poll_interval: ctx.step.poll_interval,
            };
            drive(client, ctx, &kind).await
        }
        Err(stop) => conclude(client, ctx, Err(stop), None).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::model::{ExecuteOption, Generation, NotifyOption};
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
    fn job_statuses() {
        let j = |s: &str| JobInstance {
            id: "j".into(),
            status: Some(s.into()),
            failure_reason: Some(json!({"errorCode": "E1", "message": "boom"})),
            ..JobInstance::default()
        };
        assert!(matches!(
            job_progress(&j("InProgress"), "s"),
            RunState::Running
        ));
        assert!(matches!(
            job_progress(&j("SomethingNew"), "s"),
            RunState::Running
        ));
        assert!(matches!(
            job_progress(&j("Completed"), "s"),
            RunState::Succeeded
        ));
        match job_progress(&j("Failed"), "s") {
            RunState::Failed(m) => assert!(m.contains("E1: boom")),
            _ => panic!(),
        }
        assert!(matches!(
            job_progress(&j("Deduped"), "s"),
            RunState::Failed(_)
        ));
    }
}

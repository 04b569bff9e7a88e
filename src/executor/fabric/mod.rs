//! Fabric items run through the Job Scheduler: one [`RemoteKind`], [`FabricJob`], for every
//! item type (Dataflow Gen2 in [`super::dataflow`], and the `fabric_job` step in [`items`]).

pub(crate) mod items;

use std::time::Duration;

use serde_json::Value;

use crate::event::RemoteHandle;
use crate::executor::common::{CancelTarget, appear_wait, is_one_of};
use crate::executor::protocol::{Previous, RemoteKind, RunInfo, RunRef, RunState, Triggered};
use crate::powerbi::api::JobInstance;
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

/// A Fabric item job (a Dataflow Gen2 `Execute`, a pipeline, a notebook...) as one
/// [`RemoteKind`].
pub(crate) struct FabricJob {
    pub client: PowerBiClient,
    pub conn: String,
    pub ws: String,
    pub item: String,
    pub name: String,
    pub step: String,
    /// The job type the trigger sends.
    pub job_type: &'static str,
    /// Other spellings of the same job type the service may list its instances under.
    pub also_listed_as: &'static [&'static str],
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
            from_trigger: j.job_type.as_deref().is_none_or(|t| {
                t.eq_ignore_ascii_case(self.job_type)
                    || self
                        .also_listed_as
                        .iter()
                        .any(|a| t.eq_ignore_ascii_case(a))
            }),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

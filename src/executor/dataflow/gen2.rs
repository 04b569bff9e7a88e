//! Dataflow Gen2: a Fabric `Execute` job instance.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::{MAX_AMBIGUOUS_TRIGGERS, MAX_RUNNING_ROUNDS};
use crate::executor::common::{
    CancelTarget, Stop, TriggerErrorKind, classify, ended_within, guard, guard_raw, is_one_of,
    note, resource_update, skipped_fresh,
};
use crate::executor::poll::{Poller, sleep_or_cancel};
use crate::executor::{AttemptContext, AttemptOutcome, AttemptUpdate, RemoteHandle};
use crate::job::model::{DataflowStep, IfRunning};
use crate::powerbi::PowerBiClient;
use crate::powerbi::api::JobInstance;
use crate::powerbi::resolve::ItemKind;

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

pub(super) async fn gen2(
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

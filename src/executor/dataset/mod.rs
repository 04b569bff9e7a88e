//! `dataset`: semantic model refresh, standard or enhanced.
//!
//! Standard refresh has no id: ours is the `ViaApi` history entry whose `requestId` was not
//! among the entries read just before the trigger (a set difference, not a clock
//! comparison), waited for a bounded time. Enhanced refresh gets its id from
//! `x-ms-request-id` / `Location` and is polled through its execution details.
//!
//! - [`body`]: the request bodies (standard `notifyOption`, enhanced PascalCase);
//! - [`remote`]: reading history and execution details, finding our refresh.

mod body;
mod remote;

pub use body::{enhanced_body, hhmmss, standard_body};

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

use crate::executor::common::{
    CancelTarget, Stop, TriggerErrorKind, appear_wait, classify, conclude, ended_within, guard,
    guard_raw, is_one_of, note, resource_update, skipped_fresh, took,
};
use crate::executor::poll::Poller;
use crate::executor::{AttemptContext, AttemptOutcome, AttemptUpdate, RemoteHandle};
use crate::job::model::{DatasetStep, IfRunning};
use crate::powerbi::PowerBiClient;
use crate::powerbi::resolve::ItemKind;
use remote::{Progress, Target, entry_progress, ids, running_entry};

/// History entries read per check.
const HISTORY_TOP: u32 = 30;
/// Times a trigger is re-sent after an answer that leaves it unknown whether it was taken.
const MAX_AMBIGUOUS_TRIGGERS: u32 = 3;
/// Times a running refresh is waited for / cancelled before giving up.
const MAX_RUNNING_ROUNDS: u32 = 5;
/// How long to look for a refresh that a trigger with a lost answer may have started.
const AMBIGUOUS_LOOK: Duration = Duration::from_secs(10);

/// Runs one attempt of a dataset step.
pub(crate) async fn run(
    client: PowerBiClient,
    ctx: AttemptContext,
    ds: DatasetStep,
) -> AttemptOutcome {
    let mut target: Option<CancelTarget> = None;
    let result = attempt(&client, &ctx, &ds, &mut target).await;
    conclude(&client, &ctx, result, target.as_ref()).await
}

async fn attempt(
    client: &PowerBiClient,
    ctx: &AttemptContext,
    ds: &DatasetStep,
    target: &mut Option<CancelTarget>,
) -> Result<AttemptOutcome, Stop> {
    let conn = ctx.step.connection.as_str();
    let ws = guard(&ctx.cancel, client.workspace_id(conn, &ds.workspace)).await?;
    let item = guard(
        &ctx.cancel,
        client.resolve_item(conn, &ws, ItemKind::Dataset, &ds.dataset),
    )
    .await?;
    ctx.update(resource_update(&ws, &item.id, &item.name));
    if item.is_refreshable == Some(false) {
        return Err(Stop::Refused(crate::powerbi::resolve::not_refreshable(
            &item.name,
        )));
    }
    let t = Target {
        client,
        ctx,
        conn,
        ws: ws.clone(),
        ds: item.id.clone(),
        name: item.name.clone(),
    };
    let poll_interval = ctx.step.poll_interval;

    // Resume: follow the refresh the previous run started.
    match ctx.reattach.clone() {
        Some(RemoteHandle::EnhancedRefresh { request_id, .. }) => {
            *target = Some(enhanced_target(&t, &request_id));
            let p = t
                .poll_details(&request_id, Poller::new(poll_interval))
                .await?;
            return Ok(outcome(p, false));
        }
        Some(RemoteHandle::StandardRefresh {
            request_id,
            known_before,
            ..
        }) => {
            *target = Some(CancelTarget::StandardRefresh);
            let found = match request_id {
                Some(id) => Some((id, None)),
                None => {
                    let known: HashSet<String> = known_before.into_iter().collect();
                    t.find_new(
                        &known,
                        &["ViaApi"],
                        Instant::now(),
                        appear_wait(poll_interval),
                    )
                    .await?
                    .and_then(|e| Some((e.request_id.clone()?, Some(e))))
                }
            };
            if let Some((id, seen)) = found {
                let p = t.poll_entry(&id, Poller::new(poll_interval), seen).await?;
                return Ok(outcome(p, false));
            }
            // Not found: trigger a new one below.
        }
        _ => {}
    }

    let mut history = t.history().await?;
    if let Some(window) = ctx.step.skip_if_fresh
        && let Some(end) = history
            .iter()
            .filter(|e| matches!(entry_progress(e), Progress::Succeeded))
            .find_map(|e| ended_within(e.end_time.as_deref(), window))
    {
        return Ok(skipped_fresh(end, window));
    }

    let body = match &ds.refresh {
        Some(r) => enhanced_body(r),
        None => standard_body(ds),
    };
    let enhanced = ds.refresh.is_some();
    let kinds: &[&str] = if enhanced {
        &["ViaEnhancedApi", "ReliableProcessing"]
    } else {
        &["ViaApi"]
    };
    let mut rounds = 0;
    let mut ambiguous = 0;
    loop {
        if let Some(running) = running_entry(&history).cloned() {
            let running_id = running.request_id.clone().unwrap_or_default();
            rounds += 1;
            if rounds > MAX_RUNNING_ROUNDS {
                return Err(Stop::Failed(format!(
                    "{} kept running other refreshes; gave up after {MAX_RUNNING_ROUNDS} waits",
                    t.name
                )));
            }
            match ctx.step.if_running {
                IfRunning::Fail => {
                    return Err(Stop::Failed(format!(
                        "a refresh of {} is already running (request {running_id}, started {}); if_running is fail",
                        t.name,
                        running
                            .start_time
                            .as_deref()
                            .unwrap_or("at an unknown time")
                    )));
                }
                IfRunning::Adopt => {
                    ctx.update(AttemptUpdate {
                        remote_id: Some(running_id.clone()),
                        note: Some(format!("adopting running refresh {running_id}")),
                        ..AttemptUpdate::default()
                    });
                    *target = Some(
                        if is_one_of(running.refresh_type.as_deref(), &["ViaEnhancedApi"]) {
                            enhanced_target(&t, &running_id)
                        } else {
                            CancelTarget::StandardRefresh
                        },
                    );
                    let p = t
                        .poll_entry(&running_id, Poller::new(poll_interval), Some(running))
                        .await?;
                    return Ok(outcome(p, true));
                }
                IfRunning::Restart => {
                    ctx.update(note(format!(
                        "cancelling running refresh {running_id} (if_running: restart)"
                    )));
                    if let Err(e) = guard(
                        &ctx.cancel,
                        client.cancel_refresh(conn, &t.ws, &t.ds, &running_id),
                    )
                    .await
                    {
                        match e {
                            Stop::Cancelled => return Err(Stop::Cancelled),
                            Stop::Failed(m) | Stop::Refused(m) => ctx.update(note(format!(
                                "cannot cancel refresh {running_id} ({m}); waiting for it to end"
                            ))),
                        }
                    }
                    t.poll_entry(&running_id, Poller::new(poll_interval), None)
                        .await?;
                }
                IfRunning::Wait => {
                    ctx.update(note(format!(
                        "waiting for running refresh {running_id} to end"
                    )));
                    t.poll_entry(&running_id, Poller::new(poll_interval), Some(running))
                        .await?;
                }
            }
            history = t.history().await?;
            continue;
        }

        let known = ids(&history);
        if !enhanced {
            ctx.update(AttemptUpdate {
                handle: Some(RemoteHandle::StandardRefresh {
                    workspace_id: t.ws.clone(),
                    dataset_id: t.ds.clone(),
                    request_id: None,
                    known_before: known.iter().cloned().collect(),
                }),
                ..AttemptUpdate::default()
            });
            *target = Some(CancelTarget::StandardRefresh);
        }
        let started = Instant::now();
        let answer = guard_raw(
            &ctx.cancel,
            client.trigger_dataset_refresh(conn, &t.ws, &t.ds, body.clone()),
        )
        .await?;
        let request_id = match answer {
            Ok(resp) if enhanced => resp
                .header("x-ms-request-id")
                .map(str::to_string)
                .or_else(|| resp.location_id()),
            Ok(_) => None,
            Err(e) => match classify(&e) {
                TriggerErrorKind::AlreadyRunning => {
                    history = t.history().await?;
                    if running_entry(&history).is_none() {
                        return Err(e.into());
                    }
                    continue;
                }
                TriggerErrorKind::Ambiguous => {
                    ambiguous += 1;
                    // The refresh may have started: look before sending again.
                    if let Some(id) = t
                        .find_new(&known, kinds, started, AMBIGUOUS_LOOK)
                        .await?
                        .and_then(|e| e.request_id)
                    {
                        tracing::info!(step = %ctx.step.id, "trigger answer was lost but refresh {id} started");
                        Some(id)
                    } else if ambiguous >= MAX_AMBIGUOUS_TRIGGERS {
                        return Err(e.into());
                    } else {
                        history = t.history().await?;
                        continue;
                    }
                }
                TriggerErrorKind::Other => return Err(e.into()),
            },
        };

        // The read that finds a standard refresh also gives its first status.
        let (request_id, seen) = match request_id {
            Some(id) => (id, None),
            None => match t
                .find_new(&known, kinds, started, appear_wait(poll_interval))
                .await?
            {
                Some(e) => (e.request_id.clone().unwrap_or_default(), Some(e)),
                None => {
                    return Err(Stop::Failed(format!(
                        "the refresh of {} was accepted but never appeared in its history within {} (the service may have dropped it)",
                        t.name,
                        humantime::format_duration(appear_wait(poll_interval))
                    )));
                }
            },
        };
        let handle = if enhanced {
            *target = Some(enhanced_target(&t, &request_id));
            RemoteHandle::EnhancedRefresh {
                workspace_id: t.ws.clone(),
                dataset_id: t.ds.clone(),
                request_id: request_id.clone(),
            }
        } else {
            RemoteHandle::StandardRefresh {
                workspace_id: t.ws.clone(),
                dataset_id: t.ds.clone(),
                request_id: Some(request_id.clone()),
                known_before: known.iter().cloned().collect(),
            }
        };
        ctx.update(AttemptUpdate {
            remote_id: Some(request_id.clone()),
            handle: Some(handle),
            ..AttemptUpdate::default()
        });
        // The last successful refresh tells how long this one will likely take.
        let expected = history
            .iter()
            .filter(|e| matches!(entry_progress(e), Progress::Succeeded))
            .find_map(|e| took(e.start_time.as_deref(), e.end_time.as_deref()));
        let poller = Poller::starting_at(poll_interval, started).expecting(expected);
        let p = if enhanced {
            t.poll_details(&request_id, poller).await?
        } else {
            t.poll_entry(&request_id, poller, seen).await?
        };
        return Ok(outcome(p, false));
    }
}

fn enhanced_target(t: &Target<'_>, request_id: &str) -> CancelTarget {
    CancelTarget::EnhancedRefresh {
        workspace_id: t.ws.clone(),
        dataset_id: t.ds.clone(),
        request_id: request_id.to_string(),
    }
}

fn outcome(p: Progress, adopted: bool) -> AttemptOutcome {
    match p {
        Progress::Succeeded | Progress::Running => AttemptOutcome::Succeeded { adopted },
        Progress::Failed(error) => AttemptOutcome::Failed { error },
    }
}

//! `dataset`: semantic model refresh, standard or enhanced.
//!
//! Standard refresh has no id: ours is the `ViaApi` history entry whose `requestId` was not
//! among the entries read just before the trigger (a set difference, not a clock
//! comparison), waited for a bounded time. Enhanced refresh gets its id from
//! `x-ms-request-id` / `Location` and is polled through its execution details.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::common::{
    CancelTarget, Stop, TriggerErrorKind, appear_wait, classify, conclude, ended_within, guard,
    guard_raw, is_one_of, note, resource_update, skipped_fresh, took,
};
use super::poll::Poller;
use super::{AttemptContext, AttemptOutcome, AttemptUpdate, RemoteHandle};
use crate::job::model::{DatasetStep, EnhancedRefresh, IfRunning};
use crate::powerbi::PowerBiClient;
use crate::powerbi::api::{RefreshDetail, RefreshEntry};
use crate::powerbi::errors::parse_service_exception;
use crate::powerbi::resolve::ItemKind;

/// History entries read per check.
const HISTORY_TOP: u32 = 30;
/// Times a trigger is re-sent after an answer that leaves it unknown whether it was taken.
const MAX_AMBIGUOUS_TRIGGERS: u32 = 3;
/// Times a running refresh is waited for / cancelled before giving up.
const MAX_RUNNING_ROUNDS: u32 = 5;
/// How long to look for a refresh that a trigger with a lost answer may have started.
const AMBIGUOUS_LOOK: Duration = Duration::from_secs(10);

/// The enhanced refresh body: PascalCase enum values, `timeout` as `hh:mm:ss`, no
/// `notifyOption`.
pub fn enhanced_body(r: &EnhancedRefresh) -> Value {
    let mut m = Map::new();
    if let Some(t) = r.refresh_type {
        m.insert("type".into(), json!(t));
    }
    if let Some(c) = r.commit_mode {
        m.insert("commitMode".into(), json!(c));
    }
    if let Some(p) = r.max_parallelism {
        m.insert("maxParallelism".into(), json!(p));
    }
    if let Some(n) = r.retry_count {
        m.insert("retryCount".into(), json!(n));
    }
    if !r.objects.is_empty() {
        let objects: Vec<Value> = r
            .objects
            .iter()
            .map(|o| match &o.partition {
                Some(p) => json!({"table": o.table, "partition": p}),
                None => json!({"table": o.table}),
            })
            .collect();
        m.insert("objects".into(), Value::Array(objects));
    }
    if let Some(a) = r.apply_refresh_policy {
        m.insert("applyRefreshPolicy".into(), json!(a));
    }
    if let Some(d) = &r.effective_date {
        m.insert("effectiveDate".into(), json!(d));
    }
    if let Some(t) = r.timeout {
        m.insert("timeout".into(), json!(hhmmss(t)));
    }
    if m.is_empty() {
        // An empty `refresh:` block still asks for an enhanced refresh: the service's
        // default type is Automatic, and any field other than notifyOption selects it.
        m.insert("type".into(), json!("Automatic"));
    }
    Value::Object(m)
}

/// `hh:mm:ss`, capped below 24 h as the service requires.
pub fn hhmmss(d: Duration) -> String {
    let s = d.as_secs().min(23 * 3600 + 59 * 60 + 59);
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// The standard refresh body.
pub fn standard_body(ds: &DatasetStep) -> Value {
    json!({ "notifyOption": ds.notify })
}

enum Progress {
    Running,
    Succeeded,
    Failed(String),
}

fn entry_progress(e: &RefreshEntry) -> Progress {
    let status = e.status.as_deref();
    if is_one_of(status, &["Completed", "Succeeded", "Success"]) {
        return Progress::Succeeded;
    }
    if is_one_of(
        status,
        &["Failed", "Cancelled", "Canceled", "Disabled", "TimedOut"],
    ) {
        let word = status.unwrap_or("Failed");
        let detail = e
            .service_exception_json
            .as_deref()
            .and_then(parse_service_exception);
        return Progress::Failed(match detail {
            Some(d) => format!("refresh {word}: {d}"),
            None => format!("refresh {word}"),
        });
    }
    // `Unknown` (or anything new) without an end time is in progress.
    if e.end_time.as_deref().is_some_and(|t| !t.is_empty()) && status.is_some() {
        return Progress::Failed(format!(
            "refresh ended with status {}",
            status.unwrap_or_default()
        ));
    }
    Progress::Running
}

fn detail_progress(d: &RefreshDetail) -> Progress {
    let status = d.extended_status.as_deref().or(d.status.as_deref());
    let messages = || {
        let texts: Vec<String> = d
            .messages
            .iter()
            .filter(|m| !is_one_of(m.kind.as_deref(), &["Warning", "Information"]))
            .filter_map(|m| match (&m.code, &m.message) {
                (Some(c), Some(t)) => Some(format!("{c}: {t}")),
                (None, Some(t)) => Some(t.clone()),
                (Some(c), None) => Some(c.clone()),
                (None, None) => None,
            })
            .collect();
        if texts.is_empty() {
            String::new()
        } else {
            format!(": {}", texts.join("; "))
        }
    };
    if is_one_of(status, &["Completed", "Succeeded"]) {
        Progress::Succeeded
    } else if is_one_of(
        status,
        &["Failed", "TimedOut", "Cancelled", "Canceled", "Disabled"],
    ) {
        Progress::Failed(format!(
            "enhanced refresh {}{}",
            status.unwrap_or("Failed"),
            messages()
        ))
    } else {
        Progress::Running
    }
}

/// The running entry of a history, if any (`Unknown`, no end time).
fn running_entry(history: &[RefreshEntry]) -> Option<&RefreshEntry> {
    history
        .iter()
        .find(|e| matches!(entry_progress(e), Progress::Running) && e.request_id.is_some())
}

fn ids(history: &[RefreshEntry]) -> HashSet<String> {
    history
        .iter()
        .filter_map(|e| e.request_id.clone())
        .collect()
}

struct Target<'a> {
    client: &'a PowerBiClient,
    ctx: &'a AttemptContext,
    conn: &'a str,
    ws: String,
    ds: String,
    name: String,
}

impl Target<'_> {
    async fn history(&self) -> Result<Vec<RefreshEntry>, Stop> {
        guard(
            &self.ctx.cancel,
            self.client
                .refresh_history(self.conn, &self.ws, &self.ds, HISTORY_TOP),
        )
        .await
    }

    fn update(&self, u: AttemptUpdate) {
        self.ctx.update(u);
    }

    /// Polls history until the entry `request_id` is terminal.
    async fn poll_entry(&self, request_id: &str, mut poller: Poller) -> Result<Progress, Stop> {
        let mut last_status: Option<String> = None;
        loop {
            let history = self.history().await?;
            match history
                .iter()
                .find(|e| e.request_id.as_deref() == Some(request_id))
            {
                Some(e) => {
                    if e.status != last_status {
                        last_status = e.status.clone();
                        self.update(AttemptUpdate {
                            remote_status: e.status.clone(),
                            remote_id: Some(request_id.to_string()),
                            ..AttemptUpdate::default()
                        });
                    }
                    match entry_progress(e) {
                        Progress::Running => {}
                        done => return Ok(done),
                    }
                }
                None => {
                    return Err(Stop::Failed(format!(
                        "refresh {request_id} disappeared from the history of {}",
                        self.name
                    )));
                }
            }
            poller.wait(&self.ctx.cancel, None).await?;
        }
    }

    /// Polls the execution details of an enhanced refresh until terminal.
    async fn poll_details(&self, request_id: &str, mut poller: Poller) -> Result<Progress, Stop> {
        let mut last_status: Option<String> = None;
        loop {
            let (detail, retry_after) = guard(
                &self.ctx.cancel,
                self.client
                    .refresh_details(self.conn, &self.ws, &self.ds, request_id),
            )
            .await?;
            let status = detail.extended_status.clone().or(detail.status.clone());
            if status != last_status {
                last_status = status.clone();
                self.update(AttemptUpdate {
                    remote_status: status,
                    remote_id: Some(request_id.to_string()),
                    ..AttemptUpdate::default()
                });
            }
            match detail_progress(&detail) {
                Progress::Running => {}
                done => return Ok(done),
            }
            poller.wait(&self.ctx.cancel, retry_after).await?;
        }
    }

    /// Waits for a new entry (not in `known`) to appear; `kinds` are acceptable
    /// `refreshType`s. Returns its request id.
    async fn find_new(
        &self,
        known: &HashSet<String>,
        kinds: &[&str],
        started: Instant,
        limit: Duration,
    ) -> Result<Option<String>, Stop> {
        let mut poller = Poller::starting_at(
            self.ctx.step.poll_interval.min(Duration::from_secs(5)),
            started,
        );
        loop {
            let history = self.history().await?;
            // Newest first: the oldest new entry is the closest to our trigger.
            if let Some(e) = history.iter().rev().find(|e| {
                e.request_id.as_ref().is_some_and(|id| !known.contains(id))
                    && (e.refresh_type.is_none() || is_one_of(e.refresh_type.as_deref(), kinds))
            }) {
                return Ok(e.request_id.clone());
            }
            if started.elapsed() >= limit {
                return Ok(None);
            }
            poller.wait(&self.ctx.cancel, None).await?;
        }
    }
}

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
            let id = match request_id {
                Some(id) => Some(id),
                None => {
                    let known: HashSet<String> = known_before.into_iter().collect();
                    t.find_new(
                        &known,
                        &["ViaApi"],
                        Instant::now(),
                        appear_wait(poll_interval),
                    )
                    .await?
                }
            };
            if let Some(id) = id {
                let p = t.poll_entry(&id, Poller::new(poll_interval)).await?;
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
                        .poll_entry(&running_id, Poller::new(poll_interval))
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
                            Stop::Failed(m) => ctx.update(note(format!(
                                "cannot cancel refresh {running_id} ({m}); waiting for it to end"
                            ))),
                        }
                    }
                    t.poll_entry(&running_id, Poller::new(poll_interval))
                        .await?;
                }
                IfRunning::Wait => {
                    ctx.update(note(format!(
                        "waiting for running refresh {running_id} to end"
                    )));
                    t.poll_entry(&running_id, Poller::new(poll_interval))
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
                    if let Some(id) = t.find_new(&known, kinds, started, AMBIGUOUS_LOOK).await? {
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

        let request_id = match request_id {
            Some(id) => id,
            None => match t
                .find_new(&known, kinds, started, appear_wait(poll_interval))
                .await?
            {
                Some(id) => id,
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
            t.poll_entry(&request_id, poller).await?
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::model::{CommitMode, NotifyOption, RefreshObject, RefreshType};

    #[test]
    fn enhanced_body_is_pascal_case_without_notify_option() {
        let r = EnhancedRefresh {
            refresh_type: Some(RefreshType::Full),
            commit_mode: Some(CommitMode::PartialBatch),
            objects: vec![RefreshObject {
                table: "Sales".into(),
                partition: Some("2024".into()),
            }],
            apply_refresh_policy: Some(false),
            effective_date: None,
            max_parallelism: Some(4),
            retry_count: None,
            timeout: Some(Duration::from_secs(2 * 3600 + 61)),
        };
        assert_eq!(
            enhanced_body(&r),
            json!({"type": "Full", "commitMode": "PartialBatch", "maxParallelism": 4,
                   "objects": [{"table": "Sales", "partition": "2024"}],
                   "applyRefreshPolicy": false, "timeout": "02:01:01"})
        );
        assert_eq!(
            enhanced_body(&EnhancedRefresh::default()),
            json!({"type": "Automatic"})
        );
    }

    #[test]
    fn standard_body_sends_notify_option() {
        let ds = DatasetStep {
            workspace: "w".into(),
            dataset: "d".into(),
            notify: NotifyOption::MailOnFailure,
            refresh: None,
        };
        assert_eq!(standard_body(&ds), json!({"notifyOption": "MailOnFailure"}));
    }

    #[test]
    fn hhmmss_caps_below_a_day() {
        assert_eq!(hhmmss(Duration::from_secs(59)), "00:00:59");
        assert_eq!(hhmmss(Duration::from_secs(30 * 3600)), "23:59:59");
    }

    #[test]
    fn history_entries_are_classified() {
        let e = |status: &str, end: Option<&str>, sej: Option<&str>| RefreshEntry {
            request_id: Some("r".into()),
            status: Some(status.into()),
            end_time: end.map(str::to_string),
            service_exception_json: sej.map(str::to_string),
            ..RefreshEntry::default()
        };
        assert!(matches!(
            entry_progress(&e("Unknown", None, None)),
            Progress::Running
        ));
        assert!(matches!(
            entry_progress(&e("Completed", Some("x"), None)),
            Progress::Succeeded
        ));
        match entry_progress(&e(
            "Failed",
            Some("x"),
            Some(r#"{"errorCode":"ModelRefreshFailed_CredentialsNotSpecified"}"#),
        )) {
            Progress::Failed(m) => assert!(
                m.contains("ModelRefreshFailed_CredentialsNotSpecified"),
                "{m}"
            ),
            _ => panic!("expected failure"),
        }
    }
}

//! What the executors share: the early-exit type, cancellable calls, remote cancellation on
//! timeout / interrupt, status words and lenient timestamps.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};

use super::poll::Cancelled;
use super::{AttemptContext, AttemptOutcome, Cancel, CancelReason, SkipKind};
use crate::event::{AttemptUpdate, ResourceRef};
use crate::powerbi::{ClientError, PowerBiClient};

/// How long a remote cancel may take once the attempt was told to stop.
const CANCEL_CALL_LIMIT: Duration = Duration::from_secs(30);

/// Why an executor stops early.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The attempt failed with this message.
    Failed(String),
    /// The attempt failed in a way another attempt cannot change (see
    /// [`AttemptOutcome::Refused`]).
    Refused(String),
    /// The attempt failed and the service asked for a pause before the next try
    /// (`Retry-After`): the retry waits at least `wait`.
    Wait { error: String, wait: Duration },
    /// The attempt's [`Cancel`] fired.
    Cancelled,
}

impl From<ClientError> for Stop {
    fn from(e: ClientError) -> Self {
        if is_refusal(&e) {
            return Stop::Refused(e.to_string());
        }
        match retry_after_of(&e) {
            Some(wait) if e.status() == Some(429) || e.status() == Some(503) => Stop::Wait {
                error: e.to_string(),
                wait,
            },
            _ => Stop::Failed(e.to_string()),
        }
    }
}

/// True when another attempt would get the same answer: names are resolved once per run,
/// configuration is read once, Entra's refusals (wrong secret, unknown application or
/// tenant) do not heal in a minute, and neither does a request the service refuses as
/// written or a caller it does not allow (400 other than "already running", 401, 403 other
/// than an expired token, 405, 415).
pub(crate) fn is_refusal(e: &ClientError) -> bool {
    match e {
        ClientError::Resolve(_)
        | ClientError::Config(_)
        | ClientError::Auth { refused: true, .. } => true,
        ClientError::Api { status, code, .. } => match status {
            400 => !e.is_already_running(),
            401 | 405 | 415 => true,
            403 => !code
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case("TokenExpired")),
            _ => false,
        },
        _ => false,
    }
}

/// True for a fault that says nothing about the remote work: throttling, a service error, a
/// connection that failed, Entra out of reach. A status read may be sent again after it.
pub(crate) fn is_transient(e: &ClientError) -> bool {
    match e {
        ClientError::Api { status, code, .. } => {
            matches!(status, 408 | 429)
                || (*status >= 500 && *status != 501)
                || (*status == 403
                    && code
                        .as_deref()
                        .is_some_and(|c| c.eq_ignore_ascii_case("TokenExpired")))
        }
        ClientError::Transport { .. } => true,
        ClientError::Auth { refused, .. } => !refused,
        _ => false,
    }
}

/// The `Retry-After` an error carried.
pub(crate) fn retry_after_of(e: &ClientError) -> Option<Duration> {
    match e {
        ClientError::Api { retry_after, .. } => *retry_after,
        _ => None,
    }
}

impl From<Cancelled> for Stop {
    fn from(_: Cancelled) -> Self {
        Stop::Cancelled
    }
}

/// Runs a client call unless the attempt is cancelled first (the call is then dropped).
pub(crate) async fn guard<T>(
    cancel: &Cancel,
    fut: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, Stop> {
    if cancel.is_cancelled() {
        return Err(Stop::Cancelled);
    }
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(Stop::Cancelled),
        r = fut => r.map_err(Stop::from),
    }
}

/// Runs a client call unless the attempt is cancelled first, keeping the typed error.
pub(crate) async fn guard_raw<T>(
    cancel: &Cancel,
    fut: impl Future<Output = Result<T, ClientError>>,
) -> Result<Result<T, ClientError>, Stop> {
    if cancel.is_cancelled() {
        return Err(Stop::Cancelled);
    }
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(Stop::Cancelled),
        r = fut => Ok(r),
    }
}

/// Remote work that can be cancelled, once known.
#[derive(Debug, Clone)]
pub(crate) enum CancelTarget {
    /// Enhanced dataset refresh: `DELETE .../refreshes/{id}`.
    EnhancedRefresh {
        workspace_id: String,
        dataset_id: String,
        request_id: String,
    },
    /// Standard dataset refresh: the API cannot cancel it.
    StandardRefresh,
    /// Report export: the API has no cancel either.
    Export { export_id: String },
    /// Gen1 transaction: `POST .../dataflows/transactions/{id}/cancel`.
    Transaction {
        workspace_id: String,
        transaction_id: String,
    },
    /// Fabric job instance: `POST .../jobs/instances/{id}/cancel`.
    FabricJob {
        workspace_id: String,
        item_id: String,
        job_id: String,
    },
}

impl CancelTarget {
    fn describe(&self) -> String {
        match self {
            CancelTarget::EnhancedRefresh { request_id, .. } => {
                format!("enhanced refresh {request_id}")
            }
            CancelTarget::StandardRefresh => "standard refresh".to_string(),
            CancelTarget::Export { export_id } => format!("export {export_id}"),
            CancelTarget::Transaction { transaction_id, .. } => {
                format!("dataflow transaction {transaction_id}")
            }
            CancelTarget::FabricJob { job_id, .. } => format!("job instance {job_id}"),
        }
    }

    /// Sends the cancel request; `Ok(false)` when the API has none for this work.
    pub(crate) async fn cancel(
        &self,
        client: &PowerBiClient,
        conn: &str,
    ) -> Result<bool, ClientError> {
        match self {
            CancelTarget::EnhancedRefresh {
                workspace_id,
                dataset_id,
                request_id,
            } => client
                .cancel_refresh(conn, workspace_id, dataset_id, request_id)
                .await
                .map(|_| true),
            CancelTarget::StandardRefresh | CancelTarget::Export { .. } => Ok(false),
            CancelTarget::Transaction {
                workspace_id,
                transaction_id,
            } => client
                .cancel_transaction(conn, workspace_id, transaction_id)
                .await
                .map(|_| true),
            CancelTarget::FabricJob {
                workspace_id,
                item_id,
                job_id,
            } => client
                .cancel_fabric_job(conn, workspace_id, item_id, job_id)
                .await
                .map(|_| true),
        }
    }
}

/// The outcome of an attempt whose [`Cancel`] fired: cancels `target` remotely on a timeout
/// or a plain interrupt, leaves it running on `--on-interrupt detach`.
pub(crate) async fn finish_cancelled(
    client: &PowerBiClient,
    ctx: &AttemptContext,
    target: Option<&CancelTarget>,
) -> AttemptOutcome {
    let reason = ctx.cancel.reason();
    let why = match reason {
        Some(CancelReason::Timeout) => "timed out",
        _ => "interrupted",
    };
    let Some(target) = target else {
        return AttemptOutcome::Cancelled {
            error: Some(format!("{why} before any remote work started")),
        };
    };
    if let Some(CancelReason::Interrupt { detach: true }) = reason {
        return AttemptOutcome::Cancelled {
            error: Some(format!(
                "{why}; {} left running (detach)",
                target.describe()
            )),
        };
    }
    let conn = ctx.step.connection.as_str();
    let result = tokio::time::timeout(CANCEL_CALL_LIMIT, target.cancel(client, conn)).await;
    let error = match result {
        Ok(Ok(true)) => format!("{why}; cancel requested for {}", target.describe()),
        Ok(Ok(false)) => format!(
            "{why}; the API cannot cancel this {}, it keeps running remotely",
            target.describe()
        ),
        Ok(Err(e)) => format!("{why}; cancelling {} failed: {e}", target.describe()),
        Err(_) => format!(
            "{why}; cancelling {} did not answer in time",
            target.describe()
        ),
    };
    tracing::info!(step = %ctx.step.id, attempt = ctx.attempt, "{error}");
    AttemptOutcome::Cancelled { error: Some(error) }
}

/// Maps an executor's result to the attempt outcome.
pub(crate) async fn conclude(
    client: &PowerBiClient,
    ctx: &AttemptContext,
    result: Result<AttemptOutcome, Stop>,
    target: Option<&CancelTarget>,
) -> AttemptOutcome {
    match result {
        Ok(outcome) => outcome,
        Err(Stop::Failed(error)) => AttemptOutcome::Failed {
            error,
            retry_after: None,
        },
        Err(Stop::Wait { error, wait }) => AttemptOutcome::Failed {
            error,
            retry_after: Some(wait),
        },
        Err(Stop::Refused(error)) => AttemptOutcome::Refused { error },
        Err(Stop::Cancelled) => finish_cancelled(client, ctx, target).await,
    }
}

/// Resolves a step's workspace and item by name or id, and reports the resolved resource.
pub(crate) async fn resolve(
    client: &PowerBiClient,
    ctx: &AttemptContext,
    workspace: &str,
    kind: crate::powerbi::resolve::ItemKind,
    item: &str,
) -> Result<(String, crate::powerbi::api::Item), Stop> {
    let conn = ctx.step.connection.as_str();
    let ws = guard(&ctx.cancel, client.workspace_id(conn, workspace)).await?;
    let item = guard(&ctx.cancel, client.resolve_item(conn, &ws, kind, item)).await?;
    ctx.update(resource_update(&ws, &item.id, &item.name));
    Ok((ws, item))
}

/// An update that carries the resolved resource.
pub(crate) fn resource_update(workspace_id: &str, item_id: &str, name: &str) -> AttemptUpdate {
    AttemptUpdate {
        resource: Some(ResourceRef {
            workspace_id: Some(workspace_id.to_string()),
            item_id: Some(item_id.to_string()),
            name: name.to_string(),
        }),
        ..AttemptUpdate::default()
    }
}

/// An update with a human note only.
pub(crate) fn note(text: impl Into<String>) -> AttemptUpdate {
    AttemptUpdate {
        note: Some(text.into()),
        ..AttemptUpdate::default()
    }
}

/// Case-insensitive comparison against several status words.
pub(crate) fn is_one_of(status: Option<&str>, words: &[&str]) -> bool {
    status.is_some_and(|s| words.iter().any(|w| s.eq_ignore_ascii_case(w)))
}

/// Parses the services' timestamps: RFC 3339, or without zone (UTC), 0–7 decimals.
pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let s = s.trim_end_matches('Z');
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
        .ok()
        .map(|n| n.and_utc())
}

/// True when `end` lies within `window` before now.
pub(crate) fn ended_within(end: Option<&str>, window: Duration) -> Option<DateTime<Utc>> {
    let end = parse_time(end?)?;
    let age = Utc::now().signed_duration_since(end);
    let window = chrono::Duration::from_std(window).ok()?;
    (age <= window).then_some(end)
}

/// `end - start` of a finished refresh, when both parse (the expected duration of the next).
pub(crate) fn took(start: Option<&str>, end: Option<&str>) -> Option<Duration> {
    let d = parse_time(end?)?.signed_duration_since(parse_time(start?)?);
    d.to_std().ok()
}

/// The `skip_if_fresh` outcome.
pub(crate) fn skipped_fresh(end: DateTime<Utc>, window: Duration) -> AttemptOutcome {
    AttemptOutcome::Skipped {
        reason: format!(
            "fresh: a successful refresh ended at {} (within skip_if_fresh {})",
            end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            humantime::format_duration(window)
        ),
        kind: SkipKind::Fresh,
    }
}

/// How long to wait for a triggered refresh to show up in history / transactions before
/// calling it silently dropped.
pub(crate) fn appear_wait(poll_interval: Duration) -> Duration {
    (poll_interval * 4).clamp(Duration::from_secs(10), Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_answers_that_cannot_change_are_refusals() {
        let refused = |e: ClientError| matches!(Stop::from(e), Stop::Refused(_));
        let auth = |refused: bool| ClientError::Auth {
            connection: "default".into(),
            message: "x".into(),
            refused,
        };
        assert!(refused(ClientError::Resolve(
            "dataset `X` not found".into()
        )));
        assert!(refused(ClientError::Config("unknown connection".into())));
        assert!(refused(auth(true)));
        // Entra unreachable or failing on its side, a service error, a lost connection: the
        // next attempt may well succeed.
        assert!(!refused(auth(false)));
        assert!(!refused(ClientError::Api {
            status: 404,
            code: Some("PowerBIEntityNotFound".into()),
            message: String::new(),
            retry_after: None,
            method: "GET".into(),
            url: "https://api.powerbi.com/v1.0/myorg/groups/g".into(),
            request_id: None,
        }));
        assert!(!refused(ClientError::Transport {
            message: "connection reset".into(),
            method: "POST".into(),
            url: "https://api.powerbi.com/".into(),
            maybe_sent: true,
        }));
    }

    #[test]
    fn timestamps_are_parsed_leniently() {
        let a = parse_time("2023-04-22T06:35:00.7812154").unwrap();
        let b = parse_time("2023-04-22T06:35:00.78Z").unwrap();
        assert_eq!(a.timestamp(), b.timestamp());
        assert!(parse_time("2023-04-22T06:35:00+02:00").is_some());
        assert!(parse_time("").is_none());
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn status_words_ignore_case() {
        assert!(is_one_of(Some("inProgress"), &["InProgress"]));
        assert!(!is_one_of(None, &["InProgress"]));
    }
}

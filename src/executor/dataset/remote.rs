//! Reading a dataset's refresh history and execution details: status words, the running
//! refresh, and our own refresh found by set difference.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

use super::HISTORY_TOP;
use crate::executor::common::{Stop, guard, is_one_of};
use crate::executor::poll::Poller;
use crate::executor::{AttemptContext, AttemptUpdate};
use crate::powerbi::PowerBiClient;
use crate::powerbi::api::{RefreshDetail, RefreshEntry};
use crate::powerbi::errors::parse_service_exception;

pub(super) enum Progress {
    Running,
    Succeeded,
    Failed(String),
}

pub(super) fn entry_progress(e: &RefreshEntry) -> Progress {
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

pub(super) fn detail_progress(d: &RefreshDetail) -> Progress {
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
pub(super) fn running_entry(history: &[RefreshEntry]) -> Option<&RefreshEntry> {
    history
        .iter()
        .find(|e| matches!(entry_progress(e), Progress::Running) && e.request_id.is_some())
}

pub(super) fn ids(history: &[RefreshEntry]) -> HashSet<String> {
    history
        .iter()
        .filter_map(|e| e.request_id.clone())
        .collect()
}

pub(super) struct Target<'a> {
    pub(super) client: &'a PowerBiClient,
    pub(super) ctx: &'a AttemptContext,
    pub(super) conn: &'a str,
    pub(super) ws: String,
    pub(super) ds: String,
    pub(super) name: String,
}

impl Target<'_> {
    pub(super) async fn history(&self) -> Result<Vec<RefreshEntry>, Stop> {
        guard(
            &self.ctx.cancel,
            self.client
                .refresh_history(self.conn, &self.ws, &self.ds, HISTORY_TOP),
        )
        .await
    }

    pub(super) fn update(&self, u: AttemptUpdate) {
        self.ctx.update(u);
    }

    /// Polls history until the entry `request_id` is terminal. `seen`: the entry as a read
    /// just made found it (by [`Target::find_new`]), used instead of a first read of its own.
    pub(super) async fn poll_entry(
        &self,
        request_id: &str,
        mut poller: Poller,
        seen: Option<RefreshEntry>,
    ) -> Result<Progress, Stop> {
        let mut last_status: Option<String> = None;
        let mut seen = seen.filter(|e| e.request_id.as_deref() == Some(request_id));
        loop {
            let entry = match seen.take() {
                Some(e) => Some(e),
                None => self
                    .history()
                    .await?
                    .into_iter()
                    .find(|e| e.request_id.as_deref() == Some(request_id)),
            };
            match &entry {
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
    pub(super) async fn poll_details(
        &self,
        request_id: &str,
        mut poller: Poller,
    ) -> Result<Progress, Stop> {
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
    pub(super) async fn find_new(
        &self,
        known: &HashSet<String>,
        kinds: &[&str],
        started: Instant,
        limit: Duration,
    ) -> Result<Option<RefreshEntry>, Stop> {
        let mut poller = Poller::starting_at(
            self.ctx.step.poll_interval.min(Duration::from_secs(5)),
            started,
        );
        loop {
            let history = self.history().await?;
            // Newest first: the oldest new entry is the closest to our trigger.
            if let Some(e) = history.into_iter().rev().find(|e| {
                e.request_id.as_ref().is_some_and(|id| !known.contains(id))
                    && (e.refresh_type.is_none() || is_one_of(e.refresh_type.as_deref(), kinds))
            }) {
                return Ok(Some(e));
            }
            if started.elapsed() >= limit {
                return Ok(None);
            }
            poller.wait(&self.ctx.cancel, None).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

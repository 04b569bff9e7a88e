//! Reading a dataset's refresh history and execution details: what their status words mean.

use crate::executor::common::is_one_of;
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

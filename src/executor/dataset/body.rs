//! Request bodies of a dataset refresh.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::job::model::{DatasetStep, EnhancedRefresh};

/// The enhanced refresh body: PascalCase enum values, `timeout` as `hh:mm:ss`, no
/// `notifyOption`.
pub(crate) fn enhanced_body(r: &EnhancedRefresh) -> Value {
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
        m.insert("effectiveDate".into(), json!(effective_date(d)));
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

/// `effectiveDate` as the swagger types it (`date-time`): a date alone (`YYYY-MM-DD`, as
/// Microsoft Learn's enhanced-refresh page shows it) becomes midnight UTC of that date; a
/// date-time is sent as written.
pub(super) fn effective_date(d: &str) -> String {
    let d = d.trim();
    match chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d") {
        Ok(date) => format!("{}T00:00:00Z", date.format("%Y-%m-%d")),
        Err(_) => d.to_string(),
    }
}

/// `hh:mm:ss`, capped below 24 h as the service requires.
pub(super) fn hhmmss(d: Duration) -> String {
    let s = d.as_secs().min(23 * 3600 + 59 * 60 + 59);
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// The standard refresh body.
pub(crate) fn standard_body(ds: &DatasetStep) -> Value {
    json!({ "notifyOption": ds.notify })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::model::{CommitMode, NotifyOption, RefreshObject, RefreshType};

    #[test]
    fn an_effective_date_is_sent_as_a_date_time() {
        assert_eq!(effective_date("2025-01-31"), "2025-01-31T00:00:00Z");
        assert_eq!(
            effective_date("2025-01-31T06:00:00+02:00"),
            "2025-01-31T06:00:00+02:00"
        );
    }

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
}

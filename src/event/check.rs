//! The result of a check step, as every output shows it: what was asserted, what was
//! observed, whether it passed, how a failure counts, and the first few offending rows. It
//! travels on a progress update ([`super::AttemptUpdate::check`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::job::model::Severity;

/// At most this many characters of one sample row are shown in a message.
pub(crate) const ROW_CHARS: usize = 200;

/// What a check found. The last attempt's replaces an earlier one's: a retried check is
/// counted once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CheckResult {
    /// The assertion in words (`no rows`, `rows >= 1`, `[n] between 1 and 10`).
    pub assertion: String,
    /// What the answer held (`3 rows`, `[n] = 0`).
    pub observed: String,
    pub passed: bool,
    /// `error`: a failed check fails the step; `warn`: the step succeeds with a warning.
    pub severity: Severity,
    /// Rows returned by the query.
    pub rows: u64,
    /// The first rows of a failed check's answer (at most 5), as the service sent them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sample: Vec<Map<String, Value>>,
}

impl CheckResult {
    /// One readable line: `check failed: expected no rows, got 3 rows; first 3: {..}; {..}`.
    pub fn message(&self) -> String {
        let verdict = match (self.passed, self.severity) {
            (true, _) => "check passed",
            (false, Severity::Error) => "check failed",
            (false, Severity::Warn) => "check warning",
        };
        let mut out = format!(
            "{verdict}: expected {}, got {}",
            self.assertion, self.observed
        );
        if !self.passed && !self.sample.is_empty() {
            let rows: Vec<String> = self
                .sample
                .iter()
                .map(|r| bounded(&Value::Object(r.clone()).to_string(), ROW_CHARS))
                .collect();
            let more = if self.rows > self.sample.len() as u64 {
                format!(" (of {})", self.rows)
            } else {
                String::new()
            };
            out.push_str(&format!(
                "; first {}{more}: {}",
                self.sample.len(),
                rows.join("; ")
            ));
        }
        out
    }

    /// True when the check failed but only warns.
    pub fn is_warning(&self) -> bool {
        !self.passed && self.severity == Severity::Warn
    }
}

pub(crate) fn bounded(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

//! The result of a check (a `data_check` step's assertion on a query's answer), as every
//! output shows it: what was asserted, what was observed, whether it passed, how a failure
//! counts, and the first few offending rows.
//!
//! Evaluation is pure: [`evaluate`] takes the rows the service returned and the expectation.

use serde_json::{Map, Value};

use super::common::Stop;
use super::{AttemptContext, AttemptOutcome};
use crate::event::AttemptUpdate;
pub use crate::event::CheckResult;
use crate::event::check::{ROW_CHARS, bounded};
use crate::job::model::{Expectation, Severity};

/// At most this many rows are kept as the sample of a failed check.
pub const SAMPLE_ROWS: usize = 5;

/// Shows `check` on the attempt (the one read it took) and concludes the attempt: a check
/// that passed or only warns succeeds; a failed one stops it with its message, as `failure`
/// says (`Stop::Failed`: another attempt may see other data; `Stop::Refused`: it would not).
pub(crate) fn conclude_check(
    ctx: &AttemptContext,
    check: CheckResult,
    failure: fn(String) -> Stop,
) -> Result<AttemptOutcome, Stop> {
    let verdict = if check.passed || check.is_warning() {
        Ok(AttemptOutcome::Succeeded { adopted: false })
    } else {
        Err(failure(check.message()))
    };
    ctx.update(AttemptUpdate {
        reads: 1,
        check: Some(Box::new(check)),
        ..AttemptUpdate::default()
    });
    verdict
}

fn num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn range(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(lo), Some(hi)) if lo == hi => format!("= {}", num(lo)),
        (Some(lo), Some(hi)) => format!("between {} and {}", num(lo), num(hi)),
        (Some(lo), None) => format!(">= {}", num(lo)),
        (None, Some(hi)) => format!("<= {}", num(hi)),
        (None, None) => "anything".to_string(),
    }
}

fn within(n: f64, min: Option<f64>, max: Option<f64>) -> bool {
    min.is_none_or(|lo| n >= lo) && max.is_none_or(|hi| n <= hi)
}

fn plural(n: u64) -> String {
    if n == 1 {
        "1 row".into()
    } else {
        format!("{n} rows")
    }
}

/// The column of `row` that `wanted` names: exactly, or as `[wanted]`, or a qualified
/// `Table[wanted]` (the service names a query's own columns `[Name]` and model columns
/// `Table[Name]`); without `wanted`, the only column.
fn pick<'r>(
    row: &'r Map<String, Value>,
    wanted: Option<&str>,
) -> Result<(&'r str, &'r Value), String> {
    match wanted {
        None => match row.len() {
            1 => row
                .iter()
                .next()
                .map(|(k, v)| (k.as_str(), v))
                .ok_or_else(|| "no column".to_string()),
            n => Err(format!(
                "{n} columns ({}): name one with `column`",
                row.keys().cloned().collect::<Vec<_>>().join(", ")
            )),
        },
        Some(w) => {
            let bare = w.trim().trim_start_matches('[').trim_end_matches(']');
            let found = row.iter().find(|(k, _)| {
                k.as_str() == w
                    || k.as_str() == format!("[{bare}]")
                    || k.ends_with(&format!("[{bare}]"))
            });
            found.map(|(k, v)| (k.as_str(), v)).ok_or_else(|| {
                format!(
                    "no column `{w}` (the answer has {})",
                    row.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            })
        }
    }
}

/// Checks `rows` (the one result table) against `expect`.
pub fn evaluate(
    expect: &Expectation,
    severity: Severity,
    rows: &[Map<String, Value>],
) -> CheckResult {
    let n = rows.len() as u64;
    let sample = || rows.iter().take(SAMPLE_ROWS).cloned().collect::<Vec<_>>();
    let (assertion, observed, passed) = match expect {
        Expectation::NoRows => ("no rows".to_string(), plural(n), n == 0),
        Expectation::Rows { min, max } => {
            let (lo, hi) = (min.map(|m| m as f64), max.map(|m| m as f64));
            (
                format!("rows {}", range(lo, hi)),
                plural(n),
                within(n as f64, lo, hi),
            )
        }
        Expectation::Value {
            column,
            min,
            max,
            equals,
        } => {
            let wanted = match equals {
                Some(e) => format!("= {e}"),
                None => range(*min, *max),
            };
            let name = column.clone().unwrap_or_else(|| "the value".to_string());
            match rows.first().map(|r| pick(r, column.as_deref())) {
                None => (format!("{name} {wanted}"), "no rows".to_string(), false),
                Some(Err(why)) => (format!("{name} {wanted}"), why, false),
                Some(Ok((key, value))) => {
                    let passed = match (equals, value.as_f64()) {
                        (Some(e), Some(v)) if e.is_number() => e.as_f64() == Some(v),
                        (Some(e), _) => e == value,
                        (None, Some(v)) => within(v, *min, *max),
                        (None, None) => false,
                    };
                    let shown = if value.is_null() {
                        "blank".to_string()
                    } else {
                        bounded(&value.to_string(), ROW_CHARS)
                    };
                    (
                        format!("{key} {wanted}"),
                        format!("{key} = {shown}"),
                        passed,
                    )
                }
            }
        }
    };
    CheckResult {
        assertion,
        observed,
        passed,
        severity,
        rows: n,
        sample: if passed { Vec::new() } else { sample() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(v: Value) -> Vec<Map<String, Value>> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_object().unwrap().clone())
            .collect()
    }

    #[test]
    fn no_rows_fails_with_the_first_five_offending_rows() {
        let answer = rows(json!([
            {"Orders[Id]": 1, "Orders[Amount]": -5},
            {"Orders[Id]": 2, "Orders[Amount]": -1},
            {"Orders[Id]": 3, "Orders[Amount]": -2},
            {"Orders[Id]": 4, "Orders[Amount]": -3},
            {"Orders[Id]": 5, "Orders[Amount]": -4},
            {"Orders[Id]": 6, "Orders[Amount]": -9}
        ]));
        let r = evaluate(&Expectation::NoRows, Severity::Error, &answer);
        assert!(!r.passed);
        assert_eq!(r.sample.len(), 5);
        assert_eq!(
            r.message(),
            "check failed: expected no rows, got 6 rows; first 5 (of 6): {\"Orders[Id]\":1,\"Orders[Amount]\":-5}; {\"Orders[Id]\":2,\"Orders[Amount]\":-1}; {\"Orders[Id]\":3,\"Orders[Amount]\":-2}; {\"Orders[Id]\":4,\"Orders[Amount]\":-3}; {\"Orders[Id]\":5,\"Orders[Amount]\":-4}"
        );
        let ok = evaluate(&Expectation::NoRows, Severity::Error, &[]);
        assert!(ok.passed && ok.sample.is_empty());
        assert_eq!(ok.message(), "check passed: expected no rows, got 0 rows");
    }

    #[test]
    fn row_counts_and_values_compare_with_their_bounds() {
        let three = rows(json!([{"a": 1}, {"a": 2}, {"a": 3}]));
        let r = evaluate(
            &Expectation::Rows {
                min: Some(1),
                max: Some(2),
            },
            Severity::Warn,
            &three,
        );
        assert!(!r.passed && r.is_warning());
        assert_eq!(r.assertion, "rows between 1 and 2");
        assert!(
            r.message()
                .starts_with("check warning: expected rows between 1 and 2, got 3 rows")
        );
        let value = |column: Option<&str>, min, max, equals: Option<Value>, answer: Value| {
            evaluate(
                &Expectation::Value {
                    column: column.map(String::from),
                    min,
                    max,
                    equals,
                },
                Severity::Error,
                &rows(answer),
            )
        };
        let r = value(None, Some(1.0), None, None, json!([{"[n]": 0}]));
        assert!(!r.passed);
        assert_eq!(
            r.message(),
            "check failed: expected [n] >= 1, got [n] = 0; first 1: {\"[n]\":0}"
        );
        assert!(
            value(
                Some("n"),
                Some(1.0),
                Some(10.0),
                None,
                json!([{"[n]": 10, "[m]": 0}])
            )
            .passed
        );
        assert!(
            value(
                Some("Amount"),
                None,
                Some(0.0),
                None,
                json!([{"Sales[Amount]": -1.5}])
            )
            .passed
        );
        assert!(value(None, None, None, Some(json!("EU")), json!([{"[r]": "EU"}])).passed);
        assert!(value(None, None, None, Some(json!(3)), json!([{"[r]": 3.0}])).passed);
        let r = value(None, Some(0.0), None, None, json!([{"[a]": 1, "[b]": 2}]));
        assert_eq!(r.observed, "2 columns ([a], [b]): name one with `column`");
        let r = value(None, Some(0.0), None, None, json!([{"[a]": null}]));
        assert!(!r.passed);
        assert_eq!(r.observed, "[a] = blank");
        let r = value(None, Some(0.0), None, None, json!([]));
        assert_eq!((r.passed, r.observed.as_str()), (false, "no rows"));
    }
}

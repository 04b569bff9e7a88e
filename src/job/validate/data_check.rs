//! The `data_check` step: which model, which DAX query, and what its answer must satisfy.

use super::Checker;
use super::kinds::{required, workspace};
use crate::job::Code;
use crate::job::model::{DataCheckStep, Expectation, Severity, StepKind};
use crate::job::raw::{RawBounds, RawSeverity, RawStep, Sp};

/// The Execute Queries API takes one query of one result table; a query this long is a
/// mistake (a pasted file), not a check.
const MAX_QUERY_CHARS: usize = 100_000;

/// `min`/`max`/`equals` as written, checked: at least one, `equals` alone, `min <= max`.
fn bounds(
    c: &mut Checker<'_>,
    b: &Sp<RawBounds>,
    what: &str,
    integers: bool,
) -> (Option<f64>, Option<f64>, Option<serde_json::Value>) {
    let raw = b.get();
    let mut number = |v: &Option<Sp<f64>>, key: &str| {
        let v = v.as_ref()?;
        let n = *v.get();
        if !n.is_finite() {
            c.error(
                Code::InvalidValue,
                v.loc(),
                format!("`{what}.{key}` must be a number"),
                "not a number",
            );
            return None;
        }
        if integers && (n < 0.0 || n.fract() != 0.0) {
            c.error(
                Code::InvalidValue,
                v.loc(),
                format!("`{what}.{key}` must be a whole number of rows (0 or more)"),
                "not a row count",
            );
            return None;
        }
        Some(n)
    };
    let min = number(&raw.min, "min");
    let max = number(&raw.max, "max");
    let equals = raw.equals.as_ref().map(|e| {
        if integers {
            c.error(
                Code::NotApplicable,
                e.loc(),
                format!("`{what}` takes `min` and `max`, not `equals`"),
                "use `min` and `max` with the same value",
            );
        } else if !(e.get().is_number() || e.get().is_string() || e.get().is_boolean()) {
            c.error(
                Code::InvalidValue,
                e.loc(),
                "`equals` must be a number, a string or a boolean",
                "not a scalar",
            );
        }
        if raw.min.is_some() || raw.max.is_some() {
            c.error(
                Code::ConflictingKeys,
                e.loc(),
                "`equals` with `min` or `max`",
                "give either `equals` or the bounds",
            );
        }
        e.get().clone()
    });
    if raw.min.is_none() && raw.max.is_none() && raw.equals.is_none() {
        c.error(
            Code::EmptyValue,
            b.loc(),
            format!("`{what}` sets no bound"),
            "give `min`, `max` or `equals`",
        );
    }
    if let (Some(lo), Some(hi), Some(at)) = (min, max, raw.max.as_ref())
        && lo > hi
    {
        c.error(
            Code::OutOfRange,
            at.loc(),
            format!("`{what}.max` ({hi}) is below `{what}.min` ({lo})"),
            "nothing can pass",
        );
    }
    (min, max, equals)
}

pub(super) fn data_check(c: &mut Checker<'_>, step: &Sp<RawStep>) -> Option<StepKind> {
    let raw = step.get();
    let ws = workspace(c, step);
    let dataset = required(c, step, &raw.dataset, "dataset", "name or GUID")
        .map(|v| c.non_empty(v, "dataset"));
    let query = required(
        c,
        step,
        &raw.query,
        "query",
        "one DAX query, e.g. EVALUATE ROW(\"n\", COUNTROWS('Orders'))",
    )
    .map(|v| {
        let q = c.non_empty(v, "query");
        let first = q.split_whitespace().next().unwrap_or_default();
        if !q.trim().is_empty()
            && !q.contains("${")
            && !["EVALUATE", "DEFINE"]
                .iter()
                .any(|k| first.eq_ignore_ascii_case(k))
        {
            c.error_help(
                Code::InvalidValue,
                v.loc(),
                "a DAX query starts with `EVALUATE` (or `DEFINE`)",
                "not a DAX query",
                Some("the Execute Queries API runs DAX queries only: no MDX or DMV".into()),
            );
        }
        if q.chars().count() > MAX_QUERY_CHARS {
            c.error(
                Code::OutOfRange,
                v.loc(),
                format!("the query is longer than {MAX_QUERY_CHARS} characters"),
                "too long",
            );
        }
        q
    });
    let expect = match &raw.expect {
        None => {
            c.error(
                Code::MissingKey,
                raw.step_type.loc(),
                "a `data_check` step needs `expect`",
                "`expect:` missing (`rows`, `value` or `no_rows`)",
            );
            None
        }
        Some(e) => expectation(c, e),
    };
    let severity = match raw.severity.as_ref().map(|s| *s.get()) {
        None | Some(RawSeverity::Error) => Severity::Error,
        Some(RawSeverity::Warn) => Severity::Warn,
    };
    let impersonated_user = raw
        .impersonated_user
        .as_ref()
        .map(|v| c.non_empty(v, "impersonated_user"));
    Some(StepKind::DataCheck(DataCheckStep {
        workspace: ws?,
        dataset: dataset?,
        query: query?,
        expect: expect?,
        severity,
        impersonated_user,
    }))
}

fn expectation(c: &mut Checker<'_>, e: &Sp<crate::job::raw::RawExpect>) -> Option<Expectation> {
    let raw = e.get();
    let given = [
        raw.rows.is_some(),
        raw.value.is_some(),
        raw.no_rows.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if given != 1 {
        c.error_help(
            Code::InvalidValue,
            e.loc(),
            if given == 0 {
                "`expect` holds no assertion".to_string()
            } else {
                "`expect` holds more than one assertion".to_string()
            },
            "exactly one of `rows`, `value`, `no_rows`",
            Some("write one data_check step per assertion".into()),
        );
        return None;
    }
    if let (Some(col), None) = (&raw.column, &raw.value) {
        c.error(
            Code::NotApplicable,
            col.loc(),
            "`column` goes with `value`",
            "no `value` to read",
        );
    }
    if let Some(n) = &raw.no_rows {
        if !*n.get() {
            c.error(
                Code::InvalidValue,
                n.loc(),
                "`no_rows: false` asserts nothing",
                "write `no_rows: true`, or use `rows: { min: 1 }`",
            );
            return None;
        }
        return Some(Expectation::NoRows);
    }
    if let Some(r) = &raw.rows {
        let (min, max, _) = bounds(c, r, "rows", true);
        return Some(Expectation::Rows {
            min: min.map(|n| n as u64),
            max: max.map(|n| n as u64),
        });
    }
    let v = raw.value.as_ref()?;
    let (min, max, equals) = bounds(c, v, "value", false);
    let column = raw.column.as_ref().map(|col| c.non_empty(col, "column"));
    Some(Expectation::Value {
        column,
        min,
        max,
        equals,
    })
}

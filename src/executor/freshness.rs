//! `freshness`: reads the service's run history of a dataset, dataflow or Fabric item (the
//! listing the remote-run protocol reads before a trigger: refresh history, transactions,
//! job instances) and judges how long ago its newest successful run ended. Nothing is
//! triggered: the executor of the resource runs in listing mode
//! ([`AttemptContext::estimate`]), which returns before any trigger.
//!
//! Like dbt's source freshness: past `warn_after` the step succeeds with a warning, past
//! `max_age` it fails; no successful run in the history fails it (or warns, with only
//! `warn_after`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::checks::conclude_check;
use super::common::{Stop, conclude, parse_time};
use super::{AttemptContext, AttemptOutcome, EstimateSlot};
use crate::event::CheckResult;
use crate::job::model::{FreshnessStep, Severity, StepKind};
use crate::powerbi::PowerBiClient;

fn human(d: Duration) -> String {
    // Minutes are enough for an age; seconds would only add noise.
    humantime::format_duration(Duration::from_secs(d.as_secs() / 60 * 60)).to_string()
}

/// The verdict for a newest successful end `last` (None: none in the history) at `now`.
pub(crate) fn judge(
    f: &FreshnessStep,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> CheckResult {
    let bound = |d: Option<Duration>, word: &str| d.map(|d| format!("{word} {}", human(d)));
    let assertion = [
        bound(f.max_age, "at most"),
        bound(f.warn_after, "warn after"),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ");
    let assertion = format!("last success {assertion} ago");
    let fail = |observed: String, severity: Severity| CheckResult {
        assertion: assertion.clone(),
        observed,
        passed: false,
        severity,
        rows: 0,
        sample: Vec::new(),
    };
    // Only `warn_after`: a stale or missing success warns, never fails.
    let worst = if f.max_age.is_some() {
        Severity::Error
    } else {
        Severity::Warn
    };
    let Some(last) = last else {
        return fail("no successful run in the service's history".into(), worst);
    };
    let age = (now - last).to_std().unwrap_or_default();
    let observed = format!(
        "ended {} ({} ago)",
        last.format("%Y-%m-%dT%H:%M:%SZ"),
        human(age)
    );
    if f.max_age.is_some_and(|m| age > m) {
        fail(observed, Severity::Error)
    } else if f.warn_after.is_some_and(|w| age > w) {
        fail(observed, Severity::Warn)
    } else {
        CheckResult {
            assertion,
            observed,
            passed: true,
            severity: worst,
            rows: 0,
            sample: Vec::new(),
        }
    }
}

/// Runs one attempt of a freshness step.
pub(crate) async fn run(
    client: PowerBiClient,
    ctx: AttemptContext,
    f: FreshnessStep,
) -> AttemptOutcome {
    let result = attempt(&client, &ctx, &f).await;
    conclude(&client, &ctx, result, None).await
}

async fn attempt(
    client: &PowerBiClient,
    ctx: &AttemptContext,
    f: &FreshnessStep,
) -> Result<AttemptOutcome, Stop> {
    let slot = EstimateSlot::default();
    let mut inner = (*ctx.step).clone();
    inner.kind = (*f.target).clone();
    let listing_ctx = AttemptContext {
        step: Arc::new(inner),
        reattach: None,
        estimate: Some(slot.clone()),
        ..ctx.clone()
    };
    let outcome = match f.target.as_ref() {
        StepKind::Dataset(s) => super::dataset::run(client.clone(), listing_ctx, s.clone()).await,
        StepKind::Dataflow(s) => super::dataflow::run(client.clone(), listing_ctx, s.clone()).await,
        StepKind::FabricJob(s) => {
            super::fabric::items::run(client.clone(), listing_ctx, s.clone()).await
        }
        other => {
            return Err(Stop::Refused(format!(
                "a freshness step cannot read the history of a `{}` step",
                other.type_name()
            )));
        }
    };
    let listing = slot.lock().map(|l| l.clone()).unwrap_or_default();
    if !listing.listed {
        // Stopped before the listing: a name that did not resolve, a cancel.
        return match outcome {
            AttemptOutcome::Cancelled { .. } => Err(Stop::Cancelled),
            AttemptOutcome::Refused { error } | AttemptOutcome::Failed { error, .. } => {
                Err(Stop::Refused(error))
            }
            _ => Err(Stop::Failed("the run history could not be read".into())),
        };
    }
    if let Some(e) = listing.error {
        return Err(Stop::from(e));
    }
    let last = listing.last_success_end.as_deref().and_then(parse_time);
    // A stale resource does not freshen when asked again: not retried.
    conclude_check(ctx, judge(f, last, Utc::now()), Stop::Refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::model::{DatasetStep, NotifyOption};

    fn step(max_age: Option<u64>, warn_after: Option<u64>) -> FreshnessStep {
        FreshnessStep {
            target: Box::new(StepKind::Dataset(DatasetStep {
                workspace: "W".into(),
                dataset: "D".into(),
                notify: NotifyOption::NoNotification,
                refresh: None,
            })),
            max_age: max_age.map(|h| Duration::from_secs(h * 3600)),
            warn_after: warn_after.map(|h| Duration::from_secs(h * 3600)),
        }
    }

    #[test]
    fn fresh_stale_warned_and_missing() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z")
            .unwrap()
            .to_utc();
        let hours_ago = |h: i64| Some(now - chrono::Duration::hours(h));
        let f = step(Some(26), Some(20));
        let fresh = judge(&f, hours_ago(3), now);
        assert!(fresh.passed);
        assert_eq!(
            fresh.assertion,
            "last success at most 1day 2h, warn after 20h ago"
        );
        assert_eq!(fresh.observed, "ended 2026-12-06T09:00:00Z (3h ago)");
        let warned = judge(&f, hours_ago(22), now);
        assert!(!warned.passed && warned.is_warning());
        let stale = judge(&f, hours_ago(30), now);
        assert_eq!((stale.passed, stale.severity), (false, Severity::Error));
        assert_eq!(
            stale.message(),
            "check failed: expected last success at most 1day 2h, warn after 20h ago, got ended 2026-12-05T06:00:00Z (1day 6h ago)"
        );
        let missing = judge(&f, None, now);
        assert_eq!(
            missing.observed,
            "no successful run in the service's history"
        );
        assert_eq!(missing.severity, Severity::Error);
        // Only `warn_after`: never fails.
        assert!(judge(&step(None, Some(1)), None, now).is_warning());
    }
}

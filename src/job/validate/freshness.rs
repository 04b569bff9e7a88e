//! The `freshness` step: which resource (a dataset, a dataflow or a Fabric item, written as
//! the step that would refresh it) and how old its last successful run may be.

use super::{Checker, MAX_DURATION};
use crate::job::Code;
use crate::job::model::{FreshnessStep, StepKind};
use crate::job::raw::{RawStep, Sp};

pub(super) fn freshness(c: &mut Checker<'_>, step: &Sp<RawStep>) -> Option<StepKind> {
    let raw = step.get();
    let named = [
        raw.dataset.is_some(),
        raw.dataflow.is_some(),
        raw.item.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if named != 1 {
        c.error_help(
            if named == 0 {
                Code::MissingKey
            } else {
                Code::ConflictingKeys
            },
            raw.step_type.loc(),
            if named == 0 {
                "a `freshness` step needs `dataset`, `dataflow` or `item`"
            } else {
                "a `freshness` step names more than one of `dataset`, `dataflow`, `item`"
            },
            "exactly one resource",
            Some("one freshness step per resource".into()),
        );
    }
    if let Some(g) = &raw.generation
        && raw.dataflow.is_none()
    {
        c.error(
            Code::NotApplicable,
            g.loc(),
            "`generation` goes with `dataflow`",
            "no `dataflow`",
        );
    }
    if let Some(t) = &raw.item_type
        && raw.item.is_none()
    {
        c.error(
            Code::NotApplicable,
            t.loc(),
            "`item_type` goes with `item`",
            "no `item`",
        );
    }
    let max_age = raw
        .max_age
        .as_ref()
        .and_then(|v| c.duration(v, "max_age", MAX_DURATION));
    let warn_after = raw
        .warn_after
        .as_ref()
        .and_then(|v| c.duration(v, "warn_after", MAX_DURATION));
    if raw.max_age.is_none() && raw.warn_after.is_none() {
        c.error_help(
            Code::MissingKey,
            raw.step_type.loc(),
            "a `freshness` step needs `max_age` or `warn_after`",
            "no bound",
            Some("`max_age: 26h` fails the step past 26 hours; `warn_after` only warns".into()),
        );
    }
    if let (Some(w), Some(m), Some(at)) = (warn_after, max_age, raw.warn_after.as_ref())
        && w >= m
    {
        c.error(
            Code::OutOfRange,
            at.loc(),
            "`warn_after` is not below `max_age`",
            "it would never warn before failing",
        );
    }
    let target = if named != 1 {
        None
    } else if raw.dataset.is_some() {
        super::kinds::dataset(c, step)
    } else if raw.dataflow.is_some() {
        super::kinds::dataflow(c, step)
    } else {
        super::fabric_job::fabric_job(c, step)
    }?;
    Some(StepKind::Freshness(FreshnessStep {
        target: Box::new(target),
        max_age,
        warn_after,
    }))
}

//! The `capacity` step: which Fabric capacity, and what to do with it.

use super::Checker;
use crate::job::Code;
use crate::job::model::{CapacityAction, CapacityRef, CapacityStep, StepKind};
use crate::job::raw::{RawCapacityAction, RawStep, Sp};

/// The Fabric SKUs ARM accepts (`F2` .. `F2048`, powers of two).
pub(crate) const FABRIC_SKUS: &[&str] = &[
    "F2", "F4", "F8", "F16", "F32", "F64", "F128", "F256", "F512", "F1024", "F2048",
];

fn missing(c: &mut Checker<'_>, step: &Sp<RawStep>, key: &str, hint: &str) {
    c.missing_key(
        step.get().step_type.loc(),
        key,
        format!("a `capacity` step needs `{key}`"),
        &format!("`{key}:` missing ({hint})"),
    );
}

/// A capacity name as ARM allows it: `[a-z][a-z0-9]*`, 3 to 63 characters.
fn is_capacity_name(s: &str) -> bool {
    (3..=63).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

pub(super) fn capacity(c: &mut Checker<'_>, step: &Sp<RawStep>) -> Option<StepKind> {
    let raw = step.get();
    if raw.action.is_none() {
        missing(c, step, "action", "resume, suspend or scale");
    }
    if raw.capacity.is_none() {
        missing(
            c,
            step,
            "capacity",
            "the capacity's Azure resource id, or its name with `subscription` and `resource_group`",
        );
    }
    let capacity = raw
        .capacity
        .as_ref()
        .map(|v| (c.non_empty(v, "capacity"), v.loc()));
    let subscription = raw
        .subscription
        .as_ref()
        .map(|v| (c.non_empty(v, "subscription"), v.loc()));
    let resource_group = raw
        .resource_group
        .as_ref()
        .map(|v| (c.non_empty(v, "resource_group"), v.loc()));
    if let Some((value, loc)) = &capacity
        && !value.contains("${")
    {
        if value.trim().starts_with('/') {
            if CapacityRef::parse_id(value).is_none() {
                c.error(Code::InvalidValue,
                    *loc,
                    format!("`{value}` is not a Fabric capacity resource id"),
                    "expected /subscriptions/SUB/resourceGroups/RG/providers/Microsoft.Fabric/capacities/NAME",
                );
            }
            for (key, v) in [
                ("subscription", &subscription),
                ("resource_group", &resource_group),
            ] {
                if let Some((_, l)) = v {
                    c.error(
                        Code::NotApplicable,
                        *l,
                        format!("`{key}` goes with a capacity name, not with a resource id"),
                        "the resource id already says it",
                    );
                }
            }
        } else {
            if !is_capacity_name(value.trim()) {
                c.error(Code::InvalidName,
                    *loc,
                    format!("invalid capacity name `{value}`"),
                    "3 to 63 lower-case letters and digits, starting with a letter (or the resource id)",
                );
            }
            if subscription.is_none() {
                missing(c, step, "subscription", "with a capacity name");
            }
            if resource_group.is_none() {
                missing(c, step, "resource_group", "with a capacity name");
            }
        }
    }
    let action = match raw.action.as_ref().map(|a| *a.get()) {
        Some(RawCapacityAction::Resume) => Some(CapacityAction::Resume),
        Some(RawCapacityAction::Suspend) => Some(CapacityAction::Suspend),
        Some(RawCapacityAction::Scale) => match &raw.sku {
            None => {
                missing(c, step, "sku", "`action: scale` sets it, e.g. F64");
                None
            }
            Some(v) => {
                let sku = c.non_empty(v, "sku");
                let upper = sku.trim().to_ascii_uppercase();
                if !sku.contains("${") && !FABRIC_SKUS.contains(&upper.as_str()) {
                    c.error_help(
                        Code::InvalidValue,
                        v.loc(),
                        format!("unknown Fabric SKU `{sku}`"),
                        "not a Fabric capacity SKU",
                        Some(format!("one of {}", FABRIC_SKUS.join(", "))),
                    );
                }
                Some(CapacityAction::Scale {
                    sku: if sku.contains("${") { sku } else { upper },
                })
            }
        },
        None => None,
    };
    if let Some(v) = &raw.sku
        && !matches!(action, Some(CapacityAction::Scale { .. }))
        && raw.action.is_some()
    {
        c.error(
            Code::NotApplicable,
            v.loc(),
            "`sku` goes with `action: scale` only",
            "not for this action",
        );
    }
    Some(StepKind::Capacity(CapacityStep {
        action: action?,
        capacity: capacity?.0,
        subscription: subscription.map(|s| s.0),
        resource_group: resource_group.map(|s| s.0),
    }))
}

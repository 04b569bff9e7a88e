//! Which step keys belong to which step type: one table used both by validation (a key of
//! another type is a located error) and by the JSON Schema (per-type `if`/`then`).

use serde_saphyr::Location;

use crate::job::raw::{RawStep, RawStepType};

/// Keys every step type accepts.
pub(crate) const COMMON_KEYS: &[&str] = &[
    "type",
    "depends_on",
    "trigger",
    "when",
    "pool",
    "tags",
    "timeout",
    "retries",
    "retry_backoff",
    "max_backoff",
    "continue_on_error",
    "for_each",
    "expected_duration",
    "on_overrun",
];

/// Keys that apply only to a step that starts remote work and watches it (`dataset`,
/// `dataflow`, `sas_flow` with `wait_for`); on any other step they mean nothing, so they are
/// an error there. From `defaults:` they simply do not apply.
pub(crate) const WATCH_KEYS: &[&str] = &["poll_interval", "if_running"];

/// Keys only some step types accept, per type. A `sas_flow` accepts [`WATCH_KEYS`] and
/// `connection` only with `wait_for` (see [`needs_wait_for`]).
pub(crate) fn type_keys(ty: RawStepType) -> &'static [&'static str] {
    match ty {
        RawStepType::SasFlow => &[
            "url",
            "method",
            "headers",
            "body",
            "expect_status",
            "wait_for",
            "oauth",
            "skip_if_fresh",
            "connection",
            "poll_interval",
            "if_running",
        ],
        RawStepType::Webhook => &[
            "url",
            "method",
            "headers",
            "body",
            "expect_status",
            "format",
            "link",
        ],
        RawStepType::Dataflow => &[
            "workspace",
            "dataflow",
            "generation",
            "notify",
            "process_type",
            "execute_option",
            "parameters",
            "skip_if_fresh",
            "connection",
            "poll_interval",
            "if_running",
        ],
        RawStepType::Dataset => &[
            "workspace",
            "dataset",
            "notify",
            "refresh",
            "skip_if_fresh",
            "connection",
            "poll_interval",
            "if_running",
        ],
        RawStepType::Report => &["workspace", "report", "export", "connection"],
        RawStepType::FabricJob => &[
            "workspace",
            "item",
            "item_type",
            "parameters",
            "configuration",
            "skip_if_fresh",
            "connection",
            "poll_interval",
            "if_running",
        ],
        RawStepType::Capacity => &[
            "action",
            "capacity",
            "subscription",
            "resource_group",
            "sku",
            "connection",
            "poll_interval",
        ],
        RawStepType::DataCheck => &[
            "workspace",
            "dataset",
            "query",
            "expect",
            "severity",
            "impersonated_user",
            "connection",
        ],
        RawStepType::Freshness => &[
            "workspace",
            "dataset",
            "dataflow",
            "generation",
            "item",
            "item_type",
            "max_age",
            "warn_after",
            "connection",
        ],
    }
}

/// Keys a `sas_flow` step accepts only together with `wait_for`: without it the step calls
/// the flow's URL and nothing else (no Power BI connection, nothing to poll). `connection`
/// is also accepted with `oauth: true` (the flow token comes from it).
pub(crate) fn needs_wait_for(key: &str) -> bool {
    key == "connection" || key == "skip_if_fresh" || WATCH_KEYS.contains(&key)
}

/// Whether a step of type `ty` starts remote work and watches it, so that `poll_interval` and
/// `if_running` apply to it.
pub(crate) fn watches_remote_run(ty: RawStepType, has_wait_for: bool) -> bool {
    match ty {
        RawStepType::Dataset | RawStepType::Dataflow | RawStepType::FabricJob => true,
        RawStepType::SasFlow => has_wait_for,
        RawStepType::Webhook
        | RawStepType::Report
        | RawStepType::Capacity
        | RawStepType::DataCheck
        | RawStepType::Freshness => false,
    }
}

/// Where `key` applies, in words, for the "not a key of" help; `None` for keys that belong
/// to whole step types (the help then lists those types).
pub(crate) fn applies_to(key: &str) -> Option<&'static str> {
    if key == "poll_interval" {
        Some(
            "steps that start remote work and watch it: dataflow, dataset, capacity, and sas_flow with `wait_for`",
        )
    } else if WATCH_KEYS.contains(&key) {
        Some(
            "steps that start remote work and watch it: dataflow, dataset, fabric_job, and sas_flow with `wait_for`",
        )
    } else if key == "connection" {
        Some(
            "steps that call Power BI, Fabric or Azure: dataflow, dataset, report, fabric_job, capacity, data_check, freshness, and sas_flow with `wait_for` or `oauth: true`",
        )
    } else {
        None
    }
}

/// Every type-specific key (the union of [`type_keys`]).
pub(crate) fn all_type_keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = Vec::new();
    for ty in RawStepType::ALL {
        for k in type_keys(ty) {
            if !keys.contains(k) {
                keys.push(k);
            }
        }
    }
    keys
}

/// The type-specific keys present in a step, with where their values are.
pub(crate) fn present_type_keys(step: &RawStep) -> Vec<(&'static str, Location)> {
    let mut out = Vec::new();
    macro_rules! key {
        ($($field:ident),*) => {
            $(if let Some(v) = &step.$field {
                out.push((stringify!($field), v.loc()));
            })*
        };
    }
    key!(
        connection,
        poll_interval,
        if_running,
        skip_if_fresh,
        url,
        method,
        headers,
        body,
        expect_status,
        wait_for,
        oauth,
        format,
        link,
        workspace,
        dataflow,
        generation,
        notify,
        process_type,
        execute_option,
        parameters,
        dataset,
        refresh,
        report,
        export,
        item_type,
        item,
        configuration,
        action,
        capacity,
        subscription,
        resource_group,
        sku,
        query,
        expect,
        severity,
        impersonated_user,
        max_age,
        warn_after
    );
    out
}

/// The types that accept `key`, for the error message.
pub(crate) fn types_with_key(key: &str) -> Vec<&'static str> {
    RawStepType::ALL
        .into_iter()
        .filter(|t| type_keys(*t).contains(&key))
        .map(RawStepType::name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_keys_cover_every_type_key() {
        // `present_type_keys` must list every key of the table, or a misplaced key would go
        // unnoticed; check the macro's list against the table.
        let listed = [
            "connection",
            "poll_interval",
            "if_running",
            "skip_if_fresh",
            "url",
            "method",
            "headers",
            "body",
            "expect_status",
            "wait_for",
            "oauth",
            "format",
            "link",
            "workspace",
            "dataflow",
            "generation",
            "notify",
            "process_type",
            "execute_option",
            "parameters",
            "dataset",
            "refresh",
            "report",
            "export",
            "item_type",
            "item",
            "configuration",
            "action",
            "capacity",
            "subscription",
            "resource_group",
            "sku",
            "query",
            "expect",
            "severity",
            "impersonated_user",
            "max_age",
            "warn_after",
        ];
        let mut all = all_type_keys();
        all.sort_unstable();
        let mut listed = listed.to_vec();
        listed.sort_unstable();
        assert_eq!(all, listed);
        assert_eq!(types_with_key("notify"), vec!["dataflow", "dataset"]);
    }
}

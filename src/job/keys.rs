//! Which step keys belong to which step type: one table used both by validation (a key of
//! another type is a located error) and by the JSON Schema (per-type `if`/`then`).

use serde_saphyr::Location;

use crate::job::raw::{RawStep, RawStepType};

/// Keys every step type accepts.
pub const COMMON_KEYS: &[&str] = &[
    "type",
    "depends_on",
    "trigger",
    "when",
    "pool",
    "tags",
    "connection",
    "timeout",
    "retries",
    "retry_backoff",
    "max_backoff",
    "poll_interval",
    "if_running",
    "continue_on_error",
];

/// Keys only some step types accept, per type.
pub fn type_keys(ty: RawStepType) -> &'static [&'static str] {
    match ty {
        RawStepType::SasFlow => &[
            "url",
            "method",
            "headers",
            "body",
            "expect_status",
            "wait_for",
        ],
        RawStepType::Webhook => &["url", "method", "headers", "body", "expect_status"],
        RawStepType::Dataflow => &[
            "workspace",
            "dataflow",
            "generation",
            "notify",
            "process_type",
            "execute_option",
            "parameters",
            "skip_if_fresh",
        ],
        RawStepType::Dataset => &["workspace", "dataset", "notify", "refresh", "skip_if_fresh"],
        RawStepType::Report => &["workspace", "report", "export"],
    }
}

/// Every type-specific key (the union of [`type_keys`]).
pub fn all_type_keys() -> Vec<&'static str> {
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
pub fn present_type_keys(step: &RawStep) -> Vec<(&'static str, Location)> {
    let mut out = Vec::new();
    macro_rules! key {
        ($($field:ident),*) => {
            $(if let Some(v) = &step.$field {
                out.push((stringify!($field), v.loc()));
            })*
        };
    }
    key!(
        skip_if_fresh,
        url,
        method,
        headers,
        body,
        expect_status,
        wait_for,
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
        export
    );
    out
}

/// The types that accept `key`, for the error message.
pub fn types_with_key(key: &str) -> Vec<&'static str> {
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
            "skip_if_fresh",
            "url",
            "method",
            "headers",
            "body",
            "expect_status",
            "wait_for",
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
        ];
        let mut all = all_type_keys();
        all.sort_unstable();
        let mut listed = listed.to_vec();
        listed.sort_unstable();
        assert_eq!(all, listed);
        assert_eq!(types_with_key("notify"), vec!["dataflow", "dataset"]);
    }
}

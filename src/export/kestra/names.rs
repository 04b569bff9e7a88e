//! Kestra's rules for what the flow names: task ids (`[a-zA-Z0-9][a-zA-Z0-9_-]*`, unique),
//! the namespace, and the `Schedule` trigger's cron expression, checked before anything is
//! written.

use std::collections::HashSet;

use indexmap::IndexMap;

use crate::export::ExportError;
use crate::job::model::Job;

/// Step id -> Kestra task id. Kestra ids match `[a-zA-Z0-9][a-zA-Z0-9_-]*`; pbibatch step ids
/// may start with `_`, which gets a `step` prefix (kept unique).
pub(super) fn task_ids(job: &Job) -> IndexMap<String, String> {
    let mut taken: HashSet<String> = job.steps.keys().cloned().collect();
    taken.extend(job.fan_outs.keys().cloned());
    let mut out = IndexMap::new();
    // An expansion `step[key]` runs inside the ForEach task of `step`: it maps to that id.
    let mut names: Vec<&str> = Vec::new();
    for id in job.steps.keys() {
        match job.fan_out_of(id) {
            Some((parent, _)) => {
                if !names.contains(&parent) {
                    names.push(parent);
                }
            }
            None => names.push(id),
        }
    }
    for id in names {
        let id = id.to_string();
        if id.starts_with('_') {
            let mut candidate = format!("step{id}");
            while taken.contains(&candidate) {
                candidate.insert(0, 'x');
            }
            taken.insert(candidate.clone());
            out.insert(id.clone(), candidate);
        } else {
            out.insert(id.clone(), id.clone());
        }
    }
    for (id, step) in job.steps.keys().zip(job.steps.values()) {
        if let Some((parent, _)) = job.fan_out_of(&step.id) {
            let task = out[parent].clone();
            out.insert(id.clone(), task);
        }
    }
    out
}

/// `base`, or `base_`, `base__`... so the Dag's id differs from every step task's id.
pub(super) fn unique_id(base: &str, ids: &IndexMap<String, String>) -> String {
    let mut id = base.to_string();
    while ids.values().any(|v| v == &id) {
        id.push('_');
    }
    id
}

/// A Kestra id from a job name (`[a-z0-9_-]+`): a leading `_` or `-` gets `prefix`.
pub(super) fn kestra_id(name: &str, prefix: &str) -> String {
    if name.starts_with(['_', '-']) {
        format!("{prefix}{name}")
    } else {
        name.to_string()
    }
}

pub(super) fn check_namespace(ns: &str) -> Result<(), ExportError> {
    let mut chars = ns.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ExportError::Namespace(ns.to_string()))
    }
}

/// Accepts what Kestra's Schedule takes by default (a Unix cron): five fields, each a list
/// of `*`, `?` (day fields), values, ranges and `/steps` within the field's bounds (month
/// and weekday names allowed), or a nickname.
pub(super) fn check_cron(cron: &str) -> Result<(), ExportError> {
    const NICKNAMES: &[&str] = &[
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
    ];
    let trimmed = cron.trim();
    if NICKNAMES.contains(&trimmed) {
        return Ok(());
    }
    let invalid = |reason: String| ExportError::Cron {
        cron: cron.to_string(),
        reason,
    };
    let fields: Vec<&str> = trimmed.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(invalid(format!(
            "{} field{}, expected five (minute hour day-of-month month day-of-week) or a nickname such as @daily",
            fields.len(),
            if fields.len() == 1 { "" } else { "s" }
        )));
    }
    const MONTHS: &[&str] = &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    // (name, lowest, highest, names from `lowest`, `?` allowed)
    let specs: [(&str, u32, u32, &[&str], bool); 5] = [
        ("minute", 0, 59, &[], false),
        ("hour", 0, 23, &[], false),
        ("day-of-month", 1, 31, &[], true),
        ("month", 1, 12, MONTHS, false),
        ("day-of-week", 0, 7, DAYS, true),
    ];
    for (field, (what, lo, hi, names, question)) in fields.iter().zip(specs) {
        let value = |text: &str| -> Result<u32, String> {
            let upper = text.to_ascii_uppercase();
            if let Some(i) = names.iter().position(|n| *n == upper) {
                return Ok(lo + u32::try_from(i).unwrap_or(0));
            }
            let n: u32 = text
                .parse()
                .map_err(|_| format!("{what} `{text}` is not a number"))?;
            if n < lo || n > hi {
                return Err(format!("{what} `{n}` is out of range {lo}-{hi}"));
            }
            Ok(n)
        };
        for item in field.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (item, None),
            };
            if let Some(step) = step {
                match step.parse::<u32>() {
                    Ok(n) if n >= 1 && n <= hi => {}
                    _ => {
                        return Err(invalid(format!(
                            "{what} step `/{step}` must be a number from 1 to {hi}"
                        )));
                    }
                }
            }
            match range {
                "*" => {}
                "?" if question => {}
                "" => return Err(invalid(format!("{what} has an empty item in `{field}`"))),
                _ => match range.split_once('-') {
                    Some((a, b)) => {
                        let (a, b) = (value(a).map_err(invalid)?, value(b).map_err(invalid)?);
                        if a > b {
                            return Err(invalid(format!("{what} range `{range}` runs backwards")));
                        }
                    }
                    None => {
                        value(range).map_err(invalid)?;
                    }
                },
            }
        }
    }
    Ok(())
}

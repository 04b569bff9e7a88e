//! Reading a job file: bytes -> YAML (serde-saphyr, bounded) -> raw types -> validated model.
//!
//! Structural problems (YAML syntax, unknown key, wrong type, missing field, duplicate key,
//! bad enum value) come from the deserializer and stop at the first one, like cargo does;
//! the semantic checks that follow collect every problem (see [`crate::job::validate`]).

use std::path::Path;
use std::sync::Arc;

use serde_saphyr::{Budget, MessageFormatter, Options, UserMessageFormatter};
use sha2::{Digest, Sha256};

use crate::job::diag::{Diagnostics, Severity};
use crate::job::model::Job;
use crate::job::raw::RawJob;
use crate::job::validate;

/// A job that passed validation, with the warnings it raised.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// `${vars.X}` substituted; `${env.X}` still unresolved (see [`crate::job::resolve_env`]).
    pub job: Job,
    /// E.g. env vars that are not set in the current environment.
    pub warnings: Diagnostics,
}

/// Loads and validates a job file. `var_overrides` are `--var K=V` pairs (they must name
/// declared `vars:`). Env vars are looked up in the process environment for warnings and to
/// pick the implicit `default` connection.
pub fn load(path: &Path, var_overrides: &[(String, String)]) -> Result<Loaded, Diagnostics> {
    let name = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            let mut d = Diagnostics::new(name, Arc::from(""));
            d.push_global(Severity::Error, format!("cannot read the job file: {e}"));
            return Err(d);
        }
    };
    load_bytes(&name, &bytes, var_overrides, &|k| std::env::var(k).ok())
}

/// Like [`load`], from bytes already read; `env` answers env lookups (tests, benches).
pub fn load_bytes(
    name: &str,
    bytes: &[u8],
    var_overrides: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, Diagnostics> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let lossy: Arc<str> = Arc::from(String::from_utf8_lossy(bytes).as_ref());
            let mut d = Diagnostics::new(name, lossy);
            // The lossy text has the same prefix up to the first bad byte.
            d.push_at(
                Severity::Error,
                e.valid_up_to(),
                1,
                "the job file is not valid UTF-8 text",
                Some("invalid byte here".into()),
                None,
            );
            return Err(d);
        }
    };
    let source: Arc<str> = Arc::from(text);
    let hash = hex::encode(Sha256::digest(bytes));
    let raw = parse_raw(name, &source)?;
    validate::validate(name, source, hash, &raw, var_overrides, env)
}

/// Limits that keep hostile input (alias bombs, deep nesting, huge files) cheap.
fn options() -> Options {
    let mut budget = Budget::default();
    budget.max_depth = 64;
    budget.flow_nesting_limit = 64;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_documents = 1;
    // A 50,000-step job (8 MB) is about 600,000 nodes and 1.2 million events: past the
    // crate's defaults (250,000 / 1,000,000), though nothing about it is hostile. Node and
    // event counts grow linearly with the input, which `max_reader_input_bytes` already
    // bounds; the caps that stop blow-ups (depth, aliases, anchors) stay tight.
    budget.max_nodes = 4_000_000;
    budget.max_events = 8_000_000;
    let mut options = Options::default();
    options.budget = Some(budget);
    options.with_snippet = false;
    options.alias_limits.max_total_replayed_events = 100_000;
    options.alias_limits.max_replay_stack_depth = 16;
    options.alias_limits.max_alias_expansions_per_anchor = 1_000;
    options
}

/// YAML text -> raw types, or the first structural problem.
pub fn parse_raw(name: &str, source: &Arc<str>) -> Result<RawJob, Diagnostics> {
    if source.trim().is_empty()
        || source
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        let mut d = Diagnostics::new(name, Arc::clone(source));
        d.push_at(
            Severity::Error,
            0,
            0,
            "the job file is empty",
            Some("expected `version: 1`, `name:` and `steps:`".into()),
            None,
        );
        return Err(d);
    }
    serde_saphyr::from_str_with_options::<RawJob>(source, options()).map_err(|err| {
        let mut d = Diagnostics::new(name, Arc::clone(source));
        let message = UserMessageFormatter.format_message(&err).into_owned();
        let (message, help) = improve_message(&message);
        let (offset, len) = err
            .location()
            .map(|l| crate::job::validate::loc_span(source, l))
            .unwrap_or((0, 0));
        d.push_at(Severity::Error, offset, len, message, None, help);
        d
    })
}

/// Rewrites serde's `unknown field/variant` messages into ours, with a did-you-mean.
fn improve_message(message: &str) -> (String, Option<String>) {
    for (prefix, what) in [("unknown field `", "key"), ("unknown variant `", "value")] {
        let Some(rest) = message.strip_prefix(prefix) else {
            continue;
        };
        let Some((found, tail)) = rest.split_once('`') else {
            continue;
        };
        let expected: Vec<&str> = tail
            .split_once("expected one of ")
            .or_else(|| tail.split_once("expected "))
            .map(|(_, list)| {
                list.split(", ")
                    .map(|s| s.trim_matches('`').trim())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let help = match crate::job::validate::did_you_mean(found, expected.iter().copied()) {
            Some(best) => Some(format!("did you mean `{best}`?")),
            None if !expected.is_empty() => {
                Some(format!("expected one of: {}", expected.join(", ")))
            }
            None => None,
        };
        return (format!("unknown {what} `{found}`"), help);
    }
    if let Some(rest) = message.strip_prefix("duplicate mapping key `")
        && let Some((key, _)) = rest.split_once('`')
    {
        return (
            format!("duplicate key `{key}`"),
            Some("a key may appear once per mapping (step ids are unique)".into()),
        );
    }
    match message {
        "expected mapping start" => {
            return (
                "expected a mapping (`key: value` lines or `{ key: value }`)".into(),
                None,
            );
        }
        "expected sequence start" => {
            return ("expected a list (`[a, b]` or `- item` lines)".into(), None);
        }
        "expected string scalar" => return ("expected a single text value".into(), None),
        _ => {}
    }
    let integer = ["i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64"];
    if let Some(ty) = message.strip_prefix("invalid ")
        && integer.contains(&ty.trim())
    {
        return ("expected an integer".into(), None);
    }
    if message.starts_with("YAML document too large or too complex")
        || message.contains("recursion limit exceeded")
    {
        return (
            "the job file is too large or too deeply nested".into(),
            Some(message.to_string()),
        );
    }
    (message.to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_for_unknown_keys() {
        let (m, h) =
            improve_message("unknown field `stesp`, expected one of `version`, `name`, `steps`");
        assert_eq!(m, "unknown key `stesp`");
        assert_eq!(h.as_deref(), Some("did you mean `steps`?"));
        let (m, h) = improve_message(
            "unknown variant `datset`, expected one of sas_flow, dataflow, dataset, report",
        );
        assert_eq!(m, "unknown value `datset`");
        assert_eq!(h.as_deref(), Some("did you mean `dataset`?"));
    }
}

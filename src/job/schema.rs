//! The JSON Schema of the job file (`pbibatch schema`, committed at
//! `schemas/pbibatch-job.schema.json`), generated from the raw serde types and restricted per
//! step `type` with the same key table validation uses.

use serde_json::{Map, Value, json};

use crate::job::keys::{all_type_keys, needs_wait_for, type_keys};
use crate::job::raw::{RawJob, RawStepType};

/// Keys a step of each type must have.
fn required_keys(ty: RawStepType) -> &'static [&'static str] {
    match ty {
        RawStepType::SasFlow | RawStepType::Webhook => &["url"],
        RawStepType::Dataflow => &["workspace", "dataflow"],
        RawStepType::Dataset => &["workspace", "dataset"],
        RawStepType::Report => &["workspace", "report", "export"],
        RawStepType::FabricJob => &["workspace", "item", "item_type"],
        RawStepType::Capacity => &["action", "capacity"],
        RawStepType::DataCheck => &["workspace", "dataset", "query", "expect"],
        RawStepType::Freshness => &["workspace"],
    }
}

/// The schema as a JSON value.
pub(crate) fn schema() -> Value {
    let schema = schemars::schema_for!(RawJob);
    let mut value = schema.to_value();
    if let Some(step) = value
        .get_mut("$defs")
        .and_then(|d| d.get_mut("Step"))
        .and_then(Value::as_object_mut)
    {
        restrict_step(step);
    }
    constrain(&mut value);
    value
}

/// A humantime duration (`30s`, `1h 30m`, `1.5h`) or a `${vars.NAME}` reference (known when
/// the file is loaded; `${env.NAME}` is not: durations must be known before a run). Zero and
/// the 7-day bound are left to `validate`: a sum of units is past what a pattern can bound.
const DURATION_PATTERN: &str = concat!(
    r"^\s*(?:[0-9]+(?:\.[0-9]+)?\s*(?:nanos|nsec|ns|usec|us|µs|millis|msec|ms|seconds|second|secs|sec|s",
    r"|minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|wks|wk|w|months|month|M",
    r"|years|year|yrs|yr|y)\s*)+$|\$\{\s*vars\.",
);

/// Keys holding a duration, wherever they appear.
const DURATION_KEYS: &[&str] = &[
    "timeout",
    "retry_backoff",
    "max_backoff",
    "poll_interval",
    "skip_if_fresh",
    "backoff",
    "max_age",
    "warn_after",
];

/// The rules `validate` enforces that JSON Schema can say, so an editor flags them too (the
/// ones it cannot say, such as references between sections, are listed in
/// tests/it/schema_agreement.rs).
fn constrain(schema: &mut Value) {
    let set = |v: &mut Value, path: &[&str], key: &str, rule: Value| {
        let mut node = v;
        for part in path {
            let next = match part.parse::<usize>() {
                Ok(i) => node.get_mut(i),
                Err(_) => node.get_mut(*part),
            };
            match next {
                Some(next) => node = next,
                None => return,
            }
        }
        if let Some(obj) = node.as_object_mut() {
            obj.insert(key.to_string(), rule);
        }
    };
    let bounds = |v: &mut Value, path: &[&str], lo: i64, hi: i64| {
        set(v, path, "minimum", json!(lo));
        set(v, path, "maximum", json!(hi));
    };
    set(schema, &["properties", "version"], "const", json!(1));
    set(
        schema,
        &["properties", "name"],
        "pattern",
        json!("^[a-z0-9_-]+$"),
    );
    set(schema, &["properties", "steps"], "minProperties", json!(1));
    set(
        schema,
        &["properties", "steps"],
        "propertyNames",
        json!({ "pattern": "^[A-Za-z_][A-Za-z0-9_-]*$" }),
    );
    bounds(schema, &["properties", "concurrency"], 1, 10_000);
    bounds(
        schema,
        &["properties", "pools", "additionalProperties"],
        1,
        10_000,
    );
    bounds(schema, &["$defs", "Retries", "anyOf", "0"], 0, 100);
    bounds(
        schema,
        &["$defs", "RetriesLong", "properties", "count"],
        0,
        100,
    );
    bounds(
        schema,
        &["$defs", "EnhancedRefresh", "properties", "max_parallelism"],
        1,
        10_000,
    );
    bounds(
        schema,
        &["$defs", "EnhancedRefresh", "properties", "retry_count"],
        0,
        100,
    );
    bounds(
        schema,
        &["$defs", "Step", "properties", "expect_status", "items"],
        100,
        599,
    );
    set(
        schema,
        &["$defs", "Step", "properties", "generation"],
        "enum",
        json!([1, 2, null]),
    );
    set(
        schema,
        &["$defs", "Step", "properties", "when"],
        "pattern",
        json!(r"\S"),
    );
    // Plain http:// only to loopback; a `${...}` reference is checked once resolved.
    set(
        schema,
        &["$defs", "Step", "properties", "url"],
        "pattern",
        json!(r"^(?:https://|http://(?:localhost|127\.[0-9.]+|\[::1\])(?:[:/?#]|$))|\$\{"),
    );
    // `notify` is for standard refreshes: not with a `refresh:` block.
    let dataset_rule = schema
        .pointer_mut("/$defs/Step/allOf")
        .and_then(Value::as_array_mut)
        .and_then(|rules| {
            rules.iter_mut().find(|r| {
                r.pointer("/if/properties/type/const") == Some(&json!(RawStepType::Dataset.name()))
            })
        });
    if let Some(then) = dataset_rule
        .and_then(|r| r.get_mut("then"))
        .and_then(Value::as_object_mut)
    {
        then.insert(
            "dependentSchemas".into(),
            json!({ "refresh": { "not": { "required": ["notify"] } } }),
        );
    }
    // A data check's `expect:` holds exactly one assertion; `column` goes with `value`;
    // `no_rows` is `true`; bounds say something, `equals` alone.
    set(
        schema,
        &["$defs", "Expect"],
        "oneOf",
        json!([{ "required": ["rows"] }, { "required": ["value"] }, { "required": ["no_rows"] }]),
    );
    set(
        schema,
        &["$defs", "Expect"],
        "dependentRequired",
        json!({ "column": ["value"] }),
    );
    set(
        schema,
        &["$defs", "Expect", "properties", "no_rows"],
        "const",
        json!(true),
    );
    set(schema, &["$defs", "Bounds"], "minProperties", json!(1));
    set(
        schema,
        &["$defs", "Bounds"],
        "dependentSchemas",
        json!({ "equals": { "not": { "anyOf": [{ "required": ["min"] }, { "required": ["max"] }] } } }),
    );
    if let Some(defs) = schema.get_mut("$defs").and_then(Value::as_object_mut) {
        for def in defs.values_mut() {
            let Some(props) = def.get_mut("properties").and_then(Value::as_object_mut) else {
                continue;
            };
            for key in DURATION_KEYS {
                if let Some(p) = props.get_mut(*key).and_then(Value::as_object_mut)
                    && p.get("type")
                        .is_some_and(|t| t.to_string().contains("string"))
                {
                    p.insert("pattern".into(), json!(DURATION_PATTERN));
                }
            }
        }
    }
}

/// Adds one `if`/`then` per step type: keys of other types are forbidden, required ones
/// required.
fn restrict_step(step: &mut Map<String, Value>) {
    let all = all_type_keys();
    let mut rules = Vec::new();
    for ty in RawStepType::ALL {
        let own = type_keys(ty);
        let mut forbidden = Map::new();
        for key in &all {
            if !own.contains(key) {
                forbidden.insert((*key).to_string(), Value::Bool(false));
            }
        }
        let mut then = json!({
            "properties": forbidden,
            "required": required_keys(ty)
        });
        if ty == RawStepType::SasFlow {
            // `connection`, `poll_interval` and `if_running` only with `wait_for`.
            let dependent: Map<String, Value> = type_keys(ty)
                .iter()
                .filter(|k| needs_wait_for(k) && **k != "connection")
                .map(|k| ((*k).to_string(), json!(["wait_for"])))
                .collect();
            then["dependentRequired"] = Value::Object(dependent);
            // `connection` with `wait_for` or with `oauth: true`.
            then["dependentSchemas"] = json!({
                "connection": {
                    "anyOf": [
                        { "required": ["wait_for"] },
                        { "required": ["oauth"], "properties": { "oauth": { "const": true } } }
                    ]
                }
            });
        }
        if ty == RawStepType::Freshness {
            // Exactly one resource, and at least one bound.
            then["allOf"] = json!([
                { "anyOf": [{ "required": ["max_age"] }, { "required": ["warn_after"] }] },
                { "oneOf": [{ "required": ["dataset"] }, { "required": ["dataflow"] }, { "required": ["item"] }] }
            ]);
        }
        if ty == RawStepType::Webhook {
            // `format` builds the body; `link` is shown by the Teams and Slack payloads.
            then["dependentSchemas"] = json!({
                "format": { "not": { "required": ["body"] } },
                "link": {
                    "required": ["format"],
                    "properties": { "format": { "enum": ["teams", "slack"] } }
                }
            });
        }
        rules.push(json!({
            "if": {
                "properties": { "type": { "const": ty.name() } },
                "required": ["type"]
            },
            "then": then
        }));
    }
    step.insert("allOf".into(), Value::Array(rules));
}

/// The schema as the pretty JSON text written to `schemas/` (with a final newline).
pub(crate) fn schema_text() -> String {
    serde_json::to_string_pretty(&schema()).unwrap_or_default() + "\n"
}

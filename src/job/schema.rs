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
    }
}

/// The schema as a JSON value.
pub fn schema() -> Value {
    let schema = schemars::schema_for!(RawJob);
    let mut value = schema.to_value();
    if let Some(step) = value
        .get_mut("$defs")
        .and_then(|d| d.get_mut("Step"))
        .and_then(Value::as_object_mut)
    {
        restrict_step(step);
    }
    value
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
pub fn schema_text() -> String {
    serde_json::to_string_pretty(&schema()).unwrap_or_default() + "\n"
}

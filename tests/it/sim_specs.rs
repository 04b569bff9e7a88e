//! The official OpenAPI files and the checks the conformance tests (sim_conformance.rs) run:
//! the status must be one the spec lists and the JSON body must validate against the spec's
//! schema, after applying the documented wire differences (listed once, in [`wire`]).
//!
//! Specs are read from `specs/` in the repository (copied unchanged with their licences, see
//! specs/README.md), so a fresh clone needs nothing beside it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use jsonschema::Draft;
use serde_json::{Value, json};

use crate::sim_support::Answer;

pub const PBI: &str = "PowerBI-CSharp/swagger.json";
pub const FABRIC: &str = "fabric-rest-api-specs/platform/swagger.json";
pub const FABRIC_DATAFLOW: &str = "fabric-rest-api-specs/dataflow/swagger.json";

/// The documented differences between the wire and the specs (powerbi-api.md sections 0,
/// 1c, 2, 3c and 10), applied to a response body before it is validated. One place, so the
/// list stays reviewable.
pub mod wire {
    use serde_json::Value;

    /// Power BI properties the 2024 swagger spells in PascalCase; the wire uses camelCase
    /// (pitfall 13). Renamed back so their types are checked.
    const PASCAL_IN_SWAGGER: &[&str] = &[
        "createdDate",
        "contentProviderType",
        "createReportEmbedURL",
        "qnaEmbedURL",
        "isEffectiveIdentityRequired",
        "isEffectiveIdentityRolesRequired",
        "isOnPremGatewayRequired",
        "encryption",
        "isRefreshable",
        "isInPlaceSharingEnabled",
        "resourceFileExtension",
    ];

    /// Power BI fields on the wire that the 2024 swagger lacks: the history entry's integer
    /// `id` (section 1c, pitfall 5).
    const ABSENT_FROM_SWAGGER: &[&str] = &["id"];

    /// A Power BI body in the swagger's spelling.
    pub fn power_bi(operation: &str, mut body: Value) -> Value {
        rename_everywhere(&mut body);
        if let Some(obj) = body.as_object_mut()
            // The list wrapper is `@odata.context` on the wire, `odata.context` in the swagger.
            && let Some(ctx) = obj.remove("@odata.context")
        {
            obj.insert("odata.context".into(), ctx);
        }
        match operation {
            "GetRefreshHistory" => {
                for entry in body["value"].as_array_mut().into_iter().flatten() {
                    if let Some(o) = entry.as_object_mut() {
                        for f in ABSENT_FROM_SWAGGER {
                            o.remove(*f);
                        }
                    }
                }
            }
            // Execution details: `Cancelled` is a documented status (docs 2025, observed after
            // DELETE) missing from the 2024 enum, which `extendedStatus` already has.
            "GetRefreshExecutionDetails" if body["status"] == "Cancelled" => {
                body["status"] = Value::from("Unknown");
            }
            // Transaction cancel: the spec enum is camelCase, its example (and the wire)
            // PascalCase (pitfall 9).
            "CancelDataflowTransaction" => {
                if let Some(s) = body["status"].as_str() {
                    let mut c = s.chars();
                    let lower = c
                        .next()
                        .map(|f| f.to_lowercase().collect::<String>() + c.as_str())
                        .unwrap_or_default();
                    body["status"] = Value::from(lower);
                }
            }
            _ => {}
        }
        body
    }

    /// Fabric job-instance fields sent as `null` (the spec's own examples show
    /// `"failureReason": null`; `endTimeUtc` is null while the job runs, section 3c) that the
    /// spec types as non-nullable: dropped before validating.
    const NULL_ON_THE_WIRE: &[&str] = &["failureReason", "endTimeUtc"];

    /// A Fabric body in the spec's spelling: job timestamps come without `Z` and with 7
    /// fractional digits (section 0, pitfall 12); they are UTC, so `Z` is appended in case
    /// the spec asks for a `date-time` format. Nulls above are dropped.
    pub fn fabric(mut body: Value) -> Value {
        fn fix(v: &mut Value) {
            match v {
                Value::Object(map) => {
                    map.retain(|k, v| !(v.is_null() && NULL_ON_THE_WIRE.contains(&k.as_str())));
                    for (k, v) in map.iter_mut() {
                        if k.ends_with("TimeUtc")
                            && let Some(s) = v.as_str()
                            && !s.ends_with('Z')
                        {
                            *v = Value::from(format!("{s}Z"));
                        } else {
                            fix(v);
                        }
                    }
                }
                Value::Array(items) => items.iter_mut().for_each(fix),
                _ => {}
            }
        }
        fix(&mut body);
        body
    }

    fn rename_everywhere(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for name in PASCAL_IN_SWAGGER {
                    if let Some(value) = map.remove(*name) {
                        let mut c = name.chars();
                        let pascal = c
                            .next()
                            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                            .unwrap_or_default();
                        map.insert(pascal, value);
                    }
                }
                map.values_mut().for_each(rename_everywhere);
            }
            Value::Array(items) => items.iter_mut().for_each(rename_everywhere),
            _ => {}
        }
    }

    /// The legacy run-on-demand form (`POST .../jobs/instances?jobType=X`) is documented as
    /// still accepted but only the path form is in the spec: it is checked against that one.
    pub const LEGACY_JOB_FORM_CHECKED_AS: &str =
        "/workspaces/{workspaceId}/items/{itemId}/jobs/{jobType}/instances";
}

/// Power BI bodies the swagger has no schema for (section 0): the error envelopes and the
/// 429 `{"message"}`.
fn pbi_error_schema(status: u16) -> Value {
    if status == 429 {
        json!({"type": "object", "required": ["message"], "properties": {"message": {"type": "string", "pattern": "Retry in [0-9]+ seconds"}}})
    } else {
        json!({
            "type": "object",
            "required": ["error"],
            "properties": {"error": {
                "type": "object",
                "required": ["code"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "pbi.error": {"type": "object"}}
            }}
        })
    }
}

pub struct Specs {
    pub docs: HashMap<String, Value>,
}

/// The spec folders the registry loads; `specs/arm/` is left out (its `common-types` refs do
/// not resolve, see specs/README.md).
const SPEC_ROOTS: &[&str] = &["PowerBI-CSharp", "fabric-rest-api-specs"];

fn specs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("specs")
}

fn collect(dir: &Path, root: &Path, out: &mut HashMap<String, Value>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            // Examples hold refs outside the copied set; they are not schemas.
            if path.file_name().is_some_and(|n| n != "examples") {
                collect(&path, root, out);
            }
        } else if path.extension().is_some_and(|e| e == "json") {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&path).unwrap();
            out.insert(rel, serde_json::from_str(&text).unwrap());
        }
    }
}

pub fn specs() -> &'static Specs {
    static SPECS: OnceLock<Specs> = OnceLock::new();
    SPECS.get_or_init(|| {
        let dir = specs_dir();
        let mut docs = HashMap::new();
        for root in SPEC_ROOTS {
            collect(&dir.join(root), &dir, &mut docs);
        }
        add_case_aliases(&mut docs);
        Specs { docs }
    })
}

/// Some spec files refer to `../Common/definitions.json` while the folder is `common`
/// (written on a case-insensitive file system): such targets are registered under the
/// spelling used by the reference too.
fn add_case_aliases(docs: &mut HashMap<String, Value>) {
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r.clone());
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut aliases = Vec::new();
    for (rel, doc) in docs.iter() {
        let mut found = Vec::new();
        refs(doc, &mut found);
        for r in found {
            let file = r.split('#').next().unwrap_or_default();
            if file.is_empty() {
                continue;
            }
            let target = url::Url::parse(&uri(rel)).unwrap().join(file).unwrap();
            let target_rel = target.path().trim_start_matches("/specs/").to_string();
            if !docs.contains_key(&target_rel)
                && let Some((_, doc)) = docs
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&target_rel))
            {
                aliases.push((target_rel, doc.clone()));
            }
        }
    }
    docs.extend(aliases);
}

fn uri(rel: &str) -> String {
    format!("file:///specs/{rel}")
}

impl Specs {
    /// The spec's response entry for an operation and status (`default` for errors).
    fn response(&self, spec: &str, path: &str, method: &str, status: u16) -> Value {
        let op = &self.docs[spec]["paths"][path][method];
        assert!(op.is_object(), "{spec}: no operation {method} {path}");
        let responses = op["responses"].as_object().unwrap();
        responses
            .get(&status.to_string())
            .or_else(|| (status >= 400).then(|| responses.get("default")).flatten())
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "{spec} {method} {path}: status {status} is not one the spec lists ({:?})",
                    responses.keys().collect::<Vec<_>>()
                )
            })
    }

    fn validate(&self, schema: &Value, base: &str, body: &Value, what: &str) {
        let errors = self.errors(schema, base, body, what);
        assert!(
            errors.is_empty(),
            "{what}: body does not match the spec:\n{}\nbody: {body:#}",
            errors.join("\n")
        );
    }

    pub fn errors(&self, schema: &Value, base: &str, body: &Value, what: &str) -> Vec<String> {
        let root = match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let absolute = url::Url::parse(&uri(base)).unwrap().join(r).unwrap();
                json!({"$ref": absolute.to_string()})
            }
            None => schema.clone(),
        };
        let resources = self
            .docs
            .iter()
            .map(|(rel, doc)| (uri(rel), Draft::Draft4.create_resource(doc.clone())));
        let validator = jsonschema::options()
            .with_draft(Draft::Draft4)
            .should_validate_formats(true)
            .with_resources(resources)
            .build(&root)
            .unwrap_or_else(|e| panic!("{what}: schema does not build: {e}"));
        validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect()
    }
}

/// Checks a Power BI answer against the swagger operation `method path` (spec path).
pub fn check_pbi(path: &str, method: &str, operation: &str, a: &Answer) {
    let what = format!("Power BI {method} {path} -> {}", a.status);
    if a.status >= 400 {
        specs().validate(&pbi_error_schema(a.status), PBI, &a.body, &what);
        return;
    }
    let response = specs().response(PBI, path, method, a.status);
    // The only headers the swagger lists are the enhanced refresh's, which it says are sent
    // only for enhanced requests: the refresh test checks them there.
    match response.get("schema") {
        None => assert!(
            a.bytes.is_empty(),
            "{what}: the spec has no body, got {:?}",
            String::from_utf8_lossy(&a.bytes)
        ),
        Some(s) if s["type"] == "file" => assert!(!a.bytes.is_empty(), "{what}: empty file"),
        Some(schema) => specs().validate(
            schema,
            PBI,
            &wire::power_bi(operation, a.body.clone()),
            &what,
        ),
    }
}

/// Checks a Fabric answer against `spec`'s operation `method path`.
pub fn check_fabric(spec: &str, path: &str, method: &str, a: &Answer) {
    let what = format!("Fabric {method} {path} -> {}", a.status);
    let response = specs().response(spec, path, method, a.status);
    match response.get("schema") {
        None => assert!(a.bytes.is_empty(), "{what}: the spec has no body"),
        Some(schema) => specs().validate(schema, spec, &wire::fabric(a.body.clone()), &what),
    }
    for header in response
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|h| h.keys())
    {
        assert!(
            a.header(header).is_some(),
            "{what}: missing header {header}"
        );
    }
}

#[test]
fn the_validation_is_not_vacuous() {
    let export = json!({"$ref": "#/definitions/Export"});
    assert!(
        specs()
            .errors(
                &export,
                PBI,
                &json!({"status": "Succeeded", "percentComplete": 100}),
                "ok"
            )
            .is_empty()
    );
    assert!(
        !specs()
            .errors(&export, PBI, &json!({"status": "Finished"}), "bad enum")
            .is_empty()
    );
    assert!(
        !specs()
            .errors(
                &export,
                PBI,
                &json!({"percentComplete": "most"}),
                "bad type"
            )
            .is_empty()
    );
    let job = json!({"$ref": "./definitions/platform.json#/definitions/ItemJobInstance"});
    assert!(
        !specs()
            .errors(&job, FABRIC, &json!({"status": 5}), "bad type")
            .is_empty()
    );
    let error = json!({"$ref": "../common/definitions.json#/definitions/ErrorResponse"});
    assert!(
        !specs()
            .errors(
                &error,
                FABRIC,
                &json!({"message": "no code"}),
                "missing field"
            )
            .is_empty()
    );
}

#[test]
fn the_specs_are_in_the_repository() {
    assert!(specs().docs.contains_key(PBI));
    assert!(
        specs()
            .docs
            .contains_key("fabric-rest-api-specs/common/definitions.json")
    );
}

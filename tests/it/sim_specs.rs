//! The official OpenAPI files and the checks the conformance tests (sim_conformance.rs) run:
//! the status must be one the spec lists and the JSON body must validate against the spec's
//! schema, after applying the documented wire differences (listed once, with their evidence, in
//! `spec_differences.rs`).
//!
//! Specs are read from `specs/` in the repository (copied unchanged with their licences, see
//! specs/README.md), so a fresh clone needs nothing beside it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use jsonschema::Draft;
use serde_json::{Value, json};

use crate::sim_support::Answer;
use crate::spec_differences::{self as differences, Api};

pub(crate) const PBI: &str = "PowerBI-CSharp/swagger.json";
pub(crate) const FABRIC: &str = "fabric-rest-api-specs/platform/swagger.json";
pub(crate) const FABRIC_DATAFLOW: &str = "fabric-rest-api-specs/dataflow/swagger.json";

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

pub(crate) struct Specs {
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

pub(crate) fn specs() -> &'static Specs {
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

    pub(crate) fn errors(
        &self,
        schema: &Value,
        base: &str,
        body: &Value,
        what: &str,
    ) -> Vec<String> {
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
pub(crate) fn check_pbi(path: &str, method: &str, operation: &str, a: &Answer) {
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
            &differences::answer(Api::PowerBi, operation, a.body.clone()),
            &what,
        ),
    }
}

/// Checks a Fabric answer against `spec`'s operation `method path`.
pub(crate) fn check_fabric(spec: &str, path: &str, method: &str, a: &Answer) {
    let what = format!("Fabric {method} {path} -> {}", a.status);
    let response = specs().response(spec, path, method, a.status);
    match response.get("schema") {
        None => assert!(a.bytes.is_empty(), "{what}: the spec has no body"),
        Some(schema) => specs().validate(
            schema,
            spec,
            &differences::answer(Api::Fabric, "", a.body.clone()),
            &what,
        ),
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

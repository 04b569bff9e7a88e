//! The simulator profile's JSON Schema: the committed file matches the types, and example
//! profiles validate against it.

use std::path::PathBuf;

use pbibatch::sim::Profile;
use serde_json::Value;

fn schema_path() -> PathBuf {
    crate::common::repo().join("schemas/pbibatch-sim-profile.schema.json")
}

#[test]
fn committed_schema_matches_the_profile_types() {
    let generated = serde_json::to_string_pretty(&Profile::json_schema()).unwrap() + "\n";
    let path = schema_path();
    if std::env::var_os("PBIBATCH_UPDATE_SCHEMAS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date with src/sim/profile: rerun this test with PBIBATCH_UPDATE_SCHEMAS=1 and commit the file",
        path.display()
    );
}

/// Every YAML block of docs/simulator.md is a valid profile for both serde and the schema.
#[test]
fn documented_profiles_are_valid() {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path()).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let doc = std::fs::read_to_string(crate::common::repo().join("docs/simulator.md")).unwrap();
    let mut blocks = 0;
    for block in doc.split("```yaml\n").skip(1) {
        let yaml = block.split("```").next().unwrap();
        Profile::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let value: Value = serde_saphyr::from_str(yaml).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}\n{yaml}");
        blocks += 1;
    }
    assert!(
        blocks >= 3,
        "docs/simulator.md should show example profiles"
    );
}

#[test]
fn the_schema_rejects_what_serde_rejects() {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path()).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for bad in [
        serde_json::json!({"unknown_knob": 1}),
        serde_json::json!({"defaults": {"outcomes": ["explode"]}}),
        serde_json::json!({"workspaces": {"W": {"datasets": {"D": {"colour": "red"}}}}}),
    ] {
        assert!(!validator.is_valid(&bad), "{bad}");
        assert!(Profile::from_yaml(&bad.to_string()).is_err(), "{bad}");
    }
}

//! The JSON Schema flags what `validate` flags, wherever JSON Schema can say it: every
//! malformed fixture, and one case per rule the schema carries, goes through both. What the
//! schema cannot reject is listed here with the reason (an editor then flags it only once
//! `validate` runs).

use std::path::Path;

use crate::common::{pbibatch, repo, texts};

/// Fixtures `validate` rejects for a reason no JSON Schema can express.
const INEXPRESSIBLE: &[(&str, &str)] = &[
    (
        "app_only_notify",
        "depends on the kind of the step's connection, declared in another section",
    ),
    (
        "bad_reference",
        "`${...}` syntax may appear in any string value; a pattern on every string would blur every other message",
    ),
    ("cycle", "a property of the dependency graph"),
    (
        "each_without_for_each",
        "`${each.*}` may appear in any string value of a step; whether the step has `for_each` is another key",
    ),
    (
        "for_each_keys",
        "keys are derived from the values (uniqueness after replacing characters)",
    ),
    ("invalid_when", "CEL syntax is not a regular language"),
    (
        "self_dependency",
        "compares a value with its own key (JSON Schema has no `$data` references)",
    ),
    (
        "unknown_connection",
        "a reference to a key of `connections:`",
    ),
    ("unknown_dependency", "a reference to another step's id"),
    ("unknown_pool", "a reference to a key of `pools:`"),
    ("unknown_var", "a reference to a key of `vars:`"),
    (
        "unknown_workspace_alias",
        "a reference to a key of `workspaces:`",
    ),
    (
        "when_too_costly",
        "the cost of a CEL expression is computed from its syntax tree",
    ),
    (
        "when_too_deep",
        "bracket nesting depth needs counting, past what an editor's regular expression can do",
    ),
    (
        "when_unknown_names",
        "names in a CEL expression checked against `vars:` and `depends_on`",
    ),
];

/// Fixtures that are not YAML a schema can be applied to: the editor's YAML parser reports
/// them before any schema does.
const NOT_YAML: &[&str] = &[
    "billion_laughs",
    "binary_garbage",
    "duplicate_key",
    "duplicate_step_id",
    "tab_after_spaces",
    "tabs",
    "unclosed_quote",
    "yaml_syntax",
];

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("schemas/pbibatch-job.schema.json")).unwrap(),
    )
    .unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

/// `validate`'s exit code and short output for `file` in `dir`.
fn validate(dir: &Path, file: &str) -> (Option<i32>, String) {
    let out = pbibatch(dir)
        .args(["validate", "--format", "short", file])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    (out.status.code(), format!("{stdout}{stderr}"))
}

/// The YAML text as JSON, as an editor's YAML 1.2 parser sees it (`None`: not YAML).
fn as_json(bytes: &[u8]) -> Option<serde_json::Value> {
    let text = std::str::from_utf8(bytes).ok()?;
    serde_saphyr::from_str::<serde_json::Value>(text).ok()
}

#[test]
fn the_schema_rejects_every_malformed_fixture_it_can_express() {
    let validator = validator();
    let dir = repo().join("tests/fixtures/invalid");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            p.file_stem().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    names.sort();
    let mut disagreements = Vec::new();
    for name in &names {
        let file = format!("{name}.yaml");
        let (code, out) = validate(&dir, &file);
        assert_eq!(code, Some(2), "validate accepts {file}: {out}");
        let doc = as_json(&std::fs::read(dir.join(&file)).unwrap());
        let not_yaml = NOT_YAML.contains(&name.as_str());
        let inexpressible = INEXPRESSIBLE.iter().any(|(n, _)| n == name);
        match doc {
            None if not_yaml => {}
            None => disagreements.push(format!("{file}: not YAML, yet not in NOT_YAML")),
            Some(_) if not_yaml => disagreements.push(format!("{file}: YAML, yet in NOT_YAML")),
            // Listed as inexpressible: the schema must indeed accept it (keeps the list exact).
            Some(doc) if inexpressible => {
                if !validator.is_valid(&doc) {
                    disagreements.push(format!(
                        "{file}: the schema rejects it now: take it out of INEXPRESSIBLE"
                    ));
                }
            }
            Some(doc) => {
                if validator.is_valid(&doc) {
                    disagreements.push(format!(
                        "{file}: `validate` rejects it, the schema accepts it ({out})"
                    ));
                }
            }
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// One case per rule of the schema: the step (or top-level lines) to add to a valid job,
/// and what `validate` says about it.
const RULES: &[(&str, &str)] = &[
    (
        "version: 2\nname: j\nsteps: {a: {type: webhook, url: 'https://h.example.com'}}\n",
        "unsupported job file version 2",
    ),
    (
        "version: 1\nname: Nightly Job\nsteps: {a: {type: webhook, url: 'https://h.example.com'}}\n",
        "invalid job name",
    ),
    (
        "version: 1\nname: j\nsteps: {'load+all': {type: webhook, url: 'https://h.example.com'}}\n",
        "invalid step id",
    ),
    ("version: 1\nname: j\nsteps: {}\n", "`steps` is empty"),
    (
        "version: 1\nname: j\nconcurrency: 10001\nsteps: {a: {type: webhook, url: 'https://h.example.com'}}\n",
        "`concurrency` must be between 1 and 10000",
    ),
    (
        "version: 1\nname: j\npools: {p: 0}\nsteps: {a: {type: dataset, workspace: W, dataset: D, pool: p}}\n",
        "`pool limit` must be between 1 and 10000",
    ),
    (
        "version: 1\nname: j\nsteps: {a: {type: dataset, workspace: W, dataset: D, retries: 101}}\n",
        "`retries` must be between 0 and 100",
    ),
    (
        "version: 1\nname: j\ndefaults: {retries: {count: -1}}\nsteps: {a: {type: dataset, workspace: W, dataset: D}}\n",
        "`retries.count` must be between 0 and 100",
    ),
    (
        "version: 1\nname: j\nsteps: {a: {type: dataflow, generation: 3, workspace: W, dataflow: D}}\n",
        "`generation` must be 1 or 2",
    ),
    (
        "version: 1\nname: j\nsteps: {a: {type: dataset, workspace: W, dataset: D, timeout: 2 hourz}}\n",
        "invalid duration `2 hourz`",
    ),
    (
        "version: 1\nname: j\ndefaults: {retries: {count: 1, backoff: soon}}\nsteps: {a: {type: dataset, workspace: W, dataset: D}}\n",
        "invalid duration `soon`",
    ),
    (
        "version: 1\nname: j\nsteps: {a: {type: dataset, workspace: W, dataset: D, skip_if_fresh: '${env.FRESH}'}}\n",
        "durations must be known before a run",
    ),
    (
        "version: 1\nname: j\nsteps: {a: {type: dataset, workspace: W, dataset: D, notify: mail_on_failure, refresh: {type: full}}}\n",
        "`notify` applies to standard refreshes only",
    ),
    (
        "version: 1\nname: j\nsteps: {a: {type: dataset, workspace: W, dataset: D, refresh: {max_parallelism: 0}}}\n",
        "`max_parallelism` must be between 1 and 10000",
    ),
    (
        "version: 1\nname: j\nsteps: {a: {type: dataset, workspace: W, dataset: D, refresh: {retry_count: 101}}}\n",
        "`retry_count` must be between 0 and 100",
    ),
    (
        "version: 1\nname: j\nsteps: {a: {type: webhook, url: 'https://h.example.com', expect_status: [99]}}\n",
        "`expect_status` must be between 100 and 599",
    ),
    (
        "version: 1\nname: j\nsteps: {a: {type: webhook, url: 'http://h.example.com/x'}}\n",
        "plain `http://` is refused",
    ),
    (
        "version: 1\nname: j\nsteps: {a: {type: webhook, url: 'https://h.example.com', when: '  '}}\n",
        "`when` is empty",
    ),
    (
        "version: 1\nname: j\nsteps: {a: {type: webhook, url: 'https://h.example.com', for_each: []}}\n",
        "`for_each` has no values",
    ),
    (
        "version: 1\nname: j\nsteps: {a: {type: webhook, url: 'https://h.example.com', for_each: 'a,b'}}\n",
        "`for_each` as a string must be one `${vars.NAME}`",
    ),
    (
        "version: 1\nname: j\nsteps: {a: {type: webhook, url: 'https://h.example.com', format: teams, body: {text: hi}}}\n",
        "a webhook step has both `body` and `format`",
    ),
    (
        "version: 1\nname: j\nsteps: {a: {type: webhook, url: 'https://h.example.com', link: 'https://k.example.com'}}\n",
        "`link` is shown only by `format: teams` or `format: slack`",
    ),
    (
        "version: 1\nname: j\nsteps: {a: {type: webhook, url: 'https://h.example.com', format: plain, link: 'https://k.example.com'}}\n",
        "`link` is shown only by `format: teams` or `format: slack`",
    ),
    (
        "version: 1\nname: j\nsteps: {a: {type: data_check, workspace: W, dataset: D, query: EVALUATE x, expect: {}}}\n",
        "`expect` holds no assertion",
    ),
    (
        "version: 1\nname: j\nsteps: {a: {type: data_check, workspace: W, dataset: D, query: EVALUATE x, expect: {no_rows: false}}}\n",
        "`no_rows: false` asserts nothing",
    ),
    (
        "version: 1\nname: j\nsteps: {a: {type: data_check, workspace: W, dataset: D, query: EVALUATE x, expect: {value: {}}}}\n",
        "`value` sets no bound",
    ),
    (
        "version: 1\nname: j\nsteps: {a: {type: data_check, workspace: W, dataset: D, query: EVALUATE x, expect: {value: {equals: 1, min: 0}}}}\n",
        "`equals` with `min` or `max`",
    ),
    (
        "version: 1\nname: j\nsteps: {a: {type: data_check, workspace: W, dataset: D, query: EVALUATE x, expect: {column: n, rows: {min: 1}}}}\n",
        "`column` goes with `value`",
    ),
    (
        "version: 1\nname: j\nsteps: {a: {type: data_check, workspace: W, dataset: D, expect: {no_rows: true}}}\n",
        "a `data_check` step needs `query`",
    ),
    (
        "version: 1\nname: j\nsteps: {a: {type: freshness, workspace: W, dataset: D}}\n",
        "a `freshness` step needs `max_age` or `warn_after`",
    ),
    (
        "version: 1\nname: j\nsteps: {a: {type: freshness, workspace: W, max_age: 1h}}\n",
        "a `freshness` step needs `dataset`, `dataflow` or `item`",
    ),
    (
        "version: 1\nname: j\nsteps: {a: {type: freshness, workspace: W, dataset: D, item: I, max_age: 1h}}\n",
        "names more than one of `dataset`, `dataflow`, `item`",
    ),
];

#[test]
fn each_rule_of_the_schema_is_one_validate_enforces() {
    let validator = validator();
    let dir = tempfile::tempdir().unwrap();
    for (i, (text, message)) in RULES.iter().enumerate() {
        let file = format!("rule{i}.yaml");
        std::fs::write(dir.path().join(&file), text).unwrap();
        let (code, out) = validate(dir.path(), &file);
        assert_eq!(code, Some(2), "{text}{out}");
        assert!(out.contains(message), "{text}want {message}, got: {out}");
        let doc = as_json(text.as_bytes()).unwrap();
        assert!(!validator.is_valid(&doc), "the schema accepts:\n{text}");
    }
    // The edges of each rule stay valid for both.
    let edges = "version: 1\nname: nightly-job_2\nconcurrency: 10000\npools: {p: 1}\n\
        vars: {t: 90m}\ndefaults: {retries: {count: 100, backoff: 1.5s, max_backoff: 1h 30m}}\n\
        steps:\n  _a-1: {type: dataflow, generation: 2, workspace: W, dataflow: D, timeout: '${vars.t}', pool: p}\n  \
        b: {type: dataset, workspace: W, dataset: D, retries: 0, refresh: {max_parallelism: 10000, retry_count: 100}, skip_if_fresh: 7 days}\n  \
        c: {type: webhook, url: 'http://127.0.0.1:8080/x', expect_status: [100, 599], when: \"vars.t == '90m'\"}\n  \
        d: {type: webhook, url: '${env.HOOK_URL}', poll_interval: null}\n";
    let edges = edges.replace(", poll_interval: null", "");
    std::fs::write(dir.path().join("edges.yaml"), &edges).unwrap();
    let (code, out) = validate(dir.path(), "edges.yaml");
    assert_eq!(code, Some(0), "{edges}{out}");
    let doc = as_json(edges.as_bytes()).unwrap();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
}

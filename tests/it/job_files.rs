//! Job files through the real binary: the repo's jobs and examples validate, the schema is
//! up to date, plan/graph output is stable, and malformed files give located diagnostics
//! (exit 2) without panics, stack overflows or long runs.

use std::path::{Path, PathBuf};

use crate::common::{pbibatch, repo, texts};

/// `jobs/*.yaml` and `examples/*.yaml`, sorted.
fn job_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["jobs", "examples"] {
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

fn rel(p: &Path) -> String {
    p.strip_prefix(repo()).unwrap().display().to_string()
}

fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

#[test]
fn every_job_file_validates_and_names_the_schema() {
    let files = job_files();
    assert!(
        files.len() >= 5,
        "jobs/ and examples/ hold {} files",
        files.len()
    );
    let mut cmd = pbibatch(&repo());
    cmd.arg("validate").arg("--format").arg("short");
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            text.starts_with(
                "# yaml-language-server: $schema=../schemas/pbibatch-job.schema.json\n"
            ),
            "{} does not start with the schema comment",
            rel(f)
        );
        cmd.arg(rel(f));
    }
    let out = cmd.output().unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(!stdout.contains(": error:"), "{stdout}");
}

#[test]
fn schema_command_matches_the_committed_schema() {
    let out = pbibatch(&repo()).arg("schema").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let committed =
        std::fs::read_to_string(repo().join("schemas/pbibatch-job.schema.json")).unwrap();
    assert!(
        texts(&out).0 == committed,
        "schemas/pbibatch-job.schema.json is stale: run `pbibatch schema > schemas/pbibatch-job.schema.json`"
    );
}

fn yaml_as_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str::<serde_json::Value>(&text).unwrap()
}

#[test]
fn job_files_satisfy_the_schema_and_misplaced_keys_do_not() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("schemas/pbibatch-job.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for f in job_files() {
        let doc = yaml_as_json(&f);
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", rel(&f));
    }
    let fixtures = repo().join("tests/fixtures/invalid");
    for bad in [
        "key_of_other_type",
        "keys_that_mean_nothing",
        "unknown_key",
        "missing_required_field",
        "invalid_export_format",
    ] {
        let doc = yaml_as_json(&fixtures.join(format!("{bad}.yaml")));
        assert!(!validator.is_valid(&doc), "the schema accepts {bad}.yaml");
    }
}

#[test]
fn plan_and_graph_of_every_job_file() {
    for f in job_files() {
        let name = stem(&f);
        for (label, args) in [
            ("plan_text", vec!["plan"]),
            ("plan_json", vec!["plan", "--format", "json"]),
            ("graph_mermaid", vec!["graph"]),
            ("graph_dot", vec!["graph", "--format", "dot"]),
        ] {
            let out = pbibatch(&repo()).args(&args).arg(rel(&f)).output().unwrap();
            let (stdout, stderr) = texts(&out);
            assert_eq!(out.status.code(), Some(0), "{label} {name}: {stderr}");
            insta::assert_snapshot!(format!("{label}__{name}"), stdout);
        }
    }
}

#[test]
fn plan_with_a_selection() {
    let out = pbibatch(&repo())
        .args([
            "plan",
            "examples/nightly_estate.yaml",
            "--select",
            "+finance_model",
            "--select",
            "tag:exports",
            "--exclude",
            "margin_pptx",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    insta::assert_snapshot!("plan_selection", stdout);

    let out = pbibatch(&repo())
        .args([
            "plan",
            "examples/nightly_estate.yaml",
            "--select",
            "finance_modl",
        ])
        .output()
        .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("selector `finance_modl` matches no step (did you mean `finance_model`?)"),
        "{stderr}"
    );
}

#[test]
fn var_overrides_reach_the_plan() {
    let out = pbibatch(&repo())
        .args([
            "plan",
            "examples/nightly_estate.yaml",
            "--var",
            "out_dir=/mnt/reports",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("export: PDF -> /mnt/reports/pnl.pdf"),
        "{stdout}"
    );

    let out = pbibatch(&repo())
        .args([
            "validate",
            "examples/nightly_estate.yaml",
            "--var",
            "out_dri=x",
            "--format",
            "short",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        texts(&out).0.contains(
            "--var out_dri: no variable `out_dri` under `vars:` (did you mean `out_dir`?)"
        ),
        "{:?}",
        texts(&out)
    );
}

/// Where each malformed fixture's first error must point, and what it must say.
const EXPECTED: &[(&str, &str, &str)] = &[
    (
        "bad_duration",
        "4:12",
        "invalid duration `2 hourz` for `timeout`",
    ),
    ("bad_reference", "4:35", "bad reference `${workspace}`"),
    (
        "each_without_for_each",
        "8:39",
        "`${each.key}` is only available in a step with `for_each`",
    ),
    (
        "for_each_keys",
        "8:31",
        "`North_America` and `North America` give the same key `North_America` in `for_each`",
    ),
    ("bad_step_id", "4:3", "invalid step id `load+all`"),
    ("bad_trigger", "5:85", "unknown value `one_fail`"),
    (
        "billion_laughs",
        "13:14",
        "the job file is too large or too deeply nested",
    ),
    (
        "binary_garbage",
        "1:2",
        "the job file is not valid UTF-8 text",
    ),
    ("comment_only", "1:1", "the job file is empty"),
    ("cycle", "4:62", "dependency cycle: a -> b -> c -> a"),
    ("duplicate_key", "8:5", "duplicate key `workspace`"),
    ("duplicate_step_id", "6:3", "duplicate key `a`"),
    ("empty", "1:1", "the job file is empty"),
    (
        "http_url",
        "4:31",
        "plain `http://` is refused except for loopback addresses",
    ),
    (
        "invalid_export_format",
        "8:23",
        "invalid export format `PFD`",
    ),
    (
        "invalid_when",
        "10:44",
        "invalid `when` expression: the expression ends too early",
    ),
    (
        "key_of_other_type",
        "8:13",
        "`export` is not a key of a `dataset` step",
    ),
    (
        "keys_that_mean_nothing",
        "8:17",
        "`if_running` is not a key of a `sas_flow` step without `wait_for`",
    ),
    ("many_problems", "2:7", "invalid job name `Bad Name`"),
    (
        "missing_required_field",
        "5:11",
        "a `dataset` step needs `dataset`",
    ),
    ("missing_top_field", "2:1", "missing field `name`"),
    (
        "app_only_notify",
        "10:13",
        "the service refuses mail notifications for an application",
    ),
    ("options_mix", "1:10", "unsupported job file version 2"),
    (
        "notify_with_refresh",
        "8:13",
        "`notify` applies to standard refreshes only",
    ),
    (
        "out_of_bounds",
        "3:14",
        "`concurrency` must be between 1 and 10000, not 0",
    ),
    ("self_dependency", "8:18", "step `a` depends on itself"),
    ("tabs", "4:1", "a tab in indentation"),
    ("tab_after_spaces", "7:1", "a tab in indentation"),
    ("missing_type", "4:3", "step `model` has no `type`"),
    (
        "when_too_deep",
        "8:20",
        "`when` nests brackets too deeply (100 levels, at most 8)",
    ),
    ("unknown_connection", "6:61", "unknown connection `prd`"),
    (
        "unknown_dependency",
        "9:18",
        "unknown step `extrct` in `depends_on` of `load`",
    ),
    ("unknown_key", "7:5", "unknown key `datset`"),
    ("unknown_keys_everywhere", "3:25", "unknown key `timout`"),
    ("unknown_pool", "5:55", "unknown pool `premium_p2`"),
    ("unknown_step_type", "5:11", "unknown value `datset`"),
    ("unknown_top_key", "3:1", "unknown key `stesp`"),
    ("unknown_var", "5:35", "unknown variable `workspac`"),
    (
        "unknown_workspace_alias",
        "5:34",
        "unknown workspace alias `admn`",
    ),
    (
        "when_too_costly",
        "9:11",
        "`when` may take too long to evaluate: up to about",
    ),
    (
        "when_unknown_names",
        "10:11",
        "unknown variable `exprt` in `when`",
    ),
    (
        "freshness_no_bound",
        "5:11",
        "a `freshness` step needs `max_age` or `warn_after`",
    ),
    (
        "data_check_two_assertions",
        "9:13",
        "`expect` holds more than one assertion",
    ),
    (
        "webhook_format_and_body",
        "9:11",
        "a webhook step has both `body` and `format`",
    ),
    ("wrong_type", "3:14", "expected an integer"),
    ("wrong_shape", "5:71", "expected a list"),
    (
        "yaml_syntax",
        "7:15",
        "mapping values are not allowed in this context",
    ),
    ("unclosed_quote", "4:34", "unclosed quote"),
];

#[test]
fn malformed_files_get_located_diagnostics() {
    let dir = repo().join("tests/fixtures/invalid");
    let mut fixtures: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| stem(&e.unwrap().path()))
        .collect();
    fixtures.sort();
    let mut expected: Vec<&str> = EXPECTED.iter().map(|e| e.0).collect();
    expected.sort_unstable();
    assert_eq!(fixtures, expected, "every fixture needs an EXPECTED entry");

    for (name, at, message) in EXPECTED {
        let file = format!("{name}.yaml");
        let out = pbibatch(&dir)
            .args(["validate", "--format", "short", &file])
            .output()
            .unwrap();
        let (short, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(2), "{file}: {short}{stderr}");
        assert!(!stderr.contains("panicked"), "{file}: {stderr}");
        let first_error = short
            .lines()
            .find(|l| l.contains(": error: "))
            .unwrap_or("");
        let want = format!("{file}:{at}: error: {message}");
        assert!(
            first_error.starts_with(&want),
            "{file}: want `{want}`, got:\n{short}"
        );

        let out = pbibatch(&dir).args(["validate", &file]).output().unwrap();
        let (_, human) = texts(&out);
        assert_eq!(out.status.code(), Some(2));
        insta::assert_snapshot!(format!("invalid__{name}"), format!("{short}\n{human}"));
    }
}

#[test]
fn app_only_identity_problems_are_flagged_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    // A Dataflow Gen2 by a service principal: a warning (the run is accepted, then fails).
    let gen2 = "version: 1\nname: g\nconnections:\n  default: { managed_identity: true }\nsteps:\n  lake: { type: dataflow, generation: 2, workspace: L, dataflow: D }\n";
    let (code, out, err) = validate_text(dir.path(), "gen2.yaml", gen2);
    assert_eq!(code, Some(0), "{out}{err}");
    let all = format!("{out}{err}");
    assert!(
        all.contains(
            ": warning: step `lake`: Fabric runs a Dataflow Gen2 for a signed-in user only"
        ),
        "{all}"
    );
    assert!(all.contains("SPNBasedRefreshNotAllowed"), "{all}");
    // A user's connection (the Azure CLI) or a token of unknown identity: nothing to say.
    for conn in ["{ azure_cli: true }", "{ access_token: tok }"] {
        let text = gen2.replace("{ managed_identity: true }", conn).replace(
            "lake: { type: dataflow, generation: 2, workspace: L, dataflow: D }",
            "lake: { type: dataflow, generation: 2, workspace: L, dataflow: D }\n  m: { type: dataset, workspace: W, dataset: M, notify: mail_on_failure }",
        );
        let (code, out, err) = validate_text(dir.path(), "user.yaml", &text);
        assert_eq!(code, Some(0), "{conn}: {out}{err}");
        assert!(
            !format!("{out}{err}").contains("app-only"),
            "{conn}: {out}{err}"
        );
        assert!(
            !format!("{out}{err}").contains("signed-in user only"),
            "{conn}: {out}{err}"
        );
    }
    // `no_notification` with a service principal is fine.
    let quiet = "version: 1\nname: q\nconnections:\n  default: { tenant_id: t, client_id: c, client_secret: s }\nsteps:\n  m: { type: dataset, workspace: W, dataset: M, notify: no_notification }\n";
    let (code, out, err) = validate_text(dir.path(), "quiet.yaml", quiet);
    assert_eq!(code, Some(0), "{out}{err}");
}

#[test]
fn json_diagnostics() {
    let dir = repo().join("tests/fixtures/invalid");
    let out = pbibatch(&dir)
        .args([
            "validate",
            "--format",
            "json",
            "many_problems.yaml",
            "unknown_pool.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let items: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = items.as_array().unwrap();
    assert_eq!(items.len(), 10, "{items:#?}");
    // The implicit connection's warning concerns the whole file: no position.
    assert_eq!(items[0]["severity"], "warning");
    assert_eq!(items[0]["line"], serde_json::Value::Null);
    assert_eq!(items[1]["file"], "many_problems.yaml");
    assert_eq!(items[1]["line"], 2);
    assert_eq!(items[1]["column"], 7);
    assert_eq!(items[1]["severity"], "error");
    assert_eq!(
        items[1]["label"],
        "use lowercase letters, digits, `_` and `-`"
    );
    assert_eq!(items[9]["file"], "unknown_pool.yaml");
    assert_eq!(items[9]["help"], "did you mean `premium_p1`?");
}

/// Writes `text` to `dir/name` and validates it; returns (exit code, short output, stderr).
fn validate_text(dir: &Path, name: &str, text: &str) -> (Option<i32>, String, String) {
    std::fs::write(dir.join(name), text).unwrap();
    let out = pbibatch(dir)
        .args(["validate", "--format", "short", name])
        .output()
        .unwrap();
    let (a, b) = texts(&out);
    (out.status.code(), a, b)
}

const HOOK: &str = "version: 1\nname: hostile\nsteps:\n  a:\n    type: webhook\n    url: https://h.example.com\n    body: ";

#[test]
fn hostile_inputs_are_refused_without_crashing() {
    let dir = tempfile::tempdir().unwrap();
    let n = 2_500_000;
    // 5 MB of flow lists nested 2.5 million levels deep.
    let deep = format!("{HOOK}{}{}\n", "[".repeat(n), "]".repeat(n));
    assert!(deep.len() > 5_000_000);
    let (code, short, stderr) = validate_text(dir.path(), "deep.yaml", &deep);
    assert_eq!(code, Some(2), "{short}{stderr}");
    assert!(short.contains("deep.yaml:7:"), "{short}");
    assert!(short.contains("too large or too deeply nested"), "{short}");
    // The human form does not echo the 5 MB line.
    let out = pbibatch(dir.path())
        .args(["validate", "deep.yaml"])
        .output()
        .unwrap();
    let (_, human) = texts(&out);
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!("hostile__deep_flow_lists", format!("{short}\n{human}"));

    // Block sequences nested thousands of levels deep.
    let mut block = format!("{HOOK}\n");
    for i in 0..2000 {
        block.push_str(&" ".repeat(2 * i + 6));
        block.push_str("-\n");
    }
    let (code, short, _) = validate_text(dir.path(), "block.yaml", &block);
    assert_eq!(code, Some(2));
    assert!(short.contains("too large or too deeply nested"), "{short}");

    // Billion laughs inside a body (where any YAML is accepted).
    let mut lol = format!(
        "{HOOK}\n      a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
    );
    let mut prev = 'a';
    for c in "bcdefghi".chars() {
        let refs = vec![format!("*{prev}"); 9].join(",");
        lol.push_str(&format!("      {c}: &{c} [{refs}]\n"));
        prev = c;
    }
    let (code, short, _) = validate_text(dir.path(), "lol.yaml", &lol);
    assert_eq!(code, Some(2));
    assert!(short.contains("too large or too deeply nested"), "{short}");

    // A `when` expression nested deeply enough to hurt a recursive parser.
    let when = format!(
        "version: 1\nname: w\nsteps:\n  a:\n    type: webhook\n    url: https://h.example.com\n    when: \"{}true{}\"\n",
        "(".repeat(3000),
        ")".repeat(3000)
    );
    let (code, short, stderr) = validate_text(dir.path(), "when.yaml", &when);
    assert_eq!(code, Some(2), "{short}{stderr}");
    assert!(short.contains("when.yaml:7:11: error:"), "{short}");

    // Incomplete CEL must be a diagnostic, not a panic.
    let when = "version: 1\nname: w\nsteps:\n  a:\n    type: webhook\n    url: https://h.example.com\n    when: a &&\n";
    let (code, short, stderr) = validate_text(dir.path(), "and.yaml", when);
    assert_eq!(code, Some(2));
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        short.contains(
            "and.yaml:7:15: error: invalid `when` expression: the expression ends too early"
        ),
        "{short}"
    );
}

#[test]
fn missing_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let out = pbibatch(dir.path())
        .args(["validate", "--format", "short", "nope.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        texts(&out)
            .0
            .starts_with("nope.yaml:1:1: error: cannot read the job file"),
        "{:?}",
        texts(&out)
    );
}

#[test]
fn watch_settings_from_defaults_apply_only_to_steps_that_watch_a_remote_run() {
    // `poll_interval` and `if_running` under `defaults:` are not errors on a webhook, a report
    // or a sas_flow without `wait_for`: they do not apply there, and `plan` does not show them.
    let dir = tempfile::tempdir().unwrap();
    let job = r#"
version: 1
name: defaults_apply
connections: { default: { access_token: tok } }
defaults: { poll_interval: 5s, if_running: adopt, connection: default }
steps:
  flow: { type: sas_flow, url: "https://flows.example.com/run" }
  watched:
    type: sas_flow
    url: "https://flows.example.com/run"
    wait_for: { workspace: W, dataflow: D }
  model: { type: dataset, workspace: W, dataset: M, depends_on: [flow, watched] }
  book:
    type: report
    workspace: W
    report: R
    export: { format: PDF, path: out/r.pdf }
    depends_on: [model]
  hook: { type: webhook, url: "https://hooks.example.com/x", depends_on: [book] }
"#;
    let (code, short, stderr) = validate_text(dir.path(), "job.yaml", job);
    assert_eq!(code, Some(0), "{short}{stderr}");
    let out = pbibatch(dir.path())
        .args(["plan", "job.yaml"])
        .output()
        .unwrap();
    let (plan, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let watch_line = |id: &str| {
        let section = plan
            .split("\n\n")
            .find(|s| s.starts_with(&format!("{id} (")))
            .unwrap_or_else(|| panic!("no section for {id}:\n{plan}"));
        section
            .lines()
            .find(|l| l.trim_start().starts_with("poll_interval:"))
            .map(str::trim)
            .map(str::to_string)
    };
    for id in ["watched", "model"] {
        assert_eq!(
            watch_line(id).as_deref(),
            Some("poll_interval: 5s, if_running: adopt"),
            "{plan}"
        );
    }
    for id in ["flow", "book", "hook"] {
        assert_eq!(watch_line(id), None, "{id}:\n{plan}");
    }
    let out = pbibatch(dir.path())
        .args(["plan", "job.yaml", "--format", "json"])
        .output()
        .unwrap();
    let plan: serde_json::Value = serde_json::from_str(&texts(&out).0).unwrap();
    for s in plan["steps"].as_array().unwrap() {
        let watches = ["watched", "model"].contains(&s["id"].as_str().unwrap());
        assert_eq!(s.get("poll_interval").is_some(), watches, "{s}");
        assert_eq!(s.get("if_running").is_some(), watches, "{s}");
    }
}

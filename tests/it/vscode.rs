//! `examples/vscode/`: the validate task's problem matcher reads real `--format short` output
//! (file, line, column, severity, message), and the schema that `settings.json` associates
//! with job files accepts every job in the repo and rejects the schema-detectable malformed
//! fixtures (checked with a real JSON Schema validator).

use std::path::Path;

use regex::Regex;
use serde_json::Value;

use crate::common::{pbibatch, repo, texts};

fn read_json(rel: &str) -> Value {
    let text = std::fs::read_to_string(repo().join(rel)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{rel} is not JSON: {e}"))
}

/// The validate task and its matchers' patterns.
fn validate_task() -> Value {
    let tasks = read_json("examples/vscode/tasks.json");
    tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"].as_str().unwrap().contains("validate"))
        .cloned()
        .expect("a validate task")
}

/// A problem as the matcher reads it.
#[derive(Debug, PartialEq)]
struct Problem {
    file: String,
    line: Option<usize>,
    column: Option<usize>,
    severity: String,
    message: String,
}

/// Applies the matchers like VS Code does (first matching matcher wins) to each line.
fn match_lines(task: &Value, output: &str) -> Vec<Problem> {
    let matchers = task["problemMatcher"].as_array().unwrap();
    let compiled: Vec<(Regex, &Value)> = matchers
        .iter()
        .map(|m| {
            let p = &m["pattern"];
            (Regex::new(p["regexp"].as_str().unwrap()).unwrap(), p)
        })
        .collect();
    let mut out = Vec::new();
    for line in output.lines() {
        let hits: Vec<Problem> = compiled
            .iter()
            .filter_map(|(re, p)| {
                let caps = re.captures(line)?;
                let group = |key: &str| {
                    p.get(key)
                        .and_then(Value::as_u64)
                        .map(|i| caps.get(i as usize).unwrap().as_str().to_string())
                };
                Some(Problem {
                    file: group("file").unwrap(),
                    line: group("line").map(|l| l.parse().unwrap()),
                    column: group("column").map(|c| c.parse().unwrap()),
                    severity: group("severity").unwrap(),
                    message: group("message").unwrap(),
                })
            })
            .collect();
        assert_eq!(
            hits.len(),
            1,
            "exactly one matcher must read `{line}`: {hits:?}"
        );
        out.extend(hits);
    }
    out
}

#[test]
fn vscode_problem_matcher_reads_real_short_output() {
    let task = validate_task();
    let args: Vec<&str> = task["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args, ["validate", "--format", "short", "${file}"]);

    let fixture = "tests/fixtures/invalid/many_problems.yaml";
    let out = pbibatch(&repo())
        .args(["validate", "--format", "short", fixture])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let problems = match_lines(&task, &stdout);
    assert!(problems.len() >= 5, "{stdout}");
    let source = std::fs::read_to_string(repo().join(fixture)).unwrap();
    let lines: Vec<&str> = source.lines().collect();
    assert_eq!(problems.len(), stdout.lines().count());
    let mut positioned = 0;
    for (p, raw) in problems.iter().zip(stdout.lines()) {
        assert_eq!(p.file, fixture);
        assert!(p.severity == "error" || p.severity == "warning", "{raw}");
        // Every line has a position (a problem of the whole file points at 1:1).
        let (Some(line), Some(column)) = (p.line, p.column) else {
            panic!("a line without a position: {raw}");
        };
        positioned += 1;
        assert!(line >= 1 && line <= lines.len(), "{raw}");
        assert!(column >= 1 && column <= lines[line - 1].len() + 1, "{raw}");
        assert!(!p.message.is_empty());
        assert_eq!(
            raw,
            format!("{}:{line}:{column}: {}: {}", p.file, p.severity, p.message)
        );
    }
    assert!(positioned >= 5, "{stdout}");
    // A known problem, pinned: the unknown pool `q` of step `a` (line 5).
    let pool = problems
        .iter()
        .find(|p| p.message.contains("pool `q`"))
        .unwrap_or_else(|| panic!("no pool problem in {stdout}"));
    assert_eq!(pool.line, Some(5));
    assert_eq!(pool.severity, "error");
    assert_eq!(
        &lines[4][pool.column.unwrap() - 1..][..1],
        "q",
        "the column points at the pool name"
    );

    // A problem of the whole file points at 1:1, so the first matcher reads it too.
    let out = pbibatch(&repo())
        .args([
            "validate",
            "--format",
            "short",
            "--var",
            "nope=1",
            "jobs/order_list.yaml",
        ])
        .output()
        .unwrap();
    let (stdout, _) = texts(&out);
    let problems = match_lines(&task, &stdout);
    let global = problems
        .iter()
        .find(|p| p.message.contains("--var nope"))
        .unwrap_or_else(|| panic!("no --var problem in {stdout}"));
    assert_eq!(global.file, "jobs/order_list.yaml");
    assert_eq!((global.line, global.column), (Some(1), Some(1)));
    assert_eq!(global.severity, "error");
}

#[test]
fn vscode_tasks_cover_plan_graph_and_runs() {
    let tasks = read_json("examples/vscode/tasks.json");
    let all: Vec<Vec<String>> = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert_eq!(t["command"], "pbibatch");
            t["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect()
        })
        .collect();
    for want in [
        vec!["plan", "${file}"],
        vec!["graph", "${file}"],
        vec!["run", "${file}", "--simulate"],
        vec!["run", "${file}"],
    ] {
        assert!(
            all.iter().any(|a| a == &want),
            "no task runs `pbibatch {}`",
            want.join(" ")
        );
    }
    // Every task's command line is one the binary accepts (with a real file for ${file}).
    for args in &all {
        let words: Vec<String> = std::iter::once("pbibatch".to_string())
            .chain(
                args.iter()
                    .map(|a| a.replace("${file}", "jobs/order_list.yaml")),
            )
            .collect();
        if let Err(e) = <pbibatch::cli::Cli as clap::Parser>::try_parse_from(&words) {
            panic!("`{}` does not parse: {e}", words.join(" "));
        }
    }
}

/// The glob patterns `settings.json` associates with the job schema.
fn schema_globs() -> (String, Vec<String>) {
    let settings = read_json("examples/vscode/settings.json");
    let map = settings["yaml.schemas"].as_object().unwrap();
    assert_eq!(map.len(), 1);
    let (schema, globs) = map.iter().next().unwrap();
    let globs = globs
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap().to_string())
        .collect();
    (schema.trim_start_matches("./").to_string(), globs)
}

fn yaml_as_json(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_saphyr::from_str::<Value>(&text).ok()
}

#[test]
fn vscode_schema_accepts_the_repo_jobs_and_rejects_malformed_ones() {
    let (schema_path, globs) = schema_globs();
    assert_eq!(schema_path, "schemas/pbibatch-job.schema.json");
    assert_eq!(globs, ["jobs/*.yaml", "examples/*.yaml"]);
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join(&schema_path)).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();

    let mut checked = 0;
    for glob in &globs {
        let dir = glob.trim_end_matches("/*.yaml");
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "yaml") {
                let doc = yaml_as_json(&p).unwrap();
                let errors: Vec<String> =
                    validator.iter_errors(&doc).map(|e| e.to_string()).collect();
                assert!(errors.is_empty(), "{}: {errors:?}", p.display());
                checked += 1;
            }
        }
    }
    assert!(checked >= 5, "{checked} job files");

    // Malformed fixtures a schema can see (structure, types, enums, unknown keys). The
    // others (cycles, unknown ids, bad durations...) need pbibatch's own validation.
    let fixtures = repo().join("tests/fixtures/invalid");
    for bad in [
        "key_of_other_type",
        "unknown_key",
        "unknown_top_key",
        "unknown_step_type",
        "missing_required_field",
        "missing_top_field",
        "invalid_export_format",
        "bad_trigger",
        "wrong_type",
    ] {
        let doc = yaml_as_json(&fixtures.join(format!("{bad}.yaml")))
            .unwrap_or_else(|| panic!("{bad}.yaml is not YAML"));
        assert!(!validator.is_valid(&doc), "the schema accepts {bad}.yaml");
    }
}

#[test]
fn vscode_readme_says_where_to_copy_and_how_to_install() {
    let readme = std::fs::read_to_string(repo().join("examples/vscode/README.md")).unwrap();
    assert!(
        readme.contains("cp examples/vscode/settings.json examples/vscode/tasks.json .vscode/"),
        "{readme}"
    );
    assert!(readme.contains("cargo install --path ."), "{readme}");
    // Every file the README names is there, and every file there is named.
    let mut shipped: Vec<String> = std::fs::read_dir(repo().join("examples/vscode"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "README.md")
        .collect();
    shipped.sort();
    assert_eq!(shipped, ["settings.json", "tasks.json"]);
    for name in &shipped {
        assert!(readme.contains(&format!("`{name}`")), "{name}: {readme}");
    }
    // The schema path it mentions is the one settings.json maps.
    let settings = read_json("examples/vscode/settings.json");
    let mapped: Vec<&String> = settings["yaml.schemas"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(mapped, ["./schemas/pbibatch-job.schema.json"]);
    assert!(repo().join("schemas/pbibatch-job.schema.json").is_file());
    assert!(
        readme.contains("schemas/pbibatch-job.schema.json"),
        "{readme}"
    );
}

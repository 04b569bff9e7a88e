//! `pbibatch export kestra` through the real binary: snapshots of the flow for every job in
//! the repo, the flow parses as YAML and mirrors the job's DAG, notes reach stderr, and bad
//! arguments exit 2.

use std::path::{Path, PathBuf};

use crate::common::{pbibatch, repo, texts};

/// `jobs/*.yaml` and `examples/*.yaml`, sorted, relative to the repo.
fn job_files() -> Vec<String> {
    let mut files = Vec::new();
    for dir in ["jobs", "examples"] {
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let p: PathBuf = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(format!(
                    "{dir}/{}",
                    p.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    files.sort();
    files
}

fn export(args: &[&str]) -> (Option<i32>, String, String) {
    let out = pbibatch(&repo())
        .arg("export")
        .arg("kestra")
        .args(args)
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    (out.status.code(), stdout, stderr)
}

fn stem(rel: &str) -> String {
    Path::new(rel)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The job file as YAML -> JSON (to compare the flow's DAG with the job's).
fn job_steps(rel: &str) -> serde_json::Map<String, serde_json::Value> {
    let text = std::fs::read_to_string(repo().join(rel)).unwrap();
    let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    doc["steps"].as_object().unwrap().clone()
}

#[test]
fn export_kestra_snapshots_of_every_job() {
    for rel in job_files() {
        let (code, stdout, stderr) = export(&[&rel]);
        assert_eq!(code, Some(0), "{rel}: {stderr}");
        insta::assert_snapshot!(format!("kestra__{}", stem(&rel)), stdout);
    }
}

#[test]
fn export_kestra_flow_parses_and_mirrors_the_dag() {
    for rel in job_files() {
        let (code, stdout, stderr) =
            export(&[&rel, "--namespace", "company.team", "--cron", "0 2 * * *"]);
        assert_eq!(code, Some(0), "{rel}: {stderr}");
        let flow: serde_json::Value = serde_saphyr::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{rel}: the flow is not YAML: {e}\n{stdout}"));
        assert_eq!(flow["namespace"], "company.team");
        assert_eq!(
            flow["triggers"][0]["type"],
            "io.kestra.plugin.core.trigger.Schedule"
        );
        assert_eq!(flow["triggers"][0]["cron"], "0 2 * * *");
        let dag = &flow["tasks"][0];
        assert_eq!(dag["type"], "io.kestra.plugin.core.flow.Dag", "{rel}");
        // One task per step: in the Dag, or (a failure notification) under `errors:`.
        let dag_tasks = dag["tasks"].as_array().unwrap();
        let error_tasks: Vec<serde_json::Value> = flow["errors"]
            .as_array()
            .map(|e| e.iter().map(|t| serde_json::json!({ "task": t })).collect())
            .unwrap_or_default();
        let steps = job_steps(&rel);
        assert_eq!(
            dag_tasks.len() + error_tasks.len(),
            steps.len(),
            "{rel}: one task per step"
        );
        for (id, step) in steps.iter() {
            let in_dag = dag_tasks.iter().find(|e| e["task"]["id"] == id.as_str());
            let entry = in_dag
                .or_else(|| error_tasks.iter().find(|e| e["task"]["id"] == id.as_str()))
                .unwrap_or_else(|| panic!("{rel}: no task for {id}"));
            let mut task = &entry["task"];
            assert_eq!(task["id"], id.as_str(), "{rel}");
            // A fan-out over a list is a ForEach; one over what the run discovers is a task.
            let listed = step
                .get("for_each")
                .is_some_and(|f| f.get("discover").is_none());
            let selects = if listed {
                // A fan-out: a ForEach over the keys, whose one child runs an expansion.
                assert_eq!(task["type"], "io.kestra.plugin.core.flow.ForEach", "{rel}");
                assert!(task["values"].as_array().is_some_and(|v| !v.is_empty()));
                task = &task["tasks"][0];
                format!("'{id}[{{{{ taskrun.value }}}}]'")
            } else {
                id.clone()
            };
            assert_eq!(task["type"], "io.kestra.plugin.scripts.shell.Commands");
            let command = task["commands"][0].as_str().unwrap();
            assert!(
                command.starts_with(&format!("pbibatch run {rel} --select {selects} --kestra")),
                "{rel}: {command}"
            );
            let want: Vec<&str> = step
                .get("depends_on")
                .and_then(|d| d.as_array())
                .map(|a| a.iter().map(|v| v.as_str().unwrap()).collect())
                .unwrap_or_default();
            let got: Vec<&str> = entry
                .get("dependsOn")
                .and_then(|d| d.as_array())
                .map(|a| a.iter().map(|v| v.as_str().unwrap()).collect())
                .unwrap_or_default();
            if in_dag.is_some() {
                assert_eq!(got, want, "{rel}: dependsOn of {id}");
            } else {
                // `errors:` tasks run after the flow failed, whatever failed.
                assert_eq!(step["trigger"], "one_failed", "{rel}: {id}");
                assert!(got.is_empty(), "{rel}: {id}");
            }
            // Every env value is a Kestra secret reference, never a value.
            if let Some(env) = task.get("env").and_then(|e| e.as_object()) {
                for (name, value) in env {
                    assert_eq!(value, &format!("{{{{ secret('{name}') }}}}"), "{rel}");
                }
            }
            let timeout = task["timeout"].as_str().unwrap();
            assert!(timeout.starts_with("PT"), "{rel}: timeout {timeout}");
        }
    }
}

#[test]
fn export_kestra_process_runner_and_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("flow.yaml");
    let (code, stdout, stderr) = export(&[
        "jobs/order_list.yaml",
        "--process",
        "--cron",
        "@daily",
        "--var",
        "export=no",
        "--output",
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "");
    let yaml = std::fs::read_to_string(&out_file).unwrap();
    let flow: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
    let task = &flow["tasks"][0]["tasks"][0]["task"];
    assert_eq!(
        task["taskRunner"]["type"],
        "io.kestra.plugin.core.runner.Process"
    );
    assert!(task.get("containerImage").is_none());
    assert!(
        task["commands"][0]
            .as_str()
            .unwrap()
            .contains("--var export=no --kestra --retries 0 --state none"),
        "{yaml}"
    );
    assert_eq!(flow["triggers"][0]["cron"], "@daily");
}

#[test]
fn export_kestra_reports_what_the_dag_cannot_express() {
    let (code, stdout, stderr) =
        export(&["jobs/order_list.yaml", "--image", "ghcr.io/acme/pbibatch:1"]);
    assert_eq!(code, Some(0), "{stderr}");
    // tell_teams has `trigger: one_failed`: it runs under `errors:`, which the flow's
    // failure starts, not only its dependencies' (said on stderr and in the YAML comments).
    let needle = "step `tell_teams`: `trigger: one_failed` runs as a flow `errors:` task: when any task of the flow failed";
    assert!(stderr.contains(&format!("warning: {needle}")), "{stderr}");
    assert!(stdout.contains(&format!("# - {needle}")), "{stdout}");
    assert!(stdout.contains("containerImage: ghcr.io/acme/pbibatch:1"));
    assert!(!stderr.contains("pass --image"), "{stderr}");
}

#[test]
fn export_kestra_refuses_bad_arguments_and_invalid_jobs() {
    for args in [
        vec!["jobs/order_list.yaml", "--cron", "every night"],
        vec!["jobs/order_list.yaml", "--namespace", "Company Team"],
        vec!["jobs/order_list.yaml", "--image", ""],
        vec!["tests/fixtures/invalid/cycle.yaml"],
        vec!["no/such/job.yaml"],
    ] {
        let (code, stdout, stderr) = export(&args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_eq!(stdout, "", "{args:?}");
        assert!(!stderr.is_empty(), "{args:?}");
    }
    let (code, _, stderr) = export(&["jobs/order_list.yaml", "--image", "x", "--process"]);
    assert_eq!(code, Some(2), "{stderr}");
}

#[test]
fn export_kestra_rejects_an_invalid_cron_with_its_reason() {
    for (cron, reason) in [
        ("every night", "2 fields, expected five"),
        ("0 25 * * *", "hour `25` is out of range 0-23"),
        ("61 2 * * *", "minute `61` is out of range 0-59"),
        ("0 2 * * MON-XYZ", "day-of-week `XYZ` is not a number"),
        (
            "*/0 2 * * *",
            "minute step `/0` must be a number from 1 to 59",
        ),
    ] {
        let (code, stdout, stderr) = export(&["jobs/order_list.yaml", "--cron", cron]);
        assert_eq!(code, Some(2), "{cron}: {stderr}");
        assert_eq!(stdout, "", "{cron}");
        let flat = stderr
            .replace('│', " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            flat.contains(&format!("invalid --cron `{cron}`: {reason}")),
            "{cron}: {stderr}"
        );
    }
    for cron in [
        "0 2 * * *",
        "*/15 6-18 * JAN-MAR MON-FRI",
        "0 2 ? * 7",
        "@daily",
    ] {
        let (code, stdout, stderr) = export(&["jobs/order_list.yaml", "--cron", cron]);
        assert_eq!(code, Some(0), "{cron}: {stderr}");
        let flow: serde_json::Value = serde_saphyr::from_str(&stdout).unwrap();
        assert_eq!(flow["triggers"][0]["cron"], cron);
    }
}

#[test]
fn export_kestra_failure_webhook_is_an_errors_task_that_sends() {
    let (code, stdout, stderr) = export(&["jobs/order_list.yaml", "--process"]);
    assert_eq!(code, Some(0), "{stderr}");
    let flow: serde_json::Value = serde_saphyr::from_str(&stdout).unwrap();
    // Not in the Dag (which would never start it), but under the flow's `errors:`.
    let dag_ids: Vec<&str> = flow["tasks"][0]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task"]["id"].as_str().unwrap())
        .collect();
    assert!(!dag_ids.contains(&"tell_teams"), "{dag_ids:?}");
    let errors = flow["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{stdout}");
    assert_eq!(errors[0]["id"], "tell_teams");
    assert_eq!(errors[0]["retry"]["maxAttempts"], 2);
    assert!(errors[0]["retry"].get("maxAttempt").is_none());
    let command = errors[0]["commands"][0].as_str().unwrap();
    assert!(command.ends_with(" --unselected-as failed"), "{command}");

    // Run as Kestra would after a failure: the webhook is sent (the simulator's sink
    // answers), where without the flag its dependencies count as succeeded and it skips.
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir(work.path().join("jobs")).unwrap();
    std::fs::copy(
        repo().join("jobs/order_list.yaml"),
        work.path().join("jobs/order_list.yaml"),
    )
    .unwrap();
    let words: Vec<&str> = command.split(' ').collect();
    for (flags, status) in [
        (&words[1..], "succeeded"),
        (&words[1..words.len() - 2], "skipped"),
    ] {
        let out = pbibatch(work.path())
            .args(flags)
            .args(["--simulate", "--report", "r.json"])
            .output()
            .unwrap();
        let (o, e) = texts(&out);
        assert_eq!(out.status.code(), Some(0), "{flags:?}\n{o}{e}");
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(work.path().join("r.json")).unwrap())
                .unwrap();
        let step = &report["steps"][0];
        assert_eq!(step["id"], "tell_teams");
        assert_eq!(step["status"], status, "{flags:?}: {report}");
    }
}

#[test]
fn export_kestra_task_commands_run_under_simulate() {
    // Each task's command, as Kestra would run it in a working directory holding the job
    // file, succeeds against the simulator: the flags it passes exist and work together.
    let (code, stdout, stderr) = export(&["jobs/order_list.yaml", "--process"]);
    assert_eq!(code, Some(0), "{stderr}");
    let flow: serde_json::Value = serde_saphyr::from_str(&stdout).unwrap();
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir(work.path().join("jobs")).unwrap();
    std::fs::copy(
        repo().join("jobs/order_list.yaml"),
        work.path().join("jobs/order_list.yaml"),
    )
    .unwrap();
    for entry in flow["tasks"][0]["tasks"].as_array().unwrap() {
        let command = entry["task"]["commands"][0].as_str().unwrap();
        let words: Vec<&str> = command.split(' ').collect();
        assert_eq!(words[0], "pbibatch", "{command}");
        let out = pbibatch(work.path())
            .args(&words[1..])
            .arg("--simulate")
            .output()
            .unwrap();
        let (o, e) = texts(&out);
        assert_eq!(out.status.code(), Some(0), "{command}\n{o}{e}");
    }
}

#[test]
fn export_kestra_maps_ids_allow_failure_condition_env_and_reports_pools() {
    let dir = tempfile::tempdir().unwrap();
    let job = r#"
version: 1
name: _edge
concurrency: 2
pools: { cap: 1 }
connections:
  default: { access_token: "${env.TOKEN}" }
steps:
  _first:
    type: dataset
    workspace: W
    dataset: D
    pool: cap
    continue_on_error: true
    retries: { count: 1, backoff: 1m, max_backoff: 1m }
    timeout: 90s
  second:
    type: report
    workspace: W
    report: R
    export: { format: PDF, path: /srv/out/r.pdf }
    depends_on: [_first]
    pool: cap
    when: "env.REGION == 'eu'"
"#;
    std::fs::write(dir.path().join("edge.yaml"), job).unwrap();
    let out = pbibatch(dir.path())
        .args(["export", "kestra", "edge.yaml"])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let flow: serde_json::Value = serde_saphyr::from_str(&stdout).unwrap();
    assert_eq!(flow["id"], "job_edge");
    let dag = &flow["tasks"][0];
    assert_eq!(dag["concurrent"], 2);
    let first = &dag["tasks"][0]["task"];
    assert_eq!(
        first["id"], "step_first",
        "Kestra ids start with a letter or digit"
    );
    assert_eq!(first["allowFailure"], true);
    assert_eq!(first["timeout"], "PT6M30S");
    assert_eq!(
        first["retry"],
        serde_json::json!({"type": "constant", "maxAttempts": 2, "interval": "PT1M"})
    );
    assert!(
        first["commands"][0]
            .as_str()
            .unwrap()
            .contains("--select _first "),
        "the command selects the pbibatch step id"
    );
    assert_eq!(
        first["env"],
        serde_json::json!({"TOKEN": "{{ secret('TOKEN') }}"})
    );
    let second = &dag["tasks"][1];
    assert_eq!(second["dependsOn"], serde_json::json!(["step_first"]));
    assert_eq!(
        second["task"]["env"],
        serde_json::json!({
            "TOKEN": "{{ secret('TOKEN') }}",
            "REGION": "{{ secret('REGION') }}",
        }),
        "env read by `when:` is passed too"
    );
    assert!(second["task"].get("outputFiles").is_none());
    assert!(
        second["task"].get("retry").is_none(),
        "retries: 0 -> no retry"
    );
    for needle in [
        "warning: pool `cap` (limit 1, 2 steps) is not enforced",
        "warning: step `second`: the export is written to /srv/out/r.pdf",
    ] {
        assert!(stderr.contains(needle), "{needle}\n{stderr}");
    }
    assert!(
        !stderr.contains("when its `when:`"),
        "second has no dependents: {stderr}"
    );
}

#[test]
fn export_kestra_for_each_runs_no_more_at_once_than_its_pool_allows() {
    // The expansions of a fan-out share the template's pool; the ForEach is where Kestra can
    // hold them to it (`concurrencyLimit`), so the pool is enforced, not just reported.
    let dir = tempfile::tempdir().unwrap();
    let job = r#"
version: 1
name: pooled
concurrency: 8
pools: { premium: 2, other: 1 }
steps:
  models:
    type: dataset
    workspace: W
    dataset: "Sales ${each.value}"
    for_each: [EU, US, APAC, LATAM]
    pool: premium
  books:
    type: report
    workspace: W
    report: Book
    export: { format: PDF, path: "out/${each.key}.pdf" }
    for_each: [EU, US]
    depends_on: [models]
  a: { type: dataset, workspace: W, dataset: A, pool: other, depends_on: [books] }
  b: { type: dataset, workspace: W, dataset: B, pool: other, depends_on: [books] }
"#;
    std::fs::write(dir.path().join("pooled.yaml"), job).unwrap();
    let out = pbibatch(dir.path())
        .args(["export", "kestra", "pooled.yaml"])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let flow: serde_json::Value = serde_saphyr::from_str(&stdout).unwrap();
    let tasks = flow["tasks"][0]["tasks"].as_array().unwrap();
    let models = &tasks[0]["task"];
    assert_eq!(models["type"], "io.kestra.plugin.core.flow.ForEach");
    assert_eq!(models["concurrencyLimit"], 2, "the pool's limit");
    // Without a pool, the job's concurrency.
    assert_eq!(tasks[1]["task"]["concurrencyLimit"], 8);
    // The ForEach enforces `premium`; `other` spans two tasks and is still reported.
    assert!(
        !stderr.contains("pool `premium`"),
        "the ForEach enforces it: {stderr}"
    );
    assert!(
        stderr.contains("warning: pool `other` (limit 1, 2 steps) is not enforced"),
        "{stderr}"
    );
}

#[test]
fn export_kestra_task_ids_stay_unique_next_to_a_for_each_child() {
    // The ForEach child is `<step>_each`; a step of that name must not give a second task
    // with the same id (Kestra refuses a flow whose task ids repeat).
    let dir = tempfile::tempdir().unwrap();
    let job = r#"
version: 1
name: clash
steps:
  models:
    type: dataset
    workspace: W
    dataset: "Sales ${each.value}"
    for_each: [EU, US]
  models_each: { type: dataset, workspace: W, dataset: X, depends_on: [models] }
"#;
    std::fs::write(dir.path().join("clash.yaml"), job).unwrap();
    let out = pbibatch(dir.path())
        .args(["export", "kestra", "clash.yaml"])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let flow: serde_json::Value = serde_saphyr::from_str(&stdout).unwrap();
    fn ids(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::String(id)) = m.get("id")
                    && m.contains_key("type")
                {
                    out.push(id.clone());
                }
                m.values().for_each(|v| ids(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| ids(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    ids(&flow["tasks"], &mut all);
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(all.len(), unique.len(), "{all:?}");
    assert!(all.contains(&"models_each".to_string()), "{all:?}");
}

#[test]
fn export_kestra_output_files_are_literal_paths_not_patterns() {
    // Kestra reads `outputFiles` as glob expressions (and renders them with Pebble): a path
    // with `[`, `{`, `*` or `?` would match another file or none, so those are escaped.
    let dir = tempfile::tempdir().unwrap();
    let job = r#"
version: 1
name: globs
steps:
  book:
    type: report
    workspace: W
    report: Book
    export: { format: PDF, path: "out/book [final] {v2}.pdf" }
  books:
    type: report
    workspace: W
    report: Book
    for_each: ["EU*", "US?"]
    export: { format: PDF, path: "out/book_${each.value}.pdf" }
"#;
    std::fs::write(dir.path().join("globs.yaml"), job).unwrap();
    let out = pbibatch(dir.path())
        .args(["export", "kestra", "globs.yaml"])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let flow: serde_json::Value = serde_saphyr::from_str(&stdout).unwrap();
    let tasks = &flow["tasks"][0]["tasks"];
    assert_eq!(
        tasks[0]["task"]["outputFiles"],
        serde_json::json!([r"out/book \[final\] \{v2\}.pdf"])
    );
    assert_eq!(
        tasks[1]["task"]["tasks"][0]["outputFiles"],
        serde_json::json!([r"out/book_EU\*.pdf", r"out/book_US\?.pdf"])
    );
}

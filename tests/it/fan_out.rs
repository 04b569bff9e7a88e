//! `for_each`: one step per value with the id `step[key]`, each with its own attempts,
//! status and outputs, run end to end against the simulator over loopback.

use std::net::SocketAddr;
use std::path::Path;

use pbibatch::sim::{Profile, SimServer};
use serde_json::Value;

use crate::common::{pbibatch, pbibatch_against, texts};

const JOB: &str = r#"
version: 1
name: fan_out
vars: { regions: "emea,amer" }
defaults: { poll_interval: 1s, retry_backoff: 1s }
steps:
  models:
    type: dataset
    workspace: Sales
    dataset: "Sales ${each.value}"
    for_each: [EU, US]
    retries: 1
  books:
    type: report
    workspace: Sales
    report: Book
    export: { format: PDF, path: "out/book_${each.key}.pdf" }
    for_each: "${vars.regions}"
    depends_on: [models]
  tell:
    type: webhook
    url: http://127.0.0.1:9/unused
    depends_on: [books]
"#;

async fn simulator(profile: &str) -> SimServer {
    let profile = Profile::from_yaml(profile).unwrap();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    pbibatch::sim::start(profile, addr).await.unwrap()
}

const PROFILE: &str = "defaults: { duration: 200ms }
workspaces:
  Sales:
    datasets:
      Sales EU: {}
      Sales US: { outcomes: [fail, succeed] }
    reports:
      Book: {}
hooks:
  tell: {}
";

/// `pbibatch ARGS` in `dir` against `sim`, with the job's webhook pointed at the sim.
async fn run_against(
    sim: &SimServer,
    dir: &Path,
    job: &str,
    args: &[&str],
) -> (Option<i32>, String, String) {
    let job = job.replace("http://127.0.0.1:9/unused", &sim.hook_url("tell"));
    std::fs::write(dir.join("job.yaml"), job).unwrap();
    let mut cmd = pbibatch_against(dir, sim);
    cmd.args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = texts(&out);
    (out.status.code(), stdout, stderr)
}

fn refresh_posts(sim: &SimServer, workspace: &str, dataset: &str) -> usize {
    let (ws, id) = sim.ids(workspace, dataset).unwrap();
    let path = format!("/v1.0/myorg/groups/{ws}/datasets/{id}/refreshes");
    sim.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == path)
        .count()
}

#[tokio::test]
async fn each_value_is_its_own_step_in_every_output() {
    let sim = simulator(PROFILE).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, stdout, stderr) = run_against(
        &sim,
        d,
        JOB,
        &[
            "run",
            "job.yaml",
            "--state",
            "none",
            "--report",
            "r.json",
            "--junit",
            "j.xml",
            "--summary",
            "s.md",
            "--kestra",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");

    // Each expansion is a step of the report, in file order, with its own attempts.
    let report: Value = serde_json::from_slice(&std::fs::read(d.join("r.json")).unwrap()).unwrap();
    let steps: Vec<(&str, &str, usize)> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap(),
                s["status"].as_str().unwrap(),
                s["attempts"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            ("models[EU]", "succeeded", 1),
            ("models[US]", "succeeded", 2),
            ("books[emea]", "succeeded", 1),
            ("books[amer]", "succeeded", 1),
            ("tell", "succeeded", 1),
        ]
    );
    assert_eq!(report["steps"][1]["resource"]["name"], "Sales US");
    // The service saw one refresh per attempt of each model.
    assert_eq!(refresh_posts(&sim, "Sales", "Sales EU"), 1);
    assert_eq!(refresh_posts(&sim, "Sales", "Sales US"), 2);
    // File names templated from the value.
    assert!(d.join("out/book_emea.pdf").is_file());
    assert!(d.join("out/book_amer.pdf").is_file());

    let junit = std::fs::read_to_string(d.join("j.xml")).unwrap();
    for id in ["models[EU]", "models[US]", "books[emea]", "books[amer]"] {
        assert!(junit.contains(&format!("name=\"{id}\"")), "{id} in {junit}");
    }
    let summary = std::fs::read_to_string(d.join("s.md")).unwrap();
    for id in ["models[EU]", "models[US]", "books[emea]", "books[amer]"] {
        assert!(summary.contains(id), "{id} in {summary}");
    }
    assert!(stdout.contains("models[US]"), "kestra lines: {stdout}");
    sim.shutdown().await;
}

#[tokio::test]
async fn dependents_wait_for_every_expansion_or_any_by_trigger_rule() {
    let profile = "defaults: { duration: 100ms }
workspaces:
  Sales:
    datasets:
      Sales EU: {}
      Sales US: { outcomes: [fail] }
    reports:
      Book: {}
hooks:
  tell: {}
";
    let sim = simulator(profile).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let job = JOB.replace("    retries: 1\n", "    retries: 0\n");
    let (code, stdout, stderr) = run_against(
        &sim,
        d,
        &job,
        &["run", "job.yaml", "--state", "none", "--report", "r.json"],
    )
    .await;
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let report: Value = serde_json::from_slice(&std::fs::read(d.join("r.json")).unwrap()).unwrap();
    let status = |i: usize| report["steps"][i]["status"].as_str().unwrap().to_string();
    assert_eq!(status(0), "succeeded");
    assert_eq!(status(1), "failed");
    // all_success: one failed expansion is enough to hold the dependents back.
    assert_eq!(status(2), "upstream_failed");
    assert_eq!(status(3), "upstream_failed");

    // one_success: one succeeded expansion is enough.
    let job = job.replace(
        "    depends_on: [models]\n",
        "    depends_on: [models]\n    trigger: one_success\n",
    );
    let (code, stdout, stderr) = run_against(
        &sim,
        d,
        &job,
        &["run", "job.yaml", "--state", "none", "--report", "r.json"],
    )
    .await;
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let report: Value = serde_json::from_slice(&std::fs::read(d.join("r.json")).unwrap()).unwrap();
    assert_eq!(report["steps"][2]["status"], "succeeded", "{report}");
    assert_eq!(report["steps"][3]["status"], "succeeded", "{report}");
    sim.shutdown().await;
}

fn plan_ids(dir: &Path, args: &[&str]) -> Result<Vec<String>, String> {
    let out = pbibatch(dir)
        .args(["plan", "job.yaml", "--format", "json"])
        .args(args)
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    if out.status.code() != Some(0) {
        return Err(stderr);
    }
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    Ok(plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect())
}

#[test]
fn select_takes_a_fan_out_whole_or_one_expansion() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("job.yaml"), JOB).unwrap();
    assert_eq!(
        plan_ids(d, &["--select", "models"]).unwrap(),
        ["models[EU]", "models[US]"]
    );
    assert_eq!(
        plan_ids(d, &["--select", "books[amer]"]).unwrap(),
        ["books[amer]"]
    );
    assert_eq!(
        plan_ids(d, &["--select", "+books[amer]"]).unwrap(),
        ["models[EU]", "models[US]", "books[amer]"]
    );
    assert_eq!(
        plan_ids(d, &["--select", "books+", "--exclude", "books[emea]"]).unwrap(),
        ["books[amer]", "tell"]
    );
    // `--var` gives the list of a `"${vars.NAME}"` fan-out.
    assert_eq!(
        plan_ids(
            d,
            &["--select", "books", "--var", "regions=apac, emea , latam"]
        )
        .unwrap(),
        ["books[apac]", "books[emea]", "books[latam]"]
    );
    let err = plan_ids(d, &["--select", "books[amr]"]).unwrap_err();
    assert!(
        err.contains("selector `books[amr]` matches no step (did you mean `books[amer]`?)"),
        "{err}"
    );
}

#[test]
fn values_from_a_file_next_to_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("jobs")).unwrap();
    std::fs::write(
        d.join("jobs/regions.txt"),
        "# one region per line\nNorth America\n\nEurope\n",
    )
    .unwrap();
    let job = JOB.replace(
        r#"for_each: "${vars.regions}""#,
        "for_each: { file: regions.txt }",
    );
    std::fs::write(d.join("jobs/job.yaml"), job).unwrap();
    let out = pbibatch(d)
        .args(["plan", "jobs/job.yaml", "--select", "books"])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("books[North_America] (report)"), "{stdout}");
    assert!(
        stdout.contains("export: PDF -> out/book_North_America.pdf"),
        "{stdout}"
    );
    assert!(stdout.contains("books[Europe] (report)"), "{stdout}");
}

#[test]
fn expansions_that_export_to_one_file_are_refused() {
    // Each export of a burst would overwrite the one before: one file for N exports.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let job = JOB.replace("out/book_${each.key}.pdf", "out/book.pdf");
    std::fs::write(d.join("job.yaml"), &job).unwrap();
    let out = pbibatch(d)
        .args(["validate", "job.yaml", "--format", "short"])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "job.yaml:17:34: error: `books[emea]` and `books[amer]` export to the same file `out/book.pdf`: each would overwrite the other (put `${each.key}` in the path: one file per value) [pbibatch::job::shared_output]"
        ),
        "{stdout}{stderr}"
    );
    // A path that uses the value is fine.
    let job = JOB.replace("out/book_${each.key}.pdf", "out/book_${each.value}.pdf");
    std::fs::write(d.join("job.yaml"), &job).unwrap();
    let out = pbibatch(d)
        .args(["validate", "job.yaml", "--format", "short"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{:?}", texts(&out));
}

const DISCOVER_JOB: &str = r#"
version: 1
name: discover_fan_out
defaults: { poll_interval: 1s }
steps:
  core: { type: dataset, workspace: Sales, dataset: Sales Core }
  others:
    type: dataset
    workspace: Sales
    dataset: "${each.value}"
    for_each:
      discover: { workspace: Sales, items: semantic_models, name: "sales*", exclude_named: true }
    depends_on: [core]
  tell:
    type: webhook
    url: http://127.0.0.1:9/unused
    depends_on: [others]
"#;

const DISCOVER_PROFILE: &str = "defaults: { duration: 100ms }
workspaces:
  Sales:
    datasets:
      Sales Core: {}
      Sales EU: {}
      Finance: {}
      Sales Live: { refreshable: false }
      Sales US: {}
hooks:
  tell: {}
";

fn report_ids(dir: &Path) -> Vec<(String, String)> {
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.join("r.json")).unwrap()).unwrap();
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn discovery_fans_out_over_the_refreshable_models_the_job_does_not_name() {
    let sim = simulator(DISCOVER_PROFILE).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, stdout, stderr) = run_against(
        &sim,
        d,
        DISCOVER_JOB,
        &[
            "run", "job.yaml", "--state", "none", "--report", "r.json", "--select", "others+",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let ids: Vec<(String, String)> = report_ids(d);
    let want: Vec<(String, String)> = [
        ("others[Sales_EU]", "succeeded"),
        ("others[Sales_US]", "succeeded"),
        ("tell", "succeeded"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(ids, want);
    // Not the excluded, the live-connection nor the non-matching model.
    assert_eq!(refresh_posts(&sim, "Sales", "Sales Core"), 0);
    assert_eq!(refresh_posts(&sim, "Sales", "Sales Live"), 0);
    assert_eq!(refresh_posts(&sim, "Sales", "Finance"), 0);
    assert_eq!(refresh_posts(&sim, "Sales", "Sales EU"), 1);
    sim.shutdown().await;

    // Before a run, the step is one template.
    let out = pbibatch(d).args(["plan", "job.yaml"]).output().unwrap();
    let (stdout, _) = texts(&out);
    assert!(
        stdout.contains("for_each: the refreshable semantic models of Sales named like `sales*` that no other step names, found when the run starts"),
        "{stdout}"
    );
}

#[tokio::test]
async fn selecting_a_discovered_fan_out_that_found_nothing_runs_nothing() {
    // What the Kestra export's task for a `discover` fan-out runs (`--select others`): a
    // workspace without a matching model is no error, as for a run of the whole job.
    let sim = simulator(
        &DISCOVER_PROFILE
            .replace("Sales EU: {}", "")
            .replace("Sales US: {}", ""),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, stdout, stderr) = run_against(
        &sim,
        d,
        DISCOVER_JOB,
        &[
            "run", "job.yaml", "--state", "none", "--report", "r.json", "--select", "others",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(!stderr.contains("--exclude"), "{stderr}");
    assert_eq!(report_ids(d), Vec::<(String, String)>::new());
    assert_eq!(refresh_posts(&sim, "Sales", "Sales Core"), 0);

    // `others+`: what depends on the fan-out still runs (it waits for no expansion).
    let (code, stdout, stderr) = run_against(
        &sim,
        d,
        DISCOVER_JOB,
        &[
            "run", "job.yaml", "--state", "none", "--report", "r.json", "--select", "others+",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(
        report_ids(d),
        [("tell".to_string(), "succeeded".to_string())]
    );
    sim.shutdown().await;

    // Before the run, a key of a discovered fan-out cannot be known yet.
    std::fs::write(d.join("job.yaml"), DISCOVER_JOB).unwrap();
    let out = pbibatch(d)
        .args(["plan", "job.yaml", "--select", "others[Sales_EU]"])
        .output()
        .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    // miette wraps the message: compare it unwrapped.
    let text = stderr
        .lines()
        .map(|l| l.trim_start_matches(['×', '│', ' ']))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        text.contains("selector `others[Sales_EU]` matches no step (`others` fans out over what discovery finds when the run starts: `run --select 'others[Sales_EU]'` selects it then)"),
        "{stderr}"
    );
}

#[test]
fn a_resumed_run_keeps_the_expansion_its_first_run_discovered() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("job.yaml"), DISCOVER_JOB).unwrap();
    std::fs::write(
        d.join("first.yaml"),
        DISCOVER_PROFILE.replace("Sales EU: {}", "Sales EU: { outcomes: [fail] }"),
    )
    .unwrap();
    // By the resume, the workspace holds one more matching model: it must not join.
    std::fs::write(
        d.join("later.yaml"),
        DISCOVER_PROFILE.replace("Finance: {}", "Finance: {}\n      Sales NEW: {}"),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = pbibatch(d)
            .args([
                "run",
                "job.yaml",
                "--simulate",
                "--state",
                "state.db",
                "--report",
                "r.json",
            ])
            .args(args)
            .output()
            .unwrap();
        let (stdout, stderr) = texts(&out);
        (out.status.code(), format!("{stdout}{stderr}"))
    };
    let (code, out) = run(&["--sim-profile", "first.yaml"]);
    assert_eq!(code, Some(1), "{out}");
    let first = report_ids(d);
    assert!(
        first.contains(&("others[Sales_EU]".into(), "failed".into())),
        "{first:?}"
    );
    assert!(
        first.contains(&("others[Sales_US]".into(), "succeeded".into())),
        "{first:?}"
    );

    let (code, out) = run(&["--sim-profile", "later.yaml", "--resume", "last"]);
    assert_eq!(code, Some(0), "{out}");
    let ids: Vec<String> = report_ids(d).into_iter().map(|(id, _)| id).collect();
    assert_eq!(
        ids,
        ["core", "others[Sales_EU]", "others[Sales_US]", "tell"]
    );

    // A new run (no resume) discovers again, and finds the new model.
    let (code, out) = run(&["--sim-profile", "later.yaml"]);
    assert_eq!(code, Some(0), "{out}");
    let ids: Vec<String> = report_ids(d).into_iter().map(|(id, _)| id).collect();
    assert_eq!(
        ids,
        [
            "core",
            "others[Sales_EU]",
            "others[Sales_NEW]",
            "others[Sales_US]",
            "tell"
        ]
    );
}

/// Issue 18's "done when" job (examples/after_the_refresh.yaml): refresh a model, fan out over
/// the workspace's other models, burst the report per region with RLS, post a message; every
/// output shows the fan-out.
#[test]
fn after_the_refresh_every_output_shows_the_fan_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let repo = crate::common::repo();
    let out = pbibatch(d)
        .arg("run")
        .arg(repo.join("examples/after_the_refresh.yaml"))
        .arg("--sim-profile")
        .arg(repo.join("examples/profiles/after_the_refresh.yaml"))
        .args([
            "--simulate",
            "--state",
            "none",
            "--report",
            "r.json",
            "--junit",
            "j.xml",
        ])
        .args(["--summary", "s.md", "--kestra"])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let expansions = [
        "other_models[Inventory]",
        "other_models[Returns]",
        "region_books[West]",
        "region_books[East]",
    ];
    let ids: Vec<String> = report_ids(d).into_iter().map(|(id, _)| id).collect();
    assert_eq!(
        ids,
        [
            "core_model",
            "core_model_loaded",
            "other_models[Inventory]",
            "other_models[Returns]",
            "region_books[West]",
            "region_books[East]",
            "tell_team"
        ]
    );
    let junit = std::fs::read_to_string(d.join("j.xml")).unwrap();
    let summary = std::fs::read_to_string(d.join("s.md")).unwrap();
    for id in expansions {
        assert!(junit.contains(&format!("name=\"{id}\"")), "{id}: {junit}");
        assert!(summary.contains(id), "{id}: {summary}");
        assert!(stdout.contains(id), "{id} in the Kestra lines: {stdout}");
    }
    assert!(d.join("out/sales_book_West.pdf").is_file());
    assert!(d.join("out/sales_book_East.pdf").is_file());

    // The data check: its assertion and what the model answered, in every output.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("r.json")).unwrap()).unwrap();
    let steps = report["steps"].as_array().unwrap();
    let step = |id: &str| steps.iter().find(|s| s["id"] == id).unwrap().clone();
    let check = step("core_model_loaded");
    assert_eq!(check["check"]["passed"], true, "{check}");
    assert_eq!(check["check"]["assertion"], "[n] >= 1", "{check}");
    assert_eq!(check["check"]["observed"], "[n] = 18250", "{check}");
    assert!(
        junit.contains("name=\"core_model_loaded\" classname=\"after_the_refresh.data_check\""),
        "{junit}"
    );
    assert!(summary.contains("### Checks"), "{summary}");
    assert!(summary.contains("`core_model_loaded`"), "{summary}");
    assert!(
        stdout.contains(r#""checks":{"core_model_loaded":{"result":"passed","assertion":"[n] >= 1","observed":"[n] = 18250"}}"#),
        "the Kestra outputs: {stdout}"
    );
    // The Teams card: the profile's sink is a Teams Workflows webhook, which refuses anything
    // but an Adaptive Card, so the step succeeds only if the card has the right shape.
    assert_eq!(step("tell_team")["status"], "succeeded", "{report}");

    // Expected durations: the core model's is stated (and it was on time); every expansion
    // has `auto`, which has no past runs to learn from on a first run.
    let core = step("core_model");
    assert_eq!(core["expected_duration"]["secs"], 2700.0, "{core}");
    assert_eq!(core["expected_duration"]["on_overrun"], "fail", "{core}");
    assert_eq!(core.get("overran"), None, "{core}");
    for id in expansions {
        let e = &step(id)["expected_duration"];
        assert_eq!(e["from"], "none", "{id}: {e}");
    }
    assert!(
        junit.contains(r#"<property name="expected_duration_secs" value="2700"/>"#),
        "{junit}"
    );

    // The Kestra flow: a ForEach for the regions, one task (and a note) for the discovery.
    let out = pbibatch(&repo)
        .args(["export", "kestra", "examples/after_the_refresh.yaml"])
        .output()
        .unwrap();
    let (flow, notes) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{notes}");
    assert!(
        flow.contains("type: io.kestra.plugin.core.flow.ForEach"),
        "{flow}"
    );
    assert!(
        flow.contains("--select 'region_books[{{ taskrun.value }}]'"),
        "{flow}"
    );
    assert!(flow.contains("--select other_models --kestra"), "{flow}");
    assert!(
        notes
            .contains("`for_each: discover` finds the semantic models of Sales when the task runs"),
        "{notes}"
    );
}

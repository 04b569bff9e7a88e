//! `pbibatch run` end to end: the real binary against its in-process simulator (`--simulate`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

use crate::common::{pbibatch, repo, texts};

fn read_report(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("r.json")).expect("report written");
    serde_json::from_str(&text).expect("report is JSON")
}

fn step<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("step {id} in report"))
}

/// A small job with fast retries, written into `dir`.
fn write_job(dir: &Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("job.yaml");
    std::fs::write(&path, body).unwrap();
    path
}

/// `pbibatch run JOB --simulate --sim-profile profile.yaml --report r.json` in `dir`.
fn run_simulated(dir: &Path, job: &Path) -> std::process::Output {
    pbibatch(dir)
        .args([
            "run",
            "--simulate",
            "--sim-profile",
            "profile.yaml",
            "--report",
            "r.json",
        ])
        .arg(job)
        .output()
        .unwrap()
}

const MODEL_JOB: &str = r#"
version: 1
name: model_only
defaults: { retries: 0, retry_backoff: 1s, poll_interval: 1s }
steps:
  flow:
    type: sas_flow
    url: ${env.FLOW_URL}
  model:
    type: dataset
    workspace: Sales
    dataset: Revenue
    depends_on: [flow]
  pdf:
    type: report
    workspace: Sales
    report: Revenue Book
    export: { format: PDF, path: out/book.pdf }
    depends_on: [model]
  alert:
    type: webhook
    url: ${env.HOOK_URL}
    depends_on: [flow, model, pdf]
    trigger: one_failed
"#;

#[test]
fn order_list_runs_against_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let out = pbibatch(dir.path())
        .args(["run", "--simulate", "--report", "r.json"])
        .arg(repo().join("jobs/order_list.yaml"))
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let report = read_report(dir.path());
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["counts"]["succeeded"], 3);
    assert_eq!(report["counts"]["skipped"], 1);
    assert_eq!(step(&report, "tell_teams")["status"], "skipped");
    let pdf = std::fs::read(dir.path().join("out/order_book.pdf")).unwrap();
    assert!(pdf.starts_with(b"%PDF"), "a PDF was downloaded");
    // The SAS signature never shows: every `sig=` is followed by `***`.
    for text in [
        &stdout,
        &stderr,
        &std::fs::read_to_string(dir.path().join("r.json")).unwrap(),
    ] {
        for (i, _) in text.match_indices("sig=") {
            assert!(
                text[i..].starts_with("sig=***"),
                "leaked signature in: {text}"
            );
        }
    }
}

#[test]
fn a_failed_model_fails_the_run_and_fires_the_one_failed_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let job = write_job(dir.path(), MODEL_JOB);
    std::fs::write(
        dir.path().join("profile.yaml"),
        "workspaces:\n  Sales:\n    datasets:\n      Revenue: { duration: 0s, outcomes: [{fail: {code: ModelRefreshFailed_CredentialsNotSpecified, message: The credentials provided for the SQL source are invalid}}] }\n",
    )
    .unwrap();
    let out = run_simulated(dir.path(), &job);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let report = read_report(dir.path());
    assert_eq!(report["status"], "failed");
    let model = step(&report, "model");
    assert_eq!(model["status"], "failed");
    let error = model["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("ModelRefreshFailed_CredentialsNotSpecified"),
        "the remote error code is in the report: {error}"
    );
    assert_eq!(step(&report, "pdf")["status"], "upstream_failed");
    assert_eq!(step(&report, "alert")["status"], "succeeded");
    assert!(
        stderr.contains("ModelRefreshFailed_CredentialsNotSpecified"),
        "{stderr}"
    );
}

#[test]
fn a_failed_attempt_is_retried_after_its_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let job = write_job(dir.path(), &MODEL_JOB.replace("retries: 0", "retries: 1"));
    std::fs::write(
        dir.path().join("profile.yaml"),
        "defaults: { duration: 0s }\nworkspaces:\n  Sales:\n    datasets:\n      Revenue: { outcomes: [fail, succeed] }\n",
    )
    .unwrap();
    let out = run_simulated(dir.path(), &job);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report = read_report(dir.path());
    let attempts = step(&report, "model")["attempts"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["status"], "failed");
    assert_eq!(attempts[1]["status"], "succeeded");
}

#[test]
fn selection_runs_only_the_selected_steps() {
    let dir = tempfile::tempdir().unwrap();
    let out = pbibatch(dir.path())
        .args([
            "run",
            "--simulate",
            "--select",
            "order_list_model",
            "--report",
            "r.json",
        ])
        .arg(repo().join("jobs/order_list.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", texts(&out).1);
    let report = read_report(dir.path());
    let ids: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["order_list_model"]);
}

#[test]
fn missing_environment_is_reported_at_once_and_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = pbibatch(dir.path())
        .args(["run", "--report", "r.json"])
        .arg(repo().join("jobs/order_list.yaml"))
        .env_remove("ORDER_LIST_FLOW_URL")
        .env_remove("TEAMS_WEBHOOK_URL")
        .output()
        .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for name in [
        "ORDER_LIST_FLOW_URL",
        "TEAMS_WEBHOOK_URL",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
    ] {
        assert!(stderr.contains(name), "{name} is named in: {stderr}");
    }
    assert!(!dir.path().join("r.json").exists(), "nothing ran");
}

#[test]
fn plain_http_to_a_remote_host_is_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let job = write_job(
        dir.path(),
        "version: 1\nname: hook\nsteps:\n  tell:\n    type: webhook\n    url: ${env.HOOK_URL}\n",
    );
    let out = pbibatch(dir.path())
        .args(["run", "--report", "r.json"])
        .arg(&job)
        .env("PBIBATCH_ACCESS_TOKEN", "tok")
        .env(
            "HOOK_URL",
            "http://hooks.example.com/notify?code=SECRETCODE",
        )
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("http://hooks.example.com"), "{stderr}");
    assert!(!stderr.contains("SECRETCODE") && !stdout.contains("SECRETCODE"));
    assert!(!dir.path().join("r.json").exists(), "nothing ran");
}

#[test]
fn dry_run_shows_the_plan_and_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = pbibatch(dir.path())
        .args(["run", "--dry-run", "--simulate"])
        .arg(repo().join("jobs/order_list.yaml"))
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let order: Vec<usize> = [
        "master_order_list",
        "order_list_model",
        "order_book_pdf",
        "tell_teams",
    ]
    .iter()
    .map(|id| {
        stdout
            .find(id)
            .unwrap_or_else(|| panic!("{id} in {stdout}"))
    })
    .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "in dependency order: {stdout}"
    );
    assert!(!dir.path().join("out").exists());
}

#[test]
fn sigterm_cancels_in_flight_work_writes_the_report_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let job = write_job(dir.path(), MODEL_JOB);
    std::fs::write(
        dir.path().join("profile.yaml"),
        "workspaces:\n  Sales:\n    datasets:\n      Revenue: { never_ends: true }\n",
    )
    .unwrap();
    let mut child = pbibatch(dir.path())
        .args([
            "run",
            "--simulate",
            "--sim-profile",
            "profile.yaml",
            "--report",
            "r.json",
        ])
        .arg(&job)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    // Wait until the model's refresh is running remotely, then send SIGTERM.
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("model: remote status") {
            break;
        }
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for line in lines {
        seen.push_str(&line.unwrap());
        seen.push('\n');
    }
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(130), "{seen}");
    let report = read_report(dir.path());
    assert_eq!(report["status"], "cancelled");
    assert_eq!(step(&report, "model")["status"], "cancelled");
    assert_eq!(step(&report, "pdf")["status"], "cancelled");
    assert_eq!(step(&report, "flow")["status"], "succeeded");
}

#[test]
fn json_log_lines_carry_run_step_attempt_and_remote_ids() {
    let dir = tempfile::tempdir().unwrap();
    let out = pbibatch(dir.path())
        .args(["--log-format", "json", "run", "--simulate"])
        .arg(repo().join("jobs/order_list.yaml"))
        .output()
        .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let records: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let run_id = records[0]["run_id"].as_str().unwrap().to_string();
    assert!(records.iter().all(|r| r["run_id"] == run_id.as_str()));
    let model_polls: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["event"] == "step_progress" && r["step"] == "order_list_model")
        .collect();
    assert!(!model_polls.is_empty(), "{stderr}");
    assert!(
        model_polls
            .iter()
            .all(|r| r["attempt"] == 1 && r["remote_id"].is_string())
    );
    assert_eq!(records.last().unwrap()["event"], "run_finished");
    assert!(
        !stderr.contains("sig=")
            || stderr.matches("sig=").count() == stderr.matches("sig=***").count()
    );
}

#[test]
fn out_of_bounds_concurrency_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for n in ["0", "10001"] {
        let out = pbibatch(dir.path())
            .args(["run", "--simulate", "--concurrency", n])
            .arg(repo().join("jobs/order_list.yaml"))
            .output()
            .unwrap();
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("between 1 and 10000"), "{stderr}");
    }
}

#[test]
fn refused_credentials_fail_every_step_at_once_without_retries() {
    let dir = tempfile::tempdir().unwrap();
    let job = write_job(
        dir.path(),
        r#"
version: 1
name: expired
defaults: { retries: 2, retry_backoff: 30s, poll_interval: 1s }
steps:
  model: { type: dataset, workspace: Sales, dataset: Revenue }
  flows: { type: dataflow, workspace: Sales, dataflow: Raw }
"#,
    );
    std::fs::write(
        dir.path().join("profile.yaml"),
        "credentials: { client_secret_expired: true }\ndefaults: { duration: 0s }\n",
    )
    .unwrap();
    let out = run_simulated(dir.path(), &job);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let report = read_report(dir.path());
    // One attempt each: no 30 s backoff was waited for an answer that cannot change.
    for id in ["model", "flows"] {
        let s = step(&report, id);
        assert_eq!(s["status"], "failed", "{s}");
        assert_eq!(s["attempts"].as_array().unwrap().len(), 1, "{s}");
        let error = s["error"].as_str().unwrap();
        assert!(error.contains("AADSTS7000222"), "{error}");
        assert!(
            error.ends_with("(not retried: another attempt would fail the same way)"),
            "{error}"
        );
    }
}

#[test]
fn a_fresh_dataflow_is_skipped_and_its_dependents_still_run() {
    // `warm` refreshes the dataflow; `df` then finds it fresh and skips its trigger. The model
    // below `df` runs under the default trigger rule, and a condition reads the skip.
    let dir = tempfile::tempdir().unwrap();
    let job = write_job(
        dir.path(),
        r#"
version: 1
name: fresh_chain
defaults: { retries: 0, poll_interval: 1s }
steps:
  warm: { type: dataflow, workspace: Sales, dataflow: Raw }
  df:
    type: dataflow
    workspace: Sales
    dataflow: Raw
    skip_if_fresh: 1h
    depends_on: [warm]
  model:
    type: dataset
    workspace: Sales
    dataset: Revenue
    depends_on: [df]
  note:
    type: dataset
    workspace: Sales
    dataset: Notes
    depends_on: [df]
    when: "steps.df.status == 'skipped' && steps.df.fresh"
"#,
    );
    std::fs::write(
        dir.path().join("profile.yaml"),
        "defaults: { duration: 0s }\n",
    )
    .unwrap();
    let out = run_simulated(dir.path(), &job);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let report = read_report(dir.path());
    assert_eq!(report["status"], "succeeded");
    let df = step(&report, "df");
    assert_eq!(df["status"], "skipped", "{df}");
    let reason = df["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("fresh: "), "{reason}");
    // The skip sent no trigger: its one attempt has no remote id.
    assert!(df["attempts"][0]["remote_id"].is_null(), "{df}");
    for id in ["warm", "model", "note"] {
        let s = step(&report, id);
        assert_eq!(s["status"], "succeeded", "{s}");
        assert!(s["attempts"][0]["remote_id"].is_string(), "{s}");
    }
    assert_eq!(report["counts"]["succeeded"], 3);
    assert_eq!(report["counts"]["skipped"], 1);
}

//! The main outputs of the commands, compared whole (exit code, stdout, stderr) with the
//! [`Test`] builder: what a user sees, and nothing else, for a small job.

use crate::cli_test::Test;

/// A dataflow, the model it feeds and the report exported after it.
const JOB: &str = r#"version: 1
name: nightly
steps:
  sales_flow:
    type: dataflow
    workspace: Sales
    dataflow: Sales Flow
  sales_model:
    type: dataset
    workspace: Sales
    dataset: Sales Model
    depends_on: [sales_flow]
  sales_pdf:
    type: report
    workspace: Sales
    report: Sales Report
    export: { format: PDF, path: out/sales.pdf }
    depends_on: [sales_model]
"#;

/// [`JOB`] without its `version` line.
const NO_VERSION: &str = r#"name: nightly
steps:
  sales_flow:
    type: dataflow
    workspace: Sales
    dataflow: Sales Flow
  sales_model:
    type: dataset
    workspace: Sales
    dataset: Sales Model
    depends_on: [sales_flow]
  sales_pdf:
    type: report
    workspace: Sales
    report: Sales Report
    export: { format: PDF, path: out/sales.pdf }
    depends_on: [sales_model]
"#;

/// A step key misspelt (`datset`) and the job's `name` left out.
const BAD: &str = r#"version: 1
steps:
  model:
    type: dataset
    workspace: Sales
    datset: Sales Model
"#;

/// A valid job: the verdict and the credential warning on stderr, nothing on stdout.
#[test]
fn cli_validate_says_valid_with_its_warnings_on_stderr() {
    Test::new()
        .file("job.yaml", JOB)
        .args(["validate", "job.yaml"])
        .stderr(
            r#"pbibatch::job::env_not_set

  ⚠ the implicit `default` connection needs AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET
  │ (or PBIBATCH_ACCESS_TOKEN), not set here
job.yaml: valid (3 steps, 1 warning)
"#,
        )
        .run();
}

/// The first mistake of a hand-written file: no `version`.
#[test]
fn cli_validate_without_version_points_at_the_file_and_exits_2() {
    Test::new()
        .file("job.yaml", NO_VERSION)
        .args(["validate", "job.yaml"])
        .status(2)
        .stderr(
            r#"pbibatch::job::missing_key

  × missing field `version`
   ╭─[job.yaml:2:1]
 1 │ name: nightly
 2 │ steps:
   · ─────
 3 │   sales_flow:
   ╰────
job.yaml: invalid (1 error)
"#,
        )
        .run();
}

/// `--format short`: one located line per error on stdout (the format editors and CI read).
#[test]
fn cli_validate_short_lists_every_error_on_stdout() {
    Test::new()
        .file("bad.yaml", BAD)
        .args(["validate", "bad.yaml", "--format", "short"])
        .status(2)
        .stdout(
            r#"bad.yaml:2:1: error: missing field `name` [pbibatch::job::missing_key]
bad.yaml:6:5: error: unknown key `datset` (did you mean `dataset`?) [pbibatch::job::unknown_key]
"#,
        )
        .run();
}

/// `plan`: the waves, then each step with the settings that apply to it.
#[test]
fn cli_plan_prints_the_waves_and_every_steps_settings() {
    Test::new()
        .file("job.yaml", JOB)
        .args(["plan", "job.yaml"])
        .stdout(
            r#"job: nightly (job.yaml)
concurrency: 4
pools: none
selected: 3 of 3 steps

wave 1: sales_flow
wave 2: sales_model
wave 3: sales_pdf

sales_flow (dataflow)
  resource: Sales / Sales Flow
  connection: default
  timeout: 2h, retries: 0, retry_backoff: 30s, max_backoff: 10m
  poll_interval: 15s, if_running: wait
  generation: 1
  notify: NoNotification
  remaining path: 3

sales_model (dataset)
  resource: Sales / Sales Model
  depends_on: sales_flow
  connection: default
  timeout: 2h, retries: 0, retry_backoff: 30s, max_backoff: 10m
  poll_interval: 15s, if_running: wait
  refresh: standard, notify: NoNotification
  remaining path: 2

sales_pdf (report)
  resource: Sales / Sales Report
  depends_on: sales_model
  connection: default
  timeout: 2h, retries: 0, retry_backoff: 30s, max_backoff: 10m
  export: PDF -> out/sales.pdf
  remaining path: 1
"#,
        )
        .stderr(
            r#"job.yaml:1:1: warning: the implicit `default` connection needs AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET (or PBIBATCH_ACCESS_TOKEN), not set here [pbibatch::job::env_not_set]
"#,
        )
        .run();
}

/// `graph`: a Mermaid flowchart of the steps and their dependencies.
#[test]
fn cli_graph_prints_a_mermaid_flowchart() {
    Test::new()
        .file("job.yaml", JOB)
        .args(["graph", "job.yaml"])
        .stdout(
            r#"flowchart LR
  sales_flow["sales_flow<br/>dataflow"]
  sales_model["sales_model<br/>dataset"]
  sales_pdf["sales_pdf<br/>report"]
  sales_flow --> sales_model
  sales_model --> sales_pdf
"#,
        )
        .stderr(
            r#"job.yaml:1:1: warning: the implicit `default` connection needs AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET (or PBIBATCH_ACCESS_TOKEN), not set here [pbibatch::job::env_not_set]
"#,
        )
        .run();
}

/// `run -q` of a job that succeeds against the simulator prints nothing and exits 0; the
/// export is written where the job says.
#[test]
fn cli_a_quiet_run_that_succeeds_prints_nothing() {
    let out = Test::new()
        .file("job.yaml", JOB)
        .args(["run", "job.yaml", "--simulate", "-q"])
        .run();
    let pdf = std::fs::read(out.dir().join("out/sales.pdf")).unwrap();
    assert!(pdf.starts_with(b"%PDF"), "the export is a PDF");
}

/// A token in the environment answers the credential warning: the verdict alone.
#[test]
fn cli_validate_with_a_token_in_the_environment_has_no_warning() {
    Test::new()
        .file("job.yaml", JOB)
        .env("PBIBATCH_ACCESS_TOKEN", "not-a-real-token")
        .args(["validate", "job.yaml"])
        .stderr("job.yaml: valid (3 steps)\n")
        .run();
}

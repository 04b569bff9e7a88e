//! `pbibatch discover` and `validate --lineage` end to end: the real binary against its
//! in-process simulator (`--simulate`, demo estate or `--sim-profile`).

use std::path::Path;

use crate::common::{pbibatch, repo, texts};

/// The demo simulator's client secret: must never show in any output.
const SIM_SECRET: &str = "sim~client~secret~value";

fn run(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = pbibatch(dir).args(args).output().unwrap();
    let (stdout, stderr) = texts(&out);
    assert!(
        !stdout.contains(SIM_SECRET) && !stderr.contains(SIM_SECRET),
        "the secret leaked:\n{stdout}\n{stderr}"
    );
    assert!(
        !stdout.contains("eyJ") && !stderr.contains("eyJ"),
        "a token leaked:\n{stdout}\n{stderr}"
    );
    (out.status.code(), stdout, stderr)
}

/// GUIDs vary with the profile; snapshots show `[id]`.
macro_rules! snapshot_ids {
    ($name:expr, $text:expr) => {
        insta::with_settings!({filters => vec![
            (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "[id]"),
        ]}, {
            insta::assert_snapshot!($name, $text);
        });
    };
}

#[test]
fn discover_table_with_lineage_and_mermaid() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(dir.path(), &["discover", "--simulate", "--lineage"]);
    assert_eq!(code, Some(0), "{stderr}");
    snapshot_ids!("discover_table_lineage", stdout);
}

#[test]
fn discover_json_is_stable_and_has_the_lineage_edges() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(
        dir.path(),
        &["discover", "--simulate", "--lineage", "--format", "json"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let edges: Vec<(String, String)> = v["lineage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                format!(
                    "{} {}",
                    e["from"]["kind"].as_str().unwrap(),
                    e["from"]["name"].as_str().unwrap()
                ),
                format!(
                    "{} {}",
                    e["to"]["kind"].as_str().unwrap(),
                    e["to"]["name"].as_str().unwrap()
                ),
            )
        })
        .collect();
    let has = |a: &str, b: &str| edges.iter().any(|(x, y)| x == a && y == b);
    assert!(
        has("dataflow Raw Orders", "dataflow Clean Orders"),
        "{edges:?}"
    );
    assert!(
        has("dataflow Clean Orders", "dataset Orders Model"),
        "{edges:?}"
    );
    assert!(
        has("dataflow Clean Orders", "dataset Budget"),
        "cross-workspace: {edges:?}"
    );
    assert!(
        has("dataset Orders Model", "report Orders Book"),
        "{edges:?}"
    );
    assert_eq!(edges.len(), 8, "{edges:?}");
    snapshot_ids!("discover_json_lineage", stdout);
}

#[test]
fn discover_one_workspace_by_name_and_an_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(
        dir.path(),
        &[
            "discover",
            "--simulate",
            "--workspace",
            "finance",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["workspaces"].as_array().unwrap().len(), 1);
    assert_eq!(v["workspaces"][0]["name"], "Finance");
    assert!(v.get("lineage").is_none(), "no lineage unless asked");

    let (code, _, stderr) = run(
        dir.path(),
        &["discover", "--simulate", "--workspace", "Financ"],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("workspace `Financ` not found"), "{stderr}");
    assert!(stderr.contains("did you mean `Finance`"), "{stderr}");
}

#[test]
fn fabric_paging_lists_every_item() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("profile.yaml"),
        "page_size: 1\nworkspaces:\n  WS:\n    fabric_dataflows: { A: {}, B: {}, C: {} }\n    items: { P: { type: DataPipeline }, N: { type: Notebook } }\n    datasets: { M: {} }\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run(
        dir.path(),
        &[
            "discover",
            "--simulate",
            "--sim-profile",
            "profile.yaml",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let items: Vec<&str> = v["workspaces"][0]["fabric_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    // SemanticModel M is listed once, as a dataset, not again as a Fabric item.
    assert_eq!(items, ["A", "B", "C", "P", "N"]);
    assert_eq!(v["workspaces"][0]["datasets"][0]["name"], "M");
}

#[test]
fn emitted_job_validates_and_runs_under_simulate() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(
        dir.path(),
        &[
            "discover",
            "--simulate",
            "--emit-job",
            "job.yaml",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("wrote a job skeleton with 6 steps"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(dir.path().join("job.yaml")).unwrap();
    assert!(
        text.starts_with("# yaml-language-server: $schema="),
        "schema comment first:\n{text}"
    );
    assert!(text.contains("DECIDE"), "{text}");
    snapshot_ids!("discover_emitted_job", text);

    let (code, _, stderr) = run(dir.path(), &["validate", "job.yaml"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("job.yaml: valid (6 steps"), "{stderr}");

    // The live check finds every item and agrees with the lineage it came from.
    let (code, _, stderr) = run(
        dir.path(),
        &[
            "validate",
            "--lineage",
            "--simulate",
            "--format",
            "short",
            "job.yaml",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");

    let (code, _, stderr) = run(
        dir.path(),
        &[
            "run",
            "--simulate",
            "--state",
            "none",
            "--report",
            "r.json",
            "job.yaml",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(report["counts"]["succeeded"], 6);

    // The pipeline and the notebook are emitted as `fabric_job` steps (commented out: Fabric
    // gives no lineage for them); uncommented, they validate and run.
    let mut uncommented = String::new();
    let mut in_job = false;
    for line in text.lines() {
        if let Some(id) = line
            .strip_prefix("  # ")
            .filter(|l| l.ends_with(':') && !l.starts_with(' '))
        {
            in_job = id == "nightly_load:" || id == "transform_sales:";
        } else if !line.starts_with("  #   ") {
            in_job = false;
        }
        match line.strip_prefix("  # ") {
            Some(rest) if in_job && !rest.trim_start().starts_with('#') => {
                uncommented.push_str(&format!("  {rest}\n"));
            }
            _ => {
                uncommented.push_str(line);
                uncommented.push('\n');
            }
        }
    }
    assert!(uncommented.contains("    type: fabric_job\n    workspace: sales_analytics\n    item: \"Nightly Load\"\n    item_type: pipeline\n"), "{uncommented}");
    assert!(uncommented.contains("item_type: notebook"), "{uncommented}");
    std::fs::write(dir.path().join("jobs.yaml"), &uncommented).unwrap();
    let (code, _, stderr) = run(
        dir.path(),
        &[
            "run",
            "--simulate",
            "--state",
            "none",
            "--report",
            "r2.json",
            "jobs.yaml",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r2.json")).unwrap())
            .unwrap();
    assert_eq!(report["counts"]["succeeded"], 8, "{report:#}");
}

const LINEAGE_JOB: &str = r#"
version: 1
name: lineage_check
workspaces: { sales: "Sales Analytics" }
steps:
  raw_orders: { type: dataflow, workspace: sales, dataflow: Raw Orders }
  clean_orders: { type: dataflow, workspace: sales, dataflow: Clean Orders, depends_on: [raw_orders] }
  # Missing edge: the model reads Clean Orders but does not wait for it.
  orders_model: { type: dataset, workspace: sales, dataset: Orders Model }
  # Extra edge: Customers does not read Raw Orders.
  customers: { type: dataset, workspace: sales, dataset: Customers, depends_on: [raw_orders] }
"#;

#[test]
fn lineage_warns_about_a_missing_and_an_extra_edge() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.yaml"), LINEAGE_JOB).unwrap();
    let (code, stdout, stderr) = run(
        dir.path(),
        &[
            "validate",
            "--lineage",
            "--simulate",
            "--format",
            "short",
            "job.yaml",
        ],
    );
    assert_eq!(code, Some(0), "warnings only:\n{stdout}\n{stderr}");
    let live: Vec<&str> = stdout.lines().filter(|l| l.contains("live:")).collect();
    assert_eq!(live.len(), 2, "{stdout}");
    assert!(
        live.iter().any(
            |l| l.contains("warning: live: missing dependency: step `orders_model`")
                && l.contains("reads step `clean_orders`")
        ),
        "{stdout}"
    );
    assert!(
        live.iter().any(
            |l| l.contains("warning: live: extra dependency: step `customers`")
                && l.contains("depends on `raw_orders`")
        ),
        "{stdout}"
    );

    // The same findings as JSON diagnostics, and a human summary on stderr.
    let (code, stdout, stderr) = run(
        dir.path(),
        &[
            "validate",
            "--lineage",
            "--simulate",
            "--format",
            "json",
            "job.yaml",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let live: Vec<&serde_json::Value> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["message"].as_str().unwrap().starts_with("live: "))
        .collect();
    assert_eq!(live.len(), 2, "{stdout}");
    assert!(live.iter().all(|d| d["severity"] == "warning"), "{stdout}");
    let (code, _, stderr) = run(
        dir.path(),
        &["validate", "--lineage", "--simulate", "job.yaml"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr
            .contains("job.yaml: valid (4 steps, 3 warnings); lineage checked against 1 workspace"),
        "{stderr}"
    );
}

/// `validate --lineage` against a served demo estate, as against a tenant: nothing is
/// provisioned for the job (unlike `--simulate`), so what it names may be missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_reports_items_that_do_not_exist() {
    let sim = crate::sim_support::start_profile(pbibatch::discover::demo_profile()).await;
    let dir = tempfile::tempdir().unwrap();
    let job = LINEAGE_JOB
        .replace("dataset: Customers,", "dataset: Customer,")
        .replace(
            "sales: \"Sales Analytics\"",
            "sales: \"Sales Analytics\", fin: Finanse",
        );
    let job = format!("{job}  budget: {{ type: dataset, workspace: fin, dataset: Budget }}\n");
    // A notebook named like the pipeline is not found among the notebooks.
    let job = format!(
        "{job}  load: {{ type: fabric_job, workspace: sales, item: Nightly Load, item_type: pipeline }}\n  wrong_type: {{ type: fabric_job, workspace: sales, item: Nightly Load, item_type: notebook }}\n"
    );
    std::fs::write(dir.path().join("job.yaml"), job).unwrap();
    let mut cmd = pbibatch(dir.path());
    cmd.args(["validate", "--lineage", "--format", "short", "job.yaml"]);
    for var in [
        "PBIBATCH_POWERBI_URL",
        "PBIBATCH_FABRIC_URL",
        "PBIBATCH_AUTHORITY_URL",
    ] {
        cmd.env(var, sim.base_url());
    }
    cmd.env("AZURE_TENANT_ID", sim.tenant_id())
        .env("AZURE_CLIENT_ID", sim.client_id())
        .env("AZURE_CLIENT_SECRET", sim.client_secret());
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("error: live: step `customers`: dataset `Customer` not found in workspace `Sales Analytics`; did you mean `Customers`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("error: live: step `budget`: workspace `Finanse` not found"),
        "{stdout}"
    );
    assert!(
        stdout.contains("error: live: step `wrong_type`: notebook `Nightly Load` not found in workspace `Sales Analytics`"),
        "{stdout}"
    );
    assert!(!stdout.contains("step `load`"), "{stdout}");
}

/// `validate --lineage --simulate` runs against what `run --simulate` runs against: the
/// profile (the demo estate without one) plus every workspace and item the job names.
#[test]
fn lineage_under_simulate_holds_what_the_job_names() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("jobs")).unwrap();
    std::fs::copy(
        repo().join("jobs/order_list.yaml"),
        dir.path().join("jobs/order_list.yaml"),
    )
    .unwrap();
    let args = [
        "validate",
        "--lineage",
        "--simulate",
        "--format",
        "short",
        "jobs/order_list.yaml",
    ];
    let (code, stdout, stderr) = run(dir.path(), &args);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(!stdout.contains("not found"), "{stdout}");
    // Provisioned items carry no lineage: no dependency is called extra on their account.
    assert!(!stdout.contains("live:"), "{stdout}");
    // The same job, with a profile that declares a flow under a misspelt step id: both
    // commands say the entry is unused instead of ignoring it.
    std::fs::write(
        dir.path().join("profile.yaml"),
        "flows:\n  master_order_lst: {}\n",
    )
    .unwrap();
    let warning = "the simulator profile's flow `master_order_lst` matches no `sas_flow` step of `order_list` and is unused (did you mean `master_order_list`?)";
    let (code, stdout, stderr) = run(
        dir.path(),
        &[
            &args[..5],
            &["--sim-profile", "profile.yaml", "jobs/order_list.yaml"],
        ]
        .concat(),
    );
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("warning: live: {warning}")),
        "{stdout}"
    );
    let (code, _, stderr) = run(
        dir.path(),
        &[
            "run",
            "--simulate",
            "--sim-profile",
            "profile.yaml",
            "--state",
            "none",
            "jobs/order_list.yaml",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains(&format!("warning: {warning}")), "{stderr}");
}

#[test]
fn discover_without_credentials_says_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(dir.path(), &["discover"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("AZURE_TENANT_ID"), "{stderr}");
    assert!(stderr.contains("--simulate"), "{stderr}");
}

#[test]
fn emitted_job_points_at_the_schema_from_where_it_is_written() {
    let repo_dir = tempfile::tempdir().unwrap();
    let root = repo_dir.path();
    std::fs::create_dir_all(root.join("schemas")).unwrap();
    std::fs::create_dir_all(root.join("jobs/team")).unwrap();
    std::fs::copy(
        repo().join("schemas/pbibatch-job.schema.json"),
        root.join("schemas/pbibatch-job.schema.json"),
    )
    .unwrap();
    // (working directory, --emit-job, the `$schema` it must get)
    for (cwd, out, want) in [
        ("", "root.yaml", "schemas/pbibatch-job.schema.json"),
        (
            "",
            "jobs/nightly.yaml",
            "../schemas/pbibatch-job.schema.json",
        ),
        (
            "",
            "jobs/./team/../team/deep.yaml",
            "../../schemas/pbibatch-job.schema.json",
        ),
        ("jobs", "here.yaml", "../schemas/pbibatch-job.schema.json"),
        (
            "jobs/team",
            "../up.yaml",
            "../schemas/pbibatch-job.schema.json",
        ),
    ] {
        let (code, _, stderr) = run(
            &root.join(cwd),
            &[
                "discover",
                "--simulate",
                "--emit-job",
                out,
                "--format",
                "json",
            ],
        );
        assert_eq!(code, Some(0), "{out}: {stderr}");
        let written = root.join(cwd).join(out);
        let text = std::fs::read_to_string(&written).unwrap();
        let first = text.lines().next().unwrap();
        assert_eq!(
            first,
            format!("# yaml-language-server: $schema={want}"),
            "{cwd}/{out}"
        );
        // The comment resolves, from the file's directory, to the schema.
        assert!(
            written.parent().unwrap().join(want).is_file(),
            "{cwd}/{out}"
        );
        assert!(!stderr.contains("no schemas/"), "{stderr}");
    }
    // No schema above: named from where `pbibatch schema` would write it, and said so.
    let bare = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(bare.path().join("jobs")).unwrap();
    let (code, _, stderr) = run(
        bare.path(),
        &[
            "discover",
            "--simulate",
            "--emit-job",
            "jobs/x.yaml",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let text = std::fs::read_to_string(bare.path().join("jobs/x.yaml")).unwrap();
    assert!(
        text.starts_with("# yaml-language-server: $schema=../schemas/pbibatch-job.schema.json\n"),
        "{text}"
    );
    assert!(
        stderr.contains("no schemas/pbibatch-job.schema.json above jobs/x.yaml"),
        "{stderr}"
    );
}

//! Report bursting: exports with a report-level filter, row-level-security identities and
//! paginated parameters, one per value of a `for_each`, against the simulator over loopback,
//! and the simulator refusing what the service refuses.

use std::net::SocketAddr;
use std::path::Path;

use pbibatch::sim::{Profile, SimServer};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{pbibatch, pbibatch_against, texts};
use crate::sim_support::{Api, start};

const PROFILE: &str = "defaults: { duration: 100ms }
workspaces:
  Sales:
    datasets:
      Sales: { rls_roles: [RegionManager, Auditor] }
      Plain: {}
    reports:
      Sales Book: { dataset: Sales }
      Plain Book: { dataset: Plain }
      Statements: { paginated: true, dataset: Sales }
";

async fn simulator() -> SimServer {
    let profile = Profile::from_yaml(PROFILE).unwrap();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    pbibatch::sim::start(profile, addr).await.unwrap()
}

async fn run_against(sim: &SimServer, dir: &Path, job: &str) -> (Option<i32>, String) {
    std::fs::write(dir.join("job.yaml"), job).unwrap();
    let mut cmd = pbibatch_against(dir, sim);
    cmd.args(["run", "job.yaml", "--state", "none", "--report", "r.json"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = texts(&out);
    (out.status.code(), format!("{stdout}{stderr}"))
}

/// The bodies of the `ExportTo` calls the simulator received, sorted (the exports run at
/// once).
fn export_bodies(sim: &SimServer) -> Vec<Value> {
    let mut bodies: Vec<Value> = sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/ExportTo"))
        .map(|r| r.json().unwrap())
        .collect();
    bodies.sort_by_key(Value::to_string);
    bodies
}

#[tokio::test]
async fn a_report_bursts_per_region_with_a_filter_and_rls() {
    let sim = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let job = r#"
version: 1
name: burst
steps:
  books:
    type: report
    workspace: Sales
    report: Sales Book
    for_each: [West, North East]
    export:
      format: PDF
      path: "out/sales_${each.key}.pdf"
      filter: "Geography/Region eq '${each.value}'"
      identities:
        - username: "${each.key}@contoso.com"
          roles: [RegionManager]
  statements:
    type: report
    workspace: Sales
    report: Statements
    for_each: [West]
    export:
      format: XLSX
      path: "out/statements_${each.key}.xlsx"
      parameters: { Region: "${each.value}" }
      identities: [{ username: "${each.key}@contoso.com", roles: [Auditor] }]
"#;
    let (code, out) = run_against(&sim, d, job).await;
    assert_eq!(code, Some(0), "{out}");
    let (_, model) = sim.ids("Sales", "Sales").unwrap();
    let mut want = vec![
        json!({"format": "PDF", "powerBIReportConfiguration": {
                "reportLevelFilters": [{"filter": "Geography/Region eq 'West'"}],
                "identities": [{"username": "West@contoso.com", "roles": ["RegionManager"], "datasets": [model]}]}}),
        json!({"format": "PDF", "powerBIReportConfiguration": {
                "reportLevelFilters": [{"filter": "Geography/Region eq 'North East'"}],
                "identities": [{"username": "North_East@contoso.com", "roles": ["RegionManager"], "datasets": [model]}]}}),
        json!({"format": "XLSX", "paginatedReportConfiguration": {
                "parameterValues": [{"name": "Region", "value": "West"}],
                "identities": [{"username": "West@contoso.com", "roles": ["Auditor"]}]}}),
    ];
    want.sort_by_key(Value::to_string);
    assert_eq!(export_bodies(&sim), want);
    for file in [
        "out/sales_West.pdf",
        "out/sales_North_East.pdf",
        "out/statements_West.xlsx",
    ] {
        assert!(d.join(file).is_file(), "{file}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn an_export_of_the_wrong_kind_fails_before_anything_is_sent() {
    let sim = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let job = r#"
version: 1
name: mismatch
steps:
  parameters_on_power_bi:
    type: report
    workspace: Sales
    report: Plain Book
    export: { format: PDF, path: out/a.pdf, parameters: { Region: West } }
    retries: 2
  filter_on_paginated:
    type: report
    workspace: Sales
    report: Statements
    export: { format: PDF, path: out/b.pdf, filter: "Geography/Region eq 'West'" }
  two_identities_on_paginated:
    type: report
    workspace: Sales
    report: Statements
    export:
      format: PDF
      path: out/c.pdf
      identities: [{ username: a@contoso.com }, { username: b@contoso.com }]
"#;
    let (code, out) = run_against(&sim, dir.path(), job).await;
    assert_eq!(code, Some(1), "{out}");
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("r.json")).unwrap()).unwrap();
    let errors: Vec<(&str, usize, &str)> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["status"].as_str().unwrap(),
                s["attempts"].as_array().unwrap().len(),
                s["error"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(errors[0].0, "failed");
    assert_eq!(errors[0].1, 1, "refused: no retry");
    assert!(
        errors[0].2.contains(
            "`export.parameters` are for paginated reports; Plain Book is a Power BI report"
        ),
        "{errors:?}"
    );
    assert!(
        errors[1]
            .2
            .contains("`export.filter` is for Power BI reports; Statements is a paginated report"),
        "{errors:?}"
    );
    assert!(
        errors[2]
            .2
            .contains("a paginated report is exported as one identity"),
        "{errors:?}"
    );
    assert!(export_bodies(&sim).is_empty(), "nothing may reach ExportTo");
    sim.shutdown().await;
}

#[tokio::test]
async fn the_simulator_refuses_what_the_service_refuses() {
    let sim = start(PROFILE).await;
    let api = Api::new(&sim).await;
    let (ws, book) = api.ids("Sales", "Sales Book");
    let (_, plain_book) = api.ids("Sales", "Plain Book");
    let (_, statements) = api.ids("Sales", "Statements");
    let (_, sales) = api.ids("Sales", "Sales");
    let (_, plain) = api.ids("Sales", "Plain");
    let export = |report: &str| format!("/groups/{ws}/reports/{report}/ExportTo");
    let identity = |model: &str, role: &str| json!({"username": "u@contoso.com", "roles": [role], "datasets": [model]});
    let cases = [
        (
            export(&plain_book),
            json!({"format": "PDF", "powerBIReportConfiguration": {"identities": [identity(&plain, "RegionManager")]}}),
            "shouldn't have effective identity",
        ),
        (
            export(&book),
            json!({"format": "PDF", "powerBIReportConfiguration": {"identities": [identity(&sales, "Nope")]}}),
            "Role 'Nope' of the effective identity does not exist",
        ),
        (
            export(&book),
            json!({"format": "PDF", "powerBIReportConfiguration": {"identities": [identity(&plain, "RegionManager")]}}),
            "is not used by the report",
        ),
        (
            export(&book),
            json!({"format": "PDF", "powerBIReportConfiguration": {"identities": [{"username": "u@contoso.com"}]}}),
            "must name the datasets",
        ),
        (
            export(&book),
            json!({"format": "PDF"}),
            "requires effective identity",
        ),
        (
            export(&book),
            json!({"format": "PDF", "paginatedReportConfiguration": {"parameterValues": [{"name": "Region", "value": "West"}]}}),
            "paginatedReportConfiguration (parameter values) is not supported for the Power BI report",
        ),
        (
            export(&statements),
            json!({"format": "PDF", "powerBIReportConfiguration": {"reportLevelFilters": [{"filter": "T/C eq 'x'"}]}}),
            "powerBIReportConfiguration (report level filters, pages, bookmarks) is not supported for the paginated report",
        ),
        (
            export(&plain_book),
            json!({"format": "PDF", "powerBIReportConfiguration": {"reportLevelFilters": [{"filter": "T/C eq 'x'"}, {"filter": "T/C eq 'y'"}]}}),
            "Only one report level filter is supported",
        ),
        (
            export(&statements),
            json!({"format": "PDF", "paginatedReportConfiguration": {"identities": [{"username": "a"}, {"username": "b"}]}}),
            "single identity",
        ),
        (
            export(&plain_book),
            json!({"format": "PDF", "powerBIReportConfiguration": {"identities": [{"username": "u", "role": "x"}]}}),
            "role",
        ),
    ];
    for (path, body, message) in cases {
        let a = api.pbi(Method::POST, &path, Some(body.clone())).await;
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        assert_eq!(a.body["error"]["code"], "InvalidRequest", "{body}");
        let said = a.body["error"]["message"].as_str().unwrap_or_default();
        assert!(said.contains(message), "{body}: {said}");
    }
    // What the service accepts: an identity with a role of the model, for the report's model.
    let ok = api
        .pbi(
            Method::POST,
            &export(&book),
            Some(json!({"format": "PDF", "powerBIReportConfiguration": {"identities": [identity(&sales, "Auditor")]}})),
        )
        .await;
    assert_eq!(ok.status, 202, "{}", ok.body);
    // The model says it needs an identity.
    let model = api
        .pbi(Method::GET, &format!("/groups/{ws}/datasets/{sales}"), None)
        .await;
    assert_eq!(model.body["isEffectiveIdentityRequired"], true);
    sim.shutdown().await;
}

#[test]
fn a_rehearsal_makes_the_reports_the_exports_describe() {
    // `--simulate` provisions `Regional Statement` as a paginated report (it is given
    // parameters) and the reports' models with the roles the identities name, so the
    // example runs as it would on a tenant with those reports.
    let dir = tempfile::tempdir().unwrap();
    let job = crate::common::repo().join("examples/report_bursting.yaml");
    let out = pbibatch(dir.path())
        .args([
            "run",
            job.to_str().unwrap(),
            "--simulate",
            "--state",
            "none",
        ])
        .args(["--var", "regions=West,North America"])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    for file in [
        "out/sales_book_West.pdf",
        "out/sales_book_North_America.pdf",
        "out/statement_West.xlsx",
        "out/statement_North_America.xlsx",
    ] {
        assert!(dir.path().join(file).is_file(), "{file}");
    }
}

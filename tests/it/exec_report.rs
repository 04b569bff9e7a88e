//! The report (export) executor end to end against the simulator.

use std::path::PathBuf;

use indexmap::IndexMap;
use pbibatch::executor::AttemptOutcome;
use pbibatch::job::model::{ExportFormat, ExportSpec, ReportStep, StepKind};
use serde_json::json;

use crate::exec_support::{requests_to, rig, run_step, step};

fn report(ws: &str, name: &str, format: ExportFormat, path: PathBuf) -> StepKind {
    StepKind::Report(ReportStep {
        workspace: ws.into(),
        report: name.into(),
        export: ExportSpec {
            format,
            path,
            pages: vec![],
            bookmark: None,
            parameters: IndexMap::new(),
            locale: None,
            include_hidden_pages: None,
            filter: None,
            identities: vec![],
        },
    })
}

fn leftovers(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect()
}

#[tokio::test]
async fn export_is_downloaded_atomically_into_new_folders() {
    let rig =
        rig("workspaces:\n  Admin:\n    reports:\n      Order Book: {duration: 300ms}\n").await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out/nested/order_book.pdf");
    let ran = run_step(
        &rig,
        step(
            "pdf",
            report("Admin", "Order Book", ExportFormat::Pdf, target.clone()),
        ),
    )
    .await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    let bytes = std::fs::read(&target).unwrap();
    assert!(!bytes.is_empty());
    let file = requests_to(&rig.sim, "GET", "/file");
    assert_eq!(file.len(), 1);
    assert_eq!(
        requests_to(&rig.sim, "POST", "/ExportTo")[0].json(),
        Some(json!({"format": "PDF"}))
    );
    assert!(leftovers(target.parent().unwrap()).is_empty());
}

#[tokio::test]
async fn busy_export_is_resubmitted() {
    let rig = rig(
        "workspaces:\n  Admin:\n    reports:\n      R:\n        duration: 200ms\n        retry_after: 1\n        outcomes: [busy, succeed]\n",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("r.pdf");
    let ran = run_step(
        &rig,
        step(
            "pdf",
            report("Admin", "R", ExportFormat::Pdf, target.clone()),
        ),
    )
    .await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    assert_eq!(requests_to(&rig.sim, "POST", "/ExportTo").len(), 2);
    assert!(target.exists());
}

#[tokio::test]
async fn failed_export_is_a_failure_and_writes_nothing() {
    let rig = rig(
        "workspaces:\n  Admin:\n    reports:\n      R:\n        duration: 200ms\n        outcomes: [{fail: {message: 'Export failed: visual error'}}]\n",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("r.pdf");
    let ran = run_step(
        &rig,
        step(
            "pdf",
            report("Admin", "R", ExportFormat::Pdf, target.clone()),
        ),
    )
    .await;
    assert!(ran.error().contains("export"), "{}", ran.error());
    assert!(!target.exists());
    assert!(leftovers(dir.path()).is_empty());
}

#[tokio::test]
async fn paginated_report_gets_the_paginated_configuration() {
    let rig = rig(
        "workspaces:\n  Admin:\n    reports:\n      Invoices: {duration: 200ms, paginated: true}\n",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut kind = report(
        "Admin",
        "Invoices",
        ExportFormat::Xlsx,
        dir.path().join("i.xlsx"),
    );
    if let StepKind::Report(r) = &mut kind {
        r.export.parameters.insert("Year".into(), "2024".into());
    }
    let ran = run_step(&rig, step("xlsx", kind)).await;
    assert_eq!(ran.outcome, AttemptOutcome::Succeeded { adopted: false });
    assert_eq!(
        requests_to(&rig.sim, "POST", "/ExportTo")[0].json(),
        Some(
            json!({"format": "XLSX", "paginatedReportConfiguration": {"parameterValues": [{"name": "Year", "value": "2024"}]}})
        )
    );
}

#[tokio::test]
async fn paginated_only_format_on_a_power_bi_report_fails_before_sending() {
    let rig = rig("workspaces:\n  Admin:\n    reports:\n      R: {}\n").await;
    let dir = tempfile::tempdir().unwrap();
    let ran = run_step(
        &rig,
        step(
            "x",
            report("Admin", "R", ExportFormat::Xlsx, dir.path().join("r.xlsx")),
        ),
    )
    .await;
    assert!(
        ran.error().contains("paginated reports only"),
        "{}",
        ran.error()
    );
    assert!(requests_to(&rig.sim, "POST", "/ExportTo").is_empty());
}

#[tokio::test]
async fn a_timed_out_export_says_it_cannot_be_cancelled() {
    use pbibatch::executor::{Cancel, CancelReason};
    let rig =
        rig("workspaces:\n  Admin:\n    reports:\n      R: {never_ends: true, retry_after: 0}\n")
            .await;
    let dir = tempfile::tempdir().unwrap();
    let cancel = Cancel::new();
    let s = step(
        "pdf",
        report("Admin", "R", ExportFormat::Pdf, dir.path().join("r.pdf")),
    );
    let (ran, ()) = tokio::join!(
        crate::exec_support::run_step_with(
            &rig,
            s,
            crate::exec_support::AttemptOptions {
                cancel: Some(cancel.clone()),
                ..Default::default()
            }
        ),
        async {
            for _ in 0..600 {
                if !requests_to(&rig.sim, "GET", "/exports/").is_empty() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            cancel.cancel(CancelReason::Timeout);
        }
    );
    let err = ran.error();
    assert!(
        err.contains("timed out; the API cannot cancel this export"),
        "{err}"
    );
    assert!(leftovers(dir.path()).is_empty());
}

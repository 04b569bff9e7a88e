//! Reporters over a fixed, synthetic event stream (timestamps fixed, so snapshots are stable),
//! and the report's JSON Schema.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use pbibatch::event::{
    AttemptUpdate, Counts, ResourceRef, RunEvent, RunEventKind, RunStatus, StepInfo, StepStatus,
    stamp,
};
use pbibatch::reporter::Reporters;
use pbibatch::reporter::lines::LineReporter;
use pbibatch::reporter::progress::{Change, ProgressModel};
use pbibatch::reporter::report::{self, RunReport};
use pbibatch::reporter::summary;

pub(crate) fn at(secs: f64) -> DateTime<Utc> {
    let base = Utc.with_ymd_and_hms(2026, 1, 2, 3, 0, 0).unwrap();
    base + chrono::Duration::milliseconds((secs * 1000.0) as i64)
}

fn info(id: &str, ty: &str, resource: &str, deps: &[&str]) -> StepInfo {
    StepInfo {
        id: id.into(),
        step_type: ty.into(),
        resource: resource.into(),
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        expected: None,
    }
}

fn progress(step: &str, attempt: u32, status: &str, id: &str, pct: Option<u8>) -> RunEventKind {
    RunEventKind::StepProgress {
        step: step.into(),
        attempt,
        update: AttemptUpdate {
            remote_status: Some(status.into()),
            percent: pct,
            remote_id: Some(id.into()),
            ..AttemptUpdate::default()
        },
    }
}

fn started(step: &str, attempt: u32) -> RunEventKind {
    RunEventKind::AttemptStarted {
        step: step.into(),
        attempt,
    }
}

fn finished(
    step: &str,
    attempt: u32,
    status: StepStatus,
    error: Option<&str>,
    remote_id: Option<&str>,
    retry_in: Option<u64>,
) -> RunEventKind {
    RunEventKind::AttemptFinished {
        step: step.into(),
        attempt,
        status,
        error: error.map(Into::into),
        remote_id: remote_id.map(Into::into),
        retry_in: retry_in.map(Duration::from_secs),
    }
}

fn step_done(step: &str, status: StepStatus, reason: Option<&str>, attempts: u32) -> RunEventKind {
    RunEventKind::StepFinished {
        step: step.into(),
        status,
        reason: reason.map(Into::into),
        attempts,
        adopted: false,
        duration: None,
        counts: Counts::default(),
        running: 0,
        overran: false,
    }
}

const SQL_ERROR: &str = "Refresh failed: DataSource.Error: the credentials provided for the SQL source are invalid.\n(Source at sql01.contoso.local;orders.)";

/// A nightly run: a flow, a model that fails once then succeeds, an export that times out,
/// a dependent that is not run, and a Teams webhook that fires because of the failure.
/// Events at these seconds after the base time, numbered, stamped as the scheduler would.
pub(crate) fn numbered(kinds: Vec<(f64, RunEventKind)>) -> Vec<RunEvent> {
    let mut events: Vec<RunEvent> = kinds
        .into_iter()
        .enumerate()
        .map(|(i, (secs, kind))| RunEvent {
            seq: i as u64,
            at: at(secs),
            kind,
        })
        .collect();
    stamp(&mut events);
    events
}

pub(crate) fn order_list_events() -> Vec<RunEvent> {
    use StepStatus::*;
    let kinds: Vec<(f64, RunEventKind)> = vec![
        (
            0.0,
            RunEventKind::RunStarted {
                run_id: "run-20260102".into(),
                job: "order_list".into(),
                job_file: "jobs/order_list.yaml".into(),
                steps: vec![
                    info(
                        "master_order_list",
                        "sas_flow",
                        "https://prod-00.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?api-version=2016-10-01&sig=***",
                        &[],
                    ),
                    info(
                        "order_list_model",
                        "dataset",
                        "Data Admin / ORDER_LIST",
                        &["master_order_list"],
                    ),
                    info(
                        "order_book_pdf",
                        "report",
                        "Data Admin / Order Book",
                        &["order_list_model"],
                    ),
                    info(
                        "archive_pdf",
                        "webhook",
                        "https://archive.contoso.com/hook",
                        &["order_book_pdf"],
                    ),
                    info(
                        "tell_teams",
                        "webhook",
                        "https://contoso.webhook.office.com/webhookb2/***",
                        &["order_list_model", "order_book_pdf"],
                    ),
                ],
                resumed_from: None,
            },
        ),
        (0.0, started("master_order_list", 1)),
        (
            0.3,
            progress("master_order_list", 1, "Accepted", "08584", None),
        ),
        (
            2.1,
            finished("master_order_list", 1, Succeeded, None, Some("08584"), None),
        ),
        (2.1, step_done("master_order_list", Succeeded, None, 1)),
        (2.1, started("order_list_model", 1)),
        (
            2.6,
            RunEventKind::StepProgress {
                step: "order_list_model".into(),
                attempt: 1,
                update: AttemptUpdate {
                    remote_status: Some("Unknown".into()),
                    remote_id: Some("req-1".into()),
                    resource: Some(ResourceRef {
                        workspace_id: Some("f089354e-8366-4e18-aea3-4cb4a3a50b48".into()),
                        item_id: Some("cfafbeb1-8037-4d0c-896e-a46fb27ff229".into()),
                        name: "ORDER_LIST".into(),
                    }),
                    ..AttemptUpdate::default()
                },
            },
        ),
        (
            5.0,
            progress("order_list_model", 1, "Unknown", "req-1", None),
        ),
        (
            30.0,
            finished(
                "order_list_model",
                1,
                Failed,
                Some(SQL_ERROR),
                Some("req-1"),
                Some(30),
            ),
        ),
        (60.0, started("order_list_model", 2)),
        (
            61.0,
            progress("order_list_model", 2, "Unknown", "req-2", None),
        ),
        (
            120.5,
            finished("order_list_model", 2, Succeeded, None, Some("req-2"), None),
        ),
        (120.5, step_done("order_list_model", Succeeded, None, 2)),
        (120.5, started("order_book_pdf", 1)),
        (
            121.0,
            progress("order_book_pdf", 1, "Running", "exp-1", Some(40)),
        ),
        (
            140.0,
            progress("order_book_pdf", 1, "Running", "exp-1", Some(80)),
        ),
        (
            180.5,
            finished(
                "order_book_pdf",
                1,
                TimedOut,
                Some("timed out after 1m: export cancelled"),
                Some("exp-1"),
                None,
            ),
        ),
        (
            180.5,
            step_done(
                "order_book_pdf",
                TimedOut,
                Some("timed out after 1m: export cancelled"),
                1,
            ),
        ),
        (
            180.5,
            step_done(
                "archive_pdf",
                UpstreamFailed,
                Some("trigger rule all_success: dependency `order_book_pdf` failed"),
                0,
            ),
        ),
        (180.5, started("tell_teams", 1)),
        (
            181.2,
            finished("tell_teams", 1, Succeeded, None, None, None),
        ),
        (181.2, step_done("tell_teams", Succeeded, None, 1)),
        (
            181.2,
            RunEventKind::RunFinished {
                status: RunStatus::Failed,
                counts: Counts::default(),
                duration: Duration::ZERO,
            },
        ),
    ];
    numbered(kinds)
}

#[test]
fn lines_one_per_state_change() {
    let mut lines = LineReporter::new(Vec::new());
    for e in order_list_events() {
        lines.apply(&e).unwrap();
    }
    let text = String::from_utf8(lines.into_inner()).unwrap();
    assert!(!text.contains("sig=secret"));
    insta::assert_snapshot!("lines_order_list", text);
}

/// Readers fold what the scheduler stamped (durations, counts) rather than re-deriving it from
/// timestamps: a stamp that disagrees with the timestamps wins everywhere.
#[test]
fn readers_show_the_stamped_durations_and_counts() {
    let mut events = order_list_events();
    for e in &mut events {
        match &mut e.kind {
            RunEventKind::StepFinished {
                step,
                duration,
                counts,
                ..
            } if step == "order_list_model" => {
                *duration = Some(Duration::from_secs(99));
                counts.skipped = 7;
            }
            RunEventKind::RunFinished {
                counts, duration, ..
            } => {
                counts.cancelled = 4;
                *duration = Duration::from_secs(3600);
            }
            _ => {}
        }
    }
    let report = RunReport::from_events(&events);
    assert_eq!(
        report.step("order_list_model").unwrap().duration_secs,
        Some(99.0)
    );
    assert_eq!(report.counts.cancelled, 4);
    assert_eq!(report.duration_secs, 3600.0);

    let mut lines = LineReporter::new(Vec::new());
    for e in &events {
        lines.apply(e).unwrap();
    }
    let text = String::from_utf8(lines.into_inner()).unwrap();
    assert!(
        text.contains("order_list_model: succeeded in 1m 39s after 2 attempts"),
        "{text}"
    );
    assert!(text.contains("finished: failed in 1h 00m (3 succeeded, 0 failed, 1 timed_out, 0 skipped, 1 upstream_failed, 4 cancelled)"), "{text}");

    let mut model = ProgressModel::new(false);
    let changes: Vec<Change> = events.iter().flat_map(|e| model.apply(e)).collect();
    assert!(changes.contains(&Change::Print(
        "✓ order_list_model (dataset Data Admin / ORDER_LIST) succeeded in 1m 39s after 2 attempts"
            .into()
    )));
    // The tally beside the overall bar is the stamped one (7 skipped after the model).
    assert!(
        changes.contains(&Change::Overall {
            done: 9,
            tally: "2 ✓ · 7 -".into(),
            eta: true
        }),
        "{changes:?}"
    );
}

#[test]
fn summary_table_counts_and_critical_path() {
    let report = RunReport::from_events(&order_list_events());
    let (chain, total) = summary::critical_path(&report);
    assert_eq!(
        chain,
        vec![
            "master_order_list",
            "order_list_model",
            "order_book_pdf",
            "tell_teams"
        ]
    );
    assert!((total - 181.2).abs() < 1e-6, "{total}");
    let text = summary::render(
        &report,
        &[
            ("report", PathBuf::from("out/run.json")),
            ("junit", PathBuf::from("out/junit.xml")),
        ],
    );
    insta::assert_snapshot!("summary_order_list", text);
}

#[test]
fn summary_table_fits_80_and_120_columns_with_ids_whole_elsewhere() {
    let mut report = RunReport::from_events(&order_list_events());
    // Real remote ids: a Power Automate run id, a refresh requestId, an export id.
    let ids = [
        ("master_order_list", "08584538215938427371355542101CU112"),
        ("order_list_model", "5bd3cd5e-4ae1-4b9c-b1c8-1f4a6d1e2c3b"),
        ("order_book_pdf", "Mi9C5419i2rTgEkoLQgpIjBhdDN8Tz1=="),
    ];
    for (step, id) in ids {
        let s = report.steps.iter_mut().find(|s| s.id == step).unwrap();
        for a in &mut s.attempts {
            a.remote_id = Some(id.to_string());
        }
    }
    let reports = [("report", PathBuf::from("out/run.json"))];
    for width in [80, 120] {
        let text = summary::render_for_width(&report, &reports, Some(width));
        let table: Vec<&str> = text
            .lines()
            .skip(1)
            .take_while(|l| !l.starts_with("counts:"))
            .collect();
        assert!(table.len() >= 6, "{text}");
        for line in text.lines() {
            assert!(
                line.chars().count() <= width,
                "{width} columns: {} wide: {line}",
                line.chars().count()
            );
        }
        insta::assert_snapshot!(format!("summary_order_list_{width}_columns"), text);
    }
    // Without a terminal (logs, CI) and in the reports, the ids stay whole.
    let whole = summary::render(&report, &reports);
    for (_, id) in ids {
        assert!(whole.contains(id), "{whole}");
    }
}

#[test]
fn json_report_shape() {
    let report = RunReport::from_events(&order_list_events());
    assert_eq!(report.counts.timed_out, 1);
    let model = report.step("order_list_model").unwrap();
    assert_eq!(model.attempts.len(), 2);
    assert_eq!(model.attempts[0].error.as_deref(), Some(SQL_ERROR));
    assert_eq!(
        model.error, None,
        "a step that succeeded in the end has no error"
    );
    insta::assert_json_snapshot!("report_order_list", report);
}

#[test]
fn report_round_trips_and_validates_against_the_committed_schema() {
    let report = RunReport::from_events(&order_list_events());
    let json = serde_json::to_value(&report).unwrap();
    let schema = report::json_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&json)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let back: RunReport = serde_json::from_value(json).unwrap();
    assert_eq!(back.steps.len(), report.steps.len());
    assert_eq!(back.counts, report.counts);
}

#[test]
fn report_schema_file_is_in_sync() {
    let path = crate::common::repo().join("schemas/pbibatch-report.schema.json");
    let generated = serde_json::to_string_pretty(&report::json_schema()).unwrap() + "\n";
    if std::env::var_os("PBIBATCH_UPDATE_SCHEMAS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "schemas/pbibatch-report.schema.json is stale: run `PBIBATCH_UPDATE_SCHEMAS=1 cargo test report_schema_file_is_in_sync`"
    );
}

#[test]
fn a_cut_short_stream_still_gives_a_complete_report() {
    let events = order_list_events();
    // The program went down while the model's first attempt ran.
    let cut = &events[..8];
    let report = RunReport::from_events(cut);
    assert_eq!(report.status, RunStatus::Cancelled);
    assert_eq!(report.counts.succeeded, 1);
    assert_eq!(report.counts.cancelled, 4);
    let model = report.step("order_list_model").unwrap();
    assert_eq!(model.attempts.len(), 1);
    assert_eq!(model.attempts[0].status, StepStatus::Cancelled);
    assert_eq!(model.attempts[0].remote_id.as_deref(), Some("req-1"));
}

#[tokio::test]
async fn reporters_drain_the_channel_and_write_the_report_atomically() {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = Reporters::new()
        .with_lines(Box::new(std::io::sink()))
        .spawn(rx);
    for e in order_list_events() {
        tx.send(e).unwrap();
    }
    drop(tx);
    let report = task.await.unwrap();
    assert_eq!(report, RunReport::from_events(&order_list_events()));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/out/run.json");
    report.write_json(&path).unwrap();
    let back: RunReport = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(back.run_id, "run-20260102");
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "no temporary file is left: {leftovers:?}"
    );
}

/// A model refresh expected to take 30 min that took 48 min 12 s, flagged at 30 min.
fn late_events() -> Vec<RunEvent> {
    use pbibatch::event::{Expected, ExpectedFrom};
    let mut model = info("model", "dataset", "Data Admin / ORDER_LIST", &[]);
    model.expected = Some(Expected {
        secs: Some(1800.0),
        from: ExpectedFrom::Stated,
        usual_secs: None,
        runs: None,
        on_overrun: pbibatch::job::model::OnOverrun::Warn,
    });
    let kinds: Vec<(f64, RunEventKind)> = vec![
        (
            0.0,
            RunEventKind::RunStarted {
                run_id: "run-late".into(),
                job: "nightly".into(),
                job_file: "nightly.yaml".into(),
                steps: vec![model],
                resumed_from: None,
            },
        ),
        (0.0, started("model", 1)),
        (
            1800.0,
            RunEventKind::StepOverran {
                step: "model".into(),
                elapsed: Duration::from_secs(1800),
            },
        ),
        (
            2892.0,
            finished("model", 1, StepStatus::Succeeded, None, None, None),
        ),
        (2892.0, {
            let mut done = step_done("model", StepStatus::Succeeded, None, 1);
            if let RunEventKind::StepFinished { overran, .. } = &mut done {
                *overran = true;
            }
            done
        }),
        (
            2892.0,
            RunEventKind::RunFinished {
                status: RunStatus::Succeeded,
                counts: Counts::default(),
                duration: Duration::ZERO,
            },
        ),
    ];
    numbered(kinds)
}

#[test]
fn a_late_step_shows_in_the_lines_the_live_display_and_the_report() {
    let events = late_events();
    let mut lines = LineReporter::new(Vec::new());
    for e in &events {
        lines.apply(e).unwrap();
    }
    let text = String::from_utf8(lines.into_inner()).unwrap();
    assert!(
        text.contains("2026-01-02T03:30:00.000Z model: still running after 30m 00s, past its expected duration 30m 00s (stated)"),
        "{text}"
    );
    assert!(
        text.contains("model: succeeded in 48m 12s (overran: expected at most 30m 00s (stated))"),
        "{text}"
    );

    let mut json = LineReporter::json(Vec::new());
    for e in &events {
        json.apply(e).unwrap();
    }
    let records = String::from_utf8(json.into_inner()).unwrap();
    let overran: serde_json::Value = records
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["event"] == "step_overran")
        .unwrap_or_else(|| panic!("{records}"));
    assert_eq!(
        (&overran["level"], &overran["step"]),
        (&"WARN".into(), &"model".into())
    );

    let mut model = ProgressModel::new(false);
    let changes: Vec<Change> = events.iter().flat_map(|e| model.apply(e)).collect();
    assert!(changes.contains(&Change::Print(
        "⏱ model still running after 30m 00s, past its expected duration 30m 00s (stated)".into()
    )));
    assert!(
        changes.iter().any(
            |c| matches!(c, Change::Show { line, .. } if line.starts_with("model · ⏱ late · "))
        ),
        "{changes:?}"
    );
    assert!(changes.contains(&Change::Print(
        "✓ model (dataset Data Admin / ORDER_LIST) succeeded in 48m 12s ⏱ overran: expected at most 30m 00s (stated)".into()
    )));

    let report = RunReport::from_events(&events);
    let step = report.step("model").unwrap();
    assert!(step.overran);
    assert_eq!(
        step.warning.as_deref(),
        Some("overran: took 48m 12s, expected at most 30m 00s (stated)")
    );
    let text = summary::render(&report, &[]);
    assert!(
        text.contains("late: model overran: took 48m 12s, expected at most 30m 00s (stated)"),
        "{text}"
    );
}

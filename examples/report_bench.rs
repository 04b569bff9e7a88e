//! Reporter figures (a bench, not a test): how long each output takes to render for a large
//! synthetic run, and how big it is.
//!
//! ```text
//! cargo run --release --example report_bench -- 10000
//! ```
//!
//! The run has `N` steps in a chain of waves of 50, each with one progress update and one
//! finish; every 100th step fails once before succeeding and every 250th fails for good (its
//! dependents then end `upstream_failed`), so every branch of every renderer is exercised.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use pbibatch::event::{
    AttemptUpdate, Counts, RunEvent, RunEventKind, RunStatus, StepInfo, StepStatus, stamp,
};
use pbibatch::reporter::lines::LineReporter;
use pbibatch::reporter::progress::ProgressModel;
use pbibatch::reporter::report::RunReport;
use pbibatch::reporter::{junit, kestra, markdown, summary};

fn events(n: usize) -> Vec<RunEvent> {
    let base = Utc.with_ymd_and_hms(2026, 1, 2, 3, 0, 0).unwrap();
    let mut kinds = Vec::new();
    let id = |i: usize| format!("step_{i:05}");
    let deps = |i: usize| {
        if i >= 50 {
            vec![id(i - 50)]
        } else {
            Vec::new()
        }
    };
    kinds.push(RunEventKind::RunStarted {
        run_id: "bench".into(),
        job: "bench".into(),
        job_file: "bench.yaml".into(),
        steps: (0..n)
            .map(|i| StepInfo {
                id: id(i),
                step_type: "dataset".into(),
                resource: format!("Workspace / Model {i}"),
                depends_on: deps(i),
                expected: None,
            })
            .collect(),
        resumed_from: None,
    });
    let mut failed = vec![false; n];
    let mut counts = [0u32; 6];
    for i in 0..n {
        if i >= 50 && failed[i - 50] {
            failed[i] = true;
            counts[4] += 1;
            kinds.push(RunEventKind::StepFinished {
                step: id(i),
                status: StepStatus::UpstreamFailed,
                reason: Some(format!("dependency `{}` failed", id(i - 50))),
                attempts: 0,
                adopted: false,
                duration: None,
                counts: Counts::default(),
                running: 0,
                overran: false,
            });
            continue;
        }
        let attempts = if i % 100 == 99 { 2 } else { 1 };
        for a in 1..=attempts {
            kinds.push(RunEventKind::AttemptStarted {
                step: id(i),
                attempt: a,
            });
            kinds.push(RunEventKind::StepProgress {
                step: id(i),
                attempt: a,
                update: AttemptUpdate {
                    remote_status: Some("Unknown".into()),
                    remote_id: Some(format!("req-{i}-{a}")),
                    ..AttemptUpdate::default()
                },
            });
            let fails = (a < attempts) || i % 250 == 249;
            kinds.push(RunEventKind::AttemptFinished {
                step: id(i),
                attempt: a,
                status: if fails {
                    StepStatus::Failed
                } else {
                    StepStatus::Succeeded
                },
                error: fails.then(|| "DataSource.Error: login failed".to_string()),
                remote_id: Some(format!("req-{i}-{a}")),
                retry_in: (a < attempts).then_some(Duration::from_secs(30)),
            });
        }
        let fail = i % 250 == 249;
        failed[i] = fail;
        counts[if fail { 1 } else { 0 }] += 1;
        kinds.push(RunEventKind::StepFinished {
            step: id(i),
            status: if fail {
                StepStatus::Failed
            } else {
                StepStatus::Succeeded
            },
            reason: fail.then(|| "DataSource.Error: login failed".to_string()),
            attempts,
            adopted: false,
            duration: None,
            counts: Counts::default(),
            running: 0,
            overran: false,
        });
    }
    kinds.push(RunEventKind::RunFinished {
        status: RunStatus::Failed,
        counts: Counts::default(),
        duration: Duration::ZERO,
    });
    let mut events: Vec<RunEvent> = kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| RunEvent {
            seq: i as u64,
            at: base + chrono::Duration::milliseconds(i as i64 * 250),
            kind,
        })
        .collect();
    stamp(&mut events);
    events
}

fn timed<T>(label: &str, f: impl FnOnce() -> T, size: impl Fn(&T) -> usize) -> T {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    println!(
        "{label:<22} {:>9.2} ms {:>12} bytes",
        took.as_secs_f64() * 1000.0,
        size(&out)
    );
    out
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let events = events(n);
    println!("{n} steps, {} events", events.len());
    let report = timed(
        "fold (RunReport)",
        || RunReport::from_events(&events),
        |_| 0,
    );
    timed(
        "log lines",
        || {
            let mut lines = LineReporter::new(Vec::new());
            for e in &events {
                let _ = lines.apply(e);
            }
            lines.into_inner()
        },
        Vec::len,
    );
    timed(
        "progress model",
        || {
            let mut model = ProgressModel::default();
            events.iter().map(|e| model.apply(e).len()).sum::<usize>()
        },
        |_| 0,
    );
    timed(
        "json report",
        || serde_json::to_string_pretty(&report).unwrap_or_default(),
        String::len,
    );
    timed(
        "junit xml",
        || junit::render(&report).unwrap_or_default(),
        String::len,
    );
    let files = [("report", Path::new("run.json"))];
    timed(
        "markdown + gantt",
        || markdown::render(&report, &files),
        String::len,
    );
    timed(
        "kestra lines",
        || kestra::render(&report, &files),
        String::len,
    );
    timed(
        "summary table",
        || summary::render(&report, &[]),
        String::len,
    );
}

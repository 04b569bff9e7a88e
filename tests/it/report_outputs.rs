//! `--junit`, `--summary`, `--kestra` and the live progress, rendered from synthetic event
//! streams (fixed timestamps and ids, so snapshots are stable), and read back by real
//! consumers (Python's `xml.etree` for JUnit, a JSON parser for Kestra's lines).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressDrawTarget, TermLike};
use pbibatch::event::{
    AttemptUpdate, Counts, RunEvent, RunEventKind, RunStatus, StepInfo, StepStatus,
};
use pbibatch::reporter::lines::LineReporter;
use pbibatch::reporter::progress::{Change, ProgressModel, ProgressReporter};
use pbibatch::reporter::report::RunReport;
use pbibatch::reporter::{ReportPaths, junit, kestra, markdown, summary};

use crate::reporter::{at, numbered, order_list_events};

fn paths() -> Vec<(&'static str, PathBuf)> {
    vec![
        ("report", PathBuf::from("out/run.json")),
        ("junit", PathBuf::from("out/junit.xml")),
        ("summary", PathBuf::from("out/summary.md")),
    ]
}

fn borrowed<'a>(paths: &'a [(&'static str, PathBuf)]) -> Vec<(&'static str, &'a Path)> {
    paths.iter().map(|(k, p)| (*k, p.as_path())).collect()
}

const LOGIN_FAILED: &str = "DataSource.Error: Microsoft SQL: Login failed for user 'svc_pbi'.\u{2028}(activity 4f1c)\nDetails: reason=credentials | code=18456 <sql01>";

/// A run whose model refresh fails for good (both attempts), so its report is not run and the
/// run fails. The remote message has a pipe, angle brackets, a line break and a U+2028, to
/// test escaping in every output.
fn failing_events() -> Vec<RunEvent> {
    use StepStatus::*;
    let error = LOGIN_FAILED.to_string();
    let kinds = vec![
        (
            0.0,
            RunEventKind::RunStarted {
                run_id: "run-fail".into(),
                job: "order_list".into(),
                job_file: "jobs/order_list.yaml".into(),
                steps: vec![
                    StepInfo {
                        id: "order_list_model".into(),
                        step_type: "dataset".into(),
                        resource: "Data Admin / ORDER_LIST".into(),
                        depends_on: vec![],
                        expected: None,
                    },
                    StepInfo {
                        id: "order_book_pdf".into(),
                        step_type: "report".into(),
                        resource: "Data Admin / Order Book".into(),
                        depends_on: vec!["order_list_model".into()],
                        expected: None,
                    },
                ],
                resumed_from: None,
            },
        ),
        (
            0.0,
            RunEventKind::AttemptStarted {
                step: "order_list_model".into(),
                attempt: 1,
            },
        ),
        (
            1.0,
            RunEventKind::StepProgress {
                step: "order_list_model".into(),
                attempt: 1,
                update: AttemptUpdate {
                    remote_status: Some("Unknown".into()),
                    remote_id: Some("req-1".into()),
                    ..AttemptUpdate::default()
                },
            },
        ),
        (
            10.0,
            RunEventKind::AttemptFinished {
                step: "order_list_model".into(),
                attempt: 1,
                status: Failed,
                error: Some(error.clone()),
                remote_id: Some("req-1".into()),
                retry_in: Some(std::time::Duration::from_secs(5)),
            },
        ),
        (
            15.0,
            RunEventKind::AttemptStarted {
                step: "order_list_model".into(),
                attempt: 2,
            },
        ),
        (
            25.5,
            RunEventKind::AttemptFinished {
                step: "order_list_model".into(),
                attempt: 2,
                status: Failed,
                error: Some(error.clone()),
                remote_id: Some("req-2".into()),
                retry_in: None,
            },
        ),
        (
            25.5,
            RunEventKind::StepFinished {
                step: "order_list_model".into(),
                status: Failed,
                reason: Some(error.clone()),
                attempts: 2,
                adopted: false,
                duration: None,
                counts: Counts::default(),
                running: 0,
                overran: false,
            },
        ),
        (
            25.5,
            RunEventKind::StepFinished {
                step: "order_book_pdf".into(),
                status: UpstreamFailed,
                reason: Some(
                    "trigger rule all_success: dependency `order_list_model` failed".into(),
                ),
                attempts: 0,
                adopted: false,
                duration: None,
                counts: Counts::default(),
                running: 0,
                overran: false,
            },
        ),
        (
            25.5,
            RunEventKind::RunFinished {
                status: RunStatus::Failed,
                counts: Counts::default(),
                duration: Duration::ZERO,
            },
        ),
    ];
    numbered(kinds)
}

/// What Python's `xml.etree` (a real, strict XML parser) reads from a JUnit file: per test
/// case `name status message`, and the suite's counters checked against its children.
fn python_reads_junit(path: &Path) -> String {
    let script = r#"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
suites = root.findall("testsuite")
assert len(suites) == 1, len(suites)
suite = suites[0]
cases = suite.findall("testcase")
failures = [c for c in cases if c.find("failure") is not None]
skipped = [c for c in cases if c.find("skipped") is not None]
errors = [c for c in cases if c.find("error") is not None]
assert int(suite.get("tests")) == len(cases), (suite.get("tests"), len(cases))
assert int(suite.get("failures")) == len(failures)
assert int(suite.get("errors")) == len(errors) == 0
assert int(root.get("tests")) == len(cases)
assert int(root.get("failures")) == len(failures)
float(suite.get("time"))
props = {p.get("name"): p.get("value") for p in suite.find("properties")}
print("suite", suite.get("name"), "run_id", props["run_id"], "status", props["status"])
for c in cases:
    float(c.get("time"))
    for kind in ("failure", "skipped"):
        el = c.find(kind)
        if el is not None:
            print(c.get("name"), kind, el.get("type"), "|", el.get("message"), "|", (el.text or "").replace("\n", "\\n"))
            break
    else:
        print(c.get("name"), "passed")
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .expect("python3 is needed to read the JUnit file back");
    assert!(
        out.status.success(),
        "python could not read {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn junit_one_suite_per_job_one_case_per_step() {
    let report = RunReport::from_events(&order_list_events());
    let xml = junit::render(&report).unwrap();
    insta::assert_snapshot!("junit_order_list", xml);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junit.xml");
    junit::write(&report, &path).unwrap();
    let read = python_reads_junit(&path);
    assert_eq!(
        read,
        "suite order_list run_id run-20260102 status failed\n\
         master_order_list passed\n\
         order_list_model passed\n\
         order_book_pdf failure timed_out | timed out after 1m: export cancelled | timed out after 1m: export cancelled\n\
         archive_pdf skipped upstream_failed | trigger rule all_success: dependency `order_book_pdf` failed | trigger rule all_success: dependency `order_book_pdf` failed\n\
         tell_teams passed\n"
    );
}

#[test]
fn markdown_headline_table_and_gantt() {
    let report = RunReport::from_events(&order_list_events());
    let paths = paths();
    let text = markdown::render(&report, &borrowed(&paths));
    insta::assert_snapshot!("markdown_order_list", text);
    // One bar per step that ran, with its real start and end (Unix milliseconds).
    for step in report.steps.iter().filter(|s| s.started_at.is_some()) {
        let start = step.started_at.unwrap().timestamp_millis();
        let end = step.finished_at.unwrap().timestamp_millis();
        assert!(
            text.contains(&format!("{start}, {end}")),
            "{} has no bar {start}..{end}",
            step.id
        );
    }
}

#[test]
fn summary_file_is_also_appended_to_github_step_summary() {
    let report = RunReport::from_events(&order_list_events());
    let dir = tempfile::tempdir().unwrap();
    let gh = dir.path().join("step_summary.md");
    std::fs::write(&gh, "# earlier step\n").unwrap();
    let paths = ReportPaths {
        summary: Some(dir.path().join("out/summary.md")),
        github_step_summary: Some(gh.clone()),
        ..ReportPaths::default()
    };
    assert!(paths.write_all(&report).is_empty());
    let written = std::fs::read_to_string(dir.path().join("out/summary.md")).unwrap();
    let appended = std::fs::read_to_string(&gh).unwrap();
    assert_eq!(appended, format!("# earlier step\n\n{written}"));

    // Without --summary, GITHUB_STEP_SUMMARY is left alone.
    let untouched = dir.path().join("other_step_summary.md");
    let paths = ReportPaths {
        github_step_summary: Some(untouched.clone()),
        ..ReportPaths::default()
    };
    assert!(paths.write_all(&report).is_empty());
    assert!(!untouched.exists());
}

#[test]
fn kestra_lines_match_kestras_pattern_and_agree_with_the_report() {
    let report = RunReport::from_events(&order_list_events());
    let paths = paths();
    let text = kestra::render(&report, &borrowed(&paths));
    insta::assert_snapshot!("kestra_order_list", text);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    let outputs = kestra_json(lines[0]);
    let metrics = kestra_json(lines[1]);
    let outputs = &outputs["outputs"];
    assert_eq!(outputs["status"], "failed");
    assert_eq!(
        outputs["failed_steps"],
        serde_json::json!(["order_book_pdf"])
    );
    assert_eq!(
        outputs["errors"]["order_book_pdf"],
        "timed out after 1m: export cancelled"
    );
    assert_eq!(
        serde_json::from_value::<pbibatch::event::Counts>(outputs["counts"].clone()).unwrap(),
        report.counts
    );
    assert_eq!(outputs["reports"]["junit"], "out/junit.xml");
    let metrics = metrics["metrics"].as_array().unwrap();
    for m in metrics {
        assert!(m["name"].is_string());
        assert!(m["type"] == "counter" || m["type"] == "timer", "{m}");
        assert!(m["value"].is_number(), "{m}");
        for (_, v) in m["tags"].as_object().unwrap() {
            assert!(v.is_string(), "Kestra tags are strings: {m}");
        }
    }
    let counter = |name: &str| {
        metrics
            .iter()
            .find(|m| m["name"] == name)
            .map(|m| m["value"].as_u64().unwrap())
    };
    assert_eq!(counter("steps.succeeded"), Some(3));
    assert_eq!(counter("steps.timed_out"), Some(1));
    assert_eq!(counter("steps.cancelled"), Some(0));
    let step_timers = metrics
        .iter()
        .filter(|m| m["name"] == "step.duration")
        .count();
    assert_eq!(step_timers, 4, "one timer per step that ran");
}

/// The JSON inside one `::...::` line, checked the way Kestra matches it: the whole line is
/// `::{...}::` and nothing in it is a line terminator for Java's `.` (`\n`, `\r`, U+0085,
/// U+2028, U+2029).
fn kestra_json(line: &str) -> serde_json::Value {
    assert!(line.starts_with("::{") && line.ends_with("}::"), "{line}");
    assert!(
        !line.contains(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']),
        "{line:?}"
    );
    serde_json::from_str(&line[2..line.len() - 2]).unwrap()
}

/// Replays the model and writes what a terminal would keep (permanent lines) and, at each
/// event, the running lines, in a stable text form.
fn progress_text(events: &[RunEvent]) -> String {
    let mut model = ProgressModel::default();
    let mut out = String::new();
    for e in events {
        for change in model.apply(e) {
            let line = match change {
                Change::Start { total } => format!("start: {total} steps"),
                Change::Overall { done, tally, eta } => {
                    let eta = if eta { "" } else { " ETA -" };
                    format!("overall: {done} done [{tally}]{eta}")
                }
                Change::Show {
                    step,
                    line,
                    since,
                    retry_at,
                } => {
                    let retry = retry_at
                        .map(|at| format!(" (next attempt at {})", at.format("%H:%M:%S%.3f")))
                        .unwrap_or_default();
                    format!(
                        "running {step} since {}: {line}{retry}",
                        since.format("%H:%M:%S%.3f")
                    )
                }
                Change::Hide { step } => format!("hide {step}"),
                Change::Print(line) => format!("print: {line}"),
            };
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn progress_changes_for_a_run() {
    insta::assert_snapshot!("progress_order_list", progress_text(&order_list_events()));
}

/// An in-memory terminal for indicatif: records what is written, line by line.
#[derive(Debug, Clone, Default)]
struct Screen(Arc<Mutex<Vec<String>>>);

impl TermLike for Screen {
    fn width(&self) -> u16 {
        160
    }
    fn move_cursor_up(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> io::Result<()> {
        self.0.lock().unwrap().push(s.to_string());
        Ok(())
    }
    fn write_str(&self, s: &str) -> io::Result<()> {
        self.0.lock().unwrap().push(s.to_string());
        Ok(())
    }
    fn clear_line(&self) -> io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn progress_reporter_prints_every_finished_step_on_a_terminal() {
    let screen = Screen::default();
    let mut progress = ProgressReporter::with_draw_target(
        ProgressDrawTarget::term_like(Box::new(screen.clone())),
        false,
    );
    for e in order_list_events() {
        progress.apply(&e);
    }
    progress.finish();
    let written = screen.0.lock().unwrap().join("\n");
    for expected in [
        "✓ master_order_list (sas_flow ",
        "↻ order_list_model attempt 1 failed: Refresh failed: DataSource.Error",
        "✓ order_list_model (dataset Data Admin / ORDER_LIST) succeeded in 1m 58s after 2 attempts",
        "✗ order_book_pdf (report Data Admin / Order Book) timed_out in 1m 00s: timed out after 1m: export cancelled",
        "- archive_pdf (webhook https://archive.contoso.com/hook) upstream_failed: trigger rule",
        "✓ tell_teams (webhook ",
    ] {
        assert!(
            written.contains(expected),
            "{expected:?} not in:\n{written}"
        );
    }
    // The bars were drawn too: the overall line and a running step's line.
    assert!(
        written.contains("5/5 steps") || written.contains("/5 steps"),
        "{written}"
    );
}

#[test]
fn many_running_steps_share_one_line_past_the_limit() {
    let n = pbibatch::reporter::progress::MAX_RUNNING_LINES + 3;
    let steps: Vec<StepInfo> = (0..n)
        .map(|i| StepInfo {
            id: format!("s{i}"),
            step_type: "dataset".into(),
            resource: format!("ws / model {i}"),
            depends_on: vec![],
            expected: None,
        })
        .collect();
    let mut events = vec![RunEventKind::RunStarted {
        run_id: "r".into(),
        job: "wide".into(),
        job_file: "wide.yaml".into(),
        steps,
        resumed_from: None,
    }];
    for i in 0..n {
        events.push(RunEventKind::AttemptStarted {
            step: format!("s{i}"),
            attempt: 1,
        });
    }
    let screen = Screen::default();
    let mut progress = ProgressReporter::with_draw_target(
        ProgressDrawTarget::term_like(Box::new(screen.clone())),
        false,
    );
    for (i, kind) in events.into_iter().enumerate() {
        progress.apply(&RunEvent {
            seq: i as u64,
            at: at(0.0),
            kind,
        });
    }
    let written = screen.0.lock().unwrap().join("\n");
    assert!(written.contains("… and 3 more running"), "{written}");
    progress.finish();
}

/// A failing run: the remote error message (not just "failed") reaches every output.
#[test]
fn a_failing_steps_remote_error_reaches_every_output() {
    let events = failing_events();
    let report = RunReport::from_events(&events);
    let needle = "Login failed for user 'svc_pbi'";

    let mut lines = LineReporter::new(Vec::new());
    for e in &events {
        lines.apply(e).unwrap();
    }
    let lines = String::from_utf8(lines.into_inner()).unwrap();
    let progress = progress_text(&events);
    let table = summary::render(&report, &[]);
    let json = serde_json::to_string(&report).unwrap();
    // JUnit read back by the XML parser (the file escapes the quotes).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junit.xml");
    junit::write(&report, &path).unwrap();
    let xml = python_reads_junit(&path);
    let md = markdown::render(&report, &[]);
    let kestra = kestra::render(&report, &[]);
    for (name, text) in [
        ("lines", &lines),
        ("progress", &progress),
        ("summary table", &table),
        ("json", &json),
        ("junit", &xml),
        ("markdown", &md),
        ("kestra", &kestra),
    ] {
        assert!(
            text.contains(needle),
            "{name} lacks the remote error:\n{text}"
        );
    }
    // Kestra still matches both lines despite the U+2028 in the message, and the JSON gives
    // the message back whole.
    let outputs = kestra_json(kestra.lines().next().unwrap());
    assert_eq!(
        outputs["outputs"]["errors"]["order_list_model"],
        "DataSource.Error: Microsoft SQL: Login failed for user 'svc_pbi'.\u{2028}(activity 4f1c)"
    );
    kestra_json(kestra.lines().nth(1).unwrap());
    // The Markdown table row stays one row: the pipe and the line break are escaped.
    let row = md
        .lines()
        .find(|l| l.starts_with("| `order_list_model`"))
        .unwrap();
    assert!(
        row.contains("reason=credentials \\| code=18456 &lt;sql01&gt;"),
        "{row}"
    );
    insta::assert_snapshot!("junit_failing_read_back", xml);
    insta::assert_snapshot!("markdown_failing", md);
    insta::assert_snapshot!("kestra_failing", kestra);
}

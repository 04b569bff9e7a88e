//! Every output of a real `pbibatch run --simulate`, checked against each other: the JSON
//! report, JUnit (read by Python's `xml.etree`), the Markdown summary (and its copy in
//! `GITHUB_STEP_SUMMARY`), the Kestra lines, the stderr lines; and the live progress on a
//! pseudo-terminal.

use std::path::Path;
use std::process::{Command, Stdio};

use pbibatch::event::StepStatus;
use pbibatch::reporter::report::RunReport;

use crate::common::{bin, pbibatch, repo, texts};

/// `(step id, outcome)` per `<testcase>` as Python's XML parser reads the file.
fn junit_cases(path: &Path) -> Vec<(String, String)> {
    let script = r#"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
for suite in root.findall("testsuite"):
    for c in suite.findall("testcase"):
        outcome = "passed"
        for kind in ("failure", "skipped", "error"):
            el = c.find(kind)
            if el is not None:
                outcome = kind + ":" + el.get("type") + ":" + (el.get("message") or "")
        print(suite.get("name") + "\t" + c.get("name") + "\t" + outcome)
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .expect("python3 reads the JUnit file");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, '\t');
            let _suite = parts.next().unwrap();
            (
                parts.next().unwrap().to_string(),
                parts.next().unwrap().to_string(),
            )
        })
        .collect()
}

/// The JSON of the `::{...}::` line whose object has `key`.
fn kestra_line(stdout: &str, key: &str) -> serde_json::Value {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("::{{\"{key}\"")))
        .unwrap_or_else(|| panic!("no {key} line in:\n{stdout}"));
    assert!(line.ends_with("}::"), "{line}");
    serde_json::from_str(&line[2..line.len() - 2]).unwrap()
}

/// Checks that the report, JUnit, Markdown and Kestra outputs of the run in `dir` agree.
fn check_outputs_agree(dir: &Path, stdout: &str, stderr: &str) -> RunReport {
    let report: RunReport =
        serde_json::from_str(&std::fs::read_to_string(dir.join("r.json")).unwrap()).unwrap();

    // JUnit: one case per step, in order, with the matching outcome.
    let cases = junit_cases(&dir.join("j.xml"));
    assert_eq!(cases.len(), report.steps.len());
    for ((id, outcome), step) in cases.iter().zip(&report.steps) {
        assert_eq!(id, &step.id);
        let kind = match step.status {
            StepStatus::Succeeded => "passed",
            StepStatus::Failed | StepStatus::TimedOut => "failure",
            _ => "skipped",
        };
        assert!(
            outcome.starts_with(kind),
            "{id}: {outcome} for {}",
            step.status
        );
        if kind != "passed" {
            assert!(outcome.contains(&format!(":{}:", step.status)), "{outcome}");
        }
    }

    // Markdown: the headline status, every count, one row per step with its status.
    let md = std::fs::read_to_string(dir.join("s.md")).unwrap();
    assert!(
        md.contains(&format!(
            "pbibatch `{}`: {}",
            report.job,
            report.status.as_str()
        )),
        "{md}"
    );
    for s in StepStatus::ALL {
        let n = report.counts.get(s);
        assert!(
            md.contains(&format!("{n} {s}")),
            "count {n} {s} missing:\n{md}"
        );
    }
    for step in &report.steps {
        let row = md
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", step.id)))
            .unwrap_or_else(|| panic!("no row for {}", step.id));
        assert!(row.contains(&format!(" {} |", step.status)), "{row}");
    }
    assert!(md.contains("```mermaid\ngantt\n"), "{md}");

    // Kestra: same run, status, counts and report paths.
    let outputs = kestra_line(stdout, "outputs");
    let outputs = &outputs["outputs"];
    assert_eq!(outputs["run_id"], report.run_id.as_str());
    assert_eq!(outputs["status"], report.status.as_str());
    for s in StepStatus::ALL {
        assert_eq!(outputs["counts"][s.as_str()], report.counts.get(s), "{s}");
    }
    assert_eq!(outputs["reports"]["report"], "r.json");
    assert_eq!(outputs["reports"]["junit"], "j.xml");
    assert_eq!(outputs["reports"]["summary"], "s.md");
    let failed: Vec<&str> = report
        .steps
        .iter()
        .filter(|s| matches!(s.status, StepStatus::Failed | StepStatus::TimedOut))
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(outputs["failed_steps"], serde_json::json!(failed));
    let metrics = kestra_line(stdout, "metrics");
    for s in StepStatus::ALL {
        let counter = metrics["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == format!("steps.{s}"))
            .unwrap();
        assert_eq!(counter["value"], report.counts.get(s));
    }
    // Only the two Kestra lines are on stdout.
    assert_eq!(stdout.lines().count(), 2, "{stdout}");

    // stderr: the log lines end with the same counts, then the summary table.
    assert!(
        stderr.contains(&format!(
            "run {} finished: {}",
            report.run_id,
            report.status.as_str()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("counts: {}", report.counts.line())),
        "{stderr}"
    );
    report
}

#[test]
fn order_list_outputs_exist_and_agree() {
    let dir = tempfile::tempdir().unwrap();
    let gh = dir.path().join("github_step_summary.md");
    let out = pbibatch(dir.path())
        .args(["run"])
        .arg(repo().join("jobs/order_list.yaml"))
        .args([
            "--simulate",
            "--report",
            "r.json",
            "--junit",
            "j.xml",
            "--summary",
            "s.md",
            "--kestra",
        ])
        .env("GITHUB_STEP_SUMMARY", &gh)
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let report = check_outputs_agree(dir.path(), &stdout, &stderr);
    assert_eq!(report.counts.succeeded, 3);
    assert_eq!(report.counts.skipped, 1);
    let md = std::fs::read_to_string(dir.path().join("s.md")).unwrap();
    assert_eq!(
        std::fs::read_to_string(&gh).unwrap(),
        format!("\n{md}"),
        "GITHUB_STEP_SUMMARY gets the same Markdown"
    );
}

const FAILING_JOB: &str = r#"
version: 1
name: failing
defaults: { retries: 0, retry_backoff: 1s, poll_interval: 1s }
steps:
  model:
    type: dataset
    workspace: Sales
    dataset: Revenue
  pdf:
    type: report
    workspace: Sales
    report: Revenue Book
    export: { format: PDF, path: out/book.pdf }
    depends_on: [model]
"#;

#[test]
fn a_failing_run_shows_the_remote_error_in_every_output() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.yaml"), FAILING_JOB).unwrap();
    std::fs::write(
        dir.path().join("profile.yaml"),
        "workspaces:\n  Sales:\n    datasets:\n      Revenue: { duration: 0s, outcomes: [{fail: {code: ModelRefreshFailed_CredentialsNotSpecified, message: The credentials provided for the SQL source are invalid}}] }\n",
    )
    .unwrap();
    let out = pbibatch(dir.path())
        .args([
            "run",
            "job.yaml",
            "--simulate",
            "--sim-profile",
            "profile.yaml",
            "--report",
            "r.json",
            "--junit",
            "j.xml",
            "--summary",
            "s.md",
            "--kestra",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let report = check_outputs_agree(dir.path(), &stdout, &stderr);
    assert_eq!(report.counts.failed, 1);
    assert_eq!(report.counts.upstream_failed, 1);
    let needle = "ModelRefreshFailed_CredentialsNotSpecified";
    let junit = junit_cases(&dir.path().join("j.xml"))
        .into_iter()
        .map(|(id, o)| format!("{id} {o}\n"))
        .collect::<String>();
    for (name, text) in [
        ("stderr", stderr.clone()),
        (
            "report",
            std::fs::read_to_string(dir.path().join("r.json")).unwrap(),
        ),
        ("junit", junit),
        (
            "summary",
            std::fs::read_to_string(dir.path().join("s.md")).unwrap(),
        ),
        ("kestra", stdout.clone()),
    ] {
        assert!(
            text.contains(needle),
            "{name} lacks the remote error:\n{text}"
        );
    }
    // The summary table on stderr shows it on the failing step's row, not only in a log line.
    let row = stderr
        .lines()
        .find(|l| l.starts_with("model ") && l.contains(" failed "))
        .unwrap_or_else(|| panic!("no summary row for model:\n{stderr}"));
    assert!(row.contains(needle), "{row}");
}

/// Runs the real binary on a pseudo-terminal through util-linux's `script` (part of every
/// Debian/Ubuntu base system, as `bsdutils`), 120 columns wide, and returns what the
/// terminal received.
fn run_on_a_pty(dir: &Path, progress: &str) -> (Option<i32>, String) {
    let job = repo().join("jobs/order_list.yaml");
    run_args_on_a_pty(
        dir,
        120,
        &format!("run '{}' --simulate --progress {progress}", job.display()),
    )
}

/// `pbibatch ARGS` (shell-quoted) on a pseudo-terminal `cols` wide.
fn run_args_on_a_pty(dir: &Path, cols: u16, args: &str) -> (Option<i32>, String) {
    let probe = Command::new("script").arg("--version").output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "this test needs util-linux's `script` (Debian package bsdutils) to get a pseudo-terminal"
    );
    let inner = format!(
        "stty cols {cols} rows 40; exec '{}' {args}",
        bin().display(),
    );
    let mut cmd = Command::new("script");
    cmd.args([
        "--quiet",
        "--return",
        "--flush",
        "--command",
        &inner,
        "/dev/null",
    ])
    .current_dir(dir)
    .stdin(Stdio::null())
    .env("TERM", "xterm-256color")
    .env("NO_COLOR", "1");
    for (k, _) in std::env::vars() {
        if k.starts_with("AZURE_") || k.starts_with("PBIBATCH_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn live_progress_on_a_pseudo_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let (code, screen) = run_on_a_pty(dir.path(), "auto");
    assert_eq!(code, Some(0), "{screen}");
    // indicatif redrew lines in place (cursor up / clear line), so this was the live display...
    assert!(
        screen.contains("\x1b[1A") && screen.contains("\x1b[2K"),
        "{screen}"
    );
    // ...with the overall bar, running lines with remote status and attempt, and one
    // permanent line per finished step...
    for expected in [
        "4/4 steps",
        "order_list_model · ",
        " · attempt 1 · dataset Data Admin / ORDER_LIST",
        "✓ master_order_list (sas_flow ",
        "✓ order_list_model (dataset Data Admin / ORDER_LIST) succeeded in ",
        "✓ order_book_pdf (report Data Admin / Order Book) succeeded in ",
        "- tell_teams (webhook ",
        "skipped: trigger rule one_failed",
    ] {
        assert!(screen.contains(expected), "{expected:?} not in:\n{screen}");
    }
    // ...instead of the plain log lines, and the final summary still follows.
    assert!(!screen.contains("attempt 1 started"), "{screen}");
    assert!(screen.contains("critical path: "), "{screen}");
    // The flow's SAS signature never reaches the terminal.
    for (i, _) in screen.match_indices("sig=") {
        assert!(
            screen[i..].starts_with("sig=***"),
            "leaked signature: {screen}"
        );
    }

    // `--progress never` on the same terminal: plain lines, no redrawing.
    let (code, plain) = run_on_a_pty(dir.path(), "never");
    assert_eq!(code, Some(0), "{plain}");
    assert!(
        plain.contains("order_list_model: attempt 1 started"),
        "{plain}"
    );
    assert!(!plain.contains("\x1b[1A"), "{plain}");
}

#[test]
fn live_progress_counts_down_a_retry_and_the_summary_fits_80_columns() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("job.yaml"),
        "version: 1\nname: retry_once\ndefaults: { retries: 1, retry_backoff: 3s, poll_interval: 1s }\nsteps:\n  flow:\n    type: sas_flow\n    url: ${env.FLOW_URL}\n  model:\n    type: dataset\n    workspace: Sales\n    dataset: Revenue\n    depends_on: [flow]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("profile.yaml"),
        "workspaces:\n  Sales:\n    datasets:\n      Revenue: { duration: 1s, outcomes: [fail, succeed] }\n",
    )
    .unwrap();
    let (code, screen) = run_args_on_a_pty(
        dir.path(),
        80,
        "run job.yaml --simulate --sim-profile profile.yaml --state none",
    );
    assert_eq!(code, Some(0), "{screen}");
    // The backoff counts down on the step's line...
    assert!(screen.contains("retry in   3s"), "{screen}");
    assert!(
        screen.contains("retry in   2s") || screen.contains("retry in   1s"),
        "{screen}"
    );
    // ...while the ETA is shown as unknown rather than climbing.
    assert!(screen.contains("ETA -"), "{screen}");
    for (i, _) in screen.match_indices("ETA ") {
        let value: String = screen[i + 4..].chars().take_while(|c| *c != '·').collect();
        assert!(
            !value.contains("day") && !value.contains("hour"),
            "ETA {value} in:\n{screen}"
        );
    }
    // A running refresh reads "in progress", not Power BI's raw "Unknown".
    assert!(screen.contains("model · in progress · attempt"), "{screen}");
    assert!(!screen.contains("Unknown"), "{screen}");
    // The final summary (after the last redraw) fits the 80 columns.
    let summary = &screen[screen.rfind("run ").unwrap()..];
    for line in summary.lines() {
        let line = line.trim_end_matches('\r');
        assert!(line.chars().count() <= 80, "{} wide: {line}", line.len());
    }
    assert!(summary.contains("STEP "), "{summary}");
}

#[test]
fn verbose_log_lines_share_one_timestamp_format_and_show_raw_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let out = pbibatch(dir.path())
        .args(["-v", "run"])
        .arg(repo().join("jobs/order_list.yaml"))
        .args(["--simulate", "--state", "none"])
        .output()
        .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let stamp = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ").unwrap();
    let stamped: Vec<&str> = stderr.lines().filter(|l| l.starts_with("20")).collect();
    // Both the run's own lines and tracing's records (the simulator's, at -v).
    assert!(
        stamped.iter().any(|l| l.contains("simulator started")),
        "{stderr}"
    );
    assert!(
        stamped
            .iter()
            .any(|l| l.contains(" started: job order_list")),
        "{stderr}"
    );
    for line in stamped {
        assert!(stamp.is_match(line), "{line}");
    }
    // With -v the service's own word is kept beside the readable one.
    assert!(
        stderr.contains("remote status in progress (Unknown)"),
        "{stderr}"
    );
}

#[test]
fn no_progress_when_stderr_is_not_a_terminal_even_with_always() {
    let dir = tempfile::tempdir().unwrap();
    let out = pbibatch(dir.path())
        .args(["run"])
        .arg(repo().join("jobs/order_list.yaml"))
        .args(["--simulate", "--progress", "always"])
        .output()
        .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("order_list_model: attempt 1 started"),
        "{stderr}"
    );
    assert!(!stderr.contains('\x1b'), "{stderr}");
}

#[test]
fn a_file_that_cannot_be_written_stops_the_run_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    // A plain file where the JUnit file's folder should be: found before the first request
    // (exit 2, nothing sent, nothing written), not after the refreshes.
    std::fs::write(dir.path().join("blocked"), "not a folder").unwrap();
    let out = pbibatch(dir.path())
        .args(["run"])
        .arg(repo().join("jobs/order_list.yaml"))
        .args([
            "--simulate",
            "--report",
            "r.json",
            "--junit",
            "blocked/j.xml",
            "--summary",
            "s.md",
            "--kestra",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("cannot write --junit blocked/j.xml: not a directory (blocked is a file)"),
        "{stderr}"
    );
    assert!(!stderr.contains("attempt 1 started"), "{stderr}");
    assert!(!dir.path().join("r.json").exists());
    assert!(!dir.path().join("s.md").exists());
    assert!(stdout.is_empty(), "{stdout}");
}

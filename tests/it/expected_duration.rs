//! `expected_duration` / `on_overrun` end to end with `--simulate`: a step running past its
//! expected duration (stated, or learned from the service's run history or from the state
//! store) is flagged live, before it ends, and in every output; `on_overrun: fail` fails the
//! run without rewriting the step's own status; and the job file's mistakes are refused
//! before anything is sent.

use std::path::Path;

use serde_json::Value;

use crate::common::{pbibatch, texts};

/// Sales/Revenue refreshes in `revenue`, Sales/Orders in 100 ms.
fn profile(revenue: &str) -> String {
    format!(
        "workspaces:\n  Sales:\n    datasets:\n      Revenue: {{ {revenue} }}\n      Orders: {{ duration: 100ms }}\n"
    )
}

fn job(revenue_keys: &str) -> String {
    format!(
        "version: 1\nname: late\ndefaults: {{ poll_interval: 1s }}\nsteps:\n  revenue:\n    type: dataset\n    workspace: Sales\n    dataset: Revenue\n{revenue_keys}  orders:\n    type: dataset\n    workspace: Sales\n    dataset: Orders\n    depends_on: [revenue]\n    expected_duration: 1h\n"
    )
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(dir: &Path, extra: &[&str]) -> Run {
    let out = pbibatch(dir)
        .args([
            "run",
            "job.yaml",
            "--simulate",
            "--sim-profile",
            "profile.yaml",
            "--report",
            "run.json",
            "--junit",
            "run.xml",
            "--summary",
            "run.md",
        ])
        .args(extra)
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    Run {
        code: out.status.code(),
        stdout,
        stderr,
    }
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

fn step(report: &Value, id: &str) -> Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id}: {report}"))
        .clone()
}

fn setup(job_text: &str, profile_text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.yaml"), job_text).unwrap();
    std::fs::write(dir.path().join("profile.yaml"), profile_text).unwrap();
    dir
}

#[test]
fn a_step_past_its_stated_duration_is_flagged_live_and_in_every_output() {
    let dir = setup(
        &job("    expected_duration: 1s\n"),
        &profile("duration: 3s"),
    );
    let r = run(dir.path(), &["--kestra"]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);

    // Live: flagged while the refresh still runs, before its end line.
    let flagged = r
        .stderr
        .find("revenue: still running after 1.0s, past its expected duration 1.0s (stated)")
        .unwrap_or_else(|| panic!("no live flag:\n{}", r.stderr));
    let ended = r
        .stderr
        .find("revenue: succeeded in")
        .unwrap_or_else(|| panic!("no end line:\n{}", r.stderr));
    assert!(flagged < ended, "{}", r.stderr);
    assert!(
        r.stderr[ended..]
            .lines()
            .next()
            .unwrap()
            .contains("(overran: expected at most 1.0s (stated))"),
        "{}",
        r.stderr
    );

    // The report: the step keeps the service's outcome, with the flag and the warning.
    let report: Value = serde_json::from_str(&read(dir.path(), "run.json")).unwrap();
    assert_eq!(report["status"], "succeeded");
    let revenue = step(&report, "revenue");
    assert_eq!(revenue["status"], "succeeded");
    assert_eq!(revenue["overran"], true);
    assert_eq!(revenue["expected_duration"]["secs"], 1.0);
    assert_eq!(revenue["expected_duration"]["from"], "stated");
    assert_eq!(revenue["expected_duration"]["on_overrun"], "warn");
    let warning = revenue["warning"].as_str().unwrap();
    assert!(
        warning.starts_with("overran: took ")
            && warning.ends_with("expected at most 1.0s (stated)"),
        "{warning}"
    );
    assert!(revenue["duration_secs"].as_f64().unwrap() > 1.0);
    // A step within its expected duration is not flagged.
    let orders = step(&report, "orders");
    assert_eq!(orders.get("overran"), None, "{orders}");
    assert_eq!(orders["expected_duration"]["secs"], 3600.0);

    // JUnit: passed, with the properties and the warning on stderr.
    let xml = read(dir.path(), "run.xml");
    assert!(
        xml.contains(r#"<property name="overran" value="true"/>"#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<property name="expected_from" value="stated"/>"#),
        "{xml}"
    );
    assert!(xml.contains("<system-err>warning: overran: took"), "{xml}");
    assert!(!xml.contains("<failure"), "{xml}");

    // Markdown: the "Late steps" table.
    let md = read(dir.path(), "run.md");
    assert!(md.contains("### Late steps"), "{md}");
    assert!(md.contains("| `revenue` |"), "{md}");
    assert!(md.contains("1.0s (stated) | ⏱️ warn |"), "{md}");

    // Kestra: `outputs.overran` and the counter.
    let outputs = r
        .stdout
        .lines()
        .find(|l| l.starts_with("::{\"outputs\""))
        .unwrap_or_else(|| panic!("no outputs line:\n{}", r.stdout));
    let outputs: Value =
        serde_json::from_str(outputs.trim_start_matches("::").trim_end_matches("::")).unwrap();
    let late = &outputs["outputs"]["overran"]["revenue"];
    assert_eq!(late["expected_secs"], 1.0, "{outputs}");
    assert_eq!(late["on_overrun"], "warn");
    assert!(late["took_secs"].as_f64().unwrap() > 1.0);
    assert!(outputs["outputs"]["overran"].get("orders").is_none());
    let metrics = r
        .stdout
        .lines()
        .find(|l| l.starts_with("::{\"metrics\""))
        .unwrap();
    let metrics: Value =
        serde_json::from_str(metrics.trim_start_matches("::").trim_end_matches("::")).unwrap();
    let overran = metrics["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "steps.overran")
        .unwrap_or_else(|| panic!("no steps.overran: {metrics}"));
    assert_eq!(
        (&overran["type"], &overran["value"]),
        (&"counter".into(), &1.into())
    );

    // The state store keeps the flag: `show` rebuilds it.
    let out = pbibatch(dir.path())
        .args(["show", "last", "--format", "json"])
        .output()
        .unwrap();
    let shown: Value = serde_json::from_str(&texts(&out).0).unwrap();
    let revenue = step(&shown, "revenue");
    assert_eq!(revenue["overran"], true, "{revenue}");
    assert_eq!(revenue["expected_duration"]["from"], "stated");
    assert!(
        revenue["warning"]
            .as_str()
            .unwrap()
            .starts_with("overran: took")
    );
}

#[test]
fn on_overrun_fail_fails_the_run_but_keeps_the_step_and_its_dependents() {
    let dir = setup(
        &job("    expected_duration: 1s\n    on_overrun: fail\n"),
        &profile("duration: 2500ms"),
    );
    let r = run(dir.path(), &[]);
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);
    let report: Value = serde_json::from_str(&read(dir.path(), "run.json")).unwrap();
    assert_eq!(report["status"], "failed");
    // The refresh succeeded in the service: the report says so; the dependent ran.
    let revenue = step(&report, "revenue");
    assert_eq!(revenue["status"], "succeeded");
    assert_eq!(revenue["overran"], true);
    assert!(
        revenue["warning"]
            .as_str()
            .unwrap()
            .ends_with("(stated) (on_overrun: fail)"),
        "{revenue}"
    );
    assert_eq!(step(&report, "orders")["status"], "succeeded");
    assert_eq!(report["counts"]["failed"], 0);

    let xml = read(dir.path(), "run.xml");
    assert!(
        xml.contains(r#"<failure message="overran: took"#) && xml.contains(r#"type="overran""#),
        "{xml}"
    );
    let md = read(dir.path(), "run.md");
    assert!(md.contains("| ❌ fail |"), "{md}");
    // The terminal summary names the late step under the counts.
    assert!(
        r.stderr.contains("late: revenue overran: took"),
        "{}",
        r.stderr
    );

    // `-q` prints why the run failed although no step did.
    let r = run(dir.path(), &["-q"]);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.contains("error: step revenue overran: took")
            && r.stderr.contains("(on_overrun: fail)"),
        "{}",
        r.stderr
    );
}

#[test]
fn auto_learns_from_the_service_history_on_a_first_run() {
    // Five past refreshes of 1 s: usual 1 s, flagged past 1.5 s; this one takes 3 s.
    let dir = setup(
        &job("    expected_duration: auto\n"),
        &profile("duration: 3s, past_runs: 5, past_duration: 1s"),
    );
    let r = run(dir.path(), &["--state", "none"]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    let report: Value = serde_json::from_str(&read(dir.path(), "run.json")).unwrap();
    let e = &step(&report, "revenue")["expected_duration"];
    assert_eq!(e["from"], "service", "{e}");
    assert_eq!(e["runs"], 5);
    assert_eq!(e["usual_secs"], 1.0);
    assert_eq!(e["secs"], 1.5);
    assert_eq!(step(&report, "revenue")["overran"], true);
    assert!(
        r.stderr.contains(
            "past its expected duration 1.5s (1.5 × usual 1.0s over 5 runs in the service)"
        ),
        "{}",
        r.stderr
    );
}

#[test]
fn auto_without_three_past_runs_flags_nothing_and_says_so() {
    let dir = setup(
        &job("    expected_duration: auto\n"),
        &profile("duration: 1500ms, past_runs: 2, past_duration: 100ms"),
    );
    let r = run(dir.path(), &["--state", "none", "-v"]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    let report: Value = serde_json::from_str(&read(dir.path(), "run.json")).unwrap();
    let revenue = step(&report, "revenue");
    assert_eq!(revenue["expected_duration"]["from"], "none", "{revenue}");
    assert_eq!(revenue["expected_duration"]["runs"], 2);
    assert!(revenue["expected_duration"].get("secs").is_none());
    assert_eq!(revenue.get("overran"), None);
    assert!(
        r.stderr.contains(
            "revenue: `expected_duration: auto` has 2 of the 3 past successful runs it learns from"
        ),
        "{}",
        r.stderr
    );
}

#[test]
fn auto_learns_from_the_local_history_of_the_same_target() {
    let dir = setup(
        &job("    expected_duration: auto\n"),
        &profile("duration: 100ms"),
    );
    // Three quick runs teach the store the step's usual time.
    for n in 0..3 {
        let r = run(dir.path(), &[]);
        assert_eq!(r.code, Some(0), "run {n}: {}{}", r.stdout, r.stderr);
        let report: Value = serde_json::from_str(&read(dir.path(), "run.json")).unwrap();
        let e = &step(&report, "revenue")["expected_duration"];
        assert_eq!(e["from"], "none", "run {n}: {e}");
        assert_eq!(e["runs"], n, "run {n}: {e}");
    }
    let report: Value = serde_json::from_str(&read(dir.path(), "run.json")).unwrap();
    let usual = step(&report, "revenue")["duration_secs"].as_f64().unwrap();
    // Then a refresh far slower than those.
    std::fs::write(
        dir.path().join("profile.yaml"),
        profile(&format!("duration: {}ms", (usual * 4000.0) as u64 + 2000)),
    )
    .unwrap();
    let r = run(dir.path(), &[]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    let report: Value = serde_json::from_str(&read(dir.path(), "run.json")).unwrap();
    let revenue = step(&report, "revenue");
    let e = &revenue["expected_duration"];
    assert_eq!(e["from"], "history", "{e}");
    assert_eq!(e["runs"], 3);
    assert_eq!(revenue["overran"], true, "{revenue}");
    let limit = e["secs"].as_f64().unwrap();
    let usual = e["usual_secs"].as_f64().unwrap();
    assert!((limit - 1.5 * usual).abs() < 1e-6, "{e}");
}

#[test]
fn mistakes_are_refused_before_anything_is_sent() {
    let cases = [
        (
            "    on_overrun: fail\n",
            "`on_overrun` does nothing without `expected_duration`",
        ),
        (
            "    expected_duration: soon\n",
            "invalid `expected_duration` `soon`: neither a duration nor `auto`",
        ),
        (
            "    expected_duration: 0s\n",
            "`expected_duration` must be longer than zero",
        ),
        (
            "    on_overrun: stop\n",
            "unknown value `stop` (expected one of: warn, fail)",
        ),
    ];
    for (keys, message) in cases {
        let dir = setup(&job(keys), &profile("duration: 100ms"));
        let out = pbibatch(dir.path())
            .args(["validate", "job.yaml", "--format", "short"])
            .output()
            .unwrap();
        let (stdout, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(2), "{keys}: {stdout}{stderr}");
        let line = stdout
            .lines()
            .chain(stderr.lines())
            .find(|l| l.contains(message))
            .unwrap_or_else(|| panic!("{keys}: no `{message}` in\n{stdout}{stderr}"));
        // Located: the line of the key (line 9 of the job).
        assert!(line.starts_with("job.yaml:9:"), "{line}");
    }
    // `on_overrun` under `defaults:` reaches the steps that state their own.
    let dir = setup(
        &job("    expected_duration: 5m\n").replace(
            "defaults: { poll_interval: 1s }",
            "defaults: { poll_interval: 1s, on_overrun: fail }",
        ),
        &profile("duration: 100ms"),
    );
    let out = pbibatch(dir.path())
        .args(["plan", "job.yaml"])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("expected_duration: 5m, on_overrun: fail"),
        "{stdout}"
    );
    // A stated duration the step can never reach is a warning, not an error.
    let dir = setup(
        &job("    expected_duration: 3h\n    timeout: 1h\n"),
        &profile("duration: 100ms"),
    );
    let out = pbibatch(dir.path())
        .args(["validate", "job.yaml", "--format", "short"])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        format!("{stdout}{stderr}")
            .contains("warning: `expected_duration` 3h is never reached: the step ends within 1h"),
        "{stdout}{stderr}"
    );
}

#[test]
fn the_flag_is_stored_the_moment_it_happens_and_survives_kill_9() {
    let dir = setup(
        &job("    expected_duration: 1s\n"),
        &profile("duration: 60s"),
    );
    let mut child = pbibatch(dir.path())
        .args([
            "run",
            "job.yaml",
            "--simulate",
            "--sim-profile",
            "profile.yaml",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state = dir.path().join(".pbibatch/state.db");
    let flagged = || {
        let Ok(Some(store)) = pbibatch::store::Store::open_existing(&state) else {
            return false;
        };
        store
            .load_run("last")
            .ok()
            .and_then(|run| run.steps.into_iter().find(|s| s.id == "revenue"))
            .is_some_and(|s| s.overran && s.status == "running")
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(50);
    while !flagged() {
        assert!(
            std::time::Instant::now() < deadline,
            "the store never showed the flag"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let out = pbibatch(dir.path())
        .args(["show", "last", "--format", "json"])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    let shown: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    let revenue = step(&shown, "revenue");
    assert_eq!(revenue["overran"], true, "{revenue}");
    assert_eq!(revenue["expected_duration"]["secs"], 1.0, "{revenue}");
}

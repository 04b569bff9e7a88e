//! `pbibatch history` and `pbibatch show` through the real binary.

use std::path::Path;

use pbibatch::event::StepStatus;

use crate::common::{pbibatch, texts};
use crate::store_support::{ORDER_LIST, Script, enhanced, failed_run, good_run, meta, record};

/// A working directory whose default store (`.pbibatch/state.db`) holds three runs: a failed
/// one, a good one, and one killed with a refresh in flight.
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".pbibatch/state.db");
    record(&path, meta("h", &[]), &failed_run("run-20260301-a", 0));
    // A rehearsal between the two real runs: the history tells them apart.
    let mut rehearsal = meta("h", &[]);
    rehearsal.target = pbibatch::store::RunTarget::Simulated;
    record(&path, rehearsal, &good_run("run-20260301-b", 3600));
    let mut killed = Script::new("run-20260301-c");
    killed
        .started(7200, "order_list", &ORDER_LIST, Some("run-20260301-a"))
        .step_end(
            7200,
            "master_order_list",
            StepStatus::Succeeded,
            Some("succeeded in run run-20260301-a"),
            0,
        )
        .attempt(7200, "order_list_model", 1)
        .handle(7201, "order_list_model", 1, enhanced("req-killed"));
    record(&path, meta("h", &[]), &killed);
    dir
}

/// Runs the binary in `dir`; returns (exit code, stdout, stderr with the temp dir replaced).
fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = pbibatch(dir).args(args).output().unwrap();
    let (stdout, stderr) = texts(&out);
    let tmp = dir.display().to_string();
    (
        out.status.code().unwrap_or(-1),
        stdout.replace(&tmp, "[TMP]"),
        stderr.replace(&tmp, "[TMP]"),
    )
}

#[test]
fn store_cli_history_table() {
    let dir = workdir();
    let (code, stdout, stderr) = run(dir.path(), &["history"]);
    assert_eq!(code, 0, "{stderr}");
    insta::assert_snapshot!("store_cli_history_table", stdout);
}

#[test]
fn store_cli_history_json_filters_and_limits() {
    let dir = workdir();
    let (code, stdout, stderr) = run(
        dir.path(),
        &[
            "history",
            "--job",
            "order_list",
            "--limit",
            "2",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    insta::assert_snapshot!("store_cli_history_json", stdout);
    let (_, stdout, _) = run(
        dir.path(),
        &["history", "--job", "nothing", "--format", "json"],
    );
    assert_eq!(stdout, "[]\n");
}

#[test]
fn store_cli_show_table_of_a_killed_run() {
    let dir = workdir();
    let (code, stdout, stderr) = run(dir.path(), &["show", "last"]);
    assert_eq!(code, 0, "{stderr}");
    insta::assert_snapshot!("store_cli_show_killed", stdout);
}

#[test]
fn store_cli_show_json_of_a_failed_run() {
    let dir = workdir();
    let (code, stdout, stderr) = run(dir.path(), &["show", "run-20260301-a", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["status"], "failed");
    assert_eq!(report["counts"]["upstream_failed"], 2);
    insta::assert_snapshot!(
        "store_cli_show_failed_table",
        run(dir.path(), &["show", "run-20260301-a"]).1
    );
}

#[test]
fn store_cli_reads_the_store_named_by_state_or_env() {
    let dir = workdir();
    let elsewhere = tempfile::tempdir().unwrap();
    let state = dir.path().join(".pbibatch/state.db");
    let (code, stdout, _) = run(
        elsewhere.path(),
        &[
            "show",
            "last",
            "--format",
            "json",
            "--state",
            state.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0);
    assert!(stdout.contains("run-20260301-c"));
    let out = pbibatch(elsewhere.path())
        .args(["history", "--format", "json"])
        .env("PBIBATCH_STATE", &state)
        .output()
        .unwrap();
    assert_eq!(texts(&out).0.matches("\"run_id\"").count(), 3);
    // Reading never creates a store.
    assert!(!elsewhere.path().join(".pbibatch").exists());
}

#[test]
fn store_cli_errors() {
    let empty = tempfile::tempdir().unwrap();
    let (code, stdout, _) = run(empty.path(), &["history"]);
    assert_eq!((code, stdout.as_str()), (0, "no runs recorded\n"));
    let (code, _, stderr) = run(empty.path(), &["show", "last"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no run in the state store"), "{stderr}");

    let dir = workdir();
    let (code, _, stderr) = run(dir.path(), &["show", "run-nope"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("no run `run-nope` in the state store"),
        "{stderr}"
    );

    let (code, _, stderr) = run(dir.path(), &["history", "--state", "none"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("no state store (`--state none`)"),
        "{stderr}"
    );

    std::fs::write(
        empty.path().join("junk.db"),
        "not sqlite at all, just text\n".repeat(50),
    )
    .unwrap();
    let (code, _, stderr) = run(empty.path(), &["history", "--state", "junk.db"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("`junk.db` is not a SQLite database"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

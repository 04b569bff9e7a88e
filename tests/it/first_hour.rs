//! The stumbles of a first hour with pbibatch (issue 15): the terminal and the messages of the
//! first likely mistakes, each checked on the real binary.

use std::process::Stdio;

use crate::common::{pbibatch, repo, texts};

/// A working directory with the repo's `jobs/` and `schemas/`.
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["jobs", "schemas"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        for entry in std::fs::read_dir(repo().join(sub)).unwrap() {
            let p = entry.unwrap().path();
            if p.is_file() {
                std::fs::copy(&p, dir.path().join(sub).join(p.file_name().unwrap())).unwrap();
            }
        }
    }
    dir
}

#[test]
fn first_hour_a_closed_stdout_ends_every_command_quietly() {
    let dir = workdir();
    let commands: &[&[&str]] = &[
        &["completions", "bash"],
        &["completions", "zsh"],
        &["schema"],
        &["plan", "jobs/order_list.yaml"],
        &["plan", "jobs/order_list.yaml", "--format", "json"],
        &["graph", "jobs/order_list.yaml"],
        &["validate", "--format", "json", "jobs/order_list.yaml"],
        &["export", "kestra", "jobs/order_list.yaml", "--process"],
        &["run", "jobs/order_list.yaml", "--simulate", "--dry-run"],
        &["history"],
    ];
    for args in commands {
        // The reading end is closed before the child starts: every write meets EPIPE,
        // deterministically (a `| head -3` races the writer instead).
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = pbibatch(dir.path())
            .args(*args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
}

const FAILING_JOB: &str = r#"
version: 1
name: quiet_failure
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
fn first_hour_quiet_prints_the_errors_of_a_failing_run_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.yaml"), FAILING_JOB).unwrap();
    std::fs::write(
        dir.path().join("profile.yaml"),
        "workspaces:\n  Sales:\n    datasets:\n      Revenue: { duration: 0s, outcomes: [{fail: {code: ModelRefreshFailed_CredentialsNotSpecified, message: The credentials provided for the SQL source are invalid}}] }\n",
    )
    .unwrap();
    let run = |quiet: bool| {
        let mut cmd = pbibatch(dir.path());
        if quiet {
            cmd.arg("-q");
        }
        cmd.args([
            "run",
            "job.yaml",
            "--simulate",
            "--sim-profile",
            "profile.yaml",
            "--state",
            "none",
        ])
        .output()
        .unwrap()
    };
    let out = run(true);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stdout, "");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with("error: step model failed: ")
            && lines[0].contains("ModelRefreshFailed_CredentialsNotSpecified"),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with("error: run ") && lines[1].contains(" of quiet_failure failed ("),
        "{stderr}"
    );
    assert!(lines[1].contains("1 failed"), "{stderr}");
    assert!(lines[1].contains("1 upstream_failed"), "{stderr}");

    // A run that succeeds prints nothing at all with -q.
    std::fs::write(dir.path().join("profile.yaml"), "{}\n").unwrap();
    let out = run(true);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "");
}

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

#[test]
fn first_hour_every_option_has_a_help_text() {
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path} {}", arg.get_long().unwrap_or(id)));
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let mut missing = Vec::new();
    walk(&pbibatch::cli::Cli::command(), "pbibatch", &mut missing);
    assert!(
        missing.is_empty(),
        "options without --help text: {missing:#?}"
    );

    // `--progress always` says it still needs a terminal.
    let out = pbibatch(&repo()).args(["run", "--help"]).output().unwrap();
    let (stdout, _) = texts(&out);
    assert!(stdout.contains("never into a pipe or file"), "{stdout}");
}

#[test]
fn first_hour_a_missing_job_file_or_a_directory_is_named() {
    let dir = workdir();
    for (arg, what) in [
        ("jobs/order_lst.yaml", "no such file"),
        ("jobs", "is a directory, not a job file"),
    ] {
        for cmd in [&["validate"][..], &["plan"], &["run", "--simulate"]] {
            let out = pbibatch(dir.path()).args(cmd).arg(arg).output().unwrap();
            let (_, stderr) = texts(&out);
            assert_eq!(out.status.code(), Some(2), "{cmd:?} {arg}: {stderr}");
            assert!(
                stderr.contains(&format!("cannot read the job file `{arg}`: {what}")),
                "{cmd:?} {arg}: {stderr}"
            );
        }
    }
}

#[test]
fn first_hour_a_misspelt_selector_gets_a_did_you_mean() {
    let dir = workdir();
    let out = pbibatch(dir.path())
        .args(["plan", "jobs/order_list.yaml", "--select", "order_model"])
        .output()
        .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("did you mean `order_list_model`?"),
        "{stderr}"
    );
}

const FLOW_JOB: &str =
    "version: 1\nname: flow_only\nsteps:\n  flow:\n    type: sas_flow\n    url: URL\n";

#[test]
fn first_hour_env_typos_and_shell_variables_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.yaml");
    let url = "https://prod-00.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=x";

    // `${env.X}` with a near name set: validate warns with the set name, run refuses with it.
    std::fs::write(
        &job,
        FLOW_JOB.replace("URL\n", "${env.ORDER_LIST_FLOW_ULR}\n"),
    )
    .unwrap();
    let out = pbibatch(dir.path())
        .args(["validate", "job.yaml"])
        .env("ORDER_LIST_FLOW_URL", url)
        .output()
        .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("did you mean `ORDER_LIST_FLOW_URL`? it is set here"),
        "{stderr}"
    );
    let out = pbibatch(dir.path())
        .args(["run", "job.yaml", "--dry-run", "--state", "none"])
        .env("ORDER_LIST_FLOW_URL", url)
        .output()
        .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    // miette wraps long lines: compare with the frame and line breaks taken out.
    let flat = stderr
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        flat.contains("ORDER_LIST_FLOW_ULR (used by step `flow` url; job.yaml:6:10): did you mean `ORDER_LIST_FLOW_URL`? it is set"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("sig=x"),
        "the value of the set variable stays out: {stderr}"
    );

    // Shell-style `$NAME`: say how to write it instead of "relative URL without a base".
    std::fs::write(&job, FLOW_JOB.replace("URL\n", "$ORDER_LIST_FLOW_URL\n")).unwrap();
    let out = pbibatch(dir.path())
        .args(["validate", "job.yaml"])
        .output()
        .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`$ORDER_LIST_FLOW_URL` is shell syntax, which a job file does not expand"),
        "{stderr}"
    );
    assert!(
        stderr.contains("write `${env.ORDER_LIST_FLOW_URL}` to read the environment variable"),
        "{stderr}"
    );
    assert!(!stderr.contains("relative URL without a base"), "{stderr}");
}

/// `validate --format short` of `text` written as `job.yaml`: exit code and stdout.
fn validate_short(text: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.yaml"), text).unwrap();
    let out = pbibatch(dir.path())
        .args(["validate", "--format", "short", "job.yaml"])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    (out.status.code(), stdout, stderr)
}

#[test]
fn first_hour_a_step_without_type_points_at_its_id_and_lists_the_types() {
    // Block and flow style; serde reports the missing `type` at the step's last key.
    let block = "version: 1\nname: t\nsteps:\n  model:\n    workspace: W\n    dataset: D\n  other:\n    type: webhook\n    url: https://example.com/x\n";
    let (code, short, stderr) = validate_short(block);
    assert_eq!(code, Some(2), "{short}{stderr}");
    assert!(
        short.starts_with(
            "job.yaml:4:3: error: step `model` has no `type` (add `type:`, one of: sas_flow, dataflow, dataset, report, webhook, fabric_job"
        ),
        "{short}"
    );
    let flow = "version: 1\nname: t\nsteps:\n  model: { workspace: W, dataset: D }\n";
    let (code, short, _) = validate_short(flow);
    assert_eq!(code, Some(2));
    assert!(
        short.starts_with("job.yaml:4:3: error: step `model` has no `type`"),
        "{short}"
    );
}

#[test]
fn first_hour_a_tab_in_indentation_is_reported_on_its_own_line() {
    for (text, at) in [
        // After lines indented with spaces: the scanner points at the end of line 6.
        (
            "version: 1\nname: t\nsteps:\n  a:\n    type: dataset\n    workspace: W\n\tdataset: D\n",
            "7:1",
        ),
        (
            "version: 1\nname: t\nsteps:\n\ta:\n\t\ttype: dataset\n",
            "4:1",
        ),
    ] {
        let (code, short, _) = validate_short(text);
        assert_eq!(code, Some(2), "{short}");
        assert!(
            short.starts_with(&format!("job.yaml:{at}: error: a tab in indentation")),
            "want {at}: {short}"
        );
    }
}

#[test]
fn first_hour_when_errors_read_as_text() {
    let job = |when: &str| {
        format!(
            "version: 1\nname: t\nvars: {{ x: y }}\nsteps:\n  a:\n    type: webhook\n    url: https://example.com/x\n    when: \"{when}\"\n"
        )
    };
    // 100 levels reach CEL's recursion limit (a Rust debug dump) or, unoptimised, overflow
    // the stack; 9 is one past the nesting pbibatch accepts.
    for depth in [9, 100] {
        let when = format!("{}vars.x == 'y'{}", "(".repeat(depth), ")".repeat(depth));
        let (code, short, stderr) = validate_short(&job(&when));
        assert_eq!(code, Some(2), "{depth}: {short}{stderr}");
        assert!(
            short.starts_with(&format!(
                "job.yaml:8:20: error: `when` nests brackets too deeply ({depth} levels, at most 8)"
            )),
            "{depth}: {short}"
        );
        for dump in ["OtherError", "ParseError", "{ ", "Context"] {
            assert!(!short.contains(dump), "{depth}: {short}");
        }
    }
    let when = format!("{}vars.x == 'y'{}", "(".repeat(8), ")".repeat(8));
    let (code, short, stderr) = validate_short(&job(&when));
    assert_eq!(code, Some(0), "{short}{stderr}");
}

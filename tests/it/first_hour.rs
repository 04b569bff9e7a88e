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

/// The documented webhook placeholders `${run.started_at}` and
/// `${steps.<id>.attempts|duration_secs}` are accepted by `validate` and filled in what the
/// webhook sends (the simulator's sink records it), agreeing with the run report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_hour_webhook_placeholders_reach_the_sink() {
    let sim = crate::sim_support::start(
        "hooks:\n  notify: {}\nworkspaces:\n  Sales:\n    datasets:\n      Revenue:\n        duration: 300ms\n        outcomes: [{fail: {code: ModelRefreshFailed_CredentialsNotSpecified}}]\n",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let job = format!(
        r#"version: 1
name: placeholders
steps:
  model:
    type: dataset
    workspace: Sales
    dataset: Revenue
    retries: {{ count: 1, backoff: 1s }}
  notify:
    type: webhook
    url: {}
    depends_on: [model]
    trigger: all_done
    body:
      started: "${{run.started_at}}"
      status: "${{steps.model.status}}"
      attempts: "${{steps.model.attempts}}"
      secs: "${{steps.model.duration_secs}}"
"#,
        sim.hook_url("notify")
    );
    std::fs::write(dir.path().join("job.yaml"), job).unwrap();
    let run = |args: &[&str]| {
        let mut cmd = pbibatch(dir.path());
        cmd.args(args);
        for var in [
            "PBIBATCH_POWERBI_URL",
            "PBIBATCH_FABRIC_URL",
            "PBIBATCH_AUTHORITY_URL",
        ] {
            cmd.env(var, sim.base_url());
        }
        cmd.env("AZURE_TENANT_ID", sim.tenant_id())
            .env("AZURE_CLIENT_ID", sim.client_id())
            .env("AZURE_CLIENT_SECRET", sim.client_secret());
        cmd
    };
    let mut validate = run(&["validate", "--format", "short", "job.yaml"]);
    let out = tokio::task::spawn_blocking(move || validate.output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let mut cmd = run(&["run", "job.yaml", "--state", "none", "--report", "r.json"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = texts(&out);
    // The model fails both attempts; the webhook (`all_done`) still sends.
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    let posts: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/hooks/notify"))
        .collect();
    assert_eq!(posts.len(), 1, "{report}");
    let sent: serde_json::Value = serde_json::from_str(&posts[0].body).unwrap();
    let model = &report["steps"][0];
    assert_eq!(sent["status"], "failed");
    assert_eq!(report["steps"][1]["status"], "succeeded", "{report}");
    assert_eq!(sent["attempts"], "2", "{sent}");
    assert_eq!(model["attempts"].as_array().unwrap().len(), 2);
    let secs: f64 = sent["secs"].as_str().unwrap().parse().unwrap();
    let reported = model["duration_secs"].as_f64().unwrap();
    assert!((secs - reported).abs() < 0.2, "{secs} vs {reported}");
    assert!(secs > 0.5, "two attempts and a 1 s backoff: {secs}");
    let started = chrono::DateTime::parse_from_rfc3339(sent["started"].as_str().unwrap()).unwrap();
    let run_started =
        chrono::DateTime::parse_from_rfc3339(report["started_at"].as_str().unwrap()).unwrap();
    assert!(
        (started - run_started).num_milliseconds().abs() < 1500,
        "{started} vs {run_started}"
    );
}

/// JUnit's `resource` property has one form whatever the step's kind and outcome: the step's
/// label (`workspace / item`, or the redacted URL), not the resolved name for some steps.
#[test]
fn first_hour_junit_resource_has_one_form() {
    let dir = tempfile::tempdir().unwrap();
    let job = format!(
        "{FAILING_JOB}  orders:\n    type: dataset\n    workspace: Sales\n    dataset: Orders\n  hook:\n    type: webhook\n    url: https://hooks.example.com/services/T0/B0/secret\n    depends_on: [orders]\n"
    );
    std::fs::write(dir.path().join("job.yaml"), job).unwrap();
    std::fs::write(
        dir.path().join("profile.yaml"),
        "workspaces:\n  Sales:\n    datasets:\n      Revenue: { duration: 0s, outcomes: [{fail: {code: ModelRefreshFailed_CredentialsNotSpecified}}] }\n",
    )
    .unwrap();
    let out = pbibatch(dir.path())
        .args([
            "run",
            "job.yaml",
            "--simulate",
            "--sim-profile",
            "profile.yaml",
            "--state",
            "none",
            "--junit",
            "junit.xml",
        ])
        .output()
        .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let xml = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    let resources: Vec<&str> = xml
        .split("<property name=\"resource\" value=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    // model failed after its name was resolved, pdf never started, orders succeeded; the
    // webhook (sent to the simulator's sink under --simulate) shows its redacted URL.
    assert_eq!(
        resources[..3],
        ["Sales / Revenue", "Sales / Revenue Book", "Sales / Orders"],
        "{xml}"
    );
    assert!(
        resources[3].starts_with("http://127.0.0.1:") && resources[3].ends_with("/***"),
        "{xml}"
    );
    assert_eq!(resources.len(), 4, "{xml}");
}

/// `execute_option` (and every enum value) is written as the file spells it; the API's
/// spelling, which the reference shows next to it, gets a did-you-mean.
#[test]
fn first_hour_api_spelling_of_a_value_suggests_the_file_spelling() {
    let job = "version: 1\nname: t\nsteps:\n  gen2:\n    type: dataflow\n    generation: 2\n    workspace: W\n    dataflow: D\n    execute_option: SkipApplyChanges\n";
    let (code, short, _) = validate_short(job);
    assert_eq!(code, Some(2), "{short}");
    assert!(
        short.lines().any(|l| l
            == "job.yaml:9:21: error: unknown value `SkipApplyChanges` (did you mean `skip_apply_changes`?) [pbibatch::job::unknown_value]"),
        "{short}"
    );
    let (code, short, stderr) =
        validate_short(&job.replace("SkipApplyChanges", "skip_apply_changes"));
    assert_eq!(code, Some(0), "{short}{stderr}");
    let reference = std::fs::read_to_string(repo().join("docs/job-reference.md")).unwrap();
    let row = reference
        .lines()
        .find(|l| l.starts_with("| `execute_option` |"))
        .unwrap();
    assert!(
        row.contains("`skip_apply_changes` or `apply_changes_if_needed`"),
        "{row}"
    );
}

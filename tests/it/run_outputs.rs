//! Output paths (`--report`, `--junit`, `--summary`, each report's `export.path`, the state
//! database) are checked before the first request; a write that still fails at the end fails
//! the run (exit 1) and the other files are written.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use pbibatch::sim::{Profile, SimServer};

use crate::common::{pbibatch, texts};

const JOB: &str = r#"
version: 1
name: outputs
defaults: { retries: 0, poll_interval: 1s }
steps:
  model: { type: dataset, workspace: Sales, dataset: Revenue }
  pdf:
    type: report
    workspace: Sales
    report: Revenue Book
    export: { format: PDF, path: EXPORT }
    depends_on: [model]
"#;

async fn simulator() -> SimServer {
    let profile = Profile::from_yaml(
        "defaults: { duration: 0s }\nworkspaces:\n  Sales:\n    datasets:\n      Revenue: {}\n    reports:\n      Revenue Book: {}\n",
    )
    .unwrap();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    pbibatch::sim::start(profile, addr).await.unwrap()
}

/// `pbibatch run job.yaml ARGS` in `dir` against `sim` (not `--simulate`: the test reads what
/// the simulator received).
async fn run_against(
    sim: &SimServer,
    dir: &Path,
    export: &str,
    args: &[&str],
) -> (Option<i32>, String) {
    std::fs::write(dir.join("job.yaml"), JOB.replace("EXPORT", export)).unwrap();
    let base = sim.base_url();
    let mut cmd = pbibatch(dir);
    cmd.args(["run", "job.yaml"])
        .args(args)
        .env("PBIBATCH_POWERBI_URL", &base)
        .env("PBIBATCH_FABRIC_URL", &base)
        .env("PBIBATCH_AUTHORITY_URL", &base)
        .env("AZURE_TENANT_ID", sim.tenant_id())
        .env("AZURE_CLIENT_ID", sim.client_id())
        .env("AZURE_CLIENT_SECRET", sim.client_secret());
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = texts(&out);
    (out.status.code(), format!("{stdout}{stderr}"))
}

#[tokio::test]
async fn every_unwritable_output_is_refused_before_anything_is_sent() {
    let sim = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("afile"), "a plain file").unwrap();
    std::fs::create_dir(d.join("adir")).unwrap();
    let (code, text) = run_against(
        &sim,
        d,
        "afile/book.pdf",
        &[
            "--report",
            "afile/r.json",
            "--junit",
            "adir",
            "--summary",
            "s.md",
            "--state",
            "afile/state.db",
        ],
    )
    .await;
    assert_eq!(code, Some(2), "{text}");
    for line in [
        "cannot write --report afile/r.json: not a directory (afile is a file)",
        "cannot write --junit adir: is a directory",
        "cannot write export.path of step `pdf` afile/book.pdf: not a directory (afile is a file)",
        "cannot write the state database afile/state.db: not a directory (afile is a file)",
        "nothing was sent",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(!text.contains("s.md"), "{text}");
    assert!(
        sim.requests().is_empty(),
        "the simulator saw {:?}",
        sim.requests()
    );
    assert!(!d.join("s.md").exists());
    assert!(!d.join(".pbibatch").exists());
    // The same run with writable paths goes through.
    let (code, text) = run_against(&sim, d, "out/book.pdf", &["--report", "r.json"]).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(d.join("out/book.pdf").is_file() && d.join("r.json").is_file());
}

#[tokio::test]
async fn a_read_only_folder_is_refused_with_permission_denied() {
    use std::os::unix::fs::PermissionsExt;
    let sim = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ro = d.join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root writes into read-only folders: then only the path under a file is refused.
    let root = std::fs::write(ro.join("probe"), "x").is_ok();
    std::fs::write(d.join("afile"), "x").unwrap();
    let (code, text) = run_against(
        &sim,
        d,
        "out/book.pdf",
        &["--summary", "ro/s.md", "--report", "afile/r.json"],
    )
    .await;
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("cannot write --report afile/r.json: not a directory (afile is a file)"),
        "{text}"
    );
    if !root {
        assert!(
            text.contains("cannot write --summary ro/s.md: permission denied"),
            "{text}"
        );
    }
    assert!(sim.requests().is_empty());
}

#[test]
fn a_report_that_cannot_be_written_at_the_end_fails_the_run_and_the_others_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("job.yaml"), JOB.replace("EXPORT", "out/book.pdf")).unwrap();
    std::fs::write(
        d.join("profile.yaml"),
        "defaults: { duration: 0s }\nworkspaces:\n  Sales:\n    datasets:\n      Revenue: { duration: 3s }\n",
    )
    .unwrap();
    let mut child = pbibatch(d)
        .args([
            "run",
            "job.yaml",
            "--simulate",
            "--sim-profile",
            "profile.yaml",
            "--report",
            "blocked/r.json",
            "--junit",
            "j.xml",
            "--summary",
            "s.md",
            "--kestra",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = String::new();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        stderr.push_str(&line);
        stderr.push('\n');
        if line.contains("model: attempt 1 started") {
            // The folder of the report is free when the run starts; a file takes its place
            // while the model refreshes.
            std::fs::write(d.join("blocked"), "in the way").unwrap();
            break;
        }
    }
    for line in lines {
        stderr.push_str(&line.unwrap());
        stderr.push('\n');
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("error: failed to write --report blocked/r.json: not a directory"),
        "{stderr}"
    );
    assert!(d.join("j.xml").is_file());
    assert!(d.join("out/book.pdf").is_file());
    let md = std::fs::read_to_string(d.join("s.md")).unwrap();
    assert!(md.contains("- junit: `j.xml`"), "{md}");
    assert!(!md.contains("r.json"), "{md}");
    assert!(stdout.contains("\"junit\":\"j.xml\""), "{stdout}");
    assert!(!stdout.contains("r.json"), "{stdout}");
}

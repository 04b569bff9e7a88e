//! `pbibatch sim serve`: prints its URLs and credentials, serves, stops on Ctrl-C.

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::{pbibatch, texts};
use crate::sim_support::client;

#[tokio::test]
async fn sim_serve_prints_urls_serves_and_stops_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("profile.yaml"),
        "defaults:\n  duration: 0s\nworkspaces:\n  WS: {}\nflows:\n  nightly: {}\n",
    )
    .unwrap();
    let mut cmd = tokio::process::Command::from(pbibatch(dir.path()));
    cmd.args([
        "sim",
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--profile",
        "profile.yaml",
    ])
    .stdout(std::process::Stdio::piped())
    .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        let done = line.starts_with("Press Ctrl-C");
        printed.push(line);
        if done {
            break;
        }
    }
    let text = printed.join("\n");
    let base = printed[0]
        .strip_prefix("pbibatch simulator listening on ")
        .unwrap()
        .to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{text}");
    for expected in [
        format!("export PBIBATCH_POWERBI_URL={base}"),
        format!("export PBIBATCH_FABRIC_URL={base}"),
        format!("export PBIBATCH_AUTHORITY_URL={base}"),
        "export AZURE_CLIENT_SECRET=".to_string(),
        format!("Flow nightly: {base}/workflows/"),
        "Estate: 1 workspace(s), 0 item(s)".to_string(),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
    let counters = client()
        .get(format!("{base}/_sim/counters"))
        .send()
        .await
        .unwrap();
    assert_eq!(counters.status(), 200);
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().await.unwrap();
    assert_eq!(exit.code(), Some(0));
}

#[test]
fn sim_serve_rejects_a_bad_profile_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "defaults:\n  duration: whenever\n",
    )
    .unwrap();
    let out = pbibatch(dir.path())
        .args(["sim", "serve", "--profile", "bad.yaml"])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("bad.yaml") && stderr.contains("whenever"),
        "{stderr}"
    );
    assert!(stdout.is_empty());
}

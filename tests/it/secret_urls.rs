//! A webhook's or a SAS trigger's URL is a secret: outside the known Power BI, Fabric, Entra
//! and Power Automate hosts only its origin is ever shown, loopback included (the simulator's
//! webhook sink and SAS trigger are no exception) and whatever `sig` it carries. Checked over
//! everything a run leaves: log lines (text, JSON, `-vv` tracing), progress, the JSON report,
//! JUnit, Markdown, errors, `plan`, `history`, `show` and the bytes of the state store.

use std::path::Path;

use pbibatch::sim::SimServer;

use crate::common::{pbibatch, texts};

const PROFILE: &str = "
defaults: { duration: 0s }
flows:
  the_flow: {}
hooks:
  s3cr3tpath: {}
  broken-s3cr3tpath: { statuses: [403] }
";

const JOB: &str = "
version: 1
name: secret_paths
defaults: { retries: 0 }
steps:
  flow:
    type: sas_flow
    url: ${env.FLOW_URL}
  alert:
    type: webhook
    url: ${env.HOOK_URL}
    depends_on: [flow]
  broken:
    type: webhook
    url: ${env.BROKEN_HOOK_URL}
";

/// The secret parts of the three URLs: the hooks' paths, the `sig`s, the flow's id.
fn secrets(sim: &SimServer) -> Vec<String> {
    let flow = url::Url::parse(&sim.flow_url("the_flow")).unwrap();
    let flow_id = flow.path_segments().unwrap().nth(1).unwrap().to_string();
    let flow_sig = flow
        .query_pairs()
        .find(|(k, _)| k == "sig")
        .unwrap()
        .1
        .into_owned();
    vec![
        "s3cr3tpath".into(),
        "SIGS3CR3T".into(),
        flow_id,
        flow_sig,
        "/hooks".into(),
        "/workflows".into(),
    ]
}

fn command(dir: &Path, sim: &SimServer, args: &[&str]) -> std::process::Command {
    let mut cmd = pbibatch(dir);
    cmd.args(args)
        .env("FLOW_URL", sim.flow_url("the_flow"))
        .env(
            "HOOK_URL",
            format!("{}/hooks/s3cr3tpath?sig=SIGS3CR3T", sim.base_url()),
        )
        .env(
            "BROKEN_HOOK_URL",
            format!("{}/hooks/broken-s3cr3tpath", sim.base_url()),
        );
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_urls_show_their_origin_only_everywhere() {
    let sim = crate::sim_support::start(PROFILE).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.yaml"), JOB).unwrap();
    let origin = format!("{}/***", sim.base_url());
    let mut seen = String::new();

    let runs: [&[&str]; 3] = [
        &[
            "run",
            "job.yaml",
            "--report",
            "r.json",
            "--junit",
            "j.xml",
            "--summary",
            "s.md",
            "--progress",
            "never",
            "-vv",
        ],
        &["run", "job.yaml", "--progress", "always"],
        &["--log-format", "json", "run", "job.yaml", "-vv"],
    ];
    for args in runs {
        let out = command(dir.path(), &sim, args).output().unwrap();
        let (stdout, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
        seen.push_str(&stdout);
        seen.push_str(&stderr);
    }
    // The hooks and the flow were really called, with their secrets.
    assert!(
        sim.requests().iter().any(|r| r.path.contains("s3cr3tpath")),
        "the webhook was sent"
    );
    for file in ["r.json", "j.xml", "s.md"] {
        seen.push_str(&std::fs::read_to_string(dir.path().join(file)).unwrap());
    }
    for args in [
        &["plan", "job.yaml"][..],
        &["plan", "job.yaml", "--format", "json"],
        &["history"],
        &["show", "last"],
        &["show", "last", "--format", "json"],
    ] {
        let out = command(dir.path(), &sim, args).output().unwrap();
        let (stdout, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        seen.push_str(&stdout);
        seen.push_str(&stderr);
    }

    // Where a URL is shown, it is its origin.
    let report = std::fs::read_to_string(dir.path().join("r.json")).unwrap();
    assert!(
        report.contains(&format!("webhook {origin} answered 403")),
        "{report}"
    );
    let junit = std::fs::read_to_string(dir.path().join("j.xml")).unwrap();
    assert!(
        junit.contains(&format!("name=\"resource\" value=\"{origin}\"")),
        "{junit}"
    );
    for secret in secrets(&sim) {
        assert!(!seen.contains(&secret), "`{secret}` shown:\n{seen}");
    }
    // The store's bytes, write-ahead log included.
    for file in [".pbibatch/state.db", ".pbibatch/state.db-wal"] {
        let Ok(bytes) = std::fs::read(dir.path().join(file)) else {
            continue;
        };
        for secret in secrets(&sim) {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "`{secret}` in {file}"
            );
        }
    }
    sim.shutdown().await;
}

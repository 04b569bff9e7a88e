//! Webhook `format: teams | slack`: the ready payloads end to end over loopback, the
//! simulator's Teams Workflows and Slack sinks checking their shape, and no secret in them.

use std::net::SocketAddr;
use std::path::Path;

use pbibatch::sim::{Profile, SimServer};
use serde_json::Value;

use crate::common::{pbibatch_against, texts};

const SIG: &str = "S1GS3CR3TV4LUE";

async fn simulator(hooks: &str) -> SimServer {
    let profile = Profile::from_yaml(&format!(
        "defaults: {{ duration: 0s }}\nworkspaces:\n  Sales:\n    datasets:\n      Revenue: {{ outcomes: [fail] }}\n      Orders: {{}}\nflows:\n  load: {{ statuses: [500], sig: {SIG} }}\nhooks:\n{hooks}"
    ))
    .unwrap();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    pbibatch::sim::start(profile, addr).await.unwrap()
}

/// Runs `job` in `dir` against `sim` (env: the simulator's credentials, `TEAMS_URL`,
/// `SLACK_URL`, `FLOW_URL`).
async fn run(sim: &SimServer, dir: &Path, job: &str) -> (Option<i32>, String, Value) {
    std::fs::write(dir.join("job.yaml"), job).unwrap();
    let mut cmd = pbibatch_against(dir, sim);
    cmd.args(["run", "job.yaml", "--report", "run.json", "--state", "none"])
        .env("TEAMS_URL", sim.hook_url("teams"))
        .env("SLACK_URL", sim.hook_url("slack"))
        .env("FLOW_URL", sim.flow_url("load"));
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = texts(&out);
    let report = std::fs::read_to_string(dir.join("run.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    (out.status.code(), format!("{stdout}{stderr}"), report)
}

fn posted(sim: &SimServer, hook: &str) -> Vec<pbibatch::sim::RecordedRequest> {
    sim.requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == format!("/hooks/{hook}"))
        .collect()
}

const JOB: &str = r#"
version: 1
name: cards
defaults: { retries: 0, poll_interval: 1s }
steps:
  load: { type: sas_flow, url: "${env.FLOW_URL}" }
  revenue: { type: dataset, workspace: Sales, dataset: Revenue }
  orders: { type: dataset, workspace: Sales, dataset: Orders }
  tell_teams:
    type: webhook
    url: ${env.TEAMS_URL}
    format: teams
    link: https://kestra.example.com/executions/${run.id}
    depends_on: [load, revenue, orders]
    trigger: all_done
  tell_slack:
    type: webhook
    url: ${env.SLACK_URL}
    format: slack
    depends_on: [load, revenue, orders]
    trigger: all_done
"#;

#[tokio::test]
async fn teams_and_slack_get_messages_that_render_with_the_failures_and_no_secret() {
    let sim = simulator("  teams: { kind: teams }\n  slack: { kind: slack }\n").await;
    let dir = tempfile::tempdir().unwrap();
    let (code, out, report) = run(&sim, dir.path(), JOB).await;
    assert_eq!(code, Some(1), "{out}");
    let steps = report["steps"].as_array().unwrap();
    let status = |id: &str| {
        steps.iter().find(|s| s["id"] == id).unwrap()["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // The sinks accepted both messages (a malformed one is refused with 400).
    assert_eq!(status("tell_teams"), "succeeded", "{out}");
    assert_eq!(status("tell_slack"), "succeeded", "{out}");
    let run_id = report["run_id"].as_str().unwrap();

    let teams = posted(&sim, "teams");
    assert_eq!(teams.len(), 1);
    let msg = teams[0].json().unwrap();
    assert_eq!(msg["type"], "message");
    let attachment = &msg["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &attachment["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    let body = card["body"].as_array().unwrap();
    assert_eq!(body[0]["text"], "pbibatch: cards failed");
    let facts: Vec<(String, String)> = body[2]["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["title"].as_str().unwrap().into(),
                f["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(facts[0], ("Run".to_string(), run_id.to_string()));
    assert!(
        facts.contains(&("succeeded".into(), "1".into())),
        "{facts:?}"
    );
    assert!(facts.contains(&("failed".into(), "2".into())), "{facts:?}");
    let failed: Vec<&str> = body[4]["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["title"].as_str().unwrap())
        .collect();
    let mut sorted = failed.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["load", "revenue"]);
    let load_error = body[4]["facts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["title"] == "load")
        .unwrap()["value"]
        .as_str()
        .unwrap();
    assert!(load_error.contains("answered 500"), "{load_error}");
    assert_eq!(
        card["actions"][0]["url"],
        format!("https://kestra.example.com/executions/{run_id}")
    );

    let slack = posted(&sim, "slack");
    assert_eq!(slack.len(), 1);
    let msg = slack[0].json().unwrap();
    assert!(
        msg["text"]
            .as_str()
            .unwrap()
            .starts_with("cards: 1 succeeded, 2 failed")
    );
    assert_eq!(msg["blocks"][0]["type"], "header");
    let failed = msg["blocks"][3]["text"]["text"].as_str().unwrap();
    assert!(failed.contains("`revenue`"), "{failed}");

    // No secret reaches a message: not the flow's signature, not the client secret, not a
    // webhook URL.
    for body in [&teams[0].body, &slack[0].body] {
        for secret in [
            SIG.to_string(),
            sim.client_secret(),
            sim.hook_url("teams"),
            sim.hook_url("slack"),
        ] {
            assert!(!body.contains(&secret), "{secret} in {body}");
        }
    }
}

#[tokio::test]
async fn a_teams_workflows_sink_refuses_a_plain_text_body_and_the_step_says_why() {
    let sim = simulator("  teams: { kind: teams }\n").await;
    let dir = tempfile::tempdir().unwrap();
    let job = "version: 1\nname: plain\nsteps:\n  tell_teams: { type: webhook, url: \"${env.TEAMS_URL}\" }\n";
    let (code, out, report) = run(&sim, dir.path(), job).await;
    assert_eq!(code, Some(1), "{out}");
    let error = report["steps"][0]["error"].as_str().unwrap();
    assert!(error.contains("answered 400"), "{error}");
    assert!(
        error.contains("Workflows support Adaptive Cards only"),
        "{error}"
    );
    // With `format: teams` the same sink accepts it (202, as Workflows answers).
    let job = job.replace(
        "url: \"${env.TEAMS_URL}\"",
        "url: \"${env.TEAMS_URL}\", format: teams",
    );
    let (code, out, _) = run(&sim, dir.path(), &job).await;
    assert_eq!(code, Some(0), "{out}");
}

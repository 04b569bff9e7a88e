//! The engine and the reporters together, through the public API: a scripted executor, one
//! event channel, and the report / log lines / summary that come out of it.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use indexmap::IndexMap;
use pbibatch::engine::{self, EngineOptions};
use pbibatch::event::{AttemptUpdate, RunEventKind, RunStatus, StepStatus};
use pbibatch::executor::{AttemptContext, AttemptOutcome, Executor};
use pbibatch::job::model::{
    DatasetStep, IfRunning, Job, NotifyOption, Step, StepKind, TriggerRule, WebhookStep,
};
use pbibatch::plan::Plan;
use pbibatch::reporter::Reporters;
use pbibatch::reporter::report::{self, RunReport};
use pbibatch::reporter::summary;
use pbibatch::secret::Secret;
use tokio_util::sync::CancellationToken;

/// Fails `flaky`'s first attempt and `broken` always; everything else succeeds after 2 s.
struct Scripted;

impl Executor for Scripted {
    fn execute(&self, ctx: AttemptContext) -> BoxFuture<'static, AttemptOutcome> {
        async move {
            ctx.update(AttemptUpdate {
                remote_status: Some("InProgress".into()),
                remote_id: Some(format!("{}-{}", ctx.step.id, ctx.attempt)),
                ..AttemptUpdate::default()
            });
            tokio::time::sleep(Duration::from_secs(2)).await;
            match (ctx.step.id.as_str(), ctx.attempt) {
                ("flaky", 1) => AttemptOutcome::Failed {
                    error: "Refresh failed: the gateway is offline".into(),
                    retry_after: None,
                },
                ("broken", _) => AttemptOutcome::Failed {
                    error: "Export failed: report not found".into(),
                    retry_after: None,
                },
                ("tell_teams", _) => {
                    // A webhook sees the run so far.
                    assert!(ctx.run_view.summary.contains("1 failed (broken)"));
                    AttemptOutcome::Succeeded { adopted: false }
                }
                _ => AttemptOutcome::Succeeded { adopted: false },
            }
        }
        .boxed()
    }
}

fn base(id: &str, deps: &[&str], kind: StepKind) -> Step {
    Step {
        id: id.into(),
        kind,
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        trigger: TriggerRule::AllSuccess,
        when: None,
        pool: None,
        tags: Vec::new(),
        connection: "default".into(),
        timeout: Duration::from_secs(600),
        retries: 1,
        retry_backoff: Duration::from_secs(5),
        max_backoff: Duration::from_secs(600),
        poll_interval: Duration::from_secs(15),
        if_running: IfRunning::Wait,
        continue_on_error: false,
        skip_if_fresh: None,
        expected_duration: None,
        on_overrun: Default::default(),
    }
}

fn dataset(id: &str, deps: &[&str]) -> Step {
    base(
        id,
        deps,
        StepKind::Dataset(DatasetStep {
            workspace: "Data Admin".into(),
            dataset: id.to_uppercase(),
            notify: NotifyOption::NoNotification,
            refresh: None,
        }),
    )
}

fn webhook(id: &str, deps: &[&str]) -> Step {
    base(
        id,
        deps,
        StepKind::Webhook(WebhookStep {
            url: Secret::new("https://contoso.webhook.office.com/webhookb2/abc?sig=TOPSECRET"),
            method: "POST".into(),
            headers: IndexMap::new(),
            body: None,
            expect_status: Vec::new(),
            format: pbibatch::job::model::WebhookFormat::Plain,
            link: None,
        }),
    )
}

fn job() -> Job {
    let steps = vec![
        dataset("master", &[]),
        dataset("flaky", &["master"]),
        Step {
            when: Some("vars.export == 'yes'".into()),
            ..dataset("gated", &["master"])
        },
        Step {
            retries: 0,
            ..dataset("broken", &["master"])
        },
        dataset("after_broken", &["broken"]),
        Step {
            trigger: TriggerRule::OneFailed,
            ..webhook("tell_teams", &["flaky", "broken"])
        },
    ];
    Job {
        name: "order_list".into(),
        description: None,
        file: PathBuf::from("jobs/order_list.yaml"),
        file_hash: String::new(),
        capacity_limits: true,
        vars: [("export".to_string(), "no".to_string())]
            .into_iter()
            .collect(),
        connections: IndexMap::new(),
        concurrency: 4,
        pools: IndexMap::new(),
        steps: steps.into_iter().map(|s| (s.id.clone(), s)).collect(),
        fan_outs: IndexMap::new(),
    }
}

/// A writer the test can read back while the reporter owns a handle.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_folds_into_lines_report_and_summary_that_agree() {
    let plan = Arc::new(Plan::new(Arc::new(job())).unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (echo_tx, mut echo_rx) = tokio::sync::mpsc::unbounded_channel();
    let lines = Shared::default();
    let reporters = Reporters::new()
        .with_lines(Box::new(lines.clone()))
        .spawn(rx);
    // Tee the events so the test can check RunFinished too.
    let (engine_tx, mut engine_rx) =
        tokio::sync::mpsc::unbounded_channel::<pbibatch::event::RunEvent>();
    let tee = tokio::spawn(async move {
        while let Some(e) = engine_rx.recv().await {
            let _ = echo_tx.send(e.clone());
            let _ = tx.send(e);
        }
    });
    let opts = EngineOptions {
        run_id: "run-it".into(),
        ..EngineOptions::default()
    };
    let status = engine::run(
        plan,
        Arc::new(Scripted),
        opts,
        CancellationToken::new(),
        engine_tx,
    )
    .await;
    tee.await.unwrap();
    let report = reporters.await.unwrap();
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(report.status, RunStatus::Failed);

    // The engine's counts (which the report shows) agree with the steps' final statuses.
    let mut events = Vec::new();
    while let Ok(e) = echo_rx.try_recv() {
        events.push(e);
    }
    let Some(RunEventKind::RunFinished { counts, .. }) = events.last().map(|e| &e.kind) else {
        panic!("the last event is not RunFinished");
    };
    assert_eq!(report.counts, *counts);
    for status in StepStatus::ALL {
        let n = report.steps.iter().filter(|s| s.status == status).count();
        assert_eq!(counts.get(status) as usize, n, "{status}");
    }
    let ids: Vec<&str> = report.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "master",
            "flaky",
            "gated",
            "broken",
            "after_broken",
            "tell_teams"
        ]
    );
    let flaky = report.step("flaky").unwrap();
    assert_eq!(flaky.status, StepStatus::Succeeded);
    assert_eq!(flaky.attempts.len(), 2);
    assert_eq!(flaky.attempts[0].remote_id.as_deref(), Some("flaky-1"));
    assert_eq!(
        report.step("gated").unwrap().reason.as_deref(),
        Some("condition false: vars.export == 'yes'")
    );
    assert_eq!(
        report.step("broken").unwrap().error.as_deref(),
        Some("Export failed: report not found")
    );

    // It validates against the report schema.
    let schema = report::json_schema();
    let json = serde_json::to_value(&report).unwrap();
    assert!(jsonschema::is_valid(&schema, &json));

    // What the terminal showed says the same, and no secret is anywhere.
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    for step in &report.steps {
        let line = format!(" {}: {}", step.id, step.status);
        assert!(text.contains(&line), "missing `{line}` in\n{text}");
    }
    let table = summary::render(&report, &[("report", PathBuf::from("run.json"))]);
    for out in [&text, &table, &json.to_string()] {
        assert!(!out.contains("TOPSECRET"));
    }
    insta::with_settings!({filters => vec![
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "[ts]"),
        (r"(succeeded|failed|timed_out|cancelled) in \d+(\.\d+)?(ms|s)", "$1 in [dur]"),
    ]}, {
        insta::assert_snapshot!("engine_run_lines", text);
    });
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_run_still_gives_a_complete_report() {
    let plan = Arc::new(Plan::new(Arc::new(job())).unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let reporters = Reporters::new().spawn(rx);
    let token = CancellationToken::new();
    let fire = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        fire.cancel();
    });
    let opts = EngineOptions {
        run_id: "run-int".into(),
        ..EngineOptions::default()
    };
    let status = engine::run(plan, Arc::new(Scripted), opts, token, tx).await;
    let report: RunReport = reporters.await.unwrap();
    assert_eq!(status, RunStatus::Cancelled);
    assert_eq!(report.status, RunStatus::Cancelled);
    assert_eq!(report.counts.succeeded, 1);
    assert_eq!(
        report.counts.skipped, 1,
        "`gated` was decided before the signal"
    );
    assert_eq!(report.counts.cancelled, 4);
    assert_eq!(report.steps.len(), 6);
}

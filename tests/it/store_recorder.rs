//! The recorder and the queries: what goes in comes back, each event on its own.

use std::time::Duration;

use indexmap::IndexMap;
use pbibatch::event::{AttemptUpdate, RunEvent, RunEventKind, StepInfo, StepStatus};
use pbibatch::job::model::{
    Cloud, Connection, Credentials, HeaderValue, IfRunning, Job, SasFlowStep, Step, StepKind,
    TriggerRule, WebhookStep,
};
use pbibatch::secret::Secret;
use pbibatch::store::{RunMeta, Store, StoreRecorder, step_hash};

use crate::store_support::{
    ORDER_LIST, Script, at, enhanced, failed_run, good_run, meta, record, tenant_target,
};
use pbibatch::store::RunTarget;

#[test]
fn store_records_a_run_and_reads_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/state.db");
    record(&path, meta("hash-a", &[]), &failed_run("run-1", 0));

    let store = Store::open(&path).unwrap();
    let run = store.load_run("run-1").unwrap();
    assert_eq!(run.status, "failed");
    assert_eq!(run.job_hash, "hash-a");
    assert_eq!(run.duration_secs, Some(100.0));
    let model = &run.steps[1];
    assert_eq!(model.id, "order_list_model");
    assert_eq!(model.status, "failed");
    assert_eq!(model.error.as_deref(), Some("capacity is overloaded"));
    assert_eq!(model.attempts.len(), 2);
    assert_eq!(model.attempts[1].remote_id.as_deref(), Some("req-2"));
    assert_eq!(
        model.resource.as_ref().and_then(|r| r.item_id.as_deref()),
        Some("order_list_model-id")
    );
    insta::assert_json_snapshot!("store_failed_run_details", run);
}

#[test]
fn store_history_lists_latest_first_and_filters_by_job() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    record(&path, meta("h", &[]), &failed_run("run-1", 0));
    record(&path, meta("h", &[]), &good_run("run-2", 1000));
    let mut other = Script::new("run-3");
    other
        .started(2000, "other_job", &[("only", "webhook")], None)
        .simple(2000, 2001, "only", StepStatus::Succeeded, None)
        .finished(2001, pbibatch::event::RunStatus::Succeeded);
    record(&path, meta("h", &[]), &other);

    let store = Store::open(&path).unwrap();
    let all: Vec<String> = store
        .history(None, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(all, ["run-3", "run-2", "run-1"]);
    let order_list = store.history(Some("order_list"), 10).unwrap();
    assert_eq!(order_list.len(), 2);
    assert_eq!(order_list[0].counts["succeeded"], 4);
    assert_eq!(order_list[1].counts["failed"], 1);
    assert_eq!(order_list[1].counts["upstream_failed"], 2);
    assert_eq!(store.history(None, 1).unwrap().len(), 1);
    assert_eq!(
        store.last_run(Some("order_list")).unwrap().unwrap().run_id,
        "run-2"
    );
    assert_eq!(store.load_run("last").unwrap().run_id, "run-3");
    let missing = store.load_run("nope").unwrap_err().to_string();
    assert_eq!(missing, "no run `nope` in the state store");
}

#[test]
fn store_commits_each_event_as_it_happens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut script = Script::new("run-1");
    script
        .started(0, "order_list", &ORDER_LIST, None)
        .simple(0, 5, "master_order_list", StepStatus::Succeeded, None)
        .attempt(5, "order_list_model", 1)
        .handle(6, "order_list_model", 1, enhanced("req-7"));
    let mut recorder = StoreRecorder::new(Store::open(&path).unwrap(), meta("h", &[]));
    // A second connection, as another process would see the file after a kill -9.
    let reader = Store::open(&path).unwrap();
    for (i, ev) in script.events.iter().enumerate() {
        recorder.record(ev).unwrap();
        let run = reader.load_run("run-1").unwrap();
        let attempts: usize = run.steps.iter().map(|s| s.attempts.len()).sum();
        let expected_attempts = script.events[..=i]
            .iter()
            .filter(|e| matches!(e.kind, RunEventKind::AttemptStarted { .. }))
            .count();
        assert_eq!(attempts, expected_attempts, "after event {i}");
    }
    // The process "dies" here: no further event. The run is incomplete, not running.
    drop(recorder);
    let run = reader.load_run("run-1").unwrap();
    assert_eq!(run.status, "incomplete");
    assert_eq!(run.steps[0].status, "succeeded");
    assert_eq!(run.steps[1].status, "running");
    assert_eq!(run.steps[2].status, "pending");
    let remote = run.steps[1].attempts[0].remote.clone().unwrap();
    assert_eq!(remote.handle, Some(enhanced("req-7")));
    assert_eq!(remote.status.as_deref(), Some("NotStarted"));
}

#[test]
fn store_progress_keeps_the_last_known_remote_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut script = Script::new("run-1");
    script
        .started(0, "order_list", &ORDER_LIST, None)
        .attempt(0, "order_list_model", 1)
        .handle(1, "order_list_model", 1, enhanced("req-1"))
        .progress(
            2,
            "order_list_model",
            1,
            AttemptUpdate {
                remote_status: Some("InProgress".into()),
                percent: Some(40),
                ..AttemptUpdate::default()
            },
        );
    record(&path, meta("h", &[]), &script);
    let run = Store::open(&path).unwrap().load_run("run-1").unwrap();
    let remote = run.steps[1].attempts[0].remote.clone().unwrap();
    assert_eq!(remote.handle, Some(enhanced("req-1")));
    assert_eq!(remote.status.as_deref(), Some("InProgress"));
    assert_eq!(remote.percent, Some(40));
}

#[test]
fn store_median_durations_come_from_successful_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    record(&path, meta("h", &[]), &good_run("run-1", 0));
    record(&path, meta("h", &[]), &good_run("run-2", 1000));
    record(&path, meta("h", &[]), &failed_run("run-3", 2000));
    let store = Store::open(&path).unwrap();
    let medians = store
        .median_durations("order_list", &tenant_target(), 20)
        .unwrap();
    assert_eq!(medians["order_list_model"], Duration::from_secs(60));
    assert_eq!(medians["order_book_pdf"], Duration::from_secs(20));
    assert_eq!(medians["master_order_list"], Duration::from_secs(10));
    assert!(
        store
            .median_durations("unknown", &tenant_target(), 20)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.priority_hint("order_list", &tenant_target()).unwrap()["order_list_model"],
        60.0
    );
}

#[test]
fn store_duration_hints_never_cross_targets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    record(&path, meta("h", &[]), &good_run("run-1", 0));
    let mut simulated = meta("h", &[]);
    simulated.target = RunTarget::Simulated;
    record(&path, simulated, &failed_run("run-2", 1000));
    let store = Store::open(&path).unwrap();
    // The tenant's hints come from the tenant's run only; the simulator's from its own.
    let tenant = store.priority_hint("order_list", &tenant_target()).unwrap();
    assert_eq!(tenant["order_list_model"], 60.0);
    assert_eq!(tenant.len(), 4);
    let sim = store
        .priority_hint("order_list", &RunTarget::Simulated)
        .unwrap();
    assert!(!sim.contains_key("order_list_model"), "{sim:?}");
    assert_eq!(sim["master_order_list"], 12.0);
    // Another tenant, and an unknown target, learn nothing.
    let mut other = tenant_target();
    if let RunTarget::Service(s) = &mut other {
        s.tenants = vec!["another-tenant".into()];
    }
    assert!(
        store
            .priority_hint("order_list", &other)
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .priority_hint("order_list", &RunTarget::Unknown)
            .unwrap()
            .is_empty()
    );
}

fn step(id: &str, kind: StepKind) -> Step {
    Step {
        id: id.into(),
        kind,
        depends_on: Vec::new(),
        trigger: TriggerRule::default(),
        when: None,
        pool: None,
        tags: Vec::new(),
        connection: "default".into(),
        timeout: Duration::from_secs(3600),
        retries: 2,
        retry_backoff: Duration::from_secs(30),
        max_backoff: Duration::from_secs(600),
        poll_interval: Duration::from_secs(15),
        if_running: IfRunning::Wait,
        continue_on_error: false,
        skip_if_fresh: None,
        expected_duration: None,
        on_overrun: Default::default(),
    }
}

/// A job whose steps and connection hold secrets, as the parser would build it.
fn job_with_secrets() -> Job {
    let mut headers = IndexMap::new();
    headers.insert(
        "Authorization".to_string(),
        HeaderValue::Secret(Secret::new("Bearer HEADER-SECRET-TOKEN")),
    );
    let flow = step(
        "master_order_list",
        StepKind::SasFlow(SasFlowStep {
            url: Secret::new(
                "https://prod-1.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/\
                 invoke?api-version=2016-06-01&sp=%2Ftriggers&sv=1.0&sig=SAS-SIG-SECRET",
            ),
            method: "POST".into(),
            headers: headers.clone(),
            body: None,
            expect_status: Vec::new(),
            wait_for: None,
            oauth: false,
        }),
    );
    let hook = step(
        "tell_teams",
        StepKind::Webhook(WebhookStep {
            url: Secret::new("https://example.webhook.office.com/webhookb2/WEBHOOK-PATH-SECRET"),
            method: "POST".into(),
            headers,
            body: None,
            expect_status: Vec::new(),
            format: pbibatch::job::model::WebhookFormat::Plain,
            link: None,
        }),
    );
    let mut connections = IndexMap::new();
    connections.insert(
        "default".to_string(),
        Connection {
            name: "default".into(),
            cloud: Cloud::Public,
            credentials: Credentials::ClientSecret {
                tenant_id: "tenant".into(),
                client_id: "client".into(),
                client_secret: Secret::new("CLIENT-SECRET-VALUE"),
            },
            picked_because: None,
        },
    );
    let mut steps = IndexMap::new();
    steps.insert(flow.id.clone(), flow);
    steps.insert(hook.id.clone(), hook);
    Job {
        name: "order_list".into(),
        description: None,
        file: "jobs/order_list.yaml".into(),
        file_hash: "f".repeat(64),
        capacity_limits: true,
        vars: IndexMap::new(),
        connections,
        concurrency: 4,
        pools: IndexMap::new(),
        steps,
        fan_outs: IndexMap::new(),
    }
}

#[test]
fn store_never_holds_a_secret() {
    let job = job_with_secrets();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut recorder = StoreRecorder::new(
        Store::open(&path).unwrap(),
        RunMeta::from_job(&job, serde_json::json!({"vars": ["export=no"]})),
    );
    let steps: Vec<StepInfo> = job
        .steps
        .values()
        .map(|s| StepInfo {
            id: s.id.clone(),
            step_type: s.type_name().into(),
            resource: s.kind.resource_label(),
            depends_on: s.depends_on.clone(),
            expected: None,
        })
        .collect();
    let events = [
        RunEventKind::RunStarted {
            run_id: "run-s".into(),
            job: job.name.clone(),
            job_file: "jobs/order_list.yaml".into(),
            steps,
            resumed_from: None,
        },
        RunEventKind::AttemptStarted {
            step: "master_order_list".into(),
            attempt: 1,
        },
        RunEventKind::AttemptFinished {
            step: "master_order_list".into(),
            attempt: 1,
            status: StepStatus::Succeeded,
            error: None,
            remote_id: Some("flow-run-1".into()),
            retry_in: None,
        },
    ];
    for (seq, kind) in events.into_iter().enumerate() {
        recorder
            .record(&RunEvent {
                seq: seq as u64,
                at: at(seq as i64),
                kind,
            })
            .unwrap();
    }
    let store = recorder.into_store();
    let json = serde_json::to_string(&store.load_run("run-s").unwrap()).unwrap();
    drop(store);
    let mut redacted_seen = false;
    let secrets = [
        "SAS-SIG-SECRET",
        "WEBHOOK-PATH-SECRET",
        "HEADER-SECRET-TOKEN",
        "CLIENT-SECRET-VALUE",
    ];
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        redacted_seen |= text.contains("https://example.webhook.office.com/***");
        for secret in secrets {
            assert!(!text.contains(secret), "{secret} leaked into the store");
            assert!(!json.contains(secret), "{secret} leaked into show");
        }
    }
    assert!(redacted_seen, "the redacted resource label was stored");
    // The step hash changes with the definition but cannot reveal a secret either.
    let hash = step_hash(&job.steps["master_order_list"]);
    assert_eq!(hash.len(), 64);
    let mut changed = job.steps["master_order_list"].clone();
    changed.retries = 5;
    assert_ne!(step_hash(&changed), hash);
}

#[test]
fn store_recorder_thread_records_everything_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let recorder = StoreRecorder::new(Store::open(&path).unwrap(), meta("h", &[]));
    let writer = recorder.spawn().unwrap();
    for ev in good_run("run-t", 0).events {
        writer.send(ev);
    }
    let (store, err) = writer.finish();
    assert!(err.is_none(), "{err:?}");
    let run = store.unwrap().load_run("run-t").unwrap();
    assert_eq!(run.status, "succeeded");
    assert_eq!(run.counts["succeeded"], 4);
}

/// `show --format json` of a finished run is the run report the reporter folds from the same
/// events (plus `job_hash` and `arguments`), and validates against the report's schema.
#[test]
fn store_show_json_is_the_run_report() {
    use pbibatch::reporter::report::RunReport;
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(crate::common::repo().join("schemas/pbibatch-report.schema.json"))
            .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for script in [failed_run("run-f", 0), good_run("run-g", 500)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        record(&path, meta("hash-a", &[]), &script);
        let details = Store::open(&path)
            .unwrap()
            .load_run(&script.run_id)
            .unwrap();
        let mut shown = details.to_json();
        let errors: Vec<String> = validator
            .iter_errors(&shown)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
        let extras = shown.as_object_mut().unwrap();
        assert_eq!(extras.remove("job_hash").unwrap(), "hash-a");
        assert!(extras.remove("arguments").is_some());
        assert!(extras.remove("target").is_some());
        let expected = serde_json::to_value(RunReport::from_events(&script.events)).unwrap();
        assert_eq!(shown, expected);
        assert_eq!(
            details.to_report().unwrap(),
            RunReport::from_events(&script.events)
        );
    }
}

#[test]
fn store_runs_of_several_jobs_record_into_one_store_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    Store::open(&path).unwrap();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let path = path.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let ids: Vec<String> = (0..50).map(|n| format!("step_{n}")).collect();
                let steps: Vec<(&str, &str)> =
                    ids.iter().map(|id| (id.as_str(), "dataset")).collect();
                let mut script = Script::new(&format!("run-{i}"));
                script.started(0, &format!("job_{i}"), &steps, None);
                for id in &ids {
                    script
                        .attempt(1, id, 1)
                        .handle(1, id, 1, enhanced("r"))
                        .attempt_end(2, id, 1, StepStatus::Succeeded, None, false)
                        .step_end(2, id, StepStatus::Succeeded, None, 1);
                }
                script.finished(3, pbibatch::event::RunStatus::Succeeded);
                let mut recorder = StoreRecorder::new(Store::open(&path).unwrap(), meta("h", &[]));
                barrier.wait();
                for ev in &script.events {
                    recorder.record(ev).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let store = Store::open(&path).unwrap();
    let runs = store.history(None, 100).unwrap();
    assert_eq!(runs.len(), 4);
    assert!(
        runs.iter()
            .all(|r| r.status == "succeeded" && r.counts["succeeded"] == 50)
    );
}

#[test]
fn store_prune_keeps_the_latest_runs_of_a_job() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    for i in 0..5 {
        record(
            &path,
            meta("h", &[]),
            &failed_run(&format!("run-{i}"), i * 1000),
        );
    }
    let mut other = Script::new("other-run");
    other.started(0, "other_job", &[("only", "webhook")], None);
    record(&path, meta("h", &[]), &other);
    let mut store = Store::open(&path).unwrap();
    assert_eq!(store.prune("order_list", 2).unwrap(), 3);
    let left: Vec<String> = store
        .history(None, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(left, ["run-4", "run-3", "other-run"]);
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    for table in ["steps", "attempts", "remote_handles"] {
        let orphans: i64 = conn
            .query_row(
                &format!(
                    "SELECT COUNT(*) FROM {table} WHERE run_id NOT IN (SELECT run_id FROM runs)"
                ),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(orphans, 0, "{table}");
    }
    assert_eq!(
        Store::open(&path).unwrap().prune("order_list", 2).unwrap(),
        0
    );
}

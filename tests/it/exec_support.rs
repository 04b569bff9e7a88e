//! Helpers for the client and executor tests: a simulator, a client logged in to it with
//! client credentials, steps with test defaults, and one attempt run through the Dispatcher.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use pbibatch::event::{AttemptUpdate, RemoteHandle, StepStatus};
use pbibatch::executor::{AttemptContext, AttemptOutcome, Cancel, Dispatcher, Executor, RunView};
use pbibatch::job::model::{
    Cloud, Connection, Credentials, IfRunning, Job, Step, StepKind, TriggerRule,
};
use pbibatch::powerbi::{ClientConfig, PowerBiClient};
use pbibatch::secret::Secret;
use pbibatch::sim::{Profile, RecordedRequest, SimServer};
use tokio::sync::mpsc;
use url::Url;

/// A simulator and a client pointed at it.
pub(crate) struct Rig {
    pub sim: SimServer,
    pub client: PowerBiClient,
    pub connections: IndexMap<String, Connection>,
}

/// The `default` connection with the simulator's client credentials.
pub(crate) fn sim_connection(sim: &SimServer) -> Connection {
    Connection {
        name: "default".into(),
        cloud: Cloud::Public,
        credentials: Credentials::ClientSecret {
            tenant_id: sim.tenant_id(),
            client_id: sim.client_id(),
            client_secret: Secret::new(sim.client_secret()),
        },
        picked_because: None,
    }
}

/// A configuration whose three bases and IMDS point at the simulator, with quick retries.
pub(crate) fn sim_config(sim: &SimServer) -> ClientConfig {
    let base = Url::parse(&sim.base_url()).unwrap();
    let mut cfg = ClientConfig::for_cloud(Cloud::Public).with_single_base(&base);
    cfg.retry.base_delay = Duration::from_millis(20);
    cfg.retry.max_delay = Duration::from_millis(200);
    cfg
}

/// Starts a simulator for `yaml` and a client with one client-credentials connection.
pub(crate) async fn rig(yaml: &str) -> Rig {
    let mut profile = Profile::from_yaml(yaml).expect("valid profile");
    // These tests drive each executor's protocol with the service principal; that Fabric
    // fails a Dataflow Gen2 run started by one has its own tests (sim_strict.rs).
    profile
        .relax
        .push(pbibatch::sim::Rule::DataflowGen2ServicePrincipal);
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let sim = pbibatch::sim::start(profile, addr)
        .await
        .expect("simulator starts");
    let mut connections = IndexMap::new();
    connections.insert("default".to_string(), sim_connection(&sim));
    let client = PowerBiClient::new(sim_config(&sim), connections.clone()).unwrap();
    Rig {
        sim,
        client,
        connections,
    }
}

/// A step with quick test defaults: 60 s timeout, no retries, 200 ms poll interval.
pub(crate) fn step(id: &str, kind: StepKind) -> Step {
    Step {
        id: id.to_string(),
        kind,
        depends_on: vec![],
        trigger: TriggerRule::AllSuccess,
        when: None,
        pool: None,
        tags: vec![],
        connection: "default".into(),
        timeout: Duration::from_secs(60),
        retries: 0,
        retry_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(10),
        poll_interval: Duration::from_millis(200),
        if_running: IfRunning::Wait,
        continue_on_error: false,
        skip_if_fresh: None,
        expected_duration: None,
        on_overrun: Default::default(),
    }
}

/// A job holding `steps` and the rig's connections.
pub(crate) fn job(rig: &Rig, steps: Vec<Step>) -> Job {
    Job {
        name: "exec_test".into(),
        description: None,
        file: PathBuf::from("exec_test.yaml"),
        file_hash: String::new(),
        capacity_limits: true,
        vars: IndexMap::new(),
        connections: rig.connections.clone(),
        concurrency: 8,
        pools: IndexMap::new(),
        steps: steps.into_iter().map(|s| (s.id.clone(), s)).collect(),
        fan_outs: IndexMap::new(),
    }
}

/// What one attempt did.
#[derive(Debug)]
pub(crate) struct Ran {
    pub outcome: AttemptOutcome,
    pub updates: Vec<AttemptUpdate>,
}

impl Ran {
    /// The last remote id reported.
    pub(crate) fn remote_id(&self) -> Option<String> {
        self.updates.iter().rev().find_map(|u| u.remote_id.clone())
    }

    /// The last handle reported.
    pub(crate) fn handle(&self) -> Option<RemoteHandle> {
        self.updates.iter().rev().find_map(|u| u.handle.clone())
    }

    pub(crate) fn error(&self) -> String {
        match &self.outcome {
            AttemptOutcome::Failed { error, .. } | AttemptOutcome::Refused { error } => {
                error.clone()
            }
            AttemptOutcome::Cancelled { error } => error.clone().unwrap_or_default(),
            other => panic!("expected a failure, got {other:?}"),
        }
    }
}

/// Options of one attempt.
#[derive(Default)]
pub(crate) struct AttemptOptions {
    pub cancel: Option<Cancel>,
    pub reattach: Option<RemoteHandle>,
    pub run_view: Option<RunView>,
}

/// Runs one attempt of `step` through a Dispatcher.
pub(crate) async fn run_step(rig: &Rig, step: Step) -> Ran {
    run_step_with(rig, step, AttemptOptions::default()).await
}

pub(crate) async fn run_step_with(rig: &Rig, step: Step, opts: AttemptOptions) -> Ran {
    let job = Arc::new(job(rig, vec![step.clone()]));
    let dispatcher = Dispatcher::new(rig.client.clone(), job);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let ctx = AttemptContext {
        run_id: "run-1".into(),
        step: Arc::new(step),
        attempt: 1,
        cancel: opts.cancel.unwrap_or_default(),
        updates: tx,
        run_view: opts.run_view.unwrap_or_else(|| RunView {
            run_id: "run-1".into(),
            job: "exec_test".into(),
            status: "running".into(),
            summary: "exec_test: 1 succeeded".into(),
            steps: vec![("first".into(), StepStatus::Succeeded)],
            started_at: String::new(),
            ..RunView::default()
        }),
        reattach: opts.reattach,
        durable: false,
        estimate: None,
    };
    let outcome = dispatcher.execute(ctx).await;
    let mut updates = Vec::new();
    while let Ok((_, _, u)) = rx.try_recv() {
        updates.push(u);
    }
    Ran { outcome, updates }
}

/// Requests to paths containing `fragment` with `method`.
pub(crate) fn requests_to(sim: &SimServer, method: &str, fragment: &str) -> Vec<RecordedRequest> {
    sim.requests()
        .into_iter()
        .filter(|r| r.method == method && r.path.contains(fragment))
        .collect()
}

/// Every recorded request as one text (for "no secret anywhere" checks).
pub(crate) fn all_requests_text(sim: &SimServer) -> String {
    sim.requests()
        .iter()
        .map(|r| {
            format!(
                "{} {}?{}",
                r.method,
                r.path,
                r.query.clone().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

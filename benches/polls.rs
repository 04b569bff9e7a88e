//! Figures for docs/performance.md and docs/executors.md: status reads per refresh and
//! detection lag for 2 s, 30 s and 10 min refreshes (each executor kind, the default
//! `poll_interval: 15s`), next to a fixed 60 s and a fixed 5 s poller, and token requests per
//! run. Prints `key=value` lines:
//!
//! ```text
//! cargo bench --bench polls
//! ```
//!
//! The simulator and the executors share one paused (virtual) tokio clock: a 10 min refresh
//! is simulated exactly and ends in well under a second of wall time. Scaling the simulator
//! alone (`time_scale`) would shrink the refresh but not the poller's pauses (its first pause
//! is a fixed 1 s), so the reads and the lag would describe a different refresh. The fixed
//! pollers are computed: a poller every P seconds reads ceil(D / P) times and notices the end
//! ceil(D / P) × P − D after it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use indexmap::IndexMap;
use pbibatch::executor::{AttemptContext, AttemptOutcome, Cancel, Dispatcher, Executor, RunView};
use pbibatch::job::model::{
    Cloud, Connection, Credentials, DataflowStep, DatasetStep, EnhancedRefresh, Generation,
    IfRunning, Job, NotifyOption, RefreshType, Step, StepKind, TriggerRule,
};
use pbibatch::powerbi::{ClientConfig, PowerBiClient};
use pbibatch::secret::Secret;
use pbibatch::sim::{Profile, SimServer, resource_key};
use tokio::sync::mpsc;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Standard,
    Enhanced,
    Gen1,
    Gen2,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Standard => "dataset_standard",
            Kind::Enhanced => "dataset_enhanced",
            Kind::Gen1 => "dataflow_gen1",
            Kind::Gen2 => "dataflow_gen2",
        }
    }

    fn profile(self, secs: u64) -> String {
        format!(
            "workspaces:\n  WS:\n    {}:\n      R: {{duration: {secs}s}}\n",
            self.section()
        )
    }

    /// A resource whose five last runs took `usual` seconds, this one `secs`.
    fn profile_with_history(self, secs: u64, usual: u64) -> String {
        format!(
            "workspaces:\n  WS:\n    {}:\n      R: {{duration: {secs}s, past_runs: 5, past_duration: {usual}s}}\n",
            self.section()
        )
    }

    fn section(self) -> &'static str {
        match self {
            Kind::Standard | Kind::Enhanced => "datasets",
            Kind::Gen1 => "dataflows",
            Kind::Gen2 => "fabric_dataflows",
        }
    }

    fn counter_key(self) -> String {
        let kind = match self {
            Kind::Standard | Kind::Enhanced => "dataset",
            Kind::Gen1 => "dataflow",
            Kind::Gen2 => "fabric_dataflow",
        };
        resource_key(kind, "WS", "R")
    }

    fn step_kind(self) -> StepKind {
        let dataflow = |generation| {
            StepKind::Dataflow(DataflowStep {
                workspace: "WS".into(),
                dataflow: "R".into(),
                generation,
                notify: NotifyOption::NoNotification,
                process_type: None,
                execute_option: None,
                parameters: IndexMap::new(),
            })
        };
        let dataset = |refresh| {
            StepKind::Dataset(DatasetStep {
                workspace: "WS".into(),
                dataset: "R".into(),
                notify: NotifyOption::NoNotification,
                refresh,
            })
        };
        match self {
            Kind::Standard => dataset(None),
            Kind::Enhanced => dataset(Some(EnhancedRefresh {
                refresh_type: Some(RefreshType::Full),
                ..EnhancedRefresh::default()
            })),
            Kind::Gen1 => dataflow(Generation::Gen1),
            Kind::Gen2 => dataflow(Generation::Gen2),
        }
    }
}

/// pbibatch's default `poll_interval`.
const POLL_INTERVAL: Duration = Duration::from_secs(15);

fn step(id: &str, kind: StepKind) -> Step {
    Step {
        id: id.into(),
        kind,
        depends_on: vec![],
        trigger: TriggerRule::AllSuccess,
        when: None,
        pool: None,
        tags: vec![],
        connection: "default".into(),
        timeout: Duration::from_secs(600),
        retries: 0,
        retry_backoff: Duration::from_secs(30),
        max_backoff: Duration::from_secs(600),
        poll_interval: POLL_INTERVAL,
        if_running: IfRunning::Wait,
        continue_on_error: false,
        skip_if_fresh: None,
        expected_duration: None,
        on_overrun: Default::default(),
    }
}

async fn sim(yaml: &str) -> SimServer {
    // The bench signs in as a service principal; a Gen2 run by one fails in the service
    // (and the strict simulator) after it started. Reads are measured here, not identities.
    let yaml = format!("relax: [dataflow_gen2_service_principal]\n{yaml}");
    let profile = Profile::from_yaml(&yaml).expect("profile");
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    pbibatch::sim::start(profile, addr).await.expect("sim")
}

fn client(sim: &SimServer) -> (PowerBiClient, IndexMap<String, Connection>) {
    let base = url::Url::parse(&sim.base_url()).expect("url");
    let cfg = ClientConfig::for_cloud(Cloud::Public).with_single_base(&base);
    let mut conns = IndexMap::new();
    conns.insert(
        "default".to_string(),
        Connection {
            name: "default".into(),
            cloud: Cloud::Public,
            credentials: Credentials::ClientSecret {
                tenant_id: sim.tenant_id(),
                client_id: sim.client_id(),
                client_secret: Secret::new(sim.client_secret()),
            },
            picked_because: None,
        },
    );
    (
        PowerBiClient::new(cfg, conns.clone()).expect("client"),
        conns,
    )
}

async fn run(
    client: &PowerBiClient,
    conns: &IndexMap<String, Connection>,
    steps: Vec<Step>,
) -> Vec<(AttemptOutcome, Duration)> {
    let job = Arc::new(Job {
        name: "bench".into(),
        description: None,
        file: PathBuf::from("bench.yaml"),
        file_hash: String::new(),
        capacity_limits: true,
        vars: IndexMap::new(),
        connections: conns.clone(),
        concurrency: 100,
        pools: IndexMap::new(),
        steps: steps.iter().map(|s| (s.id.clone(), s.clone())).collect(),
        fan_outs: IndexMap::new(),
    });
    let dispatcher = Dispatcher::new(client.clone(), job);
    let futures = steps.into_iter().map(|s| {
        let dispatcher = dispatcher.clone();
        async move {
            let (tx, _rx) = mpsc::unbounded_channel();
            let ctx = AttemptContext {
                run_id: "bench".into(),
                step: Arc::new(s),
                attempt: 1,
                cancel: Cancel::new(),
                updates: tx,
                run_view: RunView::default(),
                reattach: None,
                durable: false,
                estimate: None,
            };
            let started = Instant::now();
            let outcome = dispatcher.execute(ctx).await;
            (outcome, started.elapsed())
        }
    });
    futures::future::join_all(futures).await
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(measure());
}

async fn measure() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut tasks = Vec::new();
    for secs in [2u64, 30, 600] {
        for kind in [Kind::Standard, Kind::Enhanced, Kind::Gen1, Kind::Gen2] {
            tasks.push(async move {
                let sim = sim(&kind.profile(secs)).await;
                let (client, conns) = client(&sim);
                let mut out = run(&client, &conns, vec![step("r", kind.step_kind())]).await;
                let (outcome, took) = out.remove(0);
                let polls = sim.counters().resource(&kind.counter_key()).polls;
                sim.shutdown().await;
                (kind, secs, outcome, took, polls)
            });
        }
    }
    for (kind, secs, outcome, took, polls) in futures::future::join_all(tasks).await {
        let ok = matches!(outcome, AttemptOutcome::Succeeded { .. });
        println!(
            "polls.{}.{secs}s reads={polls} lag_s={:.2} succeeded={ok}",
            kind.name(),
            took.as_secs_f64() - secs as f64,
        );
    }
    // With history: the resource usually takes 600 s; this run takes 540, 600 or 660 s
    // (±10 %). At the default poll_interval (15 s, the longest pause) and at 1 h (the
    // estimate decides).
    let mut tasks = Vec::new();
    for poll in [POLL_INTERVAL, Duration::from_secs(3600)] {
        for secs in [540u64, 600, 660] {
            for kind in [Kind::Standard, Kind::Enhanced, Kind::Gen1, Kind::Gen2] {
                tasks.push(async move {
                    let sim = sim(&kind.profile_with_history(secs, 600)).await;
                    let (client, conns) = client(&sim);
                    let mut s = step("r", kind.step_kind());
                    s.poll_interval = poll;
                    let mut out = run(&client, &conns, vec![s]).await;
                    let (outcome, took) = out.remove(0);
                    let polls = sim.counters().resource(&kind.counter_key()).polls;
                    sim.shutdown().await;
                    (kind, secs, poll, outcome, took, polls)
                });
            }
        }
    }
    for (kind, secs, poll, outcome, took, polls) in futures::future::join_all(tasks).await {
        let ok = matches!(outcome, AttemptOutcome::Succeeded { .. });
        let lag = took.as_secs_f64() - secs as f64;
        println!(
            "polls_usual_600s.{}.poll_{}s.{secs}s reads={polls} lag_s={lag:.2} lag_pct={:.2} fixed_60s_reads={} succeeded={ok}",
            kind.name(),
            poll.as_secs(),
            100.0 * lag / secs as f64,
            secs.div_ceil(60),
        );
    }
    for secs in [2u64, 30, 600] {
        for every in [60u64, 5] {
            let reads = secs.div_ceil(every);
            println!(
                "polls.fixed_{every}s.{secs}s reads={reads} lag_s={:.2}",
                (reads * every - secs) as f64
            );
        }
    }
    // Token requests for one run of seven steps over both APIs.
    let sim = sim("workspaces:\n  WS:\n    datasets:\n      A: {duration: 1s}\n      B: {duration: 1s}\n      C: {duration: 1s}\n    dataflows:\n      D: {duration: 1s}\n      E: {duration: 1s}\n    fabric_dataflows:\n      F: {duration: 1s}\n      G: {duration: 1s}\n").await;
    let (client, conns) = client(&sim);
    let ds = |n: &str| {
        StepKind::Dataset(DatasetStep {
            workspace: "WS".into(),
            dataset: n.into(),
            notify: NotifyOption::NoNotification,
            refresh: None,
        })
    };
    let df = |n: &str, generation| {
        StepKind::Dataflow(DataflowStep {
            workspace: "WS".into(),
            dataflow: n.into(),
            generation,
            notify: NotifyOption::NoNotification,
            process_type: None,
            execute_option: None,
            parameters: IndexMap::new(),
        })
    };
    let steps = vec![
        step("a", ds("A")),
        step("b", ds("B")),
        step("c", ds("C")),
        step("d", df("D", Generation::Gen1)),
        step("e", df("E", Generation::Gen1)),
        step("f", df("F", Generation::Gen2)),
        step("g", df("G", Generation::Gen2)),
    ];
    let outcomes = run(&client, &conns, steps).await;
    let ok = outcomes
        .iter()
        .filter(|(o, _)| matches!(o, AttemptOutcome::Succeeded { .. }))
        .count();
    println!(
        "tokens.seven_steps requests={} issued={} succeeded={ok}",
        client.token_requests(),
        sim.counters().tokens_issued
    );
}

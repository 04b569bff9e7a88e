//! Engine figures (a bench, not a test): scheduler overhead on a large random DAG, and the
//! makespan of eager scheduling against its lower bound and against wave-by-wave scheduling.
//!
//! ```text
//! cargo bench --bench engine_bench -- overhead 10000 8
//! cargo bench --bench engine_bench -- overhead 10000 256
//! cargo bench --bench engine_bench -- makespan 40 4 20     # steps, concurrency, seeds
//! ```
//!
//! Prints `key=value` lines (bench/run.sh collects them for docs/performance.md). The
//! end-to-end overhead through HTTP and the simulator is `pbibatch run --simulate`, measured by
//! bench/run.sh itself.
//!
//! `overhead` runs every step through an executor that succeeds at once, with the reporters
//! folding the events, so what it measures is the engine and the event path. `makespan` uses
//! paused (virtual) tokio time and an executor that sleeps each step's duration.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use indexmap::IndexMap;
use pbibatch::engine::{self, EngineOptions};
use pbibatch::event::RunStatus;
use pbibatch::executor::{AttemptContext, AttemptOutcome, Executor, estimate};
use pbibatch::job::model::{
    DatasetStep, IfRunning, Job, NotifyOption, Step, StepKind, TriggerRule,
};
use pbibatch::plan::Plan;
use pbibatch::reporter::Reporters;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

/// Sleeps each step's scripted duration (zero = succeed at once).
/// Sleeps each step's duration; `.1` is what the service's run history says of each step's
/// resource (its usual duration), answered by [`Executor::estimate`].
struct Sleeper(HashMap<String, Duration>, HashMap<String, Duration>);

impl Executor for Sleeper {
    fn estimate(&self, step: Arc<Step>) -> BoxFuture<'static, Option<pbibatch::event::Usual>> {
        let usual = self
            .1
            .get(&step.id)
            .map(|&median| pbibatch::event::Usual { median, runs: 5 });
        async move { usual }.boxed()
    }

    fn execute(&self, ctx: AttemptContext) -> BoxFuture<'static, AttemptOutcome> {
        let d = self.0.get(&ctx.step.id).copied().unwrap_or_default();
        async move {
            if !d.is_zero() {
                tokio::time::sleep(d).await;
            }
            AttemptOutcome::Succeeded { adopted: false }
        }
        .boxed()
    }
}

/// A dataset step (each its own dataset, so the per-resource limit never binds).
fn step(id: String, deps: Vec<String>) -> Step {
    Step {
        kind: StepKind::Dataset(DatasetStep {
            workspace: "Bench".into(),
            dataset: id.clone(),
            notify: NotifyOption::NoNotification,
            refresh: None,
        }),
        id,
        depends_on: deps,
        trigger: TriggerRule::AllSuccess,
        when: None,
        pool: None,
        tags: Vec::new(),
        connection: "default".into(),
        timeout: Duration::from_secs(3600),
        retries: 0,
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

/// A seeded random DAG: each step depends on 0..=3 of the 10 steps before it.
fn random_job(n: usize, concurrency: u32, rng: &mut StdRng) -> Job {
    let mut steps = IndexMap::new();
    for i in 0..n {
        let window = i.min(10);
        let k = rng.random_range(0..=window.min(3));
        let mut deps: Vec<String> = Vec::new();
        while deps.len() < k {
            let p = i - 1 - rng.random_range(0..window);
            let id = format!("s{p:05}");
            if !deps.contains(&id) {
                deps.push(id);
            }
        }
        let id = format!("s{i:05}");
        steps.insert(id.clone(), step(id, deps));
    }
    Job {
        name: "bench".into(),
        description: None,
        file: PathBuf::from("bench.yaml"),
        file_hash: String::new(),
        capacity_limits: true,
        vars: IndexMap::new(),
        connections: IndexMap::new(),
        concurrency,
        pools: IndexMap::new(),
        steps,
        fan_outs: IndexMap::new(),
    }
}

async fn run(
    plan: Arc<Plan>,
    exec: Arc<Sleeper>,
    priority_hint: HashMap<String, f64>,
    expected: HashMap<String, pbibatch::event::Expected>,
) -> (RunStatus, usize) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let reporters = Reporters::new().spawn(rx);
    let opts = EngineOptions {
        run_id: "bench".into(),
        priority_hint,
        expected,
        ..EngineOptions::default()
    };
    let status = engine::run(plan, exec, opts, CancellationToken::new(), tx).await;
    let report = reporters.await.map(|r| r.steps.len()).unwrap_or(0);
    (status, report)
}

/// `mode`: `plain`; `expected` (every step has an expected duration of 1 h: a timer armed and
/// dropped per step); `overran` (every step's limit is 1 ns: each is flagged, one more event
/// per step).
fn overhead(n: usize, concurrency: u32, mode: &str) {
    let mut rng = StdRng::seed_from_u64(42);
    let job = random_job(n, concurrency, &mut rng);
    let limit = match mode {
        "expected" => Some(3600.0),
        "overran" => Some(1e-9),
        _ => None,
    };
    let expected = job
        .steps
        .keys()
        .filter_map(|id| {
            let secs = limit?;
            Some((
                id.clone(),
                pbibatch::event::Expected {
                    secs: Some(secs),
                    from: pbibatch::event::ExpectedFrom::Stated,
                    usual_secs: None,
                    runs: None,
                    on_overrun: Default::default(),
                },
            ))
        })
        .collect();
    let plan = Arc::new(Plan::new(Arc::new(job)).expect("acyclic by construction"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let exec = Arc::new(Sleeper(HashMap::new(), HashMap::new()));
    let start = std::time::Instant::now();
    let (status, steps) = rt.block_on(run(plan, exec, HashMap::new(), expected));
    let wall = start.elapsed();
    let suffix = if mode == "plain" {
        String::new()
    } else {
        format!(".{mode}")
    };
    println!(
        "engine.overhead.{n}.c{concurrency}{suffix} status={status:?} reported={steps} wall_s={:.3} us_per_step={:.1}",
        wall.as_secs_f64(),
        wall.as_secs_f64() * 1e6 / n as f64
    );
}

/// Longest path and total work, by duration.
fn bounds(plan: &Plan, d: &HashMap<String, Duration>) -> (f64, f64) {
    let mut finish: HashMap<&str, f64> = HashMap::new();
    for wave in &plan.waves {
        for id in wave {
            let start = plan
                .parents(id)
                .iter()
                .filter_map(|p| finish.get(p.as_str()).copied())
                .fold(0.0, f64::max);
            finish.insert(id, start + d[id].as_secs_f64());
        }
    }
    let cp = finish.values().copied().fold(0.0, f64::max);
    let work: f64 = d.values().map(Duration::as_secs_f64).sum();
    (cp, work)
}

/// Wave-by-wave: each wave starts when the previous one has fully ended; inside a wave,
/// list scheduling at `c` slots, longest step first.
fn waves_makespan(plan: &Plan, d: &HashMap<String, Duration>, c: usize) -> f64 {
    let mut t = 0.0;
    for wave in &plan.waves {
        let mut durs: Vec<f64> = wave.iter().map(|id| d[id].as_secs_f64()).collect();
        durs.sort_by(|a, b| b.total_cmp(a));
        let mut slots = vec![0.0f64; c];
        for x in durs {
            let (i, _) = slots
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.total_cmp(b.1))
                .expect("at least one slot");
            slots[i] += x;
        }
        t += slots.iter().copied().fold(0.0, f64::max);
    }
    t
}

/// The engine's makespan in paused (virtual) time.
fn virtual_makespan(plan: Arc<Plan>, exec: Arc<Sleeper>, hints: HashMap<String, f64>) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let start = tokio::time::Instant::now();
        run(plan, exec, hints, HashMap::new()).await;
        start.elapsed().as_secs_f64()
    })
}

/// A first run: no local history, so `pbibatch run`'s own path asks the service's history
/// ([`estimate::service_hints`]) before the engine starts.
fn first_run_makespan(plan: Arc<Plan>, exec: Arc<Sleeper>, concurrency: u32) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let executor: Arc<dyn Executor> = exec.clone();
        let hints = estimate::service_hints(
            &executor,
            &plan,
            concurrency,
            &HashMap::new(),
            &HashMap::new(),
            &CancellationToken::new(),
        )
        .await;
        let start = tokio::time::Instant::now();
        run(plan, exec, hints, HashMap::new()).await;
        start.elapsed().as_secs_f64()
    })
}

fn makespan(n: usize, concurrency: u32, seeds: u64) {
    let mut ratios = Vec::new();
    let mut wave_ratios = Vec::new();
    let mut hinted_ratios = Vec::new();
    let mut first_ratios = Vec::new();
    for seed in 1..=seeds {
        let mut rng = StdRng::seed_from_u64(seed);
        let job = random_job(n, concurrency, &mut rng);
        let durations: HashMap<String, Duration> = job
            .steps
            .keys()
            .map(|id| {
                let ms = rng.random_range(200..=1500);
                (id.clone(), Duration::from_millis(ms))
            })
            .collect();
        let plan = Arc::new(Plan::new(Arc::new(job)).expect("acyclic by construction"));
        let (cp, work) = bounds(&plan, &durations);
        let lower = cp.max(work / f64::from(concurrency));
        let waves = waves_makespan(&plan, &durations, concurrency as usize);
        // Eager by step count (no history), then with past durations as priority hints
        // (what the state store supplies once a job has run before).
        let hints: HashMap<String, f64> = durations
            .iter()
            .map(|(k, v)| (k.clone(), v.as_secs_f64()))
            .collect();
        // The service's history: each resource's usual duration within ±10 % of this run's.
        let usual: HashMap<String, Duration> = durations
            .iter()
            .map(|(k, v)| (k.clone(), v.mul_f64(rng.random_range(0.9..=1.1))))
            .collect();
        let exec = Arc::new(Sleeper(durations, usual));
        let eager = virtual_makespan(plan.clone(), exec.clone(), HashMap::new());
        let first = first_run_makespan(plan.clone(), exec.clone(), concurrency);
        let hinted = virtual_makespan(plan.clone(), exec, hints);
        eprintln!(
            "seed {seed:2}: critical path {cp:6.2} s, work/{concurrency} {:6.2} s, lower bound {lower:6.2} s | eager {:.3}x | first run with service history {:.3}x | eager+hints {:.3}x | waves {:.3}x",
            work / f64::from(concurrency),
            eager / lower,
            first / lower,
            hinted / lower,
            waves / lower
        );
        ratios.push(eager / lower);
        hinted_ratios.push(hinted / lower);
        first_ratios.push(first / lower);
        wave_ratios.push(waves / lower);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    println!(
        "makespan.{n}.c{concurrency} seeds={seeds} eager_mean={:.3} eager_max={:.3} first_run_mean={:.3} first_run_max={:.3} hinted_mean={:.3} hinted_max={:.3} waves_mean={:.3} waves_max={:.3}",
        mean(&ratios),
        max(&ratios),
        mean(&first_ratios),
        max(&first_ratios),
        mean(&hinted_ratios),
        max(&hinted_ratios),
        mean(&wave_ratios),
        max(&wave_ratios)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: u64| {
        args.get(i)
            .and_then(|a| a.parse::<u64>().ok())
            .unwrap_or(default)
    };
    match args.first().map(String::as_str) {
        Some("overhead") => overhead(
            num(1, 10_000) as usize,
            num(2, 8) as u32,
            args.get(3).map_or("plain", String::as_str),
        ),
        Some("makespan") => makespan(num(1, 40) as usize, num(2, 4) as u32, num(3, 20)),
        _ => {
            eprintln!(
                "usage: engine_bench overhead [STEPS] [CONCURRENCY] [plain|expected|overran] | makespan [STEPS] [CONCURRENCY] [SEEDS]"
            );
            std::process::exit(2);
        }
    }
}

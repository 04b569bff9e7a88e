//! Model-based test of the exactly-once invariants (DESIGN.md "Exactly once, and true",
//! docs/architecture.md): generated job shapes (1 to 4 steps of every kind that starts
//! remote work, `capacity` steps included, any `if_running`, a refresh already running or not) are run by the real
//! `pbibatch` binary against the simulator through a generated sequence of process
//! invocations: the first `run`, then `run --resume last`, each with a fault schedule (429
//! with a short or a 700 s `Retry-After`, 500, a connection dropped before or after the
//! service acted, on a trigger or on a poll) and an end (it completes, or is `kill -9`ed or
//! SIGTERMed while the simulator holds a chosen request). After every invocation the judge
//! (check.rs) reads the simulator's journal and runs and the run history, and fails with the
//! story of the steps concerned. proptest-state-machine shrinks a failure to the fewest
//! invocations, faults and steps.
//!
//! CI runs a fixed seed and [`DEFAULT_CASES`] cases; `PBIBATCH_PROP_CASES=N` runs more,
//! `PBIBATCH_PROP_SEED=N` another seed, and `PBIBATCH_PROP_SURVEY=FILE` records every violation
//! in FILE instead of stopping at the first (to count them on a build that has some).

mod check;
mod scenario;

use std::fs::File;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use pbibatch::sim::{Fault, FaultRule, SimServer};
use pbibatch::store::Store;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use serde_json::Value;

use check::{CapacityView, Ended, Evidence, Proc, StepView};
use scenario::{
    Boundary, FaultKind, FaultSpec, Invocation, JobSpec, Kind, SKU_FROM, SKU_TO, Scope, Stop,
    Target, capacity_path, flow_name, item_kind, item_name, step_id,
};

/// Cases a plain `cargo test` runs (about two minutes on two cores in a debug build).
const DEFAULT_CASES: u32 = 24;
/// The seed CI uses, so a CI failure replays anywhere.
const DEFAULT_SEED: u64 = 0x1313_0001;
/// The longest one invocation may take before the test calls it hung.
const PROCESS_LIMIT: Duration = Duration::from_secs(150);
/// How long a SIGTERMed process has to write its reports and exit.
const SIGTERM_GRACE: Duration = Duration::from_secs(30);

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn config() -> Config {
    Config {
        cases: env_u64("PBIBATCH_PROP_CASES").map_or(DEFAULT_CASES, |n| n as u32),
        rng_seed: RngSeed::Fixed(env_u64("PBIBATCH_PROP_SEED").unwrap_or(DEFAULT_SEED)),
        // Each shrink step runs processes for seconds: bound the search.
        max_shrink_iters: env_u64("PBIBATCH_PROP_SHRINK").map_or(48, |n| n as u32),
        failure_persistence: None,
        ..Config::default()
    }
}

/// `PBIBATCH_PROP_SCOPE=all` generates every configuration, `repeated_interrupts` (or any
/// other field of [`Scope`], comma-separated) adds one to what CI runs; the default is what CI
/// runs.
fn scope() -> Scope {
    let wanted = std::env::var("PBIBATCH_PROP_SCOPE").unwrap_or_default();
    if wanted == "all" {
        return Scope::ALL;
    }
    let has = |name: &str| wanted.split(',').any(|w| w.trim() == name);
    let ci = Scope::CI;
    Scope {
        flow_wait_for: ci.flow_wait_for || has("flow_wait_for"),
        interrupts: ci.interrupts || has("interrupts"),
        repeated_interrupts: ci.repeated_interrupts || has("repeated_interrupts"),
        long_retry_after: ci.long_retry_after || has("long_retry_after"),
        long_retry_after_on_triggers: ci.long_retry_after_on_triggers
            || has("long_retry_after_on_triggers"),
    }
}

fn survey_file() -> Option<PathBuf> {
    std::env::var_os("PBIBATCH_PROP_SURVEY").map(PathBuf::from)
}

/// The reference model: the job shape and how many invocations ran.
pub(crate) struct Model;

#[derive(Debug, Clone)]
pub(crate) struct ModelState {
    job: JobSpec,
    invocations: usize,
    /// Invocations that were to be killed or interrupted.
    interrupted: usize,
}

impl ReferenceStateMachine for Model {
    type State = ModelState;
    type Transition = Invocation;

    fn init_state() -> BoxedStrategy<ModelState> {
        scenario::job(scope())
            .prop_map(|job| ModelState {
                job,
                invocations: 0,
                interrupted: 0,
            })
            .boxed()
    }

    fn transitions(state: &ModelState) -> BoxedStrategy<Invocation> {
        // A 700 s Retry-After before a retry would make the retry wait that long (the pause
        // before a retry honours it): only jobs without retries get one.
        let mut scope = scope();
        if state.interrupted > 0 && !scope.repeated_interrupts {
            scope.interrupts = false;
        }
        scenario::invocation(state.job.steps.len(), state.job.retries == 0, scope).boxed()
    }

    fn apply(mut state: ModelState, t: &Invocation) -> ModelState {
        state.invocations += 1;
        if t.stop != Stop::Completes {
            state.interrupted += 1;
        }
        state
    }

    fn preconditions(state: &ModelState, t: &Invocation) -> bool {
        t.steps().all(|s| s < state.job.steps.len())
            && (state.job.retries == 0 || !t.has_long_retry_after())
            && (state.interrupted == 0 || t.stop == Stop::Completes || scope().repeated_interrupts)
    }
}

/// The system under test: a simulator, a working directory, and what happened so far.
pub(crate) struct Case {
    // Dropped before the runtime that serves it.
    sim: SimServer,
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    job: JobSpec,
    steps: Vec<StepView>,
    polls: Vec<(String, String)>,
    flow_urls: Vec<(usize, String)>,
    procs: Vec<Proc>,
    stored: Vec<(usize, Value)>,
    applied: Vec<Invocation>,
    /// Violations already reported (survey mode goes on after one).
    reported: std::cell::RefCell<std::collections::HashSet<String>>,
}

impl Case {
    fn new(job: &JobSpec) -> Case {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let profile = job.profile();
        let sim = rt.block_on(crate::sim_support::start(&profile));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("job.yaml"), job.yaml()).unwrap();
        let mut steps = Vec::new();
        let mut polls = Vec::new();
        let mut flow_urls = Vec::new();
        for (i, s) in job.steps.iter().enumerate() {
            if s.kind.is_capacity() {
                // Its own capacity: the trigger is the state-changing request, a poll a read
                // of the capacity (the operation's status URLs do not name it).
                let path = capacity_path(i);
                let trigger = match s.kind {
                    Kind::CapacityResume => ("POST", format!("{path}/resume")),
                    Kind::CapacitySuspend => ("POST", format!("{path}/suspend")),
                    _ => ("PATCH", path.clone()),
                };
                polls.push(("GET".to_string(), path.clone()));
                steps.push(StepView {
                    id: step_id(i),
                    kind: s.kind,
                    if_running: s.if_running,
                    trigger: (trigger.0.to_string(), trigger.1),
                    item_id: path.clone(),
                    marks: vec![path.clone()],
                    capacity: Some(CapacityView {
                        path,
                        start_active: s.kind != Kind::CapacityResume,
                        start_sku: SKU_FROM.to_string(),
                        wanted_sku: SKU_TO.to_string(),
                        transition_ms: s.duration_ms,
                        fails: s.fails_first,
                    }),
                });
                continue;
            }
            let item_id = sim
                .item_id(item_kind(s.kind), "WS", &item_name(i, s.kind))
                .expect("the profile declares every step's item");
            let mut marks = vec![item_id.clone()];
            let (trigger, poll) = match s.kind {
                Kind::DatasetStandard | Kind::DatasetEnhanced => (
                    ("POST", format!("*/datasets/{item_id}/refreshes")),
                    ("GET", format!("*/datasets/{item_id}/refreshes*")),
                ),
                Kind::Gen1 => (
                    ("POST", format!("*/dataflows/{item_id}/refreshes")),
                    ("GET", format!("*/dataflows/{item_id}/transactions")),
                ),
                Kind::Gen2 | Kind::Pipeline | Kind::Notebook | Kind::SparkJob | Kind::CopyJob => (
                    ("POST", format!("*/items/{item_id}/jobs/instances")),
                    ("GET", format!("*/items/{item_id}/jobs/instances*")),
                ),
                Kind::FlowWaitFor => {
                    let url = sim.flow_url(&flow_name(i));
                    let flow_id = url
                        .split("/workflows/")
                        .nth(1)
                        .and_then(|rest| rest.split('/').next())
                        .unwrap()
                        .to_string();
                    flow_urls.push((i, url));
                    marks.push(format!("/workflows/{flow_id}/"));
                    (
                        (
                            "POST",
                            format!("/workflows/{flow_id}/triggers/manual/paths/invoke"),
                        ),
                        ("GET", format!("*/dataflows/{item_id}/transactions")),
                    )
                }
                Kind::Export => (
                    ("POST", format!("*/reports/{item_id}/ExportTo")),
                    ("GET", format!("*/reports/{item_id}/exports/*")),
                ),
                Kind::CapacityResume | Kind::CapacitySuspend | Kind::CapacityScale => {
                    unreachable!("capacity steps are set up above")
                }
            };
            polls.push((poll.0.to_string(), poll.1));
            steps.push(StepView {
                id: step_id(i),
                kind: s.kind,
                if_running: s.if_running,
                trigger: (trigger.0.to_string(), trigger.1),
                item_id,
                marks,
                capacity: None,
            });
        }
        Case {
            sim,
            rt,
            dir,
            job: job.clone(),
            steps,
            polls,
            flow_urls,
            procs: Vec::new(),
            stored: Vec::new(),
            applied: Vec::new(),
            reported: Default::default(),
        }
    }

    fn rule(&self, step: usize, target: Target, nth: u32, fault: Fault) -> FaultRule {
        let (method, path) = match target {
            Target::Trigger => self.steps[step].trigger.clone(),
            Target::Poll => self.polls[step].clone(),
        };
        FaultRule {
            method,
            path,
            nth,
            fault,
        }
    }

    fn arm(&self, f: &FaultSpec) {
        let fault = match f.fault {
            FaultKind::ThrottleShort => Fault::Throttle { retry_after: 1 },
            FaultKind::ThrottleLong => Fault::Throttle { retry_after: 700 },
            FaultKind::Error500 => Fault::ErrorBefore { status: 500 },
            FaultKind::Error500After => Fault::ErrorAfter { status: 500 },
            FaultKind::DropBefore => Fault::DropBefore,
            FaultKind::DropAfter => Fault::DropAfter,
        };
        self.sim
            .arm_fault(self.rule(f.step, f.target, f.nth, fault));
    }

    fn hold(&self, b: &Boundary) {
        let fault = if b.after_acting {
            Fault::HoldAfter
        } else {
            Fault::HoldBefore
        };
        self.sim
            .arm_fault(self.rule(b.step, b.target, b.nth, fault));
    }

    fn command(&self, resumed: bool, n: usize) -> tokio::process::Command {
        let dir = self.dir.path();
        let mut cmd = crate::common::pbibatch(dir);
        cmd.args(["run", "job.yaml", "--progress", "never", "--report"])
            .arg(format!("report{n}.json"));
        if resumed {
            cmd.args(["--resume", "last"]);
        }
        let base = self.sim.base_url();
        cmd.env("PBIBATCH_POWERBI_URL", &base)
            .env("PBIBATCH_FABRIC_URL", &base)
            .env("PBIBATCH_AUTHORITY_URL", &base)
            .env("PBIBATCH_ARM_URL", &base)
            .env("AZURE_TENANT_ID", self.sim.tenant_id())
            .env("AZURE_CLIENT_ID", self.sim.client_id())
            .env("AZURE_CLIENT_SECRET", self.sim.client_secret())
            .stdin(Stdio::null())
            .stdout(File::create(dir.join(format!("stdout{n}.txt"))).unwrap())
            .stderr(File::create(dir.join(format!("stderr{n}.txt"))).unwrap());
        for (i, url) in &self.flow_urls {
            cmd.env(format!("FLOW_{i}"), url);
        }
        tokio::process::Command::from(cmd)
    }

    /// Runs one invocation to its end (or its stop) and reads what it stored.
    fn invoke(&mut self, inv: &Invocation) {
        let n = self.procs.len();
        let resumed = n > 0;
        for f in &inv.faults {
            self.arm(f);
        }
        match inv.stop {
            Stop::Completes => {}
            Stop::Kill9(b) | Stop::Sigterm(b) => self.hold(&b),
        }
        let from_seq = self.sim.exchanges().len() as u64;
        let start_ms = self.sim.elapsed_ms();
        let mut command = self.command(resumed, n);
        let sim = &self.sim;
        let ended = self.rt.block_on(async {
            let mut child = command.kill_on_drop(true).spawn().unwrap();
            let began = Instant::now();
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break Ended::Exited(status.code());
                }
                let held = sim.exchanges().iter().any(|e| {
                    e.seq >= from_seq
                        && !e.done
                        && matches!(e.fault, Some(Fault::HoldBefore | Fault::HoldAfter))
                });
                if held {
                    match inv.stop {
                        Stop::Kill9(_) => {
                            child.start_kill().unwrap();
                            child.wait().await.unwrap();
                            break Ended::Killed;
                        }
                        Stop::Sigterm(_) => {
                            let pid = child.id().unwrap().to_string();
                            std::process::Command::new("kill")
                                .args(["-TERM", &pid])
                                .status()
                                .unwrap();
                            let code = match tokio::time::timeout(SIGTERM_GRACE, child.wait()).await
                            {
                                Ok(status) => status.unwrap().code(),
                                Err(_) => {
                                    child.start_kill().unwrap();
                                    child.wait().await.unwrap();
                                    None
                                }
                            };
                            break Ended::Terminated(code);
                        }
                        Stop::Completes => {}
                    }
                }
                assert!(
                    began.elapsed() < PROCESS_LIMIT,
                    "process {} still running after {PROCESS_LIMIT:?}",
                    n + 1
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        self.sim.release_holds(true);
        self.sim.disarm_faults();
        // Let abandoned holds close before the next process starts.
        self.rt
            .block_on(async { tokio::time::sleep(Duration::from_millis(30)).await });
        self.procs.push(Proc {
            resumed,
            start_ms,
            end_ms: self.sim.elapsed_ms(),
            ended,
        });
        self.read_store(n);
        self.applied.push(inv.clone());
    }

    /// Reads every stored run; a run first seen now belongs to process `n`.
    fn read_store(&mut self, n: usize) {
        let state = self.dir.path().join(".pbibatch/state.db");
        let Ok(Some(store)) = Store::open_existing(&state) else {
            return;
        };
        let Ok(history) = store.history(Some("prop"), 1000) else {
            return;
        };
        for summary in history {
            let Ok(run) = store.load_run(&summary.run_id) else {
                continue;
            };
            let json = run.to_json();
            match self
                .stored
                .iter_mut()
                .find(|(_, v)| v["run_id"] == json["run_id"])
            {
                Some(slot) => slot.1 = json,
                None => self.stored.push((n, json)),
            }
        }
    }

    fn judge(&self) {
        let exchanges = self.sim.exchanges();
        let runs = self.sim.runs();
        // The first exchange is the first recorded request: their times pair the two clocks.
        let wall_origin_ms = self
            .sim
            .requests()
            .first()
            .zip(exchanges.first())
            .and_then(|(r, e)| {
                chrono::DateTime::parse_from_rfc3339(&r.time)
                    .ok()
                    .map(|t| t.timestamp_millis() - e.at_ms as i64)
            })
            .unwrap_or(0);
        let evidence = Evidence {
            steps: &self.steps,
            exchanges: &exchanges,
            runs: &runs,
            procs: &self.procs,
            stored: &self.stored,
            wall_origin_ms,
        };
        let mut violations = evidence.check();
        for (i, p) in self.procs.iter().enumerate() {
            let crashed = match &p.ended {
                Ended::Exited(code) => !matches!(code, Some(0 | 1)),
                Ended::Terminated(code) => *code != Some(130),
                Ended::Killed => false,
            };
            if crashed {
                let stderr =
                    std::fs::read_to_string(self.dir.path().join(format!("stderr{i}.txt")))
                        .unwrap_or_default();
                violations.push(check::Violation {
                    invariant: "exit",
                    step: String::new(),
                    what: format!(
                        "process {} ended {:?} (0, 1, or 130 after SIGTERM expected): {}",
                        i + 1,
                        p.ended,
                        stderr.lines().rev().take(3).collect::<Vec<_>>().join(" | ")
                    ),
                });
            }
        }
        // After each invocation the judge sees everything so far: report what is new.
        let mut seen = self.reported.borrow_mut();
        violations.retain(|v| seen.insert(format!("{} {} {}", v.invariant, v.step, v.what)));
        if violations.is_empty() {
            return;
        }
        let mut text = String::new();
        for v in &violations {
            text.push_str(&format!("{} {}: {}\n", v.invariant, v.step, v.what));
        }
        let story = format!(
            "{text}\njob.yaml:\n{}\nprofile:\n{}\ninvocations:\n{}\n{}",
            self.job.yaml(),
            self.job.profile(),
            self.applied
                .iter()
                .enumerate()
                .map(|(i, inv)| format!("  P{}: {inv:?}\n", i + 1))
                .collect::<String>(),
            evidence.story(&violations)
        );
        if let Some(path) = survey_file() {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap();
            writeln!(f, "=== case\n{story}").unwrap();
            return;
        }
        panic!("exactly-once invariants broken:\n{story}");
    }
}

impl StateMachineTest for Case {
    type SystemUnderTest = Case;
    type Reference = Model;

    fn init_test(state: &ModelState) -> Case {
        Case::new(&state.job)
    }

    fn apply(mut case: Case, _: &ModelState, inv: Invocation) -> Case {
        case.invoke(&inv);
        case
    }

    fn check_invariants(case: &Case, _: &ModelState) {
        if !case.procs.is_empty() {
            case.judge();
        }
    }

    fn teardown(mut case: Case, _: ModelState) {
        // A sequence that ends with a killed or interrupted process ends with one more
        // `--resume last` that runs to its end: recovery is judged too.
        if case
            .procs
            .last()
            .is_some_and(|p| !matches!(p.ended, Ended::Exited(_)))
        {
            case.invoke(&Invocation {
                faults: Vec::new(),
                stop: Stop::Completes,
            });
            case.judge();
        }
        let Case { sim, rt, .. } = case;
        rt.block_on(sim.shutdown());
    }
}

prop_state_machine! {
    #![proptest_config(config())]

    #[test]
    fn exactly_once_and_true(sequential 1..4 => Case);
}

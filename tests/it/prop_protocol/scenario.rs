//! What a case is made of: a job shape (steps of each kind, `if_running`, a refresh already
//! running or not), and the process invocations with their fault schedules and how each ends.
//! Also the job file and simulator profile a shape becomes.

use std::fmt::Write as _;

use proptest::prelude::*;

/// The kinds of step that start work in the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    DatasetStandard,
    DatasetEnhanced,
    Gen1,
    Gen2,
    /// `sas_flow` + `wait_for` (the flow starts a Gen1 dataflow refresh).
    FlowWaitFor,
    /// `report` with `export:`.
    Export,
    /// `fabric_job` of a data pipeline, a notebook, a Spark job definition, a copy job.
    Pipeline,
    Notebook,
    SparkJob,
    CopyJob,
    /// `capacity` with `action: resume` (of a paused capacity), `suspend` (of an active one),
    /// `scale` (of an active F2 to F4): one capacity of its own each.
    CapacityResume,
    CapacitySuspend,
    CapacityScale,
}

impl Kind {
    /// Whether a refresh of the resource can already be running (exports have no schedule).
    pub(super) fn can_run_before(self) -> bool {
        self != Kind::Export && !self.is_capacity()
    }

    /// A `capacity` step: no runs, a state it reconciles towards.
    pub(super) fn is_capacity(self) -> bool {
        matches!(
            self,
            Kind::CapacityResume | Kind::CapacitySuspend | Kind::CapacityScale
        )
    }

    /// Whether the step takes `if_running` (exports do not watch a resource that runs).
    pub(super) fn has_if_running(self) -> bool {
        self != Kind::Export && !self.is_capacity()
    }

    /// The Fabric item type and `item_type:` of a `fabric_job` kind.
    pub(super) fn fabric_item(self) -> Option<(&'static str, &'static str)> {
        match self {
            Kind::Pipeline => Some(("DataPipeline", "pipeline")),
            Kind::Notebook => Some(("Notebook", "notebook")),
            Kind::SparkJob => Some(("SparkJobDefinition", "spark_job_definition")),
            Kind::CopyJob => Some(("CopyJob", "copy_job")),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IfRunning {
    Wait,
    Adopt,
    Fail,
    Restart,
}

impl IfRunning {
    fn yaml(self) -> &'static str {
        match self {
            IfRunning::Wait => "wait",
            IfRunning::Adopt => "adopt",
            IfRunning::Fail => "fail",
            IfRunning::Restart => "restart",
        }
    }
}

/// One step and the behaviour of its resource in the simulator.
#[derive(Debug, Clone)]
pub(super) struct StepSpec {
    pub kind: Kind,
    pub if_running: IfRunning,
    /// A refresh of the resource (started by its schedule) is running when the job starts.
    pub running_before: bool,
    /// The first remote run the service starts for it fails (later ones succeed).
    pub fails_first: bool,
    /// How long each remote run takes.
    pub duration_ms: u64,
    /// Indexes of earlier steps it depends on.
    pub deps: Vec<usize>,
}

/// The job: its steps and the retries every step gets.
#[derive(Debug, Clone)]
pub(super) struct JobSpec {
    pub steps: Vec<StepSpec>,
    pub retries: u32,
}

/// Which requests of a step a fault or a stop aims at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The call that starts the remote work (refresh, job instance, flow, ExportTo).
    Trigger,
    /// A status read of the step's resource (history, transactions, job instance, export).
    Poll,
}

/// The faults the simulator can give one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultKind {
    /// 429 + `Retry-After: 1`.
    ThrottleShort,
    /// 429 + `Retry-After: 700`, beyond the HTTP client's 600 s budget.
    ThrottleLong,
    /// 500 before the service acted.
    Error500,
    /// The service acted, then answered 500 (the answer is lost).
    Error500After,
    /// Connection closed before the service acted.
    DropBefore,
    /// The service acted, then the connection was closed (the answer is lost).
    DropAfter,
}

/// "The `nth` request of kind `target` of step `step` gets `fault`."
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FaultSpec {
    pub step: usize,
    pub target: Target,
    pub nth: u32,
    pub fault: FaultKind,
}

/// Where a process is stopped: held at the `nth` request of `target` of `step`, before or
/// after the service acted on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Boundary {
    pub step: usize,
    pub target: Target,
    pub nth: u32,
    pub after_acting: bool,
}

/// How a process invocation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// It runs to its end.
    Completes,
    /// `kill -9` at the boundary (if the run reaches it; otherwise it completes).
    Kill9(Boundary),
    /// SIGTERM at the boundary.
    Sigterm(Boundary),
}

/// One `pbibatch run` (the first) or `pbibatch run --resume last` (every later one).
#[derive(Debug, Clone)]
pub(crate) struct Invocation {
    pub faults: Vec<FaultSpec>,
    pub stop: Stop,
}

impl Invocation {
    /// The step indexes it names (for preconditions after the job shrank).
    pub(crate) fn steps(&self) -> impl Iterator<Item = usize> + '_ {
        let stop = match self.stop {
            Stop::Completes => None,
            Stop::Kill9(b) | Stop::Sigterm(b) => Some(b.step),
        };
        self.faults.iter().map(|f| f.step).chain(stop)
    }

    pub(crate) fn has_long_retry_after(&self) -> bool {
        self.faults
            .iter()
            .any(|f| f.fault == FaultKind::ThrottleLong)
    }
}

/// Which configurations are generated. `Scope::ALL` is every one; `Scope::CI` leaves out the
/// configurations whose violations on main are known and named (see `Scope::CI`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Scope {
    /// `sas_flow` + `wait_for` steps.
    pub flow_wait_for: bool,
    /// `kill -9` and SIGTERM (then `--resume last`).
    pub interrupts: bool,
    /// More than one interrupted invocation in a sequence (a resumed run killed in turn).
    pub repeated_interrupts: bool,
    /// 429 with `Retry-After: 700` on a status poll.
    pub long_retry_after: bool,
    /// 429 with `Retry-After: 700` on a trigger (the service did not act).
    pub long_retry_after_on_triggers: bool,
}

impl Scope {
    pub(super) const ALL: Scope = Scope {
        flow_wait_for: true,
        interrupts: true,
        repeated_interrupts: true,
        long_retry_after: true,
        long_retry_after_on_triggers: true,
    };

    /// What CI runs: every configuration. (`repeated_interrupts`, a run killed, resumed and
    /// killed again, was left out until a resume learned to take the step's handle from the
    /// run it resumed when its own attempt had recorded none: 9bba881.)
    pub(super) const CI: Scope = Scope::ALL;
}

fn kind(scope: Scope) -> impl Strategy<Value = Kind> {
    let mut kinds = vec![
        Kind::DatasetStandard,
        Kind::DatasetEnhanced,
        Kind::Gen1,
        Kind::Gen2,
        Kind::Export,
        Kind::Pipeline,
        Kind::Notebook,
        Kind::SparkJob,
        Kind::CopyJob,
        Kind::CapacityResume,
        Kind::CapacitySuspend,
        Kind::CapacityScale,
    ];
    if scope.flow_wait_for {
        kinds.insert(4, Kind::FlowWaitFor);
    }
    prop::sample::select(kinds)
}

fn if_running() -> impl Strategy<Value = IfRunning> {
    prop::sample::select(vec![
        IfRunning::Wait,
        IfRunning::Adopt,
        IfRunning::Fail,
        IfRunning::Restart,
    ])
}

fn step(index: usize, scope: Scope) -> impl Strategy<Value = StepSpec> {
    (
        kind(scope),
        if_running(),
        prop::bool::weighted(0.35),
        prop::bool::weighted(0.25),
        prop::sample::select(vec![400u64, 1200]),
        prop::collection::vec(any::<bool>(), index),
    )
        .prop_map(
            |(kind, if_running, running_before, fails_first, duration_ms, picks)| StepSpec {
                kind,
                if_running,
                running_before: running_before && kind.can_run_before(),
                fails_first,
                duration_ms,
                deps: picks
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| **p)
                    .map(|(i, _)| i)
                    .collect(),
            },
        )
}

/// Jobs of 1 to 4 steps, each depending on any of the earlier ones.
pub(super) fn job(scope: Scope) -> impl Strategy<Value = JobSpec> {
    (1usize..=4, 0u32..=1)
        .prop_flat_map(move |(n, retries)| {
            let steps: Vec<_> = (0..n).map(|i| step(i, scope)).collect();
            (steps, Just(retries))
        })
        .prop_map(|(steps, retries)| JobSpec { steps, retries })
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![Just(Target::Trigger), Just(Target::Poll)]
}

fn fault_kind(long_retry_after: bool) -> impl Strategy<Value = FaultKind> {
    let mut kinds = vec![
        FaultKind::ThrottleShort,
        FaultKind::Error500,
        FaultKind::Error500After,
        FaultKind::DropBefore,
        FaultKind::DropAfter,
    ];
    if long_retry_after {
        kinds.insert(1, FaultKind::ThrottleLong);
    }
    prop::sample::select(kinds)
}

fn fault(
    steps: usize,
    long_on_triggers: bool,
    long_on_polls: bool,
) -> impl Strategy<Value = FaultSpec> {
    (
        0..steps,
        target(),
        1u32..=2,
        fault_kind(long_on_triggers || long_on_polls),
    )
        .prop_map(move |(step, target, nth, fault)| {
            let allowed = match target {
                Target::Trigger => long_on_triggers,
                Target::Poll => long_on_polls,
            };
            FaultSpec {
                step,
                target,
                nth,
                fault: if fault == FaultKind::ThrottleLong && !allowed {
                    FaultKind::ThrottleShort
                } else {
                    fault
                },
            }
        })
}

fn boundary(steps: usize) -> impl Strategy<Value = Boundary> {
    (0..steps, target(), 1u32..=2, any::<bool>()).prop_map(|(step, target, nth, after)| Boundary {
        step,
        target,
        nth,
        // A poll changes nothing in the service: "after" only means something for a trigger.
        after_acting: after && target == Target::Trigger,
    })
}

/// An invocation for a job of `steps` steps: up to two faults, and a stop.
/// `long_retry_after` allows the 700 s `Retry-After`.
pub(super) fn invocation(
    steps: usize,
    long_retry_after: bool,
    scope: Scope,
) -> impl Strategy<Value = Invocation> {
    let long_on_triggers = long_retry_after && scope.long_retry_after_on_triggers;
    let long_on_polls = long_retry_after && scope.long_retry_after;
    let stop = if scope.interrupts {
        prop_oneof![
            2 => Just(Stop::Completes),
            3 => boundary(steps).prop_map(Stop::Kill9),
            1 => boundary(steps).prop_map(Stop::Sigterm),
        ]
        .boxed()
    } else {
        Just(Stop::Completes).boxed()
    };
    (
        prop::collection::vec(fault(steps, long_on_triggers, long_on_polls), 0..=2),
        stop,
    )
        .prop_map(|(faults, stop)| Invocation { faults, stop })
}

/// Names of a step's resources in the simulator.
pub(super) fn step_id(i: usize) -> String {
    format!("s{i}")
}

/// The name of the item a step watches (the dataflow a flow starts, for `sas_flow`).
pub(super) fn item_name(i: usize, kind: Kind) -> String {
    match kind {
        Kind::DatasetStandard | Kind::DatasetEnhanced => format!("D{i}"),
        Kind::Gen1 => format!("F{i}"),
        Kind::Gen2 => format!("G{i}"),
        Kind::FlowWaitFor => format!("W{i}"),
        Kind::Export => format!("R{i}"),
        Kind::Pipeline => format!("P{i}"),
        Kind::Notebook => format!("N{i}"),
        Kind::SparkJob => format!("S{i}"),
        Kind::CopyJob => format!("C{i}"),
        Kind::CapacityResume | Kind::CapacitySuspend | Kind::CapacityScale => format!("cap{i}"),
    }
}

/// The simulator's kind name of that item (as in `resource_key`).
pub(super) fn item_kind(kind: Kind) -> &'static str {
    match kind {
        Kind::DatasetStandard | Kind::DatasetEnhanced => "dataset",
        Kind::Gen1 | Kind::FlowWaitFor => "dataflow",
        Kind::Gen2 => "fabric_dataflow",
        Kind::Export => "report",
        Kind::Pipeline | Kind::Notebook | Kind::SparkJob | Kind::CopyJob => "item",
        Kind::CapacityResume | Kind::CapacitySuspend | Kind::CapacityScale => "capacity",
    }
}

/// The subscription and resource group of every simulated capacity.
pub(super) const SUBSCRIPTION: &str = "11111111-2222-3333-4444-555555555555";
pub(super) const RESOURCE_GROUP: &str = "prop";
/// The SKU a `scale` step starts from, and the one it sets.
pub(super) const SKU_FROM: &str = "F2";
pub(super) const SKU_TO: &str = "F4";

/// The ARM resource id of step `i`'s capacity.
pub(super) fn capacity_path(i: usize) -> String {
    format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.Fabric/capacities/cap{i}"
    )
}

pub(super) fn flow_name(i: usize) -> String {
    format!("flow{i}")
}

impl JobSpec {
    /// The simulator profile: one resource per step, runs taking `duration_ms`.
    pub(super) fn profile(&self) -> String {
        let mut datasets = String::new();
        let mut dataflows = String::new();
        let mut gen2 = String::new();
        let mut reports = String::new();
        let mut flows = String::new();
        let mut items = String::new();
        let mut capacities = String::new();
        // A report needs a dataset to show; a fixed one keeps reports from creating their own.
        datasets.push_str("      Shown: {}\n");
        for (i, s) in self.steps.iter().enumerate() {
            let mut knobs = format!("duration: {}ms", s.duration_ms);
            if s.fails_first {
                knobs.push_str(", outcomes: [fail, succeed]");
            }
            if s.running_before {
                knobs.push_str(", running_at_start: true");
            }
            let line = format!("      {}: {{ {knobs} }}\n", item_name(i, s.kind));
            match s.kind {
                Kind::CapacityResume | Kind::CapacitySuspend | Kind::CapacityScale => {
                    let (state, op) = match s.kind {
                        Kind::CapacityResume => ("paused", "resume"),
                        Kind::CapacitySuspend => ("active", "suspend"),
                        _ => ("active", "scale"),
                    };
                    // `fails_first`: the simulator fails every operation of that kind (it has
                    // no "first only" for capacities), so the step cannot succeed.
                    let fail = if s.fails_first {
                        format!(", fail: [{op}]")
                    } else {
                        String::new()
                    };
                    let _ = writeln!(
                        capacities,
                        "  {}: {{ subscription: {SUBSCRIPTION}, resource_group: {RESOURCE_GROUP}, sku: {SKU_FROM}, state: {state}, transition: {}ms{fail} }}",
                        item_name(i, s.kind),
                        s.duration_ms
                    );
                }
                Kind::DatasetStandard | Kind::DatasetEnhanced => datasets.push_str(&line),
                Kind::Gen1 | Kind::FlowWaitFor => dataflows.push_str(&line),
                Kind::Gen2 => gen2.push_str(&line),
                Kind::Export => reports.push_str(&format!(
                    "      {}: {{ {knobs}, dataset: Shown }}\n",
                    item_name(i, s.kind)
                )),
                Kind::Pipeline | Kind::Notebook | Kind::SparkJob | Kind::CopyJob => {
                    let (item_type, _) = s.kind.fabric_item().unwrap_or_default();
                    items.push_str(&format!(
                        "      {}: {{ {knobs}, type: {item_type} }}\n",
                        item_name(i, s.kind)
                    ));
                }
            }
            if s.kind == Kind::FlowWaitFor {
                let _ = writeln!(
                    flows,
                    "  {}: {{ starts_dataflow: {{ workspace: WS, dataflow: {} }} }}",
                    flow_name(i),
                    item_name(i, s.kind)
                );
            }
        }
        let mut out = String::from("seed: 7\nworkspaces:\n  WS:\n");
        for (key, body) in [
            ("datasets", datasets),
            ("dataflows", dataflows),
            ("fabric_dataflows", gen2),
            ("reports", reports),
            ("items", items),
        ] {
            if !body.is_empty() {
                let _ = write!(out, "    {key}:\n{body}");
            }
        }
        if !flows.is_empty() {
            let _ = write!(out, "flows:\n{flows}");
        }
        if !capacities.is_empty() {
            let _ = write!(out, "capacities:\n{capacities}");
        }
        out
    }

    /// The job file. Short timeouts and pauses keep a case to seconds; the timeout also ends
    /// what a long `Retry-After` would otherwise make last ten minutes.
    pub(super) fn yaml(&self) -> String {
        let mut out = format!(
            "version: 1\nname: prop\ndefaults: {{ timeout: 8s, retries: {}, retry_backoff: 200ms, poll_interval: 250ms }}\nsteps:\n",
            self.retries
        );
        for (i, s) in self.steps.iter().enumerate() {
            let name = item_name(i, s.kind);
            let body = match s.kind {
                Kind::DatasetStandard => format!("type: dataset, workspace: WS, dataset: {name}"),
                Kind::DatasetEnhanced => format!(
                    "type: dataset, workspace: WS, dataset: {name}, refresh: {{ type: full }}"
                ),
                Kind::Gen1 => format!("type: dataflow, workspace: WS, dataflow: {name}"),
                Kind::Gen2 => {
                    format!("type: dataflow, generation: 2, workspace: WS, dataflow: {name}")
                }
                Kind::FlowWaitFor => format!(
                    "type: sas_flow, url: \"${{env.FLOW_{i}}}\", wait_for: {{ workspace: WS, dataflow: {name} }}"
                ),
                Kind::Export => format!(
                    "type: report, workspace: WS, report: {name}, export: {{ format: PDF, path: out/{name}.pdf }}"
                ),
                Kind::Pipeline | Kind::Notebook | Kind::SparkJob | Kind::CopyJob => {
                    let (_, item_type) = s.kind.fabric_item().unwrap_or_default();
                    format!("type: fabric_job, workspace: WS, item: {name}, item_type: {item_type}")
                }
                Kind::CapacityResume => {
                    format!(
                        "type: capacity, action: resume, capacity: {}",
                        capacity_path(i)
                    )
                }
                Kind::CapacitySuspend => {
                    format!(
                        "type: capacity, action: suspend, capacity: {}",
                        capacity_path(i)
                    )
                }
                Kind::CapacityScale => format!(
                    "type: capacity, action: scale, sku: {SKU_TO}, capacity: {}",
                    capacity_path(i)
                ),
            };
            let mut line = format!("  {}: {{ {body}", step_id(i));
            if s.kind.has_if_running() {
                let _ = write!(line, ", if_running: {}", s.if_running.yaml());
            }
            if !s.deps.is_empty() {
                let deps: Vec<String> = s.deps.iter().map(|d| step_id(*d)).collect();
                let _ = write!(line, ", depends_on: [{}]", deps.join(", "));
            }
            line.push_str(" }\n");
            out.push_str(&line);
        }
        out
    }
}

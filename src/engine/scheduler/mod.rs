//! The scheduler loop: resolves steps as their parents finish, starts ready steps within the
//! limits, and turns attempt reports and executor updates into [`RunEvent`]s.
//!
//! It is one task and owns all run state. Step tasks talk to it over one channel (`reports`:
//! attempt started, executor progress, attempt finished, step done), so what one step reports
//! arrives in the order it happened.
//!
//! Here: the run state, the run clock and the loop. [`resolve`]: trigger rules and conditions
//! of steps whose parents are final; [`attempts`]: starting ready steps and hearing back from
//! them; [`finish`]: final statuses (with what the scheduler stamps on them) and stopping;
//! [`priority`]: which ready step goes first.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod attempts;
mod finish;
mod priority;
mod resolve;

use finish::counts_against_run;

use super::attempt::AttemptReport;
use super::limits::Limits;
use super::view::ViewState;
use super::{EngineOptions, ResumeStep};
use crate::engine::condition::ConditionError;
use crate::event::{Counts, RemoteHandle, RunEvent, RunEventKind, RunStatus, StepInfo, StepStatus};
use crate::executor::Executor;
use crate::job::model::{Step, StepId};
use crate::plan::{Plan, StepNeeds};

/// Runs the selected steps of `plan` to their final statuses and returns the run's status.
///
/// Events go to `events` in order (`RunStarted` first, `RunFinished` last); a closed receiver
/// is not an error. Cancelling `interrupt` stops the run as the module docs describe.
pub async fn run(
    plan: Arc<Plan>,
    executor: Arc<dyn Executor>,
    opts: EngineOptions,
    interrupt: CancellationToken,
    events: mpsc::UnboundedSender<RunEvent>,
) -> RunStatus {
    Scheduler::new(plan, executor, opts, interrupt, events)
        .run()
        .await
}

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for parents.
    Pending,
    /// Its `when:` is being evaluated (off the scheduler's task).
    Evaluating,
    /// In the ready queue.
    Ready,
    Running,
    Final(StepStatus),
}

/// Why the run stopped starting steps.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stop {
    FailFast(StepId),
    Interrupt,
}

/// One selected step and its bookkeeping.
struct Node {
    step: Arc<Step>,
    parents: Vec<usize>,
    children: Vec<usize>,
    /// Parents without a final status yet.
    waiting: usize,
    state: State,
    /// Its `pool:` and the limits it joins by data (capacity-aware limits).
    pools: Vec<String>,
    /// The remote resources it holds while it runs, and whether its attempts read the run
    /// view: from the plan, so the scheduler never looks at what a step does.
    needs: StepNeeds,
    /// Higher starts first.
    priority: u64,
    /// Start of the first attempt.
    started: Option<Instant>,
    /// Stamped on `StepFinished`; `when:` conditions and webhooks read it too.
    duration_secs: f64,
    attempts: u32,
    /// Last remote id seen in the current attempt's updates.
    remote_id: Option<String>,
    reattach: Option<RemoteHandle>,
    /// Ended `skipped` by a freshness skip: satisfied for its children.
    fresh: bool,
    /// Its expected duration, resolved.
    expected: Option<crate::event::Expected>,
    /// It ran past its expected duration (`StepOverran` emitted).
    overran: bool,
}

impl Node {
    /// It ran past its expected duration with `on_overrun: fail`: the run fails for it.
    fn late_fails(&self) -> bool {
        self.overran && self.expected.is_some_and(|e| e.fails_run())
    }
}

struct Scheduler {
    plan: Arc<Plan>,
    executor: Arc<dyn Executor>,
    opts: EngineOptions,
    interrupt: CancellationToken,
    events: mpsc::UnboundedSender<RunEvent>,
    seq: u64,
    /// The run's clock: `at` of every event is `started_at` plus the monotonic time since
    /// `started`, so durations stamped on events equal the differences of their timestamps
    /// (and follow tokio's paused clock in tests).
    started_at: DateTime<Utc>,
    started: Instant,
    /// Final statuses so far, stamped on `StepFinished` and `RunFinished`.
    counts: Counts,
    /// Steps whose first attempt started and that have no final status yet (a retry backoff
    /// included), stamped on `StepFinished`.
    attempted: u32,
    nodes: Vec<Node>,
    /// Steps whose parents are all final, to apply trigger rule and condition to.
    to_resolve: VecDeque<usize>,
    /// Ready steps, highest priority first, then job order.
    ready: BTreeSet<(Reverse<u64>, usize)>,
    limits: Limits,
    running: usize,
    /// Steps in [`State::Evaluating`].
    evaluating: usize,
    /// Condition results, from the blocking threads that evaluate `when:` to the loop.
    conditions_tx: mpsc::UnboundedSender<(usize, Result<bool, ConditionError>)>,
    conditions_rx: mpsc::UnboundedReceiver<(usize, Result<bool, ConditionError>)>,
    /// `env` of `when:` conditions, shared with every evaluation.
    env: Arc<HashMap<String, String>>,
    stop: Option<Stop>,
    /// Published after every final status; attempts read it for their `RunView`.
    view_tx: watch::Sender<ViewState>,
    view_rx: watch::Receiver<ViewState>,
    reports_tx: mpsc::UnboundedSender<AttemptReport>,
    reports_rx: mpsc::UnboundedReceiver<AttemptReport>,
    /// Step tasks; dropping the scheduler aborts them.
    tasks: JoinSet<()>,
    task_steps: HashMap<tokio::task::Id, usize>,
    index: HashMap<StepId, usize>,
    /// When running steps pass their expected duration, soonest first.
    deadlines: BTreeSet<(Instant, usize)>,
}

impl Scheduler {
    fn new(
        plan: Arc<Plan>,
        executor: Arc<dyn Executor>,
        mut opts: EngineOptions,
        interrupt: CancellationToken,
        events: mpsc::UnboundedSender<RunEvent>,
    ) -> Scheduler {
        let job = plan.job.clone();
        let index: HashMap<StepId, usize> = plan
            .selected
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i))
            .collect();
        let priorities = priority::priorities(&plan, &opts.priority_hint);
        let mut resume = opts.resume.take();
        let mut nodes: Vec<Node> = plan
            .selected
            .iter()
            .filter_map(|id| job.steps.get(id).map(|s| (id, s)))
            .map(|(id, step)| {
                let parents: Vec<usize> = plan
                    .parents(id)
                    .iter()
                    .filter_map(|p| index.get(p).copied())
                    .collect();
                let reattach = match resume.as_mut().and_then(|r| r.steps.remove(id)) {
                    Some(ResumeStep::Reattach(h)) => Some(h),
                    other => {
                        if let (Some(r), Some(keep)) = (resume.as_mut(), other) {
                            // Put `Keep` back: it is applied once the run has started.
                            r.steps.insert(id.clone(), keep);
                        }
                        None
                    }
                };
                Node {
                    step: Arc::new(step.clone()),
                    waiting: parents.len(),
                    parents,
                    children: Vec::new(),
                    state: State::Pending,
                    pools: step
                        .pool
                        .iter()
                        .chain(opts.limits.members.get(id).into_iter().flatten())
                        .cloned()
                        .collect(),
                    needs: plan.needs.get(id).cloned().unwrap_or_default(),
                    priority: priorities.get(id).copied().unwrap_or(0),
                    started: None,
                    duration_secs: 0.0,
                    attempts: 0,
                    remote_id: None,
                    reattach,
                    fresh: false,
                    expected: opts.expected.get(id).copied(),
                    overran: false,
                }
            })
            .collect();
        for i in 0..nodes.len() {
            for p in nodes[i].parents.clone() {
                nodes[p].children.push(i);
            }
        }
        opts.resume = resume;
        let (view_tx, view_rx) = watch::channel(ViewState::new(
            opts.run_id.clone(),
            job.name.clone(),
            nodes.len(),
        ));
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        let (conditions_tx, conditions_rx) = mpsc::unbounded_channel();
        let env = Arc::new(std::mem::take(&mut opts.env));
        let limits = Limits::new(&job, opts.concurrency, &opts.limits.sizes);
        Scheduler {
            plan,
            executor,
            opts,
            interrupt,
            events,
            seq: 0,
            started_at: Utc::now(),
            started: Instant::now(),
            counts: Counts::default(),
            attempted: 0,
            nodes,
            to_resolve: VecDeque::new(),
            ready: BTreeSet::new(),
            limits,
            running: 0,
            evaluating: 0,
            conditions_tx,
            conditions_rx,
            env,
            stop: None,
            view_tx,
            view_rx,
            reports_tx,
            reports_rx,
            tasks: JoinSet::new(),
            task_steps: HashMap::new(),
            index,
            deadlines: BTreeSet::new(),
        }
    }

    /// The run clock's time now: the instant and the timestamp events carry.
    fn now(&self) -> (Instant, DateTime<Utc>) {
        let now = Instant::now();
        let since = now.saturating_duration_since(self.started);
        let at = chrono::TimeDelta::from_std(since)
            .ok()
            .and_then(|d| self.started_at.checked_add_signed(d))
            .unwrap_or_else(Utc::now);
        (now, at)
    }

    fn emit(&mut self, kind: RunEventKind) {
        let (_, at) = self.now();
        self.emit_at(at, kind);
    }

    fn emit_at(&mut self, at: DateTime<Utc>, kind: RunEventKind) {
        let event = RunEvent {
            seq: self.seq,
            at,
            kind,
        };
        self.seq += 1;
        // A closed receiver means nobody listens any more; the run goes on.
        let _ = self.events.send(event);
    }

    async fn run(mut self) -> RunStatus {
        let job = self.plan.job.clone();
        let steps: Vec<StepInfo> = self
            .nodes
            .iter()
            .map(|n| StepInfo {
                id: n.step.id.clone(),
                step_type: n.step.type_name().to_string(),
                resource: n.step.kind.resource_label(),
                depends_on: n
                    .parents
                    .iter()
                    .map(|&p| self.nodes[p].step.id.clone())
                    .collect(),
                expected: n.expected,
            })
            .collect();
        self.started_at = Utc::now();
        self.started = Instant::now();
        let started_at = self
            .started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        self.view_tx.send_modify(|v| v.started_at = started_at);
        self.emit(RunEventKind::RunStarted {
            run_id: self.opts.run_id.clone(),
            job: job.name.clone(),
            job_file: job.file.display().to_string(),
            steps,
            resumed_from: self.opts.resume.as_ref().map(|r| r.run_id.clone()),
        });

        // Steps a resumed run keeps, in job order.
        if let Some(resume) = self.opts.resume.take() {
            for i in 0..self.nodes.len() {
                if let Some(ResumeStep::Keep { status, reason }) =
                    resume.steps.get(&self.nodes[i].step.id)
                {
                    let reason = reason
                        .clone()
                        .or_else(|| Some(format!("kept from run {} (resumed)", resume.run_id)));
                    self.finalize(i, *status, reason, 0, false);
                }
            }
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].waiting == 0 && self.nodes[i].state == State::Pending {
                self.to_resolve.push_back(i);
            }
        }

        loop {
            if self.interrupt.is_cancelled() && self.stop != Some(Stop::Interrupt) {
                self.begin_stop(Stop::Interrupt);
            }
            self.resolve_pending();
            self.start_ready();
            if self.running == 0
                && self.evaluating == 0
                && self.to_resolve.is_empty()
                && self.ready.is_empty()
            {
                break;
            }
            let deadline = self.deadlines.first().map(|(at, _)| *at);
            tokio::select! {
                biased;
                Some(report) = self.reports_rx.recv() => self.on_report(report),
                Some((i, result)) = self.conditions_rx.recv() => self.on_condition(i, result),
                Some(joined) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.on_task_end(joined);
                }
                _ = self.interrupt.cancelled(), if self.stop != Some(Stop::Interrupt) => {
                    self.begin_stop(Stop::Interrupt);
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    self.on_deadlines();
                }
            }
        }

        // Safety net: nothing should be left, but a step must never end without a status.
        for i in 0..self.nodes.len() {
            if !matches!(self.nodes[i].state, State::Final(_)) {
                self.finalize(
                    i,
                    StepStatus::Cancelled,
                    Some("not started: the run ended first".into()),
                    0,
                    false,
                );
            }
        }

        let status = self.run_status();
        let (now, at) = self.now();
        self.emit_at(
            at,
            RunEventKind::RunFinished {
                status,
                counts: self.counts,
                duration: now.saturating_duration_since(self.started),
            },
        );
        status
    }

    fn run_status(&self) -> RunStatus {
        if self.stop == Some(Stop::Interrupt) {
            return RunStatus::Cancelled;
        }
        let failing = self.nodes.iter().any(|n| match n.state {
            State::Final(s) => counts_against_run(s, &n.step, self.stop.as_ref()),
            _ => false,
        });
        let late = self.nodes.iter().any(Node::late_fails);
        let failing = failing || late;
        if failing {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        }
    }
}

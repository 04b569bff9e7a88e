//! Resolution: what happens to a step once all its parents are final (trigger rule, then
//! `when:` condition, then the ready queue).

use std::cmp::Reverse;
use std::time::Duration;

use super::{Node, Scheduler, State, Stop};
use crate::engine::condition::{self, ConditionError, ConditionInput, DepFacts};
use crate::engine::trigger::{self, Decision, ParentOutcome};
use crate::event::StepStatus;
use crate::job::model::{Step, StepId};

impl Scheduler {
    /// Applies trigger rules and conditions to every step whose parents are all final.
    pub(super) fn resolve_pending(&mut self) {
        while let Some(i) = self.to_resolve.pop_front() {
            if self.nodes[i].state != State::Pending {
                continue;
            }
            let step = self.nodes[i].step.clone();
            if self.stop == Some(Stop::Interrupt) {
                // After an interrupt nothing is decided any more: every step left is cancelled.
                let reason = self.not_started_reason();
                self.finalize(i, StepStatus::Cancelled, Some(reason), 0, false);
                continue;
            }
            // Unselected dependencies count as satisfied (as failed with --unselected-as).
            let mut parents: Vec<(StepId, ParentOutcome)> = Vec::new();
            for dep in &step.depends_on {
                let outcome = match self.index.get(dep) {
                    Some(&p) => match self.nodes[p].state {
                        State::Final(s) => parent_outcome(s, &self.nodes[p]),
                        // Cannot happen: `waiting` reached zero.
                        _ => ParentOutcome::Cancelled,
                    },
                    None if self.opts.unselected_failed => ParentOutcome::Failed,
                    None => ParentOutcome::Success,
                };
                parents.push((dep.clone(), outcome));
            }
            match trigger::decide(step.trigger, &parents) {
                Decision::Skip(reason) => {
                    self.finalize(i, StepStatus::Skipped, Some(reason), 0, false)
                }
                Decision::UpstreamFailed(reason) => {
                    self.finalize(i, StepStatus::UpstreamFailed, Some(reason), 0, false)
                }
                Decision::Cancel(reason) => {
                    self.finalize(i, StepStatus::Cancelled, Some(reason), 0, false)
                }
                Decision::Run if self.stop.is_some() => {
                    let reason = self.not_started_reason();
                    self.finalize(i, StepStatus::Cancelled, Some(reason), 0, false);
                }
                Decision::Run => match step.when.clone() {
                    None => self.make_ready(i),
                    Some(expr) => self.start_condition(i, expr, &step),
                },
            }
        }
    }

    fn make_ready(&mut self, i: usize) {
        self.nodes[i].state = State::Ready;
        self.ready.insert((Reverse(self.nodes[i].priority), i));
    }

    /// Evaluates a step's `when:` on a thread of its own. A quick answer (any expression that
    /// passed validation, whose cost is bounded) is applied at once, so the order of events
    /// stays what the job implies; a slow one is waited for off the scheduler's task, bounded
    /// by [`CONDITION_LIMIT`], while the scheduler keeps serving reports and signals: an
    /// interrupt then cancels the step without waiting for the evaluation.
    fn start_condition(&mut self, i: usize, expr: String, step: &Step) {
        let input = self.condition_input(step);
        self.nodes[i].state = State::Evaluating;
        self.evaluating += 1;
        let limit = self.opts.condition_limit.unwrap_or(CONDITION_LIMIT);
        let pending = match Evaluation::start(expr, input) {
            Ok(pending) => pending,
            Err(e) => return self.on_condition(i, Err(e)),
        };
        match pending.wait(QUICK.min(limit)) {
            Some(result) => self.on_condition(i, result),
            None => {
                let results = self.conditions_tx.clone();
                tokio::task::spawn_blocking(move || {
                    let result = pending
                        .wait(limit.saturating_sub(QUICK))
                        .unwrap_or_else(|| Err(pending.too_slow(limit)));
                    let _ = results.send((i, result));
                });
            }
        }
    }

    /// The outcome of a step's condition, once evaluated.
    pub(super) fn on_condition(&mut self, i: usize, result: Result<bool, ConditionError>) {
        // A step cancelled by a stop meanwhile is already final.
        if self.nodes[i].state != State::Evaluating {
            return;
        }
        let expr = self.nodes[i].step.when.clone().unwrap_or_default();
        match result {
            _ if self.stop.is_some() => {
                let reason = self.not_started_reason();
                self.finalize(i, StepStatus::Cancelled, Some(reason), 0, false);
            }
            Ok(true) => {
                self.evaluating = self.evaluating.saturating_sub(1);
                self.make_ready(i);
            }
            Ok(false) => {
                let reason = format!("condition false: {expr}");
                self.finalize(i, StepStatus::Skipped, Some(reason), 0, false);
            }
            Err(e) => self.finalize(i, StepStatus::Failed, Some(e.to_string()), 0, false),
        }
    }

    fn condition_input(&self, step: &Step) -> ConditionInput {
        let job = &self.plan.job;
        let steps = step
            .depends_on
            .iter()
            .map(|dep| {
                let facts = match self.index.get(dep) {
                    Some(&p) => {
                        let n = &self.nodes[p];
                        DepFacts {
                            status: match n.state {
                                State::Final(s) => s,
                                _ => StepStatus::Cancelled,
                            },
                            attempts: n.attempts,
                            duration_secs: n.duration_secs,
                            selected: true,
                            fresh: n.fresh,
                            overran: n.overran,
                        }
                    }
                    None => DepFacts {
                        status: if self.opts.unselected_failed {
                            StepStatus::Failed
                        } else {
                            StepStatus::Succeeded
                        },
                        attempts: 0,
                        duration_secs: 0.0,
                        selected: false,
                        fresh: false,
                        overran: false,
                    },
                };
                (dep.clone(), facts)
            })
            .collect();
        ConditionInput {
            vars: job
                .vars
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            env: self.env.clone(),
            run_id: self.opts.run_id.clone(),
            job: job.name.clone(),
            started_at: self.started_at.to_rfc3339(),
            steps,
        }
    }
}

/// How long a `when:` evaluation may run before its step fails.
pub(crate) const CONDITION_LIMIT: Duration = Duration::from_secs(10);

/// How long the scheduler waits for a condition on its own task before it goes on and takes
/// the answer later.
const QUICK: Duration = Duration::from_millis(500);

/// One `when:` being evaluated on a detached thread. CEL evaluation cannot be stopped from
/// outside: a runaway one is left to its thread, which ends with the process.
struct Evaluation {
    expr: String,
    result: std::sync::mpsc::Receiver<Result<bool, ConditionError>>,
}

impl Evaluation {
    fn start(expr: String, input: ConditionInput) -> Result<Evaluation, ConditionError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let evaluated = expr.clone();
        std::thread::Builder::new()
            .name("pbibatch-when".into())
            .spawn(move || {
                let _ = tx.send(condition::evaluate(&evaluated, &input));
            })
            .map_err(|e| ConditionError::Evaluate {
                expr: expr.clone(),
                message: format!("cannot start a thread: {e}"),
            })?;
        Ok(Evaluation { expr, result: rx })
    }

    /// The result, if it comes within `wait`.
    fn wait(&self, wait: Duration) -> Option<Result<bool, ConditionError>> {
        match self.result.recv_timeout(wait) {
            Ok(result) => Some(result),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                Some(Err(ConditionError::Evaluate {
                    expr: self.expr.clone(),
                    message: "the evaluation stopped without a result".into(),
                }))
            }
        }
    }

    fn too_slow(&self, limit: Duration) -> ConditionError {
        ConditionError::TooSlow {
            expr: self.expr.clone(),
            limit,
        }
    }
}

/// How a parent's final status counts for its children's trigger rules. A freshness skip
/// counts as succeeded: the resource's data is current, only the trigger was spared.
fn parent_outcome(status: StepStatus, parent: &Node) -> ParentOutcome {
    let step = &parent.step;
    match status {
        StepStatus::Succeeded => ParentOutcome::Success,
        StepStatus::Skipped if parent.fresh => ParentOutcome::Success,
        StepStatus::Failed | StepStatus::TimedOut if step.continue_on_error => {
            ParentOutcome::Success
        }
        StepStatus::Failed | StepStatus::TimedOut | StepStatus::UpstreamFailed => {
            ParentOutcome::Failed
        }
        StepStatus::Skipped => ParentOutcome::Skipped,
        StepStatus::Cancelled => ParentOutcome::Cancelled,
    }
}

//! Resolution: what happens to a step once all its parents are final (trigger rule, then
//! `when:` condition, then the ready queue).

use std::cmp::Reverse;

use super::{Node, Scheduler, State, Stop};
use crate::engine::condition::{self, ConditionInput, DepFacts};
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
            // Unselected dependencies count as satisfied.
            let mut parents: Vec<(StepId, ParentOutcome)> = Vec::new();
            for dep in &step.depends_on {
                let outcome = match self.index.get(dep) {
                    Some(&p) => match self.nodes[p].state {
                        State::Final(s) => parent_outcome(s, &self.nodes[p]),
                        // Cannot happen: `waiting` reached zero.
                        _ => ParentOutcome::Cancelled,
                    },
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
                Decision::Run => match self.check_condition(&step) {
                    Ok(true) => {
                        self.nodes[i].state = State::Ready;
                        self.ready.insert((Reverse(self.nodes[i].priority), i));
                    }
                    Ok(false) => {
                        let expr = step.when.as_deref().unwrap_or_default();
                        let reason = format!("condition false: {expr}");
                        self.finalize(i, StepStatus::Skipped, Some(reason), 0, false);
                    }
                    Err(e) => self.finalize(i, StepStatus::Failed, Some(e.to_string()), 0, false),
                },
            }
        }
    }

    fn check_condition(&self, step: &Step) -> Result<bool, condition::ConditionError> {
        let Some(expr) = step.when.as_deref() else {
            return Ok(true);
        };
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
                        }
                    }
                    None => DepFacts {
                        status: StepStatus::Succeeded,
                        attempts: 0,
                        duration_secs: 0.0,
                        selected: false,
                        fresh: false,
                    },
                };
                (dep.as_str(), facts)
            })
            .collect();
        let input = ConditionInput {
            vars: job
                .vars
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            env: Some(&self.opts.env),
            run_id: &self.opts.run_id,
            job: &job.name,
            started_at: self.started_at.to_rfc3339(),
            steps,
        };
        condition::evaluate(expr, &input)
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

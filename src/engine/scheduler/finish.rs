//! Final statuses and stopping: a step's `StepFinished` (with what the scheduler stamps on
//! it) and the release of its dependents; `--fail-fast` and interrupts.

use std::cmp::Reverse;

use super::{Scheduler, State, Stop};
use crate::event::{RunEventKind, StepStatus};
use crate::job::model::Step;

impl Scheduler {
    pub(super) fn begin_stop(&mut self, why: Stop) {
        let reason = match &why {
            Stop::Interrupt => {
                let verb = if self.opts.detach_on_interrupt {
                    "detaching from"
                } else {
                    "cancelling"
                };
                let noun = if self.running == 1 { "step" } else { "steps" };
                format!(
                    "interrupted: starting nothing new, {verb} {} running {noun}",
                    self.running
                )
            }
            Stop::FailFast(id) => {
                format!("fail-fast: step `{id}` failed, starting nothing new")
            }
        };
        // An interrupt overrides fail-fast; the reverse never happens.
        if self.stop.is_some() && why != Stop::Interrupt {
            return;
        }
        self.stop = Some(why);
        self.emit(RunEventKind::Stopping { reason });
        // Ready steps, and steps whose condition is being evaluated, will not start now.
        let mut ready: Vec<usize> = self.ready.iter().map(|(_, i)| *i).collect();
        ready.extend((0..self.nodes.len()).filter(|&i| self.nodes[i].state == State::Evaluating));
        self.ready.clear();
        for i in ready {
            let reason = self.not_started_reason();
            self.finalize(i, StepStatus::Cancelled, Some(reason), 0, false);
        }
    }

    pub(super) fn not_started_reason(&self) -> String {
        match &self.stop {
            Some(Stop::FailFast(id)) => {
                format!("not started: --fail-fast after step `{id}` failed")
            }
            _ => "not started: run interrupted".to_string(),
        }
    }

    /// Flags the running steps whose expected duration has passed.
    pub(super) fn on_deadlines(&mut self) {
        let (now, _) = self.now();
        while let Some(&(at, i)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            if self.nodes[i].state == State::Running {
                self.overran(i, now);
            }
        }
    }

    /// Emits the step's `StepOverran` (once).
    fn overran(&mut self, i: usize, now: tokio::time::Instant) {
        let node = &mut self.nodes[i];
        if node.overran {
            return;
        }
        let Some(started) = node.started else {
            return;
        };
        node.overran = true;
        let step = node.step.id.clone();
        let elapsed = now.saturating_duration_since(started);
        self.emit(RunEventKind::StepOverran { step, elapsed });
    }

    /// Gives a step its final status, emits `StepFinished` and releases its dependents.
    pub(super) fn finalize(
        &mut self,
        i: usize,
        status: StepStatus,
        reason: Option<String>,
        attempts: u32,
        adopted: bool,
    ) {
        let was = self.nodes[i].state;
        if matches!(was, State::Final(_)) {
            return;
        }
        if was == State::Ready {
            self.ready.remove(&(Reverse(self.nodes[i].priority), i));
        }
        if was == State::Evaluating {
            self.evaluating = self.evaluating.saturating_sub(1);
        }
        let (now, at) = self.now();
        // Ended past its expected duration before the timer fired: flagged now, first.
        let node = &self.nodes[i];
        if let (Some(started), Some(limit)) = (node.started, node.expected.and_then(|e| e.limit()))
        {
            self.deadlines.remove(&(started + limit, i));
            if now.saturating_duration_since(started) > limit {
                self.overran(i, now);
            }
        }
        let node = &mut self.nodes[i];
        node.state = State::Final(status);
        node.attempts = attempts;
        let duration = node.started.map(|s| now.saturating_duration_since(s));
        node.duration_secs = duration.map_or(0.0, |d| d.as_secs_f64());
        let step = node.step.clone();
        let duration_secs = node.duration_secs;
        if was == State::Running {
            self.running = self.running.saturating_sub(1);
            self.limits.release(&node.pools, &node.needs.exclusive);
        }
        let failure = reason.clone();
        self.counts.add(status);
        if duration.is_some() {
            self.attempted = self.attempted.saturating_sub(1);
        }
        self.emit_at(
            at,
            RunEventKind::StepFinished {
                step: step.id.clone(),
                status,
                reason,
                attempts,
                adopted,
                duration,
                counts: self.counts,
                running: self.attempted,
                overran: self.nodes[i].overran,
            },
        );
        let stop = self.stop.clone();
        let late_fails = self.nodes[i].late_fails();
        let failing = counts_against_run(status, &step, stop.as_ref());
        let overran = self.nodes[i].overran;
        self.view_tx.send_modify(|v| {
            v.record(&step.id, status, failing);
            if overran {
                v.record_overrun(&step.id, late_fails);
            }
            v.record_failure(&step.id, status, failure.as_deref());
            v.record_stats(&step.id, attempts, duration_secs);
        });
        if self.opts.fail_fast
            && matches!(status, StepStatus::Failed | StepStatus::TimedOut)
            && !step.continue_on_error
            && self.stop.is_none()
        {
            self.begin_stop(Stop::FailFast(step.id.clone()));
        }
        for c in self.nodes[i].children.clone() {
            let child = &mut self.nodes[c];
            child.waiting = child.waiting.saturating_sub(1);
            if child.waiting == 0 && child.state == State::Pending {
                self.to_resolve.push_back(c);
            }
        }
    }
}

/// True when this final status makes the run fail.
pub(super) fn counts_against_run(status: StepStatus, step: &Step, stop: Option<&Stop>) -> bool {
    match status {
        StepStatus::Failed | StepStatus::TimedOut => !step.continue_on_error,
        StepStatus::UpstreamFailed => true,
        StepStatus::Cancelled => matches!(stop, Some(Stop::FailFast(_))),
        StepStatus::Succeeded | StepStatus::Skipped => false,
    }
}

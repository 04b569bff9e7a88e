//! Starting ready steps within the limits, and hearing back from their tasks: attempt
//! reports and executor updates become events here.

use super::{Scheduler, State};
use crate::engine::attempt::{AttemptReport, StepTask};
use crate::event::{AttemptUpdate, RunEventKind, StepStatus};
use crate::executor::SkipKind;

impl Scheduler {
    /// Starts ready steps, best first, while the limits allow.
    pub(super) fn start_ready(&mut self) {
        if self.stop.is_some() {
            return;
        }
        let mut blocked = Vec::new();
        while !self.limits.full() {
            let Some(key) = self.ready.pop_first() else {
                break;
            };
            let i = key.1;
            let node = &self.nodes[i];
            if self.limits.fits(&node.pools, &node.needs.exclusive) {
                self.limits.acquire(&node.pools, &node.needs.exclusive);
                self.spawn(i);
            } else {
                blocked.push(key);
            }
        }
        self.ready.extend(blocked);
    }

    fn spawn(&mut self, i: usize) {
        self.running += 1;
        let node = &mut self.nodes[i];
        node.state = State::Running;
        let task = StepTask {
            index: i,
            run_id: self.opts.run_id.clone(),
            step: node.step.clone(),
            run_view: node.needs.run_view,
            executor: self.executor.clone(),
            reports: self.reports_tx.clone(),
            view: self.view_rx.clone(),
            reattach: node.reattach.take(),
            interrupt: self.interrupt.clone(),
            detach: self.opts.detach_on_interrupt,
            durable: self.opts.durable,
        };
        let handle = self.tasks.spawn(task.run());
        self.task_steps.insert(handle.id(), i);
    }

    fn on_update(&mut self, i: usize, attempt: u32, update: AttemptUpdate) {
        let node = &mut self.nodes[i];
        // Late updates from an attempt that already ended would reorder the story.
        if node.state != State::Running || node.attempts != attempt {
            return;
        }
        if let Some(id) = &update.remote_id {
            node.remote_id = Some(id.clone());
        }
        let step = node.step.id.clone();
        self.emit(RunEventKind::StepProgress {
            step,
            attempt,
            update,
        });
    }

    pub(super) fn on_report(&mut self, report: AttemptReport) {
        match report {
            AttemptReport::Started { step, attempt } => {
                let (now, at) = self.now();
                let node = &mut self.nodes[step];
                node.attempts = attempt;
                node.remote_id = None;
                if node.started.is_none() {
                    node.started = Some(now);
                    self.attempted += 1;
                    if let Some(limit) = node.expected.and_then(|e| e.limit()) {
                        self.deadlines.insert((now + limit, step));
                    }
                }
                let id = node.step.id.clone();
                self.emit_at(at, RunEventKind::AttemptStarted { step: id, attempt });
            }
            AttemptReport::Progress {
                step,
                attempt,
                update,
            } => self.on_update(step, attempt, *update),
            AttemptReport::Finished {
                step,
                attempt,
                status,
                error,
                retry_in,
            } => {
                let node = &self.nodes[step];
                let id = node.step.id.clone();
                let remote_id = node.remote_id.clone();
                self.emit(RunEventKind::AttemptFinished {
                    step: id,
                    attempt,
                    status,
                    error,
                    remote_id,
                    retry_in,
                });
            }
            AttemptReport::Done {
                step,
                status,
                reason,
                attempts,
                adopted,
                skip,
            } => {
                self.nodes[step].fresh =
                    status == StepStatus::Skipped && skip == Some(SkipKind::Fresh);
                self.finalize(step, status, reason, attempts, adopted);
            }
        }
    }

    pub(super) fn on_task_end(
        &mut self,
        joined: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
    ) {
        let id = match &joined {
            Ok((id, ())) => *id,
            Err(e) => e.id(),
        };
        let Some(i) = self.task_steps.remove(&id) else {
            return;
        };
        // Reports sent just before the task ended come first.
        while let Ok(report) = self.reports_rx.try_recv() {
            self.on_report(report);
        }
        if self.nodes[i].state == State::Running {
            let attempts = self.nodes[i].attempts;
            self.finalize(
                i,
                StepStatus::Failed,
                Some("internal error: the attempt task ended without a result".into()),
                attempts,
                false,
            );
        }
    }
}

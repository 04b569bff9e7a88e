//! `run --resume`: what each step of a new run should do, given what an earlier run did.
//!
//! - `succeeded` steps are kept: not run again, reported as succeeded. So is a step whose last
//!   attempt ended `succeeded` when the run died before recording the step's end.
//! - A step whose last attempt was in flight (started, no end recorded) and has a stored
//!   [`RemoteHandle`] is re-attached: the new run polls that remote operation instead of
//!   triggering another one.
//! - Everything else runs again: `failed`, `timed_out`, `upstream_failed`, `cancelled`,
//!   `skipped` (its condition or trigger rule is evaluated afresh), never started, in flight
//!   without a handle (nothing to poll), and steps the earlier run did not have.
//!
//! A changed job file is refused unless `force`. Only steps whose definition hash is unchanged
//! keep their earlier outcome; that holds without a file change too, since `--var` and
//! `${env.X}` values can change a step's resolved definition.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{RunTarget, Store, StoreError};
use crate::engine::{ResumeState, ResumeStep};
use crate::event::{RemoteHandle, StepStatus};
use crate::job::model::StepId;

/// What a resumed run does with each step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resume {
    /// The run being resumed.
    pub from_run: String,
    /// The job file changed since that run (accepted with `force`).
    pub job_changed: bool,
    /// One entry per step of the current job.
    pub steps: BTreeMap<StepId, StepResume>,
}

/// The fate of one step in a resumed run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum StepResume {
    /// Succeeded in an earlier run: not run again, reported as succeeded.
    Keep {
        /// The run where it succeeded.
        run_id: String,
        attempts: u32,
        adopted: bool,
        finished_at: Option<DateTime<Utc>>,
    },
    /// Runs again from its first attempt.
    Run {
        /// Why, for the report and the logs.
        reason: String,
        /// The remote run its last attempt left (failed, timed out, or an answer that was
        /// never recorded): the first attempt reads it again before it triggers, so a run
        /// still alive or that ended successfully is not started twice.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous: Option<RemoteHandle>,
    },
    /// Its remote operation was in flight when the earlier run died: poll it, don't trigger.
    Reattach {
        /// The attempt that was in flight; the re-attached attempt continues its numbering.
        attempt: u32,
        handle: RemoteHandle,
        /// The last remote status seen before the earlier run died.
        remote_status: Option<String>,
    },
}

impl Resume {
    /// Steps kept as succeeded.
    pub fn kept(&self) -> impl Iterator<Item = &StepId> {
        self.steps
            .iter()
            .filter(|(_, s)| matches!(s, StepResume::Keep { .. }))
            .map(|(id, _)| id)
    }

    /// Steps to re-attach, with their handles.
    pub fn reattach(&self) -> impl Iterator<Item = (&StepId, &RemoteHandle)> {
        self.steps.iter().filter_map(|(id, s)| match s {
            StepResume::Reattach { handle, .. } => Some((id, handle)),
            _ => None,
        })
    }
}

/// The reason a resumed run gives a kept step, followed by the run where it succeeded.
const KEPT_PREFIX: &str = "succeeded in run ";

impl From<Resume> for ResumeState {
    /// What the engine needs: kept steps finish `succeeded` at once (with a reason naming the
    /// run they succeeded in), re-attached ones poll their handle; steps that run again are
    /// left out, so the engine runs them from their first attempt.
    fn from(resume: Resume) -> ResumeState {
        let steps = resume
            .steps
            .into_iter()
            .filter_map(|(id, fate)| match fate {
                StepResume::Keep { run_id, .. } => Some((
                    id,
                    ResumeStep::Keep {
                        status: StepStatus::Succeeded,
                        reason: Some(format!("{KEPT_PREFIX}{run_id}")),
                    },
                )),
                StepResume::Reattach { handle, .. } => Some((id, ResumeStep::Reattach(handle))),
                StepResume::Run {
                    previous: Some(handle),
                    ..
                } => Some((id, ResumeStep::Reattach(handle))),
                StepResume::Run { previous: None, .. } => None,
            })
            .collect();
        ResumeState {
            run_id: resume.from_run,
            steps,
        }
    }
}

impl Store {
    /// [`Store::resume_state`] for a run against `target`: refuses, before classifying
    /// anything, a run that ran against another target (the simulator, another tenant or
    /// other endpoints, or an unknown target recorded by an older pbibatch). `run --resume`
    /// goes through here.
    pub fn resume_for(
        &self,
        target: &RunTarget,
        run_id_or_last: &str,
        job_name: &str,
        job_hash: &str,
        force: bool,
        step_hashes: &HashMap<StepId, String>,
    ) -> Result<Resume, StoreError> {
        let run_id = self.resolve_run_id(run_id_or_last, Some(job_name))?;
        let run = self.load_run(&run_id)?;
        // A different job is the clearer message when both differ.
        if run.job == job_name && (run.target != *target || *target == RunTarget::Unknown) {
            return Err(StoreError::OtherTarget(super::target::refusal(
                &run_id,
                &run.target,
                target,
            )));
        }
        self.resume_state(&run_id, job_name, job_hash, force, step_hashes)
    }

    /// Classifies every step of the current job (the keys of `step_hashes`, see
    /// [`super::step_hashes`]) against run `run_id_or_last` (`last` = the latest run of
    /// `job_name`). Refuses a changed `job_hash` unless `force`. Does not look at the run's
    /// target: [`Store::resume_for`] does.
    pub fn resume_state(
        &self,
        run_id_or_last: &str,
        job_name: &str,
        job_hash: &str,
        force: bool,
        step_hashes: &HashMap<StepId, String>,
    ) -> Result<Resume, StoreError> {
        let run_id = self.resolve_run_id(run_id_or_last, Some(job_name))?;
        let run = self.load_run(&run_id)?;
        if run.job != job_name {
            return Err(StoreError::WrongJob {
                run_id,
                found: run.job,
                expected: job_name.to_string(),
            });
        }
        let job_changed = run.job_hash != job_hash;
        if job_changed && !force {
            return Err(StoreError::JobChanged {
                run_id,
                old: short(&run.job_hash),
                new: short(job_hash),
            });
        }
        let previous: HashMap<&str, &super::StepDetails> =
            run.steps.iter().map(|s| (s.id.as_str(), s)).collect();
        let mut steps = BTreeMap::new();
        for (id, hash) in step_hashes {
            let fate = match previous.get(id.as_str()) {
                None => StepResume::Run {
                    reason: format!("not part of run {run_id}"),
                    previous: None,
                },
                // Also without a job change: `--var` or `${env.X}` can change a step's
                // resolved definition while the file stays the same.
                Some(prev) if definition_changed(prev.step_hash.as_deref(), hash, job_changed) => {
                    StepResume::Run {
                        reason: format!("its definition changed since run {run_id}"),
                        previous: None,
                    }
                }
                Some(prev) => classify_step(&run_id, prev),
            };
            steps.insert(id.clone(), fate);
        }
        self.inherit_handles(run.resumed_from.clone(), step_hashes, &mut steps);
        Ok(Resume {
            from_run: run_id,
            job_changed,
            steps,
        })
    }
}

/// How many runs back along a resume chain a step's remote handle is looked for.
const MAX_CHAIN: usize = 20;

impl Store {
    /// A resumed run killed before its own attempt recorded anything still owes the remote
    /// work of the run it resumed: a step that runs again without a handle of its own takes
    /// the last one recorded for it along the chain of resumed runs (same definition only),
    /// so that its first attempt reads that run again before triggering (I4).
    fn inherit_handles(
        &self,
        mut earlier: Option<String>,
        step_hashes: &HashMap<StepId, String>,
        steps: &mut BTreeMap<StepId, StepResume>,
    ) {
        let mut hops = 0;
        while let Some(run_id) = earlier.take() {
            let orphans = steps
                .values()
                .any(|f| matches!(f, StepResume::Run { previous: None, .. }));
            if !orphans || hops >= MAX_CHAIN {
                return;
            }
            hops += 1;
            let Ok(run) = self.load_run(&run_id) else {
                return;
            };
            for s in &run.steps {
                let same_definition = step_hashes
                    .get(&s.id)
                    .is_some_and(|h| !definition_changed(s.step_hash.as_deref(), h, false));
                let handle = s
                    .attempts
                    .iter()
                    .max_by_key(|a| a.number)
                    .and_then(|a| a.remote.as_ref()?.handle.clone());
                if let (true, Some(handle)) = (same_definition, handle)
                    && let Some(StepResume::Run { previous, .. }) = steps.get_mut(&s.id)
                    && previous.is_none()
                {
                    *previous = Some(handle);
                }
            }
            earlier = run.resumed_from.clone();
        }
    }
}

/// The fate of a step whose definition did not change.
fn classify_step(run_id: &str, prev: &super::StepDetails) -> StepResume {
    let last = prev.attempts.iter().max_by_key(|a| a.number);
    // A step kept by a resumed run (no attempts) names the run where it really succeeded.
    let origin = prev
        .reason
        .as_deref()
        .and_then(|r| r.strip_prefix(KEPT_PREFIX))
        .filter(|_| prev.attempts.is_empty())
        .unwrap_or(run_id);
    let keep = |finished_at| StepResume::Keep {
        run_id: origin.to_string(),
        attempts: prev.attempts.len() as u32,
        adopted: prev.adopted,
        finished_at,
    };
    // The remote run the last attempt left, read again before any new trigger (I4).
    let last_handle = last.and_then(|a| a.remote.as_ref()?.handle.clone());
    match prev.status.as_str() {
        "succeeded" => keep(prev.finished_at),
        "running" | "pending" => match last {
            // The run died between the attempt's end and the step's end.
            Some(a) if a.status == "succeeded" => keep(a.finished_at),
            Some(a) if a.finished_at.is_none() => {
                match a.remote.as_ref().and_then(|r| r.handle.clone()) {
                    Some(handle) => StepResume::Reattach {
                        attempt: a.number,
                        handle,
                        remote_status: a.remote.as_ref().and_then(|r| r.status.clone()),
                    },
                    None => StepResume::Run {
                        reason: format!(
                            "attempt {} was in flight in run {run_id} with no remote id to \
                             re-attach to",
                            a.number
                        ),
                        previous: None,
                    },
                }
            }
            Some(a) => StepResume::Run {
                reason: format!("attempt {} ended {} in run {run_id}", a.number, a.status),
                previous: last_handle,
            },
            None => StepResume::Run {
                reason: format!("never started in run {run_id}"),
                previous: None,
            },
        },
        other => StepResume::Run {
            reason: format!("{other} in run {run_id}"),
            previous: last_handle,
        },
    }
}

/// A step's definition changed when its stored hash differs; a run recorded before hashes
/// were stored (schema v1) has none, which counts as unchanged unless the job file changed.
fn definition_changed(stored: Option<&str>, current: &str, job_changed: bool) -> bool {
    match stored {
        Some(stored) => stored != current,
        None => job_changed,
    }
}

/// The first 12 hex digits: enough to tell hashes apart in a message.
fn short(hash: &str) -> String {
    hash.chars().take(12).collect()
}

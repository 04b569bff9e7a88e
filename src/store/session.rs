//! Everything `pbibatch run` does with the store, in the order it must happen: open, lock the
//! job, read the past (resume state, priorities), then record the run's events.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::{
    JobLock, LockHolder, LockOptions, RecorderThread, Resume, RunMeta, RunTarget, StepResume,
    Store, StoreError, StoreRecorder, resolve_path, step_hashes,
};
use crate::engine::ResumeState;
use crate::event::RunEvent;
use crate::job::model::{Job, StepId};

/// Runs of one job kept in the history; older ones are deleted when a new run starts.
pub(super) const KEEP_RUNS: u32 = 1000;

/// What `run` asks of the store.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// `--state` (`None` = `PBIBATCH_STATE` or the default path; `"none"` = no store).
    pub state: Option<String>,
    /// `--wait-lock DURATION`.
    pub wait_lock: Option<String>,
    /// `--resume RUN_ID|last`.
    pub resume: Option<String>,
    /// `--force`.
    pub force: bool,
    /// The id the engine will stamp on this run's events.
    pub run_id: String,
    /// The command line, as JSON (what the `run` command records).
    pub arguments: serde_json::Value,
    /// What the run runs against: a resume must be of a run of the same target, and the
    /// duration hints come from runs of that target only.
    pub target: RunTarget,
}

/// The store's side of one run: holds the job's lock and records events until
/// [`RunSession::finish`].
#[derive(Debug)]
pub struct RunSession {
    path: PathBuf,
    resume: Option<ResumeState>,
    priority_hint: HashMap<StepId, f64>,
    /// Each step's usual duration over its past runs (`expected_duration: auto`).
    usual: HashMap<StepId, crate::event::Usual>,
    writer: RecorderThread,
    lock: JobLock,
}

impl RunSession {
    /// Opens the store, takes `job`'s lock (calling `on_wait` when it waits for another run),
    /// classifies the steps when resuming, reads past durations, and starts the recorder.
    /// `Ok(None)` with `--state none`. Blocking (it may wait for the lock): call it before the
    /// async run or in `spawn_blocking`. `job` must be the resolved job (after `--var` and
    /// `${env.X}`), the same one the engine runs.
    pub fn begin(
        job: &Job,
        opts: SessionOptions,
        on_wait: &mut dyn FnMut(&LockHolder),
    ) -> Result<Option<RunSession>, StoreError> {
        let Some(path) = resolve_path(opts.state.as_deref()) else {
            return match opts.resume {
                Some(_) => Err(StoreError::ResumeWithoutStore),
                None => Ok(None),
            };
        };
        let lock_opts = LockOptions::with_wait_lock(opts.wait_lock.as_deref())?;
        let mut store = Store::open(&path)?;
        let lock = store.lock_job(&job.name, Some(&opts.run_id), &lock_opts, on_wait)?;
        if let Some(old) = lock.took_over() {
            tracing::warn!(
                job = %job.name,
                run = old.run_id.as_deref().unwrap_or("?"),
                pid = old.pid,
                "the previous run of this job ended without releasing its lock (killed?)"
            );
        }
        let hashes = step_hashes(job);
        let resume = match &opts.resume {
            Some(run) => {
                let resume = store.resume_for(
                    &opts.target,
                    run,
                    &job.name,
                    &job.file_hash,
                    opts.force,
                    &hashes,
                )?;
                log_resume(&resume);
                Some(resume.into())
            }
            None => None,
        };
        let pruned = store.prune(&job.name, KEEP_RUNS)?;
        if pruned > 0 {
            tracing::debug!(job = %job.name, pruned, "deleted old runs from the history");
        }
        let priority_hint = store.priority_hint(&job.name, &opts.target)?;
        let usual = store.usual_step_durations(&job.name, &opts.target, 20)?;
        let meta = RunMeta {
            job_hash: job.file_hash.clone(),
            arguments: opts.arguments,
            step_hashes: hashes,
            target: opts.target,
        };
        let writer = StoreRecorder::new(store, meta).spawn()?;
        Ok(Some(RunSession {
            path,
            resume,
            priority_hint,
            usual,
            writer,
            lock,
        }))
    }

    /// [`RunSession::begin`] for async callers: runs it on the blocking pool and logs (at
    /// `warn`) when it waits for another run of the job.
    pub async fn start(
        job: Arc<Job>,
        opts: SessionOptions,
    ) -> Result<Option<RunSession>, StoreError> {
        tokio::task::spawn_blocking(move || {
            RunSession::begin(&job, opts, &mut |holder| {
                tracing::warn!(
                    run = holder.run_id.as_deref().unwrap_or("?"),
                    pid = holder.pid,
                    host = %holder.host,
                    "another run of this job is active: waiting for it to end (--wait-lock)"
                );
            })
        })
        .await
        .map_err(|e| StoreError::Thread {
            what: "state store",
            source: std::io::Error::other(e.to_string()),
        })?
    }

    /// Forwards every event from `events` to the store (first: what a kill must not lose),
    /// then to `to` (the reporters), until `events` closes; gives the session back for
    /// [`RunSession::finish`]. With no session, it only forwards.
    pub fn forward(
        session: Option<RunSession>,
        mut events: mpsc::UnboundedReceiver<RunEvent>,
        to: mpsc::UnboundedSender<RunEvent>,
    ) -> tokio::task::JoinHandle<Option<RunSession>> {
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if let Some(s) = &session {
                    s.record(&ev);
                }
                let _ = to.send(ev);
            }
            session
        })
    }

    /// The store's file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// For `EngineOptions::resume` (once).
    pub fn take_resume(&mut self) -> Option<ResumeState> {
        self.resume.take()
    }

    /// For `EngineOptions::priority_hint`: median past seconds per step (empty without
    /// history).
    pub fn priority_hint(&self) -> &HashMap<StepId, f64> {
        &self.priority_hint
    }

    /// Each step's usual duration over the job's last 20 runs of this target (what
    /// `expected_duration: auto` learns from first).
    pub fn usual_durations(&self) -> &HashMap<StepId, crate::event::Usual> {
        &self.usual
    }

    /// Records one event (queued; never blocks the caller).
    pub fn record(&self, ev: &RunEvent) {
        self.writer.send(ev.clone());
    }

    /// Waits until every event is written, then releases the lock. Returns the first write
    /// failure, if any (worth a warning: the run itself is not affected).
    pub fn finish(self) -> Result<(), StoreError> {
        let (_store, error) = self.writer.finish();
        let released = self.lock.release();
        match error {
            Some(err) => Err(err),
            None => released,
        }
    }
}

/// One line for the resume, one per step at debug level with the reason.
fn log_resume(resume: &Resume) {
    let kept = resume.kept().count();
    let reattached = resume.reattach().count();
    let rerun = resume.steps.len() - kept - reattached;
    tracing::info!(
        from = %resume.from_run,
        kept,
        reattached,
        rerun,
        job_changed = resume.job_changed,
        "resuming an earlier run"
    );
    for (id, fate) in &resume.steps {
        match fate {
            StepResume::Keep { run_id, .. } => {
                tracing::debug!(step = %id, "kept: succeeded in run {run_id}")
            }
            StepResume::Reattach {
                attempt, handle, ..
            } => tracing::debug!(step = %id, attempt, ?handle, "re-attaching to remote work"),
            StepResume::Run { reason, .. } => tracing::debug!(step = %id, "runs again: {reason}"),
        }
    }
}

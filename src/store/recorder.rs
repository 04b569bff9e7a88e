//! The writer: folds the event stream into the store as events happen.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{RunTarget, Store, StoreError, ts};
use crate::event::{RunEvent, RunEventKind, StepStatus};
use crate::job::model::{Job, Step, StepId};

/// What a run's events do not carry but the store needs for resume: the job file's hash, the
/// arguments, and each step's definition hash.
#[derive(Debug, Clone, Default)]
pub struct RunMeta {
    /// SHA-256 of the job file ([`Job::file_hash`]).
    pub job_hash: String,
    /// The command-line arguments of the run, as JSON (what the `run` command records).
    pub arguments: serde_json::Value,
    /// [`step_hash`] of each step of the job.
    pub step_hashes: HashMap<StepId, String>,
    /// What the run runs against (`unknown` when the caller does not say).
    pub target: RunTarget,
}

impl RunMeta {
    /// The meta of a run of `job` started with `arguments`.
    pub fn from_job(job: &Job, arguments: serde_json::Value) -> RunMeta {
        RunMeta {
            job_hash: job.file_hash.clone(),
            arguments,
            step_hashes: step_hashes(job),
            target: RunTarget::Unknown,
        }
    }
}

/// SHA-256 (hex) of a step's serialized model: changes when anything of the step's
/// definition changes (its secrets serialise as `***`, so the hash reveals none).
pub fn step_hash(step: &Step) -> String {
    let json = serde_json::to_vec(step).unwrap_or_default();
    hex::encode(Sha256::digest(&json))
}

/// [`step_hash`] of every step of `job`.
pub fn step_hashes(job: &Job) -> HashMap<StepId, String> {
    job.steps
        .iter()
        .map(|(id, step)| (id.clone(), step_hash(step)))
        .collect()
}

/// Writes a run's events into a [`Store`], one transaction per event.
#[derive(Debug)]
pub struct StoreRecorder {
    store: Store,
    meta: RunMeta,
    /// Set by `RunStarted`; events before it are ignored.
    run_id: Option<String>,
}

impl StoreRecorder {
    /// A recorder that writes into `store`; `meta` completes what `RunStarted` says.
    pub fn new(store: Store, meta: RunMeta) -> StoreRecorder {
        StoreRecorder {
            store,
            meta,
            run_id: None,
        }
    }

    /// The run being recorded, once `RunStarted` was seen.
    pub fn run_id(&self) -> Option<&str> {
        self.run_id.as_deref()
    }

    /// The store, for queries after the run.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Gives the store back.
    pub fn into_store(self) -> Store {
        self.store
    }

    /// Commits one event. Each call is its own transaction, so what was recorded survives a
    /// kill of the process at any point.
    pub fn record(&mut self, ev: &RunEvent) -> Result<(), StoreError> {
        self.record_batch(std::slice::from_ref(ev))
    }

    /// Commits events that were already waiting together, in one transaction (group commit:
    /// what a kill can lose is still only what had not been handed to SQLite yet). On a
    /// failure nothing of the batch is written.
    pub(crate) fn record_batch(&mut self, events: &[RunEvent]) -> Result<(), StoreError> {
        let path = self.store.path.clone();
        let tx = self
            .store
            .conn
            // IMMEDIATE: take the write lock up front. A deferred transaction that reads first
            // can fail at once with SQLITE_BUSY (no busy wait) when another process wrote in
            // between, e.g. two jobs recording into one store.
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| super::schema::classify(e, &path, "begin a transaction"))?;
        for ev in events {
            apply(&tx, &mut self.run_id, &self.meta, &path, ev)?;
        }
        tx.commit()
            .map_err(|e| super::schema::classify(e, &path, "commit an event"))
    }
}

/// Writes one event inside the caller's transaction.
fn apply(
    tx: &rusqlite::Transaction<'_>,
    run_slot: &mut Option<String>,
    meta: &RunMeta,
    path: &std::path::Path,
    ev: &RunEvent,
) -> Result<(), StoreError> {
    let at = ts(&ev.at);
    if let RunEventKind::RunStarted { run_id, .. } = &ev.kind {
        *run_slot = Some(run_id.clone());
    }
    let Some(run_id) = run_slot.clone() else {
        return Ok(());
    };
    let sql = |context: &str| {
        let context = context.to_string();
        move |e| super::schema::classify(e, path, &context)
    };
    match &ev.kind {
        RunEventKind::RunStarted {
            job,
            job_file,
            steps,
            resumed_from,
            ..
        } => {
            exec(
                tx,
                "INSERT INTO runs (run_id, job, job_file, job_hash, started_at, status, \
                     arguments, resumed_from, pid, target) \
                     VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6, ?7, ?8, ?9)",
                params![
                    run_id,
                    job,
                    job_file,
                    meta.job_hash,
                    at,
                    meta.arguments.to_string(),
                    resumed_from,
                    i64::from(std::process::id()),
                    meta.target.stored(),
                ],
            )
            .map_err(sql("record the run"))?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO steps (run_id, step_id, position, step_type, resource, \
                         step_hash, depends_on, expected) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(sql("record the steps"))?;
            for (position, step) in steps.iter().enumerate() {
                insert
                    .execute(params![
                        run_id,
                        step.id,
                        position as i64,
                        step.step_type,
                        stored_label(&step.resource),
                        meta.step_hashes.get(&step.id),
                        serde_json::to_string(&step.depends_on).unwrap_or_default(),
                        step.expected
                            .as_ref()
                            .and_then(|e| serde_json::to_string(e).ok()),
                    ])
                    .map_err(sql("record the steps"))?;
            }
            drop(insert);
            // The lock was taken before the engine chose the run id: name it now.
            exec(
                tx,
                "UPDATE locks SET run_id = ?1 WHERE job = ?2 AND pid = ?3 AND run_id IS NULL",
                params![run_id, job, i64::from(std::process::id())],
            )
            .map_err(sql("name the run in its lock"))?;
        }
        RunEventKind::AttemptStarted { step, attempt } => {
            ensure_step(tx, &run_id, step).map_err(sql("record an attempt"))?;
            exec(
                tx,
                "INSERT INTO attempts (run_id, step_id, number, started_at, triggers, reads) \
                     VALUES (?1, ?2, ?3, ?4, 0, 0) \
                     ON CONFLICT (run_id, step_id, number) \
                     DO UPDATE SET started_at = excluded.started_at",
                params![run_id, step, i64::from(*attempt), at],
            )
            .map_err(sql("record an attempt"))?;
            exec(
                tx,
                "UPDATE steps SET started_at = COALESCE(started_at, ?3), attempts = ?4 \
                     WHERE run_id = ?1 AND step_id = ?2",
                params![run_id, step, at, i64::from(*attempt)],
            )
            .map_err(sql("record an attempt"))?;
        }
        RunEventKind::StepProgress {
            step,
            attempt,
            update,
        } => {
            ensure_attempt(tx, &run_id, step, *attempt, &at).map_err(sql("record progress"))?;
            if let Some(remote_id) = &update.remote_id {
                exec(
                    tx,
                    "UPDATE attempts SET remote_id = ?4 \
                         WHERE run_id = ?1 AND step_id = ?2 AND number = ?3",
                    params![run_id, step, i64::from(*attempt), remote_id],
                )
                .map_err(sql("record a remote id"))?;
            }
            if update.triggers > 0 {
                exec(
                    tx,
                    "UPDATE attempts SET triggers = COALESCE(triggers, 0) + ?4 \
                         WHERE run_id = ?1 AND step_id = ?2 AND number = ?3",
                    params![
                        run_id,
                        step,
                        i64::from(*attempt),
                        i64::from(update.triggers)
                    ],
                )
                .map_err(sql("record a trigger"))?;
            }
            if update.reads > 0 {
                exec(
                    tx,
                    "UPDATE attempts SET reads = COALESCE(reads, 0) + ?4 \
                         WHERE run_id = ?1 AND step_id = ?2 AND number = ?3",
                    params![run_id, step, i64::from(*attempt), i64::from(update.reads)],
                )
                .map_err(sql("record status reads"))?;
            }
            if let Some(resource) = &update.resource {
                exec(
                    tx,
                    "UPDATE steps SET resource_ref = ?3 WHERE run_id = ?1 AND step_id = ?2",
                    params![
                        run_id,
                        step,
                        serde_json::to_string(resource).unwrap_or_default()
                    ],
                )
                .map_err(sql("record a resource"))?;
            }
            if update.handle.is_some() || update.remote_status.is_some() || update.percent.is_some()
            {
                let handle = update
                    .handle
                    .as_ref()
                    .and_then(|h| serde_json::to_string(h).ok());
                // Fields missing from this update keep their last known value.
                exec(
                    tx,
                    "INSERT INTO remote_handles (run_id, step_id, attempt, handle, \
                         remote_status, percent, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                         ON CONFLICT (run_id, step_id, attempt) DO UPDATE SET \
                         handle = COALESCE(excluded.handle, handle), \
                         remote_status = COALESCE(excluded.remote_status, remote_status), \
                         percent = COALESCE(excluded.percent, percent), \
                         updated_at = excluded.updated_at",
                    params![
                        run_id,
                        step,
                        i64::from(*attempt),
                        handle,
                        update.remote_status,
                        update.percent.map(i64::from),
                        at
                    ],
                )
                .map_err(sql("record a remote handle"))?;
            }
        }
        RunEventKind::AttemptFinished {
            step,
            attempt,
            status,
            error,
            remote_id,
            retry_in,
        } => {
            ensure_attempt(tx, &run_id, step, *attempt, &at)
                .map_err(sql("record an attempt's end"))?;
            exec(
                tx,
                "UPDATE attempts SET status = ?4, finished_at = ?5, error = ?6, \
                     remote_id = COALESCE(?7, remote_id), retry_in_secs = ?8 \
                     WHERE run_id = ?1 AND step_id = ?2 AND number = ?3",
                params![
                    run_id,
                    step,
                    i64::from(*attempt),
                    status.as_str(),
                    at,
                    error,
                    remote_id,
                    retry_in.map(|d| d.as_secs_f64()),
                ],
            )
            .map_err(sql("record an attempt's end"))?;
        }
        RunEventKind::StepFinished {
            step,
            status,
            reason,
            attempts,
            adopted,
            overran,
            ..
        } => {
            ensure_step(tx, &run_id, step).map_err(sql("record a step's end"))?;
            exec(
                tx,
                "UPDATE steps SET status = ?3, reason = ?4, attempts = ?5, adopted = ?6, \
                     finished_at = ?7, overran = ?8 WHERE run_id = ?1 AND step_id = ?2",
                params![
                    run_id,
                    step,
                    status.as_str(),
                    reason,
                    i64::from(*attempts),
                    *adopted,
                    at,
                    *overran
                ],
            )
            .map_err(sql("record a step's end"))?;
        }
        RunEventKind::StepOverran { step, .. } => {
            // Kept at once: a run killed after the flag still shows it.
            exec(
                tx,
                "UPDATE steps SET overran = 1 WHERE run_id = ?1 AND step_id = ?2",
                params![run_id, step],
            )
            .map_err(sql("record an overrun"))?;
        }
        RunEventKind::Stopping { reason } => {
            exec(
                tx,
                "UPDATE runs SET stop_reason = COALESCE(stop_reason, ?2) WHERE run_id = ?1",
                params![run_id, reason],
            )
            .map_err(sql("record a stop"))?;
        }
        RunEventKind::RunFinished { status, .. } => {
            exec(
                tx,
                "UPDATE runs SET status = ?2, finished_at = ?3 WHERE run_id = ?1",
                params![run_id, status.as_str(), at],
            )
            .map_err(sql("record the run's end"))?;
        }
    }
    Ok(())
}

/// Runs a statement through the connection's statement cache: events repeat the same few
/// statements thousands of times.
fn exec(
    tx: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql)?.execute(params)
}

/// Adds a step row the `RunStarted` event did not list (defensive: the engine lists every
/// selected step, but a row must exist before attempts can refer to it).
fn ensure_step(tx: &rusqlite::Transaction<'_>, run_id: &str, step: &str) -> rusqlite::Result<()> {
    let exists = tx
        .prepare_cached("SELECT 1 FROM steps WHERE run_id = ?1 AND step_id = ?2")?
        .query_row(params![run_id, step], |_| Ok(()))
        .optional()?
        .is_some();
    if !exists {
        exec(
            tx,
            "INSERT INTO steps (run_id, step_id, position, step_type, resource) \
             VALUES (?1, ?2, \
             (SELECT COALESCE(MAX(position), -1) + 1 FROM steps WHERE run_id = ?1), \
             '', '')",
            params![run_id, step],
        )?;
    }
    Ok(())
}

/// Makes sure the attempt row exists before progress or an end refers to it.
fn ensure_attempt(
    tx: &rusqlite::Transaction<'_>,
    run_id: &str,
    step: &str,
    attempt: u32,
    at: &str,
) -> rusqlite::Result<()> {
    ensure_step(tx, run_id, step)?;
    exec(
        tx,
        "INSERT OR IGNORE INTO attempts (run_id, step_id, number, started_at) \
         VALUES (?1, ?2, ?3, ?4)",
        params![run_id, step, i64::from(attempt), at],
    )?;
    Ok(())
}

/// What the store keeps of a resource label. A label that is a URL (`sas_flow`, `webhook`)
/// keeps only its origin: the rest can be a credential that `redact_url` does not know about
/// (a Teams or Slack incoming webhook's secret is its path, not a query parameter).
fn stored_label(label: &str) -> String {
    match url::Url::parse(label) {
        Ok(url) if url.has_host() => format!("{}/***", url.origin().ascii_serialization()),
        _ => label.to_string(),
    }
}

/// Counts of final statuses in report order, all six present.
pub(super) fn zero_counts() -> indexmap::IndexMap<String, u32> {
    StepStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), 0))
        .collect()
}

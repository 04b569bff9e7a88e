//! Reading the history back: run lists, one run's details, past durations.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use rusqlite::{OptionalExtension, params};

use super::history::{AttemptDetails, RemoteState, RunDetails, RunSummary, StepDetails};
use super::recorder::zero_counts;
use super::{RunTarget, Store, StoreError, parse_ts};
use crate::event::{RemoteHandle, Usual};
use crate::job::model::StepId;

/// The raw `runs` row.
struct RunRow {
    run_id: String,
    job: String,
    job_file: String,
    job_hash: String,
    status: String,
    started_at: String,
    finished_at: Option<String>,
    resumed_from: Option<String>,
    stop_reason: Option<String>,
    arguments: String,
    target: Option<String>,
}

impl RunRow {
    fn arguments(&self) -> serde_json::Value {
        serde_json::from_str(&self.arguments).unwrap_or(serde_json::Value::Null)
    }

    fn target(&self) -> RunTarget {
        RunTarget::from_stored(self.target.as_deref(), &self.arguments())
    }
}

const RUN_COLUMNS: &str = "run_id, job, job_file, job_hash, status, started_at, finished_at, \
                           resumed_from, stop_reason, arguments, target";

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        run_id: r.get(0)?,
        job: r.get(1)?,
        job_file: r.get(2)?,
        job_hash: r.get(3)?,
        status: r.get(4)?,
        started_at: r.get(5)?,
        finished_at: r.get(6)?,
        resumed_from: r.get(7)?,
        stop_reason: r.get(8)?,
        arguments: r.get(9)?,
        target: r.get(10)?,
    })
}

fn secs_between(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> Option<f64> {
    match (start, end) {
        (Some(s), Some(e)) => Some((e - s).num_milliseconds().max(0) as f64 / 1000.0),
        _ => None,
    }
}

impl Store {
    /// The latest runs first, of one job or of all.
    pub fn history(&self, job: Option<&str>, limit: u32) -> Result<Vec<RunSummary>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE (?1 IS NULL OR job = ?1) \
                 ORDER BY started_at DESC, rowid DESC LIMIT ?2"
            ))
            .map_err(self.sql("list runs"))?;
        let rows = stmt
            .query_map(params![job, i64::from(limit)], run_row)
            .map_err(self.sql("list runs"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.sql("list runs"))?;
        rows.into_iter().map(|row| self.summary(row)).collect()
    }

    /// The latest run of `job` (of any job when `None`).
    pub fn last_run(&self, job: Option<&str>) -> Result<Option<RunSummary>, StoreError> {
        Ok(self.history(job, 1)?.into_iter().next())
    }

    /// The run id `RUN_ID|last` names (`last` = the latest run of `job`, or of any job).
    pub(crate) fn resolve_run_id(
        &self,
        run: &str,
        job: Option<&str>,
    ) -> Result<String, StoreError> {
        if run == "last" {
            return self
                .last_run(job)?
                .map(|r| r.run_id)
                .ok_or_else(|| StoreError::NoRuns(job.map(str::to_string)));
        }
        let found = self
            .conn
            .query_row("SELECT run_id FROM runs WHERE run_id = ?1", [run], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .map_err(self.sql("find a run"))?;
        found.ok_or_else(|| StoreError::RunNotFound(run.to_string()))
    }

    /// Everything stored about one run (`RUN_ID` or `last`).
    pub fn load_run(&self, run: &str) -> Result<RunDetails, StoreError> {
        let run_id = self.resolve_run_id(run, None)?;
        let row = self
            .conn
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1"),
                [&run_id],
                run_row,
            )
            .map_err(self.sql("read a run"))?;
        let attempts = self.attempts_of(&run_id)?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT step_id, step_type, status, reason, started_at, finished_at, adopted, \
                 resource_ref, resource, step_hash, depends_on, expected, overran FROM steps \
                 WHERE run_id = ?1 ORDER BY position",
            )
            .map_err(self.sql("read steps"))?;
        let raw = stmt
            .query_map([&run_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, bool>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, Option<String>>(9)?,
                    r.get::<_, String>(10)?,
                    r.get::<_, Option<String>>(11)?,
                    r.get::<_, bool>(12)?,
                ))
            })
            .map_err(self.sql("read steps"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.sql("read steps"))?;
        let mut attempts = attempts;
        let mut steps = Vec::with_capacity(raw.len());
        let mut counts = zero_counts();
        for (
            id,
            step_type,
            status,
            reason,
            started,
            finished,
            adopted,
            rref,
            label,
            hash,
            deps,
            expected,
            overran,
        ) in raw
        {
            let atts = attempts.remove(&id).unwrap_or_default();
            let status = match status {
                Some(s) => s,
                None if atts.iter().any(|a| a.finished_at.is_none()) => "running".into(),
                None => "pending".into(),
            };
            if let Some(n) = counts.get_mut(&status) {
                *n += 1;
            }
            let error = if matches!(status.as_str(), "failed" | "timed_out") {
                atts.last().and_then(|a| a.error.clone())
            } else {
                None
            };
            let resource = match rref {
                Some(json) => {
                    Some(
                        serde_json::from_str(&json).map_err(|source| StoreError::Decode {
                            what: format!("resource of step `{id}`"),
                            source,
                        })?,
                    )
                }
                None => None,
            };
            let started_at = started.as_deref().and_then(parse_ts);
            let finished_at = finished.as_deref().and_then(parse_ts);
            steps.push(StepDetails {
                id,
                step_type,
                status,
                reason,
                started_at,
                finished_at,
                duration_secs: secs_between(started_at, finished_at),
                resource,
                adopted,
                attempts: atts,
                error,
                resource_label: label,
                step_hash: hash,
                depends_on: serde_json::from_str(&deps).unwrap_or_default(),
                // Written by this program; an unreadable one is left out, not fatal.
                expected: expected.and_then(|e| serde_json::from_str(&e).ok()),
                overran,
            });
        }
        let status = self.effective_status(&row)?;
        let started_at = parse_ts(&row.started_at).unwrap_or_default();
        let finished_at = row.finished_at.as_deref().and_then(parse_ts);
        let target = row.target();
        let arguments = row.arguments();
        Ok(RunDetails {
            run_id: row.run_id,
            job: row.job,
            job_file: row.job_file,
            job_hash: row.job_hash,
            status,
            started_at,
            finished_at,
            duration_secs: secs_between(Some(started_at), finished_at),
            counts,
            resumed_from: row.resumed_from,
            stop_reason: row.stop_reason,
            arguments,
            target,
            steps,
        })
    }

    /// Median duration of each step's successful attempts over the job's last `runs` runs of
    /// `target`: the scheduler's priority when history exists. Runs of another target (the
    /// simulator's seconds are no guide to a tenant's hours) and of an unknown one are left
    /// out.
    pub fn median_durations(
        &self,
        job: &str,
        target: &RunTarget,
        runs: u32,
    ) -> Result<HashMap<StepId, Duration>, StoreError> {
        let samples = self.duration_samples(
            "SELECT a.step_id, a.started_at, a.finished_at FROM attempts a \
             JOIN (SELECT run_id FROM runs WHERE job = ?1 AND target = ?3 \
                   ORDER BY started_at DESC LIMIT ?2) r ON r.run_id = a.run_id \
             JOIN steps s ON s.run_id = a.run_id AND s.step_id = a.step_id \
             WHERE a.status = 'succeeded' AND a.finished_at IS NOT NULL AND s.adopted = 0",
            (job, target, runs),
            "read past durations",
        )?;
        Ok(samples
            .into_iter()
            .map(|(step, ms)| (step, Duration::from_millis(median_ms(ms) as u64)))
            .collect())
    }

    /// Milliseconds per step from `sql`, which selects `(step_id, started_at, finished_at)`
    /// with `?1` the job, `?2` the number of latest runs and `?3` the stored target.
    fn duration_samples(
        &self,
        sql: &str,
        (job, target, runs): (&str, &RunTarget, u32),
        what: &str,
    ) -> Result<HashMap<StepId, Vec<i64>>, StoreError> {
        let mut stmt = self.conn.prepare(sql).map_err(self.sql(what))?;
        let rows = stmt
            .query_map(params![job, i64::from(runs), target.stored()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(self.sql(what))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.sql(what))?;
        let mut samples: HashMap<StepId, Vec<i64>> = HashMap::new();
        for (step, start, end) in rows {
            if let (Some(s), Some(e)) = (parse_ts(&start), parse_ts(&end)) {
                samples
                    .entry(step)
                    .or_default()
                    .push((e - s).num_milliseconds().max(0));
            }
        }
        Ok(samples)
    }

    /// Deletes the runs of `job` beyond its `keep` latest (with their steps, attempts and
    /// handles); returns how many runs went. Keeps the history from growing without bound.
    pub fn prune(&mut self, job: &str, keep: u32) -> Result<usize, StoreError> {
        let path = self.path.clone();
        let sql = |e| super::schema::classify(e, &path, "prune old runs");
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql)?;
        let old: Vec<String> = tx
            .prepare(
                "SELECT run_id FROM runs WHERE job = ?1 \
                 ORDER BY started_at DESC, rowid DESC LIMIT -1 OFFSET ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_map(params![job, i64::from(keep)], |r| r.get(0))?
                    .collect()
            })
            .map_err(sql)?;
        for run_id in &old {
            // Children first, whether or not foreign-key cascades are enforced.
            for table in ["remote_handles", "attempts", "steps", "runs"] {
                tx.execute(&format!("DELETE FROM {table} WHERE run_id = ?1"), [run_id])
                    .map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)?;
        Ok(old.len())
    }

    /// The usual duration of each step (the median of its successful, not adopted runs, from
    /// its first attempt to its end, retries included) over the job's last `runs` runs of
    /// `target`, and how many runs that is: what `expected_duration: auto` learns from.
    /// Empty for an unknown target.
    pub fn usual_step_durations(
        &self,
        job: &str,
        target: &RunTarget,
        runs: u32,
    ) -> Result<HashMap<StepId, Usual>, StoreError> {
        if *target == RunTarget::Unknown {
            return Ok(HashMap::new());
        }
        let samples = self.duration_samples(
            "SELECT s.step_id, s.started_at, s.finished_at FROM steps s \
             JOIN (SELECT run_id FROM runs WHERE job = ?1 AND target = ?3 \
                   ORDER BY started_at DESC LIMIT ?2) r ON r.run_id = s.run_id \
             WHERE s.status = 'succeeded' AND s.adopted = 0 \
               AND s.started_at IS NOT NULL AND s.finished_at IS NOT NULL",
            (job, target, runs),
            "read past step durations",
        )?;
        Ok(samples
            .into_iter()
            .map(|(step, ms)| {
                let runs = ms.len() as u32;
                let median = Duration::from_millis(median_ms(ms) as u64);
                (step, Usual { median, runs })
            })
            .collect())
    }

    /// [`Store::median_durations`] over the job's last 20 runs of `target`, in seconds: the
    /// engine's `EngineOptions::priority_hint`.
    pub fn priority_hint(
        &self,
        job: &str,
        target: &RunTarget,
    ) -> Result<HashMap<StepId, f64>, StoreError> {
        if *target == RunTarget::Unknown {
            return Ok(HashMap::new());
        }
        Ok(self
            .median_durations(job, target, 20)?
            .into_iter()
            .map(|(id, d)| (id, d.as_secs_f64()))
            .collect())
    }

    fn summary(&self, row: RunRow) -> Result<RunSummary, StoreError> {
        let steps: u32 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM steps WHERE run_id = ?1")
            .and_then(|mut stmt| stmt.query_row([&row.run_id], |r| r.get(0)))
            .map_err(self.sql("count steps"))?;
        let mut counts = zero_counts();
        self.fill_counts(&row.run_id, &mut counts)?;
        let status = self.effective_status(&row)?;
        let started_at = parse_ts(&row.started_at).unwrap_or_default();
        let finished_at = row.finished_at.as_deref().and_then(parse_ts);
        let target = row.target();
        Ok(RunSummary {
            run_id: row.run_id,
            job: row.job,
            job_file: row.job_file,
            status,
            started_at,
            finished_at,
            duration_secs: secs_between(Some(started_at), finished_at),
            counts,
            steps,
            resumed_from: row.resumed_from,
            target,
        })
    }

    fn fill_counts(
        &self,
        run_id: &str,
        counts: &mut IndexMap<String, u32>,
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT status, COUNT(*) FROM steps WHERE run_id = ?1 AND status IS NOT NULL \
                 GROUP BY status",
            )
            .map_err(self.sql("count steps"))?;
        let rows = stmt
            .query_map([run_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?))
            })
            .map_err(self.sql("count steps"))?;
        for item in rows {
            let (status, n) = item.map_err(self.sql("count steps"))?;
            if let Some(c) = counts.get_mut(&status) {
                *c = n;
            }
        }
        Ok(())
    }

    /// `running` only while a live process holds the job's lock for this run.
    fn effective_status(&self, row: &RunRow) -> Result<String, StoreError> {
        if row.status != "running" {
            return Ok(row.status.clone());
        }
        if self.run_is_live(&row.job, &row.run_id)? {
            Ok("running".into())
        } else {
            Ok("incomplete".into())
        }
    }

    /// Attempts of every step of a run, with their remote state, by step.
    pub(super) fn attempts_of(
        &self,
        run_id: &str,
    ) -> Result<HashMap<StepId, Vec<AttemptDetails>>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT a.step_id, a.number, a.status, a.started_at, a.finished_at, a.remote_id, \
                 a.error, h.handle, h.remote_status, h.percent, a.triggers, a.reads FROM attempts a \
                 LEFT JOIN remote_handles h ON h.run_id = a.run_id AND h.step_id = a.step_id \
                 AND h.attempt = a.number WHERE a.run_id = ?1 ORDER BY a.step_id, a.number",
            )
            .map_err(self.sql("read attempts"))?;
        let rows = stmt
            .query_map([run_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                    r.get::<_, Option<u8>>(9)?,
                    r.get::<_, Option<u32>>(10)?,
                    r.get::<_, Option<u32>>(11)?,
                ))
            })
            .map_err(self.sql("read attempts"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.sql("read attempts"))?;
        let mut by_step: HashMap<StepId, Vec<AttemptDetails>> = HashMap::new();
        for (
            step,
            number,
            status,
            started,
            finished,
            remote_id,
            error,
            handle,
            rstatus,
            pct,
            triggers,
            reads,
        ) in rows
        {
            let handle: Option<RemoteHandle> = match handle {
                Some(json) => {
                    Some(
                        serde_json::from_str(&json).map_err(|source| StoreError::Decode {
                            what: format!("remote handle of step `{step}` attempt {number}"),
                            source,
                        })?,
                    )
                }
                None => None,
            };
            let remote =
                (handle.is_some() || rstatus.is_some() || pct.is_some()).then_some(RemoteState {
                    handle,
                    status: rstatus,
                    percent: pct,
                });
            by_step.entry(step).or_default().push(AttemptDetails {
                number,
                status: status.unwrap_or_else(|| "running".into()),
                started_at: parse_ts(&started).unwrap_or_default(),
                finished_at: finished.as_deref().and_then(parse_ts),
                remote_id,
                error,
                triggers,
                reads,
                remote,
            });
        }
        Ok(by_step)
    }
}

/// The median of a non-empty list of milliseconds (the mean of the middle two when even).
fn median_ms(mut ms: Vec<i64>) -> i64 {
    ms.sort_unstable();
    let mid = ms.len() / 2;
    match ms.len() {
        0 => 0,
        n if n % 2 == 0 => (ms[mid - 1] + ms[mid]) / 2,
        _ => ms[mid],
    }
}

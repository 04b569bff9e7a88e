//! One run per job and store at a time: a row in the `locks` table.
//!
//! A file lock (`flock`) would not survive network shares and says nothing about who holds
//! it; a row does both. The holder's pid, host and a heartbeat (refreshed by a background
//! thread with its own connection) let the next run tell a live holder from a dead one: a
//! lock is stale when its heartbeat is older than [`LockOptions::stale_after`], or when its
//! holder ran on this host and that pid is gone. A stale lock is taken over.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use super::{Store, StoreError, connect, schema::classify};

/// Who holds a job's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockHolder {
    pub job: String,
    /// `None` while the run is starting (the engine has not named it yet).
    pub run_id: Option<String>,
    pub pid: u32,
    pub host: String,
    /// RFC 3339.
    pub started_at: String,
}

/// How to take a lock.
#[derive(Debug, Clone)]
pub struct LockOptions {
    /// Wait this long for the holder to finish (`--wait-lock`); `None` refuses at once.
    pub wait: Option<Duration>,
    /// Pause between two tries while waiting.
    pub poll: Duration,
    /// How often the holder refreshes its heartbeat.
    pub heartbeat: Duration,
    /// A heartbeat older than this marks the holder dead (a hung or frozen machine).
    pub stale_after: Duration,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            wait: None,
            poll: Duration::from_millis(500),
            heartbeat: Duration::from_secs(5),
            stale_after: Duration::from_secs(60),
        }
    }
}

impl LockOptions {
    /// The options for `--wait-lock DURATION` (humantime, e.g. `10m`); `None` refuses at once.
    pub fn with_wait_lock(wait_lock: Option<&str>) -> Result<LockOptions, StoreError> {
        let wait = match wait_lock {
            Some(text) => Some(humantime::parse_duration(text.trim()).map_err(|e| {
                StoreError::BadWaitLock {
                    value: text.to_string(),
                    message: e.to_string(),
                }
            })?),
            None => None,
        };
        Ok(LockOptions {
            wait,
            ..LockOptions::default()
        })
    }
}

/// A held lock. Released when dropped (or by [`JobLock::release`]).
#[derive(Debug)]
pub struct JobLock {
    job: String,
    /// Tells the heartbeat thread to delete the row and stop.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<Result<(), StoreError>>>,
    /// Set when the lock replaced a stale one.
    took_over: Option<LockHolder>,
}

impl JobLock {
    /// The job this lock is for.
    pub fn job(&self) -> &str {
        &self.job
    }

    /// The stale holder this lock replaced, if any (worth a warning: its run died).
    pub fn took_over(&self) -> Option<&LockHolder> {
        self.took_over.as_ref()
    }

    /// Releases the lock now and reports a failure to delete the row.
    pub fn release(mut self) -> Result<(), StoreError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), StoreError> {
        // Dropping the sender wakes the thread, which deletes the row.
        self.stop.take();
        match self.thread.take() {
            Some(thread) => thread.join().unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

impl Drop for JobLock {
    fn drop(&mut self) {
        if let Err(err) = self.shutdown() {
            tracing::warn!(job = %self.job, "cannot release the job lock: {err}");
        }
    }
}

impl Store {
    /// Takes the lock of `job`. When another live run holds it, refuses with
    /// [`StoreError::LockHeld`], or with `opts.wait` polls until it is free (calling
    /// `on_wait` once with the holder, e.g. to log who is waited for) and gives up with
    /// [`StoreError::LockTimeout`]. Blocking: call it before the async run starts or in
    /// `spawn_blocking`.
    pub fn lock_job(
        &mut self,
        job: &str,
        run_id: Option<&str>,
        opts: &LockOptions,
        on_wait: &mut dyn FnMut(&LockHolder),
    ) -> Result<JobLock, StoreError> {
        let token = uuid::Uuid::new_v4().to_string();
        let begun = Instant::now();
        let mut told = false;
        loop {
            match self.try_lock(job, run_id, &token, opts.stale_after)? {
                Ok(took_over) => {
                    let (stop, wake) = mpsc::channel();
                    let path = self.path.clone();
                    let (job_c, token_c, every) = (job.to_string(), token.clone(), opts.heartbeat);
                    let thread = std::thread::Builder::new()
                        .name("pbibatch-lock".into())
                        .spawn(move || heartbeat(path, job_c, token_c, every, wake))
                        .map_err(|source| StoreError::Thread {
                            what: "job lock heartbeat",
                            source,
                        })?;
                    return Ok(JobLock {
                        job: job.to_string(),
                        stop: Some(stop),
                        thread: Some(thread),
                        took_over,
                    });
                }
                Err(holder) => {
                    let Some(wait) = opts.wait else {
                        return Err(StoreError::LockHeld(holder));
                    };
                    let waited = begun.elapsed();
                    if waited >= wait {
                        return Err(StoreError::LockTimeout { holder, waited });
                    }
                    if !told {
                        on_wait(&holder);
                        told = true;
                    }
                    std::thread::sleep(opts.poll.min(wait - waited));
                }
            }
        }
    }

    /// One try: `Ok(Ok(took_over))` when the lock is now ours, `Ok(Err(holder))` when a live
    /// run holds it.
    #[allow(clippy::type_complexity)]
    fn try_lock(
        &mut self,
        job: &str,
        run_id: Option<&str>,
        token: &str,
        stale_after: Duration,
    ) -> Result<Result<Option<LockHolder>, LockHolder>, StoreError> {
        let path = self.path.clone();
        let sql = |e| classify(e, &path, "take the job lock");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let current = read_holder(&tx, job).map_err(sql)?;
        let mut took_over = None;
        if let Some((holder, heartbeat_ms)) = current {
            if !is_stale(&holder, heartbeat_ms, stale_after) {
                return Ok(Err(holder));
            }
            tracing::warn!(
                job,
                run = holder.run_id.as_deref().unwrap_or("?"),
                pid = holder.pid,
                "taking over the stale lock of a run that is gone"
            );
            took_over = Some(holder);
        }
        tx.execute(
            "INSERT OR REPLACE INTO locks \
             (job, token, run_id, pid, host, started_at, heartbeat_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                job,
                token,
                run_id,
                i64::from(std::process::id()),
                host_name(),
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                now_ms()
            ],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(Ok(took_over))
    }

    /// True while a live process holds `job`'s lock for `run_id`.
    pub(super) fn run_is_live(&self, job: &str, run_id: &str) -> Result<bool, StoreError> {
        let current = read_holder(&self.conn, job).map_err(self.sql("read the job lock"))?;
        Ok(match current {
            Some((holder, heartbeat_ms)) => {
                holder.run_id.as_deref() == Some(run_id)
                    && !is_stale(&holder, heartbeat_ms, LockOptions::default().stale_after)
            }
            None => false,
        })
    }

    /// The current holder of `job`'s lock, live or stale.
    pub fn lock_holder(&self, job: &str) -> Result<Option<LockHolder>, StoreError> {
        Ok(read_holder(&self.conn, job)
            .map_err(self.sql("read the job lock"))?
            .map(|(h, _)| h))
    }
}

fn read_holder(
    conn: &rusqlite::Connection,
    job: &str,
) -> rusqlite::Result<Option<(LockHolder, i64)>> {
    conn.query_row(
        "SELECT job, run_id, pid, host, started_at, heartbeat_ms FROM locks WHERE job = ?1",
        [job],
        |r| {
            Ok((
                LockHolder {
                    job: r.get(0)?,
                    run_id: r.get(1)?,
                    pid: r.get(2)?,
                    host: r.get(3)?,
                    started_at: r.get(4)?,
                },
                r.get(5)?,
            ))
        },
    )
    .optional()
}

/// A holder is gone when its heartbeat stopped, or when it ran here and its pid is dead.
fn is_stale(holder: &LockHolder, heartbeat_ms: i64, stale_after: Duration) -> bool {
    let age = now_ms().saturating_sub(heartbeat_ms);
    if age > stale_after.as_millis() as i64 {
        return true;
    }
    holder.host == host_name() && !pid_alive(holder.pid)
}

/// Refreshes the heartbeat until told to stop, then deletes the row (only if still ours: a
/// run that lost its lock to a takeover must not delete the new holder's row).
fn heartbeat(
    path: PathBuf,
    job: String,
    token: String,
    every: Duration,
    wake: mpsc::Receiver<()>,
) -> Result<(), StoreError> {
    let conn = connect(&path)?;
    // Wakes every `every`; a message or a dropped sender means release.
    while let Err(mpsc::RecvTimeoutError::Timeout) = wake.recv_timeout(every) {
        let updated = conn.execute(
            "UPDATE locks SET heartbeat_ms = ?3 WHERE job = ?1 AND token = ?2",
            params![job, token, now_ms()],
        );
        match updated {
            Ok(0) => {
                tracing::warn!(job, "the job lock was taken over by another run");
                return Ok(());
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(job, "cannot refresh the job lock: {err}"),
        }
    }
    conn.execute(
        "DELETE FROM locks WHERE job = ?1 AND token = ?2",
        params![job, token],
    )
    .map_err(|e| classify(e, &path, "release the job lock"))?;
    Ok(())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// This machine's name, to know when a holder's pid can be checked here.
pub(super) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether a process with this pid runs on this machine (a zombie counts as dead).
#[cfg(target_os = "linux")]
pub(super) fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3, after the parenthesised command name, is the state.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Elsewhere a pid cannot be checked without platform calls: only the heartbeat decides.
#[cfg(not(target_os = "linux"))]
pub(super) fn pid_alive(_pid: u32) -> bool {
    true
}

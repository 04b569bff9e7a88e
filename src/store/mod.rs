//! Run history and resume: an embedded SQLite store fed by the [`RunEvent`] stream.
//!
//! The store is one more consumer of the engine's events. [`StoreRecorder`] commits each event
//! in its own small transaction as it arrives, so a `kill -9` loses at most the event in
//! flight. From what it wrote:
//! - [`Store::history`], [`Store::load_run`] and [`Store::last_run`] answer `pbibatch history`
//!   and `pbibatch show` (the same content as the JSON run report);
//! - [`Store::resume_state`] says, for `run --resume`, which steps stay succeeded, which run
//!   again and which re-attach to remote work that was in flight when the previous run died;
//! - [`Store::lock_job`] keeps two runs of one job from overlapping (a SQLite row with a pid
//!   and a heartbeat, so it works for any path, network shares included);
//! - [`Store::median_durations`] gives the scheduler past durations for its priorities, read
//!   only from runs of the same [`RunTarget`] (a resume never crosses targets either);
//! - [`RunSession`] does all of it for `pbibatch run`, in the right order.
//!
//! No secret is ever stored: events carry none (URLs are redacted before they become
//! resource labels, `Secret` serialises as `***`), and the store adds nothing but ids,
//! statuses and times.
//!
//! [`RunEvent`]: crate::event::RunEvent

mod history;
mod lock;
mod query;
mod recorder;
mod render;
mod report;
mod resume;
mod schema;
mod session;
mod target;
mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

pub use history::{AttemptDetails, RemoteState, RunDetails, RunSummary, StepDetails};
pub use lock::{JobLock, LockHolder, LockOptions};
pub use recorder::{RunMeta, StoreRecorder, step_hash, step_hashes};
pub(crate) use render::{render_history, render_run};
pub use resume::{Resume, StepResume};
pub use schema::{APPLICATION_ID, SCHEMA_VERSION};
pub use session::{RunSession, SessionOptions};
pub use target::{Endpoints, RunTarget, ServiceTarget};
pub use writer::RecorderThread;

/// The default store, relative to the working directory.
pub(crate) const DEFAULT_PATH: &str = ".pbibatch/state.db";

/// The `--state` / `PBIBATCH_STATE` value that disables the store.
pub(crate) const NO_STORE: &str = "none";

/// How long a statement waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A failure of the state store. Messages read after "failed to ...".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the state store's folder `{path}`: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the state store `{path}`: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "`{path}` is not a SQLite database, so it cannot be a pbibatch state store; \
         move it away or pass another --state"
    )]
    NotADatabase { path: PathBuf },
    #[error(
        "the state store `{path}` is damaged ({detail}); move it away to start a new history \
         or pass another --state"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "`{path}` is a SQLite database of another program, not a pbibatch state store \
         ({detail}); pass another --state"
    )]
    Foreign { path: PathBuf, detail: String },
    #[error(
        "the state store `{path}` was written by a newer pbibatch (schema version {found}, \
         this one knows up to {supported}); upgrade pbibatch or pass another --state"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("state store: cannot {context}: {source}")]
    Sql {
        context: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "--resume needs a state store, but `--state none` (or PBIBATCH_STATE=none) disables it"
    )]
    ResumeWithoutStore,
    #[error("no run `{0}` in the state store")]
    RunNotFound(String),
    #[error("no run{} in the state store", of_job(.0.as_deref()))]
    NoRuns(Option<String>),
    /// `--resume` of a run of another target (the simulator, another tenant or endpoints,
    /// or a run recorded before targets were stored).
    #[error("{0}")]
    OtherTarget(String),
    #[error("run `{run_id}` belongs to job `{found}`, not `{expected}`")]
    WrongJob {
        run_id: String,
        found: String,
        expected: String,
    },
    #[error(
        "the job file changed since run `{run_id}` (hash {old} -> {new}); pass --force to \
         resume anyway, keeping only the steps whose definition did not change"
    )]
    JobChanged {
        run_id: String,
        old: String,
        new: String,
    },
    #[error(
        "job `{}` is already running: run `{}` (pid {} on {}, started {}); wait for it or \
         pass --wait-lock DURATION", .0.job, .0.run_id.as_deref().unwrap_or("starting"),
        .0.pid, .0.host, .0.started_at
    )]
    LockHeld(LockHolder),
    #[error(
        "job `{}` is still running after waiting {}: run `{}` (pid {} on {}, started {})",
        .holder.job, humantime::format_duration(*.waited),
        .holder.run_id.as_deref().unwrap_or("starting"), .holder.pid, .holder.host,
        .holder.started_at
    )]
    LockTimeout {
        holder: LockHolder,
        waited: Duration,
    },
    #[error("invalid --wait-lock `{value}`: {message} (use a duration such as `90s` or `10m`)")]
    BadWaitLock { value: String, message: String },
    #[error("cannot start the {what} thread: {source}")]
    Thread {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the stored {what} is unreadable: {source}")]
    Decode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

/// An open state store. One SQLite connection; not shared between threads (the recorder owns
/// one, the lock's heartbeat opens its own).
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating when needed) the store at `path`, with its parent folders, and migrates
    /// it to the current schema. A damaged, non-SQLite or foreign file is a clear error.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        check_header(path)?;
        let mut conn = connect(path)?;
        schema::prepare(&mut conn, path)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Opens the store that `--state` / `PBIBATCH_STATE` names: `None` reads `PBIBATCH_STATE`
    /// and falls back to `.pbibatch/state.db` in the working directory; `"none"` means no store.
    pub fn open_default(state: Option<&str>) -> Result<Option<Store>, StoreError> {
        match resolve_path(state) {
            Some(path) => Store::open(&path).map(Some),
            None => Ok(None),
        }
    }

    /// Opens the store at `path` only when the file exists (read-only commands must not
    /// create an empty history as a side effect).
    pub fn open_existing(path: &Path) -> Result<Option<Store>, StoreError> {
        if path.exists() {
            Store::open(path).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql(&self, context: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        let context = context.to_string();
        move |e| schema::classify(e, &self.path, &context)
    }
}

/// The store path that `--state` / `PBIBATCH_STATE` names, or `None` for no store.
pub(crate) fn resolve_path(state: Option<&str>) -> Option<PathBuf> {
    let from_env = std::env::var("PBIBATCH_STATE").ok();
    let value = state
        .map(str::to_string)
        .or(from_env)
        .filter(|s| !s.is_empty());
    match value {
        Some(v) if v.eq_ignore_ascii_case(NO_STORE) => None,
        Some(v) => Some(PathBuf::from(v)),
        None => Some(PathBuf::from(DEFAULT_PATH)),
    }
}

/// SQLite takes a file shorter than its 100-byte header for an empty database and would write
/// a store over it: refuse any non-empty file that does not start with SQLite's magic string.
fn check_header(path: &Path) -> Result<(), StoreError> {
    use std::io::Read;
    const MAGIC: &[u8; 16] = b"SQLite format 3\0";
    let Ok(mut file) = std::fs::File::open(path) else {
        // Missing (it will be created) or unreadable (opening it reports why).
        return Ok(());
    };
    let mut head = Vec::with_capacity(16);
    let read = file.by_ref().take(16).read_to_end(&mut head);
    match read {
        Ok(0) => Ok(()),
        Ok(_) if head.as_slice() == MAGIC => Ok(()),
        Ok(_) => Err(StoreError::NotADatabase {
            path: path.to_path_buf(),
        }),
        // A directory or an unreadable file: let SQLite say what it finds.
        Err(_) => Ok(()),
    }
}

/// A connection with the settings every user of the store needs.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| schema::classify(e, path, "set the busy timeout"))?;
    Ok(conn)
}

/// ` of job `NAME`` for messages about one job's runs.
fn of_job(job: Option<&str>) -> String {
    job.map(|j| format!(" of job `{j}`")).unwrap_or_default()
}

/// RFC 3339 in UTC with nanoseconds: one width, so text order is time order, and full
/// precision, so durations computed from stored times equal the run report's.
fn ts(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Parses a timestamp written by [`ts`].
fn parse_ts(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

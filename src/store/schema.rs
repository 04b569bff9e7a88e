//! The store's schema and its forward migrations.
//!
//! `MIGRATIONS[i]` takes a store from schema version `i` to `i + 1`; version 0 is an empty
//! file. Migrations only ever move forward and run inside one `BEGIN IMMEDIATE` transaction,
//! so two processes opening an old store at once cannot both migrate it, and a crash in the
//! middle leaves the old version intact.
//!
//! Before touching anything, [`prepare`] makes sure the file is ours: a file that is not SQLite,
//! a damaged one, a SQLite database of another program, or one written by a newer pbibatch each
//! give their own clear [`StoreError`] instead of a panic or a silent rewrite.

use std::path::Path;

use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use super::StoreError;

/// SQLite `application_id` of a pbibatch store ("PBIB"), so `file(1)` and we can recognise it.
pub const APPLICATION_ID: i32 = 0x5042_4942;

/// Version 1: runs, steps and attempts.
const V1: &str = "
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE runs (
    run_id      TEXT PRIMARY KEY,
    job         TEXT NOT NULL,
    job_file    TEXT NOT NULL,
    job_hash    TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL
);
CREATE INDEX runs_by_job ON runs (job, started_at);
CREATE TABLE steps (
    run_id      TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    step_id     TEXT NOT NULL,
    position    INTEGER NOT NULL,
    step_type   TEXT NOT NULL,
    resource    TEXT NOT NULL,
    status      TEXT,
    reason      TEXT,
    started_at  TEXT,
    finished_at TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    adopted     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, step_id)
);
CREATE TABLE attempts (
    run_id      TEXT NOT NULL,
    step_id     TEXT NOT NULL,
    number      INTEGER NOT NULL,
    status      TEXT,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    error       TEXT,
    remote_id   TEXT,
    PRIMARY KEY (run_id, step_id, number),
    FOREIGN KEY (run_id, step_id) REFERENCES steps (run_id, step_id) ON DELETE CASCADE
);
";

/// Version 2: what resume and the lock need. Run arguments and lineage, each step's
/// definition hash, dependencies and resolved resource, the remote handles that let a resumed
/// run re-attach, the stop reason, and the per-job lock.
const V2: &str = "
ALTER TABLE runs ADD COLUMN arguments TEXT NOT NULL DEFAULT '{}';
ALTER TABLE runs ADD COLUMN resumed_from TEXT;
ALTER TABLE runs ADD COLUMN pid INTEGER;
ALTER TABLE runs ADD COLUMN stop_reason TEXT;
ALTER TABLE steps ADD COLUMN step_hash TEXT;
ALTER TABLE steps ADD COLUMN depends_on TEXT NOT NULL DEFAULT '[]';
ALTER TABLE steps ADD COLUMN resource_ref TEXT;
ALTER TABLE attempts ADD COLUMN retry_in_secs REAL;
CREATE TABLE remote_handles (
    run_id        TEXT NOT NULL,
    step_id       TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    handle        TEXT,
    remote_status TEXT,
    percent       INTEGER,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (run_id, step_id, attempt),
    FOREIGN KEY (run_id, step_id, attempt)
        REFERENCES attempts (run_id, step_id, number) ON DELETE CASCADE
);
CREATE TABLE locks (
    job          TEXT PRIMARY KEY,
    token        TEXT NOT NULL,
    run_id       TEXT,
    pid          INTEGER NOT NULL,
    host         TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    heartbeat_ms INTEGER NOT NULL
);
";

/// Version 3: what each run ran against (`RunTarget` as JSON), so a resume or a duration
/// hint never crosses from the simulator to a tenant or between tenants. Runs recorded
/// before are `simulated` when their arguments say `--simulate`, else `unknown` (never
/// resumed, never a duration hint: nothing says which service saw them).
const V3: &str = r#"
ALTER TABLE runs ADD COLUMN target TEXT;
UPDATE runs SET target = '{"kind":"simulated"}'
    WHERE CASE WHEN json_valid(arguments) THEN json_extract(arguments, '$.simulate') END = 1;
UPDATE runs SET target = '{"kind":"unknown"}' WHERE target IS NULL;
CREATE INDEX runs_by_job_target ON runs (job, target, started_at);
"#;

/// Version 4: the triggers each attempt sent (the report's `attempts[].triggers`); NULL for
/// attempts recorded before, where it is not known.
const V4: &str = "
ALTER TABLE attempts ADD COLUMN triggers INTEGER;
";

/// Version 5: the status reads each attempt made (the report's `attempts[].reads`); NULL for
/// attempts recorded before.
const V5: &str = "
ALTER TABLE attempts ADD COLUMN reads INTEGER;
";

/// Version 6: each step's expected duration as resolved when the run started (JSON of
/// `event::Expected`; NULL without one) and whether it ran past it.
const V6: &str = "
ALTER TABLE steps ADD COLUMN expected TEXT;
ALTER TABLE steps ADD COLUMN overran INTEGER NOT NULL DEFAULT 0;
";

/// Forward migrations; `MIGRATIONS[i]` moves version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Checks that `conn` is a pbibatch store (or an empty file) and migrates it to
/// [`SCHEMA_VERSION`].
pub(super) fn prepare(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    // The first read of the header is where a non-SQLite or damaged file shows up.
    let tables = user_tables(conn).map_err(|e| classify(e, path, "read the store"))?;
    let app_id: i32 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(|e| classify(e, path, "read the store"))?;
    if app_id != 0 && app_id != APPLICATION_ID {
        return Err(StoreError::Foreign {
            path: path.to_path_buf(),
            detail: format!("its application id is {app_id:#x}"),
        });
    }
    if !tables.is_empty() && !tables.iter().any(|t| t == "schema_version") {
        return Err(StoreError::Foreign {
            path: path.to_path_buf(),
            detail: format!(
                "it holds tables ({}) but no schema_version table",
                tables.join(", ")
            ),
        });
    }

    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| classify(e, path, "switch the store to WAL"))?;
    // WAL + NORMAL: a commit is in the OS before `COMMIT` returns, so a killed process loses
    // nothing it committed; only a power cut can lose the last few commits.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| classify(e, path, "configure the store"))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(|e| classify(e, path, "configure the store"))?;

    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| classify(e, path, "lock the store for migration"))?;
    let has_version_table = user_tables(&tx)
        .map_err(|e| classify(e, path, "read the store"))?
        .iter()
        .any(|t| t == "schema_version");
    let current: i64 = if has_version_table {
        tx.query_row("SELECT MAX(version) FROM schema_version", [], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .map_err(|e| classify(e, path, "read the schema version"))?
        .unwrap_or(0)
    } else {
        0
    };
    if current > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    if current < SCHEMA_VERSION {
        for (from, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            tx.execute_batch(sql).map_err(|e| {
                classify(
                    e,
                    path,
                    &format!("migrate the store from version {from} to {}", from + 1),
                )
            })?;
        }
        tx.execute("DELETE FROM schema_version", [])
            .and_then(|_| {
                tx.execute(
                    "INSERT INTO schema_version (version) VALUES (?1)",
                    [SCHEMA_VERSION],
                )
            })
            .and_then(|_| tx.pragma_update(None, "application_id", APPLICATION_ID))
            .map_err(|e| classify(e, path, "record the schema version"))?;
    }
    tx.commit()
        .map_err(|e| classify(e, path, "commit the migration"))?;
    Ok(())
}

/// Names of the tables that are not SQLite's own.
fn user_tables(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )?;
    stmt.query_map([], |r| r.get(0))?.collect()
}

/// Turns a SQLite error into a store error that says what is wrong with the file when the
/// file itself is the problem.
pub(super) fn classify(err: rusqlite::Error, path: &Path, context: &str) -> StoreError {
    match err.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => StoreError::NotADatabase {
            path: path.to_path_buf(),
        },
        Some(ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: err.to_string(),
        },
        _ => StoreError::Sql {
            context: context.to_string(),
            source: err,
        },
    }
}

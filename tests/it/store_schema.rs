//! Opening the store: migrations from older versions, and clear errors for files that are
//! not a pbibatch store.

use pbibatch::store::{SCHEMA_VERSION, Store, StoreError};

/// A version-1 store as pbibatch 0.1 wrote it, with one finished run.
fn write_v1(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "
        CREATE TABLE schema_version (version INTEGER NOT NULL);
        INSERT INTO schema_version VALUES (1);
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY, job TEXT NOT NULL, job_file TEXT NOT NULL,
            job_hash TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT,
            status TEXT NOT NULL);
        CREATE INDEX runs_by_job ON runs (job, started_at);
        CREATE TABLE steps (
            run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            step_id TEXT NOT NULL, position INTEGER NOT NULL, step_type TEXT NOT NULL,
            resource TEXT NOT NULL, status TEXT, reason TEXT, started_at TEXT,
            finished_at TEXT, attempts INTEGER NOT NULL DEFAULT 0,
            adopted INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (run_id, step_id));
        CREATE TABLE attempts (
            run_id TEXT NOT NULL, step_id TEXT NOT NULL, number INTEGER NOT NULL,
            status TEXT, started_at TEXT NOT NULL, finished_at TEXT, error TEXT,
            remote_id TEXT, PRIMARY KEY (run_id, step_id, number),
            FOREIGN KEY (run_id, step_id) REFERENCES steps (run_id, step_id) ON DELETE CASCADE);
        INSERT INTO runs VALUES ('old-run', 'order_list', 'jobs/order_list.yaml', 'abc',
            '2025-12-01T02:00:00.000Z', '2025-12-01T02:05:00.000Z', 'succeeded');
        INSERT INTO steps VALUES ('old-run', 'model', 0, 'dataset', 'Data Admin / ORDER_LIST',
            'succeeded', NULL, '2025-12-01T02:00:00.000Z', '2025-12-01T02:05:00.000Z', 1, 0);
        INSERT INTO attempts VALUES ('old-run', 'model', 1, 'succeeded',
            '2025-12-01T02:00:00.000Z', '2025-12-01T02:05:00.000Z', NULL, 'req-old');
        ",
    )
    .unwrap();
}

#[test]
fn store_migrates_a_version_1_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    write_v1(&path);

    let store = Store::open(&path).unwrap();
    let run = store.load_run("old-run").unwrap();
    assert_eq!(run.status, "succeeded");
    assert_eq!(run.duration_secs, Some(300.0));
    assert_eq!(run.arguments, serde_json::json!({}));
    assert_eq!(
        run.steps[0].attempts[0].remote_id.as_deref(),
        Some("req-old")
    );
    drop(store);

    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        tables,
        [
            "attempts",
            "locks",
            "remote_handles",
            "runs",
            "schema_version",
            "steps"
        ]
    );
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");

    // Opening again is a no-op.
    let store = Store::open(&path).unwrap();
    assert_eq!(store.history(None, 10).unwrap().len(), 1);
}

#[test]
fn store_resumes_from_a_migrated_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    write_v1(&path);
    let store = Store::open(&path).unwrap();
    let hashes = [("model".to_string(), "h".to_string())].into();
    let resume = store
        .resume_state("last", "order_list", "abc", false, &hashes)
        .unwrap();
    assert!(matches!(
        resume.steps["model"],
        pbibatch::store::StepResume::Keep { .. }
    ));
}

/// A version-2 store (pbibatch before run targets): the v1 run, plus a `--simulate` run.
fn write_v2(path: &std::path::Path) {
    write_v1(path);
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        r#"
        ALTER TABLE runs ADD COLUMN arguments TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE runs ADD COLUMN resumed_from TEXT;
        ALTER TABLE runs ADD COLUMN pid INTEGER;
        ALTER TABLE runs ADD COLUMN stop_reason TEXT;
        ALTER TABLE steps ADD COLUMN step_hash TEXT;
        ALTER TABLE steps ADD COLUMN depends_on TEXT NOT NULL DEFAULT '[]';
        ALTER TABLE steps ADD COLUMN resource_ref TEXT;
        ALTER TABLE attempts ADD COLUMN retry_in_secs REAL;
        CREATE TABLE remote_handles (
            run_id TEXT NOT NULL, step_id TEXT NOT NULL, attempt INTEGER NOT NULL,
            handle TEXT, remote_status TEXT, percent INTEGER, updated_at TEXT NOT NULL,
            PRIMARY KEY (run_id, step_id, attempt));
        CREATE TABLE locks (
            job TEXT PRIMARY KEY, token TEXT NOT NULL, run_id TEXT, pid INTEGER NOT NULL,
            host TEXT NOT NULL, started_at TEXT NOT NULL, heartbeat_ms INTEGER NOT NULL);
        UPDATE schema_version SET version = 2;
        INSERT INTO runs VALUES ('sim-run', 'order_list', 'jobs/order_list.yaml', 'abc',
            '2025-12-02T02:00:00.000Z', '2025-12-02T02:05:00.000Z', 'failed',
            '{"job":"jobs/order_list.yaml","simulate":true}', NULL, 1, NULL);
        INSERT INTO steps VALUES ('sim-run', 'model', 0, 'dataset', 'Data Admin / ORDER_LIST',
            'succeeded', NULL, '2025-12-02T02:00:00.000Z', '2025-12-02T02:05:00.000Z', 1, 0,
            NULL, '[]', NULL);
        "#,
    )
    .unwrap();
}

#[test]
fn store_migration_to_v3_gives_old_runs_a_target_and_resume_refuses_them() {
    use pbibatch::store::{RunTarget, ServiceTarget};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    write_v2(&path);
    let store = Store::open(&path).unwrap();
    assert_eq!(
        store.load_run("sim-run").unwrap().target,
        RunTarget::Simulated
    );
    assert_eq!(
        store.load_run("old-run").unwrap().target,
        RunTarget::Unknown
    );
    let history = store.history(None, 10).unwrap();
    let targets: Vec<String> = history.iter().map(|r| r.target.short()).collect();
    assert_eq!(targets, ["simulated", "unknown"]);

    let hashes = [("model".to_string(), "h".to_string())].into();
    let tenant = RunTarget::Service(ServiceTarget {
        tenants: vec!["t1".into()],
        endpoints: vec![],
    });
    // A real run does not resume the simulated one...
    let err = store
        .resume_for(&tenant, "last", "order_list", "abc", false, &hashes)
        .unwrap_err();
    assert!(matches!(err, StoreError::OtherTarget(_)), "{err}");
    assert!(
        err.to_string().starts_with(
            "run `sim-run` ran against the simulator (--simulate); this run targets tenant t1 \
             (no Power BI or Fabric step): resume refused, nothing was sent; run without \
             --resume, or rehearse with --simulate --state <another file>"
        ),
        "{err}"
    );
    // ...nor the one whose target nobody recorded, whatever this run's target.
    for target in [tenant, RunTarget::Simulated, RunTarget::Unknown] {
        let err = store
            .resume_for(&target, "old-run", "order_list", "abc", false, &hashes)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("run `old-run` ran against an unknown target"),
            "{err}"
        );
    }
    // A rehearsal resumes the rehearsal.
    let resume = store
        .resume_for(
            &RunTarget::Simulated,
            "sim-run",
            "order_list",
            "abc",
            false,
            &hashes,
        )
        .unwrap();
    assert!(matches!(
        resume.steps["model"],
        pbibatch::store::StepResume::Keep { .. }
    ));
}

#[test]
fn store_refuses_a_file_that_is_not_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    std::fs::write(
        &path,
        "version: 1\nname: order_list\nsteps: {}\n".repeat(200),
    )
    .unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "`{}` is not a SQLite database, so it cannot be a pbibatch state store; move it \
             away or pass another --state",
            path.display()
        )
    );
    // Nothing was written over the user's file.
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("version: 1")
    );
}

#[test]
fn store_refuses_a_damaged_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    crate::store_support::record(
        &path,
        crate::store_support::meta("h", &[]),
        &crate::store_support::failed_run("run-1", 0),
    );
    // Overwrite everything after the 100-byte header: the pages are garbage now.
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 4096);
    for (i, b) in bytes.iter_mut().enumerate().skip(100) {
        *b = (i % 251) as u8;
    }
    std::fs::write(&path, bytes).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt { .. } | StoreError::NotADatabase { .. }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(&path.display().to_string()));
}

#[test]
fn store_refuses_another_programs_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE moz_cookies (id INTEGER); CREATE TABLE prefs (k TEXT);")
        .unwrap();
    drop(conn);
    let err = Store::open(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "`{}` is a SQLite database of another program, not a pbibatch state store (it \
             holds tables (moz_cookies, prefs) but no schema_version table); pass another \
             --state",
            path.display()
        )
    );
}

#[test]
fn store_refuses_a_database_with_another_application_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA application_id = 1234;").unwrap();
    drop(conn);
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Foreign { .. }), "{err:?}");
    assert!(err.to_string().contains("application id is 0x4d2"), "{err}");
}

#[test]
fn store_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    Store::open(&path).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE schema_version SET version = 99", [])
        .unwrap();
    drop(conn);
    let err = Store::open(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the state store `{}` was written by a newer pbibatch (schema version 99, this one \
             knows up to {SCHEMA_VERSION}); upgrade pbibatch or pass another --state",
            path.display()
        )
    );
}

#[test]
fn store_open_default_honours_none() {
    assert!(Store::open_default(Some("none")).unwrap().is_none());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep/er/state.db");
    let store = Store::open_default(Some(path.to_str().unwrap()))
        .unwrap()
        .unwrap();
    assert_eq!(store.path(), path);
    assert!(path.exists());
}

#[test]
fn store_empty_file_becomes_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    std::fs::write(&path, b"").unwrap();
    let store = Store::open(&path).unwrap();
    assert!(store.history(None, 5).unwrap().is_empty());
}

#[test]
fn store_never_writes_over_a_short_file() {
    // SQLite alone would take a file shorter than its header for an empty database.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    std::fs::write(&path, "todo\n").unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "todo\n");
}

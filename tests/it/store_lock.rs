//! The per-job lock: one live run at a time, waiting, stale takeover.

use std::sync::mpsc;
use std::time::Duration;

use pbibatch::store::{LockOptions, Store, StoreError};

fn fast() -> LockOptions {
    LockOptions {
        poll: Duration::from_millis(10),
        ..LockOptions::default()
    }
}

fn no_wait(_: &pbibatch::store::LockHolder) {}

#[test]
fn store_lock_refuses_a_second_holder_and_names_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut first = Store::open(&path).unwrap();
    let mut second = Store::open(&path).unwrap();
    let lock = first
        .lock_job("order_list", Some("run-a"), &fast(), &mut no_wait)
        .unwrap();
    let err = second
        .lock_job("order_list", Some("run-b"), &fast(), &mut no_wait)
        .unwrap_err();
    let StoreError::LockHeld(holder) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(holder.run_id.as_deref(), Some("run-a"));
    assert_eq!(holder.pid, std::process::id());
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "job `order_list` is already running: run `run-a` (pid {} on ",
            std::process::id()
        )),
        "{text}"
    );
    assert!(
        text.ends_with("wait for it or pass --wait-lock DURATION"),
        "{text}"
    );

    // Another job is not blocked.
    let other = second
        .lock_job("other_job", None, &fast(), &mut no_wait)
        .unwrap();
    drop(other);

    // Released: the second run gets it.
    lock.release().unwrap();
    let lock = second
        .lock_job("order_list", Some("run-b"), &fast(), &mut no_wait)
        .unwrap();
    assert!(lock.took_over().is_none());
    assert_eq!(
        second
            .lock_holder("order_list")
            .unwrap()
            .unwrap()
            .run_id
            .as_deref(),
        Some("run-b")
    );
    drop(lock);
    assert!(second.lock_holder("order_list").unwrap().is_none());
}

#[test]
fn store_lock_waits_until_the_holder_releases() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut first = Store::open(&path).unwrap();
    let lock = first
        .lock_job("order_list", Some("run-a"), &fast(), &mut no_wait)
        .unwrap();
    let (blocked_tx, blocked_rx) = mpsc::channel();
    let waiter_path = path.clone();
    let waiter = std::thread::spawn(move || {
        let mut store = Store::open(&waiter_path).unwrap();
        let opts = LockOptions {
            wait: Some(Duration::from_secs(600)),
            ..fast()
        };
        let mut on_wait = |holder: &pbibatch::store::LockHolder| {
            blocked_tx.send(holder.run_id.clone()).unwrap();
        };
        store
            .lock_job("order_list", Some("run-b"), &opts, &mut on_wait)
            .map(|l| l.took_over().is_none())
    });
    // The waiter saw the holder; now let it go.
    assert_eq!(blocked_rx.recv().unwrap().as_deref(), Some("run-a"));
    drop(lock);
    assert!(waiter.join().unwrap().unwrap());
}

#[test]
fn store_lock_wait_gives_up_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut first = Store::open(&path).unwrap();
    let mut second = Store::open(&path).unwrap();
    let _lock = first
        .lock_job("order_list", Some("run-a"), &fast(), &mut no_wait)
        .unwrap();
    let opts = LockOptions {
        wait: Some(Duration::from_millis(30)),
        ..fast()
    };
    let err = second
        .lock_job("order_list", None, &opts, &mut no_wait)
        .unwrap_err();
    assert!(matches!(err, StoreError::LockTimeout { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("job `order_list` is still running after waiting "),
        "{err}"
    );
}

/// A pid that belonged to a process that has exited (and was reaped).
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn store_lock_takes_over_a_dead_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut store = Store::open(&path).unwrap();
    let lock = store
        .lock_job("order_list", Some("run-dead"), &fast(), &mut no_wait)
        .unwrap();
    // Make the row look like a run whose process was killed with SIGKILL: its pid is gone,
    // its heartbeat is recent, and nothing deleted the row.
    std::mem::forget(lock);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE locks SET pid = ?1", [dead_pid()])
        .unwrap();

    let lock = store
        .lock_job("order_list", Some("run-new"), &fast(), &mut no_wait)
        .unwrap();
    let old = lock.took_over().unwrap();
    assert_eq!(old.run_id.as_deref(), Some("run-dead"));
    let holder = store.lock_holder("order_list").unwrap().unwrap();
    assert_eq!(holder.run_id.as_deref(), Some("run-new"));
    assert_eq!(holder.pid, std::process::id());
}

#[test]
fn store_lock_takes_over_a_silent_holder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = Store::open(&path).unwrap();
    drop(store);
    // A live pid (ours) on another host whose heartbeat stopped an hour ago.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO locks (job, token, run_id, pid, host, started_at, heartbeat_ms) \
         VALUES ('order_list', 't', 'run-frozen', ?1, 'other-host', \
         '2026-03-01T01:00:00.000Z', ?2)",
        rusqlite::params![
            std::process::id(),
            chrono::Utc::now().timestamp_millis() - 3_600_000
        ],
    )
    .unwrap();
    let mut store = Store::open(&path).unwrap();
    let lock = store
        .lock_job("order_list", None, &fast(), &mut no_wait)
        .unwrap();
    assert_eq!(
        lock.took_over().unwrap().run_id.as_deref(),
        Some("run-frozen")
    );
}

#[test]
fn store_lock_is_named_by_the_recorded_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut store = Store::open(&path).unwrap();
    let _lock = store
        .lock_job("order_list", None, &fast(), &mut no_wait)
        .unwrap();
    let mut script = crate::store_support::Script::new("run-live");
    script.started(0, "order_list", &crate::store_support::ORDER_LIST, None);
    crate::store_support::record(&path, crate::store_support::meta("h", &[]), &script);
    let holder = store.lock_holder("order_list").unwrap().unwrap();
    assert_eq!(holder.run_id.as_deref(), Some("run-live"));
    // While the lock is held the unfinished run is `running`, not `incomplete`.
    assert_eq!(store.load_run("run-live").unwrap().status, "running");
}

#[test]
fn store_lock_options_parse_wait_lock() {
    let opts = LockOptions::with_wait_lock(Some("10m")).unwrap();
    assert_eq!(opts.wait, Some(Duration::from_secs(600)));
    assert_eq!(LockOptions::with_wait_lock(None).unwrap().wait, None);
    let err = LockOptions::with_wait_lock(Some("soon")).unwrap_err();
    assert!(
        err.to_string().starts_with("invalid --wait-lock `soon`: "),
        "{err}"
    );
}

#[test]
fn store_lock_race_has_exactly_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    Store::open(&path).unwrap();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let path = path.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut store = Store::open(&path).unwrap();
                barrier.wait();
                // A won lock is returned, so it stays held until every thread has tried.
                store.lock_job(
                    "order_list",
                    Some(&format!("run-{i}")),
                    &fast(),
                    &mut no_wait,
                )
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    for err in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(matches!(err, StoreError::LockHeld(_)), "{err:?}");
    }
}

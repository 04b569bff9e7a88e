//! A [`StoreRecorder`] on its own thread, so the async run never waits on SQLite.

use std::sync::mpsc;
use std::thread::JoinHandle;

use super::{Store, StoreError, StoreRecorder};
use crate::event::RunEvent;

/// Most events written in one transaction when they arrive faster than SQLite commits.
const MAX_BATCH: usize = 512;

/// Feeds events to a recorder running on a dedicated thread. Events are recorded in the order
/// they are sent, as soon as the thread gets them: one transaction per event when they
/// trickle in, one per burst when they arrive faster than SQLite commits (group commit).
#[derive(Debug)]
pub struct RecorderThread {
    /// Events to record; dropping it ends the thread once the queue is drained.
    events: Option<mpsc::Sender<RunEvent>>,
    thread: Option<JoinHandle<(Store, Option<StoreError>)>>,
}

impl StoreRecorder {
    /// Moves the recorder to its own thread. A failing write is logged (`tracing::warn!`) and
    /// does not stop the next ones; [`RecorderThread::finish`] returns the first failure.
    pub fn spawn(mut self) -> Result<RecorderThread, StoreError> {
        let (tx, rx) = mpsc::channel::<RunEvent>();
        let thread = std::thread::Builder::new()
            .name("pbibatch-store".into())
            .spawn(move || {
                let mut first_error = None;
                let mut batch = Vec::new();
                // Block for the next event, then take whatever else is already queued.
                while let Ok(ev) = rx.recv() {
                    batch.push(ev);
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(ev) => batch.push(ev),
                            Err(_) => break,
                        }
                    }
                    if self.record_batch(&batch).is_err() {
                        // Retry one by one so a bad event costs only itself.
                        for ev in &batch {
                            if let Err(err) = self.record(ev) {
                                tracing::warn!(seq = ev.seq, "cannot record a run event: {err}");
                                first_error.get_or_insert(err);
                            }
                        }
                    }
                    // What executors wait for before they trigger: the handle is on disk.
                    for ev in &batch {
                        if let crate::event::RunEventKind::StepProgress { update, .. } = &ev.kind
                            && let Some(c) = &update.checkpoint
                        {
                            c.fire();
                        }
                    }
                    batch.clear();
                }
                (self.into_store(), first_error)
            })
            .map_err(|source| StoreError::Thread {
                what: "state store writer",
                source,
            })?;
        Ok(RecorderThread {
            events: Some(tx),
            thread: Some(thread),
        })
    }
}

impl RecorderThread {
    /// Queues one event (never blocks).
    pub fn send(&self, ev: RunEvent) {
        if let Some(tx) = &self.events {
            // Fails only when the thread is gone, which `finish` reports.
            let _ = tx.send(ev);
        }
    }

    /// Waits until every queued event is recorded; gives the store back with the first write
    /// failure, if any.
    pub fn finish(mut self) -> (Option<Store>, Option<StoreError>) {
        self.events.take();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok((store, err))) => (Some(store), err),
            _ => (None, None),
        }
    }
}

impl Drop for RecorderThread {
    fn drop(&mut self) {
        self.events.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

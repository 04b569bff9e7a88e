//! What an attempt reports while it runs ([`AttemptUpdate`]) and what a later run needs to
//! re-attach to its remote work ([`RemoteHandle`]). Executors produce them, the scheduler
//! carries them in `StepProgress` events, and the reporters and the state store read them, so
//! they live with the events rather than with any one of those.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::ResourceRef;

/// What a resumed run needs to re-attach to remote work instead of triggering it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RemoteHandle {
    /// Enhanced dataset refresh: poll execution details by request id; without one (the
    /// trigger's answer was not recorded), found in history by difference with the request
    /// ids seen before the trigger.
    EnhancedRefresh {
        workspace_id: String,
        dataset_id: String,
        request_id: Option<String>,
        #[serde(default)]
        known_before: Vec<String>,
    },
    /// Standard dataset refresh: found in history by request id (once known), else by
    /// difference with the request ids seen before the trigger.
    StandardRefresh {
        workspace_id: String,
        dataset_id: String,
        request_id: Option<String>,
        known_before: Vec<String>,
    },
    /// Gen1 dataflow transaction.
    DataflowTransaction {
        workspace_id: String,
        dataflow_id: String,
        transaction_id: Option<String>,
        known_before: Vec<String>,
    },
    /// Fabric job instance (Dataflow Gen2); without an id, found among the item's job
    /// instances by difference with the ones listed before the trigger.
    FabricJob {
        workspace_id: String,
        item_id: String,
        job_instance_id: Option<String>,
        #[serde(default)]
        known_before: Vec<String>,
    },
    /// Report export.
    Export {
        workspace_id: String,
        report_id: String,
        export_id: String,
    },
}

/// A change seen while an attempt runs; every field is optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AttemptUpdate {
    /// The remote service's status word (`Unknown`, `InProgress`, `Running`, ...).
    pub remote_status: Option<String>,
    /// 0..=100 where the service reports it (exports).
    pub percent: Option<u8>,
    /// Refresh request id, transaction id, job instance id, export id, flow run id.
    pub remote_id: Option<String>,
    /// Resolved ids of the resource.
    pub resource: Option<ResourceRef>,
    /// Enough to re-attach after a crash; stored by the state store.
    pub handle: Option<RemoteHandle>,
    /// A human note (e.g. "waiting for a running refresh to end").
    pub note: Option<String>,
    /// Triggers sent by this update's attempt since the last update (1 when one went out).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub triggers: u32,
    /// Status reads (run listings and run states) the attempt made since the last update.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reads: u32,
    /// What a check step found (its attempt's last word on the check). Boxed: a sample of
    /// rows would make every event as large.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Box<super::CheckResult>>,
    /// Set by [`crate::executor::AttemptContext::checkpoint`]: fired once the update is durable.
    #[serde(skip)]
    pub checkpoint: Option<Checkpoint>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Fired once an update is written to the state store, so that an executor can make its
/// handle durable before it sends a trigger (a kill right after the trigger then still leaves
/// enough to find the run). Cheap to clone; every clone fires the same signal.
#[derive(Debug, Clone, Default)]
pub struct Checkpoint {
    inner: Arc<CheckpointInner>,
}

#[derive(Debug, Default)]
struct CheckpointInner {
    fired: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl Checkpoint {
    /// Says the update is durable (idempotent).
    pub fn fire(&self) {
        self.inner
            .fired
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// Resolves once [`Checkpoint::fire`] was called.
    pub async fn fired(&self) {
        loop {
            let notified = self.inner.notify.notified();
            if self.inner.fired.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

/// Checkpoints compare equal: they carry no data, only a signal.
impl PartialEq for Checkpoint {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

//! Executors: one per step type, behind one trait. They talk to the remote service through
//! [`crate::powerbi`], report remote progress as [`AttemptUpdate`]s, and return one
//! [`AttemptOutcome`] per attempt. They never print and never schedule.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::event::{AttemptUpdate, Checkpoint, RemoteHandle, StepStatus};
use crate::job::model::{Step, StepId};

/// Why an attempt is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// The attempt ran past its step's `timeout`: cancel the remote work, then stop.
    Timeout,
    /// SIGINT/SIGTERM: cancel the remote work (or leave it running when `detach`), then stop.
    Interrupt { detach: bool },
}

/// A cancellation signal that carries its reason. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    token: CancellationToken,
    reason: Arc<OnceLock<CancelReason>>,
}

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests cancellation; the first reason wins.
    pub fn cancel(&self, reason: CancelReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    /// Resolves when cancellation was requested.
    pub async fn cancelled(&self) {
        self.token.cancelled().await
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// The reason given to [`Cancel::cancel`], once cancelled.
    pub fn reason(&self) -> Option<CancelReason> {
        self.reason.get().copied()
    }
}

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    /// Remote work finished successfully. `adopted` = the refresh was not started by us.
    Succeeded { adopted: bool },
    /// Remote work failed (a step attempt is spent). The message is the remote error;
    /// `retry_after` is the pause the service asked for, which the next attempt honours.
    Failed {
        error: String,
        retry_after: Option<Duration>,
    },
    /// The step cannot run as written, and another attempt would meet the same answer: an
    /// unknown or ambiguous name, bad configuration, credentials Entra refuses, a model that
    /// cannot be refreshed. Nothing was triggered; the step fails without spending its retries.
    Refused { error: String },
    /// The attempt stopped on its [`Cancel`]; `error` says what was done remotely.
    Cancelled { error: Option<String> },
    /// The trigger was skipped on purpose; `kind` says why, and so how dependents count it.
    Skipped { reason: String, kind: SkipKind },
}

/// Why an executor skipped its trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipKind {
    /// `skip_if_fresh`: the resource ended a successful run within the window. The data is
    /// current, so the skip counts as satisfied for dependents: trigger rules treat it as
    /// succeeded (the step itself is still reported `skipped`, its reason starting `fresh`).
    Fresh,
}

impl AttemptOutcome {
    /// The status this outcome gives the attempt (a cancel becomes `timed_out` when the
    /// reason was a timeout; the engine decides that).
    pub fn status(&self) -> StepStatus {
        match self {
            AttemptOutcome::Succeeded { .. } => StepStatus::Succeeded,
            AttemptOutcome::Failed { .. } | AttemptOutcome::Refused { .. } => StepStatus::Failed,
            AttemptOutcome::Cancelled { .. } => StepStatus::Cancelled,
            AttemptOutcome::Skipped { .. } => StepStatus::Skipped,
        }
    }
}

/// What the run looks like so far, for webhooks (`${run.summary}`, `${steps.<id>.status}`).
#[derive(Debug, Clone, Default)]
pub struct RunView {
    pub run_id: String,
    pub job: String,
    /// `running`, or the status the run would have if it ended now (`succeeded`/`failed`).
    pub status: String,
    /// One line: "order_list: 3 succeeded, 1 failed (master_order_list), 0 skipped".
    pub summary: String,
    /// Final statuses of the steps that have one.
    pub steps: Vec<(StepId, StepStatus)>,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    /// Attempts made and seconds taken by the steps that have a final status.
    pub stats: Vec<(StepId, u32, f64)>,
    /// Steps per final status so far, in [`StepStatus::ALL`] order (webhooks only).
    pub counts: Vec<(StepStatus, usize)>,
    /// The first failed / timed-out steps with their last error (webhooks only; bounded).
    pub failures: Vec<(StepId, StepStatus, String)>,
}

/// Everything one attempt gets.
#[derive(Debug, Clone)]
pub struct AttemptContext {
    pub run_id: String,
    pub step: Arc<Step>,
    /// From 1.
    pub attempt: u32,
    pub cancel: Cancel,
    /// Progress back to the scheduler, which turns it into `StepProgress` events.
    pub updates: mpsc::UnboundedSender<(StepId, u32, AttemptUpdate)>,
    pub run_view: RunView,
    /// What the previous attempt, or the run being resumed, left: the protocol reads that
    /// run again before it triggers anything.
    pub reattach: Option<RemoteHandle>,
    /// True when updates are recorded in a state store that fires their
    /// [`Checkpoint`]s ([`AttemptContext::checkpoint`] waits for it).
    pub durable: bool,
    /// Set only by [`Executor::estimate`] and the `freshness` step: the attempt reads the
    /// resource's recent runs, puts what they say here and returns before anything could be
    /// triggered.
    pub estimate: Option<EstimateSlot>,
}

/// What one listing of a resource's recent runs said (see [`AttemptContext::estimate`]).
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The listing was read (false: the attempt stopped before it, e.g. on a name).
    pub listed: bool,
    /// The usual duration of its successful runs.
    pub usual: Option<crate::event::Usual>,
    /// When its newest successful run ended, as the service wrote it.
    pub last_success_end: Option<String>,
    /// Why the listing could not be read.
    pub error: Option<crate::powerbi::ClientError>,
}

/// Where an estimating attempt leaves what the listing said.
pub type EstimateSlot = Arc<std::sync::Mutex<Listing>>;

impl AttemptContext {
    /// Sends a progress update (ignored when the scheduler is gone).
    pub fn update(&self, update: AttemptUpdate) {
        let _ = self
            .updates
            .send((self.step.id.clone(), self.attempt, update));
    }

    /// Sends an update and, when a state store records the run, waits until it is written
    /// (bounded by [`CHECKPOINT_LIMIT`], and by cancellation).
    pub(crate) async fn checkpoint(&self, mut update: AttemptUpdate) {
        if !self.durable {
            self.update(update);
            return;
        }
        let checkpoint = Checkpoint::default();
        update.checkpoint = Some(checkpoint.clone());
        self.update(update);
        tokio::select! {
            _ = checkpoint.fired() => {}
            _ = self.cancel.cancelled() => {}
            _ = tokio::time::sleep(CHECKPOINT_LIMIT) => {
                tracing::warn!(step = %self.step.id, "the state store did not confirm a write in time");
            }
        }
    }
}

/// How long [`AttemptContext::checkpoint`] waits for the store.
pub(crate) const CHECKPOINT_LIMIT: Duration = Duration::from_secs(30);

impl RemoteHandle {
    /// The run the handle names, when its id was recorded.
    pub fn run_id(&self) -> Option<&str> {
        match self {
            RemoteHandle::EnhancedRefresh { request_id, .. }
            | RemoteHandle::StandardRefresh { request_id, .. } => request_id.as_deref(),
            RemoteHandle::DataflowTransaction { transaction_id, .. } => transaction_id.as_deref(),
            RemoteHandle::FabricJob {
                job_instance_id, ..
            } => job_instance_id.as_deref(),
            RemoteHandle::Export { export_id, .. } => Some(export_id),
        }
    }
}

/// Runs attempts of steps. One implementation dispatches on the step type.
pub trait Executor: Send + Sync {
    /// Runs one attempt to its end (success, failure, or cancellation).
    fn execute(&self, ctx: AttemptContext) -> BoxFuture<'static, AttemptOutcome>;

    /// The usual duration of `step`'s remote runs, read from the service's run history (one
    /// listing; nothing is triggered). `None` when the step starts no listable remote work or
    /// the history has no successful run.
    fn estimate(&self, _step: Arc<Step>) -> BoxFuture<'static, Option<crate::event::Usual>> {
        Box::pin(async { None })
    }
}

pub(crate) mod capacity;
pub mod checks;
pub(crate) mod common;
pub(crate) mod data_check;
pub(crate) mod dataflow;
pub(crate) mod dataset;
pub mod estimate;
pub(crate) mod fabric;
pub(crate) mod freshness;
pub(crate) mod payload;
pub(crate) mod poll;
pub(crate) mod protocol;
pub(crate) mod report;
pub(crate) mod sas_flow;
pub(crate) mod webhook;

/// The [`Executor`] of real runs: dispatches each attempt on the step type to the executor
/// of that type, all sharing one [`crate::powerbi::PowerBiClient`].
#[derive(Clone)]
pub struct Dispatcher {
    client: crate::powerbi::PowerBiClient,
    job: Arc<crate::job::model::Job>,
}

impl Dispatcher {
    /// An executor over `client` for the steps of `job`.
    pub fn new(client: crate::powerbi::PowerBiClient, job: Arc<crate::job::model::Job>) -> Self {
        Self { client, job }
    }

    /// The client (for figures such as [`crate::powerbi::PowerBiClient::token_requests`]).
    pub fn client(&self) -> &crate::powerbi::PowerBiClient {
        &self.client
    }
}

impl Executor for Dispatcher {
    fn execute(&self, ctx: AttemptContext) -> BoxFuture<'static, AttemptOutcome> {
        let client = self.client.clone();
        let known_connection = self.job.connections.contains_key(&ctx.step.connection)
            || !matches!(
                ctx.step.kind,
                crate::job::model::StepKind::Dataflow(_)
                    | crate::job::model::StepKind::Dataset(_)
                    | crate::job::model::StepKind::Report(_)
                    | crate::job::model::StepKind::FabricJob(_)
                    | crate::job::model::StepKind::Capacity(_)
                    | crate::job::model::StepKind::DataCheck(_)
                    | crate::job::model::StepKind::Freshness(_)
            );
        Box::pin(async move {
            if !known_connection {
                return AttemptOutcome::Refused {
                    error: format!("unknown connection `{}`", ctx.step.connection),
                };
            }
            let kind = ctx.step.kind.clone();
            match kind {
                crate::job::model::StepKind::SasFlow(s) => sas_flow::run(client, ctx, s).await,
                crate::job::model::StepKind::Dataflow(s) => dataflow::run(client, ctx, s).await,
                crate::job::model::StepKind::Dataset(s) => dataset::run(client, ctx, s).await,
                crate::job::model::StepKind::Report(s) => report::run(client, ctx, s).await,
                crate::job::model::StepKind::Webhook(s) => webhook::run(client, ctx, s).await,
                crate::job::model::StepKind::FabricJob(s) => {
                    fabric::items::run(client, ctx, s).await
                }
                crate::job::model::StepKind::Capacity(s) => capacity::run(client, ctx, s).await,
                crate::job::model::StepKind::DataCheck(s) => data_check::run(client, ctx, s).await,
                crate::job::model::StepKind::Freshness(s) => freshness::run(client, ctx, s).await,
            }
        })
    }

    fn estimate(&self, step: Arc<Step>) -> BoxFuture<'static, Option<crate::event::Usual>> {
        use crate::job::model::StepKind;
        // Only kinds whose runs the service lists; each goes through the protocol driver,
        // which returns before its trigger when `estimate` is set.
        let listable = match &step.kind {
            StepKind::Dataset(_) | StepKind::Dataflow(_) | StepKind::FabricJob(_) => true,
            StepKind::SasFlow(s) => s.wait_for.is_some(),
            StepKind::Report(_)
            | StepKind::Webhook(_)
            | StepKind::Capacity(_)
            | StepKind::DataCheck(_)
            | StepKind::Freshness(_) => false,
        };
        // An unknown connection is refused by `execute` before any request.
        if !listable {
            return Box::pin(async { None });
        }
        let slot = EstimateSlot::default();
        let (updates, _) = mpsc::unbounded_channel();
        let ctx = AttemptContext {
            run_id: String::new(),
            step,
            attempt: 0,
            cancel: Cancel::new(),
            updates,
            run_view: RunView::default(),
            reattach: None,
            durable: false,
            estimate: Some(slot.clone()),
        };
        let attempt = self.execute(ctx);
        Box::pin(async move {
            attempt.await;
            slot.lock().ok().and_then(|d| d.usual)
        })
    }
}

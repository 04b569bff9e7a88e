//! `capacity`: resume, suspend or scale a Fabric capacity through Azure Resource Manager,
//! then wait until the capacity reports the wanted state.
//!
//! Not a [`super::protocol::RemoteKind`]: a capacity has no list of runs to find a lost
//! trigger in, no run another caller could have started for us to wait for or adopt
//! (`if_running`), nothing to cancel (ARM cannot cancel a resume), and no freshness. What it
//! has instead is a state that says everything: the executor reconciles towards the wanted
//! state. Every attempt, and every resumed run, reads the capacity first; an `Active`
//! capacity is not resumed again, a `Resuming` one is waited for, and only a settled state
//! other than the wanted one makes it send its one request. So a retry or a resumed run never
//! starts the same operation twice: the first read sees the earlier operation's effect.
//!
//! After the request, the long-running operation is followed (`Azure-AsyncOperation`, else
//! `Location`, honouring `Retry-After`), then the capacity is read until it reports the
//! wanted state (`Active`, `Paused`, the SKU).

use std::time::Duration;

use tokio::time::Instant;

use super::common::{Stop, conclude, guard_raw, is_transient, note, retry_after_of};
use super::poll::Poller;
use super::{AttemptContext, AttemptOutcome, CancelReason};
use crate::event::{AttemptUpdate, ResourceRef};
use crate::job::model::{CapacityAction, CapacityRef, CapacityStep};
use crate::powerbi::arm::{Accepted, ArmCapacity, OperationState};
use crate::powerbi::{ClientError, PowerBiClient};

/// How long a request whose answer was lost, or an operation ARM reported done, may take to
/// show in the capacity's state before the attempt fails.
const SETTLE_LOOK: Duration = Duration::from_secs(60);

/// What the capacity's state asks for next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// The capacity is as wanted.
    Done,
    /// It is changing (resuming, pausing, updating, ...): read again later.
    Wait,
    /// It is settled in another state: send the request.
    Send,
    /// It cannot get there (failed, deleting, an unknown state).
    Fail(String),
}

fn is_settled_active(state: &str) -> bool {
    state.eq_ignore_ascii_case("Active")
}

fn is_settled_paused(state: &str) -> bool {
    state.eq_ignore_ascii_case("Paused") || state.eq_ignore_ascii_case("Suspended")
}

fn is_transitional(state: &str) -> bool {
    [
        "Resuming",
        "Pausing",
        "Suspending",
        "Updating",
        "Scaling",
        "Preparing",
        "Provisioning",
    ]
    .iter()
    .any(|s| s.eq_ignore_ascii_case(state))
}

/// The decision for `action` on a capacity in `state` with `sku` (ARM's `ResourceState`).
pub(crate) fn next(action: &CapacityAction, state: &str, sku: &str) -> Next {
    if is_transitional(state) {
        return Next::Wait;
    }
    let settled = is_settled_active(state) || is_settled_paused(state);
    if !settled {
        return Next::Fail(format!(
            "the capacity is `{state}`, not a state a {} can start from",
            action.name()
        ));
    }
    if matches!(action, CapacityAction::Scale { .. }) && is_settled_paused(state) {
        // ARM answers 400 "Service is not ready to be updated" to a SKU change of a paused
        // capacity (Azure/bicep-registry-modules#5196).
        return Next::Fail(
            "the capacity is paused, and Azure does not change the SKU of a paused capacity: resume it first (a `capacity` step with `action: resume` before this one)"
                .to_string(),
        );
    }
    let done = match action {
        CapacityAction::Resume => is_settled_active(state),
        CapacityAction::Suspend => is_settled_paused(state),
        CapacityAction::Scale { sku: wanted } => wanted.eq_ignore_ascii_case(sku),
    };
    if done { Next::Done } else { Next::Send }
}

/// Runs one attempt of a capacity step.
pub(crate) async fn run(
    client: PowerBiClient,
    ctx: AttemptContext,
    step: CapacityStep,
) -> AttemptOutcome {
    let target = match step.target() {
        Ok(t) => t,
        Err(error) => return AttemptOutcome::Refused { error },
    };
    let mut exec = Reconcile {
        client: &client,
        ctx: &ctx,
        action: &step.action,
        target: &target,
        sent: false,
    };
    let result = exec.run().await;
    match result {
        Err(Stop::Cancelled) if exec.sent => {
            let why = match ctx.cancel.reason() {
                Some(CancelReason::Timeout) => "timed out",
                _ => "interrupted",
            };
            AttemptOutcome::Cancelled {
                error: Some(format!(
                    "{why}; the capacity {} goes on in Azure (Resource Manager cannot cancel it)",
                    step.action.name()
                )),
            }
        }
        other => conclude(&client, &ctx, other, None).await,
    }
}

struct Reconcile<'a> {
    client: &'a PowerBiClient,
    ctx: &'a AttemptContext,
    action: &'a CapacityAction,
    target: &'a CapacityRef,
    /// The one request of this attempt went out (its answer may be lost).
    sent: bool,
}

impl Reconcile<'_> {
    fn conn(&self) -> &str {
        &self.ctx.step.connection
    }

    async fn run(&mut self) -> Result<AttemptOutcome, Stop> {
        let cancel = &self.ctx.cancel;
        self.ctx.update(AttemptUpdate {
            resource: Some(ResourceRef {
                workspace_id: None,
                item_id: Some(self.target.id()),
                name: self.target.name.clone(),
            }),
            ..AttemptUpdate::default()
        });
        let mut poller = Poller::new(self.ctx.step.poll_interval);
        // The operation to follow, once accepted: (status URL, is `Azure-AsyncOperation`).
        let mut operation: Option<(url::Url, bool)> = None;
        // Since when the state should have moved (request sent, or operation done).
        let mut expect_change_since: Option<Instant> = None;
        loop {
            if let Some((url, is_async)) = operation.clone() {
                let read = self.client.arm_operation(self.conn(), &url, is_async);
                match guard_raw(cancel, read).await? {
                    Ok((OperationState::Running, wait)) => {
                        poller.wait(cancel, wait).await?;
                        continue;
                    }
                    Ok((OperationState::Succeeded, _)) => {
                        operation = None;
                        expect_change_since = Some(Instant::now());
                    }
                    Ok((OperationState::Failed(message), _)) => {
                        return Err(Stop::Failed(format!(
                            "capacity {} {}: {message}",
                            self.action.name(),
                            self.target.name
                        )));
                    }
                    Err(e) if is_transient(&e) => {
                        poller.wait(cancel, retry_after_of(&e)).await?;
                        continue;
                    }
                    Err(e) => return Err(self.stop(e)),
                }
            }
            let capacity = match guard_raw(cancel, self.read()).await? {
                Ok(c) => c,
                Err(e) if is_transient(&e) => {
                    poller.wait(cancel, retry_after_of(&e)).await?;
                    continue;
                }
                Err(e) => return Err(self.stop(e)),
            };
            let state = capacity.properties.state.clone();
            self.ctx.update(AttemptUpdate {
                remote_status: Some(format!("{state} ({})", capacity.sku.name)),
                ..AttemptUpdate::default()
            });
            match next(self.action, &state, &capacity.sku.name) {
                Next::Done => {
                    if !self.sent {
                        self.ctx.update(note(format!(
                            "capacity already {} ({}): nothing sent",
                            state, capacity.sku.name
                        )));
                    }
                    return Ok(AttemptOutcome::Succeeded { adopted: false });
                }
                Next::Fail(message) => return Err(Stop::Failed(message)),
                Next::Wait => {
                    poller.wait(cancel, None).await?;
                }
                Next::Send if self.sent => {
                    // Our request was sent (its answer lost, or its operation reported done)
                    // and the capacity has not moved yet: look a while, never send again.
                    let since = *expect_change_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= SETTLE_LOOK {
                        return Err(Stop::Failed(format!(
                            "the capacity {} was sent but the capacity still reports `{state}` ({}); the next attempt reads its state again before sending anything",
                            self.action.name(),
                            capacity.sku.name
                        )));
                    }
                    poller.wait(cancel, None).await?;
                }
                Next::Send => {
                    self.sent = true;
                    let answer = guard_raw(cancel, self.send()).await?;
                    self.ctx.update(AttemptUpdate {
                        triggers: 1,
                        ..AttemptUpdate::default()
                    });
                    match answer {
                        Ok(accepted) => {
                            self.ctx.update(AttemptUpdate {
                                remote_id: accepted.operation_id(),
                                note: Some(format!(
                                    "capacity {} accepted ({})",
                                    self.action.name(),
                                    accepted.status
                                )),
                                ..AttemptUpdate::default()
                            });
                            operation = accepted
                                .async_operation
                                .clone()
                                .map(|u| (u, true))
                                .or_else(|| accepted.location.clone().map(|u| (u, false)));
                            if operation.is_none() {
                                expect_change_since = Some(Instant::now());
                            }
                            poller.wait(cancel, accepted.retry_after).await?;
                        }
                        // Another caller started a transition since our read: ARM refused
                        // ours without acting, so read the state again.
                        Err(e) if is_not_ready(&e) => {
                            self.sent = false;
                            poller.wait(cancel, None).await?;
                        }
                        // The service may have acted: find out from the state, not by
                        // sending again.
                        Err(e) if maybe_acted(&e) => {
                            tracing::info!(step = %self.ctx.step.id, "capacity request answer lost: {e}");
                            expect_change_since = Some(Instant::now());
                            poller.wait(cancel, retry_after_of(&e)).await?;
                        }
                        Err(e) => return Err(self.stop(e)),
                    }
                }
            }
        }
    }

    async fn read(&self) -> Result<ArmCapacity, ClientError> {
        self.client.arm_capacity(self.conn(), self.target).await
    }

    async fn send(&self) -> Result<Accepted, ClientError> {
        match self.action {
            CapacityAction::Resume => {
                self.client
                    .arm_capacity_action(self.conn(), self.target, "resume")
                    .await
            }
            CapacityAction::Suspend => {
                self.client
                    .arm_capacity_action(self.conn(), self.target, "suspend")
                    .await
            }
            CapacityAction::Scale { sku } => {
                self.client
                    .arm_capacity_sku(self.conn(), self.target, sku)
                    .await
            }
        }
    }

    /// A non-transient ARM error: a missing capacity is refused with its id, the rest as
    /// [`Stop::from`] maps them (403 `AuthorizationFailed` is a refusal).
    fn stop(&self, e: ClientError) -> Stop {
        if e.status() == Some(404) {
            return Stop::Refused(format!(
                "capacity `{}` not found in resource group `{}` of subscription `{}` ({e})",
                self.target.name, self.target.resource_group, self.target.subscription
            ));
        }
        Stop::from(e)
    }
}

/// ARM's answer to a request on a capacity that is changing: 400 "Service is not ready to be
/// updated" (nothing was done).
fn is_not_ready(e: &ClientError) -> bool {
    matches!(e, ClientError::Api { status: 400, message, .. } if message.to_ascii_lowercase().contains("not ready"))
}

/// True when a request that failed this way may still have been acted on.
fn maybe_acted(e: &ClientError) -> bool {
    match e {
        ClientError::Transport { maybe_sent, .. } => *maybe_sent,
        ClientError::Api { status, .. } => *status >= 500,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_follow_the_state() {
        let scale = CapacityAction::Scale { sku: "F64".into() };
        assert_eq!(next(&CapacityAction::Resume, "Active", "F2"), Next::Done);
        assert_eq!(next(&CapacityAction::Resume, "Paused", "F2"), Next::Send);
        assert_eq!(next(&CapacityAction::Resume, "Resuming", "F2"), Next::Wait);
        assert_eq!(next(&CapacityAction::Resume, "Pausing", "F2"), Next::Wait);
        assert_eq!(next(&CapacityAction::Suspend, "Paused", "F2"), Next::Done);
        assert_eq!(
            next(&CapacityAction::Suspend, "Suspended", "F2"),
            Next::Done
        );
        assert_eq!(next(&CapacityAction::Suspend, "Active", "F2"), Next::Send);
        assert_eq!(next(&scale, "Active", "F64"), Next::Done);
        assert_eq!(next(&scale, "Active", "F2"), Next::Send);
        assert_eq!(next(&scale, "Updating", "F64"), Next::Wait);
        assert!(matches!(
            next(&CapacityAction::Resume, "Failed", "F2"),
            Next::Fail(_)
        ));
        assert!(matches!(next(&scale, "Paused", "F2"), Next::Fail(_)));
    }
}

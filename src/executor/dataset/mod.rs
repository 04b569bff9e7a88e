//! `dataset`: semantic model refresh, standard or enhanced.
//!
//! Standard refresh has no id: ours is the `ViaApi` history entry whose `requestId` was not
//! among the entries read just before the trigger (a set difference, not a clock
//! comparison), waited for a bounded time. Enhanced refresh gets its id from
//! `x-ms-request-id` / `Location` and is polled through its execution details.
//!
//! - [`body`]: the request bodies (standard `notifyOption`, enhanced PascalCase);
//! - [`remote`]: reading history and execution details, finding our refresh.

mod body;
mod remote;

pub(crate) use body::{enhanced_body, standard_body};

use std::time::Duration;

use crate::event::RemoteHandle;
use crate::executor::common::CancelTarget;
use crate::executor::common::{Stop, appear_wait, conclude, is_one_of, resolve};
use crate::executor::protocol::{
    Previous, RemoteKind, RunInfo, RunRef, RunState, Triggered, drive,
};
use crate::executor::{AttemptContext, AttemptOutcome};
use crate::job::model::DatasetStep;
use crate::powerbi::api::RefreshEntry;
use crate::powerbi::resolve::ItemKind;
use crate::powerbi::{ClientError, PowerBiClient};
use remote::{Progress, detail_progress, entry_progress};

/// History entries read per check.
const HISTORY_TOP: u32 = 30;

/// Runs one attempt of a dataset step.
pub(crate) async fn run(
    client: PowerBiClient,
    ctx: AttemptContext,
    ds: DatasetStep,
) -> AttemptOutcome {
    match Refresh::resolve(&client, &ctx, &ds).await {
        Ok(kind) => drive(&client, &ctx, &kind).await,
        Err(stop) => conclude(&client, &ctx, Err(stop), None).await,
    }
}

/// A semantic model's refresh, standard or enhanced, as one [`RemoteKind`].
struct Refresh {
    client: PowerBiClient,
    conn: String,
    ws: String,
    ds: String,
    name: String,
    body: serde_json::Value,
    enhanced: bool,
    poll_interval: Duration,
}

impl Refresh {
    async fn resolve(
        client: &PowerBiClient,
        ctx: &AttemptContext,
        ds: &DatasetStep,
    ) -> Result<Refresh, Stop> {
        let conn = ctx.step.connection.as_str();
        let (ws, item) =
            resolve(client, ctx, &ds.workspace, ItemKind::Dataset, &ds.dataset).await?;
        if item.is_refreshable == Some(false) {
            return Err(Stop::Refused(crate::powerbi::resolve::not_refreshable(
                &item.name,
            )));
        }
        let body = match &ds.refresh {
            Some(r) => enhanced_body(r),
            None => standard_body(ds),
        };
        Ok(Refresh {
            client: client.clone(),
            conn: conn.to_string(),
            ws,
            ds: item.id,
            name: item.name,
            body,
            enhanced: ds.refresh.is_some(),
            poll_interval: ctx.step.poll_interval,
        })
    }

    /// True when our trigger could have started a history entry of this `refreshType`.
    fn could_be_ours(&self, refresh_type: Option<&str>) -> bool {
        let kinds: &[&str] = if self.enhanced {
            &["ViaEnhancedApi", "ReliableProcessing"]
        } else {
            &["ViaApi"]
        };
        refresh_type.is_none() || is_one_of(refresh_type, kinds)
    }

    fn entry_info(&self, e: RefreshEntry) -> Option<RunInfo> {
        let id = e.request_id.clone()?;
        Some(RunInfo {
            state: state(entry_progress(&e)),
            status: e.status.clone(),
            percent: None,
            from_trigger: self.could_be_ours(e.refresh_type.as_deref()),
            direct: is_one_of(
                e.refresh_type.as_deref(),
                &["ViaEnhancedApi", "ReliableProcessing"],
            ),
            start: e.start_time,
            end: e.end_time,
            id,
        })
    }

    async fn history(&self) -> Result<Vec<RefreshEntry>, ClientError> {
        self.client
            .refresh_history(&self.conn, &self.ws, &self.ds, HISTORY_TOP)
            .await
    }
}

fn state(p: Progress) -> RunState {
    match p {
        Progress::Running => RunState::Running,
        Progress::Succeeded => RunState::Succeeded,
        Progress::Failed(m) => RunState::Failed(m),
    }
}

impl RemoteKind for Refresh {
    fn noun(&self) -> &'static str {
        "refresh"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn listable(&self) -> bool {
        true
    }

    async fn list(&self) -> Result<Vec<RunInfo>, ClientError> {
        Ok(self
            .history()
            .await?
            .into_iter()
            .filter_map(|e| self.entry_info(e))
            .collect())
    }

    async fn trigger(&self) -> Result<Triggered, ClientError> {
        let resp = self
            .client
            .trigger_dataset_refresh(&self.conn, &self.ws, &self.ds, self.body.clone())
            .await?;
        let id = self
            .enhanced
            .then(|| {
                resp.header("x-ms-request-id")
                    .map(str::to_string)
                    .or_else(|| resp.location_id())
            })
            .flatten();
        Ok(match id {
            Some(id) => Triggered::Named {
                id,
                first_wait: None,
            },
            None => Triggered::Unnamed,
        })
    }

    async fn status(
        &self,
        run: &RunRef,
    ) -> Result<(Option<RunInfo>, Option<Duration>), ClientError> {
        if run.direct {
            let (d, retry_after) = self
                .client
                .refresh_details(&self.conn, &self.ws, &self.ds, &run.id)
                .await?;
            let info = RunInfo {
                id: run.id.clone(),
                state: state(detail_progress(&d)),
                status: d.extended_status.clone().or(d.status.clone()),
                percent: None,
                start: d.start_time,
                end: d.end_time,
                from_trigger: true,
                direct: true,
            };
            return Ok((Some(info), retry_after));
        }
        let found = self
            .history()
            .await?
            .into_iter()
            .find(|e| e.request_id.as_deref() == Some(run.id.as_str()))
            .and_then(|e| self.entry_info(e));
        Ok((found, None))
    }

    fn handle(&self, run: Option<&RunRef>, known_before: &[String]) -> RemoteHandle {
        let enhanced = run.map_or(self.enhanced, |r| r.direct);
        let request_id = run.map(|r| r.id.clone());
        let known_before = known_before.to_vec();
        if enhanced {
            RemoteHandle::EnhancedRefresh {
                workspace_id: self.ws.clone(),
                dataset_id: self.ds.clone(),
                request_id,
                known_before,
            }
        } else {
            RemoteHandle::StandardRefresh {
                workspace_id: self.ws.clone(),
                dataset_id: self.ds.clone(),
                request_id,
                known_before,
            }
        }
    }

    fn previous(&self, handle: &RemoteHandle) -> Option<Previous> {
        let (dataset_id, request_id, known_before, direct) = match handle {
            RemoteHandle::EnhancedRefresh {
                dataset_id,
                request_id,
                known_before,
                ..
            } => (dataset_id, request_id, known_before, true),
            RemoteHandle::StandardRefresh {
                dataset_id,
                request_id,
                known_before,
                ..
            } => (dataset_id, request_id, known_before, false),
            _ => return None,
        };
        (dataset_id == &self.ds).then(|| Previous {
            run: request_id.clone().map(|id| RunRef { id, direct }),
            known_before: known_before.clone(),
        })
    }

    fn cancel_target(&self, run: &RunRef) -> CancelTarget {
        if run.direct {
            CancelTarget::EnhancedRefresh {
                workspace_id: self.ws.clone(),
                dataset_id: self.ds.clone(),
                request_id: run.id.clone(),
            }
        } else {
            CancelTarget::StandardRefresh
        }
    }

    fn appear_within(&self) -> Duration {
        appear_wait(self.poll_interval)
    }
}

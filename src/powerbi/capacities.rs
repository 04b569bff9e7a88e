//! What the service says about the capacities of a job's workspaces, for capacity-aware
//! limits (src/plan/capacity.rs): each workspace's group record (`capacityId`,
//! `isOnDedicatedCapacity`) and `GET capacities` (each capacity's `sku`).

use std::collections::HashMap;

use serde::Deserialize;

use super::api::Group;
use super::client::{Api, PowerBiClient};
use super::errors::ClientError;
use super::http::{Body, RetryMode};
use super::resolve::is_guid;
use crate::job::model::{Job, StepId};
use crate::plan::capacity::{Facts, WorkspaceCapacity, workspaces_to_learn};

/// A Power BI capacity as `GET capacities` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct Capacity {
    #[serde(alias = "Id")]
    pub id: String,
    #[serde(default, rename = "displayName")]
    pub display_name: Option<String>,
    #[serde(default)]
    pub sku: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CapacityList {
    #[serde(default)]
    value: Vec<Capacity>,
}

impl PowerBiClient {
    /// `GET /capacities`: the capacities the caller has a right on.
    pub async fn capacities(&self, conn: &str) -> Result<Vec<Capacity>, ClientError> {
        let url = self.url(conn, Api::PowerBi, &["capacities"], &[])?;
        let resp = self
            .call(
                conn,
                Api::PowerBi,
                reqwest::Method::GET,
                url.clone(),
                Body::Empty,
                RetryMode::Idempotent,
            )
            .await?;
        let list: CapacityList = resp.json(&url)?;
        Ok(list.value)
    }

    /// The group record of workspace `name_or_id`: by name through the cached `$filter`
    /// lookup the executors use (no second request later), by GUID `GET groups/{id}`.
    pub(crate) async fn workspace_group(
        &self,
        conn: &str,
        name_or_id: &str,
    ) -> Result<Group, ClientError> {
        if is_guid(name_or_id) {
            let url = self.url(conn, Api::PowerBi, &["groups", name_or_id], &[])?;
            let resp = self
                .call(
                    conn,
                    Api::PowerBi,
                    reqwest::Method::GET,
                    url.clone(),
                    Body::Empty,
                    RetryMode::Idempotent,
                )
                .await?;
            return resp.json(&url);
        }
        self.find_group(conn, name_or_id).await
    }
}

/// Reads what the service says about the workspaces of the selected `dataset` steps: one
/// workspace lookup each (shared with the executors' cache) and one `GET capacities` per
/// connection when a workspace is on a dedicated capacity. Never fails: what cannot be read
/// is [`WorkspaceCapacity::Unknown`] or a capacity without SKU, which the plan turns into
/// warnings.
pub(crate) async fn learn(client: &PowerBiClient, job: &Job, selected: &[StepId]) -> Facts {
    let mut facts = Facts::new();
    let mut skus: HashMap<String, Vec<Capacity>> = HashMap::new();
    for (conn, workspace) in workspaces_to_learn(job, selected) {
        let fact = match client.workspace_group(&conn, &workspace).await {
            Err(e) => WorkspaceCapacity::Unknown(e.to_string()),
            Ok(group) => match group.capacity_id {
                Some(id) if group.is_on_dedicated_capacity != Some(false) => {
                    if !skus.contains_key(&conn) {
                        let list = client.capacities(&conn).await.unwrap_or_else(|e| {
                            tracing::warn!(connection = %conn, "cannot list capacities: {e}");
                            Vec::new()
                        });
                        skus.insert(conn.clone(), list);
                    }
                    let found = skus[&conn].iter().find(|c| c.id.eq_ignore_ascii_case(&id));
                    WorkspaceCapacity::Dedicated {
                        sku: found.and_then(|c| c.sku.clone()),
                        name: found.and_then(|c| c.display_name.clone()),
                        capacity_id: id,
                    }
                }
                _ => WorkspaceCapacity::Shared,
            },
        };
        facts.insert((conn, workspace), fact);
    }
    facts
}

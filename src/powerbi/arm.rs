//! Azure Resource Manager calls on Fabric capacities (`Microsoft.Fabric/capacities`,
//! api-version 2023-11-01, specs/arm/fabric-capacities/): read one, resume, suspend, change
//! its SKU, and follow the long-running operation those start.

use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::client::{Api, ApiResponse, PowerBiClient};
use super::errors::ClientError;
use super::http::{Body, RetryMode};
use crate::job::model::CapacityRef;
use crate::secret::redact_api_url;

/// The api-version the spec in specs/arm/fabric-capacities/ defines.
pub(crate) const API_VERSION: &str = "2023-11-01";

/// `FabricCapacity`, the fields pbibatch reads.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ArmCapacity {
    #[serde(default)]
    pub properties: ArmCapacityProperties,
    #[serde(default)]
    pub sku: ArmSku,
}

/// `FabricCapacityProperties`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ArmCapacityProperties {
    /// `ResourceState`: Active, Paused, Resuming, Pausing, Updating, Suspended, ...
    #[serde(default)]
    pub state: String,
}

/// `RpSku`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ArmSku {
    #[serde(default)]
    pub name: String,
}

/// The answer to an operation that ARM runs asynchronously (202, or 200 when it is done).
#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    pub status: u16,
    /// `Azure-AsyncOperation`: the operation's status resource.
    pub async_operation: Option<Url>,
    /// `Location`: 202 while running, 200/204 when done.
    pub location: Option<Url>,
    pub retry_after: Option<Duration>,
}

impl Accepted {
    /// The operation id (the last path segment of its status URL), for reports.
    pub(crate) fn operation_id(&self) -> Option<String> {
        let url = self.async_operation.as_ref().or(self.location.as_ref())?;
        url.path_segments()?
            .next_back()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }
}

/// Where a long-running operation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperationState {
    Running,
    Succeeded,
    /// `Failed` or `Canceled`, with ARM's message.
    Failed(String),
}

/// ARM's operation status resource (`Azure-AsyncOperation`).
#[derive(Debug, Deserialize)]
struct OperationStatus {
    #[serde(default)]
    status: String,
    #[serde(default)]
    error: Option<OperationError>,
}

#[derive(Debug, Deserialize)]
struct OperationError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl PowerBiClient {
    fn capacity_url(
        &self,
        conn: &str,
        cap: &CapacityRef,
        action: Option<&str>,
    ) -> Result<Url, ClientError> {
        let mut segments = vec![
            "subscriptions",
            cap.subscription.as_str(),
            "resourceGroups",
            cap.resource_group.as_str(),
            "providers",
            "Microsoft.Fabric",
            "capacities",
            cap.name.as_str(),
        ];
        segments.extend(action);
        self.url(conn, Api::Arm, &segments, &[("api-version", API_VERSION)])
    }

    /// `GET .../capacities/{name}`.
    pub(crate) async fn arm_capacity(
        &self,
        conn: &str,
        cap: &CapacityRef,
    ) -> Result<ArmCapacity, ClientError> {
        let url = self.capacity_url(conn, cap, None)?;
        let resp = self
            .call(
                conn,
                Api::Arm,
                Method::GET,
                url.clone(),
                Body::Empty,
                RetryMode::Idempotent,
            )
            .await?;
        resp.json(&url)
    }

    /// `POST .../capacities/{name}/resume` or `/suspend`: sent once (a lost answer is
    /// recovered by reading the capacity's state, never by sending again).
    pub(crate) async fn arm_capacity_action(
        &self,
        conn: &str,
        cap: &CapacityRef,
        action: &str,
    ) -> Result<Accepted, ClientError> {
        let url = self.capacity_url(conn, cap, Some(action))?;
        let resp = self
            .call(
                conn,
                Api::Arm,
                Method::POST,
                url.clone(),
                Body::Empty,
                RetryMode::NotIdempotent,
            )
            .await?;
        self.accepted(conn, &resp, &url)
    }

    /// `PATCH .../capacities/{name}` with `{"sku": {"name", "tier": "Fabric"}}`.
    pub(crate) async fn arm_capacity_sku(
        &self,
        conn: &str,
        cap: &CapacityRef,
        sku: &str,
    ) -> Result<Accepted, ClientError> {
        let url = self.capacity_url(conn, cap, None)?;
        let body = json!({"sku": {"name": sku, "tier": "Fabric"}});
        let resp = self
            .call(
                conn,
                Api::Arm,
                Method::PATCH,
                url.clone(),
                Body::Json(body),
                RetryMode::NotIdempotent,
            )
            .await?;
        self.accepted(conn, &resp, &url)
    }

    fn accepted(&self, conn: &str, resp: &ApiResponse, url: &Url) -> Result<Accepted, ClientError> {
        let header = |name: &str| -> Result<Option<Url>, ClientError> {
            resp.header(name)
                .map(|v| self.arm_follow_url(conn, v, url))
                .transpose()
        };
        Ok(Accepted {
            status: resp.status,
            async_operation: header("azure-asyncoperation")?,
            location: header("location")?,
            retry_after: resp.retry_after(),
        })
    }

    /// A status URL ARM sent, checked to be on the ARM host the run uses: the token for
    /// that host is never sent anywhere else.
    fn arm_follow_url(&self, conn: &str, value: &str, request: &Url) -> Result<Url, ClientError> {
        let url = request.join(value).map_err(|e| ClientError::Decode {
            url: redact_api_url(request.as_str()),
            message: format!("invalid operation URL in the answer: {e}"),
        })?;
        let base = self.url(conn, Api::Arm, &[], &[])?;
        if url.origin() != base.origin() {
            return Err(ClientError::Decode {
                url: redact_api_url(request.as_str()),
                message: format!(
                    "the operation URL {} is not on the Azure Resource Manager host {}",
                    redact_api_url(url.as_str()),
                    base.origin().ascii_serialization()
                ),
            });
        }
        Ok(url)
    }

    /// Reads a long-running operation: its `Azure-AsyncOperation` status resource
    /// (`status` InProgress / Succeeded / Failed / Canceled), or its `Location` (202 while
    /// it runs). Returns the state and the answer's `Retry-After`.
    pub async fn arm_operation(
        &self,
        conn: &str,
        url: &Url,
        is_async_operation: bool,
    ) -> Result<(OperationState, Option<Duration>), ClientError> {
        let resp = self
            .call(
                conn,
                Api::Arm,
                Method::GET,
                url.clone(),
                Body::Empty,
                RetryMode::Idempotent,
            )
            .await?;
        let wait = resp.retry_after();
        if !is_async_operation {
            let state = if resp.status == 202 {
                OperationState::Running
            } else {
                OperationState::Succeeded
            };
            return Ok((state, wait));
        }
        let status: OperationStatus = resp.json(url)?;
        let state = match status.status.to_ascii_lowercase().as_str() {
            "succeeded" => OperationState::Succeeded,
            "failed" | "canceled" | "cancelled" => {
                let detail = status
                    .error
                    .map(|e| match (e.code, e.message) {
                        (Some(c), Some(m)) => format!("{c}: {m}"),
                        (c, m) => m.or(c).unwrap_or_default(),
                    })
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "no error details".to_string());
                OperationState::Failed(format!("operation {}: {detail}", status.status))
            }
            // InProgress, Accepted, Running, or a word ARM adds later: still running.
            _ => OperationState::Running,
        };
        Ok((state, wait))
    }
}

//! Fabric job instances (the Job Scheduler): run an item's job on demand, read one instance,
//! list an item's instances, cancel one (Gen2 dataflows and `fabric_job` steps).

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use super::{Api, JobInstance, PowerBiClient};
use crate::powerbi::errors::ClientError;
use crate::powerbi::http::{Body, RetryMode};

impl PowerBiClient {
    /// `POST /v1/workspaces/{w}/items/{i}/jobs/instances?jobType=<type>`; returns the job
    /// instance id (last segment of `Location`) and the `Retry-After` before the first poll.
    pub(crate) async fn run_fabric_job(
        &self,
        conn: &str,
        workspace_id: &str,
        item_id: &str,
        job_type: &str,
        body: Option<Value>,
    ) -> Result<(String, Option<Duration>), ClientError> {
        let url = self.url(
            conn,
            Api::Fabric,
            &[
                "workspaces",
                workspace_id,
                "items",
                item_id,
                "jobs",
                "instances",
            ],
            &[("jobType", job_type)],
        )?;
        let body = body.map_or(Body::Empty, Body::Json);
        let resp = self
            .call(
                conn,
                Api::Fabric,
                Method::POST,
                url.clone(),
                body,
                RetryMode::NotIdempotent,
            )
            .await?;
        let id = resp.location_id().ok_or_else(|| ClientError::Decode {
            url: crate::secret::redact_api_url(url.as_str()),
            message: "the job was accepted but the answer has no Location".into(),
        })?;
        Ok((id, resp.retry_after()))
    }

    /// `GET /v1/workspaces/{w}/items/{i}/jobs/instances/{id}`.
    pub async fn fabric_job(
        &self,
        conn: &str,
        workspace_id: &str,
        item_id: &str,
        job_id: &str,
    ) -> Result<(JobInstance, Option<Duration>), ClientError> {
        let url = self.url(
            conn,
            Api::Fabric,
            &[
                "workspaces",
                workspace_id,
                "items",
                item_id,
                "jobs",
                "instances",
                job_id,
            ],
            &[],
        )?;
        let (j, resp): (JobInstance, _) = self.get_json(conn, Api::Fabric, url).await?;
        Ok((j, resp.retry_after()))
    }

    /// `GET /v1/workspaces/{w}/items/{i}/jobs/instances` (first page: it holds the active
    /// jobs and the newest finished ones).
    pub(crate) async fn fabric_jobs(
        &self,
        conn: &str,
        workspace_id: &str,
        item_id: &str,
    ) -> Result<Vec<JobInstance>, ClientError> {
        self.get_list(
            conn,
            Api::Fabric,
            &[
                "workspaces",
                workspace_id,
                "items",
                item_id,
                "jobs",
                "instances",
            ],
            &[],
        )
        .await
    }

    /// `POST /v1/workspaces/{w}/items/{i}/jobs/instances/{id}/cancel`.
    pub(crate) async fn cancel_fabric_job(
        &self,
        conn: &str,
        workspace_id: &str,
        item_id: &str,
        job_id: &str,
    ) -> Result<(), ClientError> {
        let url = self.url(
            conn,
            Api::Fabric,
            &[
                "workspaces",
                workspace_id,
                "items",
                item_id,
                "jobs",
                "instances",
                job_id,
                "cancel",
            ],
            &[],
        )?;
        self.call(
            conn,
            Api::Fabric,
            Method::POST,
            url,
            Body::Empty,
            RetryMode::Idempotent,
        )
        .await
        .map(|_| ())
    }
}

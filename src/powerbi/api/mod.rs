//! Typed calls: the exact requests the executors send (docs/executors.md lists them).
//! Models are lenient: wire JSON is camelCase but PascalCase aliases are accepted, every
//! field but the id is optional, and status words stay strings (the enums are extensible).

use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use super::client::{Api, ApiResponse, PowerBiClient};
use super::errors::ClientError;
use super::http::{Body, RetryMode};

mod discovery;
mod fabric_jobs;

pub(crate) use discovery::DatasetDataflowLink;
pub(crate) use discovery::UpstreamDataflow;

/// `{"value": [...]}` (Power BI) with Fabric's paging fields.
#[derive(Debug, Deserialize)]
pub(super) struct List<T> {
    #[serde(default = "Vec::new", alias = "Value")]
    value: Vec<T>,
    #[serde(default, rename = "continuationUri")]
    continuation_uri: Option<String>,
    #[serde(default, rename = "continuationToken")]
    continuation_token: Option<String>,
}

/// A workspace (Power BI group).
#[derive(Debug, Clone, Deserialize)]
pub struct Group {
    #[serde(alias = "Id")]
    pub id: String,
    #[serde(default, alias = "Name")]
    pub name: String,
    /// The dedicated capacity the workspace is on (absent on shared capacity).
    #[serde(default, rename = "capacityId")]
    pub capacity_id: Option<String>,
    #[serde(default, rename = "isOnDedicatedCapacity")]
    pub is_on_dedicated_capacity: Option<bool>,
}

/// A named item: dataset, report, Gen1 dataflow (`objectId`), Fabric item (`displayName`).
#[derive(Debug, Clone, Deserialize)]
pub struct Item {
    #[serde(alias = "Id", alias = "objectId", alias = "ObjectId")]
    pub id: String,
    #[serde(default, alias = "Name", alias = "displayName")]
    pub name: String,
    /// Reports: `PowerBIReport` or `PaginatedReport`.
    #[serde(default, rename = "reportType", alias = "ReportType")]
    pub report_type: Option<String>,
    /// Datasets: `false` for DirectQuery and live-connection models (nothing to refresh).
    #[serde(default, rename = "isRefreshable", alias = "IsRefreshable")]
    pub is_refreshable: Option<bool>,
    /// Power BI reports: the semantic model they show (paginated reports have none).
    #[serde(default, rename = "datasetId", alias = "DatasetId")]
    pub dataset_id: Option<String>,
}

/// A refresh history entry.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RefreshEntry {
    #[serde(default, alias = "RequestId")]
    pub request_id: Option<String>,
    #[serde(default, alias = "RefreshType")]
    pub refresh_type: Option<String>,
    #[serde(default, alias = "StartTime")]
    pub start_time: Option<String>,
    #[serde(default, alias = "EndTime")]
    pub end_time: Option<String>,
    #[serde(default, alias = "Status")]
    pub status: Option<String>,
    #[serde(default, alias = "ServiceExceptionJson")]
    pub service_exception_json: Option<String>,
}

/// Execution details of an enhanced refresh.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RefreshDetail {
    #[serde(default, alias = "Status")]
    pub status: Option<String>,
    #[serde(default, alias = "ExtendedStatus")]
    pub extended_status: Option<String>,
    #[serde(default, alias = "StartTime")]
    pub start_time: Option<String>,
    #[serde(default, alias = "EndTime")]
    pub end_time: Option<String>,
    #[serde(default, alias = "Messages")]
    pub messages: Vec<RefreshMessage>,
}

/// One message of an enhanced refresh.
#[derive(Debug, Clone, Deserialize, Default)]
pub(crate) struct RefreshMessage {
    #[serde(default, alias = "Code")]
    pub code: Option<String>,
    #[serde(default, alias = "Message")]
    pub message: Option<String>,
    #[serde(default, rename = "type", alias = "Type")]
    pub kind: Option<String>,
}

/// A Gen1 dataflow transaction.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Transaction {
    #[serde(alias = "Id")]
    pub id: String,
    #[serde(default, alias = "StartTime")]
    pub start_time: Option<String>,
    #[serde(default, alias = "EndTime")]
    pub end_time: Option<String>,
    #[serde(default, alias = "Status")]
    pub status: Option<String>,
    /// Not in the spec; some answers carry an error text.
    #[serde(default, alias = "errorMessage", alias = "ErrorMessage")]
    pub error: Option<Value>,
}

/// A Fabric job instance.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct JobInstance {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub job_type: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub start_time_utc: Option<String>,
    #[serde(default)]
    pub end_time_utc: Option<String>,
    #[serde(default)]
    pub failure_reason: Option<Value>,
}

/// A report export.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Export {
    #[serde(default, alias = "Id")]
    pub id: String,
    #[serde(default, alias = "Status")]
    pub status: Option<String>,
    #[serde(default, alias = "PercentComplete")]
    pub percent_complete: Option<f64>,
    #[serde(default, alias = "Error")]
    pub error: Option<Value>,
}

impl PowerBiClient {
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        conn: &str,
        api: Api,
        url: url::Url,
    ) -> Result<(T, ApiResponse), ClientError> {
        let resp = self
            .call(
                conn,
                api,
                Method::GET,
                url.clone(),
                Body::Empty,
                RetryMode::Idempotent,
            )
            .await?;
        let v = resp.json(&url)?;
        Ok((v, resp))
    }

    /// `GET` of one page of a `{"value": [...]}` list.
    async fn get_list<T: serde::de::DeserializeOwned>(
        &self,
        conn: &str,
        api: Api,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, ClientError> {
        let url = self.url(conn, api, segments, query)?;
        let (list, _): (List<T>, _) = self.get_json(conn, api, url).await?;
        Ok(list.value)
    }

    /// `GET /groups?$filter=name eq '<name>'` (quotes doubled).
    pub(crate) async fn groups_named(
        &self,
        conn: &str,
        name: &str,
    ) -> Result<Vec<Group>, ClientError> {
        let filter = format!("name eq '{}'", name.replace('\'', "''"));
        self.get_list(conn, Api::PowerBi, &["groups"], &[("$filter", &filter)])
            .await
    }

    /// `GET /groups?$top=5000`: every workspace the caller sees (for near-match hints).
    pub async fn groups(&self, conn: &str) -> Result<Vec<Group>, ClientError> {
        self.get_list(conn, Api::PowerBi, &["groups"], &[("$top", "5000")])
            .await
    }

    /// `GET /groups/{g}/datasets|reports|dataflows`.
    pub(crate) async fn group_items(
        &self,
        conn: &str,
        workspace_id: &str,
        collection: &str,
    ) -> Result<Vec<Item>, ClientError> {
        self.get_list(
            conn,
            Api::PowerBi,
            &["groups", workspace_id, collection],
            &[],
        )
        .await
    }

    /// `GET /v1/workspaces/{w}/items?type=<type>`, following `continuationUri` /
    /// `continuationToken` to the last page.
    pub async fn fabric_items(
        &self,
        conn: &str,
        workspace_id: &str,
        item_type: &str,
    ) -> Result<Vec<Item>, ClientError> {
        self.fabric_paged(
            conn,
            &["workspaces", workspace_id, "items"],
            &[("type", item_type)],
        )
        .await
    }

    /// `GET /groups/{g}/datasets/{d}/refreshes?$top=N`, newest first.
    pub(crate) async fn refresh_history(
        &self,
        conn: &str,
        workspace_id: &str,
        dataset_id: &str,
        top: u32,
    ) -> Result<Vec<RefreshEntry>, ClientError> {
        let top = top.to_string();
        self.get_list(
            conn,
            Api::PowerBi,
            &["groups", workspace_id, "datasets", dataset_id, "refreshes"],
            &[("$top", &top)],
        )
        .await
    }

    /// `POST /groups/{g}/datasets/{d}/refreshes` with `body` (standard or enhanced).
    pub(crate) async fn trigger_dataset_refresh(
        &self,
        conn: &str,
        workspace_id: &str,
        dataset_id: &str,
        body: Value,
    ) -> Result<ApiResponse, ClientError> {
        let url = self.url(
            conn,
            Api::PowerBi,
            &["groups", workspace_id, "datasets", dataset_id, "refreshes"],
            &[],
        )?;
        self.call(
            conn,
            Api::PowerBi,
            Method::POST,
            url,
            Body::Json(body),
            RetryMode::NotIdempotent,
        )
        .await
    }

    /// `POST /groups/{g}/datasets/{d}/executeQueries` with `body` (one DAX query): the
    /// answer's JSON. A read: re-sent on any transient fault, `Retry-After` honoured.
    pub async fn execute_queries(
        &self,
        conn: &str,
        workspace_id: &str,
        dataset_id: &str,
        body: Value,
    ) -> Result<Value, ClientError> {
        let url = self.url(
            conn,
            Api::PowerBi,
            &[
                "groups",
                workspace_id,
                "datasets",
                dataset_id,
                "executeQueries",
            ],
            &[],
        )?;
        let resp = self
            .call(
                conn,
                Api::PowerBi,
                Method::POST,
                url.clone(),
                Body::Json(body),
                RetryMode::Idempotent,
            )
            .await?;
        resp.json(&url)
    }

    /// `GET /groups/{g}/datasets/{d}/refreshes/{requestId}` (202 running, 200 done).
    pub(crate) async fn refresh_details(
        &self,
        conn: &str,
        workspace_id: &str,
        dataset_id: &str,
        request_id: &str,
    ) -> Result<(RefreshDetail, Option<Duration>), ClientError> {
        let url = self.url(
            conn,
            Api::PowerBi,
            &[
                "groups",
                workspace_id,
                "datasets",
                dataset_id,
                "refreshes",
                request_id,
            ],
            &[],
        )?;
        let (d, resp): (RefreshDetail, _) = self.get_json(conn, Api::PowerBi, url).await?;
        Ok((d, resp.retry_after()))
    }

    /// `DELETE /groups/{g}/datasets/{d}/refreshes/{requestId}` (enhanced refreshes only).
    pub(crate) async fn cancel_refresh(
        &self,
        conn: &str,
        workspace_id: &str,
        dataset_id: &str,
        request_id: &str,
    ) -> Result<(), ClientError> {
        let url = self.url(
            conn,
            Api::PowerBi,
            &[
                "groups",
                workspace_id,
                "datasets",
                dataset_id,
                "refreshes",
                request_id,
            ],
            &[],
        )?;
        self.call(
            conn,
            Api::PowerBi,
            Method::DELETE,
            url,
            Body::Empty,
            RetryMode::Idempotent,
        )
        .await
        .map(|_| ())
    }

    /// `POST /groups/{g}/dataflows/{d}/refreshes[?processType=]` with `{"notifyOption": ..}`.
    pub(crate) async fn trigger_dataflow_refresh(
        &self,
        conn: &str,
        workspace_id: &str,
        dataflow_id: &str,
        notify: &str,
        process_type: Option<&str>,
    ) -> Result<ApiResponse, ClientError> {
        let query: Vec<(&str, &str)> = process_type
            .map(|p| ("processType", p))
            .into_iter()
            .collect();
        let url = self.url(
            conn,
            Api::PowerBi,
            &[
                "groups",
                workspace_id,
                "dataflows",
                dataflow_id,
                "refreshes",
            ],
            &query,
        )?;
        let body = serde_json::json!({ "notifyOption": notify });
        self.call(
            conn,
            Api::PowerBi,
            Method::POST,
            url,
            Body::Json(body),
            RetryMode::NotIdempotent,
        )
        .await
    }

    /// `GET /groups/{g}/dataflows/{d}/transactions`.
    pub(crate) async fn dataflow_transactions(
        &self,
        conn: &str,
        workspace_id: &str,
        dataflow_id: &str,
    ) -> Result<Vec<Transaction>, ClientError> {
        self.get_list(
            conn,
            Api::PowerBi,
            &[
                "groups",
                workspace_id,
                "dataflows",
                dataflow_id,
                "transactions",
            ],
            &[],
        )
        .await
    }

    /// `POST /groups/{g}/dataflows/transactions/{id}/cancel` (no dataflow id in the path);
    /// returns the service's status word.
    pub(crate) async fn cancel_transaction(
        &self,
        conn: &str,
        workspace_id: &str,
        transaction_id: &str,
    ) -> Result<Option<String>, ClientError> {
        let url = self.url(
            conn,
            Api::PowerBi,
            &[
                "groups",
                workspace_id,
                "dataflows",
                "transactions",
                transaction_id,
                "cancel",
            ],
            &[],
        )?;
        let resp = self
            .call(
                conn,
                Api::PowerBi,
                Method::POST,
                url,
                Body::Empty,
                RetryMode::Idempotent,
            )
            .await?;
        let v: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        Ok(v.get("status").and_then(Value::as_str).map(str::to_string))
    }

    /// `POST /groups/{g}/reports/{r}/ExportTo`.
    pub(crate) async fn start_export(
        &self,
        conn: &str,
        workspace_id: &str,
        report_id: &str,
        body: Value,
    ) -> Result<Export, ClientError> {
        let url = self.url(
            conn,
            Api::PowerBi,
            &["groups", workspace_id, "reports", report_id, "ExportTo"],
            &[],
        )?;
        // Not re-sent by the HTTP layer after an answer that may have been lost: the
        // protocol decides, and counts every start in the report.
        let resp = self
            .call(
                conn,
                Api::PowerBi,
                Method::POST,
                url.clone(),
                Body::Json(body),
                RetryMode::NotIdempotent,
            )
            .await?;
        resp.json(&url)
    }

    /// `GET /groups/{g}/reports/{r}/exports/{id}` (202 running, 200 terminal).
    pub(crate) async fn export_status(
        &self,
        conn: &str,
        workspace_id: &str,
        report_id: &str,
        export_id: &str,
    ) -> Result<(Export, Option<Duration>), ClientError> {
        let url = self.url(
            conn,
            Api::PowerBi,
            &[
                "groups",
                workspace_id,
                "reports",
                report_id,
                "exports",
                export_id,
            ],
            &[],
        )?;
        let (e, resp): (Export, _) = self.get_json(conn, Api::PowerBi, url).await?;
        Ok((e, resp.retry_after()))
    }

    /// `GET /groups/{g}/reports/{r}/exports/{id}/file`, unread (the caller streams it).
    pub(crate) async fn export_file(
        &self,
        conn: &str,
        workspace_id: &str,
        report_id: &str,
        export_id: &str,
    ) -> Result<reqwest::Response, ClientError> {
        let url = self.url(
            conn,
            Api::PowerBi,
            &[
                "groups",
                workspace_id,
                "reports",
                report_id,
                "exports",
                export_id,
                "file",
            ],
            &[],
        )?;
        self.call_response(
            conn,
            Api::PowerBi,
            Method::GET,
            url,
            Body::Empty,
            RetryMode::Idempotent,
        )
        .await
    }
}

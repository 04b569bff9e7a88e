//! Discovery and lineage calls (`pbibatch discover`, `validate --lineage`, `auth check`,
//! run-time fan-out): workspaces, their datasets, reports, dataflows and Fabric items, and the
//! links between them.

use serde::Deserialize;

use super::{Group, List};
use crate::powerbi::client::{Api, PowerBiClient};
use crate::powerbi::errors::ClientError;

/// A dataset as `GET /groups/{g}/datasets` lists it, with what discovery shows.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DatasetInfo {
    #[serde(alias = "Id")]
    pub id: String,
    #[serde(default, alias = "Name")]
    pub name: String,
    /// False for DirectQuery / live-connection models (they cannot be refreshed).
    #[serde(default, alias = "IsRefreshable")]
    pub is_refreshable: Option<bool>,
    /// `Abf` (import, small format), `PremiumFiles` (large format), ...
    #[serde(default, alias = "TargetStorageMode")]
    pub target_storage_mode: Option<String>,
    /// True for a model with row-level security (an embed token must name an identity; a
    /// service principal cannot query it through Execute Queries).
    #[serde(default, alias = "IsEffectiveIdentityRequired")]
    pub is_effective_identity_required: Option<bool>,
}

/// A report as `GET /groups/{g}/reports` lists it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReportInfo {
    #[serde(alias = "Id")]
    pub id: String,
    #[serde(default, alias = "Name")]
    pub name: String,
    /// Absent for paginated reports without a Power BI dataset.
    #[serde(default, alias = "DatasetId")]
    pub dataset_id: Option<String>,
    /// `PowerBIReport` or `PaginatedReport`.
    #[serde(default, alias = "ReportType")]
    pub report_type: Option<String>,
}

/// One row of `GET .../dataflows/{d}/upstreamDataflows`: a dataflow this one reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamDataflow {
    #[serde(alias = "TargetDataflowId")]
    pub target_dataflow_id: String,
    #[serde(default, alias = "GroupId")]
    pub group_id: Option<String>,
}

/// One row of `GET /groups/{g}/datasets/upstreamDataflows`: a dataset reads a dataflow.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DatasetDataflowLink {
    #[serde(alias = "DatasetObjectId")]
    pub dataset_object_id: String,
    #[serde(alias = "DataflowObjectId")]
    pub dataflow_object_id: String,
    /// The dataflow's workspace.
    #[serde(default, alias = "WorkspaceObjectId")]
    pub workspace_object_id: Option<String>,
}

/// A Fabric item with its type (`Dataflow`, `DataPipeline`, `SemanticModel`, ...).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FabricItem {
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    /// The item type; the enum is extensible, so it stays a string.
    #[serde(default, rename = "type")]
    pub item_type: String,
}

/// Page size of `GET /groups?$top=&$skip=` (the service's documented maximum is 5000).
const GROUPS_PAGE: usize = 5000;

impl PowerBiClient {
    /// Every workspace the caller sees, paging with `$top` / `$skip` (Power BI has no
    /// next link) until a short page.
    pub(crate) async fn groups_all(&self, conn: &str) -> Result<Vec<Group>, ClientError> {
        self.groups_paged(conn, GROUPS_PAGE).await
    }

    /// [`PowerBiClient::groups_all`] with a chosen page size (tests use small pages).
    pub async fn groups_paged(&self, conn: &str, page: usize) -> Result<Vec<Group>, ClientError> {
        let page = page.max(1);
        let top = page.to_string();
        let mut out: Vec<Group> = Vec::new();
        // Bounded: 1000 pages of 5000 is far beyond any tenant.
        for _ in 0..1000 {
            let skip = out.len().to_string();
            let url = self.url(
                conn,
                Api::PowerBi,
                &["groups"],
                &[("$top", &top), ("$skip", &skip)],
            )?;
            let (list, _): (List<Group>, _) = self.get_json(conn, Api::PowerBi, url).await?;
            let n = list.value.len();
            out.extend(list.value);
            if n < page {
                break;
            }
        }
        Ok(out)
    }

    /// `GET /groups/{g}/datasets` with refreshability and storage mode.
    pub(crate) async fn datasets_detail(
        &self,
        conn: &str,
        workspace_id: &str,
    ) -> Result<Vec<DatasetInfo>, ClientError> {
        self.get_list(
            conn,
            Api::PowerBi,
            &["groups", workspace_id, "datasets"],
            &[],
        )
        .await
    }

    /// `GET /groups/{g}/reports` with each report's dataset.
    pub(crate) async fn reports_detail(
        &self,
        conn: &str,
        workspace_id: &str,
    ) -> Result<Vec<ReportInfo>, ClientError> {
        self.get_list(
            conn,
            Api::PowerBi,
            &["groups", workspace_id, "reports"],
            &[],
        )
        .await
    }

    /// `GET /groups/{g}/dataflows/{d}/upstreamDataflows`: the dataflows `dataflow_id` reads.
    pub async fn upstream_dataflows(
        &self,
        conn: &str,
        workspace_id: &str,
        dataflow_id: &str,
    ) -> Result<Vec<UpstreamDataflow>, ClientError> {
        self.get_list(
            conn,
            Api::PowerBi,
            &[
                "groups",
                workspace_id,
                "dataflows",
                dataflow_id,
                "upstreamDataflows",
            ],
            &[],
        )
        .await
    }

    /// `GET /groups/{g}/datasets/upstreamDataflows`: every dataset → dataflow link of the
    /// workspace's datasets.
    pub(crate) async fn dataset_dataflow_links(
        &self,
        conn: &str,
        workspace_id: &str,
    ) -> Result<Vec<DatasetDataflowLink>, ClientError> {
        self.get_list(
            conn,
            Api::PowerBi,
            &["groups", workspace_id, "datasets", "upstreamDataflows"],
            &[],
        )
        .await
    }

    /// `GET /v1/workspaces`, every page: the workspaces the Fabric token sees.
    pub(crate) async fn fabric_workspaces(
        &self,
        conn: &str,
    ) -> Result<Vec<FabricItem>, ClientError> {
        self.fabric_paged(conn, &["workspaces"], &[]).await
    }

    /// `GET /v1/workspaces/{w}/items` (every type), every page.
    pub(crate) async fn fabric_items_all(
        &self,
        conn: &str,
        workspace_id: &str,
    ) -> Result<Vec<FabricItem>, ClientError> {
        self.fabric_paged(conn, &["workspaces", workspace_id, "items"], &[])
            .await
    }

    /// Follows `continuationUri` (else `continuationToken`, sent with `query`) until neither
    /// is given.
    pub(super) async fn fabric_paged<T: serde::de::DeserializeOwned>(
        &self,
        conn: &str,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, ClientError> {
        let first = self.url(conn, Api::Fabric, segments, query)?;
        let mut url = first.clone();
        let mut out = Vec::new();
        for _ in 0..10_000 {
            let (list, _): (List<T>, _) = self.get_json(conn, Api::Fabric, url.clone()).await?;
            out.extend(list.value);
            url = match (list.continuation_uri, list.continuation_token) {
                (Some(u), _) if !u.is_empty() => url.join(&u).map_err(|_| ClientError::Decode {
                    url: crate::secret::redact_api_url(first.as_str()),
                    message: "bad continuationUri".into(),
                })?,
                (_, Some(t)) if !t.is_empty() => {
                    let mut next = query.to_vec();
                    next.push(("continuationToken", &t));
                    self.url(conn, Api::Fabric, segments, &next)?
                }
                _ => return Ok(out),
            };
        }
        Ok(out)
    }
}

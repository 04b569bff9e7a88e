//! Knowing the estate before touching it: `pbibatch discover`, `validate --lineage` and
//! `auth check`.
//!
//! ```text
//! credentials (--job connections | AZURE_* / PBIBATCH_ACCESS_TOKEN | --simulate)  setup.rs
//!   --> fetch.rs: workspaces (paged $top/$skip), datasets, Gen1 dataflows, reports,
//!       Fabric items (paged continuationToken) --> Estate
//!   --> lineage.rs: dataflow -> dataflow, dataflow -> dataset, dataset -> report edges
//!   --> render.rs (table, JSON, Mermaid) | emit.rs (job skeleton) | check.rs (validate)
//! auth.rs: one token per scope and connection, explained Entra / Power BI errors
//! ```
//!
//! Nothing here triggers a refresh: every call is a GET (plus the token requests).

pub mod auth;
mod check;
mod demo;
pub(crate) mod emit;
mod fetch;
pub(crate) mod lineage;
pub mod render;
mod setup;

use serde::Serialize;

use crate::powerbi::ClientError;

pub use check::{Finding, compare};
pub(crate) use check::{LiveOptions, check_live};
pub use demo::demo_profile;
pub use fetch::{DiscoverOptions, discover};
pub(crate) use setup::{Target, TargetOptions};

/// Why discovery failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DiscoverError {
    /// A `--workspace` that the credentials do not see.
    #[error(
        "workspace `{name}` not found among the {visible} workspaces these credentials see{hint}"
    )]
    UnknownWorkspace {
        name: String,
        visible: usize,
        /// `; did you mean ...?` or empty.
        hint: String,
    },
    /// A call to Power BI failed.
    #[error("failed to {what}: {source}")]
    Client {
        what: String,
        #[source]
        source: Box<ClientError>,
    },
}

impl DiscoverError {
    fn client(what: impl Into<String>) -> impl FnOnce(ClientError) -> DiscoverError {
        let what = what.into();
        move |source| DiscoverError::Client {
            what,
            source: Box::new(source),
        }
    }
}

/// Everything discovery saw, in the order the services listed it.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Estate {
    pub workspaces: Vec<Workspace>,
    /// Present when lineage was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lineage: Option<Vec<lineage::Edge>>,
}

/// One workspace and its items.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub datasets: Vec<Dataset>,
    /// Power BI (Gen1) dataflows.
    pub dataflows: Vec<Dataflow>,
    pub reports: Vec<Report>,
    /// Fabric items Power BI does not list: Dataflow Gen2 (`Dataflow`), pipelines,
    /// notebooks, lakehouses...
    pub fabric_items: Vec<FabricItem>,
    /// What could not be read here (e.g. Fabric refused the token), in words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// A semantic model.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Dataset {
    pub id: String,
    pub name: String,
    /// False for DirectQuery / live-connection models; `None` when the service did not say.
    pub refreshable: Option<bool>,
    /// `Abf` (small format), `PremiumFiles` (large format)...
    pub storage_mode: Option<String>,
}

/// A Power BI (Gen1) dataflow.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Dataflow {
    pub id: String,
    pub name: String,
}

/// A report and the dataset it shows.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub id: String,
    pub name: String,
    /// True for paginated (RDL) reports.
    pub paginated: bool,
    pub dataset_id: Option<String>,
    /// The dataset's name when it is in a discovered workspace.
    pub dataset: Option<String>,
}

/// A Fabric item.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FabricItem {
    pub id: String,
    pub name: String,
    /// The Fabric item type (`Dataflow` is a Dataflow Gen2).
    #[serde(rename = "type")]
    pub item_type: String,
}

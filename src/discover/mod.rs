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
//! query_probe.rs: `auth check --job`: may each connection query its data checks' models?
//! ```
//!
//! Nothing here triggers a refresh: every call is a GET (plus the token requests and, for
//! `auth check --job` with data checks, one constant Execute Queries probe per model).

pub mod auth;
mod check;
mod demo;
pub(crate) mod emit;
mod fetch;
pub(crate) mod lineage;
pub mod query_probe;
pub mod render;
mod setup;

use serde::Serialize;

use crate::powerbi::ClientError;

pub use check::{Finding, compare};
pub(crate) use check::{LiveOptions, check_live};
pub use demo::demo_profile;
pub use fetch::{DiscoverOptions, discover};
pub(crate) use setup::{Target, TargetOptions, load_job};

/// Why discovery (or `auth check`, or the live check) could not go on.
#[derive(Debug, Clone, thiserror::Error, miette::Diagnostic)]
pub enum DiscoverError {
    /// A `--workspace` that the credentials do not see.
    #[error(
        "workspace `{name}` not found among the {visible} workspaces these credentials see{hint}"
    )]
    #[diagnostic(code(pbibatch::discover::unknown_workspace))]
    UnknownWorkspace {
        name: String,
        visible: usize,
        /// `; did you mean ...?` or empty.
        hint: String,
    },
    /// A call to Power BI failed.
    #[error("failed to {what}: {source}")]
    #[diagnostic(code(pbibatch::discover::call_failed))]
    Client {
        what: String,
        #[source]
        source: Box<ClientError>,
    },
    /// `--connection` other than `default` without `--job`.
    #[error("--connection needs --job (only `default` exists without one)")]
    #[diagnostic(code(pbibatch::discover::connection_needs_job))]
    ConnectionNeedsJob,
    /// `--connection` names no connection of the job.
    #[error("no connection `{name}` (the job has {known})")]
    #[diagnostic(code(pbibatch::discover::unknown_connection))]
    UnknownConnection {
        name: String,
        /// The job's connections, as `` `a`, `b` ``.
        known: String,
    },
    /// The credentials of the connections to use are not in the environment.
    #[error(
        "no credentials: {} environment variable{} not set:\n{}\n\
         set AZURE_TENANT_ID and AZURE_CLIENT_ID with AZURE_CLIENT_SECRET, \
         AZURE_CLIENT_CERTIFICATE_PATH or AZURE_FEDERATED_TOKEN_FILE (or PBIBATCH_ACCESS_TOKEN), \
         pass --job FILE to use its connections (`managed_identity`, `azure_cli`, ...), \
         or try --simulate",
        .missing.len(),
        if .missing.len() == 1 { " is" } else { "s are" },
        .missing.iter().map(|(v, c)| format!("  {v} (connection `{c}`)")).collect::<Vec<_>>().join("\n")
    )]
    #[diagnostic(code(pbibatch::discover::no_credentials))]
    NoCredentials {
        /// (variable, connection that reads it), in order.
        missing: Vec<(String, String)>,
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

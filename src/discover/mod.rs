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

use crate::cli::{DiscoverArgs, TableFormat};
use crate::error::{Error, exit};
use crate::powerbi::ClientError;

pub use check::{Finding, compare, validate_lineage};
pub use demo::demo_profile;
pub use fetch::{DiscoverOptions, discover};

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

fn write_stdout(text: &str) -> Result<(), Error> {
    crate::stdout::write(text)
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("failed to start the async runtime", e))
}

/// `pbibatch discover`: prints the estate (table or JSON), its lineage, and writes a job
/// skeleton. Exit 0, 1 when a remote call failed, 2 for bad input.
pub fn command(args: DiscoverArgs) -> Result<u8, Error> {
    runtime()?.block_on(command_async(args))
}

async fn command_async(args: DiscoverArgs) -> Result<u8, Error> {
    let target = setup::Target::for_discover(&args).await?;
    let options = DiscoverOptions {
        workspaces: args.workspace.clone(),
        // The skeleton's depends_on come from the lineage.
        lineage: args.lineage || args.emit_job.is_some(),
    };
    let result = discover(&target.client, &target.connection, &options).await;
    target.shutdown().await;
    let estate = match result {
        Ok(estate) => estate,
        Err(e @ DiscoverError::UnknownWorkspace { .. }) => {
            return Err(Error::Invalid(e.to_string()));
        }
        Err(e) => {
            eprintln!("error: {e}");
            if let DiscoverError::Client { source, .. } = &e
                && let Some(advice) = auth::advice(source)
            {
                eprintln!("  {advice}");
            }
            return Ok(exit::FAILED);
        }
    };
    let text = match args.format {
        TableFormat::Table => {
            let mut t = render::table(&estate);
            if args.lineage {
                t.push('\n');
                t.push_str(&render::lineage_table(&estate));
                t.push('\n');
                t.push_str(&render::mermaid(&estate));
            }
            t
        }
        TableFormat::Json => {
            let mut shown = estate.clone();
            if !args.lineage {
                shown.lineage = None;
            }
            render::json(&shown)
        }
    };
    write_stdout(&text)?;
    if let Some(path) = &args.emit_job {
        let cwd = std::env::current_dir()
            .map_err(|e| Error::io("failed to read the current directory".to_string(), e))?;
        let schema = emit::schema_path_for(path, &cwd);
        let options = emit::EmitOptions {
            schema: schema.path,
            ..emit::EmitOptions::default()
        };
        let skeleton = emit::job_skeleton(&estate, &options);
        std::fs::write(path, &skeleton.text)
            .map_err(|e| Error::io(format!("failed to write {}", path.display()), e))?;
        eprintln!(
            "wrote a job skeleton with {} step{} to {}; review the lines marked DECIDE, then `pbibatch validate {}`",
            skeleton.steps,
            if skeleton.steps == 1 { "" } else { "s" },
            path.display(),
            path.display()
        );
        if !schema.found {
            eprintln!(
                "no schemas/pbibatch-job.schema.json above {}: its `$schema` comment names the one `pbibatch schema > schemas/pbibatch-job.schema.json` writes here",
                path.display()
            );
        }
    }
    Ok(exit::OK)
}

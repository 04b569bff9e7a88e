//! `pbibatch graph FILE` (Mermaid or dot) and `pbibatch schema` (the job file's JSON Schema).

use crate::cli::{GraphArgs, GraphFormat};
use crate::error::{Error, exit};
use crate::job;
use crate::plan::graph;

/// `pbibatch graph FILE`: Mermaid or dot.
pub(super) fn command(args: &GraphArgs) -> Result<u8, Error> {
    let job = super::load::load_or_report(&args.job, &[])?;
    let text = match args.format {
        GraphFormat::Mermaid => graph::mermaid(&job),
        GraphFormat::Dot => graph::dot(&job),
    };
    crate::stdout::write(&text)?;
    Ok(exit::OK)
}

/// `pbibatch schema`: the job file's JSON Schema.
pub(super) fn schema() -> Result<u8, Error> {
    crate::stdout::write(&job::schema::schema_text())?;
    Ok(exit::OK)
}

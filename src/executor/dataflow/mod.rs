//! `dataflow`: Gen1 through Power BI REST (refresh + transactions), Gen2 through the Fabric
//! job scheduler (`Execute` job instance).
//!
//! - [`gen1`]: refresh + transactions (set difference to find ours), cancel by transaction;
//! - [`gen2`]: the `Execute` job instance, first poll not before `Retry-After`.

mod gen1;
mod gen2;

pub(crate) use gen1::Gen1;

use super::{AttemptContext, AttemptOutcome};
use crate::job::model::{DataflowStep, Generation};
use crate::powerbi::PowerBiClient;

/// Runs one attempt of a dataflow step.
pub(crate) async fn run(
    client: PowerBiClient,
    ctx: AttemptContext,
    df: DataflowStep,
) -> AttemptOutcome {
    match df.generation {
        Generation::Gen1 => gen1::run(&client, &ctx, &df).await,
        Generation::Gen2 => gen2::run(&client, &ctx, &df).await,
    }
}

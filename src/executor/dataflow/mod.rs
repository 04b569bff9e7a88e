//! `dataflow`: Gen1 through Power BI REST (refresh + transactions), Gen2 through the Fabric
//! job scheduler (`Execute` job instance).
//!
//! - [`gen1`]: refresh + transactions (set difference to find ours), cancel by transaction;
//! - [`gen2`]: the `Execute` job instance, first poll not before `Retry-After`.

mod gen1;
mod gen2;

pub(crate) use gen1::{Gen1, TxProgress, expected_duration};
pub use gen2::gen2_body;

use super::common::{CancelTarget, conclude};
use super::{AttemptContext, AttemptOutcome};
use crate::job::model::{DataflowStep, Generation};
use crate::powerbi::PowerBiClient;

/// Times a trigger is re-sent after an answer that leaves it unknown whether it was taken.
const MAX_AMBIGUOUS_TRIGGERS: u32 = 3;
/// Times a running refresh is waited for / cancelled before giving up.
const MAX_RUNNING_ROUNDS: u32 = 5;

/// Runs one attempt of a dataflow step.
pub(crate) async fn run(
    client: PowerBiClient,
    ctx: AttemptContext,
    df: DataflowStep,
) -> AttemptOutcome {
    let mut target: Option<CancelTarget> = None;
    let result = match df.generation {
        Generation::Gen1 => gen1::gen1(&client, &ctx, &df, &mut target).await,
        Generation::Gen2 => gen2::gen2(&client, &ctx, &df, &mut target).await,
    };
    conclude(&client, &ctx, result, target.as_ref()).await
}

//! Ranking hints for a first run: when the state store has no past duration for a step, the
//! service's own run history says how long the resource's runs usually take
//! ([`Executor::estimate`]: one listing per step, nothing triggered), so the scheduler's
//! longest-path ranking already weighs real durations on a job's first run.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::Executor;
use crate::job::model::StepId;
use crate::plan::Plan;

/// Listings read at once.
pub(crate) const PARALLEL_READS: usize = 8;
/// The longest the run waits for the estimates before it starts without the missing ones.
pub(crate) const TIME_LIMIT: Duration = Duration::from_secs(20);

/// Seconds per selected step that `known` lacks, from the service's run history; steps
/// whose history says nothing are left out (the scheduler weighs them with the median).
/// Nothing is read when every step can start at once (`concurrency` at least the number of
/// selected steps): the ranking then decides nothing.
pub async fn service_hints(
    executor: &Arc<dyn Executor>,
    plan: &Plan,
    concurrency: u32,
    known: &HashMap<StepId, f64>,
    interrupt: &CancellationToken,
) -> HashMap<StepId, f64> {
    if plan.selected.len() <= concurrency as usize {
        return HashMap::new();
    }
    let missing: Vec<_> = plan
        .selected
        .iter()
        .filter(|id| !known.contains_key(*id))
        .filter_map(|id| plan.job.steps.get(id))
        .map(|step| Arc::new(step.clone()))
        .collect();
    if missing.is_empty() {
        return HashMap::new();
    }
    let reads = futures::stream::iter(missing.into_iter().map(|step| {
        let id = step.id.clone();
        let estimate = executor.estimate(step);
        async move { (id, estimate.await) }
    }))
    .buffer_unordered(PARALLEL_READS)
    .filter_map(|(id, d)| async move { d.map(|d| (id, d.as_secs_f64())) });
    let mut out = HashMap::new();
    let collect = reads.for_each(|(id, secs)| {
        out.insert(id, secs);
        async {}
    });
    tokio::select! {
        _ = collect => {}
        _ = tokio::time::sleep(TIME_LIMIT) => {
            tracing::warn!("the service's run history did not answer within {}s: ranking without it", TIME_LIMIT.as_secs());
        }
        _ = interrupt.cancelled() => {}
    }
    out
}

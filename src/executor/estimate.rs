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
use crate::event::{AUTO_MIN_RUNS, Expected, Usual};
use crate::job::model::{ExpectedDuration, StepId};
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
    .filter_map(|(id, d)| async move { d.map(|d| (id, d.median.as_secs_f64())) });
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

/// The expected durations of the selected steps that have one (`expected_duration`): a
/// stated one as written; `auto` from `local` (each step's past runs in the state store) when
/// it has enough runs, else from the service's run history of the step's resource (one
/// listing per such step, read at most [`PARALLEL_READS`] at once, for at most
/// [`TIME_LIMIT`]).
pub async fn expected_durations(
    executor: &Arc<dyn Executor>,
    plan: &Plan,
    local: &HashMap<StepId, Usual>,
    interrupt: &CancellationToken,
) -> HashMap<StepId, Expected> {
    let steps: Vec<_> = plan
        .selected
        .iter()
        .filter_map(|id| plan.job.steps.get(id))
        .filter(|s| s.expected_duration.is_some())
        .collect();
    let to_read: Vec<_> = steps
        .iter()
        .filter(|s| s.expected_duration == Some(ExpectedDuration::Auto))
        .filter(|s| local.get(&s.id).is_none_or(|u| u.runs < AUTO_MIN_RUNS))
        .map(|s| Arc::new((*s).clone()))
        .collect();
    let mut service: HashMap<StepId, Usual> = HashMap::new();
    if !to_read.is_empty() {
        let reads = futures::stream::iter(to_read.into_iter().map(|step| {
            let id = step.id.clone();
            let estimate = executor.estimate(step);
            async move { (id, estimate.await) }
        }))
        .buffer_unordered(PARALLEL_READS)
        .filter_map(|(id, u)| async move { u.map(|u| (id, u)) });
        let collect = reads.for_each(|(id, u)| {
            service.insert(id, u);
            async {}
        });
        tokio::select! {
            _ = collect => {}
            _ = tokio::time::sleep(TIME_LIMIT) => {
                tracing::warn!("the service's run history did not answer within {}s: `expected_duration: auto` learns from the local history only", TIME_LIMIT.as_secs());
            }
            _ = interrupt.cancelled() => {}
        }
    }
    steps
        .into_iter()
        .filter_map(|s| {
            let stated = s.expected_duration?;
            let e = Expected::resolve(
                stated,
                s.on_overrun,
                local.get(&s.id).copied(),
                service.get(&s.id).copied(),
            );
            Some((s.id.clone(), e))
        })
        .collect()
}

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
use crate::job::model::{ExpectedDuration, Step, StepId};
use crate::plan::Plan;

/// Listings read at once.
pub(crate) const PARALLEL_READS: usize = 8;
/// The longest the run waits for the estimates before it starts without the missing ones.
pub(crate) const TIME_LIMIT: Duration = Duration::from_secs(20);

/// What the service's run history said of the steps' resources, per step read: `None` when
/// it said nothing usable (no successful run, or the step starts no listable work).
pub type Readings = HashMap<StepId, Option<Usual>>;

/// Reads the service's run history of each step's resource ([`Executor::estimate`]: one
/// listing per step, at most [`PARALLEL_READS`] at once, for at most [`TIME_LIMIT`]); a step
/// still unread at the limit or at an interrupt is left out. `without` ends the warning at the
/// limit: what the run does without the readings.
async fn read_usual(
    executor: &Arc<dyn Executor>,
    steps: Vec<Arc<Step>>,
    interrupt: &CancellationToken,
    without: &str,
) -> Readings {
    let mut out = Readings::new();
    if steps.is_empty() {
        return out;
    }
    let reads = futures::stream::iter(steps.into_iter().map(|step| {
        let id = step.id.clone();
        let estimate = executor.estimate(step);
        async move { (id, estimate.await) }
    }))
    .buffer_unordered(PARALLEL_READS);
    let collect = reads.for_each(|(id, usual)| {
        out.insert(id, usual);
        async {}
    });
    tokio::select! {
        _ = collect => {}
        _ = tokio::time::sleep(TIME_LIMIT) => {
            tracing::warn!("the service's run history did not answer within {}s: {without}", TIME_LIMIT.as_secs());
        }
        _ = interrupt.cancelled() => {}
    }
    out
}

/// Seconds per selected step that `known` lacks, from the service's run history (`read`
/// holds what was read already, for `expected_duration: auto`, and is not read again); steps
/// whose history says nothing are left out (the scheduler weighs them with the median).
/// Nothing is read when every step can start at once (`concurrency` at least the number of
/// selected steps): the ranking then decides nothing.
pub async fn service_hints(
    executor: &Arc<dyn Executor>,
    plan: &Plan,
    concurrency: u32,
    known: &HashMap<StepId, f64>,
    read: &Readings,
    interrupt: &CancellationToken,
) -> HashMap<StepId, f64> {
    if plan.selected.len() <= concurrency as usize {
        return HashMap::new();
    }
    let missing: Vec<&Step> = plan
        .selected
        .iter()
        .filter(|id| !known.contains_key(*id))
        .filter_map(|id| plan.job.steps.get(id))
        .collect();
    let unread = missing
        .iter()
        .filter(|s| !read.contains_key(&s.id))
        .map(|s| Arc::new((*s).clone()))
        .collect();
    let fresh = read_usual(executor, unread, interrupt, "ranking without it").await;
    missing
        .iter()
        .filter_map(|s| {
            let usual = fresh.get(&s.id).or_else(|| read.get(&s.id))?.as_ref()?;
            Some((s.id.clone(), usual.median.as_secs_f64()))
        })
        .collect()
}

/// The expected durations of the selected steps that have one (`expected_duration`): a
/// stated one as written; `auto` from `local` (each step's past runs in the state store) when
/// it has enough runs, else from the service's run history of the step's resource. Also
/// returns what the service's history said (for [`service_hints`]).
pub async fn expected_durations(
    executor: &Arc<dyn Executor>,
    plan: &Plan,
    local: &HashMap<StepId, Usual>,
    interrupt: &CancellationToken,
) -> (HashMap<StepId, Expected>, Readings) {
    let steps: Vec<&Step> = plan
        .selected
        .iter()
        .filter_map(|id| plan.job.steps.get(id))
        .filter(|s| s.expected_duration.is_some())
        .collect();
    let to_read = steps
        .iter()
        .filter(|s| s.expected_duration == Some(ExpectedDuration::Auto))
        .filter(|s| local.get(&s.id).is_none_or(|u| u.runs < AUTO_MIN_RUNS))
        .map(|s| Arc::new((*s).clone()))
        .collect();
    let service = read_usual(
        executor,
        to_read,
        interrupt,
        "`expected_duration: auto` learns from the local history only",
    )
    .await;
    let expected = steps
        .into_iter()
        .filter_map(|s| {
            let stated = s.expected_duration?;
            let e = Expected::resolve(
                stated,
                s.on_overrun,
                local.get(&s.id).copied(),
                service.get(&s.id).copied().flatten(),
            );
            Some((s.id.clone(), e))
        })
        .collect();
    (expected, service)
}

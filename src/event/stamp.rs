//! The stamped facts of an event stream written by hand (test fixtures, benchmarks): what the
//! scheduler would have stamped, derived from the timestamps and statuses.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{Counts, RunEvent, RunEventKind};

/// Fills `duration`, `counts` and `running` of every `StepFinished` and `counts` and
/// `duration` of `RunFinished` as the scheduler does for a real run: a step's duration runs
/// from its first `AttemptStarted`, the run's from `RunStarted`.
pub fn stamp(events: &mut [RunEvent]) {
    let mut run_started: Option<DateTime<Utc>> = None;
    let mut first_start: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut open = 0u32;
    let mut so_far = Counts::default();
    let since = |from: DateTime<Utc>, to: DateTime<Utc>| (to - from).to_std().unwrap_or_default();
    for event in events.iter_mut() {
        let at = event.at;
        match &mut event.kind {
            RunEventKind::RunStarted { .. } => run_started = Some(at),
            RunEventKind::AttemptStarted { step, .. } => {
                if !first_start.contains_key(step) {
                    first_start.insert(step.clone(), at);
                    open += 1;
                }
            }
            RunEventKind::StepFinished {
                step,
                status,
                duration,
                counts,
                running,
                ..
            } => {
                *duration = first_start.get(step).map(|s| since(*s, at));
                if duration.is_some() {
                    open = open.saturating_sub(1);
                }
                so_far.add(*status);
                *counts = so_far;
                *running = open;
            }
            RunEventKind::RunFinished {
                counts, duration, ..
            } => {
                *counts = so_far;
                *duration = run_started.map_or_else(Default::default, |s| since(s, at));
            }
            RunEventKind::AttemptFinished { .. }
            | RunEventKind::StepProgress { .. }
            | RunEventKind::StepOverran { .. }
            | RunEventKind::Stopping { .. } => {}
        }
    }
}

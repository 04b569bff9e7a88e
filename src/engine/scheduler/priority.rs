//! The scheduler's priority: the longest remaining path of each step.

use std::collections::HashMap;

use crate::job::model::StepId;
use crate::plan::Plan;

/// Priority of each selected step: its longest remaining path, weighted by the hinted
/// durations (milliseconds) when hints are given, else counted in steps.
pub(super) fn priorities(plan: &Plan, hint: &HashMap<StepId, f64>) -> HashMap<StepId, u64> {
    if hint.is_empty() {
        return plan
            .remaining
            .iter()
            .map(|(k, v)| (k.clone(), u64::from(*v)))
            .collect();
    }
    // Steps without history weigh the median of those with one.
    let mut known: Vec<f64> = hint
        .values()
        .copied()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .collect();
    known.sort_by(f64::total_cmp);
    let fallback = known.get(known.len() / 2).copied().unwrap_or(1.0);
    let mut out: HashMap<StepId, u64> = HashMap::new();
    // Waves are topological levels: children sit in later waves.
    for wave in plan.waves.iter().rev() {
        for id in wave {
            let own = hint
                .get(id)
                .copied()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .unwrap_or(fallback);
            let below = plan
                .children(id)
                .iter()
                .filter_map(|c| out.get(c).copied())
                .max()
                .unwrap_or(0);
            // Saturating float-to-int cast: absurd hints cannot overflow.
            let own_ms = (own * 1000.0).round() as u64;
            out.insert(id.clone(), below.saturating_add(own_ms.max(1)));
        }
    }
    out
}

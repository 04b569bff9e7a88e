//! The limits a step must fit in before it starts: the global concurrency, its named pools
//! (its `pool:` and the data limits it joins, see [`super::DataLimits`]), and the exclusive
//! resources the plan says it holds ([`crate::plan::StepNeeds::exclusive`]: one in-flight
//! step per workspace + dataset / dataflow, per capacity).
//!
//! The scheduler is a single task, so these are plain counters rather than semaphores: a step
//! takes its permits when it starts and gives them back when it reaches a final status.

use std::collections::{HashMap, HashSet};

use crate::job::model::Job;

/// Permits in use.
#[derive(Debug)]
pub(super) struct Limits {
    concurrency: usize,
    in_flight: usize,
    pool_limits: HashMap<String, usize>,
    pool_used: HashMap<String, usize>,
    busy_resources: HashSet<String>,
}

impl Limits {
    /// Limits of `job`, with `concurrency` overriding `job.concurrency`, plus the named
    /// limits given as data (`extra`; a name also under `pools:` keeps the smaller size).
    pub(super) fn new(job: &Job, concurrency: Option<u32>, extra: &HashMap<String, u32>) -> Limits {
        let concurrency = concurrency.unwrap_or(job.concurrency).max(1) as usize;
        let mut pool_limits: HashMap<String, usize> = job
            .pools
            .iter()
            .map(|(k, v)| (k.clone(), (*v).max(1) as usize))
            .collect();
        for (k, v) in extra {
            let size = (*v).max(1) as usize;
            pool_limits
                .entry(k.clone())
                .and_modify(|s| *s = (*s).min(size))
                .or_insert(size);
        }
        Limits {
            concurrency,
            in_flight: 0,
            pool_limits,
            pool_used: HashMap::new(),
            busy_resources: HashSet::new(),
        }
    }

    /// True when nothing more can start at all.
    pub(super) fn full(&self) -> bool {
        self.in_flight >= self.concurrency
    }

    /// True when a step with these pools and exclusive resources can start now.
    pub(super) fn fits(&self, pools: &[String], exclusive: &[String]) -> bool {
        if self.full() {
            return false;
        }
        for pool in pools {
            // A pool the job does not declare is rejected by validation; if one slips
            // through, it has no limit of its own rather than blocking the step forever.
            if let Some(&limit) = self.pool_limits.get(pool)
                && self.pool_used.get(pool).copied().unwrap_or(0) >= limit
            {
                return false;
            }
        }
        !exclusive.iter().any(|r| self.busy_resources.contains(r))
    }

    /// Takes the permits of a starting step.
    pub(super) fn acquire(&mut self, pools: &[String], exclusive: &[String]) {
        self.in_flight += 1;
        for pool in pools {
            *self.pool_used.entry(pool.clone()).or_insert(0) += 1;
        }
        self.busy_resources.extend(exclusive.iter().cloned());
    }

    /// Gives back the permits of a finished step.
    pub(super) fn release(&mut self, pools: &[String], exclusive: &[String]) {
        self.in_flight = self.in_flight.saturating_sub(1);
        for pool in pools {
            if let Some(used) = self.pool_used.get_mut(pool) {
                *used = used.saturating_sub(1);
            }
        }
        for r in exclusive {
            self.busy_resources.remove(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_and_resources_are_counted() {
        let mut job = crate::engine::tests::job(Vec::new(), 3);
        job.pools.insert("p".into(), 1);
        let mut limits = Limits::new(&job, None, &HashMap::new());
        let p = ["p".to_string()];
        let r = ["r".to_string()];
        assert!(limits.fits(&p, &r));
        limits.acquire(&p, &r);
        assert!(!limits.fits(&p, &[]), "pool full");
        assert!(!limits.fits(&[], &r), "resource busy");
        assert!(limits.fits(&["undeclared".to_string()], &[]));
        limits.acquire(&[], &[]);
        limits.acquire(&[], &[]);
        assert!(limits.full());
        limits.release(&p, &r);
        assert!(limits.fits(&p, &r));
    }

    #[test]
    fn a_step_fits_only_when_every_pool_it_joins_has_room() {
        let mut job = crate::engine::tests::job(Vec::new(), 10);
        job.pools.insert("p".into(), 5);
        let extra = HashMap::from([("capacity:c".to_string(), 2), ("p".to_string(), 9)]);
        let mut limits = Limits::new(&job, None, &extra);
        let both = ["p".to_string(), "capacity:c".to_string()];
        let cap = ["capacity:c".to_string()];
        limits.acquire(&both, &[]);
        limits.acquire(&cap, &[]);
        assert!(!limits.fits(&both, &[]), "the capacity limit is full");
        assert!(limits.fits(&["p".to_string()], &[]));
        limits.release(&cap, &[]);
        assert!(limits.fits(&both, &[]));
        // A data limit never widens a pool of the job.
        for _ in 0..4 {
            limits.acquire(&["p".to_string()], &[]);
        }
        assert!(!limits.fits(&["p".to_string()], &[]));
    }
}

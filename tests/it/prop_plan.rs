//! Property tests of plans and selection on generated DAGs: every edge goes from an earlier
//! wave to a later one, and selection obeys its closure laws (`a+`, `+a`, union, exclude).

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::ops::Range;
use std::sync::Arc;

use indexmap::IndexSet;
use pbibatch::job::load_bytes;
use pbibatch::job::model::Job;
use pbibatch::plan::{Plan, select};
use proptest::prelude::*;

/// A generated acyclic job: step `s{i}` depends on `deps[i]` (all earlier steps).
#[derive(Debug, Clone)]
pub(crate) struct GenJob {
    pub text: String,
    pub deps: Vec<Vec<usize>>,
    /// Step `s{i}` carries tag `t{tags[i]}`.
    pub tags: Vec<u8>,
}

/// Jobs of `steps` webhook steps; each depends on up to three earlier ones and carries a tag
/// `t0`..`t2`.
pub(crate) fn dag_yaml(steps: Range<usize>) -> impl Strategy<Value = GenJob> {
    steps
        .prop_flat_map(|n| {
            prop::collection::vec(
                (prop::collection::vec(any::<prop::sample::Index>(), 0..4), 0u8..3),
                n,
            )
        })
        .prop_map(|raw| {
            let mut text =
                String::from("version: 1\nname: gen\nconcurrency: 4\nsteps:\n");
            let mut deps = Vec::new();
            let mut tags = Vec::new();
            for (i, (picks, tag)) in raw.into_iter().enumerate() {
                tags.push(tag);
                let mut d: Vec<usize> = if i == 0 {
                    Vec::new()
                } else {
                    picks.iter().map(|p| p.index(i)).collect()
                };
                d.sort_unstable();
                d.dedup();
                let list: Vec<String> = d.iter().map(|j| format!("s{j}")).collect();
                let _ = writeln!(
                    text,
                    "  s{i}: {{ type: webhook, url: \"https://hooks.example.com/x\", tags: [t{tag}], depends_on: [{}] }}",
                    list.join(", ")
                );
                deps.push(d);
            }
            GenJob { text, deps, tags }
        })
}

fn load(g: &GenJob) -> Job {
    load_bytes("gen.yaml", g.text.as_bytes(), &[], &|_| None)
        .expect("generated DAGs are valid")
        .job
}

/// Everything reachable from `start` through `next` (itself included).
fn closure(start: usize, next: &dyn Fn(usize) -> Vec<usize>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![start];
    while let Some(i) = stack.pop() {
        if seen.insert(i) {
            stack.extend(next(i));
        }
    }
    seen.into_iter().map(|i| format!("s{i}")).collect()
}

fn sel(job: &Job, s: &[&str], x: &[&str]) -> BTreeSet<String> {
    let s: Vec<String> = s.iter().map(|v| v.to_string()).collect();
    let x: Vec<String> = x.iter().map(|v| v.to_string()).collect();
    select(job, &s, &x)
        .map(|set| set.into_iter().collect())
        .unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_edge_goes_to_a_later_wave(
        g in dag_yaml(1..60),
        keep in prop::collection::vec(any::<bool>(), 60),
    ) {
        let job = Arc::new(load(&g));
        // Any selection: unselected dependencies count as satisfied, selected ones order.
        let selected: IndexSet<String> = (0..g.deps.len())
            .filter(|&i| keep[i] || i == 0)
            .map(|i| format!("s{i}"))
            .collect();
        for plan in [Plan::new(job.clone()).unwrap(), Plan::with_selected(job, selected.clone()).unwrap()] {
            let wave: HashMap<&str, usize> = plan
                .waves
                .iter()
                .enumerate()
                .flat_map(|(w, ids)| ids.iter().map(move |id| (id.as_str(), w)))
                .collect();
            prop_assert_eq!(wave.len(), plan.selected.len());
            for (i, deps) in g.deps.iter().enumerate() {
                let id = format!("s{i}");
                let Some(&w) = wave.get(id.as_str()) else { continue };
                for d in deps {
                    if let Some(&dw) = wave.get(format!("s{d}").as_str()) {
                        prop_assert!(dw < w, "s{} (wave {}) -> {} (wave {})", d, dw, id, w);
                    }
                }
                // The scheduler's priority: a step's remaining path exceeds its children's.
                for c in plan.children(&id) {
                    prop_assert!(plan.remaining[&id] > plan.remaining[&c]);
                }
            }
        }
    }

    #[test]
    fn selection_closure_laws(g in dag_yaml(1..40), a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>()) {
        let job = load(&g);
        let n = g.deps.len();
        let (a, b) = (a.index(n), b.index(n));
        let children: Vec<Vec<usize>> = (0..n)
            .map(|p| (0..n).filter(|&c| g.deps[c].contains(&p)).collect())
            .collect();
        let down = closure(a, &|i| children[i].clone());
        let up = closure(a, &|i| g.deps[i].clone());
        let (sa, sb) = (format!("s{a}"), format!("s{b}"));
        let (a_plus, plus_a) = (format!("{sa}+"), format!("+{sa}"));

        prop_assert_eq!(sel(&job, &[&a_plus], &[]), down.clone());
        prop_assert_eq!(sel(&job, &[&plus_a], &[]), up.clone());
        // Union: repeated --select.
        let union: BTreeSet<String> = down.union(&sel(&job, &[&sb], &[])).cloned().collect();
        prop_assert_eq!(sel(&job, &[&a_plus, &sb], &[]), union);
        // Exclude subtracts (an empty result is an error, seen here as the empty set).
        let minus: BTreeSet<String> = down.difference(&up).cloned().collect();
        prop_assert_eq!(sel(&job, &[&a_plus], &[&plus_a]), minus);
        // Tags: the union of the tags in use is everything (a tag no step has is an error, not
        // an empty set); excluding one tag removes exactly its steps.
        let all: BTreeSet<String> = (0..n).map(|i| format!("s{i}")).collect();
        let mut used: Vec<String> = g.tags.iter().map(|t| format!("tag:t{t}")).collect();
        used.sort();
        used.dedup();
        let used_refs: Vec<&str> = used.iter().map(String::as_str).collect();
        prop_assert_eq!(sel(&job, &used_refs, &[]), all.clone());
        let first = sel(&job, &[used_refs[0]], &[]);
        let rest: BTreeSet<String> = all.difference(&first).cloned().collect();
        prop_assert_eq!(sel(&job, &[], &[used_refs[0]]), rest);
        // Selection is idempotent and keeps job order.
        let twice = select(&job, &[a_plus.clone(), a_plus.clone()], &[]).unwrap();
        let order: Vec<&String> = job.steps.keys().filter(|k| twice.contains(*k)).collect();
        prop_assert_eq!(twice.iter().collect::<Vec<_>>(), order);
    }
}

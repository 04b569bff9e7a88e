//! Waves, longest remaining paths and cycle paths on small jobs.

use std::sync::Arc;

use indexmap::IndexSet;

use super::Plan;
use crate::job::load_bytes;
use crate::job::model::Job;

/// A job of webhooks with the given `(id, depends_on)` shape.
fn job(shape: &[(&str, &[&str])]) -> Result<Job, crate::job::Diagnostics> {
    let mut yaml = String::from("version: 1\nname: t\nsteps:\n");
    for (id, deps) in shape {
        yaml.push_str(&format!(
            "  {id}: {{ type: webhook, url: \"https://h.example.com/{id}\", depends_on: [{}] }}\n",
            deps.join(", ")
        ));
    }
    load_bytes("t.yaml", yaml.as_bytes(), &[], &|_| None).map(|l| l.job)
}

const DIAMOND: &[(&str, &[&str])] = &[
    ("a", &[]),
    ("b", &["a"]),
    ("c", &["a"]),
    ("d", &["b", "c"]),
    ("e", &["d"]),
    ("lone", &[]),
];

#[test]
fn waves_are_topological_levels() {
    let plan = Plan::new(Arc::new(job(DIAMOND).unwrap())).unwrap();
    assert_eq!(
        plan.waves,
        vec![vec!["a", "lone"], vec!["b", "c"], vec!["d"], vec!["e"]]
    );
}

#[test]
fn longest_remaining_path_counts_steps_to_the_end() {
    let plan = Plan::new(Arc::new(job(DIAMOND).unwrap())).unwrap();
    let r = |id: &str| plan.remaining[id];
    assert_eq!(
        (r("a"), r("b"), r("c"), r("d"), r("e"), r("lone")),
        (4, 3, 3, 2, 1, 1)
    );
}

#[test]
fn unselected_dependencies_do_not_hold_back_waves() {
    let job = Arc::new(job(DIAMOND).unwrap());
    let selected: IndexSet<String> = ["d", "e", "c"].iter().map(|s| s.to_string()).collect();
    let plan = Plan::with_selected(job, selected).unwrap();
    // Job order is kept, and `d` only waits for the selected `c`.
    assert_eq!(plan.selected.iter().collect::<Vec<_>>(), ["c", "d", "e"]);
    assert_eq!(plan.waves, vec![vec!["c"], vec!["d"], vec!["e"]]);
    assert_eq!(plan.parents("d"), ["c"]);
    assert_eq!(plan.remaining["c"], 3);
}

fn cycle_messages(shape: &[(&str, &[&str])]) -> Vec<String> {
    job(shape)
        .unwrap_err()
        .items()
        .iter()
        .map(|d| d.message.clone())
        .filter(|m| m.contains("cycle"))
        .collect()
}

#[test]
fn cycles_are_reported_with_their_path() {
    assert_eq!(
        cycle_messages(&[("a", &["c"]), ("b", &["a"]), ("c", &["b"]), ("d", &["a"])]),
        ["dependency cycle: a -> b -> c -> a"]
    );
    // Two separate cycles, each reported once, in file order.
    assert_eq!(
        cycle_messages(&[("x", &["y"]), ("y", &["x"]), ("p", &["q"]), ("q", &["p"])]),
        [
            "dependency cycle: x -> y -> x",
            "dependency cycle: p -> q -> p"
        ]
    );
    // The shortest cycle through the first step is shown.
    assert_eq!(
        cycle_messages(&[
            ("a", &["d", "b"]),
            ("b", &["a"]),
            ("c", &["b"]),
            ("d", &["c"])
        ]),
        ["dependency cycle: a -> b -> a"]
    );
}

#[test]
fn a_long_chain_is_fine() {
    let ids: Vec<String> = (0..3000).map(|i| format!("s{i}")).collect();
    let deps: Vec<Vec<&str>> = (0..3000)
        .map(|i| {
            if i == 0 {
                vec![]
            } else {
                vec![ids[i - 1].as_str()]
            }
        })
        .collect();
    let shape: Vec<(&str, &[&str])> = ids
        .iter()
        .zip(&deps)
        .map(|(id, d)| (id.as_str(), d.as_slice()))
        .collect();
    let plan = Plan::new(Arc::new(job(&shape).unwrap())).unwrap();
    assert_eq!(plan.waves.len(), 3000);
    assert_eq!(plan.remaining["s0"], 3000);
}

//! `pbibatch graph`: the dependency graph as Mermaid or Graphviz dot. Nodes show id and type;
//! an edge into a step whose trigger rule is not `all_success` carries the rule.

use std::fmt::Write as _;

use crate::job::model::{Job, TriggerRule};
use crate::plan::render::trigger_name;

/// A Mermaid node id: the step id when Mermaid accepts it as is, else `n<index>`.
fn mermaid_id(id: &str, index: usize) -> String {
    if id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && id != "end" {
        id.to_string()
    } else {
        format!("n{index}")
    }
}

/// Mermaid `flowchart LR`.
pub(crate) fn mermaid(job: &Job) -> String {
    let mut o = String::from("flowchart LR\n");
    let ids: Vec<String> = job
        .steps
        .keys()
        .enumerate()
        .map(|(i, id)| mermaid_id(id, i))
        .collect();
    for ((id, step), node) in job.steps.iter().zip(&ids) {
        let _ = writeln!(o, "  {node}[\"{id}<br/>{}\"]", step.type_name());
    }
    for ((_, step), node) in job.steps.iter().zip(&ids) {
        for dep in &step.depends_on {
            let Some(di) = job.steps.get_index_of(dep) else {
                continue;
            };
            let from = &ids[di];
            if step.trigger == TriggerRule::AllSuccess {
                let _ = writeln!(o, "  {from} --> {node}");
            } else {
                let _ = writeln!(o, "  {from} -->|{}| {node}", trigger_name(step.trigger));
            }
        }
    }
    o
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Graphviz `digraph`.
pub(crate) fn dot(job: &Job) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "digraph \"{}\" {{", dot_escape(&job.name));
    let _ = writeln!(o, "  rankdir=LR;");
    let _ = writeln!(o, "  node [shape=box];");
    for (id, step) in &job.steps {
        let _ = writeln!(
            o,
            "  \"{}\" [label=\"{}\\n{}\"];",
            dot_escape(id),
            dot_escape(id),
            step.type_name()
        );
    }
    for (id, step) in &job.steps {
        for dep in &step.depends_on {
            if step.trigger == TriggerRule::AllSuccess {
                let _ = writeln!(o, "  \"{}\" -> \"{}\";", dot_escape(dep), dot_escape(id));
            } else {
                let _ = writeln!(
                    o,
                    "  \"{}\" -> \"{}\" [label=\"{}\", style=dashed];",
                    dot_escape(dep),
                    dot_escape(id),
                    trigger_name(step.trigger)
                );
            }
        }
    }
    o.push_str("}\n");
    o
}

//! The estate as a table, JSON and a Mermaid lineage graph.

use std::collections::HashMap;

use super::Estate;
use super::lineage::{Node, NodeKind};

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// What a Fabric item type is, in words.
fn fabric_kind(item_type: &str) -> String {
    match item_type {
        "Dataflow" => "dataflow gen2".to_string(),
        other => match crate::job::model::FabricItemType::from_fabric_type(other) {
            Some(t) => t.noun().to_ascii_lowercase(),
            None => format!("fabric {other}"),
        },
    }
}

/// One row per item: workspace, kind, name, details, id; then totals and notes.
pub fn table(estate: &Estate) -> String {
    let mut rows = vec![vec![
        "WORKSPACE".to_string(),
        "KIND".into(),
        "NAME".into(),
        "DETAILS".into(),
        "ID".into(),
    ]];
    let (mut datasets, mut dataflows, mut reports, mut fabric) = (0, 0, 0, 0);
    for w in &estate.workspaces {
        rows.push(vec![
            w.name.clone(),
            "workspace".into(),
            String::new(),
            String::new(),
            w.id.clone(),
        ]);
        for d in &w.dataflows {
            rows.push(vec![
                w.name.clone(),
                "dataflow".into(),
                d.name.clone(),
                "gen1".into(),
                d.id.clone(),
            ]);
        }
        for d in &w.datasets {
            let refresh = match d.refreshable {
                Some(true) => "refreshable",
                Some(false) => "not refreshable",
                None => "refreshable: unknown",
            };
            let details = match &d.storage_mode {
                Some(mode) => format!("{refresh}, storage {mode}"),
                None => refresh.to_string(),
            };
            rows.push(vec![
                w.name.clone(),
                "dataset".into(),
                d.name.clone(),
                details,
                d.id.clone(),
            ]);
        }
        for r in &w.reports {
            let mut details = match (&r.dataset, &r.dataset_id) {
                (Some(name), _) => format!("dataset {name}"),
                (None, Some(id)) => format!("dataset {id}"),
                (None, None) => "no dataset".to_string(),
            };
            if r.paginated {
                details.push_str(", paginated");
            }
            rows.push(vec![
                w.name.clone(),
                "report".into(),
                r.name.clone(),
                details,
                r.id.clone(),
            ]);
        }
        for i in &w.fabric_items {
            rows.push(vec![
                w.name.clone(),
                fabric_kind(&i.item_type),
                i.name.clone(),
                format!("fabric {}", i.item_type),
                i.id.clone(),
            ]);
        }
        datasets += w.datasets.len();
        dataflows += w.dataflows.len();
        reports += w.reports.len();
        fabric += w.fabric_items.len();
    }
    let mut out = crate::term::table(&rows, 2);
    out.push_str(&format!(
        "\n{}: {}, {} (gen1), {}, {}\n",
        plural(estate.workspaces.len(), "workspace"),
        plural(datasets, "dataset"),
        plural(dataflows, "dataflow"),
        plural(reports, "report"),
        plural(fabric, "other Fabric item"),
    ));
    for w in &estate.workspaces {
        for n in &w.notes {
            out.push_str(&format!("note: {}: {n}\n", w.name));
        }
    }
    out
}

/// The lineage edges as a table (empty lineage says so).
pub(crate) fn lineage_table(estate: &Estate) -> String {
    let edges = estate.lineage.as_deref().unwrap_or_default();
    let mut out = format!("lineage: {}\n", plural(edges.len(), "edge"));
    if edges.is_empty() {
        return out;
    }
    let mut rows = vec![vec![
        "FROM".to_string(),
        String::new(),
        String::new(),
        "TO".into(),
    ]];
    for e in edges {
        rows.push(vec![
            e.from.kind.as_str().to_string(),
            e.from.label(),
            "->".into(),
            format!("{} {}", e.to.kind.as_str(), e.to.label()),
        ]);
    }
    out.push_str(&crate::term::table(&rows, 2));
    out
}

/// Text safe inside a Mermaid `"..."` label.
fn mermaid_text(s: &str) -> String {
    s.replace('"', "#quot;")
}

/// The lineage as a Mermaid flowchart, one subgraph per workspace: dataflows are
/// parallelograms, datasets cylinders, reports rectangles.
pub fn mermaid(estate: &Estate) -> String {
    let edges = estate.lineage.as_deref().unwrap_or_default();
    let mut ids: HashMap<(NodeKind, String), String> = HashMap::new();
    let mut by_workspace: Vec<(String, String, Vec<String>)> = Vec::new();
    let mut node_id = |n: &Node, ids: &mut HashMap<(NodeKind, String), String>| -> String {
        let key = (n.kind, n.id.to_ascii_lowercase());
        if let Some(id) = ids.get(&key) {
            return id.clone();
        }
        let id = format!("n{}", ids.len());
        ids.insert(key, id.clone());
        let name = mermaid_text(n.name.as_deref().unwrap_or(&n.id));
        let shape = match n.kind {
            NodeKind::Dataflow => format!("{id}[/\"{name}\"/]"),
            NodeKind::Dataset => format!("{id}[(\"{name}\")]"),
            NodeKind::Report => format!("{id}[\"{name}\"]"),
        };
        let ws = n
            .workspace
            .clone()
            .unwrap_or_else(|| n.workspace_id.clone());
        match by_workspace
            .iter_mut()
            .find(|(k, _, _)| *k == n.workspace_id)
        {
            Some((_, _, nodes)) => nodes.push(shape),
            None => by_workspace.push((n.workspace_id.clone(), ws, vec![shape])),
        }
        id
    };
    let mut links = Vec::new();
    for e in edges {
        let a = node_id(&e.from, &mut ids);
        let b = node_id(&e.to, &mut ids);
        links.push(format!("  {a} --> {b}"));
    }
    let mut out = String::from("```mermaid\nflowchart LR\n");
    for (i, (_, name, nodes)) in by_workspace.iter().enumerate() {
        out.push_str(&format!("  subgraph ws{i}[\"{}\"]\n", mermaid_text(name)));
        for n in nodes {
            out.push_str(&format!("    {n}\n"));
        }
        out.push_str("  end\n");
    }
    for l in links {
        out.push_str(&l);
        out.push('\n');
    }
    out.push_str("```\n");
    out
}

/// The estate as pretty JSON (stable field order, one trailing newline).
pub fn json(estate: &Estate) -> String {
    serde_json::to_string_pretty(estate).unwrap_or_else(|_| "{}".into()) + "\n"
}

//! Reads the estate from Power BI and Fabric: only GETs.

use std::collections::{HashMap, HashSet};

use futures::stream::{self, StreamExt, TryStreamExt};

use super::lineage::{Edge, Node, NodeKey, NodeKind};
use super::{Dataflow, Dataset, DiscoverError, Estate, FabricItem, Report, Workspace};
use crate::powerbi::api::{DatasetDataflowLink, Group, UpstreamDataflow};
use crate::powerbi::{ClientError, PowerBiClient};

/// What to discover.
#[derive(Debug, Clone, Default)]
pub struct DiscoverOptions {
    /// Workspace names or GUIDs; empty = every workspace the credentials see.
    pub workspaces: Vec<String>,
    /// Also read the lineage edges.
    pub lineage: bool,
}

/// Requests in flight at once: enough to hide latency on a large estate, few enough to stay
/// clear of Power BI's per-user throttling (the client retries a 429 anyway).
const PARALLEL: usize = 4;

/// Fabric item types that Power BI lists already (datasets, reports): not repeated.
const LISTED_BY_POWER_BI: &[&str] = &["SemanticModel", "Report", "PaginatedReport"];

/// Reads the workspaces chosen by `options` and their items (and lineage when asked) with
/// connection `conn`.
pub async fn discover(
    client: &PowerBiClient,
    conn: &str,
    options: &DiscoverOptions,
) -> Result<Estate, DiscoverError> {
    let groups = client
        .groups_all(conn)
        .await
        .map_err(DiscoverError::client("list the workspaces"))?;
    let chosen = select(&groups, &options.workspaces)?;
    let mut estate = Estate {
        workspaces: stream::iter(chosen)
            .map(|g| workspace(client, conn, g))
            .buffered(PARALLEL)
            .try_collect()
            .await?,
        lineage: None,
    };
    name_report_datasets(&mut estate);
    if options.lineage {
        estate.lineage = Some(lineage(client, conn, &mut estate, &groups).await?);
    }
    Ok(estate)
}

/// The workspaces named by `wanted` (names or ids, in that order, without repeats), or every
/// one when `wanted` is empty.
fn select<'a>(groups: &'a [Group], wanted: &[String]) -> Result<Vec<&'a Group>, DiscoverError> {
    if wanted.is_empty() {
        return Ok(groups.iter().collect());
    }
    let mut out: Vec<&Group> = Vec::new();
    for w in wanted {
        let found = groups
            .iter()
            .find(|g| g.id.eq_ignore_ascii_case(w) || g.name == *w)
            .or_else(|| groups.iter().find(|g| g.name.eq_ignore_ascii_case(w)));
        match found {
            Some(g) => {
                if !out.iter().any(|o| o.id == g.id) {
                    out.push(g);
                }
            }
            None => {
                let hint = crate::suggest::near_hint(w, groups.iter().map(|g| g.name.as_str()));
                return Err(DiscoverError::UnknownWorkspace {
                    name: w.clone(),
                    visible: groups.len(),
                    hint,
                });
            }
        }
    }
    Ok(out)
}

async fn workspace(
    client: &PowerBiClient,
    conn: &str,
    g: &Group,
) -> Result<Workspace, DiscoverError> {
    let (datasets, dataflows, reports, fabric) = tokio::join!(
        client.datasets_detail(conn, &g.id),
        client.group_items(conn, &g.id, "dataflows"),
        client.reports_detail(conn, &g.id),
        client.fabric_items_all(conn, &g.id),
    );
    let of = |what: &str| format!("list the {what} of workspace `{}`", g.name);
    let mut ws = Workspace {
        id: g.id.clone(),
        name: g.name.clone(),
        ..Workspace::default()
    };
    ws.datasets = datasets
        .map_err(DiscoverError::client(of("datasets")))?
        .into_iter()
        .map(|d| Dataset {
            id: d.id,
            name: d.name,
            refreshable: d.is_refreshable,
            storage_mode: d.target_storage_mode,
        })
        .collect();
    ws.dataflows = dataflows
        .map_err(DiscoverError::client(of("dataflows")))?
        .into_iter()
        .map(|d| Dataflow {
            id: d.id,
            name: d.name,
        })
        .collect();
    ws.reports = reports
        .map_err(DiscoverError::client(of("reports")))?
        .into_iter()
        .map(|r| Report {
            id: r.id,
            name: r.name,
            paginated: r
                .report_type
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("PaginatedReport")),
            dataset_id: r.dataset_id.filter(|d| !d.is_empty()),
            dataset: None,
        })
        .collect();
    // Fabric may be unavailable (sovereign cloud, no Fabric access for the identity): the
    // Power BI part is still worth showing.
    match fabric {
        Ok(items) => {
            ws.fabric_items = items
                .into_iter()
                .filter(|i| !LISTED_BY_POWER_BI.contains(&i.item_type.as_str()))
                .map(|i| FabricItem {
                    id: i.id,
                    name: i.display_name,
                    item_type: i.item_type,
                })
                .collect();
        }
        Err(e) => ws.notes.push(format!("Fabric items not listed: {e}")),
    }
    Ok(ws)
}

/// Fills each report's dataset name from the discovered datasets.
fn name_report_datasets(estate: &mut Estate) {
    let names: HashMap<String, String> = estate
        .workspaces
        .iter()
        .flat_map(|w| w.datasets.iter())
        .map(|d| (d.id.to_ascii_lowercase(), d.name.clone()))
        .collect();
    for w in &mut estate.workspaces {
        for r in &mut w.reports {
            r.dataset = r
                .dataset_id
                .as_ref()
                .and_then(|id| names.get(&id.to_ascii_lowercase()).cloned());
        }
    }
}

/// Names of everything discovered, to label edge ends.
struct Names<'a> {
    items: HashMap<(NodeKind, String), (&'a str, &'a str)>,
    workspaces: HashMap<String, &'a str>,
}

impl<'a> Names<'a> {
    fn new(estate: &'a Estate, groups: &'a [Group]) -> Self {
        let mut items = HashMap::new();
        for w in &estate.workspaces {
            for d in &w.datasets {
                items.insert(
                    (NodeKind::Dataset, d.id.to_ascii_lowercase()),
                    (w.id.as_str(), d.name.as_str()),
                );
            }
            for d in &w.dataflows {
                items.insert(
                    (NodeKind::Dataflow, d.id.to_ascii_lowercase()),
                    (w.id.as_str(), d.name.as_str()),
                );
            }
            for r in &w.reports {
                items.insert(
                    (NodeKind::Report, r.id.to_ascii_lowercase()),
                    (w.id.as_str(), r.name.as_str()),
                );
            }
        }
        let workspaces = groups
            .iter()
            .map(|g| (g.id.to_ascii_lowercase(), g.name.as_str()))
            .collect();
        Names { items, workspaces }
    }

    /// A node for item `id` of `kind`; `workspace_id` is where the service said it lives.
    fn node(&self, kind: NodeKind, id: &str, workspace_id: Option<&str>) -> Node {
        let known = self.items.get(&(kind, id.to_ascii_lowercase()));
        let workspace_id = known
            .map(|(w, _)| *w)
            .or(workspace_id)
            .unwrap_or("")
            .to_string();
        Node {
            kind,
            workspace: self
                .workspaces
                .get(&workspace_id.to_ascii_lowercase())
                .map(|n| n.to_string()),
            workspace_id,
            id: id.to_string(),
            name: known.map(|(_, n)| n.to_string()),
        }
    }
}

async fn lineage(
    client: &PowerBiClient,
    conn: &str,
    estate: &mut Estate,
    groups: &[Group],
) -> Result<Vec<Edge>, DiscoverError> {
    // Every read first (a few at a time), then the edges in a stable order.
    let dataflows: Vec<(&str, &str, &str, &str)> = estate
        .workspaces
        .iter()
        .flat_map(|w| {
            w.dataflows.iter().map(move |d| {
                (
                    w.id.as_str(),
                    w.name.as_str(),
                    d.id.as_str(),
                    d.name.as_str(),
                )
            })
        })
        .collect();
    let upstream: Vec<Vec<UpstreamDataflow>> = stream::iter(dataflows)
        .map(|(ws_id, ws_name, df_id, df_name)| async move {
            client
                .upstream_dataflows(conn, ws_id, df_id)
                .await
                .map_err(DiscoverError::client(format!(
                    "read the upstream dataflows of dataflow `{df_name}` in workspace `{ws_name}`"
                )))
        })
        .buffered(PARALLEL)
        .try_collect()
        .await?;
    let links: Vec<Option<Result<Vec<DatasetDataflowLink>, ClientError>>> =
        stream::iter(estate.workspaces.iter())
            .map(|w| async move {
                if w.datasets.is_empty() {
                    None
                } else {
                    Some(client.dataset_dataflow_links(conn, &w.id).await)
                }
            })
            .buffered(PARALLEL)
            .collect()
            .await;

    let mut edges: Vec<Edge> = Vec::new();
    let mut notes: Vec<(usize, String)> = Vec::new();
    {
        let names = Names::new(estate, groups);
        // A set beside the list: large estates have thousands of edges.
        let mut seen: HashSet<(NodeKey, NodeKey)> = HashSet::new();
        let mut push = |e: Edge| {
            if seen.insert((e.from.key(), e.to.key())) {
                edges.push(e);
            }
        };
        let mut upstream = upstream.into_iter();
        for (wi, (w, links)) in estate.workspaces.iter().zip(links).enumerate() {
            for df in &w.dataflows {
                for u in upstream.next().unwrap_or_default() {
                    push(Edge {
                        from: names.node(
                            NodeKind::Dataflow,
                            &u.target_dataflow_id,
                            u.group_id.as_deref(),
                        ),
                        to: names.node(NodeKind::Dataflow, &df.id, Some(&w.id)),
                    });
                }
            }
            match links {
                None => {}
                Some(Ok(links)) => {
                    for l in links {
                        push(Edge {
                            from: names.node(
                                NodeKind::Dataflow,
                                &l.dataflow_object_id,
                                l.workspace_object_id.as_deref(),
                            ),
                            to: names.node(NodeKind::Dataset, &l.dataset_object_id, Some(&w.id)),
                        });
                    }
                }
                // Missing links are a note, not a failure: the rest of the lineage stands.
                Some(Err(e)) => notes.push((wi, format!("dataset → dataflow links not read: {e}"))),
            }
            for r in &w.reports {
                if let Some(ds) = &r.dataset_id {
                    push(Edge {
                        from: names.node(NodeKind::Dataset, ds, Some(&w.id)),
                        to: names.node(NodeKind::Report, &r.id, Some(&w.id)),
                    });
                }
            }
        }
    }
    for (wi, note) in notes {
        estate.workspaces[wi].notes.push(note);
    }
    Ok(edges)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(id: &str, name: &str) -> Group {
        Group {
            id: id.into(),
            name: name.into(),
            capacity_id: None,
            is_on_dedicated_capacity: None,
        }
    }

    #[test]
    fn workspaces_are_chosen_by_name_or_id_with_hints() {
        let groups = vec![g("A-1", "Sales"), g("b-2", "Finance")];
        let chosen = select(&groups, &["a-1".into(), "finance".into(), "Sales".into()]).unwrap();
        assert_eq!(
            chosen.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
            ["Sales", "Finance"]
        );
        let err = select(&groups, &["Salez".into()]).unwrap_err().to_string();
        assert!(err.contains("did you mean `Sales`"), "{err}");
        assert!(err.contains("2 workspaces"), "{err}");
        assert_eq!(select(&groups, &[]).unwrap().len(), 2);
    }
}

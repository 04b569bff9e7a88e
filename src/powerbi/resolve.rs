//! Names → ids, cached per run: workspaces through `$filter`, then datasets, reports and
//! Gen1 dataflows by name in the group, Gen2 dataflows among the workspace's Fabric items.
//! A missing or ambiguous name is an error that lists the near matches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::api::{Group, Item};
use super::client::PowerBiClient;
use super::errors::ClientError;

/// What kind of item a name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ItemKind {
    Dataset,
    Report,
    /// Power BI dataflow (`objectId`).
    DataflowGen1,
    /// Fabric item of type `Dataflow`.
    DataflowGen2,
    /// Another Fabric item, by its item type (`DataPipeline`, `Notebook`, ...) and what
    /// messages call it.
    Fabric {
        item_type: &'static str,
        noun: &'static str,
    },
}

impl ItemKind {
    fn noun(self) -> &'static str {
        match self {
            ItemKind::Dataset => "dataset",
            ItemKind::Report => "report",
            ItemKind::DataflowGen1 => "dataflow",
            ItemKind::DataflowGen2 => "dataflow (gen2)",
            ItemKind::Fabric { noun, .. } => noun,
        }
    }
}

type Cell<T> = Arc<OnceCell<T>>;

/// The per-run cache. Each list is fetched once even when steps ask at the same time.
#[derive(Default)]
pub(crate) struct ResolveCache {
    workspaces: Mutex<HashMap<String, Cell<Vec<Group>>>>,
    /// Shared, not cloned, by every lookup: a workspace can hold thousands of items and a run
    /// looks one up per step (copying the list each time made 10,000 steps quadratic; scanning
    /// it each time made them linear per step, so the list is indexed once).
    items: Mutex<HashMap<String, Cell<Arc<ItemIndex>>>>,
}

/// One workspace's items of one kind, indexed by exact name, ASCII-lowercased name and id.
struct ItemIndex {
    items: Vec<Item>,
    by_name: HashMap<String, Vec<usize>>,
    by_folded_name: HashMap<String, Vec<usize>>,
    by_folded_id: HashMap<String, usize>,
}

impl ItemIndex {
    fn new(items: Vec<Item>) -> Self {
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::with_capacity(items.len());
        let mut by_folded_name: HashMap<String, Vec<usize>> = HashMap::with_capacity(items.len());
        let mut by_folded_id = HashMap::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            by_name.entry(item.name.clone()).or_default().push(i);
            by_folded_name
                .entry(item.name.to_ascii_lowercase())
                .or_default()
                .push(i);
            by_folded_id
                .entry(item.id.to_ascii_lowercase())
                .or_insert(i);
        }
        ItemIndex {
            items,
            by_name,
            by_folded_name,
            by_folded_id,
        }
    }

    fn by_id(&self, id: &str) -> Option<&Item> {
        self.by_folded_id
            .get(&id.to_ascii_lowercase())
            .map(|&i| &self.items[i])
    }

    /// Items with exactly this name, or else with this name ignoring ASCII case.
    fn by_name(&self, name: &str) -> Vec<&Item> {
        let hits = self
            .by_name
            .get(name)
            .or_else(|| self.by_folded_name.get(&name.to_ascii_lowercase()));
        hits.map(|ix| ix.iter().map(|&i| &self.items[i]).collect())
            .unwrap_or_default()
    }
}

fn cell<T>(map: &Mutex<HashMap<String, Cell<T>>>, key: String) -> Cell<T> {
    map.lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key)
        .or_default()
        .clone()
}

/// Why a dataset step cannot run when the model's `isRefreshable` is false (run and
/// `validate --lineage` say the same).
pub(crate) fn not_refreshable(dataset: &str) -> String {
    format!(
        "dataset `{dataset}` is not refreshable (DirectQuery or live connection): there is nothing to refresh; remove the step or point it at the import-mode model"
    )
}

/// True for a GUID written `8-4-4-4-12`.
pub(crate) fn is_guid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
}

impl PowerBiClient {
    /// The id of workspace `name_or_id` (a GUID is used as is).
    pub async fn workspace_id(&self, conn: &str, name_or_id: &str) -> Result<String, ClientError> {
        if is_guid(name_or_id) {
            return Ok(name_or_id.to_string());
        }
        self.find_group(conn, name_or_id).await.map(|g| g.id)
    }

    /// The workspace called `name_or_id` (one `$filter` lookup per run, shared by every
    /// step): the exact spelling first, then a case-insensitive match.
    pub(crate) async fn find_group(
        &self,
        conn: &str,
        name_or_id: &str,
    ) -> Result<Group, ClientError> {
        let c = cell(
            &self.resolve_cache().workspaces,
            format!("{conn}\u{0}{name_or_id}"),
        );
        let found = c
            .get_or_try_init(|| self.groups_named(conn, name_or_id))
            .await?;
        // The filter is case-insensitive on the service; prefer the exact spelling.
        let exact: Vec<&Group> = found.iter().filter(|g| g.name == name_or_id).collect();
        let candidates: Vec<&Group> = if exact.is_empty() {
            found
                .iter()
                .filter(|g| g.name.eq_ignore_ascii_case(name_or_id))
                .collect()
        } else {
            exact
        };
        match candidates.as_slice() {
            [one] => Ok((*one).clone()),
            [] => {
                let all = self.groups(conn).await.unwrap_or_default();
                let hint =
                    crate::suggest::near_hint(name_or_id, all.iter().map(|g| g.name.as_str()));
                Err(ClientError::Resolve(format!(
                    "workspace `{name_or_id}` not found (or the identity is not a member){hint}"
                )))
            }
            many => Err(ClientError::Resolve(format!(
                "workspace name `{name_or_id}` is ambiguous: {} workspaces have it ({}); use the id",
                many.len(),
                many.iter()
                    .map(|g| g.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    async fn items(
        &self,
        conn: &str,
        workspace_id: &str,
        kind: ItemKind,
    ) -> Result<Arc<ItemIndex>, ClientError> {
        let c = cell(
            &self.resolve_cache().items,
            format!("{conn}\u{0}{workspace_id}\u{0}{kind:?}"),
        );
        let items = c
            .get_or_try_init(|| async {
                let list = match kind {
                    ItemKind::Dataset => self.group_items(conn, workspace_id, "datasets").await,
                    ItemKind::Report => self.group_items(conn, workspace_id, "reports").await,
                    ItemKind::DataflowGen1 => {
                        self.group_items(conn, workspace_id, "dataflows").await
                    }
                    ItemKind::DataflowGen2 => {
                        self.fabric_items(conn, workspace_id, "Dataflow").await
                    }
                    ItemKind::Fabric { item_type, .. } => {
                        self.fabric_items(conn, workspace_id, item_type).await
                    }
                };
                list.map(|l| Arc::new(ItemIndex::new(l)))
            })
            .await?;
        Ok(items.clone())
    }

    /// Every item of `kind` in the workspace, in the service's order (cached like a lookup).
    pub(crate) async fn list_items(
        &self,
        conn: &str,
        workspace_id: &str,
        kind: ItemKind,
    ) -> Result<Vec<Item>, ClientError> {
        Ok(self.items(conn, workspace_id, kind).await?.items.clone())
    }

    /// The item called (or with id) `name_or_id` in the workspace.
    pub(crate) async fn resolve_item(
        &self,
        conn: &str,
        workspace_id: &str,
        kind: ItemKind,
        name_or_id: &str,
    ) -> Result<Item, ClientError> {
        let noun = kind.noun();
        if is_guid(name_or_id) && kind != ItemKind::Report {
            return Ok(Item {
                id: name_or_id.to_string(),
                name: name_or_id.to_string(),
                report_type: None,
                is_refreshable: None,
                dataset_id: None,
            });
        }
        let items = self.items(conn, workspace_id, kind).await?;
        if is_guid(name_or_id) {
            // Reports: the list also says whether it is paginated.
            return Ok(items.by_id(name_or_id).cloned().unwrap_or(Item {
                id: name_or_id.to_string(),
                name: name_or_id.to_string(),
                report_type: None,
                is_refreshable: None,
                dataset_id: None,
            }));
        }
        match items.by_name(name_or_id).as_slice() {
            [one] => Ok((*one).clone()),
            [] => {
                let hint = crate::suggest::near_hint(
                    name_or_id,
                    items.items.iter().map(|i| i.name.as_str()),
                );
                Err(ClientError::Resolve(format!(
                    "{noun} `{name_or_id}` not found in workspace {workspace_id}{hint}"
                )))
            }
            many => Err(ClientError::Resolve(format!(
                "{noun} name `{name_or_id}` is ambiguous in workspace {workspace_id}: {} items have it ({}); use the id",
                many.len(),
                many.iter()
                    .map(|i| i.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids() {
        assert!(is_guid("8dbd8c92-4d16-4947-8329-4172f04f4f93"));
        assert!(!is_guid("Data Admin"));
        assert!(!is_guid("8dbd8c924d1649478329 4172f04f4f93"));
    }

    fn item(id: &str, name: &str) -> Item {
        Item {
            id: id.into(),
            name: name.into(),
            report_type: None,
            is_refreshable: None,
            dataset_id: None,
        }
    }

    #[test]
    fn the_index_prefers_the_exact_spelling_then_ignores_case() {
        let index = ItemIndex::new(vec![
            item("A1", "Sales"),
            item("b2", "SALES"),
            item("c3", "Orders"),
            item("d4", "orders"),
            item("e5", "Stock"),
        ]);
        let ids = |name: &str| {
            index
                .by_name(name)
                .iter()
                .map(|i| i.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids("Sales"), ["A1"]);
        assert_eq!(ids("SALES"), ["b2"]);
        // No exact spelling: every case-insensitive match, so the caller reports ambiguity.
        assert_eq!(ids("sAlEs"), ["A1", "b2"]);
        assert_eq!(ids("STOCK"), ["e5"]);
        assert!(ids("Stocks").is_empty());
        assert_eq!(index.by_id("a1").map(|i| i.name.as_str()), Some("Sales"));
        assert_eq!(index.by_id("B2").map(|i| i.name.as_str()), Some("SALES"));
        assert!(index.by_id("zz").is_none());
    }
}

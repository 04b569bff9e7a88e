//! Power BI REST under `/v1.0/myorg`: discovery (groups, datasets, dataflows, reports),
//! lineage, and the refresh / transaction / export state machines in the submodules.

mod burst;
mod constant_row;
mod dataflow;
mod export;
mod filter;
mod queries;
mod refresh;

pub(crate) use dataflow::start_refresh as start_gen1_refresh;
use filter::parse_filter;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Router, middleware};
use serde_json::{Value, json};

use super::http::{Api, Sim, guard, json_response, pbi_error, pbi_headers, pbi_not_found};
use super::state::{Item, ItemKind, World, derived_uuid, pbi_time};

pub(crate) fn routes(sim: Arc<Sim>) -> Router<Arc<Sim>> {
    let g = "/v1.0/myorg/groups/{group}";
    Router::new()
        .route("/v1.0/myorg/groups", get(groups))
        .route("/v1.0/myorg/capacities", get(capacities))
        .route(g, get(group))
        .route(&format!("{g}/datasets"), get(datasets))
        .route(
            &format!("{g}/datasets/upstreamDataflows"),
            get(dataset_links),
        )
        .route(&format!("{g}/datasets/{{dataset}}"), get(dataset))
        .route(
            &format!("{g}/datasets/{{dataset}}/refreshes"),
            post(refresh::trigger).get(refresh::history),
        )
        .route(
            &format!("{g}/datasets/{{dataset}}/refreshes/{{refresh}}"),
            get(refresh::details).delete(refresh::cancel),
        )
        .route(
            &format!("{g}/datasets/{{dataset}}/executeQueries"),
            post(queries::execute),
        )
        .route(&format!("{g}/dataflows"), get(dataflows))
        .route(
            &format!("{g}/dataflows/{{dataflow}}"),
            get(dataflow_definition),
        )
        .route(
            &format!("{g}/dataflows/{{dataflow}}/refreshes"),
            post(dataflow::trigger),
        )
        .route(
            &format!("{g}/dataflows/{{dataflow}}/transactions"),
            get(dataflow::transactions),
        )
        .route(
            &format!("{g}/dataflows/transactions/{{transaction}}/cancel"),
            post(dataflow::cancel),
        )
        .route(
            &format!("{g}/dataflows/{{dataflow}}/upstreamDataflows"),
            get(upstream_dataflows),
        )
        .route(&format!("{g}/reports"), get(reports))
        .route(&format!("{g}/reports/{{report}}"), get(report))
        .route(
            &format!("{g}/reports/{{report}}/ExportTo"),
            post(export::start),
        )
        .route(
            &format!("{g}/reports/{{report}}/exports/{{export}}"),
            get(export::status),
        )
        .route(
            &format!("{g}/reports/{{report}}/exports/{{export}}/file"),
            get(export::file),
        )
        .route_layer(middleware::from_fn_with_state((sim, Api::PowerBi), guard))
        .layer(middleware::from_fn(pbi_headers))
}

/// `@odata.context` of a list, shaped like the service's.
fn odata(sim: &Sim, what: &str) -> String {
    format!("{}/v1.0/myorg/$metadata#{what}", sim.cfg.base_url)
}

fn list(sim: &Sim, what: &str, value: Vec<Value>) -> Response {
    json_response(
        StatusCode::OK,
        json!({"@odata.context": odata(sim, what), "value": value}),
    )
}

/// A workspace index from the `{group}` path segment, or Power BI's 404.
pub(super) fn group_index(world: &World, group: &str) -> Result<usize, Response> {
    world.workspace_by_id(group).ok_or_else(pbi_not_found)
}

/// An item of a kind from the path, or Power BI's 404.
pub(super) fn item_index(
    world: &World,
    group: &str,
    item: &str,
    is_kind: fn(&ItemKind) -> bool,
) -> Result<(usize, usize), Response> {
    let ws = group_index(world, group)?;
    let index = world
        .item_in(ws, item)
        .filter(|&i| is_kind(&world.items[i].kind))
        .ok_or_else(pbi_not_found)?;
    Ok((ws, index))
}

pub(super) fn is_dataset(k: &ItemKind) -> bool {
    matches!(k, ItemKind::Dataset { .. })
}
pub(super) fn is_dataflow(k: &ItemKind) -> bool {
    matches!(k, ItemKind::Dataflow { .. })
}
pub(super) fn is_report(k: &ItemKind) -> bool {
    matches!(k, ItemKind::Report { .. })
}

fn group_json(world: &World, ws: usize) -> Value {
    let w = &world.workspaces[ws];
    let mut v = json!({
        "id": w.id.to_string(),
        "isReadOnly": false,
        "isOnDedicatedCapacity": !w.shared_capacity,
        "name": w.name,
        "type": "Workspace",
    });
    if let Some(c) = w.capacity {
        v["capacityId"] = json!(world.capacities[c].id.to_string().to_uppercase());
        v["defaultDatasetStorageFormat"] = json!("Small");
    } else if !w.shared_capacity {
        v["capacityId"] = json!(derived_uuid(&["capacity"]).to_string().to_uppercase());
        v["defaultDatasetStorageFormat"] = json!("Small");
    }
    v
}

/// `GET /capacities`: the profile's capacities, and the built-in `simulated` (F64) one of the
/// dedicated workspaces that name none.
async fn capacities(State(sim): State<Arc<Sim>>) -> Response {
    let mut world = sim.lock();
    world.settle_capacities(sim.clock.now());
    let builtin = world
        .workspaces
        .iter()
        .any(|w| w.capacity.is_none() && !w.shared_capacity)
        .then(|| {
            json!({
                "id": derived_uuid(&["capacity"]).to_string().to_uppercase(),
                "displayName": "simulated",
                "admins": [],
                "sku": "F64",
                "state": "Active",
                "capacityUserAccessRight": "Admin",
                "region": "West Europe",
            })
        });
    let value: Vec<Value> = (0..world.capacities.len())
        .map(|c| {
            let cap = &world.capacities[c];
            let state = match world.capacity_state(c) {
                "Active" => "Active",
                "Updating" => "UpdatingSku",
                "Resuming" => "Provisioning",
                _ => "Suspended",
            };
            json!({
                "id": cap.id.to_string().to_uppercase(),
                "displayName": cap.name,
                "admins": ["admin@contoso.example"],
                "sku": cap.sku,
                "state": state,
                "capacityUserAccessRight": "Admin",
                "region": cap.region,
            })
        })
        .chain(builtin)
        .collect();
    json_response(
        StatusCode::OK,
        json!({
            "@odata.context": "https://api.powerbi.com/v1.0/myorg/$metadata#capacities",
            "value": value
        }),
    )
}

/// `GET /groups` with `$filter` (`name eq '...'`, `contains(name,'...')`, `or`/`and`),
/// `$top` and `$skip`.
async fn groups(State(sim): State<Arc<Sim>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let filter = match q.get("$filter").map(|f| parse_filter(f)).transpose() {
        Ok(f) => f,
        Err(message) => return pbi_error(StatusCode::BAD_REQUEST, "InvalidRequest", &message),
    };
    let (top, skip) = match (int_param(&q, "$top"), int_param(&q, "$skip")) {
        (Ok(t), Ok(s)) => (t, s.unwrap_or(0)),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let world = sim.lock();
    let value: Vec<Value> = (0..world.workspaces.len())
        .filter(|&i| {
            filter
                .as_ref()
                .is_none_or(|f| f.matches(&world.workspaces[i].name))
        })
        .skip(skip)
        .take(top.unwrap_or(usize::MAX))
        .map(|i| group_json(&world, i))
        .collect();
    list(&sim, "groups", value)
}

/// A non-negative integer query parameter (`$top`, `$skip`), or a 400.
pub(super) fn int_param(
    q: &HashMap<String, String>,
    name: &str,
) -> Result<Option<usize>, Response> {
    match q.get(name) {
        None => Ok(None),
        Some(v) => v.trim().parse::<usize>().map(Some).map_err(|_| {
            pbi_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                &format!("Invalid {name} value '{v}'"),
            )
        }),
    }
}

async fn group(State(sim): State<Arc<Sim>>, Path(group): Path<String>) -> Response {
    let world = sim.lock();
    match group_index(&world, &group) {
        Ok(ws) => {
            let mut v = group_json(&world, ws);
            v["@odata.context"] = json!(odata(&sim, "groups/$entity"));
            json_response(StatusCode::OK, v)
        }
        Err(r) => r,
    }
}

fn dataset_json(sim: &Sim, world: &World, item: &Item) -> Value {
    let ws = &world.workspaces[item.workspace];
    let rls = matches!(&item.kind, ItemKind::Dataset { rls_roles, .. } if !rls_roles.is_empty());
    let mut v = json!({
        "id": item.id.to_string(),
        "name": item.name,
        "webUrl": format!("https://app.powerbi.com/groups/{}/datasets/{}", ws.id, item.id),
        "addRowsAPIEnabled": false,
        "configuredBy": "sim@contoso.com",
        "isRefreshable": !matches!(item.kind, ItemKind::Dataset { refreshable: false, .. }),
        "isEffectiveIdentityRequired": rls,
        "isEffectiveIdentityRolesRequired": rls,
        "isOnPremGatewayRequired": false,
        "targetStorageMode": "Abf",
        "createdDate": pbi_time(sim.clock.wall(sim.clock.start())),
        "createReportEmbedURL": format!("https://app.powerbi.com/reportEmbed?config=sim&datasetId={}", item.id),
        "qnaEmbedURL": format!("https://app.powerbi.com/qnaEmbed?config=sim&datasetId={}", item.id),
        "upstreamDatasets": [],
        "users": [],
    });
    let links = dataset_upstream(world, item);
    if !links.is_empty() {
        v["upstreamDataflows"] = json!(
            links
                .iter()
                .map(|&d| json!({
                    "targetDataflowId": world.items[d].id.to_string(),
                    "groupId": world.workspaces[world.items[d].workspace].id.to_string(),
                }))
                .collect::<Vec<_>>()
        );
    }
    v
}

/// The Gen1 dataflows a dataset or dataflow reads (profile names resolved).
fn dataset_upstream(world: &World, item: &Item) -> Vec<usize> {
    let names = match &item.kind {
        ItemKind::Dataset { upstream, .. } | ItemKind::Dataflow { upstream } => upstream,
        _ => return Vec::new(),
    };
    names
        .iter()
        .filter_map(|n| world.dataflow_named(item.workspace, n))
        .collect()
}

async fn datasets(State(sim): State<Arc<Sim>>, Path(group): Path<String>) -> Response {
    let world = sim.lock();
    let ws = match group_index(&world, &group) {
        Ok(ws) => ws,
        Err(r) => return r,
    };
    let value = world
        .items
        .iter()
        .filter(|i| i.workspace == ws && is_dataset(&i.kind))
        .map(|i| dataset_json(&sim, &world, i))
        .collect();
    list(&sim, &format!("groups/{group}/datasets"), value)
}

async fn dataset(
    State(sim): State<Arc<Sim>>,
    Path((group, dataset)): Path<(String, String)>,
) -> Response {
    let world = sim.lock();
    match item_index(&world, &group, &dataset, is_dataset) {
        Ok((_, i)) => {
            let mut v = dataset_json(&sim, &world, &world.items[i]);
            v["@odata.context"] = json!(odata(&sim, &format!("groups/{group}/datasets/$entity")));
            json_response(StatusCode::OK, v)
        }
        Err(r) => r,
    }
}

/// `GET /groups/{g}/datasets/upstreamDataflows`: one row per dataset -> dataflow link.
async fn dataset_links(State(sim): State<Arc<Sim>>, Path(group): Path<String>) -> Response {
    let world = sim.lock();
    let ws = match group_index(&world, &group) {
        Ok(ws) => ws,
        Err(r) => return r,
    };
    let mut value = Vec::new();
    for item in world
        .items
        .iter()
        .filter(|i| i.workspace == ws && is_dataset(&i.kind))
    {
        for d in dataset_upstream(&world, item) {
            let df = &world.items[d];
            value.push(json!({
                "datasetObjectId": item.id.to_string(),
                "dataflowObjectId": df.id.to_string(),
                "workspaceObjectId": world.workspaces[df.workspace].id.to_string(),
            }));
        }
    }
    list(&sim, "datasetToDataflowLinks", value)
}

async fn dataflows(State(sim): State<Arc<Sim>>, Path(group): Path<String>) -> Response {
    let world = sim.lock();
    let ws = match group_index(&world, &group) {
        Ok(ws) => ws,
        Err(r) => return r,
    };
    let value = world
        .items
        .iter()
        .filter(|i| i.workspace == ws && is_dataflow(&i.kind))
        .map(|i| {
            json!({
                "objectId": i.id.to_string(),
                "name": i.name,
                "description": "",
                "modelUrl": format!("https://sim.blob.core.windows.net/powerbi/{}/{}/model.json", world.workspaces[ws].id, i.id),
                "configuredBy": "sim@contoso.com",
                "users": [],
            })
        })
        .collect();
    list(&sim, "dataflows", value)
}

/// `GET /groups/{g}/dataflows/{d}`: the dataflow definition file (model.json).
async fn dataflow_definition(
    State(sim): State<Arc<Sim>>,
    Path((group, dataflow)): Path<(String, String)>,
) -> Response {
    let world = sim.lock();
    match item_index(&world, &group, &dataflow, is_dataflow) {
        Ok((_, i)) => json_response(
            StatusCode::OK,
            json!({
                "name": world.items[i].name,
                "description": "",
                "version": "1.0",
                "culture": "en-US",
                "modifiedTime": pbi_time(sim.clock.wall(sim.clock.start())),
                "pbi:mashup": {"fastCombine": false, "allowNativeQueries": false, "queriesMetadata": {}, "document": "section Section1;"},
                "entities": [],
            }),
        ),
        Err(r) => r,
    }
}

async fn upstream_dataflows(
    State(sim): State<Arc<Sim>>,
    Path((group, dataflow)): Path<(String, String)>,
) -> Response {
    let world = sim.lock();
    let (_, i) = match item_index(&world, &group, &dataflow, is_dataflow) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let value = dataset_upstream(&world, &world.items[i])
        .into_iter()
        .map(|d| {
            json!({
                "targetDataflowId": world.items[d].id.to_string(),
                "groupId": world.workspaces[world.items[d].workspace].id.to_string(),
            })
        })
        .collect();
    list(&sim, "dependentDataflows", value)
}

fn report_json(world: &World, item: &Item) -> Value {
    let ws = &world.workspaces[item.workspace];
    let ItemKind::Report { dataset, paginated } = &item.kind else {
        return Value::Null;
    };
    let mut v = json!({
        "id": item.id.to_string(),
        "reportType": if *paginated { "PaginatedReport" } else { "PowerBIReport" },
        "name": item.name,
        "webUrl": format!("https://app.powerbi.com/groups/{}/{}/{}", ws.id, if *paginated { "rdlreports" } else { "reports" }, item.id),
        "embedUrl": format!("https://app.powerbi.com/reportEmbed?reportId={}&groupId={}", item.id, ws.id),
        "isFromPbix": !paginated,
        "isOwnedByMe": true,
        "users": [],
        "subscriptions": [],
    });
    if let Some(ds) = dataset.filter(|_| !paginated) {
        v["datasetId"] = json!(ds.to_string());
        v["datasetWorkspaceId"] = json!(ws.id.to_string());
    }
    v
}

async fn reports(State(sim): State<Arc<Sim>>, Path(group): Path<String>) -> Response {
    let world = sim.lock();
    let ws = match group_index(&world, &group) {
        Ok(ws) => ws,
        Err(r) => return r,
    };
    let value = world
        .items
        .iter()
        .filter(|i| i.workspace == ws && is_report(&i.kind))
        .map(|i| report_json(&world, i))
        .collect();
    list(&sim, &format!("groups/{group}/reports"), value)
}

async fn report(
    State(sim): State<Arc<Sim>>,
    Path((group, report)): Path<(String, String)>,
) -> Response {
    let world = sim.lock();
    match item_index(&world, &group, &report, is_report) {
        Ok((_, i)) => {
            let mut v = report_json(&world, &world.items[i]);
            v["@odata.context"] = json!(odata(&sim, &format!("groups/{group}/reports/$entity")));
            json_response(StatusCode::OK, v)
        }
        Err(r) => r,
    }
}

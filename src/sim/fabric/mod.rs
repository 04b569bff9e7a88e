//! Fabric REST under `/v1`: workspaces and items (paged with `continuationToken`), typed
//! lists, and the job scheduler (run on demand in both URL forms, get, list, cancel),
//! powerbi-api.md sections 3 and 5, pitfalls 10-12 and 16.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Router, middleware};
use serde_json::{Value, json};

use super::http::{Api, Sim, fabric_error, guard, json_response};
use super::state::{World, base64url, derived_uuid};

mod jobs;

use jobs::{cancel, instance, list_instances, run_path_form, run_query_form};

pub(crate) fn routes(sim: Arc<Sim>) -> Router<Arc<Sim>> {
    let w = "/v1/workspaces/{workspace}";
    let i = "/v1/workspaces/{workspace}/{collection}/{item}";
    Router::new()
        .route("/v1/workspaces", get(workspaces))
        .route(w, get(workspace))
        .route(&format!("{w}/{{collection}}"), get(items))
        .route(i, get(item))
        .route(
            &format!("{i}/jobs/instances"),
            post(run_query_form).get(list_instances),
        )
        .route(
            &format!("{i}/jobs/{{job_type}}/instances"),
            post(run_path_form),
        )
        .route(&format!("{i}/jobs/instances/{{job}}"), get(instance))
        .route(&format!("{i}/jobs/instances/{{job}}/cancel"), post(cancel))
        .route_layer(middleware::from_fn_with_state((sim, Api::Fabric), guard))
}

/// The item type a collection path lists (`items` lists every type).
fn collection_type(collection: &str) -> Option<Option<&'static str>> {
    Some(match collection {
        "items" => None,
        "dataflows" => Some("Dataflow"),
        "semanticModels" => Some("SemanticModel"),
        "reports" => Some("Report"),
        "paginatedReports" => Some("PaginatedReport"),
        "dataPipelines" => Some("DataPipeline"),
        "notebooks" => Some("Notebook"),
        "sparkJobDefinitions" => Some("SparkJobDefinition"),
        "copyJobs" => Some("CopyJob"),
        _ => return None,
    })
}

fn not_found(code: &str, what: &str) -> Response {
    fabric_error(
        StatusCode::NOT_FOUND,
        code,
        &format!("The requested {what} was not found"),
    )
}

fn workspace_json(world: &World, ws: usize) -> Value {
    let w = &world.workspaces[ws];
    let mut v = json!({
        "id": w.id.to_string(),
        "displayName": w.name,
        "description": "",
        "type": "Workspace",
    });
    if let Some(c) = w.capacity {
        v["capacityId"] = json!(world.capacities[c].id.to_string());
    } else if !w.shared_capacity {
        v["capacityId"] = json!(derived_uuid(&["capacity"]).to_string());
    }
    v
}

/// One page of `all` from `?continuationToken=`, with the next token and URI.
fn page(
    sim: &Sim,
    path: &str,
    extra_query: &str,
    q: &HashMap<String, String>,
    all: Vec<Value>,
) -> Response {
    let offset = match q.get("continuationToken") {
        None => 0,
        Some(token) => match decode_token(token) {
            Some(o) => o,
            None => {
                return fabric_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidContinuationToken",
                    "The continuation token is not valid",
                );
            }
        },
    };
    let size = sim.cfg.page_size;
    let total = all.len();
    let value: Vec<Value> = all.into_iter().skip(offset).take(size).collect();
    let mut body = json!({ "value": value });
    if offset + size < total {
        let token = base64url(format!("offset:{}", offset + size).as_bytes());
        let uri = format!(
            "{}{path}?{extra_query}{}continuationToken={token}",
            sim.cfg.base_url,
            if extra_query.is_empty() { "" } else { "&" }
        );
        body["continuationToken"] = json!(token);
        body["continuationUri"] = json!(uri);
    }
    json_response(StatusCode::OK, body)
}

fn decode_token(token: &str) -> Option<usize> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("offset:")?
        .parse()
        .ok()
}

async fn workspaces(
    State(sim): State<Arc<Sim>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let all: Vec<Value> = {
        let world = sim.lock();
        (0..world.workspaces.len())
            .map(|i| workspace_json(&world, i))
            .collect()
    };
    page(&sim, "/v1/workspaces", "", &q, all)
}

fn workspace_index(world: &World, id: &str) -> Result<usize, Response> {
    world
        .workspace_by_id(id)
        .ok_or_else(|| not_found("WorkspaceNotFound", "workspace"))
}

async fn workspace(State(sim): State<Arc<Sim>>, Path(workspace): Path<String>) -> Response {
    let world = sim.lock();
    match workspace_index(&world, &workspace) {
        Ok(ws) => json_response(StatusCode::OK, workspace_json(&world, ws)),
        Err(r) => r,
    }
}

fn item_json(world: &World, index: usize) -> Value {
    let item = &world.items[index];
    json!({
        "id": item.id.to_string(),
        "type": item.fabric_type(),
        "displayName": item.name,
        "description": "",
        "workspaceId": world.workspaces[item.workspace].id.to_string(),
    })
}

/// `GET /v1/workspaces/{w}/items[?type=]` and the typed lists (`/dataflows`, ...).
async fn items(
    State(sim): State<Arc<Sim>>,
    Path((workspace, collection)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(typed) = collection_type(&collection) else {
        return not_found("EntityNotFound", "resource");
    };
    let wanted = typed.map(str::to_string).or_else(|| {
        (collection == "items")
            .then(|| q.get("type").cloned())
            .flatten()
    });
    let all: Vec<Value> = {
        let world = sim.lock();
        let ws = match workspace_index(&world, &workspace) {
            Ok(ws) => ws,
            Err(r) => return r,
        };
        (0..world.items.len())
            .filter(|&i| {
                let item = &world.items[i];
                item.workspace == ws
                    && item.fabric_type().is_some_and(|t| {
                        wanted.as_deref().is_none_or(|w| w.eq_ignore_ascii_case(t))
                    })
            })
            .map(|i| item_json(&world, i))
            .collect()
    };
    let extra = match (&collection[..], q.get("type")) {
        ("items", Some(t)) => format!("type={t}"),
        _ => String::new(),
    };
    page(
        &sim,
        &format!("/v1/workspaces/{workspace}/{collection}"),
        &extra,
        &q,
        all,
    )
}

/// The item addressed by `/{collection}/{item}`, checking the collection's type.
fn item_index(
    world: &World,
    workspace: &str,
    collection: &str,
    item: &str,
) -> Result<(usize, usize), Response> {
    let typed =
        collection_type(collection).ok_or_else(|| not_found("EntityNotFound", "resource"))?;
    let ws = workspace_index(world, workspace)?;
    let index = world
        .item_in(ws, item)
        .filter(|&i| {
            let t = world.items[i].fabric_type();
            t.is_some() && typed.is_none_or(|want| t == Some(want))
        })
        .ok_or_else(|| not_found("ItemNotFound", "item"))?;
    Ok((ws, index))
}

async fn item(
    State(sim): State<Arc<Sim>>,
    Path((workspace, collection, item)): Path<(String, String, String)>,
) -> Response {
    let world = sim.lock();
    match item_index(&world, &workspace, &collection, &item) {
        Ok((_, i)) => json_response(StatusCode::OK, item_json(&world, i)),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_tokens_round_trip() {
        let token = base64url(b"offset:200");
        assert_eq!(decode_token(&token), Some(200));
        assert_eq!(decode_token("!!"), None);
        assert_eq!(decode_token(&base64url(b"nope")), None);
    }
}

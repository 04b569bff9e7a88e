//! Azure Resource Manager for Fabric capacities (`Microsoft.Fabric/capacities`,
//! api-version 2023-11-01, specs/arm/fabric-capacities/): get, resume, suspend, update of
//! the SKU, and the operation status resources their 202 answers point at.
//!
//! ```text
//! GET   /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Fabric/capacities/{name}
//! PATCH (same)                               {"sku": {"name": "F64", "tier": "Fabric"}}
//! POST  (same)/resume | /suspend
//! GET   /subscriptions/{s}/providers/Microsoft.Fabric/locations/{region}/operationstatuses/{id}
//! GET   /subscriptions/{s}/providers/Microsoft.Fabric/locations/{region}/operationresults/{id}
//! ```
//!
//! An accepted operation answers 202 with `Location` (`operationresults`: 202 while it runs,
//! then 200 with the capacity for an update, 204 for resume / suspend),
//! `Azure-AsyncOperation` (`operationstatuses`: `{"status": "InProgress" | "Succeeded" |
//! "Failed"}`) and, when the profile sets one, `Retry-After`. The state moves to `Resuming`,
//! `Pausing` or `Updating` at once and settles when the operation ends. A request in a state
//! that cannot take it (a transition, an update of a paused capacity, resuming an active one)
//! is 400 `BadRequest` "Service is not ready to be updated", the answer users report from
//! the real service.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Router, middleware};
use serde_json::{Value, json};

use super::http::{Api, Sim, arm_error, empty, guard, json_response, parse_json_body, set_header};
use super::profile::CapacityOperation;
use super::state::World;

/// The api-version the spec defines.
const API_VERSION: &str = "2023-11-01";

pub(crate) fn routes(sim: Arc<Sim>) -> Router<Arc<Sim>> {
    let c = "/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Fabric/capacities/{name}";
    let ops = "/subscriptions/{subscription}/providers/Microsoft.Fabric/locations/{region}";
    Router::new()
        .route(c, get(get_capacity).patch(update))
        .route(&format!("{c}/{{action}}"), axum::routing::post(action))
        .route(&format!("{ops}/operationstatuses/{{id}}"), get(status))
        .route(&format!("{ops}/operationresults/{{id}}"), get(result))
        .route_layer(middleware::from_fn_with_state((sim, Api::Arm), guard))
}

type Q = Query<HashMap<String, String>>;

fn check_version(q: &HashMap<String, String>) -> Result<(), Response> {
    match q.get("api-version").map(String::as_str) {
        None => Err(arm_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )),
        Some(API_VERSION) => Ok(()),
        Some(other) => Err(arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidApiVersionParameter",
            &format!(
                "The api-version '{other}' is invalid. The supported versions are '{API_VERSION}'."
            ),
        )),
    }
}

fn not_found(group: &str, name: &str) -> Response {
    arm_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        &format!(
            "The Resource 'Microsoft.Fabric/capacities/{name}' under resource group '{group}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
        ),
    )
}

fn forbidden(world: &World, c: usize, action: &str) -> Response {
    let cap = &world.capacities[c];
    arm_error(
        StatusCode::FORBIDDEN,
        "AuthorizationFailed",
        &format!(
            "The client does not have authorization to perform action 'Microsoft.Fabric/capacities/{action}' over scope '{}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
            cap.arm_id()
        ),
    )
}

fn not_ready() -> Response {
    arm_error(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        "Service is not ready to be updated",
    )
}

/// The `FabricCapacity` body.
fn capacity_json(world: &World, c: usize) -> Value {
    let cap = &world.capacities[c];
    let provisioning = if cap.operation.is_some() {
        "Updating"
    } else {
        "Succeeded"
    };
    json!({
        "properties": {
            "provisioningState": provisioning,
            "state": world.capacity_state(c),
            "administration": {"members": ["admin@contoso.example"]}
        },
        "sku": {"name": cap.sku, "tier": "Fabric"},
        "tags": {},
        "location": cap.region,
        "id": cap.arm_id(),
        "name": cap.name,
        "type": "Microsoft.Fabric/capacities"
    })
}

/// Finds the capacity, after applying ended operations.
fn locate(
    sim: &Sim,
    world: &mut World,
    q: &HashMap<String, String>,
    (subscription, group, name): (&str, &str, &str),
    action: &str,
) -> Result<usize, Response> {
    check_version(q)?;
    world.settle_capacities(sim.clock.now());
    let c = world
        .find_capacity(subscription, group, name)
        .ok_or_else(|| not_found(group, name))?;
    if world.capacities[c].spec.forbidden {
        return Err(forbidden(world, c, action));
    }
    Ok(c)
}

async fn get_capacity(
    State(sim): State<Arc<Sim>>,
    Path((subscription, group, name)): Path<(String, String, String)>,
    Query(q): Q,
) -> Response {
    let mut world = sim.lock();
    let c = match locate(&sim, &mut world, &q, (&subscription, &group, &name), "read") {
        Ok(c) => c,
        Err(r) => return r,
    };
    json_response(StatusCode::OK, capacity_json(&world, c))
}

/// The 202 of an accepted operation, with both status URLs.
fn accepted(sim: &Sim, world: &World, op: usize, body: Option<Value>) -> Response {
    let o = &world.arm_operations[op];
    let cap = &world.capacities[o.capacity];
    let region: String = cap
        .region
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_lowercase();
    let base = format!(
        "{}/subscriptions/{}/providers/Microsoft.Fabric/locations/{region}",
        sim.cfg.base_url, cap.subscription
    );
    let mut r = match body {
        Some(b) => json_response(StatusCode::ACCEPTED, b),
        None => empty(StatusCode::ACCEPTED),
    };
    set_header(
        &mut r,
        "location",
        &format!("{base}/operationresults/{}?api-version={API_VERSION}", o.id),
    );
    if cap.spec.async_operation {
        set_header(
            &mut r,
            "azure-asyncoperation",
            &format!(
                "{base}/operationstatuses/{}?api-version={API_VERSION}",
                o.id
            ),
        );
    }
    if cap.spec.retry_after > 0 {
        set_header(&mut r, "retry-after", &cap.spec.retry_after.to_string());
    }
    r
}

async fn action(
    State(sim): State<Arc<Sim>>,
    Path((subscription, group, name, action)): Path<(String, String, String, String)>,
    Query(q): Q,
) -> Response {
    let kind = match action.as_str() {
        "resume" => CapacityOperation::Resume,
        "suspend" => CapacityOperation::Suspend,
        _ => return not_found(&group, &name),
    };
    let mut world = sim.lock();
    let c = match locate(
        &sim,
        &mut world,
        &q,
        (&subscription, &group, &name),
        &format!("{action}/action"),
    ) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let cap = &world.capacities[c];
    let ready = cap.operation.is_none()
        && match kind {
            CapacityOperation::Resume => !cap.active,
            _ => cap.active,
        };
    if !ready {
        return not_ready();
    }
    let op = world.start_capacity_operation(c, kind, None, sim.clock.now());
    accepted(&sim, &world, op, None)
}

async fn update(
    State(sim): State<Arc<Sim>>,
    Path((subscription, group, name)): Path<(String, String, String)>,
    Query(q): Q,
    body: Bytes,
) -> Response {
    let mut world = sim.lock();
    let c = match locate(
        &sim,
        &mut world,
        &q,
        (&subscription, &group, &name),
        "write",
    ) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let body = match parse_json_body(&body) {
        Ok(Some(b)) => b,
        Ok(None) => {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized: the body is required.",
            );
        }
        Err(message) => {
            return arm_error(StatusCode::BAD_REQUEST, "InvalidRequestContent", &message);
        }
    };
    // FabricCapacityUpdate: sku (RpSkuUpdate: name, tier), tags, properties.
    if let Some(extra) = body
        .keys()
        .find(|k| !["sku", "tags", "properties"].contains(&k.as_str()))
    {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            &format!("Could not find member '{extra}' on object of type 'FabricCapacityUpdate'."),
        );
    }
    let sku = body
        .get("sku")
        .and_then(|s| s.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(tier) = body.get("sku").and_then(|s| s.get("tier"))
        && tier.as_str() != Some("Fabric")
    {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            "The sku tier must be 'Fabric'.",
        );
    }
    let Some(sku) = sku else {
        // Nothing pbibatch changes: answer the resource as it is.
        return json_response(StatusCode::OK, capacity_json(&world, c));
    };
    if crate::powerbi::skus::refresh_limit(&sku).is_none() || !sku.starts_with('F') {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidSku",
            &format!("The SKU '{sku}' is not valid for Microsoft.Fabric/capacities."),
        );
    }
    let cap = &world.capacities[c];
    if cap.operation.is_some() || !cap.active {
        return not_ready();
    }
    let op =
        world.start_capacity_operation(c, CapacityOperation::Scale, Some(sku), sim.clock.now());
    let mut body = capacity_json(&world, c);
    body["properties"]["state"] = json!("Preparing");
    if let Some(s) = &world.arm_operations[op].sku {
        body["sku"]["name"] = json!(s);
    }
    accepted(&sim, &world, op, Some(body))
}

fn find_operation(world: &World, subscription: &str, id: &str) -> Option<usize> {
    world.arm_operations.iter().position(|o| {
        o.id.to_string().eq_ignore_ascii_case(id)
            && world.capacities[o.capacity]
                .subscription
                .eq_ignore_ascii_case(subscription)
    })
}

fn operation_not_found(id: &str) -> Response {
    arm_error(
        StatusCode::NOT_FOUND,
        "OperationNotFound",
        &format!("The operation '{id}' could not be found."),
    )
}

fn with_retry_after(world: &World, op: usize, mut r: Response, running: bool) -> Response {
    let secs = world.capacities[world.arm_operations[op].capacity]
        .spec
        .retry_after;
    if running && secs > 0 {
        set_header(&mut r, "retry-after", &secs.to_string());
    }
    r
}

/// `Azure-AsyncOperation`: the operation status resource.
async fn status(
    State(sim): State<Arc<Sim>>,
    Path((subscription, _region, id)): Path<(String, String, String)>,
    Query(q): Q,
) -> Response {
    if let Err(r) = check_version(&q) {
        return r;
    }
    let now = sim.clock.now();
    let mut world = sim.lock();
    world.settle_capacities(now);
    let Some(op) = find_operation(&world, &subscription, &id) else {
        return operation_not_found(&id);
    };
    let o = &world.arm_operations[op];
    let status = o.status(now);
    let mut body = json!({
        "id": format!("/subscriptions/{subscription}/providers/Microsoft.Fabric/locations/{}/operationstatuses/{}", world.capacities[o.capacity].region, o.id),
        "name": o.id.to_string(),
        "status": status,
        "startTime": sim.clock.wall(o.started).to_rfc3339(),
    });
    if status != "InProgress" {
        body["endTime"] = json!(sim.clock.wall(o.ends).to_rfc3339());
    }
    if status == "Failed" {
        body["error"] = json!({
            "code": "CapacityOperationFailed",
            "message": "The capacity operation failed. (simulated)"
        });
    }
    with_retry_after(
        &world,
        op,
        json_response(StatusCode::OK, body),
        status == "InProgress",
    )
}

/// `Location`: 202 while the operation runs; then the result.
async fn result(
    State(sim): State<Arc<Sim>>,
    Path((subscription, _region, id)): Path<(String, String, String)>,
    Query(q): Q,
) -> Response {
    if let Err(r) = check_version(&q) {
        return r;
    }
    let now = sim.clock.now();
    let mut world = sim.lock();
    world.settle_capacities(now);
    let Some(op) = find_operation(&world, &subscription, &id) else {
        return operation_not_found(&id);
    };
    let o = world.arm_operations[op].clone();
    match o.status(now) {
        "InProgress" => with_retry_after(&world, op, empty(StatusCode::ACCEPTED), true),
        "Failed" => arm_error(
            StatusCode::BAD_REQUEST,
            "CapacityOperationFailed",
            "The capacity operation failed. (simulated)",
        ),
        _ => match o.kind {
            CapacityOperation::Scale => {
                json_response(StatusCode::OK, capacity_json(&world, o.capacity))
            }
            _ => empty(StatusCode::NO_CONTENT),
        },
    }
}

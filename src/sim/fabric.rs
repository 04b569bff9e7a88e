//! Fabric REST under `/v1`: workspaces and items (paged with `continuationToken`), typed
//! lists, and the job scheduler (run on demand in both URL forms, get, list, cancel),
//! powerbi-api.md sections 3 and 5, pitfalls 10-12 and 16.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Router, middleware};
use serde_json::{Value, json};

use super::http::{
    Api, Sim, empty, fabric_error, guard, json_response, parse_json_body, set_header,
};
use super::item_jobs;
use super::profile::OutcomeSpec;
use super::state::{
    ItemKind, Phase, Principal, Run, RunKind, World, base64url, derived_uuid, fabric_time,
};
use super::strict::{self, Rule};

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

/// `POST .../jobs/instances?jobType=X` (legacy form).
async fn run_query_form(
    State(sim): State<Arc<Sim>>,
    Path((workspace, collection, item)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Response {
    let Some(job_type) = q.get("jobType").cloned() else {
        return fabric_error(
            StatusCode::BAD_REQUEST,
            "InvalidJobType",
            "The jobType query parameter is required",
        );
    };
    run(
        &sim,
        (&workspace, &collection, &item),
        &job_type,
        principal,
        &body,
    )
}

/// `POST .../jobs/{jobType}/instances` (current form).
async fn run_path_form(
    State(sim): State<Arc<Sim>>,
    Path((workspace, collection, item, job_type)): Path<(String, String, String, String)>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Response {
    run(
        &sim,
        (&workspace, &collection, &item),
        &job_type,
        principal,
        &body,
    )
}

/// The operation a run-on-demand call is, by URL form and collection (spec operation ids).
/// Under `/dataflows/` both URL forms are the dataflow-specific operations (the query form
/// is their earlier, still accepted spelling); `Refresh` and `Publish` are their aliases.
fn run_operation(collection: &str, job_type: &str) -> &'static str {
    match (collection, job_type.to_ascii_lowercase().as_str()) {
        ("dataflows", "execute" | "refresh") => "BackgroundJobs_RunOnDemandExecute",
        ("dataflows", "applychanges" | "publish") => "BackgroundJobs_RunOnDemandApplyChanges",
        _ => "JobScheduler_RunOnDemandItemJob",
    }
}

/// Checks a run-on-demand body against the operation's request schema, then the
/// `executionData` against what the item's job documents.
fn check_run_body(
    operation: &str,
    item_type: Option<&str>,
    job_type: &str,
    body: &serde_json::Map<String, Value>,
) -> Result<(), String> {
    let value = Value::Object(body.clone());
    if operation == "JobScheduler_RunOnDemandItemJob" {
        strict::check_shape(&value, &strict::RUN_ON_DEMAND_ITEM_JOB_REQUEST)?;
    } else {
        strict::check_shape(&value, &strict::RUN_ON_DEMAND_DATAFLOW_EXECUTE_JOB_REQUEST)?;
    }
    if let (Some(data), Some(shape)) = (
        body.get("executionData"),
        item_type.and_then(|t| item_jobs::execution_data_shape(t, job_type)),
    ) {
        strict::check_shape(data, &shape).map_err(|e| e.replacen('$', "$.executionData", 1))?;
    }
    Ok(())
}

/// Run on demand: 202, no body, `Location` under `/items/`, `Retry-After`.
fn run(
    sim: &Sim,
    (workspace, collection, item): (&str, &str, &str),
    job_type: &str,
    principal: Principal,
    body: &Bytes,
) -> Response {
    let rules = &sim.cfg.rules;
    let operation = run_operation(collection, job_type);
    if let Err(refused) = strict::check_identity(rules, operation, principal) {
        return refused;
    }
    let parsed = match parse_json_body(body) {
        Err(message) => return fabric_error(StatusCode::BAD_REQUEST, "InvalidInput", &message),
        Ok(parsed) => parsed,
    };
    let mut world = sim.lock();
    let (ws, index) = match item_index(&world, workspace, collection, item) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(canonical) = world.items[index].job_type(job_type) else {
        return fabric_error(
            StatusCode::BAD_REQUEST,
            "InvalidJobType",
            &format!("The job type '{job_type}' is not valid for this item"),
        );
    };
    if let Some(map) = &parsed {
        if rules.holds(Rule::RequestSchema)
            && let Err(problem) =
                check_run_body(operation, world.items[index].fabric_type(), &canonical, map)
        {
            return fabric_error(StatusCode::BAD_REQUEST, "InvalidInput", &problem);
        }
        // Top-level `parameters` are "not broadly supported" (platform.json): the spec's own
        // refusal for an item type that does not take them.
        let item_type = world.items[index].fabric_type().unwrap_or_default();
        if let Some(shape) = item_jobs::request_with_parameters(item_type, &canonical) {
            if rules.holds(Rule::RequestSchema)
                && let Err(problem) = strict::check_shape(&Value::Object(map.clone()), &shape)
            {
                return fabric_error(StatusCode::BAD_REQUEST, "InvalidInput", &problem);
            }
        } else if map.contains_key("parameters") {
            return fabric_error(
                StatusCode::BAD_REQUEST,
                "FeatureNotAvailable",
                "Parameter is not allowed for this item type or this item job type",
            );
        }
    }
    // The item's own run operation documents who may run its jobs, whichever URL is called.
    if let Some(row) = world.items[index]
        .fabric_type()
        .and_then(item_jobs::item_job_identity)
        && let Err(refused) = strict::check_identity_row(rules, row, principal)
    {
        return refused;
    }
    // A Dataflow Gen2 run by an app-only identity is accepted, then fails (fabric-cicd#971,
    // Fabric docs "Current limitations"; docs/simulator.md).
    let spn_refused = rules.holds(Rule::DataflowGen2ServicePrincipal)
        && matches!(world.items[index].kind, ItemKind::FabricDataflow)
        && strict::app_only(principal);
    let now = sim.clock.now();
    let running_same_type = world.runs_of(index).any(|(_, r)| {
        matches!(&r.kind, RunKind::Job { job_type, .. } if *job_type == canonical)
            && !r.phase(now).is_terminal()
    });
    let run = if running_same_type {
        world.record_instant(
            index,
            RunKind::Job {
                job_type: canonical,
                scheduled: false,
                deduped: true,
            },
            &sim.clock,
        )
    } else {
        let kind = RunKind::Job {
            job_type: canonical,
            scheduled: false,
            deduped: false,
        };
        match world.trigger(index, kind, &sim.clock) {
            Some(r) => r,
            None => {
                return fabric_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "the job could not be started",
                );
            }
        }
    };
    if spn_refused {
        world.runs[run].outcome = OutcomeSpec::Fail {
            code: Some("SPNBasedRefreshNotAllowed".into()),
            message: Some(format!(
                "SPN based refresh is not allowed for the dataflow with id {}.",
                world.items[index].id
            )),
        };
    }
    let mut response = empty(StatusCode::ACCEPTED);
    set_header(
        &mut response,
        "location",
        &format!(
            "{}/v1/workspaces/{}/items/{}/jobs/instances/{}",
            sim.cfg.base_url, world.workspaces[ws].id, world.items[index].id, world.runs[run].id
        ),
    );
    // Measured after the run was created, so a zero-length job says 0.
    let after = sim.clock.now();
    set_header(
        &mut response,
        "retry-after",
        &world.retry_after(run, after).to_string(),
    );
    response
}

fn status_word(phase: &Phase) -> &'static str {
    match phase {
        Phase::Queued => "NotStarted",
        Phase::Running => "InProgress",
        Phase::Succeeded => "Completed",
        Phase::Failed { .. } | Phase::TimedOut | Phase::Busy => "Failed",
        Phase::Cancelled => "Cancelled",
        Phase::Deduped => "Deduped",
    }
}

fn instance_json(sim: &Sim, world: &World, run: &Run) -> Value {
    let now = sim.clock.now();
    let phase = run.phase(now);
    let RunKind::Job {
        job_type,
        scheduled,
        ..
    } = &run.kind
    else {
        return Value::Null;
    };
    let failure = match &phase {
        Phase::Failed { code, message } => json!({"errorCode": code, "message": message}),
        Phase::TimedOut => {
            json!({"errorCode": "JobTimedOut", "message": "The job instance exceeded its time limit. (simulated)"})
        }
        Phase::Busy => {
            json!({"errorCode": "TooManyRequestsForJobs", "message": "Too many jobs are running. (simulated)"})
        }
        _ => Value::Null,
    };
    json!({
        "id": run.id,
        "itemId": world.items[run.item].id.to_string(),
        "jobType": job_type,
        "invokeType": if *scheduled { "Scheduled" } else { "Manual" },
        "status": status_word(&phase),
        "rootActivityId": derived_uuid(&["activity", &run.id]).to_string(),
        "startTimeUtc": fabric_time(sim.clock.wall(run.created)),
        "endTimeUtc": run.ended_at(now).map(|t| fabric_time(sim.clock.wall(t))),
        "failureReason": failure,
    })
}

fn job_run(world: &World, item: usize, job: &str) -> Result<usize, Response> {
    world
        .run_by_id(job)
        .filter(|&r| {
            world.runs[r].item == item && matches!(world.runs[r].kind, RunKind::Job { .. })
        })
        .ok_or_else(|| not_found("EntityNotFound", "job instance"))
}

/// `GET .../jobs/instances/{id}`, with `Retry-After` while the job runs.
async fn instance(
    State(sim): State<Arc<Sim>>,
    Path((workspace, collection, item, job)): Path<(String, String, String, String)>,
) -> Response {
    let mut world = sim.lock();
    let (_, index) = match item_index(&world, &workspace, &collection, &item) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let run = match job_run(&world, index, &job) {
        Ok(r) => r,
        Err(r) => return r,
    };
    world.count(index, |c| c.polls += 1);
    let now = sim.clock.now();
    let mut response = json_response(
        StatusCode::OK,
        instance_json(&sim, &world, &world.runs[run]),
    );
    if !world.runs[run].phase(now).is_terminal() {
        set_header(
            &mut response,
            "retry-after",
            &world.retry_after(run, now).to_string(),
        );
    }
    response
}

/// `GET .../jobs/instances`: newest first, paged.
async fn list_instances(
    State(sim): State<Arc<Sim>>,
    Path((workspace, collection, item)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let all: Vec<Value> = {
        let mut world = sim.lock();
        let (_, index) = match item_index(&world, &workspace, &collection, &item) {
            Ok(x) => x,
            Err(r) => return r,
        };
        world.count(index, |c| c.polls += 1);
        world
            .runs_of(index)
            .filter(|(_, r)| matches!(r.kind, RunKind::Job { .. }))
            .map(|(_, r)| instance_json(&sim, &world, r))
            .collect()
    };
    page(
        &sim,
        &format!("/v1/workspaces/{workspace}/{collection}/{item}/jobs/instances"),
        "",
        &q,
        all,
    )
}

/// `POST .../jobs/instances/{id}/cancel`: 202 + Location + Retry-After.
async fn cancel(
    State(sim): State<Arc<Sim>>,
    Path((workspace, collection, item, job)): Path<(String, String, String, String)>,
) -> Response {
    let mut world = sim.lock();
    let (ws, index) = match item_index(&world, &workspace, &collection, &item) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let run = match job_run(&world, index, &job) {
        Ok(r) => r,
        Err(r) => return r,
    };
    world.count(index, |c| c.cancels += 1);
    let now = sim.clock.now();
    if world.runs[run].phase(now).is_terminal() {
        return fabric_error(
            StatusCode::BAD_REQUEST,
            "JobAlreadyCompleted",
            "The job instance has already completed",
        );
    }
    world.runs[run].cancelled = Some(now);
    let mut response = empty(StatusCode::ACCEPTED);
    set_header(
        &mut response,
        "location",
        &format!(
            "{}/v1/workspaces/{}/items/{}/jobs/instances/{}",
            sim.cfg.base_url, world.workspaces[ws].id, world.items[index].id, world.runs[run].id
        ),
    );
    set_header(&mut response, "retry-after", "0");
    response
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

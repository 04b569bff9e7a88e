//! The Fabric job scheduler: run on demand in both URL forms (`?jobType=` and the job type in
//! the path), get an instance, list them, cancel one; each item type takes its own job types
//! and `executionData`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::{item_index, not_found, page};
use crate::sim::http::{Sim, empty, fabric_error, json_response, parse_json_body, set_header};
use crate::sim::item_jobs;
use crate::sim::profile::OutcomeSpec;
use crate::sim::state::{
    ItemKind, Phase, Principal, Run, RunKind, World, derived_uuid, fabric_time,
};
use crate::sim::strict::{self, Rule};

/// `POST .../jobs/instances?jobType=X` (legacy form).
pub(super) async fn run_query_form(
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
pub(super) async fn run_path_form(
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

/// The item of a job-instance path and its job run: `(workspace, item, run)`, or the 404.
fn job_run(
    world: &World,
    (workspace, collection, item, job): &(String, String, String, String),
) -> Result<(usize, usize, usize), Response> {
    let (ws, index) = item_index(world, workspace, collection, item)?;
    let run = world
        .run_by_id(job)
        .filter(|&r| {
            world.runs[r].item == index && matches!(world.runs[r].kind, RunKind::Job { .. })
        })
        .ok_or_else(|| not_found("EntityNotFound", "job instance"))?;
    Ok((ws, index, run))
}

/// `GET .../jobs/instances/{id}`, with `Retry-After` while the job runs.
pub(super) async fn instance(
    State(sim): State<Arc<Sim>>,
    Path(path): Path<(String, String, String, String)>,
) -> Response {
    let mut world = sim.lock();
    let (_, index, run) = match job_run(&world, &path) {
        Ok(x) => x,
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
pub(super) async fn list_instances(
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
pub(super) async fn cancel(
    State(sim): State<Arc<Sim>>,
    Path(path): Path<(String, String, String, String)>,
) -> Response {
    let mut world = sim.lock();
    let (ws, index, run) = match job_run(&world, &path) {
        Ok(x) => x,
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

//! Report export to file: ExportTo (202 + Export), status (202 running / 200 done, with
//! Retry-After; `Failed` with Retry-After means busy), file download (powerbi-api.md 4).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::{is_report, item_index};
use crate::sim::files;
use crate::sim::http::{
    Sim, empty, json_response, parse_json_body, pbi_error, pbi_not_found, set_header,
};
use crate::sim::state::{ItemKind, Phase, Principal, RunKind, World, pbi_time};
use crate::sim::strict::{self, EXPORT_REPORT_REQUEST, Rule};

const FORMATS: &[&str] = &[
    "PPTX",
    "PDF",
    "PNG",
    "IMAGE",
    "XLSX",
    "DOCX",
    "CSV",
    "XML",
    "MHTML",
    "ACCESSIBLEPDF",
];
/// Formats only paginated reports can produce.
const PAGINATED_ONLY: &[&str] = &[
    "IMAGE",
    "XLSX",
    "DOCX",
    "CSV",
    "XML",
    "MHTML",
    "ACCESSIBLEPDF",
];

fn bad(message: &str) -> Response {
    pbi_error(StatusCode::BAD_REQUEST, "InvalidRequest", message)
}

/// The Export object for a run.
fn export_json(sim: &Sim, world: &World, run_index: usize, group: &str) -> Value {
    let now = sim.clock.now();
    let run = &world.runs[run_index];
    let item = &world.items[run.item];
    let RunKind::Export { format } = &run.kind else {
        return Value::Null;
    };
    let phase = run.phase(now);
    let (status, percent) = match &phase {
        Phase::Queued => ("NotStarted", 0),
        Phase::Running => {
            let total = run.duration.map(|d| d.as_secs_f64()).unwrap_or(0.0);
            let done = now
                .saturating_duration_since(run.started_at())
                .as_secs_f64();
            let pct = if total > 0.0 {
                ((done / total) * 100.0).clamp(0.0, 99.0) as u64
            } else {
                0
            };
            ("Running", pct)
        }
        Phase::Succeeded | Phase::Deduped => ("Succeeded", 100),
        _ => ("Failed", 100),
    };
    let last = run.ended_at(now).unwrap_or(now);
    let mut v = json!({
        "id": run.id,
        "createdDateTime": pbi_time(sim.clock.wall(run.created)),
        "lastActionDateTime": pbi_time(sim.clock.wall(last)),
        "reportId": item.id.to_string(),
        "reportName": item.name,
        "status": status,
        "percentComplete": percent,
        "resourceFileExtension": files::extension(format),
    });
    if status == "Succeeded" {
        let encoded = crate::secret::encode_component(&run.id);
        v["resourceLocation"] = json!(format!(
            "{}/v1.0/myorg/groups/{group}/reports/{}/exports/{encoded}/file",
            sim.cfg.base_url, item.id
        ));
        v["expirationTime"] = json!(pbi_time(sim.clock.wall(last) + chrono::Duration::hours(24)));
    }
    v
}

/// `POST .../reports/{r}/ExportTo`.
pub(super) async fn start(
    State(sim): State<Arc<Sim>>,
    Extension(principal): Extension<Principal>,
    Path((group, report)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    // A call that reached a non-home cluster is sent back with client routing (pitfall 20).
    if sim.cfg.redirect_exports
        && !q
            .get("preferClientRouting")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        let mut response = empty(StatusCode::TEMPORARY_REDIRECT);
        set_header(
            &mut response,
            "location",
            &format!(
                "{}/v1.0/myorg/groups/{group}/reports/{report}/ExportTo?preferClientRouting=true",
                sim.cfg.base_url
            ),
        );
        return response;
    }
    let body = match parse_json_body(&body) {
        Ok(Some(b)) => b,
        Ok(None) => return bad("The request body is required"),
        Err(message) => return bad(&message),
    };
    if sim.cfg.rules.holds(Rule::RequestSchema)
        && let Err(problem) =
            strict::check_shape(&Value::Object(body.clone()), &EXPORT_REPORT_REQUEST)
    {
        return bad(&problem);
    }
    let Some(format) = body
        .get("format")
        .and_then(Value::as_str)
        .and_then(|f| FORMATS.iter().find(|a| a.eq_ignore_ascii_case(f)))
    else {
        return bad(
            "The 'format' field is required and must be one of PPTX, PDF, PNG, IMAGE, XLSX, DOCX, CSV, XML, MHTML, ACCESSIBLEPDF",
        );
    };
    let mut world = sim.lock();
    let (ws, item) = match item_index(&world, &group, &report, is_report) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let paginated = matches!(
        world.items[item].kind,
        ItemKind::Report {
            paginated: true,
            ..
        }
    );
    if paginated && *format == "PNG" {
        return bad(
            "PNG export is available for Power BI reports only; use IMAGE for paginated reports",
        );
    }
    if !paginated && PAGINATED_ONLY.contains(format) {
        return bad(&format!(
            "{format} export is available for paginated reports only"
        ));
    }
    if let Err(refused) = super::burst::check(&world, item, &body, principal) {
        return refused;
    }
    if world.workspaces[ws].shared_capacity {
        return pbi_error(
            StatusCode::FORBIDDEN,
            "FeatureNotAvailableError",
            "Export to file requires a Premium, Embedded or Fabric capacity",
        );
    }
    let kind = RunKind::Export {
        format: format.to_string(),
    };
    // Only refresh requests are ever dropped silently, so an export always gets its run.
    let Some(run) = world.trigger(item, kind, &sim.clock) else {
        return pbi_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "export not started",
        );
    };
    json_response(StatusCode::ACCEPTED, export_json(&sim, &world, run, &group))
}

fn export_run(world: &World, item: usize, export: &str) -> Result<usize, Response> {
    world
        .run_by_id(export)
        .filter(|&r| {
            world.runs[r].item == item && matches!(world.runs[r].kind, RunKind::Export { .. })
        })
        .ok_or_else(pbi_not_found)
}

/// `GET .../reports/{r}/exports/{id}`.
pub(super) async fn status(
    State(sim): State<Arc<Sim>>,
    Path((group, report, export)): Path<(String, String, String)>,
) -> Response {
    let mut world = sim.lock();
    let (_, item) = match item_index(&world, &group, &report, is_report) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let run = match export_run(&world, item, &export) {
        Ok(r) => r,
        Err(r) => return r,
    };
    world.count(item, |c| c.polls += 1);
    let now = sim.clock.now();
    let phase = world.runs[run].phase(now);
    let body = export_json(&sim, &world, run, &group);
    let status = if phase.is_terminal() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let mut response = json_response(status, body);
    // Retry-After while running, and on a busy failure (resubmit); a permanent failure has none.
    if !phase.is_terminal() || phase == Phase::Busy {
        let secs = world.retry_after(run, now).max(1);
        set_header(&mut response, "retry-after", &secs.to_string());
    }
    response
}

/// `GET .../reports/{r}/exports/{id}/file`.
pub(super) async fn file(
    State(sim): State<Arc<Sim>>,
    Path((group, report, export)): Path<(String, String, String)>,
) -> Response {
    let world = sim.lock();
    let (_, item) = match item_index(&world, &group, &report, is_report) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let run = match export_run(&world, item, &export) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if world.runs[run].phase(sim.clock.now()) != Phase::Succeeded {
        return pbi_not_found();
    }
    let RunKind::Export { format } = &world.runs[run].kind else {
        return pbi_not_found();
    };
    let (content_type, bytes) = files::content(format, &world.items[item].name);
    let mut response = Response::new(Body::from(bytes));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

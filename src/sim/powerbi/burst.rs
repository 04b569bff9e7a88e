//! What an export may ask of a report (report bursting): a report-level filter and RLS
//! identities for a Power BI report, parameters and one identity for a paginated report. The
//! shape of each part is checked against the spec (`ExportReportRequest`, see
//! [`crate::sim::strict::EXPORT_REPORT_REQUEST`]); these are the rules the shape cannot say,
//! each refused with 400 in the Power BI error envelope, as the service does
//! (docs/simulator.md, "Export requests").

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value};

use crate::sim::http::pbi_error;
use crate::sim::state::{ItemKind, Principal, World};
use crate::sim::strict;

fn refuse(message: String) -> Response {
    pbi_error(StatusCode::BAD_REQUEST, "InvalidRequest", &message)
}

/// Checks the configuration parts of an `ExportTo` body for the report `item`.
pub(super) fn check(
    world: &World,
    item: usize,
    body: &Map<String, Value>,
    principal: Principal,
) -> Result<(), Response> {
    let (dataset, paginated) = match &world.items[item].kind {
        ItemKind::Report { dataset, paginated } => (*dataset, *paginated),
        _ => return Ok(()),
    };
    let report = &world.items[item].name;
    if paginated && body.contains_key("powerBIReportConfiguration") {
        return Err(refuse(format!(
            "powerBIReportConfiguration (report level filters, pages, bookmarks) is not supported for the paginated report '{report}'; use paginatedReportConfiguration"
        )));
    }
    if !paginated && body.contains_key("paginatedReportConfiguration") {
        return Err(refuse(format!(
            "paginatedReportConfiguration (parameter values) is not supported for the Power BI report '{report}'; use powerBIReportConfiguration"
        )));
    }
    let config = body
        .get(if paginated {
            "paginatedReportConfiguration"
        } else {
            "powerBIReportConfiguration"
        })
        .and_then(Value::as_object);
    let filters = config
        .and_then(|c| c.get("reportLevelFilters"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if filters > 1 {
        return Err(refuse(format!(
            "Only one report level filter is supported; the request has {filters}"
        )));
    }
    let identities: &[Value] = config
        .and_then(|c| c.get("identities"))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    if paginated && identities.len() > 1 {
        return Err(refuse(format!(
            "A paginated report is exported with a single identity; the request has {}",
            identities.len()
        )));
    }
    // The model whose rules apply: a Power BI report's own one (a paginated report here reads
    // no model of the simulator, so it has no RLS).
    let model = dataset.and_then(|id| world.items.iter().find(|i| i.id == id));
    let roles: &[String] = match model.map(|m| &m.kind) {
        Some(ItemKind::Dataset { rls_roles, .. }) => rls_roles,
        _ => &[],
    };
    for identity in identities {
        let datasets: Vec<&str> = identity
            .get("datasets")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !paginated && datasets.is_empty() {
            return Err(refuse(
                "An effective identity must name the datasets it applies to".to_string(),
            ));
        }
        for id in &datasets {
            let Some(m) = model.filter(|m| m.id.to_string().eq_ignore_ascii_case(id)) else {
                return Err(refuse(format!(
                    "Dataset {id} of the effective identity is not used by the report '{report}'"
                )));
            };
            if roles.is_empty() {
                return Err(refuse(format!(
                    "Exporting with dataset {} shouldn't have effective identity: the dataset has no row-level security",
                    m.id
                )));
            }
        }
        if paginated && roles.is_empty() {
            return Err(refuse(format!(
                "The paginated report '{report}' reads no dataset with row-level security and shouldn't have effective identity"
            )));
        }
        let wanted = identity
            .get("roles")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>())
            .unwrap_or_default();
        if let Some(unknown) = wanted.iter().find(|r| !roles.iter().any(|have| have == *r)) {
            return Err(refuse(format!(
                "Role '{unknown}' of the effective identity does not exist in the dataset"
            )));
        }
    }
    if identities.is_empty()
        && !roles.is_empty()
        && strict::app_only(principal)
        && let Some(m) = model
    {
        return Err(refuse(format!(
            "Exporting dataset {} requires effective identity to be provided: it has row-level security",
            m.id
        )));
    }
    Ok(())
}

//! `report`: export to file (`ExportTo`), poll the export honouring `Retry-After`, resubmit
//! when it fails with a `Retry-After` (service busy), and download the file atomically
//! (temporary file in the target folder, then rename).

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;

use super::common::{CancelTarget, Stop, conclude, guard, is_one_of, resolve};
use super::protocol::{Previous, RemoteKind, RunInfo, RunRef, RunState, Triggered, drive};
use super::{AttemptContext, AttemptOutcome};
use crate::event::{AttemptUpdate, RemoteHandle};
use crate::job::model::{EffectiveIdentity, ExportSpec, ReportStep};
use crate::powerbi::api::Export as ExportState;
use crate::powerbi::resolve::ItemKind;
use crate::powerbi::{ClientError, PowerBiClient};

/// The `ExportTo` body for a report of `report_type` (`PowerBIReport` / `PaginatedReport`);
/// `identities` are the RLS identities with their semantic models resolved to ids.
pub(crate) fn export_body(spec: &ExportSpec, paginated: bool, identities: &[Value]) -> Value {
    let mut body = Map::new();
    body.insert("format".into(), json!(spec.format.as_str()));
    if paginated {
        let mut cfg = Map::new();
        if !spec.parameters.is_empty() {
            let values: Vec<Value> = spec
                .parameters
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect();
            cfg.insert("parameterValues".into(), Value::Array(values));
        }
        if let Some(locale) = &spec.locale {
            // Paginated reports take rendering settings as device-info strings.
            cfg.insert("formatSettings".into(), json!({ "Locale": locale }));
        }
        if !identities.is_empty() {
            cfg.insert("identities".into(), Value::Array(identities.to_vec()));
        }
        if !cfg.is_empty() {
            body.insert("paginatedReportConfiguration".into(), Value::Object(cfg));
        }
    } else {
        let mut cfg = Map::new();
        let mut settings = Map::new();
        if let Some(locale) = &spec.locale {
            settings.insert("locale".into(), json!(locale));
        }
        if let Some(h) = spec.include_hidden_pages {
            settings.insert("includeHiddenPages".into(), json!(h));
        }
        if !settings.is_empty() {
            cfg.insert("settings".into(), Value::Object(settings));
        }
        if !spec.pages.is_empty() {
            let pages: Vec<Value> = spec.pages.iter().map(|p| json!({"pageName": p})).collect();
            cfg.insert("pages".into(), Value::Array(pages));
        }
        if let Some(b) = &spec.bookmark {
            cfg.insert("defaultBookmark".into(), json!({"name": b}));
        }
        if let Some(filter) = &spec.filter {
            cfg.insert("reportLevelFilters".into(), json!([{ "filter": filter }]));
        }
        if !identities.is_empty() {
            cfg.insert("identities".into(), Value::Array(identities.to_vec()));
        }
        if !cfg.is_empty() {
            body.insert("powerBIReportConfiguration".into(), Value::Object(cfg));
        }
    }
    Value::Object(body)
}

/// An `EffectiveIdentity` on the wire (`datasets`: ids; left out when empty).
fn identity_json(identity: &EffectiveIdentity, datasets: Vec<String>) -> Value {
    let mut v = Map::new();
    v.insert("username".into(), json!(identity.username));
    if !identity.roles.is_empty() {
        v.insert("roles".into(), json!(identity.roles));
    }
    if !datasets.is_empty() {
        v.insert("datasets".into(), json!(datasets));
    }
    Value::Object(v)
}

/// What an export asks of a report of the other kind: refused before anything is sent, in
/// the service's terms (it refuses these too).
fn kind_mismatch(spec: &ExportSpec, paginated: bool, name: &str) -> Option<String> {
    if paginated && spec.filter.is_some() {
        return Some(format!(
            "`export.filter` is for Power BI reports; {name} is a paginated report (filter it with `parameters`)"
        ));
    }
    if paginated && spec.identities.len() > 1 {
        return Some(format!(
            "a paginated report is exported as one identity; `export.identities` lists {} for {name}",
            spec.identities.len()
        ));
    }
    if !paginated && !spec.parameters.is_empty() {
        return Some(format!(
            "`export.parameters` are for paginated reports; {name} is a Power BI report (filter it with `filter`)"
        ));
    }
    None
}

/// Runs one attempt of a report step.
pub(crate) async fn run(
    client: PowerBiClient,
    ctx: AttemptContext,
    r: ReportStep,
) -> AttemptOutcome {
    match Export::prepare(&client, &ctx, &r).await {
        Ok(kind) => drive(&client, &ctx, &kind).await,
        Err(stop) => conclude(&client, &ctx, Err(stop), None).await,
    }
}

fn export_error(e: &ExportState) -> String {
    match &e.error {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string()),
        None => "no reason given".to_string(),
    }
}

/// An export to file as one [`RemoteKind`]. No API lists a report's exports, so a lost
/// `ExportTo` answer is recovered by starting it again: harmless, an export changes nothing
/// in the service.
struct Export {
    client: PowerBiClient,
    ctx: AttemptContext,
    conn: String,
    ws: String,
    report: String,
    name: String,
    body: Value,
    path: PathBuf,
}

impl Export {
    async fn prepare(
        client: &PowerBiClient,
        ctx: &AttemptContext,
        r: &ReportStep,
    ) -> Result<Export, Stop> {
        let conn = ctx.step.connection.as_str();
        let (ws, item) = resolve(client, ctx, &r.workspace, ItemKind::Report, &r.report).await?;
        let paginated = item
            .report_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("PaginatedReport"));
        if r.export.format.paginated_only() && !paginated {
            return Err(Stop::Refused(format!(
                "format {} is available for paginated reports only; {} is a Power BI report",
                r.export.format.as_str(),
                item.name
            )));
        }
        if let Some(problem) = kind_mismatch(&r.export, paginated, &item.name) {
            return Err(Stop::Refused(problem));
        }
        let mut identities = Vec::new();
        for identity in &r.export.identities {
            let mut datasets = Vec::new();
            for name in &identity.datasets {
                let model = guard(
                    &ctx.cancel,
                    client.resolve_item(conn, &ws, ItemKind::Dataset, name),
                )
                .await?;
                datasets.push(model.id);
            }
            if datasets.is_empty() && !paginated {
                // A Power BI report's identity names the model it applies to: its own.
                let Some(own) = item.dataset_id.clone() else {
                    return Err(Stop::Refused(format!(
                        "the service does not say which semantic model {} shows: name it in `export.identities[].datasets`",
                        item.name
                    )));
                };
                datasets.push(own);
            }
            identities.push(identity_json(identity, datasets));
        }
        Ok(Export {
            client: client.clone(),
            ctx: ctx.clone(),
            conn: conn.to_string(),
            ws,
            report: item.id,
            name: item.name,
            body: export_body(&r.export, paginated, &identities),
            path: r.export.path.clone(),
        })
    }
}

impl RemoteKind for Export {
    fn noun(&self) -> &'static str {
        "export"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn listable(&self) -> bool {
        false
    }

    async fn list(&self) -> Result<Vec<RunInfo>, ClientError> {
        Ok(Vec::new())
    }

    async fn trigger(&self) -> Result<Triggered, ClientError> {
        let export = self
            .client
            .start_export(&self.conn, &self.ws, &self.report, self.body.clone())
            .await?;
        if export.id.is_empty() {
            return Err(ClientError::Decode {
                url: format!("ExportTo of {}", self.name),
                message: "the export was accepted without an id".into(),
            });
        }
        Ok(Triggered::Named {
            id: export.id,
            first_wait: None,
        })
    }

    async fn status(
        &self,
        run: &RunRef,
    ) -> Result<(Option<RunInfo>, Option<Duration>), ClientError> {
        let (export, retry_after) = self
            .client
            .export_status(&self.conn, &self.ws, &self.report, &run.id)
            .await?;
        let status = export.status.as_deref();
        let state = if is_one_of(status, &["Succeeded"]) {
            RunState::Succeeded
        } else if is_one_of(status, &["Failed"]) {
            RunState::Failed(format!(
                "export {} failed: {}",
                run.id,
                export_error(&export)
            ))
        } else {
            RunState::Running
        };
        let info = RunInfo {
            id: run.id.clone(),
            state,
            status: export.status.clone(),
            percent: export.percent_complete.map(|p| p.clamp(0.0, 100.0) as u8),
            start: None,
            end: None,
            from_trigger: true,
            direct: true,
        };
        Ok((Some(info), retry_after))
    }

    fn handle(&self, run: Option<&RunRef>, _known_before: &[String]) -> RemoteHandle {
        RemoteHandle::Export {
            workspace_id: self.ws.clone(),
            report_id: self.report.clone(),
            export_id: run.map(|r| r.id.clone()).unwrap_or_default(),
        }
    }

    fn previous(&self, handle: &RemoteHandle) -> Option<Previous> {
        match handle {
            RemoteHandle::Export {
                report_id,
                export_id,
                ..
            } if report_id == &self.report && !export_id.is_empty() => Some(Previous {
                run: Some(RunRef {
                    id: export_id.clone(),
                    direct: true,
                }),
                known_before: Vec::new(),
            }),
            _ => None,
        }
    }

    fn cancel_target(&self, run: &RunRef) -> CancelTarget {
        CancelTarget::Export {
            export_id: run.id.clone(),
        }
    }

    fn appear_within(&self) -> Duration {
        Duration::ZERO
    }

    fn repeat_is_harmless(&self) -> bool {
        true
    }

    async fn finish(&self, run: &RunRef) -> Result<(), Stop> {
        let path = download(
            &self.client,
            &self.ctx,
            &self.ws,
            &self.report,
            &run.id,
            &self.path,
        )
        .await?;
        self.ctx.update(AttemptUpdate {
            note: Some(format!("exported to {}", path.display())),
            ..AttemptUpdate::default()
        });
        Ok(())
    }
}

/// Streams the file into a temporary file beside `path`, then renames it over `path`, so a
/// reader never sees a half-written export.
async fn download(
    client: &PowerBiClient,
    ctx: &AttemptContext,
    ws: &str,
    report_id: &str,
    export_id: &str,
    path: &Path,
) -> Result<PathBuf, Stop> {
    let conn = ctx.step.connection.as_str();
    let resp = guard(
        &ctx.cancel,
        client.export_file(conn, ws, report_id, export_id),
    )
    .await?;
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Stop::Failed(format!("cannot read the working directory: {e}")))?
            .join(path)
    };
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| Stop::Failed(format!("cannot create {}: {e}", dir.display())))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    let tmp = dir.join(format!(
        ".{file_name}.{}.part",
        uuid::Uuid::new_v4().simple()
    ));
    let result = async {
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| Stop::Failed(format!("cannot create {}: {e}", tmp.display())))?;
        let mut stream = resp.bytes_stream();
        loop {
            let chunk = tokio::select! {
                biased;
                _ = ctx.cancel.cancelled() => return Err(Stop::Cancelled),
                c = stream.next() => c,
            };
            let Some(chunk) = chunk else { break };
            let chunk = chunk.map_err(|e| {
                Stop::Failed(format!(
                    "download of export {export_id} broke: {}",
                    crate::powerbi::http::describe_reqwest(&e)
                ))
            })?;
            file.write_all(&chunk)
                .await
                .map_err(|e| Stop::Failed(format!("cannot write {}: {e}", tmp.display())))?;
        }
        file.sync_all()
            .await
            .map_err(|e| Stop::Failed(format!("cannot write {}: {e}", tmp.display())))?;
        drop(file);
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| Stop::Failed(format!("cannot move the export to {}: {e}", path.display())))
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result.map(|_| path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::model::ExportFormat;
    use indexmap::IndexMap;

    fn spec(format: ExportFormat) -> ExportSpec {
        ExportSpec {
            format,
            path: PathBuf::from("out/x.pdf"),
            pages: vec![],
            bookmark: None,
            parameters: IndexMap::new(),
            locale: None,
            include_hidden_pages: None,
            filter: None,
            identities: vec![],
        }
    }

    #[test]
    fn power_bi_report_body() {
        let mut s = spec(ExportFormat::Pdf);
        assert_eq!(export_body(&s, false, &[]), json!({"format": "PDF"}));
        s.pages = vec!["ReportSection1".into()];
        s.bookmark = Some("Q1".into());
        s.locale = Some("en-US".into());
        assert_eq!(
            export_body(&s, false, &[]),
            json!({"format": "PDF", "powerBIReportConfiguration": {
                "settings": {"locale": "en-US"},
                "pages": [{"pageName": "ReportSection1"}],
                "defaultBookmark": {"name": "Q1"}}})
        );
    }

    #[test]
    fn bursting_parts_go_to_the_configuration_of_the_report_kind() {
        let mut s = spec(ExportFormat::Pdf);
        s.filter = Some("Geo/Region eq 'West'".into());
        let identity = EffectiveIdentity {
            username: "west@contoso.com".into(),
            roles: vec!["RegionManager".into()],
            datasets: vec![],
        };
        let wire = [identity_json(&identity, vec!["ds-1".into()])];
        assert_eq!(
            export_body(&s, false, &wire),
            json!({"format": "PDF", "powerBIReportConfiguration": {
                "reportLevelFilters": [{"filter": "Geo/Region eq 'West'"}],
                "identities": [{"username": "west@contoso.com", "roles": ["RegionManager"], "datasets": ["ds-1"]}]}})
        );
        assert!(kind_mismatch(&s, true, "R").is_some_and(|m| m.contains("paginated report")));
        assert_eq!(kind_mismatch(&s, false, "R"), None);
        let mut p = spec(ExportFormat::Xlsx);
        p.parameters.insert("Region".into(), "West".into());
        let wire = [identity_json(&identity, vec![])];
        assert_eq!(
            export_body(&p, true, &wire),
            json!({"format": "XLSX", "paginatedReportConfiguration": {
                "parameterValues": [{"name": "Region", "value": "West"}],
                "identities": [{"username": "west@contoso.com", "roles": ["RegionManager"]}]}})
        );
        assert!(kind_mismatch(&p, false, "R").is_some_and(|m| m.contains("Power BI report")));
    }

    #[test]
    fn paginated_report_body() {
        let mut s = spec(ExportFormat::Xlsx);
        s.parameters.insert("Year".into(), "2024".into());
        assert_eq!(
            export_body(&s, true, &[]),
            json!({"format": "XLSX", "paginatedReportConfiguration": {
                "parameterValues": [{"name": "Year", "value": "2024"}]}})
        );
    }
}

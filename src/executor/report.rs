//! `report`: export to file (`ExportTo`), poll the export honouring `Retry-After`, resubmit
//! when it fails with a `Retry-After` (service busy), and download the file atomically
//! (temporary file in the target folder, then rename).

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::common::{CancelTarget, Stop, conclude, guard, is_one_of, resource_update};
use super::poll::{Poller, sleep_or_cancel};
use super::{AttemptContext, AttemptOutcome, AttemptUpdate, RemoteHandle};
use crate::job::model::{ExportSpec, ReportStep};
use crate::powerbi::PowerBiClient;
use crate::powerbi::api::Export;
use crate::powerbi::resolve::ItemKind;

/// Whole-export resubmissions after `Failed` + `Retry-After`.
const MAX_RESUBMITS: u32 = 3;

/// The `ExportTo` body for a report of `report_type` (`PowerBIReport` / `PaginatedReport`).
pub fn export_body(spec: &ExportSpec, paginated: bool) -> Value {
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
        if !cfg.is_empty() {
            body.insert("powerBIReportConfiguration".into(), Value::Object(cfg));
        }
    }
    Value::Object(body)
}

/// Runs one attempt of a report step.
pub(crate) async fn run(
    client: PowerBiClient,
    ctx: AttemptContext,
    r: ReportStep,
) -> AttemptOutcome {
    // Exports cannot be cancelled remotely (there is no API); the target only names it.
    let mut target: Option<CancelTarget> = None;
    let result = attempt(&client, &ctx, &r, &mut target).await;
    conclude(&client, &ctx, result, target.as_ref()).await
}

fn export_error(e: &Export) -> String {
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

async fn attempt(
    client: &PowerBiClient,
    ctx: &AttemptContext,
    r: &ReportStep,
    target: &mut Option<CancelTarget>,
) -> Result<AttemptOutcome, Stop> {
    let conn = ctx.step.connection.as_str();
    let ws = guard(&ctx.cancel, client.workspace_id(conn, &r.workspace)).await?;
    let item = guard(
        &ctx.cancel,
        client.resolve_item(conn, &ws, ItemKind::Report, &r.report),
    )
    .await?;
    ctx.update(resource_update(&ws, &item.id, &item.name));
    let paginated = item
        .report_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("PaginatedReport"));
    if r.export.format.paginated_only() && !paginated {
        return Err(Stop::Failed(format!(
            "format {} is available for paginated reports only; {} is a Power BI report",
            r.export.format.as_str(),
            item.name
        )));
    }
    let body = export_body(&r.export, paginated);
    let poll_interval = ctx.step.poll_interval;

    let mut reattach = match ctx.reattach.clone() {
        Some(RemoteHandle::Export { export_id, .. }) => Some(export_id),
        _ => None,
    };
    let mut resubmits = 0;
    let export_id = 'submit: loop {
        let started = Instant::now();
        let id = match reattach.take() {
            Some(id) => id,
            None => {
                guard(
                    &ctx.cancel,
                    client.start_export(conn, &ws, &item.id, body.clone()),
                )
                .await?
                .id
            }
        };
        if id.is_empty() {
            return Err(Stop::Failed("the export was accepted without an id".into()));
        }
        *target = Some(CancelTarget::Export {
            export_id: id.clone(),
        });
        ctx.update(AttemptUpdate {
            remote_id: Some(id.clone()),
            handle: Some(RemoteHandle::Export {
                workspace_id: ws.clone(),
                report_id: item.id.clone(),
                export_id: id.clone(),
            }),
            ..AttemptUpdate::default()
        });
        let mut poller = Poller::starting_at(poll_interval, started);
        let mut retry_after: Option<Duration> = None;
        let mut last: (Option<String>, Option<u8>) = (None, None);
        loop {
            poller.wait(&ctx.cancel, retry_after).await?;
            let (export, ra) =
                guard(&ctx.cancel, client.export_status(conn, &ws, &item.id, &id)).await?;
            retry_after = ra;
            let percent = export.percent_complete.map(|p| p.clamp(0.0, 100.0) as u8);
            if (export.status.clone(), percent) != last {
                last = (export.status.clone(), percent);
                ctx.update(AttemptUpdate {
                    remote_status: export.status.clone(),
                    percent,
                    remote_id: Some(id.clone()),
                    ..AttemptUpdate::default()
                });
            }
            let status = export.status.as_deref();
            if is_one_of(status, &["Succeeded"]) {
                break 'submit id;
            }
            if is_one_of(status, &["Failed"]) {
                match ra {
                    Some(delay) if resubmits < MAX_RESUBMITS => {
                        resubmits += 1;
                        tracing::info!(step = %ctx.step.id, "export failed with Retry-After: resubmitting");
                        sleep_or_cancel(&ctx.cancel, delay).await?;
                        continue 'submit;
                    }
                    _ => {
                        return Err(Stop::Failed(format!(
                            "export {} failed: {}",
                            id,
                            export_error(&export)
                        )));
                    }
                }
            }
        }
    };
    let path = download(client, ctx, &ws, &item.id, &export_id, &r.export.path).await?;
    ctx.update(AttemptUpdate {
        note: Some(format!("exported to {}", path.display())),
        ..AttemptUpdate::default()
    });
    Ok(AttemptOutcome::Succeeded { adopted: false })
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
        }
    }

    #[test]
    fn power_bi_report_body() {
        let mut s = spec(ExportFormat::Pdf);
        assert_eq!(export_body(&s, false), json!({"format": "PDF"}));
        s.pages = vec!["ReportSection1".into()];
        s.bookmark = Some("Q1".into());
        s.locale = Some("en-US".into());
        assert_eq!(
            export_body(&s, false),
            json!({"format": "PDF", "powerBIReportConfiguration": {
                "settings": {"locale": "en-US"},
                "pages": [{"pageName": "ReportSection1"}],
                "defaultBookmark": {"name": "Q1"}}})
        );
    }

    #[test]
    fn paginated_report_body() {
        let mut s = spec(ExportFormat::Xlsx);
        s.parameters.insert("Year".into(), "2024".into());
        assert_eq!(
            export_body(&s, true),
            json!({"format": "XLSX", "paginatedReportConfiguration": {
                "parameterValues": [{"name": "Year", "value": "2024"}]}})
        );
    }
}

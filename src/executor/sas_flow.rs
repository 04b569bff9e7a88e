//! `sas_flow`: POST to a Power Automate / Logic Apps HTTP trigger (the "SAS URL"), and with
//! `wait_for`, follow the Gen1 dataflow transaction that the flow started.
//!
//! The URL is a credential (its `sig`): it is only ever shown through `redact_url`.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::json;
use tokio::time::Instant;

use super::common::{CancelTarget, Stop, appear_wait, conclude, guard_raw};
use super::dataflow::{Gen1, TxProgress, expected_duration};
use super::poll::Poller;
use super::{AttemptContext, AttemptOutcome, AttemptUpdate};
use crate::job::model::{HeaderValue as StepHeader, SasFlowStep};
use crate::powerbi::PowerBiClient;
use crate::powerbi::errors::parse_error_body;
use crate::powerbi::http::{Body, HttpRequest, RetryMode};
use crate::secret::redact_url;

/// Builds the request headers of a `sas_flow` or `webhook` step; credential-like values are
/// marked sensitive so they never show in debug output.
pub(crate) fn build_headers(
    headers: &indexmap::IndexMap<String, StepHeader>,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut out = Vec::with_capacity(headers.len());
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("invalid header name `{k}`"))?;
        let mut value = HeaderValue::from_str(v.expose())
            .map_err(|_| format!("invalid value for header `{k}`"))?;
        if matches!(v, StepHeader::Secret(_)) || crate::secret::is_credential_header(k) {
            value.set_sensitive(true);
        }
        out.push((name, value));
    }
    Ok(out)
}

/// True when `status` is accepted: one of `expect` or, when empty, any 2xx.
pub(crate) fn status_ok(status: u16, expect: &[u16]) -> bool {
    if expect.is_empty() {
        (200..300).contains(&status)
    } else {
        expect.contains(&status)
    }
}

/// Runs one attempt of a sas_flow step.
pub(crate) async fn run(
    client: PowerBiClient,
    ctx: AttemptContext,
    s: SasFlowStep,
) -> AttemptOutcome {
    let mut target: Option<CancelTarget> = None;
    let result = attempt(&client, &ctx, &s, &mut target).await;
    conclude(&client, &ctx, result, target.as_ref()).await
}

async fn attempt(
    client: &PowerBiClient,
    ctx: &AttemptContext,
    s: &SasFlowStep,
    target: &mut Option<CancelTarget>,
) -> Result<AttemptOutcome, Stop> {
    let shown = redact_url(s.url.expose());
    let url = url::Url::parse(s.url.expose())
        .map_err(|_| Stop::Failed(format!("invalid flow url {shown}")))?;
    let method = Method::from_bytes(s.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| Stop::Failed(format!("invalid method `{}`", s.method)))?;

    // With wait_for, read the transactions before the trigger: ours is the one not among them.
    let mut watch: Option<(Gen1<'_>, HashSet<String>)> = None;
    let mut expected = None;
    if let Some(w) = &s.wait_for {
        let g = Gen1::resolve(client, ctx, &w.workspace, &w.dataflow).await?;
        let txs = g.transactions().await?;
        expected = expected_duration(&txs);
        let known: HashSet<String> = txs.into_iter().map(|t| t.id).collect();
        ctx.update(AttemptUpdate {
            handle: Some(g.handle(None, &known)),
            ..AttemptUpdate::default()
        });
        watch = Some((g, known));
    }

    let mut req = HttpRequest::new(method, url, RetryMode::NotIdempotent);
    req.headers = build_headers(&s.headers).map_err(Stop::Failed)?;
    req.body = Body::Json(s.body.clone().unwrap_or_else(|| json!({})));
    let started = Instant::now();
    let resp = guard_raw(&ctx.cancel, client.send_plain(&req))
        .await?
        .map_err(Stop::from)?;
    let status = resp.status().as_u16();
    let run_id = resp
        .headers()
        .get("x-ms-workflow-run-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = resp.text().await.unwrap_or_default();
    if !status_ok(status, &s.expect_status) {
        let info = parse_error_body(&text);
        let detail = match info.code {
            Some(c) if c != info.message => format!("{c} - {}", info.message),
            _ => info.message,
        };
        return Err(Stop::Failed(format!(
            "flow trigger {shown} answered {status}{}",
            if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            }
        )));
    }
    ctx.update(AttemptUpdate {
        remote_status: Some(status.to_string()),
        remote_id: run_id.clone(),
        ..AttemptUpdate::default()
    });
    let Some((g, known)) = watch else {
        return Ok(AttemptOutcome::Succeeded { adopted: false });
    };
    // A flow may take a while before it reaches the refresh action: wait longer than for a
    // direct trigger.
    let limit = appear_wait(ctx.step.poll_interval).max(Duration::from_secs(120));
    let Some(found) = g.find_new(&known, started, limit).await? else {
        return Err(Stop::Failed(format!(
            "the flow was triggered ({status}) but no new transaction of dataflow {} appeared within {}",
            g.name,
            humantime::format_duration(limit)
        )));
    };
    let id = found.id.clone();
    *target = Some(g.target(&id));
    ctx.update(AttemptUpdate {
        remote_id: Some(id.clone()),
        handle: Some(g.handle(Some(&id), &known)),
        ..AttemptUpdate::default()
    });
    let poller = Poller::starting_at(ctx.step.poll_interval, started).expecting(expected);
    match g.poll(&id, poller, Some(found)).await? {
        TxProgress::Failed(error) => Ok(AttemptOutcome::Failed { error }),
        _ => Ok(AttemptOutcome::Succeeded { adopted: false }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn expect_status() {
        assert!(status_ok(202, &[]));
        assert!(!status_ok(302, &[]));
        assert!(status_ok(302, &[302]));
        assert!(!status_ok(200, &[202]));
    }

    #[test]
    fn secret_headers_are_sensitive() {
        let mut h = indexmap::IndexMap::new();
        h.insert(
            "X-Api-Key".to_string(),
            StepHeader::Secret(Secret::new("k")),
        );
        h.insert("X-Plain".to_string(), StepHeader::Plain("v".into()));
        let built = build_headers(&h).unwrap();
        assert!(built[0].1.is_sensitive());
        assert!(!built[1].1.is_sensitive());
    }
}

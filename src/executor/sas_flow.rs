//! `sas_flow`: POST to a Power Automate / Logic Apps HTTP trigger (the "SAS URL"), and with
//! `wait_for`, follow the Gen1 dataflow transaction that the flow started.
//!
//! The URL is a credential (its `sig`): it is only ever shown through `redact_url`.

use std::time::Duration;

use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::json;

use super::common::{CancelTarget, Stop, appear_wait, conclude};
use super::dataflow::Gen1;
use super::protocol::{Previous, RemoteKind, RunInfo, RunRef, Triggered, drive};
use super::{AttemptContext, AttemptOutcome};
use crate::event::RemoteHandle;
use crate::job::model::{HeaderValue as StepHeader, SasFlowStep};
use crate::powerbi::errors::parse_error_body;
use crate::powerbi::http::{Body, HttpRequest, RetryMode};
use crate::powerbi::{ClientError, PowerBiClient};
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

/// Removes the SAS parameters (`sp`, `sv`, `sig`) from a trigger URL, keeping the others.
pub(crate) fn strip_sas(url: &mut url::Url) {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !matches!(k.as_ref(), "sp" | "sv" | "sig"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
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
    match Flow::prepare(&client, &ctx, &s).await {
        Ok(kind) => drive(&client, &ctx, &kind).await,
        Err(stop) => conclude(&client, &ctx, Err(stop), None).await,
    }
}

/// A Power Automate / Logic Apps HTTP trigger as one [`RemoteKind`]: with `wait_for`, its
/// runs are the transactions of the Gen1 dataflow the flow refreshes; without, the trigger's
/// 2xx is the whole result.
struct Flow {
    client: PowerBiClient,
    request: HttpRequest,
    /// The URL as it may be shown (`sig=***`).
    shown: String,
    expect_status: Vec<u16>,
    watch: Option<Gen1>,
    /// `oauth: true`: the connection whose flow-audience token authorizes the trigger
    /// (fetched at each trigger, so it is never stale).
    oauth_connection: Option<String>,
}

impl Flow {
    async fn prepare(
        client: &PowerBiClient,
        ctx: &AttemptContext,
        s: &SasFlowStep,
    ) -> Result<Flow, Stop> {
        let shown = redact_url(s.url.expose());
        let mut url = url::Url::parse(s.url.expose())
            .map_err(|_| Stop::Refused(format!("invalid flow url {shown}")))?;
        // A trigger restricted to the tenant's users takes a bearer token for the flow
        // audience and refuses SAS parameters.
        if s.oauth {
            strip_sas(&mut url);
        }
        let method = Method::from_bytes(s.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| Stop::Refused(format!("invalid method `{}`", s.method)))?;
        let mut request = HttpRequest::new(method, url, RetryMode::NotIdempotent);
        request.headers = build_headers(&s.headers).map_err(Stop::Refused)?;
        request.body = Body::Json(s.body.clone().unwrap_or_else(|| json!({})));
        let watch = match &s.wait_for {
            Some(w) => Some(Gen1::resolve(client, ctx, &w.workspace, &w.dataflow).await?),
            None => None,
        };
        Ok(Flow {
            client: client.clone(),
            request,
            shown,
            expect_status: s.expect_status.clone(),
            watch,
            oauth_connection: s.oauth.then(|| ctx.step.connection.clone()),
        })
    }

    fn watched(&self) -> Result<&Gen1, ClientError> {
        self.watch
            .as_ref()
            .ok_or_else(|| ClientError::Config("this flow step has no wait_for".into()))
    }
}

impl RemoteKind for Flow {
    fn noun(&self) -> &'static str {
        if self.watch.is_some() {
            "transaction"
        } else {
            "flow run"
        }
    }

    fn name(&self) -> &str {
        match &self.watch {
            Some(g) => &g.name,
            None => &self.shown,
        }
    }

    fn listable(&self) -> bool {
        self.watch.is_some()
    }

    async fn list(&self) -> Result<Vec<RunInfo>, ClientError> {
        match &self.watch {
            Some(g) => g.list().await,
            None => Ok(Vec::new()),
        }
    }

    async fn trigger(&self) -> Result<Triggered, ClientError> {
        let resp = match &self.oauth_connection {
            Some(connection) => {
                let mut request = self.request.clone();
                request.bearer = Some(self.client.flow_token(connection).await?);
                self.client.send_plain(&request).await?
            }
            None => self.client.send_plain(&self.request).await?,
        };
        let status = resp.status().as_u16();
        let retry_after = crate::powerbi::http::retry_after(resp.headers());
        let run_id = resp
            .headers()
            .get("x-ms-workflow-run-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp.text().await.unwrap_or_default();
        if !status_ok(status, &self.expect_status) {
            let info = parse_error_body(&text);
            return Err(ClientError::Api {
                status,
                code: info.code,
                message: info.message,
                retry_after,
                method: self.request.method.as_str().into(),
                url: self.shown.clone(),
                request_id: None,
            });
        }
        if self.watch.is_some() {
            Ok(Triggered::Unnamed)
        } else {
            Ok(Triggered::Done {
                remote_id: run_id,
                status: status.to_string(),
            })
        }
    }

    async fn status(
        &self,
        run: &RunRef,
    ) -> Result<(Option<RunInfo>, Option<Duration>), ClientError> {
        self.watched()?.status(run).await
    }

    fn handle(&self, run: Option<&RunRef>, known_before: &[String]) -> RemoteHandle {
        match &self.watch {
            Some(g) => g.handle(run, known_before),
            // Never called: a flow without wait_for has no runs to list or follow.
            None => RemoteHandle::DataflowTransaction {
                workspace_id: String::new(),
                dataflow_id: String::new(),
                transaction_id: None,
                known_before: Vec::new(),
            },
        }
    }

    fn previous(&self, handle: &RemoteHandle) -> Option<Previous> {
        self.watch.as_ref().and_then(|g| g.previous(handle))
    }

    fn cancel_target(&self, run: &RunRef) -> CancelTarget {
        match &self.watch {
            Some(g) => g.cancel_target(run),
            None => CancelTarget::StandardRefresh,
        }
    }

    fn appear_within(&self) -> Duration {
        // A flow may take a while before it reaches the refresh action: wait longer than
        // for a direct trigger.
        match &self.watch {
            Some(g) => appear_wait(g.poll_interval).max(Duration::from_secs(120)),
            None => Duration::ZERO,
        }
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
    fn sas_parameters_are_stripped_for_oauth_triggers() {
        let mut url = url::Url::parse(
            "https://x.logic.azure.com/workflows/w/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=SECRET",
        )
        .unwrap();
        strip_sas(&mut url);
        assert_eq!(url.query(), Some("api-version=2016-06-01"));
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

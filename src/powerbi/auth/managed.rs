//! Managed identity: the App Service / Container Apps / Functions identity endpoint when the
//! platform set `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`, else the VM instance metadata
//! service (IMDS), whose 404 and 410 answers are retried as Microsoft's clients do.

use std::time::Duration;

use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use url::Url;

use super::{send_for_text, token_answer};
use crate::job::model::Connection;
use crate::powerbi::config::ClientConfig;
use crate::powerbi::errors::ClientError;
use crate::powerbi::http::{Http, HttpRequest, RetryMode};

pub(super) async fn fetch(
    http: &Http,
    cfg: &ClientConfig,
    conn: &Connection,
    resource: &str,
    client_id: Option<&str>,
) -> Result<(crate::secret::Secret, Duration), ClientError> {
    let refused = |message: String| ClientError::Auth {
        connection: conn.name.clone(),
        message,
        refused: true,
    };
    if let Some(endpoint) = &cfg.identity_endpoint {
        // App Service 2019-08-01 protocol: the platform's secret in `X-IDENTITY-HEADER`.
        let mut url = endpoint.url.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("api-version", "2019-08-01");
            q.append_pair("resource", resource);
            if let Some(id) = client_id {
                q.append_pair("client_id", id);
            }
        }
        let mut req = HttpRequest::new(Method::GET, url, RetryMode::Idempotent);
        let header = HeaderValue::from_str(endpoint.header.expose())
            .map_err(|_| refused("IDENTITY_HEADER is not a valid header value".into()))?;
        req.headers
            .push((HeaderName::from_static("x-identity-header"), header));
        let (status, text) = send_for_text(http, conn, &req).await?;
        return token_answer(conn, status, &text);
    }
    let mut url: Url = cfg.imds_url.clone();
    url.path_segments_mut()
        .map_err(|_| refused("the managed identity url cannot have a path".into()))?
        .pop_if_empty()
        .extend(["metadata", "identity", "oauth2", "token"]);
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("api-version", "2018-02-01");
        q.append_pair("resource", resource);
        if let Some(id) = client_id {
            q.append_pair("client_id", id);
        }
    }
    let mut req = HttpRequest::api(Method::GET, url, RetryMode::Idempotent);
    req.headers.push((
        HeaderName::from_static("metadata"),
        HeaderValue::from_static("true"),
    ));
    // 429 and 5xx are retried (honouring Retry-After) inside `Http::send`; IMDS also asks
    // for 404 (identity not assigned yet) and 410 (IMDS updating) to be retried.
    let mut retry = 0;
    loop {
        let (status, text) = send_for_text(http, conn, &req).await?;
        match cfg.imds_retry.delay_after(status, retry) {
            Some(pause) => {
                tracing::debug!(
                    connection = %conn.name,
                    status,
                    retry = retry + 1,
                    pause_ms = pause.as_millis() as u64,
                    "IMDS answered a retryable status; retrying"
                );
                tokio::time::sleep(pause).await;
                retry += 1;
            }
            None => return token_answer(conn, status, &text),
        }
    }
}

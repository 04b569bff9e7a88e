//! [`PowerBiClient`]: the one client of a run. It builds URLs from the connection's cloud,
//! attaches the right token, renews it once on a 401 / `TokenExpired` answer, and turns
//! non-success answers into [`ClientError::Api`] with the service's own message.

use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use url::Url;

use super::auth::{Audience, TokenCache};
use super::config::{ClientConfig, is_allowed_url};
use super::errors::{ClientError, answer_request_id, parse_error_body};
use super::http::{Body, Http, HttpRequest, RetryMode, describe_reqwest, retry_after};
use super::resolve::ResolveCache;
use crate::job::model::{Connection, Credentials};
use crate::secret::{redact_api_url, redact_url};

/// Percent-encodes one path segment or query value: RFC 3986 unreserved characters only stay,
/// so transaction ids (`:`, `@`, `$`) and export ids (`/`, `+`, `=`) are always encoded.
pub(crate) fn encode(s: &str) -> String {
    crate::secret::encode_component(s)
}

/// A successful answer, read whole.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl ApiResponse {
    /// The body as JSON (an empty body is an error).
    pub fn json<T: DeserializeOwned>(&self, url: &Url) -> Result<T, ClientError> {
        serde_json::from_slice(&self.body).map_err(|e| ClientError::Decode {
            url: redact_api_url(url.as_str()),
            message: e.to_string(),
        })
    }

    /// `Retry-After` in seconds, when given.
    pub fn retry_after(&self) -> Option<Duration> {
        retry_after(&self.headers)
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The last path segment of `Location` (refresh request id, Fabric job instance id).
    pub(crate) fn location_id(&self) -> Option<String> {
        let loc = self.header("location")?;
        let path = loc.split(['?', '#']).next().unwrap_or(loc);
        let last = path.trim_end_matches('/').rsplit('/').next()?;
        let decoded = percent_encoding::percent_decode_str(last)
            .decode_utf8_lossy()
            .into_owned();
        (!decoded.is_empty()).then_some(decoded)
    }
}

struct Inner {
    cfg: ClientConfig,
    http: Http,
    connections: IndexMap<String, Connection>,
    tokens: TokenCache,
    resolve: ResolveCache,
}

/// The Power BI / Fabric client of one run. Cloning is cheap (one `Arc`).
#[derive(Clone)]
pub struct PowerBiClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PowerBiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerBiClient")
            .field(
                "connections",
                &self.inner.connections.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Which REST API a path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `{powerbi}/v1.0/myorg/...`, Power BI token.
    PowerBi,
    /// `{fabric}/v1/...`, Fabric token.
    Fabric,
    /// `{arm}/subscriptions/...`, Azure Resource Manager token.
    Arm,
}

impl PowerBiClient {
    /// Builds the client (one pooled HTTP client for the whole run).
    pub fn new(
        cfg: ClientConfig,
        connections: IndexMap<String, Connection>,
    ) -> Result<Self, ClientError> {
        let http = Http::new(&cfg)?;
        Ok(Self {
            inner: Arc::new(Inner {
                cfg,
                http,
                connections,
                tokens: TokenCache::default(),
                resolve: ResolveCache::default(),
            }),
        })
    }

    /// Token requests sent to Entra / IMDS so far in this run.
    pub fn token_requests(&self) -> u64 {
        self.inner.tokens.requests()
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.cfg
    }

    pub(crate) fn resolve_cache(&self) -> &ResolveCache {
        &self.inner.resolve
    }

    fn connection(&self, name: &str) -> Result<&Connection, ClientError> {
        self.inner
            .connections
            .get(name)
            .ok_or_else(|| ClientError::Config(format!("unknown connection `{name}`")))
    }

    /// The URL of `segments` (each percent-encoded) under the API's base for `connection`,
    /// with `query` pairs (values encoded, keys as given).
    pub fn url(
        &self,
        connection: &str,
        api: Api,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Url, ClientError> {
        let conn = self.connection(connection)?;
        let ep = self.inner.cfg.endpoints(conn.cloud);
        let (mut url, prefix) = match api {
            Api::PowerBi => (ep.powerbi, "v1.0/myorg"),
            Api::Fabric => (ep.fabric, "v1"),
            Api::Arm => (ep.arm, ""),
        };
        let mut path = url.path().trim_end_matches('/').to_string();
        if !prefix.is_empty() {
            path.push('/');
            path.push_str(prefix);
        }
        for s in segments {
            path.push('/');
            path.push_str(&encode(s));
        }
        url.set_path(&path);
        if query.is_empty() {
            url.set_query(None);
        } else {
            let q = query
                .iter()
                .map(|(k, v)| format!("{k}={}", encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            url.set_query(Some(&q));
        }
        Ok(url)
    }

    /// Sends an authenticated call and returns the successful answer, or the service's error.
    /// A 401 / `TokenExpired` answer renews the token once and re-sends.
    pub async fn call(
        &self,
        connection: &str,
        api: Api,
        method: Method,
        url: Url,
        body: Body,
        retry: RetryMode,
    ) -> Result<ApiResponse, ClientError> {
        let resp = self
            .call_response(connection, api, method.clone(), url.clone(), body, retry)
            .await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(|e| ClientError::Transport {
            message: describe_reqwest(&e),
            method: method.to_string(),
            url: redact_api_url(url.as_str()),
            maybe_sent: true,
        })?;
        Ok(ApiResponse {
            status,
            headers,
            body: bytes.to_vec(),
        })
    }

    /// Like [`PowerBiClient::call`], but hands back the successful answer unread (downloads).
    pub(crate) async fn call_response(
        &self,
        connection: &str,
        api: Api,
        method: Method,
        url: Url,
        body: Body,
        retry: RetryMode,
    ) -> Result<reqwest::Response, ClientError> {
        let conn = self.connection(connection)?;
        if !is_allowed_url(&url) {
            return Err(ClientError::Config(format!(
                "refusing to send to {} (plain http is allowed only for loopback addresses)",
                redact_api_url(url.as_str())
            )));
        }
        let audience = match api {
            Api::PowerBi => Audience::PowerBi,
            Api::Fabric => Audience::Fabric,
            Api::Arm => Audience::Management,
        };
        let mut renewed = false;
        loop {
            let token = self
                .inner
                .tokens
                .token(&self.inner.http, &self.inner.cfg, conn, audience)
                .await?;
            let mut req = HttpRequest::api(method.clone(), url.clone(), retry);
            req.bearer = Some(token.clone());
            req.body = body.clone();
            let resp = self.inner.http.send(&req).await?;
            let status = resp.status().as_u16();
            if (200..300).contains(&status) {
                return Ok(resp);
            }
            let err = error_from_response(resp, &method, &url).await;
            let renewable = !matches!(conn.credentials, Credentials::AccessToken { .. });
            if err.is_token_expired() && !renewed && renewable {
                tracing::debug!(connection, "token rejected, renewing once");
                self.inner
                    .tokens
                    .invalidate(&conn.name, audience, &token)
                    .await;
                renewed = true;
                continue;
            }
            return Err(err);
        }
    }

    /// A token of `connection` for Power Automate triggers restricted to the tenant's users
    /// (audience `https://service.flow.microsoft.com/`), cached and renewed like the others.
    pub(crate) async fn flow_token(
        &self,
        connection: &str,
    ) -> Result<crate::secret::Secret, ClientError> {
        let conn = self.connection(connection)?;
        self.inner
            .tokens
            .token(&self.inner.http, &self.inner.cfg, conn, Audience::Flow)
            .await
    }

    /// Sends an unauthenticated request (SAS trigger, webhook) with the retry layer and
    /// returns the answer whatever its status.
    pub(crate) async fn send_plain(
        &self,
        req: &HttpRequest,
    ) -> Result<reqwest::Response, ClientError> {
        if !is_allowed_url(&req.url) {
            return Err(ClientError::Config(format!(
                "refusing to send to {} (plain http is allowed only for loopback addresses)",
                redact_url(req.url.as_str())
            )));
        }
        self.inner.http.send(req).await
    }
}

/// Reads a non-success answer into [`ClientError::Api`].
pub(crate) async fn error_from_response(
    resp: reqwest::Response,
    method: &Method,
    url: &Url,
) -> ClientError {
    let status = resp.status().as_u16();
    let retry_after = retry_after(resp.headers());
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    let info = parse_error_body(&text);
    ClientError::Api {
        status,
        code: info.code,
        message: info.message,
        retry_after,
        method: method.as_str().into(),
        url: redact_api_url(url.as_str()),
        request_id: answer_request_id(&headers, &text).map(Into::into),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::model::Cloud;
    use crate::secret::Secret;

    fn client() -> PowerBiClient {
        let base = Url::parse("http://127.0.0.1:9/").unwrap();
        let cfg = ClientConfig::for_cloud(Cloud::Public).with_single_base(&base);
        let mut conns = IndexMap::new();
        conns.insert(
            "default".to_string(),
            Connection {
                name: "default".into(),
                cloud: Cloud::Public,
                credentials: Credentials::AccessToken {
                    access_token: Secret::new("t"),
                },
                picked_because: None,
            },
        );
        PowerBiClient::new(cfg, conns).unwrap()
    }

    #[test]
    fn urls_encode_ids_and_filters() {
        let c = client();
        let u = c
            .url(
                "default",
                Api::PowerBi,
                &[
                    "groups",
                    "g",
                    "dataflows",
                    "transactions",
                    "2020-08-27T16:07:47.2487692Z@8dbd$2",
                    "cancel",
                ],
                &[],
            )
            .unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:9/v1.0/myorg/groups/g/dataflows/transactions/2020-08-27T16%3A07%3A47.2487692Z%408dbd%242/cancel"
        );
        let u = c
            .url(
                "default",
                Api::PowerBi,
                &["groups"],
                &[("$filter", "name eq 'O''Brien Data'")],
            )
            .unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:9/v1.0/myorg/groups?$filter=name%20eq%20%27O%27%27Brien%20Data%27"
        );
        let u = c
            .url(
                "default",
                Api::Fabric,
                &["workspaces", "w", "items"],
                &[("type", "Dataflow")],
            )
            .unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:9/v1/workspaces/w/items?type=Dataflow"
        );
    }

    #[test]
    fn location_id_is_the_last_segment() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "location",
            "https://api.fabric.microsoft.com/v1/workspaces/w/items/i/jobs/instances/abc-123"
                .parse()
                .unwrap(),
        );
        let r = ApiResponse {
            status: 202,
            headers,
            body: Vec::new(),
        };
        assert_eq!(r.location_id().as_deref(), Some("abc-123"));
    }
}

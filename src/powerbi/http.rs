//! The HTTP layer under every call: one pooled reqwest client, transient-fault retries
//! (connect errors, timeouts, 5xx, 429) that honour `Retry-After`, and manual redirects that
//! keep the `Authorization` header only for Microsoft's hosts or the same origin.
//!
//! Retries here never spend a step attempt and are visible only in tracing.

use std::time::Duration;

use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;

use super::config::{ClientConfig, RetrySettings, is_allowed_url};
use super::errors::ClientError;
use crate::secret::{Secret, redact_url};

/// How many redirects one try follows.
const MAX_REDIRECTS: usize = 5;

/// Hosts (and their subdomains) that may receive the bearer token after a redirect.
const MICROSOFT_HOST_SUFFIXES: &[&str] = &[
    "powerbi.com",
    "analysis.windows.net",
    "fabric.microsoft.com",
    "powerbigov.us",
    "usgovcloudapi.net",
    "fabric.microsoft.us",
    "powerbi.cn",
    "chinacloudapi.cn",
    "fabric.microsoft.cn",
];

/// Which faults a request may be re-sent after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryMode {
    /// Reads, cancels, downloads: re-send on any transient fault.
    Idempotent,
    /// Triggers: re-send only when the service surely did not act on it (connect errors,
    /// 429, 503 with `Retry-After`). Another 5xx or a dropped connection is returned to the
    /// caller, which must check whether the work started before triggering again.
    NotIdempotent,
}

/// A request body.
#[derive(Clone)]
pub enum Body {
    Empty,
    Json(Value),
    /// Form fields; values may be secrets (client secret), hence `Secret`.
    Form(Vec<(String, Secret)>),
}

/// One request, re-buildable for every try.
#[derive(Clone)]
pub struct HttpRequest {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub bearer: Option<Secret>,
    pub body: Body,
    pub retry: RetryMode,
    /// The client built `url` under a configured API base (Power BI, Fabric, Entra, managed
    /// identity), so its path holds ids and may be shown. False (the default) for a URL a user
    /// gave (a SAS trigger, a webhook): only its origin is ever shown (see
    /// [`crate::secret::redact_url`]).
    pub api: bool,
}

impl HttpRequest {
    /// A request with no headers, body or token, to a URL shown by its origin only.
    pub fn new(method: Method, url: Url, retry: RetryMode) -> Self {
        Self {
            method,
            url,
            headers: Vec::new(),
            bearer: None,
            body: Body::Empty,
            retry,
            api: false,
        }
    }

    /// A request to a URL the client built under a configured API base (its path is shown).
    pub fn api(method: Method, url: Url, retry: RetryMode) -> Self {
        Self {
            api: true,
            ..Self::new(method, url, retry)
        }
    }

    /// `url` as logs and errors may show it.
    pub(crate) fn shown_url(&self) -> String {
        shown(self.api, &self.url)
    }
}

/// A URL as logs and errors may show it: the whole path for the client's own API URLs, the
/// origin only for anything else.
fn shown(api: bool, url: &Url) -> String {
    if api {
        crate::secret::redact_api_url(url.as_str())
    } else {
        redact_url(url.as_str())
    }
}

/// The pooled client and the retry policy.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    retry: RetrySettings,
}

impl Http {
    /// Builds the one reqwest client of a run (rustls with ring, proxy from the environment,
    /// no automatic redirects: [`Http::send`] follows them itself).
    pub fn new(cfg: &ClientConfig) -> Result<Self, ClientError> {
        // Another part of the program may have installed it already; either way one is set.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder();
        if let Some(proxy) = env_proxy() {
            builder = builder.proxy(proxy);
        }
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            // A read timeout, not a total one: an export download may take minutes, but a
            // silent connection must not hang a step until its own timeout.
            .read_timeout(cfg.request_timeout)
            .connect_timeout(cfg.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("pbibatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Config(format!("cannot build the http client: {e}")))?;
        Ok(Self {
            client,
            retry: cfg.retry,
        })
    }

    /// Sends `req`, re-sending it on transient faults as [`RetryMode`] allows, never sooner
    /// than a `Retry-After` says. Returns the last answer whatever its status (the caller
    /// turns non-success statuses into errors), or a transport error.
    pub async fn send(&self, req: &HttpRequest) -> Result<reqwest::Response, ClientError> {
        let mut waited = Duration::ZERO;
        let mut tries: u32 = 0;
        loop {
            tries += 1;
            let last_try = tries >= self.retry.max_tries;
            let delay = match self.send_following_redirects(req).await {
                Ok(resp) => {
                    let status = resp.status();
                    // 429, and 503 with a Retry-After, say the service did not take the
                    // request and asks for it again later: safe to re-send even a trigger.
                    let refused = status == StatusCode::TOO_MANY_REQUESTS
                        || (status == StatusCode::SERVICE_UNAVAILABLE
                            && resp.headers().contains_key(reqwest::header::RETRY_AFTER));
                    let retryable = refused
                        || (status.is_server_error()
                            && status != StatusCode::NOT_IMPLEMENTED
                            && req.retry == RetryMode::Idempotent);
                    if !retryable || last_try {
                        return Ok(resp);
                    }
                    let delay = match retry_after(resp.headers()) {
                        // Never sooner than asked; a little later spreads concurrent callers.
                        Some(ra) => ra + jitter_up_to(ra / 10 + Duration::from_millis(50)),
                        None => backoff(&self.retry, tries),
                    };
                    if waited + delay > self.retry.max_total_wait {
                        return Ok(resp);
                    }
                    tracing::debug!(
                        method = %req.method,
                        url = %req.shown_url(),
                        status = status.as_u16(),
                        try_number = tries,
                        delay_ms = delay.as_millis() as u64,
                        "transient http answer, retrying"
                    );
                    delay
                }
                Err(e) => {
                    let connect = e.is_connect();
                    let retryable = connect || req.retry == RetryMode::Idempotent;
                    let delay = backoff(&self.retry, tries);
                    if !retryable || last_try || waited + delay > self.retry.max_total_wait {
                        return Err(transport_error(&e, req, !connect));
                    }
                    tracing::debug!(
                        method = %req.method,
                        url = %req.shown_url(),
                        error = %describe_reqwest(&e),
                        try_number = tries,
                        delay_ms = delay.as_millis() as u64,
                        "transport error, retrying"
                    );
                    delay
                }
            };
            tokio::time::sleep(delay).await;
            waited += delay;
        }
    }

    async fn send_following_redirects(
        &self,
        req: &HttpRequest,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut url = req.url.clone();
        let mut method = req.method.clone();
        let mut body = req.body.clone();
        let mut bearer = req.bearer.clone();
        let mut headers = req.headers.clone();
        let mut hops = 0;
        loop {
            let resp = self
                .one(&method, &url, &headers, bearer.as_ref(), &body)
                .await?;
            let status = resp.status();
            if !status.is_redirection() || hops >= MAX_REDIRECTS {
                return Ok(resp);
            }
            let Some(next) = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|loc| url.join(loc).ok())
            else {
                return Ok(resp);
            };
            if !is_allowed_url(&next) {
                // Refuse to follow into plain http: give the redirect back to the caller.
                tracing::warn!(to = %redact_url(next.as_str()), "refusing a redirect to a non-https url");
                return Ok(resp);
            }
            let same_origin = next.origin() == url.origin();
            if !same_origin {
                if !is_microsoft_host(&next) {
                    bearer = None;
                }
                headers.retain(|(name, _)| !crate::secret::is_credential_header(name.as_str()));
            }
            if status == StatusCode::SEE_OTHER
                || ((status == StatusCode::MOVED_PERMANENTLY || status == StatusCode::FOUND)
                    && method == Method::POST)
            {
                method = Method::GET;
                body = Body::Empty;
            }
            // A redirect elsewhere (an export's download URL on storage) is shown by origin.
            tracing::debug!(from = %shown(req.api && url.origin() == req.url.origin(), &url), to = %shown(req.api && same_origin, &next), status = status.as_u16(), "following redirect");
            url = next;
            hops += 1;
        }
    }

    async fn one(
        &self,
        method: &Method,
        url: &Url,
        headers: &[(HeaderName, HeaderValue)],
        bearer: Option<&Secret>,
        body: &Body,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut b = self.client.request(method.clone(), url.clone());
        for (k, v) in headers {
            b = b.header(k.clone(), v.clone());
        }
        if let Some(token) = bearer
            && let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        {
            v.set_sensitive(true);
            b = b.header(reqwest::header::AUTHORIZATION, v);
        }
        b = match body {
            Body::Empty => {
                if *method == Method::POST {
                    b.header(reqwest::header::CONTENT_LENGTH, "0")
                } else {
                    b
                }
            }
            Body::Json(v) => b.json(v),
            Body::Form(fields) => {
                let pairs: Vec<(&str, &str)> = fields
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.expose()))
                    .collect();
                b.form(&pairs)
            }
        };
        b.send().await
    }
}

/// The first non-empty of several environment variables.
fn first_env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
}

/// The proxy from `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` (and `NO_PROXY`), never used
/// for loopback addresses (the simulator) nor for the instance metadata service, which must
/// be reached directly. `None` when no proxy variable is set (reqwest's own detection then
/// applies).
fn env_proxy() -> Option<reqwest::Proxy> {
    let https = first_env(&["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]);
    let http = first_env(&["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]);
    if https.is_none() && http.is_none() {
        return None;
    }
    let proxy = reqwest::Proxy::custom(move |url: &Url| {
        if super::config::is_loopback_host(url) || url.host_str() == Some("169.254.169.254") {
            return None;
        }
        match url.scheme() {
            "https" => https.clone(),
            _ => http.clone(),
        }
    });
    Some(proxy.no_proxy(reqwest::NoProxy::from_env()))
}

/// True for a Microsoft service host that may receive our bearer token on a redirect.
pub(crate) fn is_microsoft_host(url: &Url) -> bool {
    if url.scheme() != "https" {
        return false;
    }
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    MICROSOFT_HOST_SUFFIXES
        .iter()
        .any(|s| host == *s || host.ends_with(&format!(".{s}")))
}

/// `Retry-After` in whole (or fractional) seconds; HTTP dates are not used by these services.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let secs: f64 = v.parse().ok()?;
    if secs.is_finite() && secs >= 0.0 {
        Some(Duration::from_secs_f64(secs.min(86_400.0)))
    } else {
        None
    }
}

/// Exponential backoff with jitter in [50 %, 100 %] of `base × 2^(try-1)`, capped.
pub fn backoff(settings: &RetrySettings, tries: u32) -> Duration {
    let exp = settings
        .base_delay
        .saturating_mul(1u32 << tries.saturating_sub(1).min(16));
    let capped = exp.min(settings.max_delay);
    let factor = rand::rng().random_range(0.5..=1.0);
    capped.mul_f64(factor)
}

fn jitter_up_to(max: Duration) -> Duration {
    max.mul_f64(rand::rng().random_range(0.0..=1.0))
}

/// A reqwest error described without its URL (the URL may hold a SAS signature).
pub(crate) fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "connection failed"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() || e.is_decode() {
        "broken response body"
    } else if e.is_request() {
        "request failed"
    } else {
        "http error"
    };
    let mut out = kind.to_string();
    let mut source = std::error::Error::source(e);
    let mut depth = 0;
    while let Some(s) = source {
        let text = s.to_string();
        // Inner errors never carry the URL, but be safe against a future change.
        if !text.contains("://") && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
        depth += 1;
        if depth > 4 {
            break;
        }
    }
    out
}

fn transport_error(e: &reqwest::Error, req: &HttpRequest, maybe_sent: bool) -> ClientError {
    ClientError::Transport {
        message: describe_reqwest(e),
        method: req.method.to_string(),
        url: req.shown_url(),
        maybe_sent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds() {
        let mut h = HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            HeaderValue::from_static("soon"),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let s = RetrySettings::default();
        for tries in 1..20 {
            let d = backoff(&s, tries);
            assert!(d <= s.max_delay);
            let floor = s
                .base_delay
                .saturating_mul(1 << (tries - 1).min(16))
                .min(s.max_delay)
                / 2;
            assert!(d >= floor, "{tries}: {d:?} < {floor:?}");
        }
    }

    #[test]
    fn microsoft_hosts() {
        let m = |s: &str| is_microsoft_host(&Url::parse(s).unwrap());
        assert!(m(
            "https://wabi-west-europe-redirect.analysis.windows.net/x"
        ));
        assert!(m("https://api.powerbi.com/v1.0"));
        assert!(!m("https://evilpowerbi.com/"));
        assert!(!m("http://api.powerbi.com/"));
        assert!(!m("https://blob.core.windows.net/"));
    }
}

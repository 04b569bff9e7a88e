//! Bearer tokens: one per (connection, audience) per run, held in memory only, renewed when
//! less than min(5 min, 20 % of its lifetime) remains or after the service rejected it, and
//! fetched once even when many calls need it at the same moment (single flight).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use super::config::ClientConfig;
use super::errors::{ClientError, parse_token_error};
use super::http::{Body, Http, HttpRequest, RetryMode};
use crate::job::model::{Connection, Credentials};
use crate::secret::Secret;

/// Which API a token is for (its audience / scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    /// `https://analysis.windows.net/powerbi/api/.default` (per cloud).
    PowerBi,
    /// `https://api.fabric.microsoft.com/.default` (per cloud).
    Fabric,
}

#[derive(Clone)]
struct CachedToken {
    value: Secret,
    /// When the token must be renewed before use.
    renew_at: Instant,
}

/// One lock per (connection, audience): the lock is what makes the fetch single-flight.
type Slot = Arc<tokio::sync::Mutex<Option<CachedToken>>>;

/// The token cache of one run.
#[derive(Default)]
pub struct TokenCache {
    slots: Mutex<HashMap<(String, Audience), Slot>>,
    requests: AtomicU64,
}

/// The margin before expiry at which a token is renewed: min(5 min, 20 % of the lifetime).
pub fn renew_margin(lifetime: Duration) -> Duration {
    Duration::from_secs(300).min(lifetime / 5)
}

impl TokenCache {
    /// Token requests sent to Entra / IMDS so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn slot(&self, connection: &str, audience: Audience) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .entry((connection.to_string(), audience))
            .or_default()
            .clone()
    }

    /// A valid token for `conn` and `audience`, fetched when absent or due for renewal.
    pub async fn token(
        &self,
        http: &Http,
        cfg: &ClientConfig,
        conn: &Connection,
        audience: Audience,
    ) -> Result<Secret, ClientError> {
        if let Credentials::AccessToken { access_token } = &conn.credentials {
            return Ok(access_token.clone());
        }
        let slot = self.slot(&conn.name, audience);
        let mut guard = slot.lock().await;
        if let Some(t) = guard.as_ref()
            && Instant::now() < t.renew_at
        {
            return Ok(t.value.clone());
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let (value, lifetime) = fetch(http, cfg, conn, audience).await?;
        tracing::debug!(
            connection = %conn.name,
            audience = ?audience,
            lifetime_secs = lifetime.as_secs(),
            "token acquired"
        );
        let renew_at = Instant::now() + lifetime.saturating_sub(renew_margin(lifetime));
        *guard = Some(CachedToken {
            value: value.clone(),
            renew_at,
        });
        Ok(value)
    }

    /// Drops `rejected` from the cache (after a 401 / `TokenExpired`) so the next call fetches
    /// a new one. A token already replaced by a concurrent caller is left alone.
    pub async fn invalidate(&self, connection: &str, audience: Audience, rejected: &Secret) {
        let slot = self.slot(connection, audience);
        let mut guard = slot.lock().await;
        if guard.as_ref().is_some_and(|t| t.value == *rejected) {
            *guard = None;
        }
    }
}

fn scope_resource(cfg: &ClientConfig, conn: &Connection, audience: Audience) -> String {
    let ep = cfg.endpoints(conn.cloud);
    match audience {
        Audience::PowerBi => ep.powerbi_resource,
        Audience::Fabric => ep.fabric_resource,
    }
}

async fn fetch(
    http: &Http,
    cfg: &ClientConfig,
    conn: &Connection,
    audience: Audience,
) -> Result<(Secret, Duration), ClientError> {
    let auth_err = |message: String| ClientError::Auth {
        connection: conn.name.clone(),
        message,
        refused: true,
    };
    let resource = scope_resource(cfg, conn, audience);
    let req = match &conn.credentials {
        Credentials::AccessToken { .. } => {
            return Err(auth_err("a static access token cannot be renewed".into()));
        }
        Credentials::ClientSecret {
            tenant_id,
            client_id,
            client_secret,
        } => {
            let mut url = cfg.endpoints(conn.cloud).authority;
            url.path_segments_mut()
                .map_err(|_| auth_err("the authority url cannot have a path".into()))?
                .pop_if_empty()
                .extend([tenant_id.as_str(), "oauth2", "v2.0", "token"]);
            let mut req = HttpRequest::new(Method::POST, url, RetryMode::Idempotent);
            req.body = Body::Form(vec![
                ("client_id".into(), Secret::new(client_id.clone())),
                ("scope".into(), Secret::new(format!("{resource}/.default"))),
                ("client_secret".into(), client_secret.clone()),
                ("grant_type".into(), Secret::new("client_credentials")),
            ]);
            req
        }
        Credentials::ManagedIdentity { client_id } => {
            let mut url: Url = cfg.imds_url.clone();
            url.path_segments_mut()
                .map_err(|_| auth_err("the managed identity url cannot have a path".into()))?
                .pop_if_empty()
                .extend(["metadata", "identity", "oauth2", "token"]);
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("api-version", "2018-02-01");
                q.append_pair("resource", &resource);
                if let Some(id) = client_id {
                    q.append_pair("client_id", id);
                }
            }
            let mut req = HttpRequest::new(Method::GET, url, RetryMode::Idempotent);
            req.headers.push((
                HeaderName::from_static("metadata"),
                HeaderValue::from_static("true"),
            ));
            req
        }
    };
    // Unreachable, cut off or failing on its side: worth another attempt later.
    let transient = |message: String| ClientError::Auth {
        connection: conn.name.clone(),
        message,
        refused: false,
    };
    let resp = http
        .send(&req)
        .await
        .map_err(|e| transient(e.to_string()))?;
    let status = resp.status().as_u16();
    let text = resp
        .text()
        .await
        .map_err(|e| transient(super::http::describe_reqwest(&e)))?;
    if !(200..300).contains(&status) {
        let message = parse_token_error(status, &text);
        return Err(if is_refusal(status) {
            auth_err(message)
        } else {
            transient(message)
        });
    }
    parse_token_response(&text).map_err(transient)
}

/// An answer of the token endpoint that asking again will not change: a 4xx other than
/// 408 (timeout) and 429 (throttled).
fn is_refusal(status: u16) -> bool {
    (400..500).contains(&status) && status != 408 && status != 429
}

/// Reads `access_token` and `expires_in` (a number from Entra, a string from IMDS).
pub fn parse_token_response(text: &str) -> Result<(Secret, Duration), String> {
    let v: Value =
        serde_json::from_str(text).map_err(|_| "the token answer is not JSON".to_string())?;
    let token = v
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| "the token answer has no access_token".to_string())?;
    let expires_in = match v.get("expires_in") {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|s| s.is_finite() && *s > 0.0)
    // Entra tokens live about an hour; assume a conservative lifetime when none is given.
    .unwrap_or(600.0);
    Ok((
        Secret::new(token),
        Duration::from_secs_f64(expires_in.min(86_400.0)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_refusals_are_the_lasting_4xx() {
        for status in [400, 401, 403, 404] {
            assert!(is_refusal(status), "{status}");
        }
        for status in [408, 429, 500, 502, 503, 504, 200, 302] {
            assert!(!is_refusal(status), "{status}");
        }
    }

    #[test]
    fn renew_margin_is_the_smaller_of_five_minutes_and_a_fifth() {
        assert_eq!(
            renew_margin(Duration::from_secs(3600)),
            Duration::from_secs(300)
        );
        assert_eq!(
            renew_margin(Duration::from_secs(60)),
            Duration::from_secs(12)
        );
    }

    #[test]
    fn expires_in_as_number_or_string() {
        let (t, d) = parse_token_response(r#"{"access_token":"abc","expires_in":3599}"#).unwrap();
        assert_eq!(t.expose(), "abc");
        assert_eq!(d, Duration::from_secs(3599));
        let (_, d) =
            parse_token_response(r#"{"access_token":"abc","expires_in":"86399","expires_on":"1"}"#)
                .unwrap();
        assert_eq!(d, Duration::from_secs(86399));
        assert!(parse_token_response(r#"{"token_type":"Bearer"}"#).is_err());
    }
}

//! Bearer tokens: one per (connection, audience) per run, held in memory only, renewed when
//! less than min(5 min, 20 % of its lifetime) remains or after the service rejected it, and
//! fetched once even when many calls need it at the same moment (single flight).

mod azure_cli;
pub(crate) mod certificate;
mod managed;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
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
    /// `https://service.flow.microsoft.com//.default`: Power Automate triggers restricted to
    /// the tenant's users.
    Flow,
    /// `https://management.azure.com/.default` (per cloud): Azure Resource Manager.
    Management,
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
pub(crate) fn renew_margin(lifetime: Duration) -> Duration {
    Duration::from_secs(300).min(lifetime / 5)
}

impl TokenCache {
    /// Token requests sent to Entra / IMDS / the identity endpoint / the Azure CLI so far.
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
        // The trailing slash is part of the flow service's audience: the scope is
        // `https://service.flow.microsoft.com//.default` (powerbi-api.md pitfall 18).
        Audience::Flow => FLOW_RESOURCE.to_string(),
        Audience::Management => ep.arm_resource,
    }
}

/// The audience of Power Automate triggers restricted to users of the tenant.
pub(crate) const FLOW_RESOURCE: &str = "https://service.flow.microsoft.com/";

/// The token endpoint of `tenant`: `{authority}/{tenant}/oauth2/v2.0/token`.
fn token_url(cfg: &ClientConfig, conn: &Connection, tenant: &str) -> Result<Url, String> {
    let mut url = cfg.endpoints(conn.cloud).authority;
    url.path_segments_mut()
        .map_err(|_| "the authority url cannot have a path".to_string())?
        .pop_if_empty()
        .extend([tenant, "oauth2", "v2.0", "token"]);
    Ok(url)
}

/// A client-credentials request to the token endpoint; `proof` is the client secret or the
/// client assertion fields.
fn client_credentials(
    url: Url,
    client_id: &str,
    resource: &str,
    proof: Vec<(String, Secret)>,
) -> HttpRequest {
    let mut req = HttpRequest::api(Method::POST, url, RetryMode::Idempotent);
    let mut form = vec![
        ("client_id".into(), Secret::new(client_id)),
        ("scope".into(), Secret::new(format!("{resource}/.default"))),
    ];
    form.extend(proof);
    form.push(("grant_type".into(), Secret::new("client_credentials")));
    req.body = Body::Form(form);
    req
}

fn assertion_fields(assertion: Secret) -> Vec<(String, Secret)> {
    vec![
        (
            "client_assertion_type".into(),
            Secret::new(certificate::ASSERTION_TYPE),
        ),
        ("client_assertion".into(), assertion),
    ]
}

/// Reads the federated token from `path` (it is rotated by its issuer, so at each request).
fn read_federated_token(path: &str) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the federated token file {path}: {e}"))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!(
            "the federated token file {path} is empty: the platform (GitHub Actions, Azure \
             DevOps, AKS) has not written its token yet"
        ));
    }
    Ok(Secret::new(token))
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
        } => client_credentials(
            token_url(cfg, conn, tenant_id).map_err(auth_err)?,
            client_id,
            &resource,
            vec![("client_secret".into(), client_secret.clone())],
        ),
        Credentials::ClientCertificate {
            tenant_id,
            client_id,
            certificate_path,
        } => {
            let url = token_url(cfg, conn, tenant_id).map_err(auth_err)?;
            let cert = certificate::ClientCertificate::load(Path::new(certificate_path))
                .map_err(auth_err)?;
            let assertion = cert
                .assertion(client_id, url.as_str(), chrono::Utc::now().timestamp())
                .map_err(auth_err)?;
            client_credentials(url, client_id, &resource, assertion_fields(assertion))
        }
        Credentials::WorkloadIdentity {
            tenant_id,
            client_id,
            token_file,
        } => {
            let url = token_url(cfg, conn, tenant_id).map_err(auth_err)?;
            let assertion = read_federated_token(token_file).map_err(auth_err)?;
            client_credentials(url, client_id, &resource, assertion_fields(assertion))
        }
        Credentials::ManagedIdentity { client_id } => {
            return managed::fetch(http, cfg, conn, &resource, client_id.as_deref()).await;
        }
        Credentials::AzureCli { tenant_id } => {
            return azure_cli::fetch(conn, &resource, tenant_id.as_deref()).await;
        }
    };
    send_token_request(http, conn, &req).await
}

/// Sends a token request and reads the answer: a 4xx other than 408 / 429 is a refusal.
async fn send_token_request(
    http: &Http,
    conn: &Connection,
    req: &HttpRequest,
) -> Result<(Secret, Duration), ClientError> {
    let (status, text) = send_for_text(http, conn, req).await?;
    token_answer(conn, status, &text)
}

/// Sends `req`; the status and the body text. Unreachable or cut off: a transient error.
async fn send_for_text(
    http: &Http,
    conn: &Connection,
    req: &HttpRequest,
) -> Result<(u16, String), ClientError> {
    let transient = |message: String| ClientError::Auth {
        connection: conn.name.clone(),
        message,
        refused: false,
    };
    let resp = http.send(req).await.map_err(|e| transient(e.to_string()))?;
    let status = resp.status().as_u16();
    let text = resp
        .text()
        .await
        .map_err(|e| transient(super::http::describe_reqwest(&e)))?;
    Ok((status, text))
}

/// A token endpoint's answer as a token, a refusal or a transient failure.
fn token_answer(
    conn: &Connection,
    status: u16,
    text: &str,
) -> Result<(Secret, Duration), ClientError> {
    let err = |message: String, refused: bool| ClientError::Auth {
        connection: conn.name.clone(),
        message,
        refused,
    };
    if !(200..300).contains(&status) {
        return Err(err(parse_token_error(status, text), is_refusal(status)));
    }
    parse_token_response(text, chrono::Utc::now().timestamp()).map_err(|m| err(m, false))
}

/// An answer of the token endpoint that asking again will not change: a 4xx other than
/// 408 (timeout) and 429 (throttled).
fn is_refusal(status: u16) -> bool {
    (400..500).contains(&status) && status != 408 && status != 429
}

/// Reads `access_token` and its lifetime: `expires_in` (a number from Entra, a string from
/// IMDS), else `expires_on` (Unix seconds, a string from the App Service identity endpoint)
/// counted from `now`.
pub(crate) fn parse_token_response(text: &str, now: i64) -> Result<(Secret, Duration), String> {
    let v: Value =
        serde_json::from_str(text).map_err(|_| "the token answer is not JSON".to_string())?;
    let token = v
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| "the token answer has no access_token".to_string())?;
    let number = |key: &str| match v.get(key) {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let expires_in = number("expires_in")
        .or_else(|| number("expires_on").map(|on| on - now as f64))
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
        let (t, d) =
            parse_token_response(r#"{"access_token":"abc","expires_in":3599}"#, 0).unwrap();
        assert_eq!(t.expose(), "abc");
        assert_eq!(d, Duration::from_secs(3599));
        let (_, d) = parse_token_response(
            r#"{"access_token":"abc","expires_in":"86399","expires_on":"1"}"#,
            0,
        )
        .unwrap();
        assert_eq!(d, Duration::from_secs(86399));
        assert!(parse_token_response(r#"{"token_type":"Bearer"}"#, 0).is_err());
        // The App Service identity endpoint gives only `expires_on`, a string epoch.
        let (_, d) = parse_token_response(
            r#"{"access_token":"abc","expires_on":"1700003600"}"#,
            1_700_000_000,
        )
        .unwrap();
        assert_eq!(d, Duration::from_secs(3600));
    }
}

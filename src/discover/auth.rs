//! `pbibatch auth check`: for each connection, acquire a token per scope (Power BI, Fabric),
//! say who it is for and when it expires, count the workspaces it sees, and explain any
//! failure in words a user can act on; with a job, whether each connection may query the
//! models its data checks query ([`super::query_probe`]). A token is never printed.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde_json::Value;

use super::query_probe::{self, ProbedModel, QueryProbe};
use crate::job::model::{Connection, Credentials};
use crate::powerbi::auth::{Audience, TokenCache};
use crate::powerbi::http::Http;
use crate::powerbi::{ClientConfig, ClientError, PowerBiClient};
use crate::secret::Secret;

/// What to do about a failed call, when the error says enough to tell.
pub fn advice(e: &ClientError) -> Option<String> {
    match e {
        ClientError::Auth { message, .. } => aadsts_code(message).and_then(aadsts_advice),
        ClientError::Api { status, code, .. } => {
            if code
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case("TokenExpired"))
            {
                return Some(
                    "the access token has expired: get a new one (a token given as is, like \
                     PBIBATCH_ACCESS_TOKEN, is not renewed), or use client credentials"
                        .into(),
                );
            }
            match status {
                401 => Some(
                    "the service refused the token: an admin must enable the tenant setting \
                     \"Service principals can use Fabric APIs\" (formerly \"Allow service \
                     principals to use Power BI APIs\") for this app or a security group it is in"
                        .into(),
                ),
                403 => Some(
                    "the identity may not do this: add the service principal (or its security \
                     group) to the workspace as Member or Contributor, and check the tenant \
                     setting \"Service principals can use Fabric APIs\""
                        .into(),
                ),
                _ => None,
            }
        }
        ClientError::Transport { .. } => Some(
            "the service could not be reached: check the network, the proxy and any \
             PBIBATCH_POWERBI_URL / PBIBATCH_FABRIC_URL / PBIBATCH_AUTHORITY_URL override"
                .into(),
        ),
        _ => None,
    }
}

/// The first `AADSTSnnnn` code in a message.
fn aadsts_code(message: &str) -> Option<u64> {
    let at = message.find("AADSTS")?;
    let digits: String = message[at + 6..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn aadsts_advice(code: u64) -> Option<String> {
    let text = match code {
        7000215 => {
            "the client secret is wrong: it is probably the secret's ID; copy the secret's \
             Value (shown only once, when it is created) from the app registration's \
             \"Certificates & secrets\" page into AZURE_CLIENT_SECRET or the job's client_secret"
        }
        7000222 => {
            "the client secret has expired: create a new one under the app registration's \
             \"Certificates & secrets\" and update AZURE_CLIENT_SECRET or the job's client_secret"
        }
        700016 => {
            "no application with this client id in this tenant: check AZURE_CLIENT_ID (the \
             \"Application (client) ID\") and AZURE_TENANT_ID; a multi-tenant app needs admin \
             consent in this tenant"
        }
        90002 => {
            "the tenant does not exist: check AZURE_TENANT_ID (the \"Directory (tenant) ID\" \
             or the tenant's domain) and the connection's cloud"
        }
        7000229 => {
            "the application has no service principal in this tenant: an admin must consent to \
             it (or create its enterprise application) in this tenant"
        }
        500011 => {
            "the Power BI / Fabric service is not known in this tenant or cloud: check the \
             connection's `cloud:` and the authority URL"
        }
        700027 => {
            "Entra ID does not accept the client assertion's signature: upload this \
             certificate (its thumbprint is in the message) under the app registration's \
             \"Certificates & secrets\" > Certificates, or point AZURE_CLIENT_CERTIFICATE_PATH \
             / `client_certificate_path` at the certificate registered there"
        }
        700024 => {
            "the client assertion is outside its validity period: check this machine's clock \
             (and, for a federated token, that the platform still rotates the token file)"
        }
        70021 | 700211 | 700212 | 700213 | 7002138 => {
            "no federated credential of the app matches the token's issuer, subject and \
             audience: add one under the app registration's \"Certificates & secrets\" > \
             Federated credentials with exactly the issuer and subject of your pipeline \
             (subjects are case-sensitive) and audience api://AzureADTokenExchange"
        }
        700021 => {
            "the client assertion was made for another application: its issuer and subject \
             must be the client id"
        }
        53003 => {
            "a Conditional Access policy blocks this sign-in: ask an Entra admin to exclude the service principal or allow its location"
        }
        70011 => {
            "the scope was refused: check the connection's `cloud:` and any PBIBATCH_*_URL override"
        }
        _ => return None,
    };
    Some(text.to_string())
}

/// What one scope's token check found.
#[derive(Debug, Clone)]
pub struct ScopeCheck {
    /// `Power BI` or `Fabric`.
    pub scope: &'static str,
    /// Expiry of the token (`Ok(None)`: acquired, expiry not readable), or the error and
    /// what to do about it.
    pub token: Result<Option<DateTime<Utc>>, (String, Option<String>)>,
    /// Workspaces listed with it, or the error and advice.
    pub workspaces: Option<Result<usize, (String, Option<String>)>>,
}

/// What the check of one connection found.
#[derive(Debug, Clone)]
pub struct ConnectionCheck {
    pub name: String,
    /// `client secret`, `access token`, `client certificate`, ... ([`Credentials::kind`]).
    pub kind: &'static str,
    /// Why this kind was picked and where its tokens come from.
    pub source: String,
    pub tenant: Option<String>,
    pub client_id: Option<String>,
    pub scopes: Vec<ScopeCheck>,
    /// The Execute Queries probe of each model the job's data checks query on this
    /// connection (none without a job, or without a Power BI token).
    pub queries: Vec<QueryProbe>,
}

impl ConnectionCheck {
    /// True when every token was acquired, every workspace list read and every model
    /// answered the probe.
    pub fn ok(&self) -> bool {
        self.scopes
            .iter()
            .all(|s| s.token.is_ok() && s.workspaces.as_ref().is_none_or(Result::is_ok))
            && self.queries.iter().all(|q| q.result.is_ok())
    }
}

/// Reads the claims of a JWT-shaped token (not verified: only to show tenant, app, expiry).
fn claims(token: &Secret) -> Option<Value> {
    let payload = token.expose().split('.').nth(1)?;
    let bytes = base64url_decode(payload)?;
    serde_json::from_slice(&bytes).ok()
}

/// Base64url, with or without padding (JWT segments have none).
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    const URL_SAFE: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    URL_SAFE.decode(text).ok()
}

fn claim_str(claims: Option<&Value>, keys: &[&str]) -> Option<String> {
    let c = claims?;
    keys.iter()
        .find_map(|k| c.get(*k).and_then(Value::as_str))
        .map(str::to_string)
}

fn failure(e: &ClientError) -> (String, Option<String>) {
    (e.to_string(), advice(e))
}

/// Why the connection has these credentials and where its tokens come from, in words.
fn source(conn: &Connection, cfg: &ClientConfig) -> String {
    let why = conn
        .picked_because
        .clone()
        .unwrap_or_else(|| "declared in the job's `connections:`".to_string());
    let from = match &conn.credentials {
        Credentials::ClientSecret { .. } => "the Entra ID token endpoint, with the client secret",
        Credentials::AccessToken { .. } => "the token given (it cannot be renewed)",
        Credentials::ClientCertificate { .. } => {
            "the Entra ID token endpoint, with a client assertion signed by the certificate's key"
        }
        Credentials::WorkloadIdentity { .. } => {
            "the Entra ID token endpoint, with the federated token file as client assertion \
             (read again at each request)"
        }
        Credentials::ManagedIdentity { .. } if cfg.identity_endpoint.is_some() => {
            "the App Service / Container Apps identity endpoint (IDENTITY_ENDPOINT)"
        }
        Credentials::ManagedIdentity { .. } => "the VM instance metadata service (IMDS)",
        Credentials::AzureCli { .. } => "`az account get-access-token` (the signed-in Azure CLI)",
    };
    format!("{why}; tokens from {from}")
}

/// Checks connection `conn`: a token per scope, then the workspaces each token sees, then
/// (with the Power BI token) whether each of `models` answers a query.
pub(crate) async fn check_connection(
    cfg: &ClientConfig,
    conn: &Connection,
    models: &[ProbedModel],
) -> ConnectionCheck {
    let (mut tenant, mut client_id) = match &conn.credentials {
        Credentials::ClientSecret {
            tenant_id,
            client_id,
            ..
        }
        | Credentials::ClientCertificate {
            tenant_id,
            client_id,
            ..
        }
        | Credentials::WorkloadIdentity {
            tenant_id,
            client_id,
            ..
        } => (Some(tenant_id.clone()), Some(client_id.clone())),
        Credentials::AccessToken { .. } => (None, None),
        Credentials::ManagedIdentity { client_id } => (None, client_id.clone()),
        Credentials::AzureCli { tenant_id } => (tenant_id.clone(), None),
    };
    let mut check = ConnectionCheck {
        name: conn.name.clone(),
        kind: conn.credentials.kind(),
        source: source(conn, cfg),
        tenant: None,
        client_id: None,
        scopes: Vec::new(),
        queries: Vec::new(),
    };
    // What the credentials imply until the token's `idtyp` says.
    let credentials_app_only = match &conn.credentials {
        Credentials::ClientSecret { .. }
        | Credentials::ClientCertificate { .. }
        | Credentials::WorkloadIdentity { .. }
        | Credentials::ManagedIdentity { .. } => Some(true),
        Credentials::AzureCli { .. } => Some(false),
        Credentials::AccessToken { .. } => None,
    };
    // Set once the Power BI token is acquired: its `idtyp` claim (`app` or `user`), if any.
    let mut power_bi_idtyp: Option<Option<String>> = None;
    let conns = IndexMap::from([(conn.name.clone(), conn.clone())]);
    let (http, client) = match (Http::new(cfg), PowerBiClient::new(cfg.clone(), conns)) {
        (Ok(h), Ok(c)) => (h, c),
        (Err(e), _) | (_, Err(e)) => {
            check.scopes.push(ScopeCheck {
                scope: "Power BI",
                token: Err(failure(&e)),
                workspaces: None,
            });
            return check;
        }
    };
    let tokens = TokenCache::default();
    for (scope, audience) in [
        ("Power BI", Audience::PowerBi),
        ("Fabric", Audience::Fabric),
    ] {
        let token = tokens.token(&http, cfg, conn, audience).await;
        let token = match token {
            Ok(t) => t,
            Err(e) => {
                check.scopes.push(ScopeCheck {
                    scope,
                    token: Err(failure(&e)),
                    workspaces: None,
                });
                continue;
            }
        };
        let c = claims(&token);
        if tenant.is_none() {
            tenant = claim_str(c.as_ref(), &["tid"]);
        }
        if client_id.is_none() {
            client_id = claim_str(c.as_ref(), &["appid", "azp"]);
        }
        if audience == Audience::PowerBi {
            power_bi_idtyp = Some(claim_str(c.as_ref(), &["idtyp"]));
        }
        let expiry = c
            .as_ref()
            .and_then(|c| c.get("exp"))
            .and_then(Value::as_i64)
            .and_then(|exp| DateTime::<Utc>::from_timestamp(exp, 0));
        let workspaces = match audience {
            Audience::PowerBi => client.groups_all(&conn.name).await.map(|g| g.len()),
            // `auth check` asks for Power BI and Fabric tokens only.
            Audience::Fabric | Audience::Flow | Audience::Management => {
                client.fabric_workspaces(&conn.name).await.map(|w| w.len())
            }
        }
        .map_err(|e| failure(&e));
        check.scopes.push(ScopeCheck {
            scope,
            token: Ok(expiry),
            workspaces: Some(workspaces),
        });
    }
    if let Some(idtyp) = power_bi_idtyp {
        let app_only = query_probe::app_only_from(idtyp.as_deref(), credentials_app_only);
        for model in models {
            let probe = query_probe::probe(&client, &conn.name, model, app_only).await;
            check.queries.push(probe);
        }
    }
    check.tenant = tenant;
    check.client_id = client_id;
    check
}

/// The report of one connection, as printed (`now` makes "expires in" testable).
pub fn render(check: &ConnectionCheck, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "connection `{}` ({}): {}",
        check.name,
        check.kind,
        if check.ok() { "ok" } else { "FAILED" }
    );
    let _ = writeln!(out, "  picked      {}", check.source);
    let unknown = "(not known)".to_string();
    let _ = writeln!(
        out,
        "  tenant      {}",
        check
            .tenant
            .as_ref()
            .filter(|t| !t.is_empty())
            .unwrap_or(&unknown)
    );
    let _ = writeln!(
        out,
        "  client id   {}",
        check
            .client_id
            .as_ref()
            .filter(|t| !t.is_empty())
            .unwrap_or(&unknown)
    );
    for s in &check.scopes {
        let label = format!("{:<10}", s.scope);
        match &s.token {
            Ok(Some(exp)) => {
                let left = (*exp - now).num_seconds();
                let when = if left <= 0 {
                    "already expired".to_string()
                } else {
                    format!(
                        "in {}",
                        humantime::format_duration(std::time::Duration::from_secs(left as u64))
                    )
                };
                let _ = writeln!(
                    out,
                    "  {label}  token acquired, expires {} ({when})",
                    exp.format("%Y-%m-%dT%H:%M:%SZ")
                );
            }
            Ok(None) => {
                let _ = writeln!(out, "  {label}  token acquired (expiry not readable)");
            }
            Err((message, advice)) => {
                let _ = writeln!(out, "  {label}  no token: {message}");
                if let Some(a) = advice {
                    let _ = writeln!(out, "  {:<10}  what to do: {a}", "");
                }
            }
        }
        match &s.workspaces {
            Some(Ok(n)) => {
                let _ = writeln!(
                    out,
                    "  {:<10}  {n} workspace{} visible",
                    "",
                    if *n == 1 { "" } else { "s" }
                );
            }
            Some(Err((message, advice))) => {
                let _ = writeln!(out, "  {:<10}  listing workspaces failed: {message}", "");
                if let Some(a) = advice {
                    let _ = writeln!(out, "  {:<10}  what to do: {a}", "");
                }
            }
            None => {}
        }
    }
    for q in &check.queries {
        let model = format!("{} / {}", q.model.workspace, q.model.dataset);
        match &q.result {
            Ok(()) => {
                let _ = writeln!(out, "  {:<10}  {model}: ok", "queries");
            }
            Err((message, advice)) => {
                let _ = writeln!(out, "  {:<10}  {model}: failed: {message}", "queries");
                if let Some(a) = advice {
                    let _ = writeln!(out, "  {:<10}  what to do: {a}", "");
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aadsts_codes_get_advice() {
        let e = ClientError::Auth {
            connection: "default".into(),
            message: "invalid_client (AADSTS7000215): invalid client secret".into(),
            refused: true,
        };
        assert!(advice(&e).unwrap().contains("secret's ID"));
        let e = ClientError::Auth {
            connection: "default".into(),
            message: "invalid_client (AADSTS7000222): the client secret has expired".into(),
            refused: true,
        };
        assert!(advice(&e).unwrap().contains("expired"));
        assert_eq!(aadsts_code("x AADSTS90002: y"), Some(90002));
        assert_eq!(aadsts_code("nothing"), None);
    }

    #[test]
    fn api_refusals_get_advice() {
        let api = |status, code: Option<&str>| ClientError::Api {
            status,
            code: code.map(str::to_string),
            message: String::new(),
            retry_after: None,
            method: "GET".into(),
            url: "u".into(),
            request_id: None,
        };
        assert!(
            advice(&api(403, Some("TokenExpired")))
                .unwrap()
                .contains("expired")
        );
        assert!(advice(&api(401, None)).unwrap().contains("tenant setting"));
        assert!(advice(&api(403, None)).unwrap().contains("workspace"));
        assert!(advice(&api(404, None)).is_none());
    }

    #[test]
    fn probed_models_are_listed_after_the_scopes_and_fail_the_connection() {
        let model = |dataset: &str| ProbedModel {
            workspace: "Sales".into(),
            dataset: dataset.into(),
        };
        let check = ConnectionCheck {
            name: "default".into(),
            kind: "client secret",
            source: "declared".into(),
            tenant: Some("t".into()),
            client_id: Some("c".into()),
            scopes: vec![ScopeCheck {
                scope: "Power BI",
                token: Ok(None),
                workspaces: Some(Ok(1)),
            }],
            queries: vec![
                QueryProbe {
                    model: model("Revenue"),
                    result: Ok(()),
                },
                QueryProbe {
                    model: model("Secure"),
                    result: Err(("answered 401".into(), Some("use a user".into()))),
                },
            ],
        };
        assert!(!check.ok());
        assert_eq!(
            render(&check, Utc::now()),
            "connection `default` (client secret): FAILED\n  picked      declared\n  tenant      t\n  client id   c\n  Power BI    token acquired (expiry not readable)\n              1 workspace visible\n  queries     Sales / Revenue: ok\n  queries     Sales / Secure: failed: answered 401\n              what to do: use a user\n"
        );
    }

    #[test]
    fn jwt_claims_are_read_without_the_signature() {
        // {"tid":"t","appid":"a","exp":2000000000}
        let payload = "eyJ0aWQiOiJ0IiwiYXBwaWQiOiJhIiwiZXhwIjoyMDAwMDAwMDAwfQ";
        let c = claims(&Secret::new(format!("h.{payload}.s"))).unwrap();
        assert_eq!(c["tid"], "t");
        assert_eq!(c["exp"], 2000000000);
        assert!(claims(&Secret::new("opaque")).is_none());
    }
}

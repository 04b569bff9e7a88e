//! Entra ID: the v2 client-credentials token endpoint (client secret, certificate client
//! assertion, federated token), the managed-identity endpoints (VM IMDS and the App Service /
//! Container Apps identity endpoint), with the real error bodies (powerbi-api.md section 6).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::json;

use super::http::{Sim, json_response};
use super::introspect::resource_key;
use super::state::{Audience, Principal, TokenInfo, base64url, derived_uuid};
use crate::powerbi::auth::certificate::ASSERTION_TYPE;

mod assertion;

use assertion::check_assertion;
pub(crate) use assertion::federated_token;

pub(crate) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/metadata/identity/oauth2/token", get(imds))
        .route("/msi/token", get(app_service_identity))
}

/// Issues a JWT-shaped token for `audience` and remembers it.
pub(crate) fn mint(sim: &Sim, audience: Audience, principal: Principal, client_id: &str) -> String {
    let now = sim.clock.now();
    let wall = sim.clock.wall(now);
    let lifetime = sim.cfg.token_lifetime;
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": "sim"});
    let mut world = sim.lock();
    world.counters.tokens_issued += 1;
    let serial = world.counters.tokens_issued;
    let payload = json!({
        "aud": audience.uri(),
        "iss": format!("https://sts.windows.net/{}/", sim.cfg.credentials.tenant_id),
        "iat": wall.timestamp(),
        "nbf": wall.timestamp(),
        "exp": wall.timestamp() + lifetime.as_secs() as i64,
        "appid": client_id,
        "tid": sim.cfg.credentials.tenant_id,
        "idtyp": match principal { Principal::User => "user", _ => "app" },
        "oid": derived_uuid(&["oid", client_id]).to_string(),
        "uti": serial.to_string(),
    });
    let signature = derived_uuid(&["token", &sim.cfg.seed.to_string(), &serial.to_string()]);
    let token = format!(
        "{}.{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(payload.to_string().as_bytes()),
        base64url(signature.as_bytes())
    );
    world.tokens.insert(
        token.clone(),
        TokenInfo {
            audience,
            principal,
            expires: now + lifetime,
        },
    );
    token
}

/// An Entra error body: `{error, error_description, error_codes, timestamp, trace_id, ...}`.
fn aad_error(sim: &Sim, status: StatusCode, error: &str, code: u32, text: &str) -> Response {
    let now = sim.clock.wall(sim.clock.now());
    let trace = uuid::Uuid::new_v4();
    let correlation = uuid::Uuid::new_v4();
    let timestamp = now.format("%Y-%m-%d %H:%M:%SZ").to_string();
    json_response(
        status,
        json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {timestamp}"
            ),
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace.to_string(),
            "correlation_id": correlation.to_string(),
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

/// `POST /{tenant}/oauth2/v2.0/token` (client credentials, secret in the form or Basic auth).
async fn token(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| decode_basic(b64.trim()));
    let creds = &sim.cfg.credentials;
    let missing = |name: &str| {
        aad_error(
            &sim,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            &format!("The request body must contain the following parameter: '{name}'."),
        )
    };
    let Some(grant) = form.get("grant_type") else {
        return missing("grant_type");
    };
    if grant != "client_credentials" {
        return aad_error(
            &sim,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    if !tenant.eq_ignore_ascii_case(&creds.tenant_id) {
        return aad_error(
            &sim,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    let (client_id, secret) = match (&basic, form.get("client_id")) {
        (Some((id, secret)), _) => (id.clone(), Some(secret.clone())),
        (None, Some(id)) => (id.clone(), form.get("client_secret").cloned()),
        (None, None) => return missing("client_id"),
    };
    if !client_id.eq_ignore_ascii_case(&creds.client_id) {
        return aad_error(
            &sim,
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        );
    }
    if let Some(assertion) = form.get("client_assertion") {
        if form.get("client_assertion_type").map(String::as_str) != Some(ASSERTION_TYPE) {
            return missing("client_assertion_type");
        }
        if let Err(refusal) = check_assertion(&sim, &client_id, assertion) {
            return refusal;
        }
    } else {
        if let Some(refusal) = check_secret(&sim, &client_id, secret) {
            return refusal;
        }
    }
    token_for_scope(&sim, &tenant, &client_id, form.get("scope"))
}

/// The client secret check: absent, wrong or expired secrets are refused.
fn check_secret(sim: &Sim, client_id: &str, secret: Option<String>) -> Option<Response> {
    let creds = &sim.cfg.credentials;
    let Some(secret) = secret else {
        return Some(aad_error(
            sim,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000216,
            "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
        ));
    };
    if secret != creds.client_secret {
        return Some(aad_error(
            sim,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            &format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        ));
    }
    if creds.client_secret_expired {
        return Some(aad_error(
            sim,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000222,
            &format!(
                "The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds."
            ),
        ));
    }
    None
}

/// The token for the one `{resource}/.default` scope asked for.
fn token_for_scope(sim: &Sim, tenant: &str, client_id: &str, scope: Option<&String>) -> Response {
    let Some(scope) = scope else {
        return aad_error(
            sim,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        );
    };
    let invalid_scope = || {
        aad_error(
            sim,
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            &format!(
                "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
            ),
        )
    };
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    let [only] = scopes.as_slice() else {
        return invalid_scope();
    };
    let Some(resource) = only.strip_suffix(".default") else {
        return invalid_scope();
    };
    // `https://service.flow.microsoft.com//.default` keeps its trailing slash in the audience.
    let Some(audience) = Audience::from_resource(resource) else {
        return aad_error(
            sim,
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            &format!(
                "The resource principal named {} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
                resource.trim_end_matches('/')
            ),
        );
    };
    // `{flow}//.default` asks for the audience `{flow}/`; `{flow}/.default` gets `{flow}`.
    let audience = if audience == Audience::Flow && !resource.ends_with("//") {
        Audience::FlowWithoutSlash
    } else {
        audience
    };
    let token = mint(sim, audience, Principal::App, client_id);
    let lifetime = sim.cfg.token_lifetime.as_secs();
    json_response(
        StatusCode::OK,
        json!({
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        }),
    )
}

fn decode_basic(b64: &str) -> Option<(String, String)> {
    let bytes = decode_base64(b64)?;
    let text = String::from_utf8(bytes).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

/// Standard base64 (with or without padding) for HTTP Basic credentials.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    const STANDARD: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    STANDARD.decode(text).ok()
}

/// `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=...` with
/// `Metadata: true`; numbers come back as strings, as IMDS sends them.
async fn imds(
    State(sim): State<Arc<Sim>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let bad = |error: &str, description: &str| {
        json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": error, "error_description": description}),
        )
    };
    if headers.get("metadata").and_then(|v| v.to_str().ok()) != Some("true") {
        return bad("invalid_request", "Required metadata header not specified");
    }
    if !query.contains_key("api-version") {
        return bad(
            "invalid_request",
            "Required query variable 'api-version' is missing",
        );
    }
    let Some(resource) = query.get("resource") else {
        return bad(
            "invalid_request",
            "Required query variable 'resource' is missing",
        );
    };
    // Azure's own transient answers first (`imds_failures`), counted per IMDS call.
    let calls = {
        let mut world = sim.lock();
        let key = resource_key("identity", "", "imds");
        world.count_key(&key, |c| c.triggers += 1);
        world.counters.resource(&key).triggers
    };
    if let Some(&status) = sim.cfg.credentials.imds_failures.get(calls as usize - 1) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return json_response(
            status,
            json!({
                "error": "temporarily_unavailable",
                "error_description": format!("IMDS answered {} (simulated)", status.as_u16()),
            }),
        );
    }
    let mi_client = &sim.cfg.credentials.managed_identity_client_id;
    if let Some(wanted) = query.get("client_id")
        && !wanted.eq_ignore_ascii_case(mi_client)
    {
        return bad("invalid_request", "Identity not found");
    }
    let Some(audience) = Audience::from_resource(resource) else {
        return bad(
            "invalid_resource",
            &format!(
                "AADSTS500011: The resource principal named {resource} was not found in the tenant."
            ),
        );
    };
    let token = mint(&sim, audience, Principal::ManagedIdentity, mi_client);
    let lifetime = sim.cfg.token_lifetime.as_secs();
    let now = sim.clock.wall(sim.clock.now()).timestamp();
    json_response(
        StatusCode::OK,
        json!({
            "access_token": token,
            "client_id": mi_client,
            "expires_in": lifetime.to_string(),
            "expires_on": (now + lifetime as i64).to_string(),
            "ext_expires_in": lifetime.to_string(),
            "not_before": now.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        }),
    )
}

/// `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=...[&client_id=...]` with
/// `X-IDENTITY-HEADER: {IDENTITY_HEADER}`: the App Service / Container Apps / Functions
/// identity endpoint. `expires_on` is a string of Unix seconds and there is no `expires_in`.
async fn app_service_identity(
    State(sim): State<Arc<Sim>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let answer = |status: StatusCode, message: &str| {
        json_response(
            status,
            json!({"statusCode": status.as_u16(), "message": message}),
        )
    };
    let creds = &sim.cfg.credentials;
    // [unverified] the exact refusal of a missing or wrong header; 401 with a message.
    if headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok())
        != Some(creds.identity_header.as_str())
    {
        return answer(
            StatusCode::UNAUTHORIZED,
            "The request is missing the X-IDENTITY-HEADER header or its value is not valid.",
        );
    }
    if query.get("api-version").map(String::as_str) != Some("2019-08-01") {
        return answer(
            StatusCode::BAD_REQUEST,
            "The api-version is missing or not supported; use 2019-08-01.",
        );
    }
    let Some(resource) = query.get("resource") else {
        return answer(
            StatusCode::BAD_REQUEST,
            "The resource parameter is missing.",
        );
    };
    let mi_client = &creds.managed_identity_client_id;
    if let Some(wanted) = query.get("client_id")
        && !wanted.eq_ignore_ascii_case(mi_client)
    {
        return answer(
            StatusCode::BAD_REQUEST,
            "Unable to load the proper Managed Identity.",
        );
    }
    let Some(audience) = Audience::from_resource(resource) else {
        return answer(
            StatusCode::BAD_REQUEST,
            &format!(
                "AADSTS500011: The resource principal named {resource} was not found in the tenant."
            ),
        );
    };
    let token = mint(&sim, audience, Principal::ManagedIdentity, mi_client);
    let lifetime = sim.cfg.token_lifetime.as_secs() as i64;
    let now = sim.clock.wall(sim.clock.now()).timestamp();
    json_response(
        StatusCode::OK,
        json!({
            "access_token": token,
            "expires_on": (now + lifetime).to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": mi_client,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_decode() {
        // "id:se%2Bcret" -> ("id", "se+cret")
        assert_eq!(
            decode_basic("aWQ6c2UlMkJjcmV0"),
            Some(("id".to_string(), "se+cret".to_string()))
        );
        assert_eq!(decode_basic("!!"), None);
    }
}

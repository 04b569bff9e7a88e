//! Client assertions at the token endpoint: a JWT signed by a certificate registered on the
//! app, or a federated token matching the app's federated identity credential (and carrying
//! the simulator's issuer signature, which [`federated_token`] makes).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::aad_error;
use crate::powerbi::auth::certificate::{decode_jwt, first_certificate, thumbprints, verify_rs256};
use crate::sim::http::Sim;

/// A client assertion: a JWT whose issuer is the app itself is signed by a certificate
/// registered on the app; any other is a federated token that must match the app's
/// federated identity credential (and, here, carry the simulator's issuer signature).
pub(super) fn check_assertion(sim: &Sim, client_id: &str, assertion: &str) -> Result<(), Response> {
    let Some(jwt) = decode_jwt(assertion) else {
        return Err(aad_error(
            sim,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed.",
        ));
    };
    let now = sim.clock.wall(sim.clock.now()).timestamp();
    let claim = |k: &str| {
        jwt.claims
            .get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
    };
    let number = |k: &str| jwt.claims.get(k).and_then(serde_json::Value::as_i64);
    let (nbf, exp) = (number("nbf").unwrap_or(0), number("exp").unwrap_or(0));
    if now >= exp || now + 300 < nbf {
        return Err(aad_error(
            sim,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700024,
            &format!(
                "Client assertion is not within its valid time range. Current time: {now}, assertion valid from {nbf}, expiry time of assertion {exp}."
            ),
        ));
    }
    if claim("iss") == client_id {
        return check_certificate_assertion(sim, client_id, &jwt, claim("sub"));
    }
    let fed = &sim.cfg.credentials.federated;
    let no_match = |code: u32, what: &str, value: &str| {
        aad_error(
            sim,
            StatusCode::BAD_REQUEST,
            "invalid_client",
            code,
            &format!(
                "No matching federated identity record found for presented assertion {what} '{value}'. Check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
            ),
        )
    };
    if claim("iss") != fed.issuer {
        return Err(no_match(700211, "issuer", claim("iss")));
    }
    let audience_ok = match jwt.claims.get("aud") {
        Some(serde_json::Value::String(a)) => *a == fed.audience,
        Some(serde_json::Value::Array(list)) => {
            list.iter().any(|a| a.as_str() == Some(&fed.audience))
        }
        _ => false,
    };
    if !audience_ok {
        return Err(no_match(700212, "audience", &jwt.claims["aud"].to_string()));
    }
    if claim("sub") != fed.subject {
        return Err(no_match(700213, "subject", claim("sub")));
    }
    // Entra checks the issuer's signature against the issuer's published keys; here the
    // simulator is the issuer.
    if jwt.signature != oidc_signature(sim, &jwt.signing_input) {
        return Err(aad_error(
            sim,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            50013,
            "Assertion failed signature validation. [Reason - The provided signature value did not match the expected signature value.]",
        ));
    }
    Ok(())
}

fn check_certificate_assertion(
    sim: &Sim,
    client_id: &str,
    jwt: &crate::powerbi::auth::certificate::JwtParts,
    subject: &str,
) -> Result<(), Response> {
    if subject != client_id {
        return Err(aad_error(
            sim,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .",
        ));
    }
    let header = |k: &str| jwt.header.get(k).and_then(serde_json::Value::as_str);
    // The thumbprint the client named, shown as Entra shows it (upper-case hex SHA-1, or
    // SHA-256 when only `x5t#S256` was sent).
    let named = |b64: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64.trim_end_matches('='))
            .map(hex::encode_upper)
            .unwrap_or_default()
    };
    let (client_thumbprint, registered) = {
        let certs = sim
            .cfg
            .credentials
            .certificates
            .iter()
            .filter_map(|pem| first_certificate(pem.as_bytes()));
        let mut found = None;
        for der in certs {
            let (x5t, x5t_s256, _) = thumbprints(der.as_ref());
            if header("x5t#S256") == Some(x5t_s256.as_str()) || header("x5t") == Some(x5t.as_str())
            {
                found = Some(der);
                break;
            }
        }
        let shown = header("x5t")
            .or(header("x5t#S256"))
            .map(named)
            .unwrap_or_default();
        (shown, found)
    };
    let invalid = |reason: &str| {
        aad_error(
            sim,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            &format!(
                "Client assertion contains an invalid signature. [Reason - {reason}, Thumbprint of key used by client: '{client_thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'.]"
            ),
        )
    };
    let Some(der) = registered else {
        return Err(invalid("The key was not found."));
    };
    if header("alg") != Some("RS256")
        || !verify_rs256(der.as_ref(), jwt.signing_input.as_bytes(), &jwt.signature)
    {
        return Err(invalid(
            "The provided signature value did not match the expected signature value.",
        ));
    }
    Ok(())
}

/// The simulator's signature, as the issuer of federated tokens, over a JWT signing input.
fn oidc_signature(sim: &Sim, signing_input: &str) -> Vec<u8> {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(sim.cfg.seed.to_le_bytes());
    h.update(b"pbibatch-sim-oidc");
    h.update(signing_input.as_bytes());
    h.finalize().to_vec()
}

/// A federated token from the simulator acting as the platform's OIDC issuer (what GitHub
/// Actions, Azure DevOps or AKS write to `AZURE_FEDERATED_TOKEN_FILE`), for `subject`,
/// valid for `lifetime_secs` from now (negative: already expired).
pub(crate) fn federated_token(sim: &Sim, subject: &str, lifetime_secs: i64) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let fed = &sim.cfg.credentials.federated;
    let now = sim.clock.wall(sim.clock.now()).timestamp();
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "sim-oidc"});
    let claims = json!({
        "iss": fed.issuer,
        "sub": subject,
        "aud": fed.audience,
        "iat": now,
        "nbf": now.min(now + lifetime_secs),
        "exp": now + lifetime_secs,
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    let signing_input = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    );
    let signature = oidc_signature(sim, &signing_input);
    format!("{signing_input}.{}", b64.encode(signature))
}

//! Job-level sections: `vars` (with `--var` overrides) and `connections` (with the implicit
//! `default`).

use indexmap::IndexMap;

use super::{Checker, help_for};
use crate::job::Code;
use crate::job::diag::Severity;
use crate::job::interp::{self, Piece, Ref};
use crate::job::model::{Cloud, Connection, Credentials};
use crate::job::raw::{RawCloud, RawConnection, RawJob, RawManagedIdentity, Sp};
use crate::secret::Secret;

/// A warning when steps rely on the implicit `default` connection and its environment is
/// missing here (a file-level warning: the connection is not written anywhere).
pub(super) fn implicit_default_warning(
    c: &mut Checker<'_>,
    raw: &RawJob,
    steps: &IndexMap<String, crate::job::model::Step>,
) {
    let declared = raw
        .connections
        .iter()
        .flatten()
        .any(|(name, _)| name.get() == "default");
    let used = steps
        .values()
        .any(|s| s.connection == "default" && crate::job::needs_auth(&s.kind));
    // Only the fallback (no credential variable at all) can miss variables: any other kind
    // was picked because its variables are set.
    let fallback = matches!(
        implicit_default(c.env).credentials,
        Credentials::ClientSecret { .. }
    );
    if declared || !used || !fallback {
        return;
    }
    let missing: Vec<&str> = ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"]
        .into_iter()
        .filter(|v| (c.env)(v).is_none())
        .collect();
    if !missing.is_empty() {
        c.warnings.push_global(
            Severity::Warning,
            Code::EnvNotSet,
            format!(
                "the implicit `default` connection needs {} (or PBIBATCH_ACCESS_TOKEN), not set here",
                missing.join(", ")
            ),
        );
    }
}

/// `vars:` and `--var` overrides. Values may use `${env.X}` but not other vars.
pub(super) fn vars(c: &mut Checker<'_>, raw: &RawJob, overrides: &[(String, String)]) {
    for (k, v) in raw.vars.iter().flatten() {
        let key = k.get();
        let valid = {
            let mut chars = key.chars();
            matches!(chars.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
                && chars.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        };
        if !valid {
            c.error(
                Code::InvalidName,
                k.loc(),
                format!("invalid variable name `{key}`"),
                "use letters, digits and `_`, not starting with a digit",
            );
        }
        let value = v.get();
        if let Ok(pieces) = interp::scan(value)
            && pieces
                .iter()
                .any(|p| matches!(p, Piece::Ref { r: Ref::Var(_), .. }))
        {
            c.error(
                Code::InvalidValue,
                v.loc(),
                "a variable cannot refer to another variable",
                "`${vars.*}` here",
            );
        }
        // Checks `${env.X}` and syntax (no vars are known yet, so a var reference fails).
        let checked = if value.contains("${vars.") {
            value.clone()
        } else {
            c.interpolate(value, v.loc(), false)
        };
        c.vars.insert(key.clone(), checked);
    }
    for (k, v) in overrides {
        if c.vars.contains_key(k) {
            if interp::scan(v).is_err() {
                c.errors.push_global(
                    Severity::Error,
                    Code::VarArgument,
                    format!("--var {k}: malformed `${{...}}` in the value"),
                );
            }
            c.vars.insert(k.clone(), v.clone());
        } else {
            let help = help_for(k, c.vars.keys())
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            c.errors.push_global(
                Severity::Error,
                Code::VarArgument,
                format!("--var {k}: no variable `{k}` under `vars:`{help}"),
            );
        }
    }
}

/// `connections:`, plus the implicit `default` when it is not declared.
pub(super) fn connections(c: &mut Checker<'_>, raw: &RawJob) -> IndexMap<String, Connection> {
    let mut out = IndexMap::new();
    for (name, conn) in raw.connections.iter().flatten() {
        if let Some(built) = connection(c, name, conn) {
            out.insert(name.get().clone(), built);
        }
    }
    if !out.contains_key("default") {
        out.insert("default".to_string(), implicit_default(c.env));
    }
    out
}

/// The implicit `default` connection: `PBIBATCH_ACCESS_TOKEN` first (DESIGN), then the
/// variables Microsoft's own libraries read, in their order (EnvironmentCredential,
/// WorkloadIdentityCredential, ManagedIdentityCredential): a client secret, a client
/// certificate, a federated token file, the App Service / Container Apps identity endpoint.
/// IMDS is never guessed (probing it off Azure only hangs): declare `managed_identity: true`.
/// With none of them, the client-secret variables are expected (and reported missing).
pub(crate) fn implicit_default(env: &dyn Fn(&str) -> Option<String>) -> Connection {
    let set = |name: &str| env(name).is_some();
    let azure_ids = set("AZURE_TENANT_ID") && set("AZURE_CLIENT_ID");
    let reference = |name: &str| format!("${{env.{name}}}");
    let (credentials, because) = if set("PBIBATCH_ACCESS_TOKEN") {
        (
            Credentials::AccessToken {
                access_token: Secret::new(reference("PBIBATCH_ACCESS_TOKEN")),
            },
            "PBIBATCH_ACCESS_TOKEN is set (it wins over every other variable)",
        )
    } else if azure_ids && set("AZURE_CLIENT_SECRET") {
        (
            Credentials::ClientSecret {
                tenant_id: reference("AZURE_TENANT_ID"),
                client_id: reference("AZURE_CLIENT_ID"),
                client_secret: Secret::new(reference("AZURE_CLIENT_SECRET")),
            },
            "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET are set",
        )
    } else if azure_ids && set("AZURE_CLIENT_CERTIFICATE_PATH") {
        (
            Credentials::ClientCertificate {
                tenant_id: reference("AZURE_TENANT_ID"),
                client_id: reference("AZURE_CLIENT_ID"),
                certificate_path: reference("AZURE_CLIENT_CERTIFICATE_PATH"),
            },
            "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_CERTIFICATE_PATH are set \
             (and AZURE_CLIENT_SECRET is not)",
        )
    } else if azure_ids && set("AZURE_FEDERATED_TOKEN_FILE") {
        (
            Credentials::WorkloadIdentity {
                tenant_id: reference("AZURE_TENANT_ID"),
                client_id: reference("AZURE_CLIENT_ID"),
                token_file: reference("AZURE_FEDERATED_TOKEN_FILE"),
            },
            "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE are set \
             (and neither AZURE_CLIENT_SECRET nor AZURE_CLIENT_CERTIFICATE_PATH)",
        )
    } else if set("IDENTITY_ENDPOINT") && set("IDENTITY_HEADER") {
        (
            Credentials::ManagedIdentity {
                // Microsoft's libraries take AZURE_CLIENT_ID as the user-assigned identity.
                client_id: set("AZURE_CLIENT_ID").then(|| reference("AZURE_CLIENT_ID")),
            },
            "IDENTITY_ENDPOINT and IDENTITY_HEADER are set (App Service / Container Apps \
             managed identity) and no AZURE_* service principal variables are",
        )
    } else {
        (
            Credentials::ClientSecret {
                tenant_id: reference("AZURE_TENANT_ID"),
                client_id: reference("AZURE_CLIENT_ID"),
                client_secret: Secret::new(reference("AZURE_CLIENT_SECRET")),
            },
            "no credential variable is set; a client secret is expected",
        )
    };
    Connection {
        name: "default".into(),
        cloud: Cloud::Public,
        credentials,
        picked_because: Some(format!("implicit `default` connection: {because}")),
    }
}

fn connection(
    c: &mut Checker<'_>,
    name: &Sp<String>,
    conn: &Sp<RawConnection>,
) -> Option<Connection> {
    let raw = conn.get();
    let cloud = match raw.cloud.as_ref().map(|v| *v.get()) {
        None | Some(RawCloud::Public) => Cloud::Public,
        Some(RawCloud::Usgov) => Cloud::Usgov,
        Some(RawCloud::Usgovhigh) => Cloud::Usgovhigh,
        Some(RawCloud::Usdod) => Cloud::Usdod,
        Some(RawCloud::China) => Cloud::China,
    };
    let tenant = raw.tenant_id.as_ref().map(|v| c.non_empty(v, "tenant_id"));
    let client = raw.client_id.as_ref().map(|v| c.non_empty(v, "client_id"));
    let secret = raw
        .client_secret
        .as_ref()
        .map(|v| c.non_empty(v, "client_secret"));
    let token = raw
        .access_token
        .as_ref()
        .map(|v| c.non_empty(v, "access_token"));
    let certificate = raw
        .client_certificate_path
        .as_ref()
        .map(|v| c.non_empty(v, "client_certificate_path"));
    let federated = raw
        .federated_token_file
        .as_ref()
        .map(|v| c.non_empty(v, "federated_token_file"));
    let azure_cli = raw.azure_cli.as_ref().is_some_and(|v| *v.get());
    let managed = match raw.managed_identity.as_ref().map(|v| (v.get(), v.loc())) {
        None | Some((RawManagedIdentity::Enabled(false), _)) => None,
        Some((RawManagedIdentity::Enabled(true), loc)) => Some((None, loc)),
        Some((RawManagedIdentity::UserAssigned(u), loc)) => {
            Some((Some(c.non_empty(&u.client_id, "client_id")), loc))
        }
    };
    const KINDS: &str = "use one of `client_secret`, `client_certificate_path` or \
        `federated_token_file` (each with `tenant_id` and `client_id`), `access_token`, \
        `managed_identity` or `azure_cli`";
    let kinds = usize::from(secret.is_some())
        + usize::from(token.is_some())
        + usize::from(managed.is_some())
        + usize::from(certificate.is_some())
        + usize::from(federated.is_some())
        + usize::from(azure_cli);
    let n = name.get();
    if kinds > 1 {
        c.error_help(
            Code::ConflictingKeys,
            name.loc(),
            format!("connection `{n}` sets more than one kind of credentials"),
            "ambiguous credentials",
            Some(KINDS.into()),
        );
        return None;
    }
    let credentials = if let Some(token) = token {
        for (key, v) in [("tenant_id", &raw.tenant_id), ("client_id", &raw.client_id)] {
            if let Some(v) = v {
                c.error(
                    Code::NotApplicable,
                    v.loc(),
                    format!("`{key}` has no use with `access_token`"),
                    "remove this",
                );
            }
        }
        Credentials::AccessToken {
            access_token: Secret::new(token),
        }
    } else if let Some((client_id, _)) = managed {
        for (key, v) in [("tenant_id", &raw.tenant_id), ("client_id", &raw.client_id)] {
            if let Some(v) = v {
                c.error_help(
                    Code::NotApplicable,
                    v.loc(),
                    format!("`{key}` has no use with `managed_identity`"),
                    "remove this",
                    Some(
                        "a user-assigned identity is `managed_identity: { client_id: ... }`".into(),
                    ),
                );
            }
        }
        Credentials::ManagedIdentity { client_id }
    } else if azure_cli {
        if let Some(v) = &raw.client_id {
            c.error_help(
                Code::NotApplicable,
                v.loc(),
                "`client_id` has no use with `azure_cli`".to_string(),
                "remove this",
                Some("the Azure CLI uses the account signed in with `az login`".into()),
            );
        }
        Credentials::AzureCli { tenant_id: tenant }
    } else if secret.is_some() || certificate.is_some() || federated.is_some() {
        let key = if secret.is_some() {
            "client_secret"
        } else if certificate.is_some() {
            "client_certificate_path"
        } else {
            "federated_token_file"
        };
        let (Some(tenant_id), Some(client_id)) = (tenant, client) else {
            c.error(
                Code::MissingKey,
                name.loc(),
                format!("connection `{n}` needs `tenant_id` and `client_id` with `{key}`"),
                "incomplete credentials",
            );
            return None;
        };
        if let Some(secret) = secret {
            Credentials::ClientSecret {
                tenant_id,
                client_id,
                client_secret: Secret::new(secret),
            }
        } else if let Some(certificate_path) = certificate {
            Credentials::ClientCertificate {
                tenant_id,
                client_id,
                certificate_path,
            }
        } else {
            Credentials::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file: federated.unwrap_or_default(),
            }
        }
    } else {
        c.error_help(
            Code::NoCredentials,
            name.loc(),
            format!("connection `{n}` has no credentials"),
            "no credentials",
            Some(KINDS.into()),
        );
        return None;
    };
    Some(Connection {
        name: n.clone(),
        cloud,
        credentials,
        picked_because: None,
    })
}

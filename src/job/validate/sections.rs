//! Job-level sections: `vars` (with `--var` overrides) and `connections` (with the implicit
//! `default`).

use indexmap::IndexMap;

use super::{Checker, help_for};
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
    if declared || !used || (c.env)("PBIBATCH_ACCESS_TOKEN").is_some() {
        return;
    }
    let missing: Vec<&str> = ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"]
        .into_iter()
        .filter(|v| (c.env)(v).is_none())
        .collect();
    if !missing.is_empty() {
        c.warnings.push_global(
            Severity::Warning,
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

/// The implicit `default` connection (Azure SDK convention, or PBIBATCH_ACCESS_TOKEN).
pub(crate) fn implicit_default(env: &dyn Fn(&str) -> Option<String>) -> Connection {
    let credentials = if env("PBIBATCH_ACCESS_TOKEN").is_some() {
        Credentials::AccessToken {
            access_token: Secret::new("${env.PBIBATCH_ACCESS_TOKEN}"),
        }
    } else {
        Credentials::ClientSecret {
            tenant_id: "${env.AZURE_TENANT_ID}".into(),
            client_id: "${env.AZURE_CLIENT_ID}".into(),
            client_secret: Secret::new("${env.AZURE_CLIENT_SECRET}"),
        }
    };
    Connection {
        name: "default".into(),
        cloud: Cloud::Public,
        credentials,
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
    let managed = match raw.managed_identity.as_ref().map(|v| (v.get(), v.loc())) {
        None | Some((RawManagedIdentity::Enabled(false), _)) => None,
        Some((RawManagedIdentity::Enabled(true), loc)) => Some((None, loc)),
        Some((RawManagedIdentity::UserAssigned(u), loc)) => {
            Some((Some(c.non_empty(&u.client_id, "client_id")), loc))
        }
    };
    let kinds = usize::from(secret.is_some())
        + usize::from(token.is_some())
        + usize::from(managed.is_some());
    let n = name.get();
    if kinds > 1 {
        c.error_help(
            name.loc(),
            format!("connection `{n}` sets more than one kind of credentials"),
            "ambiguous credentials",
            Some("use one of `client_secret` (with `tenant_id` and `client_id`), `access_token` or `managed_identity`".into()),
        );
        return None;
    }
    let credentials = if let Some(token) = token {
        for (key, v) in [("tenant_id", &raw.tenant_id), ("client_id", &raw.client_id)] {
            if let Some(v) = v {
                c.error(
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
    } else if let Some(secret) = secret {
        let (Some(tenant_id), Some(client_id)) = (tenant, client) else {
            c.error(
                name.loc(),
                format!("connection `{n}` needs `tenant_id` and `client_id` with `client_secret`"),
                "incomplete credentials",
            );
            return None;
        };
        Credentials::ClientSecret {
            tenant_id,
            client_id,
            client_secret: Secret::new(secret),
        }
    } else {
        c.error_help(
            name.loc(),
            format!("connection `{n}` has no credentials"),
            "no credentials",
            Some("use one of `client_secret` (with `tenant_id` and `client_id`), `access_token` or `managed_identity`".into()),
        );
        return None;
    };
    Some(Connection {
        name: n.clone(),
        cloud,
        credentials,
    })
}

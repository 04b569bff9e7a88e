//! What a run ran against: the simulator, or a tenant at a set of endpoints.
//!
//! A stored run's successes hold only for the service that saw them. A refresh that succeeded
//! in the simulator refreshed nothing on the tenant, so `--resume` refuses a run of another
//! target, and the scheduler's duration hints read only runs of the same target. The target
//! holds ids and base URLs, never a secret: tenant ids are not credentials, and a static
//! token contributes only the tenant id (`tid`) its payload names.

use std::collections::BTreeSet;
use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::job::model::{Credentials, Job, StepKind};
use crate::powerbi::ClientConfig;

/// What a run ran against. Two runs have the same target only when their values are equal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunTarget {
    /// `run --simulate`: the simulator built into that run.
    Simulated,
    /// A Power BI / Fabric service: the real one, or anything its base URLs point at (a
    /// `pbibatch sim serve` standing in for a tenant is a service too).
    Service(ServiceTarget),
    /// A run recorded before pbibatch stored targets (store schema < 3) whose arguments do
    /// not say `--simulate`: it cannot be known to share any target, so it is never resumed
    /// and never lends its durations.
    #[default]
    Unknown,
}

/// The tenant(s) and endpoints of a run against a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceTarget {
    /// Tenant ids of the connections the job's Power BI / Fabric steps use, sorted. A
    /// managed identity, or a static token whose payload names no tenant, adds none.
    pub tenants: Vec<String>,
    /// The cloud and bases of each of those connections, sorted, without duplicates.
    pub endpoints: Vec<Endpoints>,
}

/// One cloud's bases as the run used them (after the `PBIBATCH_*_URL` overrides).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Endpoints {
    /// `public`, `usgov`, `usgovhigh`, `usdod` or `china`.
    pub cloud: String,
    pub powerbi_url: String,
    pub fabric_url: String,
    pub authority_url: String,
}

impl RunTarget {
    /// The target of a run of `job` (already resolved: `${env.X}` filled in) with `config`;
    /// `simulated` for `--simulate`.
    pub(crate) fn of_run(job: &Job, config: &ClientConfig, simulated: bool) -> RunTarget {
        if simulated {
            return RunTarget::Simulated;
        }
        let mut tenants = BTreeSet::new();
        let mut endpoints = BTreeSet::new();
        for step in job.steps.values() {
            let uses_api = match &step.kind {
                StepKind::Dataset(_)
                | StepKind::Dataflow(_)
                | StepKind::Report(_)
                | StepKind::FabricJob(_) => true,
                StepKind::SasFlow(s) => s.wait_for.is_some(),
                StepKind::Webhook(_) => false,
                StepKind::Capacity(_) | StepKind::DataCheck(_) | StepKind::Freshness(_) => true,
            };
            let Some(conn) = job.connections.get(&step.connection).filter(|_| uses_api) else {
                continue;
            };
            if let Some(tenant) = tenant_of(&conn.credentials) {
                tenants.insert(tenant);
            }
            let ep = config.endpoints(conn.cloud);
            endpoints.insert(Endpoints {
                cloud: cloud_name(conn.cloud).to_string(),
                powerbi_url: base(&ep.powerbi),
                fabric_url: base(&ep.fabric),
                authority_url: base(&ep.authority),
            });
        }
        RunTarget::Service(ServiceTarget {
            tenants: tenants.into_iter().collect(),
            endpoints: endpoints.into_iter().collect(),
        })
    }

    /// The target of a stored run: its `target` column, or, for a run recorded before
    /// targets were stored, `simulated` when its arguments say `--simulate`, else unknown.
    pub(super) fn from_stored(target: Option<&str>, arguments: &serde_json::Value) -> RunTarget {
        match target.and_then(|t| serde_json::from_str(t).ok()) {
            Some(target) => target,
            None if arguments.get("simulate") == Some(&serde_json::Value::Bool(true)) => {
                RunTarget::Simulated
            }
            None => RunTarget::Unknown,
        }
    }

    /// The form stored in the `target` column (one canonical JSON text per target, so SQL
    /// can compare targets with `=`).
    pub(super) fn stored(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"kind":"unknown"}"#.to_string())
    }

    /// A short form for the `history` table: `simulated`, `unknown`, or the first tenant id
    /// (shortened) and the Power BI host: `72f988bf@api.powerbi.com`.
    pub fn short(&self) -> String {
        match self {
            RunTarget::Simulated => "simulated".into(),
            RunTarget::Unknown => "unknown".into(),
            RunTarget::Service(s) => {
                let host = s
                    .endpoints
                    .first()
                    .map(|e| host_of(&e.powerbi_url))
                    .unwrap_or_else(|| "no Power BI step".into());
                let more = s.endpoints.len().saturating_sub(1);
                let host = if more > 0 {
                    format!("{host}+{more}")
                } else {
                    host
                };
                match s.tenants.first() {
                    Some(t) => {
                        let short: String = t.chars().take(8).collect();
                        let others = s.tenants.len() - 1;
                        if others > 0 {
                            format!("{short}+{others}@{host}")
                        } else {
                            format!("{short}@{host}")
                        }
                    }
                    None => host,
                }
            }
        }
    }
}

impl fmt::Display for RunTarget {
    /// The long form, for `show` and the resume refusal: `the simulator`, `tenant T at
    /// https://api.powerbi.com (Fabric ..., authority ..., cloud public)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunTarget::Simulated => f.write_str("the simulator (--simulate)"),
            RunTarget::Unknown => f.write_str(
                "an unknown target (recorded before pbibatch stored what a run ran against)",
            ),
            RunTarget::Service(s) => {
                match s.tenants.as_slice() {
                    [] => f.write_str("an unidentified tenant")?,
                    [one] => write!(f, "tenant {one}")?,
                    many => write!(f, "tenants {}", many.join(", "))?,
                }
                if s.endpoints.is_empty() {
                    return f.write_str(" (no Power BI or Fabric step)");
                }
                for (i, e) in s.endpoints.iter().enumerate() {
                    write!(
                        f,
                        "{} {} (Fabric {}, authority {}, cloud {})",
                        if i == 0 { " at" } else { " and" },
                        e.powerbi_url,
                        e.fabric_url,
                        e.authority_url,
                        e.cloud
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// The tenant a connection authenticates in, when the connection says (no secret: a tenant
/// id identifies, it does not authenticate).
fn tenant_of(credentials: &Credentials) -> Option<String> {
    match credentials {
        Credentials::ClientSecret { tenant_id, .. }
        | Credentials::ClientCertificate { tenant_id, .. }
        | Credentials::WorkloadIdentity { tenant_id, .. } => {
            Some(tenant_id.trim().to_string()).filter(|t| !t.is_empty())
        }
        // A static token's payload names its tenant; the token itself is never kept.
        Credentials::AccessToken { access_token } => token_tenant(access_token.expose()),
        Credentials::AzureCli { tenant_id } => tenant_id
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string),
        // The identity's tenant is the host's, known only from the token it gets at run time.
        Credentials::ManagedIdentity { .. } => None,
    }
}

/// The `tid` claim of a JWT's payload, when the token is one (not verified: it only tells
/// targets apart, the service checks the token).
fn token_tenant(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims
        .get("tid")
        .and_then(|t| t.as_str())
        .map(str::to_string)
        .filter(|t| !t.is_empty())
}

fn cloud_name(cloud: crate::job::model::Cloud) -> &'static str {
    use crate::job::model::Cloud;
    match cloud {
        Cloud::Public => "public",
        Cloud::Usgov => "usgov",
        Cloud::Usgovhigh => "usgovhigh",
        Cloud::Usdod => "usdod",
        Cloud::China => "china",
    }
}

/// A base URL without its trailing slash (`https://api.powerbi.com`).
fn base(url: &url::Url) -> String {
    url.as_str().trim_end_matches('/').to_string()
}

fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
        })
        .unwrap_or_else(|| url.to_string())
}

/// Why `--resume` refuses: the run to resume ran against another target.
pub(super) fn refusal(run_id: &str, found: &RunTarget, current: &RunTarget) -> String {
    let hint = match (found, current) {
        (_, RunTarget::Simulated) => {
            "a rehearsal never continues a run of another target: run --simulate without \
             --resume, or resume a simulated run"
        }
        (RunTarget::Simulated, _) => {
            "run without --resume, or rehearse with --simulate --state <another file> so \
             rehearsals never share a history with real runs"
        }
        (RunTarget::Unknown, _) => {
            "that run was recorded by an older pbibatch, so nothing says it ran against this \
             target: run without --resume"
        }
        _ => "run without --resume, or resume a run of this target (pbibatch history)",
    };
    format!(
        "run `{run_id}` ran against {found}; this run targets {current}: resume refused, \
         nothing was sent; {hint}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_targets_read_back_and_old_runs_fall_back_to_their_arguments() {
        let service = RunTarget::Service(ServiceTarget {
            tenants: vec!["t1".into()],
            endpoints: vec![Endpoints {
                cloud: "public".into(),
                powerbi_url: "https://api.powerbi.com".into(),
                fabric_url: "https://api.fabric.microsoft.com".into(),
                authority_url: "https://login.microsoftonline.com".into(),
            }],
        });
        let args = serde_json::json!({});
        assert_eq!(
            RunTarget::from_stored(Some(&service.stored()), &args),
            service
        );
        assert_eq!(RunTarget::Simulated.stored(), r#"{"kind":"simulated"}"#);
        assert_eq!(RunTarget::Unknown.stored(), r#"{"kind":"unknown"}"#);
        let simulate = serde_json::json!({"simulate": true});
        assert_eq!(
            RunTarget::from_stored(None, &simulate),
            RunTarget::Simulated
        );
        assert_eq!(RunTarget::from_stored(None, &args), RunTarget::Unknown);
        assert_eq!(service.short(), "t1@api.powerbi.com");
        assert_eq!(
            service.to_string(),
            "tenant t1 at https://api.powerbi.com (Fabric https://api.fabric.microsoft.com, \
             authority https://login.microsoftonline.com, cloud public)"
        );
    }

    #[test]
    fn a_static_token_contributes_its_tenant_only() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"tid":"72f988bf-86f1-41af-91ab-2d7cd011db47","aud":"x"}"#);
        let token = format!("eyJhbGciOiJub25lIn0.{payload}.c2ln");
        assert_eq!(
            token_tenant(&token).as_deref(),
            Some("72f988bf-86f1-41af-91ab-2d7cd011db47")
        );
        assert_eq!(token_tenant("opaque-token"), None);
    }
}

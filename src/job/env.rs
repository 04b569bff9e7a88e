//! `${env.NAME}` resolution before a run: every missing variable is reported at once.

use std::fmt;

use indexmap::IndexMap;

use crate::job::interp::substitute_env;
use crate::job::model::{Credentials, HeaderValue, Job, StepKind};
use crate::secret::Secret;

/// Environment variables a run needs but that are not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingEnv {
    /// Variable name -> where it is used, in job order.
    pub missing: IndexMap<String, MissingVar>,
}

/// One missing environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MissingVar {
    /// What uses it: `connection `default` client_secret`, `step `a` url`, ...
    pub uses: Vec<String>,
    /// `file:line:col` of its first `${env.NAME}` in the job file (none for the implicit
    /// `default` connection, which is not written in the file).
    pub location: Option<String>,
    /// A set variable with a near name (a typo: `..._ULR` for `..._URL`).
    pub near: Option<String>,
}

/// The name of a set environment variable close to `name` (`ORDER_LIST_FLOW_URL` for
/// `ORDER_LIST_FLOW_ULR`): the process's variable names, kept when `lookup` also sees them
/// (tests and `--simulate` answer lookups themselves).
pub(super) fn near_set_variable(
    name: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    let set: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| lookup(k).is_some())
        .collect();
    crate::suggest::did_you_mean(name, set.iter().map(String::as_str)).map(str::to_string)
}

impl fmt::Display for MissingEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.missing.len();
        write!(
            f,
            "{n} environment variable{} the job needs {} not set:",
            if n == 1 { "" } else { "s" },
            if n == 1 { "is" } else { "are" }
        )?;
        for (name, var) in &self.missing {
            write!(f, "\n  {name} (used by {}", var.uses.join(", "))?;
            if let Some(at) = &var.location {
                write!(f, "; {at}")?;
            }
            write!(f, ")")?;
            if let Some(near) = &var.near {
                write!(f, ": did you mean `{near}`? it is set")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for MissingEnv {}

impl miette::Diagnostic for MissingEnv {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new("pbibatch::job::env_not_set"))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(
            "set them in the environment, or try the job with --simulate (no credentials needed)",
        ))
    }
}

/// Walks every string of the job, resolving references and recording misses.
struct Resolver<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    missing: IndexMap<String, Vec<String>>,
}

impl Resolver<'_> {
    fn s(&mut self, s: &str, used_by: &dyn Fn() -> String) -> String {
        let mut miss = Vec::new();
        let out = substitute_env(s, self.lookup, &mut miss);
        for name in miss {
            let uses = self.missing.entry(name).or_default();
            let u = used_by();
            if !uses.contains(&u) {
                uses.push(u);
            }
        }
        out
    }

    fn secret(&mut self, s: &Secret, used_by: &dyn Fn() -> String) -> Secret {
        Secret::new(self.s(s.expose(), used_by))
    }

    fn json(&mut self, v: &serde_json::Value, used_by: &dyn Fn() -> String) -> serde_json::Value {
        match v {
            serde_json::Value::String(s) => serde_json::Value::String(self.s(s, used_by)),
            serde_json::Value::Array(a) => {
                serde_json::Value::Array(a.iter().map(|i| self.json(i, used_by)).collect())
            }
            serde_json::Value::Object(m) => serde_json::Value::Object(
                m.iter()
                    .map(|(k, i)| (k.clone(), self.json(i, used_by)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn headers(
        &mut self,
        h: &IndexMap<String, HeaderValue>,
        step: &str,
    ) -> IndexMap<String, HeaderValue> {
        h.iter()
            .map(|(k, v)| {
                let by = || format!("step `{step}` headers.{k}");
                let v = match v {
                    HeaderValue::Plain(p) => HeaderValue::Plain(self.s(p, &by)),
                    HeaderValue::Secret(s) => HeaderValue::Secret(self.secret(s, &by)),
                };
                (k.clone(), v)
            })
            .collect()
    }
}

/// Resolves every `${env.NAME}` (connections, step fields, headers, JSON bodies, secrets) and
/// turns `$${` into `${`. Webhook placeholders (`${run.*}`, `${steps.*}`) are left for the
/// webhook executor. Fails with every missing variable and where it is used.
pub fn resolve_env(job: &Job, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Job, MissingEnv> {
    let mut r = Resolver {
        lookup,
        missing: IndexMap::new(),
    };
    let mut out = job.clone();
    out.description = job
        .description
        .as_ref()
        .map(|d| r.s(d, &|| "description".to_string()));
    for (name, value) in out.vars.iter_mut() {
        *value = r.s(value, &|| format!("vars.{name}"));
    }
    // Only connections that a selected or any step uses matter, but an unused broken
    // connection is still a configuration error worth reporting; resolve them all except the
    // implicit default when no step needs it.
    let needs_default = job
        .steps
        .values()
        .any(|s| s.connection == "default" && needs_auth(&s.kind));
    for (name, conn) in out.connections.iter_mut() {
        if name == "default" && !needs_default && is_implicit(&conn.credentials) {
            continue;
        }
        let by = |key: &'static str| {
            let name = name.clone();
            move || format!("connection `{name}` {key}")
        };
        conn.credentials = match &conn.credentials {
            Credentials::ClientSecret {
                tenant_id,
                client_id,
                client_secret,
            } => Credentials::ClientSecret {
                tenant_id: r.s(tenant_id, &by("tenant_id")),
                client_id: r.s(client_id, &by("client_id")),
                client_secret: r.secret(client_secret, &by("client_secret")),
            },
            Credentials::AccessToken { access_token } => Credentials::AccessToken {
                access_token: r.secret(access_token, &by("access_token")),
            },
            Credentials::ClientCertificate {
                tenant_id,
                client_id,
                certificate_path,
            } => Credentials::ClientCertificate {
                tenant_id: r.s(tenant_id, &by("tenant_id")),
                client_id: r.s(client_id, &by("client_id")),
                certificate_path: r.s(certificate_path, &by("client_certificate_path")),
            },
            Credentials::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            } => Credentials::WorkloadIdentity {
                tenant_id: r.s(tenant_id, &by("tenant_id")),
                client_id: r.s(client_id, &by("client_id")),
                token_file: r.s(token_file, &by("federated_token_file")),
            },
            Credentials::ManagedIdentity { client_id } => Credentials::ManagedIdentity {
                client_id: client_id.as_ref().map(|c| r.s(c, &by("client_id"))),
            },
            Credentials::AzureCli { tenant_id } => Credentials::AzureCli {
                tenant_id: tenant_id.as_ref().map(|t| r.s(t, &by("tenant_id"))),
            },
        };
    }
    for (id, step) in out.steps.iter_mut() {
        let by = |key: &'static str| {
            let id = id.clone();
            move || format!("step `{id}` {key}")
        };
        step.kind = match &step.kind {
            StepKind::SasFlow(s) => {
                let mut s = s.clone();
                s.url = r.secret(&s.url, &by("url"));
                s.headers = r.headers(&s.headers, id);
                s.body = s.body.as_ref().map(|b| r.json(b, &by("body")));
                if let Some(w) = &mut s.wait_for {
                    w.workspace = r.s(&w.workspace, &by("wait_for.workspace"));
                    w.dataflow = r.s(&w.dataflow, &by("wait_for.dataflow"));
                }
                StepKind::SasFlow(s)
            }
            StepKind::Webhook(s) => {
                let mut s = s.clone();
                s.url = r.secret(&s.url, &by("url"));
                s.headers = r.headers(&s.headers, id);
                s.body = s.body.as_ref().map(|b| r.json(b, &by("body")));
                s.link = s.link.as_ref().map(|l| r.s(l, &by("link")));
                StepKind::Webhook(s)
            }
            StepKind::Dataflow(s) => {
                let mut s = s.clone();
                s.workspace = r.s(&s.workspace, &by("workspace"));
                s.dataflow = r.s(&s.dataflow, &by("dataflow"));
                s.parameters = s
                    .parameters
                    .iter()
                    .map(|(k, v)| (k.clone(), r.json(v, &by("parameters"))))
                    .collect();
                StepKind::Dataflow(s)
            }
            StepKind::FabricJob(s) => {
                let mut s = s.clone();
                s.workspace = r.s(&s.workspace, &by("workspace"));
                s.item = r.s(&s.item, &by("item"));
                s.parameters = s
                    .parameters
                    .iter()
                    .map(|(k, v)| (k.clone(), r.json(v, &by("parameters"))))
                    .collect();
                s.configuration = s
                    .configuration
                    .as_ref()
                    .map(|c| r.json(c, &by("configuration")));
                StepKind::FabricJob(s)
            }
            StepKind::Dataset(s) => {
                let mut s = s.clone();
                s.workspace = r.s(&s.workspace, &by("workspace"));
                s.dataset = r.s(&s.dataset, &by("dataset"));
                if let Some(refresh) = &mut s.refresh {
                    for o in &mut refresh.objects {
                        o.table = r.s(&o.table, &by("refresh.objects"));
                        o.partition = o.partition.as_ref().map(|p| r.s(p, &by("refresh.objects")));
                    }
                }
                StepKind::Dataset(s)
            }
            StepKind::Report(s) => {
                let mut s = s.clone();
                s.workspace = r.s(&s.workspace, &by("workspace"));
                s.report = r.s(&s.report, &by("report"));
                let e = &mut s.export;
                let path = r.s(&e.path.to_string_lossy(), &by("export.path"));
                e.path = path.into();
                e.pages = e
                    .pages
                    .iter()
                    .map(|p| r.s(p, &by("export.pages")))
                    .collect();
                e.bookmark = e.bookmark.as_ref().map(|b| r.s(b, &by("export.bookmark")));
                e.locale = e.locale.as_ref().map(|l| r.s(l, &by("export.locale")));
                e.parameters = e
                    .parameters
                    .iter()
                    .map(|(k, v)| (k.clone(), r.s(v, &by("export.parameters"))))
                    .collect();
                StepKind::Report(s)
            }
            StepKind::Capacity(s) => {
                let mut s = s.clone();
                s.capacity = r.s(&s.capacity, &by("capacity"));
                s.subscription = s.subscription.as_ref().map(|v| r.s(v, &by("subscription")));
                s.resource_group = s
                    .resource_group
                    .as_ref()
                    .map(|v| r.s(v, &by("resource_group")));
                if let crate::job::model::CapacityAction::Scale { sku } = &mut s.action {
                    *sku = r.s(sku, &by("sku"));
                }
                StepKind::Capacity(s)
            }
            StepKind::DataCheck(s) => {
                let mut s = s.clone();
                s.workspace = r.s(&s.workspace, &by("workspace"));
                s.dataset = r.s(&s.dataset, &by("dataset"));
                s.query = r.s(&s.query, &by("query"));
                s.impersonated_user = s
                    .impersonated_user
                    .as_ref()
                    .map(|v| r.s(v, &by("impersonated_user")));
                StepKind::DataCheck(s)
            }
            StepKind::Freshness(s) => {
                let mut s = s.clone();
                match s.target.as_mut() {
                    StepKind::Dataset(t) => {
                        t.workspace = r.s(&t.workspace, &by("workspace"));
                        t.dataset = r.s(&t.dataset, &by("dataset"));
                    }
                    StepKind::Dataflow(t) => {
                        t.workspace = r.s(&t.workspace, &by("workspace"));
                        t.dataflow = r.s(&t.dataflow, &by("dataflow"));
                    }
                    StepKind::FabricJob(t) => {
                        t.workspace = r.s(&t.workspace, &by("workspace"));
                        t.item = r.s(&t.item, &by("item"));
                    }
                    _ => {}
                }
                StepKind::Freshness(s)
            }
        };
    }
    if r.missing.is_empty() {
        Ok(out)
    } else {
        let mut locations = locate(job, r.missing.keys());
        let missing = r
            .missing
            .into_iter()
            .map(|(name, uses)| {
                let location = locations.shift_remove(&name);
                let near = near_set_variable(&name, lookup);
                (
                    name,
                    MissingVar {
                        uses,
                        location,
                        near,
                    },
                )
            })
            .collect();
        Err(MissingEnv { missing })
    }
}

/// `file:line:col` of the first `${env.NAME}` of each name in the job file. The model keeps
/// no spans, so the file is read again; this only runs on the error path.
fn locate<'a>(job: &Job, names: impl Iterator<Item = &'a String>) -> IndexMap<String, String> {
    let mut out = IndexMap::new();
    let Ok(text) = std::fs::read_to_string(&job.file) else {
        return out;
    };
    for name in names {
        let needle = format!("${{env.{name}}}");
        let Some(offset) = text.find(&needle) else {
            continue;
        };
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        out.insert(
            name.clone(),
            format!("{}:{line}:{column}", job.file.display()),
        );
    }
    out
}

/// True for step kinds that call Power BI / Fabric (and so need a connection).
pub fn needs_auth(kind: &StepKind) -> bool {
    match kind {
        StepKind::SasFlow(s) => s.wait_for.is_some() || s.oauth,
        StepKind::Webhook(_) => false,
        StepKind::Dataflow(_)
        | StepKind::Dataset(_)
        | StepKind::Report(_)
        | StepKind::FabricJob(_)
        | StepKind::Capacity(_)
        | StepKind::DataCheck(_)
        | StepKind::Freshness(_) => true,
    }
}

fn is_implicit(c: &Credentials) -> bool {
    match c {
        Credentials::ClientSecret { tenant_id, .. }
        | Credentials::ClientCertificate { tenant_id, .. }
        | Credentials::WorkloadIdentity { tenant_id, .. } => tenant_id == "${env.AZURE_TENANT_ID}",
        Credentials::AccessToken { access_token } => {
            access_token.expose() == "${env.PBIBATCH_ACCESS_TOKEN}"
        }
        Credentials::ManagedIdentity { .. } | Credentials::AzureCli { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::load::load_bytes;

    const JOB: &str = r#"
version: 1
name: t
vars: { ws: "Data Admin" }
connections:
  default: { tenant_id: "${env.T}", client_id: c, client_secret: "${env.S}" }
steps:
  flow:
    type: sas_flow
    url: "${env.FLOW_URL}"
    headers: { x-api-key: "${env.KEY}" }
    body: { name: "${vars.ws}", lit: "$${not.a.ref}", nested: ["${env.T}"] }
  model:
    type: dataset
    workspace: ${vars.ws}
    dataset: M
    depends_on: [flow]
  tell:
    type: webhook
    url: https://example.invalid/hook
    body: { text: "${run.job} ${steps.model.status}" }
    depends_on: [model]
"#;

    #[test]
    fn missing_vars_are_located_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.yaml");
        std::fs::write(&path, JOB).unwrap();
        let loaded = crate::job::load(&path, &[]).unwrap();
        let err = resolve_env(&loaded.job, &|_| None).unwrap_err();
        let shown = path.display();
        assert_eq!(
            err.missing["FLOW_URL"].location,
            Some(format!("{shown}:10:11"))
        );
        assert_eq!(err.missing["KEY"].location, Some(format!("{shown}:11:28")));
        assert!(
            err.to_string().contains(&format!(
                "FLOW_URL (used by step `flow` url; {shown}:10:11)"
            )),
            "{err}"
        );
    }

    #[test]
    fn resolves_everything_or_lists_every_missing_var() {
        let loaded = load_bytes("t.yaml", JOB.as_bytes(), &[], &|_| None).unwrap();
        assert_eq!(loaded.warnings.items().len(), 4);
        let err = resolve_env(&loaded.job, &|n| (n == "T").then(|| "tenant".into())).unwrap_err();
        let names: Vec<&str> = err.missing.keys().map(String::as_str).collect();
        assert_eq!(names, ["S", "FLOW_URL", "KEY"]);
        assert_eq!(err.missing["KEY"].uses, ["step `flow` headers.x-api-key"]);
        assert_eq!(err.missing["KEY"].location, None, "t.yaml is not on disk");
        let text = err.to_string();
        assert!(
            text.contains("FLOW_URL (used by step `flow` url)"),
            "{text}"
        );

        let job = resolve_env(&loaded.job, &|n| Some(format!("<{n}>"))).unwrap();
        let StepKind::SasFlow(flow) = &job.steps["flow"].kind else {
            panic!("not a sas_flow")
        };
        assert_eq!(flow.url.expose(), "<FLOW_URL>");
        assert_eq!(
            flow.body.as_ref().unwrap(),
            &serde_json::json!({"name": "Data Admin", "lit": "${not.a.ref}", "nested": ["<T>"]})
        );
        let StepKind::Webhook(hook) = &job.steps["tell"].kind else {
            panic!("not a webhook")
        };
        assert_eq!(
            hook.body.as_ref().unwrap(),
            &serde_json::json!({"text": "${run.job} ${steps.model.status}"})
        );
    }
}

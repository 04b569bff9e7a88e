//! `auth check --job`: whether each connection may query the models its `data_check` steps
//! query. A token and a workspace list do not tell: the Execute Queries API also needs a
//! tenant setting, Read and Build permission on the model, and refuses a service principal
//! on a model with row-level security or SSO. So the check asks once per distinct model,
//! with a query that reads no data, through the client call and answer parsing the
//! `data_check` executor uses.

use indexmap::IndexMap;

use crate::executor::data_check::{answer_rows, request_body};
use crate::job::interp::substitute_env;
use crate::job::model::{DataCheckStep, Expectation, Job, Severity, StepKind};
use crate::powerbi::resolve::ItemKind;
use crate::powerbi::{ClientError, PowerBiClient};

/// The probe: one constant row, no table read, valid on every model.
pub(crate) const PROBE_QUERY: &str = "EVALUATE ROW(\"pbibatch\", 1)";

/// A model the job's `data_check` steps query, as the steps name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProbedModel {
    pub workspace: String,
    pub dataset: String,
}

/// What the probe of one model found: `Ok` when the service answered the query, else the
/// error and what to do about it.
#[derive(Debug, Clone)]
pub struct QueryProbe {
    pub model: ProbedModel,
    pub result: Result<(), (String, Option<String>)>,
}

/// The distinct models each connection's `data_check` steps query, by connection name, in
/// file order. A fan-out still waiting for run-time discovery has no names yet: skipped.
pub(crate) fn data_check_models(job: &Job) -> IndexMap<String, Vec<ProbedModel>> {
    let templates: Vec<&str> = job.awaiting_discovery().iter().map(|(id, _)| *id).collect();
    let mut out: IndexMap<String, Vec<ProbedModel>> = IndexMap::new();
    for (id, step) in &job.steps {
        let StepKind::DataCheck(check) = &step.kind else {
            continue;
        };
        if templates.contains(&id.as_str()) {
            continue;
        }
        let model = ProbedModel {
            workspace: check.workspace.clone(),
            dataset: check.dataset.clone(),
        };
        let models = out.entry(step.connection.clone()).or_default();
        if !models.contains(&model) {
            models.push(model);
        }
    }
    out
}

/// Whether a token is a service principal's (app-only): its `idtyp` claim when present,
/// else what the credentials imply (`None`: cannot tell, e.g. a token given as is).
pub(crate) fn app_only_from(
    idtyp: Option<&str>,
    credentials_app_only: Option<bool>,
) -> Option<bool> {
    match idtyp {
        Some(t) if t.eq_ignore_ascii_case("app") => Some(true),
        Some(t) if t.eq_ignore_ascii_case("user") => Some(false),
        _ => credentials_app_only,
    }
}

/// Probes `model` on connection `conn`: resolve the workspace and the model as the
/// executor does, then send [`PROBE_QUERY`].
pub(crate) async fn probe(
    client: &PowerBiClient,
    conn: &str,
    model: &ProbedModel,
    app_only: Option<bool>,
) -> QueryProbe {
    let result = probe_result(client, conn, model, app_only).await;
    QueryProbe {
        model: model.clone(),
        result,
    }
}

async fn probe_result(
    client: &PowerBiClient,
    conn: &str,
    model: &ProbedModel,
    app_only: Option<bool>,
) -> Result<(), (String, Option<String>)> {
    let lookup = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut missing = Vec::new();
    let workspace = substitute_env(&model.workspace, &lookup, &mut missing);
    let dataset = substitute_env(&model.dataset, &lookup, &mut missing);
    if !missing.is_empty() {
        return Err((
            format!("not checked: {} not set", missing.join(", ")),
            Some("set the environment variables the step's workspace and dataset name".into()),
        ));
    }
    let plain = |e: ClientError| (e.to_string(), super::auth::advice(&e));
    let ws = client.workspace_id(conn, &workspace).await.map_err(plain)?;
    let item = client
        .resolve_item(conn, &ws, ItemKind::Dataset, &dataset)
        .await
        .map_err(plain)?;
    // The executor's own body: one query, nulls kept, no impersonation.
    let body = request_body(&DataCheckStep {
        workspace,
        dataset,
        query: PROBE_QUERY.to_string(),
        expect: Expectation::NoRows,
        severity: Severity::Error,
        impersonated_user: None,
    });
    match client.execute_queries(conn, &ws, &item.id, body).await {
        Ok(answer) => answer_rows(&answer)
            .map(|_| ())
            .map_err(|e| (format!("the query's answer holds an error: {e}"), None)),
        Err(e) if is_refusal(&e) => {
            let rls = if app_only == Some(false) {
                None
            } else {
                requires_effective_identity(client, conn, &ws, &item.id).await
            };
            Err((e.to_string(), Some(refusal_advice(app_only, rls))))
        }
        Err(e) => Err(plain(e)),
    }
}

/// A refusal about permission: 401, or 403 other than an expired token.
fn is_refusal(e: &ClientError) -> bool {
    match e.status() {
        Some(401) => true,
        Some(403) => !e
            .code()
            .is_some_and(|c| c.eq_ignore_ascii_case("TokenExpired")),
        _ => false,
    }
}

/// Whether the model's listing says it requires an effective identity (row-level security):
/// `isEffectiveIdentityRequired` of `GET /groups/{g}/datasets`; `None` when it cannot tell.
async fn requires_effective_identity(
    client: &PowerBiClient,
    conn: &str,
    workspace_id: &str,
    dataset_id: &str,
) -> Option<bool> {
    let datasets = client.datasets_detail(conn, workspace_id).await.ok()?;
    datasets
        .into_iter()
        .find(|d| d.id.eq_ignore_ascii_case(dataset_id))?
        .is_effective_identity_required
}

/// What to do about a refused query: for a service principal on a model with row-level
/// security the one answer; otherwise every condition the service documents, those of a
/// service principal only when the identity is (or may be) one.
pub(crate) fn refusal_advice(app_only: Option<bool>, rls: Option<bool>) -> String {
    if app_only == Some(true) && rls == Some(true) {
        return "this model has row-level security (it requires an effective identity), and a \
                service principal cannot query such a model, whatever the tenant settings: run \
                this model's data checks on a connection that signs in as a user (an access \
                token or the Azure CLI); `impersonated_user` then picks whose roles apply"
            .to_string();
    }
    let mut text = String::from(
        "an admin must enable the tenant setting \"Dataset Execute Queries REST API\" \
         (Admin portal > Tenant settings > Integration settings)",
    );
    let maybe_app = app_only != Some(false);
    if maybe_app {
        text.push_str(
            " and, for a service principal, \"Service principals can use Fabric APIs\" \
             (formerly \"Allow service principals to use Power BI APIs\", Developer settings) \
             for this app or a security group it is in",
        );
    }
    text.push_str(
        "; the identity needs Read and Build permission on the model (a workspace role of \
         Contributor or higher includes both)",
    );
    if maybe_app {
        text.push_str(
            "; a service principal cannot query a model with row-level security or SSO, \
             whatever the tenant settings",
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_fits_the_identity_and_the_model() {
        let rls = refusal_advice(Some(true), Some(true));
        assert!(
            rls.starts_with("this model has row-level security"),
            "{rls}"
        );
        assert!(!rls.contains("Dataset Execute Queries REST API"), "{rls}");
        let app = refusal_advice(Some(true), Some(false));
        assert!(
            app.contains("\"Dataset Execute Queries REST API\""),
            "{app}"
        );
        assert!(
            app.contains("\"Service principals can use Fabric APIs\""),
            "{app}"
        );
        assert!(app.contains("Read and Build"), "{app}");
        let user = refusal_advice(Some(false), None);
        assert!(
            user.contains("\"Dataset Execute Queries REST API\""),
            "{user}"
        );
        assert!(!user.contains("service principal"), "{user}");
        let unknown = refusal_advice(None, None);
        assert!(unknown.contains("row-level security or SSO"), "{unknown}");
    }

    #[test]
    fn the_token_type_wins_over_the_credentials() {
        assert_eq!(app_only_from(Some("app"), Some(false)), Some(true));
        assert_eq!(app_only_from(Some("user"), Some(true)), Some(false));
        assert_eq!(app_only_from(None, None), None);
        assert_eq!(app_only_from(None, Some(true)), Some(true));
    }
}

//! The local Power BI / Fabric / Entra / Power Automate simulator (axum on tokio).
//!
//! One port serves every API, so `PBIBATCH_POWERBI_URL`, `PBIBATCH_FABRIC_URL` and
//! `PBIBATCH_AUTHORITY_URL` all point at [`SimServer::base_url`]:
//!
//! ```text
//! POST /{tenant}/oauth2/v2.0/token              Entra client credentials   (entra.rs)
//! GET  /metadata/identity/oauth2/token          managed identity (IMDS)    (entra.rs)
//! GET  /msi/token                               App Service identity       (entra.rs)
//! *    /v1.0/myorg/...                          Power BI REST              (powerbi/)
//! *    /v1/...                                  Fabric REST                (fabric.rs)
//! *    /subscriptions/.../Microsoft.Fabric/...  Azure Resource Manager     (arm.rs)
//! POST /workflows/{id}/triggers/manual/paths/invoke?...&sig=...   SAS flows (flow.rs)
//! POST /hooks/{name}                            webhook sink               (hooks.rs)
//! GET  /_sim/requests, /_sim/counters           introspection              (introspect.rs)
//! ```
//!
//! Behaviour follows the services' documentation and the official specs in `specs/`; the
//! knobs come from a [`Profile`] (docs/simulator.md). Run state is computed from the clock on
//! each request (state.rs), so nothing runs in the background.

// Handlers' helpers return the finished error `Response` as their `Err`: that is the value
// the handler sends, so boxing it would only add noise on a path that is not hot.
#![allow(clippy::result_large_err)]

mod arm;
mod cards;
mod entra;
mod fabric;
mod faults;
mod files;
mod flow;
mod for_job;
mod hooks;
mod http;
mod introspect;
mod item_jobs;
mod powerbi;
mod profile;
mod state;
mod strict;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use faults::{Exchange, Fault, FaultRule, RunRecord};
pub use for_job::{WantedItem, start_for_job};
pub use introspect::{Counters, RecordedRequest, ResourceCounters, resource_key};
pub use item_jobs::{
    ITEM_JOB_IDENTITY, PIPELINE_EXECUTION_DATA, RUN_NOTEBOOK_EXECUTION_DATA, RUN_NOTEBOOK_REQUEST,
    SPARK_JOB_EXECUTION_DATA, item_job_identity,
};
pub use profile::{
    CapacityWants, Credentials, DataflowRef, DataflowSpec, DatasetSpec, DurationSpec,
    FabricDataflowSpec, FailDetail, FlowSpec, HookSpec, HumanDuration, ItemSpec, Knobs,
    OutcomeSpec, Profile, Provision, ReportHint, ReportSpec, StartedBy, Throttle, WorkspaceSpec,
    WorkspaceWants,
};
pub use strict::{
    DATAFLOW_EXECUTION_PAYLOAD, DATAFLOW_REFRESH_REQUEST, DATASET_EXECUTE_QUERIES_REQUEST,
    DATASET_REFRESH_REQUEST, EXPORT_REPORT_REQUEST, Field, IDENTITY_SUPPORT, IdentitySupport,
    RUN_ON_DEMAND_DATAFLOW_EXECUTE_JOB_REQUEST, RUN_ON_DEMAND_ITEM_JOB_REQUEST, Rule, Shape,
    check_shape,
};

use http::Sim;
use state::{Audience, Clock, Config, Principal, World};

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The profile file could not be read.
    #[error("read simulator profile {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The profile is not valid.
    #[error("invalid simulator profile {path}: {message}")]
    Profile { path: String, message: String },
    /// The address could not be bound.
    #[error("bind simulator to {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// A running simulator. Dropping it stops serving (call [`SimServer::shutdown`] to wait).
pub struct SimServer {
    sim: Arc<Sim>,
    addr: SocketAddr,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

/// Starts the simulator for `profile` on `addr` (`127.0.0.1:0` picks a free port).
/// The profile is checked first (a profile built in code skips [`Profile::load`]'s checks).
pub async fn start(profile: Profile, addr: SocketAddr) -> Result<SimServer, SimError> {
    profile.check().map_err(|problems| SimError::Profile {
        path: "<profile>".into(),
        message: problems.join("; "),
    })?;
    let (listener, local) = http::bind(addr).await.map_err(|source| SimError::Bind {
        addr: addr.to_string(),
        source,
    })?;
    let base_url = format!("http://{local}");
    let clock = Clock::new();
    let world = World::build(&profile, &clock);
    let cfg = Config {
        base_url,
        credentials: profile.credentials.clone(),
        token_lifetime: profile.token_lifetime.0,
        latency: profile.latency,
        throttle: profile.throttle.clone(),
        transient_503: profile.transient_503,
        connection_drop: profile.connection_drop,
        page_size: profile.page_size.max(1),
        strict_audience: profile.strict_audience,
        rules: strict::Rules::relaxing(&profile.relax),
        redirect_exports: profile.redirect_exports,
        max_recorded_requests: profile.max_recorded_requests,
        seed: profile.seed,
    };
    let sim = Arc::new(Sim::new(cfg, clock, world));
    let router = router(sim.clone());
    let stop = CancellationToken::new();
    let task = tokio::spawn(http::serve(listener, router, stop.clone()));
    Ok(SimServer {
        sim,
        addr: local,
        stop,
        task: Some(task),
    })
}

fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .merge(entra::routes())
        .merge(powerbi::routes(sim.clone()))
        .merge(fabric::routes(sim.clone()))
        .merge(arm::routes(sim.clone()))
        .merge(flow::routes())
        .merge(hooks::routes())
        .merge(introspect::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            sim.clone(),
            faults::inject,
        ))
        .layer(axum::middleware::from_fn_with_state(
            sim.clone(),
            http::record,
        ))
        .with_state(sim)
}

/// Unknown paths: each API's own 404 shape.
async fn not_found(uri: Uri) -> Response {
    let path = uri.path();
    if path.starts_with("/v1.0/") {
        let mut r = http::pbi_not_found();
        http::add_pbi_headers(&mut r);
        r
    } else if path.starts_with("/subscriptions/") {
        http::arm_error(
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            "The resource type could not be found in the namespace for api version '2023-11-01'.",
        )
    } else if path.starts_with("/v1/") {
        http::fabric_error(
            StatusCode::NOT_FOUND,
            "EntityNotFound",
            "The requested resource could not be found",
        )
    } else {
        http::empty(StatusCode::NOT_FOUND)
    }
}

impl SimServer {
    /// `http://127.0.0.1:PORT`: the Power BI, Fabric and authority base URL at once.
    pub fn base_url(&self) -> String {
        self.sim.cfg.base_url.clone()
    }

    /// The strict rules the profile relaxed (docs/simulator.md, "Strict rules").
    pub fn relaxed_rules(&self) -> Vec<Rule> {
        Rule::ALL
            .into_iter()
            .filter(|r| !self.sim.cfg.rules.holds(*r))
            .collect()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The complete SAS URL of a flow, with its valid `sig` (empty when the flow is unknown).
    pub fn flow_url(&self, flow: &str) -> String {
        let world = self.sim.lock();
        world
            .flows
            .iter()
            .find(|f| f.name == flow)
            .map(|f| {
                if f.oauth {
                    // A trigger restricted to the tenant's users has no SAS in its URL.
                    return format!(
                        "{}/workflows/{}/triggers/manual/paths/invoke?api-version=2016-06-01",
                        self.sim.cfg.base_url, f.id
                    );
                }
                format!(
                    "{}/workflows/{}/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={}",
                    self.sim.cfg.base_url, f.id, f.sig
                )
            })
            .unwrap_or_default()
    }

    /// `{base}/hooks/{hook}`.
    pub fn hook_url(&self, hook: &str) -> String {
        format!(
            "{}/hooks/{}",
            self.sim.cfg.base_url,
            crate::secret::encode_component(hook)
        )
    }

    /// The tenant the token endpoint accepts.
    pub fn tenant_id(&self) -> String {
        self.sim.cfg.credentials.tenant_id.clone()
    }

    /// The client id the token endpoint accepts.
    pub fn client_id(&self) -> String {
        self.sim.cfg.credentials.client_id.clone()
    }

    /// The client secret the token endpoint accepts.
    pub fn client_secret(&self) -> String {
        self.sim.cfg.credentials.client_secret.clone()
    }

    /// The value the App Service identity endpoint (`{base}/msi/token`) expects in
    /// `X-IDENTITY-HEADER` (what the platform puts in `IDENTITY_HEADER`).
    pub fn identity_header(&self) -> String {
        self.sim.cfg.credentials.identity_header.clone()
    }

    /// The subject of the app's federated identity credential.
    pub fn federated_subject(&self) -> String {
        self.sim.cfg.credentials.federated.subject.clone()
    }

    /// A federated token for `subject`, issued by the simulator as the platform's OIDC
    /// issuer (what GitHub Actions / Azure DevOps / AKS write to `AZURE_FEDERATED_TOKEN_FILE`),
    /// valid `lifetime_secs` from now (negative: already expired).
    pub fn federated_token(&self, subject: &str, lifetime_secs: i64) -> String {
        entra::federated_token(&self.sim, subject, lifetime_secs)
    }

    /// The managed identity's client id (IMDS `client_id`).
    pub fn managed_identity_client_id(&self) -> String {
        self.sim.cfg.credentials.managed_identity_client_id.clone()
    }

    /// A valid user token for `scope` (`https://analysis.windows.net/powerbi/api/.default` or
    /// `https://api.fabric.microsoft.com/.default`), as if given in `PBIBATCH_ACCESS_TOKEN`.
    /// `None` for an unknown scope.
    pub fn user_token(&self, scope: &str) -> Option<String> {
        let resource = scope.strip_suffix(".default").unwrap_or(scope);
        let audience = Audience::from_resource(resource)?;
        Some(entra::mint(
            &self.sim,
            audience,
            Principal::User,
            "sim-user",
        ))
    }

    /// A user token that both the Power BI and the Fabric API accept: what `run --simulate`
    /// gives a connection with a static `access_token`, whose real audience it cannot know.
    pub fn user_token_for_any_audience(&self) -> String {
        let token = entra::mint(&self.sim, Audience::PowerBi, Principal::User, "sim-user");
        self.sim.lock().any_audience.insert(token.clone());
        token
    }

    /// Counters: per resource triggers / polls / cancels, tokens issued, faults served.
    pub fn counters(&self) -> Counters {
        self.sim.counters()
    }

    /// Every request received so far (same data as `GET /_sim/requests`).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.sim.requests()
    }

    /// The ids the simulator gave a workspace and its first item of that name, for tests:
    /// `(workspace_id, item_id)`; `item` may be empty for the workspace alone.
    pub fn ids(&self, workspace: &str, item: &str) -> Option<(String, String)> {
        let world = self.sim.lock();
        let ws = world.workspaces.iter().position(|w| w.name == workspace)?;
        let ws_id = world.workspaces[ws].id.to_string();
        if item.is_empty() {
            return Some((ws_id, String::new()));
        }
        let it = world
            .items
            .iter()
            .find(|i| i.workspace == ws && i.name == item)?;
        Some((ws_id, it.id.to_string()))
    }

    /// The GUID of an item by kind (`dataset`, `dataflow`, `fabric_dataflow`, `report`,
    /// `item`, as in [`resource_key`]), workspace name and item name; unlike
    /// [`SimServer::ids`] it tells a report from the dataset of the same name.
    pub fn item_id(&self, kind: &str, workspace: &str, name: &str) -> Option<String> {
        let key = resource_key(kind, workspace, name);
        let world = self.sim.lock();
        world
            .items
            .iter()
            .find(|i| i.counter_key == key)
            .map(|i| i.id.to_string())
    }

    /// Arms a targeted fault: the rule's Nth matching request from now gets its fault
    /// (faults.rs). Each rule fires once.
    pub fn arm_fault(&self, rule: FaultRule) {
        self.sim.faults.arm(rule);
    }

    /// Forgets the armed rules that have not fired.
    pub fn disarm_faults(&self) {
        self.sim.faults.disarm_all();
    }

    /// Ends every [`Fault::HoldBefore`] / [`Fault::HoldAfter`] in progress; `abandoned`
    /// closes their connections (the client was killed meanwhile) instead of going on.
    pub fn release_holds(&self, abandoned: bool) {
        self.sim.faults.release(abandoned);
    }

    /// Every exchange so far, in arrival order, with its fault, status and the runs it started.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.sim.faults.journal()
    }

    /// Every run the service knows (scheduled ones included) and how it stands now.
    pub fn runs(&self) -> Vec<RunRecord> {
        faults::runs(&self.sim)
    }

    /// Milliseconds of simulated time since the simulator started (the clock of
    /// [`Exchange::at_ms`] and [`RunRecord::created_ms`]).
    pub fn elapsed_ms(&self) -> u64 {
        self.sim.elapsed_ms()
    }

    /// Stops accepting, closes connections and waits for the server task.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// `pbibatch sim serve`: prints the URLs and sample credentials, serves until Ctrl-C.
pub(crate) async fn serve_command(
    addr: &str,
    profile: Option<&std::path::Path>,
) -> Result<(), SimError> {
    let addr: SocketAddr = addr.parse().map_err(|e| SimError::Bind {
        addr: addr.to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e}")),
    })?;
    let profile = match profile {
        Some(path) => Profile::load(path)?,
        None => Profile::default(),
    };
    let workspaces = profile.workspaces.len();
    let items: usize = profile
        .workspaces
        .values()
        .map(|w| {
            w.datasets.len()
                + w.dataflows.len()
                + w.fabric_dataflows.len()
                + w.reports.len()
                + w.items.len()
        })
        .sum();
    let flows: Vec<String> = profile.flows.keys().cloned().collect();
    let hooks: Vec<String> = profile.hooks.keys().cloned().collect();
    let server = start(profile, addr).await?;
    let base = server.base_url();
    let mut out = String::new();
    out.push_str(&format!("pbibatch simulator listening on {base}\n\n"));
    for rule in server.relaxed_rules() {
        out.push_str(&format!(
            "  simulator: relaxed rule {} (the real service enforces it)\n\n",
            rule.name()
        ));
    }
    if workspaces == 0 {
        out.push_str(
            "  No workspaces: pass --profile FILE to declare some (docs/simulator.md).\n\n",
        );
    } else {
        out.push_str(&format!(
            "  Estate: {workspaces} workspace(s), {items} item(s)\n\n"
        ));
    }
    out.push_str(&format!("  Power BI REST   {base}/v1.0/myorg\n"));
    out.push_str(&format!("  Fabric REST     {base}/v1\n"));
    out.push_str(&format!(
        "  Entra token     {base}/{}/oauth2/v2.0/token\n",
        server.tenant_id()
    ));
    out.push_str(&format!(
        "  IMDS            {base}/metadata/identity/oauth2/token\n"
    ));
    out.push_str(&format!(
        "  Introspection   {base}/_sim/requests  {base}/_sim/counters\n"
    ));
    for flow in &flows {
        out.push_str(&format!("  Flow {flow}: {}\n", server.flow_url(flow)));
    }
    for hook in &hooks {
        out.push_str(&format!("  Hook {hook}: {}\n", server.hook_url(hook)));
    }
    out.push_str("\nUse it from another shell:\n\n");
    out.push_str(&format!("  export PBIBATCH_POWERBI_URL={base}\n"));
    out.push_str(&format!("  export PBIBATCH_FABRIC_URL={base}\n"));
    out.push_str(&format!("  export PBIBATCH_AUTHORITY_URL={base}\n"));
    out.push_str(&format!(
        "  export AZURE_TENANT_ID={}\n",
        server.tenant_id()
    ));
    out.push_str(&format!(
        "  export AZURE_CLIENT_ID={}\n",
        server.client_id()
    ));
    out.push_str(&format!(
        "  export AZURE_CLIENT_SECRET={}\n",
        server.client_secret()
    ));
    out.push_str("\nPress Ctrl-C to stop.\n");
    // The banner is best effort: a closed stdout does not stop the simulator.
    let _ = crate::stdout::write(&out);
    let _ = tokio::signal::ctrl_c().await;
    server.shutdown().await;
    Ok(())
}

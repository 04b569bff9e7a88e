//! Where the credentials and the endpoints come from: a job's `connections:` (environment
//! resolved), the implicit `default` connection (AZURE_* / PBIBATCH_ACCESS_TOKEN), or the
//! in-process simulator (`--simulate`, which shares its setup with `run --simulate`).

use std::path::Path;

use indexmap::IndexMap;

use super::DiscoverError;
use crate::error::Error;
use crate::job::interp::substitute_env;
use crate::job::model::{Connection, Credentials, Job};
use crate::job::{DiagFormat, Diagnostics};
use crate::powerbi::{ClientConfig, PowerBiClient};
use crate::secret::Secret;
use crate::sim::{Profile, SimServer};

/// Where `discover` and `auth check` get their credentials and endpoints.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TargetOptions<'a> {
    /// Connections come from this job file's `connections:` (else the implicit `default`).
    pub(crate) job: Option<&'a Path>,
    /// Only this connection of the job (`default` without a job).
    pub(crate) connection: Option<&'a str>,
    /// The built-in simulator instead of the services.
    pub(crate) simulate: bool,
    /// The simulator's profile (the demo estate when `None`).
    pub(crate) sim_profile: Option<&'a Path>,
}

/// A client ready to call, the connection to use, and the simulator behind it, if any.
pub(crate) struct Target {
    pub(crate) client: PowerBiClient,
    pub(crate) connection: String,
    pub(crate) connections: IndexMap<String, Connection>,
    pub(crate) sim: Option<SimServer>,
}

impl Target {
    /// The client `discover` uses: `--simulate`, else `--job`'s connection, else the
    /// implicit default connection from the environment.
    pub(crate) async fn for_discover(args: &TargetOptions<'_>) -> Result<Target, Error> {
        let connection = args.connection.unwrap_or("default").to_string();
        let only = Some(connection.as_str());
        if args.job.is_none() && connection != "default" {
            return Err(DiscoverError::ConnectionNeedsJob.into());
        }
        if args.simulate {
            let conns = match args.job {
                Some(path) => pick(job_connections(path)?, only)?,
                None => default_only(),
            };
            return Target::simulated(args.sim_profile, conns, connection).await;
        }
        let conns = match args.job {
            Some(path) => resolve_all(pick(job_connections(path)?, only)?)?,
            None => resolve_all(env_default())?,
        };
        Target::live(conns, connection)
    }

    /// The client `auth check` uses: every connection of `job` (`--job`, loaded; or only
    /// `--connection`), else the implicit default connection; on the simulator with
    /// `--simulate`.
    pub(crate) async fn for_auth_check(
        args: &TargetOptions<'_>,
        job: Option<&Job>,
    ) -> Result<Target, Error> {
        let conns = match job {
            Some(job) => pick(job.connections.clone(), args.connection)?,
            None => {
                if args.connection.is_some_and(|c| c != "default") {
                    return Err(DiscoverError::ConnectionNeedsJob.into());
                }
                env_default()
            }
        };
        if args.simulate {
            Target::simulated(args.sim_profile, conns, String::new()).await
        } else {
            Target::live(resolve_all(conns)?, String::new())
        }
    }

    /// A client for the real services (bases from `PBIBATCH_*_URL` when set).
    pub(super) fn live(
        connections: IndexMap<String, Connection>,
        connection: String,
    ) -> Result<Target, Error> {
        let config = ClientConfig::try_from_env(Default::default())?;
        let client = PowerBiClient::new(config, connections.clone())?;
        Ok(Target {
            client,
            connection,
            connections,
            sim: None,
        })
    }

    /// A simulator started in-process for `profile` (the demo estate when `None`); see
    /// [`Target::on_simulator`] for the credentials.
    pub(super) async fn simulated(
        profile: Option<&Path>,
        connections: IndexMap<String, Connection>,
        connection: String,
    ) -> Result<Target, Error> {
        let profile = match profile {
            Some(path) => Profile::load(path)?,
            None => super::demo_profile(),
        };
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let sim = crate::sim::start(profile, addr)
            .await
            .map_err(Error::SimStart)?;
        Self::on_simulator(sim, connections, connection)
    }

    /// A target on a simulator already started; every connection gets credentials the
    /// simulator accepts, of the same kind of identity (a user stays a user), as `run
    /// --simulate` gives them.
    pub(super) fn on_simulator(
        sim: crate::sim::SimServer,
        mut connections: IndexMap<String, Connection>,
        connection: String,
    ) -> Result<Target, Error> {
        let config = sim
            .client_config()
            .map_err(|e| Error::Internal(format!("the simulator's address is not a URL: {e}")))?;
        for conn in connections.values_mut() {
            sim.simulate_credentials(&mut conn.credentials);
        }
        let client = PowerBiClient::new(config, connections.clone())?;
        Ok(Target {
            client,
            connection,
            connections,
            sim: Some(sim),
        })
    }

    /// Stops the simulator, if one was started.
    pub(crate) async fn shutdown(self) {
        if let Some(sim) = self.sim {
            sim.shutdown().await;
        }
    }
}

fn print_diagnostics(diags: &Diagnostics) {
    let color = crate::term::color_on_stderr();
    eprint!("{}", diags.render(DiagFormat::Human, color));
}

/// The `connections:` of a job file (with the implicit `default`), unresolved.
pub(crate) fn job_connections(path: &Path) -> Result<IndexMap<String, Connection>, Error> {
    load_job(path).map(|job| job.connections)
}

/// A job file, validated (its diagnostics printed when it is not valid).
pub(crate) fn load_job(path: &Path) -> Result<Job, Error> {
    match crate::job::load(path, &[]) {
        Ok(loaded) => Ok(loaded.job),
        Err(diags) => {
            print_diagnostics(&diags);
            Err(Error::Reported)
        }
    }
}

/// Only connection `only` (when given) of `all`; an unknown name is bad input.
pub(crate) fn pick(
    all: IndexMap<String, Connection>,
    only: Option<&str>,
) -> Result<IndexMap<String, Connection>, Error> {
    let Some(name) = only else {
        return Ok(all);
    };
    match all.get(name) {
        Some(c) => Ok(IndexMap::from([(name.to_string(), c.clone())])),
        None => Err(DiscoverError::UnknownConnection {
            name: name.to_string(),
            known: all
                .keys()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", "),
        }
        .into()),
    }
}

/// The implicit `default` connection as the environment defines it, unresolved.
pub(crate) fn env_default() -> IndexMap<String, Connection> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let conn = crate::job::validate::implicit_default(&env);
    IndexMap::from([("default".to_string(), conn)])
}

/// A `default` connection whose credentials the simulator replaces.
fn default_only() -> IndexMap<String, Connection> {
    IndexMap::from([(
        "default".to_string(),
        Connection {
            name: "default".into(),
            cloud: Default::default(),
            credentials: Credentials::ClientSecret {
                tenant_id: String::new(),
                client_id: String::new(),
                client_secret: Secret::new(""),
            },
            picked_because: None,
        },
    )])
}

/// Resolves `${env.X}` in every connection; every missing variable is reported at once.
pub(crate) fn resolve_all(
    connections: IndexMap<String, Connection>,
) -> Result<IndexMap<String, Connection>, Error> {
    let lookup = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut missing: Vec<(String, String)> = Vec::new();
    let mut out = IndexMap::new();
    for (name, conn) in connections {
        let mut miss = Vec::new();
        let resolved = resolve_connection(&conn, &lookup, &mut miss);
        for m in miss {
            if !missing.iter().any(|(v, _)| *v == m) {
                missing.push((m, name.clone()));
            }
        }
        out.insert(name, resolved);
    }
    if missing.is_empty() {
        return Ok(out);
    }
    Err(DiscoverError::NoCredentials { missing }.into())
}

/// `conn` with its `${env.X}` references replaced through `lookup`.
pub(crate) fn resolve_connection(
    conn: &Connection,
    lookup: &dyn Fn(&str) -> Option<String>,
    missing: &mut Vec<String>,
) -> Connection {
    let mut s = |v: &str| substitute_env(v, lookup, missing);
    let credentials = match &conn.credentials {
        Credentials::ClientSecret {
            tenant_id,
            client_id,
            client_secret,
        } => Credentials::ClientSecret {
            tenant_id: s(tenant_id),
            client_id: s(client_id),
            client_secret: Secret::new(s(client_secret.expose())),
        },
        Credentials::AccessToken { access_token } => Credentials::AccessToken {
            access_token: Secret::new(s(access_token.expose())),
        },
        Credentials::ClientCertificate {
            tenant_id,
            client_id,
            certificate_path,
        } => Credentials::ClientCertificate {
            tenant_id: s(tenant_id),
            client_id: s(client_id),
            certificate_path: s(certificate_path),
        },
        Credentials::WorkloadIdentity {
            tenant_id,
            client_id,
            token_file,
        } => Credentials::WorkloadIdentity {
            tenant_id: s(tenant_id),
            client_id: s(client_id),
            token_file: s(token_file),
        },
        Credentials::ManagedIdentity { client_id } => Credentials::ManagedIdentity {
            client_id: client_id.as_deref().map(&mut s),
        },
        Credentials::AzureCli { tenant_id } => Credentials::AzureCli {
            tenant_id: tenant_id.as_deref().map(&mut s),
        },
    };
    Connection {
        name: conn.name.clone(),
        cloud: conn.cloud,
        credentials,
        picked_because: conn.picked_because.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_resolve_every_reference_and_report_misses() {
        let conn = Connection {
            name: "default".into(),
            cloud: Default::default(),
            credentials: Credentials::ClientSecret {
                tenant_id: "${env.T}".into(),
                client_id: "app".into(),
                client_secret: Secret::new("${env.S}"),
            },
            picked_because: None,
        };
        let lookup = |n: &str| (n == "T").then(|| "tenant".to_string());
        let mut missing = Vec::new();
        let r = resolve_connection(&conn, &lookup, &mut missing);
        assert_eq!(missing, ["S"]);
        let Credentials::ClientSecret { tenant_id, .. } = r.credentials else {
            panic!("client secret kept");
        };
        assert_eq!(tenant_id, "tenant");
    }
}

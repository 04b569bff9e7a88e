//! Credentials as tenants use them: certificate, workload identity federation, the App
//! Service / Container Apps identity endpoint and the Azure CLI, each picked up from the
//! environment variables Microsoft's libraries read (or declared in `connections:`), each run
//! end to end against the simulator (`auth check` and `run`), and none of their secrets
//! written anywhere.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use pbibatch::job::model::{Cloud, Connection, Credentials};
use pbibatch::powerbi::ClientConfig;
use pbibatch::powerbi::auth::{Audience, TokenCache};
use pbibatch::powerbi::http::Http;
use pbibatch::sim::SimServer;

use crate::common::{pbibatch, repo, texts};
use crate::sim_support::{FABRIC_SCOPE, PBI_SCOPE, start};

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/auth").join(name)
}

/// A profile whose app has `tests/fixtures/auth/test-only-cert.pem` registered, with one
/// workspace and dataset.
fn profile_with_certificate() -> String {
    let pem = std::fs::read_to_string(fixture("test-only-cert.pem")).unwrap();
    let cert: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .map(|l| format!("      {l}\n"))
        .collect();
    format!(
        "credentials:\n  certificates:\n    - |\n{cert}workspaces:\n  WS:\n    datasets:\n      Model: {{ duration: 50ms }}\n"
    )
}

const WORKSPACE: &str = "workspaces:\n  WS:\n    datasets:\n      Model: { duration: 50ms }\n";

const JOB: &str = "version: 1\nname: auth_job\nsteps:\n  model: { type: dataset, workspace: WS, dataset: Model }\n";

fn urls(sim: &SimServer) -> Vec<(&'static str, String)> {
    vec![
        ("PBIBATCH_POWERBI_URL", sim.base_url()),
        ("PBIBATCH_FABRIC_URL", sim.base_url()),
        ("PBIBATCH_AUTHORITY_URL", sim.base_url()),
    ]
}

/// Runs `pbibatch args` in `dir` with `env`, off the async runtime.
async fn pbibatch_in(dir: &Path, env: &[(&'static str, String)], args: &[&str]) -> Output {
    let mut cmd = pbibatch(dir);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// `auth check` then `run` (report, JUnit and state in `dir`), both expected to succeed;
/// then every byte pbibatch wrote (stdout, stderr, report, JUnit, state store) is searched
/// for `secrets` and for every token and assertion the simulator saw.
async fn check_and_run(
    sim: &SimServer,
    dir: &Path,
    env: &[(&'static str, String)],
    auth_args: &[&str],
    kind: &str,
    picked: &str,
    secrets: &[String],
) {
    let mut args = vec!["auth", "check"];
    args.extend_from_slice(auth_args);
    let out = pbibatch_in(dir, env, &args).await;
    let (check_out, check_err) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{check_out}\n{check_err}");
    assert!(
        check_out.contains(&format!("connection `default` ({kind}): ok")),
        "{check_out}"
    );
    assert!(check_out.contains(picked), "{check_out}");
    assert_eq!(
        check_out.matches("token acquired, expires ").count(),
        2,
        "{check_out}"
    );

    let out = pbibatch_in(
        dir,
        env,
        &[
            "run",
            "job.yaml",
            "--report",
            "report.json",
            "--junit",
            "junit.xml",
            "--log-format",
            "json",
            "--state",
            "state.db",
        ],
    )
    .await;
    let (run_out, run_err) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{run_out}\n{run_err}");
    let report = std::fs::read_to_string(dir.join("report.json")).unwrap();
    assert!(report.contains("\"succeeded\""), "{report}");

    let mut written: Vec<(String, Vec<u8>)> = vec![
        ("auth check stdout".into(), check_out.into_bytes()),
        ("auth check stderr".into(), check_err.into_bytes()),
        ("run stdout".into(), run_out.into_bytes()),
        ("run stderr".into(), run_err.into_bytes()),
    ];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            written.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    let mut all = secrets.to_vec();
    for r in sim.requests() {
        if let Some(bearer) = r
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
        {
            all.push(bearer.to_string());
        }
        for (k, v) in url::form_urlencoded::parse(r.body.as_bytes()) {
            if k == "client_assertion" || k == "client_secret" {
                all.push(v.into_owned());
            }
        }
    }
    assert!(
        all.len() > secrets.len(),
        "tokens were seen by the simulator"
    );
    for secret in &all {
        // Any 24-character piece is enough to give a long secret away.
        let piece = if secret.len() < 48 {
            secret.as_str()
        } else {
            &secret[secret.len() / 2..secret.len() / 2 + 24]
        };
        for (place, bytes) in &written {
            assert!(
                !bytes.windows(piece.len()).any(|w| w == piece.as_bytes()),
                "a secret ({}...) was written to {place}",
                &piece[..6]
            );
        }
    }
}

/// The private key's base64 lines of a PEM file (what must never be written).
fn private_key_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .filter(|l| l.len() >= 48)
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_azure_client_certificate_path_runs_end_to_end() {
    let sim = start(&profile_with_certificate()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.yaml"), JOB).unwrap();
    let cert = fixture("test-only-cert.pem");
    let mut env = urls(&sim);
    env.push(("AZURE_TENANT_ID", sim.tenant_id()));
    env.push(("AZURE_CLIENT_ID", sim.client_id()));
    env.push(("AZURE_CLIENT_CERTIFICATE_PATH", cert.display().to_string()));
    check_and_run(
        &sim,
        dir.path(),
        &env,
        &[],
        "client certificate",
        "AZURE_CLIENT_CERTIFICATE_PATH are set",
        &private_key_lines(&cert),
    )
    .await;
    // Every token request carried a signed assertion, never a secret.
    let token_requests: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/oauth2/v2.0/token"))
        .collect();
    assert!(!token_requests.is_empty());
    for r in token_requests {
        assert!(
            r.body.contains(
                "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
            ),
            "{}",
            r.body
        );
        assert!(!r.body.contains("client_secret"), "{}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_certificate_is_refused_with_aadsts700027_and_explained() {
    let sim = start(&profile_with_certificate()).await;
    let dir = tempfile::tempdir().unwrap();
    let other = fixture("test-only-other-cert.pem");
    let mut env = urls(&sim);
    env.push(("AZURE_TENANT_ID", sim.tenant_id()));
    env.push(("AZURE_CLIENT_ID", sim.client_id()));
    env.push(("AZURE_CLIENT_CERTIFICATE_PATH", other.display().to_string()));
    let out = pbibatch_in(dir.path(), &env, &["auth", "check"]).await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("(client certificate): FAILED"), "{stdout}");
    assert!(stdout.contains("AADSTS700027"), "{stdout}");
    assert!(stdout.contains("The key was not found"), "{stdout}");
    assert!(
        stdout.contains("what to do: Entra ID does not accept the client assertion's signature"),
        "{stdout}"
    );
    for line in private_key_lines(&other) {
        assert!(!stdout.contains(&line) && !stderr.contains(&line));
    }
    assert_eq!(sim.counters().tokens_issued, 0);

    // A missing file is said in plain words before anything is sent.
    env.pop();
    env.push((
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "/nonexistent/cert.pem".into(),
    ));
    let out = pbibatch_in(dir.path(), &env, &["auth", "check"]).await;
    let (stdout, _) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("cannot read the certificate file /nonexistent/cert.pem"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federated_token_file_runs_end_to_end() {
    let sim = start(WORKSPACE).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.yaml"), JOB).unwrap();
    // Outside `dir`: the token file is the platform's, not something pbibatch wrote.
    let platform = tempfile::tempdir().unwrap();
    let token_file = platform.path().join("azure-identity-token");
    let federated = sim.federated_token(&sim.federated_subject(), 3600);
    std::fs::write(&token_file, &federated).unwrap();
    let mut env = urls(&sim);
    env.push(("AZURE_TENANT_ID", sim.tenant_id()));
    env.push(("AZURE_CLIENT_ID", sim.client_id()));
    env.push((
        "AZURE_FEDERATED_TOKEN_FILE",
        token_file.display().to_string(),
    ));
    check_and_run(
        &sim,
        dir.path(),
        &env,
        &[],
        "workload identity federation",
        "AZURE_FEDERATED_TOKEN_FILE are set",
        &[federated],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federated_token_for_another_subject_is_refused_and_explained() {
    let sim = start(WORKSPACE).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    let wrong = sim.federated_token("repo:Contoso/nightly-refresh:ref:refs/heads/main", 3600);
    std::fs::write(&token_file, &wrong).unwrap();
    let mut env = urls(&sim);
    env.push(("AZURE_TENANT_ID", sim.tenant_id()));
    env.push(("AZURE_CLIENT_ID", sim.client_id()));
    env.push((
        "AZURE_FEDERATED_TOKEN_FILE",
        token_file.display().to_string(),
    ));
    let out = pbibatch_in(dir.path(), &env, &["auth", "check"]).await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("AADSTS700213"), "{stdout}");
    assert!(
        stdout.contains("what to do: no federated credential of the app matches"),
        "{stdout}"
    );
    assert!(!stdout.contains(&wrong) && !stderr.contains(&wrong));

    // An expired token (the platform stopped rotating the file).
    let expired = sim.federated_token(&sim.federated_subject(), -60);
    std::fs::write(&token_file, &expired).unwrap();
    let out = pbibatch_in(dir.path(), &env, &["auth", "check"]).await;
    let (stdout, _) = texts(&out);
    assert!(stdout.contains("AADSTS700024"), "{stdout}");
    assert!(stdout.contains("validity period"), "{stdout}");
    assert_eq!(sim.counters().tokens_issued, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_service_identity_endpoint_runs_end_to_end() {
    let sim = start(WORKSPACE).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.yaml"), JOB).unwrap();
    let mut env = urls(&sim);
    env.push(("IDENTITY_ENDPOINT", format!("{}/msi/token", sim.base_url())));
    env.push(("IDENTITY_HEADER", sim.identity_header()));
    check_and_run(
        &sim,
        dir.path(),
        &env,
        &[],
        "managed identity",
        "tokens from the App Service / Container Apps identity endpoint",
        &[sim.identity_header()],
    )
    .await;
    let calls: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path == "/msi/token")
        .collect();
    assert!(!calls.is_empty());
    for r in &calls {
        assert_eq!(
            r.header("x-identity-header"),
            Some(sim.identity_header().as_str())
        );
        let q = r.query.clone().unwrap_or_default();
        assert!(
            q.contains("api-version=2019-08-01") && q.contains("resource="),
            "{q}"
        );
    }
    assert!(
        !sim.requests()
            .iter()
            .any(|r| r.path.contains("/metadata/identity")),
        "IMDS is not asked when the platform gives an identity endpoint"
    );

    // A wrong header secret is refused and said.
    let mut env = urls(&sim);
    env.push(("IDENTITY_ENDPOINT", format!("{}/msi/token", sim.base_url())));
    env.push(("IDENTITY_HEADER", "not-the-header".into()));
    let out = pbibatch_in(dir.path(), &env, &["auth", "check"]).await;
    let (stdout, _) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("(managed identity): FAILED"), "{stdout}");
    assert!(stdout.contains("X-IDENTITY-HEADER"), "{stdout}");
    assert!(!stdout.contains("not-the-header"), "{stdout}");
}

/// A fake `az` on PATH that answers `get-access-token` with the simulator's user tokens
/// (`exit_with`: instead print this to stderr and exit 1), recording its arguments.
#[cfg(unix)]
fn fake_az(sim: &SimServer, bin: &Path, exit_with: Option<&str>) -> (String, String) {
    use std::os::unix::fs::PermissionsExt as _;
    let pbi = sim.user_token(PBI_SCOPE).unwrap();
    let fabric = sim.user_token(FABRIC_SCOPE).unwrap();
    let expires = chrono::Utc::now().timestamp() + 3600;
    let body = match exit_with {
        Some(err) => format!("echo \"{err}\" >&2\nexit 1\n"),
        None => format!(
            "case \"$*\" in\n  *analysis.windows.net*) t={pbi} ;;\n  *) t={fabric} ;;\nesac\nprintf '{{\"accessToken\":\"%s\",\"expiresOn\":\"2099-01-01 00:00:00.000000\",\"expires_on\":{expires},\"tokenType\":\"Bearer\"}}\\n' \"$t\"\n"
        ),
    };
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> \"{}\"\n{body}",
        bin.join("az-args").display()
    );
    let path = bin.join("az");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    (pbi, fabric)
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_azure_cli_login_runs_end_to_end() {
    let sim = start(WORKSPACE).await;
    let dir = tempfile::tempdir().unwrap();
    let job = "version: 1\nname: auth_job\nconnections:\n  default: { azure_cli: true, tenant_id: contoso.onmicrosoft.com }\nsteps:\n  model: { type: dataset, workspace: WS, dataset: Model }\n";
    std::fs::write(dir.path().join("job.yaml"), job).unwrap();
    let bin = tempfile::tempdir().unwrap();
    let (pbi, fabric) = fake_az(&sim, bin.path(), None);
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut env = urls(&sim);
    env.push(("PATH", path));
    check_and_run(
        &sim,
        dir.path(),
        &env,
        &["--job", "job.yaml"],
        "Azure CLI",
        "declared in the job's `connections:`; tokens from `az account get-access-token`",
        &[pbi, fabric],
    )
    .await;
    let args = std::fs::read_to_string(bin.path().join("az-args")).unwrap();
    assert!(
        args.contains(
            "account get-access-token --output json --resource https://analysis.windows.net/powerbi/api --tenant contoso.onmicrosoft.com"
        ),
        "{args}"
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_signed_out_azure_cli_is_explained() {
    let sim = start(WORKSPACE).await;
    let dir = tempfile::tempdir().unwrap();
    let job = "version: 1\nname: auth_job\nconnections:\n  default: { azure_cli: true }\nsteps:\n  model: { type: dataset, workspace: WS, dataset: Model }\n";
    std::fs::write(dir.path().join("job.yaml"), job).unwrap();
    let empty = tempfile::tempdir().unwrap();
    let mut env = urls(&sim);
    env.push(("PATH", empty.path().display().to_string()));
    let out = pbibatch_in(dir.path(), &env, &["auth", "check", "--job", "job.yaml"]).await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("the Azure CLI (`az`) is not installed or not on PATH"),
        "{stdout}"
    );

    fake_az(
        &sim,
        empty.path(),
        Some("ERROR: Please run 'az login' to setup account."),
    );
    let out = pbibatch_in(dir.path(), &env, &["auth", "check", "--job", "job.yaml"]).await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("the Azure CLI is not logged in (or its login expired): run `az login`"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_implicit_default_follows_microsofts_order() {
    let sim = start(&profile_with_certificate()).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(
        &token_file,
        sim.federated_token(&sim.federated_subject(), 3600),
    )
    .unwrap();
    let base = {
        let mut env = urls(&sim);
        env.push(("AZURE_TENANT_ID", sim.tenant_id()));
        env.push(("AZURE_CLIENT_ID", sim.client_id()));
        env
    };
    let with = |extra: &[(&'static str, String)]| {
        let mut env = base.clone();
        env.extend_from_slice(extra);
        env
    };
    let cert = (
        "AZURE_CLIENT_CERTIFICATE_PATH",
        fixture("test-only-cert.pem").display().to_string(),
    );
    let file = (
        "AZURE_FEDERATED_TOKEN_FILE",
        token_file.display().to_string(),
    );
    let secret = ("AZURE_CLIENT_SECRET", sim.client_secret());
    let identity = ("IDENTITY_ENDPOINT", format!("{}/msi/token", sim.base_url()));
    let header = ("IDENTITY_HEADER", sim.identity_header());
    let cases: Vec<(Vec<(&'static str, String)>, &str)> = vec![
        (
            with(&[secret.clone(), cert.clone(), file.clone()]),
            "client secret",
        ),
        (
            with(&[cert.clone(), file.clone(), identity.clone(), header.clone()]),
            "client certificate",
        ),
        (
            with(&[file.clone(), identity.clone(), header.clone()]),
            "workload identity federation",
        ),
        (
            vec![identity.clone(), header.clone()]
                .into_iter()
                .chain(urls(&sim))
                .collect(),
            "managed identity",
        ),
    ];
    for (env, kind) in cases {
        let out = pbibatch_in(dir.path(), &env, &["auth", "check"]).await;
        let (stdout, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(0), "{kind}: {stdout}\n{stderr}");
        assert!(
            stdout.contains(&format!("connection `default` ({kind}): ok")),
            "{stdout}"
        );
        assert!(
            stdout.contains("picked      implicit `default` connection: "),
            "{stdout}"
        );
    }
}

/// A token cache, HTTP client and configuration pointed at `sim`, with quick retries.
fn token_rig(sim: &SimServer) -> (TokenCache, Http, ClientConfig) {
    let mut cfg = crate::exec_support::sim_config(sim);
    cfg.imds_retry.delay = Duration::from_millis(5);
    cfg.imds_retry.gone_delay = Duration::from_millis(10);
    let http = Http::new(&cfg).unwrap();
    (TokenCache::default(), http, cfg)
}

fn connection(credentials: Credentials) -> Connection {
    Connection {
        name: "default".into(),
        cloud: Cloud::Public,
        credentials,
        picked_because: None,
    }
}

#[tokio::test]
async fn the_federated_token_file_is_read_again_at_each_token_request() {
    let sim = start(WORKSPACE).await;
    let (cache, http, cfg) = token_rig(&sim);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    let conn = connection(Credentials::WorkloadIdentity {
        tenant_id: sim.tenant_id(),
        client_id: sim.client_id(),
        token_file: file.display().to_string(),
    });
    let first = sim.federated_token(&sim.federated_subject(), 3600);
    std::fs::write(&file, &first).unwrap();
    let token = cache
        .token(&http, &cfg, &conn, Audience::PowerBi)
        .await
        .unwrap();
    // The platform rotates the file; a renewal must send what the file holds now.
    std::fs::write(&file, "not-a-jwt").unwrap();
    cache.invalidate("default", Audience::PowerBi, &token).await;
    let err = cache
        .token(&http, &cfg, &conn, Audience::PowerBi)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("AADSTS50027"), "{err}");
    let second = sim.federated_token(&sim.federated_subject(), 3600);
    std::fs::write(&file, &second).unwrap();
    cache
        .token(&http, &cfg, &conn, Audience::PowerBi)
        .await
        .unwrap();
    let sent: Vec<String> = sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/oauth2/v2.0/token"))
        .filter_map(|r| {
            url::form_urlencoded::parse(r.body.as_bytes())
                .find(|(k, _)| k == "client_assertion")
                .map(|(_, v)| v.into_owned())
        })
        .collect();
    assert_eq!(sent, [first, "not-a-jwt".to_string(), second]);
}

#[tokio::test]
async fn imds_410_404_429_and_5xx_are_retried_as_microsoft_clients_do() {
    let sim = start("credentials: { imds_failures: [410, 404, 429, 503, 500] }\n").await;
    let (cache, http, cfg) = token_rig(&sim);
    let conn = connection(Credentials::ManagedIdentity { client_id: None });
    cache
        .token(&http, &cfg, &conn, Audience::PowerBi)
        .await
        .expect("a token after IMDS's transient answers");
    let imds = sim
        .requests()
        .iter()
        .filter(|r| r.path == "/metadata/identity/oauth2/token")
        .count();
    assert_eq!(imds, 6);
    assert_eq!(sim.counters().tokens_issued, 1);
}

#[tokio::test]
async fn imds_retries_end_and_a_lasting_refusal_is_not_retried() {
    let sim = start("credentials: { imds_failures: [410, 410, 410, 410, 410, 410, 410] }\n").await;
    let (cache, http, cfg) = token_rig(&sim);
    let conn = connection(Credentials::ManagedIdentity { client_id: None });
    let err = cache
        .token(&http, &cfg, &conn, Audience::PowerBi)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("410"), "{err}");
    let count = |sim: &SimServer| {
        sim.requests()
            .iter()
            .filter(|r| r.path == "/metadata/identity/oauth2/token")
            .count()
    };
    assert_eq!(count(&sim), 1 + cfg.imds_retry.max_retries as usize);

    // An unknown user-assigned identity (400) is final.
    let sim = start("").await;
    let (cache, http, cfg) = token_rig(&sim);
    let conn = connection(Credentials::ManagedIdentity {
        client_id: Some("00000000-0000-0000-0000-000000000000".into()),
    });
    let err = cache
        .token(&http, &cfg, &conn, Audience::PowerBi)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("Identity not found"), "{err}");
    assert_eq!(count(&sim), 1);
}

/// A flow restricted to the tenant's users, a SAS one, and a workspace.
const FLOWS: &str = "flows:\n  Restricted: { oauth: true }\n  Open: {}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_restricted_flow_gets_a_flow_audience_token_end_to_end() {
    let sim = start(FLOWS).await;
    let dir = tempfile::tempdir().unwrap();
    let job = "version: 1\nname: flow_job\nsteps:\n  trigger: { type: sas_flow, url: \"${env.FLOW_URL}\", oauth: true, body: { a: 1 } }\n";
    std::fs::write(dir.path().join("job.yaml"), job).unwrap();
    let mut env = urls(&sim);
    env.push(("AZURE_TENANT_ID", sim.tenant_id()));
    env.push(("AZURE_CLIENT_ID", sim.client_id()));
    env.push(("AZURE_CLIENT_SECRET", sim.client_secret()));
    // Even a URL pasted with its SAS parameters is sent without them.
    let sas_url = {
        let open = sim.flow_url("Open");
        let restricted = sim.flow_url("Restricted");
        format!("{restricted}&{}", open.split_once('&').unwrap().1)
    };
    assert!(sas_url.contains("sig="));
    env.push(("FLOW_URL", sas_url));
    let out = pbibatch_in(
        dir.path(),
        &env,
        &[
            "run",
            "job.yaml",
            "--report",
            "report.json",
            "--state",
            "state.db",
        ],
    )
    .await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let scopes: Vec<String> = sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/oauth2/v2.0/token"))
        .filter_map(|r| {
            url::form_urlencoded::parse(r.body.as_bytes())
                .find(|(k, _)| k == "scope")
                .map(|(_, v)| v.into_owned())
        })
        .collect();
    assert_eq!(scopes, ["https://service.flow.microsoft.com//.default"]);
    let trigger: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/triggers/manual/paths/invoke"))
        .collect();
    assert_eq!(trigger.len(), 1);
    let q = trigger[0].query.clone().unwrap_or_default();
    assert!(
        !q.contains("sig=") && !q.contains("sp=") && !q.contains("sv="),
        "{q}"
    );
    let bearer = trigger[0]
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .expect("a bearer token")
        .to_string();
    let mut written = format!("{stdout}{stderr}");
    written.push_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap());
    let state = std::fs::read(dir.path().join("state.db")).unwrap();
    assert!(!written.contains(&bearer[bearer.len() / 2..]));
    assert!(
        !state
            .windows(24)
            .any(|w| w == &bearer.as_bytes()[bearer.len() / 2..bearer.len() / 2 + 24])
    );
}

#[tokio::test]
async fn flow_triggers_accept_only_what_their_policy_allows() {
    let sim = start(FLOWS).await;
    let http = crate::sim_support::client();
    let token = |scope: &'static str| {
        let http = http.clone();
        let url = format!("{}/{}/oauth2/v2.0/token", sim.base_url(), sim.tenant_id());
        let form = [
            ("client_id", sim.client_id()),
            ("client_secret", sim.client_secret()),
            ("grant_type", "client_credentials".to_string()),
            ("scope", scope.to_string()),
        ];
        async move {
            let v: serde_json::Value = http
                .post(url)
                .form(&form)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["access_token"].as_str().unwrap().to_string()
        }
    };
    let invoke = |url: String, bearer: Option<String>| {
        let http = http.clone();
        async move {
            let mut req = http.post(url).json(&serde_json::json!({}));
            if let Some(b) = bearer {
                req = req.bearer_auth(b);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            (
                status,
                body["error"]["code"].as_str().unwrap_or("").to_string(),
            )
        }
    };
    let restricted = sim.flow_url("Restricted");
    let flow = token("https://service.flow.microsoft.com//.default").await;
    assert_eq!(invoke(restricted.clone(), Some(flow.clone())).await.0, 202);
    // One slash: Entra issues aud `https://service.flow.microsoft.com`, which the trigger refuses.
    let one_slash = token("https://service.flow.microsoft.com/.default").await;
    let refused = (401, "MisMatchingOAuthClaims".to_string());
    assert_eq!(invoke(restricted.clone(), Some(one_slash)).await, refused);
    let pbi = token(PBI_SCOPE).await;
    assert_eq!(invoke(restricted.clone(), Some(pbi)).await, refused);
    assert_eq!(invoke(restricted.clone(), None).await, refused);
    let with_sas = format!(
        "{restricted}&{}",
        sim.flow_url("Open").split_once('&').unwrap().1
    );
    assert_eq!(invoke(with_sas, Some(flow.clone())).await, refused);
    // A bearer sent to a SAS trigger.
    assert_eq!(
        invoke(sim.flow_url("Open"), Some(flow)).await,
        (401, "DirectApiAuthorizationRequired".to_string())
    );
    assert_eq!(invoke(sim.flow_url("Open"), None).await.0, 202);
}

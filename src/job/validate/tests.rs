//! The model a valid file produces: defaults, aliases, long-form retries, secrets,
//! connections and overrides.

use std::time::Duration;

use crate::job::load_bytes;
use crate::job::model::{
    Cloud, CommitMode, Credentials, ExportFormat, Generation, HeaderValue, IfRunning, Job,
    NotifyOption, RefreshType, StepKind, TriggerRule,
};

const FULL: &str = r#"
version: 1
name: full
vars: { ws: "Data Admin", out: out }
connections:
  default: { tenant_id: t, client_id: c, client_secret: "${env.SECRET}" }
  mi: { managed_identity: { client_id: uami }, cloud: usgov }
  tok: { access_token: "${env.TOKEN}" }
workspaces: { admin: "${vars.ws}" }
defaults:
  timeout: 45m
  retries: { count: 3, backoff: 1m, max_backoff: 20m }
  poll_interval: 5s
  if_running: adopt
  connection: mi
concurrency: 7
pools: { p: 2 }
steps:
  flow:
    type: sas_flow
    url: ${env.FLOW_URL}
    headers: { Authorization: "Bearer x", Accept: application/json }
    wait_for: { workspace: admin, dataflow: Master }
  gen2:
    type: dataflow
    generation: 2
    workspace: admin
    dataflow: Ingest
    execute_option: skip_apply_changes
    connection: tok
  model:
    type: dataset
    workspace: 0c8d2b1e-0000-4000-8000-000000000001
    dataset: Sales
    depends_on: [flow, gen2]
    trigger: none_failed
    retries: 1
    retry_backoff: 10s
    pool: p
    tags: [nightly, sales]
    skip_if_fresh: 1h
    refresh:
      type: data_only
      commit_mode: partial_batch
      objects: [{ table: Fact, partition: "2025" }, { table: Dim }]
  pdf:
    type: report
    workspace: admin
    report: Book
    export: { format: pdf, path: "${vars.out}/book.pdf", pages: [P1] }
    depends_on: [model]
    continue_on_error: true
"#;

fn load(text: &str, overrides: &[(&str, &str)], env: &[(&str, &str)]) -> Job {
    let overrides: Vec<(String, String)> = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    match load_bytes("full.yaml", text.as_bytes(), &overrides, &lookup) {
        Ok(l) => l.job,
        Err(d) => panic!("{}", d.render(crate::job::DiagFormat::Short, false)),
    }
}

#[test]
fn defaults_aliases_and_long_form_retries() {
    let job = load(FULL, &[], &[]);
    assert_eq!(job.concurrency, 7);
    assert_eq!(job.pools["p"], 2);
    let flow = &job.steps["flow"];
    assert_eq!(flow.timeout, Duration::from_secs(45 * 60));
    assert_eq!(flow.retries, 3);
    assert_eq!(flow.retry_backoff, Duration::from_secs(60));
    assert_eq!(flow.max_backoff, Duration::from_secs(20 * 60));
    assert_eq!(flow.poll_interval, Duration::from_secs(5));
    assert_eq!(flow.if_running, IfRunning::Adopt);
    assert_eq!(flow.connection, "mi");
    let StepKind::SasFlow(s) = &flow.kind else {
        panic!("sas_flow")
    };
    assert_eq!(s.url.expose(), "${env.FLOW_URL}");
    assert_eq!(s.method, "POST");
    assert!(matches!(s.headers["Authorization"], HeaderValue::Secret(_)));
    assert!(matches!(&s.headers["Accept"], HeaderValue::Plain(v) if v == "application/json"));
    let w = s.wait_for.as_ref().unwrap();
    assert_eq!(
        (w.workspace.as_str(), w.dataflow.as_str()),
        ("Data Admin", "Master")
    );

    let model = &job.steps["model"];
    assert_eq!(model.retries, 1);
    assert_eq!(model.retry_backoff, Duration::from_secs(10));
    assert_eq!(model.max_backoff, Duration::from_secs(20 * 60));
    assert_eq!(model.trigger, TriggerRule::NoneFailed);
    assert_eq!(model.pool.as_deref(), Some("p"));
    assert_eq!(model.tags, ["nightly", "sales"]);
    assert_eq!(model.skip_if_fresh, Some(Duration::from_secs(3600)));
    let StepKind::Dataset(d) = &model.kind else {
        panic!("dataset")
    };
    assert_eq!(d.workspace, "0c8d2b1e-0000-4000-8000-000000000001");
    assert_eq!(d.notify, NotifyOption::NoNotification);
    let r = d.refresh.as_ref().unwrap();
    assert_eq!(r.refresh_type, Some(RefreshType::DataOnly));
    assert_eq!(r.commit_mode, Some(CommitMode::PartialBatch));
    assert_eq!(r.objects.len(), 2);
    assert_eq!(r.objects[0].partition.as_deref(), Some("2025"));
    assert_eq!(r.objects[1].partition, None);

    let StepKind::Dataflow(g) = &job.steps["gen2"].kind else {
        panic!("dataflow")
    };
    assert_eq!(g.generation, Generation::Gen2);
    assert_eq!(job.steps["gen2"].connection, "tok");

    let pdf = &job.steps["pdf"];
    assert!(pdf.continue_on_error);
    // `poll_interval` and `if_running` from `defaults:` do not apply to a report: it keeps
    // the built-in values.
    assert_eq!(pdf.poll_interval, Duration::from_secs(15));
    assert_eq!(pdf.if_running, IfRunning::Wait);
    let StepKind::Report(rep) = &pdf.kind else {
        panic!("report")
    };
    assert_eq!(rep.workspace, "Data Admin");
    assert_eq!(rep.export.format, ExportFormat::Pdf);
    assert_eq!(rep.export.path.to_str(), Some("out/book.pdf"));
    assert_eq!(rep.export.pages, ["P1"]);
}

#[test]
fn connections_and_the_implicit_default() {
    let job = load(FULL, &[], &[]);
    assert!(matches!(
        &job.connections["mi"].credentials,
        Credentials::ManagedIdentity { client_id: Some(id) } if id == "uami"
    ));
    assert_eq!(job.connections["mi"].cloud, Cloud::Usgov);
    assert!(matches!(
        &job.connections["tok"].credentials,
        Credentials::AccessToken { access_token } if access_token.expose() == "${env.TOKEN}"
    ));

    let minimal = "version: 1\nname: m\nsteps:\n  a: { type: dataset, workspace: W, dataset: D }\n";
    let job = load(minimal, &[], &[]);
    assert!(matches!(
        &job.connections["default"].credentials,
        Credentials::ClientSecret { tenant_id, client_secret, .. }
            if tenant_id == "${env.AZURE_TENANT_ID}"
                && client_secret.expose() == "${env.AZURE_CLIENT_SECRET}"
    ));
    let job = load(minimal, &[], &[("PBIBATCH_ACCESS_TOKEN", "t")]);
    assert!(matches!(
        &job.connections["default"].credentials,
        Credentials::AccessToken { access_token }
            if access_token.expose() == "${env.PBIBATCH_ACCESS_TOKEN}"
    ));
    // Built-in defaults.
    let a = &job.steps["a"];
    assert_eq!(job.concurrency, 4);
    assert_eq!(a.timeout, Duration::from_secs(2 * 3600));
    assert_eq!(a.retries, 0);
    assert_eq!(a.retry_backoff, Duration::from_secs(30));
    assert_eq!(a.max_backoff, Duration::from_secs(600));
    assert_eq!(a.poll_interval, Duration::from_secs(15));
    assert_eq!(a.if_running, IfRunning::Wait);
    assert_eq!(a.trigger, TriggerRule::AllSuccess);
}

#[test]
fn var_overrides_replace_declared_values() {
    let job = load(FULL, &[("out", "/mnt/x")], &[]);
    let StepKind::Report(rep) = &job.steps["pdf"].kind else {
        panic!("report")
    };
    assert_eq!(rep.export.path.to_str(), Some("/mnt/x/book.pdf"));
    assert_eq!(job.vars["out"], "/mnt/x");
}

#[test]
fn validation_collects_every_problem_in_position_order() {
    let text = "version: 1\nname: m\nsteps:\n  b: { type: dataset, workspace: W, dataset: D, pool: nope, depends_on: [zz] }\n  a: { type: dataset, workspace: W, dataset: D, timeout: 0s }\n";
    let d = load_bytes("m.yaml", text.as_bytes(), &[], &|_| None).unwrap_err();
    let lines: Vec<(usize, usize)> = d
        .items()
        .iter()
        .filter_map(|i| i.position.map(|p| (p.line, p.column)))
        .collect();
    assert_eq!(lines, [(4, 55), (4, 74), (5, 58)]);
    assert!(d.has_errors());
}

#[test]
fn certificate_federated_and_azure_cli_connections() {
    let text = r#"
version: 1
name: kinds
connections:
  cert: { tenant_id: t, client_id: c, client_certificate_path: "${env.CERT}" }
  wif: { tenant_id: t, client_id: c, federated_token_file: /var/run/token }
  cli: { azure_cli: true, tenant_id: contoso.onmicrosoft.com }
steps:
  a: { type: dataset, workspace: W, dataset: D, connection: cert }
"#;
    let job = load(text, &[], &[]);
    assert!(matches!(
        &job.connections["cert"].credentials,
        Credentials::ClientCertificate { certificate_path, .. } if certificate_path == "${env.CERT}"
    ));
    assert!(matches!(
        &job.connections["wif"].credentials,
        Credentials::WorkloadIdentity { token_file, .. } if token_file == "/var/run/token"
    ));
    assert!(matches!(
        &job.connections["cli"].credentials,
        Credentials::AzureCli { tenant_id: Some(t) } if t == "contoso.onmicrosoft.com"
    ));
    assert!(job.connections["cert"].picked_because.is_none());

    let bad = r#"
version: 1
name: kinds
connections:
  cert: { client_id: c, client_certificate_path: c.pem }
  cli: { azure_cli: true, client_id: c }
  two: { azure_cli: true, federated_token_file: f, tenant_id: t, client_id: c }
steps:
  a: { type: dataset, workspace: W, dataset: D, connection: cert }
"#;
    let lookup = |_: &str| None;
    let Err(d) = load_bytes("bad.yaml", bad.as_bytes(), &[], &lookup) else {
        panic!("invalid connections accepted");
    };
    let short = d.render(crate::job::DiagFormat::Short, false);
    assert!(
        short.contains(
            "connection `cert` needs `tenant_id` and `client_id` with `client_certificate_path`"
        ),
        "{short}"
    );
    assert!(
        short.contains("`client_id` has no use with `azure_cli`"),
        "{short}"
    );
    assert!(
        short.contains("connection `two` sets more than one kind of credentials"),
        "{short}"
    );
}

#[test]
fn the_implicit_default_reads_microsofts_variables_in_their_order() {
    let minimal = "version: 1\nname: m\nsteps:\n  a: { type: dataset, workspace: W, dataset: D }\n";
    let ids = [("AZURE_TENANT_ID", "t"), ("AZURE_CLIENT_ID", "c")];
    let kind = |extra: &[(&str, &str)]| {
        let env: Vec<(&str, &str)> = ids.iter().chain(extra).copied().collect();
        let job = load(minimal, &[], &env);
        let d = &job.connections["default"];
        assert!(d.picked_because.is_some());
        d.credentials.kind()
    };
    let cert = ("AZURE_CLIENT_CERTIFICATE_PATH", "c.pem");
    let file = ("AZURE_FEDERATED_TOKEN_FILE", "/t");
    let endpoint = ("IDENTITY_ENDPOINT", "http://localhost:42356/msi/token");
    let header = ("IDENTITY_HEADER", "h");
    let secret = ("AZURE_CLIENT_SECRET", "s");
    assert_eq!(
        kind(&[secret, cert, file, endpoint, header]),
        "client secret"
    );
    assert_eq!(kind(&[cert, file, endpoint, header]), "client certificate");
    assert_eq!(
        kind(&[file, endpoint, header]),
        "workload identity federation"
    );
    assert_eq!(kind(&[endpoint, header]), "managed identity");
    assert_eq!(
        kind(&[("PBIBATCH_ACCESS_TOKEN", "x"), secret]),
        "access token"
    );
    // IMDS is never guessed: without any variable the client secret is expected.
    assert_eq!(kind(&[]), "client secret");
    // No warning about AZURE_CLIENT_SECRET when a certificate was picked.
    let lookup = |k: &str| match k {
        "AZURE_TENANT_ID" | "AZURE_CLIENT_ID" => Some("x".to_string()),
        "AZURE_CLIENT_CERTIFICATE_PATH" => Some("c.pem".to_string()),
        _ => None,
    };
    let loaded = load_bytes("m.yaml", minimal.as_bytes(), &[], &lookup).unwrap();
    let warnings = loaded.warnings.render(crate::job::DiagFormat::Short, false);
    assert!(!warnings.contains("AZURE_CLIENT_SECRET"), "{warnings}");
}

#[test]
fn a_sas_flow_with_oauth_takes_a_connection() {
    let text = r#"
version: 1
name: flow
connections:
  flows: { tenant_id: t, client_id: c, client_secret: s }
steps:
  f: { type: sas_flow, url: "https://x.example/w", oauth: true, connection: flows }
"#;
    let job = load(text, &[], &[]);
    let StepKind::SasFlow(f) = &job.steps["f"].kind else {
        panic!("sas_flow");
    };
    assert!(f.oauth);
    assert_eq!(job.steps["f"].connection, "flows");
    assert!(crate::job::needs_auth(&job.steps["f"].kind));

    let bad = r#"
version: 1
name: flow
connections:
  flows: { tenant_id: t, client_id: c, client_secret: s }
steps:
  f: { type: sas_flow, url: "https://x.example/w", connection: flows }
  h: { type: webhook, url: "https://x.example/h", oauth: true }
"#;
    let lookup = |_: &str| None;
    let Err(d) = load_bytes("bad.yaml", bad.as_bytes(), &[], &lookup) else {
        panic!("accepted");
    };
    let short = d.render(crate::job::DiagFormat::Short, false);
    assert!(
        short.contains("`connection` is not a key of a `sas_flow` step without `wait_for`"),
        "{short}"
    );
    assert!(
        short.contains("`oauth` is not a key of a `webhook` step"),
        "{short}"
    );
}

#[test]
fn skip_if_fresh_applies_to_every_step_with_a_run_history() {
    let ok = "version: 1\nname: f\nsteps:\n  g2: { type: dataflow, generation: 2, workspace: W, dataflow: D, skip_if_fresh: 1h }\n  flow: { type: sas_flow, url: 'https://prod.example.com/x', wait_for: { workspace: W, dataflow: G1 }, skip_if_fresh: 30m }\n";
    let job = load(ok, &[], &[]);
    assert_eq!(
        job.steps["g2"].skip_if_fresh,
        Some(Duration::from_secs(3600))
    );
    assert_eq!(
        job.steps["flow"].skip_if_fresh,
        Some(Duration::from_secs(1800))
    );
    // Without wait_for a flow has no history to read: the key means nothing there.
    let bad = "version: 1\nname: f\nsteps:\n  flow: { type: sas_flow, url: 'https://prod.example.com/x', skip_if_fresh: 30m }\n";
    let d = load_bytes("f.yaml", bad.as_bytes(), &[], &|_| None).unwrap_err();
    let text = d.render(crate::job::DiagFormat::Short, false);
    assert!(text.contains("skip_if_fresh"), "{text}");
    assert!(text.contains("wait_for"), "{text}");
}

#[test]
fn for_each_expands_one_step_per_value_and_links_dependents() {
    let job = load(
        r#"
version: 1
name: fan
vars: { regions: "emea, amer" }
steps:
  models:
    type: dataset
    workspace: W
    dataset: "Sales ${each.value}"
    for_each: [North America, EU]
  books:
    type: report
    workspace: W
    report: Book
    for_each: "${vars.regions}"
    export: { format: PDF, path: "out/${each.key}-${each.value}.pdf" }
    depends_on: [models]
  after:
    type: webhook
    url: https://h.example.com/x
    depends_on: [books]
"#,
        &[("regions", "apac")],
        &[],
    );
    let ids: Vec<&str> = job.steps.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        [
            "models[North_America]",
            "models[EU]",
            "books[apac]",
            "after"
        ]
    );
    let StepKind::Dataset(d) = &job.steps["models[North_America]"].kind else {
        panic!("a dataset");
    };
    assert_eq!(d.dataset, "Sales North America");
    let StepKind::Report(r) = &job.steps["books[apac]"].kind else {
        panic!("a report");
    };
    assert_eq!(r.export.path, std::path::Path::new("out/apac-apac.pdf"));
    assert_eq!(
        job.steps["books[apac]"].depends_on,
        ["models[North_America]", "models[EU]"]
    );
    assert_eq!(job.steps["after"].depends_on, ["books[apac]"]);
    assert_eq!(job.fan_out_of("models[EU]"), Some(("models", "EU")));
    assert_eq!(job.fan_out_of("after"), None);
    assert_eq!(
        job.fan_outs["books"].source,
        crate::job::model::FanOutSource::Var {
            name: "regions".into()
        }
    );
}

#[test]
fn a_problem_of_a_fanned_out_step_is_reported_once() {
    let text = "version: 1\nname: fan\nsteps:\n  a:\n    type: dataset\n    workspace: W\n    dataset: \"${each.value}\"\n    pool: nope\n    for_each: [x, y, z]\n";
    let diags = load_bytes("fan.yaml", text.as_bytes(), &[], &|_| None).unwrap_err();
    let short = diags.render(crate::job::DiagFormat::Short, false);
    assert_eq!(short.matches("unknown pool `nope`").count(), 1, "{short}");
}

#[test]
fn steps_of_a_fan_out_cannot_be_read_as_one_step() {
    let text = "version: 1\nname: w\nsteps:\n  m: { type: dataset, workspace: W, dataset: \"${each.value}\", for_each: [a, b] }\n  n: { type: dataset, workspace: W, dataset: x, depends_on: [m], when: \"steps.m.status == 'succeeded'\" }\n  h: { type: webhook, url: \"https://h.example.com\", depends_on: [m], body: { t: \"${steps.m.status}\" } }\n";
    let diags = load_bytes("w.yaml", text.as_bytes(), &[], &|_| None).unwrap_err();
    let short = diags.render(crate::job::DiagFormat::Short, false);
    assert!(
        short.contains("w.yaml:5:72: error: `when` uses `steps.m`, a step with `for_each`"),
        "{short}"
    );
    assert!(
        short.contains("w.yaml:6:82: error: `${steps.m.status}` names a step with `for_each`"),
        "{short}"
    );
}

#[test]
fn bursting_exports_are_checked_where_written() {
    let text = r#"version: 1
name: b
steps:
  both:
    type: report
    workspace: W
    report: R
    export: { format: PDF, path: a.pdf, filter: "T/C eq 'x'", parameters: { P: x } }
  paginated_format:
    type: report
    workspace: W
    report: R
    export: { format: XLSX, path: a.xlsx, filter: "T/C eq 'x'" }
  identities:
    type: report
    workspace: W
    report: R
    export:
      format: PDF
      path: b.pdf
      identities:
        - username: ""
          roles: ["a,b", "ok"]
"#;
    let diags = load_bytes("b.yaml", text.as_bytes(), &[], &|_| None).unwrap_err();
    let short = diags.render(crate::job::DiagFormat::Short, false);
    for want in [
        "b.yaml:8:49: error: `export.filter` and `export.parameters` in one export",
        "b.yaml:13:51: error: `export.filter` with format XLSX: only paginated reports export to it, and they take no filter",
        "b.yaml:22:21: error: `username` is empty",
        "b.yaml:23:19: error: a role name cannot contain `,`",
    ] {
        assert!(short.contains(want), "want {want} in:\n{short}");
    }
}

#[test]
fn a_bursting_export_reaches_the_model() {
    let job = load(
        r#"version: 1
name: b
steps:
  books:
    type: report
    workspace: W
    report: R
    for_each: [West]
    export:
      format: PDF
      path: "out/${each.key}.pdf"
      filter: "Geo/Region eq '${each.value}'"
      identities: [{ username: "${each.value}@c.com", roles: [M], datasets: [Sales] }]
"#,
        &[],
        &[],
    );
    let StepKind::Report(r) = &job.steps["books[West]"].kind else {
        panic!("a report");
    };
    assert_eq!(r.export.filter.as_deref(), Some("Geo/Region eq 'West'"));
    assert_eq!(
        r.export.identities,
        vec![crate::job::model::EffectiveIdentity {
            username: "West@c.com".into(),
            roles: vec!["M".into()],
            datasets: vec!["Sales".into()],
        }]
    );
}

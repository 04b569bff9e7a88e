//! The discovery library against the simulator over loopback: Power BI paging, lineage
//! edges, and the live comparison on an estate a test adjusts (non-refreshable datasets).

use indexmap::IndexMap;
use pbibatch::discover::{DiscoverOptions, compare, discover};
use pbibatch::job::Severity;
use pbibatch::job::model::{Cloud, Connection, Credentials};
use pbibatch::powerbi::{ClientConfig, PowerBiClient};
use pbibatch::secret::Secret;
use pbibatch::sim::SimServer;

use crate::sim_support::{PBI_SCOPE, start};

fn client(sim: &SimServer) -> PowerBiClient {
    let base = url::Url::parse(&sim.base_url()).unwrap();
    let cfg = ClientConfig::for_cloud(Cloud::Public).with_single_base(&base);
    let conn = Connection {
        name: "default".into(),
        cloud: Cloud::Public,
        credentials: Credentials::ClientSecret {
            tenant_id: sim.tenant_id(),
            client_id: sim.client_id(),
            client_secret: Secret::new(sim.client_secret()),
        },
        picked_because: None,
    };
    PowerBiClient::new(cfg, IndexMap::from([("default".to_string(), conn)])).unwrap()
}

#[tokio::test]
async fn power_bi_workspaces_are_paged_with_top_and_skip() {
    let sim = start("workspaces:\n  A: {}\n  B: {}\n  C: {}\n").await;
    let c = client(&sim);
    let groups = c.groups_paged("default", 2).await.unwrap();
    assert_eq!(
        groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        ["A", "B", "C"]
    );
    let queries: Vec<String> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1.0/myorg/groups")
        .filter_map(|r| r.query)
        .collect();
    assert_eq!(queries, ["$top=2&$skip=0", "$top=2&$skip=2"]);
}

const ESTATE: &str = r#"
workspaces:
  Sales:
    dataflows:
      Raw: {}
      Clean: { upstream_dataflows: [Raw] }
    datasets:
      Model: { upstream_dataflows: [Clean] }
      Live: {}
    reports:
      Book: { dataset: Model }
"#;

#[tokio::test]
async fn lineage_edges_and_a_non_refreshable_dataset() {
    let sim = start(ESTATE).await;
    let c = client(&sim);
    let options = DiscoverOptions {
        workspaces: vec!["Sales".into()],
        lineage: true,
    };
    let mut estate = discover(&c, "default", &options).await.unwrap();
    let edges: Vec<String> = estate
        .lineage
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| format!("{} -> {}", e.from.label(), e.to.label()))
        .collect();
    assert_eq!(
        edges,
        [
            "Sales / Raw -> Sales / Clean",
            "Sales / Clean -> Sales / Model",
            "Sales / Model -> Sales / Book"
        ]
    );

    // The simulator's datasets are all refreshable; a DirectQuery model is not.
    let live = estate.workspaces[0]
        .datasets
        .iter_mut()
        .find(|d| d.name == "Live")
        .unwrap();
    live.refreshable = Some(false);
    let job = pbibatch::job::load_bytes(
        "job.yaml",
        br#"
version: 1
name: t
steps:
  raw: { type: dataflow, workspace: Sales, dataflow: Raw }
  model: { type: dataset, workspace: Sales, dataset: Model, depends_on: [raw] }
  live: { type: dataset, workspace: Sales, dataset: Live }
  book:
    type: report
    workspace: Sales
    report: Book
    export: { format: PDF, path: out/book.pdf }
"#,
        &[],
        &|_| None,
    )
    .unwrap()
    .job;
    let findings = compare(&job, &estate);
    let text: Vec<String> = findings
        .iter()
        .map(|f| format!("{:?}: {}", f.severity, f.message))
        .collect();
    assert!(
        findings.iter().any(|f| f.severity == Severity::Error
            && f.message
                .contains("step `live`: dataset `Live` is not refreshable")),
        "{text:#?}"
    );
    // `model` reaches Raw through Clean (no step): depending on `raw` is enough, no warning.
    assert!(
        !findings
            .iter()
            .any(|f| f.message.contains("dependency: step `model`")),
        "{text:#?}"
    );
    // The report reads the model without waiting for it.
    assert!(
        findings.iter().any(|f| f.severity == Severity::Warning
            && f.message.starts_with("missing dependency: step `book`")
            && f.message.contains("reads step `model`")),
        "{text:#?}"
    );
    assert_eq!(findings.len(), 2, "{text:#?}");
}

#[tokio::test]
async fn a_fabric_refusal_is_a_note_not_a_failure() {
    let sim = start("workspaces:\n  A:\n    datasets: { M: {} }\n").await;
    let base = url::Url::parse(&sim.base_url()).unwrap();
    let cfg = ClientConfig::for_cloud(Cloud::Public).with_single_base(&base);
    // A Power BI token only: Fabric answers 401 (strict audience).
    let conn = Connection {
        name: "default".into(),
        cloud: Cloud::Public,
        credentials: Credentials::AccessToken {
            access_token: Secret::new(sim.user_token(PBI_SCOPE).unwrap()),
        },
        picked_because: None,
    };
    let c = PowerBiClient::new(cfg, IndexMap::from([("default".to_string(), conn)])).unwrap();
    let estate = discover(&c, "default", &DiscoverOptions::default())
        .await
        .unwrap();
    let ws = &estate.workspaces[0];
    assert_eq!(ws.datasets.len(), 1);
    assert!(ws.fabric_items.is_empty());
    assert_eq!(ws.notes.len(), 1, "{:?}", ws.notes);
    assert!(
        ws.notes[0].starts_with("Fabric items not listed"),
        "{:?}",
        ws.notes
    );
    let table = pbibatch::discover::render::table(&estate);
    assert!(
        table.contains("note: A: Fabric items not listed"),
        "{table}"
    );
}

use super::*;

#[test]
fn two_line_profile_makes_everything_instant() {
    let p = Profile::from_yaml("defaults:\n  duration: 0s\n").unwrap();
    let k = Knobs::default().resolve(&p.defaults);
    assert_eq!(k.duration, DurationSpec::Fixed(Duration::ZERO));
    assert_eq!(k.history_lag, Duration::ZERO);
    assert_eq!(k.queue_time, Duration::ZERO);
}

#[test]
fn resource_knobs_override_defaults() {
    let p = Profile::from_yaml(
        "defaults: {duration: 1s, outcomes: [fail]}\nworkspaces:\n  WS:\n    datasets:\n      A: {duration: 5s}\n      B: {}\n",
    )
    .unwrap();
    let ws = &p.workspaces["WS"];
    let a = ws.datasets["A"].knobs().resolve(&p.defaults);
    let b = ws.datasets["B"].knobs().resolve(&p.defaults);
    assert_eq!(a.duration, DurationSpec::Fixed(Duration::from_secs(5)));
    assert_eq!(b.duration, DurationSpec::Fixed(Duration::from_secs(1)));
    assert_eq!(
        a.outcomes,
        vec![OutcomeSpec::Fail {
            code: None,
            message: None
        }]
    );
}

#[test]
fn bad_values_are_reported_together() {
    let err = Profile::from_yaml(
        "time_scale: 0\ntransient_503: 2\nworkspaces:\n  W:\n    items:\n      P: {}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("time_scale"), "{err}");
    assert!(err.contains("transient_503"), "{err}");
    assert!(err.contains("type is required"), "{err}");
    assert!(Profile::from_yaml("nonsense_key: 1\n").is_err());
    // Durations and scales that would overflow instants are refused, not panicked on.
    for bad in [
        "token_lifetime: 100000y\n",
        "time_scale: 0.0000001\n",
        "defaults: { duration: 1s..50000y }\n",
        "defaults: { history_lag: 50000y }\n",
        "latency: 50000y\n",
    ] {
        let err = Profile::from_yaml(bad).unwrap_err().to_string();
        assert!(
            err.contains("limited to 10 years") || err.contains("time_scale"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn provision_adds_only_what_is_missing() {
    let mut p =
        Profile::from_yaml("workspaces:\n  WS:\n    datasets:\n      A: {duration: 5s}\n").unwrap();
    let guid = "0f0e0d0c-0b0a-4909-8807-060504030201";
    p.provision(&Provision {
        workspaces: vec![
            WorkspaceWants {
                name: "WS".into(),
                datasets: vec!["A".into(), "B".into()],
                dataflows: vec!["DF".into()],
                fabric_dataflows: vec!["G2".into()],
                reports: vec!["R".into(), "Paged".into()],
                items: vec![("Load".into(), "DataPipeline".into())],
                report_hints: vec![crate::sim::ReportHint {
                    report: "Paged".into(),
                    paginated: true,
                    rls_roles: vec!["Manager".into()],
                }],
            },
            WorkspaceWants {
                name: guid.into(),
                ..WorkspaceWants::default()
            },
        ],
        flows: vec!["f".into()],
        hooks: vec!["h".into()],
        capacities: Vec::new(),
    });
    let ws = &p.workspaces["WS"];
    assert_eq!(
        ws.datasets["A"].duration,
        Some(DurationSpec::Fixed(Duration::from_secs(5)))
    );
    assert!(ws.datasets.contains_key("B"));
    assert!(ws.dataflows.contains_key("DF"));
    assert!(ws.fabric_dataflows.contains_key("G2"));
    assert_eq!(ws.items["Load"].item_type, "DataPipeline");
    assert!(ws.reports.contains_key("R"));
    assert!(!ws.reports["R"].paginated && ws.reports["R"].dataset.is_none());
    // What the exports say: a paginated report reading a model with the named roles.
    assert!(ws.reports["Paged"].paginated);
    assert_eq!(ws.reports["Paged"].dataset.as_deref(), Some("Paged"));
    assert_eq!(ws.datasets["Paged"].rls_roles, ["Manager"]);
    assert_eq!(
        p.workspaces[guid].id,
        Some(uuid::Uuid::parse_str(guid).unwrap())
    );
    assert!(p.flows.contains_key("f") && p.hooks.contains_key("h"));
    // Provisioning twice changes nothing.
    let before = p.clone();
    p.provision(&Provision {
        workspaces: vec![WorkspaceWants {
            name: guid.into(),
            ..WorkspaceWants::default()
        }],
        ..Provision::default()
    });
    assert_eq!(before, p);
    // Names match regardless of case, like Power BI's.
    p.provision(&Provision {
        workspaces: vec![WorkspaceWants {
            name: "ws".into(),
            datasets: vec!["a".into()],
            ..WorkspaceWants::default()
        }],
        ..Provision::default()
    });
    assert_eq!(before, p);
}

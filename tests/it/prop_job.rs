//! Property tests: whatever the bytes, parse + validate (and rendering their diagnostics)
//! never panics; generated acyclic jobs always validate and plan.

use std::fmt::Write as _;

use pbibatch::job::{DiagFormat, load_bytes};
use proptest::prelude::*;

fn no_env(_: &str) -> Option<String> {
    None
}

/// Loads `text` and renders whatever comes out, as `validate` would.
fn check(bytes: &[u8]) {
    match load_bytes("prop.yaml", bytes, &[], &no_env) {
        Ok(loaded) => {
            let _ = loaded.warnings.render(DiagFormat::Short, false);
        }
        Err(d) => {
            assert!(d.has_errors(), "a rejected file without an error");
            let _ = d.render(DiagFormat::Human, false);
            let _ = d.render(DiagFormat::Short, false);
            let _ = d.to_json();
        }
    }
}

/// A YAML value: scalars a job file could hold (and some it should not), lists and maps with
/// keys from the job vocabulary, nested.
fn yaml_value() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("version".to_string()),
        Just("name".to_string()),
        Just("steps".to_string()),
        Just("type".to_string()),
        Just("depends_on".to_string()),
        Just("workspace".to_string()),
        Just("dataset".to_string()),
        Just("defaults".to_string()),
        Just("timeout".to_string()),
        Just("retries".to_string()),
        Just("when".to_string()),
        Just("pools".to_string()),
        Just("url".to_string()),
        "[a-z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just("1".to_string()),
        Just("-1".to_string()),
        Just("1e999".to_string()),
        Just("~".to_string()),
        Just("true".to_string()),
        Just("dataset".to_string()),
        Just("webhook".to_string()),
        Just("2h".to_string()),
        Just("0s".to_string()),
        Just("\"${env.X}\"".to_string()),
        Just("\"${vars.\"".to_string()),
        Just("'a'".to_string()),
        Just("&x a".to_string()),
        Just("*x".to_string()),
        Just("!!binary aGk=".to_string()),
        "[a-zA-Z0-9_ .:/+-]{0,12}",
    ];
    leaf.prop_recursive(6, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5)
                .prop_map(|items| format!("[{}]", items.join(", "))),
            prop::collection::vec((key.clone(), inner), 0..6).prop_map(|pairs| {
                let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!("{{{}}}", body.join(", "))
            }),
        ]
    })
}

/// A job-shaped document whose parts are generated: top-level keys right, values anything.
fn job_like() -> impl Strategy<Value = String> {
    (
        yaml_value(),
        prop::collection::vec(("[a-z][a-z0-9_]{0,5}", yaml_value()), 0..6),
        any::<bool>(),
    )
        .prop_map(|(defaults, steps, with_version)| {
            let mut y = String::new();
            if with_version {
                y.push_str("version: 1\n");
            }
            let _ = writeln!(y, "name: p\ndefaults: {defaults}\nsteps:");
            for (id, body) in steps {
                let _ = writeln!(y, "  {id}: {body}");
            }
            y
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&bytes);
    }

    #[test]
    fn yaml_like_text_never_panics(text in "[-a-z0-9:{}\\[\\],&*!|>'\"#?~ \\n]{0,300}") {
        check(text.as_bytes());
    }

    #[test]
    fn generated_job_structures_never_panic(text in job_like()) {
        check(text.as_bytes());
    }

    #[test]
    fn deep_nesting_is_a_diagnostic_not_a_crash(
        depth in 1usize..400,
        open in prop_oneof![Just("["), Just("{a: "), Just("- "), Just("? ")],
    ) {
        let text = format!("version: 1\nname: deep\nsteps:\n  a: {}", open.repeat(depth));
        check(text.as_bytes());
        let block: String = (0..depth.min(200)).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect();
        check(format!("version: 1\nname: deep\nsteps:\n{block}").as_bytes());
    }

    #[test]
    fn every_unknown_key_and_bad_value_is_reported_where_it_is(
        job in crate::prop_plan::dag_yaml(1..30),
        picks in prop::collection::btree_set(0usize..40, 0..20),
        nested in any::<bool>(),
    ) {
        // Unknown keys and bad values added to some step lines (flow mappings) and, past the
        // last step, a top-level block entry: each must be reported on its own line, and
        // nothing else.
        let mut lines: Vec<String> = job.text.lines().map(str::to_string).collect();
        let steps = lines.len() - 4;
        let mut want: Vec<(usize, String)> = Vec::new();
        for &p in picks.iter().filter(|&&p| p < steps) {
            let line = 4 + p;
            let l = &mut lines[line];
            let close = l.rfind(" }").expect("a flow mapping");
            if p % 3 == 2 {
                // A known key with a bad value.
                l.insert_str(close, ", if_running: wiat");
                want.push((line + 1, "unknown value `wiat`".into()));
                continue;
            }
            let key = format!("zz{p}");
            let value = if nested { "[1, {a: '}'}]" } else { "x" };
            l.insert_str(close, &format!(", {key}: {value}"));
            want.push((line + 1, format!("unknown key `{key}`")));
        }
        if picks.contains(&39) {
            lines.push("extra_top:".into());
            lines.push("  - nested: 1".into());
            want.push((lines.len() - 1, "unknown key `extra_top`".into()));
        }
        let text = lines.join("\n") + "\n";
        let result = load_bytes("dag.yaml", text.as_bytes(), &[], &no_env);
        if want.is_empty() {
            prop_assert!(result.is_ok());
            return Ok(());
        }
        let problems = result.expect_err("unknown keys are errors");
        let got: Vec<(usize, String)> = problems
            .items()
            .iter()
            .map(|d| (d.position.map_or(0, |p| p.line), d.message.clone()))
            .collect();
        prop_assert_eq!(got, want, "{}", text);
    }

    #[test]
    fn acyclic_generated_jobs_validate(job in crate::prop_plan::dag_yaml(1..40)) {
        let loaded = load_bytes("dag.yaml", job.text.as_bytes(), &[], &no_env);
        prop_assert!(loaded.is_ok(), "{}", loaded.err().map(|d| d.render(DiagFormat::Short, false)).unwrap_or_default());
    }
}

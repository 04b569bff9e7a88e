//! docs/ci.md's GitHub problem matcher (`.github/pbibatch-matcher.json`) reads real
//! `validate --format short` output, and `--allow-unset-env` silences exactly the warnings
//! about environment variables that are not set (the ones a pull request without secrets
//! would otherwise get as annotations).

use regex::Regex;

use crate::common::{pbibatch, repo, texts};

/// The matcher's one pattern, as GitHub reads it.
fn matcher() -> (Regex, serde_json::Value) {
    let text = std::fs::read_to_string(repo().join(".github/pbibatch-matcher.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let matchers = json["problemMatcher"].as_array().unwrap();
    assert_eq!(matchers.len(), 1);
    assert_eq!(matchers[0]["owner"], "pbibatch");
    let pattern = matchers[0]["pattern"][0].clone();
    let re = Regex::new(pattern["regexp"].as_str().unwrap()).unwrap();
    (re, pattern)
}

fn validate(args: &[&str]) -> (Option<i32>, String) {
    let out = pbibatch(&repo())
        .args(["validate", "--format", "short"])
        .args(args)
        .env_remove("AZURE_TENANT_ID")
        .env_remove("AZURE_CLIENT_ID")
        .env_remove("AZURE_CLIENT_SECRET")
        .env_remove("PBIBATCH_ACCESS_TOKEN")
        .env_remove("ORDER_LIST_FLOW_URL")
        .env_remove("TEAMS_WEBHOOK_URL")
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code(), stdout)
}

#[test]
fn ci_problem_matcher_reads_every_line_of_validate_short() {
    let (re, pattern) = matcher();
    let group = |caps: &regex::Captures<'_>, key: &str| {
        let i = pattern[key].as_u64().unwrap() as usize;
        caps.get(i).unwrap().as_str().to_string()
    };
    let (code, stdout) = validate(&[
        "jobs/order_list.yaml",
        "tests/fixtures/invalid/many_problems.yaml",
        "tests/fixtures/invalid/cycle.yaml",
        "tests/fixtures/invalid/missing_type.yaml",
    ]);
    assert_eq!(code, Some(2), "{stdout}");
    let (mut errors, mut warnings) = (0, 0);
    for line in stdout.lines() {
        let caps = re
            .captures(line)
            .unwrap_or_else(|| panic!("the matcher misses: {line}"));
        let file = group(&caps, "file");
        assert!(repo().join(&file).is_file(), "{file} from {line}");
        let line_no: usize = group(&caps, "line").parse().unwrap();
        let column: usize = group(&caps, "column").parse().unwrap();
        assert!(line_no >= 1 && column >= 1, "{line}");
        match group(&caps, "severity").as_str() {
            "error" => errors += 1,
            "warning" => warnings += 1,
            other => panic!("{other}"),
        }
        assert!(!group(&caps, "message").is_empty(), "{line}");
    }
    assert!(errors >= 3 && warnings >= 1, "{stdout}");
    // A located one, exactly.
    let caps = re
        .captures(stdout.lines().find(|l| l.contains("missing_type")).unwrap())
        .unwrap();
    assert_eq!(
        group(&caps, "file"),
        "tests/fixtures/invalid/missing_type.yaml"
    );
    assert_eq!(group(&caps, "line"), "4");
    assert_eq!(group(&caps, "column"), "3");
    assert_eq!(group(&caps, "severity"), "error");
    assert!(group(&caps, "message").starts_with("step `model` has no `type`"));
}

#[test]
fn validate_allow_unset_env_silences_only_the_unset_env_warnings() {
    let files = ["jobs/order_list.yaml", "examples/nightly_estate.yaml"];
    let (code, stdout) = validate(&files);
    assert_eq!(code, Some(0), "{stdout}");
    let unset = stdout
        .lines()
        .filter(|l| l.contains("is not set") || l.contains("not set here"))
        .count();
    assert!(unset >= 3, "{stdout}");
    let (code, quiet) = validate(&[&["--allow-unset-env"][..], &files].concat());
    assert_eq!(code, Some(0), "{quiet}");
    assert_eq!(quiet, "", "no warning is left for these files");
    // Other warnings and every error stay.
    let (code, out) = validate(&[
        "--allow-unset-env",
        "tests/fixtures/invalid/many_problems.yaml",
    ]);
    assert_eq!(code, Some(2));
    assert!(out.contains(": error: "), "{out}");
}

//! Every diagnostic code the source defines is documented in docs/diagnostics.md, and every
//! code documented there exists: the table is the contract tools match on.

use std::collections::BTreeSet;
use std::path::Path;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The codes the source defines: `code(pbibatch::...)` attributes and `"pbibatch::..."`
/// strings (the job file's `Code`s, `MissingEnv`).
fn source_codes() -> BTreeSet<String> {
    let re = regex::Regex::new(r#"(?:code\(|")(pbibatch::[a-z0-9_]+(?:::[a-z0-9_]+)*)"#).unwrap();
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    let mut codes = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        codes.extend(re.captures_iter(&text).map(|c| c[1].to_string()));
    }
    codes
}

/// The codes in the first column of docs/diagnostics.md's tables.
fn documented_codes() -> BTreeSet<String> {
    let re = regex::Regex::new(r"^\| `(pbibatch::[a-z0-9_:]+)` \|").unwrap();
    let text = std::fs::read_to_string(repo().join("docs/diagnostics.md")).unwrap();
    text.lines()
        .filter_map(|l| re.captures(l).map(|c| c[1].to_string()))
        .collect()
}

#[test]
fn every_code_in_the_source_is_documented_and_every_documented_code_exists() {
    let source = source_codes();
    let documented = documented_codes();
    assert!(source.len() > 40, "the scan found the codes: {source:?}");
    let undocumented: Vec<_> = source.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&source).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "codes missing from docs/diagnostics.md: {undocumented:?}; documented codes the source does not define: {unknown:?}"
    );
}

#[test]
fn validate_shows_the_code_in_json_short_and_human_output() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("job.yaml"),
        "version: 1\nname: n\nsteps:\n  a:\n    type: webhook\n    url: https://example.invalid/x\n    depends_on: [zz]\n    retires: 2\n",
    )
    .unwrap();
    let run = |format: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pbibatch"))
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .args(["validate", "job.yaml", "--format", format])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (json, _) = run("json");
    let items: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let codes: Vec<&str> = items.iter().filter_map(|i| i["code"].as_str()).collect();
    assert_eq!(
        codes,
        [
            "pbibatch::job::unknown_dependency",
            "pbibatch::job::unknown_key"
        ],
        "{json}"
    );
    let (short, _) = run("short");
    assert_eq!(
        short,
        "job.yaml:7:18: error: unknown step `zz` in `depends_on` of `a` [pbibatch::job::unknown_dependency]\n\
         job.yaml:8:5: error: unknown key `retires` (did you mean `retries`?) [pbibatch::job::unknown_key]\n"
    );
    let (_, human) = run("human");
    assert!(
        human.starts_with("pbibatch::job::unknown_dependency\n\n  × unknown step `zz`"),
        "{human}"
    );
    assert!(
        human.contains("pbibatch::job::unknown_key\n\n  × unknown key `retires`"),
        "{human}"
    );
}

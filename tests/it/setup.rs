//! A fresh clone's first commands: the README's two commands, `.ci/run`, the Dockerfile.
//!
//! `docker build` needs a container engine, which the test machines lack; these tests check
//! what can go wrong without one: the image's entrypoint is the binary Cargo builds, where the
//! build stage puts it, run by a non-root user, with CA certificates.

use crate::common::repo;

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The commands of the README's first `sh` block, comments stripped.
fn readme_commands() -> Vec<String> {
    let readme = read("README.md");
    let block = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the README starts with a sh block");
    block
        .lines()
        .map(|l| l.split(" #").next().unwrap().trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn setup_readme_keeps_two_commands_the_toolchain_alone_runs() {
    let commands = readme_commands();
    assert_eq!(
        commands,
        [
            "cargo run -- run jobs/order_list.yaml --simulate",
            "cargo test"
        ],
        "the README's first block: the main job against the simulator, then the tests"
    );
}

#[test]
fn setup_ci_runs_exactly_the_readme_test_command_after_fmt_and_clippy() {
    let test_command = readme_commands().pop().unwrap();
    let ci = read(".ci/run");
    let commands: Vec<&str> = ci
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("cargo "))
        .collect();
    assert_eq!(
        commands,
        [
            "cargo fmt --all -- --check",
            "cargo clippy --all-targets --locked -- -D warnings",
            test_command.as_str(),
            "cargo test --test it soak -- --ignored",
        ],
        ".ci/run"
    );
    assert!(ci.contains("set -euo pipefail"), "{ci}");
}

/// The Cargo binary's name (`[[bin]] name = ...`).
fn cargo_bin_name() -> String {
    let manifest = read("Cargo.toml");
    let bin = manifest
        .split("[[bin]]")
        .nth(1)
        .expect("Cargo.toml has a [[bin]] section");
    bin.lines()
        .find_map(|l| l.trim().strip_prefix("name = "))
        .map(|n| n.trim_matches('"').to_string())
        .expect("[[bin]] has a name")
}

/// The JSON array of an exec-form instruction (`ENTRYPOINT ["a", "b"]`).
fn exec_form(line: &str) -> Vec<String> {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("`{line}` is not exec form: {e}"))
}

#[test]
fn setup_dockerfile_entrypoint_is_the_cargo_binary_run_by_a_non_root_user() {
    let bin = cargo_bin_name();
    assert_eq!(bin, "pbibatch");
    let dockerfile = read("Dockerfile");
    // Instructions, continuation lines joined, comments dropped.
    let joined = dockerfile
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\\n", " ");
    let instructions: Vec<(&str, &str)> = joined
        .lines()
        .filter_map(|l| l.trim().split_once(' '))
        .collect();
    let stages: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, (i, _))| *i == "FROM")
        .map(|(n, _)| n)
        .collect();
    assert!(stages.len() >= 2, "a multi-stage build: {stages:?}");
    let (build, run) = instructions.split_at(*stages.last().unwrap());

    // The build stage builds the Cargo binary in release mode and installs it somewhere.
    let build_runs: String = build
        .iter()
        .filter(|(i, _)| *i == "RUN")
        .map(|(_, a)| *a)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        build_runs.contains(&format!("cargo build --release --locked --bin {bin}")),
        "{build_runs}"
    );
    let built = format!("target/release/{bin}");
    let installed = build_runs
        .split(&built)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the build stage installs {built}: {build_runs}"));

    // The final stage copies that file from the build stage to the entrypoint's path.
    let entrypoint = run
        .iter()
        .find(|(i, _)| *i == "ENTRYPOINT")
        .map(|(_, a)| exec_form(a))
        .expect("the final stage has an ENTRYPOINT");
    assert_eq!(entrypoint.len(), 1, "{entrypoint:?}");
    assert!(
        entrypoint[0].ends_with(&format!("/{bin}")),
        "{entrypoint:?}"
    );
    let copy = run
        .iter()
        .find(|(i, a)| *i == "COPY" && a.starts_with("--from="))
        .map(|(_, a)| a.split_whitespace().collect::<Vec<_>>())
        .expect("the final stage copies the binary from the build stage");
    assert_eq!(copy[1..], [installed, entrypoint[0].as_str()], "{copy:?}");

    // A non-root user, set after the last RUN (which may need root for apt).
    let user = run
        .iter()
        .rposition(|(i, _)| *i == "USER")
        .expect("the final stage sets a USER");
    let last_run = run.iter().rposition(|(i, _)| *i == "RUN").unwrap_or(0);
    assert!(user > last_run, "USER comes after the last RUN");
    let name = run[user].1.trim();
    assert!(!["root", "0", "0:0"].contains(&name), "USER {name}");
    let final_runs: String = run
        .iter()
        .filter(|(i, _)| *i == "RUN")
        .map(|(_, a)| *a)
        .collect();
    assert!(final_runs.contains("ca-certificates"), "{final_runs}");
    assert!(final_runs.contains("useradd") && final_runs.contains(name));

    // The build context leaves out the (gigabytes of) build output.
    let ignore = read(".dockerignore");
    assert!(ignore.lines().any(|l| l.trim() == "target/"), "{ignore}");
}

#[test]
fn setup_docs_describe_the_image_for_kestra_and_ci() {
    for doc in ["docs/kestra.md", "docs/ci.md"] {
        let text = read(doc);
        assert!(text.contains("## A container image"), "{doc}");
        assert!(text.contains("](../Dockerfile)"), "{doc}");
    }
    assert!(read("docs/kestra.md").contains("containerImage: "));
    let readme = read("README.md");
    assert!(readme.contains("cargo install --locked --path ."), "README");
    assert!(readme.contains("cargo install --locked --git "), "README");
}

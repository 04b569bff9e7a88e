//! Every command in the docs is exercised, so the docs cannot drift from the binary.
//!
//! The convention, for `docs/*.md` and `README.md`:
//!
//! - A fenced ` ```sh ` block is **run**. Each line starting with `pbibatch ` (or
//!   `cargo run -- `, the same binary from the clone) runs the real binary in a temporary
//!   directory holding copies of the repo's `jobs/`, `examples/*.yaml` and `schemas/`, one
//!   directory per Markdown file, lines in order. It must exit 0, or the code given by a
//!   trailing `# exit N` comment. Quotes and `*` globs work as in a POSIX shell; nothing else
//!   of the shell does (no pipes, redirections or variables). Other `cargo ...` lines are
//!   builds, exercised by CI; any other line fails this test.
//! - A ` ```console ` block shows commands that need a real tenant or earlier runs' history:
//!   each `$ pbibatch ...` line must parse with the real command-line definition (so a renamed
//!   flag or subcommand fails here), but is not run.
//! - In ` ```yaml ` blocks (CI pipelines), every `run: pbibatch ...` / `script: pbibatch ...`
//!   line must be one of the commands run from a ` ```sh ` block.
//!
//! The environment is clean (no Azure credentials), except that every `${env.NAME}` used by the
//! repo's job files is set to a dummy value, standing in for the secrets a scheduler or CI
//! pipeline provides; `--simulate` ignores them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::common::{pbibatch, repo, texts};

/// One fenced block.
struct Block {
    lang: String,
    /// 1-based line of the opening fence.
    line: usize,
    lines: Vec<String>,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            match current.take() {
                Some(b) => out.push(b),
                None => {
                    current = Some(Block {
                        lang: info.trim().to_string(),
                        line: i + 1,
                        lines: Vec::new(),
                    })
                }
            }
        } else if let Some(b) = current.as_mut() {
            b.lines.push(line.to_string());
        }
    }
    out
}

/// `docs/*.md` and `README.md`, sorted.
fn markdown_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    files.push(repo().join("README.md"));
    files
}

/// POSIX-like word splitting with quotes; `#` outside quotes after a blank starts a comment.
/// Returns the words and the comment.
fn split(line: &str) -> (Vec<String>, Option<String>) {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                word.push(n);
                            }
                        }
                        _ => word.push(q),
                    }
                }
            }
            '#' if !in_word => {
                let comment: String = chars.collect();
                return (words, Some(comment.trim().to_string()));
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    (words, None)
}

/// Expands `dir/*.ext`-style globs (one `*` in the last component) against `dir`.
fn expand(words: Vec<String>, dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for w in words {
        let Some((parent, pattern)) = w.rsplit_once('/').filter(|(_, p)| p.contains('*')) else {
            out.push(w);
            continue;
        };
        let (prefix, suffix) = pattern.split_once('*').unwrap();
        let mut hits: Vec<String> = std::fs::read_dir(dir.join(parent))
            .unwrap_or_else(|e| panic!("glob `{w}`: {e}"))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(prefix) && n.ends_with(suffix))
            .map(|n| format!("{parent}/{n}"))
            .collect();
        hits.sort();
        assert!(!hits.is_empty(), "glob `{w}` matches nothing");
        out.extend(hits);
    }
    out
}

/// A command of a doc line: the pbibatch arguments (without the program name).
fn pbibatch_args(words: &[String]) -> Option<Vec<String>> {
    match words {
        [first, rest @ ..] if first == "pbibatch" => Some(rest.to_vec()),
        [cargo, run, dashes, rest @ ..] if cargo == "cargo" && run == "run" && dashes == "--" => {
            Some(rest.to_vec())
        }
        _ => None,
    }
}

fn copy_dir(from: &Path, to: &Path, filter: &dyn Fn(&Path) -> bool) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() && filter(&p) {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// A working directory with the repo's job files, as a user's clone has them.
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let yaml = |p: &Path| p.extension().is_some_and(|e| e == "yaml");
    copy_dir(&repo().join("jobs"), &dir.path().join("jobs"), &yaml);
    copy_dir(
        &repo().join("examples"),
        &dir.path().join("examples"),
        &yaml,
    );
    copy_dir(
        &repo().join("schemas"),
        &dir.path().join("schemas"),
        &|_| true,
    );
    dir
}

/// Every `${env.NAME}` of the repo's job files, with a dummy value of the right shape.
fn dummy_env() -> Vec<(String, String)> {
    let mut names = BTreeSet::new();
    for dir in ["jobs", "examples"] {
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&p).unwrap();
                for piece in text.split("${env.").skip(1) {
                    if let Some((name, _)) = piece.split_once('}') {
                        names.insert(name.to_string());
                    }
                }
            }
        }
    }
    names
        .into_iter()
        .map(|n| {
            let value = if n.ends_with("URL") {
                format!("https://example.invalid/{n}?sig=dummy")
            } else {
                format!("dummy-{n}")
            };
            (n, value)
        })
        .collect()
}

#[test]
fn docs_sh_blocks_run_and_other_commands_parse() {
    let env = dummy_env();
    let mut ran: BTreeSet<String> = BTreeSet::new();
    let mut pipeline_commands: Vec<(String, String)> = Vec::new();
    let mut count = 0;
    for file in markdown_files() {
        let name = file.strip_prefix(repo()).unwrap().display().to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        let dir = workdir();
        for block in blocks(&text) {
            match block.lang.as_str() {
                "sh" => {
                    for (i, line) in block.lines.iter().enumerate() {
                        let at = format!("{name}:{}", block.line + 1 + i);
                        let (words, comment) = split(line);
                        if words.is_empty() {
                            continue;
                        }
                        let Some(args) = pbibatch_args(&words) else {
                            assert_eq!(
                                words[0], "cargo",
                                "{at}: only `pbibatch` and `cargo` lines belong in a sh block"
                            );
                            continue;
                        };
                        let want = comment
                            .as_deref()
                            .and_then(|c| c.strip_prefix("exit "))
                            .map(|n| n.trim().parse::<i32>().unwrap())
                            .unwrap_or(0);
                        let args = expand(args, dir.path());
                        let out = pbibatch(dir.path())
                            .args(&args)
                            .envs(env.iter().map(|(k, v)| (k, v)))
                            .output()
                            .unwrap();
                        let (stdout, stderr) = texts(&out);
                        assert_eq!(
                            out.status.code(),
                            Some(want),
                            "{at}: `{line}`\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
                        );
                        ran.insert(words.join(" "));
                        count += 1;
                    }
                }
                "console" => {
                    for (i, line) in block.lines.iter().enumerate() {
                        let at = format!("{name}:{}", block.line + 1 + i);
                        let Some(cmd) = line.trim_start().strip_prefix("$ ") else {
                            continue;
                        };
                        let (words, _) = split(cmd);
                        if words.first().map(String::as_str) != Some("pbibatch") {
                            continue;
                        }
                        if let Err(e) = <pbibatch::cli::Cli as clap::Parser>::try_parse_from(&words)
                        {
                            panic!("{at}: `{cmd}` does not parse:\n{e}");
                        }
                        count += 1;
                    }
                }
                "yaml" | "yml" => {
                    for (i, line) in block.lines.iter().enumerate() {
                        let t = line.trim_start().trim_start_matches("- ");
                        let cmd = t
                            .strip_prefix("run: ")
                            .or_else(|| t.strip_prefix("script: "))
                            .filter(|c| c.starts_with("pbibatch "));
                        if let Some(cmd) = cmd {
                            let at = format!("{name}:{}", block.line + 1 + i);
                            pipeline_commands.push((at, cmd.trim().to_string()));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    assert!(count >= 20, "only {count} documented commands were checked");
    assert!(
        !pipeline_commands.is_empty(),
        "no CI pipeline commands found"
    );
    for (at, cmd) in pipeline_commands {
        let (words, _) = split(&cmd);
        assert!(
            ran.contains(&words.join(" ")),
            "{at}: the pipeline runs `{cmd}`, which no sh block of the docs runs"
        );
    }
}

#[test]
fn docs_word_splitting() {
    let (w, c) = split(r#"pbibatch x --cron "0 2 * * *" 'a b' # exit 2"#);
    assert_eq!(w, ["pbibatch", "x", "--cron", "0 2 * * *", "a b"]);
    assert_eq!(c.as_deref(), Some("exit 2"));
    let (w, c) = split("pbibatch run a#b");
    assert_eq!(w, ["pbibatch", "run", "a#b"]);
    assert_eq!(c, None);
}

#[test]
fn docs_version_shows_the_git_revision() {
    let out = pbibatch(&repo()).arg("--version").output().unwrap();
    let (stdout, _) = texts(&out);
    assert_eq!(out.status.code(), Some(0));
    let want = format!("pbibatch {}", env!("CARGO_PKG_VERSION"));
    assert!(stdout.starts_with(&want), "{stdout}");
    // In a git checkout (CI clones) the revision the binary was built from is shown.
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repo())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Some(head) = head {
        assert!(stdout.contains(" (git "), "{stdout}");
        let shown = stdout
            .split(" (git ")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .unwrap();
        assert_eq!(shown.len(), 12, "{stdout}");
        assert!(shown.chars().all(|c| c.is_ascii_hexdigit()), "{stdout}");
        // build.rs re-runs when HEAD or the branch moves, so the test build shows HEAD.
        assert_eq!(shown, head, "{stdout}");
    }
}

//! A builder for command-line tests that compare the whole of what a command does: its exit
//! code, its stdout and its stderr, each exactly (as casey/just's `Test` does). A test reads as
//! the session a user would see:
//!
//! ```ignore
//! Test::new()
//!     .file("job.yaml", JOB)
//!     .args(["validate", "job.yaml", "--format", "short"])
//!     .status(2)
//!     .stderr("job.yaml:4:5: error: unknown key `datset` (did you mean `dataset`?)\n")
//!     .run();
//! ```
//!
//! Each test gets a fresh directory for its files (the command runs there, with the clean
//! environment of `common::pbibatch`: no Azure credentials, no state override, `NO_COLOR`).
//! Stdout and stderr left unset are expected empty, so nothing a command prints goes unseen.
//! `{dir}` in an expected text stands for the test's directory.

use std::path::Path;

use crate::common::{pbibatch, texts};

pub(crate) struct Test {
    dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    status: i32,
    stdout: String,
    stderr: String,
}

impl Test {
    pub(crate) fn new() -> Test {
        Test {
            dir: tempfile::tempdir().unwrap(),
            args: Vec::new(),
            env: Vec::new(),
            status: 0,
            stdout: String::new(),
            stderr: String::new(),
        }
    }

    /// Writes `text` to `path` (relative to the test's directory; folders are made).
    pub(crate) fn file(self, path: &str, text: &str) -> Test {
        let path = self.dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    pub(crate) fn args<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, args: I) -> Test {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    pub(crate) fn env(mut self, key: &str, value: &str) -> Test {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The expected exit code (0 unless set).
    pub(crate) fn status(mut self, code: i32) -> Test {
        self.status = code;
        self
    }

    /// The whole expected stdout (empty unless set).
    pub(crate) fn stdout(mut self, text: &str) -> Test {
        self.stdout = text.into();
        self
    }

    /// The whole expected stderr (empty unless set).
    pub(crate) fn stderr(mut self, text: &str) -> Test {
        self.stderr = text.into();
        self
    }

    /// Runs the command and compares all three; on a difference the message shows every part
    /// that differs, expected then found.
    pub(crate) fn run(self) -> Output {
        let mut cmd = pbibatch(self.dir.path());
        cmd.args(&self.args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let (stdout, stderr) = texts(&out);
        let dir = self.dir.path().display().to_string();
        let expand = |text: &str| text.replace("{dir}", &dir);
        let mut wrong = Vec::new();
        if out.status.code() != Some(self.status) {
            wrong.push(format!(
                "exit code: expected {}, found {:?}",
                self.status,
                out.status.code()
            ));
        }
        for (name, expected, found) in [
            ("stdout", expand(&self.stdout), &stdout),
            ("stderr", expand(&self.stderr), &stderr),
        ] {
            if &expected != found {
                wrong.push(format!(
                    "{name} differs\n--- expected ---\n{expected}--- found ---\n{found}--- end ---"
                ));
            }
        }
        assert!(
            wrong.is_empty(),
            "`pbibatch {}`:\n{}",
            self.args.join(" "),
            wrong.join("\n")
        );
        Output { dir: self.dir }
    }
}

/// What a passing [`Test::run`] leaves: the directory, kept until dropped, for the files the
/// command wrote.
pub(crate) struct Output {
    dir: tempfile::TempDir,
}

impl Output {
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }
}

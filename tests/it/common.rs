//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Path of the built `pbibatch` binary.
pub(crate) fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pbibatch"))
}

/// The repository root (for `jobs/`, `examples/`, `schemas/`).
pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `pbibatch` command with a clean environment (no Azure credentials, no state override),
/// running in `dir`.
pub(crate) fn pbibatch(dir: &Path) -> Command {
    let mut cmd = Command::new(bin());
    cmd.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("AZURE_")
            || k.starts_with("PBIBATCH_")
            || k.starts_with("IDENTITY_")
            || k == "RUST_LOG"
        {
            cmd.env_remove(k);
        }
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

/// `pbibatch` in `dir` with every remote pointed at `sim` and the simulator's service
/// principal in the Azure SDK variables (the implicit `default` connection).
pub(crate) fn pbibatch_against(dir: &Path, sim: &pbibatch::sim::SimServer) -> Command {
    let base = sim.base_url();
    let mut cmd = pbibatch(dir);
    cmd.env("PBIBATCH_POWERBI_URL", &base)
        .env("PBIBATCH_FABRIC_URL", &base)
        .env("PBIBATCH_AUTHORITY_URL", &base)
        .env("PBIBATCH_ARM_URL", &base)
        .env("AZURE_TENANT_ID", sim.tenant_id())
        .env("AZURE_CLIENT_ID", sim.client_id())
        .env("AZURE_CLIENT_SECRET", sim.client_secret());
    cmd
}

/// Stdout and stderr of an output as strings.
pub(crate) fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

//! Puts the git revision into `pbibatch --version` (`0.1.0 (git 1a2b3c4d5e6f)`).
//!
//! Falls back to the bare package version when git is not installed, when the sources are not
//! a git checkout (a crate tarball), or when git fails; `PBIBATCH_GIT_REVISION` overrides the
//! revision for builds from an exported tree.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The package root, read when the script runs: `env!` would freeze the directory the script
/// was compiled in, and a build-script binary reused from a copied or moved `target/` (a
/// second checkout or worktree) would then ask git about the other checkout.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(manifest_dir())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// Re-run when the checked-out commit moves: HEAD, the branch it points at, packed refs, and
/// the branch refs folder.
/// Only existing files are named: a missing one would make cargo re-run the script always.
fn watch_git() {
    let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) else {
        return;
    };
    let common = git(&["rev-parse", "--git-common-dir"]).map(|c| {
        let p = Path::new(&c);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            manifest_dir().join(p)
        }
    });
    let mut files = vec![Path::new(&git_dir).join("HEAD")];
    if let Some(common) = &common {
        files.push(common.join("packed-refs"));
        // A directory is scanned recursively: a branch ref written loose for the first time
        // (after `git pack-refs`) is seen too.
        files.push(common.join("refs").join("heads"));
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            files.push(common.join(branch));
        }
    }
    for f in files.iter().filter(|f| f.exists()) {
        println!("cargo:rerun-if-changed={}", f.display());
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PBIBATCH_GIT_REVISION");
    let version = env!("CARGO_PKG_VERSION");
    let revision = match std::env::var("PBIBATCH_GIT_REVISION") {
        Ok(r) if !r.trim().is_empty() => Some(r.trim().to_string()),
        _ => {
            watch_git();
            git(&["rev-parse", "--short=12", "HEAD"])
        }
    };
    let full = match revision {
        Some(rev) => format!("{version} (git {rev})"),
        None => version.to_string(),
    };
    println!("cargo:rustc-env=PBIBATCH_VERSION={full}");
}

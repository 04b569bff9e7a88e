//! `pbibatch auth check`: one token per scope and connection, who it is for, what it sees.

use std::path::Path;

use chrono::Utc;

use crate::discover::auth::{check_connection, render};
use crate::discover::{Target, TargetOptions};
use crate::error::{Error, exit};

/// Exit 0 when every connection works, 1 when one does not, 2 for bad input (unknown
/// connection, job file errors, missing environment).
pub(super) fn check(
    connection: Option<&str>,
    job: Option<&Path>,
    simulate: bool,
    sim_profile: Option<&Path>,
) -> Result<u8, Error> {
    let options = TargetOptions {
        job,
        connection,
        simulate,
        sim_profile,
    };
    super::load::runtime()?.block_on(check_async(&options))
}

async fn check_async(options: &TargetOptions<'_>) -> Result<u8, Error> {
    let target = Target::for_auth_check(options).await?;
    let cfg = target.client.config().clone();
    let mut all_ok = true;
    let mut text = String::new();
    for conn in target.connections.values() {
        let check = check_connection(&cfg, conn).await;
        all_ok &= check.ok();
        text.push_str(&render(&check, Utc::now()));
    }
    target.shutdown().await;
    crate::stdout::write(&text)?;
    Ok(if all_ok { exit::OK } else { exit::FAILED })
}

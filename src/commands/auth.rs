//! `pbibatch auth check`: one token per scope and connection, who it is for, what it sees,
//! and (with `--job`) whether it may query the models the job's data checks query.

use std::path::Path;

use chrono::Utc;

use crate::discover::auth::{check_connection, render};
use crate::discover::query_probe::data_check_models;
use crate::discover::{Target, TargetOptions, load_job};
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
    let job = options.job.map(load_job).transpose()?;
    let target = Target::for_auth_check(options, job.as_ref()).await?;
    let models = job.as_ref().map(data_check_models).unwrap_or_default();
    let cfg = target.client.config().clone();
    let mut all_ok = true;
    let mut text = String::new();
    for conn in target.connections.values() {
        let probed = models
            .get(&conn.name)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let check = check_connection(&cfg, conn, probed).await;
        all_ok &= check.ok();
        text.push_str(&render(&check, Utc::now()));
    }
    target.shutdown().await;
    crate::stdout::write(&text)?;
    Ok(if all_ok { exit::OK } else { exit::FAILED })
}

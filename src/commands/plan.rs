//! `pbibatch plan FILE`: waves, selected steps and their resolved settings, and with
//! `--capacities` the capacity limits a run would respect.

use std::path::Path;
use std::sync::Arc;

use crate::cli::{PlanArgs, PlanFormat};
use crate::error::{Error, exit};
use crate::plan::{Plan, render};
use crate::powerbi::{ClientConfig, PowerBiClient};
use crate::sim::Profile;

/// `pbibatch plan FILE`: waves, selected steps and their resolved settings.
pub(super) fn command(args: &PlanArgs) -> Result<u8, Error> {
    let job = super::load::load_or_report(&args.job, &args.selection.vars)?;
    let selected = crate::plan::select(&job, &args.selection.select, &args.selection.exclude)?;
    let plan = Plan::with_selected(Arc::new(job), selected)?;
    let capacities = if args.capacities {
        Some(capacities_now(
            &plan,
            args.simulate,
            args.sim_profile.as_deref(),
        )?)
    } else {
        None
    };
    let text = match (args.format, capacities) {
        (PlanFormat::Text, None) => render::to_text(&plan),
        (PlanFormat::Json, None) => render::to_json(&plan),
        (PlanFormat::Text, Some(c)) => format!("{}\n{}", render::to_text(&plan), c.to_text()),
        (PlanFormat::Json, Some(c)) => {
            let mut v: serde_json::Value =
                serde_json::from_str(&render::to_json(&plan)).unwrap_or_default();
            v["capacity_limits"] = serde_json::to_value(&c).unwrap_or_default();
            serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
        }
    };
    crate::stdout::write(&text)?;
    Ok(exit::OK)
}

/// `plan --capacities`: what `run` would learn of the capacities, looked up now against the
/// service (credentials and `PBIBATCH_*_URL` as for `run`) or the built-in simulator.
fn capacities_now(
    plan: &Plan,
    simulate: bool,
    profile: Option<&Path>,
) -> Result<crate::plan::capacity::CapacityPlan, Error> {
    let job = &plan.job;
    if !job.capacity_limits {
        return Ok(crate::plan::capacity::CapacityPlan::default());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("failed to start the async runtime", e))?;
    runtime.block_on(async {
        let (job, config, sim) = if simulate {
            let resolved = crate::job::resolve_env(job, &|name| {
                Some(std::env::var(name).unwrap_or_else(|_| format!("simulated-{name}")))
            })?;
            let profile = super::load::simulator_profile(profile, Profile::default)?;
            let (sim, _unused) = super::run::start_simulator(&resolved, profile).await?;
            let config = super::run::simulator_config(&sim)?;
            (sim.point_job_at(resolved), config, Some(sim))
        } else {
            let resolved = crate::job::resolve_env(job, &|name| std::env::var(name).ok())?;
            let config = ClientConfig::try_from_env(Default::default())?;
            if let Err(problems) = crate::powerbi::check_urls(&resolved.outbound(), &config) {
                return Err(Error::Remotes(problems));
            }
            (resolved, config, None)
        };
        let client = PowerBiClient::new(config, job.connections.clone())?;
        let selected: Vec<_> = plan.selected.iter().cloned().collect();
        let facts = crate::powerbi::capacities::learn(&client, &job, &selected).await;
        if let Some(sim) = sim {
            sim.shutdown().await;
        }
        Ok(crate::plan::capacity::plan(&job, &selected, &facts))
    })
}

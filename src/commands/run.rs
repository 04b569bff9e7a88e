//! `pbibatch run`: load and check the job, resolve the environment, optionally start the
//! simulator, then hand the plan to the engine and its events to the reporters.
//!
//! Everything that can be refused (a bad job, missing env vars, a plain-http remote, an
//! unknown selector) is refused here, before the first request is sent: exit 2.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Output;
use crate::cli::{OnInterrupt, Progress, RunArgs};
use crate::error::{AfterRunError, Error, exit};
use crate::event::RunStatus;
use crate::executor::{Dispatcher, Executor};
use crate::job::model::{Job, StepKind};
use crate::plan::Plan;
use crate::powerbi::{ClientConfig, PowerBiClient};
use crate::reporter::report::ReportError;
use crate::reporter::{ProgressMode, ReportPaths, Reporters};
use crate::sim::{Profile, SimServer};

/// Runs `pbibatch run` and returns the exit code.
pub(super) fn command(args: RunArgs, output: Output) -> Result<u8, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("failed to start the async runtime", e))?;
    let result = runtime.block_on(run_async(args, output));
    // Everything the run needs has finished. A `when:` evaluation cut short by an interrupt
    // may still hold a blocking thread for up to its limit: exit without waiting for it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

/// A job ready to run: loaded, environment resolved, selection applied.
struct Prepared {
    plan: Arc<Plan>,
    config: ClientConfig,
    sim: Option<SimServer>,
    /// What the run runs against, for the store.
    target: crate::store::RunTarget,
    /// What run-time discovery found (or a resumed run recorded), recorded with the run.
    discovered: crate::job::Discovered,
}

async fn prepare(args: &RunArgs) -> Result<Prepared, Error> {
    let overrides = crate::job::parse_var_overrides(&args.selection.vars)?;
    let loaded = match crate::job::load(&args.job, &overrides) {
        Ok(loaded) => loaded,
        Err(diags) => {
            super::load::print_diagnostics(&diags);
            return Err(Error::Reported);
        }
    };
    let mut job = loaded.job;
    if let Some(retries) = args.retries {
        if retries > 100 {
            return Err(Error::Usage("--retries must be between 0 and 100".into()));
        }
        for step in job.steps.values_mut() {
            step.retries = retries;
        }
    }
    // A fan-out over what discovery finds is selected once it is expanded (`step[key]`
    // names an expansion); any other job is checked now, before a simulator starts.
    let discovers = !job.awaiting_discovery().is_empty() && !args.dry_run;
    let selected = if discovers {
        None
    } else {
        Some(crate::plan::select(
            &job,
            &args.selection.select,
            &args.selection.exclude,
        )?)
    };
    if let Some(n) = args.concurrency
        && !(1..=10_000).contains(&n)
    {
        return Err(Error::Usage(format!(
            "--concurrency must be between 1 and 10000, not {n}"
        )));
    }

    let (job, config, sim) = if args.simulate {
        // Under --simulate nothing may leave loopback: the simulator stands in for every
        // remote, and unset env vars resolve to placeholders.
        let resolved = resolve_simulated(&job)?;
        let profile =
            super::load::simulator_profile(args.sim_profile.as_deref(), Profile::default)?;
        let (sim, warnings) = start_simulator(&resolved, profile).await?;
        for warning in warnings {
            eprintln!("warning: {warning}");
        }
        let config = simulator_config(&sim)?;
        tracing::info!(base = %sim.base_url(), "simulator started");
        for rule in sim.relaxed_rules() {
            // One line per rule, whatever the log level: a relaxed run proves less.
            eprintln!(
                "simulator: relaxed rule {} (the real service enforces it)",
                rule.name()
            );
        }
        (sim.point_job_at(resolved), config, Some(sim))
    } else {
        let resolved = resolve_live(&job)?;
        let config = ClientConfig::try_from_env(Default::default())?;
        (resolved, config, None)
    };

    let (job, discovered) = if discovers {
        expand_discovered(args, &overrides, job, &config, sim.as_ref()).await?
    } else {
        (job, crate::job::Discovered::new())
    };
    let selected = match selected {
        Some(s) => s,
        None => crate::plan::select(&job, &args.selection.select, &args.selection.exclude)?,
    };

    if let Err(problems) = crate::powerbi::check_urls(&job.outbound(), &config) {
        return Err(Error::Remotes(problems));
    }
    let target = crate::store::RunTarget::of_run(&job, &config, args.simulate);
    let plan = Plan::with_selected(Arc::new(job), selected)?;
    Ok(Prepared {
        plan: Arc::new(plan),
        config,
        sim,
        target,
        discovered,
    })
}

/// Env references resolved for `--simulate`: unset ones become placeholders.
fn resolve_simulated(job: &Job) -> Result<Job, Error> {
    crate::job::resolve_env(job, &|name| {
        Some(std::env::var(name).unwrap_or_else(|_| format!("simulated-{name}")))
    })
    .map_err(Error::from)
}

/// Env references resolved from the environment; every missing one is reported.
fn resolve_live(job: &Job) -> Result<Job, Error> {
    crate::job::resolve_env(job, &|name| std::env::var(name).ok()).map_err(|e| {
        eprintln!("{:?}", miette::Report::new(e));
        Error::Reported
    })
}

/// Expands the fan-outs over discovered items: with the values a resumed run recorded, else
/// with what discovery finds now; the job file is loaded again with them (so every expansion
/// is validated like any step) and made ready as the first load was.
async fn expand_discovered(
    args: &RunArgs,
    overrides: &[(String, String)],
    template: Job,
    config: &ClientConfig,
    sim: Option<&SimServer>,
) -> Result<(Job, crate::job::Discovered), Error> {
    let found = match recorded_discoveries(args, &template) {
        Some(found) => found,
        None => {
            let client = PowerBiClient::new(config.clone(), template.connections.clone())?;
            crate::plan::fan_out::discover(&client, &template)
                .await
                .map_err(|e| Error::FanOutDiscovery {
                    step: e.step,
                    source: Box::new(e.source),
                })?
        }
    };
    for (id, values) in &found {
        tracing::info!(
            step = %id,
            count = values.len(),
            "for_each: {} item(s) discovered",
            values.len()
        );
    }
    let mut job = match crate::job::load_discovered(&args.job, overrides, &found) {
        Ok(loaded) => loaded.job,
        Err(diags) => {
            super::load::print_diagnostics(&diags);
            return Err(Error::Reported);
        }
    };
    if let Some(retries) = args.retries {
        for step in job.steps.values_mut() {
            step.retries = retries;
        }
    }
    let job = match sim {
        Some(sim) => sim.point_job_at(resolve_simulated(&job)?),
        None => resolve_live(&job)?,
    };
    Ok((job, found))
}

/// What the run being resumed discovered (recorded with its arguments), when it recorded a
/// value list for every fan-out awaiting discovery: a resume runs the same expansions.
fn recorded_discoveries(args: &RunArgs, job: &Job) -> Option<crate::job::Discovered> {
    let resume = args.resume.as_deref()?;
    let path = crate::store::resolve_path(args.state.as_deref())?;
    let store = crate::store::Store::open_existing(&path).ok()??;
    let run = store.resolve_run_id(resume, Some(&job.name)).ok()?;
    let arguments = store.load_run(&run).ok()?.arguments;
    let found = crate::plan::fan_out::recorded(&arguments);
    job.awaiting_discovery()
        .iter()
        .all(|(id, _)| found.contains_key(*id))
        .then_some(found)
}

async fn run_async(args: RunArgs, output: Output) -> Result<u8, Error> {
    let Prepared {
        plan,
        config,
        sim,
        target,
        discovered,
    } = prepare(&args).await?;

    if args.dry_run {
        crate::stdout::write(&format!(
            "dry run: nothing is sent; this is what would run, in order\n\n{}",
            crate::plan::render::to_text(&plan)
        ))?;
        if let Some(sim) = sim {
            sim.shutdown().await;
        }
        return Ok(exit::OK);
    }

    // Every file the run writes must be writable now, not only after the refreshes.
    let problems = crate::reporter::writable::check(&outputs(&args, &plan));
    if !problems.is_empty() {
        // One line each, never wrapped: scripts and CI logs grep for the path.
        for problem in &problems {
            eprintln!("error: {problem}");
        }
        eprintln!("nothing was sent");
        if let Some(sim) = sim {
            sim.shutdown().await;
        }
        return Err(Error::Reported);
    }

    let job = plan.job.clone();
    let client = PowerBiClient::new(config, job.connections.clone())?;
    let executor: Arc<dyn Executor> = Arc::new(Dispatcher::new(client.clone(), job.clone()));

    let run_id = new_run_id();
    let interrupt = CancellationToken::new();
    super::signal::spawn_handler(interrupt.clone());

    // The state store: lock the job, read what a resume keeps, then record every event.
    let store_opts = crate::store::SessionOptions {
        state: args.state.clone(),
        wait_lock: args.wait_lock.clone(),
        resume: args.resume.clone(),
        force: args.force,
        run_id: run_id.clone(),
        arguments: with_discovered(run_arguments(&args), &discovered),
        target,
    };
    let mut session = crate::store::RunSession::start(job.clone(), store_opts).await?;
    // Capacity-aware limits: what the service says about the workspaces' capacities, once
    // the store accepted the run (a refused resume sends nothing) and before the first step
    // starts (the workspace lookups are the ones the steps would make).
    let capacities = capacity_limits(&client, &plan, output).await;

    let (tx, engine_rx) = mpsc::unbounded_channel();
    let (reporters_tx, rx) = mpsc::unbounded_channel();
    let mut reporters = Reporters::new();
    if output.json_logs {
        // Machine-read logs: one JSON object per state change, even with -q.
        reporters = reporters.with_json_lines(Box::new(std::io::stderr()));
    } else if !output.quiet {
        // Live progress on a terminal, plain log lines elsewhere (Kestra, CI).
        reporters = reporters.with_stderr(progress_mode(args.progress), output.verbose);
    }
    let reporter_task = reporters.spawn(rx);

    let mut options = crate::engine::EngineOptions {
        run_id,
        concurrency: args.concurrency,
        fail_fast: args.fail_fast,
        detach_on_interrupt: args.on_interrupt == OnInterrupt::Detach,
        env: std::env::vars().collect(),
        unselected_failed: args.unselected_as == crate::cli::UnselectedAs::Failed,
        limits: capacities,
        ..Default::default()
    };
    if let Some(s) = session.as_mut() {
        options.durable = true;
        options.resume = s.take_resume();
        options.priority_hint = s.priority_hint().clone();
    }
    // `expected_duration`: stated, or learned from the local history, else the service's.
    let usual = session
        .as_ref()
        .map(|s| s.usual_durations().clone())
        .unwrap_or_default();
    let (expected, read) =
        crate::executor::estimate::expected_durations(&executor, &plan, &usual, &interrupt).await;
    options.expected = expected;
    for (id, e) in &options.expected {
        if e.limit().is_none() {
            tracing::info!(
                "{id}: `expected_duration: auto` has {} of the {} past successful runs it learns from: nothing is flagged this run",
                e.runs.unwrap_or_default(),
                crate::event::AUTO_MIN_RUNS
            );
        }
    }
    // Steps the local history knows nothing of: the service's run history ranks them.
    let from_service = crate::executor::estimate::service_hints(
        &executor,
        &plan,
        args.concurrency.unwrap_or(plan.job.concurrency),
        &options.priority_hint,
        &read,
        &interrupt,
    )
    .await;
    if !from_service.is_empty() {
        tracing::info!(
            "{} of {} steps ranked by the durations of their recent runs in the service",
            from_service.len(),
            plan.selected.len()
        );
        options.priority_hint.extend(from_service);
    }
    // Every event goes to the store first (what a kill must not lose), then to the reporters.
    let forward = crate::store::RunSession::forward(session, engine_rx, reporters_tx);
    let status = crate::engine::run(plan.clone(), executor, options, interrupt.clone(), tx).await;
    let run_exit = match status {
        RunStatus::Succeeded => exit::OK,
        RunStatus::Failed => exit::FAILED,
        RunStatus::Cancelled if interrupt.is_cancelled() => exit::INTERRUPTED,
        RunStatus::Cancelled => exit::FAILED,
    };
    // From here on the requests were sent: a failure is never exit 2 ("nothing was sent").
    let session = forward
        .await
        .map_err(|e| Error::after_run(AfterRunError::Events(e), run_exit))?;
    let report = reporter_task
        .await
        .map_err(|e| Error::after_run(AfterRunError::Reporters(e), run_exit))?;
    if let Some(Err(e)) = session.map(crate::store::RunSession::finish) {
        tracing::warn!("the run history may be incomplete: {e}");
    }

    // Every file comes from the one folded report, so they agree with each other and with
    // what stderr showed. A file that cannot be written does not stop the others.
    let paths = ReportPaths::new(
        args.report.clone(),
        args.junit.clone(),
        args.summary.clone(),
    );
    let write_errors = paths.write_all(&report);
    let failed_paths: Vec<PathBuf> = write_errors
        .iter()
        .filter_map(|e| match e {
            ReportError::Io { path, .. } => Some(path.clone()),
            ReportError::Json(_) => args.report.clone(),
        })
        .collect();
    let written: Vec<(&str, PathBuf)> = paths
        .files()
        .into_iter()
        .filter(|(_, p)| !failed_paths.iter().any(|f| f == p))
        .map(|(k, p)| (k, p.to_path_buf()))
        .collect();
    if !output.json_logs {
        if output.quiet {
            // `-q` is "errors only": a failed run still says which steps failed and why.
            eprint!("{}", crate::reporter::summary::errors_only(&report));
        } else {
            let width = crate::term::stderr_width();
            eprint!(
                "{}",
                crate::reporter::summary::render_for_width(&report, &written, width)
            );
        }
    }
    if args.kestra {
        let files: Vec<(&str, &Path)> = written.iter().map(|(k, p)| (*k, p.as_path())).collect();
        // A closed stdout loses the lines, never the run's exit code.
        let _ = crate::stdout::write(&crate::reporter::kestra::render(&report, &files));
    }
    if let Some(sim) = sim {
        // What the simulator served, at `-v`: bench/run.sh reads it for requests per second.
        let c = sim.counters();
        tracing::info!(
            requests = c.requests,
            tokens_issued = c.tokens_issued,
            throttled = c.throttled,
            unavailable = c.unavailable,
            dropped_connections = c.dropped_connections,
            "simulator counters"
        );
        sim.shutdown().await;
    }
    if !write_errors.is_empty() {
        // Every path was checked before the first request, so this is something that changed
        // during the run. The refreshes happened: a run that succeeded but could not leave a
        // report fails (exit 1), never 2 ("nothing was sent"); a run that failed or was
        // interrupted keeps its own exit code. The other files were written.
        for e in &write_errors {
            eprintln!("error: {}", describe_write_error(e, &paths));
        }
        if status == RunStatus::Succeeded {
            return Ok(exit::FAILED);
        }
    }

    Ok(run_exit)
}

/// The run's arguments with what it discovered (`discovered`: step id -> values), which a
/// resume of it reuses.
fn with_discovered(
    mut arguments: serde_json::Value,
    discovered: &crate::job::Discovered,
) -> serde_json::Value {
    if !discovered.is_empty()
        && let Some(map) = arguments.as_object_mut()
    {
        map.insert("discovered".into(), serde_json::json!(discovered));
    }
    arguments
}

/// The capacity limits of the selected `dataset` steps (none with `capacity_limits: off`),
/// after printing the warnings about them (shared capacity, unknown SKU).
async fn capacity_limits(
    client: &PowerBiClient,
    plan: &Plan,
    output: Output,
) -> crate::engine::DataLimits {
    if !plan.job.capacity_limits {
        return crate::engine::DataLimits::default();
    }
    let selected: Vec<_> = plan.selected.iter().cloned().collect();
    let facts = crate::powerbi::capacities::learn(client, &plan.job, &selected).await;
    let capacity = crate::plan::capacity::plan(&plan.job, &selected, &facts);
    for w in &capacity.warnings {
        if output.json_logs {
            tracing::warn!("{w}");
        } else if !output.quiet {
            eprintln!("warning: {w}");
        }
    }
    for l in &capacity.limits {
        tracing::info!(
            capacity = %l.capacity_id,
            sku = %l.sku,
            limit = l.limit,
            "capacity limit: at most {} model refreshes at once",
            l.limit
        );
    }
    let (sizes, members) = capacity.pools();
    crate::engine::DataLimits { sizes, members }
}

/// Every file `run` writes: the report files, each selected report step's export and the
/// state database.
fn outputs(args: &RunArgs, plan: &Plan) -> Vec<crate::reporter::writable::Output> {
    use crate::reporter::writable::Output;
    let mut out = Vec::new();
    for (flag, path) in [
        ("--report", &args.report),
        ("--junit", &args.junit),
        ("--summary", &args.summary),
    ] {
        if let Some(path) = path {
            out.push(Output::new(flag, path.clone()));
        }
    }
    for id in &plan.selected {
        if let Some(step) = plan.job.steps.get(id)
            && let StepKind::Report(r) = &step.kind
        {
            out.push(Output::new(
                format!("export.path of step `{id}`"),
                r.export.path.clone(),
            ));
        }
    }
    if let Some(path) = crate::store::resolve_path(args.state.as_deref()) {
        out.push(Output {
            what: "the state database".into(),
            path,
            in_place: true,
        });
    }
    out
}

/// `failed to write --junit out/j.xml: not a directory (a file is in the way)`.
fn describe_write_error(e: &ReportError, paths: &ReportPaths) -> String {
    match e {
        ReportError::Io { path, source } => {
            let what = paths
                .files()
                .into_iter()
                .find(|(_, p)| *p == path.as_path())
                .map_or("GITHUB_STEP_SUMMARY", |(kind, _)| match kind {
                    "report" => "--report",
                    "junit" => "--junit",
                    _ => "--summary",
                });
            format!(
                "failed to write {what} {}: {}",
                path.display(),
                crate::reporter::writable::words(source)
            )
        }
        ReportError::Json(e) => format!("failed to write --report: {e}"),
    }
}

/// The arguments of `pbibatch run` worth keeping in the history (no secret can be among
/// them: credentials only come from the job file and the environment).
fn run_arguments(args: &RunArgs) -> serde_json::Value {
    serde_json::json!({
        "job": args.job.display().to_string(),
        "select": args.selection.select,
        "exclude": args.selection.exclude,
        "vars": args.selection.vars,
        "concurrency": args.concurrency,
        "fail_fast": args.fail_fast,
        "resume": args.resume,
        "force": args.force,
        "dry_run": args.dry_run,
        "simulate": args.simulate,
        "on_interrupt": format!("{:?}", args.on_interrupt).to_lowercase(),
    })
}

fn progress_mode(progress: Progress) -> ProgressMode {
    match progress {
        Progress::Auto => ProgressMode::Auto,
        Progress::Always => ProgressMode::Always,
        Progress::Never => ProgressMode::Never,
    }
}

/// A sortable, unique run id: `20261125T201502Z-1a2b3c4d`.
fn new_run_id() -> String {
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{now}-{}", &rand[..8])
}

/// [`crate::sim::start_for_job`], its failure as the command's error.
pub(super) async fn start_simulator(
    job: &Job,
    profile: Profile,
) -> Result<(SimServer, Vec<String>), Error> {
    crate::sim::start_for_job(job, profile)
        .await
        .map_err(Error::SimStart)
}

/// A client configuration that sends every call (Power BI, Fabric, Entra, IMDS) to `sim`.
pub(super) fn simulator_config(sim: &SimServer) -> Result<ClientConfig, Error> {
    sim.client_config()
        .map_err(|e| Error::Internal(format!("the simulator's address is not a URL: {e}")))
}

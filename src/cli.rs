//! Command-line types (clap derive only; the work is done in the stages).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Refresh Power BI and Microsoft Fabric resources in dependency order, from one YAML job file.
#[derive(Debug, Parser)]
#[command(name = "pbibatch", version = env!("PBIBATCH_VERSION"), about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Less log output (errors only).
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a job: refresh its steps in dependency order.
    Run(RunArgs),
    /// Check job files without sending anything; exit 2 when one is invalid.
    Validate(ValidateArgs),
    /// Show what would run: waves, selected steps and their resolved settings.
    Plan(PlanArgs),
    /// Print the dependency graph (Mermaid or Graphviz dot).
    Graph(GraphArgs),
    /// Print the JSON Schema of the job file.
    Schema,
    /// List workspaces and items, read lineage, emit a job skeleton.
    Discover(DiscoverArgs),
    /// List past runs from the state store.
    History(HistoryArgs),
    /// Show one past run (`last` for the latest).
    Show(ShowArgs),
    /// Check credentials.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// The local Power BI / Fabric simulator.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Export a job to another tool (a Kestra flow).
    #[command(subcommand)]
    Export(ExportCommand),
    /// Print shell completions.
    Completions {
        /// bash, zsh, fish, powershell or elvish.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnInterrupt {
    /// Cancel in-flight remote refreshes where the API allows it.
    Cancel,
    /// Leave in-flight remote refreshes running.
    Detach,
}

/// Step selection, shared by `run` and `plan`.
#[derive(Debug, Clone, Default, Args)]
pub struct SelectArgs {
    /// Steps to run: `step`, `step+` (and downstream), `+step` (and upstream), `tag:T`,
    /// `type:T`. Repeat for a union.
    #[arg(long = "select", short = 's', value_name = "SEL")]
    pub select: Vec<String>,
    /// Steps to leave out (same syntax); applied after --select.
    #[arg(long = "exclude", short = 'x', value_name = "SEL")]
    pub exclude: Vec<String>,
    /// Override a job variable (repeatable).
    #[arg(long = "var", value_name = "K=V")]
    pub vars: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The job file.
    pub job: PathBuf,
    #[command(flatten)]
    pub selection: SelectArgs,
    /// Steps in flight at once (overrides the job's `concurrency`).
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// After the first failure start nothing new; running steps finish.
    #[arg(long)]
    pub fail_fast: bool,
    /// Override every step's `retries` (0..=100); `--retries 0` when an orchestrator such as
    /// Kestra retries the whole command itself.
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// Resume a failed run: `last` or a run id.
    #[arg(long, value_name = "RUN_ID|last")]
    pub resume: Option<String>,
    /// With --resume: accept a changed job file (only unchanged steps keep their status).
    #[arg(long)]
    pub force: bool,
    /// Show what would run, in order, with resolved settings; send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Run against the built-in simulator (no credentials, nothing leaves loopback).
    #[arg(long)]
    pub simulate: bool,
    /// Simulator profile (YAML) for --simulate.
    #[arg(long, value_name = "FILE", requires = "simulate")]
    pub sim_profile: Option<PathBuf>,
    /// Write the JSON run report here.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a Markdown summary here.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    /// Print Kestra `::{"outputs":...}::` and `::{"metrics":...}::` lines at the end.
    #[arg(long)]
    pub kestra: bool,
    /// Live progress: `auto` on a terminal that can redraw (not `TERM=dumb`), `always` on any
    /// terminal (even `TERM=dumb`; never into a pipe or file, where log lines are written),
    /// `never`: log lines only.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,
    /// State store (SQLite); `none` for no store. Default `.pbibatch/state.db`.
    #[arg(long, env = "PBIBATCH_STATE", value_name = "DB")]
    pub state: Option<String>,
    /// Wait this long for another run of the same job to finish instead of refusing.
    #[arg(long, value_name = "DURATION")]
    pub wait_lock: Option<String>,
    /// On SIGINT/SIGTERM: cancel in-flight remote work, or leave it running.
    #[arg(long, value_enum, default_value_t = OnInterrupt::Cancel)]
    pub on_interrupt: OnInterrupt,
    /// How dependencies left out by --select count for trigger rules and `when:`:
    /// `succeeded` (default), or `failed`, for a notification step run on its own from a
    /// scheduler's error handler (the Kestra export's `errors:` tasks).
    #[arg(long, value_enum, default_value_t = UnselectedAs::Succeeded, value_name = "STATUS")]
    pub unselected_as: UnselectedAs,
}

/// `run --unselected-as`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UnselectedAs {
    /// A dependency left out counts as succeeded.
    Succeeded,
    /// A dependency left out counts as failed.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiagnosticFormat {
    /// Rendered diagnostics with source snippets.
    Human,
    /// One line per problem: `path:line:col: error|warning: message`.
    Short,
    /// A JSON array of problems.
    Json,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Job files to check.
    #[arg(required = true)]
    pub jobs: Vec<PathBuf>,
    /// `human`: diagnostics with the YAML text; `short`: `path:line:col: error|warning:
    /// message`, one per line (editors' and CI problem matchers); `json`: for scripts.
    #[arg(long, value_enum, default_value_t = DiagnosticFormat::Human)]
    pub format: DiagnosticFormat,
    /// No warnings for environment variables the job reads that are not set here (the
    /// connection's credentials, `${env.NAME}`): for validation without the secrets, as in
    /// CI on pull requests. `run` still requires them.
    #[arg(long)]
    pub allow_unset_env: bool,
    /// Also compare declared dependencies with the live lineage (needs credentials).
    #[arg(long)]
    pub lineage: bool,
    /// With --lineage: check against the built-in simulator's demo estate (or --sim-profile).
    #[arg(long, requires = "lineage")]
    pub simulate: bool,
    /// Simulator profile (YAML) for --simulate.
    #[arg(long, value_name = "FILE", requires = "simulate")]
    pub sim_profile: Option<PathBuf>,
    /// Override a job variable (repeatable).
    #[arg(long = "var", value_name = "K=V")]
    pub vars: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The job file.
    pub job: PathBuf,
    #[command(flatten)]
    pub selection: SelectArgs,
    /// `text`: waves and each step's resolved settings; `json`: the same for scripts.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Also look up the capacity of each `dataset` step's workspace now (credentials as for
    /// `run`) and show the limits a run would respect and the shared-capacity warnings.
    #[arg(long)]
    pub capacities: bool,
    /// With --capacities: ask the built-in simulator (as `run --simulate` would).
    #[arg(long, requires = "capacities")]
    pub simulate: bool,
    /// Simulator profile (YAML) for --simulate.
    #[arg(long, value_name = "FILE", requires = "simulate")]
    pub sim_profile: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Mermaid,
    Dot,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The job file.
    pub job: PathBuf,
    /// `mermaid` (renders in GitHub and Azure DevOps Markdown) or `dot` (Graphviz).
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    pub format: GraphFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TableFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// Workspace name or GUID (repeatable); all visible workspaces when omitted.
    #[arg(long)]
    pub workspace: Vec<String>,
    /// Show lineage edges (dataflow -> dataflow -> dataset -> report).
    #[arg(long)]
    pub lineage: bool,
    /// Write a job skeleton here.
    #[arg(long, value_name = "FILE")]
    pub emit_job: Option<PathBuf>,
    /// `table` for people, `json` for scripts.
    #[arg(long, value_enum, default_value_t = TableFormat::Table)]
    pub format: TableFormat,
    /// Connection settings come from this job file's `connections:`.
    #[arg(long, value_name = "JOB")]
    pub job: Option<PathBuf>,
    /// Discover the built-in simulator's estate.
    #[arg(long)]
    pub simulate: bool,
    /// Simulator profile (YAML) for --simulate instead of the built-in demo estate.
    #[arg(long, value_name = "FILE", requires = "simulate")]
    pub sim_profile: Option<PathBuf>,
    /// With --job: the connection to discover with (default `default`).
    #[arg(long, value_name = "NAME")]
    pub connection: Option<String>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only the runs of this job (its `name:`).
    #[arg(long, value_name = "NAME")]
    pub job: Option<String>,
    /// At most this many runs, newest first.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// `table` for people, `json` for scripts.
    #[arg(long, value_enum, default_value_t = TableFormat::Table)]
    pub format: TableFormat,
    /// The run history (SQLite) to read [default: .pbibatch/state.db].
    #[arg(long, env = "PBIBATCH_STATE", value_name = "DB")]
    pub state: Option<String>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A run id, or `last`.
    pub run: String,
    /// `table` for people, `json` (the run report) for scripts.
    #[arg(long, value_enum, default_value_t = TableFormat::Table)]
    pub format: TableFormat,
    /// The run history (SQLite) to read [default: .pbibatch/state.db].
    #[arg(long, env = "PBIBATCH_STATE", value_name = "DB")]
    pub state: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Acquire each scope's token and report what it can see (never prints a token).
    Check {
        /// Only this connection.
        #[arg(long)]
        connection: Option<String>,
        /// Job file whose `connections:` to check; each connection also tries one query on
        /// each model its `data_check` steps query (Execute Queries).
        #[arg(long, value_name = "JOB")]
        job: Option<PathBuf>,
        /// Check against the built-in simulator (its credentials; nothing leaves loopback).
        #[arg(long)]
        simulate: bool,
        /// Simulator profile (YAML) for --simulate.
        #[arg(long, value_name = "FILE", requires = "simulate")]
        sim_profile: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Serve the simulator until Ctrl-C; prints its base URLs.
    Serve {
        /// Address to listen on; port 0 picks a free port (printed at start). Loopback only
        /// unless you mean to share it.
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: String,
        /// Simulator profile (YAML).
        #[arg(long, value_name = "FILE")]
        profile: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// A Kestra flow: a Dag task with one task per step, each running
    /// `pbibatch run JOB --select STEP --kestra`.
    Kestra(ExportKestraArgs),
}

#[derive(Debug, Args)]
pub struct ExportKestraArgs {
    /// The job file, as the Kestra tasks will see it (a namespace file path).
    pub job: PathBuf,
    /// Kestra namespace of the flow.
    #[arg(long, default_value = "pbibatch", value_name = "NS")]
    pub namespace: String,
    /// Add a Schedule trigger with this cron expression (e.g. "0 2 * * *", UTC).
    #[arg(long, value_name = "CRON")]
    pub cron: Option<String>,
    /// Container image with `pbibatch` on its PATH (Docker task runner).
    #[arg(long, value_name = "IMAGE", conflicts_with = "process")]
    pub image: Option<String>,
    /// Run on the Kestra worker itself (Process task runner) instead of a container.
    #[arg(long)]
    pub process: bool,
    /// Write the flow here instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Override a job variable (repeatable); passed on to every task's command too.
    #[arg(long = "var", value_name = "K=V")]
    pub vars: Vec<String>,
}

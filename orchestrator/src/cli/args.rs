//! The command line's shape (clap).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "tuna",
    version,
    about = "A workflow DAG orchestrator for LLM fine-tuning experiments"
)]
pub struct Cli {
    /// Where tuna keeps its store, artifacts and logs (default: the nearest .tuna/ folder).
    #[arg(long, global = true, env = "TUNA_HOME")]
    pub home: Option<PathBuf>,
    /// The runner inventory (default: $TUNA_RUNNERS, else ~/.config/tuna/runners.yaml, else one local runner).
    #[arg(long, global = true)]
    pub runners: Option<PathBuf>,
    /// Format of tuna's own log lines (RUST_LOG sets the level).
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// A tuna daemon to talk to (`runs`, `status`, `logs`, `cancel`, `resume`, `submit`,
    /// `schedule`, `leaderboard`), e.g. http://127.0.0.1:7878.
    #[arg(long, global = true, env = "TUNA_SERVER")]
    pub server: Option<String>,
    /// The bearer token for --server.
    #[arg(long, global = true, env = "TUNA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// How a run shows progress.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// Bars on a terminal, plain lines otherwise.
    Auto,
    Bars,
    Plain,
    Quiet,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    Ascii,
    Dot,
    Mermaid,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check workflow files; print every problem with file:line:col.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print a workflow's DAG.
    Graph {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "ascii")]
        format: GraphFormat,
    },
    /// Say, for every step, whether it would be a cache hit, and why not.
    Plan {
        file: PathBuf,
        /// Override a param: -p name=value (repeatable).
        #[arg(short = 'p', long = "param", value_parser = parse_kv)]
        params: Vec<(String, String)>,
        #[arg(long)]
        no_cache: bool,
        #[arg(long)]
        json: bool,
    },
    /// Run a workflow.
    Run {
        file: PathBuf,
        /// Override a param: -p name=value (repeatable).
        #[arg(short = 'p', long = "param", value_parser = parse_kv)]
        params: Vec<(String, String)>,
        /// Steps at once (default: cores).
        #[arg(short = 'j', long)]
        jobs: Option<usize>,
        /// Run every step, ignoring cached results.
        #[arg(long)]
        no_cache: bool,
        /// Do not export this run to the MLflow tracking server (`tracking:`, MLFLOW_TRACKING_URI).
        #[arg(long)]
        no_tracking: bool,
    },
    /// Continue a failed, cancelled or crashed run.
    Resume {
        run: Option<String>,
        /// The newest run.
        #[arg(long, conflicts_with = "run")]
        last: bool,
        #[arg(short = 'j', long)]
        jobs: Option<usize>,
        /// Do not export this run to the MLflow tracking server (`tracking:`, MLFLOW_TRACKING_URI).
        #[arg(long)]
        no_tracking: bool,
    },
    /// List runs.
    Runs {
        #[arg(long)]
        json: bool,
    },
    /// A run's steps, statuses and metrics.
    Status {
        /// A run id, or `last`.
        run: String,
        #[arg(long)]
        json: bool,
    },
    /// A step's log.
    Logs {
        run: String,
        step: String,
        /// Keep printing while the step runs.
        #[arg(short = 'f', long)]
        follow: bool,
        /// stderr instead of stdout.
        #[arg(long)]
        stderr: bool,
        /// Which attempt (default: the last).
        #[arg(long)]
        attempt: Option<u32>,
    },
    /// Stop a running run (it stays resumable).
    Cancel { run: String },
    /// Copy a step's outputs into a folder, fetching those kept on a runner's machine (each
    /// file checked against its digest).
    Pull {
        /// A run id, or `last`.
        run: String,
        step: String,
        /// Where the outputs go, each under its declared name (default: ./STEP-outputs).
        #[arg(long)]
        to: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Drop unreferenced artifacts and old attempt folders, here, on every ssh runner's host
    /// and in every Ray runner's bucket.
    Gc {
        /// Keep only the N newest runs (default: keep every run, drop only older attempts).
        #[arg(long)]
        keep: Option<usize>,
        /// Clean only this runner's host or bucket (repeatable; default: every one).
        #[arg(long, value_name = "NAME", conflicts_with = "local_only")]
        runner: Vec<String>,
        /// Clean this machine only, leave the hosts alone.
        #[arg(long)]
        local_only: bool,
        /// Say what would go, delete nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of the workflow format.
    Schema,
    /// List the built-in step kinds (`uses:`).
    Kinds,
    /// Run a built-in step inside its runner (what a `uses:` step's job runs; reads
    /// TUNA_STEP_KIND, TUNA_STEP_WITH, TUNA_OUTPUTS, TUNA_STATE, TUNA_METRICS).
    #[command(hide = true)]
    ExecStep,
    /// Run one attempt on a Ray node (the entrypoint of a Ray runner's jobs): place its inputs
    /// from the shared folder or the bucket (`s3://…`, credentials from this environment), run
    /// its script, put its outputs back, record how it ended.
    #[command(hide = true)]
    RayExec {
        /// The shared folder, or `s3://BUCKET/PREFIX`.
        store: String,
        /// The attempt folder (the node's own, removed at the end, for a bucket).
        dir: PathBuf,
        /// Bucket: the server's URL.
        #[arg(long)]
        endpoint: Option<String>,
        /// Bucket: the region requests are signed for.
        #[arg(long)]
        region: Option<String>,
        /// Bucket: `RUN/STEP/ATTEMPT`, where the attempt's records are.
        #[arg(long)]
        attempt: Option<String>,
        /// The runner's name, for messages.
        #[arg(long)]
        runner: Option<String>,
    },
    /// Serve a model over HELM's HTTP model API (/process, /tokenize, /decode); runs
    /// `tuna-ml serve-model` with the same flags.
    ServeModel(tuna_steps::settings::ServeModelArgs),
    /// Run the daemon: HTTP API, dashboard, cron schedules and the leaderboard.
    Serve {
        /// Address to listen on (port 0: any free port; the address is printed).
        #[arg(long, default_value = "127.0.0.1:7878")]
        listen: std::net::SocketAddr,
        /// File with the accepted bearer tokens, one a line (also: TUNA_SERVE_TOKENS,
        /// comma-separated).
        #[arg(long)]
        tokens: Option<PathBuf>,
        #[command(flatten)]
        limits: super::project::LimitArgs,
        #[command(flatten)]
        net: super::net_args::NetArgs,
        /// An environment variable of the daemon's that steps get too (repeatable; `NAME` or
        /// `PREFIX*`). Steps otherwise get only PATH, HOME, the locale and a short documented
        /// list, never the daemon's tokens or other `TUNA_*` variables.
        #[arg(long = "pass-env", value_name = "NAME")]
        pass_env: Vec<String>,
    },
    /// Send a workflow to a daemon (--server): it runs there, or is scheduled if it has
    /// `schedule:`.
    Submit {
        file: PathBuf,
        /// Override a param: -p name=value (repeatable).
        #[arg(short = 'p', long = "param", value_parser = parse_kv)]
        params: Vec<(String, String)>,
        /// Wait for the run, printing step changes; exit like `tuna run`.
        #[arg(short = 'f', long)]
        follow: bool,
        #[arg(long)]
        no_cache: bool,
    },
    /// Cron schedules registered with a daemon (--server).
    Schedule {
        #[command(subcommand)]
        command: ScheduleCommand,
    },
    /// The leaderboard: latest score per model and metric, change since the previous night,
    /// regressions.
    Leaderboard {
        #[arg(long, value_enum, default_value = "table")]
        format: BoardFormat,
        /// A drop larger than this since the previous night is a regression.
        #[arg(long, default_value_t = 0.01)]
        threshold: f64,
        /// Only this suite.
        #[arg(long)]
        suite: Option<String>,
    },
    /// Experiment tracking (MLflow).
    Track {
        #[command(subcommand)]
        command: TrackCommand,
    },
    /// The runner inventory.
    Runners {
        #[command(subcommand)]
        action: RunnersAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrackCommand {
    /// Send to the tracking server what it lacks of runs (what could not be sent while it was
    /// down); without RUN, every run kept pending.
    Sync {
        /// Run ids (none: every run kept pending).
        runs: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Register a workflow that has `schedule:`.
    Add {
        file: PathBuf,
        #[arg(short = 'p', long = "param", value_parser = parse_kv)]
        params: Vec<(String, String)>,
    },
    /// Schedules and their next fire times.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Unregister a schedule.
    Remove { name: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BoardFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, clap::Subcommand)]
pub enum RunnersAction {
    /// Connect to each runner: reachable, auth failed or host key refused, and its GPUs.
    Check {
        #[arg(long)]
        json: bool,
    },
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not name=value"))?;
    if k.is_empty() {
        return Err(format!("`{s}` has an empty name"));
    }
    Ok((k.to_string(), v.to_string()))
}

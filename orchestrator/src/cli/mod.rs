//! The `tuna` command line: argument parsing and one function per command. Only this module
//! maps errors to exit codes (see [`exit`]).

mod access;
mod args;
mod board;
mod client;
mod exit;
mod files;
mod gc;
mod inspect;
mod kinds;
mod net_args;
mod open;
mod project;
mod pull;
mod run;
mod runners;
mod schedule;
mod serve;
mod submit;
mod summary;
mod track;

pub use args::Cli;
pub use exit::Fail;

use args::{Command, RunnersAction};

/// Runs a parsed command line; the process exit code.
pub fn main(cli: Cli) -> u8 {
    init_tracing(&cli);
    if prints_only(&cli.command) {
        end_quietly_on_a_closed_pipe();
    }
    let result = match &cli.command {
        Command::Validate { files } => files::validate(files),
        Command::Graph { file, format } => files::graph(file, *format),
        Command::Plan {
            file,
            params,
            no_cache,
            json,
        } => files::plan(&cli, file, params, *no_cache, *json),
        Command::Schema => files::schema(),
        Command::Kinds => kinds::list(),
        Command::ExecStep => kinds::exec_step(),
        Command::RayExec {
            store,
            dir,
            endpoint,
            region,
            attempt,
            runner,
        } => {
            let args = tuna_runners::ray::ExecArgs {
                store: store.clone(),
                dir: dir.clone(),
                endpoint: endpoint.clone(),
                region: region.clone(),
                attempt: attempt.clone(),
                runner: runner.clone(),
            };
            Ok(tuna_runners::ray::ray_exec(&args).clamp(0, 255) as u8)
        }
        Command::ServeModel(args) => kinds::serve_model(args),
        Command::Run {
            file,
            params,
            jobs,
            no_cache,
            no_tracking,
        } => run::run(&cli, file, params, *jobs, *no_cache, !*no_tracking),
        Command::Resume {
            run,
            last,
            jobs,
            no_tracking,
        } => run::resume(&cli, run.as_deref(), *last, *jobs, !*no_tracking),
        Command::Runs { json } => inspect::runs(&cli, *json),
        Command::Status { run, json } => inspect::status(&cli, run, *json),
        Command::Logs {
            run,
            step,
            follow,
            stderr,
            attempt,
        } => inspect::logs(&cli, run, step, *follow, *stderr, *attempt),
        Command::Cancel { run } => inspect::cancel(&cli, run),
        Command::Pull {
            run,
            step,
            to,
            json,
        } => pull::pull(&cli, run, step, to.as_deref(), *json),
        Command::Gc {
            keep,
            runner,
            local_only,
            dry_run,
            json,
        } => gc::gc(&cli, *keep, runner, *local_only, *dry_run, *json),
        Command::Serve {
            listen,
            tokens,
            limits,
            net,
            pass_env,
        } => serve::serve(&cli, *listen, tokens.as_deref(), limits, net, pass_env),
        Command::Submit {
            file,
            params,
            follow,
            no_cache,
        } => submit::submit(&cli, file, params, *follow, *no_cache),
        Command::Schedule { command } => schedule::schedule(&cli, command),
        Command::Track { command } => track::track(&cli, command),
        Command::Leaderboard {
            format,
            threshold,
            suite,
        } => board::leaderboard(&cli, *format, *threshold, suite.as_deref()),
        Command::Runners {
            action: RunnersAction::Check { json },
        } => runners::check(&cli, *json),
    };
    match result {
        Ok(code) => code,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("{}", f.message);
            }
            f.code
        }
    }
}

/// Commands that only print what they read (no runs, no servers), so that `tuna status | head`
/// ends as any Unix filter does when its reader goes away.
fn prints_only(command: &Command) -> bool {
    matches!(
        command,
        Command::Validate { .. }
            | Command::Graph { .. }
            | Command::Plan { .. }
            | Command::Schema
            | Command::Kinds
            | Command::Runs { .. }
            | Command::Status { .. }
            | Command::Logs { .. }
            | Command::Leaderboard { .. }
            | Command::Schedule {
                command: args::ScheduleCommand::List { .. }
            }
    )
}

/// Rust ignores SIGPIPE, so a `println!` to a closed pipe panics; the default action ends the
/// process silently instead, as `cat` or `grep` do.
fn end_quietly_on_a_closed_pipe() {
    // SAFETY: setting a signal's disposition to its default, before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn init_tracing(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cli.log_format {
        args::LogFormat::Json => builder.json().try_init(),
        args::LogFormat::Text => builder.try_init(),
    };
}

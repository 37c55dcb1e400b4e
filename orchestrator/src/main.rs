//! The `tuna` binary: parses the command line and hands it to [`tuna::cli`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = tuna::cli::Cli::parse();
    std::process::ExitCode::from(tuna::cli::main(cli))
}

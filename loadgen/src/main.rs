//! The `loadgen` binary: parses the command line and runs one subcommand.
use std::process::ExitCode;

use clap::Parser;
use loadgen::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    match loadgen::cli::run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

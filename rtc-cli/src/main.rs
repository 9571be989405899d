//! `rtc`: operate an rtc cache from the command line (invalidate tags, look at entries, count
//! what a namespace holds, check the server). Run `rtc --help`.

use std::process::ExitCode;

use clap::Parser;

mod access;
mod census;
mod check;
mod cli;
mod entries;
mod error;
mod server;
mod stats;
mod target;

use cli::{Cli, Command};
use error::CliError;
use target::Target;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rtc: {error}");
            error.exit_code()
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let target = Target::new(cli.connection)?;
    match cli.command {
        Command::Invalidate { tags } => entries::invalidate(&target, &tags),
        Command::InvalidateAll => entries::invalidate_all(&target),
        Command::Get(entry) => entries::get(&target, &entry),
        Command::Delete(entry) => entries::delete(&target, &entry),
        Command::Stats {
            json,
            memory_samples,
        } => stats::run(&target, json, memory_samples),
        Command::Check => check::run(&target),
    }
}

//! `rtc`: operate an rtc cache from the command line (invalidate tags, look at entries, count
//! what a namespace holds, check the server). Run `rtc --help`.
//!
//! Exit codes (the [`exit`] module): 0 done (`get`: found), 1 `get`: a miss, 2 bad usage,
//! 3 Redis unreachable, refusing or failing, 4 the namespace holds no keys.

use std::process::ExitCode;

use clap::Parser;

mod access;
mod census;
mod check;
mod cli;
mod entries;
mod error;
mod exit;
mod server;
mod stats;
mod target;

use cli::{Cli, Command};
use error::CliError;
use exit::Outcome;
use target::Target;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(outcome) => outcome.exit_code(),
        Err(error) => {
            eprintln!("rtc: {error}");
            error.exit_code()
        }
    }
}

fn run(cli: Cli) -> Result<Outcome, CliError> {
    let target = Target::new(cli.connection)?;
    let done = |()| Outcome::Done;
    match cli.command {
        Command::Invalidate { tags } => entries::invalidate(&target, &tags).map(done),
        Command::InvalidateAll => entries::invalidate_all(&target).map(done),
        Command::Get(entry) => entries::get(&target, &entry),
        Command::Delete(entry) => entries::delete(&target, &entry).map(done),
        Command::Stats {
            json,
            memory_samples,
        } => stats::run(&target, json, memory_samples).map(done),
        Command::Check => check::run(&target).map(done),
    }
}

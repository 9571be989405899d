//! The exit codes: one meaning each, the same for every subcommand.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done; `get`: the entry was found (and printed) |
//! | 1 | `get` only: a miss, no fresh entry under that key and exactly those tags |
//! | 2 | bad usage: an unknown flag or subcommand, a missing argument, a bad URL or setting |
//! | 3 | Redis could not be reached, refused the credentials or a command, failed, or cannot serve rtc |
//! | 4 | the namespace holds no keys on the server (`get`, `delete`, `stats`): most often a mistyped `--namespace` |

use std::process::ExitCode;

/// The command did what was asked.
pub const DONE: u8 = 0;
/// `rtc get` found no fresh entry.
pub const MISS: u8 = 1;
/// Bad usage; clap exits with this code too when it rejects the command line.
pub const USAGE: u8 = 2;
/// Redis could not be reached, refused, or failed.
pub const REDIS: u8 = 3;
/// The namespace holds no keys.
pub const EMPTY_NAMESPACE: u8 = 4;

/// The exit codes as `rtc --help` lists them.
pub const HELP: &str = "\
Exit codes:
  0  done (get: the entry was found)
  1  get: a miss (no fresh entry under that key and exactly those tags)
  2  bad usage: unknown flag or subcommand, missing argument, bad URL or setting
  3  Redis could not be reached, refused the credentials or a command, or failed
  4  the namespace holds no keys on the server (get, delete, stats): a mistyped --namespace?";

/// How a command that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done; for `get`, the entry was found.
    Done,
    /// `get` found no fresh entry.
    Miss,
}

impl Outcome {
    /// [`DONE`] or [`MISS`].
    pub fn exit_code(self) -> ExitCode {
        ExitCode::from(match self {
            Outcome::Done => DONE,
            Outcome::Miss => MISS,
        })
    }
}

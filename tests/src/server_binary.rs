//! Which server binary the harness runs, and what that binary can do.
//!
//! By default the tests start `redis-server` and create clusters with `redis-cli`, both from
//! `PATH`. [`SERVER_VAR`] and [`CLI_VAR`] name other binaries, e.g. Valkey's:
//!
//! ```text
//! RTC_TEST_SERVER=/opt/valkey/bin/valkey-server RTC_TEST_CLI=/opt/valkey/bin/valkey-cli \
//!     cargo test -p rtc-tests --test engine
//! ```

use std::fs::File;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::free_port;

/// Environment variable naming the server binary (default `redis-server`).
pub const SERVER_VAR: &str = "RTC_TEST_SERVER";
/// Environment variable naming the cli that creates clusters (default `redis-cli`).
pub const CLI_VAR: &str = "RTC_TEST_CLI";
/// Environment variable that turns a server without TLS into a failure of the TLS tests instead
/// of a skip: for runs where TLS must be covered.
pub const REQUIRE_TLS_VAR: &str = "RTC_TEST_REQUIRE_TLS";

/// How long the TLS probe may take before the probed server is killed.
const PROBE_LIMIT: Duration = Duration::from_secs(10);

/// The server binary the tests start.
pub fn server_program() -> String {
    program(SERVER_VAR, "redis-server")
}

/// The cli binary that creates clusters.
pub fn cli_program() -> String {
    program(CLI_VAR, "redis-cli")
}

fn program(variable: &str, default: &str) -> String {
    std::env::var(variable)
        .ok()
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// What the server binary says about itself (`--version`), for messages.
pub fn server_version() -> String {
    Command::new(server_program())
        .arg("--version")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_else(|error| format!("{} (does not run: {error})", server_program()))
}

/// `Ok` when the server binary was built with TLS, else why not. Probed once per process.
///
/// The probe starts the binary with a TLS port and no certificates: a build with TLS stops
/// because it cannot configure TLS without them; a build without TLS stops saying that it has
/// no TLS. Only that second answer counts as "no TLS", so a probe that goes wrong otherwise
/// leaves the TLS tests to run (and to fail with the server's own log).
pub fn tls_support() -> &'static Result<(), String> {
    static SUPPORT: OnceLock<Result<(), String>> = OnceLock::new();
    SUPPORT.get_or_init(probe_tls)
}

/// Whether TLS tests must run even when [`tls_support`] says no ([`REQUIRE_TLS_VAR`] is set).
pub fn tls_required() -> bool {
    std::env::var_os(REQUIRE_TLS_VAR).is_some_and(|value| !value.is_empty() && value != "0")
}

fn probe_tls() -> Result<(), String> {
    let dir = tempfile::tempdir().expect("a temp dir for the TLS probe");
    let log_path = dir.path().join("probe.log");
    let log = File::create(&log_path).expect("a log file for the TLS probe");
    let program = server_program();
    let mut child = Command::new(&program)
        .args(["--port", "0"])
        .args(["--tls-port", &free_port().to_string()])
        .args(["--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .args(["--dir", &dir.path().display().to_string()])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("the probe log, twice"))
        .stderr(log)
        .spawn()
        .map_err(|error| format!("`{program}` does not run: {error}"))?;
    let started = Instant::now();
    while child.try_wait().ok().flatten().is_none() && started.elapsed() < PROBE_LIMIT {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let said = std::fs::read_to_string(&log_path).unwrap_or_default();
    if says_tls_is_missing(&said) {
        let last_words = said.lines().last().unwrap_or_default();
        Err(format!(
            "{} was built without TLS (started with --tls-port, it says: {:?})",
            server_version(),
            last_words
                .split_once(" # ")
                .map_or(last_words, |(_, message)| message)
        ))
    } else {
        Ok(())
    }
}

/// What a server without TLS says when asked for a TLS port: Redis 7 and Valkey 8 "Failed
/// finding TLS support", Redis 6 rejects the `tls-port` directive.
fn says_tls_is_missing(output: &str) -> bool {
    let output = output.to_ascii_lowercase();
    output.contains("tls support")
        || output.contains("connection type tls")
        || (output.contains("bad directive") && output.contains("'tls-port"))
}

#[cfg(test)]
mod tests {
    use super::says_tls_is_missing;

    #[test]
    fn the_words_of_a_server_without_tls_are_recognised() {
        assert!(says_tls_is_missing(
            "1:M 26 Nov 2026 13:52:23.459 # Missing implement of connection type tls\n\
             1:M 26 Nov 2026 13:52:23.459 # Failed finding TLS support."
        ));
        assert!(says_tls_is_missing(
            ">>> 'tls-port \"6380\"'\nBad directive or wrong number of arguments"
        ));
    }

    #[test]
    fn the_words_of_a_server_with_tls_are_not() {
        assert!(!says_tls_is_missing(
            "1:M 26 Nov 2026 13:52:23.469 # Either tls-ca-cert-file or tls-ca-cert-dir must be \
             specified\n1:M 26 Nov 2026 13:52:23.469 # Failed to configure TLS. Check logs."
        ));
    }
}

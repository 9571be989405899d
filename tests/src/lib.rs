//! Test support: real `redis-server` processes on free loopback ports.
//!
//! Each [`RedisServer`] runs its own `redis-server` (no persistence, log in a temp dir) and kills
//! it on drop, so tests run in parallel without sharing state. The process can be stopped,
//! frozen and restarted on the same port for fault tests. `RTC_TEST_SERVER` names another
//! server binary, e.g. Valkey's (see [`server_binary`]).
//!
//! Beside the servers: the staleness model and audit ([`staleness`]), the reader and writer
//! loops that use it ([`workers`]), explicit gates between threads ([`gates`]) and the statics
//! decorated functions read their cache from ([`statics`]).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub mod cluster;
pub mod gates;
pub mod rows;
pub mod sentinel;
pub mod server_binary;
pub mod staleness;
pub mod statics;
pub mod tls;
pub mod warnings;
pub mod workers;

/// How many ports a server tries when other processes take them first.
const PORT_ATTEMPTS: usize = 5;

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A `redis-server` (or [`server_binary::SERVER_VAR`]'s binary) child process, killed on drop.
pub struct RedisServer {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
    extra_args: Vec<String>,
    /// Written to `server.conf` in `dir` and given first, when set (a sentinel needs one).
    config: Option<String>,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers `PING`.
    ///
    /// # Panics
    /// When the server binary is not installed or does not start: the message says what to do.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Like [`RedisServer::start`], with extra `redis-server` arguments (`["--maxmemory", "1mb"]`).
    pub fn start_with(extra_args: &[&str]) -> Self {
        Self::start_on_free(free_port, extra_args)
    }

    /// Like [`RedisServer::start_with`], on the first port from `ports` that no other process
    /// takes first: a port found free can be bound by another test process before the server
    /// binds it.
    pub fn start_on_free(ports: impl FnMut() -> u16, extra_args: &[&str]) -> Self {
        Self::start_configured(ports, None, extra_args)
    }

    /// Like [`RedisServer::start_on_free`], started from a config file with `config` in it (the
    /// server may rewrite the file, as a sentinel does), then `extra_args`.
    pub fn start_configured(
        mut ports: impl FnMut() -> u16,
        config: Option<&str>,
        extra_args: &[&str],
    ) -> Self {
        for _ in 0..PORT_ATTEMPTS {
            match Self::try_start_on(ports(), config, extra_args) {
                Ok(server) => return server,
                Err(NotStarted::PortTaken) => continue,
                Err(NotStarted::Failed(message)) => panic!("{message}"),
            }
        }
        panic!("{PORT_ATTEMPTS} ports in a row were taken by other processes first")
    }

    fn try_start_on(
        port: u16,
        config: Option<&str>,
        extra_args: &[&str],
    ) -> Result<Self, NotStarted> {
        let mut server = Self {
            port,
            dir: tempfile::tempdir().expect("a temp dir for the server log"),
            child: None,
            extra_args: extra_args.iter().map(|arg| (*arg).to_owned()).collect(),
            config: config.map(str::to_owned),
        };
        server.spawn()?;
        Ok(server)
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A plain redis-rs connection, for inspecting or damaging what the cache wrote.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(5)))
            .unwrap_or_else(|error| {
                panic!(
                    "connecting to the test server failed: {error}\n{}",
                    self.log()
                )
            })
    }

    /// Kills the server (SIGKILL) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (after [`RedisServer::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        if let Err(error) = self.spawn() {
            panic!("{}", error.on(self.port));
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing is answered.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Thaws a frozen server (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `CONFIG SET parameter value`, e.g. `("maxmemory-policy", "allkeys-lru")`.
    pub fn config_set(&self, parameter: &str, value: &str) {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(parameter)
            .arg(value)
            .query(&mut self.connection())
            .unwrap_or_else(|error| panic!("CONFIG SET {parameter} {value}: {error}"));
    }

    /// Closes every client connection but the one asking (`CLIENT KILL TYPE normal SKIPME yes`);
    /// returns how many were closed.
    pub fn kill_clients(&self) -> u64 {
        redis::cmd("CLIENT")
            .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
            .query(&mut self.connection())
            .unwrap_or_else(|error| panic!("CLIENT KILL: {error}"))
    }

    /// Blocks the whole server for `duration` (`DEBUG SLEEP`) and returns when it answers again.
    /// Redis 7 refuses `DEBUG` unless started with `["--enable-debug-command", "local"]`.
    pub fn debug_sleep(&self, duration: Duration) {
        let mut connection = self.connection();
        connection
            .set_read_timeout(Some(duration + Duration::from_secs(10)))
            .expect("a read timeout");
        let _: () = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(format!("{:.3}", duration.as_secs_f64()))
            .query(&mut connection)
            .unwrap_or_else(|error| panic!("DEBUG SLEEP: {error}"));
    }

    /// One field of `INFO <section>` (`used_memory`, `evicted_keys`, ...), if the server reports it.
    pub fn info_field(&self, section: &str, field: &str) -> Option<String> {
        let info: String = redis::cmd("INFO")
            .arg(section)
            .query(&mut self.connection())
            .unwrap_or_else(|error| panic!("INFO {section}: {error}"));
        let prefix = format!("{field}:");
        info.lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .map(|value| value.trim().to_owned())
    }

    /// How often the server ran `command` since its start or the last `CONFIG RESETSTAT`
    /// (`INFO commandstats`; 0 for a command it never ran).
    pub fn command_calls(&self, command: &str) -> u64 {
        self.info_field("commandstats", &format!("cmdstat_{command}"))
            .and_then(|stats| {
                stats
                    .split(',')
                    .find_map(|field| field.strip_prefix("calls="))
                    .and_then(|calls| calls.parse().ok())
            })
            .unwrap_or(0)
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the server is running");
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill {signal} failed");
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn spawn(&mut self) -> Result<(), NotStarted> {
        let program = server_binary::server_program();
        let mut command = Command::new(&program);
        if let Some(config) = &self.config {
            let path = self.dir.path().join("server.conf");
            std::fs::write(&path, config).expect("the server's config file");
            command.arg(path);
        }
        let child = command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--dir", &self.dir.path().display().to_string()])
            .args(["--logfile", &self.log_path().display().to_string()])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "could not start `{program}` ({error}). Install it (`apt-get install redis-server`) \
                     or run the suite with scripts/test.sh, which installs it; {} names another \
                     server binary.",
                    server_binary::SERVER_VAR
                )
            });
        self.child = Some(child);
        self.wait_until_ready()
    }

    /// Waits until the server answers, and makes sure that it is this server, not another
    /// process's on the same port.
    fn wait_until_ready(&mut self) -> Result<(), NotStarted> {
        let deadline = Instant::now() + START_TIMEOUT;
        let client = redis::Client::open(self.url()).expect("a valid test URL");
        let pid = self.child.as_ref().map(Child::id);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|child| child.try_wait().ok()?) {
                let log = self.log();
                if log.contains("Address already in use") {
                    return Err(NotStarted::PortTaken);
                }
                return Err(NotStarted::Failed(format!(
                    "{} on port {} exited ({status}) instead of starting; its log:\n{log}",
                    server_binary::server_program(),
                    self.port,
                )));
            }
            let answered = client
                .get_connection_with_timeout(Duration::from_millis(200))
                .and_then(|mut connection| {
                    redis::cmd("INFO")
                        .arg("server")
                        .query::<String>(&mut connection)
                });
            if let Ok(info) = answered {
                let answering = info
                    .lines()
                    .find_map(|line| line.strip_prefix("process_id:"))
                    .and_then(|id| id.trim().parse::<u32>().ok());
                if answering == pid {
                    return Ok(());
                }
                self.kill();
                return Err(NotStarted::PortTaken);
            }
            if Instant::now() >= deadline {
                return Err(NotStarted::Failed(format!(
                    "{} on port {} did not start within {START_TIMEOUT:?}; its log:\n{}",
                    server_binary::server_program(),
                    self.port,
                    self.log()
                )));
            }
            sleep(Duration::from_millis(20));
        }
    }
}

/// Why a server did not come up.
enum NotStarted {
    /// Another process holds the port (or the cluster bus port): try another.
    PortTaken,
    /// Anything else: the message to fail with.
    Failed(String),
}

impl NotStarted {
    fn on(self, port: u16) -> String {
        match self {
            Self::PortTaken => format!("port {port} is taken by another process"),
            Self::Failed(message) => message,
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("the OS hands out a free port")
}

/// A number from a node's `INFO stats` (`tracking_total_keys`, `tracking_total_prefixes`, ...).
pub fn info_stat(connection: &mut redis::Connection, field: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query(connection)
        .expect("INFO stats");
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in INFO stats"))
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{field} in INFO stats is not a number"))
}

/// A namespace no other test uses.
pub fn unique_namespace(label: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{label}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Constants shared by the stampede tests and their child processes.
pub mod stampede {
    use std::time::Duration;

    /// The Redis key the slow function increments each time its body runs.
    pub const COUNTER_KEY: &str = "stampede-test:executions";
    /// How long the slow function's body takes.
    pub const SLOW_BODY: Duration = Duration::from_secs(2);
    /// What the slow function returns.
    pub const VALUE: u64 = 42;
    /// The entry the `get_with` stampede computes (tagged `t`).
    pub const GET_WITH_KEY: &str = "cold-get-with";
}

/// The serve-stale tests' refreshed function, the same in the test and its child processes:
/// `refreshed_function!(CACHE.get().unwrap(), URL.get().unwrap())`.
// rustfmt re-indents the attribute inside the macro on every run.
#[rustfmt::skip]
#[macro_export]
macro_rules! refreshed_function {
    ($cache:expr, $url:expr) => {
        /// Counts its runs in Redis; its entry is stale for the test.
        #[rtc::cached(
            key = $crate::serve_stale::KEY,
            name = "refreshed",
            lock = true,
            lifetime = 3600,
            stale_while_revalidate = 600,
            cache = $cache
        )]
        fn refreshed() -> u64 {
            $crate::serve_stale::computation($url)
        }
    };
}

/// Constants shared by the serve-stale tests and their child processes.
pub mod serve_stale {
    use std::time::Duration;

    /// The Redis key the refreshed function increments each time its body runs.
    pub const COUNTER_KEY: &str = "serve-stale-test:computations";
    /// How long its body takes: long enough for every caller to arrive during the refresh.
    pub const REFRESH_BODY: Duration = Duration::from_millis(500);
    /// Its entry: `key = ...` and `name = ...` in both processes, so they share it.
    pub const KEY: &str = "hot";

    /// The refreshed function's body, in every process: counts itself in Redis at `url`, takes
    /// [`REFRESH_BODY`], and returns its number (1 for the first).
    pub fn computation(url: &str) -> u64 {
        use redis::Commands;
        let mut connection = redis::Client::open(url)
            .and_then(|client| client.get_connection())
            .expect("reaches Redis");
        let run: u64 = connection.incr(COUNTER_KEY, 1).expect("INCR");
        std::thread::sleep(REFRESH_BODY);
        run
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_another_process_listens_on_is_passed_over_for_the_next() {
        let held = TcpListener::bind("127.0.0.1:0").expect("a listener");
        let taken = held.local_addr().expect("its address").port();
        let mut ports = [taken, free_port()].into_iter();
        let server = RedisServer::start_on_free(|| ports.next().expect("two ports"), &[]);
        assert_ne!(server.port(), taken);
        let _: String = redis::cmd("PING").query(&mut server.connection()).unwrap();
    }

    #[test]
    fn a_port_another_server_answers_on_is_passed_over_too() {
        let other = RedisServer::start();
        let mut ports = [other.port(), free_port()].into_iter();
        let server = RedisServer::start_on_free(|| ports.next().expect("two ports"), &[]);
        assert_ne!(server.port(), other.port());
    }
}

//! The command line: global connection flags and one subcommand.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::exit;

/// Operate an rtc cache: invalidate tags, look at entries, count what a namespace holds, check
/// the server.
#[derive(Debug, Parser)]
#[command(name = "rtc", version, about, long_about, after_help = exit::HELP)]
pub struct Cli {
    #[command(flatten)]
    pub connection: ConnectionArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Where the cache lives: the same settings as the library's builder.
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// The server: redis://user:password@host:port/db (all but the host optional), or rediss://…
    /// for TLS.
    #[arg(
        long,
        global = true,
        env = "REDIS_URL",
        hide_env_values = true,
        default_value = "redis://127.0.0.1:6379/0"
    )]
    pub url: String,

    /// Seed nodes of a Redis Cluster, comma-separated or repeated (replaces --url); the rest of
    /// the topology is discovered.
    #[arg(long, global = true, value_delimiter = ',', value_name = "URL")]
    pub cluster: Vec<String>,

    /// The cache's namespace.
    // Help shows the variable's value only when it is set: clap would print an empty one
    // (`[env: RTC_NAMESPACE=]`) otherwise.
    #[arg(
        long,
        short = 'n',
        global = true,
        env = "RTC_NAMESPACE",
        hide_env_values = std::env::var_os("RTC_NAMESPACE").is_none(),
        default_value = "default"
    )]
    pub namespace: String,

    /// Connect with TLS (as a rediss:// URL does).
    #[arg(long, global = true)]
    pub tls: bool,

    /// Trust the CA certificates of this PEM file instead of the system's roots.
    #[arg(long, global = true, value_name = "PEM")]
    pub tls_ca_file: Option<PathBuf>,

    /// Present this client certificate (PEM) to servers that ask for one; needs --tls-client-key.
    #[arg(long, global = true, value_name = "PEM", requires = "tls_client_key")]
    pub tls_client_cert: Option<PathBuf>,

    /// The key (PEM) of --tls-client-cert.
    #[arg(long, global = true, value_name = "PEM", requires = "tls_client_cert")]
    pub tls_client_key: Option<PathBuf>,

    /// DANGEROUS: accept any server certificate. For test servers only.
    #[arg(long, global = true)]
    pub tls_insecure: bool,

    /// Longest wait, in seconds, to connect and for each reply.
    #[arg(long, global = true, default_value_t = 5.0, value_name = "SECONDS")]
    pub timeout: f64,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Invalidate tags: every entry carrying any of them misses from now on.
    Invalidate {
        /// The tags, as the application names them.
        #[arg(required = true)]
        tags: Vec<String>,
    },
    /// Invalidate the whole namespace: every entry in it misses from now on.
    InvalidateAll,
    /// Print the value stored under KEY and exactly the tags given, as JSON.
    ///
    /// Exits 0 when the entry is found, 1 on a miss, 3 when Redis could not be reached or
    /// failed, 4 when the namespace holds no keys at all.
    #[command(after_help = exit::HELP)]
    Get(EntryArgs),
    /// Delete the entry stored under KEY and exactly the tags given.
    Delete(EntryArgs),
    /// Count what the namespace holds (SCAN over its keys): entries, tombstones, tags, locks,
    /// memory, and the server's version and eviction policy.
    Stats {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// How many keys to measure with MEMORY USAGE; the total is estimated from them.
        #[arg(long, default_value_t = 1000, value_name = "KEYS")]
        memory_samples: u64,
    },
    /// Check the server: version (7.0 or newer), round-trip time, and whether this user may run
    /// every command rtc needs on the namespace's keys.
    Check,
}

/// One entry: its key and its full set of tags (order and repeats do not matter).
#[derive(Debug, Args)]
pub struct EntryArgs {
    /// The entry's key, as the application names it.
    pub key: String,
    /// A tag of the entry; repeat for each tag.
    #[arg(long = "tag", short = 't', value_name = "TAG")]
    pub tags: Vec<String>,
}

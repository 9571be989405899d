//! The settings a builder validated, as the rest of the engine reads them. A leaf: it names
//! nothing above the format and codec layers, so the backends and the cache read it without
//! reaching back to the builder.

use std::fmt;
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo};

use crate::codec::Encoding;
use crate::hook::Hook;

mod stale;
mod tls;

pub use self::stale::StaleOptions;
pub(crate) use self::tls::{TlsMaterial, TlsOptions};

/// Where a cache keeps its entries, as configured.
#[derive(Clone)]
pub(crate) enum Storage {
    Disabled,
    Memory,
    Redis(Box<ConnectionInfo>),
    /// A primary found through Redis Sentinel.
    Sentinel(Box<SentinelSettings>),
    /// Seed nodes of a Redis Cluster; the rest of the topology is discovered.
    Cluster(Vec<ConnectionInfo>),
    /// A Redis Cluster through the application's own client, used as it is.
    ClusterClient(Box<redis::cluster::ClusterClient>),
}

/// Where the sentinels are, which primary to ask them for, and how to connect to it.
#[derive(Clone)]
pub(crate) struct SentinelSettings {
    /// The sentinels, each with its own credentials and TLS.
    pub sentinels: Vec<ConnectionInfo>,
    /// The name the sentinels monitor the primary under (`sentinel monitor <name> ...`).
    pub service: String,
    /// Connections to the primary: db, credentials and TLS; the address is the sentinels'.
    pub primary: ConnectionInfo,
}

impl Storage {
    /// True when connections use TLS.
    pub(crate) fn uses_tls(&self) -> bool {
        let tls = |info: &ConnectionInfo| matches!(info.addr(), ConnectionAddr::TcpTls { .. });
        match self {
            Storage::Redis(info) => tls(info),
            Storage::Sentinel(sentinel) => {
                tls(&sentinel.primary) || sentinel.sentinels.iter().any(tls)
            }
            Storage::Cluster(nodes) => nodes.iter().any(tls),
            // Its TLS is the client's own business.
            Storage::ClusterClient(_) | Storage::Disabled | Storage::Memory => false,
        }
    }
}

/// Validated settings, shared by every clone of a `TaggedCache`.
#[derive(Clone)]
pub(crate) struct Settings {
    pub namespace: String,
    pub storage: Storage,
    pub socket_timeout: Duration,
    pub connect_timeout: Duration,
    pub default_lifetime: Option<Duration>,
    pub lifetime_for_tags: Option<Duration>,
    pub hook: Option<Hook>,
    pub tls: TlsMaterial,
    /// How values are written: the codec, and compression above a size.
    pub encoding: Encoding,
    /// The near cache, for a Redis server (`None` for the other storages).
    pub near: Option<NearSettings>,
    /// The in-memory backend's bound (`None`: only lifetimes bound it).
    pub max_entries: Option<u64>,
    /// The stale options of decorated functions that give none of their own.
    pub stale: StaleOptions,
}

/// How large the near cache may grow, and how long it keeps an entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NearSettings {
    pub max_entries: u64,
    pub max_age: Option<Duration>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let storage = match &self.storage {
            Storage::Disabled => "disabled".to_owned(),
            Storage::Memory => "in local memory".to_owned(),
            // The address alone: user names and passwords never reach a log.
            Storage::Redis(info) => {
                format!("redis at {} db {}", info.addr(), info.redis_settings().db())
            }
            Storage::Sentinel(sentinel) => format!(
                "redis primary `{}` db {} named by the sentinels at {}",
                sentinel.service,
                sentinel.primary.redis_settings().db(),
                addresses(&sentinel.sentinels)
            ),
            Storage::Cluster(nodes) => format!("redis cluster seeded by {}", addresses(nodes)),
            Storage::ClusterClient(_) => {
                "redis cluster through the application's client".to_owned()
            }
        };
        f.debug_struct("Settings")
            .field("namespace", &self.namespace)
            .field("storage", &storage)
            .field("socket_timeout", &self.socket_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("default_lifetime", &self.default_lifetime)
            .field("lifetime_for_tags", &self.lifetime_for_tags)
            .field("hook", &self.hook)
            .field("encoding", &self.encoding)
            .field("near", &self.near)
            .field("stale", &self.stale)
            .finish()
    }
}

/// The addresses alone, for `Debug`: user names and passwords never reach a log.
fn addresses(nodes: &[ConnectionInfo]) -> String {
    nodes
        .iter()
        .map(|node| node.addr().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

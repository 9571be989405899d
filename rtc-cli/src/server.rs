//! What `INFO` says about a server: its version and how it evicts keys.

use std::collections::HashMap;

use crate::error::CliError;
use crate::target::Node;

/// The oldest Redis rtc works with (it sends `SET … NX GET`).
pub const MINIMUM_VERSION: (u32, u32) = (7, 0);

/// One server's version and memory settings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServerInfo {
    /// `host:port`.
    pub address: String,
    /// Which server answered, as `HELLO` names it: `Redis`, `Valkey`, or its own name.
    pub server: String,
    /// Its version as `HELLO` gives it, e.g. `7.0.15` (Redis) or `8.1.8` (Valkey).
    pub version: String,
    /// `maxmemory` in bytes, 0 for no limit; `None` when this user may not run `INFO`.
    pub maxmemory: Option<u64>,
    /// `maxmemory_policy`, e.g. `noeviction`; `None` when this user may not run `INFO`.
    pub maxmemory_policy: Option<String>,
}

impl ServerInfo {
    /// Asks `HELLO` for the server's name and version, and `INFO memory` for the eviction settings (left unknown
    /// when this user may not run `INFO`, a `@dangerous` command).
    pub fn read(node: &Node, connection: &mut redis::Connection) -> Result<Self, CliError> {
        let failed = |error: redis::RedisError| CliError::from_redis(&node.address, &error);
        let hello: HashMap<String, redis::Value> =
            redis::cmd("HELLO").query(connection).map_err(failed)?;
        let text = |name: &str| {
            hello
                .get(name)
                .and_then(|value| redis::from_redis_value_ref::<String>(value).ok())
        };
        let version = text("version").unwrap_or_else(|| "unknown".into());
        let server = match text("server").as_deref() {
            None | Some("redis") => "Redis".to_owned(),
            Some("valkey") => "Valkey".to_owned(),
            Some(other) => other.to_owned(),
        };
        let info = match redis::cmd("INFO").arg("memory").query::<String>(connection) {
            Ok(info) => info,
            Err(error) if error.code() == Some("NOPERM") => String::new(),
            Err(error) => return Err(failed(error)),
        };
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(|value| value.trim().to_owned())
        };
        Ok(Self {
            address: node.address.clone(),
            server,
            version,
            maxmemory: field("maxmemory").and_then(|value| value.parse().ok()),
            maxmemory_policy: field("maxmemory_policy"),
        })
    }

    /// The server's name and version, e.g. `Redis 7.0.15`.
    pub fn product(&self) -> String {
        format!("{} {}", self.server, self.version)
    }

    /// Why this server cannot serve rtc, if it cannot.
    pub fn too_old(&self) -> Option<String> {
        let mut parts = self.version.split('.').map(|part| part.parse::<u32>().ok());
        let version = (parts.next().flatten(), parts.next().flatten());
        match version {
            (Some(major), Some(minor)) if (major, minor) >= MINIMUM_VERSION => None,
            _ => Some(format!(
                "{} at {} is too old: rtc needs {}.{} or newer (it uses SET … NX GET)",
                self.product(),
                self.address,
                MINIMUM_VERSION.0,
                MINIMUM_VERSION.1
            )),
        }
    }

    /// What the eviction settings mean for rtc, when the user should know.
    pub fn eviction_warning(&self) -> Option<String> {
        let policy = self.maxmemory_policy.as_deref()?;
        let at = &self.address;
        if self.maxmemory? == 0 {
            return None;
        }
        if policy == "noeviction" {
            Some(format!(
                "{at}: maxmemory with noeviction: when memory is full Redis refuses writes, so \
                 values are not cached and invalidations fail (the entries they meant to drop stay \
                 fresh until their lifetime ends)"
            ))
        } else if policy.starts_with("allkeys-") {
            Some(format!(
                "{at}: {policy} may evict tag keys: every entry carrying an evicted tag misses at \
                 once (never stale), and an evicted tombstone lets a value computed before a \
                 delete land"
            ))
        } else if policy.starts_with("volatile-") {
            Some(format!(
                "{at}: {policy} may evict keys with a lifetime, tag keys among them \
                 (lifetime_for_tags): every entry carrying an evicted tag misses at once (never \
                 stale), and an evicted tombstone lets a value computed before a delete land"
            ))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(version: &str, maxmemory: u64, policy: &str) -> ServerInfo {
        ServerInfo {
            address: "127.0.0.1:6379".into(),
            server: "Redis".into(),
            version: version.into(),
            maxmemory: Some(maxmemory),
            maxmemory_policy: Some(policy.into()),
        }
    }

    #[test]
    fn versions_below_7_0_are_refused_with_the_reason() {
        assert!(server("6.2.14", 0, "noeviction")
            .too_old()
            .unwrap()
            .contains("needs 7.0"));
        assert!(server("garbage", 0, "noeviction").too_old().is_some());
        assert_eq!(server("7.0.0", 0, "noeviction").too_old(), None);
        assert_eq!(server("7.2.4", 0, "noeviction").too_old(), None);
        assert_eq!(server("10.0.1", 0, "noeviction").too_old(), None);
    }

    #[test]
    fn eviction_warnings_name_what_each_policy_does_to_rtc() {
        assert_eq!(server("7.0.0", 0, "allkeys-lru").eviction_warning(), None);
        assert!(server("7.0.0", 1 << 20, "noeviction")
            .eviction_warning()
            .unwrap()
            .contains("invalidations fail"));
        assert!(server("7.0.0", 1 << 20, "allkeys-lru")
            .eviction_warning()
            .unwrap()
            .contains("tag keys"));
        assert!(server("7.0.0", 1 << 20, "volatile-ttl")
            .eviction_warning()
            .unwrap()
            .contains("tag keys"));
    }
}

//! Redis's invalidation messages for the near cache.
//!
//! One connection of its own per server (a thread running a one-thread tokio runtime, so that
//! blocking and async users alike get it) turns on `CLIENT TRACKING ... BCAST` for the
//! namespace's entry and tag key prefixes: Redis then announces every change to any of those
//! keys, by any client, on this connection (RESP3 push messages). Each announcement ends the
//! near cache's watches on the keys it names; a flushed database ends them all. While the
//! connection is not up and tracking (before the first connect, after a drop, a failed
//! heartbeat or a restart of the server) the near cache is distrusted: it serves and keeps
//! nothing until tracking is on again.
//!
//! `BCAST` rather than the default mode: the server keeps no per-key table for us (so
//! `tracking-table-max-keys` never evicts our keys), and reads may go on any connection (the
//! pooled and multiplexed ones), with no `REDIRECT` to keep in step with their reconnects. The
//! cost is one message per write to the namespace's entries and tags, whether this process
//! read that key or not (ARCHITECTURE.md weighs it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, PushInfo, PushKind, RedisResult,
    Value,
};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::tls::TlsMaterial;
use crate::near::NearCache;

/// How often the tracking connections are checked with a `PING` (and a cluster's slots
/// compared with those tracking was set up for).
const HEARTBEAT: Duration = Duration::from_secs(1);
/// The first pause after a failed connect; doubled on each failure up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// Which servers announce changes.
pub(crate) enum Source {
    /// One server (a RESP3 client).
    Server(Client),
    /// Every node of a cluster (masters and replicas), found from these seeds.
    Cluster {
        seeds: Vec<ConnectionInfo>,
        tls: TlsMaterial,
    },
    /// The primary the sentinels name for `service`, and its replicas, connected to with the
    /// settings of `primary` (db, credentials, TLS).
    Sentinel {
        sentinels: Vec<ConnectionInfo>,
        service: String,
        primary: ConnectionInfo,
        tls: TlsMaterial,
    },
}

/// Keeps Redis's invalidation messages flowing into a near cache; stops when dropped.
pub(crate) struct Tracker {
    stop: Arc<AtomicBool>,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl Tracker {
    /// Starts tracking keys under `prefixes` on the servers of `source`. `response_timeout`
    /// bounds each command, the heartbeat included.
    pub(crate) fn start(
        source: Source,
        prefixes: Vec<String>,
        near: &Arc<NearCache>,
        response_timeout: Duration,
        connect_timeout: Duration,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let session = Session {
            source,
            prefixes,
            near: Arc::downgrade(near),
            stop: stop.clone(),
            config: AsyncConnectionConfig::new()
                .set_response_timeout(Some(response_timeout))
                .set_connection_timeout(Some(connect_timeout)),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("rtc-near-tracking".to_owned())
            .spawn(move || runtime.block_on(session.run()))?;
        Ok(Self { stop })
    }
}

struct Session {
    source: Source,
    prefixes: Vec<String>,
    near: Weak<NearCache>,
    stop: Arc<AtomicBool>,
    config: AsyncConnectionConfig,
}

/// Why tracking that was set up ended.
enum Ended {
    /// The cache is gone.
    Stopped,
    /// A connection dropped or stopped answering.
    Lost,
    /// The cluster's slots moved: tracking is set up again on the new layout.
    Moved,
}

/// A node's address as `CLUSTER SLOTS` gives it.
type Address = (String, u16);

/// A range of slots (first, last) and the nodes serving it, the master first.
type Range = (i64, i64, Vec<Address>);

/// A cluster's slots, as tracking was set up for them.
#[derive(PartialEq, Eq, Debug)]
struct Layout {
    /// Every slot range, sorted.
    ranges: Vec<Range>,
}

impl Session {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire) || self.near.strong_count() == 0
    }

    fn distrust(&self) {
        if let Some(near) = self.near.upgrade() {
            near.distrust();
        }
    }

    /// Tracks until stopped, setting tracking up again (with growing pauses) whenever it is
    /// lost.
    async fn run(self) {
        let mut pause = FIRST_PAUSE;
        let mut reported = false;
        while !self.stopped() {
            let result = self.track().await;
            self.distrust();
            match result {
                Ok(Ended::Stopped) => return,
                Ok(Ended::Moved) => {
                    tracing::debug!(
                        "rtc: the cluster's slots moved; near cache tracking starts over"
                    );
                    reported = false;
                    pause = Duration::ZERO;
                }
                Ok(Ended::Lost) => {
                    if !self.stopped() {
                        tracing::warn!(
                            "rtc: the near cache's tracking connection was lost; the near cache is off until it is back"
                        );
                    }
                    reported = false;
                    pause = FIRST_PAUSE;
                }
                Err(error) => {
                    if !reported {
                        tracing::warn!(
                            "rtc: near cache tracking could not be set up ({error}); the near cache is off until it is"
                        );
                        reported = true;
                    }
                    pause = (pause * 2).clamp(FIRST_PAUSE, MAX_PAUSE);
                }
            }
            let mut slept = Duration::ZERO;
            while slept < pause && !self.stopped() {
                let step = FIRST_PAUSE.min(pause - slept);
                tokio::time::sleep(step).await;
                slept += step;
            }
        }
    }

    /// One life of tracking: connect to every server, turn tracking on, trust the near cache,
    /// then apply every message until something is lost or moves.
    async fn track(&self) -> RedisResult<Ended> {
        let (sender, mut pushes) = unbounded_channel();
        let (mut connections, layout) = match &self.source {
            Source::Server(client) => (vec![self.open(client, &sender).await?], None),
            Source::Cluster { seeds, tls } => {
                let (layout, nodes) = self.discover(seeds, tls).await?;
                (self.open_all(nodes, tls, &sender).await?, Some(layout))
            }
            Source::Sentinel { primary, tls, .. } => {
                let layout = self.replication().await?;
                let nodes = layout.nodes(primary);
                (self.open_all(nodes, tls, &sender).await?, Some(layout))
            }
        };
        drop(sender);
        match self.near.upgrade() {
            Some(near) => near.trust(),
            None => return Ok(Ended::Stopped),
        }
        tracing::debug!(
            connections = connections.len(),
            "rtc: near cache tracking is on"
        );
        Ok(self.follow(&mut connections, &mut pushes, layout).await)
    }

    /// A RESP3 connection that `client` opens, with tracking on for the prefixes; its
    /// messages go to `pushes`.
    async fn open(
        &self,
        client: &Client,
        pushes: &UnboundedSender<PushInfo>,
    ) -> RedisResult<MultiplexedConnection> {
        let config = self.config.clone().set_push_sender(pushes.clone());
        let mut connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let mut tracking = redis::cmd("CLIENT");
        tracking.arg("TRACKING").arg("ON").arg("BCAST");
        for prefix in &self.prefixes {
            tracking.arg("PREFIX").arg(prefix);
        }
        tracking.query_async::<()>(&mut connection).await?;
        Ok(connection)
    }

    /// Tracking connections to each of `nodes`.
    async fn open_all(
        &self,
        nodes: Vec<ConnectionInfo>,
        tls: &TlsMaterial,
        pushes: &UnboundedSender<PushInfo>,
    ) -> RedisResult<Vec<MultiplexedConnection>> {
        let mut connections = Vec::with_capacity(nodes.len());
        for node in nodes {
            connections.push(self.open(&tls.client(node)?, pushes).await?);
        }
        Ok(connections)
    }

    /// The primary the first sentinel that answers names, and the replicas it knows as up, as
    /// one range of a [`Layout`] (primary first).
    async fn replication(&self) -> RedisResult<Layout> {
        let Source::Sentinel {
            sentinels,
            service,
            tls,
            ..
        } = &self.source
        else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "not behind sentinels",
            )));
        };
        let mut last_error = None;
        for sentinel in sentinels {
            let attempt = async {
                let mut connection = tls
                    .client(sentinel.clone())?
                    .get_multiplexed_async_connection_with_config(&self.config)
                    .await?;
                let primary: Option<(String, u16)> = redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(service)
                    .query_async(&mut connection)
                    .await?;
                let replicas: Vec<std::collections::HashMap<String, String>> =
                    redis::cmd("SENTINEL")
                        .arg("REPLICAS")
                        .arg(service)
                        .query_async(&mut connection)
                        .await?;
                Ok::<_, redis::RedisError>((primary, replicas))
            };
            match attempt.await {
                Ok((Some(primary), replicas)) => return Ok(Layout::replicated(primary, &replicas)),
                Ok((None, _)) => {
                    last_error = Some(redis::RedisError::from((
                        redis::ErrorKind::Client,
                        "the sentinel monitors no primary of this name",
                    )))
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error
            .unwrap_or_else(|| redis::RedisError::from((redis::ErrorKind::Client, "no sentinel"))))
    }

    /// The cluster's slots and the address of every node serving them (masters and replicas,
    /// with the seeds' credentials and TLS), from the first seed that answers.
    async fn discover(
        &self,
        seeds: &[ConnectionInfo],
        tls: &TlsMaterial,
    ) -> RedisResult<(Layout, Vec<ConnectionInfo>)> {
        let mut last_error = None;
        for seed in seeds {
            let attempt = async {
                let mut connection = tls
                    .client(seed.clone())?
                    .get_multiplexed_async_connection_with_config(&self.config)
                    .await?;
                slots(&mut connection).await
            };
            match attempt.await {
                Ok(layout) => {
                    let nodes = layout.nodes(seed);
                    return Ok((layout, nodes));
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            redis::RedisError::from((redis::ErrorKind::Client, "no cluster seed"))
        }))
    }

    /// Applies messages until a connection drops, a heartbeat fails, the slots move, or the
    /// cache is gone.
    async fn follow(
        &self,
        connections: &mut [MultiplexedConnection],
        pushes: &mut UnboundedReceiver<PushInfo>,
        layout: Option<Layout>,
    ) -> Ended {
        let mut checked = Instant::now();
        loop {
            if self.stopped() {
                return Ended::Stopped;
            }
            match tokio::time::timeout(HEARTBEAT, pushes.recv()).await {
                Ok(Some(push)) => {
                    let Some(near) = self.near.upgrade() else {
                        return Ended::Stopped;
                    };
                    if !apply(&near, push) {
                        return Ended::Lost;
                    }
                }
                Ok(None) => return Ended::Lost,
                Err(_idle) => {}
            }
            if checked.elapsed() < HEARTBEAT {
                continue;
            }
            checked = Instant::now();
            for connection in connections.iter_mut() {
                if redis::cmd("PING")
                    .query_async::<()>(connection)
                    .await
                    .is_err()
                {
                    return Ended::Lost;
                }
            }
            if let Some(layout) = &layout {
                let now = match (&self.source, connections.first_mut()) {
                    (Source::Cluster { .. }, Some(connection)) => slots(connection).await,
                    (Source::Sentinel { .. }, _) => self.replication().await,
                    _ => continue,
                };
                match now {
                    Ok(now) if now == *layout => {}
                    Ok(_) => return Ended::Moved,
                    Err(_) => return Ended::Lost,
                }
            }
        }
    }
}

/// `CLUSTER SLOTS`, as a [`Layout`].
async fn slots(connection: &mut MultiplexedConnection) -> RedisResult<Layout> {
    let reply: Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(connection)
        .await?;
    Layout::of(reply).ok_or_else(|| {
        redis::RedisError::from((redis::ErrorKind::Client, "unexpected CLUSTER SLOTS reply"))
    })
}

impl Layout {
    /// A primary and its replicas (those a sentinel reports neither down nor disconnected),
    /// as one range.
    fn replicated(
        primary: (String, u16),
        replicas: &[std::collections::HashMap<String, String>],
    ) -> Self {
        let mut nodes = vec![primary];
        let mut up: Vec<Address> = replicas
            .iter()
            .filter(|replica| {
                replica.get("flags").is_none_or(|flags| {
                    !flags
                        .split(',')
                        .any(|flag| matches!(flag, "s_down" | "o_down" | "disconnected"))
                })
            })
            .filter_map(|replica| {
                let host = replica.get("ip")?.clone();
                let port = replica.get("port")?.parse().ok()?;
                Some((host, port))
            })
            .collect();
        up.sort();
        nodes.extend(up);
        Self {
            ranges: vec![(0, 0, nodes)],
        }
    }

    fn of(reply: Value) -> Option<Self> {
        let Value::Array(ranges) = reply else {
            return None;
        };
        let mut layout = Vec::with_capacity(ranges.len());
        for range in ranges {
            let Value::Array(parts) = range else {
                return None;
            };
            let mut parts = parts.into_iter();
            let (Some(Value::Int(first)), Some(Value::Int(last))) = (parts.next(), parts.next())
            else {
                return None;
            };
            let mut nodes = Vec::new();
            for node in parts {
                let Value::Array(fields) = node else {
                    return None;
                };
                let mut fields = fields.into_iter();
                let host = match fields.next()? {
                    Value::BulkString(host) => String::from_utf8(host).ok()?,
                    Value::SimpleString(host) => host,
                    _ => return None,
                };
                let port = match fields.next()? {
                    Value::Int(port) => u16::try_from(port).ok()?,
                    _ => return None,
                };
                nodes.push((host, port));
            }
            // The master first, then the replicas in a stable order.
            if nodes.len() > 1 {
                nodes[1..].sort();
            }
            layout.push((first, last, nodes));
        }
        layout.sort();
        Some(Self { ranges: layout })
    }

    /// Every node, once, addressed like `seed` (credentials, TLS); an empty host (a node
    /// that does not know its own address) is the seed's.
    fn nodes(&self, seed: &ConnectionInfo) -> Vec<ConnectionInfo> {
        let mut addresses: Vec<&Address> = self
            .ranges
            .iter()
            .flat_map(|(_, _, nodes)| nodes.iter())
            .collect();
        addresses.sort();
        addresses.dedup();
        let seed_host = match seed.addr() {
            ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => host.clone(),
            _ => String::new(),
        };
        addresses
            .into_iter()
            .map(|(host, port)| {
                let host = if host.is_empty() {
                    seed_host.clone()
                } else {
                    host.clone()
                };
                let addr = match seed.addr() {
                    ConnectionAddr::TcpTls {
                        insecure,
                        tls_params,
                        ..
                    } => ConnectionAddr::TcpTls {
                        host,
                        port: *port,
                        insecure: *insecure,
                        tls_params: tls_params.clone(),
                    },
                    _ => ConnectionAddr::Tcp(host, *port),
                };
                seed.clone().set_addr(addr)
            })
            .collect()
    }
}

/// Applies one message to the near cache; false when the connection is gone.
fn apply(near: &NearCache, push: PushInfo) -> bool {
    match push.kind {
        PushKind::Invalidate => {
            match push.data.into_iter().next() {
                Some(Value::Array(keys)) => {
                    near.watches()
                        .changed(keys.iter().filter_map(|key| match key {
                            Value::BulkString(key) => Some(key.as_slice()),
                            _ => None,
                        }))
                }
                // A null list: the whole database was flushed.
                _ => near.changed_all(),
            }
            true
        }
        PushKind::Disconnection => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    fn range(first: i64, last: i64, nodes: Vec<Value>) -> Value {
        let mut parts = vec![Value::Int(first), Value::Int(last)];
        parts.extend(nodes);
        Value::Array(parts)
    }

    #[test]
    fn a_layout_ignores_the_order_of_ranges_and_replicas_but_not_masters() {
        let one = Layout::of(Value::Array(vec![
            range(0, 99, vec![node("a", 1), node("b", 2), node("c", 3)]),
            range(100, 199, vec![node("d", 4)]),
        ]))
        .unwrap();
        let reordered = Layout::of(Value::Array(vec![
            range(100, 199, vec![node("d", 4)]),
            range(0, 99, vec![node("a", 1), node("c", 3), node("b", 2)]),
        ]))
        .unwrap();
        let failed_over = Layout::of(Value::Array(vec![
            range(0, 99, vec![node("b", 2), node("a", 1), node("c", 3)]),
            range(100, 199, vec![node("d", 4)]),
        ]))
        .unwrap();
        assert_eq!(one, reordered);
        assert_ne!(one, failed_over);
        assert!(Layout::of(Value::Int(1)).is_none());
    }

    #[test]
    fn every_node_is_tracked_once_with_the_seeds_settings() {
        let layout = Layout::of(Value::Array(vec![
            range(0, 99, vec![node("127.0.0.1", 7001), node("", 7002)]),
            range(100, 199, vec![node("127.0.0.1", 7001)]),
        ]))
        .unwrap();
        let seed =
            redis::IntoConnectionInfo::into_connection_info("redis://u:p@localhost:7000/").unwrap();
        let nodes = layout.nodes(&seed);
        let addresses: Vec<String> = nodes.iter().map(|node| node.addr().to_string()).collect();
        assert_eq!(addresses, ["localhost:7002", "127.0.0.1:7001"]);
        assert!(nodes
            .iter()
            .all(|node| node.redis_settings().username() == Some("u")));
    }
}

//! A real Redis Cluster on loopback: three masters with one replica each.

use std::net::TcpListener;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::{server_binary, RedisServer};

/// How long the cluster may take to agree on its slots (and, after a kill, on a new master).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Six `redis-server` processes in cluster mode, killed on drop.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts 3 masters and 3 replicas, joins them with `redis-cli --cluster create` (or
    /// [`server_binary::CLI_VAR`]'s cli), and waits
    /// until every node reports `cluster_state:ok`.
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..6)
            .map(|_| {
                RedisServer::start_on_free(
                    || cluster_ports(1)[0],
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "1000",
                        // Replicas sync at once, and may always take over from a failed master.
                        "--repl-diskless-sync-delay",
                        "0",
                        "--cluster-replica-validity-factor",
                        "0",
                    ],
                )
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        let cli = server_binary::cli_program();
        let output = Command::new(&cli)
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .unwrap_or_else(|error| {
                panic!("`{cli}` does not run ({error}): apt-get install redis-tools")
            });
        assert!(
            output.status.success(),
            "{cli} --cluster create failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = Self { nodes };
        cluster.wait_until_ok();
        cluster.wait_until_replicas_synced();
        cluster
    }

    /// Every node's log, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("--- node {} ---\n{}", node.port(), node.log()))
            .collect()
    }

    /// Seed URLs of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes that serve slots right now (answering `ROLE` with `master`).
    pub fn master_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|node| {
                redis::Client::open(node.url())
                    .and_then(|client| client.get_connection_with_timeout(Duration::from_millis(300)))
                    .and_then(|mut connection| redis::cmd("ROLE").query::<redis::Value>(&mut connection))
                    .is_ok_and(|role| matches!(role, redis::Value::Array(parts) if parts.first() == Some(&redis::Value::BulkString(b"master".to_vec()))))
            })
            .map(RedisServer::port)
            .collect()
    }

    /// Kills the node on `port` (SIGKILL).
    pub fn kill(&mut self, port: u16) {
        self.nodes
            .iter_mut()
            .find(|node| node.port() == port)
            .expect("a node of this cluster")
            .kill();
    }

    /// Kills the master on `port` and waits until its replica has taken over its slots.
    pub fn fail_over(&mut self, port: u16) {
        let masters = self.master_ports().len();
        self.kill(port);
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while self.master_ports().len() < masters {
            assert!(
                Instant::now() < deadline,
                "no replica took over from the master on port {port}"
            );
            sleep(Duration::from_millis(100));
        }
        self.wait_until_ok();
    }

    /// Waits until every replica's link to its master is up, so that it can take over.
    fn wait_until_replicas_synced(&self) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let links: Vec<String> = self.nodes.iter().filter_map(replication_link).collect();
            if links.len() == 3 && links.iter().all(|link| link == "up") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replicas did not sync: {links:?}\n{}",
                self.logs()
            );
            sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every live node reports `cluster_state:ok`.
    pub fn wait_until_ok(&self) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let states: Vec<Option<String>> = self.nodes.iter().map(cluster_state).collect();
            let live: Vec<&String> = states.iter().flatten().collect();
            if !live.is_empty() && live.iter().all(|state| state.as_str() == "ok") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not settle: {states:?}"
            );
            sleep(Duration::from_millis(100));
        }
    }

    /// A connection to any node that routes nothing: for `KEYS` and the like on one node.
    pub fn node_connections(&self) -> Vec<redis::Connection> {
        self.nodes
            .iter()
            .filter_map(|node| {
                redis::Client::open(node.url())
                    .and_then(|client| {
                        client.get_connection_with_timeout(Duration::from_millis(300))
                    })
                    .ok()
            })
            .collect()
    }
}

/// A replica's `master_link_status`; `None` for a master or a node that does not answer.
fn replication_link(node: &RedisServer) -> Option<String> {
    let mut connection = redis::Client::open(node.url())
        .ok()?
        .get_connection_with_timeout(Duration::from_millis(300))
        .ok()?;
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut connection)
        .ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix("master_link_status:"))
        .map(|status| status.trim().to_owned())
}

/// `cluster_state` of one node, `None` when it does not answer.
fn cluster_state(node: &RedisServer) -> Option<String> {
    let mut connection = redis::Client::open(node.url())
        .ok()?
        .get_connection_with_timeout(Duration::from_millis(300))
        .ok()?;
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query(&mut connection)
        .ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix("cluster_state:"))
        .map(|state| state.trim().to_owned())
}

/// `count` free ports whose cluster bus ports (port + 10000) are free too.
fn cluster_ports(count: usize) -> Vec<u16> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Clusters started by one process at once must not pick the same ports either.
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let start =
        (std::process::id() as usize % 1000) * 3 + NEXT.fetch_add(count * 3, Ordering::Relaxed);
    let mut ports = Vec::new();
    let mut listeners = Vec::new();
    for candidate in (20_000..50_000u16).step_by(7).skip(start % 4000) {
        if ports.len() == count {
            break;
        }
        let (Ok(main), Ok(bus)) = (
            TcpListener::bind(("127.0.0.1", candidate)),
            TcpListener::bind(("127.0.0.1", candidate + 10_000)),
        ) else {
            continue;
        };
        listeners.push((main, bus));
        ports.push(candidate);
    }
    assert_eq!(ports.len(), count, "not enough free port pairs");
    ports
}

//! A primary with replicas watched by three sentinels, all on loopback.

use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::{free_port, RedisServer};

/// The name the sentinels monitor the primary under.
pub const SERVICE: &str = "rtc-test";

/// How long the sentinels may take to see each other and the replicas, and to fail over.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How many sentinels must agree that the primary is down.
const QUORUM: usize = 2;

/// A primary, `replicas` replicas (`--replicaof`) and three `--sentinel` processes, killed on
/// drop. Sentinels call a primary down after 500 ms without an answer.
pub struct RedisSentinel {
    nodes: Vec<RedisServer>,
    sentinels: Vec<RedisServer>,
}

impl RedisSentinel {
    /// Starts the primary, `replicas` replicas and three sentinels, and waits until every
    /// replica is in sync and every sentinel knows the replicas and the other sentinels, so
    /// that a failover can happen at once.
    pub fn start(replicas: usize) -> Self {
        let data_args = ["--repl-diskless-sync-delay", "0"];
        let primary = RedisServer::start_with(&data_args);
        let primary_port = primary.port().to_string();
        let mut nodes = vec![primary];
        for _ in 0..replicas {
            let mut args = data_args.to_vec();
            args.extend(["--replicaof", "127.0.0.1", &primary_port]);
            nodes.push(RedisServer::start_with(&args));
        }
        // Sentinels learn of replicas from the primary's INFO, which they ask for at once and
        // then only every 10 s: the replicas must be connected before the sentinels start.
        wait_until_synced(&nodes);
        let config = format!(
            "sentinel monitor {SERVICE} 127.0.0.1 {primary_port} {QUORUM}\n\
             sentinel down-after-milliseconds {SERVICE} 500\n\
             sentinel failover-timeout {SERVICE} 5000\n"
        );
        let sentinels = (0..3)
            .map(|_| RedisServer::start_configured(free_port, Some(&config), &["--sentinel"]))
            .collect();
        let deployment = Self { nodes, sentinels };
        deployment.wait_until_known(replicas);
        deployment
    }

    /// `redis://127.0.0.1:<port>` of each sentinel.
    pub fn urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|sentinel| format!("redis://127.0.0.1:{}", sentinel.port()))
            .collect()
    }

    /// The port of the primary the sentinels name now (the first sentinel that answers).
    pub fn primary_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(primary_named_by)
    }

    /// Adds the ACL user `name` with `password` and every right to every data node and every
    /// sentinel (`ACL SETUSER`; the default user stays open for the harness).
    pub fn add_user(&self, name: &str, password: &str) {
        for node in self.nodes.iter().chain(&self.sentinels) {
            let _: () = redis::cmd("ACL")
                .arg(&[
                    "SETUSER",
                    name,
                    "on",
                    &format!(">{password}"),
                    "~*",
                    "&*",
                    "+@all",
                ])
                .query(&mut node.connection())
                .unwrap_or_else(|error| panic!("ACL SETUSER on {}: {error}", node.port()));
        }
    }

    /// The data node (primary or replica) on `port`.
    pub fn node(&self, port: u16) -> &RedisServer {
        self.nodes
            .iter()
            .find(|node| node.port() == port)
            .expect("a node of this deployment")
    }

    /// Kills the primary (SIGKILL) and returns its port.
    pub fn kill_primary(&mut self) -> u16 {
        let port = self.primary_port().expect("the sentinels name a primary");
        self.nodes
            .iter_mut()
            .find(|node| node.port() == port)
            .expect("the primary is one of the nodes")
            .kill();
        port
    }

    /// Waits until every sentinel names a primary other than `old` and that node answers `ROLE`
    /// as a primary; returns its port.
    pub fn wait_for_new_primary(&self, old: u16) -> u16 {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let named: Vec<Option<u16>> = self.sentinels.iter().map(primary_named_by).collect();
            if let Some(Some(port)) = named.first() {
                let agreed = named.iter().all(|other| *other == Some(*port));
                if *port != old && agreed && is_primary(self.node(*port)) {
                    return *port;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no replica took over from the primary on port {old}: the sentinels name \
                 {named:?}\n{}",
                self.logs()
            );
            sleep(Duration::from_millis(50));
        }
    }

    /// Every process's log, for failure messages.
    pub fn logs(&self) -> String {
        let nodes = self.nodes.iter().map(|node| ("node", node));
        let sentinels = self.sentinels.iter().map(|node| ("sentinel", node));
        nodes
            .chain(sentinels)
            .map(|(kind, node)| format!("--- {kind} {} ---\n{}", node.port(), node.log()))
            .collect()
    }

    /// Waits until every sentinel knows the replicas and the other sentinels.
    fn wait_until_known(&self, replicas: usize) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let known: Vec<Option<(usize, usize)>> =
                self.sentinels.iter().map(what_it_knows).collect();
            let everyone_known = known
                .iter()
                .all(|seen| *seen == Some((replicas, self.sentinels.len() - 1)));
            if everyone_known {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the sentinels did not find each other and the replicas (each one's \
                 (replicas, other sentinels): {known:?})\n{}",
                self.logs()
            );
            sleep(Duration::from_millis(100));
        }
    }
}

/// Waits until every replica in `nodes` (all but the first) has synced with the primary.
fn wait_until_synced(nodes: &[RedisServer]) {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let link = |node: &RedisServer| node.info_field("replication", "master_link_status");
    while !nodes[1..]
        .iter()
        .all(|node| link(node).as_deref() == Some("up"))
    {
        assert!(
            Instant::now() < deadline,
            "the replicas did not sync with the primary"
        );
        sleep(Duration::from_millis(50));
    }
}

/// The primary `sentinel` names, `None` when it does not answer.
fn primary_named_by(sentinel: &RedisServer) -> Option<u16> {
    let mut connection = quick_connection(sentinel)?;
    let address: Option<(String, u16)> = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(SERVICE)
        .query(&mut connection)
        .ok()?;
    address.map(|(_, port)| port)
}

/// How many replicas and other sentinels `sentinel` knows of.
fn what_it_knows(sentinel: &RedisServer) -> Option<(usize, usize)> {
    let mut connection = quick_connection(sentinel)?;
    let master: std::collections::HashMap<String, String> = redis::cmd("SENTINEL")
        .arg("MASTER")
        .arg(SERVICE)
        .query(&mut connection)
        .ok()?;
    let count = |field: &str| master.get(field)?.parse().ok();
    Some((count("num-slaves")?, count("num-other-sentinels")?))
}

fn is_primary(node: &RedisServer) -> bool {
    quick_connection(node)
        .and_then(|mut connection| {
            redis::cmd("ROLE")
                .query::<redis::Role>(&mut connection)
                .ok()
        })
        .is_some_and(|role| matches!(role, redis::Role::Primary { .. }))
}

fn quick_connection(node: &RedisServer) -> Option<redis::Connection> {
    let connection = redis::Client::open(format!("redis://127.0.0.1:{}", node.port()))
        .ok()?
        .get_connection_with_timeout(Duration::from_millis(300))
        .ok()?;
    connection
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    Some(connection)
}

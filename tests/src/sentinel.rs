//! A primary with replicas watched by three sentinels, all on loopback.

use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::tls::Certificates;
use crate::{free_port, RedisServer};

/// The name the sentinels monitor the primary under.
pub const SERVICE: &str = "rtc-test";

/// How long the sentinels may take to see each other and the replicas, and to fail over.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How many sentinels must agree that the primary is down.
const QUORUM: usize = 2;

/// A primary, `replicas` replicas (`--replicaof`) and three `--sentinel` processes, killed on
/// drop. Sentinels call a primary down after 500 ms without an answer.
///
/// With TLS ([`RedisSentinel::start_tls`]) every process also listens on a TLS port, replicates
/// and talks to the others over TLS, and the sentinels name TLS ports; the plain ports stay for
/// the harness.
pub struct RedisSentinel {
    nodes: Vec<RedisServer>,
    sentinels: Vec<RedisServer>,
    /// Per node, then per sentinel: the TLS port, when TLS is on.
    tls_ports: Vec<u16>,
}

impl RedisSentinel {
    /// Starts the primary, `replicas` replicas and three sentinels, and waits until every
    /// replica is in sync and every sentinel knows the replicas and the other sentinels, so
    /// that a failover can happen at once.
    pub fn start(replicas: usize) -> Self {
        Self::start_with(replicas, None)
    }

    /// Like [`RedisSentinel::start`], everything speaking TLS with `certificates` (clients
    /// need no certificate of their own).
    pub fn start_tls(replicas: usize, certificates: &Certificates) -> Self {
        Self::start_with(replicas, Some(certificates))
    }

    fn start_with(replicas: usize, certificates: Option<&Certificates>) -> Self {
        let mut tls_ports = Vec::new();
        let start = |tls_ports: &mut Vec<u16>, config: Option<&str>, args: &[&str]| {
            let mut args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
            if let Some(certificates) = certificates {
                let port = free_port();
                tls_ports.push(port);
                args.extend(tls_args(certificates, port));
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            RedisServer::start_configured(free_port, config, &args)
        };
        let data_args = ["--repl-diskless-sync-delay", "0"];
        let mut nodes = vec![start(&mut tls_ports, None, &data_args)];
        let primary_port = tls_ports
            .first()
            .copied()
            .unwrap_or(nodes[0].port())
            .to_string();
        for _ in 0..replicas {
            let mut args = data_args.to_vec();
            args.extend(["--replicaof", "127.0.0.1", &primary_port]);
            nodes.push(start(&mut tls_ports, None, &args));
        }
        // Sentinels learn of replicas from the primary's INFO, which they ask for at once and
        // then only every 10 s: the replicas must be connected before the sentinels start.
        wait_until_synced(&nodes);
        let config = format!(
            "sentinel monitor {SERVICE} 127.0.0.1 {primary_port} {QUORUM}\n\
             sentinel down-after-milliseconds {SERVICE} 500\n\
             sentinel failover-timeout {SERVICE} 2000\n"
        );
        let sentinels = (0..3)
            .map(|_| start(&mut tls_ports, Some(&config), &["--sentinel"]))
            .collect();
        let deployment = Self {
            nodes,
            sentinels,
            tls_ports,
        };
        deployment.wait_until_known(replicas);
        deployment
    }

    /// `redis://127.0.0.1:<port>` of each sentinel, `rediss://` with TLS.
    pub fn urls(&self) -> Vec<String> {
        (0..self.sentinels.len())
            .map(|index| {
                let (scheme, port) =
                    self.advertised(self.nodes.len() + index, &self.sentinels[index]);
                format!("{scheme}://127.0.0.1:{port}")
            })
            .collect()
    }

    /// The scheme and port the `index`th process (nodes, then sentinels) is reached on.
    fn advertised(&self, index: usize, process: &RedisServer) -> (&'static str, u16) {
        match self.tls_ports.get(index) {
            Some(port) => ("rediss", *port),
            None => ("redis", process.port()),
        }
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

    /// Freezes the `index`th sentinel (SIGSTOP): it accepts connections and never answers.
    pub fn freeze_sentinel(&self, index: usize) {
        self.sentinels[index].freeze();
    }

    /// The data node (primary or replica) the sentinels call `port`.
    pub fn node(&self, port: u16) -> &RedisServer {
        &self.nodes[self.node_index(port)]
    }

    fn node_index(&self, port: u16) -> usize {
        (0..self.nodes.len())
            .find(|index| self.advertised(*index, &self.nodes[*index]).1 == port)
            .expect("a node of this deployment")
    }

    /// Kills the primary (SIGKILL) and returns its port.
    pub fn kill_primary(&mut self) -> u16 {
        let port = self.primary_port().expect("the sentinels name a primary");
        let index = self.node_index(port);
        self.nodes[index].kill();
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

/// What makes a process listen on `port` with TLS and speak TLS to the others.
fn tls_args(certificates: &Certificates, port: u16) -> Vec<String> {
    let file = |name: &str| certificates.path(name).display().to_string();
    [
        "--tls-port".to_owned(),
        port.to_string(),
        "--tls-cert-file".to_owned(),
        file("server.crt"),
        "--tls-key-file".to_owned(),
        file("server.key"),
        "--tls-ca-cert-file".to_owned(),
        file("ca.crt"),
        "--tls-auth-clients".to_owned(),
        "no".to_owned(),
        "--tls-replication".to_owned(),
        "yes".to_owned(),
    ]
    .into()
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

//! A cluster's or a replicated primary's nodes, as tracking was set up for them: compared at
//! each heartbeat, so that a moved slot or a failover starts tracking over.

use redis::{ConnectionAddr, ConnectionInfo, Value};

/// A node's address as `CLUSTER SLOTS` gives it.
pub(super) type Address = (String, u16);

/// A range of slots (first, last) and the nodes serving it, the master first.
type Range = (i64, i64, Vec<Address>);

/// The first and last slot of a range a master serves.
pub(crate) type SlotRange = (u16, u16);

/// A cluster's slots, as tracking was set up for them.
#[derive(PartialEq, Eq, Debug)]
pub(super) struct Layout {
    /// Every slot range, sorted.
    ranges: Vec<Range>,
}

impl Layout {
    /// A primary and its replicas (those a sentinel reports neither down nor disconnected),
    /// as one range.
    pub(super) fn replicated(
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

    pub(super) fn of(reply: Value) -> Option<Self> {
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
    pub(super) fn nodes(&self, seed: &ConnectionInfo) -> Vec<ConnectionInfo> {
        let mut addresses: Vec<&Address> = self
            .ranges
            .iter()
            .flat_map(|(_, _, nodes)| nodes.iter())
            .collect();
        addresses.sort();
        addresses.dedup();
        addressed(addresses, seed)
    }

    /// Each master of a cluster, with the slots it serves, addressed like `seed`, in a stable
    /// order.
    pub(super) fn masters(&self, seed: &ConnectionInfo) -> Vec<(ConnectionInfo, Vec<SlotRange>)> {
        let mut masters: Vec<(&Address, Vec<SlotRange>)> = Vec::new();
        for (first, last, nodes) in &self.ranges {
            let (Some(master), Ok(first), Ok(last)) =
                (nodes.first(), u16::try_from(*first), u16::try_from(*last))
            else {
                continue;
            };
            match masters.iter_mut().find(|(address, _)| *address == master) {
                Some((_, slots)) => slots.push((first, last)),
                None => masters.push((master, vec![(first, last)])),
            }
        }
        masters.sort();
        let (addresses, slots): (Vec<&Address>, Vec<Vec<SlotRange>>) = masters.into_iter().unzip();
        addressed(addresses, seed).into_iter().zip(slots).collect()
    }

    /// Every node that masters no slot (a cluster's replicas), once, addressed like `seed`.
    pub(super) fn replicas(&self, seed: &ConnectionInfo) -> Vec<ConnectionInfo> {
        let masters: Vec<&Address> = self
            .ranges
            .iter()
            .filter_map(|(_, _, nodes)| nodes.first())
            .collect();
        let mut replicas: Vec<&Address> = self
            .ranges
            .iter()
            .flat_map(|(_, _, nodes)| nodes.iter().skip(1))
            .filter(|node| !masters.contains(node))
            .collect();
        replicas.sort();
        replicas.dedup();
        addressed(replicas, seed)
    }

    /// A [replicated](Layout::replicated) layout's primary, then its replicas, addressed like
    /// `seed`.
    pub(super) fn primary_first(&self, seed: &ConnectionInfo) -> Vec<ConnectionInfo> {
        let nodes = self.ranges.iter().flat_map(|(_, _, nodes)| nodes.iter());
        addressed(nodes.collect(), seed)
    }
}

/// `addresses` as connections like `seed`'s (credentials, TLS); an empty host is the seed's.
fn addressed(addresses: Vec<&Address>, seed: &ConnectionInfo) -> Vec<ConnectionInfo> {
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

    #[test]
    fn a_clusters_masters_come_with_all_their_slots_and_its_replicas_once() {
        let layout = Layout::of(Value::Array(vec![
            range(
                0,
                99,
                vec![node("127.0.0.1", 7001), node("127.0.0.1", 7004)],
            ),
            range(
                100,
                199,
                vec![node("127.0.0.1", 7002), node("127.0.0.1", 7005)],
            ),
            range(
                200,
                299,
                vec![node("127.0.0.1", 7001), node("127.0.0.1", 7004)],
            ),
        ]))
        .unwrap();
        let seed =
            redis::IntoConnectionInfo::into_connection_info("redis://u:p@localhost:7000/").unwrap();
        let masters: Vec<(String, Vec<SlotRange>)> = layout
            .masters(&seed)
            .into_iter()
            .map(|(node, slots)| (node.addr().to_string(), slots))
            .collect();
        assert_eq!(
            masters,
            [
                ("127.0.0.1:7001".to_owned(), vec![(0, 99), (200, 299)]),
                ("127.0.0.1:7002".to_owned(), vec![(100, 199)]),
            ]
        );
        let replicas: Vec<String> = layout
            .replicas(&seed)
            .iter()
            .map(|node| node.addr().to_string())
            .collect();
        assert_eq!(replicas, ["127.0.0.1:7004", "127.0.0.1:7005"]);
    }

    #[test]
    fn a_replicated_layout_puts_its_primary_first_and_leaves_out_replicas_down() {
        let replica = |port: &str, flags: &str| {
            [("ip", "127.0.0.1"), ("port", port), ("flags", flags)]
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect()
        };
        let layout = Layout::replicated(
            ("127.0.0.1".to_owned(), 7003),
            &[
                replica("7002", "slave"),
                replica("7001", "slave"),
                replica("7004", "s_down,slave"),
            ],
        );
        let seed =
            redis::IntoConnectionInfo::into_connection_info("redis://u:p@127.0.0.1:1/2").unwrap();
        let nodes = layout.primary_first(&seed);
        let addresses: Vec<String> = nodes.iter().map(|node| node.addr().to_string()).collect();
        assert_eq!(
            addresses,
            ["127.0.0.1:7003", "127.0.0.1:7001", "127.0.0.1:7002"]
        );
        assert!(nodes.iter().all(|node| node.redis_settings().db() == 2));
    }
}

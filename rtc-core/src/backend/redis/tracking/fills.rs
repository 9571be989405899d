//! The connections that the near cache's fills read on (to one server, to the primary behind
//! Sentinel that the tracker found, or to each master of a cluster), lent by the tracker.
//!
//! With `CLIENT TRACKING ON OPTIN`, Redis announces a change to a key only to the connections
//! that read it right after `CLIENT CACHING YES`, and only once (the key is tracked again when
//! it is read again). So a near fill reads its entry and tags on this connection, prefixed with
//! `CLIENT CACHING YES`; the connection tracks with `REDIRECT` to the tracker's first
//! connection, so the next change to any of those keys is announced there, where the messages
//! end the near cache's watches. A process hears only of the keys it holds near, instead of
//! every write of the namespace (`BCAST`). This connection is read by rtc's I/O thread, never by
//! the thread that applies the messages (ARCHITECTURE.md says why).
//!
//! On a cluster each master has such a connection: a fill's commands (one key each there) go to
//! the master of their key's slot, each after its own `CLIENT CACHING YES`, all masters at once.
//!
//! The tracking driver lends the connections once tracking is on, and withdraws them when its
//! life ends. A fill that finds no connection lent (tracking is being set up again), or whose
//! read on them fails, is read on a data connection without asking for the keys' times to live,
//! so that its reply is never kept near ([`crate::near::NearCache::keep`] keeps nothing whose expiry is
//! unknown): the caller still gets its answer.

use std::future::Future;
use std::sync::{Mutex, PoisonError};

use futures_util::future::join_all;
use redis::aio::MultiplexedConnection;
use redis::{Cmd, Pipeline, RedisResult, Value};
use tokio::runtime::Handle;

use super::super::runtime::Entered;
use super::layout::SlotRange;
use super::session::client_error_owned;

/// A fills' server's connection, and the slots it serves (none named: every key).
type Server = (Vec<SlotRange>, MultiplexedConnection);

/// The connections lent, and the runtime whose task reads them.
#[derive(Clone)]
struct Lent {
    servers: Vec<Server>,
    runtime: Handle,
}

/// Where the tracking driver lends the fills' connections (one set per Redis store).
#[derive(Default)]
pub(crate) struct FillConnection {
    lent: Mutex<Option<Lent>>,
}

impl FillConnection {
    /// Lends `servers`' connections, whose `CLIENT TRACKING ON REDIRECT ... OPTIN` was
    /// acknowledged, driven by `runtime`.
    pub(super) fn lend(&self, servers: Vec<Server>, runtime: Handle) {
        let lent = Lent { servers, runtime };
        *self.lent.lock().unwrap_or_else(PoisonError::into_inner) = Some(lent);
    }

    /// Tracking's life ended: fills go to the data connections (and are not kept) until the
    /// next connections are lent.
    pub(super) fn withdraw(&self) {
        *self.lent.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The replies to `commands`, in their order, sent after `CLIENT CACHING YES` on the lent
    /// connections so that Redis tracks what they read for the near cache; `None` when none is
    /// lent. On one server all of them follow one `CLIENT CACHING YES` (its first command reads
    /// every key); on a cluster each goes to its key's master after one of its own. The future
    /// is polled inside the context of the runtime whose task reads those connections, by
    /// whoever polls it: the async driver awaits it, the blocking one blocks on it (each
    /// command is bounded by the connection's response timeout).
    pub(crate) fn send(
        &self,
        commands: &[Cmd],
    ) -> Option<impl Future<Output = RedisResult<Vec<Value>>> + Send + 'static> {
        let Lent { servers, runtime } = self
            .lent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        let sends = match servers.as_slice() {
            // One server (or a primary): its first command reads every key.
            [(slots, connection)] if slots.is_empty() => Ok(vec![one_server(connection, commands)]),
            // A cluster's masters (one or more): a command per key.
            _ => routed(&servers, commands),
        };
        Some(Entered::new(runtime, async move {
            let sends = sends?;
            let count = sends.iter().map(|(_, _, at)| at.len()).sum();
            let sent = join_all(sends.into_iter().map(
                |(mut connection, pipeline, at)| async move {
                    let replies: RedisResult<Vec<Value>> =
                        pipeline.query_async(&mut connection).await;
                    (replies, at)
                },
            ))
            .await;
            let mut replies = vec![Value::Nil; count];
            for (server_replies, at) in sent {
                let server_replies = server_replies?;
                if server_replies.len() != at.len() {
                    return Err(client_error_owned(
                        "a near fill got fewer replies than it sent commands".to_owned(),
                    ));
                }
                for (reply, index) in server_replies.into_iter().zip(at) {
                    // A refusal (`MOVED`, `ASK` while a slot migrates) fails the fill, which is
                    // then read on the data connections and not kept.
                    replies[index] = reply.extract_error()?;
                }
            }
            Ok(replies)
        }))
    }
}

/// What goes to one connection: the pipeline, and where each of its replies belongs.
type Sending = (MultiplexedConnection, Pipeline, Vec<usize>);

/// Every command after one `CLIENT CACHING YES`.
fn one_server(connection: &MultiplexedConnection, commands: &[Cmd]) -> Sending {
    let mut pipeline = redis::pipe();
    pipeline.cmd("CLIENT").arg("CACHING").arg("YES").ignore();
    for command in commands {
        pipeline.add_command(command.clone());
    }
    (connection.clone(), pipeline, (0..commands.len()).collect())
}

/// Each command to the master of its key's slot, after a `CLIENT CACHING YES` of its own;
/// an error when a key's slot has no master lent (the layout changed: the fill is not kept).
fn routed(servers: &[Server], commands: &[Cmd]) -> RedisResult<Vec<Sending>> {
    let slots: Vec<&[SlotRange]> = servers.iter().map(|(slots, _)| slots.as_slice()).collect();
    let routes = route(&slots, commands)?;
    Ok(servers
        .iter()
        .zip(routes)
        .filter(|(_, at)| !at.is_empty())
        .map(|((_, connection), at)| {
            let mut pipeline = redis::pipe();
            for &index in &at {
                pipeline.cmd("CLIENT").arg("CACHING").arg("YES").ignore();
                pipeline.add_command(commands[index].clone());
            }
            (connection.clone(), pipeline, at)
        })
        .collect())
}

/// For each server (the slots it serves), the indexes of the commands whose key is in one of
/// them; an error for a command with no key, or whose key's slot no server serves.
fn route(servers: &[&[SlotRange]], commands: &[Cmd]) -> RedisResult<Vec<Vec<usize>>> {
    let mut routes = vec![Vec::new(); servers.len()];
    for (index, command) in commands.iter().enumerate() {
        let slot = match command.args_iter().nth(1) {
            Some(redis::Arg::Simple(key)) => slot_of(key),
            _ => {
                return Err(client_error_owned(
                    "a near fill's command names no key".to_owned(),
                ))
            }
        };
        let server = servers
            .iter()
            .position(|slots| {
                slots
                    .iter()
                    .any(|&(first, last)| (first..=last).contains(&slot))
            })
            .ok_or_else(|| client_error_owned("no master is lent for a key's slot".to_owned()))?;
        routes[server].push(index);
    }
    Ok(routes)
}

/// A key's cluster slot: CRC16 (XMODEM) of its hash tag (the first non-empty `{...}`), or of
/// the whole key, modulo 16,384.
fn slot_of(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&byte| byte == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&byte| byte == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(hashed) % 16_384
}

#[cfg(test)]
mod tests {
    use super::{route, slot_of};

    fn on_key(name: &str, key: &str) -> redis::Cmd {
        let mut command = redis::cmd(name);
        command.arg(key);
        command
    }

    #[test]
    fn each_command_goes_to_the_master_of_its_keys_slot() {
        let (low, high) = ([(0, 8_191)], [(8_192, 16_383)]);
        let commands = [
            on_key("GET", "foo"),       // slot 12,182
            on_key("GET", "user:1000"), // slot 1,649
            on_key("PTTL", "foo"),
        ];
        let routes = route(&[&low, &high], &commands).unwrap();
        assert_eq!(routes, [vec![1], vec![0, 2]]);
        // One master serving every slot gets every command (each after its own CACHING YES).
        let routes = route(&[&[(0, 16_383)]], &commands).unwrap();
        assert_eq!(routes, [vec![0, 1, 2]]);
        // A slot no master lent serves (the layout changed): the fill is not made.
        assert!(route(&[&low], &commands).is_err());
        assert!(route(&[&low, &high], &[redis::cmd("PING")]).is_err());
    }

    /// Slots as `CLUSTER KEYSLOT` gives them (Redis 7.0.15).
    #[test]
    fn keys_map_to_the_slots_redis_gives_them() {
        assert_eq!(slot_of(b"foo"), 12_182);
        assert_eq!(slot_of(b"user:1000"), 1_649);
        assert_eq!(slot_of(b"{user1000}.following"), 3_443);
        // An empty hash tag does not count: the whole key is hashed.
        assert_eq!(slot_of(b"foo{}{bar}"), 8_363);
        assert_eq!(slot_of(b"foo{{bar}}zap"), 4_015);
    }
}

//! A model of the Redis server, on the simulator's virtual clock: each [`Operation`] is one
//! atomic step, with the semantics the Lua scripts and `backend/redis/commands.rs` give it.
//!
//! Entries and tags are the memory backend's maps and freshness checks (`MemoryStore`, asked
//! at the virtual time). What it lacks is here: the stampede lock (`SET lock token NX GET PX`,
//! `PTTL lock`), the wake list (`LPUSH` + `PEXPIRE`, `BLPOP` with clients blocked in arrival
//! order), the release script (delete the lock if the token still holds it, push the token),
//! keys that expire as virtual time passes, `FLUSHALL` and a restart that drops connections.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::backend::memory::MemoryStore;
use crate::engine::{LockAttempt, Operation, Reply, Ttl};
use crate::error::BackendError;

/// A client: one simulated caller's connection.
pub(crate) type Client = usize;

/// A `BLPOP` waiting for its list.
struct Blocked {
    client: Client,
    list: String,
    until: Instant,
}

/// A held stampede lock: its token, and when `PX` expires it.
struct Lock {
    token: Vec<u8>,
    expires: Instant,
}

/// A wake list and its `PEXPIRE` deadline.
#[derive(Default)]
struct List {
    items: VecDeque<Vec<u8>>,
    expires: Option<Instant>,
}

/// What changed when time moved.
#[derive(Default)]
pub(crate) struct Expired {
    /// Replies to `BLPOP`s whose timeout passed.
    pub replies: Vec<(Client, Received)>,
    /// Lock keys whose `PX` ran out.
    pub locks: Vec<String>,
}

type Received = Result<Reply, BackendError>;

/// The server.
pub(crate) struct Server {
    store: MemoryStore,
    locks: HashMap<String, Lock>,
    lists: HashMap<String, List>,
    blocked: Vec<Blocked>,
}

impl Server {
    /// An empty server.
    pub(crate) fn new() -> Self {
        Self {
            store: MemoryStore::new(None),
            locks: HashMap::new(),
            lists: HashMap::new(),
            blocked: Vec::new(),
        }
    }

    /// Runs `client`'s `operation` at `now`: the replies it produces, its own (unless it
    /// blocks) and those of blocked clients it wakes.
    pub(crate) fn execute(
        &mut self,
        client: Client,
        operation: Operation<'_>,
        now: Instant,
    ) -> Vec<(Client, Received)> {
        let mut replies = Vec::new();
        let reply = match operation {
            Operation::Acquire {
                lock,
                token,
                lifetime,
                baton,
                entry,
                tags,
                ttl,
            } => {
                if let Some(baton) = baton {
                    self.push(&lock.wake, baton, lifetime, now, &mut replies);
                }
                let holder = match self.locks.get(&lock.lock) {
                    Some(held) if held.expires > now => Some(held.token.clone()),
                    _ => {
                        let expires = now + lifetime;
                        let token = token.to_vec();
                        self.locks
                            .insert(lock.lock.clone(), Lock { token, expires });
                        None
                    }
                };
                // `PTTL` counts whole milliseconds.
                let left = self.locks[&lock.lock]
                    .expires
                    .saturating_duration_since(now);
                let lock_ttl = Duration::from_millis(left.as_millis() as u64);
                let read = Operation::Read {
                    entry,
                    tags,
                    ttl,
                    expiry: false,
                };
                self.read(read, now).map(|read| {
                    Reply::Lock(LockAttempt {
                        holder,
                        lock_ttl,
                        read,
                    })
                })
            }
            Operation::Release {
                lock,
                token,
                lifetime,
            } => {
                if self
                    .locks
                    .get(&lock.lock)
                    .is_some_and(|held| held.expires > now && held.token == token)
                {
                    self.locks.remove(&lock.lock);
                }
                self.push(&lock.wake, token, lifetime, now, &mut replies);
                Ok(Reply::Ok)
            }
            Operation::WaitForWake { lock, timeout } => {
                match self.pop(&lock.wake, now) {
                    Some(token) => Ok(Reply::Woken(Some(token))),
                    None => {
                        // `BLPOP` takes seconds with three decimals, at least a millisecond.
                        let timeout = Duration::from_millis((timeout.as_millis() as u64).max(1));
                        self.blocked.push(Blocked {
                            client,
                            list: lock.wake.clone(),
                            until: now + timeout,
                        });
                        return replies;
                    }
                }
            }
            read @ Operation::Read { .. } => self.read(read, now).map(Reply::Read),
            other => self.store.execute_at(other, now),
        };
        replies.insert(0, (client, reply));
        replies
    }

    /// Time moved to `now`: `BLPOP`s time out, locks and wake lists expire.
    pub(crate) fn advance(&mut self, now: Instant) -> Expired {
        let mut expired = Expired::default();
        self.blocked.retain(|blocked| {
            let waiting = blocked.until > now;
            if !waiting {
                expired
                    .replies
                    .push((blocked.client, Ok(Reply::Woken(None))));
            }
            waiting
        });
        self.locks.retain(|key, lock| {
            let held = lock.expires > now;
            if !held {
                expired.locks.push(key.clone());
            }
            held
        });
        self.lists
            .retain(|_, list| list.expires.is_none_or(|expires| expires > now));
        expired
    }

    /// The earliest time at which something expires by itself (a `BLPOP`, a lock).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let blocked = self.blocked.iter().map(|blocked| blocked.until);
        let locks = self.locks.values().map(|lock| lock.expires);
        blocked.chain(locks).min()
    }

    /// The client's connection is gone (its process crashed): its `BLPOP` no longer waits.
    pub(crate) fn disconnect(&mut self, client: Client) {
        self.blocked.retain(|blocked| blocked.client != client);
    }

    /// Evicts `key` (`maxmemory`), a lock, an entry or a tag; one that holds a delete's
    /// lineage only with `lineages`. Returns whether a key went.
    pub(crate) fn evict(&mut self, key: &str, lineages: bool, now: Instant) -> bool {
        self.locks.remove(key).is_some() || self.store.evict(key, lineages, now)
    }

    /// A plain `SET` of the entry `key` to `bytes`, for `lifetime`.
    pub(crate) fn put(
        &mut self,
        key: &str,
        bytes: Vec<u8>,
        lifetime: Option<std::time::Duration>,
        now: Instant,
    ) {
        self.store.put(key, bytes, lifetime, now);
    }

    /// The tag `key`'s version and when it expires, at `now` (`None`: no such tag), read without
    /// touching anything (as the in-band tracking's bookkeeping looks at it).
    pub(crate) fn tag(
        &self,
        key: &str,
        now: Instant,
    ) -> Option<(crate::format::Version, Option<Instant>)> {
        self.store.tag_at(key, now)
    }

    /// `FLUSHALL`: every key is gone; blocked clients keep waiting (as on Redis).
    pub(crate) fn flush(&mut self) {
        self.store.clear();
        self.locks.clear();
        self.lists.clear();
    }

    /// A restart without persistence: every key is gone and every connection is dropped, so
    /// blocked clients get an error. Returns their replies.
    pub(crate) fn restart(&mut self) -> Vec<(Client, Received)> {
        self.flush();
        self.blocked
            .drain(..)
            .map(|blocked| (blocked.client, Err(connection_lost())))
            .collect()
    }

    /// `Read`, answering the time to live only when asked (the memory store always tells).
    fn read(
        &mut self,
        read: Operation<'_>,
        now: Instant,
    ) -> Result<crate::engine::ReadReply, BackendError> {
        let asked = matches!(read, Operation::Read { ttl: true, .. });
        let mut reply = self.store.execute_at(read, now)?.into_read()?;
        if !asked {
            reply.ttl = Ttl::Unasked;
        }
        Ok(reply)
    }

    /// `LPUSH list item` and `PEXPIRE list lifetime`, then serve the clients blocked on the
    /// list, longest-waiting first.
    fn push(
        &mut self,
        list: &str,
        item: &[u8],
        lifetime: Duration,
        now: Instant,
        replies: &mut Vec<(Client, Received)>,
    ) {
        let stored = self.lists.entry(list.to_owned()).or_default();
        stored.items.push_front(item.to_vec());
        stored.expires = Some(now + lifetime);
        while let Some(at) = self.blocked.iter().position(|blocked| blocked.list == list) {
            let Some(token) = self.pop(list, now) else {
                break;
            };
            let blocked = self.blocked.remove(at);
            replies.push((blocked.client, Ok(Reply::Woken(Some(token)))));
        }
    }

    /// `LPOP list`, if it has an item and has not expired.
    fn pop(&mut self, list: &str, now: Instant) -> Option<Vec<u8>> {
        let stored = self.lists.get_mut(list)?;
        if stored.expires.is_some_and(|expires| expires <= now) {
            self.lists.remove(list);
            return None;
        }
        let item = stored.items.pop_front();
        if stored.items.is_empty() {
            self.lists.remove(list);
        }
        item
    }
}

/// The error a caller sees when the server drops its connection.
pub(crate) fn connection_lost() -> BackendError {
    BackendError::Redis(redis::RedisError::from(std::io::Error::from(
        std::io::ErrorKind::ConnectionReset,
    )))
}

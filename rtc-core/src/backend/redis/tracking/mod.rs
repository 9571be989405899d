//! Redis's invalidation messages for the near cache.
//!
//! Connections of its own per server (a thread running a one-thread tokio runtime, so that
//! blocking and async users alike get them, and so that the messages are read whether or not
//! any call is under way) turn on `CLIENT TRACKING`, and Redis announces changes on them
//! (RESP3 push messages). Each announcement ends the near cache's watches on the keys it names;
//! a flushed database ends them all. While the connection is not up and tracking (before the
//! first connect, after a drop, a failed heartbeat or a restart of the server) the near cache
//! is distrusted: it serves and keeps nothing until tracking is on again.
//!
//! Which changes are announced depends on the deployment:
//! - **One server, the primary behind Sentinel, or each master of a cluster: `OPTIN`.** Two
//!   connections to it: the first receives the messages; the near cache's fills read on the
//!   second, after `CLIENT CACHING YES` (`fills.rs`; on a cluster, each key on its slot's
//!   master), which tracks with `REDIRECT` to the first and is read by rtc's I/O thread. Redis
//!   announces the next change to exactly the keys this process holds near; writes to keys
//!   nobody holds near cost the writer nothing.
//! - **Replicas (behind Sentinel, or a cluster's): `BCAST`** for the namespace's entry and tag
//!   key prefixes: a replica announces the writes it applies, so the one a failover promotes
//!   is already tracked.
//!
//! The session's logic is the I/O-free state machine of `session`; this module holds the
//! tracker's handle and the driver that connects, sends and waits for it. `layout` is what a
//! heartbeat compares: a cluster's slots, or a primary and its replicas.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ConnectionInfo, Pipeline};
use tokio::runtime::Handle;
use tokio::sync::mpsc::unbounded_channel;

pub(crate) use self::fills::FillConnection;
pub(crate) use self::known::{Known, KnownTags, Learning, Plan};
pub(crate) use self::session::Announced;
pub(super) use self::session::{apply, client_error_owned, Informed};
use self::session::{Event, Session, Step};
use crate::near::NearCache;
use crate::settings::TlsMaterial;

mod fills;
mod known;
mod layout;
mod session;
#[cfg(feature = "simulation")]
pub(crate) mod simulated;

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

/// The near cache is what a tracking session keeps informed.
impl Informed for NearCache {
    fn trust(&self) {
        NearCache::trust(self);
    }

    fn distrust(&self) {
        NearCache::distrust(self);
    }

    fn changed(&self, keys: &mut dyn Iterator<Item = &[u8]>) {
        // The simulator's `near` mutant: each near cache ignores one message.
        #[cfg(feature = "simulation")]
        if crate::mutants::active(crate::mutants::Mutant::Near) {
            let keys: Vec<&[u8]> = keys.collect();
            let cache = std::ptr::from_ref(self) as usize;
            if crate::mutants::ignores_message(cache, self.watches().watching(&keys)) {
                return;
            }
            self.watches().changed(keys);
            return;
        }
        self.watches().changed(keys);
    }

    fn changed_all(&self) {
        NearCache::changed_all(self);
    }
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
    /// Starts tracking on the servers of `source`: with `fills`, `OPTIN` for the keys the
    /// fills read on the connections lent to them through it (one server's, the primary's
    /// behind Sentinel, each master's of a cluster), and `BCAST` for every key under `prefixes`
    /// on replicas; without, `BCAST` for every key under `prefixes` on every node.
    /// `response_timeout` bounds each command, the heartbeat included.
    pub(crate) fn start(
        source: Source,
        fills: Option<Arc<FillConnection>>,
        prefixes: Vec<String>,
        near: &Arc<NearCache>,
        response_timeout: Duration,
        connect_timeout: Duration,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let informed: std::sync::Weak<NearCache> = Arc::downgrade(near);
        let announced = match fills {
            Some(_) => Announced::Read { replicas: prefixes },
            None => Announced::Prefixes(prefixes),
        };
        let session = Session::new(source, announced, informed, stop.clone());
        let config = AsyncConnectionConfig::new()
            .set_response_timeout(Some(response_timeout))
            .set_connection_timeout(Some(connect_timeout));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("rtc-near-tracking".to_owned())
            .spawn(move || {
                runtime.block_on(drive(session, &config, fills.as_deref()));
            })?;
        Ok(Self { stop })
    }
}

/// The tracking session's driver, the only code of it that connects, sends or waits: does
/// each [`Step`] the session asks for and tells it how that went, until it stops. With
/// `fills`, it opens the second connection on rtc's I/O runtime and lends it to them from the
/// moment tracking is on (the session's first `Listen` of a life) until that life ends.
async fn drive(
    mut session: Session,
    config: &AsyncConnectionConfig,
    fills: Option<&FillConnection>,
) {
    let mut connections: Vec<MultiplexedConnection> = Vec::new();
    let (sender, mut pushes) = unbounded_channel();
    // Given to each tracking connection as it opens; dropped once they are all open, so that
    // the channel closes when every connection is gone.
    let mut sender = Some(sender);
    // The connection of the last seed or sentinel asked, kept while it answers: a Sentinel
    // deployment is asked again at every heartbeat, and a new connection (a TLS handshake, with
    // TLS) each second would be wasted.
    let mut asked: Option<(String, MultiplexedConnection)> = None;
    // Where the fills' connection is read: rtc's I/O thread (this one, if it cannot start).
    let fills_runtime = fills.and(super::runtime::own_runtime());
    let mut event = Event::Paused;
    loop {
        event = match session.step(event, Instant::now()) {
            Step::Pause(pause) => {
                if let Some(fills) = fills {
                    fills.withdraw();
                }
                connections.clear();
                let (new_sender, new_pushes) = unbounded_channel();
                (sender, pushes) = (Some(new_sender), new_pushes);
                tokio::time::sleep(pause).await;
                Event::Paused
            }
            Step::Ask(client, commands) => {
                let mut pipeline = Pipeline::with_capacity(commands.len());
                for command in commands {
                    pipeline.add_command(command);
                }
                let address = client.get_connection_info().addr().to_string();
                let kept = asked.take().filter(|(kept, _)| *kept == address);
                let connection = match kept {
                    Some((_, connection)) => Ok(connection),
                    None => {
                        client
                            .get_multiplexed_async_connection_with_config(config)
                            .await
                    }
                };
                let answer = match connection {
                    Ok(mut connection) => {
                        let answer = pipeline.query_async(&mut connection).await;
                        if answer.is_ok() {
                            asked = Some((address, connection));
                        }
                        answer
                    }
                    Err(error) => Err(error),
                };
                Event::Asked(answer)
            }
            Step::Open(client) => {
                let config = match &sender {
                    Some(sender) => config.clone().set_push_sender(sender.clone()),
                    None => config.clone(),
                };
                // A fills' connection is read by another thread than the messages' one.
                let runtime = match fills {
                    Some(_) if session.opens_fills(connections.len()) => fills_runtime.clone(),
                    _ => None,
                };
                let opened = match &runtime {
                    Some(runtime) => runtime
                        .spawn(async move {
                            client
                                .get_multiplexed_async_connection_with_config(&config)
                                .await
                        })
                        .await
                        .unwrap_or_else(|_| {
                            Err(client_error_owned("the I/O runtime is gone".to_owned()))
                        }),
                    None => {
                        client
                            .get_multiplexed_async_connection_with_config(&config)
                            .await
                    }
                };
                Event::Opened(opened.map(|connection| connections.push(connection)))
            }
            Step::Send(index, command) => Event::Replied(match connections.get_mut(index) {
                Some(connection) => command.query_async(connection).await,
                None => Err(redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "no such tracking connection",
                ))),
            }),
            Step::Listen(until) => {
                if sender.take().is_some() {
                    if let Some(fills) = fills {
                        // Each fills' server's second connection, with the slots it serves.
                        let lent: Vec<_> = session
                            .fills_servers()
                            .iter()
                            .zip(connections.iter().skip(1).step_by(2))
                            .map(|(slots, connection)| (slots.clone(), connection.clone()))
                            .collect();
                        if !lent.is_empty() {
                            let runtime = fills_runtime.clone().unwrap_or_else(Handle::current);
                            fills.lend(lent, runtime);
                        }
                    }
                }
                match tokio::time::timeout_at(until.into(), pushes.recv()).await {
                    Ok(Some(push)) => Event::Pushed(push),
                    Ok(None) => Event::Closed,
                    Err(_quiet) => Event::Quiet,
                }
            }
            Step::Stop => {
                if let Some(fills) = fills {
                    fills.withdraw();
                }
                return;
            }
        }
    }
}

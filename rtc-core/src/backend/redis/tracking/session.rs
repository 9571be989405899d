//! The tracking session's logic, as a state machine with no I/O: it says what to do next
//! ([`Step`]: open a tracking connection, send a command, ask a seed or a sentinel, listen for
//! messages, pause) and learns how it went ([`Event`]). The driver in the parent module is the
//! only code that connects, sends or waits.
//!
//! One life of tracking: find the nodes (a cluster's slots from the first seed that answers,
//! the primary and replicas from the first sentinel that answers, or the one server), open a
//! connection to each and turn tracking on, trust the near cache, then apply every message;
//! each heartbeat `PING`s every connection and compares the layout with the one tracking was
//! set up for. A life ends when a connection drops or fails its heartbeat (lost), the layout
//! changes (moved) or setting up fails; the near cache is then distrusted, and the next life
//! starts after a pause.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use redis::{Client, Cmd, ConnectionInfo, PushInfo, PushKind, RedisError, RedisResult, Value};

use super::layout::{Layout, SlotRange};
use super::Source;

/// A layout, its fills' servers (each with the slots it serves) and its other nodes.
type LayoutNodes = (
    Layout,
    Vec<(ConnectionInfo, Vec<SlotRange>)>,
    Vec<ConnectionInfo>,
);

/// How often the tracking connections are checked with a `PING` (and a cluster's slots or a
/// primary's replicas compared with those tracking was set up for).
pub(super) const HEARTBEAT: Duration = Duration::from_secs(1);
/// The pause after a lost connection, the first after a failed set-up (doubled on each failure
/// up to [`MAX_PAUSE`]), and the longest sleep between two looks at whether to stop.
pub(super) const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// What the driver is to do next.
#[derive(Debug)]
pub(crate) enum Step {
    /// Drop every tracking connection (if any) and sleep this long; then [`Event::Paused`].
    Pause(Duration),
    /// Send these commands, in one round trip, on a connection of their own to this server
    /// (a cluster seed or a sentinel); then [`Event::Asked`].
    Ask(Client, Vec<Cmd>),
    /// Open a tracking connection to this server (the next index), whose messages the driver
    /// keeps for [`Step::Listen`]; then [`Event::Opened`].
    Open(Client),
    /// Send this command on tracking connection `index`; then [`Event::Replied`].
    Send(usize, Cmd),
    /// Wait for a message from any tracking connection until this instant: then
    /// [`Event::Pushed`], [`Event::Closed`] or [`Event::Quiet`].
    Listen(Instant),
    /// The cache is gone: drop everything and end.
    Stop,
}

/// What happened to the last [`Step`].
#[derive(Debug)]
pub(crate) enum Event {
    /// The pause is over (also the first event of a session).
    Paused,
    /// What the asked server answered, one value per command.
    Asked(RedisResult<Vec<Value>>),
    /// The tracking connection is open (or not).
    Opened(RedisResult<()>),
    /// The reply to [`Step::Send`].
    Replied(RedisResult<Value>),
    /// A message from a tracking connection.
    Pushed(PushInfo),
    /// Every tracking connection is gone.
    Closed,
    /// No message came before the instant of [`Step::Listen`].
    Quiet,
}

/// Why a life of tracking ended.
enum Ended {
    /// A connection dropped or stopped answering.
    Lost,
    /// The cluster's slots or the primary's replicas changed: tracking starts over at once.
    Moved,
    /// Tracking could not be set up.
    Failed(RedisError),
}

/// Where a session is.
enum Phase {
    /// Waiting `left` more before the next life.
    Pausing { left: Duration },
    /// Asking endpoint `next` (a seed or a sentinel) for the layout: to set tracking up
    /// (`current: None`), or to compare it with the current one at a heartbeat.
    Asking {
        next: usize,
        current: Option<Current>,
    },
    /// Opening tracking connection `opened` of `nodes` (`tracking`: its connection is open,
    /// tracking is being turned on).
    Opening {
        nodes: Vec<Client>,
        opened: usize,
        tracking: bool,
        layout: Option<Layout>,
    },
    /// Applying messages until the next heartbeat.
    Following {
        connections: usize,
        layout: Option<Layout>,
        heartbeat: Instant,
    },
    /// At a heartbeat: `PING` sent on connection `next`.
    Pinging {
        connections: usize,
        layout: Option<Layout>,
        next: usize,
    },
    /// At a heartbeat: `CLUSTER SLOTS` sent on the first connection.
    Comparing { connections: usize, layout: Layout },
}

/// The tracking a heartbeat checks: how many connections, set up for which layout.
struct Current {
    connections: usize,
    layout: Layout,
}

/// What the session tells the near cache it keeps informed, and all it knows of it: the
/// session holds no cache, only this (`NearCache` in production; what a test or the simulator
/// gives it).
pub(crate) trait Informed: Send + Sync {
    /// Tracking is on: every change from now on is announced.
    fn trust(&self);
    /// Changes may have gone unannounced: nothing is to be trusted until [`Informed::trust`].
    fn distrust(&self);
    /// Redis announced that `keys` changed.
    fn changed(&self, keys: &mut dyn Iterator<Item = &[u8]>);
    /// Redis announced that every key changed (a flush: a null key list).
    fn changed_all(&self);
}

/// Which changes Redis is asked to announce.
pub(crate) enum Announced {
    /// `OPTIN` on the servers the near cache's fills read (one server, the primary behind
    /// Sentinel, or each master of a cluster): changes to the keys they read after
    /// `CLIENT CACHING YES` ([`FillConnection`](super::FillConnection)). Two connections to
    /// each: the first receives the messages, the second (the one lent to the fills) tracks
    /// with `REDIRECT` to the first, so that the thread that reads the messages is never the
    /// one the fills wake (a thread woken by every fill is placed beside its callers by the
    /// scheduler, and answered a message up to a time slice late: BENCHMARKS.md). Replicas
    /// each get one connection tracking `BCAST` for `replicas` (the prefixes): a replica
    /// announces the writes it applies, so the one a failover promotes has announced every
    /// write since tracking began, and the writers' primaries do none of that work.
    Read { replicas: Vec<String> },
    /// `BCAST`: every change to a key under these prefixes, on every node (kept for the
    /// simulator, which runs it beside `Read`).
    Prefixes(Vec<String>),
}

/// One tracking session: the logic of the thread that keeps a near cache told of changes.
pub(crate) struct Session {
    source: Source,
    announced: Announced,
    near: Weak<dyn Informed>,
    stop: Arc<AtomicBool>,
    phase: Phase,
    /// The pause after the next failed set-up.
    pause: Duration,
    /// A failed set-up was warned about (once until tracking is up again).
    reported: bool,
    /// With [`Announced::Read`]: the client id of the last messages' connection opened, which
    /// the fills' connection opened next redirects its messages to (forgotten when the life
    /// ends).
    redirect_to: Option<i64>,
    /// With [`Announced::Read`]: this life's fills' servers, in the order their connections are
    /// opened, each with the slots it serves (none named: every key).
    fills_servers: Vec<Vec<SlotRange>>,
}

impl Session {
    /// A session that has the servers of `source` announce the changes `announced` names to
    /// `near`, until `stop` is set or `near` is dropped. Its first event is [`Event::Paused`].
    pub(crate) fn new(
        source: Source,
        announced: Announced,
        near: Weak<dyn Informed>,
        stop: Arc<AtomicBool>,
    ) -> Self {
        Self {
            source,
            announced,
            near,
            stop,
            phase: Phase::Pausing {
                left: Duration::ZERO,
            },
            pause: FIRST_PAUSE,
            reported: false,
            redirect_to: None,
            fills_servers: Vec::new(),
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire) || self.near.strong_count() == 0
    }

    /// What to do after `event`, at `now`.
    pub(crate) fn step(&mut self, event: Event, now: Instant) -> Step {
        if self.stopped() {
            return Step::Stop;
        }
        let phase = std::mem::replace(
            &mut self.phase,
            Phase::Pausing {
                left: Duration::ZERO,
            },
        );
        match (phase, event) {
            (Phase::Pausing { left }, Event::Paused) if left.is_zero() => self.begin(now),
            (Phase::Pausing { left }, Event::Paused) => self.pause_for(left),
            (Phase::Asking { next, current }, Event::Asked(answer)) => {
                self.answered(next, current, answer, now)
            }
            (
                Phase::Opening {
                    nodes,
                    opened,
                    tracking: false,
                    layout,
                },
                Event::Opened(Ok(())),
            ) => {
                self.phase = Phase::Opening {
                    nodes,
                    opened,
                    tracking: true,
                    layout,
                };
                match self.tracking_on(opened) {
                    Ok(command) => Step::Send(opened, command),
                    Err(error) => self.end(Ended::Failed(error)),
                }
            }
            (
                Phase::Opening {
                    nodes,
                    opened,
                    tracking: true,
                    layout,
                },
                Event::Replied(Ok(reply)),
            ) => {
                if self.opens_messages(opened) {
                    // The reply to `CLIENT ID`.
                    match reply {
                        Value::Int(id) => self.redirect_to = Some(id),
                        _ => {
                            return self
                                .end(Ended::Failed(client_error("unexpected CLIENT ID reply")))
                        }
                    }
                }
                self.open(nodes, opened + 1, layout, now)
            }
            (Phase::Opening { .. }, Event::Opened(Err(error)) | Event::Replied(Err(error))) => {
                self.end(Ended::Failed(error))
            }
            (
                Phase::Following {
                    connections,
                    layout,
                    heartbeat,
                },
                event,
            ) => self.follow(connections, layout, heartbeat, event, now),
            (
                Phase::Pinging {
                    connections,
                    layout,
                    next,
                },
                Event::Replied(Ok(_)),
            ) => self.pinged(connections, layout, next + 1, now),
            (
                Phase::Comparing {
                    connections,
                    layout,
                },
                Event::Replied(Ok(slots)),
            ) => match Layout::of(slots) {
                Some(now_layout) => self.compared(connections, layout, now_layout, now),
                None => self.end(Ended::Lost),
            },
            // A failed heartbeat, or an event the phase does not expect.
            _ => self.end(Ended::Lost),
        }
    }

    /// Sleeps what is left of a pause, in steps short enough to stop soon.
    fn pause_for(&mut self, left: Duration) -> Step {
        let step = left.min(FIRST_PAUSE);
        self.phase = Phase::Pausing { left: left - step };
        Step::Pause(step)
    }

    /// Starts a life of tracking.
    fn begin(&mut self, now: Instant) -> Step {
        match &self.source {
            Source::Server(client) => {
                let nodes = self.tracked(vec![(client.clone(), Vec::new())], Vec::new());
                self.open(nodes, 0, None, now)
            }
            Source::Cluster { .. } | Source::Sentinel { .. } => self.ask(0, None, None),
        }
    }

    /// The connections to open: with [`Announced::Read`], each of the `fills` servers twice
    /// (the messages' connection, then the fills'), then the `others`; else each node once.
    fn tracked(
        &mut self,
        fills: Vec<(Client, Vec<SlotRange>)>,
        others: Vec<Client>,
    ) -> Vec<Client> {
        let reads = matches!(self.announced, Announced::Read { .. });
        let mut nodes = Vec::with_capacity(2 * fills.len() + others.len());
        self.fills_servers.clear();
        for (server, slots) in fills {
            if reads {
                nodes.push(server.clone());
                self.fills_servers.push(slots);
            }
            nodes.push(server);
        }
        nodes.extend(others);
        nodes
    }

    /// This life's fills' servers (with [`Announced::Read`]), in the order of their fills'
    /// connections, each with the slots it serves (none named: every key).
    pub(crate) fn fills_servers(&self) -> &[Vec<SlotRange>] {
        &self.fills_servers
    }

    /// True when connection `opened` is a fills' server's first: it receives the messages.
    /// (Only [`Announced::Read`] has fills' servers.)
    fn opens_messages(&self, opened: usize) -> bool {
        opened < 2 * self.fills_servers.len() && opened.is_multiple_of(2)
    }

    /// True when connection `opened` is the one lent to a fills' server's fills.
    pub(crate) fn opens_fills(&self, opened: usize) -> bool {
        opened < 2 * self.fills_servers.len() && !opened.is_multiple_of(2)
    }

    /// The seeds or sentinels asked for the layout, in turn.
    fn endpoints(&self) -> &[ConnectionInfo] {
        match &self.source {
            Source::Server(_) => &[],
            Source::Cluster { seeds, .. } => seeds,
            Source::Sentinel { sentinels, .. } => sentinels,
        }
    }

    /// Asks endpoint `next` (or the first after it that can be addressed) for the layout.
    fn ask(
        &mut self,
        mut next: usize,
        current: Option<Current>,
        mut error: Option<RedisError>,
    ) -> Step {
        while let Some(endpoint) = self.endpoints().get(next) {
            let client = match &self.source {
                Source::Cluster { tls, .. } | Source::Sentinel { tls, .. } => {
                    tls.client(endpoint.clone())
                }
                Source::Server(client) => Ok(client.clone()),
            };
            match client {
                Ok(client) => {
                    let question = self.question();
                    self.phase = Phase::Asking { next, current };
                    return Step::Ask(client, question);
                }
                Err(unusable) => error = Some(unusable),
            }
            next += 1;
        }
        let error = error.unwrap_or_else(|| client_error("no seed or sentinel to ask"));
        match current {
            // A heartbeat could not check the layout: tracking may no longer cover every node.
            Some(_) => self.end(Ended::Lost),
            None => self.end(Ended::Failed(error)),
        }
    }

    /// What the endpoints are asked.
    fn question(&self) -> Vec<Cmd> {
        match &self.source {
            Source::Sentinel { service, .. } => vec![
                sentinel("GET-MASTER-ADDR-BY-NAME", service),
                sentinel("REPLICAS", service),
            ],
            _ => vec![cluster_slots()],
        }
    }

    /// An endpoint answered (or not).
    fn answered(
        &mut self,
        next: usize,
        current: Option<Current>,
        answer: RedisResult<Vec<Value>>,
        now: Instant,
    ) -> Step {
        let found = answer.and_then(|values| self.layout_of(next, values));
        let (layout, fills, others) = match found {
            Ok(found) => found,
            Err(error) => return self.ask(next + 1, current, Some(error)),
        };
        if let Some(Current {
            connections,
            layout: current,
        }) = current
        {
            return self.compared(connections, current, layout, now);
        }
        let clients = match &self.source {
            Source::Cluster { tls, .. } | Source::Sentinel { tls, .. } => {
                let fills: RedisResult<Vec<(Client, Vec<SlotRange>)>> = fills
                    .into_iter()
                    .map(|(node, slots)| Ok((tls.client(node)?, slots)))
                    .collect();
                let others: RedisResult<Vec<Client>> =
                    others.into_iter().map(|node| tls.client(node)).collect();
                fills.and_then(|fills| Ok((fills, others?)))
            }
            Source::Server(_) => Err(client_error("a single server has no layout")),
        };
        match clients {
            Ok((fills, others)) => {
                let clients = self.tracked(fills, others);
                self.open(clients, 0, Some(layout), now)
            }
            Err(error) => self.end(Ended::Failed(error)),
        }
    }

    /// The layout in endpoint `asked`'s answer, and the nodes to track: the fills' servers
    /// (a primary, or a cluster's masters with their slots), then the others.
    fn layout_of(&self, asked: usize, values: Vec<Value>) -> RedisResult<LayoutNodes> {
        let mut values = values.into_iter();
        match &self.source {
            Source::Sentinel { primary, .. } => {
                let address: Option<(String, u16)> = parsed(values.next())?;
                let replicas: Vec<std::collections::HashMap<String, String>> =
                    parsed(values.next())?;
                let address = address
                    .ok_or_else(|| client_error("the sentinel monitors no primary of this name"))?;
                let layout = Layout::replicated(address, &replicas);
                // The primary first: with `OPTIN`, the fills read on it.
                let mut nodes = layout.primary_first(primary).into_iter();
                let fills = nodes.next().map(|primary| (primary, Vec::new()));
                Ok((layout, fills.into_iter().collect(), nodes.collect()))
            }
            Source::Cluster { seeds, .. } => {
                let layout = values
                    .next()
                    .and_then(Layout::of)
                    .ok_or_else(|| client_error("unexpected CLUSTER SLOTS reply"))?;
                let seed = seeds
                    .get(asked)
                    .ok_or_else(|| client_error("no such seed"))?;
                // With `OPTIN`, the fills read on each key's master.
                let (fills, others) = match self.announced {
                    Announced::Read { .. } => (layout.masters(seed), layout.replicas(seed)),
                    Announced::Prefixes(_) => (Vec::new(), layout.nodes(seed)),
                };
                Ok((layout, fills, others))
            }
            Source::Server(_) => Err(client_error("a single server has no layout")),
        }
    }

    /// Opens tracking connection `opened` of `nodes`; with every one open, trusts the near
    /// cache and follows.
    fn open(
        &mut self,
        nodes: Vec<Client>,
        opened: usize,
        layout: Option<Layout>,
        now: Instant,
    ) -> Step {
        if let Some(node) = nodes.get(opened) {
            let step = Step::Open(node.clone());
            self.phase = Phase::Opening {
                nodes,
                opened,
                tracking: false,
                layout,
            };
            return step;
        }
        let Some(near) = self.near.upgrade() else {
            return Step::Stop;
        };
        near.trust();
        self.pause = FIRST_PAUSE;
        self.reported = false;
        tracing::debug!(connections = opened, "rtc: near cache tracking is on");
        self.listen(opened, layout, now + HEARTBEAT)
    }

    fn listen(&mut self, connections: usize, layout: Option<Layout>, heartbeat: Instant) -> Step {
        self.phase = Phase::Following {
            connections,
            layout,
            heartbeat,
        };
        Step::Listen(heartbeat)
    }

    /// What turns tracking on for connection `opened`: with [`Announced::Read`], for each
    /// fills' server `CLIENT ID` on its first connection (the messages' target), then
    /// `CLIENT TRACKING ON REDIRECT <id> OPTIN` on its second, then `BCAST` for the replicas'
    /// prefixes on each replica; else `CLIENT TRACKING ON BCAST PREFIX ...` for the session's
    /// prefixes, on each.
    fn tracking_on(&self, opened: usize) -> RedisResult<Cmd> {
        let mut tracking = redis::cmd("CLIENT");
        if self.opens_messages(opened) {
            tracking.arg("ID");
            return Ok(tracking);
        }
        let prefixes = match &self.announced {
            Announced::Read { .. } if self.opens_fills(opened) => {
                let target = self
                    .redirect_to
                    .ok_or_else(|| client_error("no connection to redirect the messages to"))?;
                tracking
                    .arg("TRACKING")
                    .arg("ON")
                    .arg("REDIRECT")
                    .arg(target)
                    .arg("OPTIN");
                return Ok(tracking);
            }
            Announced::Read { replicas } => replicas,
            Announced::Prefixes(prefixes) => prefixes,
        };
        tracking.arg("TRACKING").arg("ON").arg("BCAST");
        for prefix in prefixes {
            tracking.arg("PREFIX").arg(prefix);
        }
        Ok(tracking)
    }

    /// Applies a message, or starts the heartbeat when it is due.
    fn follow(
        &mut self,
        connections: usize,
        layout: Option<Layout>,
        heartbeat: Instant,
        event: Event,
        now: Instant,
    ) -> Step {
        match event {
            Event::Pushed(push) => {
                let Some(near) = self.near.upgrade() else {
                    return Step::Stop;
                };
                if !apply(&*near, push) {
                    return self.end(Ended::Lost);
                }
            }
            Event::Quiet => {}
            _ => return self.end(Ended::Lost),
        }
        if now < heartbeat {
            return self.listen(connections, layout, heartbeat);
        }
        self.pinged(connections, layout, 0, now)
    }

    /// Connections up to `next` answered the heartbeat's `PING`: pings the next one, or
    /// compares the layout.
    fn pinged(
        &mut self,
        connections: usize,
        layout: Option<Layout>,
        next: usize,
        now: Instant,
    ) -> Step {
        if next < connections {
            self.phase = Phase::Pinging {
                connections,
                layout,
                next,
            };
            return Step::Send(next, redis::cmd("PING"));
        }
        match (&self.source, layout) {
            (Source::Cluster { .. }, Some(layout)) => {
                self.phase = Phase::Comparing {
                    connections,
                    layout,
                };
                Step::Send(0, cluster_slots())
            }
            (Source::Sentinel { .. }, Some(layout)) => self.ask(
                0,
                Some(Current {
                    connections,
                    layout,
                }),
                None,
            ),
            (_, layout) => self.listen(connections, layout, now + HEARTBEAT),
        }
    }

    /// The layout at a heartbeat: follows on if it is the one tracking was set up for.
    fn compared(
        &mut self,
        connections: usize,
        layout: Layout,
        now_layout: Layout,
        now: Instant,
    ) -> Step {
        if now_layout == layout {
            self.listen(connections, Some(layout), now + HEARTBEAT)
        } else {
            self.end(Ended::Moved)
        }
    }

    /// A life of tracking ended: the near cache is distrusted until the next one is up.
    fn end(&mut self, ended: Ended) -> Step {
        self.redirect_to = None;
        if let Some(near) = self.near.upgrade() {
            near.distrust();
        }
        let pause = match ended {
            Ended::Moved => {
                tracing::debug!("rtc: the cluster's slots moved; near cache tracking starts over");
                Duration::ZERO
            }
            Ended::Lost => {
                tracing::warn!(
                    "rtc: the near cache's tracking connection was lost; the near cache is off until it is back"
                );
                FIRST_PAUSE
            }
            Ended::Failed(error) => {
                if !self.reported {
                    tracing::warn!(
                        "rtc: near cache tracking could not be set up ({error}); the near cache \
                         is off (every hit goes to Redis) until tracking is set up, tried again \
                         after pauses growing to {MAX_PAUSE:?}"
                    );
                    self.reported = true;
                }
                let pause = self.pause;
                self.pause = (self.pause * 2).min(MAX_PAUSE);
                pause
            }
        };
        self.pause_for(pause)
    }
}

/// Applies one message to the near cache; false when the connection is gone.
pub(crate) fn apply(near: &dyn Informed, push: PushInfo) -> bool {
    match push.kind {
        PushKind::Invalidate => {
            match push.data.into_iter().next() {
                Some(Value::Array(keys)) => {
                    near.changed(&mut keys.iter().filter_map(|key| match key {
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
        // The connection the messages were redirected to is gone: the ones since are lost.
        PushKind::Other(kind) if kind == "tracking-redir-broken" => false,
        _ => true,
    }
}

fn cluster_slots() -> Cmd {
    let mut slots = redis::cmd("CLUSTER");
    slots.arg("SLOTS");
    slots
}

fn sentinel(subcommand: &str, service: &str) -> Cmd {
    let mut command = redis::cmd("SENTINEL");
    command.arg(subcommand).arg(service);
    command
}

fn parsed<T: redis::FromRedisValue>(value: Option<Value>) -> RedisResult<T> {
    let value = value.ok_or_else(|| client_error("a reply is missing"))?;
    redis::from_redis_value(value).map_err(|error| client_error_owned(error.to_string()))
}

fn client_error(message: &'static str) -> RedisError {
    RedisError::from((redis::ErrorKind::Client, message))
}

/// A reply rtc did not expect, as a client-side error carrying what it was.
pub(crate) fn client_error_owned(detail: String) -> RedisError {
    RedisError::from((redis::ErrorKind::Client, "unexpected reply", detail))
}

#[cfg(test)]
mod tests;

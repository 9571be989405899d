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

use super::layout::Layout;
use super::Source;
use crate::near::NearCache;

/// How often the tracking connections are checked with a `PING` (and a cluster's slots or a
/// primary's replicas compared with those tracking was set up for).
pub(super) const HEARTBEAT: Duration = Duration::from_secs(1);
/// The pause after a lost connection, the first after a failed set-up (doubled on each failure
/// up to [`MAX_PAUSE`]), and the longest sleep between two looks at whether to stop.
pub(super) const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// What the driver is to do next.
#[derive(Debug)]
pub(super) enum Step {
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
pub(super) enum Event {
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

/// One tracking session: the logic of the thread that keeps a near cache told of changes.
pub(super) struct Session {
    source: Source,
    prefixes: Vec<String>,
    near: Weak<NearCache>,
    stop: Arc<AtomicBool>,
    phase: Phase,
    /// The pause after the next failed set-up.
    pause: Duration,
    /// A failed set-up was warned about (once until tracking is up again).
    reported: bool,
}

impl Session {
    /// A session that tracks keys under `prefixes` on the servers of `source` for `near`,
    /// until `stop` is set or `near` is dropped. Its first event is [`Event::Paused`].
    pub(super) fn new(
        source: Source,
        prefixes: Vec<String>,
        near: Weak<NearCache>,
        stop: Arc<AtomicBool>,
    ) -> Self {
        Self {
            source,
            prefixes,
            near,
            stop,
            phase: Phase::Pausing {
                left: Duration::ZERO,
            },
            pause: FIRST_PAUSE,
            reported: false,
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire) || self.near.strong_count() == 0
    }

    /// What to do after `event`, at `now`.
    pub(super) fn step(&mut self, event: Event, now: Instant) -> Step {
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
                Step::Send(opened, self.tracking_on())
            }
            (
                Phase::Opening {
                    nodes,
                    opened,
                    tracking: true,
                    layout,
                },
                Event::Replied(Ok(_)),
            ) => self.open(nodes, opened + 1, layout, now),
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
                let nodes = vec![client.clone()];
                self.open(nodes, 0, None, now)
            }
            Source::Cluster { .. } | Source::Sentinel { .. } => self.ask(0, None, None),
        }
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
        let (layout, nodes) = match found {
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
        let clients: RedisResult<Vec<Client>> = match &self.source {
            Source::Cluster { tls, .. } | Source::Sentinel { tls, .. } => {
                nodes.into_iter().map(|node| tls.client(node)).collect()
            }
            Source::Server(_) => Err(client_error("a single server has no layout")),
        };
        match clients {
            Ok(clients) => self.open(clients, 0, Some(layout), now),
            Err(error) => self.end(Ended::Failed(error)),
        }
    }

    /// The layout in endpoint `asked`'s answer, and the nodes to track.
    fn layout_of(
        &self,
        asked: usize,
        values: Vec<Value>,
    ) -> RedisResult<(Layout, Vec<ConnectionInfo>)> {
        let mut values = values.into_iter();
        match &self.source {
            Source::Sentinel { primary, .. } => {
                let address: Option<(String, u16)> = parsed(values.next())?;
                let replicas: Vec<std::collections::HashMap<String, String>> =
                    parsed(values.next())?;
                let address = address
                    .ok_or_else(|| client_error("the sentinel monitors no primary of this name"))?;
                let layout = Layout::replicated(address, &replicas);
                let nodes = layout.nodes(primary);
                Ok((layout, nodes))
            }
            Source::Cluster { seeds, .. } => {
                let layout = values
                    .next()
                    .and_then(Layout::of)
                    .ok_or_else(|| client_error("unexpected CLUSTER SLOTS reply"))?;
                let seed = seeds
                    .get(asked)
                    .ok_or_else(|| client_error("no such seed"))?;
                let nodes = layout.nodes(seed);
                Ok((layout, nodes))
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

    /// `CLIENT TRACKING ON BCAST PREFIX ...` for the session's prefixes.
    fn tracking_on(&self) -> Cmd {
        let mut tracking = redis::cmd("CLIENT");
        tracking.arg("TRACKING").arg("ON").arg("BCAST");
        for prefix in &self.prefixes {
            tracking.arg("PREFIX").arg(prefix);
        }
        tracking
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
                if !apply(&near, push) {
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

fn client_error_owned(detail: String) -> RedisError {
    RedisError::from((redis::ErrorKind::Client, "unexpected reply", detail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::redis::tls::TlsMaterial;

    const PREFIXES: [&str; 2] = ["rtc:e:ns:", "rtc:t:ns:"];

    fn near() -> Arc<NearCache> {
        Arc::new(NearCache::new(100, None))
    }

    fn info(address: &str) -> ConnectionInfo {
        redis::IntoConnectionInfo::into_connection_info(format!(
            "redis://{address}/?protocol=resp3"
        ))
        .unwrap()
    }

    fn session(source: Source, near: &Arc<NearCache>) -> Session {
        let prefixes = PREFIXES.iter().map(|prefix| prefix.to_string()).collect();
        Session::new(
            source,
            prefixes,
            Arc::downgrade(near),
            Arc::new(AtomicBool::new(false)),
        )
    }

    fn server() -> Source {
        Source::Server(Client::open(info("127.0.0.1:6000")).unwrap())
    }

    fn command(command: &Cmd) -> String {
        let words: Vec<String> = command
            .args_iter()
            .map(|arg| match arg {
                redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                _ => "<cursor>".to_owned(),
            })
            .collect();
        words.join(" ")
    }

    /// A step as text, instants relative to `start`.
    fn said(step: &Step, start: Instant) -> String {
        match step {
            Step::Pause(pause) => format!("pause {}ms", pause.as_millis()),
            Step::Ask(client, commands) => {
                let commands: Vec<String> = commands.iter().map(command).collect();
                format!(
                    "ask {}: {}",
                    client.get_connection_info().addr(),
                    commands.join("; ")
                )
            }
            Step::Open(client) => format!("open {}", client.get_connection_info().addr()),
            Step::Send(index, sent) => format!("send {index}: {}", command(sent)),
            Step::Listen(until) => format!("listen until +{}ms", (*until - start).as_millis()),
            Step::Stop => "stop".to_owned(),
        }
    }

    /// Drives `session` with `events` at `start + ms`, each paired with the step it is
    /// expected to give.
    fn expect(
        session: &mut Session,
        start: Instant,
        script: impl IntoIterator<Item = (u64, Event, &'static str)>,
    ) {
        for (ms, event, expected) in script {
            let shown = format!("{event:?}");
            let step = session.step(event, start + Duration::from_millis(ms));
            assert_eq!(said(&step, start), expected, "after {shown} at +{ms}ms");
        }
    }

    const TRACKING_ON: &str = "send 0: CLIENT TRACKING ON BCAST PREFIX rtc:e:ns: PREFIX rtc:t:ns:";

    const TRACKING_ON_1: &str =
        "send 1: CLIENT TRACKING ON BCAST PREFIX rtc:e:ns: PREFIX rtc:t:ns:";

    fn replied() -> Event {
        Event::Replied(Ok(Value::Okay))
    }

    fn failed() -> RedisError {
        RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
    }

    fn invalidated(keys: &[&str]) -> Event {
        let keys = keys
            .iter()
            .map(|key| Value::BulkString(key.as_bytes().to_vec()))
            .collect();
        Event::Pushed(PushInfo {
            kind: PushKind::Invalidate,
            data: vec![Value::Array(keys)],
        })
    }

    /// A server session, set up and trusted at `start`.
    fn following_a_server(near: &Arc<NearCache>, start: Instant) -> Session {
        let mut tracking = session(server(), near);
        expect(
            &mut tracking,
            start,
            [
                (0, Event::Paused, "open 127.0.0.1:6000"),
                (0, Event::Opened(Ok(())), TRACKING_ON),
            ],
        );
        assert!(
            !near.watches().is_trusted(),
            "trusted only once tracking is on"
        );
        expect(
            &mut tracking,
            start,
            [(0, replied(), "listen until +1000ms")],
        );
        assert!(near.watches().is_trusted());
        tracking
    }

    #[test]
    fn a_server_is_trusted_once_tracking_is_on_and_messages_end_watches() {
        let near = near();
        let start = Instant::now();
        let mut tracking = following_a_server(&near, start);
        let watched = near.watches().watch(["rtc:e:ns:a", "rtc:e:ns:b"]).unwrap();
        expect(
            &mut tracking,
            start,
            [(10, invalidated(&["rtc:e:ns:a"]), "listen until +1000ms")],
        );
        assert!(!watched[0].is_live(), "the announced key's watch ends");
        assert!(watched[1].is_live(), "the other key's watch lives on");
        let flushed = Event::Pushed(PushInfo {
            kind: PushKind::Invalidate,
            data: vec![Value::Nil],
        });
        expect(
            &mut tracking,
            start,
            [(20, flushed, "listen until +1000ms")],
        );
        assert!(!watched[1].is_live(), "a flush ends every watch");
        assert!(near.watches().is_trusted());
    }

    #[test]
    fn a_dropped_connection_distrusts_the_near_cache_until_tracking_is_back() {
        let near = near();
        let start = Instant::now();
        let mut tracking = following_a_server(&near, start);
        let watched = near.watches().watch(["rtc:e:ns:a"]).unwrap();
        let dropped = Event::Pushed(PushInfo {
            kind: PushKind::Disconnection,
            data: Vec::new(),
        });
        expect(&mut tracking, start, [(10, dropped, "pause 50ms")]);
        assert!(!near.watches().is_trusted());
        assert!(!watched[0].is_live());
        expect(
            &mut tracking,
            start,
            [
                (60, Event::Paused, "open 127.0.0.1:6000"),
                (60, Event::Opened(Ok(())), TRACKING_ON),
            ],
        );
        assert!(!near.watches().is_trusted());
        expect(
            &mut tracking,
            start,
            [(61, replied(), "listen until +1061ms")],
        );
        assert!(near.watches().is_trusted());
        // Every channel closed is a drop too.
        expect(&mut tracking, start, [(70, Event::Closed, "pause 50ms")]);
        assert!(!near.watches().is_trusted());
    }

    #[test]
    fn each_heartbeat_pings_every_connection_and_a_silent_one_is_lost() {
        let near = near();
        let start = Instant::now();
        let mut tracking = following_a_server(&near, start);
        expect(
            &mut tracking,
            start,
            [
                (999, Event::Quiet, "listen until +1000ms"),
                (1000, Event::Quiet, "send 0: PING"),
                (1001, replied(), "listen until +2001ms"),
                (2001, Event::Quiet, "send 0: PING"),
                (2002, Event::Replied(Err(failed())), "pause 50ms"),
            ],
        );
        assert!(!near.watches().is_trusted());
    }

    #[test]
    fn failed_set_ups_pause_longer_each_time_up_to_a_limit_and_warn_once() {
        let near = near();
        let start = Instant::now();
        let mut tracking = session(server(), &near);
        expect(
            &mut tracking,
            start,
            [(0, Event::Paused, "open 127.0.0.1:6000")],
        );
        let mut pauses = Vec::new();
        for _ in 0..8 {
            let mut step = tracking.step(Event::Opened(Err(failed())), start);
            let mut paused = Duration::ZERO;
            while let Step::Pause(pause) = step {
                assert!(
                    pause <= FIRST_PAUSE,
                    "stops are looked for between short sleeps"
                );
                paused += pause;
                step = tracking.step(Event::Paused, start);
            }
            assert_eq!(said(&step, start), "open 127.0.0.1:6000");
            pauses.push(paused.as_millis());
        }
        assert_eq!(pauses, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
        assert!(tracking.reported);
        // Tracking up again starts the pauses over.
        expect(
            &mut tracking,
            start,
            [
                (0, Event::Opened(Ok(())), TRACKING_ON),
                (0, replied(), "listen until +1000ms"),
            ],
        );
        assert!(!tracking.reported);
        assert_eq!(tracking.pause, FIRST_PAUSE);
    }

    #[test]
    fn a_dropped_cache_or_a_stop_ends_the_session() {
        let near = near();
        let start = Instant::now();
        let mut tracking = following_a_server(&near, start);
        tracking.stop.store(true, Ordering::Release);
        expect(&mut tracking, start, [(5, Event::Quiet, "stop")]);

        let near = self::near();
        let mut tracking = following_a_server(&near, start);
        drop(near);
        expect(&mut tracking, start, [(5, invalidated(&["k"]), "stop")]);
    }

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
        ])
    }

    fn slots(masters: [i64; 2]) -> Value {
        Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(8191),
                node("127.0.0.1", masters[0]),
            ]),
            Value::Array(vec![
                Value::Int(8192),
                Value::Int(16383),
                node("127.0.0.1", masters[1]),
            ]),
        ])
    }

    #[test]
    fn a_cluster_is_found_from_the_first_seed_that_answers_and_a_moved_slot_starts_over() {
        let near = near();
        let start = Instant::now();
        let source = Source::Cluster {
            seeds: vec![info("127.0.0.1:7000"), info("127.0.0.1:7001")],
            tls: TlsMaterial::default(),
        };
        let mut tracking = session(source, &near);
        expect(
            &mut tracking,
            start,
            [
                (0, Event::Paused, "ask 127.0.0.1:7000: CLUSTER SLOTS"),
                (
                    1,
                    Event::Asked(Err(failed())),
                    "ask 127.0.0.1:7001: CLUSTER SLOTS",
                ),
                (
                    2,
                    Event::Asked(Ok(vec![slots([7000, 7001])])),
                    "open 127.0.0.1:7000",
                ),
                (3, Event::Opened(Ok(())), TRACKING_ON),
                (4, replied(), "open 127.0.0.1:7001"),
                (5, Event::Opened(Ok(())), TRACKING_ON_1),
                (6, replied(), "listen until +1006ms"),
                (1006, Event::Quiet, "send 0: PING"),
                (1007, replied(), "send 1: PING"),
                (1008, replied(), "send 0: CLUSTER SLOTS"),
                (
                    1009,
                    Event::Replied(Ok(slots([7000, 7001]))),
                    "listen until +2009ms",
                ),
                (2009, Event::Quiet, "send 0: PING"),
                (2010, replied(), "send 1: PING"),
                (2011, replied(), "send 0: CLUSTER SLOTS"),
            ],
        );
        assert!(near.watches().is_trusted());
        // A failover: the second range's master is another node now.
        expect(
            &mut tracking,
            start,
            [
                (2012, Event::Replied(Ok(slots([7000, 7002]))), "pause 0ms"),
                (2012, Event::Paused, "ask 127.0.0.1:7000: CLUSTER SLOTS"),
            ],
        );
        assert!(!near.watches().is_trusted());
    }

    #[test]
    fn behind_sentinels_the_primary_and_its_up_replicas_are_tracked_until_they_change() {
        let near = near();
        let start = Instant::now();
        let source = Source::Sentinel {
            sentinels: vec![info("127.0.0.1:26379")],
            service: "svc".to_owned(),
            primary: info("127.0.0.1:6379"),
            tls: TlsMaterial::default(),
        };
        let replica = |port: &str, flags: &str| {
            Value::Map(
                [("ip", "127.0.0.1"), ("port", port), ("flags", flags)]
                    .into_iter()
                    .map(|(field, value)| {
                        (
                            Value::BulkString(field.as_bytes().to_vec()),
                            Value::BulkString(value.as_bytes().to_vec()),
                        )
                    })
                    .collect(),
            )
        };
        let answer = |primary: &str, replicas: Vec<Value>| {
            Event::Asked(Ok(vec![
                Value::Array(vec![
                    Value::BulkString(b"127.0.0.1".to_vec()),
                    Value::BulkString(primary.as_bytes().to_vec()),
                ]),
                Value::Array(replicas),
            ]))
        };
        let ask =
            "ask 127.0.0.1:26379: SENTINEL GET-MASTER-ADDR-BY-NAME svc; SENTINEL REPLICAS svc";
        let mut tracking = session(source, &near);
        let replicas = vec![replica("6381", "slave"), replica("6382", "slave,s_down")];
        expect(
            &mut tracking,
            start,
            [
                (0, Event::Paused, ask),
                (1, answer("6380", replicas), "open 127.0.0.1:6380"),
                (2, Event::Opened(Ok(())), TRACKING_ON),
                (3, replied(), "open 127.0.0.1:6381"),
                (4, Event::Opened(Ok(())), TRACKING_ON_1),
                (5, replied(), "listen until +1005ms"),
                (1005, Event::Quiet, "send 0: PING"),
                (1006, replied(), "send 1: PING"),
                (1007, replied(), ask),
            ],
        );
        assert!(near.watches().is_trusted());
        let promoted = answer("6381", vec![replica("6380", "slave")]);
        expect(&mut tracking, start, [(1008, promoted, "pause 0ms")]);
        assert!(!near.watches().is_trusted());
        // A sentinel that knows no such primary: set-up fails, and is tried again.
        expect(
            &mut tracking,
            start,
            [
                (1008, Event::Paused, ask),
                (
                    1009,
                    Event::Asked(Ok(vec![Value::Nil, Value::Array(Vec::new())])),
                    "pause 50ms",
                ),
            ],
        );
    }
}

//! A simulated process's tracking connection, between the model server and the real tracking
//! session (`backend::redis::tracking::session`) that keeps the process's real near cache told
//! of changes: `CLIENT TRACKING ON OPTIN` (one server, as in production), whose server tracks
//! only the keys the process's near fills read on the connection, once each (a message ends
//! a key's tracking until it is read there again); or `BCAST`, as a cluster's nodes and a
//! primary's replicas track, where every change under the namespace's prefixes is announced. With
//! `OPTIN` the session opens two connections (the messages' target, then the fills' one, which
//! redirects its messages to the first): the model holds them as one link, which drops as a
//! whole (either loss ends the session's life the same way).
//!
//! The session is the real state machine; this module is its driver, as the tokio driver in
//! `tracking/mod.rs` is, with the network replaced by queues the scheduler empties: a command
//! the session sends waits until the server runs it (`TRACKING ON` makes the server announce
//! changes to the connection from then on); what the server writes to the connection (replies
//! and invalidation messages, in order) waits on the wire until the scheduler delivers it; a
//! message delivered waits in the driver's channel until the session takes it. A disconnect
//! loses what is on the wire and every later message, and the session learns of it only when
//! it next looks (a `Closed`, or a failed reply).

use std::collections::{BTreeSet, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use redis::{PushInfo, PushKind, Value};

use crate::backend::redis::tracking_simulated::{
    session, Announced, Event, Informed, Session, Step,
};
use crate::near::NearCache;

/// The process's near cache as its session sees it: every call goes through to the real one,
/// and the trace is told when the session trusts, distrusts or drops everything.
struct Told {
    near: Arc<NearCache>,
    said: std::sync::Mutex<Vec<&'static str>>,
}

impl Told {
    fn say(&self, what: &'static str) {
        if let Ok(mut said) = self.said.lock() {
            said.push(what);
        }
    }
}

impl Informed for Told {
    fn trust(&self) {
        self.say("trusts the near cache");
        Informed::trust(&*self.near);
    }

    fn distrust(&self) {
        self.say("distrusts the near cache");
        Informed::distrust(&*self.near);
    }

    fn changed(&self, keys: &mut dyn Iterator<Item = &[u8]>) {
        Informed::changed(&*self.near, keys);
    }

    fn changed_all(&self) {
        self.say("drops everything");
        Informed::changed_all(&*self.near);
    }
}

/// An invalidation message, as the server sends it to every tracking connection.
#[derive(Debug)]
pub(super) struct Push {
    /// The keys announced changed (`None`: a null list, every key: `FLUSHALL`).
    pub(super) keys: Option<Vec<String>>,
    /// For the checker: the data versions (slot, version) the change made current.
    pub(super) floors: Vec<(usize, u64)>,
    /// For the trace: what the keys name.
    pub(super) label: String,
    /// For the checker: the number of the server's operation that made the change, and the
    /// entries that depend on a key it names.
    pub(super) change: u64,
    pub(super) entries: Vec<usize>,
}

impl Push {
    /// The message as the session receives it.
    fn info(&self) -> PushInfo {
        let keys = match &self.keys {
            Some(keys) => Value::Array(
                keys.iter()
                    .map(|key| Value::BulkString(key.as_bytes().to_vec()))
                    .collect(),
            ),
            None => Value::Nil,
        };
        PushInfo {
            kind: PushKind::Invalidate,
            data: vec![keys],
        }
    }
}

/// A command the session sent on its connection.
#[derive(Clone, Copy, Debug)]
enum Command {
    /// `CLIENT ID` (`OPTIN`: the id the fills' connection redirects its messages to).
    ClientId,
    /// `CLIENT TRACKING ON REDIRECT <id> OPTIN`, or `CLIENT TRACKING ON BCAST PREFIX ...`.
    TrackingOn,
    /// The heartbeat.
    Ping,
}

/// What the server wrote to a connection, in order.
enum Wire {
    Push(Rc<Push>),
    Reply(Command),
}

/// Numbers the tracking connections of every run on this process, so that a fill sent on one
/// is never taken for a fill sent on another.
static LINKS: AtomicU64 = AtomicU64::new(0);

/// One tracking connection.
struct Link {
    number: u64,
    /// `OPTIN`, server side: the keys read on it after `CLIENT CACHING YES` whose next change
    /// it has not announced yet.
    tracked: BTreeSet<String>,
    /// Written by the server, not delivered yet.
    wire: VecDeque<Wire>,
    /// Sent by the session, not run by the server yet.
    request: Option<Command>,
    /// The server ran `TRACKING ON` on it: changes are announced to it.
    tracking: bool,
    /// Dropped: nothing more comes through.
    closed: bool,
    /// The data versions the server had made current when it ran `TRACKING ON`.
    floors_on: Vec<u64>,
}

/// What the session waits for.
#[derive(Clone, Copy)]
enum Awaiting {
    /// The end of a pause.
    Pause(Instant),
    /// A connection to open.
    Open,
    /// The reply to a command.
    Reply(Command),
    /// A message, until then.
    Listen(Instant),
}

/// One thing the scheduler can make a tracker do.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Move {
    /// The server runs the command the session sent.
    Execute,
    /// The next thing on the wire arrives.
    Receive,
    /// The session takes its next event (a pause over, a connection open, a message, a
    /// closed connection, a quiet listen).
    Step,
}

/// What a move did, for the world to record and check.
#[derive(Default)]
pub(super) struct Moved {
    /// For the trace.
    pub(super) line: String,
    /// The session applied this message to the near cache.
    pub(super) applied: Option<Rc<Push>>,
    /// Tracking is back on (the session had the reply to `TRACKING ON`): the data versions
    /// the server had made current when it ran it.
    pub(super) up: Option<Vec<u64>>,
    /// The connection the session opened was refused.
    pub(super) refused: bool,
    /// The session asked for something a single simulated server cannot give.
    pub(super) unexpected: Option<String>,
}

/// The tracking of one process: its real session, and the connection the driver keeps.
pub(super) struct Tracker {
    session: Session,
    /// What the session holds (weakly) of the near cache.
    told: Arc<Told>,
    awaiting: Awaiting,
    link: Option<Link>,
    /// Messages delivered, not yet taken by the session (the driver's channel).
    channel: VecDeque<Rc<Push>>,
    /// True from the session's taking the reply to `TRACKING ON` until it learns that the
    /// connection is gone: only then may the near cache answer. With `OPTIN`, the driver lends
    /// its connection to the fills for as long (`FillConnection`).
    pub(super) up: bool,
    /// `OPTIN` (else `BCAST`).
    optin: bool,
}

impl Tracker {
    /// A new session for `near`, starting at `now`: `OPTIN` when `optin`, else `BCAST` of
    /// `prefixes`.
    pub(super) fn new(
        optin: bool,
        prefixes: Vec<String>,
        near: &Arc<NearCache>,
        now: Instant,
    ) -> Self {
        let told = Arc::new(Told {
            near: Arc::clone(near),
            said: std::sync::Mutex::new(Vec::new()),
        });
        let informed: std::sync::Weak<Told> = Arc::downgrade(&told);
        let announced = match optin {
            true => Announced::Read {
                replicas: Vec::new(),
            },
            false => Announced::Prefixes(prefixes),
        };
        Self {
            optin,
            session: session(announced, informed),
            told,
            awaiting: Awaiting::Pause(now),
            link: None,
            channel: VecDeque::new(),
            up: false,
        }
    }

    /// What the scheduler can make this tracker do at `now`.
    pub(super) fn moves(&self, now: Instant, into: &mut Vec<Move>) {
        let open = self.link.as_ref().filter(|link| !link.closed);
        if open.is_some_and(|link| link.request.is_some()) {
            into.push(Move::Execute);
        }
        if self.link.as_ref().is_some_and(|link| !link.wire.is_empty()) {
            into.push(Move::Receive);
        }
        let gone = self.gone();
        let ready = match self.awaiting {
            Awaiting::Pause(until) => until <= now,
            Awaiting::Open => true,
            Awaiting::Reply(_) => gone,
            Awaiting::Listen(until) => !self.channel.is_empty() || gone || until <= now,
        };
        if ready {
            into.push(Move::Step);
        }
    }

    /// Makes the move; `executed`: the data versions the server has made current; `refused`:
    /// a connection the session opens now is refused.
    pub(super) fn make(
        &mut self,
        step: Move,
        now: Instant,
        executed: &[u64],
        refused: bool,
    ) -> Moved {
        match step {
            Move::Execute => self.execute(executed),
            Move::Receive => self.receive(now),
            Move::Step => self.take(now, refused),
        }
    }

    /// The server runs the session's command.
    fn execute(&mut self, executed: &[u64]) -> Moved {
        let Some(link) = self.link.as_mut() else {
            return Moved::default();
        };
        let Some(command) = link.request.take() else {
            return Moved::default();
        };
        if let Command::TrackingOn = command {
            link.tracking = true;
            link.floors_on = executed.to_vec();
        }
        link.wire.push_back(Wire::Reply(command));
        Moved {
            line: format!("server runs its {command:?}"),
            ..Moved::default()
        }
    }

    /// The next thing on the wire arrives: a message goes to the channel, a reply to the
    /// session.
    fn receive(&mut self, now: Instant) -> Moved {
        let Some(link) = self.link.as_mut() else {
            return Moved::default();
        };
        match link.wire.pop_front() {
            Some(Wire::Push(push)) => {
                let line = format!("receives the message ({}; #{})", push.label, push.change);
                self.channel.push_back(push);
                Moved {
                    line,
                    ..Moved::default()
                }
            }
            Some(Wire::Reply(command)) => {
                let floors_on = link.floors_on.clone();
                let reply = match command {
                    Command::ClientId => Value::Int(7),
                    Command::TrackingOn => Value::Okay,
                    Command::Ping => Value::SimpleString("PONG".into()),
                };
                let mut moved = self.feed(Event::Replied(Ok(reply)), now);
                if matches!(command, Command::TrackingOn) && moved.unexpected.is_none() {
                    self.up = true;
                    moved.up = Some(floors_on);
                }
                moved.line = format!("takes the reply to {command:?}: {}", moved.line);
                moved
            }
            None => Moved::default(),
        }
    }

    /// The connection is closed and nothing more is on its way (or there is none): the driver
    /// would see it gone.
    fn gone(&self) -> bool {
        self.link
            .as_ref()
            .is_none_or(|link| link.closed && link.wire.is_empty())
    }

    /// The session takes its next event (`refused`: a connection it opens is refused).
    fn take(&mut self, now: Instant, refused: bool) -> Moved {
        let gone = self.gone();
        match self.awaiting {
            Awaiting::Pause(_) => self.feed(Event::Paused, now),
            Awaiting::Open if refused => {
                let refused = redis::RedisError::from(std::io::Error::from(
                    std::io::ErrorKind::ConnectionRefused,
                ));
                let mut moved = self.feed(Event::Opened(Err(refused)), now);
                moved.line = format!("cannot connect: {}", moved.line);
                moved.refused = true;
                moved
            }
            // `OPTIN`'s second connection, the fills' one: part of the link already open.
            Awaiting::Open if self.optin && self.link.as_ref().is_some_and(|link| !link.closed) => {
                let mut moved = self.feed(Event::Opened(Ok(())), now);
                moved.line = format!("opens the fills' connection: {}", moved.line);
                moved
            }
            Awaiting::Open => {
                self.link = Some(Link {
                    number: LINKS.fetch_add(1, Ordering::Relaxed),
                    tracked: BTreeSet::new(),
                    wire: VecDeque::new(),
                    request: None,
                    tracking: false,
                    closed: false,
                    floors_on: Vec::new(),
                });
                self.feed(Event::Opened(Ok(())), now)
            }
            Awaiting::Reply(command) => {
                self.up = false;
                let lost = redis::RedisError::from(std::io::Error::from(
                    std::io::ErrorKind::ConnectionReset,
                ));
                let mut moved = self.feed(Event::Replied(Err(lost)), now);
                moved.line = format!("learns its {command:?} failed: {}", moved.line);
                moved
            }
            Awaiting::Listen(_) => match self.channel.pop_front() {
                Some(push) => {
                    let mut moved = self.feed(Event::Pushed(push.info()), now);
                    moved.line = format!(
                        "applies the message ({}; #{}): {}",
                        push.label, push.change, moved.line
                    );
                    moved.applied = Some(push);
                    moved
                }
                None if gone => {
                    self.up = false;
                    let mut moved = self.feed(Event::Closed, now);
                    moved.line = format!("learns its connection is gone: {}", moved.line);
                    moved
                }
                None => self.feed(Event::Quiet, now),
            },
        }
    }

    /// Gives the session `event` at `now`, and sets up what its next step asks for.
    fn feed(&mut self, event: Event, now: Instant) -> Moved {
        let step = self.session.step(event, now);
        let mut moved = Moved::default();
        let said = match self.told.said.lock() {
            Ok(mut said) => said.drain(..).map(|said| format!("{said}, ")).collect(),
            Err(_) => String::new(),
        };
        moved.line = said
            + &match step {
                Step::Pause(pause) => {
                    // The driver drops its connections and starts a new channel.
                    self.up = false;
                    self.link = None;
                    self.channel.clear();
                    self.awaiting = Awaiting::Pause(now + pause);
                    format!("the session pauses {}ms", pause.as_millis())
                }
                Step::Open(_) => {
                    self.awaiting = Awaiting::Open;
                    "the session opens a connection".into()
                }
                Step::Send(_, command) => {
                    let first = command.args_iter().next().map(|arg| match arg {
                        redis::Arg::Simple(bytes) => bytes.to_vec(),
                        _ => Vec::new(),
                    });
                    let second = command.args_iter().nth(1).map(|arg| match arg {
                        redis::Arg::Simple(bytes) => bytes.to_vec(),
                        _ => Vec::new(),
                    });
                    let command = match (first.as_deref(), second.as_deref()) {
                        (Some(b"CLIENT"), Some(b"ID")) => Command::ClientId,
                        (Some(b"CLIENT"), _) => Command::TrackingOn,
                        _ => Command::Ping,
                    };
                    if let Some(link) = self.link.as_mut().filter(|link| !link.closed) {
                        link.request = Some(command);
                    }
                    self.awaiting = Awaiting::Reply(command);
                    format!("the session sends {command:?}")
                }
                Step::Listen(until) => {
                    self.awaiting = Awaiting::Listen(until);
                    "the session listens".into()
                }
                other => {
                    moved.unexpected = Some(format!("the tracking session asked for {other:?}"));
                    format!("the session asks for {other:?}")
                }
            };
        moved
    }

    /// `OPTIN` (else `BCAST`).
    pub(super) fn optin(&self) -> bool {
        self.optin
    }

    /// The connection lent to the near cache's fills (`OPTIN`, while tracking is up), by its
    /// number.
    pub(super) fn lent(&self) -> Option<u64> {
        let link = self.link.as_ref().filter(|link| !link.closed)?;
        (self.optin && self.up).then_some(link.number)
    }

    /// The server ran a fill's read, sent on connection `number`, of `keys`: true when that
    /// connection is still open, and the server now tracks those keys for it.
    pub(super) fn read_on(&mut self, number: u64, keys: &[String]) -> bool {
        let Some(link) = self
            .link
            .as_mut()
            .filter(|link| link.number == number && !link.closed && link.tracking)
        else {
            return false;
        };
        link.tracked.extend(keys.iter().cloned());
        true
    }

    /// Which of `keys`, whose change the server is about to announce, it announces to this
    /// connection: all with `BCAST`; with `OPTIN`, those it tracks for it, which it then stops
    /// tracking. `None`: nothing.
    pub(super) fn announced(&mut self, keys: &[String]) -> Option<Vec<String>> {
        let link = self
            .link
            .as_mut()
            .filter(|link| link.tracking && !link.closed)?;
        if !self.optin {
            return Some(keys.to_vec());
        }
        let told: Vec<String> = keys
            .iter()
            .filter(|key| link.tracked.remove(key.as_str()))
            .cloned()
            .collect();
        (!told.is_empty()).then_some(told)
    }

    /// The server announces `push` to this connection, if it tracks (with `OPTIN`, only what
    /// [`Tracker::announced`] gave, or a flush, which ends every key's tracking).
    pub(super) fn announce(&mut self, push: &Rc<Push>) {
        if let Some(link) = self
            .link
            .as_mut()
            .filter(|link| link.tracking && !link.closed)
        {
            if push.keys.is_none() {
                link.tracked.clear();
            }
            link.wire.push_back(Wire::Push(Rc::clone(push)));
        }
    }

    /// True when a change to `key` would be announced to this process's session, or already
    /// is on its way to it (on the wire, or in the driver's channel): always with `BCAST`;
    /// with `OPTIN`, when the server tracks `key` for the connection or a message naming it
    /// (or a flush) is on its way. A closed connection covers everything: until the session
    /// learns that it is gone, that loss is the checker's `up` rule's.
    pub(super) fn covers(&self, key: &str) -> bool {
        let Some(link) = self.link.as_ref().filter(|link| self.optin && !link.closed) else {
            return true;
        };
        let names = |push: &Push| {
            push.keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|named| named == key))
        };
        link.tracked.contains(key)
            || link.wire.iter().any(|sent| match sent {
                Wire::Push(push) => names(push),
                Wire::Reply(_) => false,
            })
            || self.channel.iter().any(|push| names(push))
    }

    /// The connection drops: the first `arriving` things on the wire still arrive (they were
    /// on their way before the drop), the rest is lost (how many messages), and the server
    /// forgets the connection. `None` when there was no open connection.
    pub(super) fn disconnect(&mut self, arriving: usize) -> Option<u64> {
        let link = self.link.as_mut().filter(|link| !link.closed)?;
        let lost = link
            .wire
            .iter()
            .skip(arriving)
            .filter(|sent| matches!(sent, Wire::Push(_)))
            .count() as u64;
        link.wire.truncate(arriving);
        link.request = None;
        link.tracking = false;
        link.tracked.clear();
        link.closed = true;
        Some(lost)
    }
}

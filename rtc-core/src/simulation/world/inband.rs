//! In-band tracking in the simulated world: each process (most, chosen per seed) reads entries
//! on a data connection whose real [`KnownTags`] knows tag versions, as
//! `ServerConnector::read_async` does, so that a hit may be one `GET` of its entry.
//!
//! A read is planned when it is sent (`plan`): one `GET` (the server runs the full read, the
//! process keeps only the entry and puts the versions it knew in), or in full, learning the tags
//! not known. The server starts tracking a learning read's tags for that connection when it
//! runs it (`OPTIN`: only those keys, from then on) and answers their versions and `PTTL`s from
//! the model. After every step the server compares each tracked tag with what it was when
//! tracking began: a change (written, created, evicted) queues a message on the connection and
//! ends that tracking (one message per tracking, as Redis); `FLUSHALL` queues a null list; a
//! tag that expired is announced only once the server deletes it, when a read reaches it or at
//! random later (Redis's lazy and active expiry: what the `PTTL` bound is for). Messages and
//! replies keep their order on the connection: delivering a reply first applies the messages
//! queued before the server ran its read; messages may also arrive alone, in order. The process
//! looks at a reply (`still`, `learned`) when its caller next moves, so messages that arrived
//! meanwhile count, as the real reader task applies them before the caller's task wakes. A
//! dropped connection, a crash or a restart loses the connection (`distrust`, its messages and
//! its server-side tracking gone): the next read opens a new one with a new table.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::{Active, Event, LowLevel, Sim, Wait};
use crate::backend::redis::tracking_simulated::{Informed, Known, KnownTags, Learning, Plan};
use crate::backend::redis::{plan_set, PlainSet, SetPlan, TrackedSet};
use crate::engine::{EntryWrite, Expiry, Operation, Reply, Ttl};
use crate::format::{TagKey, Version};
use crate::simulation::rng::Rng;
use crate::simulation::server::{connection_lost, Client};
use crate::simulation::Coverage;

/// An expired tag the server still tracks is deleted (and announced) at a step with this
/// chance (one in so many): Redis's active expiry cycle, which takes its time.
const EXPIRY_CYCLE_ONE_IN: u64 = 16;

/// A read on a data connection is run twice, a copy first, with this chance (one in so many)
/// when the server comes to it: its pipeline's leader gave up, and it was sent again.
const GHOST_ONE_IN: u64 = 12;

/// A tag as the server holds it: its version and when it expires (`None`: no such tag).
type TagState = Option<(Version, Option<std::time::Instant>)>;

/// Whether process `at` of the run of `seed` reads on a tracked data connection (from a stream
/// of the seed of its own, so that the choice does not move the scheduler's): three in four.
fn chosen(seed: u64, at: usize) -> bool {
    !Rng::new(seed ^ 0x696e_6261_6e64_0000 ^ at as u64).one_in(4)
}

/// A tag the server tracks for a connection.
struct Tracked {
    /// The tag when tracking began.
    seen: TagState,
    /// It expired, and the server has not deleted it yet (no message so far).
    expired: bool,
}

/// An invalidation message on a data connection.
struct Message {
    /// Its place among the connection's messages.
    number: u64,
    /// The keys announced (`None`: a null list, `FLUSHALL`).
    keys: Option<Vec<String>>,
}

/// One process's data connection, as the server and the process see it.
#[derive(Default)]
struct Connection {
    /// Its table (`None`: no connection open, the next read opens one).
    known: Option<Arc<KnownTags>>,
    /// Bumped each time the connection is lost.
    generation: u64,
    /// Messages the server queued, not delivered yet.
    wire: VecDeque<Message>,
    /// Messages queued so far on the connection.
    queued: u64,
    /// Server side: the keys tracked for the connection.
    tracked: BTreeMap<String, Tracked>,
}

/// How a read was sent.
enum How {
    /// One `GET`, with the versions known before it.
    OneGet(Known),
    /// In full, learning these tags' versions first (`None`: nothing to learn).
    Full(Option<Learning>),
    /// A `set` of one entry as one plain `SET`, stamped with the versions known.
    PlainSet(PlainSet),
}

/// A read sent on a data connection.
struct InFlight {
    /// The table of the connection it was sent on, and that connection's generation.
    known: Arc<KnownTags>,
    generation: u64,
    tags: Vec<TagKey>,
    /// When it was planned (`clock::now_ms`).
    sent: u64,
    how: How,
    /// Once the server ran it: how many messages the connection had queued ahead of its reply.
    ahead: Option<u64>,
    /// Once the server ran it: what its learning commands read (versions, `PTTL`s).
    learned: Option<(Vec<Option<Version>>, Vec<Ttl>)>,
    /// The server ran a copy of it already (at most one per read).
    ghosted: bool,
}

/// The in-band part of a run's state.
pub(super) struct State {
    /// By process: its data connection (`None`: it reads in full, untracked).
    connections: Vec<Option<Connection>>,
    /// By caller: its read on the way, if sent on a data connection.
    in_flight: Vec<Option<InFlight>>,
    /// The run's in-band counters, added to its coverage at the end.
    pub(super) counts: Coverage,
    /// Whether the server runs a read's copy first: a stream of the seed's own, so that the
    /// choice does not move the scheduler's.
    ghosts: Rng,
}

impl State {
    /// The state of the run of `seed`, with `callers` callers.
    pub(super) fn new(seed: u64, processes: usize, callers: usize) -> Self {
        Self {
            connections: (0..processes)
                .map(|at| chosen(seed, at).then(Connection::default))
                .collect(),
            in_flight: (0..callers).map(|_| None).collect(),
            counts: Coverage::default(),
            ghosts: Rng::new(seed ^ 0x6768_6f73_7400_0000),
        }
    }
}

/// The `PTTL` of a tag in `state` at `now`, in whole milliseconds.
fn pttl(state: &TagState, now: std::time::Instant) -> Ttl {
    match state {
        None => Ttl::from_pttl(-2),
        Some((_, None)) => Ttl::Forever,
        Some((_, Some(expires))) => {
            let left = expires.saturating_duration_since(now).as_millis();
            Ttl::from_pttl(i64::try_from(left).unwrap_or(i64::MAX))
        }
    }
}

impl Sim<'_> {
    /// `caller`'s operation, when it is a read's (`Operation::Read` of one entry,
    /// `Operation::ReadMany` of several, or another a read flow sends).
    pub(super) fn read_operation(&self, caller: usize) -> Option<Operation<'_>> {
        match &self.callers[caller].active {
            Some(Active::Read(reading)) => reading.flow.operation(),
            Some(Active::LowLevel(LowLevel::Get { flow, .. })) => flow.operation(),
            _ => None,
        }
    }

    /// The tags of `caller`'s operation, when it is a read of entries.
    fn read_tags(&self, caller: usize) -> Option<Vec<TagKey>> {
        match self.read_operation(caller)? {
            Operation::Read { tags, .. } | Operation::ReadMany { tags, .. } => Some(tags.to_vec()),
            _ => None,
        }
    }

    /// `caller` sent its request: a read on its process's data connection is planned now (a
    /// near fill sent on the fills' connection is not one).
    pub(super) fn inband_sent(&mut self, caller: usize) {
        self.inband.in_flight[caller] = None;
        if self.near_sent(caller) {
            return;
        }
        let Some(tags) = self.read_tags(caller) else {
            return;
        };
        let process = self.callers[caller].process;
        let Some(connection) = self.inband.connections[process].as_mut() else {
            return;
        };
        // Opening a connection turns tracking on before anything is read on it.
        let known = connection
            .known
            .get_or_insert_with(|| {
                let known = Arc::new(KnownTags::default());
                known.trust();
                known
            })
            .clone();
        let sent = crate::clock::ms_at(self.now);
        let how = match known.plan(&tags, sent) {
            Plan::OneGet(before) => How::OneGet(before),
            Plan::Full(learning) => How::Full(learning),
        };
        let line = match &how {
            How::OneGet(_) => "sends one GET (its tags' versions known in-band)",
            How::Full(Some(_)) => "sends its read in full, learning tags in-band",
            How::Full(None) | How::PlainSet(_) => {
                return self.inband_flight(caller, known, tags, sent, how)
            }
        };
        self.note(format!("c{caller:<2} {line}"));
        self.inband_flight(caller, known, tags, sent, how);
    }

    /// `caller` sent its `set`: one of a single entry on its process's data connection is
    /// planned now (`TrackedSetFlow`): one plain `SET` when the connection knows its tags, which
    /// the server runs with the data of its moment; else the script, learning the tags not
    /// known when a later `set` of them could be plain.
    pub(super) fn inband_set_sent(&mut self, caller: usize) {
        self.inband.in_flight[caller] = None;
        let world = self.world;
        let Some(Active::LowLevel(LowLevel::Set { entries, .. })) = &self.callers[caller].active
        else {
            return;
        };
        let [entry] = entries.as_slice() else {
            return;
        };
        let process = self.callers[caller].process;
        let Some(known) = self.inband.connections[process]
            .as_ref()
            .and_then(|connection| connection.known.clone())
        else {
            return;
        };
        let write = EntryWrite::unstamped(&world.plain[*entry], b"");
        let set = TrackedSet {
            write: &write,
            lifetime: Some(world.entry_lifetime),
            tombstone_lifetime: world.tombstone_lifetime(),
        };
        let sent = crate::clock::ms_at(self.now);
        let (tags, how) = match plan_set(set, &known, sent) {
            SetPlan::Plain(plain) => {
                self.note(format!(
                    "c{caller:<2} sends one plain SET (its tags' versions known in-band)"
                ));
                (plain.tags.clone(), How::PlainSet(plain))
            }
            SetPlan::Learn(learning) => {
                self.note(format!(
                    "c{caller:<2} sends its set's script, learning tags in-band"
                ));
                self.inband.counts.learning_sets += 1;
                let tags = write.observed.all().map(|(tag, _)| tag.clone()).collect();
                (tags, How::Full(Some(learning)))
            }
            SetPlan::Script => return,
        };
        self.inband_flight(caller, known, tags, sent, how);
    }

    /// The plain `SET` `client` sent, if its `set` went so.
    pub(super) fn inband_plain(&self, client: Client) -> Option<PlainSet> {
        match &self.inband.in_flight[client].as_ref()?.how {
            How::PlainSet(plain) => Some(plain.clone()),
            _ => None,
        }
    }

    /// The server runs `client`'s plain `SET` of `write` (the data of this moment), stamped
    /// with the versions known when it was sent, of a lineage of its own.
    pub(super) fn execute_plain_set(
        &mut self,
        client: Client,
        write: &EntryWrite<'_>,
        plain: &PlainSet,
    ) {
        let world = self.world;
        let lifetime = world.entry_lifetime;
        let Some(bytes) = plain.bytes(write) else {
            return;
        };
        // What the near caches hear of it: the entry written, no tag created.
        let writes = std::slice::from_ref(write);
        let operation = Operation::Write {
            writes,
            lifetime: Some(lifetime),
        };
        let change = super::near::Change::of(
            &world.near,
            &world.entries,
            &mut self.server,
            &operation,
            self.now,
        );
        self.server
            .put(write.entry, bytes, Some(lifetime), self.now);
        self.near_changed(Some(client), change, true);
        self.inband_ran(client);
        self.note(format!("server runs c{client}'s plain SET (set)"));
        self.answer(vec![(client, Ok(Reply::Done(true)))]);
    }

    /// Records `caller`'s read on the way.
    fn inband_flight(
        &mut self,
        caller: usize,
        known: Arc<KnownTags>,
        tags: Vec<TagKey>,
        sent: u64,
        how: How,
    ) {
        if matches!(how, How::Full(Some(_))) {
            self.inband.counts.learning_reads += 1;
        }
        let process = self.callers[caller].process;
        let generation = self.inband.connections[process]
            .as_ref()
            .map_or(0, |connection| connection.generation);
        self.inband.in_flight[caller] = Some(InFlight {
            known,
            generation,
            tags,
            sent,
            how,
            ahead: None,
            learned: None,
            ghosted: false,
        });
    }

    /// Whether the server is to run a copy of `client`'s read before the read itself (see
    /// [`GHOST_ONE_IN`]): only a read on a data connection, once.
    pub(super) fn inband_ghosts(&mut self, client: Client) -> bool {
        let Some(flight) = self.inband.in_flight[client].as_mut() else {
            return false;
        };
        if flight.ghosted
            || matches!(flight.how, How::PlainSet(_))
            || !self.inband.ghosts.one_in(GHOST_ONE_IN)
        {
            return false;
        }
        flight.ghosted = true;
        self.inband.counts.ghost_reads += 1;
        true
    }

    /// The server ran a copy of `client`'s read: what a read does to the server's tracking (a
    /// full read deletes the expired tags it reaches, a learning read's tags are tracked from
    /// now on), and no reply.
    pub(super) fn inband_ghost_ran(&mut self, client: Client) {
        self.inband_run(client, false);
    }

    /// The server ran `client`'s read: a full read deletes the expired tags it reaches (their
    /// messages go first), its reply takes its place after the messages queued so far, and a
    /// learning read's tags are tracked from now on, their versions and `PTTL`s read.
    pub(super) fn inband_ran(&mut self, client: Client) {
        self.inband_run(client, true);
    }

    /// What running `client`'s read does on the server; `replied`: the reply is the caller's
    /// (not a copy's, which goes nowhere).
    fn inband_run(&mut self, client: Client, replied: bool) {
        let now = self.now;
        let process = self.callers[client].process;
        self.inband_reached(client);
        let Some(flight) = self.inband.in_flight[client].as_mut() else {
            return;
        };
        // Sent on a connection lost since: its reply will not come.
        let Some(connection) = live(&mut self.inband.connections[process], flight.generation)
        else {
            return;
        };
        if replied {
            flight.ahead = Some(connection.queued);
        }
        let How::Full(Some(learning)) = &flight.how else {
            return;
        };
        let mut versions = Vec::new();
        let mut ttls = Vec::new();
        for tag in learning.tags() {
            let state = self.server.tag(tag.as_str(), now);
            versions.push(state.map(|(version, _)| version));
            ttls.push(pttl(&state, now));
            connection.tracked.insert(
                tag.as_str().to_owned(),
                Tracked {
                    seen: state,
                    expired: false,
                },
            );
        }
        if replied {
            flight.learned = Some((versions, ttls));
        }
    }

    /// Lazy expiry: a full read of `client`'s deletes each expired tag it reaches, with a message
    /// to its trackers.
    fn inband_reached(&mut self, client: Client) {
        let Some(flight) = self.inband.in_flight[client].as_ref() else {
            return;
        };
        if !matches!(flight.how, How::Full(_)) {
            return;
        }
        let tags = flight.tags.clone();
        for connection in self.inband.connections.iter_mut().flatten() {
            for tag in &tags {
                let key = tag.as_str();
                if connection
                    .tracked
                    .get(key)
                    .is_some_and(|tracked| tracked.expired)
                {
                    connection.tracked.remove(key);
                    connection.queue(Some(vec![key.to_owned()]));
                }
            }
        }
    }

    /// After every step: each tracked tag that changed since tracking began is announced on its
    /// connection and no longer tracked; one that expired waits for the server to delete it.
    pub(super) fn inband_sync(&mut self) {
        let now = self.now;
        let world = self.world;
        let mut lines = Vec::new();
        for at in 0..self.inband.connections.len() {
            let Some(connection) = self.inband.connections[at].as_mut() else {
                continue;
            };
            let mut changed = Vec::new();
            for (key, tracked) in &mut connection.tracked {
                let current = self.server.tag(key, now);
                if current == tracked.seen {
                    continue;
                }
                let expired = current.is_none()
                    && matches!(tracked.seen, Some((_, Some(expires))) if expires <= now);
                if expired && !tracked.expired {
                    tracked.expired = true;
                    continue;
                }
                if !expired || self.rng.one_in(EXPIRY_CYCLE_ONE_IN) {
                    changed.push(key.clone());
                }
            }
            for key in changed {
                connection.tracked.remove(&key);
                let label = world.near.label(Some(std::slice::from_ref(&key)));
                connection.queue(Some(vec![key]));
                lines.push(format!("server: in-band message to p{at}: {label}"));
            }
        }
        for line in lines {
            self.note(line);
        }
    }

    /// `FLUSHALL`: a null list on every data connection, whose tracking ends.
    pub(super) fn inband_flushed(&mut self) {
        for connection in self.inband.connections.iter_mut().flatten() {
            connection.tracked.clear();
            connection.queue(None);
        }
    }

    /// `process`'s data connection is lost (a drop, a crash, a restart): its table is closed for
    /// good, what was on its way is lost, the server stops tracking for it.
    fn inband_lose(&mut self, process: usize) {
        let Some(connection) = self.inband.connections[process].as_mut() else {
            return;
        };
        if let Some(known) = connection.known.take() {
            known.distrust();
        }
        self.inband.counts.inband_lost += connection.wire.len() as u64;
        connection.wire.clear();
        connection.tracked.clear();
        connection.generation += 1;
    }

    /// `client`'s connection dropped: a read on its process's data connection loses it.
    pub(super) fn inband_dropped(&mut self, client: Client) {
        let process = self.callers[client].process;
        let current = self.inband.connections[process]
            .as_ref()
            .map(|connection| connection.generation);
        let on_it = self.inband.in_flight[client]
            .as_ref()
            .is_some_and(|flight| Some(flight.generation) == current);
        if on_it {
            self.note(format!("p{process} loses its data connection"));
            self.inband_lose(process);
        }
    }

    /// `process` crashed: its data connection is gone, and its reads with it.
    pub(super) fn inband_crashed(&mut self, process: usize) {
        self.inband_lose(process);
        for caller in 0..self.callers.len() {
            if self.callers[caller].process == process {
                self.inband.in_flight[caller] = None;
            }
        }
    }

    /// The server restarted: every data connection is lost.
    pub(super) fn inband_restarted(&mut self) {
        for process in 0..self.inband.connections.len() {
            self.inband_lose(process);
        }
    }

    /// What the data connections can do now: deliver their first message.
    pub(super) fn inband_events(&mut self) {
        for (process, connection) in self.inband.connections.iter().enumerate() {
            if connection
                .as_ref()
                .is_some_and(|connection| !connection.wire.is_empty())
            {
                self.events.push(Event::InBand(process));
            }
        }
    }

    /// `process`'s data connection delivers its first message to its table.
    pub(super) fn inband_message(&mut self, process: usize) {
        let Some(connection) = self.inband.connections[process].as_mut() else {
            return;
        };
        if let Some(message) = connection.apply_first() {
            self.inband.counts.inband_applied += 1;
            let label = self.world.near.label(message.keys.as_deref());
            self.note(format!("p{process} in-band message applied: {label}"));
        }
    }

    /// `client`'s reply is delivered: the messages queued on its data connection before the
    /// server ran its read are applied first.
    pub(super) fn inband_delivered(&mut self, client: Client) {
        let process = self.callers[client].process;
        let Some(flight) = self.inband.in_flight[client].as_ref() else {
            return;
        };
        let Some(ahead) = flight.ahead else {
            return;
        };
        let Some(connection) = live(&mut self.inband.connections[process], flight.generation)
        else {
            return;
        };
        let mut applied = 0;
        while connection
            .wire
            .front()
            .is_some_and(|first| first.number < ahead)
        {
            connection.apply_first();
            applied += 1;
        }
        self.inband.counts.inband_applied += applied;
        if applied > 0 {
            self.note(format!(
                "p{process} in-band: {applied} messages applied ahead of c{client}'s reply"
            ));
        }
    }

    /// `caller` takes its `reply`, as `read_async` does once it is in: a one-`GET` answer gets
    /// the versions known, if `still` holds, else the read is sent again in full (`None`); a
    /// learning read gives its table what it read; a lost one abandons.
    pub(super) fn inband_received(
        &mut self,
        caller: usize,
        reply: Option<super::Received>,
    ) -> Option<Option<super::Received>> {
        let Some(reply) = reply else {
            return Some(None);
        };
        let Some(mut flight) = self.inband.in_flight[caller].take() else {
            return Some(Some(reply));
        };
        let process = self.callers[caller].process;
        let alive = self.inband.connections[process]
            .as_ref()
            .is_some_and(|connection| connection.generation == flight.generation);
        let reply = match reply {
            Ok(_) if !alive => {
                // Its connection was lost before its reply was read.
                self.note(format!(
                    "c{caller:<2} its reply is lost with its data connection"
                ));
                if let Some(Active::Read(reading)) = &mut self.callers[caller].active {
                    reading.failed = true;
                }
                Err(connection_lost())
            }
            reply => reply,
        };
        let now = crate::clock::ms_at(self.now);
        let how = std::mem::replace(&mut flight.how, How::Full(None));
        match (how, reply) {
            (How::Full(Some(learning)), Ok(reply)) => {
                match &flight.learned {
                    Some((versions, ttls)) => {
                        flight.known.learned(&learning, versions, ttls, flight.sent);
                        let known = flight.known.versions(learning.tags(), now).is_some();
                        self.note(format!(
                            "c{caller:<2} learned {} tags in-band ({})",
                            learning.tags().len(),
                            if known { "all kept" } else { "not all kept" }
                        ));
                    }
                    None => flight.known.abandon(&learning),
                }
                Some(Some(Ok(reply)))
            }
            (How::Full(Some(learning)), Err(error)) => {
                flight.known.abandon(&learning);
                Some(Some(Err(error)))
            }
            // A plain `SET`: kept if no change to its tags came ahead of its reply; else the
            // script writes it again, with the versions (and the data) of its moment.
            (How::PlainSet(plain), Ok(reply)) => {
                if flight.known.still(&flight.tags, &plain.before, now) {
                    self.inband.counts.plain_sets += 1;
                    self.note(format!(
                        "c{caller:<2} plain SET kept: its tags' versions known in-band"
                    ));
                    return Some(Some(Ok(reply)));
                }
                self.inband.counts.plain_sets_redone += 1;
                self.note(format!(
                    "c{caller:<2} plain SET written again by the script (a tag changed first)"
                ));
                self.callers[caller].wait = Wait::Request;
                self.requests.push(caller);
                None
            }
            // A one-`GET` answer: the model's server answered with the tags' versions it
            // holds, replaced by those known (bounding the expiry by theirs).
            (How::OneGet(before), Ok(Reply::Read(mut read))) => {
                let before = self.inband_kept(caller, flight, before, now, "one-GET")?;
                self.inband.counts.one_get_hits += 1;
                if read.expiry != Expiry::Unknown {
                    let left = before.until.saturating_sub(now);
                    let bound = match before.until {
                        u64::MAX => Expiry::Never,
                        _ => Expiry::After(std::time::Duration::from_millis(left)),
                    };
                    read.expiry = read.expiry.min(bound);
                }
                read.versions = before.versions;
                Some(Some(Ok(Reply::Read(read))))
            }
            // The same for `get_many`: one `MGET` of the entries.
            (How::OneGet(before), Ok(Reply::Many(mut many))) => {
                let before = self.inband_kept(caller, flight, before, now, "one-MGET")?;
                self.inband.counts.one_mget_hits += 1;
                many.versions = before.versions;
                Some(Some(Ok(Reply::Many(many))))
            }
            (_, reply) => Some(Some(reply)),
        }
    }

    /// The versions `before` of a one-`GET` (or one-`MGET`: `what`) answer of `flight`, if
    /// they still hold at `now` (`KnownTags::still`). If not (a change to one of its tags came
    /// first, or its time ran out), `caller` sends its read again in full, learning the tags:
    /// `None`.
    fn inband_kept(
        &mut self,
        caller: usize,
        flight: InFlight,
        before: Known,
        now: u64,
        what: &str,
    ) -> Option<Known> {
        if flight.known.still(&flight.tags, &before, now) {
            self.note(format!(
                "c{caller:<2} {what} answer kept: its {} tags' versions known in-band",
                before.versions.len()
            ));
            return Some(before);
        }
        self.inband.counts.one_get_discarded += 1;
        self.note(format!(
            "c{caller:<2} {what} answer discarded (a tag's version is no longer known)"
        ));
        let InFlight {
            known,
            generation,
            tags,
            sent,
            ..
        } = flight;
        let learning = known.learn(&tags, sent);
        self.inband_flight(caller, known, tags, sent, How::Full(learning));
        if let Some(slot) = self.inband.in_flight[caller].as_mut() {
            slot.generation = generation;
        }
        self.callers[caller].wait = Wait::Request;
        self.requests.push(caller);
        None
    }
}

/// The data connection in `slot`, if it is still the one of `generation`.
fn live(slot: &mut Option<Connection>, generation: u64) -> Option<&mut Connection> {
    slot.as_mut()
        .filter(|connection| connection.generation == generation)
}

impl Connection {
    /// The server queues a message on the connection.
    fn queue(&mut self, keys: Option<Vec<String>>) {
        self.wire.push_back(Message {
            number: self.queued,
            keys,
        });
        self.queued += 1;
    }

    /// The first message on the wire arrives: the table is told.
    fn apply_first(&mut self) -> Option<Message> {
        let message = self.wire.pop_front()?;
        if let Some(known) = &self.known {
            match &message.keys {
                Some(keys) => known.changed(&mut keys.iter().map(|key| key.as_bytes())),
                None => known.changed_all(),
            }
        }
        Some(message)
    }
}

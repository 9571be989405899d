//! The simulated world and its scheduler: processes of callers, the model server, the network
//! between them, and the virtual clock. Every step the seeded dice pick one thing to happen:
//! a caller advances, the server executes a request, a reply is delivered (requests and
//! replies of different callers in any order: each caller has its own connection), time
//! moves (locks, entries and `BLPOP`s expire), a process crashes, or the server loses its keys.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod callers;
mod inband;
mod low_level;
mod near;

use self::low_level::LowLevel;

use super::checks::{Checker, Violation};
use super::rng::Rng;
use super::server::{connection_lost, Client, Server};
use super::trace::{describe, describe_reply};
use super::{Config, Coverage, Run};
use crate::cache::flights::Flight;
use crate::decorate::simulated::Windows;
use crate::decorate::simulated::{Data, SimCall, SimProcess};
use crate::decorate::ValueCodec;
use crate::engine::{Operation, Reply};
use crate::error::BackendError;
use crate::format::{self, EntryKeys, KeySpace, TagKey, Version};

/// Processes sharing the server.
const PROCESSES: usize = 3;
/// Callers per process, by role.
const ROLES: [Role; 5] = [
    Role::Writer,
    Role::LowLevel,
    Role::Reader {
        lock: true,
        stale: false,
    },
    Role::Reader {
        lock: true,
        stale: true,
    },
    Role::Reader {
        lock: false,
        stale: true,
    },
];
/// The data's tags. The last one changes rarely (see `Sim::start`), so that its entry lives
/// past its lifetime now and then: the serve-stale options' paths need entries that outlive
/// their lifetime without an invalidation.
const TAGS: [&str; 3] = ["a", "b", "quiet"];
/// The entries, by the tags they carry (indices into `TAGS`).
const ENTRIES: [&[usize]; 4] = [&[0], &[0, 1], &[1], &[2]];

/// The data slots a value of `entry` is computed from: its tags', then its own
/// (`TAGS.len() + entry`, bumped before the entry is deleted).
fn slots(entry: usize) -> impl Iterator<Item = usize> {
    ENTRIES[entry]
        .iter()
        .copied()
        .chain(std::iter::once(TAGS.len() + entry))
}
/// `lock_timeout`, and the Redis lock's lifetime.
const LOCK_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a stored entry lives, in half the seeds; in the other half, as long as a tombstone
/// of such entries (`format::tombstone_lifetime`), as a `set` sent as one plain `SET` must.
const ENTRY_LIFETIME: Duration = Duration::from_secs(3);
/// How long a tag lives once created or invalidated (`lifetime_for_tags`): tags expire, and
/// are created again with a new version.
const TAG_LIFETIME: Duration = Duration::from_secs(10);
/// The stale windows of the callers that have them: `stale_if_error` (their computations fail
/// now and then, so that the stale value stands in), and, without `lock`, also
/// `stale_while_revalidate` (a stale hit returns at once and starts a refresh).
fn windows(lock: bool) -> Windows {
    Windows {
        if_error: Duration::from_secs(2),
        while_revalidate: if lock {
            Duration::ZERO
        } else {
            Duration::from_secs(2)
        },
        // `stale_if_slow`: a computation longer than this hands its store over and the call
        // returns the stale value it saw.
        timeout: lock.then_some(Duration::from_millis(100)),
    }
}
/// How many steps are kept for the trace of a violation.
const KEPT: usize = 2_000;
/// How many of the last steps a violation shows, besides the story of the call that broke it
/// (`RTC_SIM_TRACE` shows more, up to the steps kept).
const TRACE: usize = 40;

type Received = Result<Reply, BackendError>;

#[derive(Clone, Copy, Debug)]
enum Role {
    /// Invalidates a tag, or everything.
    Writer,
    /// Calls `get`, `get_many`, `set` or `set_many`.
    LowLevel,
    /// Calls the decorated function, with `lock = true` or without, with `stale_if_error`
    /// (and a function that fails now and then) or without.
    Reader { lock: bool, stale: bool },
}

/// What never changes during a run: the processes' hosts, the entries' keys, the codec.
pub(super) struct World {
    seed: u64,
    keys: KeySpace,
    processes: Vec<SimProcess>,
    entries: Vec<EntryKeys>,
    /// The same entries as the low-level API names them: without the function's tag.
    plain: Vec<EntryKeys>,
    locks: Vec<String>,
    codec: ValueCodec<Data>,
    /// Every key the server may evict: the entries', their locks', the tags'.
    evictable: Vec<String>,
    /// `RTC_SIM_EVICT_LINEAGES=1`: keys that hold a delete's lineage (tombstones, entries
    /// written over them) are evicted too (a gap RELIABILITY.md documents; off by default).
    evict_lineages: bool,
    /// How many of the last steps a violation shows.
    trace: usize,
    /// What the processes' near caches name entries by, and what tracking announces.
    near: near::Setup,
    /// How long every entry lives (the processes' default lifetime), chosen per seed from a
    /// stream of its own (so that the choice does not move the scheduler's).
    entry_lifetime: Duration,
}

impl World {
    pub(super) fn new(seed: u64) -> Self {
        let keys = KeySpace::new("sim");
        let function = keys.implicit_tag("f");
        let entries: Vec<EntryKeys> = ENTRIES
            .iter()
            .enumerate()
            .map(|(at, tags)| {
                let names = tags.iter().map(|&tag| TAGS[tag]);
                EntryKeys::new(&keys, &[&format!("k{at}")], names, [function.clone()])
            })
            .collect();
        let plain = ENTRIES
            .iter()
            .enumerate()
            .map(|(at, tags)| {
                let names = tags.iter().map(|&tag| TAGS[tag]);
                EntryKeys::new(&keys, &[&format!("k{at}")], names, [])
            })
            .collect();
        let locks: Vec<String> = entries
            .iter()
            .map(|entry| keys.lock(&entry.entry).lock)
            .collect();
        let evictable = entries
            .iter()
            .flat_map(|keys: &EntryKeys| {
                let tags = keys.tags().iter().map(|tag| tag.as_str().to_owned());
                std::iter::once(keys.entry.to_string()).chain(tags)
            })
            .chain(locks.iter().cloned())
            .collect::<std::collections::BTreeSet<String>>()
            .into_iter()
            .collect();
        let entry_lifetime = match crate::simulation::rng::Rng::new(seed ^ 0x6c69_6665).one_in(2) {
            true => format::tombstone_lifetime(Some(ENTRY_LIFETIME)),
            false => ENTRY_LIFETIME,
        };
        let processes = (0..PROCESSES)
            .map(|at| {
                let process =
                    SimProcess::new(keys.clone(), Some(entry_lifetime), Some(TAG_LIFETIME));
                near::equip(process, seed, at)
            })
            .collect();
        Self {
            seed,
            near: near::Setup::new(&keys, &entries, seed, PROCESSES),
            keys,
            processes,
            entries,
            plain,
            locks,
            // Values kept decoded in the near cache, as for any `Clone` type.
            codec: ValueCodec::serde(None).near(near::sharing()),
            evictable,
            entry_lifetime,
            evict_lineages: std::env::var("RTC_SIM_EVICT_LINEAGES").as_deref() == Ok("1"),
            trace: std::env::var("RTC_SIM_TRACE")
                .ok()
                .and_then(|steps| steps.parse().ok())
                .unwrap_or(TRACE)
                .min(KEPT),
        }
    }

    /// How long a tombstone lives (`TaggedCache::delete_operation`'s).
    fn tombstone_lifetime(&self) -> Duration {
        format::tombstone_lifetime(Some(self.entry_lifetime))
    }

    pub(super) fn run(&self, config: &Config) -> Run {
        let mut sim = Sim::new(self);
        let mut run = Run {
            steps: 0,
            calls: 0,
            computations: 0,
            invalidations: 0,
            deletes: 0,
            coverage: Coverage::default(),
            violation: None,
        };
        while run.steps < config.steps {
            run.steps += 1;
            let step = sim.step(&mut run);
            sim.inband_sync();
            if let Err(what) = step.and_then(|()| sim.near_probe(&mut run)) {
                run.violation = Some(Violation {
                    seed: self.seed,
                    step: run.steps,
                    mutant: config.mutant.map(super::Mutant::name),
                    what,
                    call: sim.story(),
                    trace: sim
                        .trace
                        .iter()
                        .skip(sim.trace.len().saturating_sub(self.trace))
                        .cloned()
                        .collect(),
                });
                break;
            }
        }
        run.coverage += sim.inband.counts;
        run.coverage += sim.near.counts;
        run
    }
}

/// Where a caller is.
enum Wait {
    /// Between calls: the next step starts one.
    Idle,
    /// Ready to step its call, with this reply.
    Step(Option<Received>),
    /// Its request is on the way to the server.
    Request,
    /// Blocked at the server (`BLPOP`).
    Blocked,
    /// Its reply is on the way back.
    Reply,
    /// Waiting for its process's leader until the deadline.
    Follow(Arc<Flight>, Instant),
    /// Computing until then (or until its time limit, when it is late then).
    Compute(Instant),
    /// Waiting for its late computation (`Join`); true once it returned.
    Joined(bool),
}

/// A call under way.
enum Active<'w> {
    Read(Box<Reading<'w>>),
    /// `get`, `get_many`, `set` or `set_many`.
    LowLevel(LowLevel<'w>),
    /// An invalidation: the new versions sent, and the data versions they make current.
    Invalidate {
        tags: Vec<(TagKey, Version)>,
        bumped: Vec<(usize, u64)>,
    },
    /// `invalidate_<fn>(args)`: the entry's delete, the tombstone it leaves, and the data
    /// version (of the entry's own slot) it makes current.
    Delete {
        entry: usize,
        tombstone: Vec<u8>,
        bumped: (usize, u64),
    },
}

/// A decorated call under way.
struct Reading<'w> {
    flow: SimCall<'w>,
    entry: usize,
    started: Instant,
    /// The floors when it started (promise 2).
    floors: Vec<u64>,
    /// What its computation read, once it computes.
    computed: Option<Data>,
    /// True when its computation failed (an `Err`): the call returns that error, or a stale
    /// value instead.
    errored: bool,
    /// True for a background refresh (`stale_while_revalidate`): it returns nothing to check.
    refresh: bool,
    /// When its computation ends, if that is past its time limit (`stale_if_slow`).
    late_until: Option<Instant>,
    /// True once Redis failed it: it may compute alone (promise 3).
    failed: bool,
    /// The entry's lock period when the server last ran its `Acquire`: the period of the
    /// lock it may hold (promise 3).
    acquired_in: Option<u64>,
}

struct Caller<'w> {
    process: usize,
    role: Role,
    wait: Wait,
    active: Option<Active<'w>>,
}

/// A computation handed over by its call (`stale_if_slow`): it stores its value itself when it
/// returns, stamped with the versions its call read (as `Background::store_late`, here one
/// atomic step at the server when it returns).
struct LateBody {
    caller: usize,
    entry: usize,
    data: Data,
    errored: bool,
    returns: Instant,
    observed: Option<crate::format::Observed>,
    /// True once its call waits for it (`Join`).
    joined: bool,
}

/// One thing that can happen next.
#[derive(Clone, Copy)]
enum Event {
    Advance(usize),
    Execute(usize),
    Deliver(usize),
    /// A process's tracking moves (`near.rs`).
    Track(usize, crate::simulation::tracking::Move),
    /// A process's data connection delivers an in-band message (`inband.rs`).
    InBand(usize),
}

/// The state of a run.
struct Sim<'w> {
    world: &'w World,
    rng: Rng,
    server: Server,
    checker: Checker,
    origin: Instant,
    now: Instant,
    callers: Vec<Caller<'w>>,
    /// Requests sent, not yet executed, by client.
    requests: Vec<Client>,
    /// Replies on the way back.
    replies: Vec<(Client, Received)>,
    /// The database: each slot's data version (the tags', then each entry's own).
    data: Vec<u64>,
    trace: VecDeque<String>,
    /// Computations that outlived their call's time limit, running on.
    late: Vec<LateBody>,
    /// The caller advanced last: the one whose call a violation is about.
    focus: Option<usize>,
    events: Vec<Event>,
    /// The near caches' tracking, and their checker.
    near: near::State,
    /// The processes' data connections and what they know in-band.
    inband: inband::State,
}

/// The server runs `operation` for `client` (`None`: for nobody, a late store): its replies,
/// what it changed for the near caches' messages, and whether it wrote (`Done(true)`). The
/// caller tells the near caches (`Sim::near_changed`) once the operation's borrow has ended.
fn served(
    world: &World,
    server: &mut Server,
    client: Option<Client>,
    operation: Operation<'_>,
    now: Instant,
) -> (Vec<(Client, Received)>, Option<near::Change>, bool) {
    let change = near::Change::of(&world.near, &world.entries, server, &operation, now);
    let to = client.unwrap_or(usize::MAX);
    let replies = server.execute(to, operation, now);
    let written = replies
        .iter()
        .any(|(at, reply)| *at == to && matches!(reply, Ok(Reply::Done(true))));
    (replies, change, written)
}

impl<'w> Sim<'w> {
    fn new(world: &'w World) -> Self {
        let callers = (0..PROCESSES)
            .flat_map(|process| {
                ROLES.iter().map(move |&role| Caller {
                    process,
                    role,
                    wait: Wait::Idle,
                    active: None,
                })
            })
            .collect();
        let now = Instant::now();
        Self {
            world,
            rng: Rng::new(world.seed),
            server: Server::new(),
            checker: Checker::new(TAGS.len(), ENTRIES.len()),
            origin: now,
            now,
            callers,
            requests: Vec::new(),
            replies: Vec::new(),
            data: vec![0; TAGS.len() + ENTRIES.len()],
            trace: VecDeque::with_capacity(KEPT),
            focus: None,
            late: Vec::new(),
            events: Vec::new(),
            near: near::State::new(&world.processes, &world.near, now),
            inband: inband::State::new(world.seed, PROCESSES, PROCESSES * ROLES.len()),
        }
    }

    fn note(&mut self, line: String) {
        if self.trace.len() == KEPT {
            self.trace.pop_front();
        }
        let at = self.now.duration_since(self.origin).as_millis();
        self.trace.push_back(format!("t={at:>6}ms {line}"));
    }

    /// One step: a fault now and then, else one of the events possible now.
    fn step(&mut self, run: &mut Run) -> Result<(), String> {
        self.near_clock();
        if self.near_fault(&mut run.coverage) {
            return Ok(());
        }
        if self.rng.one_in(700) {
            let process = self.rng.below(PROCESSES as u64) as usize;
            self.crash(process);
            run.coverage.crashes += 1;
            return Ok(());
        }
        if self.rng.one_in(2500) {
            self.note("server: FLUSHALL".into());
            self.server.flush();
            self.checker.keys_lost();
            self.near_flushed();
            self.inband_flushed();
            run.coverage.key_losses += 1;
            return Ok(());
        }
        if self.rng.one_in(2500) {
            self.restart();
            self.near_restarted(&mut run.coverage);
            self.inband_restarted();
            run.coverage.key_losses += 1;
            return Ok(());
        }
        if self.rng.one_in(400) {
            run.coverage.evictions += u64::from(self.evict());
            return Ok(());
        }
        if self.rng.one_in(500) {
            run.coverage.dropped_connections += u64::from(self.drop_connection());
            return Ok(());
        }
        self.events.clear();
        for (at, caller) in self.callers.iter().enumerate() {
            let ready = match &caller.wait {
                Wait::Idle | Wait::Step(_) => true,
                Wait::Follow(flight, deadline) => {
                    *deadline <= self.now || flight.landed().is_some()
                }
                Wait::Compute(until) => *until <= self.now,
                Wait::Joined(returned) => *returned,
                Wait::Request | Wait::Blocked | Wait::Reply => false,
            };
            if ready {
                self.events.push(Event::Advance(at));
            }
        }
        self.events
            .extend((0..self.requests.len()).map(Event::Execute));
        self.events
            .extend((0..self.replies.len()).map(Event::Deliver));
        self.near_events();
        self.inband_events();
        // Time moves as often as everything else together, at most; alone when nothing else can.
        let others = self.events.len() as u64;
        if others == 0 || self.rng.below(others + 4) < 2 {
            run.coverage.lock_expiries += self.tick(others == 0);
            return Ok(());
        }
        let event = self.events[self.rng.below(others) as usize];
        match event {
            Event::Advance(caller) => self.advance(caller, run),
            Event::Execute(at) => {
                if self.inband_ghosts(self.requests[at]) {
                    self.ghost(self.requests[at]);
                    return Ok(());
                }
                let client = self.requests.swap_remove(at);
                self.execute(client, &mut run.coverage);
                Ok(())
            }
            Event::Deliver(at) => {
                let (client, reply) = self.replies.swap_remove(at);
                self.note(format!("c{client:<2} <- {}", describe_reply(&reply)));
                self.inband_delivered(client);
                self.near_replied(client);
                let caller = &mut self.callers[client];
                if let (Err(_), Some(Active::Read(reading))) = (&reply, &mut caller.active) {
                    reading.failed = true;
                }
                caller.wait = Wait::Step(Some(reply));
                Ok(())
            }
            Event::Track(process, step) => self.track(process, step, run),
            Event::InBand(process) => {
                self.inband_message(process);
                Ok(())
            }
        }
    }

    /// Moves time: a little, or more now and then (locks and entries expire); with nothing
    /// else to do, to the next deadline. Returns how many locks expired.
    fn tick(&mut self, idle: bool) -> u64 {
        let by = match self.rng.below(100) {
            _ if idle => match self.next_deadline() {
                Some(at) if at > self.now => at - self.now,
                _ => Duration::from_millis(1),
            },
            0..=79 => Duration::from_millis(self.rng.between(1, 20)),
            80..=97 => Duration::from_millis(self.rng.between(20, 300)),
            // Now and then the clock jumps (a paused VM, a stalled host): every lock, entry
            // and wait running then expires at once.
            _ if self.rng.one_in(20) => Duration::from_millis(self.rng.between(5_000, 20_000)),
            _ => Duration::from_millis(self.rng.between(300, 2500)),
        };
        self.now += by;
        self.note(format!("time +{}ms", by.as_millis()));
        self.return_late();
        let expired = self.server.advance(self.now);
        let locks = expired.locks.len() as u64;
        for lock in expired.locks {
            if let Some(entry) = self.world.locks.iter().position(|key| *key == lock) {
                self.note(format!("server: the lock of entry {entry} expired"));
                self.checker.lock_expired(entry);
            }
        }
        self.answer(expired.replies);
        locks
    }

    /// The earliest time a waiting caller or the server has something to do.
    fn next_deadline(&self) -> Option<Instant> {
        let callers = self.callers.iter().filter_map(|caller| match caller.wait {
            Wait::Follow(_, deadline) => Some(deadline),
            Wait::Compute(until) => Some(until),
            _ => None,
        });
        let late = self.late.iter().map(|body| body.returns);
        callers.chain(late).chain(self.server.next_deadline()).min()
    }

    /// The server's replies go on their way back.
    fn answer(&mut self, replies: Vec<(Client, Received)>) {
        for (client, reply) in replies {
            let caller = &mut self.callers[client];
            if matches!(caller.wait, Wait::Request | Wait::Blocked) {
                caller.wait = Wait::Reply;
                self.replies.push((client, reply));
            }
        }
    }

    /// The server runs a copy of `client`'s read and keeps the read queued: the copy went out
    /// in a pipeline whose leader gave up, and the read was sent again (`autopipeline.rs`). The
    /// copy's reply goes nowhere.
    fn ghost(&mut self, client: Client) {
        let operation = match &self.callers[client].active {
            Some(Active::Read(reading)) => reading.flow.operation(),
            Some(Active::LowLevel(LowLevel::Get { flow, .. })) => flow.operation(),
            _ => None,
        };
        let Some(operation) = operation else {
            return;
        };
        let line = format!(
            "server runs a copy of c{client}'s {} (sent twice; the copy's reply is dropped)",
            describe(&operation)
        );
        let _dropped = served(
            self.world,
            &mut self.server,
            Some(client),
            operation,
            self.now,
        );
        self.inband_ghost_ran(client);
        self.note(line);
    }

    /// The server executes `client`'s request.
    fn execute(&mut self, client: Client, coverage: &mut Coverage) {
        if let Some(Active::Read(reading)) = &mut self.callers[client].active {
            if matches!(reading.flow.operation(), Some(Operation::Acquire { .. })) {
                reading.acquired_in = Some(self.checker.period(reading.entry));
            }
        }
        if let Some(Active::LowLevel(LowLevel::Set { entries, learned })) =
            &self.callers[client].active
        {
            let (entries, learned) = (entries.clone(), learned.clone());
            return self.execute_set(client, &entries, &learned, coverage);
        }
        let operation = match &self.callers[client].active {
            Some(Active::Read(reading)) => reading.flow.operation(),
            Some(Active::LowLevel(LowLevel::Get { flow, .. })) => flow.operation(),
            Some(Active::LowLevel(LowLevel::Set { .. })) => None,
            Some(Active::Invalidate { tags, .. }) => Some(Operation::Invalidate {
                tags,
                lifetime: Some(TAG_LIFETIME),
            }),
            // As `TaggedCache::delete_operation`.
            Some(Active::Delete {
                entry, tombstone, ..
            }) => Some(Operation::Delete {
                entry: &self.world.entries[*entry].entry,
                tombstone,
                lifetime: Some(self.world.tombstone_lifetime()),
            }),
            None => None,
        };
        let Some(operation) = operation else {
            return;
        };
        let line = format!("server runs c{client}'s {}", describe(&operation));
        match operation {
            Operation::WaitForWake { .. } => coverage.lock_waits += 1,
            Operation::Acquire { baton: Some(_), .. } => coverage.batons += 1,
            _ => {}
        }
        // A near fill's keys: the entry's and its tags' (what `CLIENT CACHING YES` tracks).
        let fill: Option<Vec<String>> = match operation {
            Operation::Read {
                entry,
                tags,
                expiry: true,
                ..
            } => Some(
                std::iter::once(entry.to_owned())
                    .chain(tags.iter().map(|tag| tag.as_str().to_owned()))
                    .collect(),
            ),
            _ => None,
        };
        let (mut replies, change, written) = served(
            self.world,
            &mut self.server,
            Some(client),
            operation,
            self.now,
        );
        if let Some(keys) = fill {
            self.near_fill_ran(client, &keys, &mut replies);
        }
        self.near_changed(Some(client), change, written);
        self.inband_ran(client);
        let blocked = replies.first().is_none_or(|(first, _)| *first != client);
        if blocked {
            self.callers[client].wait = Wait::Blocked;
        }
        self.note(line);
        self.answer(replies);
    }

    /// Late computations that have returned store their values (unless they failed) and hand
    /// them to their call if it waits for them.
    fn return_late(&mut self) {
        let now = self.now;
        let (returned, running): (Vec<_>, Vec<_>) = std::mem::take(&mut self.late)
            .into_iter()
            .partition(|body| body.returns <= now);
        self.late = running;
        for body in returned {
            if let (false, Some(observed)) = (body.errored, &body.observed) {
                let payload = crate::codec::Encoding::default()
                    .encode(&body.data)
                    .unwrap_or_default();
                let write = Operation::WriteUnlessDeleted {
                    entry: &self.world.entries[body.entry].entry,
                    observed,
                    payload: &payload,
                    lifetime: Some(self.world.entry_lifetime),
                    stale_window: windows(true).stored(),
                };
                let line = format!(
                    "server runs c{}'s late {} of {:?}",
                    body.caller,
                    describe(&write),
                    body.data
                );
                // Not a client's: its reply goes nowhere but to the near caches' messages.
                let (_, change, written) = served(self.world, &mut self.server, None, write, now);
                self.near_changed(None, change, written);
                self.note(line);
            }
            if body.joined {
                if let Some(Active::Read(reading)) = &mut self.callers[body.caller].active {
                    reading.computed = Some(body.data);
                    reading.errored = body.errored;
                }
                self.callers[body.caller].wait = Wait::Joined(true);
            }
        }
    }

    /// The steps of the focused caller's last call, with what happened to the server and the
    /// data meanwhile (kept steps only).
    fn story(&self) -> Vec<String> {
        if let Some(story) = self.near_story() {
            return story;
        }
        let Some(caller) = self.focus else {
            return Vec::new();
        };
        let me = format!("c{caller:<2} ");
        let mine = format!("c{caller}'s ");
        let start = self
            .trace
            .iter()
            .rposition(|line| line.contains(&format!("{me}calls")))
            .unwrap_or(0);
        let relevant = |line: &&String| {
            line.contains(&me)
                || line.contains(&mine)
                || line.contains("server:")
                || line.contains("crashes")
                || line.contains("invalidation returned")
        };
        self.trace
            .iter()
            .skip(start)
            .filter(relevant)
            .cloned()
            .collect()
    }

    /// A process dies: its calls vanish mid-way, their locks left to expire.
    fn crash(&mut self, process: usize) {
        self.note(format!("process {process} crashes"));
        let callers = &self.callers;
        self.late
            .retain(|body| callers[body.caller].process != process);
        for (at, caller) in self.callers.iter_mut().enumerate() {
            if caller.process == process {
                caller.active = None;
                caller.wait = Wait::Idle;
                self.checker.computed(at);
                self.server.disconnect(at);
            }
        }
        self.near_crashed(process);
        self.inband_crashed(process);
        let callers = &self.callers;
        let alive = |client: &Client| callers[*client].process != process;
        self.requests.retain(alive);
        self.replies.retain(|(client, _)| alive(client));
    }

    /// The server evicts one key (`maxmemory`): an entry, a tag or a lock; one holding a
    /// delete's lineage only with `RTC_SIM_EVICT_LINEAGES=1`. Returns whether a key went.
    fn evict(&mut self) -> bool {
        let keys = &self.world.evictable;
        let key = &keys[self.rng.below(keys.len() as u64) as usize];
        if !self.server.evict(key, self.world.evict_lineages, self.now) {
            return false;
        }
        self.note(format!("server: evicts {key}"));
        let world = self.world;
        let change = near::Change::evicted(&world.near, &world.entries, key);
        self.near_changed(None, change, true);
        if let Some(entry) = self.world.locks.iter().position(|lock| lock == key) {
            // An evicted lock lets a second caller in: a new lock period (promise 3's limit).
            self.checker.lock_expired(entry);
        }
        true
    }

    /// One caller's connection drops while it has a command on the way: a request not sent
    /// yet is lost, a reply on its way is lost (the command ran), a `BLPOP` ends; the caller
    /// gets a connection error. Returns whether a caller had one.
    fn drop_connection(&mut self) -> bool {
        let busy: Vec<usize> = (0..self.callers.len())
            .filter(|&at| {
                matches!(
                    self.callers[at].wait,
                    Wait::Request | Wait::Blocked | Wait::Reply
                )
            })
            .collect();
        if busy.is_empty() {
            return false;
        }
        let client = busy[self.rng.below(busy.len() as u64) as usize];
        self.inband_dropped(client);
        self.requests.retain(|&waiting| waiting != client);
        self.replies.retain(|(waiting, _)| *waiting != client);
        self.server.disconnect(client);
        self.note(format!("c{client:<2} loses its connection"));
        self.near_replied(client);
        let caller = &mut self.callers[client];
        if let Some(Active::Read(reading)) = &mut caller.active {
            reading.failed = true;
        }
        caller.wait = Wait::Step(Some(Err(connection_lost())));
        true
    }

    /// The server restarts empty: connections drop, requests on the way fail.
    fn restart(&mut self) {
        self.note("server: restart, every key lost".into());
        self.checker.keys_lost();
        let mut failed = self.server.restart();
        failed.extend(
            self.requests
                .drain(..)
                .map(|client| (client, Err(connection_lost()))),
        );
        self.answer(failed);
    }
}

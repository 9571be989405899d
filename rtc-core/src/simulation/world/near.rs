//! The near cache in the simulated world: which processes have one (chosen per seed), their
//! tracking sessions and connections (`simulation/tracking.rs`), what the server announces
//! to them, the faults of tracking (a dropped connection), and the near hits with their checks
//! (`checks/near.rs`).

use std::rc::Rc;
use std::time::{Duration, Instant};

use smallvec::SmallVec;

use super::{slots, Active, Event, LowLevel, Sim, ENTRIES, TAGS};
use crate::decorate::simulated::{Data, SimProcess};
use crate::decorate::{NearProbe, NearShared as _, Sharing};
use crate::engine::{EntryWrite, Operation, Reply};
use crate::format::{EntryKeys, KeySpace, TagKey};
use crate::near::Named;
use crate::simulation::checks::near::NearChecker;
use crate::simulation::rng::Rng;
use crate::simulation::server::{Client, Server};
use crate::simulation::tracking::{Move, Push, Tracker};
use crate::simulation::{Coverage, Run};

/// A tracking connection drops once in this many steps (when the process picked has one).
const DISCONNECT_ONE_IN: u64 = 600;
/// One tracking connection in this many is refused when the session opens it.
const REFUSED_ONE_IN: u64 = 8;

/// What never changes about the near caches during a run: the names the processes' near
/// caches look entries up under, and the prefixes tracking announces.
pub(super) struct Setup {
    /// By entry: its key, and the tags the caller names.
    keys: Vec<String>,
    tags: Vec<Vec<String>>,
    prefixes: Vec<String>,
    /// Redis keys, by what they name in the trace.
    labels: Vec<(String, String)>,
    /// By entry: the keys it depends on (its own, its tags').
    depends: Vec<Vec<String>>,
    /// By process: its near cache's maximum age.
    max_ages: Vec<Option<Duration>>,
    /// By process: its tracking is `OPTIN` (one server, as in production), else `BCAST` (as a
    /// cluster's nodes track, kept so that the simulator still runs it).
    optins: Vec<bool>,
    /// By data slot (`slots`): the Redis key whose change makes its version current.
    slot_keys: Vec<String>,
}

impl Setup {
    pub(super) fn new(keys: &KeySpace, entries: &[EntryKeys], seed: u64, processes: usize) -> Self {
        let mut labels: Vec<(String, String)> = entries
            .iter()
            .enumerate()
            .map(|(at, entry)| (entry.entry.to_string(), format!("entry {at}")))
            .collect();
        labels.extend(
            TAGS.iter()
                .map(|&tag| (keys.user_tag(tag).as_str().to_owned(), format!("tag {tag}"))),
        );
        labels.push((keys.namespace_tag().as_str().to_owned(), "namespace".into()));
        labels.push((
            keys.implicit_tag("f").as_str().to_owned(),
            "tag of f".into(),
        ));
        let depends = entries
            .iter()
            .map(|entry| {
                std::iter::once(entry.entry.to_string())
                    .chain(entry.tags().iter().map(|tag| tag.as_str().to_owned()))
                    .collect()
            })
            .collect();
        let slot_keys = TAGS
            .iter()
            .map(|&tag| keys.user_tag(tag).as_str().to_owned())
            .chain(entries.iter().map(|entry| entry.entry.to_string()))
            .collect();
        Self {
            labels,
            depends,
            slot_keys,
            optins: (0..processes).map(|at| optin(seed, at)).collect(),
            max_ages: (0..processes)
                .map(|at| chosen(seed, at).and_then(|(_, max_age)| max_age))
                .collect(),
            keys: (0..ENTRIES.len()).map(|at| format!("k{at}")).collect(),
            tags: ENTRIES
                .iter()
                .map(|tags| tags.iter().map(|&tag| TAGS[tag].to_owned()).collect())
                .collect(),
            prefixes: keys.tracked_prefixes(),
        }
    }

    /// What `keys` name, for the trace (`None`: every key).
    pub(super) fn label(&self, keys: Option<&[String]>) -> String {
        let Some(keys) = keys else {
            return "every key: FLUSHALL".into();
        };
        let names: Vec<&str> = keys
            .iter()
            .map(|key| {
                self.labels
                    .iter()
                    .find(|(known, _)| known == key)
                    .map_or(key.as_str(), |(_, label)| label.as_str())
            })
            .collect();
        names.join(", ")
    }

    /// The entries that depend on one of `keys` (`None`: every key).
    fn entries(&self, keys: Option<&[String]>) -> Vec<usize> {
        (0..self.depends.len())
            .filter(|&entry| {
                keys.is_none_or(|keys| keys.iter().any(|key| self.depends[entry].contains(key)))
            })
            .collect()
    }

    /// What `entry`'s near lookups name, as a `#[cached]` call names it.
    pub(super) fn named(&self, entry: usize) -> Named<'_, String> {
        Named::new("f", &self.keys[entry], &self.tags[entry])
    }
}

/// The near cache of process `at` in the run of `seed`, if it has one: its bound and maximum
/// age (from a stream of the seed of its own, so that the choice does not move the
/// scheduler's).
fn chosen(seed: u64, at: usize) -> Option<(u64, Option<Duration>)> {
    let mut rng = Rng::new(seed ^ 0x6e65_6172_0000_0000 ^ at as u64);
    if rng.one_in(4) {
        return None;
    }
    // A bound below the entries' number makes the near cache evict.
    let bound = if rng.one_in(4) { 2 } else { 100 };
    let max_age = rng
        .one_in(3)
        .then(|| Duration::from_millis(rng.between(100, 2_000)));
    Some((bound, max_age))
}

/// Whether process `at` of the run of `seed` tracks with `OPTIN` (three in four; from a stream
/// of the seed of its own, so that the choice does not move the scheduler's).
fn optin(seed: u64, at: usize) -> bool {
    !Rng::new(seed ^ 0x6f70_7469_6e00_0000 ^ at as u64).one_in(4)
}

/// Process `at` of the run of `seed`, with the near cache [`chosen`] for it.
pub(super) fn equip(process: SimProcess, seed: u64, at: usize) -> SimProcess {
    match chosen(seed, at) {
        Some((bound, max_age)) => process.with_near(bound, max_age),
        None => process,
    }
}

/// How a `#[cached]` function keeps its values decoded in the near cache (the macro asks
/// `NearProbe` the same way).
pub(super) fn sharing() -> Option<Sharing<Data>> {
    NearProbe::<Data>::new().sharing()
}

/// The near caches' part of a run's state.
pub(super) struct State {
    /// By process: its tracking, if it has a near cache.
    trackers: Vec<Option<Tracker>>,
    checker: NearChecker,
    /// The data versions whose change (invalidation, delete) the server has run.
    executed: Vec<u64>,
    moves: Vec<Move>,
    /// The process whose near cache broke a promise, and the entry, for the violation's story.
    focus: Option<(usize, usize)>,
    /// By process: something happened since the last probe that may give its near cache an
    /// answer or raise its floors (a caller of it moved, its tracking moved, it crashed). A
    /// reply delivered or a request run does neither; time passing is seen from the clock.
    touched: Vec<bool>,
    /// The time of the last probe.
    probed_at: Instant,
    /// The server's operations run so far (each one's number).
    operations: u64,
    /// By caller: the number of the last operation of its the server ran, and when.
    ran: Vec<(u64, Instant)>,
    /// By caller: the tracking connection its near fill was sent on (`OPTIN`), if it was.
    on_link: Vec<Option<u64>>,
    /// The run's counts of near fills, added to its coverage at the end.
    pub(super) counts: Coverage,
}

impl State {
    pub(super) fn new(processes: &[SimProcess], setup: &Setup, now: Instant) -> Self {
        let slots = TAGS.len() + ENTRIES.len();
        Self {
            trackers: processes
                .iter()
                .enumerate()
                .map(|(at, process)| {
                    let near = process.near()?;
                    Some(Tracker::new(
                        setup.optins[at],
                        setup.prefixes.clone(),
                        near,
                        now,
                    ))
                })
                .collect(),
            checker: NearChecker::new(processes.len(), slots, ENTRIES.len(), now),
            executed: vec![0; slots],
            moves: Vec::new(),
            focus: None,
            touched: vec![true; processes.len()],
            probed_at: now,
            operations: 0,
            ran: Vec::new(),
            on_link: Vec::new(),
            counts: Coverage::default(),
        }
    }
}

/// What an operation about to run changes, for the messages the server sends when it has.
pub(super) struct Change {
    /// The keys it writes.
    keys: Vec<String>,
    /// Only if the server replies that it wrote (`WriteUnlessDeleted`).
    if_written: bool,
    /// The entries written, and for how long, or deleted (`None`).
    entries: Vec<(usize, Option<Option<Duration>>)>,
}

impl Change {
    /// What `operation` will change (`None`: nothing, a read or the lock's keys).
    pub(super) fn of(
        setup: &Setup,
        entries: &[EntryKeys],
        server: &mut Server,
        operation: &Operation<'_>,
        now: Instant,
    ) -> Option<Self> {
        let entry_of = |key: &str| entries.iter().position(|entry| entry.entry.as_str() == key);
        let change = match operation {
            Operation::Invalidate { tags, .. } => Self {
                keys: tags
                    .iter()
                    .map(|(tag, _)| tag.as_str().to_owned())
                    .collect(),
                if_written: false,
                entries: Vec::new(),
            },
            Operation::Delete { entry, .. } => Self {
                keys: vec![(*entry).to_owned()],
                if_written: false,
                entries: entry_of(entry).map(|at| (at, None)).into_iter().collect(),
            },
            Operation::WriteUnlessDeleted {
                entry,
                lifetime,
                stale_window,
                ..
            } => Self {
                keys: vec![(*entry).to_owned()],
                if_written: true,
                entries: entry_of(entry)
                    .map(|at| {
                        let lifetime =
                            lifetime.map(|lifetime| lifetime.saturating_add(*stale_window));
                        (at, Some(lifetime))
                    })
                    .into_iter()
                    .collect(),
            },
            // A `set`: its entries, and the tags the script creates (those with no version; none
            // when it was stamped with versions the near cache knew).
            Operation::WriteStamped {
                writes, lifetime, ..
            }
            | Operation::Write { writes, lifetime } => {
                let tags: Vec<TagKey> = match operation {
                    Operation::WriteStamped { .. } => writes
                        .iter()
                        .flat_map(|write| write.observed.all().map(|(tag, _)| tag.clone()))
                        .collect(),
                    _ => Vec::new(),
                };
                let mut keys = missing_tags(server, &tags, now)?;
                keys.sort();
                keys.dedup();
                keys.extend(writes.iter().map(|write| write.entry.to_owned()));
                Self {
                    keys,
                    if_written: false,
                    entries: writes
                        .iter()
                        .filter_map(|write| entry_of(write.entry))
                        .map(|at| (at, Some(*lifetime)))
                        .collect(),
                }
            }
            // `SET NX`: only the tags that did not exist are written (and announced).
            Operation::CreateTags { tags, .. } => {
                let keys: Vec<_> = tags.iter().map(|(tag, _)| tag.clone()).collect();
                Self {
                    keys: missing_tags(server, &keys, now)?,
                    if_written: false,
                    entries: Vec::new(),
                }
            }
            _ => return None,
        };
        let tracked = |key: &String| setup.prefixes.iter().any(|prefix| key.starts_with(prefix));
        Some(Self {
            keys: change.keys.into_iter().filter(tracked).collect(),
            ..change
        })
    }
}

impl Change {
    /// The server evicted `key`: Redis tells the clients tracking it, as for a write.
    pub(super) fn evicted(setup: &Setup, entries: &[EntryKeys], key: &str) -> Option<Self> {
        let tracked = setup
            .prefixes
            .iter()
            .any(|prefix| key.starts_with(prefix.as_str()));
        tracked.then(|| Self {
            keys: vec![key.to_owned()],
            if_written: false,
            entries: entries
                .iter()
                .position(|entry| entry.entry.as_str() == key)
                .map(|at| (at, None))
                .into_iter()
                .collect(),
        })
    }
}

/// Which of `tags` have no version on the server now (the ones a script creates).
fn missing_tags(server: &mut Server, tags: &[TagKey], now: Instant) -> Option<Vec<String>> {
    let read = Operation::ReadTags { tags, ttls_of: &[] };
    let versions = match server.execute(usize::MAX, read, now).pop() {
        Some((_, Ok(Reply::Versions(versions)))) => versions,
        _ => return None,
    };
    Some(
        tags.iter()
            .zip(versions)
            .filter(|(_, version)| version.is_none())
            .map(|(tag, _)| tag.as_str().to_owned())
            .collect(),
    )
}

impl Sim<'_> {
    /// The virtual time the near caches read (`clock::now` on this thread).
    pub(super) fn near_clock(&self) {
        crate::clock::set_virtual(Some(self.now));
    }

    /// What the trackers can do now, as scheduler events.
    pub(super) fn near_events(&mut self) {
        let now = self.now;
        let near = &mut self.near;
        for (process, tracker) in near.trackers.iter().enumerate() {
            let Some(tracker) = tracker else {
                continue;
            };
            near.moves.clear();
            tracker.moves(now, &mut near.moves);
            self.events
                .extend(near.moves.iter().map(|&step| Event::Track(process, step)));
        }
    }

    /// Makes `process`'s tracker move.
    pub(super) fn track(
        &mut self,
        process: usize,
        step: Move,
        run: &mut Run,
    ) -> Result<(), String> {
        let Some(tracker) = self.near.trackers[process].as_mut() else {
            return Ok(());
        };
        self.near.touched[process] = true;
        // A connection is refused now and then (a set-up that fails: the session backs off).
        let refused = matches!(step, Move::Step) && self.rng.one_in(REFUSED_ONE_IN);
        let moved = tracker.make(step, self.now, &self.near.executed, refused);
        run.coverage.refused_connections += u64::from(moved.refused);
        if !moved.line.is_empty() {
            self.note(format!("p{process} tracking {}", moved.line));
        }
        if let Some(push) = moved.applied {
            run.coverage.pushes_applied += 1;
            self.near.checker.learned(process, &push.floors);
            self.near
                .checker
                .told(process, push.entries.iter().copied(), push.change, self.now);
        }
        if let Some(current) = moved.up {
            run.coverage.tracking_ons += 1;
            self.near.checker.tracking_on(process, &current);
            // Everything kept before was dropped: every change so far is as good as told.
            let so_far = self.near.operations;
            self.near
                .checker
                .told(process, 0..ENTRIES.len(), so_far, self.now);
        }
        match moved.unexpected {
            Some(what) => Err(what),
            None => Ok(()),
        }
    }

    /// A fault now and then: a process's tracking connection drops. True when one did.
    pub(super) fn near_fault(&mut self, coverage: &mut Coverage) -> bool {
        if !self.rng.one_in(DISCONNECT_ONE_IN) {
            return false;
        }
        let process = self.rng.below(self.near.trackers.len() as u64) as usize;
        // What was already on its way may still arrive: none, one or two things.
        let arriving = self.rng.below(3) as usize;
        let Some(lost) = self.near.trackers[process]
            .as_mut()
            .and_then(|tracker| tracker.disconnect(arriving))
        else {
            return false;
        };
        self.note(format!(
            "p{process} tracking: its connection drops ({lost} messages on the way lost)"
        ));
        coverage.disconnects += 1;
        coverage.pushes_lost += lost;
        true
    }

    /// The server ran `client`'s operation, which makes `change` (with these replies): the
    /// messages it announces, and what the checker learns of it.
    pub(super) fn near_changed(
        &mut self,
        client: Option<Client>,
        change: Option<Change>,
        written: bool,
    ) {
        self.near.operations += 1;
        let number = self.near.operations;
        if let Some(client) = client {
            if self.near.ran.len() <= client {
                self.near.ran.resize(client + 1, (0, self.now));
            }
            self.near.ran[client] = (number, self.now);
        }
        let Some(change) = change else {
            return;
        };
        if change.if_written && !written {
            return;
        }
        let floors = match client.and_then(|client| self.callers[client].active.as_ref()) {
            Some(Active::Invalidate { bumped, .. }) => bumped.clone(),
            Some(Active::Delete { bumped, .. }) => vec![*bumped],
            _ => Vec::new(),
        };
        for &(slot, version) in &floors {
            let executed = &mut self.near.executed[slot];
            *executed = (*executed).max(version);
        }
        for &(entry, lifetime) in &change.entries {
            let expires = lifetime.map(|lifetime| lifetime.map(|lifetime| self.now + lifetime));
            // A value that never expires, or a delete: no deadline to check.
            self.near.checker.written(entry, expires.flatten());
        }
        if change.keys.is_empty() {
            return;
        }
        let setup = &self.world.near;
        for tracker in self.near.trackers.iter_mut().flatten() {
            let Some(keys) = tracker.announced(&change.keys) else {
                continue;
            };
            let floors = floors
                .iter()
                .copied()
                .filter(|&(slot, _)| keys.contains(&setup.slot_keys[slot]))
                .collect();
            tracker.announce(&Rc::new(Push {
                label: setup.label(Some(&keys)),
                change: number,
                entries: setup.entries(Some(&keys)),
                keys: Some(keys),
                floors,
            }));
        }
    }

    /// `FLUSHALL`: a message with a null key list to every tracking connection.
    pub(super) fn near_flushed(&mut self) {
        self.near.checker.keys_lost();
        self.near.operations += 1;
        let push = Rc::new(Push {
            keys: None,
            floors: self.near.executed.iter().copied().enumerate().collect(),
            label: self.world.near.label(None),
            change: self.near.operations,
            entries: self.world.near.entries(None),
        });
        for tracker in self.near.trackers.iter_mut().flatten() {
            tracker.announce(&push);
        }
    }

    /// The server restarts: every tracking connection drops, what was on its way is lost.
    pub(super) fn near_restarted(&mut self, coverage: &mut Coverage) {
        self.near.checker.keys_lost();
        for tracker in self.near.trackers.iter_mut().flatten() {
            if let Some(lost) = tracker.disconnect(0) {
                coverage.pushes_lost += lost;
            }
        }
    }

    /// `process` crashed: it starts again with an empty near cache that is not trusted (the
    /// same one, distrusted, is that), and a new tracking session.
    pub(super) fn near_crashed(&mut self, process: usize) {
        let Some(near) = self.world.processes[process].near() else {
            return;
        };
        near.distrust();
        self.near.touched[process] = true;
        // A new process: nothing it holds may predate its start.
        let so_far = self.near.operations;
        self.near
            .checker
            .told(process, 0..ENTRIES.len(), so_far, self.now);
        let setup = &self.world.near;
        self.near.trackers[process] = Some(Tracker::new(
            setup.optins[process],
            setup.prefixes.clone(),
            near,
            self.now,
        ));
    }

    /// A reply reached `client`: the real drivers drop from the near cache what the operation
    /// sent changed, before the call goes on (`TaggedCache::received`).
    pub(super) fn near_replied(&mut self, client: Client) {
        let caller = &self.callers[client];
        let Some(near) = self.world.processes[caller.process].near() else {
            return;
        };
        let world = self.world;
        // A `set`'s write is made where the server runs it: here, its entries are what counts.
        let set: Vec<EntryWrite<'_>> = match &caller.active {
            Some(Active::LowLevel(LowLevel::Set { entries, .. })) => entries
                .iter()
                .map(|&entry| EntryWrite::unstamped(&world.plain[entry], b""))
                .collect(),
            _ => Vec::new(),
        };
        let operation = match &caller.active {
            Some(Active::Read(reading)) => reading.flow.operation(),
            Some(Active::LowLevel(LowLevel::Get { flow, .. })) => flow.operation(),
            Some(Active::LowLevel(LowLevel::Set { .. })) => Some(Operation::Write {
                writes: &set,
                lifetime: None,
            }),
            Some(Active::Invalidate { tags, .. }) => Some(Operation::Invalidate {
                tags,
                lifetime: None,
            }),
            Some(Active::Delete {
                entry, tombstone, ..
            }) => Some(Operation::Delete {
                entry: &world.entries[*entry].entry,
                tombstone,
                lifetime: None,
            }),
            None => None,
        };
        if let Some(operation) = operation {
            near.changed_by(&operation);
            // Whatever it kept of these keys is gone: every change so far is as good as told.
            let keys: Vec<String> = operation
                .changed_keys()
                .into_iter()
                .map(str::to_owned)
                .collect();
            if !keys.is_empty() {
                let entries = self.world.near.entries(Some(&keys));
                let so_far = self.near.operations;
                self.near
                    .checker
                    .told(caller.process, entries, so_far, self.now);
            }
        }
    }

    /// `caller` sent its request: a near fill (a read asking for the keys' times to live)
    /// goes to its process's tracking connection when that is lent (`OPTIN`, tracking up), as
    /// `RedisStore` sends it there, and then not on the data connection: true.
    pub(super) fn near_sent(&mut self, caller: usize) -> bool {
        if self.near.on_link.len() <= caller {
            self.near.on_link.resize(caller + 1, None);
        }
        let process = self.callers[caller].process;
        let fill = matches!(
            self.read_operation(caller),
            Some(Operation::Read { expiry: true, .. })
        );
        let lent = self.near.trackers[process]
            .as_ref()
            .and_then(Tracker::lent)
            .filter(|_| fill && !crate::mutants::active(crate::mutants::Mutant::Untracked));
        self.near.on_link[caller] = lent;
        if let Some(number) = lent {
            self.note(format!(
                "c{caller:<2} sends its near fill on p{process}'s tracking connection #{number}"
            ));
        }
        lent.is_some()
    }

    /// The server ran `client`'s read, a near fill of `keys` (the entry's and its tags'), with
    /// these `replies`: the server tracks the keys for the tracking connection the fill was sent
    /// on. A fill that was not (no connection lent, or it has closed since) is read on a data
    /// connection without asking for times to live, as `RedisStore` does: its reply is never
    /// kept near.
    pub(super) fn near_fill_ran(
        &mut self,
        client: Client,
        keys: &[String],
        replies: &mut [(Client, super::Received)],
    ) {
        let process = self.callers[client].process;
        let Some(tracker) = self.near.trackers[process].as_mut() else {
            return;
        };
        let tracked = match self.near.on_link.get(client).copied().flatten() {
            Some(number) => tracker.read_on(number, keys),
            None => false,
        };
        self.near.counts.fills_tracked += u64::from(tracked);
        let untracked = crate::mutants::active(crate::mutants::Mutant::Untracked);
        if tracked || !tracker.optin() || untracked {
            return;
        }
        self.near.counts.fills_unkept += 1;
        for (to, reply) in replies.iter_mut() {
            if let (true, Ok(Reply::Read(read))) = (*to == client, reply) {
                read.expiry = crate::engine::Expiry::Unknown;
            }
        }
    }

    /// The keys of `entry` a change to which would not reach `process`'s near cache (`OPTIN`:
    /// not tracked for its connection, and no message naming them on the way): none may when
    /// it answers `entry` near.
    fn untracked(&self, process: usize, entry: usize) -> Option<String> {
        let tracker = self.near.trackers[process].as_ref()?;
        let key = self.world.near.depends[entry]
            .iter()
            .find(|key| !tracker.covers(key))?;
        Some(format!(
            "promise 5: process {process} answered entry {entry} from its near cache, but the \
             server would announce no change to its key {} to the process (its tracking \
             connection does not track it, and no message naming it is on the way)",
            self.world.near.label(Some(std::slice::from_ref(key)))
        ))
    }

    /// `caller` returned the value of `entry` that its last read found: its process may keep
    /// it near.
    pub(super) fn near_returned(&mut self, caller: usize, entry: usize) {
        let Some(&(read, at)) = self.near.ran.get(caller) else {
            return;
        };
        let process = self.callers[caller].process;
        self.near.checker.read(process, entry, read, at);
    }

    /// `caller` moves: its process's near cache may gain an answer (a read kept), or its floors
    /// rise (an invalidation returned).
    pub(super) fn near_touched(&mut self, caller: usize) {
        self.near.touched[self.callers[caller].process] = true;
    }

    /// `caller`'s invalidation (or delete) of these versions returned: its own process sees it
    /// at once.
    pub(super) fn near_invalidated(&mut self, caller: usize, versions: &[(usize, u64)]) {
        let process = self.callers[caller].process;
        self.near.checker.learned(process, versions);
    }

    /// Promise 5 after every step: what each process's near cache would answer now for each
    /// entry, were it asked (a lookup changes nothing a call could see).
    pub(super) fn near_probe(&mut self, run: &mut Run) -> Result<(), String> {
        let moved = std::mem::replace(&mut self.near.probed_at, self.now) != self.now;
        // The step may have moved time.
        self.near_clock();
        let world = self.world;
        for (process, tracker) in self.near.trackers.iter().enumerate() {
            let touched = std::mem::take(&mut self.near.touched[process]);
            let Some(tracker) = tracker.as_ref().filter(|_| touched || moved) else {
                continue;
            };
            let near = world.processes[process].near();
            if near.is_none_or(|near| near.is_empty()) {
                continue;
            }
            for entry in 0..ENTRIES.len() {
                let named = world.near.named(entry);
                let Some(data) = world.processes[process].near_hit(&named, &world.codec) else {
                    continue;
                };
                run.coverage.near_answers += 1;
                if let Some(what) = self.untracked(process, entry) {
                    self.near.focus = Some((process, entry));
                    return Err(what);
                }
                let slots: SmallVec<[usize; 4]> = slots(entry).collect();
                let max_age = world.near.max_ages[process];
                let checked = self
                    .near
                    .checker
                    .hit(process, tracker.up, max_age, entry, &slots, &data, self.now);
                if let Err(what) = checked {
                    self.near.focus = Some((process, entry));
                    return Err(format!(
                        "{what} (would have: the near cache held {data:?} for entry {entry})"
                    ));
                }
            }
        }
        Ok(())
    }

    /// `caller`'s call of `entry`, answered by its process's near cache if it holds the entry:
    /// checked, and counted as a call. `None`: not answered near.
    pub(super) fn near_call(
        &mut self,
        caller: usize,
        entry: usize,
        run: &mut Run,
    ) -> Option<Result<(), String>> {
        let process = self.callers[caller].process;
        let world = self.world;
        let data = world.processes[process].near_hit(&world.near.named(entry), &world.codec)?;
        run.calls += 1;
        run.coverage.near_hits += 1;
        self.note(format!(
            "c{caller:<2} calls entry {entry}: a near hit, {data:?}"
        ));
        if let Some(what) = self.untracked(process, entry) {
            self.near.focus = Some((process, entry));
            return Some(Err(what));
        }
        let up = self.near.trackers[process]
            .as_ref()
            .is_some_and(|tracker| tracker.up);
        let slots: Vec<usize> = slots(entry).collect();
        let max_age = world.near.max_ages[process];
        let checked = self
            .near
            .checker
            .hit(process, up, max_age, entry, &slots, &data, self.now);
        if checked.is_err() {
            self.near.focus = Some((process, entry));
        }
        Some(checked)
    }

    /// When a near cache broke a promise: what its process did with the entry since a caller
    /// of it last read the entry from Redis (the read that kept it, most likely), with its
    /// tracking, the server's events and the invalidations meanwhile (kept steps only).
    pub(super) fn near_story(&self) -> Option<Vec<String>> {
        let (process, entry) = self.near.focus?;
        let callers: Vec<usize> = (0..self.callers.len())
            .filter(|&at| self.callers[at].process == process)
            .collect();
        let mine: Vec<(String, String)> = callers
            .iter()
            .map(|at| (format!("c{at:<2} "), format!("c{at}'s ")))
            .collect();
        let tracking = format!("p{process} tracking");
        let read = format!("calls entry {entry},");
        let read_locked = format!("calls entry {entry} (lock)");
        let start = self
            .trace
            .iter()
            .rposition(|line| {
                (line.contains(&read) || line.contains(&read_locked))
                    && mine.iter().any(|(me, _)| line.contains(me.as_str()))
            })
            .unwrap_or(0);
        let relevant = |line: &&String| {
            mine.iter()
                .any(|(me, its)| line.contains(me.as_str()) || line.contains(its.as_str()))
                || line.contains(&tracking)
                || line.contains("server:")
                || line.contains("Invalidate")
                || line.contains("'s Delete")
                || line.contains("crashes")
                || line.contains("writes")
                || line.contains("invalidation returned")
        };
        Some(
            self.trace
                .iter()
                .skip(start)
                .filter(relevant)
                .cloned()
                .collect(),
        )
    }
}

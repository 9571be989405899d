//! One decorated call as a state machine: look the entry up, and on a miss compute and store it,
//! with `lock = true` coalescing callers in the process and across processes (`lock.rs`).
//!
//! The machine is a [`Flow`] whose output is what the driver must do next besides round trips
//! ([`Yield`]): wait for another caller of this process, run the function, or return. It never
//! blocks, awaits or touches a connection, so the same code serves `Call::run` and
//! `Call::run_async`. Each state has a handler that says what comes next ([`Next`]).
//!
//! With a stale option (`stale.rs`), reads date the entry too: an entry past its lifetime
//! whose tags are all current is returned at once with `stale_while_revalidate` (when the call
//! leads the entry's flight, the driver refreshes it in the background, in
//! [`Mode::Revalidate`]), and kept in mind otherwise: a
//! computation that fails (or times out) reads the entry again and returns it if it is still
//! current and within `stale_if_error` (`fallback.rs`).

mod fallback;
mod host;
mod lock;

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::outcome::ValueCodec;
use super::stale::Windows;
use super::Report;
use crate::cache::flights::{Flight, Landing, Leader};
use crate::engine::{CreateTagsFlow, Flow, Lookup, Operation, Progress, ReadFlow, Received, Reply};
use crate::format::{EntryKeys, LockKeys, Observed};
use crate::lifetime::Lifetime;
use crate::near::{Fill, Named};

pub(crate) use self::host::{Counted, Host};

/// What the driver does next, besides round trips.
pub(super) enum Yield<V> {
    /// Wait until the flight lands or the deadline passes; then [`CallFlow::landed`].
    Follow(Arc<Flight>, Instant),
    /// Run the function; then [`CallFlow::computed`] with its cacheable value's bytes. With a
    /// time limit (`stale_if_slow`, a stale value in hand), the driver may run it on its own
    /// and stop waiting for it after that long: then [`CallFlow::late`].
    Compute(Option<Duration>),
    /// The computation is late: offer it these versions to stamp its value with when it is
    /// done, and store it itself; then [`CallFlow::handed_over`] if it took them, else (it
    /// finished meanwhile) [`CallFlow::computed`] with what it gave.
    HandOver(Option<Observed>),
    /// Return this value (from the cache, or from another caller's computation).
    Cached(V),
    /// Return this stale value at once, and refresh the entry in the background
    /// (`stale_while_revalidate`), on a thread or task of its own: this caller leads the
    /// entry's flight, and hands it to the refresh ([`CallFlow::refreshing`]). A stale hit on
    /// an entry whose flight is in the air already is [`Yield::Cached`]: someone computes it.
    /// The leader is boxed, as this rare yield would otherwise make every yield larger.
    Revalidate(V, Box<Leader>),
    /// Return this value from the cache instead of what the function returned: it failed or
    /// timed out (`stale_if_error`).
    Instead(V),
    /// Return what was computed: everything is stored and released.
    Finished,
    /// Wait for the computation that was handed over, without a time limit, and return what
    /// it gives (it stores its value itself): no stale value could stand in after all.
    Join,
}

impl<V> Yield<V> {
    /// Its name, for a report.
    pub(super) fn name(&self) -> &'static str {
        match self {
            Yield::Follow(..) => "Follow",
            Yield::Compute(_) => "Compute",
            Yield::HandOver(_) => "HandOver",
            Yield::Cached(_) => "Cached",
            Yield::Revalidate(..) => "Revalidate",
            Yield::Instead(_) => "Instead",
            Yield::Finished => "Finished",
            Yield::Join => "Join",
        }
    }
}

/// How the call uses the cache.
#[derive(Clone, Copy, Debug)]
pub(super) enum Mode {
    /// A hit returns the cached value; a miss computes.
    Run { lock_timeout: Option<Duration> },
    /// Always compute and store (`refresh_<fn>`).
    Refresh,
    /// A background refresh of a stale entry, leading its flight from the start (the stale hit
    /// that started it joined it): compute and store unless another process holds its lock
    /// (`lock_timeout`), or the entry turns out to be fresh already.
    Revalidate { lock_timeout: Option<Duration> },
}

/// A Redis lock this call holds: what it takes to release it.
#[derive(Clone, Debug)]
pub(super) struct HeldLock {
    pub keys: LockKeys,
    pub token: [u8; 8],
    pub lifetime: Duration,
}

impl HeldLock {
    pub(super) fn release(&self) -> Operation<'_> {
        Operation::Release {
            lock: &self.keys,
            token: &self.token,
            lifetime: self.lifetime,
        }
    }
}

/// Where a call is. A hit moves its state at each of its steps, so the payloads of rare states
/// that would make every state larger are boxed (tag creation's flow; a read's own, in
/// [`ReadFlow`]): a state that fits in 128 bytes is moved without a call to `memcpy`.
enum State<'a, V> {
    Start,
    /// The first lookup (counted as the call's hit or miss).
    Looking(ReadFlow<'a>),
    /// With `lock = true`: join this process's computation of the entry, or lead it.
    Joining,
    /// A leader on a backend no other process shares reads again (a leader may have just landed).
    Rechecking(ReadFlow<'a>),
    /// `Acquire` sent: take the Redis lock and read the entry.
    Acquiring,
    /// Finishing the read that came with `Acquire`.
    Completing {
        read: ReadFlow<'a>,
        holder: Option<Vec<u8>>,
        lock_ttl: Duration,
    },
    /// The lock's holder found the value after all and releases the lock before returning it.
    ReleasingAfterHit(V),
    /// `WaitForWake` sent: another process holds the lock.
    Waiting {
        holder: Vec<u8>,
        expires: Instant,
        since: Instant,
        timeout: Duration,
    },
    /// Waiting (in the driver) for this process's leader.
    Following {
        flight: Arc<Flight>,
        since: Instant,
    },
    /// A follower reads the entry its leader stored, whose stamp it could not judge.
    Rereading(ReadFlow<'a>),
    /// Giving versions to tags that have none, before computing (boxed: see [`State`]).
    CreatingTags(Box<CreateTagsFlow>),
    /// Everything is ready: the driver is to run the function.
    ReadyToCompute,
    /// The driver is running the function.
    Computing,
    /// The driver offers a late computation the versions to store its value with.
    HandingOver,
    /// The simulator's `stamp` mutant: reading the versions again after computing, to stamp
    /// the value with them instead of those read before.
    #[cfg(feature = "simulation")]
    Restamping(ReadFlow<'a>),
    /// `WriteUnlessDeleted` sent.
    Storing,
    /// `Release` sent after storing.
    Releasing,
    /// The function failed: reading the entry again, to return it instead if it is current.
    FallingBack(ReadFlow<'a>),
    Finished,
}

/// What a state's handler decides.
enum Next<'a, V> {
    /// Go on to this state at once (no reply to wait for).
    Then(State<'a, V>),
    /// Enter this state and send its operation.
    Send(State<'a, V>),
    /// Enter this state and hand this to the driver.
    Yield(Yield<V>, State<'a, V>),
}

/// One decorated call's protocol.
pub(super) struct CallFlow<'a, V, H> {
    host: &'a H,
    keys: &'a EntryKeys,
    codec: &'a ValueCodec<V>,
    mode: Mode,
    lifetime: Lifetime,
    windows: Windows,
    /// True once a read found the entry past its lifetime, within `stale_if_error`.
    stale_seen: bool,
    /// True when the function returned no value to cache because it failed (or timed out).
    failed: bool,
    /// True once the entry was read again after a failure.
    fell_back: bool,
    /// True once the driver said the computation is late ([`CallFlow::late`]).
    late: bool,
    /// True once a late computation took over storing its value.
    handed_over: bool,
    /// When the driver was asked to run the function.
    computing_since: Instant,
    /// What the call found and did, for the hook.
    pub(super) report: Report,
    /// The tag versions read before computing (`None`: the backend could not be read).
    observed: Option<Observed>,
    /// When a `lock = true` caller stops waiting for others and computes by itself.
    deadline: Instant,
    leader: Option<Leader>,
    /// What the leader leaves for its followers when it is done.
    landing: Option<Landing>,
    lock: Option<HeldLock>,
    /// True while this call holds `lock` in Redis.
    holding: bool,
    /// A wake-up token to pass on to the next waiter.
    baton: Option<Vec<u8>>,
    /// The landing a follower received.
    landed: Option<Option<Landing>>,
    /// The computed value's bytes, if it is to be cached.
    computed: Option<Vec<u8>>,
    /// What the first lookup's value is kept under in the near cache, if anything.
    named: Option<Named<'a, String>>,
    /// The first lookup, registered as a near-cache fill before it is sent.
    fill: Option<Fill>,
    state: State<'a, V>,
}

impl<'a, V, H: Host> CallFlow<'a, V, H> {
    /// A call of the entry `keys` in `host`, its report begun.
    pub(super) fn new(
        host: &'a H,
        keys: &'a EntryKeys,
        codec: &'a ValueCodec<V>,
        mode: Mode,
        lifetime: Lifetime,
        windows: Windows,
        report: Report,
    ) -> Self {
        let started = report.started;
        Self {
            host,
            keys,
            codec,
            mode,
            lifetime,
            windows,
            stale_seen: false,
            failed: false,
            fell_back: false,
            late: false,
            handed_over: false,
            computing_since: started,
            report,
            observed: None,
            // Set when a `lock = true` miss starts waiting; a hit never reads it.
            deadline: started,
            leader: None,
            landing: None,
            lock: None,
            holding: false,
            baton: None,
            landed: None,
            computed: None,
            named: None,
            fill: None,
            state: State::Start,
        }
    }

    /// The protocol of a background refresh (`Mode::Revalidate`), leading the flight its stale
    /// hit joined.
    pub(super) fn refreshing(mut self, leader: Leader) -> Self {
        self.leader = Some(leader);
        self
    }

    /// Keeps the value the first lookup finds in the near cache, under `named`.
    pub(super) fn fill_near(&mut self, named: Option<Named<'a, String>>) {
        self.named = named;
    }

    /// The lifetime the call stores its value with.
    pub(super) fn lifetime(&self) -> Lifetime {
        self.lifetime
    }

    /// The call's stale windows.
    pub(super) fn windows(&self) -> Windows {
        self.windows
    }

    /// What a follower's wait for its leader returned (`None`: the deadline passed).
    pub(super) fn landed(&mut self, landing: Option<Landing>) {
        self.landed = Some(landing);
    }

    /// The function ran: here are its cacheable value's bytes (`None`: nothing to cache), and
    /// whether it failed (`Err` or `None`).
    pub(super) fn computed(&mut self, bytes: Option<Vec<u8>>, failed: bool) {
        self.computed = bytes;
        self.failed = failed;
    }

    /// The driver stopped waiting for a computation started with [`Yield::Compute`]'s time
    /// limit.
    pub(super) fn late(&mut self) {
        self.late = true;
    }

    /// The late computation took the versions [`Yield::HandOver`] offered: it stores its value
    /// itself. The call goes on as after a failure: it releases what it holds, and returns the
    /// stale value if it is still current.
    pub(super) fn handed_over(&mut self) {
        self.handed_over = true;
        self.computed(None, true);
    }

    /// The lock this call holds, when it is abandoned (a panic, a cancelled future) before
    /// releasing it: the driver releases it so that waiters elsewhere wake at once.
    pub(super) fn abandon(&mut self) -> Option<HeldLock> {
        if !self.holding {
            return None;
        }
        self.holding = false;
        self.lock.take()
    }

    /// Runs the handler of `state`.
    fn handle(
        &mut self,
        state: State<'a, V>,
        reply: Option<Received>,
        now: Instant,
    ) -> Next<'a, V> {
        match state {
            State::Start if matches!(self.mode, Mode::Revalidate { .. }) => self.lead(),
            State::Start => {
                self.fill = self.host.near_fill(self.named.as_ref(), self.keys);
                let read = self.read_flow().asking_expiry(self.fill.is_some());
                Next::Then(State::Looking(read))
            }
            State::Looking(mut read) => match read.advance(reply) {
                Progress::Send => Next::Send(State::Looking(read)),
                Progress::Done(lookup) => self.looked_up(lookup, now),
            },
            State::Joining => self.join(now),
            State::Rechecking(mut read) => match read.advance(reply) {
                Progress::Send => Next::Send(State::Rechecking(read)),
                Progress::Done(lookup) => self.rechecked(lookup),
            },
            State::Acquiring => self.acquired(reply),
            State::Completing {
                mut read,
                holder,
                lock_ttl,
            } => match read.advance(reply) {
                Progress::Send => Next::Send(State::Completing {
                    read,
                    holder,
                    lock_ttl,
                }),
                Progress::Done(lookup) => self.completed(lookup, holder, lock_ttl, now),
            },
            State::ReleasingAfterHit(value) => match reply {
                None => Next::Send(State::ReleasingAfterHit(value)),
                Some(_) => {
                    self.holding = false;
                    let landing = self.landing.take().unwrap_or(Landing::Nothing);
                    self.cached(value, landing)
                }
            },
            State::Waiting {
                holder,
                expires,
                since,
                timeout,
            } => self.woken(reply, holder, expires, since, timeout, now),
            State::Following { flight, since } => self.followed(flight, since, now),
            State::Rereading(mut read) => match read.advance(reply) {
                Progress::Send => Next::Send(State::Rereading(read)),
                Progress::Done(lookup) => self.reread(lookup, now),
            },
            State::CreatingTags(mut creating) => match creating.advance(reply) {
                Progress::Send => Next::Send(State::CreatingTags(creating)),
                Progress::Done(observed) => {
                    self.observed = observed;
                    Next::Then(State::ReadyToCompute)
                }
            },
            State::ReadyToCompute => {
                self.computing_since = now;
                Next::Yield(Yield::Compute(self.compute_timeout()), State::Computing)
            }
            State::Computing if self.late => {
                let observed = self.observed.clone();
                Next::Yield(Yield::HandOver(observed), State::HandingOver)
            }
            State::Computing | State::HandingOver => {
                self.late = false;
                self.report.info.decorated_elapsed =
                    now.saturating_duration_since(self.computing_since);
                // A call older than a tombstone's lifetime may have read before a delete
                // whose tombstone has expired since: its value could bring the entry back.
                let age = now.saturating_duration_since(self.report.started);
                if age >= self.host.tombstone_lifetime() && self.computed.is_some() {
                    tracing::warn!(
                        "rtc: a value computed over {age:?} is not stored: the call outlived \
                         the tombstones of deleted entries ({:?})",
                        self.host.tombstone_lifetime()
                    );
                    return self.stored();
                }
                match (&self.observed, &self.computed) {
                    (Some(_), Some(bytes)) => {
                        self.report.stored(bytes);
                        #[cfg(feature = "simulation")]
                        if crate::mutants::active(crate::mutants::Mutant::Stamp) {
                            return Next::Then(State::Restamping(self.read_flow()));
                        }
                        Next::Send(State::Storing)
                    }
                    _ => self.stored(),
                }
            }
            #[cfg(feature = "simulation")]
            State::Restamping(mut read) => match read.advance(reply) {
                Progress::Send => Next::Send(State::Restamping(read)),
                Progress::Done(lookup) => {
                    self.observed = lookup.into_observed();
                    match self.observed {
                        Some(_) => Next::Send(State::Storing),
                        None => self.stored(),
                    }
                }
            },
            State::Storing => {
                let written =
                    reply.is_some_and(|reply| reply.and_then(Reply::into_done).unwrap_or(false));
                if written {
                    self.host.count(Counted::Write);
                }
                self.stored()
            }
            State::Releasing => match reply {
                None => Next::Send(State::Releasing),
                Some(_) => {
                    self.holding = false;
                    self.finish()
                }
            },
            State::FallingBack(mut read) => match read.advance(reply) {
                Progress::Send => Next::Send(State::FallingBack(read)),
                Progress::Done(lookup) => self.fell_back(lookup),
            },
            State::Finished => Next::Yield(Yield::Finished, State::Finished),
        }
    }

    /// The first lookup: a hit is returned; a miss goes on to compute (through the lock when
    /// there is one).
    fn looked_up(&mut self, lookup: Lookup, now: Instant) -> Next<'a, V> {
        if matches!(lookup, Lookup::Unavailable) {
            tracing::debug!(
                function = self.report.info.function_name,
                "rtc: cache unavailable, bypassing it"
            );
        }
        let lock_timeout = match self.mode {
            Mode::Refresh | Mode::Revalidate { .. } => {
                self.observed = lookup.into_observed();
                return self.prepare_to_compute();
            }
            Mode::Run { lock_timeout } => lock_timeout,
        };
        let lookup = match lookup {
            Lookup::Stale(payload, observed, overdue) => {
                match self.stale_at_once(payload, observed, overdue) {
                    Ok(revalidate) => return revalidate,
                    Err(miss) => miss,
                }
            }
            lookup => lookup,
        };
        match self.decoded(lookup) {
            Ok((value, _)) => {
                self.report.info.lock_full_hit = lock_timeout.is_some();
                return Next::Yield(Yield::Cached(value), State::Finished);
            }
            Err(observed) => self.observed = observed,
        }
        match lock_timeout {
            Some(timeout) => {
                self.deadline = now + timeout;
                Next::Then(State::Joining)
            }
            None => self.prepare_to_compute(),
        }
    }

    /// The value of a hit, with what a leader lands for its followers (nothing when this call
    /// leads none); or the versions the read observed, to stamp a computed value with.
    fn decoded(&mut self, lookup: Lookup) -> Result<(V, Landing), Option<Observed>> {
        match lookup {
            Lookup::Hit(bytes, observed) => match self.host.decode(self.codec, &bytes) {
                Some(value) => {
                    self.report.hit(&bytes);
                    if let (Some(fill), Some(sharing)) = (self.fill.take(), self.codec.sharing()) {
                        let kept = (sharing.keep)(&value);
                        self.host
                            .keep_decoded(fill, kept, bytes.expiry(), &observed);
                    }
                    // Only a leader has followers to hand the value to: a plain hit copies nothing.
                    let landing = match self.leader {
                        Some(_) => Landing::new(Some(bytes.into_vec()), Some(observed)),
                        None => Landing::Nothing,
                    };
                    Ok((value, landing))
                }
                None => Err(Some(observed)),
            },
            Lookup::Stale(_, observed, overdue) => {
                self.stale_seen |= fallback::within(self.windows.if_error, overdue);
                Err(Some(observed))
            }
            Lookup::Miss(observed) => Err(Some(observed)),
            Lookup::Unavailable => Err(None),
        }
    }

    /// The entry's read, dating it when the call has a stale option.
    fn read_flow(&self) -> ReadFlow<'a> {
        ReadFlow::new(self.host.key_space(), self.keys).asking_ttl(self.windows.any())
    }

    /// Versions observed by a later read replace earlier ones; a failed read keeps them.
    fn observe(&mut self, fresh: Option<Observed>) {
        if fresh.is_some() {
            self.observed = fresh;
        }
    }

    /// Before computing: tag versions are completed first, if the backend could be read.
    fn prepare_to_compute(&mut self) -> Next<'a, V> {
        Next::Then(match self.observed.take() {
            Some(observed) => State::CreatingTags(Box::new(CreateTagsFlow::new(
                observed,
                self.host.tag_lifetime(),
            ))),
            None => State::ReadyToCompute,
        })
    }

    /// After the store (or when there was nothing to store): release the lock, then land.
    fn stored(&mut self) -> Next<'a, V> {
        if self.leader.is_some() {
            self.landing = Some(Landing::computed(
                self.computed.take(),
                self.observed.take(),
                self.computing_since,
            ));
        }
        if self.holding {
            Next::Send(State::Releasing)
        } else {
            self.finish()
        }
    }

    /// Lands what followers receive, and ends the call; after a failure, reads the entry
    /// again first when a stale value may stand in.
    fn finish(&mut self) -> Next<'a, V> {
        if self.falls_back() {
            self.fell_back = true;
            return Next::Then(State::FallingBack(self.read_flow()));
        }
        self.land();
        if self.handed_over {
            return Next::Yield(Yield::Join, State::Finished);
        }
        Next::Yield(Yield::Finished, State::Finished)
    }

    fn land(&mut self) {
        if let Some(leader) = self.leader.take() {
            leader.land(self.landing.take().unwrap_or(Landing::Nothing));
        }
    }

    /// A decorated call is exactly one hit (a value without computing: from the cache, or from
    /// another caller) or one miss (it computes), whatever path it took and on every backend;
    /// `refresh_<fn>` is neither. Lock waits are counted on the side.
    fn count(&self, output: &Yield<V>) {
        match (output, self.mode) {
            (_, Mode::Refresh | Mode::Revalidate { .. }) => {}
            (Yield::Cached(_) | Yield::Revalidate(..), _) => self.host.count(Counted::Hit),
            (Yield::Compute(_), _) => self.host.count(Counted::Miss),
            // Counted as a miss when it computed.
            (Yield::Instead(_), _) => {}
            (Yield::Follow(..) | Yield::HandOver(_) | Yield::Finished | Yield::Join, _) => {}
        }
    }

    /// Returns a value without computing: lands it for followers first.
    fn cached(&mut self, value: V, landing: Landing) -> Next<'a, V> {
        if let Some(leader) = self.leader.take() {
            leader.land(landing);
        }
        Next::Yield(Yield::Cached(value), State::Finished)
    }
}

impl<V, H: Host> CallFlow<'_, V, H> {
    /// One step at `now` (the driver's clock; a simulator's virtual time): with the reply to
    /// the operation it asked for last, if any. It answers "send [`CallFlow::operation`]" or
    /// what the driver is to do next.
    pub(super) fn step(&mut self, now: Instant, reply: Option<Received>) -> Progress<Yield<V>> {
        let mut reply = reply;
        loop {
            let state = std::mem::replace(&mut self.state, State::Finished);
            match self.handle(state, reply.take(), now) {
                Next::Then(state) => self.state = state,
                Next::Send(state) => {
                    self.state = state;
                    return Progress::Send;
                }
                Next::Yield(output, state) => {
                    self.state = state;
                    self.count(&output);
                    return Progress::Done(output);
                }
            }
        }
    }

    /// The operation to send when [`CallFlow::step`] said `Progress::Send`.
    pub(super) fn operation(&self) -> Option<Operation<'_>> {
        match &self.state {
            State::Looking(read)
            | State::Rechecking(read)
            | State::Completing { read, .. }
            | State::Rereading(read)
            | State::FallingBack(read) => read.operation(),
            #[cfg(feature = "simulation")]
            State::Restamping(read) => read.operation(),
            State::CreatingTags(creating) => creating.operation(),
            State::Acquiring => {
                let lock = self.lock.as_ref()?;
                Some(Operation::Acquire {
                    lock: &lock.keys,
                    token: &lock.token,
                    lifetime: lock.lifetime,
                    baton: self.baton.as_deref(),
                    entry: &self.keys.entry,
                    tags: self.keys.tags(),
                    ttl: self.windows.any(),
                })
            }
            State::Waiting { timeout, .. } => Some(Operation::WaitForWake {
                lock: &self.lock.as_ref()?.keys,
                timeout: *timeout,
            }),
            State::Storing => {
                let lifetime = self.host.entry_lifetime(self.lifetime);
                Some(Operation::WriteUnlessDeleted {
                    entry: &self.keys.entry,
                    observed: self.observed.as_ref()?,
                    payload: self.computed.as_deref()?,
                    lifetime,
                    // An entry that never expires has no stale window.
                    stale_window: match lifetime {
                        Some(_) => self.windows.stored(),
                        None => Duration::ZERO,
                    },
                })
            }
            State::ReleasingAfterHit(_) | State::Releasing => Some(self.lock.as_ref()?.release()),
            State::Start
            | State::Joining
            | State::Following { .. }
            | State::ReadyToCompute
            | State::Computing
            | State::HandingOver
            | State::Finished => None,
        }
    }
}

#[cfg(test)]
mod tests;

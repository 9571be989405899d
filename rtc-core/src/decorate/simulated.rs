//! The decorated call's protocol as the simulator (`crate::simulation`) drives it: a [`Host`]
//! per simulated process, and a call whose every step the simulator schedules. This is the
//! real `CallFlow`; only the driver differs from `Call::run`: it never blocks, and its clock
//! is virtual.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::outcome::ValueCodec;
use super::protocol::{CallFlow, Counted, Host, Mode, Yield};
use super::stale::Windows;
use super::Report;
use crate::cache::flights::{Flight, Flights, Joined, Landing};
use crate::codec::Encoding;
use crate::engine::{Expiry, Operation, Progress, Received};
use crate::format::{EntryKeys, KeySpace, Observed};
use crate::hook::CacheInfo;
use crate::lifetime::Lifetime;
use crate::near::{Fill, Named, NearCache};

mod near;

/// What a simulated computation returns: the data version it read for each of its entry's
/// tags.
pub(crate) type Data = Vec<u64>;

/// One simulated process: its flights, sharing the model of Redis with the others.
pub(crate) struct SimProcess {
    keys: KeySpace,
    flights: Flights,
    entry_lifetime: Option<Duration>,
    /// Its near cache, if it has one (`simulated/near.rs`).
    near: Option<Arc<NearCache>>,
}

impl SimProcess {
    /// A process whose entries live `entry_lifetime`, its keys in `keys`' namespace.
    pub(crate) fn new(keys: KeySpace, entry_lifetime: Option<Duration>) -> Self {
        Self {
            keys,
            flights: Flights::default(),
            entry_lifetime,
            near: None,
        }
    }
}

impl Host for SimProcess {
    fn shared(&self) -> bool {
        true
    }

    fn key_space(&self) -> &KeySpace {
        &self.keys
    }

    fn tag_lifetime(&self) -> Option<Duration> {
        None
    }

    fn entry_lifetime(&self, lifetime: Lifetime) -> Option<Duration> {
        lifetime.resolve(self.entry_lifetime)
    }

    fn join_flight(&self, entry: &str) -> Joined {
        self.flights.join(entry)
    }

    fn count(&self, _: Counted) {}

    fn near_fill(&self, named: Option<&Named<'_, String>>, keys: &EntryKeys) -> Option<Fill> {
        self.near.as_ref()?.fill_entry(named?, keys)
    }

    fn keep_decoded(
        &self,
        fill: Fill,
        kept: Box<dyn std::any::Any + Send + Sync>,
        expiry: Expiry,
        observed: &Observed,
    ) {
        if let Some(near) = &self.near {
            near.keep_decoded(fill, kept, expiry, observed);
        }
    }
}

/// What a simulated call asks of its driver next.
pub(crate) enum SimStep {
    /// Send [`SimCall::operation`]; then step with its reply.
    Send,
    /// Wait until this flight lands or the deadline passes; then [`SimCall::landed`].
    Follow(Arc<Flight>, Instant),
    /// Run the function; then [`SimCall::computed`].
    Compute,
    /// The call returns this value without computing.
    Return(Data),
    /// The call returns what it computed.
    Finished,
    /// A yield the simulator does not drive (it sets no stale option): a violation.
    Unexpected(&'static str),
}

/// One decorated call in a simulated process.
pub(crate) struct SimCall<'w> {
    flow: CallFlow<'w, Data, SimProcess>,
}

impl<'w> SimCall<'w> {
    /// A call of the entry `keys` in `process`, with `lock = true` when `lock_timeout` is set.
    pub(crate) fn new(
        process: &'w SimProcess,
        keys: &'w EntryKeys,
        codec: &'w ValueCodec<Data>,
        lock_timeout: Option<Duration>,
        now: Instant,
    ) -> Self {
        let report = Report {
            started: now,
            info: CacheInfo::default(),
            counted: true,
        };
        let mode = Mode::Run { lock_timeout };
        let flow = CallFlow::new(
            process,
            keys,
            codec,
            mode,
            Lifetime::Default,
            Windows::default(),
            report,
        );
        Self { flow }
    }

    /// One step at `now`, with the reply to the operation sent last.
    pub(crate) fn step(&mut self, now: Instant, reply: Option<Received>) -> SimStep {
        match self.flow.step(now, reply) {
            Progress::Send => SimStep::Send,
            Progress::Done(Yield::Follow(flight, deadline)) => SimStep::Follow(flight, deadline),
            Progress::Done(Yield::Compute(_)) => SimStep::Compute,
            Progress::Done(Yield::Cached(value) | Yield::Instead(value)) => SimStep::Return(value),
            Progress::Done(Yield::Finished) => SimStep::Finished,
            Progress::Done(other) => SimStep::Unexpected(other.name()),
        }
    }

    /// Keeps the value its first lookup finds in its process's near cache, under `named`.
    pub(crate) fn fill_near(&mut self, named: Option<Named<'w, String>>) {
        self.flow.fill_near(named);
    }

    /// The operation to send after [`SimStep::Send`].
    pub(crate) fn operation(&self) -> Option<Operation<'_>> {
        self.flow.operation()
    }

    /// What the wait for this process's leader found (`None`: its deadline passed).
    pub(crate) fn landed(&mut self, landing: Option<Landing>) {
        self.flow.landed(landing);
    }

    /// The function returned `data`.
    pub(crate) fn computed(&mut self, data: &Data) {
        let bytes = Encoding::default().encode(data).ok();
        self.flow.computed(bytes, false);
    }
}

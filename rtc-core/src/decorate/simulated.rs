//! The decorated call's protocol as the simulator (`crate::simulation`) drives it: a [`Host`]
//! per simulated process, and a call whose every step the simulator schedules. This is the
//! real `CallFlow`; only the driver differs from `Call::run`: it never blocks, and its clock
//! is virtual.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::outcome::ValueCodec;
use super::protocol::{CallFlow, Counted, Host, Mode, Yield};
pub(crate) use super::stale::Windows;
use super::Report;
use crate::cache::flights::{Flight, Flights, Joined, Landing, Leader};
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
    tag_lifetime: Option<Duration>,
    /// Its near cache, if it has one (`simulated/near.rs`).
    near: Option<Arc<NearCache>>,
}

impl SimProcess {
    /// A process whose entries live `entry_lifetime` and tags `tag_lifetime`
    /// (`lifetime_for_tags`), its keys in `keys`' namespace.
    pub(crate) fn new(
        keys: KeySpace,
        entry_lifetime: Option<Duration>,
        tag_lifetime: Option<Duration>,
    ) -> Self {
        Self {
            keys,
            flights: Flights::default(),
            entry_lifetime,
            tag_lifetime,
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
        self.tag_lifetime
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
    /// Run the function, for at most this long before [`SimCall::late`] (`stale_if_slow`);
    /// then [`SimCall::computed`].
    Compute(Option<Duration>),
    /// The function outlived its time limit: it is to store its value itself, stamped with
    /// these versions, when it returns; then [`SimCall::handed_over`].
    HandOver(Option<Observed>),
    /// The call waits for its late function and returns what it returns.
    Join,
    /// The call returns this value without computing.
    Return(Data),
    /// The call returns this stale value, and a background refresh of the entry, leading
    /// this flight, is to start ([`SimCall::refresh`]).
    Revalidate(Data, Leader),
    /// The call returns what it computed.
    Finished,
}

/// One decorated call in a simulated process.
pub(crate) struct SimCall<'w> {
    flow: CallFlow<'w, Data, SimProcess>,
}

impl<'w> SimCall<'w> {
    /// A call of the entry `keys` in `process`, with `lock = true` when `lock_timeout` is set,
    /// and the stale options `windows`.
    pub(crate) fn new(
        process: &'w SimProcess,
        keys: &'w EntryKeys,
        codec: &'w ValueCodec<Data>,
        lock_timeout: Option<Duration>,
        windows: Windows,
        now: Instant,
    ) -> Self {
        let mode = Mode::Run { lock_timeout };
        Self::with_mode(process, keys, codec, mode, windows, now)
    }

    /// The background refresh a [`SimStep::Revalidate`] asked for, leading `leader`'s flight
    /// (as `Background::revalidate` drives it on a thread of its own).
    pub(crate) fn refresh(
        process: &'w SimProcess,
        keys: &'w EntryKeys,
        codec: &'w ValueCodec<Data>,
        lock_timeout: Option<Duration>,
        windows: Windows,
        leader: Leader,
        now: Instant,
    ) -> Self {
        let mode = Mode::Revalidate { lock_timeout };
        let mut call = Self::with_mode(process, keys, codec, mode, windows, now);
        call.flow = call.flow.refreshing(leader);
        call
    }

    fn with_mode(
        process: &'w SimProcess,
        keys: &'w EntryKeys,
        codec: &'w ValueCodec<Data>,
        mode: Mode,
        windows: Windows,
        now: Instant,
    ) -> Self {
        let report = Report {
            started: now,
            info: CacheInfo::default(),
            counted: true,
        };
        let flow = CallFlow::new(
            process,
            keys,
            codec,
            mode,
            Lifetime::Default,
            windows,
            report,
        );
        Self { flow }
    }

    /// One step at `now`, with the reply to the operation sent last.
    pub(crate) fn step(&mut self, now: Instant, reply: Option<Received>) -> SimStep {
        match self.flow.step(now, reply) {
            Progress::Send => SimStep::Send,
            Progress::Done(Yield::Follow(flight, deadline)) => SimStep::Follow(flight, deadline),
            Progress::Done(Yield::Compute(limit)) => SimStep::Compute(limit),
            Progress::Done(Yield::HandOver(observed)) => SimStep::HandOver(observed),
            Progress::Done(Yield::Join) => SimStep::Join,
            Progress::Done(Yield::Cached(value) | Yield::Instead(value)) => SimStep::Return(value),
            Progress::Done(Yield::Revalidate(value, leader)) => SimStep::Revalidate(value, *leader),
            Progress::Done(Yield::Finished) => SimStep::Finished,
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

    /// The function is still running when its time limit passed.
    pub(crate) fn late(&mut self) {
        self.flow.late();
    }

    /// The late function took the versions [`SimStep::HandOver`] offered.
    pub(crate) fn handed_over(&mut self) {
        self.flow.handed_over();
    }

    /// The function failed (returned an `Err`): nothing to store.
    pub(crate) fn failed(&mut self) {
        self.flow.computed(None, true);
    }
}

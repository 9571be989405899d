//! The low-level API in the simulation: `get`, `get_many`, `set` and `set_many`, through the
//! engine's own flows (`ReadFlow`, `ReadManyFlow`, `WriteFlow`), on the entries' keys without
//! the decorated function's tag (as `TaggedCache::get` and `set` name them).
//!
//! A `set` stores what the data is when the server runs it: `set` means "this is fresh now"
//! (RELIABILITY.md: it stamps with the versions current when it runs, so a value read before
//! an invalidation and set after it is the caller's stale value, not rtc's). So its flow is
//! made when its request reaches the server, with the data of that moment, and its one
//! operation (the atomic stamping write) runs there. A `set` of one entry whose tags its data
//! connection knows in-band is planned when it is sent, and runs there as one plain `SET`
//! stamped with those versions (`inband.rs`), in the seeds whose entries live as long as a
//! tombstone, which that takes.

use super::{slots, Active, Sim, Wait, ENTRIES, TAG_LIFETIME};
use crate::codec::Encoding;
use crate::engine::{EntryWrite, Flow, Lookup, Progress, ReadFlow, ReadManyFlow, WriteFlow};
use crate::format::Observed;
use crate::simulation::server::Client;
use crate::simulation::trace::describe;
use crate::simulation::Run;

/// A low-level call under way.
pub(super) enum LowLevel<'w> {
    /// `get` (one entry) or `get_many` (several): the read, the entries, the floors at the
    /// start.
    Get {
        flow: Box<Reads<'w>>,
        entries: Vec<usize>,
        floors: Vec<u64>,
    },
    /// `set` or `set_many` of these entries, sent; with the tag versions its process's near
    /// cache knew when it was called, if it knew them all (`TaggedCache::stamp_known`: the
    /// write then reads no tag, promise (e)).
    Set {
        entries: Vec<usize>,
        learned: Vec<Option<Observed>>,
    },
}

/// A read of one entry or of several.
#[allow(
    clippy::large_enum_variant,
    reason = "held boxed, one per simulated call: boxing a variant again would gain nothing"
)]
pub(super) enum Reads<'w> {
    One(ReadFlow<'w>),
    Many(ReadManyFlow<'w>),
}

impl Reads<'_> {
    fn advance(&mut self, reply: Option<crate::engine::Received>) -> Progress<Vec<Lookup>> {
        match self {
            Reads::One(flow) => match flow.advance(reply) {
                Progress::Send => Progress::Send,
                Progress::Done(lookup) => Progress::Done(vec![lookup]),
            },
            Reads::Many(flow) => flow.advance(reply),
        }
    }

    pub(super) fn operation(&self) -> Option<crate::engine::Operation<'_>> {
        match self {
            Reads::One(flow) => flow.operation(),
            Reads::Many(flow) => flow.operation(),
        }
    }
}

impl<'w> Sim<'w> {
    /// Starts `caller`'s next low-level call: a `get`, a `get_many` of every entry, a `set` or
    /// a `set_many` of two entries.
    pub(super) fn start_low_level(&mut self, caller: usize) -> Result<(), String> {
        let world = self.world;
        let floors = self.checker.floors();
        let one = self.rng.below(ENTRIES.len() as u64) as usize;
        // Sets leave the quiet entry (the last) alone, for it to outlive its lifetime.
        let loud = ENTRIES.len() - 1;
        let set = self.rng.below(loud as u64) as usize;
        let call = match self.rng.below(4) {
            0 => LowLevel::Get {
                flow: Box::new(Reads::One(ReadFlow::new(&world.keys, &world.plain[one]))),
                entries: vec![one],
                floors,
            },
            1 => LowLevel::Get {
                flow: Box::new(Reads::Many(ReadManyFlow::new(&world.keys, &world.plain))),
                entries: (0..ENTRIES.len()).collect(),
                floors,
            },
            2 => self.set_call(caller, vec![set]),
            _ => self.set_call(caller, vec![set, (set + 1) % loud]),
        };
        let name = match &call {
            LowLevel::Get { flow, .. } if matches!(**flow, Reads::One(_)) => "get",
            LowLevel::Get { .. } => "get_many",
            LowLevel::Set { entries, .. } if entries.len() == 1 => "set",
            LowLevel::Set { .. } => "set_many",
        };
        let entries = match &call {
            LowLevel::Get { entries, .. } | LowLevel::Set { entries, .. } => entries.clone(),
        };
        self.note(format!("c{caller:<2} calls {name} of entries {entries:?}"));
        self.callers[caller].active = Some(Active::LowLevel(call));
        match self.callers[caller].active {
            Some(Active::LowLevel(LowLevel::Set { .. })) => {
                self.callers[caller].wait = Wait::Request;
                self.requests.push(caller);
                self.inband_set_sent(caller);
            }
            _ => self.callers[caller].wait = Wait::Step(None),
        }
        Ok(())
    }

    /// Steps `caller`'s low-level call with `reply`; checks what a read returns (promise 2).
    pub(super) fn step_low_level(
        &mut self,
        caller: usize,
        call: LowLevel<'w>,
        reply: Option<crate::engine::Received>,
        run: &mut Run,
    ) -> Result<(), String> {
        let (mut flow, entries, floors) = match call {
            LowLevel::Set { entries, .. } => {
                self.note(format!(
                    "c{caller:<2} set of entries {entries:?} returned{}",
                    if matches!(reply, Some(Ok(_))) {
                        ""
                    } else {
                        " (failed)"
                    }
                ));
                run.calls += 1;
                return Ok(());
            }
            LowLevel::Get {
                flow,
                entries,
                floors,
            } => (flow, entries, floors),
        };
        let lookups = match flow.advance(reply) {
            Progress::Send => {
                self.callers[caller].active = Some(Active::LowLevel(LowLevel::Get {
                    flow,
                    entries,
                    floors,
                }));
                self.callers[caller].wait = Wait::Request;
                self.requests.push(caller);
                self.inband_sent(caller);
                return Ok(());
            }
            Progress::Done(lookups) => lookups,
        };
        run.calls += 1;
        for (entry, lookup) in entries.into_iter().zip(lookups) {
            let Lookup::Hit(payload, _) = lookup else {
                continue;
            };
            let Ok(Some(data)) = self.world.codec.open(Encoding::default(), &payload) else {
                return Err(format!("entry {entry}'s value does not decode"));
            };
            run.coverage.low_level_hits += 1;
            self.note(format!("c{caller:<2} gets entry {entry}: {data:?}"));
            let slots: Vec<usize> = slots(entry).collect();
            self.checker.returned(&slots, &data, &floors)?;
        }
        Ok(())
    }

    /// A `set` of `entries` by `caller`, stamped as `TaggedCache::stamp_known` stamps it: with
    /// the versions its process's near cache knows now, for an entry whose tags it knows all.
    fn set_call(&self, caller: usize, entries: Vec<usize>) -> LowLevel<'w> {
        let world = self.world;
        let near = world.processes[self.callers[caller].process].near();
        let learned = entries
            .iter()
            .map(|&entry| {
                let keys = &world.plain[entry];
                let tags = keys.tags().iter().map(|tag| tag.as_str());
                let versions = near?.watches().versions(tags)?;
                let versions: Vec<_> = versions.into_iter().map(Some).collect();
                Some(keys.observe(&versions))
            })
            .collect();
        LowLevel::Set { entries, learned }
    }

    /// The server runs `client`'s `set`: its values are the data of this moment, stamped by
    /// the engine's write with the versions its process learned when it was called (if it
    /// knew them all), else atomically with the versions of this moment.
    pub(super) fn execute_set(
        &mut self,
        client: Client,
        entries: &[usize],
        learned: &[Option<Observed>],
        coverage: &mut crate::simulation::Coverage,
    ) {
        let world = self.world;
        let payloads: Vec<Vec<u8>> = entries
            .iter()
            .map(|&entry| {
                let data: Vec<u64> = slots(entry).map(|slot| self.data[slot]).collect();
                Encoding::default().encode(&data).unwrap_or_default()
            })
            .collect();
        let writes: Vec<EntryWrite<'_>> = entries
            .iter()
            .zip(&payloads)
            .zip(learned)
            .map(|((&entry, payload), learned)| {
                let mut write = EntryWrite::unstamped(&world.plain[entry], payload);
                if let Some(observed) = learned {
                    write.observed = observed.clone();
                }
                write
            })
            .collect();
        if let ([write], Some(plain)) = (writes.as_slice(), self.inband_plain(client)) {
            return self.execute_plain_set(client, write, &plain);
        }
        let known = learned.iter().all(Option::is_some);
        if known {
            self.note(format!(
                "c{client:<2} sets with versions its near cache knew"
            ));
        }
        let lifetimes = (Some(world.entry_lifetime), Some(TAG_LIFETIME));
        let mut flow = WriteFlow::new(writes, lifetimes, true);
        let operation = match flow.advance(None) {
            Progress::Send => flow.operation(),
            Progress::Done(_) => None,
        };
        let Some(operation) = operation else {
            return;
        };
        let line = format!("server runs c{client}'s {} (set)", describe(&operation));
        if known {
            coverage.learned_sets += 1;
        }
        // A script led by the commands that learn its tags: they run first.
        self.inband_ran(client);
        let (replies, change, written) =
            super::served(world, &mut self.server, Some(client), operation, self.now);
        self.near_changed(Some(client), change, written);
        self.note(line);
        self.answer(replies);
    }
}

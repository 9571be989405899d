//! What a caller does when the scheduler moves it: start a call (a decorated call, or an
//! invalidation), step it with its reply, follow its process's leader, compute; and what it
//! returns, checked against promise 2.

use std::time::{Duration, Instant};

use super::{slots, Active, Reading, Role, Sim, Wait, ENTRIES, LOCK_TIMEOUT, TAGS};
use crate::decorate::simulated::{Data, SimCall, SimStep};
use crate::format::{self, Version};
use crate::simulation::Run;

impl<'w> Sim<'w> {
    /// Moves `caller` on: starts a call, or steps the one under way.
    pub(super) fn advance(&mut self, caller: usize, run: &mut Run) -> Result<(), String> {
        self.focus = Some(caller);
        self.near_touched(caller);
        let wait = std::mem::replace(&mut self.callers[caller].wait, Wait::Idle);
        match wait {
            Wait::Idle => self.start(caller, run),
            Wait::Step(reply) => match self.callers[caller].active.take() {
                Some(Active::Invalidate { bumped, .. }) => {
                    if matches!(reply, Some(Ok(_))) {
                        self.note(format!(
                            "c{caller:<2} invalidation returned: floors {bumped:?}"
                        ));
                        self.checker.invalidated(&bumped);
                        self.near_invalidated(caller, &bumped);
                        run.invalidations += 1;
                    }
                    Ok(())
                }
                Some(Active::Delete { entry, bumped, .. }) => {
                    if matches!(reply, Some(Ok(_))) {
                        self.note(format!(
                            "c{caller:<2} invalidation returned (delete of entry {entry}): \
                             floor {bumped:?}"
                        ));
                        self.checker.invalidated(&[bumped]);
                        self.near_invalidated(caller, &[bumped]);
                        run.invalidations += 1;
                        run.deletes += 1;
                    }
                    Ok(())
                }
                Some(Active::Read(mut reading)) => {
                    let step = reading.flow.step(self.now, reply);
                    self.callers[caller].active = Some(Active::Read(reading));
                    self.follow(caller, step, run)
                }
                None => Ok(()),
            },
            Wait::Follow(flight, _) => {
                let landing = flight.landed();
                self.note(format!(
                    "c{caller:<2} {}",
                    match landing {
                        Some(_) => "sees its leader land",
                        None => "stops waiting for its leader",
                    }
                ));
                self.with_reading(caller, run, |reading, now| {
                    reading.flow.landed(landing);
                    reading.flow.step(now, None)
                })
            }
            Wait::Compute(_) => {
                self.checker.computed(caller);
                self.note(format!("c{caller:<2} finishes computing"));
                self.with_reading(caller, run, |reading, now| {
                    let data = reading.computed.clone().unwrap_or_default();
                    reading.flow.computed(&data);
                    reading.flow.step(now, None)
                })
            }
            wait @ (Wait::Request | Wait::Blocked | Wait::Reply) => {
                self.callers[caller].wait = wait;
                Ok(())
            }
        }
    }

    /// Steps `caller`'s decorated call with `step`, then does what it asks.
    fn with_reading(
        &mut self,
        caller: usize,
        run: &mut Run,
        step: impl FnOnce(&mut Reading<'w>, Instant) -> SimStep,
    ) -> Result<(), String> {
        let Some(Active::Read(reading)) = &mut self.callers[caller].active else {
            return Ok(());
        };
        let next = step(reading, self.now);
        self.follow(caller, next, run)
    }

    /// Starts `caller`'s next call.
    fn start(&mut self, caller: usize, run: &mut Run) -> Result<(), String> {
        let world = self.world;
        match self.callers[caller].role {
            // Writers write less often than readers read.
            Role::Writer if !self.rng.one_in(10) => Ok(()),
            // `invalidate_<fn>(args)`: one entry's own data changes, then the entry is deleted
            // (a tombstone).
            Role::Writer if self.deletes && self.rng.one_in(4) => {
                let entry = self.rng.below(ENTRIES.len() as u64) as usize;
                let slot = TAGS.len() + entry;
                let bumped = (slot, self.bump(slot));
                self.note(format!(
                    "c{caller:<2} writes entry {entry}'s own data {bumped:?} and deletes it"
                ));
                self.callers[caller].active = Some(Active::Delete {
                    entry,
                    tombstone: format::tombstone(),
                    bumped,
                });
                self.callers[caller].wait = Wait::Request;
                self.requests.push(caller);
                Ok(())
            }
            Role::Writer => {
                // The database changes first; then the cache is told.
                let (tags, bumped): (Vec<_>, Vec<_>) = if self.rng.one_in(4) {
                    let bumped = (0..TAGS.len()).map(|tag| (tag, self.bump(tag))).collect();
                    (vec![(world.keys.namespace_tag(), Version::fresh())], bumped)
                } else {
                    let tag = self.rng.below(TAGS.len() as u64) as usize;
                    let key = world.keys.user_tag(TAGS[tag]);
                    (vec![(key, Version::fresh())], vec![(tag, self.bump(tag))])
                };
                self.note(format!("c{caller:<2} writes {bumped:?} and invalidates"));
                self.callers[caller].active = Some(Active::Invalidate { tags, bumped });
                self.callers[caller].wait = Wait::Request;
                self.requests.push(caller);
                Ok(())
            }
            Role::Reader { lock } => {
                let entry = self.rng.below(ENTRIES.len() as u64) as usize;
                if let Some(checked) = self.near_call(caller, entry, run) {
                    return checked;
                }
                let process = &world.processes[self.callers[caller].process];
                let timeout = lock.then_some(LOCK_TIMEOUT);
                let mut flow = SimCall::new(
                    process,
                    &world.entries[entry],
                    &world.codec,
                    timeout,
                    self.now,
                );
                flow.fill_near(Some(world.near.named(entry)));
                let floors = self.checker.floors();
                self.note(format!(
                    "c{caller:<2} calls entry {entry}{}, floors {floors:?}",
                    if lock { " (lock)" } else { "" }
                ));
                self.callers[caller].active = Some(Active::Read(Box::new(Reading {
                    flow,
                    entry,
                    started: self.now,
                    floors,
                    computed: None,
                    failed: false,
                    acquired_in: None,
                })));
                self.callers[caller].wait = Wait::Step(None);
                Ok(())
            }
        }
    }

    fn bump(&mut self, slot: usize) -> u64 {
        self.data[slot] += 1;
        self.data[slot]
    }

    /// Does what `caller`'s call asked for, checking what it returns.
    fn follow(&mut self, caller: usize, step: SimStep, run: &mut Run) -> Result<(), String> {
        let lock = matches!(self.callers[caller].role, Role::Reader { lock: true });
        let Some(Active::Read(reading)) = &mut self.callers[caller].active else {
            return Ok(());
        };
        let entry = reading.entry;
        match step {
            SimStep::Send => {
                self.callers[caller].wait = Wait::Request;
                self.requests.push(caller);
                Ok(())
            }
            SimStep::Follow(flight, deadline) => {
                run.coverage.follows += 1;
                self.note(format!("c{caller:<2} follows its process's leader"));
                self.callers[caller].wait = Wait::Follow(flight, deadline);
                Ok(())
            }
            SimStep::Compute => {
                let data: Data = slots(entry).map(|slot| self.data[slot]).collect();
                let alone = reading.failed || self.now >= reading.started + LOCK_TIMEOUT;
                let acquired_in = reading.acquired_in;
                reading.computed = Some(data.clone());
                run.computations += 1;
                let until = self.now + Duration::from_millis(self.rng.between(5, 300));
                self.callers[caller].wait = Wait::Compute(until);
                self.note(format!(
                    "c{caller:<2} computes entry {entry} from data {data:?}"
                ));
                if lock {
                    self.checker.computes(caller, entry, acquired_in, alone)?;
                }
                Ok(())
            }
            SimStep::Return(data) => {
                self.note(format!("c{caller:<2} returns a cached {data:?}"));
                self.near_returned(caller, entry);
                self.returned(caller, &data, run)
            }
            SimStep::Finished => {
                let data = reading.computed.take().unwrap_or_default();
                self.note(format!("c{caller:<2} returns its computed {data:?}"));
                self.returned(caller, &data, run)
            }
            SimStep::Unexpected(name) => Err(format!("the protocol yielded {name}")),
        }
    }

    /// Promise 2 for what `caller`'s call returned.
    fn returned(&mut self, caller: usize, data: &[u64], run: &mut Run) -> Result<(), String> {
        run.calls += 1;
        let Some(Active::Read(reading)) = self.callers[caller].active.take() else {
            return Ok(());
        };
        self.callers[caller].wait = Wait::Idle;
        let slots: Vec<usize> = slots(reading.entry).collect();
        self.checker.returned(&slots, data, &reading.floors)
    }
}

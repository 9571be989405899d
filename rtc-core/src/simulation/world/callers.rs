//! What a caller does when the scheduler moves it: start a call (a decorated call, or an
//! invalidation), step it with its reply, follow its process's leader, compute; and what it
//! returns, checked against promise 2.

use std::time::{Duration, Instant};

use super::{slots, windows, Active, Reading, Role, Sim, Wait, ENTRIES, LOCK_TIMEOUT, TAGS};
use crate::cache::flights::Leader;
use crate::decorate::simulated::Windows;
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
            Wait::Step(reply) => {
                let Some(reply) = self.inband_received(caller, reply) else {
                    return Ok(());
                };
                self.step_call(caller, reply, run)
            }
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
            Wait::Compute(_) if self.is_late(caller) => self.hand_over(caller, run),
            Wait::Joined(true) => {
                let Some(Active::Read(reading)) = &mut self.callers[caller].active else {
                    return Ok(());
                };
                let data = reading.computed.take().unwrap_or_default();
                if reading.errored {
                    self.note(format!("c{caller:<2} returns its late function's error"));
                    run.calls += 1;
                    self.callers[caller].active = None;
                    return Ok(());
                }
                self.note(format!("c{caller:<2} returns its late computed {data:?}"));
                self.returned(caller, &data, run)
            }
            Wait::Compute(_) => {
                self.checker.computed(caller);
                self.note(format!("c{caller:<2} finishes computing"));
                self.with_reading(caller, run, |reading, now| {
                    if reading.errored {
                        reading.flow.failed();
                    } else {
                        let data = reading.computed.clone().unwrap_or_default();
                        reading.flow.computed(&data);
                    }
                    reading.flow.step(now, None)
                })
            }
            wait @ (Wait::Request | Wait::Blocked | Wait::Reply | Wait::Joined(false)) => {
                self.callers[caller].wait = wait;
                Ok(())
            }
        }
    }

    /// Steps `caller`'s call under way with its `reply`.
    fn step_call(
        &mut self,
        caller: usize,
        reply: Option<crate::engine::Received>,
        run: &mut Run,
    ) -> Result<(), String> {
        match self.callers[caller].active.take() {
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
            Some(Active::LowLevel(call)) => self.step_low_level(caller, call, reply, run),
            Some(Active::Read(mut reading)) => {
                let step = reading.flow.step(self.now, reply);
                self.callers[caller].active = Some(Active::Read(reading));
                self.follow(caller, step, run)
            }
            None => Ok(()),
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
            // The low-level API is called less often than the decorated functions.
            Role::LowLevel if !self.rng.one_in(3) => Ok(()),
            Role::LowLevel => self.start_low_level(caller),
            // `invalidate_<fn>(args)`: one entry's own data changes, then the entry is deleted
            // (a tombstone).
            Role::Writer if self.rng.one_in(4) => {
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
                let (tags, bumped): (Vec<_>, Vec<_>) = if self.rng.one_in(8) {
                    let bumped = (0..TAGS.len()).map(|tag| (tag, self.bump(tag))).collect();
                    (vec![(world.keys.namespace_tag(), Version::fresh())], bumped)
                } else {
                    // The quiet tag (the last) one time in twenty.
                    let quiet = TAGS.len() - 1;
                    let tag = if self.rng.one_in(20) {
                        quiet
                    } else {
                        self.rng.below(quiet as u64) as usize
                    };
                    let key = world.keys.user_tag(TAGS[tag]);
                    (vec![(key, Version::fresh())], vec![(tag, self.bump(tag))])
                };
                self.note(format!("c{caller:<2} writes {bumped:?} and invalidates"));
                self.callers[caller].active = Some(Active::Invalidate { tags, bumped });
                self.callers[caller].wait = Wait::Request;
                self.requests.push(caller);
                Ok(())
            }
            Role::Reader { lock, stale } => {
                let entry = self.rng.below(ENTRIES.len() as u64) as usize;
                if let Some(checked) = self.near_call(caller, entry, run) {
                    return checked;
                }
                let process = &world.processes[self.callers[caller].process];
                let timeout = lock.then_some(LOCK_TIMEOUT);
                let windows = if stale {
                    windows(lock)
                } else {
                    Windows::default()
                };
                let mut flow = SimCall::new(
                    process,
                    &world.entries[entry],
                    &world.codec,
                    timeout,
                    windows,
                    self.now,
                );
                flow.fill_near(Some(world.near.named(entry)));
                let floors = self.checker.floors();
                self.note(format!(
                    "c{caller:<2} calls entry {entry}{}{}, floors {floors:?}",
                    if lock { " (lock)" } else { "" },
                    if stale { " (stale options)" } else { "" }
                ));
                self.callers[caller].active = Some(Active::Read(Box::new(Reading {
                    flow,
                    entry,
                    started: self.now,
                    floors,
                    computed: None,
                    errored: false,
                    refresh: false,
                    late_until: None,
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
        let (lock, stale) = match self.callers[caller].role {
            Role::Reader { lock, stale } => (lock, stale),
            Role::Writer | Role::LowLevel => (false, false),
        };
        let Some(Active::Read(reading)) = &mut self.callers[caller].active else {
            return Ok(());
        };
        let entry = reading.entry;
        let failed_before = reading.errored;
        if reading.refresh && matches!(step, SimStep::Finished | SimStep::Return(_)) {
            self.note(format!("c{caller:<2} ends its background refresh"));
            self.callers[caller].active = None;
            self.callers[caller].wait = Wait::Idle;
            return Ok(());
        }
        match step {
            SimStep::Send => {
                self.callers[caller].wait = Wait::Request;
                self.requests.push(caller);
                self.inband_sent(caller);
                Ok(())
            }
            SimStep::Follow(flight, deadline) => {
                run.coverage.follows += 1;
                self.note(format!("c{caller:<2} follows its process's leader"));
                self.callers[caller].wait = Wait::Follow(flight, deadline);
                Ok(())
            }
            SimStep::Compute(limit) => {
                let data: Data = slots(entry).map(|slot| self.data[slot]).collect();
                let alone = reading.failed || self.now >= reading.started + LOCK_TIMEOUT;
                let acquired_in = reading.acquired_in;
                reading.computed = Some(data.clone());
                // A function with a stale option fails now and then (the stale value stands in).
                reading.errored = stale && self.rng.one_in(4);
                let errored = reading.errored;
                run.computations += 1;
                let until = self.now + Duration::from_millis(self.rng.between(5, 300));
                // Past its time limit, the call hands the computation over then.
                let limit = limit.map(|limit| self.now + limit).filter(|&at| at < until);
                reading.late_until = limit.map(|_| until);
                self.callers[caller].wait = Wait::Compute(limit.unwrap_or(until));
                self.note(format!(
                    "c{caller:<2} computes entry {entry} from data {data:?}{}",
                    if errored { ", and will fail" } else { "" }
                ));
                if lock {
                    self.checker.computes(caller, entry, acquired_in, alone)?;
                }
                Ok(())
            }
            SimStep::Return(data) => {
                self.note(format!("c{caller:<2} returns a cached {data:?}"));
                if failed_before {
                    run.coverage.stale_instead += 1;
                }
                self.near_returned(caller, entry);
                self.returned(caller, &data, run)
            }
            SimStep::Revalidate(data, leader) => {
                self.note(format!(
                    "c{caller:<2} returns a stale {data:?} and starts a refresh"
                ));
                run.coverage.revalidations += 1;
                self.returned(caller, &data, run)?;
                self.start_refresh(caller, entry, lock, leader);
                Ok(())
            }
            SimStep::Join => {
                self.note(format!("c{caller:<2} waits for its late computation"));
                let body = self.late.iter_mut().find(|body| body.caller == caller);
                match body {
                    Some(body) => {
                        body.joined = true;
                        self.callers[caller].wait = Wait::Joined(false);
                        Ok(())
                    }
                    // It returned already: its call takes what it returned at once.
                    None => {
                        self.callers[caller].wait = Wait::Joined(true);
                        Ok(())
                    }
                }
            }
            SimStep::HandOver(_) => Err("the protocol handed over a computation in time".into()),
            SimStep::Finished if failed_before => {
                self.note(format!("c{caller:<2} returns its function's error"));
                run.calls += 1;
                self.callers[caller].active = None;
                self.callers[caller].wait = Wait::Idle;
                Ok(())
            }
            SimStep::Finished => {
                let data = reading.computed.take().unwrap_or_default();
                self.note(format!("c{caller:<2} returns its computed {data:?}"));
                self.returned(caller, &data, run)
            }
        }
    }

    /// True when `caller`'s computation is still running at its time limit.
    fn is_late(&self, caller: usize) -> bool {
        matches!(&self.callers[caller].active, Some(Active::Read(reading))
            if reading.late_until.is_some_and(|until| until > self.now))
    }

    /// `caller`'s computation outlived its time limit (`stale_if_slow`): the protocol hands
    /// its store over to it, and the call goes on without it.
    fn hand_over(&mut self, caller: usize, run: &mut Run) -> Result<(), String> {
        // The call no longer waits for the computation, and releases its lock.
        self.checker.computed(caller);
        let Some(Active::Read(reading)) = &mut self.callers[caller].active else {
            return Ok(());
        };
        reading.flow.late();
        let SimStep::HandOver(observed) = reading.flow.step(self.now, None) else {
            return Err("a late computation was not handed over".into());
        };
        let returns = reading.late_until.take().unwrap_or(self.now);
        self.late.push(super::LateBody {
            caller,
            entry: reading.entry,
            data: reading.computed.clone().unwrap_or_default(),
            errored: reading.errored,
            returns,
            observed,
            joined: false,
        });
        reading.flow.handed_over();
        let next = reading.flow.step(self.now, None);
        run.coverage.hand_overs += 1;
        self.note(format!(
            "c{caller:<2} hands its late computation over (it returns at t={}ms)",
            returns.duration_since(self.origin).as_millis()
        ));
        self.follow(caller, next, run)
    }

    /// `caller` runs the background refresh of `entry` its stale hit started (a thread of its
    /// process in the real code; here the caller's next work, which other callers interleave
    /// with as they would with that thread).
    fn start_refresh(&mut self, caller: usize, entry: usize, lock: bool, leader: Leader) {
        let world = self.world;
        let process = &world.processes[self.callers[caller].process];
        let flow = SimCall::refresh(
            process,
            &world.entries[entry],
            &world.codec,
            lock.then_some(LOCK_TIMEOUT),
            windows(lock),
            leader,
            self.now,
        );
        self.callers[caller].active = Some(Active::Read(Box::new(Reading {
            flow,
            entry,
            started: self.now,
            floors: self.checker.floors(),
            computed: None,
            errored: false,
            refresh: true,
            late_until: None,
            failed: false,
            acquired_in: None,
        })));
        self.callers[caller].wait = Wait::Step(None);
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

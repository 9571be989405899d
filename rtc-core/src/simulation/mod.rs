//! A deterministic simulator of the decorated call's protocol (FoundationDB-style): several
//! processes, each with several callers running the real `CallFlow`, against a model of Redis
//! (`server.rs`), on a virtual clock. A seeded scheduler (`world.rs`) picks every step; the
//! checker (`checks.rs`) tests RELIABILITY.md's promises after each one. A seed replays
//! exactly. Mutants ([`Mutant`]) break one rule of the real code, to show the checker can fail.

mod checks;
mod rng;
mod server;
mod world;

pub use self::checks::Violation;

/// A rule of the real code the simulator can break, to prove that its checks catch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutant {
    /// A computed value is stamped with the tag versions read after computing, not before.
    Stamp,
    /// A waiter takes its leader's value without checking its stamp.
    Lock,
}

impl Mutant {
    /// The mutant named `name` (`stamp`, `lock`).
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "stamp" => Some(Mutant::Stamp),
            "lock" => Some(Mutant::Lock),
            _ => None,
        }
    }

    /// Its name, as `RTC_SIM_MUTANT` gives it.
    pub fn name(self) -> &'static str {
        match self {
            Mutant::Stamp => "stamp",
            Mutant::Lock => "lock",
        }
    }
}

/// Which mutant is active on this thread (the simulator runs a seed on one thread).
pub(crate) mod mutant {
    use std::cell::Cell;

    use super::Mutant;

    thread_local! {
        static ACTIVE: Cell<Option<Mutant>> = const { Cell::new(None) };
    }

    /// True when `mutant` is active on this thread.
    pub(crate) fn active(mutant: Mutant) -> bool {
        ACTIVE.with(|active| active.get() == Some(mutant))
    }

    /// Activates `mutant` (or none) on this thread.
    pub(crate) fn set(mutant: Option<Mutant>) {
        ACTIVE.with(|active| active.set(mutant));
    }
}

/// One simulation run: a seed and how many steps to take.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Picks every choice of the run.
    pub seed: u64,
    /// Scheduler steps to take.
    pub steps: u64,
    /// The rule to break, if any.
    pub mutant: Option<Mutant>,
}

/// What a run did.
#[derive(Debug)]
pub struct Run {
    /// Steps taken (fewer than asked when a violation stopped the run).
    pub steps: u64,
    /// Calls that returned, and how many of them computed.
    pub calls: u64,
    /// Calls that computed.
    pub computations: u64,
    /// Invalidations that returned.
    pub invalidations: u64,
    /// The first promise broken, if any.
    pub violation: Option<Violation>,
}

/// Runs one seed.
pub fn run(config: &Config) -> Run {
    mutant::set(config.mutant);
    let run = world::World::new(config.seed).run(config);
    mutant::set(None);
    run
}

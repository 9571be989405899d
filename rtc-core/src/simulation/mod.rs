//! A deterministic simulator of the decorated call's protocol (FoundationDB-style): several
//! processes, each with several callers running the real `CallFlow`, against a model of Redis
//! (`server.rs`), on a virtual clock. A seeded scheduler (`world.rs`) picks every step; the
//! checker (`checks.rs`) tests RELIABILITY.md's promises after each one. A seed replays
//! exactly. Mutants ([`Mutant`]) break one rule of the real code, to show the checker can fail.
//! Most processes (per seed) have a real near cache, kept told of changes by the real tracking
//! session over a modelled tracking connection (`tracking.rs`, `world/near.rs`).
//! Most processes also read on a tracked data connection whose real `KnownTags` makes a hit one
//! `GET` when it knows the tags' versions in-band (`world/inband.rs`).

mod checks;
mod rng;
mod server;
mod trace;
mod tracking;
mod world;

pub use self::checks::Violation;
pub use crate::mutants::Mutant;

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
    /// Invalidations that returned (of tags, and of single entries).
    pub invalidations: u64,
    /// Single entries deleted (`invalidate_<fn>(args)`) whose delete returned.
    pub deletes: u64,
    /// How often the paths that matter were taken.
    pub coverage: Coverage,
    /// The first promise broken, if any.
    pub violation: Option<Violation>,
}

/// How often a run took the paths that matter, so that a quiet run is seen to be one.
#[derive(Debug, Default, Clone, Copy)]
pub struct Coverage {
    /// `BLPOP`s the server ran (a waiter in another process).
    pub lock_waits: u64,
    /// Tokens passed on by a woken waiter.
    pub batons: u64,
    /// Callers that followed their process's leader.
    pub follows: u64,
    /// Locks that expired.
    pub lock_expiries: u64,
    /// Processes that crashed.
    pub crashes: u64,
    /// Times the server lost every key (`FLUSHALL`, restart).
    pub key_losses: u64,
    /// Calls whose function failed and that returned a stale value instead (`stale_if_error`).
    pub stale_instead: u64,
    /// Stale hits returned at once, each starting a refresh (`stale_while_revalidate`).
    pub revalidations: u64,
    /// Computations handed over past their time limit (`stale_if_slow`).
    pub hand_overs: u64,
    /// Entries `get` or `get_many` found fresh.
    pub low_level_hits: u64,
    /// `set`s stamped with the versions their process's near cache knew (promise (e)).
    pub learned_sets: u64,
    /// Keys the server evicted.
    pub evictions: u64,
    /// Connections dropped with a command on the way.
    pub dropped_connections: u64,
    /// Calls answered by a near cache.
    pub near_hits: u64,
    /// Answers a near cache held, checked after a step (whether or not a call asked).
    pub near_answers: u64,
    /// Invalidation messages a tracking session applied to its near cache.
    pub pushes_applied: u64,
    /// Invalidation messages lost with a dropped tracking connection.
    pub pushes_lost: u64,
    /// Tracking connections dropped (a restart drops them all; not counted here).
    pub disconnects: u64,
    /// Times a tracking session turned tracking on (at a process's start and after each loss).
    pub tracking_ons: u64,
    /// Tracking connections refused when a session opened them (a failed set-up).
    pub refused_connections: u64,
    /// Near fills the server ran on their process's tracking connection (`OPTIN`), tracking
    /// their keys for it.
    pub fills_tracked: u64,
    /// Near fills read on a data connection instead (no tracking connection lent, or it closed
    /// on the way), whose replies are not kept near.
    pub fills_unkept: u64,
    /// Reads answered by one `GET` on a data connection, with the tag versions it knew in-band.
    pub one_get_hits: u64,
    /// `get_many`s answered by one `MGET` of their entries alone, the same way.
    pub one_mget_hits: u64,
    /// One-`GET` answers discarded because a tag's version was no longer known when the reply
    /// came (`KnownTags::still`), the read then sent again in full.
    pub one_get_discarded: u64,
    /// Reads sent in full (and `set`s' scripts) that learned tag versions in-band (`CLIENT
    /// CACHING YES`, `MGET`, `PTTL`).
    pub learning_reads: u64,
    /// In-band invalidation messages applied to a data connection's table.
    pub inband_applied: u64,
    /// In-band invalidation messages lost with their data connection.
    pub inband_lost: u64,
    /// `set`s sent as one plain `SET` (their tags' versions known in-band) and kept.
    pub plain_sets: u64,
    /// Plain `SET`s a change to one of their tags came ahead of, written again by the script.
    pub plain_sets_redone: u64,
    /// `set`s whose script was sent after the commands that learn their tags in-band (also
    /// counted in `learning_reads`).
    pub learning_sets: u64,
    /// Reads the server ran twice: a copy first, whose reply nobody reads (its pipeline's
    /// leader gave up and the read was sent again, `autopipeline.rs`).
    pub ghost_reads: u64,
}

impl std::ops::AddAssign for Coverage {
    fn add_assign(&mut self, other: Self) {
        self.lock_waits += other.lock_waits;
        self.batons += other.batons;
        self.follows += other.follows;
        self.lock_expiries += other.lock_expiries;
        self.crashes += other.crashes;
        self.key_losses += other.key_losses;
        self.stale_instead += other.stale_instead;
        self.revalidations += other.revalidations;
        self.hand_overs += other.hand_overs;
        self.low_level_hits += other.low_level_hits;
        self.learned_sets += other.learned_sets;
        self.evictions += other.evictions;
        self.dropped_connections += other.dropped_connections;
        self.near_hits += other.near_hits;
        self.near_answers += other.near_answers;
        self.pushes_applied += other.pushes_applied;
        self.pushes_lost += other.pushes_lost;
        self.disconnects += other.disconnects;
        self.tracking_ons += other.tracking_ons;
        self.refused_connections += other.refused_connections;
        self.fills_tracked += other.fills_tracked;
        self.fills_unkept += other.fills_unkept;
        self.one_get_hits += other.one_get_hits;
        self.one_mget_hits += other.one_mget_hits;
        self.one_get_discarded += other.one_get_discarded;
        self.learning_reads += other.learning_reads;
        self.inband_applied += other.inband_applied;
        self.inband_lost += other.inband_lost;
        self.plain_sets += other.plain_sets;
        self.plain_sets_redone += other.plain_sets_redone;
        self.learning_sets += other.learning_sets;
        self.ghost_reads += other.ghost_reads;
    }
}

/// Runs one seed.
pub fn run(config: &Config) -> Run {
    crate::mutants::set(config.mutant);
    let run = world::World::new(config.seed).run(config);
    crate::mutants::set(None);
    crate::clock::set_virtual(None);
    run
}

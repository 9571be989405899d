//! The deterministic simulator: many seeds of processes, callers and faults against a model of
//! Redis, every promise checked after every step (`rtc_core::__simulation`).
//!
//! - `RTC_SIM_SEED=<n>` replays one seed; `RTC_SIM_STEPS=<n>` sets the steps per seed;
//!   `RTC_SIM_SEEDS=<n>` the number of seeds.
//! - `RTC_SIM_MUTANT=stamp|lock|unversioned|tombstone|stale|near|inband|untracked|lineage` breaks one rule of
//!   the real code: the run must then fail, printing the seed and the last steps
//!   (`RTC_SIM_TRACE=<n>` shows the last n).
//! - `RTC_SIM_EVICT_LINEAGES=1` lets the server evict keys that hold a delete's lineage, a gap
//!   RELIABILITY.md documents (the run then finds it).

use std::time::Instant;

use rtc_core::__simulation::{run, Config, Coverage, Mutant, Run};

const SEEDS: u64 = 2_000;
const STEPS: u64 = 2_000;

fn env(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {value:?}")),
    )
}

/// Runs `seeds` with `steps` each, stopping at the first violation.
fn explore(
    seeds: impl Iterator<Item = u64>,
    steps: u64,
    mutant: Option<Mutant>,
) -> (Vec<Run>, u64) {
    let mut runs = Vec::new();
    let mut total = 0;
    for seed in seeds {
        let done = run(&Config {
            seed,
            steps,
            mutant,
        });
        total += done.steps;
        let broken = done.violation.is_some();
        runs.push(done);
        if broken {
            break;
        }
    }
    (runs, total)
}

#[test]
fn no_seed_breaks_a_promise() {
    let mutant = std::env::var("RTC_SIM_MUTANT").ok().map(|name| {
        Mutant::named(&name).unwrap_or_else(|| {
            panic!("no mutant named {name:?} (stamp, lock, unversioned, tombstone, stale, near, inband, untracked, lineage)")
        })
    });
    let steps = env("RTC_SIM_STEPS").unwrap_or(STEPS);
    let seeds: Box<dyn Iterator<Item = u64>> = match env("RTC_SIM_SEED") {
        Some(seed) => Box::new(std::iter::once(seed)),
        None => Box::new(0..env("RTC_SIM_SEEDS").unwrap_or(SEEDS)),
    };
    let started = Instant::now();
    let (runs, total) = explore(seeds, steps, mutant);
    let calls: u64 = runs.iter().map(|run| run.calls).sum();
    let computations: u64 = runs.iter().map(|run| run.computations).sum();
    let invalidations: u64 = runs.iter().map(|run| run.invalidations).sum();
    let deletes: u64 = runs.iter().map(|run| run.deletes).sum();
    let violations = runs.iter().filter(|run| run.violation.is_some()).count();
    let mut coverage = Coverage::default();
    for run in &runs {
        coverage += run.coverage;
    }
    println!(
        "steps: {total}, seeds: {}, violations: {violations} ({calls} calls, {computations} \
         computations, {invalidations} invalidations of which {deletes} deletes, {:.1?})",
        runs.len(),
        started.elapsed()
    );
    println!("{coverage:?}");
    if let Some(violation) = runs.iter().find_map(|run| run.violation.as_ref()) {
        panic!("{violation}");
    }
}

/// The checks can fail: each mutant of the real code is caught within a few seeds.
#[test]
fn every_mutant_is_caught() {
    for mutant in [
        Mutant::Stamp,
        Mutant::Lock,
        Mutant::Unversioned,
        Mutant::Tombstone,
        Mutant::Stale,
        Mutant::Near,
        Mutant::Inband,
        Mutant::Untracked,
        Mutant::Lineage,
    ] {
        let (runs, _) = explore(0..SEEDS, STEPS, Some(mutant));
        let caught = runs.iter().find_map(|run| run.violation.as_ref());
        assert!(
            caught.is_some(),
            "the {mutant:?} mutant survived {SEEDS} seeds"
        );
    }
}

/// What 50 seeds exercised, none of them breaking a promise.
fn covered_by_a_few_seeds() -> Coverage {
    let (runs, _) = explore(0..50, STEPS, None);
    let mut coverage = Coverage::default();
    for run in &runs {
        assert!(run.violation.is_none(), "{:?}", run.violation);
        coverage += run.coverage;
    }
    coverage
}

/// In-band tracking is exercised: a few seeds make one-`GET` (and one-`MGET`) hits, discard some, learn, and
/// apply and lose in-band messages (a quiet model would check nothing).
#[test]
fn in_band_paths_are_taken() {
    let coverage = covered_by_a_few_seeds();
    assert!(coverage.one_get_hits > 0, "{coverage:?}");
    assert!(coverage.one_mget_hits > 0, "{coverage:?}");
    assert!(coverage.one_get_discarded > 0, "{coverage:?}");
    assert!(coverage.learning_reads > 0, "{coverage:?}");
    assert!(coverage.inband_applied > 0, "{coverage:?}");
    assert!(coverage.inband_lost > 0, "{coverage:?}");
}

/// `set`s go as one plain `SET` when their tags are known in-band, and some are written again
/// by the script because a change to a tag came ahead of the reply; others learn their tags
/// with their script.
#[test]
fn plain_sets_are_taken() {
    let coverage = covered_by_a_few_seeds();
    assert!(coverage.plain_sets > 0, "{coverage:?}");
    assert!(coverage.plain_sets_redone > 0, "{coverage:?}");
    assert!(coverage.learning_sets > 0, "{coverage:?}");
}

/// Reads on a data connection are run twice now and then, a copy first whose reply nobody
/// reads, as when the leader of their pipeline gave up and they were sent again.
#[test]
fn reads_sent_twice_are_run_twice() {
    let coverage = covered_by_a_few_seeds();
    assert!(coverage.ghost_reads > 0, "{coverage:?}");
}

/// Near fills take both ways under `OPTIN`: on the fills' connection (their keys then
/// tracked for it), and, while it is not lent, on a data connection, not kept.
#[test]
fn near_fills_take_both_ways() {
    let coverage = covered_by_a_few_seeds();
    assert!(coverage.fills_tracked > 0, "{coverage:?}");
    assert!(coverage.fills_unkept > 0, "{coverage:?}");
    assert!(coverage.near_hits > 0, "{coverage:?}");
}

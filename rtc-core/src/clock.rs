//! Monotonic time: milliseconds that fit in an atomic, and the deadlines a hit checks.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Milliseconds since the first call in this process: a clock that fits in an atomic.
pub(crate) fn now_ms() -> u64 {
    ms_at(Instant::now())
}

/// `instant` on the same clock, rounded down (0 for any instant before the first call).
pub(crate) fn ms_at(instant: Instant) -> u64 {
    let since = instant.saturating_duration_since(start());
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// How far behind the real time the coarse clock may be when a [`Deadline`] trusts it. Linux
/// moves it once per tick (1 to 10 ms), and a few ticks at most when the CPU that keeps time
/// stalls, so a second is two orders of magnitude of room.
const COARSE_LAG_ALLOWED: Duration = Duration::from_secs(1);

/// The coarse clock's finest step for it to be used at all.
const COARSE_STEP_ALLOWED: Duration = Duration::from_millis(10);

/// A point in time that a hit checks is still ahead: the entry's lifetime, or the near cache's
/// maximum age.
///
/// Reading the precise clock is a fifth of a near hit (about 30 ns on a virtual machine);
/// reading the coarse one, which moves once per tick, costs 7. So the coarse clock answers
/// while the deadline is more than [`COARSE_LAG_ALLOWED`] ahead by it, and the precise clock
/// decides the last stretch. The coarse clock is never ahead of the real time, so a lag of less
/// than that margin cannot make a passed deadline look ahead.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    at: Instant,
    /// While the coarse clock reads less than this, `at` is surely ahead (0: never trusted).
    coarse_until: u64,
}

impl Deadline {
    /// `lifetime` after `start`, an instant read before now (`None`: too far to represent,
    /// which is never).
    pub(crate) fn after(start: Instant, lifetime: Duration) -> Option<Self> {
        let at = start.checked_add(lifetime)?;
        // Read before the precise clock: the time left counted from this reading is then no
        // more than the real time left.
        let coarse = coarse_usable().then(coarse_nanos).flatten();
        let left = at.saturating_duration_since(Instant::now());
        let coarse_until = coarse.map_or(0, |coarse| {
            left.checked_sub(COARSE_LAG_ALLOWED)
                .and_then(|trusted| u64::try_from(trusted.as_nanos()).ok())
                .map_or(0, |trusted| coarse.saturating_add(trusted))
        });
        Some(Self { at, coarse_until })
    }

    /// The deadline has not passed (the coarse clock is read only while it is trusted).
    pub(crate) fn is_ahead(&self) -> bool {
        (self.coarse_until > 0 && coarse_nanos().is_some_and(|coarse| coarse < self.coarse_until))
            || Instant::now() < self.at
    }
}

/// The coarse monotonic clock in nanoseconds: never ahead of the real time, behind it by up to
/// a tick (`None`: there is none, or it could not be read).
#[cfg(target_os = "linux")]
fn coarse_nanos() -> Option<u64> {
    clock_nanos(libc::clock_gettime, libc::CLOCK_MONOTONIC_COARSE)
}

/// A `clock_gettime` or `clock_getres` of `clock`, in nanoseconds (`None`: it failed).
#[cfg(target_os = "linux")]
#[inline]
fn clock_nanos(
    call: unsafe extern "C" fn(libc::clockid_t, *mut libc::timespec) -> libc::c_int,
    clock: libc::clockid_t,
) -> Option<u64> {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: both calls write one timespec, and `time` is a valid one to write into.
    if unsafe { call(clock, &mut time) } != 0 {
        return None;
    }
    let seconds = u64::try_from(time.tv_sec).ok()?;
    let nanos = u64::try_from(time.tv_nsec).ok()?;
    seconds.checked_mul(1_000_000_000)?.checked_add(nanos)
}

#[cfg(not(target_os = "linux"))]
fn coarse_nanos() -> Option<u64> {
    None
}

/// The coarse clock moves in steps of [`COARSE_STEP_ALLOWED`] or finer (asked once).
#[cfg(target_os = "linux")]
fn coarse_usable() -> bool {
    static USABLE: OnceLock<bool> = OnceLock::new();
    *USABLE.get_or_init(|| {
        clock_nanos(libc::clock_getres, libc::CLOCK_MONOTONIC_COARSE)
            .is_some_and(|step| u128::from(step) <= COARSE_STEP_ALLOWED.as_nanos())
    })
}

#[cfg(not(target_os = "linux"))]
fn coarse_usable() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_is_ahead_until_it_passes() {
        let deadline = Deadline::after(Instant::now(), Duration::from_millis(30)).unwrap();
        assert!(deadline.is_ahead());
        std::thread::sleep(Duration::from_millis(40));
        assert!(!deadline.is_ahead());
    }

    #[test]
    fn the_coarse_clock_decides_only_far_from_the_deadline() {
        let near = Deadline::after(Instant::now(), COARSE_LAG_ALLOWED).unwrap();
        assert_eq!(
            near.coarse_until, 0,
            "within the allowed lag: the precise clock"
        );
        let far = Deadline::after(Instant::now(), Duration::from_secs(60)).unwrap();
        if coarse_usable() {
            let coarse = coarse_nanos().unwrap();
            let trusted = far.coarse_until - coarse;
            assert!(trusted <= 59_000_000_000 && trusted > 58_000_000_000);
            assert!(far.is_ahead());
        } else {
            assert_eq!(far.coarse_until, 0);
        }
    }

    #[test]
    fn a_deadline_counted_from_an_earlier_start_passes_from_it() {
        let start = Instant::now() - Duration::from_secs(5);
        let passed = Deadline::after(start, Duration::from_secs(3)).unwrap();
        assert!(!passed.is_ahead());
        assert_eq!(passed.coarse_until, 0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_coarse_clock_is_never_ahead_of_the_precise_one() {
        for _ in 0..10_000 {
            let coarse = coarse_nanos().unwrap();
            let precise = clock_nanos(libc::clock_gettime, libc::CLOCK_MONOTONIC).unwrap();
            assert!(coarse <= precise);
            assert!(precise - coarse < COARSE_LAG_ALLOWED.as_nanos() as u64);
        }
    }
}

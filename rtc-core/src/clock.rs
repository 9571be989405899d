//! Monotonic time: milliseconds that fit in an atomic, and the deadlines a hit checks.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Milliseconds since the first call in this process: a clock that fits in an atomic.
pub(crate) fn now_ms() -> u64 {
    ms_at(now())
}

/// The precise clock's reading: `Instant::now()`, or the simulator's virtual time on a thread
/// that runs a simulation (feature `simulation`), so that the near cache's deadlines and
/// maximum age pass as the simulated world's time does.
#[inline]
pub(crate) fn now() -> Instant {
    #[cfg(feature = "simulation")]
    if let Some(now) = virtual_now() {
        return now;
    }
    Instant::now()
}

#[cfg(feature = "simulation")]
thread_local! {
    /// The simulator's virtual time on this thread, while it runs a seed.
    static VIRTUAL: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// The simulator's virtual time on this thread, if it set one.
#[cfg(feature = "simulation")]
fn virtual_now() -> Option<Instant> {
    VIRTUAL.with(std::cell::Cell::get)
}

/// Sets (or, with `None`, clears) the virtual time [`now`] reads on this thread.
#[cfg(feature = "simulation")]
pub(crate) fn set_virtual(now: Option<Instant>) {
    VIRTUAL.with(|time| time.set(now));
}

/// `instant` on the same clock, rounded down (0 for any instant before the first call).
pub(crate) fn ms_at(instant: Instant) -> u64 {
    let since = instant.saturating_duration_since(start());
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// [`now_ms`], bounded without reading the precise clock (see [`now_ms_bounds`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MsBounds {
    /// No later than [`now_ms`] would read: a time something was sent at.
    pub lower: u64,
    /// No earlier than [`now_ms`] would read: what a bound is checked to be still ahead of.
    pub upper: u64,
}

impl MsBounds {
    fn exactly(now: u64) -> Self {
        Self {
            lower: now,
            upper: now,
        }
    }
}

/// [`now_ms`] bounded below and above by the coarse clock, which costs a quarter of the precise
/// one: its reading is never ahead of the real time, and behind it by less than
/// [`COARSE_LAG_ALLOWED`]. Checks whose bounds are usually hours ahead (the versions a
/// connection knows, each good until its tag's time to live runs out) compare them with
/// `upper`, so a bound within the lag counts as passed; a time a request was sent is `lower`,
/// so what is computed from it ends no later than it should. Both are [`now_ms`] where the
/// coarse clock is not used, or on the simulator's virtual time.
pub(crate) fn now_ms_bounds() -> MsBounds {
    match coarse_reading_and_start() {
        Some((coarse, start_raw)) => bounds_of_coarse(coarse, start_raw),
        None => MsBounds::exactly(now_ms()),
    }
}

/// An instant no later than now, from the coarse clock where it is used (else the precise
/// one): for the start of a wait whose end it sets, which then ends no later than it should.
pub(crate) fn coarse_now() -> Instant {
    coarse_reading_and_start()
        .and_then(|(coarse, start_raw)| instant_of_coarse(coarse, start_raw))
        .unwrap_or_else(now)
}

/// [`coarse_reading`] and where the monotonic clock stood at [`start`] ([`start_raw_nanos`]),
/// when both are known: what a coarse reading is turned into a time of [`start`]'s with.
fn coarse_reading_and_start() -> Option<(u64, u64)> {
    coarse_reading().zip(start_raw_nanos())
}

/// The coarse clock's reading, where it is used: `None` where it is too coarse or cannot be
/// read, and on the simulator's virtual time (the coarse clock reads real time, which means
/// nothing there).
fn coarse_reading() -> Option<u64> {
    #[cfg(feature = "simulation")]
    if virtual_now().is_some() {
        return None;
    }
    coarse_usable().then(coarse_nanos).flatten()
}

/// The instant of a coarse reading, given where the clock stood at [`start`], less a
/// millisecond for the error of [`start_raw_nanos`] (`None`: before [`start`]).
fn instant_of_coarse(coarse: u64, start_raw: u64) -> Option<Instant> {
    let since = Duration::from_nanos(coarse.checked_sub(start_raw)?);
    start()
        .checked_add(since)?
        .checked_sub(Duration::from_millis(1))
}

/// The bounds of [`now_ms`] given a coarse reading and where the clock stood at [`start`], both
/// in nanoseconds of the monotonic clock. A millisecond each way covers the rounding and the
/// error of [`start_raw_nanos`].
fn bounds_of_coarse(coarse: u64, start: u64) -> MsBounds {
    let ms = coarse.saturating_sub(start) / 1_000_000;
    let lag = u64::try_from(COARSE_LAG_ALLOWED.as_millis()).unwrap_or(u64::MAX);
    MsBounds {
        lower: ms.saturating_sub(1),
        upper: ms.saturating_add(lag).saturating_add(1),
    }
}

/// Where the monotonic clock (which both [`Instant`] and the coarse clock read on Linux) stood at
/// [`start`], in nanoseconds: read once, between two raw readings less than 100 µs apart
/// (`None`: never that close in a few tries, or no such clock).
#[cfg(target_os = "linux")]
fn start_raw_nanos() -> Option<u64> {
    static RAW: OnceLock<Option<u64>> = OnceLock::new();
    *RAW.get_or_init(|| {
        let start = start();
        (0..8).find_map(|_| {
            let before = clock_nanos(libc::clock_gettime, libc::CLOCK_MONOTONIC)?;
            let since = Instant::now().saturating_duration_since(start);
            let after = clock_nanos(libc::clock_gettime, libc::CLOCK_MONOTONIC)?;
            (after.saturating_sub(before) < 100_000)
                .then(|| before.checked_sub(u64::try_from(since.as_nanos()).ok()?))
                .flatten()
        })
    })
}

#[cfg(not(target_os = "linux"))]
fn start_raw_nanos() -> Option<u64> {
    None
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
        // Read before the precise clock: the time left counted from this reading is then no
        // more than the real time left.
        let coarse = coarse_reading();
        Self::after_readings(start, lifetime, coarse, now())
    }

    /// [`Deadline::after`], given what the coarse clock read (`None`: it is not used) and what
    /// the precise one read after it.
    fn after_readings(
        start: Instant,
        lifetime: Duration,
        coarse: Option<u64>,
        now: Instant,
    ) -> Option<Self> {
        let at = start.checked_add(lifetime)?;
        let left = at.saturating_duration_since(now);
        let coarse_until = coarse.map_or(0, |coarse| {
            left.checked_sub(COARSE_LAG_ALLOWED)
                .and_then(|trusted| u64::try_from(trusted.as_nanos()).ok())
                .map_or(0, |trusted| coarse.saturating_add(trusted))
        });
        Some(Self { at, coarse_until })
    }

    /// The deadline has not passed (the coarse clock is read only while it is trusted).
    pub(crate) fn is_ahead(&self) -> bool {
        self.is_ahead_by(coarse_nanos, now)
    }

    /// [`Deadline::is_ahead`] by these clocks: the precise one is read only when the coarse
    /// one does not decide.
    #[inline]
    fn is_ahead_by(
        &self,
        coarse: impl FnOnce() -> Option<u64>,
        precise: impl FnOnce() -> Instant,
    ) -> bool {
        (self.coarse_until > 0 && coarse().is_some_and(|coarse| coarse < self.coarse_until))
            || precise() < self.at
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

    #[cfg(feature = "simulation")]
    #[test]
    fn on_virtual_time_a_deadline_passes_with_the_virtual_clock_only() {
        let start = Instant::now();
        set_virtual(Some(start));
        let deadline = Deadline::after(start, Duration::from_secs(60)).unwrap();
        assert!(deadline.is_ahead());
        assert_eq!(now(), start);
        set_virtual(Some(start + Duration::from_secs(60)));
        assert!(!deadline.is_ahead(), "passed on virtual time");
        set_virtual(None);
        assert!(deadline.is_ahead(), "real time has not moved a minute");
    }

    /// A coarse clock's reading, in nanoseconds: any value will do, time is virtual here.
    const COARSE: u64 = 1_000_000_000_000;

    fn nanos(duration: Duration) -> u64 {
        u64::try_from(duration.as_nanos()).unwrap()
    }

    /// Fails the test if the precise clock is read.
    fn unread() -> Instant {
        panic!("the coarse clock decides: the precise one is not read")
    }

    #[test]
    fn the_coarse_bounds_hold_the_precise_reading_between_them() {
        for _ in 0..1000 {
            let bounds = now_ms_bounds();
            let precise = now_ms();
            let later = now_ms_bounds();
            assert!(bounds.lower <= precise, "{bounds:?} against {precise}");
            assert!(precise <= later.upper, "{later:?} against {precise}");
        }
    }

    #[test]
    fn the_coarse_bounds_allow_the_lag_and_a_millisecond_each_way() {
        let start = 5_000_000_000;
        let bounds = bounds_of_coarse(start + 2_500_400_000, start);
        assert_eq!(
            bounds,
            MsBounds {
                lower: 2_499,
                upper: 3_501
            }
        );
        // A reading before the start (never, but not a wrap either).
        assert_eq!(
            bounds_of_coarse(0, start),
            MsBounds {
                lower: 0,
                upper: 1_001
            }
        );
    }

    #[test]
    fn the_coarse_instant_is_never_ahead_of_the_precise_one() {
        for _ in 0..1000 {
            let coarse = coarse_now();
            assert!(coarse <= Instant::now());
        }
        let start_raw = 5_000_000_000;
        assert_eq!(instant_of_coarse(start_raw - 1, start_raw), None);
        let at = instant_of_coarse(start_raw + 3_000_000, start_raw);
        assert_eq!(at, start().checked_add(Duration::from_millis(2)));
    }

    #[cfg(feature = "simulation")]
    #[test]
    fn on_virtual_time_the_bounds_are_the_virtual_reading() {
        set_virtual(Some(start() + Duration::from_secs(7)));
        assert_eq!(
            now_ms_bounds(),
            MsBounds {
                lower: 7_000,
                upper: 7_000
            }
        );
        assert_eq!(coarse_now(), start() + Duration::from_secs(7));
        set_virtual(None);
    }

    #[test]
    fn a_deadline_is_ahead_until_it_passes() {
        let start = Instant::now();
        let deadline = Deadline::after_readings(start, Duration::from_millis(30), None, start)
            .expect("representable");
        let at = |millis| move || start + Duration::from_millis(millis);
        assert!(deadline.is_ahead_by(|| None, at(0)));
        assert!(deadline.is_ahead_by(|| None, at(29)));
        assert!(!deadline.is_ahead_by(|| None, at(30)), "passed at 30 ms");
        assert!(!deadline.is_ahead_by(|| None, at(40)));
    }

    #[test]
    fn the_coarse_clock_decides_only_far_from_the_deadline() {
        let start = Instant::now();
        let near = Deadline::after_readings(start, COARSE_LAG_ALLOWED, Some(COARSE), start)
            .expect("representable");
        // Within the allowed lag: the precise clock decides, even with the coarse clock still
        // reading what it read when the deadline was set.
        let precise = |millis| move || start + Duration::from_millis(millis);
        assert!(near.is_ahead_by(|| Some(COARSE), precise(999)));
        assert!(!near.is_ahead_by(|| Some(COARSE), precise(1000)));
        let far = Deadline::after_readings(start, Duration::from_secs(60), Some(COARSE), start)
            .expect("representable");
        assert_eq!(far.coarse_until, COARSE + nanos(Duration::from_secs(59)));
        // Far from it, the coarse clock answers alone.
        assert!(far.is_ahead_by(|| Some(COARSE + nanos(Duration::from_secs(58))), unread));
        // Within the allowed lag of it, the precise clock decides.
        let coarse = || Some(COARSE + nanos(Duration::from_secs(59)));
        assert!(far.is_ahead_by(coarse, precise(59_999)));
        assert!(!far.is_ahead_by(coarse, precise(60_000)));
        // A coarse clock that cannot be read leaves the decision to the precise one.
        assert!(!far.is_ahead_by(|| None, precise(60_000)));
    }

    #[test]
    fn time_between_the_two_readings_shortens_what_the_coarse_clock_is_trusted_for() {
        let start = Instant::now();
        // The precise clock read 2 s after the coarse one (a thread descheduled between them).
        let later = start + Duration::from_secs(2);
        let deadline =
            Deadline::after_readings(start, Duration::from_secs(60), Some(COARSE), later)
                .expect("representable");
        assert_eq!(
            deadline.coarse_until,
            COARSE + nanos(Duration::from_secs(57))
        );
    }

    #[test]
    fn a_deadline_counted_from_an_earlier_start_passes_from_it() {
        let start = Instant::now() - Duration::from_secs(5);
        let passed = Deadline::after(start, Duration::from_secs(3)).unwrap();
        assert!(!passed.is_ahead());
        assert_eq!(passed.coarse_until, 0);
    }

    /// What [`Deadline`] relies on: read after the precise clock, the coarse clock is not
    /// behind it by more than the allowed lag; read before it, it is not ahead of it. Neither
    /// can fail because the thread was descheduled between the readings: that only makes the
    /// later reading larger.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_coarse_clock_is_never_ahead_of_the_precise_one_nor_far_behind() {
        let precise = || clock_nanos(libc::clock_gettime, libc::CLOCK_MONOTONIC).unwrap();
        for _ in 0..10_000 {
            let before = precise();
            let coarse = coarse_nanos().unwrap();
            let after = precise();
            assert!(coarse <= after);
            assert!(before.saturating_sub(coarse) < nanos(COARSE_LAG_ALLOWED));
        }
    }
}

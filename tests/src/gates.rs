//! Explicit ordering between the threads of a test: a step waits for an event, never for a
//! length of time that usually suffices.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a test waits for an event before it fails: far beyond any scheduling delay, so
/// reaching it means the event never came.
pub const EVENT_LIMIT: Duration = Duration::from_secs(30);

/// Polls `condition` until it holds; returns how long that took, or panics after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    started.elapsed()
}

/// A one-way signal between threads: closed until [`Latch::open`], then open for good.
///
/// ```
/// use rtc_tests::gates::Latch;
///
/// let started = Latch::default();
/// std::thread::scope(|scope| {
///     scope.spawn(|| started.open());
///     started.wait("the thread started");
/// });
/// assert!(started.is_open());
/// ```
#[derive(Default)]
pub struct Latch {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Latch {
    /// A closed latch; `const`, so that a `static` can hold one for a decorated function's body.
    pub const fn new() -> Self {
        Self {
            open: Mutex::new(false),
            opened: Condvar::new(),
        }
    }

    /// Opens the latch and wakes everyone waiting on it.
    pub fn open(&self) {
        *self.open.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.opened.notify_all();
    }

    /// Whether the latch was opened.
    pub fn is_open(&self) -> bool {
        *self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks until the latch is open.
    ///
    /// # Panics
    /// After [`EVENT_LIMIT`], naming `what` was awaited.
    pub fn wait(&self, what: &str) {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let (open, _) = self
            .opened
            .wait_timeout_while(open, EVENT_LIMIT, |open| !*open)
            .unwrap_or_else(PoisonError::into_inner);
        assert!(*open, "{what}: not within {EVENT_LIMIT:?}");
    }
}

/// An instant `delay` from now, and the same as Unix milliseconds for a child process's command
/// line ([`instant_of_millis`]): threads of several processes start together at it.
pub fn start_instant(delay: Duration) -> (std::time::SystemTime, String) {
    let at = std::time::SystemTime::now() + delay;
    let millis = at
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    (at, millis.to_string())
}

/// The instant [`start_instant`] wrote as milliseconds.
pub fn instant_of_millis(millis: &str) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::from_millis(millis.parse().expect("Unix milliseconds"))
}

/// Sleeps until `at` (returns at once if it passed).
pub fn sleep_until(at: std::time::SystemTime) {
    if let Ok(wait) = at.duration_since(std::time::SystemTime::now()) {
        std::thread::sleep(wait);
    }
}

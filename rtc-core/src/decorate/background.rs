//! Computations that outlive their call: the background refresh of `stale_while_revalidate`,
//! and a computation past its `timeout` that finishes and stores its value after its call has
//! returned a stale one. Both need the function's arguments to be owned (`#[cached]` refuses
//! these options otherwise), so the work is `Send + 'static`.
//!
//! A refresh has one driver, the blocking one ([`Background::revalidate`]), whichever kind of
//! function it refreshes: a blocking function's refresh runs on a thread of its own; an async
//! function's on the current tokio runtime's blocking pool, its body awaited there with
//! `Handle::block_on`, or, without a runtime (another executor), on a thread of its own with
//! `futures_executor::block_on`. A refresh that panics is contained: one warning, the entry's
//! flight lands nothing, its Redis lock is released, and the next call that finds the entry
//! stale refreshes it again. Only the stale hit that leads the entry's flight starts a refresh
//! (the protocol joins the flight on the caller's thread), so stale hits during a refresh start
//! no thread or task ([`CacheStats::refreshes`](crate::CacheStats::refreshes) counts those
//! started). A late computation of an async function runs on a task of the current runtime
//! (without one, `timeout` does not apply), and stores its value from the blocking pool.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::outcome::{encoded, Outcome, ValueCodec};
use super::protocol::{CallFlow, Mode, Yield};
use super::stale::Windows;
use super::{Driven, Report};
use crate::cache::flights::Leader;
use crate::cache::TaggedCache;
use crate::engine::{Operation, Reply, Single};
use crate::format::{EntryKeys, Observed};
use crate::hook::CacheInfo;
use crate::lifetime::Lifetime;
use tracing::instrument::WithSubscriber;

/// What a refresh or a late store needs, owned.
pub(super) struct Background<V> {
    pub cache: TaggedCache,
    pub keys: EntryKeys,
    pub codec: ValueCodec<V>,
    pub lifetime: Lifetime,
    pub lock_timeout: Option<Duration>,
    pub windows: Windows,
    pub function_name: &'static str,
}

impl<V: 'static> Background<V> {
    /// Refreshes the entry on a thread of its own, `leader` of its flight (the stale hit that
    /// starts the refresh joined it, so that stale hits during the refresh start nothing).
    pub(super) fn refresh<R>(self, leader: Leader, compute: impl FnOnce() -> R + Send + 'static)
    where
        R: Outcome<Value = V>,
        V: Send,
    {
        let function = self.function_name;
        // The refresh logs where its caller logs, even to a subscriber of the caller's thread.
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        let counters = self.cache.clone();
        let spawned = std::thread::Builder::new()
            .name("rtc-refresh".to_owned())
            .spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || self.revalidate(leader, compute));
            });
        match spawned {
            Ok(_) => counters.counters().refreshes.bump(),
            Err(error) => {
                tracing::warn!(function, "rtc: no thread for a background refresh: {error}");
            }
        }
    }

    /// Refreshes the entry of an async function, `leader` of its flight: its body is awaited on
    /// a thread of the current tokio runtime's blocking pool, or, without a runtime, on a thread
    /// of its own.
    pub(super) fn refresh_async<R, F>(self, leader: Leader, compute: F)
    where
        R: Outcome<Value = V> + Send + 'static,
        F: Future<Output = R> + Send + 'static,
        V: Send + Sync,
    {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let dispatch = tracing::dispatcher::get_default(Clone::clone);
                let handle = runtime.clone();
                self.cache.counters().refreshes.bump();
                runtime.spawn_blocking(move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        self.revalidate(leader, || handle.block_on(compute));
                    });
                });
            }
            // Another executor: the blocking refresh, its body awaited on its own thread.
            Err(_) => self.refresh(leader, move || futures_executor::block_on(compute)),
        }
    }

    /// The driver of a refresh: computes unless another process holds the entry's lock or it
    /// is fresh, then stores, and lands what it stored for this process's followers.
    fn revalidate<R: Outcome<Value = V>>(&self, leader: Leader, compute: impl FnOnce() -> R) {
        let mut driven = self.driven(leader);
        // A refresh never follows: it leads its flight from the start.
        if !matches!(driven.step(), Yield::Compute(_)) {
            return;
        }
        // Caught here, so that the warning comes before the entry's flight lands (and the
        // next call may refresh again) and its lock is released, as `driven` is dropped.
        let Ok(outcome) = catch_unwind(AssertUnwindSafe(compute)) else {
            return panicked(self.function_name);
        };
        driven.flow.computed(
            encoded(&self.codec, &self.cache, &outcome),
            outcome.failed(),
        );
        driven.step();
    }

    fn driven(&self, leader: Leader) -> Driven<'_, V> {
        let report = Report {
            started: Instant::now(),
            info: CacheInfo {
                function_name: self.function_name,
                ..CacheInfo::default()
            },
            counted: false,
        };
        let mode = Mode::Revalidate {
            lock_timeout: self.lock_timeout,
        };
        Driven {
            cache: &self.cache,
            flow: CallFlow::new(
                &self.cache,
                &self.keys,
                &self.codec,
                mode,
                self.lifetime,
                self.windows,
                report,
            )
            .refreshing(leader),
            blocking: true,
            first_step: None,
        }
    }

    /// Stores what a late computation produced, stamped with the versions its call read
    /// before it started.
    fn store_late(&self, observed: &Observed, bytes: &[u8]) {
        let write = self.write(observed, bytes);
        let written = self.cache.drive(Single::new(write));
        self.cache
            .count_write(written.is_ok_and(|reply| reply == Reply::Done(true)));
    }

    fn write<'a>(&'a self, observed: &'a Observed, bytes: &'a [u8]) -> Operation<'a> {
        self.cache.write_observed_operation(
            &self.keys.entry,
            observed,
            bytes,
            self.lifetime,
            self.windows.stored(),
        )
    }
}

/// Who stores a computation that runs on its own: its call, or (once the call stopped waiting
/// for it) the computation itself.
enum Handoff {
    /// The call waits for the value, and stores it.
    Awaited,
    /// The value is there; the call takes it.
    Finished,
    /// The call returned without it: the computation stores it with these versions.
    Late(Option<Observed>),
}

/// A computation started with a time limit.
pub(super) struct Timed<R> {
    handoff: Arc<Mutex<Handoff>>,
    join: Join<R>,
}

enum Join<R> {
    Thread(
        std::thread::JoinHandle<(R, Option<Vec<u8>>)>,
        std::sync::mpsc::Receiver<()>,
    ),
    Task(tokio::task::JoinHandle<(R, Option<Vec<u8>>)>),
}

/// What a timed computation gave in time: its outcome and the bytes to store.
pub(super) type Computed<R> = (R, Option<Vec<u8>>);

impl<V: Send + Sync + 'static> Background<V> {
    /// Starts `compute` on a thread of its own, for [`Timed::wait`]; `Err(compute)` when no
    /// thread could be started.
    pub(super) fn timed<R, F>(self, compute: F) -> Result<Timed<R>, F>
    where
        R: Outcome<Value = V> + Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let handoff = Arc::new(Mutex::new(Handoff::Awaited));
        let shared = Arc::clone(&handoff);
        // Dropped when the thread ends, however it ends: what the call waits on.
        let (done, ended) = std::sync::mpsc::channel::<()>();
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        // Taken back when no thread starts, to run in the call.
        let body = Arc::new(Mutex::new(Some(compute)));
        let function = self.function_name;
        let taken = Arc::clone(&body);
        let spawned = std::thread::Builder::new()
            .name("rtc-timed".to_owned())
            .spawn(move || {
                let _done = done;
                let _logging = tracing::dispatcher::set_default(&dispatch);
                let compute = taken.lock().unwrap_or_else(PoisonError::into_inner).take();
                let outcome =
                    compute.expect("the body is taken back only when no thread started")();
                let bytes = encoded(&self.codec, &self.cache, &outcome);
                if let Some((observed, bytes)) = self.settle(&shared, bytes.as_deref()) {
                    self.store_late(&observed, &bytes);
                }
                (outcome, bytes)
            });
        match spawned {
            Ok(thread) => Ok(Timed {
                handoff,
                join: Join::Thread(thread, ended),
            }),
            Err(error) => {
                tracing::warn!(
                    function,
                    "rtc: no thread for a computation with a timeout; it runs in the call: {error}"
                );
                let compute = body.lock().unwrap_or_else(PoisonError::into_inner).take();
                Err(compute.expect("no thread started to take the body"))
            }
        }
    }

    /// Starts `compute` on a task of the current tokio runtime, for [`Timed::wait_async`];
    /// `Err(compute)` without a runtime.
    pub(super) fn timed_async<R, F>(self, compute: F) -> Result<Timed<R>, F>
    where
        R: Outcome<Value = V> + Send + 'static,
        F: Future<Output = R> + Send + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(compute);
        };
        let handoff = Arc::new(Mutex::new(Handoff::Awaited));
        let shared = Arc::clone(&handoff);
        let task = runtime.spawn(
            async move {
                let outcome = compute.await;
                let bytes = encoded(&self.codec, &self.cache, &outcome);
                if let Some((observed, late)) = self.settle(&shared, bytes.as_deref()) {
                    let dispatch = tracing::dispatcher::get_default(Clone::clone);
                    tokio::task::spawn_blocking(move || {
                        tracing::dispatcher::with_default(&dispatch, || {
                            self.store_late(&observed, &late);
                        });
                    });
                }
                (outcome, bytes)
            }
            .with_current_subscriber(),
        );
        Ok(Timed {
            handoff,
            join: Join::Task(task),
        })
    }

    /// The computation is done: what it is to store itself, if its call left without it.
    fn settle(
        &self,
        handoff: &Mutex<Handoff>,
        bytes: Option<&[u8]>,
    ) -> Option<(Observed, Vec<u8>)> {
        let mut handoff = handoff.lock().unwrap_or_else(PoisonError::into_inner);
        match std::mem::replace(&mut *handoff, Handoff::Finished) {
            Handoff::Late(Some(observed)) => Some((observed, bytes?.to_vec())),
            _ => None,
        }
    }
}

impl<R> Timed<R> {
    /// Waits up to `timeout`: the outcome if it came in time (`Ok`), else `Err(self)` for
    /// [`Timed::late`].
    pub(super) fn wait(self, timeout: Duration) -> Result<Computed<R>, Self> {
        let Join::Thread(_, ended) = &self.join else {
            return Err(self);
        };
        match ended.recv_timeout(timeout) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(self),
            _ => Ok(self.join()),
        }
    }

    /// Async twin of [`Timed::wait`]; with no timeout, waits until the computation is done.
    pub(super) async fn wait_async(
        mut self,
        timeout: Option<Duration>,
    ) -> Result<Computed<R>, Self> {
        let Join::Task(task) = &mut self.join else {
            return Err(self);
        };
        let Some(timeout) = timeout else {
            return Ok(unwound(task.await));
        };
        let finished = futures_util::future::select(task, futures_timer::Delay::new(timeout)).await;
        match finished {
            futures_util::future::Either::Left((joined, _)) => Ok(unwound(joined)),
            futures_util::future::Either::Right(_) => Err(self),
        }
    }

    /// The call stops waiting: the computation is to store its value with `observed` when it
    /// is done. False when it finished meanwhile: the call takes its outcome after all
    /// ([`Timed::join`]).
    pub(super) fn hand_over(&self, observed: Option<Observed>) -> bool {
        let mut handoff = self.handoff.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*handoff, Handoff::Finished) {
            return false;
        }
        *handoff = Handoff::Late(observed);
        true
    }

    /// Blocks until the computation is done; a panic in it goes on in the caller.
    pub(super) fn join(self) -> Computed<R> {
        match self.join {
            Join::Thread(thread, _) => match thread.join() {
                Ok(computed) => computed,
                Err(panic) => std::panic::resume_unwind(panic),
            },
            Join::Task(_) => unreachable!("a task is awaited"),
        }
    }
}

/// A task's output; its panic goes on in the caller.
fn unwound<T>(joined: Result<T, tokio::task::JoinError>) -> T {
    match joined {
        Ok(output) => output,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // Only when the runtime shuts down under the call.
        Err(_) => std::panic::panic_any("rtc: the runtime shut down during the computation"),
    }
}

fn panicked(function: &'static str) {
    tracing::warn!(
        function,
        "rtc: a background refresh panicked; the stale entry stays, and the next call refreshes it"
    );
}

//! Which tokio runtime drives an async call's Redis I/O: the caller's, or, when the caller's has
//! no I/O or time driver, one of rtc's own.
//!
//! redis-rs opens sockets and arms timeouts on the current runtime, and tokio panics when that
//! runtime was built without the driver they need (`Builder::new_current_thread().build()`,
//! without `enable_all()`): the `expect`s in tokio's `runtime/driver.rs`. Tokio 1.x offers no
//! way to ask a runtime which drivers it has (tokio-rs/tokio#8361 asks for one), so rtc asks the
//! way tokio answers: once per runtime, a thread of its own enters the runtime, creates a timer
//! and registers a socket, and rtc watches whether that thread panics. The caller's thread
//! never unwinds; the panic hook prints tokio's message once, under that thread's name.
//!
//! A call made on a runtime without drivers is polled inside the context of rtc's own runtime
//! (one thread, both drivers, started on first need): its socket, its timers and the tasks
//! redis-rs spawns belong there, while the caller's runtime merely polls the call. Each reply
//! then crosses one thread, which is the price of working at all.
//!
//! Built with `panic = "abort"`, a probe that panics would abort the process, so every async
//! Redis call goes through rtc's own runtime instead.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::Either;
use tokio::runtime::{Handle, Id};

use crate::error::BackendError;
use crate::warnings::WarnLimiter;

/// Verdicts remembered, one per runtime; the oldest is forgotten past this.
const MAX_VERDICTS: usize = 64;

/// At most one warning about runtimes without drivers in this long.
static BARE_WARNINGS: WarnLimiter = WarnLimiter::new(Duration::from_secs(60));

thread_local! {
    /// The verdict on the runtime this thread asked about last.
    static LAST_VERDICT: Cell<Option<(Id, bool)>> = const { Cell::new(None) };
}

/// The runtime an async call's Redis I/O runs on.
pub(crate) struct IoRuntime {
    /// Keys the connections kept for that runtime.
    pub(crate) id: Id,
    /// rtc's own runtime, when the caller's lacks a driver.
    own: Option<Handle>,
}

impl IoRuntime {
    /// The current runtime if it has both drivers, else rtc's own.
    ///
    /// # Errors
    /// [`BackendError::NoRuntime`] outside any tokio runtime; [`BackendError::NoDrivers`] when
    /// rtc's own runtime is needed and could not be started.
    pub(crate) fn current() -> Result<Self, BackendError> {
        let caller = Handle::try_current().map_err(|_| BackendError::NoRuntime)?;
        if has_drivers(&caller) {
            return Ok(Self {
                id: caller.id(),
                own: None,
            });
        }
        let own = own_runtime().ok_or(BackendError::NoDrivers)?;
        Ok(Self {
            id: own.id(),
            own: Some(own),
        })
    }

    /// Whether this is the caller's runtime (not rtc's own).
    pub(crate) fn is_callers(&self) -> bool {
        self.own.is_none()
    }

    /// `work`, polled inside rtc's own runtime's context when the caller's lacks a driver.
    pub(crate) fn drive<F: Future>(&self, work: F) -> impl Future<Output = F::Output> {
        match &self.own {
            None => Either::Left(work),
            Some(own) => Either::Right(Entered {
                runtime: own.clone(),
                work: Box::pin(work),
            }),
        }
    }
}

/// A future polled inside another runtime's context.
pub(super) struct Entered<F> {
    runtime: Handle,
    work: Pin<Box<F>>,
}

impl<F> Entered<F> {
    /// `work`, polled inside `runtime`'s context (its sockets, timers and spawned tasks belong
    /// there), by whichever thread polls this future.
    pub(super) fn new(runtime: Handle, work: F) -> Self {
        Self {
            runtime,
            work: Box::pin(work),
        }
    }
}

impl<F: Future> Future for Entered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let _inside = this.runtime.enter();
        this.work.as_mut().poll(cx)
    }
}

/// Whether `runtime` has an I/O and a time driver: remembered per runtime, asked once.
fn has_drivers(runtime: &Handle) -> bool {
    let id = runtime.id();
    if let Some((last, verdict)) = LAST_VERDICT.get() {
        if last == id {
            return verdict;
        }
    }
    static VERDICTS: Mutex<Vec<(Id, bool)>> = Mutex::new(Vec::new());
    let known = VERDICTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .find(|(seen, _)| *seen == id)
        .map(|&(_, verdict)| verdict);
    let verdict = known.unwrap_or_else(|| {
        let verdict = probe(runtime);
        let mut verdicts = VERDICTS.lock().unwrap_or_else(PoisonError::into_inner);
        if verdicts.len() >= MAX_VERDICTS {
            verdicts.remove(0);
        }
        verdicts.push((id, verdict));
        if !verdict {
            warn_bare();
        }
        verdict
    });
    LAST_VERDICT.set(Some((id, verdict)));
    verdict
}

fn warn_bare() {
    if cfg!(panic = "unwind") {
        if let Some(held_back) = BARE_WARNINGS.permit() {
            tracing::warn!(
                held_back,
                "rtc: this tokio runtime has no I/O or no time driver (tokio's panic message \
                 above came from rtc's check, on a thread of its own); its calls to Redis run on \
                 a runtime of rtc's own, one thread hop slower. Build the runtime with \
                 enable_all() to avoid both"
            );
        }
    }
}

/// Enters `runtime` on a thread of its own, creates a timer and registers a socket: tokio
/// panics there if a driver is missing. `true` when nothing panicked, and when the check could
/// not be made (no thread, no socket): what rtc assumed before it checked.
#[cfg(panic = "unwind")]
fn probe(runtime: &Handle) -> bool {
    let runtime = runtime.clone();
    let checking = std::thread::Builder::new()
        .name("rtc: checks that this tokio runtime has I/O and time drivers".into())
        .spawn(move || {
            let _inside = runtime.enter();
            drop(tokio::time::sleep(Duration::ZERO));
            let socket = std::net::UdpSocket::bind(("127.0.0.1", 0))?;
            socket.set_nonblocking(true)?;
            tokio::net::UdpSocket::from_std(socket).map(drop)
        });
    match checking {
        Ok(thread) => thread.join().is_ok(),
        Err(_) => true,
    }
}

/// A probe would abort the process: every runtime counts as lacking a driver.
#[cfg(not(panic = "unwind"))]
fn probe(_: &Handle) -> bool {
    false
}

/// rtc's own runtime, started on first need: one thread with both drivers, running for the
/// rest of the process. `None` if it could not be started.
pub(super) fn own_runtime() -> Option<Handle> {
    static OWN: OnceLock<Option<Handle>> = OnceLock::new();
    OWN.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("rtc-redis-io".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .ok()?;
        Some(handle)
    })
    .clone()
}

//! The connection that the near cache's fills read on (to one server, or to the primary behind
//! Sentinel that the tracker found), lent by the tracker.
//!
//! With `CLIENT TRACKING ON OPTIN`, Redis announces a change to a key only to the connections
//! that read it right after `CLIENT CACHING YES`, and only once (the key is tracked again when
//! it is read again). So a near fill reads its entry and tags on this connection, prefixed with
//! `CLIENT CACHING YES`; the connection tracks with `REDIRECT` to the tracker's first
//! connection, so the next change to any of those keys is announced there, where the messages
//! end the near cache's watches. A process hears only of the keys it holds near, instead of
//! every write of the namespace (`BCAST`). This connection is read by rtc's I/O thread, never by
//! the thread that applies the messages (ARCHITECTURE.md says why).
//!
//! The tracking driver lends the connection once tracking is on, and withdraws it when its life
//! ends. A fill that finds no connection lent (tracking is being set up again), or whose read on
//! it fails, is read on a data connection without asking for the keys' times to live, so that
//! its reply is never kept near ([`crate::near::NearCache::keep`] keeps nothing whose expiry is
//! unknown): the caller still gets its answer.

use std::future::Future;
use std::sync::{Mutex, PoisonError};

use redis::aio::MultiplexedConnection;
use redis::{Cmd, RedisResult, Value};
use tokio::runtime::Handle;

use super::super::runtime::Entered;

/// The connection lent, and the runtime whose task reads it.
#[derive(Clone)]
struct Lent {
    connection: MultiplexedConnection,
    runtime: Handle,
}

/// Where the tracking driver lends the fills' connection (one per Redis store).
#[derive(Default)]
pub(crate) struct FillConnection {
    lent: Mutex<Option<Lent>>,
}

impl FillConnection {
    /// Lends `connection`, whose `CLIENT TRACKING ON REDIRECT ... OPTIN` was acknowledged,
    /// driven by `runtime`.
    pub(super) fn lend(&self, connection: MultiplexedConnection, runtime: Handle) {
        let lent = Lent {
            connection,
            runtime,
        };
        *self.lent.lock().unwrap_or_else(PoisonError::into_inner) = Some(lent);
    }

    /// Tracking's life ended: fills go to the data connections (and are not kept) until the
    /// next connection is lent.
    pub(super) fn withdraw(&self) {
        *self.lent.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The replies to `commands`, sent after `CLIENT CACHING YES` on the lent connection so
    /// that Redis tracks what they read for the near cache; `None` when none is lent. The future
    /// is polled inside the context of the runtime whose task reads that connection, by
    /// whoever polls it: the async driver awaits it, the blocking one blocks on it (each command
    /// is bounded by the connection's response timeout).
    pub(crate) fn send(
        &self,
        commands: &[Cmd],
    ) -> Option<impl Future<Output = RedisResult<Vec<Value>>> + Send + 'static> {
        let Lent {
            mut connection,
            runtime,
        } = self
            .lent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        let mut pipeline = redis::pipe();
        pipeline.cmd("CLIENT").arg("CACHING").arg("YES").ignore();
        for command in commands {
            pipeline.add_command(command.clone());
        }
        Some(Entered::new(runtime, async move {
            pipeline.query_async(&mut connection).await
        }))
    }
}

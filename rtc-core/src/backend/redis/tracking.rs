//! Redis's invalidation messages for the near cache.
//!
//! One connection of its own per server (a thread running a one-thread tokio runtime, so that
//! blocking and async users alike get it) turns on `CLIENT TRACKING ... BCAST` for the
//! namespace's entry and tag key prefixes: Redis then announces every change to any of those
//! keys, by any client, on this connection (RESP3 push messages). Each announcement ends the
//! near cache's watches on the keys it names; a flushed database ends them all. While the
//! connection is not up and tracking (before the first connect, after a drop, a failed
//! heartbeat or a restart of the server) the near cache is distrusted: it serves and keeps
//! nothing until tracking is on again.
//!
//! `BCAST` rather than the default mode: the server keeps no per-key table for us (so
//! `tracking-table-max-keys` never evicts our keys), and reads may go on any connection (the
//! pooled and multiplexed ones), with no `REDIRECT` to keep in step with their reconnects. The
//! cost is one message per write to the namespace's entries and tags, whether this process
//! read that key or not (ARCHITECTURE.md weighs it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, PushInfo, PushKind, RedisResult, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use crate::near::NearCache;

/// How often an idle tracking connection is checked with a `PING`.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// The first pause after a failed connect; doubled on each failure up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// Keeps one server's invalidation messages flowing into a near cache; stops when dropped.
pub(crate) struct Tracker {
    stop: Arc<AtomicBool>,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl Tracker {
    /// Starts tracking keys under `prefixes` on the server `client` connects to (a RESP3
    /// client). `response_timeout` bounds each command, the heartbeat included.
    pub(crate) fn start(
        client: Client,
        prefixes: Vec<String>,
        near: &Arc<NearCache>,
        response_timeout: Duration,
        connect_timeout: Duration,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let session = Session {
            client,
            prefixes,
            near: Arc::downgrade(near),
            stop: stop.clone(),
            config: AsyncConnectionConfig::new()
                .set_response_timeout(Some(response_timeout))
                .set_connection_timeout(Some(connect_timeout)),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("rtc-near-tracking".to_owned())
            .spawn(move || runtime.block_on(session.run()))?;
        Ok(Self { stop })
    }
}

struct Session {
    client: Client,
    prefixes: Vec<String>,
    near: Weak<NearCache>,
    stop: Arc<AtomicBool>,
    config: AsyncConnectionConfig,
}

impl Session {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire) || self.near.strong_count() == 0
    }

    fn distrust(&self) {
        if let Some(near) = self.near.upgrade() {
            near.distrust();
        }
    }

    /// Tracks until stopped, reconnecting (with growing pauses) whenever tracking is lost.
    async fn run(self) {
        let mut pause = FIRST_PAUSE;
        let mut reported = false;
        while !self.stopped() {
            let result = self.track().await;
            self.distrust();
            match result {
                Ok(()) => {
                    if !self.stopped() {
                        tracing::warn!(
                            "rtc: the near cache's tracking connection was lost; the near cache is off until it is back"
                        );
                    }
                    reported = false;
                    pause = FIRST_PAUSE;
                }
                Err(error) => {
                    if !reported {
                        tracing::warn!(
                            "rtc: near cache tracking could not be set up ({error}); the near cache is off until it is"
                        );
                        reported = true;
                    }
                    pause = (pause * 2).min(MAX_PAUSE);
                }
            }
            let mut slept = Duration::ZERO;
            while slept < pause && !self.stopped() {
                let step = FIRST_PAUSE.min(pause - slept);
                tokio::time::sleep(step).await;
                slept += step;
            }
        }
    }

    /// One connection's life: connect, turn tracking on, trust the near cache, then apply
    /// every message until the connection fails or the cache is gone. `Ok` when tracking was
    /// up and the connection later dropped; `Err` when it could not be set up.
    async fn track(&self) -> RedisResult<()> {
        let (sender, mut pushes) = unbounded_channel();
        let config = self.config.clone().set_push_sender(sender);
        let mut connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let mut tracking = redis::cmd("CLIENT");
        tracking.arg("TRACKING").arg("ON").arg("BCAST");
        for prefix in &self.prefixes {
            tracking.arg("PREFIX").arg(prefix);
        }
        tracking.query_async::<()>(&mut connection).await?;
        match self.near.upgrade() {
            Some(near) => near.trust(),
            None => return Ok(()),
        }
        tracing::debug!("rtc: near cache tracking is on");
        self.follow(&mut connection, &mut pushes).await;
        Ok(())
    }

    /// Applies messages until the connection drops, a heartbeat fails, or tracking stops.
    async fn follow(
        &self,
        connection: &mut MultiplexedConnection,
        pushes: &mut UnboundedReceiver<PushInfo>,
    ) {
        loop {
            if self.stopped() {
                return;
            }
            match tokio::time::timeout(HEARTBEAT, pushes.recv()).await {
                Ok(Some(push)) => {
                    let Some(near) = self.near.upgrade() else {
                        return;
                    };
                    if !apply(&near, push) {
                        return;
                    }
                }
                Ok(None) => return,
                Err(_idle) => {
                    if redis::cmd("PING")
                        .query_async::<()>(connection)
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    }
}

/// Applies one message to the near cache; false when the connection is gone.
fn apply(near: &NearCache, push: PushInfo) -> bool {
    match push.kind {
        PushKind::Invalidate => {
            match push.data.into_iter().next() {
                Some(Value::Array(keys)) => {
                    near.watches()
                        .changed(keys.iter().filter_map(|key| match key {
                            Value::BulkString(key) => Some(key.as_slice()),
                            _ => None,
                        }))
                }
                // A null list: the whole database was flushed.
                _ => near.changed_all(),
            }
            true
        }
        PushKind::Disconnection => false,
        _ => true,
    }
}

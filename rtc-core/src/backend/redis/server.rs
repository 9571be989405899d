//! One Redis server: pooled sync connections, and a data connection per runtime for async calls;
//! each tracks the tags it reads, so that a hit is one `GET` (`inband/`).

use redis::{AsyncConnectionConfig, Client, RedisResult, Value};
use std::future::Future;
use std::sync::Arc;

use super::batch::Batch;
use super::commands::Round;
use super::connections::Idle;
use super::inband::{DataConnection, DataConnections, InBandFlow, Next, SyncData, Tracking};
use super::{PipelinedReads, Timeouts};

pub(crate) struct ServerConnector {
    client: Client,
    timeouts: Timeouts,
    idle: Idle<SyncData>,
    data: DataConnections,
}

impl ServerConnector {
    /// Connects to `client`'s server; async data connections track tags through `tracked`
    /// (the same server in RESP3), when given.
    pub(super) fn new(
        client: Client,
        tracked: Option<Client>,
        timeouts: Timeouts,
        pipelined: PipelinedReads,
    ) -> Self {
        Self {
            data: DataConnections::new(tracked, client.clone(), timeouts, pipelined),
            client,
            timeouts,
            idle: Idle::default(),
        }
    }

    pub(super) fn query(&self, round: &Round) -> RedisResult<Vec<Value>> {
        let batch = Batch::of(&round.commands);
        let connect = || self.data.connect_blocking(self.timeouts);
        self.idle.with(connect, |data| {
            let result = match round.blocks_for {
                Some(wait) => {
                    let connection = &mut data.connection;
                    connection.set_read_timeout(Some(self.timeouts.socket + wait))?;
                    let result = batch.query(connection, self.timeouts.socket + wait);
                    connection.set_read_timeout(Some(self.timeouts.socket))?;
                    result
                }
                None => batch.query(&mut data.connection, self.timeouts.socket),
            };
            data.take_messages();
            result
        })
    }

    /// Steps `flow` (a read of entries, a `set`) on a pooled connection, with the tag versions
    /// that connection knows: a hit whose versions it knows is one `GET`
    /// ([`super::inband::TrackedReadFlow`]).
    pub(super) fn tracked<F: InBandFlow>(&self, mut flow: F) -> RedisResult<F::Output> {
        let connect = || self.data.connect_blocking(self.timeouts);
        self.idle.with(connect, |data| {
            let SyncData {
                connection,
                tracking,
            } = data;
            let known = tracking.as_ref().map(Tracking::known);
            let mut next = flow.next(known, None)?;
            loop {
                let commands = match next {
                    Next::Done(output) => return Ok(output),
                    Next::Send(commands) => commands,
                };
                let sent = Batch::of(&commands).query(connection, self.timeouts.socket);
                // The messages that came ahead of the reply, before it is looked at.
                if let Some(tracking) = tracking.as_ref() {
                    tracking.take_messages();
                }
                next = match sent {
                    Ok(replies) => flow.next(known, Some(replies)),
                    Err(error) => flow.failed(known, error),
                }?;
            }
        })
    }

    pub(super) async fn query_async(
        &self,
        round: &Round,
        runtime: tokio::runtime::Id,
    ) -> RedisResult<Vec<Value>> {
        if let Some(wait) = round.blocks_for {
            // A blocking command would stall every request multiplexed on the shared connection:
            // it gets one of its own. Boxed: its connect's future would make every round trip's
            // future larger.
            return Box::pin(async {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.timeouts.connect))
                    .set_response_timeout(Some(self.timeouts.socket + wait));
                let mut connection = self
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Batch::of(&round.commands)
                    .query_async(&mut connection)
                    .await
            })
            .await;
        }
        let data = self.data(runtime).await?;
        let result = Batch::of(&round.commands)
            .query_async(&mut data.connection.clone())
            .await;
        self.checked(result, runtime)
    }

    /// Steps `flow` (a read of entries, a `set`) on this runtime's data connection, with the
    /// tag versions it knows: a hit whose versions it knows is one `GET`
    /// ([`super::inband::TrackedReadFlow`]). Its messages are applied by the connection's
    /// reader before a reply is handed over.
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` keeps its arguments twice in its future, which a hit moves"
    )]
    pub(super) fn tracked_async<'a, F: InBandFlow + Send + 'a>(
        &'a self,
        mut flow: F,
        runtime: tokio::runtime::Id,
    ) -> impl Future<Output = RedisResult<F::Output>> + Send + 'a {
        async move {
            let data = self.data(runtime).await?;
            let mut commands = match flow.next(data.known.as_deref(), None)? {
                Next::Done(output) => return Ok(output),
                Next::Send(commands) => commands,
            };
            loop {
                let sent = if F::IDEMPOTENT {
                    data.pipeline.send(&data.connection, &mut commands).await
                } else {
                    Batch::of(&commands)
                        .query_async(&mut data.connection.clone())
                        .await
                };
                let known = data.known.as_deref();
                let next = match self.checked(sent, runtime) {
                    Ok(replies) => flow.next(known, Some(replies)),
                    Err(error) => flow.failed(known, error),
                }?;
                commands = match next {
                    Next::Done(output) => return Ok(output),
                    Next::Send(commands) => commands,
                };
            }
        }
    }

    /// This runtime's data connection.
    async fn data(&self, runtime: tokio::runtime::Id) -> RedisResult<Arc<DataConnection>> {
        let data = self.data.get(runtime).await;
        if data.is_err() {
            self.data.forget(runtime);
        }
        data
    }

    /// `result`, after forgetting this runtime's connection if it failed for want of the server.
    fn checked<T>(&self, result: RedisResult<T>, runtime: tokio::runtime::Id) -> RedisResult<T> {
        if let Err(error) = &result {
            if super::is_connection_trouble(error) {
                // The next call opens a new connection (this one is closed for good).
                self.data.forget(runtime);
            }
        }
        result
    }
}

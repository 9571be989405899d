//! One Redis server: pooled sync connections, a `ConnectionManager` per runtime for async calls.

use std::future::Future;

use futures_util::future::Either;
use futures_util::TryFutureExt as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncConnectionConfig, Client, Cmd, Connection, Pipeline, RedisResult, Value};

use super::commands::Round;
use super::connections::{Idle, PerRuntime};
use super::Timeouts;

pub(crate) struct ServerConnector {
    client: Client,
    timeouts: Timeouts,
    idle: Idle<Connection>,
    managers: PerRuntime<ConnectionManager>,
}

/// A round's commands as sent: a lone command as it is (a hit is one `MGET`), several in a
/// pipeline.
enum Batch<'a> {
    One(&'a Cmd),
    Many(Pipeline),
}

impl<'a> Batch<'a> {
    fn of(commands: &'a [Cmd]) -> Self {
        if let [command] = commands {
            return Batch::One(command);
        }
        let mut pipeline = redis::pipe();
        for command in commands {
            pipeline.add_command(command.clone());
        }
        Batch::Many(pipeline)
    }

    fn query(&self, connection: &mut Connection) -> RedisResult<Vec<Value>> {
        match self {
            Batch::One(command) => command.query(connection).map(|value| vec![value]),
            Batch::Many(pipeline) => pipeline.query(connection),
        }
    }

    fn query_async<'c>(
        &'c self,
        connection: &'c mut (impl redis::aio::ConnectionLike + Send),
    ) -> impl Future<Output = RedisResult<Vec<Value>>> + Send + 'c {
        match self {
            Batch::One(command) => Either::Left(
                command
                    .query_async::<Value>(connection)
                    .map_ok(|value| vec![value]),
            ),
            Batch::Many(pipeline) => Either::Right(pipeline.query_async(connection)),
        }
    }
}

impl ServerConnector {
    pub(super) fn new(client: Client, timeouts: Timeouts) -> Self {
        Self {
            client,
            timeouts,
            idle: Idle::default(),
            managers: PerRuntime::default(),
        }
    }

    pub(super) fn query(&self, round: &Round) -> RedisResult<Vec<Value>> {
        let batch = Batch::of(&round.commands);
        let connect = || {
            let connection = self
                .client
                .get_connection_with_timeout(self.timeouts.connect)?;
            connection.set_read_timeout(Some(self.timeouts.socket))?;
            connection.set_write_timeout(Some(self.timeouts.socket))?;
            Ok(connection)
        };
        self.idle
            .with(connect, |connection| match round.blocks_for {
                Some(wait) => {
                    connection.set_read_timeout(Some(self.timeouts.socket + wait))?;
                    let result = batch.query(connection);
                    connection.set_read_timeout(Some(self.timeouts.socket))?;
                    result
                }
                None => batch.query(connection),
            })
    }

    pub(super) async fn query_async(
        &self,
        round: &Round,
        runtime: tokio::runtime::Id,
    ) -> RedisResult<Vec<Value>> {
        let batch = Batch::of(&round.commands);
        if let Some(wait) = round.blocks_for {
            // A blocking command would stall every request multiplexed on the shared connection.
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.timeouts.connect))
                .set_response_timeout(Some(self.timeouts.socket + wait));
            let mut connection = self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            return batch.query_async(&mut connection).await;
        }
        let mut connection = self.manager(runtime)?;
        let result = batch.query_async(&mut connection).await;
        if let Err(error) = &result {
            if super::is_connection_trouble(error) {
                // A fresh manager connects at once; the failed one may still be retrying.
                self.managers.forget(runtime);
            }
        }
        result
    }

    /// This runtime's connection manager, made (without connecting) on first use.
    fn manager(&self, runtime: tokio::runtime::Id) -> RedisResult<ConnectionManager> {
        if let Some(manager) = self.managers.get(runtime) {
            return Ok(manager);
        }
        // No retries of its own: rtc's back-off already decides when to try again, and a
        // retry here made a call wait 100-200 ms once per back-off period during an outage.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeouts.connect))
            .set_response_timeout(Some(self.timeouts.socket))
            .set_number_of_retries(0);
        let manager = ConnectionManager::new_lazy_with_config(self.client.clone(), config)?;
        self.managers.insert(runtime, manager.clone());
        Ok(manager)
    }
}

//! One Redis server: pooled sync connections, a `ConnectionManager` per runtime for async calls.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncConnectionConfig, Client, Connection, RedisResult, Value};

use super::connections::{Idle, PerRuntime};
use super::{with_script_retry, Timeouts};
use crate::backend::commands::Op;
use crate::backend::BackendError;

pub(super) struct ServerConnector {
    client: Client,
    timeouts: Timeouts,
    idle: Idle<Connection>,
    managers: PerRuntime<ConnectionManager>,
}

/// An operation's commands as sent: a lone command as it is (a hit is one `MGET`), several in
/// a pipeline.
enum Batch<'a> {
    One(&'a redis::Cmd),
    Many(redis::Pipeline),
}

impl<'a> Batch<'a> {
    fn of<T>(op: &'a Op<T>) -> Self {
        if let [command] = op.commands.as_slice() {
            return Batch::One(command);
        }
        let mut pipeline = redis::pipe();
        for command in &op.commands {
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

    async fn query_async(
        &self,
        connection: &mut impl redis::aio::ConnectionLike,
    ) -> RedisResult<Vec<Value>> {
        match self {
            Batch::One(command) => command
                .query_async(connection)
                .await
                .map(|value| vec![value]),
            Batch::Many(pipeline) => pipeline.query_async(connection).await,
        }
    }
}

impl ServerConnector {
    pub(super) fn new(client: Client, timeouts: Timeouts) -> RedisResult<Self> {
        Ok(Self {
            client,
            timeouts,
            idle: Idle::default(),
            managers: PerRuntime::default(),
        })
    }

    pub(super) fn query<T>(&self, op: &Op<T>) -> Result<Vec<Value>, BackendError> {
        let batch = Batch::of(op);
        let connect = || {
            let connection = self
                .client
                .get_connection_with_timeout(self.timeouts.connect)?;
            connection.set_read_timeout(Some(self.timeouts.socket))?;
            connection.set_write_timeout(Some(self.timeouts.socket))?;
            Ok(connection)
        };
        self.idle
            .with(connect, |connection| {
                if let Some(wait) = op.blocks_for {
                    connection.set_read_timeout(Some(self.timeouts.socket + wait))?;
                    let result = batch.query(connection);
                    connection.set_read_timeout(Some(self.timeouts.socket))?;
                    return result;
                }
                with_script_retry(
                    connection,
                    op,
                    |connection| batch.query(connection),
                    |connection, script| script.prepare_invoke().load(connection).map(drop),
                )
            })
            .map_err(BackendError::Redis)
    }

    pub(super) async fn query_async<T>(&self, op: &Op<T>) -> Result<Vec<Value>, BackendError> {
        let batch = Batch::of(op);
        if let Some(wait) = op.blocks_for {
            // A blocking command would stall every request multiplexed on the shared connection.
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.timeouts.connect))
                .set_response_timeout(Some(self.timeouts.socket + wait));
            let mut connection = self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(BackendError::Redis)?;
            return batch
                .query_async(&mut connection)
                .await
                .map_err(BackendError::Redis);
        }
        let runtime = PerRuntime::<ConnectionManager>::current()?;
        let mut connection = self.manager(runtime)?;
        let mut result = batch.query_async(&mut connection).await;
        if let (Some(script), Err(error)) = (op.script, &result) {
            if super::is_noscript(error) {
                result = match script.prepare_invoke().load_async(&mut connection).await {
                    Ok(_) => batch.query_async(&mut connection).await,
                    Err(error) => Err(error),
                };
            }
        }
        if let Err(error) = &result {
            if super::is_connection_trouble(error) {
                // A fresh manager connects at once; the failed one may still be retrying.
                self.managers.forget(runtime);
            }
        }
        result.map_err(BackendError::Redis)
    }

    /// This runtime's connection manager, made (without connecting) on first use.
    fn manager(&self, runtime: tokio::runtime::Id) -> Result<ConnectionManager, BackendError> {
        if let Some(manager) = self.managers.get(runtime) {
            return Ok(manager);
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeouts.connect))
            .set_response_timeout(Some(self.timeouts.socket))
            .set_number_of_retries(1)
            .set_max_delay(std::time::Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            .map_err(BackendError::Redis)?;
        self.managers.insert(runtime, manager.clone());
        Ok(manager)
    }
}

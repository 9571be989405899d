//! Redis Cluster: redis-rs routes each command to the shard of its keys. A round trip's commands
//! go out to every shard involved before any reply is read (sync: one cluster pipeline; async:
//! all requests in flight at once), so an operation costs one round trip per shard, concurrently.

use futures_util::future::join_all;
use redis::aio::ConnectionLike as _;
use redis::cluster::{cluster_pipe, ClusterClient, ClusterConfig, ClusterConnection};
use redis::{Cmd, RedisResult, Value};

use super::connections::{Idle, PerRuntime};
use super::{with_script_retry, Timeouts};
use crate::backend::commands::Op;
use crate::backend::BackendError;

type AsyncClusterConnection = redis::cluster_async::ClusterConnection;

pub(super) struct ClusterConnector {
    client: ClusterClient,
    timeouts: Timeouts,
    idle: Idle<ClusterConnection>,
    connections: PerRuntime<AsyncClusterConnection>,
}

/// Sends `commands` through one cluster connection: each to its key's shard.
fn send(connection: &mut ClusterConnection, commands: &[Cmd]) -> RedisResult<Vec<Value>> {
    if let [command] = commands {
        return command.query::<Value>(connection).map(|value| vec![value]);
    }
    let mut pipeline = cluster_pipe();
    for command in commands {
        pipeline.add_command(command.clone());
    }
    pipeline.query(connection)
}

/// Sends every command at once; replies come back in the commands' order.
async fn send_async(
    connection: &AsyncClusterConnection,
    commands: &[Cmd],
) -> RedisResult<Vec<Value>> {
    let requests = commands.iter().map(|command| {
        let mut connection = connection.clone();
        async move { connection.req_packed_command(command).await }
    });
    join_all(requests).await.into_iter().collect()
}

impl ClusterConnector {
    pub(super) fn new(client: ClusterClient, timeouts: Timeouts) -> Self {
        Self {
            client,
            timeouts,
            idle: Idle::default(),
            connections: PerRuntime::default(),
        }
    }

    pub(super) fn query<T>(&self, op: &Op<T>) -> Result<Vec<Value>, BackendError> {
        self.idle
            .with(
                || self.client.get_connection(),
                |connection| {
                    if let Some(wait) = op.blocks_for {
                        connection.set_read_timeout(Some(self.timeouts.socket + wait))?;
                        let result = send(connection, &op.commands);
                        connection.set_read_timeout(Some(self.timeouts.socket))?;
                        return result;
                    }
                    with_script_retry(
                        connection,
                        op,
                        |connection| send(connection, &op.commands),
                        |connection, script| script.prepare_invoke().load(connection).map(drop),
                    )
                },
            )
            .map_err(BackendError::Redis)
    }

    pub(super) async fn query_async<T>(&self, op: &Op<T>) -> Result<Vec<Value>, BackendError> {
        if let Some(wait) = op.blocks_for {
            // A blocking command would stall the requests multiplexed to that shard.
            let config = ClusterConfig::new()
                .set_connection_timeout(self.timeouts.connect)
                .set_response_timeout(self.timeouts.socket + wait);
            let connection = self
                .client
                .get_async_connection_with_config(config)
                .await
                .map_err(BackendError::Redis)?;
            return send_async(&connection, &op.commands)
                .await
                .map_err(BackendError::Redis);
        }
        let runtime = PerRuntime::<AsyncClusterConnection>::current()?;
        let connection = match self.connections.get(runtime) {
            Some(connection) => connection,
            None => {
                let connection = self
                    .client
                    .get_async_connection()
                    .await
                    .map_err(BackendError::Redis)?;
                self.connections.insert(runtime, connection.clone());
                connection
            }
        };
        let mut result = send_async(&connection, &op.commands).await;
        if let (Some(script), Err(error)) = (op.script, &result) {
            if super::is_noscript(error) {
                let mut loader = connection.clone();
                result = match script.prepare_invoke().load_async(&mut loader).await {
                    Ok(_) => send_async(&connection, &op.commands).await,
                    Err(error) => Err(error),
                };
            }
        }
        if let Err(error) = &result {
            if super::is_connection_trouble(error) {
                self.connections.forget(runtime);
            }
        }
        result.map_err(BackendError::Redis)
    }
}

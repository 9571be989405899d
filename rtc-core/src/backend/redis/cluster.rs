//! Redis Cluster: redis-rs routes each command to the shard of its keys. A round's commands go
//! out to every shard involved before any reply is read (sync: one cluster pipeline; async: all
//! requests in flight at once), so a round costs one round trip per shard, concurrently.

use std::future::Future;

use futures_util::future::join_all;
use futures_util::FutureExt as _;
use redis::aio::ConnectionLike as _;
use redis::cluster::{cluster_pipe, ClusterClient, ClusterConfig, ClusterConnection};
use redis::{Cmd, RedisResult, Value};

use super::commands::Round;
use super::connections::{Idle, PerRuntime};
use super::Timeouts;

type AsyncClusterConnection = redis::cluster_async::ClusterConnection;

pub(crate) struct ClusterConnector {
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
fn send_all<'a>(
    connection: &'a AsyncClusterConnection,
    commands: &'a [Cmd],
) -> impl Future<Output = RedisResult<Vec<Value>>> + Send + 'a {
    let requests = commands.iter().map(|command| {
        let mut connection = connection.clone();
        async move {
            connection
                .req_packed_command(command)
                .await
                .and_then(Value::extract_error)
        }
    });
    join_all(requests).map(|replies| replies.into_iter().collect())
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

    pub(super) fn query(&self, round: &Round) -> RedisResult<Vec<Value>> {
        self.idle.with(
            || self.client.get_connection(),
            |connection| match round.blocks_for {
                Some(wait) => {
                    connection.set_read_timeout(Some(self.timeouts.socket + wait))?;
                    let result = send(connection, &round.commands);
                    connection.set_read_timeout(Some(self.timeouts.socket))?;
                    result
                }
                None => send(connection, &round.commands),
            },
        )
    }

    pub(super) async fn query_async(
        &self,
        round: &Round,
        runtime: tokio::runtime::Id,
    ) -> RedisResult<Vec<Value>> {
        if let Some(wait) = round.blocks_for {
            // A blocking command would stall the requests multiplexed to that shard.
            let config = ClusterConfig::new()
                .set_connection_timeout(self.timeouts.connect)
                .set_response_timeout(self.timeouts.socket + wait);
            let connection = self.client.get_async_connection_with_config(config).await?;
            return send_all(&connection, &round.commands).await;
        }
        let connection = match self.connections.get(runtime) {
            Some(connection) => connection,
            None => {
                let connection = self.client.get_async_connection().await?;
                self.connections.insert(runtime, connection.clone());
                connection
            }
        };
        let result = send_all(&connection, &round.commands).await;
        if let Err(error) = &result {
            if super::is_connection_trouble(error) {
                self.connections.forget(runtime);
            }
        }
        result
    }
}

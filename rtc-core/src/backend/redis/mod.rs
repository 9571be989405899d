//! Redis, one server or a cluster: runs [`Op`]s with back-off after connection failures.

mod cluster;
mod connections;
mod server;

use std::time::Duration;

use redis::cluster::ClusterClient;
use redis::{RedisError, RedisResult, Value};

use self::cluster::ClusterConnector;
use self::server::ServerConnector;
use super::commands::{Op, Topology};
use super::BackendError;
use crate::health::Backoff;

/// Timeouts every connection is opened with.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    pub socket: Duration,
    pub connect: Duration,
}

enum Connector {
    Server(Box<ServerConnector>),
    Cluster(Box<ClusterConnector>),
}

pub(crate) struct RedisStore {
    connector: Connector,
    backoff: Backoff,
}

impl RedisStore {
    pub(crate) fn server(client: redis::Client, timeouts: Timeouts) -> Result<Self, RedisError> {
        let server = ServerConnector::new(client, timeouts)?;
        Ok(Self::with(Connector::Server(Box::new(server))))
    }

    pub(crate) fn cluster(client: ClusterClient, timeouts: Timeouts) -> Self {
        Self::with(Connector::Cluster(Box::new(ClusterConnector::new(
            client, timeouts,
        ))))
    }

    fn with(connector: Connector) -> Self {
        Self {
            connector,
            backoff: Backoff::default(),
        }
    }

    pub(crate) fn topology(&self) -> Topology {
        match self.connector {
            Connector::Server(_) => Topology::Standalone,
            Connector::Cluster(_) => Topology::Cluster,
        }
    }

    /// Runs `op` on a pooled connection.
    pub(crate) fn run<T>(&self, op: Op<T>) -> Result<T, BackendError> {
        if !self.backoff.allows() {
            return Err(BackendError::Skipped);
        }
        let result = match &self.connector {
            Connector::Server(server) => server.query(&op),
            Connector::Cluster(cluster) => cluster.query(&op),
        };
        self.finish(result, op.parse)
    }

    /// Runs `op` on this runtime's multiplexed connection.
    pub(crate) async fn run_async<T>(&self, op: Op<T>) -> Result<T, BackendError> {
        if !self.backoff.allows() {
            return Err(BackendError::Skipped);
        }
        let result = match &self.connector {
            Connector::Server(server) => server.query_async(&op).await,
            Connector::Cluster(cluster) => cluster.query_async(&op).await,
        };
        self.finish(result, op.parse)
    }

    fn finish<T>(
        &self,
        result: Result<Vec<Value>, BackendError>,
        parse: impl FnOnce(Vec<Value>) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        match result {
            Ok(values) => {
                self.backoff.succeeded();
                parse(values)
            }
            Err(BackendError::Redis(error)) if is_connection_trouble(&error) => {
                let pause = self.backoff.failed();
                Err(BackendError::Unreachable { error, pause })
            }
            Err(error) => Err(error),
        }
    }
}

/// Runs `query`; when it fails because the server does not know `op`'s script, loads the
/// script with `load` and runs `query` once more.
fn with_script_retry<T, C>(
    connection: &mut C,
    op: &Op<T>,
    mut query: impl FnMut(&mut C) -> RedisResult<Vec<Value>>,
    load: impl FnOnce(&mut C, &redis::Script) -> RedisResult<()>,
) -> RedisResult<Vec<Value>> {
    match (query(connection), op.script) {
        (Err(error), Some(script)) if is_noscript(&error) => {
            load(connection, script)?;
            query(connection)
        }
        (result, _) => result,
    }
}

fn is_noscript(error: &RedisError) -> bool {
    error.code() == Some("NOSCRIPT")
}

/// Errors that say the server could not be reached or did not answer in time.
pub(crate) fn is_connection_trouble(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_unrecoverable_error()
        || error.is_cluster_error()
}

//! Connections to one Redis server: a small pool for sync callers, one multiplexed
//! auto-reconnecting connection per tokio runtime for async callers. Both open lazily.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{
    AsyncConnectionConfig, Client, Connection, ConnectionInfo, ConnectionLike, RedisError,
    RedisResult, Value,
};

use super::commands::Op;
use super::BackendError;
use crate::health::Backoff;

/// Idle sync connections kept for reuse; more may be open at once, the rest close after use.
const MAX_IDLE: usize = 32;
/// Async connections remembered, one per runtime; older runtimes' connections are dropped.
const MAX_RUNTIMES: usize = 8;

pub(crate) struct RedisStore {
    client: Client,
    socket_timeout: Duration,
    connect_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
    managers: Mutex<Vec<(tokio::runtime::Id, ConnectionManager)>>,
    backoff: Backoff,
}

impl RedisStore {
    pub(crate) fn new(
        info: ConnectionInfo,
        socket_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self, RedisError> {
        Ok(Self {
            client: Client::open(info)?,
            socket_timeout,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
            managers: Mutex::new(Vec::new()),
            backoff: Backoff::default(),
        })
    }

    /// Runs `op` on a pooled connection.
    pub(crate) fn run<T>(&self, op: Op<T>) -> Result<T, BackendError> {
        if !self.backoff.allows() {
            return Err(BackendError::Skipped);
        }
        let result =
            self.with_connection(
                |connection| match (op.pipeline.query(connection), op.script) {
                    (Err(error), Some(script)) if is_noscript(&error) => {
                        script.prepare_invoke().load(connection)?;
                        op.pipeline.query(connection)
                    }
                    (result, _) => result,
                },
            );
        self.finish(result, op.parse)
    }

    /// Runs `op` on this runtime's multiplexed connection.
    pub(crate) async fn run_async<T>(&self, op: Op<T>) -> Result<T, BackendError> {
        if !self.backoff.allows() {
            return Err(BackendError::Skipped);
        }
        if let Some(wait) = op.blocks_for {
            // A blocking command would stall every request multiplexed on the shared connection.
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.connect_timeout))
                .set_response_timeout(Some(self.socket_timeout + wait));
            let result = match self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await
            {
                Ok(mut connection) => op.pipeline.query_async(&mut connection).await,
                Err(error) => Err(error),
            };
            return self.finish(result, op.parse);
        }
        let mut connection = self.manager()?;
        let mut result = op.pipeline.query_async(&mut connection).await;
        if let (Some(script), Err(error)) = (op.script, &result) {
            if is_noscript(error) {
                result = match script.prepare_invoke().load_async(&mut connection).await {
                    Ok(_) => op.pipeline.query_async(&mut connection).await,
                    Err(error) => Err(error),
                };
            }
        }
        self.finish(result, op.parse)
    }

    fn finish<T>(
        &self,
        result: RedisResult<Vec<Value>>,
        parse: impl FnOnce(Vec<Value>) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        match result {
            Ok(values) => {
                self.backoff.succeeded();
                parse(values)
            }
            Err(error) => {
                if is_connection_trouble(&error) {
                    let pause = self.backoff.failed();
                    return Err(BackendError::Unreachable { error, pause });
                }
                Err(BackendError::Redis(error))
            }
        }
    }

    /// Runs `query` on an idle connection (or a new one), and keeps the connection for reuse
    /// unless it failed.
    fn with_connection<T>(
        &self,
        query: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> RedisResult<T> {
        let mut connection = match self.idle().pop() {
            Some(connection) => connection,
            None => self.connect()?,
        };
        let result = query(&mut connection);
        // After a timeout or an I/O error the stream may still hold a late reply: never reuse it.
        let reusable = match &result {
            Ok(_) => true,
            Err(error) => !is_connection_trouble(error) && connection.is_open(),
        };
        if reusable {
            let mut idle = self.idle();
            if idle.len() < MAX_IDLE {
                idle.push(connection);
            }
        }
        result
    }

    fn connect(&self) -> RedisResult<Connection> {
        let connection = self
            .client
            .get_connection_with_timeout(self.connect_timeout)?;
        connection.set_read_timeout(Some(self.socket_timeout))?;
        connection.set_write_timeout(Some(self.socket_timeout))?;
        Ok(connection)
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// This runtime's connection manager, made (without connecting) on first use. A manager runs
    /// its connection on the runtime that made it, so each runtime gets its own.
    fn manager(&self) -> Result<ConnectionManager, BackendError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| BackendError::NoRuntime)?
            .id();
        let mut managers = self.managers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, manager)) = managers.iter().find(|(id, _)| *id == runtime) {
            return Ok(manager.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.socket_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            .map_err(BackendError::Redis)?;
        if managers.len() >= MAX_RUNTIMES {
            managers.remove(0);
        }
        managers.push((runtime, manager.clone()));
        Ok(manager)
    }
}

fn is_noscript(error: &RedisError) -> bool {
    error.code() == Some("NOSCRIPT")
}

/// Errors that say the server could not be reached or did not answer in time.
fn is_connection_trouble(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_unrecoverable_error()
}

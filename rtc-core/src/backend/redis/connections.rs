//! Keeping connections: idle sync connections for reuse, one async connection per runtime.

use std::sync::{Mutex, MutexGuard, PoisonError};

use redis::RedisResult;

use super::is_connection_trouble;

/// Idle sync connections kept for reuse; more may be open at once, the rest close after use.
const MAX_IDLE: usize = 32;
/// Async connections remembered, one per runtime; the oldest is dropped past this.
const MAX_RUNTIMES: usize = 8;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sync connections waiting to be reused.
pub(super) struct Idle<C> {
    connections: Mutex<Vec<C>>,
}

impl<C> Default for Idle<C> {
    fn default() -> Self {
        Self {
            connections: Mutex::new(Vec::new()),
        }
    }
}

impl<C> Idle<C> {
    /// Runs `query` on an idle connection, or on one `connect` opens, and keeps the connection
    /// unless it failed: after a timeout or an I/O error a late reply may still be on its way, so
    /// that connection (and every idle one) is closed.
    pub(super) fn with<T>(
        &self,
        connect: impl FnOnce() -> RedisResult<C>,
        query: impl FnOnce(&mut C) -> RedisResult<T>,
    ) -> RedisResult<T> {
        let idle = lock(&self.connections).pop();
        let mut connection = match idle {
            Some(connection) => connection,
            None => connect()?,
        };
        let result = query(&mut connection);
        let mut idle = lock(&self.connections);
        match &result {
            // The server went away or restarted: the other idle connections are as dead as this
            // one, and trying each in turn would prolong the outage.
            Err(error) if is_connection_trouble(error) => idle.clear(),
            _ if idle.len() < MAX_IDLE => idle.push(connection),
            _ => {}
        }
        result
    }
}

/// One async connection per tokio runtime: a multiplexed connection is driven by a task on the
/// runtime that opened it, and dies with that runtime.
pub(super) struct PerRuntime<C> {
    connections: Mutex<Vec<(tokio::runtime::Id, C)>>,
}

impl<C> Default for PerRuntime<C> {
    fn default() -> Self {
        Self {
            connections: Mutex::new(Vec::new()),
        }
    }
}

impl<C: Clone> PerRuntime<C> {
    pub(super) fn get(&self, runtime: tokio::runtime::Id) -> Option<C> {
        lock(&self.connections)
            .iter()
            .find(|(id, _)| *id == runtime)
            .map(|(_, connection)| connection.clone())
    }

    pub(super) fn insert(&self, runtime: tokio::runtime::Id, connection: C) {
        let mut connections = lock(&self.connections);
        connections.retain(|(id, _)| *id != runtime);
        if connections.len() >= MAX_RUNTIMES {
            connections.remove(0);
        }
        connections.push((runtime, connection));
    }

    /// Puts `connection` in place of this runtime's, if `current` says so of the one there.
    pub(super) fn replace(
        &self,
        runtime: tokio::runtime::Id,
        connection: C,
        current: impl FnOnce(&C) -> bool,
    ) {
        let mut connections = lock(&self.connections);
        if let Some((_, slot)) = connections.iter_mut().find(|(id, _)| *id == runtime) {
            if current(slot) {
                *slot = connection;
            }
        }
    }

    /// Forgets the current runtime's connection, so that the next call opens a new one.
    pub(super) fn forget(&self, runtime: tokio::runtime::Id) {
        lock(&self.connections).retain(|(id, _)| *id != runtime);
    }
}

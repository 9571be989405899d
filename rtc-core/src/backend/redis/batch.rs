//! A round's commands as they are sent, blocking or async: a lone command as it is, several in
//! one pipeline. Shared by the server's connections and the auto-pipelining of reads.

use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::future::Either;
use futures_util::TryFutureExt as _;
use redis::{Cmd, Connection, Pipeline, RedisResult, Value};

/// A round's commands as sent: a lone command as it is (a hit is one `MGET`), several in a
/// pipeline.
pub(super) enum Batch<'a> {
    One(&'a Cmd),
    Many(Pipeline),
}

impl<'a> Batch<'a> {
    pub(super) fn of(commands: &'a [Cmd]) -> Self {
        if let [command] = commands {
            return Batch::One(command);
        }
        let mut pipeline = redis::pipe();
        for command in commands {
            pipeline.add_command(command.clone());
        }
        Batch::Many(pipeline)
    }

    /// Sends the batch and reads its replies, all within `timeout` (the connection's read
    /// timeout, which it has again afterwards).
    pub(super) fn query(
        &self,
        connection: &mut Connection,
        timeout: Duration,
    ) -> RedisResult<Vec<Value>> {
        match self {
            Batch::One(command) => command.query(connection).map(|value| vec![value]),
            Batch::Many(pipeline) => pipelined(connection, pipeline, timeout),
        }
    }

    /// Sends the batch on an async connection (redis-rs's response timeout bounds it).
    pub(super) fn query_async<'c>(
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

/// A pipeline's replies, all within one `timeout`. redis-rs's blocking pipeline waits one whole
/// read timeout for each reply that does not come, so a server that stopped answering held a
/// pipeline of n commands (a read that learns tags: 3 and more) n timeouts.
fn pipelined(
    connection: &mut Connection,
    pipeline: &Pipeline,
    timeout: Duration,
) -> RedisResult<Vec<Value>> {
    let deadline = Instant::now() + timeout;
    connection.send_packed_command(&pipeline.get_packed_pipeline())?;
    let mut replies = Vec::with_capacity(pipeline.len());
    let mut refused = None;
    while replies.len() < pipeline.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into());
        }
        connection.set_read_timeout(Some(left))?;
        match connection.recv_response()? {
            // Tracking messages are not replies (the connection's reader has set them aside).
            Value::Push { .. } => {}
            Value::ServerError(error) => {
                refused.get_or_insert(error);
                replies.push(Value::Nil);
            }
            reply => replies.push(reply),
        }
    }
    connection.set_read_timeout(Some(timeout))?;
    match refused {
        Some(error) => Err(error.into()),
        None => Ok(replies),
    }
}

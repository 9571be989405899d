//! Auto-pipelining of the reads that share one async data connection: while one caller's round
//! trip is in flight, the reads of the callers that come meanwhile wait together, and go out as
//! one pipeline (one write, one request through redis-rs) when it is back.
//!
//! Every request through redis-rs's multiplexed connection is a message on its channel, a reply
//! channel and, on a busy runtime, a write of its own to the socket: for a hit, that write costs
//! more than everything rtc does around it. With many calls in flight (a service's tasks, the
//! benches' 64), a pipeline of n reads pays it once.
//!
//! Nothing waits for company: a read that finds no round trip in flight is sent at once, alone,
//! as before. One that finds one in flight waits at most for its reply, then leads the next
//! pipeline (or is part of it): the caller that leads a pipeline hands the lead to the first
//! waiting caller once its replies are in and handed out. That caller yields to the runtime once
//! before it sends: the callers just answered run first, and their next reads, if they make one,
//! join its pipeline instead of waiting for the one after (with 64 tasks, about 37 reads per
//! pipeline instead of 32, and a third fewer context switches). The lead is a value
//! ([`Leadership`]): whoever drops it, a caller done or a future dropped midway, hands it on,
//! so the waiting callers never wait for a leader that is gone.
//!
//! Only reads are pipelined ([`InBandFlow::IDEMPOTENT`](super::InBandFlow::IDEMPOTENT)): if the
//! leader's future is dropped while its pipeline is in flight, the reply is lost with it, and
//! the other callers' commands are sent again (a read sent twice reads twice; a write sent
//! twice could land over a newer one).
//!
//! Replies keep their order and invalidation messages theirs: each caller's commands are
//! contiguous in the pipeline (a learning read's `CLIENT CACHING YES` stays right before its
//! `MGET`), and the connection's reader applies every message that came before the pipeline's
//! last reply before the leader hands the replies out. A caller thus looks at its reply with
//! every message that preceded it applied, and possibly some that followed it: what `still` and
//! a learning fill already allow for, since a caller may look at its reply late.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Pipeline, RedisResult, Value};
use tokio::sync::oneshot;

use super::super::PipelinedReads;
use super::Commands;

/// The reads waiting to go out on one data connection.
pub(in crate::backend::redis) struct AutoPipeline {
    queue: Mutex<Queue>,
    /// Counts the reads sent in a pipeline with others (shared by the store's connections).
    pipelined: PipelinedReads,
    /// How long a call may wait for Redis (the socket timeout): a read that waited for the round
    /// trip in flight has that long from when it began waiting, not that long again.
    budget: Duration,
}

#[derive(Default)]
struct Queue {
    /// A round trip is in flight: a read that comes waits for its reply.
    leading: bool,
    /// The reads waiting, oldest first.
    waiting: VecDeque<Waiting>,
}

/// A caller waiting for the round trip in flight.
struct Waiting {
    commands: Commands,
    turn: oneshot::Sender<Turn>,
    /// When it began waiting.
    since: Instant,
}

/// What a waiting caller gets: its replies, or the lead (with its commands back, and when it
/// began waiting).
enum Turn {
    Replied(RedisResult<Vec<Value>>),
    Lead(Leadership, Commands, Instant),
}

impl AutoPipeline {
    /// The queue of a connection whose calls may wait `budget` for Redis.
    pub(in crate::backend::redis) fn new(pipelined: PipelinedReads, budget: Duration) -> Self {
        Self {
            queue: Mutex::default(),
            pipelined,
            budget,
        }
    }

    /// Sends `commands` on `connection` (taking them): at once when no round trip is in flight
    /// on it, else with the other reads that wait for it, as one pipeline. Returns their
    /// replies, or the error of their round trip (a server error in one of them is that read's
    /// alone). A read that waited gets no more than the socket timeout in all: its pipeline
    /// times out that long after the first of its reads began waiting.
    ///
    /// The commands are the caller's, borrowed: the future holds no copy of them, so that a
    /// hit's future, which holds this one, stays as small as it was.
    pub(in crate::backend::redis) async fn send(
        self: &Arc<Self>,
        connection: &mut MultiplexedConnection,
        commands: &mut Commands,
    ) -> RedisResult<Vec<Value>> {
        let (leadership, waited) = match self.join(commands) {
            Ok(leadership) => (leadership, None),
            Err(waiting) => match waiting.await {
                Ok(Turn::Replied(replies)) => return replies,
                Ok(Turn::Lead(leadership, own, since)) => {
                    *commands = own;
                    // The callers the last pipeline answered are about to run: let them come
                    // back first, so that their next reads go in this pipeline, not the next.
                    tokio::task::yield_now().await;
                    (leadership, Some(since))
                }
                // Never: a dropped pipeline puts its callers back in the queue, and the lead is
                // handed on by whoever drops it. Should it happen, the read fails as a lost
                // connection's would (a miss).
                Err(_) => return Err(gone()),
            },
        };
        leadership.send(connection, commands, waited).await
    }

    /// Takes the lead when no round trip is in flight, else queues `commands` behind it.
    fn join(
        self: &Arc<Self>,
        commands: &mut Commands,
    ) -> Result<Leadership, oneshot::Receiver<Turn>> {
        let mut queue = self.lock();
        if queue.leading {
            let (turn, waiting) = oneshot::channel();
            queue.waiting.push_back(Waiting {
                commands: std::mem::take(commands),
                turn,
                since: Instant::now(),
            });
            return Err(waiting);
        }
        queue.leading = true;
        Ok(Leadership(Some(Arc::clone(self))))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // The queue is consistent between any two statements: a panic elsewhere leaves it usable.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The error of a pipeline that was not answered in time.
fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no reply within the socket timeout (counted from when the first of the pipeline's \
         reads began waiting)",
    ))
}

/// `request`, given up at `deadline`.
async fn within<T>(
    deadline: Instant,
    request: impl std::future::Future<Output = RedisResult<T>>,
) -> RedisResult<T> {
    tokio::time::timeout_at(deadline.into(), request)
        .await
        .unwrap_or_else(|_| Err(timed_out()))
}

/// The error of a read whose pipeline went away without a reply.
fn gone() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "the pipeline carrying this read was dropped",
    ))
}

/// The lead of a connection's pipelines: its holder sends the next one. Dropped, it goes to the
/// first caller waiting (or, none waiting, lets the next read go out at once).
struct Leadership(Option<Arc<AutoPipeline>>);

impl Leadership {
    /// Sends `own` (waiting since `waited`, if it waited) with every read waiting now, hands
    /// the others their replies, and returns `own`'s; the lead is handed on when this returns
    /// (or is dropped midway). A pipeline of reads that waited is given up when the first of
    /// them has waited the socket timeout: no read waits for two round trips' timeouts.
    async fn send(
        self,
        connection: &mut MultiplexedConnection,
        own: &mut Commands,
        waited: Option<Instant>,
    ) -> RedisResult<Vec<Value>> {
        let Some(pipeline) = self.0.clone() else {
            return alone(connection, own).await;
        };
        let others: Vec<Waiting> = pipeline.lock().waiting.drain(..).collect();
        let since = others
            .iter()
            .map(|waiting| waiting.since)
            .chain(waited)
            .min();
        let Some(since) = since else {
            // A read that waited for nothing: redis-rs's own timeout bounds it.
            return alone(connection, own).await;
        };
        let deadline = since + pipeline.budget;
        // The timed requests are boxed: a timer would make every hit's future larger, and one
        // allocation per pipeline is shared by its reads.
        if others.is_empty() {
            return Box::pin(within(deadline, alone(connection, own))).await;
        }
        let reads = others.len() as u64 + 1;
        pipeline.pipelined.fetch_add(reads, Ordering::Relaxed);
        let mut flight = InFlight::new(self, own, others);
        let request = connection.req_packed_commands(&flight.pipeline, 0, flight.pipeline.len());
        let replies = Box::pin(within(deadline, request)).await;
        flight.hand_out(replies)
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        let Some(pipeline) = self.0.take() else {
            return;
        };
        loop {
            let next = {
                let mut queue = pipeline.lock();
                match queue.waiting.pop_front() {
                    Some(next) => next,
                    None => {
                        queue.leading = false;
                        return;
                    }
                }
            };
            let leadership = Leadership(Some(Arc::clone(&pipeline)));
            match next
                .turn
                .send(Turn::Lead(leadership, next.commands, next.since))
            {
                Ok(()) => return,
                // That caller is gone: the lead goes to the next, without recursing.
                Err(Turn::Lead(mut refused, ..)) => drop(refused.0.take()),
                Err(Turn::Replied(_)) => {}
            }
        }
    }
}

/// A lone read, as redis-rs sends one.
async fn alone(
    connection: &mut MultiplexedConnection,
    commands: &[redis::Cmd],
) -> RedisResult<Vec<Value>> {
    if let [command] = commands {
        return command
            .query_async::<Value>(connection)
            .await
            .map(|reply| vec![reply]);
    }
    let mut pipeline = redis::pipe();
    for command in commands {
        pipeline.add_command(command.clone());
    }
    pipeline.query_async(connection).await
}

/// A pipeline in flight: the leader's commands first, then each other caller's, and where each
/// caller's replies start. Dropped before its replies are handed out, it puts the other callers'
/// commands back at the head of the queue, and the lead goes to the first of them.
struct InFlight {
    pipeline: Pipeline,
    own: usize,
    /// Each other caller's: how many commands, where its turn goes, since when it waits.
    others: Vec<(usize, oneshot::Sender<Turn>, Instant)>,
    leadership: Leadership,
}

impl InFlight {
    fn new(leadership: Leadership, own: &mut Commands, others: Vec<Waiting>) -> Self {
        let mut pipeline = redis::pipe();
        let own_count = own.len();
        for command in own.drain(..) {
            pipeline.add_command(command);
        }
        let mut handed = Vec::with_capacity(others.len());
        for waiting in others {
            handed.push((waiting.commands.len(), waiting.turn, waiting.since));
            for command in waiting.commands {
                pipeline.add_command(command);
            }
        }
        Self {
            pipeline,
            own: own_count,
            others: handed,
            leadership,
        }
    }

    /// Hands each other caller its replies (or the round trip's error) and returns the leader's.
    fn hand_out(&mut self, replies: RedisResult<Vec<Value>>) -> RedisResult<Vec<Value>> {
        let others = std::mem::take(&mut self.others);
        let mut replies = match replies {
            Ok(replies) => replies.into_iter(),
            Err(error) => {
                for (_, turn, _) in others {
                    let _ = turn.send(Turn::Replied(Err(error.clone())));
                }
                return Err(error);
            }
        };
        let own = checked(replies.by_ref().take(self.own));
        for (count, turn, _) in others {
            let _ = turn.send(Turn::Replied(checked(replies.by_ref().take(count))));
        }
        own
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.others.is_empty() {
            return;
        }
        let Some(queue) = &self.leadership.0 else {
            return;
        };
        let mut commands = self.pipeline.cmd_iter().skip(self.own);
        let requeued: Vec<Waiting> = std::mem::take(&mut self.others)
            .into_iter()
            .map(|(count, turn, since)| Waiting {
                commands: commands.by_ref().take(count).cloned().collect(),
                turn,
                since,
            })
            .collect();
        let mut queue = queue.lock();
        for waiting in requeued.into_iter().rev() {
            queue.waiting.push_front(waiting);
        }
    }
}

/// One caller's replies as a lone request gives them: a server error is that request's error.
fn checked(replies: impl Iterator<Item = Value>) -> RedisResult<Vec<Value>> {
    replies.map(Value::extract_error).collect()
}

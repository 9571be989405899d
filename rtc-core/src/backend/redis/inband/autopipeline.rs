//! Auto-pipelining of the reads that share one async data connection: the reads that come while
//! another of the connection's round trips is in flight are gathered, and go out together as one
//! pipeline (one write, one request through redis-rs).
//!
//! Every request through redis-rs's multiplexed connection is a message on its channel, a reply
//! channel and, on a busy runtime, a write of its own to the socket: for a hit, that write costs
//! more than everything rtc does around it. With many calls in flight (a service's tasks, the
//! benches' 64), a pipeline of n reads pays it once.
//!
//! Nothing waits for company, nor for another round trip:
//! - A read that finds none of the connection's round trips in flight is sent at once, alone, as
//!   before.
//! - One that finds one in flight, and nobody gathering, gathers: it yields to the runtime once
//!   (the tasks ready to run, such as those the last reply woke, make their reads meanwhile),
//!   then sends itself and every read that joined it as one pipeline, without waiting for the
//!   round trips in flight.
//! - One that finds a caller gathering joins it, and waits for the pipeline's reply.
//!
//! The gathering is a value ([`Gathering`]): dropped before its pipeline is sent (its caller's
//! future dropped during the yield), it goes to the first caller that joined, which sends at
//! once, so that nobody waits for a gatherer that is gone.
//!
//! Only reads are pipelined ([`InBandFlow::IDEMPOTENT`](super::InBandFlow::IDEMPOTENT)): if the
//! gatherer's future is dropped while its pipeline is in flight, the reply is lost with it, and
//! the other callers' commands are gathered again and sent again (a read sent twice reads twice;
//! a write sent twice could land over a newer one). A read sent again has one socket timeout in
//! all, counted from when it first joined: a pipeline is given up when the first of its reads
//! has waited that long.
//!
//! Replies keep their order and invalidation messages theirs: each caller's commands are
//! contiguous in the pipeline (a learning read's `CLIENT CACHING YES` stays right before its
//! `MGET`), and the connection's reader applies every message that came before the pipeline's
//! last reply before the gatherer hands the replies out. A caller thus looks at its reply with
//! every message that preceded it applied, and possibly some that followed it: what `still` and
//! a learning fill already allow for, since a caller may look at its reply late.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Pipeline, RedisResult, Value};
use tokio::sync::oneshot;

use super::super::batch::Batch;
use super::super::PipelinedReads;
use super::Commands;

/// The reads of one data connection: how many round trips are in flight, and the reads
/// gathered for the next pipeline.
pub(in crate::backend::redis) struct AutoPipeline {
    queue: Mutex<Queue>,
    /// Counts the reads sent in a pipeline with others (shared by the store's connections).
    pipelined: PipelinedReads,
    /// How long a call may wait for Redis (the socket timeout): a read sent again after its
    /// pipeline was dropped has that long from when it first joined, not that long again.
    budget: Duration,
}

#[derive(Default)]
struct Queue {
    /// Round trips of reads in flight (lone reads and pipelines).
    in_flight: usize,
    /// A caller is gathering the next pipeline: a read that comes joins it.
    gathering: bool,
    /// The reads that joined, oldest first.
    joined: VecDeque<Joined>,
}

/// A read that joined the next pipeline.
struct Joined {
    commands: Commands,
    turn: oneshot::Sender<Turn>,
    /// When it joined (first joined, for a read gathered again).
    since: Instant,
}

/// What a caller that joined gets: its replies, or the gathering (with its commands back, and
/// when it joined), to send at once. The gathering, handed on only when a gatherer is gone, is
/// boxed: every reply goes through a channel of this type, moved in and out of it.
enum Turn {
    Replied(RedisResult<Vec<Value>>),
    Gather(Box<(Gathering, Commands, Instant)>),
}

/// How a read goes out.
enum Way {
    /// At once, alone: nothing was in flight.
    Alone(Sending),
    /// It gathers the next pipeline.
    Gathers(Gathering),
    /// It joined a caller gathering.
    Joined(oneshot::Receiver<Turn>),
}

impl AutoPipeline {
    /// The reads of a connection whose calls may wait `budget` for Redis.
    pub(in crate::backend::redis) fn new(pipelined: PipelinedReads, budget: Duration) -> Self {
        Self {
            queue: Mutex::default(),
            pipelined,
            budget,
        }
    }

    /// Sends `commands` on `connection` (taking them): at once when no read of the connection is
    /// in flight, else in one pipeline with the reads that come meanwhile. Returns their
    /// replies, or the error of their round trip (a server error in one of them is that read's
    /// alone).
    ///
    /// The commands are the caller's, borrowed: the future holds no copy of them, so that a
    /// hit's future, which holds this one, stays small.
    pub(in crate::backend::redis) async fn send(
        self: &Arc<Self>,
        connection: &MultiplexedConnection,
        commands: &mut Commands,
    ) -> RedisResult<Vec<Value>> {
        let (gathering, since) = match self.way(commands) {
            Way::Alone(sending) => {
                let replies = Batch::of(commands)
                    .query_async(&mut connection.clone())
                    .await;
                drop(sending);
                return replies;
            }
            Way::Gathers(gathering) => {
                tokio::task::yield_now().await;
                (gathering, None)
            }
            Way::Joined(turn) => match turn.await {
                Ok(Turn::Replied(replies)) => return replies,
                Ok(Turn::Gather(handed)) => {
                    let (gathering, own, since) = *handed;
                    *commands = own;
                    (gathering, Some(since))
                }
                // Never: a dropped pipeline gathers its reads again, and the gathering is
                // handed on by whoever drops it. Should it happen, the read fails as a lost
                // connection's would (a miss).
                Err(_) => return Err(gone()),
            },
        };
        gathering.send(connection, commands, since).await
    }

    /// How a read goes out now: alone, gathering, or joining.
    fn way(self: &Arc<Self>, commands: &mut Commands) -> Way {
        let mut queue = self.lock();
        if queue.gathering {
            let (turn, joined) = oneshot::channel();
            queue.joined.push_back(Joined {
                commands: std::mem::take(commands),
                turn,
                // Under the queue's lock: the cheaper clock, never ahead of the time.
                since: crate::clock::coarse_now(),
            });
            return Way::Joined(joined);
        }
        if queue.in_flight == 0 {
            queue.in_flight += 1;
            return Way::Alone(Sending(Arc::clone(self)));
        }
        queue.gathering = true;
        Way::Gathers(Gathering(Some(Arc::clone(self))))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // The queue is consistent between any two statements: a panic elsewhere leaves it usable.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands the gathering to the first caller that joined, or ends it when none did.
    fn hand_on(self: &Arc<Self>) {
        loop {
            let next = {
                let mut queue = self.lock();
                match queue.joined.pop_front() {
                    Some(next) => next,
                    None => {
                        queue.gathering = false;
                        return;
                    }
                }
            };
            let gathering = Gathering(Some(Arc::clone(self)));
            match next.turn.send(Turn::Gather(Box::new((
                gathering,
                next.commands,
                next.since,
            )))) {
                Ok(()) => return,
                // That caller is gone: the gathering goes to the next, without recursing.
                Err(Turn::Gather(refused)) => {
                    let (mut gathering, ..) = *refused;
                    drop(gathering.0.take());
                }
                Err(Turn::Replied(_)) => {}
            }
        }
    }
}

/// The error of a pipeline that was not answered in time.
fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no reply within the socket timeout (counted from when the first of the pipeline's \
         reads joined it)",
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

/// A round trip of the connection's reads in flight, counted while it lives.
struct Sending(Arc<AutoPipeline>);

impl Drop for Sending {
    fn drop(&mut self) {
        self.0.lock().in_flight -= 1;
    }
}

/// The gathering of the next pipeline: its holder sends it. Dropped before it is sent, it goes
/// to the first caller that joined (or, none did, ends).
struct Gathering(Option<Arc<AutoPipeline>>);

impl Gathering {
    /// Sends `own` (joined at `since`, if it joined) with every read that joined, hands the
    /// others their replies, and returns `own`'s. The pipeline is given up when the first of
    /// its reads has waited the socket timeout.
    async fn send(
        mut self,
        connection: &MultiplexedConnection,
        own: &mut Commands,
        since: Option<Instant>,
    ) -> RedisResult<Vec<Value>> {
        let mut connection = connection.clone();
        let connection = &mut connection;
        let Some(pipeline) = self.0.take() else {
            return Batch::of(own).query_async(connection).await;
        };
        let (joined, sending) = {
            let mut queue = pipeline.lock();
            queue.gathering = false;
            queue.in_flight += 1;
            let joined: Vec<Joined> = queue.joined.drain(..).collect();
            (joined, Sending(Arc::clone(&pipeline)))
        };
        let first = joined.iter().map(|read| read.since).chain(since).min();
        let Some(first) = first else {
            // Nobody joined: a read alone, bounded by redis-rs's own timeout.
            let replies = Batch::of(own).query_async(connection).await;
            drop(sending);
            return replies;
        };
        let deadline = first + pipeline.budget;
        // The timed requests are boxed: a timer would make every hit's future larger, and one
        // allocation per pipeline is shared by its reads.
        if joined.is_empty() {
            let alone = Batch::of(own);
            let replies = Box::pin(within(deadline, alone.query_async(connection))).await;
            drop(sending);
            return replies;
        }
        let reads = joined.len() as u64 + 1;
        pipeline.pipelined.fetch_add(reads, Ordering::Relaxed);
        let mut flight = InFlight::new(own, joined, sending);
        let request = connection.req_packed_commands(&flight.pipeline, 0, flight.pipeline.len());
        let replies = Box::pin(within(deadline, request)).await;
        flight.hand_out(replies)
    }
}

impl Drop for Gathering {
    fn drop(&mut self) {
        if let Some(pipeline) = self.0.take() {
            pipeline.hand_on();
        }
    }
}

/// A pipeline in flight: the gatherer's commands first, then each other caller's, and where
/// each caller's replies start. Dropped before its replies are handed out, it puts the other
/// callers' reads back at the head of the next pipeline, and gathers it unless somebody does.
struct InFlight {
    pipeline: Pipeline,
    own: usize,
    /// Each other caller's: how many commands, where its turn goes, since when it waits.
    others: Vec<(usize, oneshot::Sender<Turn>, Instant)>,
    sending: Sending,
}

impl InFlight {
    fn new(own: &mut Commands, joined: Vec<Joined>, sending: Sending) -> Self {
        let mut pipeline = redis::pipe();
        let own_count = own.len();
        for command in own.drain(..) {
            pipeline.add_command(command);
        }
        let mut others = Vec::with_capacity(joined.len());
        for read in joined {
            others.push((read.commands.len(), read.turn, read.since));
            for command in read.commands {
                pipeline.add_command(command);
            }
        }
        Self {
            pipeline,
            own: own_count,
            others,
            sending,
        }
    }

    /// Hands each other caller its replies (or the round trip's error) and returns the
    /// gatherer's.
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
        let pipeline = Arc::clone(&self.sending.0);
        let mut commands = self.pipeline.cmd_iter().skip(self.own);
        let again: Vec<Joined> = std::mem::take(&mut self.others)
            .into_iter()
            .map(|(count, turn, since)| Joined {
                commands: commands.by_ref().take(count).cloned().collect(),
                turn,
                since,
            })
            .collect();
        let gathers = {
            let mut queue = pipeline.lock();
            for read in again.into_iter().rev() {
                queue.joined.push_front(read);
            }
            !std::mem::replace(&mut queue.gathering, true)
        };
        if gathers {
            pipeline.hand_on();
        }
    }
}

/// One caller's replies as a lone request gives them: a server error is that request's error.
fn checked(replies: impl Iterator<Item = Value>) -> RedisResult<Vec<Value>> {
    replies.map(Value::extract_error).collect()
}

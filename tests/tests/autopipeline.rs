//! Auto-pipelining (issue 26): while an async read's round trip is in flight on a data
//! connection, the reads of the calls that come meanwhile are gathered and go out together, as
//! one pipeline. Each caller must still get its own reply, a server error must stay with the read
//! it answers, and a caller that goes away (its future dropped) must not strand the others.
//! Every test runs against a real `redis-server`, on a current-thread runtime, where tasks that
//! read at once always meet in the queue.

use std::time::Duration;

use redis::Commands;
use rtc::{Lifetime, TaggedCache};
use rtc_tests::{unique_namespace, RedisServer};

fn cache_on(server: &RedisServer, namespace: &str, timeout: Duration) -> TaggedCache {
    TaggedCache::builder()
        .namespace(namespace)
        .url(server.url())
        .response_timeout(timeout)
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `during` while the whole server is held for `duration` (`DEBUG SLEEP`, from a thread of
/// its own, begun 50 ms before), and returns once the server answers again.
fn while_held<T>(server: &RedisServer, duration: Duration, during: impl FnOnce() -> T) -> T {
    std::thread::scope(|scope| {
        let held = scope.spawn(|| server.debug_sleep(duration));
        std::thread::sleep(Duration::from_millis(50));
        let result = during();
        held.join().expect("DEBUG SLEEP returned");
        result
    })
}

/// A server that answers `DEBUG SLEEP`, a cache on it (5 s response timeout) whose connection
/// knows the tags of `count` stored keys, and a runtime: the set-up of the tests that hold the
/// server while callers give up.
fn debuggable_cache(
    namespace: &str,
    count: usize,
) -> (RedisServer, TaggedCache, tokio::runtime::Runtime) {
    let server = RedisServer::start_with(&["--enable-debug-command", "local"]);
    let cache = cache_on(
        &server,
        &unique_namespace(namespace),
        Duration::from_secs(5),
    );
    let runtime = runtime();
    runtime.block_on(stored_and_known(&cache, count));
    (server, cache, runtime)
}

/// Key `i`'s value as a hit returns it (`None`: a miss or an error).
async fn read_key(cache: TaggedCache, i: usize) -> Option<String> {
    cache
        .get_async::<String>(&format!("key {i}"), &tags_of(i))
        .await
        .ok()
}

/// Key `i`'s tags: four keys share each tag.
fn tags_of(i: usize) -> Vec<String> {
    vec![format!("group:{}", i % 4), "all".to_owned()]
}

/// Stores `value i` under `key i` for each `i`, and reads each once, so that the connection
/// knows every tag and each later hit is one `GET`.
async fn stored_and_known(cache: &TaggedCache, count: usize) {
    for i in 0..count {
        let stored = cache
            .set_async(
                &format!("key {i}"),
                &format!("value {i}"),
                &tags_of(i),
                Lifetime::Default,
            )
            .await;
        assert!(stored, "key {i} stored");
    }
    for i in 0..count {
        assert_eq!(
            read_key(cache.clone(), i).await,
            Some(format!("value {i}")),
            "key {i} read back"
        );
    }
}

#[test]
fn concurrent_hits_share_pipelines_and_each_gets_its_own_value() {
    const TASKS: usize = 64;
    const ROUNDS: usize = 20;
    let server = RedisServer::start();
    let cache = cache_on(
        &server,
        &unique_namespace("pipelined"),
        Duration::from_secs(2),
    );
    let runtime = runtime();
    runtime.block_on(stored_and_known(&cache, TASKS));
    let before = cache.stats();
    assert_eq!(before.pipelined_reads, 0, "reads one at a time go alone");
    let gets = server.command_calls("get");
    let mgets = server.command_calls("mget");
    runtime.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|i| {
                let cache = cache.clone();
                tokio::spawn(async move {
                    for round in 0..ROUNDS {
                        assert_eq!(
                            read_key(cache.clone(), i).await,
                            Some(format!("value {i}")),
                            "task {i}, round {round}: its own value"
                        );
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    let after = cache.stats();
    let reads = (TASKS * ROUNDS) as u64;
    assert_eq!(after.hits - before.hits, reads);
    assert_eq!(
        server.command_calls("get") - gets,
        reads,
        "still one GET per hit"
    );
    assert_eq!(server.command_calls("mget"), mgets, "no tag read");
    // All but the first task's first read found a round trip in flight.
    assert!(
        after.pipelined_reads > reads / 2,
        "{} of {reads} reads pipelined",
        after.pipelined_reads
    );
    // The blocking API's reads are never pipelined.
    for i in 0..TASKS {
        assert_eq!(
            cache.get::<String>(&format!("key {i}"), &tags_of(i)).ok(),
            Some(format!("value {i}"))
        );
    }
    assert_eq!(cache.stats().pipelined_reads, after.pipelined_reads);
}

#[test]
fn a_server_error_in_a_pipeline_is_the_miss_of_its_own_read_only() {
    const TASKS: usize = 32;
    let server = RedisServer::start();
    let namespace = unique_namespace("pipelined-error");
    let cache = cache_on(&server, &namespace, Duration::from_secs(2));
    let runtime = runtime();
    // The damaged entry is written first, so that it is the only entry key there is to find.
    runtime.block_on(async {
        assert!(
            cache
                .set_async("damaged", &"value", &["all"], Lifetime::Default)
                .await
        );
    });
    let mut probe = server.connection();
    let entries: Vec<String> = probe.keys("rtc:e:*").unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let _: () = probe.del(&entries[0]).unwrap();
    let _: () = probe.hset(&entries[0], "field", "x").unwrap();
    runtime.block_on(stored_and_known(&cache, TASKS));
    // What the damaged entry gives a read sent alone.
    let alone = runtime.block_on(cache.get_async::<String>("damaged", &["all"]));
    let alone = alone.map_err(|miss| miss.kind());
    assert!(alone.is_err(), "{alone:?}");
    let pipelined = cache.stats().pipelined_reads;
    let mut results = runtime.block_on(async {
        let mut tasks: Vec<_> = (0..TASKS)
            .map(|i| {
                let cache = cache.clone();
                tokio::spawn(async move {
                    cache
                        .get_async::<String>(&format!("key {i}"), &tags_of(i))
                        .await
                        .map_err(|miss| miss.kind())
                })
            })
            .collect();
        // In the middle of the others, so that it shares their pipelines.
        let damaged = cache.clone();
        tasks.insert(
            TASKS / 2,
            tokio::spawn(async move {
                damaged
                    .get_async::<String>("damaged", &["all"])
                    .await
                    .map_err(|miss| miss.kind())
            }),
        );
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        results
    });
    assert!(
        cache.stats().pipelined_reads > pipelined,
        "the reads shared pipelines"
    );
    let damaged = results.remove(TASKS / 2);
    assert_eq!(
        damaged, alone,
        "the damaged entry's miss, as when read alone"
    );
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result, Ok(format!("value {i}")), "key {i}");
    }
}

#[test]
fn callers_dropped_while_joined_or_with_their_pipeline_in_flight_strand_nobody() {
    let (server, cache, runtime) = debuggable_cache("pipelined-drop", 8);
    // The server stops answering for 800 ms. `lone` is sent at once, alone, and gives up after
    // 200 ms. `leader` finds it in flight and gathers the others into one pipeline, sent while
    // `lone` is still in flight; it gives up at 400 ms with that pipeline unanswered, and the
    // reads it carried are gathered again and sent again: the gathering goes to `waiter`, which
    // gave up at 300 ms, so to the next, and the five others are answered once the server is
    // back.
    let results = while_held(&server, Duration::from_millis(800), || {
        runtime.block_on(async {
            let read = |i: usize| read_key(cache.clone(), i);
            let given_up = |i: usize, after: u64| {
                let read = read(i);
                tokio::spawn(async move {
                    tokio::time::timeout(Duration::from_millis(after), read)
                        .await
                        .ok()
                        .flatten()
                })
            };
            let lone = given_up(0, 200);
            tokio::task::yield_now().await;
            let leader = given_up(1, 400);
            let waiter = given_up(2, 300);
            let rest: Vec<_> = (3..8).map(|i| tokio::spawn(read(i))).collect();
            let mut results = vec![
                lone.await.unwrap(),
                leader.await.unwrap(),
                waiter.await.unwrap(),
            ];
            for task in rest {
                // Bounded, so that a stranded read fails the test instead of hanging it.
                let answered = tokio::time::timeout(Duration::from_secs(10), task).await;
                results.push(answered.expect("a read was stranded").unwrap());
            }
            results
        })
    });
    assert_eq!(results[..3], [None, None, None], "the three gave up");
    for (i, result) in results.into_iter().enumerate().skip(3) {
        assert_eq!(result, Some(format!("value {i}")), "key {i}");
    }
    // And the connection still serves reads, one at a time and together.
    runtime.block_on(stored_and_known(&cache, 8));
}

#[test]
fn a_caller_dropped_while_gathering_hands_the_reads_that_joined_it_on() {
    let (server, cache, runtime) = debuggable_cache("pipelined-gather", 3);
    // The server stops answering for 500 ms: `lone` is in flight all along, so `gatherer`
    // gathers (it yields once before sending), `joined` joins it, and `gatherer` is dropped
    // during its yield. `joined` must then send itself and be answered once the server is back.
    let (lone, joined) = while_held(&server, Duration::from_millis(500), || {
        runtime.block_on(async {
            let read = |i: usize| tokio::spawn(read_key(cache.clone(), i));
            let lone = read(0);
            tokio::task::yield_now().await;
            let gatherer = read(1);
            let joined = read(2);
            tokio::task::yield_now().await;
            gatherer.abort();
            assert!(gatherer.await.unwrap_err().is_cancelled());
            let bounded = |task| tokio::time::timeout(Duration::from_secs(10), task);
            (
                bounded(lone).await.expect("lone was stranded").unwrap(),
                bounded(joined).await.expect("joined was stranded").unwrap(),
            )
        })
    });
    assert_eq!(lone.as_deref(), Some("value 0"));
    assert_eq!(joined.as_deref(), Some("value 2"));
}

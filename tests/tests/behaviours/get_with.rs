//! Get-or-compute on the cache itself (`get_with`, `try_get_with` and their async twins): a
//! `#[cached(lock = true)]` function's guarantees for a key and tags given at the call.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rtc::{Lifetime, MissKind};
use rtc_tests::gates::{wait_until, EVENT_LIMIT};

use super::{in_time, sleep_past, Fixture};

behaviours! {
    fn get_with_computes_once_and_shares_its_entry_with_get_and_set(fixture) {
        let cache = fixture.cache();
        let runs = AtomicUsize::new(0);
        let compute = || {
            runs.fetch_add(1, Ordering::SeqCst);
            vec!["apple".to_owned()]
        };
        let first: Vec<String> = cache.get_with("cart:7", ["user:7", "carts"], compute);
        let again: Vec<String> = cache.get_with("cart:7", ["carts", "user:7"], compute);
        assert_eq!((first.len(), again.len()), (1, 1));
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the second call hit");
        assert_eq!(cache.get::<Vec<String>>("cart:7", ["carts", "user:7"]), Ok(first));
        assert!(cache.set("cart:7", &vec!["pear".to_owned()], ["carts", "user:7"], Lifetime::Default));
        let set: Vec<String> = cache.get_with("cart:7", ["carts", "user:7"], compute);
        assert_eq!(set, ["pear"], "what set stored is what get_with finds");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        cache.invalidate(["user:7"]);
        let recomputed: Vec<String> = cache.get_with("cart:7", ["carts", "user:7"], compute);
        assert_eq!(recomputed, ["apple"]);
        assert_eq!(runs.load(Ordering::SeqCst), 2, "an invalidated entry is computed again");
    }

    fn try_get_with_caches_ok_and_never_err(fixture) {
        let cache = fixture.cache();
        let failed: Result<u64, String> = cache.try_get_with("n", ["t"], || Err("down".to_owned()));
        assert_eq!(failed, Err("down".to_owned()));
        assert_eq!(cache.get::<u64>("n", ["t"]).map_err(|miss| miss.kind()), Err(MissKind::Absent));
        let found: Result<u64, String> = cache.try_get_with("n", ["t"], || Ok(7));
        assert_eq!(found, Ok(7));
        let kept: Result<u64, String> = cache.try_get_with("n", ["t"], || Err("not called".to_owned()));
        assert_eq!(kept, Ok(7));
    }

    fn a_value_whose_tag_is_invalidated_while_it_is_computed_misses(fixture) {
        let cache = fixture.cache();
        let value: u64 = cache.get_with("report", ["sales"], || {
            // Another writer invalidates the tag while this value is being computed: the
            // value was computed from data older than that invalidation.
            assert!(cache.invalidate(["sales"]));
            1
        });
        assert_eq!(value, 1, "the caller still gets what it computed");
        assert_eq!(
            cache.get::<u64>("report", ["sales"]).map_err(|miss| miss.kind()),
            Err(MissKind::Absent)
        );
        assert_eq!(cache.get_with("report", ["sales"], || 2_u64), 2, "computed afresh");
        assert_eq!(cache.get::<u64>("report", ["sales"]), Ok(2));
    }

    fn threads_on_a_cold_entry_compute_it_once(fixture) {
        let cache = fixture.cache();
        let (callers, runs, started) = (16, AtomicUsize::new(0), AtomicUsize::new(0));
        let results: Vec<u64> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..callers)
                .map(|_| {
                    scope.spawn(|| {
                        started.fetch_add(1, Ordering::SeqCst);
                        cache.get_with("cold", ["t"], || {
                            runs.fetch_add(1, Ordering::SeqCst);
                            // Keep computing until every caller has set off, so that they all
                            // meet this computation in flight.
                            wait_until(EVENT_LIMIT, "every caller set off", || {
                                started.load(Ordering::SeqCst) == callers
                            });
                            std::thread::sleep(Duration::from_millis(100));
                            42_u64
                        })
                    })
                })
                .collect();
            threads.into_iter().map(|thread| thread.join().unwrap()).collect()
        });
        assert_eq!(results, vec![42; callers]);
        assert_eq!(runs.load(Ordering::SeqCst), 1, "one computation for {callers} callers");
    }

    fn async_tasks_on_a_cold_entry_compute_it_once(fixture) {
        let cache = fixture.cache();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let runs = std::sync::Arc::new(AtomicUsize::new(0));
        let tasks = 16;
        let results = runtime.block_on(async {
            let calls = (0..tasks).map(|_| {
                let (cache, runs) = (cache.clone(), runs.clone());
                tokio::spawn(async move {
                    let computation = async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        Ok::<u64, String>(42)
                    };
                    cache.try_get_with_async("cold-async", ["t"], computation).await
                })
            });
            let handles: Vec<_> = calls.collect();
            let mut results = Vec::new();
            for handle in handles {
                results.push(handle.await.unwrap());
            }
            results
        });
        assert_eq!(results, vec![Ok(42); tasks]);
        assert_eq!(runs.load(Ordering::SeqCst), 1, "one computation for {tasks} tasks");
        let hit = runtime.block_on(cache.get_with_async("cold-async", ["t"], async { 0_u64 }));
        assert_eq!(hit, 42);
    }

    fn an_entry_given_a_lifetime_expires_with_it_and_a_zero_one_stores_nothing(fixture) {
        let cache = fixture.cache();
        let lifetime = Duration::from_millis(400);
        in_time("a short-lived get_with entry", |round| {
            let key = format!("short{round}");
            let sent = Instant::now();
            let value: u64 = cache.entry(&key, ["t"]).lifetime(lifetime).get_with(|| 5);
            let found = cache.get::<u64>(&key, ["t"]);
            if sent.elapsed() >= lifetime {
                return None;
            }
            assert_eq!((value, found), (5, Ok(5)));
            sleep_past(sent, lifetime);
            assert_eq!(cache.get::<u64>(&key, ["t"]).map_err(|miss| miss.kind()), Err(MissKind::Absent));
            Some(())
        });
        let runs = AtomicUsize::new(0);
        for _ in 0..2 {
            let value: u64 = cache.entry("zero", ["t"]).lifetime(Duration::ZERO).get_with(|| {
                runs.fetch_add(1, Ordering::SeqCst);
                9
            });
            assert_eq!(value, 9);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2, "nothing was stored, so nothing hit");
        assert!(cache.get::<u64>("zero", ["t"]).is_err());
        let forever: u64 = cache.entry("forever", ["t"]).lifetime(Lifetime::Never).get_with(|| 3);
        assert_eq!((forever, cache.get::<u64>("forever", ["t"])), (3, Ok(3)));
    }
}

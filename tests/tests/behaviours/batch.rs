//! Batch reads and writes (`get_many`, `set_many` and their async twins): the same answers as
//! the one-entry calls, in the order asked.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rtc::{Lifetime, MissKind, TaggedCache, NO_TAGS};

use super::{in_time, sleep_past, Fixture};

/// What `call` added to the cache's hit and miss counters.
fn counted(cache: &TaggedCache, call: impl FnOnce()) -> (u64, u64) {
    let before = cache.stats();
    call();
    let after = cache.stats();
    (after.hits - before.hits, after.misses - before.misses)
}

behaviours! {
    fn get_many_answers_each_entry_as_get_does_in_the_order_asked(fixture) {
        let cache = fixture.cache();
        cache.set("fresh", &1, ["t"], Lifetime::Default);
        cache.set("deleted", &2, ["t"], Lifetime::Default);
        assert!(cache.delete("deleted", ["t"]));
        cache.set("invalidated", &3, ["gone", "t"], Lifetime::Default);
        assert!(cache.invalidate(["gone"]));
        cache.set("text", &"not a number", ["t"], Lifetime::Default);
        cache.set("untagged", &4, NO_TAGS, Lifetime::Default);
        let asked: Vec<(&str, Vec<&str>)> = vec![
            ("fresh", vec!["t"]),
            ("absent", vec!["t"]),
            ("deleted", vec!["t"]),
            ("invalidated", vec!["t", "gone"]),
            ("fresh", vec!["other"]),
            ("text", vec!["t"]),
            ("untagged", vec![]),
            ("fresh", vec!["t", "t"]),
        ];
        let mut one_by_one = Vec::new();
        let counted_one_by_one = counted(&cache, || {
            for (key, tags) in &asked {
                one_by_one.push(cache.get::<i32>(key, tags));
            }
        });
        let mut batch = Vec::new();
        let counted_batch = counted(&cache, || batch = cache.get_many::<i32>(asked.clone()));
        assert_eq!(
            batch,
            [Ok(1), Err(MissKind::Absent.into()), Err(MissKind::Absent.into()), Err(MissKind::Absent.into()), Err(MissKind::Absent.into()), Err(MissKind::Undecodable.into()), Ok(4), Ok(1)]
        );
        assert_eq!(batch, one_by_one);
        assert_eq!(counted_batch, counted_one_by_one, "each entry is one hit or one miss");
        assert_eq!(counted_batch.0 + counted_batch.1, asked.len() as u64);
    }

    fn set_many_stores_each_entry_with_its_own_tags(fixture) {
        let cache = fixture.cache();
        let values: Vec<u32> = (0..100).collect();
        let tags_of = |i: u32| [format!("t{}", i % 10), "all".to_owned()];
        let sets = cache.stats().sets;
        let stored = cache.set_many(values.iter().map(|i| (format!("k{i}"), i, tags_of(*i))), Lifetime::Default);
        assert_eq!(stored, vec![true; 100]);
        assert_eq!(cache.stats().sets - sets, 100);
        let read = || cache.get_many::<u32>(values.iter().map(|i| (format!("k{i}"), tags_of(*i))));
        assert_eq!(read(), values.iter().map(|i| Ok(*i)).collect::<Vec<_>>());
        assert_eq!(cache.get::<u32>("k42", ["all", "t2"]), Ok(42), "one-entry calls see batch writes");

        assert!(cache.invalidate(["t3"]));
        for (i, got) in values.iter().zip(read()) {
            if i % 10 == 3 {
                assert_eq!(got, Err(MissKind::Absent.into()), "k{i} carries t3");
            } else {
                assert_eq!(got, Ok(*i));
            }
        }
        assert!(cache.invalidate_all());
        assert!(read().iter().all(Result::is_err));
    }

    fn set_many_keeps_the_later_of_two_writes_and_skips_values_it_cannot_serialize(fixture) {
        let cache = fixture.cache();
        // JSON maps need string keys: an empty map serializes, a non-empty one does not.
        let empty: HashMap<Vec<u8>, u32> = HashMap::new();
        let unserializable: HashMap<Vec<u8>, u32> = [(vec![1], 1)].into();
        let one: HashMap<Vec<u8>, u32> = HashMap::new();
        let stored = cache.set_many(
            [
                ("twice", &unserializable, ["t"]),
                ("bad", &unserializable, ["t"]),
                ("twice", &empty, ["t"]),
                ("good", &one, ["t"]),
            ],
            Lifetime::Default,
        );
        assert_eq!(stored, [false, false, true, true]);
        let got = cache.get_many::<HashMap<String, u32>>([("twice", "t"), ("bad", "t"), ("good", "t")]);
        assert_eq!(got, [Ok(HashMap::new()), Err(MissKind::Absent.into()), Ok(HashMap::new())]);

        let stored = cache.set_many([("dup", &1, "t"), ("dup", &2, "t")], Lifetime::Default);
        assert_eq!(stored, [true, true]);
        assert_eq!(cache.get::<i32>("dup", "t"), Ok(2), "the later value stays");
        assert!(cache.set_many([("dup", &3, "t")], Lifetime::Default)[0], "and a batch replaces what is there");
        assert_eq!(cache.get::<i32>("dup", "t"), Ok(3));
    }

    fn empty_batches_answer_at_once_with_nothing(fixture) {
        let cache = fixture.cache();
        let before = cache.stats();
        let none: [(&str, [&str; 0]); 0] = [];
        assert!(cache.get_many::<i32>(none).is_empty());
        let nothing: [(&str, &i32, [&str; 0]); 0] = [];
        assert!(cache.set_many(nothing, Lifetime::Default).is_empty());
        assert_eq!(cache.stats(), before);
    }

    fn set_many_entries_share_one_lifetime(fixture) {
        let lifetime = Duration::from_millis(150);
        let cache = fixture.cache();
        let (round, written) = in_time("a batch read within its lifetime hits", |round| {
            let started = Instant::now();
            let keys = [format!("a{round}"), format!("b{round}")];
            cache.set_many(keys.iter().map(|key| (key, &1, "t")), lifetime);
            cache.set_many([(format!("forever{round}"), &2, "t")], Lifetime::Never);
            let got = cache.get_many::<i32>(keys.iter().map(|key| (key, "t")));
            let written = Instant::now();
            if started.elapsed() >= lifetime {
                return None;
            }
            assert_eq!(got, [Ok(1), Ok(1)]);
            Some((round, written))
        });
        sleep_past(written, lifetime);
        let got = cache.get_many::<i32>([
            (format!("a{round}"), "t"),
            (format!("b{round}"), "t"),
            (format!("forever{round}"), "t"),
        ]);
        assert_eq!(got, [Err(MissKind::Absent.into()), Err(MissKind::Absent.into()), Ok(2)]);
    }

    fn the_async_batch_twins_behave_like_the_sync_calls(fixture) {
        let cache = fixture.cache();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
        runtime.block_on(async {
            let mut tasks = Vec::new();
            for task in 0..8u32 {
                let cache = cache.clone();
                tasks.push(tokio::spawn(async move {
                    let values: Vec<u32> = (0..50).map(|i| task * 100 + i).collect();
                    let key = |value: &u32| format!("k{value}");
                    let tag = format!("task{task}");
                    let stored = cache
                        .set_many_async(values.iter().map(|value| (key(value), value, [&tag, "all"])), Lifetime::Default)
                        .await;
                    assert_eq!(stored, vec![true; 50]);
                    let got = cache
                        .get_many_async::<u32>(values.iter().map(|value| (key(value), [&tag, "all"])))
                        .await;
                    assert_eq!(got, values.iter().map(|value| Ok(*value)).collect::<Vec<_>>());
                }));
            }
            for task in tasks {
                task.await.expect("no task panics");
            }
            assert!(cache.invalidate_async(["task3"]).await);
            let got = cache
                .get_many_async::<u32>([("k301", ["task3", "all"]), ("k401", ["task4", "all"])])
                .await;
            assert_eq!(got, [Err(MissKind::Absent.into()), Ok(401)]);
        });
    }
}

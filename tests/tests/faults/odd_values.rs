//! Values, keys and tag sets at the edges: 10 MB values, 1 MB keys and tags, empty and odd
//! strings, 1,000 tags and the tag limit, values JSON cannot carry. engine.rs covers 10 KB keys
//! and tags, the empty key and tag, and hostile characters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use redis::Commands;
use rtc::{Lifetime, MissKind, TaggedCache, MAX_TAGS, NO_TAGS};
use rtc_tests::gates::wait_until;
use rtc_tests::statics::install;
use rtc_tests::{warnings, RedisServer};

use crate::support::{builder_on, cache_on};

static BIG: OnceLock<TaggedCache> = OnceLock::new();
static MANY_TAGS: OnceLock<TaggedCache> = OnceLock::new();

const TEN_MB: usize = 10 * 1024 * 1024;

/// 10 MB of text that does not compress to nothing and has to be escaped in JSON here and there.
fn ten_mb() -> String {
    let mut text = String::with_capacity(TEN_MB);
    let mut n = 0u32;
    while text.len() < TEN_MB {
        text.push(char::from(b' ' + (n % 95) as u8));
        if n.is_multiple_of(1000) {
            text.push_str("\"\\\n\u{e9}");
        }
        n = n.wrapping_add(7919);
    }
    text
}

#[rtc::cached(key = "big", cache = BIG.get().unwrap(), skip(runs, text))]
fn big_load(runs: &AtomicU64, text: &str) -> String {
    runs.fetch_add(1, Ordering::SeqCst);
    text.to_owned()
}

#[test]
fn values_of_10_mb_are_stored_and_read_back() {
    let server = RedisServer::start();
    let cache = install(
        &BIG,
        builder_on(&server, "big")
            .response_timeout(Duration::from_secs(5))
            .build()
            .unwrap(),
    );
    let text = ten_mb();
    assert!(cache.set("big", &text, ["t"], Lifetime::Default));
    assert_eq!(
        cache.get::<String>("big", ["t"]).as_deref(),
        Ok(text.as_str())
    );
    let runs = AtomicU64::new(0);
    assert_eq!(big_load(&runs, &text), text);
    assert_eq!(big_load(&runs, &text), text);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the second call hit");
}

#[test]
fn a_value_larger_than_the_server_accepts_is_refused_with_a_warning() {
    let server = RedisServer::start_with(&["--proto-max-bulk-len", "1mb"]);
    let cache = builder_on(&server, "too-big")
        .response_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let text = ten_mb();
    let (stored, logged) = warnings::capture(|| cache.set("big", &text, ["t"], Lifetime::Default));
    assert!(!stored);
    assert_eq!(logged.len(), 1, "{logged:#?}");
    assert_eq!(
        cache.get::<String>("big", ["t"]),
        Err(MissKind::Unavailable.into())
    );
    // Redis drops the connection on a bulk string over its limit, which rtc cannot tell from a
    // connection failure: the cache is skipped for the first back-off pause.
    wait_until(Duration::from_secs(2), "the cache works again", || {
        cache.set("small", &"fits", ["t"], Lifetime::Default)
    });
    assert_eq!(cache.get::<String>("small", ["t"]).as_deref(), Ok("fits"));
}

#[test]
fn keys_and_tags_of_1_mb_are_hashed_like_any_other() {
    let server = RedisServer::start();
    let cache = cache_on(&server, "huge-keys");
    let key = "k".repeat(1024 * 1024);
    let tag = "t".repeat(1024 * 1024);
    let almost = format!("{}u", &tag[1..]);
    assert!(cache.set(&key, &1, [&tag, &almost], Lifetime::Default));
    assert_eq!(cache.get::<i32>(&key, [&almost, &tag]), Ok(1));
    assert!(cache.invalidate([&almost]));
    assert_eq!(
        cache.get::<i32>(&key, [&tag, &almost]),
        Err(MissKind::Absent.into())
    );
    // Every key is a short hash, whatever the length of what it was made from.
    let keys: Vec<String> = server.connection().keys("*").unwrap();
    assert!(keys.iter().all(|key| key.len() <= 64), "{keys:?}");
}

#[test]
fn empty_and_odd_strings_round_trip() {
    let server = RedisServer::start();
    let cache = cache_on(&server, "odd-strings");
    let odd = [
        "",
        "\0",
        "\u{1}\u{0}\u{0}\u{0}\u{0}",
        "\u{fffd}\u{fffd}",
        "\u{feff}byte order mark",
        "\u{202e}right to left",
        "\\xff\\xfe not bytes",
        "\"}{\\",
        "\r\n\t\u{7f}\u{1b}[31m",
        "ключ 鍵 🔑",
    ];
    for (i, value) in odd.iter().enumerate() {
        let key = format!("odd{i}");
        assert!(
            cache.set(&key, value, [*value], Lifetime::Default),
            "{value:?}"
        );
        assert_eq!(cache.get::<String>(&key, [*value]).as_deref(), Ok(*value));
    }
    let every_byte: Vec<u8> = (0..=255).collect();
    assert!(cache.set("bytes", &every_byte, NO_TAGS, Lifetime::Default));
    assert_eq!(cache.get::<Vec<u8>>("bytes", NO_TAGS), Ok(every_byte));
    // The empty tag is a tag: an entry with it is not the entry without tags.
    assert!(cache.set("", &"tagged", [""], Lifetime::Default));
    assert!(cache.set("", &"untagged", NO_TAGS, Lifetime::Default));
    assert_eq!(cache.get::<String>("", [""]).as_deref(), Ok("tagged"));
    assert!(cache.invalidate([""]));
    assert_eq!(cache.get::<String>("", [""]), Err(MissKind::Absent.into()));
    assert_eq!(cache.get::<String>("", NO_TAGS).as_deref(), Ok("untagged"));
    assert!(
        TaggedCache::builder().namespace("").build().is_err(),
        "an empty namespace is a configuration error"
    );
}

#[test]
fn values_json_cannot_carry_are_misses_not_errors() {
    let server = RedisServer::start();
    let cache = cache_on(&server, "json-limits");
    // serde_json reads at most 128 levels of nesting: deeper values are stored but never hit.
    let mut deep = serde_json::json!(0);
    for _ in 0..200 {
        deep = serde_json::json!([deep]);
    }
    let (stored, logged) = warnings::capture(|| {
        let stored = cache.set("deep", &deep, NO_TAGS, Lifetime::Default);
        (stored, cache.get::<serde_json::Value>("deep", NO_TAGS))
    });
    assert_eq!(stored, (true, Err(MissKind::Undecodable.into())));
    assert!(
        logged[0].message.contains("recursion limit"),
        "{}",
        logged[0]
    );
    // Non-finite floats are written as JSON null, which does not read back as a float.
    assert!(cache.set("nan", &f64::NAN, NO_TAGS, Lifetime::Default));
    assert_eq!(
        cache.get::<f64>("nan", NO_TAGS),
        Err(MissKind::Undecodable.into())
    );
    assert_eq!(cache.get::<Option<f64>>("nan", NO_TAGS), Ok(None));
}

#[rtc::cached(tags = (0..1000).map(|i| format!("tag{i}")), cache = MANY_TAGS.get().unwrap(), skip(runs))]
fn many_tags_load(runs: &AtomicU64) -> u64 {
    runs.fetch_add(1, Ordering::SeqCst)
}

#[test]
fn an_entry_with_1000_tags_misses_when_any_one_of_them_is_invalidated() {
    let server = RedisServer::start();
    let cache = install(&MANY_TAGS, cache_on(&server, "many-tags"));
    let tags: Vec<String> = (0..1000).map(|i| format!("tag{i}")).collect();
    assert!(cache.set("k", &1, &tags, Lifetime::Default));
    assert_eq!(cache.get::<i32>("k", tags.iter().rev()), Ok(1));
    assert!(cache.invalidate(["tag500"]));
    assert_eq!(cache.get::<i32>("k", &tags), Err(MissKind::Absent.into()));
    let runs = AtomicU64::new(0);
    assert_eq!(many_tags_load(&runs), 0);
    assert_eq!(many_tags_load(&runs), 0, "hit");
    assert!(cache.invalidate(["tag999"]));
    assert_eq!(many_tags_load(&runs), 1, "recomputed");
    assert_eq!(many_tags_load(&runs), 1, "hit");
}

#[test]
fn more_tags_than_an_entry_can_carry_are_refused_cleanly() {
    let server = RedisServer::start();
    // Hashing 65,534 tags and running the write script over them takes a second or two.
    let cache = builder_on(&server, "tag-limit")
        .response_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    // The namespace's own tag is one of the MAX_TAGS.
    let most: Vec<String> = (0..MAX_TAGS - 1).map(|i| i.to_string()).collect();
    assert!(cache.set("most", &1, &most, Lifetime::Default));
    assert_eq!(cache.get::<i32>("most", &most), Ok(1));
    let too_many: Vec<String> = (0..MAX_TAGS).map(|i| i.to_string()).collect();
    let (stored, logged) =
        warnings::capture(|| cache.set("too many", &1, &too_many, Lifetime::Default));
    assert!(!stored);
    assert!(
        logged.len() == 1 && logged[0].message.contains("at most"),
        "{logged:#?}"
    );
}

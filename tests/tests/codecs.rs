//! Codecs and compression through the public API, in memory and on a real Redis: every codec
//! reads back what it wrote; an entry of another codec is a miss with one rate-limited warning,
//! never a wrong value; compressed entries are smaller and read by any cache of the namespace;
//! entries in rtc 0.1's format (JSON, no codec recorded) are still read.

use std::sync::OnceLock;

use redis::Commands;
use rtc::{cached, Codec, Lifetime, TaggedCache};
use rtc_tests::rows::{rows, Row};
use rtc_tests::{statics, unique_namespace, warnings, RedisServer};

/// Every way this build can write values: each codec, without and with compression.
fn encodings() -> Vec<(Codec, Option<usize>)> {
    [Codec::Json, Codec::Postcard]
        .into_iter()
        .flat_map(|codec| [(codec, None), (codec, Some(256))])
        .collect()
}

fn with_encoding(
    builder: rtc::TaggedCacheBuilder,
    (codec, compress_above): (Codec, Option<usize>),
) -> TaggedCache {
    let builder = builder.codec(codec);
    match compress_above {
        Some(bytes) => builder.compress_above(bytes),
        None => builder,
    }
    .build()
    .unwrap()
}

fn redis_builder(server: &RedisServer, namespace: &str) -> rtc::TaggedCacheBuilder {
    TaggedCache::builder()
        .namespace(namespace)
        .url(server.url())
}

fn round_trips(cache: &TaggedCache, label: &str) {
    for count in [1, 100] {
        let value = rows(count);
        let key = format!("rows:{count}");
        assert!(
            cache.set(&key, &value, ["rows"], Lifetime::Default),
            "{label}: stored"
        );
        assert_eq!(cache.get::<Vec<Row>>(&key, ["rows"]), Ok(value), "{label}");
    }
    assert_eq!(cache.stats().errors, 0, "{label}: no codec trouble");
}

#[test]
fn every_codec_reads_back_what_it_wrote_in_memory_and_on_redis() {
    let server = RedisServer::start();
    for encoding in encodings() {
        let memory = with_encoding(TaggedCache::builder().in_memory(), encoding);
        round_trips(&memory, &format!("{encoding:?} in memory"));
        let redis = with_encoding(redis_builder(&server, &unique_namespace("codec")), encoding);
        round_trips(&redis, &format!("{encoding:?} on Redis"));
    }
}

#[test]
fn an_entry_of_another_codec_is_a_miss_with_one_warning_never_a_wrong_value() {
    let server = RedisServer::start();
    for (writer, reader) in [
        (Codec::Postcard, Codec::Json),
        (Codec::Json, Codec::Postcard),
    ] {
        let namespace = unique_namespace("mismatch");
        let writing = redis_builder(&server, &namespace)
            .codec(writer)
            .build()
            .unwrap();
        let reading = redis_builder(&server, &namespace)
            .codec(reader)
            .build()
            .unwrap();
        // JSON's `7` is the byte 0x37, which postcard would read as 55 if the codec were not
        // recorded.
        assert!(writing.set("n", &7u64, ["t"], Lifetime::Default));
        let (reads, logged) = warnings::capture(|| {
            (0..3)
                .map(|_| reading.get::<u64>("n", ["t"]))
                .collect::<Vec<_>>()
        });
        assert!(
            reads.iter().all(Result::is_err),
            "{writer:?} → {reader:?}: {reads:?}"
        );
        assert_eq!(logged.len(), 1, "one rate-limited warning: {logged:#?}");
        assert!(
            logged[0].message.contains("written as"),
            "the warning says why: {}",
            logged[0]
        );
        assert_eq!(reading.stats().errors, 3, "each miss is counted");
        assert_eq!(
            writing.get::<u64>("n", ["t"]),
            Ok(7),
            "the writer still reads it"
        );

        // The reader's own write replaces the entry, and then it hits.
        assert!(reading.set("n", &8u64, ["t"], Lifetime::Default));
        assert_eq!(reading.get::<u64>("n", ["t"]), Ok(8));
    }
}

/// The stored bytes of the only entry of `namespace`.
fn stored_entry(server: &RedisServer, cache: &TaggedCache) -> (String, Vec<u8>) {
    let mut connection = server.connection();
    let pattern = cache.key_pattern().replace("rtc:?:", "rtc:e:");
    let keys: Vec<String> = connection.keys(&pattern).unwrap();
    assert_eq!(keys.len(), 1, "one entry: {keys:?}");
    let bytes: Vec<u8> = connection.get(&keys[0]).unwrap();
    (keys[0].clone(), bytes)
}

#[test]
fn compressed_entries_are_smaller_and_read_by_every_cache_of_the_namespace() {
    let server = RedisServer::start();
    let value = rows(100);
    let json_length = serde_json::to_vec(&value).unwrap().len();

    let namespace = unique_namespace("compressed");
    let compressing = redis_builder(&server, &namespace)
        .compress_above(1024)
        .build()
        .unwrap();
    assert!(compressing.set("rows", &value, ["rows"], Lifetime::Default));
    let (_, stored) = stored_entry(&server, &compressing);
    assert!(
        stored.len() * 3 < json_length,
        "{} bytes stored for {json_length} bytes of JSON",
        stored.len()
    );

    let plain = redis_builder(&server, &namespace).build().unwrap();
    assert_eq!(plain.get::<Vec<Row>>("rows", ["rows"]), Ok(value.clone()));

    // Below the threshold nothing is compressed: the JSON is there as it is.
    let namespace = unique_namespace("small");
    let compressing = redis_builder(&server, &namespace)
        .compress_above(1024)
        .build()
        .unwrap();
    assert!(compressing.set("row", &rows(1), ["rows"], Lifetime::Default));
    let (_, stored) = stored_entry(&server, &compressing);
    let json = serde_json::to_vec(&rows(1)).unwrap();
    assert!(stored.ends_with(&json), "uncompressed below the threshold");
}

#[test]
fn corrupt_compressed_bytes_are_a_miss_with_a_warning() {
    let server = RedisServer::start();
    let cache = redis_builder(&server, &unique_namespace("corrupt"))
        .compress_above(64)
        .build()
        .unwrap();
    let value = rows(100);
    assert!(cache.set("rows", &value, ["rows"], Lifetime::Default));
    let (key, mut stored) = stored_entry(&server, &cache);
    let middle = stored.len() - 200;
    stored[middle..middle + 16].fill(0xff);
    let _: () = server.connection().set(&key, &stored).unwrap();

    let (read, logged) = warnings::capture(|| cache.get::<Vec<Row>>("rows", ["rows"]));
    assert!(read.is_err(), "a miss: {read:?}");
    assert_eq!(logged.len(), 1, "{logged:#?}");
    assert_eq!(cache.stats().errors, 1);
}

/// What rtc 0.1 would have stored for the entry `bytes` (format 2, JSON): format byte 1 and no
/// codec id before the JSON.
fn as_format_1(bytes: &[u8], json: &[u8]) -> Vec<u8> {
    let value_section = bytes.len() - json.len() - 1;
    assert_eq!(bytes[0], 2, "written in format 2");
    assert_eq!(bytes[value_section], 1, "the JSON codec's id");
    let mut old = bytes[..value_section].to_vec();
    old[0] = 1;
    old.extend_from_slice(json);
    old
}

#[test]
fn entries_written_by_rtc_0_1_are_read_by_json_caches_and_missed_by_others() {
    let server = RedisServer::start();
    let namespace = unique_namespace("format-1");
    let json = redis_builder(&server, &namespace).build().unwrap();
    let value = rows(3);
    assert!(json.set("rows", &value, ["rows", "old"], Lifetime::Default));
    let (key, stored) = stored_entry(&server, &json);
    let old = as_format_1(&stored, &serde_json::to_vec(&value).unwrap());
    let _: () = server.connection().set(&key, &old).unwrap();

    assert_eq!(json.get::<Vec<Row>>("rows", ["old", "rows"]), Ok(value));
    let postcard = redis_builder(&server, &namespace)
        .codec(Codec::Postcard)
        .build()
        .unwrap();
    let (read, logged) = warnings::capture(|| postcard.get::<Vec<Row>>("rows", ["rows", "old"]));
    assert!(read.is_err(), "{read:?}");
    assert_eq!(logged.len(), 1, "{logged:#?}");
    assert_eq!(json.stats().errors, 0);
}

static POSTCARD_FUNCTION_CACHE: OnceLock<TaggedCache> = OnceLock::new();

#[cached(
    cache = POSTCARD_FUNCTION_CACHE.get().unwrap(),
    codec = rtc::Codec::Postcard,
    compress_above = 1024,
    key = format!("report:{count}"),
    tags = ["reports"],
)]
fn report(count: u64) -> Vec<Row> {
    rows(count)
}

#[test]
fn a_function_with_its_own_codec_writes_it_and_reads_it_back_on_a_json_cache() {
    let server = RedisServer::start();
    let namespace = unique_namespace("function-codec");
    let cache = statics::install(
        &POSTCARD_FUNCTION_CACHE,
        redis_builder(&server, &namespace).build().unwrap(),
    );
    assert_eq!(report(100), rows(100));
    assert_eq!(report(100), rows(100));
    let stats = cache.stats();
    assert_eq!((stats.misses, stats.hits, stats.errors), (1, 1, 0));

    // Stored as postcard, compressed: smaller than postcard alone, and no JSON reader takes it.
    let (_, stored) = stored_entry(&server, cache);
    let postcard_length = postcard_length(&rows(100));
    assert!(
        stored.len() < postcard_length,
        "{} bytes stored",
        stored.len()
    );
    let (read, logged) = warnings::capture(|| cache.get::<Vec<Row>>("report:100", ["reports"]));
    assert!(read.is_err() && logged.len() == 1, "{read:?} {logged:#?}");

    let postcard = redis_builder(&server, &namespace)
        .codec(Codec::Postcard)
        .build()
        .unwrap();
    assert_eq!(
        postcard.get::<Vec<Row>>("report:100", ["reports"]),
        Ok(rows(100))
    );
}

/// Postcard's length for `value`, measured through a cache that stores it uncompressed.
fn postcard_length(value: &Vec<Row>) -> usize {
    let server = RedisServer::start();
    let cache = redis_builder(&server, &unique_namespace("length"))
        .codec(Codec::Postcard)
        .build()
        .unwrap();
    assert!(cache.set("v", value, rtc::NO_TAGS, Lifetime::Default));
    stored_entry(&server, &cache).1.len()
}

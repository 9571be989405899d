//! What each codec costs and saves: the bytes an entry takes on Redis and the time of a hit, for
//! a ~100-byte value and a ~10 KB one, with JSON and postcard, each without and with LZ4
//! compression (threshold 256 bytes). Hits are measured in memory, where the codec is most of
//! the cost, and on Redis, where the round trip is.
//!
//! Prints the stored sizes and writes them to `codecs.json` in the results directory.

#[allow(dead_code)]
mod support;

use std::hint::black_box;

use redis::Commands;
use rtc::{Codec, Lifetime, TaggedCache, TaggedCacheBuilder};
use rtc_tests::rows::{rows, Row};
use rtc_tests::unique_namespace;
use serde::Serialize;
use support::BenchServer;

const TAGS: [&str; 2] = ["tag1", "tag2"];
const COMPRESS_ABOVE: usize = 256;

/// One way of writing values.
#[derive(Clone, Copy)]
struct Encoding {
    name: &'static str,
    codec: Codec,
    compressed: bool,
}

impl Encoding {
    fn configure(self, builder: TaggedCacheBuilder) -> TaggedCacheBuilder {
        let builder = builder.codec(self.codec);
        if self.compressed {
            builder.compress_above(COMPRESS_ABOVE)
        } else {
            builder
        }
    }
}

const ENCODINGS: [Encoding; 4] = [
    Encoding {
        name: "json",
        codec: Codec::Json,
        compressed: false,
    },
    Encoding {
        name: "json_lz4",
        codec: Codec::Json,
        compressed: true,
    },
    Encoding {
        name: "postcard",
        codec: Codec::Postcard,
        compressed: false,
    },
    Encoding {
        name: "postcard_lz4",
        codec: Codec::Postcard,
        compressed: true,
    },
];

/// The stored size of one entry.
#[derive(Debug, Serialize)]
struct StoredSize {
    encoding: &'static str,
    value: &'static str,
    json_bytes: usize,
    stored_bytes: usize,
}

fn main() {
    let server = BenchServer::acquire();
    let mut connection = server.connection();
    let mut criterion = support::criterion();
    let mut sizes = Vec::new();
    for (label, value) in [("100B", rows(1)), ("10KB", rows(100))] {
        let json_bytes = serde_json::to_vec(&value).expect("rows serialize").len();
        let mut group = criterion.benchmark_group(format!("codec_hit_{label}"));
        for encoding in ENCODINGS {
            let memory = encoding
                .configure(TaggedCache::builder().in_memory())
                .build()
                .expect("an in-memory cache");
            let redis = encoding
                .configure(
                    TaggedCache::builder()
                        .namespace(unique_namespace("bench-codecs"))
                        .url(server.url()),
                )
                .build()
                .expect("an rtc cache on the bench server");
            for cache in [&memory, &redis] {
                assert!(cache.set("rows", &value, TAGS, Lifetime::Default));
                assert_eq!(cache.get::<Vec<Row>>("rows", TAGS).as_ref(), Ok(&value));
            }
            sizes.push(StoredSize {
                encoding: encoding.name,
                value: label,
                json_bytes,
                stored_bytes: stored_bytes(&mut connection, &redis),
            });
            group.bench_function(format!("{}_memory", encoding.name), |bench| {
                bench.iter(|| black_box(memory.get::<Vec<Row>>("rows", TAGS).expect("a hit")));
            });
            group.bench_function(format!("{}_redis", encoding.name), |bench| {
                bench.iter(|| black_box(redis.get::<Vec<Row>>("rows", TAGS).expect("a hit")));
            });
        }
        group.finish();
    }
    criterion.final_summary();
    for size in &sizes {
        println!(
            "stored: {:>5} {:<13} {:>6} bytes (JSON value {} bytes)",
            size.value, size.encoding, size.stored_bytes, size.json_bytes
        );
    }
    let path = support::results_dir().join("codecs.json");
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&sizes).expect("sizes serialize"),
    )
    .expect("the results directory is writable");
}

/// `STRLEN` of the one entry of `cache`'s namespace.
fn stored_bytes(connection: &mut redis::Connection, cache: &TaggedCache) -> usize {
    let pattern = cache.key_pattern().replace("rtc:?:", "rtc:e:");
    let keys: Vec<String> = connection.keys(&pattern).expect("KEYS");
    assert_eq!(keys.len(), 1, "one entry in the namespace");
    connection.strlen(&keys[0]).expect("STRLEN")
}

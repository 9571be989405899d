//! The bookshop service (see `rtc_examples::bookshop`): axum + SQLite, reads cached in Redis.
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run -p rtc-examples --bin bookshop
//! curl localhost:3000/books/1
//! curl localhost:3000/metrics
//! curl -X PUT localhost:3000/books/1 -H 'content-type: application/json' \
//!      -d '{"title":"Notes","author":"Ada Lovelace","price_cents":1300}'
//! ```

use std::path::PathBuf;

use rtc::TaggedCache;
use rtc_examples::bookshop::{router, Database};

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // rtc's hits, misses, latencies and errors, by namespace and function, at GET /metrics.
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    let cache = TaggedCache::builder()
        .url(setting("REDIS_URL", "redis://127.0.0.1:6379/0"))
        .namespace(setting("RTC_NAMESPACE", "bookshop"))
        .build()?;
    rtc::set_global(cache.clone()).map_err(|_| "the global cache was already set")?;
    let db = Database::open(&PathBuf::from(setting(
        "BOOKSHOP_DATABASE",
        "bookshop.sqlite3",
    )))?;

    let listener =
        tokio::net::TcpListener::bind(setting("BOOKSHOP_LISTEN", "127.0.0.1:3000")).await?;
    // The first line tells scripts (and the tests) where to connect; port 0 picks a free one.
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router(db, metrics, cache)).await?;
    Ok(())
}

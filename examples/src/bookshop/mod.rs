//! A bookshop web service: axum in front of SQLite, its reads cached in Redis with
//! `#[rtc::cached]`, its pages cached whole by `rtc_http`'s layer with the same tags, its
//! writes invalidating the tags they touch.
//!
//! | request | does |
//! |---|---|
//! | `GET /books/{id}` | one book; the page and the read cached, tagged `book:{id}` |
//! | `GET /authors/{author}/books` | an author's books; the page and the read cached, tagged `author:{author}` |
//! | `PUT /books/{id}` | changes a book; invalidates `book:{id}` and both authors' tags |
//! | `POST /books` | adds a book; invalidates its author's tag |
//! | `GET /stats` | database reads so far and the cache's counters |
//! | `GET /metrics` | rtc's metrics (hits, misses, latencies, errors by function) for Prometheus |
//!
//! The binary (`src/bin/bookshop.rs`) reads `BOOKSHOP_LISTEN` (default `127.0.0.1:3000`),
//! `BOOKSHOP_DATABASE` (default `bookshop.sqlite3`), `REDIS_URL` and `RTC_NAMESPACE`.

mod catalog;
mod database;
mod http;

pub use database::{Book, Database, NewBook};
pub use http::router;

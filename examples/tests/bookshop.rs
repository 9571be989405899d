//! The bookshop service as a real process, on a free port, in front of a real Redis and a
//! SQLite file, driven over HTTP: read, read again (a hit), write, read (the new value), and
//! the same under concurrent requests.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;

use rtc_examples::bookshop::{Book, NewBook};
use rtc_tests::{unique_namespace, RedisServer};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The service's process, killed on drop, with the Redis server and database it uses.
struct Bookshop {
    base: String,
    child: Child,
    _redis: RedisServer,
    _data: tempfile::TempDir,
}

impl Bookshop {
    /// Starts the binary on port 0 and reads the address it announces on its first line.
    fn start() -> Self {
        let redis = RedisServer::start();
        let data = tempfile::tempdir().expect("a temp dir for the database");
        let mut child = Command::new(env!("CARGO_BIN_EXE_bookshop"))
            .env("REDIS_URL", redis.url())
            .env("RTC_NAMESPACE", unique_namespace("bookshop"))
            .env("BOOKSHOP_DATABASE", data.path().join("books.sqlite3"))
            .env("BOOKSHOP_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the bookshop binary starts");
        let mut first_line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut first_line)
            .expect("the service prints its address");
        let base = first_line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first_line:?}"))
            .to_owned();
        Self {
            base,
            child,
            _redis: redis,
            _data: data,
        }
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> T {
        serde_json::from_str(&self.get_text(path)).expect("a JSON body")
    }

    fn get_text(&self, path: &str) -> String {
        self.get_page(path).1
    }

    /// The page's cache status (`x-cache`: `hit`, `miss`, `stale`, `pass`) and body.
    fn get_page(&self, path: &str) -> (String, String) {
        let mut response = ureq::get(format!("{}{path}", self.base))
            .call()
            .unwrap_or_else(|error| panic!("GET {path}: {error}"));
        let status = response
            .headers()
            .get("x-cache")
            .map(|value| value.to_str().expect("ASCII").to_owned())
            .unwrap_or_default();
        let body = response.body_mut().read_to_string().expect("a body");
        (status, body)
    }

    fn put(&self, path: &str, book: &NewBook) -> Book {
        let body = serde_json::to_string(book).expect("JSON");
        let mut response = ureq::put(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .send(body)
            .unwrap_or_else(|error| panic!("PUT {path}: {error}"));
        serde_json::from_str(&response.body_mut().read_to_string().expect("a body"))
            .expect("a JSON body")
    }

    fn database_reads(&self) -> u64 {
        self.get::<Value>("/stats")["database_reads"]
            .as_u64()
            .expect("a count")
    }

    fn cache_hits(&self) -> u64 {
        self.get::<Value>("/stats")["cache"]["hits"]
            .as_u64()
            .expect("a count")
    }
}

impl Drop for Bookshop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn new_book(title: &str, author: &str, price_cents: i64) -> NewBook {
    NewBook {
        title: title.into(),
        author: author.into(),
        price_cents,
    }
}

#[test]
fn a_read_is_cached_and_a_write_is_seen_by_the_next_read() {
    let shop = Bookshop::start();

    let (status, first) = shop.get_page("/books/1");
    assert_eq!(status, "miss");
    let reads_after_first = shop.database_reads();
    let (status, second) = shop.get_page("/books/1");

    assert_eq!(first, second);
    assert_eq!(status, "hit", "the page cache answers the second read");
    assert_eq!(
        shop.database_reads(),
        reads_after_first,
        "the second read is a hit"
    );

    let by_ada: Vec<Book> = shop.get("/authors/Ada%20Lovelace/books");
    assert_eq!(by_ada.len(), 2);

    let changed = shop.put("/books/1", &new_book("Notes, revised", "Alan Turing", 1300));
    let third: Book = shop.get("/books/1");
    let by_ada: Vec<Book> = shop.get("/authors/Ada%20Lovelace/books");
    let by_alan: Vec<Book> = shop.get("/authors/Alan%20Turing/books");

    assert_eq!(third, changed);
    assert_eq!(third.price_cents, 1300);
    assert_eq!(by_ada.len(), 1, "the old author's list was invalidated");
    assert!(
        by_alan.contains(&changed),
        "the new author's list was invalidated"
    );

    // The page's hit and the read's misses, as Prometheus reads them.
    let metrics = shop.get_text("/metrics");
    let hits = metrics
        .lines()
        .find(|line| {
            line.starts_with("rtc_http_responses_total{")
                && line.contains("route=\"/books/{id}\"")
                && line.contains("cache=\"hit\"")
        })
        .unwrap_or_else(|| panic!("a hit counter for the book page:\n{metrics}"));
    assert!(hits.ends_with(" 1"), "one hit of the book page: {hits}");
    let misses = metrics
        .lines()
        .find(|line| line.starts_with("rtc_misses_total{") && line.contains("function=\"book\""))
        .unwrap_or_else(|| panic!("a miss counter for `book`:\n{metrics}"));
    assert!(
        misses.ends_with(" 2"),
        "the book read twice, before and after the write: {misses}"
    );
    assert!(metrics.contains("rtc_miss_seconds"), "{metrics}");
}

#[test]
fn concurrent_cold_reads_of_one_book_reach_the_database_once() {
    let shop = Bookshop::start();
    let readers = 16;
    let start = Barrier::new(readers);

    let books: Vec<Book> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..readers)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    shop.get::<Book>("/books/2")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });

    assert!(books.iter().all(|book| *book == books[0]));
    assert_eq!(shop.database_reads(), 1);
}

#[test]
fn under_concurrent_reads_every_write_is_seen_by_the_read_after_it() {
    let shop = Bookshop::start();
    let writing = AtomicBool::new(true);

    std::thread::scope(|scope| {
        for _ in 0..6 {
            scope.spawn(|| {
                while writing.load(Ordering::Relaxed) {
                    let book: Book = shop.get("/books/3");
                    assert!((1500..=1530).contains(&book.price_cents), "{book:?}");
                }
            });
        }
        // Stops the readers even when an assertion below fails, so the scope can end.
        let _stop = StopOnDrop(&writing);
        for price in 1501..=1530 {
            let written = shop.put(
                "/books/3",
                &new_book("Computing Machinery", "Alan Turing", price),
            );
            let read: Book = shop.get("/books/3");
            assert_eq!(read, written, "a read after the write returned sees it");
        }
    });

    assert!(
        shop.cache_hits() > 0,
        "the readers were served from the cache"
    );
}

/// Clears the flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

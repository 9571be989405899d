//! The options of `#[cached]` as users write them: lifetimes as `Duration`s, `jitter`, bare
//! flags, negative caching, `unless`, aliases of `Result` and `Option`, mixed tags, `&mut`
//! arguments.
#![deny(warnings)]

use std::sync::LazyLock;
use std::time::Duration;

use rtc::{cached, TaggedCache};

mod support;

use support::{warm_memory_cache, Calls};

static CACHE: LazyLock<TaggedCache> = LazyLock::new(warm_memory_cache);

/// Polls until `done` holds: expiry is the server's (here the in-memory store's) business.
fn eventually(mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("never happened");
}

static BRIEF: Calls = Calls::new();

#[cached(cache = &CACHE, lifetime = Duration::from_millis(900))]
fn brief(id: u64) -> u64 {
    BRIEF.count();
    id
}

#[test]
fn a_sub_second_duration_lifetime_expires_the_entry() {
    brief(1);
    brief(1);
    assert_eq!(BRIEF.get(), 1);
    eventually(|| {
        brief(1);
        BRIEF.get() == 2
    });
}

const HOUR: u64 = 3600;
static JITTERED: Calls = Calls::new();

#[cached(cache = &CACHE, lifetime = HOUR, jitter = Duration::from_secs(60), lock, lock_timeout = 2.5)]
fn jittered(id: u64) -> u64 {
    JITTERED.count();
    id
}

#[test]
fn jitter_and_a_bare_lock_keep_entries_cached() {
    assert_eq!(jittered(1), 1);
    assert_eq!(jittered(1), 1);
    assert_eq!(JITTERED.get(), 1);
}

static LOOKUPS: Calls = Calls::new();

#[cached(cache = &CACHE, cache_none = true)]
fn lookup(id: u64) -> Option<u64> {
    LOOKUPS.count();
    id.is_multiple_of(2).then_some(id)
}

#[test]
fn cache_none_caches_none_too() {
    assert_eq!(lookup(1), None);
    assert_eq!(lookup(1), None);
    assert_eq!(LOOKUPS.get(), 1);
}

static FETCHES: Calls = Calls::new();

#[cached(cache = &CACHE, cache_err)]
fn fetch(id: u64) -> Result<u64, String> {
    FETCHES.count();
    Err(format!("no {id}"))
}

#[test]
fn cache_err_caches_errors_too() {
    assert_eq!(fetch(1), Err("no 1".to_owned()));
    assert_eq!(fetch(1), Err("no 1".to_owned()));
    assert_eq!(FETCHES.get(), 1);
}

static PAGES: Calls = Calls::new();

#[cached(cache = &CACHE, unless = |page| page.is_empty())]
fn page(path: String) -> String {
    PAGES.count();
    if path == "/" {
        String::new()
    } else {
        format!("<{path}>")
    }
}

#[test]
fn unless_leaves_the_results_it_matches_uncached() {
    assert_eq!(page("/".into()), "");
    assert_eq!(page("/".into()), "");
    assert_eq!(PAGES.get(), 2, "an empty page is not stored");
    assert_eq!(page("/a".into()), "</a>");
    assert_eq!(page("/a".into()), "</a>");
    assert_eq!(PAGES.get(), 3);
}

type Fallible<T> = Result<T, String>;
static ALIASED: Calls = Calls::new();

#[cached(cache = &CACHE)]
fn aliased(id: u64) -> Fallible<u64> {
    ALIASED.count();
    if id == 0 {
        Err("zero".into())
    } else {
        Ok(id)
    }
}

#[test]
fn an_alias_of_result_caches_only_ok() {
    assert!(aliased(0).is_err());
    assert!(aliased(0).is_err());
    assert_eq!(ALIASED.get(), 2, "errors of the alias are not cached");
    assert_eq!(aliased(1), Ok(1));
    assert_eq!(aliased(1), Ok(1));
    assert_eq!(ALIASED.get(), 3);
}

mod app {
    /// An application's own `Result`, as many crates declare one.
    pub type Result<T> = std::result::Result<T, Error>;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    pub struct Error;
}

type Maybe<T> = Option<T>;
static MAYBE: Calls = Calls::new();

#[cached(cache = &CACHE)]
fn maybe(id: u64) -> Maybe<u64> {
    MAYBE.count();
    (id != 0).then_some(id)
}

#[test]
fn an_alias_of_option_caches_only_some() {
    assert_eq!(maybe(0), None);
    assert_eq!(maybe(0), None);
    assert_eq!(MAYBE.get(), 2, "None of the alias is not cached");
    assert_eq!(maybe(1), Some(1));
    assert_eq!(maybe(1), Some(1));
    assert_eq!(MAYBE.get(), 3);
}

static APP_RESULT: Calls = Calls::new();

#[cached(cache = &CACHE, stale_if_error = 60)]
fn app_result(id: u64) -> app::Result<u64> {
    APP_RESULT.count();
    if id == 0 {
        Err(app::Error)
    } else {
        Ok(id)
    }
}

#[test]
fn a_result_alias_from_another_module_caches_only_ok_and_takes_stale_if_error() {
    assert_eq!(app_result(0), Err(app::Error));
    assert_eq!(app_result(0), Err(app::Error));
    assert_eq!(APP_RESULT.get(), 2, "errors are not cached");
    assert_eq!(app_result(1), Ok(1));
    assert_eq!(app_result(1), Ok(1));
    assert_eq!(APP_RESULT.get(), 3);
}

static ALIAS_WITH_ERRORS: Calls = Calls::new();

#[cached(cache = &CACHE, cache_err)]
fn alias_with_errors(id: u64) -> Fallible<u64> {
    ALIAS_WITH_ERRORS.count();
    Err(format!("no {id}"))
}

#[test]
fn cache_err_on_an_alias_of_result_caches_errors_too() {
    assert_eq!(alias_with_errors(1), Err("no 1".to_string()));
    assert_eq!(alias_with_errors(1), Err("no 1".to_string()));
    assert_eq!(ALIAS_WITH_ERRORS.get(), 1, "the error came from the cache");
}

static TAGGED: Calls = Calls::new();

#[cached(cache = &CACHE, tags = ["users", format!("user:{id}"), name, label.to_string()])]
fn tagged(id: u64, name: &str, label: String) -> u64 {
    TAGGED.count();
    let _ = (name, label);
    id
}

#[test]
fn tags_mix_literals_borrowed_and_owned_strings() {
    assert_eq!(tagged(1, "ann", "x".into()), 1);
    assert_eq!(tagged(1, "ann", "x".into()), 1);
    assert_eq!(TAGGED.get(), 1);
    for (runs, tag) in (2..).zip(["users", "user:1", "ann", "x"]) {
        assert!(CACHE.invalidate([tag]));
        assert_eq!(tagged(1, "ann", "x".into()), 1);
        assert_eq!(tagged(1, "ann", "x".into()), 1);
        assert_eq!(
            TAGGED.get(),
            runs,
            "invalidating {tag} made the entry miss once"
        );
    }
}

static COUNTED: Calls = Calls::new();

#[cached(cache = &CACHE, skip(counter))]
fn counted(counter: &mut u64, id: u64) -> u64 {
    COUNTED.count();
    *counter += 1;
    id
}

#[test]
fn a_skipped_mutable_borrow_is_accepted() {
    let mut counter = 0;
    assert_eq!(counted(&mut counter, 1), 1);
    assert_eq!(counted(&mut counter, 1), 1);
    assert_eq!((counter, COUNTED.get()), (1, 1));
}

static EVERY: Calls = Calls::new();

#[cached(cache = &CACHE, skip_all, key = "the-one-entry")]
fn every(id: u64) -> u64 {
    EVERY.count();
    id
}

#[test]
fn skip_all_leaves_every_argument_out_of_invalidate_and_key() {
    assert_eq!(every(1), 1);
    assert_eq!(every(2), 1, "one entry for all calls");
    assert_eq!(key_every().as_deref(), Some("the-one-entry"));
    assert!(invalidate_every());
    assert_eq!(every(2), 2);
    assert_eq!(EVERY.get(), 2);
}

struct Service {
    cache: TaggedCache,
}

#[cached]
impl Service {
    #[cached(cache = &self.cache, skip(self))]
    fn double(&self, x: u64) -> u64 {
        x * 2
    }
}

#[test]
fn skip_self_is_accepted_and_the_cache_can_be_a_field() {
    let service = Service {
        cache: TaggedCache::builder().in_memory().build().unwrap(),
    };
    assert_eq!(service.double(2), 4);
    assert!(service.invalidate_double(2));
}

//! Behaviour of `#[cached]` functions on an in-memory cache given with `cache = &CACHE`.
//!
//! `deny(warnings)`: the generated code must not make a user's crate warn.
#![deny(warnings)]

use std::any::type_name;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use rtc::{cached, TaggedCache};
use serde::{Deserialize, Serialize};

mod support;

use support::{warm_memory_cache, Calls};

static CACHE: LazyLock<TaggedCache> = LazyLock::new(warm_memory_cache);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

static GET_USER: Calls = Calls::new();

#[cached(cache = &CACHE, tags = [format!("user:{id}"), "users".to_string()], lifetime = 60)]
fn get_user(id: u64) -> User {
    GET_USER.count();
    User {
        id,
        name: format!("user {id}"),
    }
}

#[test]
fn a_second_call_with_the_same_arguments_is_served_from_the_cache() {
    assert_eq!(
        get_user(1),
        User {
            id: 1,
            name: "user 1".into()
        }
    );
    assert_eq!(
        get_user(1),
        User {
            id: 1,
            name: "user 1".into()
        }
    );
    assert_eq!(GET_USER.get(), 1);
    assert_eq!(get_user(2).id, 2);
    assert_eq!(GET_USER.get(), 2);
}

static TAGGED: Calls = Calls::new();

#[cached(cache = &CACHE, tags = [format!("item:{id}"), "items".to_string()])]
fn tagged(id: u64) -> u64 {
    TAGGED.count();
    id
}

#[test]
fn invalidating_a_tag_misses_every_entry_that_carries_it() {
    tagged(1);
    tagged(2);
    assert_eq!(TAGGED.get(), 2);

    assert!(CACHE.invalidate(["item:1"]));
    tagged(1);
    tagged(2);
    assert_eq!(TAGGED.get(), 3);

    assert!(CACHE.invalidate(["items"]));
    tagged(1);
    tagged(2);
    assert_eq!(TAGGED.get(), 5);
}

static SQUARE: Calls = Calls::new();

#[cached(cache = &CACHE)]
fn square(x: u64) -> u64 {
    SQUARE.count();
    x * x
}

#[test]
fn invalidate_fn_removes_the_entry_of_exactly_its_arguments() {
    assert_eq!(square(3), 9);
    assert_eq!(square(4), 16);
    assert!(invalidate_square(3));
    assert!(!invalidate_square(3), "nothing left to remove");
    square(3);
    square(4);
    assert_eq!(SQUARE.get(), 3);
}

static CUBE: Calls = Calls::new();
static HALF: Calls = Calls::new();

#[cached(cache = &CACHE)]
fn cube(x: u64) -> u64 {
    CUBE.count();
    x * x * x
}

#[cached(cache = &CACHE)]
fn half(x: u64) -> u64 {
    HALF.count();
    x / 2
}

#[test]
fn invalidate_all_fn_misses_every_entry_of_that_function_and_no_other() {
    cube(1);
    cube(2);
    half(1);
    assert!(invalidate_all_cube());
    cube(1);
    cube(2);
    half(1);
    assert_eq!((CUBE.get(), HALF.get()), (4, 1));
}

static VERSION: Calls = Calls::new();

#[cached(cache = &CACHE)]
fn version(name: &str) -> String {
    format!("{name} v{}", VERSION.count())
}

#[test]
fn refresh_fn_runs_the_body_and_stores_its_result() {
    assert_eq!(version("app"), "app v0");
    assert_eq!(version("app"), "app v0");
    assert_eq!(refresh_version("app"), "app v1");
    assert_eq!(version("app"), "app v1");
    assert_eq!(VERSION.get(), 2);
}

struct Cats;
struct Dogs;

#[cached]
impl Cats {
    #[cached(cache = &CACHE)]
    fn sound(&self, times: usize) -> String {
        "meow ".repeat(times)
    }

    #[cached(cache = &CACHE)]
    fn kind(id: u64) -> String {
        format!("cat {id}")
    }
}

#[cached]
impl Dogs {
    #[cached(cache = &CACHE)]
    fn sound(&self, times: usize) -> String {
        "woof ".repeat(times)
    }

    #[cached(cache = &CACHE)]
    fn kind(id: u64) -> String {
        format!("dog {id}")
    }
}

#[test]
fn methods_of_two_types_do_not_share_entries() {
    assert_eq!(Cats.sound(2), "meow meow ");
    assert_eq!(Dogs.sound(2), "woof woof ");
    assert_eq!(Cats.sound(2), "meow meow ");
}

#[test]
fn associated_functions_of_two_types_do_not_share_entries() {
    assert_eq!(Cats::kind(1), "cat 1");
    assert_eq!(Dogs::kind(1), "dog 1");
    assert!(Cats::invalidate_all_kind());
    assert_eq!(Dogs::kind(1), "dog 1");
}

struct Repo {
    org: u64,
    calls: Calls,
}

#[cached]
impl Repo {
    fn new(org: u64) -> Self {
        Repo {
            org,
            calls: Calls::new(),
        }
    }

    #[cached(cache = &CACHE, tags = [format!("repo-user:{id}")])]
    fn find(&self, id: u64) -> User {
        self.calls.count();
        User {
            id,
            name: format!("found {id}"),
        }
    }

    #[cached(
        cache = &CACHE,
        tags = [format!("org:{}", self.org)],
        key = format!("{}:{name}", self.org)
    )]
    async fn by_name(&self, name: String) -> Option<User> {
        self.calls.count();
        tokio::task::yield_now().await;
        (name != "nobody").then_some(User { id: self.org, name })
    }
}

#[test]
fn the_receiver_is_not_part_of_the_key() {
    let (first, second) = (Repo::new(1), Repo::new(2));
    assert_eq!(first.find(5).id, 5);
    assert_eq!(second.find(5).id, 5);
    assert_eq!((first.calls.get(), second.calls.get()), (1, 0));
    assert!(second.invalidate_find(5));
    second.find(5);
    assert_eq!(second.calls.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_methods_use_self_in_tags_and_key() {
    let repo = Repo::new(7);
    assert_eq!(repo.by_name("ann".into()).await.unwrap().id, 7);
    assert_eq!(repo.by_name("ann".into()).await.unwrap().id, 7);
    assert_eq!(repo.calls.get(), 1);
    assert_eq!(CACHE.get::<User>("7:ann", ["org:7"]).unwrap().name, "ann");

    assert!(repo.invalidate_by_name("ann".into()).await);
    repo.by_name("ann".into()).await;
    assert_eq!(repo.calls.get(), 2);

    assert!(CACHE.invalidate(["org:7"]));
    repo.by_name("ann".into()).await;
    assert_eq!(repo.calls.get(), 3);
}

static LOAD: Calls = Calls::new();

#[cached(cache = &CACHE, tags = ["loads"])]
async fn load(id: u64) -> Result<String, String> {
    LOAD.count();
    tokio::time::sleep(Duration::from_millis(1)).await;
    if id == 0 {
        return Err("no id 0".to_string());
    }
    let parsed: u64 = format!("{id}")
        .parse()
        .map_err(|_| "unparsable".to_string())?;
    Ok(format!("loaded {parsed}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_functions_are_cached_across_tasks() {
    assert_eq!(load(1).await.unwrap(), "loaded 1");
    let tasks: Vec<_> = (0..8).map(|_| tokio::spawn(load(1))).collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), "loaded 1");
    }
    assert_eq!(LOAD.get(), 1);

    assert!(refresh_load(1).await.is_ok());
    assert_eq!(LOAD.get(), 2);
    assert!(invalidate_all_load().await);
    load(1).await.unwrap();
    assert_eq!(LOAD.get(), 3);
}

static FLAKY: Calls = Calls::new();

#[cached(cache = &CACHE)]
fn flaky(id: u64) -> Result<u64, String> {
    match FLAKY.count() {
        0 => Err("try again".into()),
        _ => Ok(id),
    }
}

#[test]
fn errors_are_not_cached_but_ok_values_are() {
    assert!(flaky(1).is_err());
    assert_eq!(flaky(1), Ok(1));
    assert_eq!(flaky(1), Ok(1));
    assert_eq!(FLAKY.get(), 2);
}

static FIND_EVEN: Calls = Calls::new();

#[cached(cache = &CACHE)]
fn find_even(id: u64) -> Option<u64> {
    FIND_EVEN.count();
    id.is_multiple_of(2).then_some(id)
}

#[test]
fn none_is_not_cached_but_some_is() {
    assert_eq!(find_even(1), None);
    assert_eq!(find_even(1), None);
    assert_eq!(find_even(2), Some(2));
    assert_eq!(find_even(2), Some(2));
    assert_eq!(FIND_EVEN.get(), 3);
}

/// Not `Serialize`: a connection pool, say.
struct Db {
    prefix: &'static str,
}

static WITH_DB: Calls = Calls::new();

#[cached(cache = &CACHE, skip(db))]
fn with_db(db: &Db, id: u64) -> String {
    WITH_DB.count();
    format!("{}{id}", db.prefix)
}

#[test]
fn skipped_arguments_are_not_part_of_the_key() {
    assert_eq!(with_db(&Db { prefix: "a" }, 1), "a1");
    assert_eq!(with_db(&Db { prefix: "b" }, 1), "a1");
    assert_eq!(WITH_DB.get(), 1);
    assert!(invalidate_with_db(1));
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Report {
    year: u16,
}

static REPORT: Calls = Calls::new();

#[cached(cache = &CACHE, key = format!("report:{year}"), tags = ["reports"])]
fn report(year: u16) -> Option<Report> {
    REPORT.count();
    Some(Report { year })
}

#[test]
fn a_custom_key_is_found_through_the_low_level_api() {
    assert_eq!(report(2020), Some(Report { year: 2020 }));
    assert_eq!(
        CACHE.get::<Report>("report:2020", ["reports"]).unwrap(),
        Report { year: 2020 }
    );
    report(2020);
    assert_eq!(REPORT.get(), 1);

    assert!(CACHE.invalidate(["reports"]));
    assert!(CACHE.get::<Report>("report:2020", ["reports"]).is_err());
    report(2020);
    assert_eq!(REPORT.get(), 2);
}

static ENCODED: Calls = Calls::new();
static SHOUT: Calls = Calls::new();

fn encode_text(text: &String) -> Option<Vec<u8>> {
    ENCODED.count();
    (!text.is_empty()).then(|| text.as_bytes().to_vec())
}

fn decode_text(bytes: &[u8]) -> Option<String> {
    String::from_utf8(bytes.to_vec()).ok()
}

#[cached(cache = &CACHE, serializer = encode_text, deserializer = decode_text)]
fn shout(text: String) -> String {
    SHOUT.count();
    text.to_uppercase()
}

#[test]
fn a_custom_serializer_decides_what_is_stored() {
    assert_eq!(shout("hi".into()), "HI");
    assert_eq!(shout("hi".into()), "HI");
    assert_eq!((SHOUT.get(), ENCODED.get()), (1, 1));

    // The serializer refuses empty strings: they are never cached.
    assert_eq!(shout(String::new()), "");
    assert_eq!(shout(String::new()), "");
    assert_eq!(SHOUT.get(), 3);
}

#[cached(cache = &CACHE)]
fn type_label<T>(id: u64) -> String {
    format!("{id}: {}", type_name::<T>())
}

#[cached(cache = &CACHE)]
fn repeat<const N: usize>(text: &str) -> String {
    text.repeat(N)
}

#[test]
fn generic_functions_keep_one_entry_per_type_and_const_argument() {
    assert_eq!(type_label::<u8>(1), "1: u8");
    assert_eq!(type_label::<u16>(1), "1: u16");
    assert_eq!(repeat::<2>("ab"), "abab");
    assert_eq!(repeat::<3>("ab"), "ababab");
    assert!(invalidate_type_label::<u8>(1));
}

static SHORT_LIVED: Calls = Calls::new();

#[cached(cache = &CACHE, lifetime = 1)]
fn short_lived(id: u64) -> u64 {
    SHORT_LIVED.count();
    id
}

#[test]
fn entries_expire_after_their_lifetime() {
    short_lived(1);
    short_lived(1);
    assert_eq!(SHORT_LIVED.get(), 1);
    std::thread::sleep(Duration::from_millis(1100));
    short_lived(1);
    assert_eq!(SHORT_LIVED.get(), 2);
}

static LOCKED: Calls = Calls::new();
const LOCK_SECONDS: u64 = 2;

#[cached(cache = &CACHE, lock = true, lock_timeout = LOCK_SECONDS)]
fn locked(id: u64) -> u64 {
    LOCKED.count();
    std::thread::sleep(Duration::from_millis(50));
    id
}

#[test]
fn with_lock_concurrent_callers_share_one_computation() {
    let threads: Vec<_> = (0..4).map(|_| std::thread::spawn(|| locked(9))).collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap(), 9);
    }
    assert_eq!(LOCKED.get(), 1);
}

static HOOK_SEEN: Mutex<Vec<(String, bool, String)>> = Mutex::new(Vec::new());

static HOOKED: LazyLock<TaggedCache> = LazyLock::new(|| {
    TaggedCache::builder()
        .in_memory()
        .cache_hook(|_key, _tags, info, userdata| {
            let userdata = userdata
                .and_then(|data| data.downcast_ref::<&str>())
                .copied();
            let seen = (
                info.function_name.to_string(),
                info.hit,
                userdata.unwrap_or("").to_string(),
            );
            HOOK_SEEN.lock().unwrap().push(seen);
        })
        .build()
        .unwrap()
});

#[cached(cache = &HOOKED, hook_userdata = "reports")]
fn hooked(id: u64) -> u64 {
    id
}

#[test]
fn hook_userdata_reaches_the_cache_hook() {
    hooked(1);
    hooked(1);
    let seen = HOOK_SEEN.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            ("hooked".to_string(), false, "reports".to_string()),
            ("hooked".to_string(), true, "reports".to_string())
        ]
    );
}

static TOUCH: Calls = Calls::new();

#[cached(cache = &CACHE)]
fn touch(id: u64) {
    let _ = id;
    TOUCH.count();
}

#[test]
fn unit_results_are_cached_too() {
    touch(1);
    touch(1);
    assert_eq!(TOUCH.get(), 1);
}

/// The signature stays as written: visibility, generics, `where`, `impl Trait`, `mut`, attributes.
mod signatures {
    use std::fmt::Display;

    use super::CACHE;
    use rtc::cached;

    /// Documented.
    #[cached(cache = &CACHE, skip(label))]
    #[must_use]
    #[inline]
    pub(crate) fn described<T>(label: impl Display, value: T) -> String
    where
        T: Display + serde::Serialize,
    {
        format!("{label}={value}")
    }

    #[cached(cache = &CACHE)]
    pub fn incremented(mut value: u64) -> u64 {
        value += 1;
        value
    }

    #[cached(cache = &CACHE, tags = [format!("name:{name}")], key = format!("greeting:{name}"))]
    pub fn greeting(name: String) -> String {
        format!("hello {name}")
    }

    #[cached(cache = &CACHE)]
    pub fn r#match(value: u64) -> bool {
        value > 1
    }

    #[cached(cache = &CACHE)]
    #[expect(unused_variables)]
    pub fn ignores_its_argument(unused: u64) -> u64 {
        1
    }

    /// # Safety
    /// Always safe; `unsafe` is kept on the function and its `refresh_`.
    #[cached(cache = &CACHE)]
    pub unsafe fn unsafe_double(value: u64) -> u64 {
        value * 2
    }

    #[cached(cache = &CACHE)]
    pub async fn sum_of<T>(values: Vec<T>) -> u64
    where
        T: Into<u64> + serde::Serialize + Send,
    {
        values.into_iter().map(Into::into).sum()
    }

    pub struct Shelf<T> {
        pub label: T,
    }

    #[cached]
    impl<T: Display + Sync> Shelf<T> {
        #[cached(cache = &CACHE, tags = [format!("shelf:{}", self.label)])]
        #[allow(clippy::needless_lifetimes, reason = "a named lifetime is under test")]
        pub fn describe<'a, U>(&self, item: &'a str, extra: U) -> String
        where
            U: Display + serde::Serialize,
        {
            format!("{}: {item} {extra}", self.label)
        }

        #[cached(cache = &CACHE)]
        pub async fn shared(self: std::sync::Arc<Self>, item: String) -> String {
            format!("{} has {item}", self.label)
        }
    }

    #[derive(Clone, Copy)]
    pub struct Counter(pub u64);

    #[cached]
    impl Counter {
        #[cached(cache = &CACHE)]
        pub fn by_value(self, step: u64) -> u64 {
            self.0 + step
        }

        #[cached(cache = &CACHE)]
        pub fn by_mut(&mut self, step: u64) -> u64 {
            self.0 += step;
            self.0
        }

        #[cached(cache = &CACHE)]
        #[expect(unused_variables)]
        pub fn ignores_its_argument(&self, unused: u64) -> u64 {
            self.0
        }

        /// # Safety
        /// Always safe.
        #[cached(cache = &CACHE)]
        pub unsafe fn unsafe_add(&self, step: u64) -> u64 {
            self.0 + step
        }
    }
}

#[test]
fn signatures_are_kept_as_written() {
    use signatures::*;

    assert_eq!(described("x", 1), "x=1");
    assert_eq!(described("y", 1), "x=1", "`label` is skipped");
    assert_eq!(greeting("ann".into()), "hello ann");
    assert!(invalidate_greeting("ann".into()));
    assert!(r#match(2));
    assert!(invalidate_match(2));
    assert_eq!(ignores_its_argument(5), 1);
    assert_eq!(incremented(1), 2);
    assert_eq!(refresh_incremented(1), 2);

    let mut counter = Counter(1);
    assert_eq!(counter.by_value(1), 2);
    assert_eq!(counter.by_mut(10), 11);
    assert_eq!(counter.by_mut(10), 11, "served from the cache");
    assert!(counter.invalidate_by_mut(10));
    assert_eq!(
        counter.refresh_by_value(1),
        12,
        "runs the body on this counter"
    );
    assert_eq!(counter.ignores_its_argument(3), 11);

    assert_eq!(block_on(sum_of(vec![1u8, 2, 3])), 6);
    let shelf = Shelf { label: "top" };
    assert_eq!(shelf.describe("book", 1), "top: book 1");
    assert!(shelf.invalidate_describe("book", 1));
    let shelf = std::sync::Arc::new(shelf);
    assert_eq!(block_on(shelf.clone().shared("cup".into())), "top has cup");
    assert!(block_on(shelf.invalidate_shared("cup".into())));

    // SAFETY: they are safe; only their `unsafe` signature is under test.
    unsafe {
        assert_eq!(unsafe_double(4), 8);
        assert_eq!(refresh_unsafe_double(4), 8);
        assert_eq!(counter.unsafe_add(1), 12);
    }
    assert!(invalidate_unsafe_double(4), "invalidating is safe");
    assert!(counter.invalidate_unsafe_add(1));
}

/// Runs a future that never waits on I/O (the in-memory cache never does).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

// Tags made from the key arguments alone: a hit is found before they are built. The forms the
// macro recognizes, each still seeing its invalidations, on generic, fallible and async
// functions.
static KEYED: Calls = Calls::new();

#[cached(cache = &CACHE, tags = [format!("keyed:{id}"), format!("keyed-kind:{}", kind.len())])]
fn keyed_generic<T: 'static>(id: u64, kind: String) -> Result<String, String> {
    KEYED.count();
    Ok(format!("{id} {kind} {}", type_name::<T>()))
}

#[cached(cache = &CACHE, tags = [format!("keyed-opt:{}", user.id)])]
async fn keyed_async(user: User) -> Option<String> {
    KEYED.count();
    Some(user.name)
}

#[test]
fn tags_made_from_the_key_are_checked_like_any_others() {
    let runs = KEYED.get();
    let hits = CACHE.stats().near_hits;
    let u8_value = keyed_generic::<u8>(1, "ab".into()).unwrap();
    // Kept near by the first read that finds it, answered near from then on.
    for _ in 0..2 {
        assert_eq!(keyed_generic::<u8>(1, "ab".into()).unwrap(), u8_value);
    }
    assert_ne!(keyed_generic::<u16>(1, "ab".into()).unwrap(), u8_value);
    assert_eq!(KEYED.get(), runs + 2, "one run per type");
    assert!(CACHE.stats().near_hits > hits, "the hit was answered near");
    assert!(CACHE.invalidate(["keyed-kind:2"]));
    assert_eq!(keyed_generic::<u8>(1, "ab".into()).unwrap(), u8_value);
    assert_eq!(KEYED.get(), runs + 3, "invalidated by its second tag");

    let user = User {
        id: 9,
        name: "ada".into(),
    };
    let block_on = futures_executor::block_on;
    assert_eq!(block_on(keyed_async(user.clone())), Some("ada".into()));
    assert_eq!(block_on(keyed_async(user.clone())), Some("ada".into()));
    assert_eq!(KEYED.get(), runs + 4);
    assert!(CACHE.invalidate(["keyed-opt:9"]));
    assert_eq!(block_on(keyed_async(user)), Some("ada".into()));
    assert_eq!(KEYED.get(), runs + 5, "invalidated by its tag");
}

//! `#[cached]` on Redis: keys from what the user wrote (trait and generic impls, `name = ...`),
//! `key_<fn>`, jitter on the server's TTLs, negative caching, `unless` and `returns`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use rtc::{cached, TaggedCache};
use rtc_tests::{unique_namespace, RedisServer};

fn cache_on(server: &RedisServer, label: &str) -> TaggedCache {
    TaggedCache::builder()
        .namespace(unique_namespace(label))
        .url(server.url())
        .build()
        .expect("valid settings")
}

fn install(slot: &'static OnceLock<TaggedCache>, cache: TaggedCache) {
    assert!(slot.set(cache).is_ok(), "each cache is installed once");
}

static TRAITS: OnceLock<TaggedCache> = OnceLock::new();

trait UserRepo {
    fn find(&self, id: u64) -> Option<String>;
    async fn load(&self, id: u64) -> Result<String, String>;
}

struct PgRepo {
    calls: AtomicUsize,
}

#[cached]
impl UserRepo for PgRepo {
    #[cached(cache = TRAITS.get().unwrap(), tags = [format!("user:{id}")])]
    fn find(&self, id: u64) -> Option<String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Some(format!("user {id}"))
    }

    #[cached(cache = TRAITS.get().unwrap(), tags = [format!("user:{id}")])]
    async fn load(&self, id: u64) -> Result<String, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(format!("loaded {id}"))
    }
}

#[test]
fn methods_of_a_trait_impl_are_cached_and_invalidated_on_redis() {
    let server = RedisServer::start();
    install(&TRAITS, cache_on(&server, "macro-traits"));
    let repo = PgRepo {
        calls: AtomicUsize::new(0),
    };
    assert_eq!(repo.find(1).as_deref(), Some("user 1"));
    assert_eq!(repo.find(1).as_deref(), Some("user 1"));
    assert_eq!(repo.calls.load(Ordering::SeqCst), 1);
    TRAITS.get().unwrap().invalidate(["user:1"]);
    assert_eq!(repo.find(1).as_deref(), Some("user 1"));
    assert_eq!(repo.calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        repo.key_find(1).as_deref(),
        Some("macro_keys::<PgRepo as UserRepo>::find([1])")
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(repo.load(2).await.unwrap(), "loaded 2");
        assert_eq!(repo.load(2).await.unwrap(), "loaded 2");
        assert_eq!(repo.calls.load(Ordering::SeqCst), 3);
        assert!(repo.invalidate_load(2).await);
        assert_eq!(repo.load(2).await.unwrap(), "loaded 2");
        assert_eq!(repo.calls.load(Ordering::SeqCst), 4);
    });
}

static GENERIC: OnceLock<TaggedCache> = OnceLock::new();

struct Table<T>(std::marker::PhantomData<T>);

#[cached]
impl<T> Table<T> {
    #[cached(cache = GENERIC.get().unwrap())]
    fn row_type() -> String {
        std::any::type_name::<T>().to_owned()
    }
}

#[test]
fn instantiations_of_a_generic_impl_keep_their_own_entries_on_redis() {
    let server = RedisServer::start();
    install(&GENERIC, cache_on(&server, "macro-generic"));
    assert_eq!(Table::<u8>::row_type(), "u8");
    assert_eq!(Table::<u16>::row_type(), "u16");
    assert_eq!(Table::<u8>::row_type(), "u8");
    assert_eq!(
        Table::<u16>::key_row_type().as_deref(),
        Some("macro_keys::Table<T>::row_type([\"u16\"])")
    );
}

static NAMED: OnceLock<TaggedCache> = OnceLock::new();
static OLD_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = NAMED.get().unwrap(), name = "rates")]
fn old_rate(currency: String) -> String {
    OLD_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("old {currency}")
}

mod renamed {
    #[rtc::cached(cache = super::NAMED.get().unwrap(), name = "rates")]
    pub fn rate(currency: String) -> String {
        format!("new {currency}")
    }
}

#[test]
fn functions_with_one_name_share_entries_and_invalidate_all_on_redis() {
    let server = RedisServer::start();
    install(&NAMED, cache_on(&server, "macro-named"));
    assert_eq!(old_rate("eur".into()), "old eur");
    assert_eq!(
        renamed::rate("eur".into()),
        "old eur",
        "the entry survives the rename"
    );
    assert!(renamed::invalidate_all_rate());
    assert_eq!(old_rate("eur".into()), "old eur");
    assert_eq!(
        OLD_RUNS.load(Ordering::SeqCst),
        2,
        "invalidated through the other"
    );
}

static JITTERED: OnceLock<TaggedCache> = OnceLock::new();
const LIFETIME_MS: i64 = 100_000;

#[cached(cache = JITTERED.get().unwrap(), lifetime = 100, jitter = 100)]
fn jittered(id: u64) -> u64 {
    id
}

#[test]
fn jitter_adds_up_to_its_length_to_each_entrys_ttl_on_the_server() {
    let server = RedisServer::start();
    install(&JITTERED, cache_on(&server, "macro-jitter"));
    for id in 0..16 {
        jittered(id);
    }
    let mut connection = server.connection();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut connection).unwrap();
    let ttls: Vec<i64> = keys
        .iter()
        .map(|key| redis::cmd("PTTL").arg(key).query(&mut connection).unwrap())
        .filter(|ttl| (0..=2 * LIFETIME_MS).contains(ttl))
        .collect();
    assert_eq!(ttls.len(), 16, "one entry per call; tags live a day");
    assert!(
        ttls.iter().any(|ttl| *ttl > LIFETIME_MS + 1_000),
        "some entry got more than a second of jitter: {ttls:?}"
    );
}

static NEGATIVE: OnceLock<TaggedCache> = OnceLock::new();
static MISSING_RUNS: AtomicUsize = AtomicUsize::new(0);
static RENDER_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = NEGATIVE.get().unwrap(), cache_none)]
fn missing(id: u64) -> Option<u64> {
    MISSING_RUNS.fetch_add(1, Ordering::SeqCst);
    (id == 0).then_some(id)
}

#[cached(cache = NEGATIVE.get().unwrap(), unless = |page| page.is_empty())]
fn render(path: String) -> String {
    RENDER_RUNS.fetch_add(1, Ordering::SeqCst);
    path.trim_start_matches('/').to_owned()
}

#[test]
fn cache_none_and_unless_decide_what_redis_stores() {
    let server = RedisServer::start();
    install(&NEGATIVE, cache_on(&server, "macro-negative"));
    assert_eq!(missing(1), None);
    assert_eq!(missing(1), None);
    assert_eq!(MISSING_RUNS.load(Ordering::SeqCst), 1, "None is cached");

    assert_eq!(render("/".into()), "");
    assert_eq!(render("/".into()), "");
    assert_eq!(
        RENDER_RUNS.load(Ordering::SeqCst),
        2,
        "an empty page is not"
    );
    assert_eq!(render("/a".into()), "a");
    assert_eq!(render("/a".into()), "a");
    assert_eq!(RENDER_RUNS.load(Ordering::SeqCst), 3);
}

static ERRORS: OnceLock<TaggedCache> = OnceLock::new();
static QUOTA_RUNS: AtomicUsize = AtomicUsize::new(0);
static PARSE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = ERRORS.get().unwrap(), cache_err)]
fn quota(account: u64) -> Result<u32, String> {
    QUOTA_RUNS.fetch_add(1, Ordering::SeqCst);
    Err(format!("account {account} is closed"))
}

type Parsed<T> = Result<T, String>;

#[cached(cache = ERRORS.get().unwrap())]
fn parse(text: String) -> Parsed<u64> {
    PARSE_RUNS.fetch_add(1, Ordering::SeqCst);
    text.parse().map_err(|_| format!("not a number: {text}"))
}

#[test]
fn cache_err_and_a_result_alias_decide_which_errors_redis_stores() {
    let server = RedisServer::start();
    install(&ERRORS, cache_on(&server, "macro-errors"));
    assert!(quota(1).is_err());
    assert!(quota(1).is_err());
    assert_eq!(QUOTA_RUNS.load(Ordering::SeqCst), 1, "the error is cached");

    assert!(parse("x".into()).is_err());
    assert!(parse("x".into()).is_err());
    assert_eq!(
        PARSE_RUNS.load(Ordering::SeqCst),
        2,
        "the alias's errors are not"
    );
    assert_eq!(parse("7".into()), Ok(7));
    assert_eq!(parse("7".into()), Ok(7));
    assert_eq!(PARSE_RUNS.load(Ordering::SeqCst), 3);
}

//! What a `#[cached]` function's keys are made of: its module, its `impl` block as written, its
//! name or `name = ...`, its arguments; generic and trait impls; `key_<fn>` and the hook's view.
#![deny(warnings)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use rtc::{cached, CacheInfo, TaggedCache};

mod support;

static CACHE: LazyLock<TaggedCache> = LazyLock::new(support::warm_memory_cache);

/// What the hook saw, by function name.
static SEEN: Mutex<Vec<(String, CacheInfo)>> = Mutex::new(Vec::new());

static HOOKED: LazyLock<TaggedCache> = LazyLock::new(|| {
    TaggedCache::builder()
        .in_memory()
        .cache_hook(|key: &str, _tags: &[String], info: &CacheInfo, _| {
            SEEN.lock().unwrap().push((key.to_owned(), info.clone()));
        })
        .build()
        .unwrap()
});

fn seen(function: &str) -> Vec<(String, CacheInfo)> {
    let seen = SEEN.lock().unwrap();
    let matching = seen
        .iter()
        .filter(|(_, info)| info.function_name == function);
    matching.cloned().collect()
}

#[cached(cache = &CACHE)]
fn plain(id: u64) -> u64 {
    id
}

#[test]
fn a_functions_key_is_its_module_name_and_arguments() {
    assert_eq!(
        key_plain(3).as_deref(),
        Some(concat!(module_path!(), "::plain([3])"))
    );
}

struct Repo<T> {
    label: T,
}

#[cached]
impl<T: serde::Serialize + Sync> Repo<T> {
    #[cached(cache = &CACHE)]
    fn count() -> String {
        std::any::type_name::<T>().to_owned()
    }

    #[cached(cache = &CACHE, skip(prefix))]
    fn labelled(&self, prefix: &str, id: u64) -> String {
        format!("{prefix}{id}")
    }
}

#[test]
fn instantiations_of_a_generic_impl_do_not_share_entries() {
    assert_eq!(Repo::<u8>::count(), "u8");
    assert_eq!(Repo::<u16>::count(), "u16");
    assert_eq!(Repo::<u8>::count(), "u8");
    let key = Repo::<u8>::key_count().unwrap();
    assert_eq!(
        key,
        concat!(module_path!(), "::Repo<T>::count([\"u8\"])"),
        "the type as written, the type argument's name"
    );
}

#[test]
fn skipped_arguments_are_left_out_of_invalidate_and_key() {
    let repo = Repo { label: 1u8 };
    assert_eq!(repo.labelled("a:", 1), "a:1");
    assert_eq!(repo.labelled("b:", 1), "a:1", "`prefix` is skipped");
    assert!(repo.label == 1 && repo.invalidate_labelled(1));
    assert_eq!(repo.labelled("b:", 1), "b:1");
    assert!(repo
        .key_labelled(1)
        .unwrap()
        .ends_with("::Repo<T>::labelled([1,\"u8\"])"));
}

#[cached(cache = &CACHE, name = "shared-price")]
fn price_v1(item: u32) -> u32 {
    item * 100
}

mod moved {
    use rtc::cached;

    #[cached(cache = &super::CACHE, name = "shared-price")]
    pub fn price_v2(item: u32) -> u32 {
        item * 200
    }
}

#[test]
fn functions_with_the_same_name_option_share_entries_and_invalidate_all() {
    assert_eq!(price_v1(1), 100);
    assert_eq!(moved::price_v2(1), 100, "renamed and moved: same cache");
    assert_eq!(key_price_v1(1).as_deref(), Some("shared-price([1])"));
    assert!(moved::invalidate_all_price_v2());
    assert_eq!(price_v1(1), 100);
    assert!(invalidate_all_price_v1());
    assert_eq!(
        moved::price_v2(1),
        200,
        "invalidate_all of one is that of the other"
    );
}

/// A repository as services declare them: a trait, and an implementation of it.
trait UserRepo {
    type Error;
    fn find(&self, id: u64) -> Result<String, Self::Error>;
    fn count(&self) -> u64;
    fn load(&self, id: u64) -> impl std::future::Future<Output = String> + Send;
}

struct PgRepo {
    calls: AtomicUsize,
}

#[cached]
impl UserRepo for PgRepo {
    type Error = String;

    #[cached(cache = &HOOKED, tags = [format!("user:{id}")])]
    fn find(&self, id: u64) -> Result<String, Self::Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(format!("user {id}"))
    }

    fn count(&self) -> u64 {
        self.calls.load(Ordering::SeqCst) as u64
    }

    #[cached(cache = &CACHE)]
    async fn load(&self, id: u64) -> String {
        self.calls.fetch_add(1, Ordering::SeqCst);
        format!("loaded {id}")
    }
}

#[test]
fn methods_of_a_trait_impl_are_cached_with_helpers_on_the_type() {
    let repo = PgRepo {
        calls: AtomicUsize::new(0),
    };
    assert_eq!(repo.find(1).unwrap(), "user 1");
    assert_eq!(repo.find(1).unwrap(), "user 1");
    assert_eq!(repo.count(), 1);
    assert!(repo.invalidate_find(1));
    assert_eq!(repo.refresh_find(1).unwrap(), "user 1");
    assert_eq!(repo.count(), 2);
    assert!(repo.invalidate_all_find());
    assert_eq!(
        repo.key_find(1).as_deref(),
        Some(concat!(module_path!(), "::<PgRepo as UserRepo>::find([1])"))
    );
    let infos = seen("find");
    assert!(!infos.is_empty());
    assert!(infos.iter().all(|(_, info)| info.impl_type == "PgRepo"));
}

#[test]
fn async_methods_of_a_trait_impl_are_cached() {
    let repo = Arc::new(PgRepo {
        calls: AtomicUsize::new(0),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(repo.load(7).await, "loaded 7");
        assert_eq!(repo.load(7).await, "loaded 7");
        assert_eq!(repo.count(), 1);
        assert!(repo.invalidate_load(7).await);
        assert_eq!(repo.load(7).await, "loaded 7");
        assert_eq!(repo.count(), 2);
    });
}

#[cached(cache = &HOOKED, key = format!("report:{year}"))]
fn report(year: u16, region: String) -> String {
    format!("{region} {year}")
}

#[test]
fn the_hook_sees_the_arguments_when_a_key_is_given() {
    assert_eq!(report(2020, "north".into()), "north 2020");
    let infos = seen("report");
    let (key, info) = infos.last().unwrap();
    assert_eq!(key, "report:2020");
    assert_eq!(info.function_args, "[2020,\"north\"]");
    assert_eq!(info.impl_type, "");
}

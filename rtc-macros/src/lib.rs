//! The `#[cached]` attribute of [rtc](https://docs.rs/redis-tagged-cache). Use it through the
//! facade crate (`redis-tagged-cache`, library `rtc`), as `rtc::cached`: the code it generates
//! refers to the facade under the name the application's `Cargo.toml` gives it, or to
//! `crate = <path>`.
//!
//! `lib.rs` is the entry point and the documentation; `attr.rs` parses the attribute's options,
//! `signature.rs` checks the function, `expand.rs` writes the functions and `body.rs` their
//! bodies, `facade.rs` finds the facade's path.

mod attr;
mod block;
mod body;
mod errors;
mod expand;
mod facade;
mod impl_block;
mod keyed_tags;
mod signature;
mod written;

use proc_macro::TokenStream;

/// Caches the results of a function in a [`TaggedCache`], tagged for invalidation.
///
/// ```
/// use rtc::{cached, TaggedCache};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// pub struct User { id: u64 }
///
/// #[cached(tags = ["users", format!("user:{id}")], lifetime = 60)]
/// fn get_user(id: u64) -> User {
///     User { id } // the slow part: a database, a remote API...
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Once, at start-up. Until then decorated functions run uncached (with a warning).
/// rtc::set_global(TaggedCache::builder().in_memory().build()?).unwrap();
///
/// assert_eq!(get_user(1), User { id: 1 }); // runs the body, caches the result
/// assert_eq!(get_user(1), User { id: 1 }); // from the cache
///
/// rtc::global().unwrap().invalidate(["user:1"]); // every entry tagged "user:1" misses now
/// # Ok(())
/// # }
/// ```
///
/// A call is looked up by its *key*: the function's identity (below) and its arguments
/// serialized with serde (the receiver excluded). A hit returns the cached value without running
/// the body. A miss runs the body and stores the result with the tags. If the cache is
/// unreachable, or an argument fails to serialize, the body runs uncached.
///
/// # Generated functions
///
/// Next to the function, with its visibility and asyncness (for a method, in its type's `impl`):
///
/// - `invalidate_<name>(<arguments>) -> bool` removes the entry for exactly these arguments;
///   `true` when there was one.
/// - `invalidate_all_<name>() -> bool` makes every cached result of the function miss, whatever
///   the arguments, in O(1). `false` when the cache could not be reached.
/// - `refresh_<name>(<same arguments>) -> <same return type>` runs the body whatever the cache
///   holds and caches the result.
/// - `key_<name>(<arguments>) -> Option<String>` is the key a call reads and writes (for logs,
///   or `rtc`'s CLI); `None` when the arguments do not serialize. Never `async`.
///
/// `<arguments>` are the function's, without the skipped ones (`skip(..)`), which are not part of
/// the key, unless `key = ...` or `tags = ...` name them. The `invalidate` and `key_` functions of
/// a method take `&self` whatever the method's receiver (they never run the body);
/// `refresh_<name>` takes the same receiver.
///
/// ```
/// # use rtc::{cached, TaggedCache};
/// # rtc::set_global(TaggedCache::builder().in_memory().build().unwrap()).unwrap();
/// pub struct Pool;
///
/// #[cached(skip(pool))]
/// pub fn price(pool: &Pool, item: u32) -> u64 {
///     u64::from(item) * 100
/// }
///
/// assert_eq!(price(&Pool, 3), 300);
/// assert_eq!(key_price(3).unwrap(), format!("{}::price([3])", module_path!()));
/// assert!(invalidate_price(3));
/// assert!(invalidate_all_price());
/// assert_eq!(refresh_price(&Pool, 3), 300);
/// ```
///
/// # Key stability
///
/// Entries written by one build are read by the next, and by other services that share the
/// namespace, as long as their keys are equal. A key is the function's *identity* followed by its
/// arguments as a JSON array, `<identity>(<arguments>)`; the identity is also the name of the
/// function's own tag, which `invalidate_all_<name>` bumps. The identity is, from what you wrote:
///
/// - a function: `<module path>::<name>` (`shop::prices::price`);
/// - a function of an `impl` block: `<module path>::<type as written>::<name>`
///   (`shop::Repo<T>::count`);
/// - a function of a trait impl: `<module path>::<<type> as <trait>>::<name>`, both as written
///   (`shop::<PgRepo as UserRepo>::find`);
/// - with `name = "..."`: that string, and nothing else.
///
/// So a key changes when you rename or move the function (another module, another `impl`),
/// rename the type or write it differently (`Repo<T>` and `Repo<U>` are two spellings), change
/// which arguments are skipped, their order, or how one serializes (a field renamed in its
/// `Serialize`). It does not change with the compiler version, the crate's version, the body,
/// the return type, comments, the argument names or `lifetime`. Give `name` to keep entries
/// across a rename or a move.
///
/// One exception: a generic function or a function of a generic `impl` adds its type arguments
/// to the key's arguments, as `std::any::type_name` spells them (`Repo::<u8>::count()` has
/// `["u8"]`), so that instantiations never share entries. That spelling may change with the
/// compiler: such entries can go cold after a toolchain upgrade. `invalidate_all_<name>`
/// applies to every instantiation.
///
/// # Return types
///
/// Decided by the return type's type, however it is written (`io::Result<T>`, a type alias such
/// as `type AppResult<T> = Result<T, AppError>`):
///
/// - a `Result<T, E>`: only `Ok(T)` is cached, errors never are (unless `cache_err = true`).
/// - an `Option<T>`: only `Some(T)` is cached (unless `cache_none = true`).
/// - anything else, `()` included, is cached as it is.
///
/// A return type that is a generic parameter of the function (`fn load<R>() -> R`) is not
/// known to be a `Result` where the function is compiled, so it is cached as it is.
///
/// ```
/// # use rtc::cached;
/// type AppResult<T> = Result<T, String>;
///
/// #[cached]
/// fn parse(text: String) -> AppResult<u64> {
///     text.parse().map_err(|_| format!("not a number: {text}")) // errors are not cached
/// }
/// ```
///
/// The cached type (`T`, or the whole type) must implement `serde::Serialize` and
/// `serde::de::DeserializeOwned`, unless `serializer`/`deserializer` are given; the compile error
/// for one that does not points at the return type. `impl Trait` cannot be returned.
///
/// # `async fn`
///
/// An `async fn` uses the cache's async calls, never blocking its runtime; its generated
/// functions are `async` too (but `key_<name>`). The future is `Send` when the body's is.
///
/// ```
/// # use rtc::{cached, TaggedCache};
/// #[cached(tags = ["profiles"])]
/// async fn load_profile(id: u64) -> Result<String, std::io::Error> {
///     Ok(format!("profile {id}"))
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # rtc::set_global(TaggedCache::builder().in_memory().build().unwrap()).unwrap();
/// assert_eq!(load_profile(1).await.unwrap(), "profile 1");
/// assert!(invalidate_load_profile(1).await);
/// # }
/// ```
///
/// # Methods
///
/// Functions of an `impl` block, with or without a receiver, need `#[cached]` on the block too:
/// it gives their keys the block's type as written. Other functions of the block are left alone.
///
/// The receiver is not part of the key: two values of the same type share entries for the same
/// arguments. Put what distinguishes them in the key (`key = ...`) or the tags. The same method
/// name on two types never shares entries.
///
/// ```
/// # use rtc::{cached, TaggedCache};
/// # rtc::set_global(TaggedCache::builder().in_memory().build().unwrap()).unwrap();
/// struct UserRepo {
///     org_id: u64,
/// }
///
/// #[cached]
/// impl UserRepo {
///     #[cached(
///         tags = [format!("org:{}", self.org_id)],
///         key = format!("{}:{name}", self.org_id)
///     )]
///     pub fn by_name(&self, name: String) -> Option<String> {
///         Some(format!("{name} of {}", self.org_id))
///     }
/// }
///
/// let repo = UserRepo { org_id: 7 };
/// assert_eq!(repo.by_name("ann".into()).as_deref(), Some("ann of 7"));
/// assert!(repo.invalidate_by_name("ann".into()));
/// assert!(repo.invalidate_all_by_name());
/// ```
///
/// Without `#[cached]` on the block, a method (a function with `self`) is a compile error that
/// says so. A function without `self` looks like a free function to the macro (an attribute
/// macro is not told where its item is); in a block without the attribute it fails to compile,
/// the first error pointing at its `#[cached]` with the note "this error originates in the macro
/// `put_cached_on_the_impl_block_too`": put `#[rtc::cached]` on the block.
///
/// # Trait impls
///
/// The same goes for `impl Trait for Type`, sync and `async fn` alike. The trait impl keeps its
/// functions, now cached; the generated functions cannot be members of the trait, so they go in
/// an inherent `impl Type` beside it, `pub`. Their names must then be unique among the type's
/// functions: two traits with a cached function of the same name on one type clash.
///
/// ```
/// # use rtc::{cached, TaggedCache};
/// # rtc::set_global(TaggedCache::builder().in_memory().build().unwrap()).unwrap();
/// trait UserRepo {
///     fn find(&self, id: u64) -> Option<String>;
///     async fn count(&self) -> u64;
/// }
///
/// struct PgRepo;
///
/// #[cached]
/// impl UserRepo for PgRepo {
///     #[cached(tags = [format!("user:{id}")])]
///     fn find(&self, id: u64) -> Option<String> {
///         Some(format!("user {id}"))
///     }
///
///     #[cached(lifetime = 10)]
///     async fn count(&self) -> u64 {
///         42
///     }
/// }
///
/// assert_eq!(PgRepo.find(1).as_deref(), Some("user 1"));
/// assert!(PgRepo.invalidate_find(1)); // on the type, not the trait
/// # let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # runtime.block_on(async {
/// assert_eq!(PgRepo.count().await, 42);
/// assert!(PgRepo.invalidate_all_count().await);
/// # });
/// ```
///
/// # Options
///
/// All optional, in any order, each at most once. The expressions are evaluated in the function's
/// body before its own code, with the arguments (and `self`) in scope as they are: borrow a
/// non-`Copy` argument (`&name`, or `format!`, which borrows) so the body can still use it.
///
/// ## `tags = <expr>`
///
/// One tag (`"users"`, `format!("user:{id}")`) or many: an array whose elements are any kind of
/// string, mixed as you like (`"books"`, a `&str` or `String` argument, `format!(..)`), or a
/// `Vec`, an iterator: anything `rtc::IntoTags` takes. `TaggedCache::invalidate` of one of them
/// makes every entry that carries it miss. A number is not a tag: `format!("user:{id}")` is.
///
/// ```
/// # use rtc::{cached, TaggedCache};
/// # rtc::set_global(TaggedCache::builder().in_memory().build().unwrap()).unwrap();
/// #[cached(tags = ["books", format!("author:{author}")])]
/// fn books_by(author: String) -> Vec<String> {
///     vec![format!("a book by {author}")]
/// }
/// # books_by("ann".into());
/// rtc::global().unwrap().invalidate(["author:ann"]);
/// ```
///
/// When every tag is a `format!` of literals and key arguments (or their fields), as above, or a
/// string literal, the same arguments always give the same tags, and a hit from the near cache
/// or the in-memory backend is found before the tags are built (their text is then most of a
/// hit's cost). A tag that reads anything else (a constant, a call, `self`) is built on every
/// call, as is every tag of a function with `key = ...`.
///
/// ## `lifetime = <expr>`, `jitter = <expr>`
///
/// How long an entry lives: whole seconds (an integer, or any `u64` expression), a float literal
/// of seconds (`0.5`), any `std::time::Duration` (sub-second ones included), or an
/// `rtc::Lifetime` (`Lifetime::Never`: until invalidated or evicted). Without it, the cache's
/// default lifetime. A literal `0` is a compile error (zero never means "never" in rtc); a zero
/// computed at run time stores nothing, with a warning. `jitter` (seconds or a `Duration`) adds a
/// random part of itself to each entry's lifetime, so that entries written together do not all
/// expire together.
///
/// ```
/// # use rtc::cached;
/// use std::time::Duration;
///
/// const HOUR: u64 = 3600;
///
/// #[cached(lifetime = HOUR, jitter = 60)]
/// fn exchange_rate(currency: String) -> f64 {
///     1.0
/// }
///
/// #[cached(lifetime = Duration::from_millis(500))]
/// fn quote(symbol: String) -> f64 {
///     1.0
/// }
///
/// #[cached(lifetime = rtc::Lifetime::Never)]
/// fn country_name(code: String) -> String {
///     code.to_uppercase()
/// }
/// ```
///
/// ## `key = <expr>`
///
/// Replaces the generated key (`impl AsRef<str>`); the arguments then need not be `Serialize`.
/// The entry can be read with the low-level API: `cache.get("report:2020", ["reports"])`.
///
/// ```
/// # use rtc::cached;
/// #[cached(key = format!("report:{year}"), tags = ["reports"])]
/// fn report(year: u16) -> Option<String> {
///     Some(format!("report {year}"))
/// }
/// ```
///
/// ## `name = "<identity>"`
///
/// Replaces module, type and function name in the keys and in the function's own tag (see
/// [Key stability](#key-stability)): renaming or moving the function keeps its cache. Two
/// functions with the same `name` share their entries and their `invalidate_all_<name>`; that is
/// the point (an old and a new version of one function, say), so give each function its own
/// name otherwise.
///
/// ```
/// # use rtc::cached;
/// #[cached(name = "prices.v1")]
/// fn price_of(item: u32) -> u64 {
///     u64::from(item) * 100
/// }
/// ```
///
/// ## `lock`, `lock_timeout = <expr>`
///
/// With `lock` (or `lock = <bool expression>`), concurrent misses of the same key run the body
/// once: the others wait for its result (in this process, and across processes through Redis)
/// at most `lock_timeout` (seconds or a `Duration`, default 5 s), then run the body themselves.
///
/// ```
/// # use rtc::cached;
/// #[cached(lock, lock_timeout = 10)]
/// fn expensive_report(day: u32) -> String {
///     format!("report of day {day}")
/// }
/// ```
///
/// ## `stale_if_error = <expr>`, `stale_while_revalidate [= <expr>]`, `stale_if_slow [= <expr>]`
///
/// Serve a value past its lifetime when that is better than failing or waiting. *Stale* means
/// only "past its lifetime": an entry whose tags were invalidated, that was deleted
/// (`invalidate_<name>`), or whose function or cache was invalidated whole, is never served by
/// any of these options, even when the invalidation lands while a refresh or a late
/// computation runs (what they store is stamped with the versions read before they started,
/// as every store is). Each takes seconds or a `Duration`; the cache's builder gives defaults
/// (`TaggedCacheBuilder::stale_if_error` and the others), and `= false` turns a default off for
/// one function. A literal zero is a compile error: zero is never "off" in rtc.
///
/// - `stale_if_error`: when the body returns `Err` (or `None` for an `Option`) and the entry
///   is past its lifetime by at most this long, the call reads the entry again and returns its
///   value instead, if every tag is still current. On a function that cannot fail (its return
///   type is neither a `Result` nor an `Option`, or `cache_err`/`cache_none` caches failures),
///   it is a compile error, unless `stale_if_slow` uses its window.
/// - `stale_while_revalidate`: a call that finds the entry past its lifetime by at most this
///   long returns it at once, and the entry is refreshed in the background: once per entry in
///   the process, and once across processes with `lock` (the refresh takes the Redis lock
///   without waiting; a process that finds it held leaves the refresh to its holder).
/// - `stale_if_slow`: when the body takes longer and a stale value is at hand (within
///   `stale_if_error`), the call returns that value; the body finishes and stores its result.
///
/// An entry of such a function stays in Redis its lifetime plus the largest of its windows;
/// the entry records that window, and the call reads what is left of the entry's time to
/// live with the entry, in the same round trip.
///
/// `stale_while_revalidate` and `stale_if_slow` run the body after the call has returned, on a
/// thread of its own (for an `async fn`, the current tokio runtime's blocking pool and tasks): the function
/// cannot borrow from its caller, so arguments that borrow (`&str`, `&self`, a type with a
/// lifetime other than `'static`) are a compile error naming the argument; arguments and the
/// return type must be `Send + 'static`. Written bare, they take the cache's default, which
/// applies to no function that does not name them. An `async fn` called outside a tokio
/// runtime refreshes before returning the stale value, and `stale_if_slow` does not apply. A refresh that
/// panics is logged once and leaves the stale entry; the next call refreshes it again.
///
/// ```
/// # use rtc::cached;
/// #[cached(lifetime = 60, stale_while_revalidate = 600, stale_if_error = 3600, stale_if_slow = 0.5)]
/// fn exchange_rate(currency: String) -> Result<f64, String> {
///     Ok(if currency == "EUR" { 1.08 } else { 1.0 })
/// }
///
/// #[cached(stale_if_error = 3600)] // borrowing is fine: nothing runs after the call
/// fn profile(user: &str) -> Option<String> {
///     Some(format!("profile of {user}"))
/// }
///
/// #[cached(stale_if_error = false)] // whatever the cache's default
/// fn balance(account: u64) -> Result<u64, String> {
///     Ok(account)
/// }
/// ```
///
/// ## `hook_userdata = <expr>`
///
/// A `'static + Send + Sync` value handed to the cache hook (`TaggedCacheBuilder::cache_hook`)
/// after each call, as `Option<&(dyn Any + Send + Sync)>`.
///
/// ```
/// # use rtc::cached;
/// #[cached(hook_userdata = "reports")]
/// fn monthly(month: u8) -> String {
///     format!("month {month}")
/// }
/// ```
///
/// ## `skip(<argument>, ...)`, `skip_all`
///
/// Arguments left out of the generated key: connection pools, clients, anything that does not
/// change the result or is not `Serialize`. Every other argument must be `Serialize`; the error
/// for one that is not says so. `skip_all` leaves out every argument: without `key = ...`, all
/// calls then share one entry. `skip(self)` is accepted and changes nothing (the receiver is
/// never in the key).
///
/// An argument borrowed mutably (`&mut T`) must be skipped: on a hit the body does not run, so
/// what it would have changed stays unchanged. Skipping it says that is fine.
///
/// ```
/// # use rtc::cached;
/// pub struct Pool;
///
/// #[cached(skip(pool))]
/// fn user_name(pool: &Pool, id: u64) -> String {
///     format!("user {id}")
/// }
///
/// #[cached(skip_all, key = "settings", lifetime = 60)]
/// fn settings(pool: &Pool, counter: &mut u64) -> String {
///     *counter += 1; // only on a miss
///     "the settings".to_string()
/// }
/// ```
///
/// ## `cache = <expr>`
///
/// The cache to use instead of the global one: a `&TaggedCache`, or anything that dereferences
/// to one (`&LazyLock<TaggedCache>`, `Arc<TaggedCache>`, `&self.cache`). `invalidate_all_<name>`
/// evaluates it too, without the arguments: refer to `self` or to statics, not to arguments.
///
/// ```
/// # use rtc::{cached, TaggedCache};
/// use std::sync::LazyLock;
///
/// static REPORTS: LazyLock<TaggedCache> =
///     LazyLock::new(|| TaggedCache::builder().in_memory().build().unwrap());
///
/// #[cached(cache = &REPORTS)]
/// fn yearly(year: u16) -> String {
///     format!("year {year}")
/// }
/// # assert_eq!(yearly(2020), "year 2020");
/// ```
///
/// ## `codec = <expr>`, `compress_above = <expr>`
///
/// This function's values are stored with `codec`, an `rtc::Codec` (an expression of that
/// type) instead of its cache's codec (`TaggedCacheBuilder::codec`, JSON by default):
/// `codec = rtc::Codec::Postcard` with the `postcard` feature. `compress_above = <bytes>` (a
/// `usize`, feature `lz4`) compresses values whose serialized form is longer than that, whatever
/// the cache's own `compress_above`.
///
/// The entry records its codec: a reader that expects another one (a low-level `get` with a
/// cache of another codec, or this function after its codec changed) counts a miss with a
/// rate-limited warning, never a wrong value. `codec` cannot be combined with `serializer`.
///
/// ```
/// # use rtc::{cached, Codec, TaggedCache};
/// # rtc::set_global(TaggedCache::builder().in_memory().build().unwrap()).unwrap();
/// #[cached(codec = Codec::Json)]
/// fn totals(year: u16) -> Vec<u64> {
///     vec![u64::from(year); 12]
/// }
/// # assert_eq!(totals(2020).len(), 12);
/// ```
///
/// ## `serializer = <path>`, `deserializer = <path>`
///
/// Replace the serde encoding of the cached value, both together: a `fn(&T) -> Option<Vec<u8>>`
/// (`None`: don't cache this value) and a `fn(&[u8]) -> Option<T>` (`None`: a miss). The entry
/// records that a custom serializer wrote it, so readers with a serde codec miss rather than
/// decode it (and this function misses on entries of a serde codec).
///
/// ```
/// # use rtc::cached;
/// fn encode(text: &String) -> Option<Vec<u8>> {
///     Some(text.as_bytes().to_vec())
/// }
///
/// fn decode(bytes: &[u8]) -> Option<String> {
///     String::from_utf8(bytes.to_vec()).ok()
/// }
///
/// #[cached(serializer = encode, deserializer = decode)]
/// fn page(path: String) -> String {
///     format!("<html>{path}</html>")
/// }
/// ```
///
/// ## `cache_none`, `cache_err`
///
/// Negative caching, off by default: `cache_none` (or `cache_none = true`) caches `None` too, so
/// a missing row is not looked up again until it expires or is invalidated; `cache_err` caches
/// `Err` too, which then must be `Serialize` and `DeserializeOwned` like the `Ok` type. Each is
/// a compile error on a function whose return type is not a `Result` (an `Option`).
///
/// ```
/// # use rtc::cached;
/// #[cached(cache_none, lifetime = 30)]
/// fn find_user(id: u64) -> Option<String> {
///     None // not found: remembered for 30 s
/// }
///
/// #[cached(cache_err = true, lifetime = 5)]
/// fn fetch_quota(account: u64) -> Result<u32, String> {
///     Err(format!("account {account} is closed")) // remembered for 5 s
/// }
/// ```
///
/// ## `unless = <predicate>`
///
/// A closure or function `FnOnce(&R) -> bool` on the return value as returned (`R` is the return
/// type): when it gives `true`, the value is returned but not stored. It is called after the
/// body, so it sees only the value, not the arguments.
///
/// ```
/// # use rtc::cached;
/// #[cached(unless = |page| page.is_empty())]
/// fn render(path: String) -> String {
///     String::new() // not cached
/// }
/// ```
///
/// ## `crate = <path>`
///
/// Where the facade crate is, for the generated code: by default, the name the calling crate's
/// `Cargo.toml` gives the dependency (`cache = { package = "redis-tagged-cache", .. }` and then
/// `#[cache::cached]` work as they are), else `::rtc`. Give the path when the facade is reached
/// through another crate's re-export, as serde's `#[serde(crate = "..")]` does.
///
/// ```
/// mod infra {
///     pub use rtc as cache;
/// }
///
/// #[infra::cache::cached(crate = infra::cache)]
/// fn totals(year: u16) -> u64 {
///     u64::from(year)
/// }
/// # assert_eq!(totals(2020), 2020);
/// ```
///
/// # Functions it applies to
///
/// Free functions, and functions of `impl` blocks and trait impls that carry `#[cached]`
/// themselves, with any visibility, generics, `where` clause, attributes and doc comments (all
/// kept). Each argument must be a plain name (`mut` allowed); destructure in the body. Not
/// supported: `const fn`, functions declared in a trait (`trait T { .. }`), variadic functions.
///
/// The body is written once, in a hidden twin of the function (`__rtc_uncached_<name>`), which
/// the function calls on a miss and `refresh_<name>` always.
///
/// # Compile errors
///
/// Unknown or repeated options (with a suggestion for names from other caching crates), `skip`
/// of a name that is not an argument, an unskipped `&mut` argument, a borrowed argument with
/// `stale_while_revalidate` or `stale_if_slow`, `serializer` without
/// `deserializer`, a renamed option (named with its new name), a literal zero length of time, a
/// number as a tag, a non-function, a `const fn`, a pattern argument: an error on the offending
/// token, and the function still compiles as written, next to helpers that cannot run, so that
/// the rest of the crate (the calls of `invalidate_<name>` included) compiles without errors of
/// its own. Expressions that do not type-check, arguments and return types that are not
/// serializable: the compiler's error, pointing into the attribute or at the argument or type.
///
/// [`TaggedCache`]: https://docs.rs/rtc/latest/rtc/struct.TaggedCache.html
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    let (args, item) = (args.into(), item.into());
    match syn::parse2::<syn::ItemImpl>(proc_macro2::TokenStream::clone(&item)) {
        Ok(block) => impl_block::cached_impl(args, block),
        Err(_) => {
            let expanded = expand::cached_fn(args, item, None);
            let (in_place, beside) = (expanded.in_place, expanded.beside);
            quote::quote!(#in_place #beside)
        }
    }
    .into()
}

//! The `#[cached]` attribute of [rtc](https://docs.rs/rtc). Use it through the `rtc` crate, as
//! `rtc::cached`: the code it generates refers to `::rtc`.
//!
//! `lib.rs` is the entry point and the documentation; `attr.rs` parses the attribute's options,
//! `signature.rs` checks the function, `expand.rs` writes the functions and `body.rs` their bodies.

mod attr;
mod body;
mod errors;
mod expand;
mod impl_block;
mod signature;
mod written;

use proc_macro::TokenStream;

/// Caches the results of a function in a [`TaggedCache`], tagged for invalidation.
///
/// ```
/// use rtc::{cached, TaggedCache};
/// # #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
/// # pub struct User { id: u64 }
///
/// #[cached(tags = [format!("user:{id}"), "users".to_string()], lifetime = 60)]
/// fn get_user(id: u64) -> User {
///     User { id } // the slow part: a database, a remote API...
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Once, at start-up. Until then decorated functions run uncached (with a warning).
/// rtc::set_global(TaggedCache::builder().in_local_memory(true).build()?).unwrap();
///
/// assert_eq!(get_user(1), User { id: 1 }); // runs the body, caches the result
/// assert_eq!(get_user(1), User { id: 1 }); // from the cache
///
/// rtc::global().unwrap().invalidate(["user:1"]); // every entry tagged "user:1" misses now
/// # Ok(())
/// # }
/// ```
///
/// A call is looked up by its *key*: the function's module, its type for a method, its name and
/// its arguments serialized with serde (the receiver excluded). A hit returns the cached value
/// without running the body. A miss runs the body and stores the result with the tags. If the
/// cache is unreachable, or an argument fails to serialize, the body runs uncached.
///
/// # Generated functions
///
/// Next to the function, with its visibility and asyncness (inside the `impl` block for methods):
///
/// - `invalidate_<name>(<same arguments>) -> bool` removes the entry for exactly these
///   arguments; `true` when there was one.
/// - `invalidate_all_<name>() -> bool` makes every cached result of the function miss, whatever
///   the arguments, in O(1). `false` when the cache could not be reached.
/// - `refresh_<name>(<same arguments>) -> <same return type>` runs the body whatever the cache
///   holds and caches the result.
///
/// The two `invalidate` functions of a method take `&self` whatever the method's receiver (they
/// never run the body); `refresh_<name>` takes the same receiver.
///
/// ```
/// # use rtc::{cached, TaggedCache};
/// # rtc::set_global(TaggedCache::builder().in_local_memory(true).build().unwrap()).unwrap();
/// #[cached]
/// pub fn price(item: u32) -> u64 {
///     u64::from(item) * 100
/// }
///
/// assert_eq!(price(3), 300);
/// assert!(invalidate_price(3));
/// assert!(invalidate_all_price());
/// assert_eq!(refresh_price(3), 300);
/// ```
///
/// # Return types
///
/// Decided on how the return type is written:
///
/// - `Result<T, E>` (any path ending in `Result`, such as `io::Result<T>`): only `Ok(T)` is
///   cached, errors never are.
/// - `Option<T>`: only `Some(T)` is cached.
/// - anything else, `()` included, is cached as it is.
///
/// The cached type (`T`, or the whole type) must implement `serde::Serialize` and
/// `serde::de::DeserializeOwned`, unless `serializer`/`unserializer` are given; the compile error
/// for one that does not points at the return type. `impl Trait` cannot be returned. A type alias
/// of `Result` or `Option` is cached as it is, `Err` and `None` included.
///
/// # `async fn`
///
/// An `async fn` uses the cache's async calls, never blocking its runtime; its generated
/// functions are `async` too. The future is `Send` when the body's is.
///
/// ```
/// # use rtc::{cached, TaggedCache};
/// #[cached(tags = ["profiles"])]
/// async fn load_profile(id: u64) -> Result<String, std::io::Error> {
///     Ok(format!("profile {id}"))
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # rtc::set_global(TaggedCache::builder().in_local_memory(true).build().unwrap()).unwrap();
/// assert_eq!(load_profile(1).await.unwrap(), "profile 1");
/// assert!(invalidate_load_profile(1).await);
/// # }
/// ```
///
/// # Methods
///
/// The receiver is not part of the key: two values of the same type share entries for the same
/// arguments. Put what distinguishes them in the key (`key = ...`) or the tags. The same method
/// name on two types never shares entries; neither do associated functions without receiver.
///
/// ```
/// # use rtc::{cached, TaggedCache};
/// # rtc::set_global(TaggedCache::builder().in_local_memory(true).build().unwrap()).unwrap();
/// struct UserRepo {
///     org_id: u64,
/// }
///
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
/// # Options
///
/// All optional, in any order, each at most once. The expressions are evaluated in the function's
/// body before its own code, with the arguments (and `self`) in scope as they are: borrow a
/// non-`Copy` argument (`&name`, or `format!`, which borrows) so the body can still use it.
///
/// ## `tags = <expr>`
///
/// Any `IntoIterator<Item = impl AsRef<str>>`. `TaggedCache::invalidate` of one of them makes
/// every entry that carries it miss.
///
/// ```
/// # use rtc::{cached, TaggedCache};
/// # rtc::set_global(TaggedCache::builder().in_local_memory(true).build().unwrap()).unwrap();
/// #[cached(tags = [format!("author:{author}"), "books".to_string()])]
/// fn books_by(author: String) -> Vec<String> {
///     vec![format!("a book by {author}")]
/// }
/// # books_by("ann".into());
/// rtc::global().unwrap().invalidate(["author:ann"]);
/// ```
///
/// ## `lifetime = <expr>`
///
/// Whole seconds as a `u64`; `0` never expires. Without it, the cache's default lifetime.
///
/// ```
/// # use rtc::cached;
/// const HOUR: u64 = 3600;
///
/// #[cached(lifetime = HOUR)]
/// fn exchange_rate(currency: String) -> f64 {
///     1.0
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
/// ## `lock = <bool>`, `lock_timeout = <expr>`
///
/// With `lock = true`, concurrent misses of the same key run the body once: the others wait for
/// its result (in this process, and across processes through Redis) at most `lock_timeout`
/// seconds (a `u64`, default 5), then run the body themselves.
///
/// ```
/// # use rtc::cached;
/// #[cached(lock = true, lock_timeout = 10)]
/// fn expensive_report(day: u32) -> String {
///     format!("report of day {day}")
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
/// ## `skip(<argument>, ...)`
///
/// Arguments left out of the generated key: connection pools, clients, anything that does not
/// change the result or is not `Serialize`. Every other argument must be `Serialize`.
///
/// ```
/// # use rtc::cached;
/// pub struct Pool;
///
/// #[cached(skip(pool))]
/// fn user_name(pool: &Pool, id: u64) -> String {
///     format!("user {id}")
/// }
/// ```
///
/// ## `cache = <expr>`
///
/// The cache to use instead of the global one: a `&TaggedCache`, or anything that dereferences
/// to one (`&LazyLock<TaggedCache>`, `Arc<TaggedCache>`). `invalidate_all_<name>` evaluates it
/// too, without the arguments: refer to `self` or to statics, not to arguments.
///
/// ```
/// # use rtc::{cached, TaggedCache};
/// use std::sync::LazyLock;
///
/// static REPORTS: LazyLock<TaggedCache> =
///     LazyLock::new(|| TaggedCache::builder().in_local_memory(true).build().unwrap());
///
/// #[cached(cache = &REPORTS)]
/// fn yearly(year: u16) -> String {
///     format!("year {year}")
/// }
/// # assert_eq!(yearly(2020), "year 2020");
/// ```
///
/// ## `serializer = <path>`, `unserializer = <path>`
///
/// Replace the JSON encoding of the cached value, both together: a `fn(&T) -> Option<Vec<u8>>`
/// (`None`: don't cache this value) and a `fn(&[u8]) -> Option<T>` (`None`: a miss).
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
/// #[cached(serializer = encode, unserializer = decode)]
/// fn page(path: String) -> String {
///     format!("<html>{path}</html>")
/// }
/// ```
///
/// # Functions it applies to
///
/// Free functions, and functions and methods of inherent `impl` blocks, with any visibility,
/// generics, `where` clause, attributes and doc comments (all kept). Generic functions keep one
/// entry per type argument. Each argument must be a plain name (`mut` allowed); destructure in
/// the body. Not supported: `const fn`, functions in traits or trait `impl` blocks (the generated
/// functions are not members of the trait).
///
/// Without a receiver, the body is written twice in the expansion, in the function and in
/// `refresh_<name>`, so an item declared inside the body (a `static`, say) exists twice.
///
/// # Compile errors
///
/// Unknown or repeated options, `skip` of a name that is not an argument, `serializer` without
/// `unserializer`, a non-function, a `const fn`, a pattern argument: an error on the offending
/// token, and the function still compiles as written so that the rest of the crate does.
/// Expressions that do not type-check, arguments and return types that are not serializable:
/// the compiler's error, pointing into the attribute or at the argument or type.
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

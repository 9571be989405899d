//! An application that depends on the facade under another name, `cache`: `#[cache::cached]`
//! must generate code that names `::cache`, found in this crate's `Cargo.toml` (there is no
//! `::rtc` here for it to fall back on), and `crate = <path>` must win over what is found.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;

use cache::TaggedCache;

/// The cache of this crate's functions, in memory.
pub static CACHE: LazyLock<TaggedCache> = LazyLock::new(|| {
    TaggedCache::builder()
        .in_memory()
        .build()
        .expect("an in-memory cache builds")
});

static PRICE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A cached function, through the renamed dependency.
#[cache::cached(cache = &CACHE, tags = ["prices", format!("item:{item}")])]
pub fn price(item: u32) -> Result<u64, String> {
    PRICE_RUNS.fetch_add(1, Ordering::SeqCst);
    match item {
        0 => Err("no item 0".to_string()),
        item => Ok(u64::from(item) * 100),
    }
}

/// A stand-in for the facade that counts the tags the generated code builds through it: a
/// function that went through `crate = shim` is seen here.
pub mod shim {
    /// What `#[cached(crate = shim)]` reaches: the facade's, but for `tag`.
    pub mod __private {
        use std::sync::atomic::{AtomicUsize, Ordering};

        pub use cache::__private::*;

        /// How many tags were built through the shim.
        pub static TAGS_BUILT: AtomicUsize = AtomicUsize::new(0);

        /// The facade's `tag`, counted.
        pub fn tag(tag: impl Tag) -> String {
            TAGS_BUILT.fetch_add(1, Ordering::SeqCst);
            cache::__private::tag(tag)
        }
    }
}

/// A cached function whose generated code goes through [`shim`].
#[cache::cached(crate = crate::shim, cache = &CACHE, tags = ["stock", format!("item:{item}")])]
pub fn stock(item: u32) -> u32 {
    item * 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_of_a_crate_that_renamed_the_dependency_is_cached() {
        assert_eq!(price(3), Ok(300));
        assert_eq!(price(3), Ok(300));
        assert_eq!(
            PRICE_RUNS.load(Ordering::SeqCst),
            1,
            "the second call was a hit"
        );
        assert_eq!(price(0), Err("no item 0".to_string()));
        assert_eq!(price(0), Err("no item 0".to_string()));
        assert_eq!(
            PRICE_RUNS.load(Ordering::SeqCst),
            3,
            "errors are not cached"
        );
        assert!(CACHE.invalidate("item:3"));
        assert_eq!(price(3), Ok(300));
        assert_eq!(PRICE_RUNS.load(Ordering::SeqCst), 4);
        assert_eq!(
            key_price(3).as_deref(),
            Some("rtc_renamed_dependency::price([3])")
        );
    }

    #[test]
    fn crate_path_wins_over_the_dependency_found() {
        let before = shim::__private::TAGS_BUILT.load(Ordering::SeqCst);
        assert_eq!(stock(4), 8);
        assert_eq!(stock(4), 8);
        let built = shim::__private::TAGS_BUILT.load(Ordering::SeqCst) - before;
        assert!(
            built >= 2,
            "the tags were built through `crate = shim` ({built})"
        );
    }
}

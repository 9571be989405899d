//! How long an entry or a tag lives: the one type every lifetime setting takes.

use std::time::Duration;

/// How long an entry (or a tag's version) lives.
///
/// rtc's convention for lengths of time, the same for every method, builder setting and
/// `#[cached]` option:
///
/// - a [`Duration`] always means that length of time; zero is refused where it cannot work
///   (a clear [`ConfigError`](crate::ConfigError) from `build()`, a compile error in
///   `#[cached]`), never read as "off" or "no limit";
/// - a lifetime says what it means by name: [`Lifetime::Default`], [`Lifetime::Never`] or
///   [`Lifetime::After`], and a `Duration` converts into `After`;
/// - an optional behaviour (a stale window, a near cache age limit) is off until its setter is
///   called.
///
/// ```
/// use std::time::Duration;
/// use rtc::{Lifetime, TaggedCache};
///
/// let cache = TaggedCache::builder()
///     .in_memory()
///     .default_lifetime(Duration::from_secs(600)) // a Duration is `Lifetime::After`
///     .build()?;
/// cache.set("a", &1, ["t"], Lifetime::Default); // 600 s, the cache's default
/// cache.set("b", &2, ["t"], Lifetime::Never); // until evicted or invalidated
/// cache.set("c", &3, ["t"], Duration::from_secs(5)); // 5 s
/// # Ok::<(), rtc::ConfigError>(())
/// ```
///
/// An entry given `After(Duration::ZERO)` at run time would expire as it is written: `set`
/// stores nothing, returns `false` and logs a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lifetime {
    /// The cache's default: [`default_lifetime`](crate::TaggedCacheBuilder::default_lifetime)
    /// for entries, [`lifetime_for_tags`](crate::TaggedCacheBuilder::lifetime_for_tags) for
    /// tags. Given to the builder itself, rtc's own defaults: one hour for entries, one day
    /// for tags.
    #[default]
    Default,
    /// Never expires: lives until it is deleted, invalidated or evicted.
    Never,
    /// Expires this long after it is written.
    After(Duration),
}

impl From<Duration> for Lifetime {
    fn from(duration: Duration) -> Self {
        Lifetime::After(duration)
    }
}

impl Lifetime {
    /// The length of time with the default resolved: `None` for [`Lifetime::Never`].
    pub(crate) fn resolve(self, default: Option<Duration>) -> Option<Duration> {
        match self {
            Lifetime::Default => default,
            Lifetime::Never => None,
            Lifetime::After(duration) => Some(duration),
        }
    }

    /// True for an `After` of zero, which no entry can live.
    pub(crate) fn is_zero(self) -> bool {
        matches!(self, Lifetime::After(duration) if duration.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_resolves_to_what_its_name_says() {
        let hour = Some(Duration::from_secs(3600));
        assert_eq!(Lifetime::Default.resolve(hour), hour);
        assert_eq!(Lifetime::Never.resolve(hour), None);
        let five = Duration::from_secs(5);
        assert_eq!(Lifetime::from(five).resolve(hour), Some(five));
        assert!(Lifetime::After(Duration::ZERO).is_zero());
        assert!(!Lifetime::Never.is_zero() && !Lifetime::Default.is_zero());
    }
}

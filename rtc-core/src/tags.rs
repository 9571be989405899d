//! One tag or many: what every method that takes tags accepts.

use std::borrow::Cow;
use std::collections::{btree_set, hash_set, vec_deque, BTreeSet, HashSet, VecDeque};
use std::iter::{
    Chain, Cloned, Copied, Empty, Filter, FilterMap, Fuse, Inspect, Map, Once, Peekable, Rev, Skip,
    SkipWhile, StepBy, Take, TakeWhile,
};

/// Tags as a method takes them: one tag (`"user:42"`, a `String`), a collection of tags (an
/// array, a slice, a `Vec`, a set, an `Option`), or an iterator over tags built from the
/// standard library's adapters (`ids.iter().map(|id| format!("user:{id}"))`, `.rev()`,
/// `.chain(..)`, `"a,b".split(',')`, a `Box<dyn Iterator>` ...). Arrays are taken by value and
/// cost no allocation.
///
/// An iterator type of your own: collect it into a `Vec`, or box it.
///
/// ```
/// use rtc::{Lifetime, TaggedCache};
///
/// let cache = TaggedCache::builder().in_memory().build().unwrap();
/// cache.set("profile:42", &"Ada", "user:42", Lifetime::Default);
/// cache.set("cart:42", &3, ["user:42", "carts"], Lifetime::Default);
/// cache.invalidate("user:42");
/// assert!(cache.get::<String>("profile:42", "user:42").is_err());
///
/// let ids = [7, 8];
/// cache.invalidate(ids.iter().map(|id| format!("user:{id}")));
/// cache.invalidate("user:7,user:8".split(','));
/// ```
///
/// Why not any `IntoIterator`: a type that is one tag (`&str`) and a blanket implementation
/// for every iterator cannot both implement one trait in Rust today, so the iterator types are
/// listed.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is neither one tag nor a collection of tags",
    label = "tags are strings: one, or an array, slice, `Vec`, set or iterator of them",
    note = "build a tag from other values with `format!`, e.g. `format!(\"user:{{id}}\")`"
)]
pub trait IntoTags {
    /// One tag.
    type Tag: AsRef<str>;
    /// The tags, in the order given (order and repeats do not matter to rtc).
    type Tags: Iterator<Item = Self::Tag>;

    /// The tags, one by one.
    fn into_tags(self) -> Self::Tags;
}

impl<'a> IntoTags for &'a str {
    type Tag = &'a str;
    type Tags = Once<&'a str>;

    fn into_tags(self) -> Self::Tags {
        std::iter::once(self)
    }
}

impl<'a> IntoTags for &'a String {
    type Tag = &'a str;
    type Tags = Once<&'a str>;

    fn into_tags(self) -> Self::Tags {
        std::iter::once(self.as_str())
    }
}

impl IntoTags for String {
    type Tag = String;
    type Tags = Once<String>;

    fn into_tags(self) -> Self::Tags {
        std::iter::once(self)
    }
}

impl<'a> IntoTags for Cow<'a, str> {
    type Tag = Cow<'a, str>;
    type Tags = Once<Cow<'a, str>>;

    fn into_tags(self) -> Self::Tags {
        std::iter::once(self)
    }
}

/// Collections and iterators: `impl<generics> IntoTags for Type`, the tags being what it yields.
macro_rules! many_tags {
    ($([$($generics:tt)*] $type:ty),* $(,)?) => {$(
        impl<$($generics)*> IntoTags for $type
        where
            $type: IntoIterator,
            <$type as IntoIterator>::Item: AsRef<str>,
        {
            type Tag = <$type as IntoIterator>::Item;
            type Tags = <$type as IntoIterator>::IntoIter;

            fn into_tags(self) -> Self::Tags {
                self.into_iter()
            }
        }
    )*};
}

many_tags! {
    [S, const N: usize] [S; N],
    ['a, S, const N: usize] &'a [S; N],
    ['a, S] &'a [S],
    [S] Vec<S>,
    ['a, S] &'a Vec<S>,
    [S] VecDeque<S>,
    ['a, S] &'a VecDeque<S>,
    [S] BTreeSet<S>,
    ['a, S] &'a BTreeSet<S>,
    [S, H] HashSet<S, H>,
    ['a, S, H] &'a HashSet<S, H>,
    [S] Option<S>,
    ['a, S] Box<dyn Iterator<Item = S> + 'a>,
    ['a, S] Box<dyn Iterator<Item = S> + Send + 'a>,
    ['a, S] std::slice::Iter<'a, S>,
    [S] std::vec::IntoIter<S>,
    [S, const N: usize] std::array::IntoIter<S, N>,
    ['a, S] vec_deque::Iter<'a, S>,
    ['a, S] btree_set::Iter<'a, S>,
    [S] btree_set::IntoIter<S>,
    ['a, S] hash_set::Iter<'a, S>,
    [S] hash_set::IntoIter<S>,
    [S] Once<S>,
    [S] Empty<S>,
    ['a] std::str::Split<'a, char>,
    ['a, 'b] std::str::Split<'a, &'b str>,
    ['a] std::str::SplitWhitespace<'a>,
    ['a] std::str::Lines<'a>,
    [I, F] Map<I, F>,
    [I, P] Filter<I, P>,
    [I, F] FilterMap<I, F>,
    [I] Rev<I>,
    [A, B] Chain<A, B>,
    [I] Cloned<I>,
    [I] Copied<I>,
    [I] Take<I>,
    [I] Skip<I>,
    [I, P] TakeWhile<I, P>,
    [I, P] SkipWhile<I, P>,
    [I] StepBy<I>,
    [I] Fuse<I>,
    [I, F] Inspect<I, F>,
    [I: Iterator] Peekable<I>,
}

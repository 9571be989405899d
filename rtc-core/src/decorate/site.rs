//! Where a decorated function lives ([`Site`]) and what its call is named by: its key
//! (`key = ...`) and its tags (`tags = ...`).

use std::borrow::Cow;

use smallvec::SmallVec;

use super::ValueCodec;
use crate::cache::TaggedCache;
use crate::metrics;
use crate::near::{KeyedTags, Named, NearCache, NearValue};
use crate::tags::IntoTags;

/// What the expansion of a `#[cached]` function outside an `impl` block's `#[cached]` puts
/// beside it: nothing of use where the function stands alone (a module, a block), and an error
/// where it is an associated function of an `impl` block that lacks `#[cached]`, whose note
/// names this macro (the attribute cannot see that it is in an `impl` block; an unnamed
/// `const` is an item of modules and blocks, not of `impl` blocks).
#[doc(hidden)]
#[macro_export]
macro_rules! put_cached_on_the_impl_block_too {
    () => {
        const _: () = ();
    };
}
pub use crate::put_cached_on_the_impl_block_too;

/// Where a decorated function lives.
#[derive(Debug, Clone, Copy)]
pub struct Site {
    /// `file!()`.
    pub file: &'static str,
    /// `module_path!()`.
    pub module_path: &'static str,
    /// The `impl`'s self type as written (`Repo<T>`) for functions of an `impl` block, `""`
    /// otherwise.
    pub impl_type: &'static str,
    /// The function's name.
    pub function_name: &'static str,
    /// True when the function has a `self` receiver.
    pub is_method: bool,
    /// What the function's keys and implicit tag are made of: its `name = ...`, or its module
    /// path, `impl` and name as written (`app::repo::<PgRepo as UserRepo>::find`).
    pub identity: &'static str,
    /// The site's mark when its tags are made from its key arguments alone, which the macro
    /// gives only with a generated key: its near entries are then looked up before its tags are
    /// built ([`Site::near_answer`]).
    pub keyed_tags: Option<&'static KeyedTags>,
}

impl Site {
    /// Fills `answer` with the value the near cache holds for a call of this site with `args` (left
    /// as it is when there is none), looked up before the call's tags are built: only for a site
    /// whose tags follow from its key ([`Site::keyed_tags`]), with a generated key, on a cache
    /// whose calls nobody observes (the hook and the metrics see a call with its tags, through
    /// [`Call`]). Counted as a hit.
    pub fn near_answer<V>(
        &self,
        cache: Option<&TaggedCache>,
        args: Option<&[u8]>,
        codec: &ValueCodec<V>,
        answer: &mut Option<V>,
    ) {
        let (Some(site), Some(args)) = (self.keyed_tags, args) else {
            return;
        };
        let Some(cache) = cache.or(crate::global::global()) else {
            return;
        };
        if !reported(cache) {
            let named = Named::<String>::by_key(self.identity, args, site);
            near_value(cache, &named, codec, answer);
        }
    }

    /// The parts of the key generated for a call with these arguments (their JSON):
    /// `<identity>(<args>)`.
    pub(super) fn generated_key_parts<'s>(&'s self, args: &'s str) -> [&'s str; 4] {
        [self.identity, "(", args, ")"]
    }
}

/// A `key = ...` value.
pub fn custom_key(key: impl AsRef<str>) -> String {
    key.as_ref().to_owned()
}

/// A call's tags: inline up to two (no allocation for the list itself in the usual case).
pub type Tags = SmallVec<[String; 2]>;

/// A `tags = ...` value: one tag or many (see [`IntoTags`]).
pub fn tags(tags: impl IntoTags) -> Tags {
    tags.into_tags()
        .map(|tag| tag.as_ref().to_owned())
        .collect()
}

/// One element of a `tags = [...]` array: any kind of string, so that `"users"` and
/// `format!("user:{id}")` can sit side by side.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a tag: a tag is a string",
    label = "expected a string: a literal, a `&str`, a `String` or a `format!(..)`",
    note = "make a tag of a number or another value with `format!`, e.g. `format!(\"user:{{id}}\")`"
)]
pub trait Tag {
    /// The tag's text.
    fn into_tag(self) -> String;
}

impl<T: AsRef<str> + ?Sized> Tag for &T {
    fn into_tag(self) -> String {
        self.as_ref().to_owned()
    }
}

impl Tag for String {
    fn into_tag(self) -> String {
        self
    }
}

impl Tag for Cow<'_, str> {
    fn into_tag(self) -> String {
        self.into_owned()
    }
}

impl Tag for Box<str> {
    fn into_tag(self) -> String {
        self.into_string()
    }
}

/// One element of a `tags = [...]` array as a tag (a `String` is moved, not copied).
pub fn tag(tag: impl Tag) -> String {
    tag.into_tag()
}

/// Whether anyone looks at a call's report: the hook, the metrics or debug logging. When
/// none does, a near hit builds none (and the clock is read once per call, not twice).
pub(super) fn reported(cache: &TaggedCache) -> bool {
    cache.hook().is_some() || metrics::ENABLED || tracing::enabled!(tracing::Level::DEBUG)
}

/// Fills `answer` with the decoded value `named`'s fresh near entry holds, if any, counted as
/// a near hit.
pub(super) fn near_value<V, S: AsRef<str>>(
    cache: &TaggedCache,
    named: &Named<'_, S>,
    codec: &ValueCodec<V>,
    answer: &mut Option<V>,
) {
    let Some(near) = cache.near() else {
        return;
    };
    near_decoded(near, named, codec, answer);
    if answer.is_some() {
        cache.count_near_hit();
    }
}

/// Fills `answer` with the decoded value `named`'s fresh entry in `near` holds, if any (and if
/// `codec` keeps values decoded).
pub(super) fn near_decoded<V, S: AsRef<str>>(
    near: &NearCache,
    named: &Named<'_, S>,
    codec: &ValueCodec<V>,
    answer: &mut Option<V>,
) {
    let Some(sharing) = codec.sharing() else {
        return;
    };
    near.answer_into(named, answer, |entry, answer| {
        if let NearValue::Decoded(kept) = entry.value() {
            (sharing.take)(kept.as_ref(), answer);
        }
    });
}

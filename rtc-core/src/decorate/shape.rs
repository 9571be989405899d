//! Which part of a decorated function's return value is cached, decided by its type rather than
//! by how the return type is spelled: `Result<T, E>` (under any name, a type alias included)
//! caches only `Ok`, `Option<T>` only `Some`, any other type the whole value.
//!
//! Rust has no specialization on stable, so the macro asks with autoref: it writes
//! `(&ShapeProbe::<R>::new()).shape()` with the function's return type `R`. Method lookup tries
//! the probe itself before a reference to it: [`ShapeOfResult`] and [`ShapeOfOption`] are
//! implemented for the probe of a `Result` and of an `Option`, [`ShapeAsIs`] for a reference to
//! any probe, so the first that applies wins. The type is known where the macro's code is
//! checked, whatever the alias; a return type that is a generic parameter (`-> R`) is not known
//! to be a `Result` there, and is cached as it is.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::outcome::{AsIs, NearProbe, Outcome, ValueCodec};
use crate::codec::Codec;

/// How a return value of type [`Shape::Returned`] is cached: as which [`Outcome`], and back.
pub trait Shape: Copy {
    /// The function's return type.
    type Returned;
    /// What the runtime handles: the return type itself for `Result` and `Option`, else [`AsIs`].
    type Outcome: Outcome<Value = Self::Value>;
    /// The part that is cached: `T` of `Result<T, E>` and `Option<T>`, else the whole type.
    type Value;
    /// The return value as the runtime handles it.
    fn outcome(self, returned: Self::Returned) -> Self::Outcome;
    /// The return value back from the runtime.
    fn returned(self, outcome: Self::Outcome) -> Self::Returned;
    /// The return value rebuilt from a cached value.
    fn cached(self, value: Self::Value) -> Self::Returned {
        self.returned(Self::Outcome::from_cached(value))
    }
}

/// Asks, at compile time, which [`Shape`] a return type `R` has (see the module's docs).
pub struct ShapeProbe<R>(PhantomData<fn() -> R>);

impl<R> ShapeProbe<R> {
    /// The probe for `R`.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

/// The answer of [`ShapeProbe`] for a `Result`.
pub trait ShapeOfResult<T, E> {
    /// Only `Ok` is cached.
    fn shape(&self) -> ResultShape<T, E>;
}

impl<T, E> ShapeOfResult<T, E> for ShapeProbe<Result<T, E>> {
    fn shape(&self) -> ResultShape<T, E> {
        ResultShape(PhantomData)
    }
}

/// The answer of [`ShapeProbe`] for an `Option`.
pub trait ShapeOfOption<T> {
    /// Only `Some` is cached.
    fn shape(&self) -> OptionShape<T>;
}

impl<T> ShapeOfOption<T> for ShapeProbe<Option<T>> {
    fn shape(&self) -> OptionShape<T> {
        OptionShape(PhantomData)
    }
}

/// The answer of [`ShapeProbe`] for every other type.
pub trait ShapeAsIs<R> {
    /// The whole value is cached.
    fn shape(&self) -> AsIsShape<R>;
}

impl<R> ShapeAsIs<R> for &ShapeProbe<R> {
    fn shape(&self) -> AsIsShape<R> {
        AsIsShape::new()
    }
}

/// `Result<T, E>`: only `Ok` is cached.
pub struct ResultShape<T, E>(PhantomData<fn() -> (T, E)>);

/// `Option<T>`: only `Some` is cached.
pub struct OptionShape<T>(PhantomData<fn() -> T>);

/// Any type, cached whole: what the probe answers for types other than `Result` and `Option`,
/// and what the macro uses for a `Result` with `cache_err` or an `Option` with `cache_none`.
pub struct AsIsShape<R>(PhantomData<fn() -> R>);

impl<R> AsIsShape<R> {
    /// The shape that caches an `R` whole.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

// Markers: copied whatever their parameters are.
macro_rules! marker_copy {
    ($([$($generics:ident),*] $type:ty),*) => {$(
        impl<$($generics),*> Clone for $type {
            fn clone(&self) -> Self {
                *self
            }
        }
        impl<$($generics),*> Copy for $type {}
    )*};
}

marker_copy!([T, E] ResultShape<T, E>, [T] OptionShape<T>, [R] AsIsShape<R>);

impl<T, E> Shape for ResultShape<T, E> {
    type Returned = Result<T, E>;
    type Outcome = Result<T, E>;
    type Value = T;
    fn outcome(self, returned: Result<T, E>) -> Result<T, E> {
        returned
    }
    fn returned(self, outcome: Result<T, E>) -> Result<T, E> {
        outcome
    }
}

impl<T> Shape for OptionShape<T> {
    type Returned = Option<T>;
    type Outcome = Option<T>;
    type Value = T;
    fn outcome(self, returned: Option<T>) -> Option<T> {
        returned
    }
    fn returned(self, outcome: Option<T>) -> Option<T> {
        outcome
    }
}

impl<R> Shape for AsIsShape<R> {
    type Returned = R;
    type Outcome = AsIs<R>;
    type Value = R;
    fn outcome(self, returned: R) -> AsIs<R> {
        AsIs(returned)
    }
    fn returned(self, outcome: AsIs<R>) -> R {
        outcome.0
    }
}

/// A shape whose failures (`Err`, `None`) `stale_if_error` can answer with a stale value.
#[diagnostic::on_unimplemented(
    message = "`stale_if_error` needs a function that can fail: one returning a `Result` or an `Option`",
    label = "this function's values are cached whole, so none of them is a failure",
    note = "`cache_err` and `cache_none` cache failures as values: `stale_if_error` has nothing to replace then"
)]
pub trait Fails: Shape {}

impl<T, E> Fails for ResultShape<T, E> {}

impl<T> Fails for OptionShape<T> {}

/// Checks, at compile time, that `stale_if_error` applies to `shape`.
pub fn fails<S: Fails>(shape: S) -> S {
    shape
}

/// The codec of a function whose values are stored with serde: `codec`, else the cache's.
pub fn serde_codec<S: Shape>(_shape: S, codec: Option<Codec>) -> ValueCodec<S::Value>
where
    S::Value: Serialize + DeserializeOwned,
{
    ValueCodec::serde(codec)
}

/// The codec of a function with `serializer = ...` and `deserializer = ...`.
pub fn custom_codec<S: Shape>(
    _shape: S,
    encode: fn(&S::Value) -> Option<Vec<u8>>,
    decode: fn(&[u8]) -> Option<S::Value>,
) -> ValueCodec<S::Value> {
    ValueCodec::custom(encode, decode)
}

/// The [`NearProbe`] of the cached part of `shape`, asked after the shape is known.
pub fn near_probe<S: Shape>(_shape: S) -> NearProbe<S::Value> {
    NearProbe::new()
}

/// `cache_err`: the function must return a `Result`.
#[diagnostic::on_unimplemented(
    message = "`cache_err` applies to a function that returns a `Result`, and this one returns `{Self}`",
    label = "not a `Result` (nor an alias of one)",
    note = "remove `cache_err`: a value that is not a `Result` is cached whole already"
)]
pub trait IsResult {}

impl<T, E> IsResult for Result<T, E> {}

/// `cache_none`: the function must return an `Option`.
#[diagnostic::on_unimplemented(
    message = "`cache_none` applies to a function that returns an `Option`, and this one returns `{Self}`",
    label = "not an `Option` (nor an alias of one)",
    note = "remove `cache_none`: a value that is not an `Option` is cached whole already"
)]
pub trait IsOption {}

impl<T> IsOption for Option<T> {}

/// Checks, at compile time, that `cache_err` applies to `shape`'s return type.
pub fn caches_errors<R: IsResult>(shape: AsIsShape<R>) -> AsIsShape<R> {
    shape
}

/// Checks, at compile time, that `cache_none` applies to `shape`'s return type.
pub fn caches_none<R: IsOption>(shape: AsIsShape<R>) -> AsIsShape<R> {
    shape
}

#[cfg(test)]
mod tests {
    use super::*;

    type Fallible<T> = Result<T, String>;
    type Maybe<T> = Option<T>;

    #[test]
    #[allow(
        clippy::needless_borrow,
        reason = "the borrow is the probe: without it every type would take the first step"
    )]
    fn aliases_of_result_and_option_take_their_shapes() {
        let result = (&ShapeProbe::<Fallible<u8>>::new()).shape();
        assert_eq!(result.outcome(Err("no".into())).cacheable(), None);
        assert_eq!(result.outcome(Ok(1)).cacheable(), Some(&1));
        let option = (&ShapeProbe::<Maybe<u8>>::new()).shape();
        assert_eq!(option.outcome(None).cacheable(), None);
        assert_eq!(option.cached(2), Some(2));
        let whole = (&ShapeProbe::<Vec<u8>>::new()).shape();
        assert_eq!(whole.outcome(vec![]).cacheable(), Some(&vec![]));
    }
}

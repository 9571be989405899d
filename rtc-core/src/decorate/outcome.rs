//! How a decorated function's result is cached: which part, and as which bytes.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::warnings::WarnLimiter;

static ENCODE_WARNINGS: WarnLimiter = WarnLimiter::new(Duration::from_secs(10));

/// How a cached value becomes bytes and back. `None` from `encode` means "do not cache this".
pub struct Codec<T> {
    /// Value to bytes.
    pub encode: fn(&T) -> Option<Vec<u8>>,
    /// Bytes to value; `None` makes the read a miss.
    pub decode: fn(&[u8]) -> Option<T>,
}

impl<T> Codec<T> {
    /// JSON through serde_json, the default.
    pub fn json() -> Self
    where
        T: Serialize + DeserializeOwned,
    {
        Self {
            encode: |value| match serde_json::to_vec(value) {
                Ok(bytes) => Some(bytes),
                Err(error) => {
                    if let Some(held_back) = ENCODE_WARNINGS.permit() {
                        tracing::warn!(
                            held_back,
                            "rtc: the result could not be serialized, not caching it: {error}"
                        );
                    }
                    None
                }
            },
            decode: |bytes| serde_json::from_slice(bytes).ok(),
        }
    }

    /// A user's `serializer = ...` and `unserializer = ...`.
    pub fn custom(encode: fn(&T) -> Option<Vec<u8>>, decode: fn(&[u8]) -> Option<T>) -> Self {
        Self { encode, decode }
    }
}

/// Which part of a return value is cached.
pub trait Outcome: Sized {
    /// The cached part.
    type Value;
    /// The part to cache, if this outcome is to be cached at all.
    fn cacheable(&self) -> Option<&Self::Value>;
    /// Rebuilds the outcome from a cached value.
    fn from_cached(value: Self::Value) -> Self;
}

/// `Ok` values are cached, errors never.
impl<T, E> Outcome for Result<T, E> {
    type Value = T;
    fn cacheable(&self) -> Option<&T> {
        self.as_ref().ok()
    }
    fn from_cached(value: T) -> Self {
        Ok(value)
    }
}

/// `Some` values are cached, `None` never.
impl<T> Outcome for Option<T> {
    type Value = T;
    fn cacheable(&self) -> Option<&T> {
        self.as_ref()
    }
    fn from_cached(value: T) -> Self {
        Some(value)
    }
}

/// Any other return type, cached as it is.
#[derive(Debug)]
pub struct AsIs<T>(pub T);

impl<T> Outcome for AsIs<T> {
    type Value = T;
    fn cacheable(&self) -> Option<&T> {
        Some(&self.0)
    }
    fn from_cached(value: T) -> Self {
        AsIs(value)
    }
}

/// `unless = ...`: an outcome that is not stored when the predicate said so.
#[derive(Debug)]
pub struct Unless<R> {
    /// The outcome, cached unless `store` is false.
    pub outcome: R,
    /// False when the `unless` predicate matched the value.
    pub store: bool,
}

impl<R: Outcome> Outcome for Unless<R> {
    type Value = R::Value;
    fn cacheable(&self) -> Option<&R::Value> {
        self.store.then(|| self.outcome.cacheable()).flatten()
    }
    fn from_cached(value: R::Value) -> Self {
        Unless {
            outcome: R::from_cached(value),
            store: true,
        }
    }
}

/// Applies an `unless = ...` predicate to a function's return value; a function so that a
/// closure's argument gets its type.
pub fn skips<R>(value: &R, predicate: impl FnOnce(&R) -> bool) -> bool {
    predicate(value)
}

/// The bytes to store for `outcome`, if it is to be cached.
pub(crate) fn encoded<R: Outcome>(codec: &Codec<R::Value>, outcome: &R) -> Option<Vec<u8>> {
    outcome.cacheable().and_then(codec.encode)
}

//! How a decorated function's result is cached: which part, and as which bytes.

use std::any::Any;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cache::TaggedCache;
use crate::codec::{self, Codec, Encoding, Serialization};

/// How a decorated function's cached value becomes a value section and back: a serde format
/// (the function's `codec = ...`, else its cache's), or the function's own
/// `serializer = ...`/`unserializer = ...`; compressed above the function's `compress_above`,
/// else its cache's.
pub struct ValueCodec<T> {
    format: Format<T>,
    compress_above: Option<usize>,
    /// How a value is kept decoded in the near cache (`None`: it is not).
    sharing: Option<Sharing<T>>,
}

/// How a decorated function's value is kept decoded in a near cache and taken out again.
pub struct Sharing<T> {
    pub(crate) keep: fn(&T) -> Box<dyn Any + Send + Sync>,
    /// Fills the answer with a copy of the kept value, if it is a `T`.
    pub(crate) take: fn(&(dyn Any + Send + Sync), &mut Option<T>),
}

// Function pointers only, whatever `T` is.
impl<T> Clone for Sharing<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Sharing<T> {}

/// Asks, at compile time, whether a value type can be kept decoded in a near cache: the
/// macro calls `(&NearProbe::<T>::new()).sharing()`, which resolves to [`NearShared`] for
/// `Clone + Send + Sync + 'static` types and to [`NearUnshared`] for every other.
pub struct NearProbe<T>(PhantomData<T>);

impl<T> NearProbe<T> {
    /// The probe for `T`.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

/// The answer of [`NearProbe`] for a type that can be kept decoded.
pub trait NearShared<T> {
    /// How `T` is kept decoded.
    fn sharing(&self) -> Option<Sharing<T>>;
}

impl<T: Clone + Send + Sync + 'static> NearShared<T> for NearProbe<T> {
    fn sharing(&self) -> Option<Sharing<T>> {
        Some(Sharing {
            keep: |value| Box::new(value.clone()),
            take: |kept, answer| {
                if let Some(kept) = kept.downcast_ref::<T>() {
                    // `answer` is empty: no old value to drop first, as an assignment would
                    // (1–5 ns a hit, measured against `*answer = Some(..)`).
                    answer.get_or_insert_with(|| kept.clone());
                }
            },
        })
    }
}

/// The answer of [`NearProbe`] for any other type.
pub trait NearUnshared<T> {
    /// `None`: `T` is not kept near.
    fn sharing(&self) -> Option<Sharing<T>>;
}

impl<T> NearUnshared<T> for &NearProbe<T> {
    fn sharing(&self) -> Option<Sharing<T>> {
        None
    }
}

// Copied into a background refresh; fn pointers and options only, whatever `T` is.
impl<T> Clone for ValueCodec<T> {
    fn clone(&self) -> Self {
        Self {
            format: match &self.format {
                Format::Serde {
                    codec,
                    encode,
                    decode,
                } => Format::Serde {
                    codec: *codec,
                    encode: *encode,
                    decode: *decode,
                },
                Format::Custom { encode, decode } => Format::Custom {
                    encode: *encode,
                    decode: *decode,
                },
            },
            compress_above: self.compress_above,
            sharing: self.sharing,
        }
    }
}

enum Format<T> {
    Serde {
        /// `None`: the cache's.
        codec: Option<Codec>,
        encode: fn(Encoding, &T) -> Result<Vec<u8>, String>,
        decode: fn(Encoding, &[u8]) -> Result<T, codec::Trouble>,
    },
    Custom {
        encode: fn(&T) -> Option<Vec<u8>>,
        decode: fn(&[u8]) -> Option<T>,
    },
}

impl<T> ValueCodec<T> {
    /// A serde format: `codec` (`None`: the cache's codec).
    pub fn serde(codec: Option<Codec>) -> Self
    where
        T: Serialize + DeserializeOwned,
    {
        Self {
            format: Format::Serde {
                codec,
                encode: |encoding, value| encoding.encode(value),
                decode: |encoding, bytes| encoding.decode(bytes),
            },
            compress_above: None,
            sharing: None,
        }
    }

    /// A user's `serializer = ...` and `unserializer = ...`.
    pub fn custom(encode: fn(&T) -> Option<Vec<u8>>, decode: fn(&[u8]) -> Option<T>) -> Self {
        Self {
            format: Format::Custom { encode, decode },
            compress_above: None,
            sharing: None,
        }
    }

    /// `compress_above = ...`: compresses values longer than `bytes`, whatever the cache does.
    #[cfg(feature = "lz4")]
    pub fn compress_above(mut self, bytes: usize) -> Self {
        self.compress_above = Some(bytes);
        self
    }

    /// Keeps values decoded in the near cache with `sharing` (from [`NearProbe`]).
    pub fn near(mut self, sharing: Option<Sharing<T>>) -> Self {
        self.sharing = sharing;
        self
    }

    pub(crate) fn sharing(&self) -> Option<&Sharing<T>> {
        self.sharing.as_ref()
    }

    /// The value section for `value` (`None`: not to be cached; a value that does not
    /// serialize is reported).
    pub(crate) fn encode(&self, cache: &TaggedCache, value: &T) -> Option<Vec<u8>> {
        let compress_above = self.compress_above.or(cache.encoding().compress_above);
        match &self.format {
            Format::Serde { codec, encode, .. } => {
                let encoding = Encoding {
                    codec: codec.unwrap_or(cache.encoding().codec),
                    compress_above,
                };
                match encode(encoding, value) {
                    Ok(bytes) => Some(bytes),
                    Err(error) => {
                        cache.codec_trouble(format_args!(
                            "the result could not be serialized, not caching it: {error}"
                        ));
                        None
                    }
                }
            }
            Format::Custom { encode, .. } => {
                encode(value).map(|body| codec::seal_custom(&body, compress_above))
            }
        }
    }

    /// The value of a value section (`None`: a miss; a section of another codec, or one that
    /// does not decode, is reported).
    pub(crate) fn decode(&self, cache: &TaggedCache, section: &[u8]) -> Option<T> {
        match self.open(cache.encoding(), section) {
            Ok(value) => value,
            Err(trouble) => {
                cache.codec_trouble(format_args!("{trouble}; treating it as a miss"));
                None
            }
        }
    }

    /// `section` decoded, `default` being the encoding of the cache it was read from; a user's
    /// `unserializer` may refuse it (`Ok(None)`, not reported); `Err` says why it does not read.
    pub(crate) fn open(
        &self,
        default: Encoding,
        section: &[u8],
    ) -> Result<Option<T>, codec::Trouble> {
        match &self.format {
            Format::Serde { codec, decode, .. } => {
                let encoding = Encoding {
                    codec: codec.unwrap_or(default.codec),
                    compress_above: None,
                };
                decode(encoding, section).map(Some)
            }
            Format::Custom { decode, .. } => {
                codec::open(section, Serialization::Custom).map(|body| decode(&body))
            }
        }
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
    /// True for a failure (`Err`, `None`): `stale_if_error` may return a stale value instead.
    fn failed(&self) -> bool {
        false
    }
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
    fn failed(&self) -> bool {
        self.is_err()
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
    fn failed(&self) -> bool {
        self.is_none()
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
    fn failed(&self) -> bool {
        self.outcome.failed()
    }
}

/// Applies an `unless = ...` predicate to a function's return value; a function so that a
/// closure's argument gets its type.
pub fn skips<R>(value: &R, predicate: impl FnOnce(&R) -> bool) -> bool {
    predicate(value)
}

/// The bytes to store for `outcome`, if it is to be cached.
pub(crate) fn encoded<R: Outcome>(
    codec: &ValueCodec<R::Value>,
    cache: &TaggedCache,
    outcome: &R,
) -> Option<Vec<u8>> {
    outcome
        .cacheable()
        .and_then(|value| codec.encode(cache, value))
}

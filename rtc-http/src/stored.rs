//! What the layer keeps in the cache: a response ([`StoredResponse`]) and, per key, what it
//! learned about that key's responses ([`Manifest`]).

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What the layer learned about a key from the last response it got for it, read before the
/// next request goes upstream: the headers its `Vary` named, the tags its handler gave, the
/// lifetime it gave itself, or that it could not be cached at all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// Lower-case header names, sorted.
    pub(crate) vary: Vec<String>,
    /// The handler's tags, sorted.
    pub(crate) tags: Vec<String>,
    /// The lifetime the response gave itself (`max-age`, `s-maxage`), when the layer follows it.
    pub(crate) lifetime_ms: Option<u64>,
    /// True: the key's responses are not cacheable; requests go upstream without a lookup
    /// until this manifest expires.
    pub(crate) pass: bool,
}

/// A response as stored: status, headers (without the ones that belong to one connection or
/// one answer: hop-by-hop headers, `Age`, `Content-Length`, the layer's own), body, and when it
/// was stored for how long.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredResponse {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, Payload)>,
    pub(crate) body: Payload,
    /// The entity tag clients revalidate with: the upstream's, or one made from the body.
    pub(crate) etag: String,
    /// When it was stored, in milliseconds since the Unix epoch, on the storing instance's clock.
    pub(crate) stored_at_ms: u64,
    /// How long it is fresh, in milliseconds.
    pub(crate) fresh_ms: u64,
    /// `headers` as a header map, built on the first use in this process.
    #[serde(skip)]
    pub(crate) header_map: OnceLock<HeaderMap>,
}

impl StoredResponse {
    /// Its status (a stored status that is not one is read as 500: never written by the layer).
    pub(crate) fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Its headers; pairs that are not valid headers (never written by the layer) are left out.
    pub(crate) fn header_map(&self) -> &HeaderMap {
        self.header_map.get_or_init(|| {
            let mut map = HeaderMap::with_capacity(self.headers.len());
            for (name, value) in &self.headers {
                let name = HeaderName::from_bytes(name.as_bytes());
                let value = HeaderValue::from_maybe_shared(value.0.clone());
                if let (Ok(name), Ok(value)) = (name, value) {
                    map.append(name, value);
                }
            }
            map
        })
    }

    /// How old it is at `now` (zero when the storing instance's clock is ahead).
    pub(crate) fn age(&self, now: SystemTime) -> Duration {
        Duration::from_millis(unix_ms(now).saturating_sub(self.stored_at_ms))
    }

    /// True when it is past its lifetime at `now`, by this instance's clock.
    pub(crate) fn is_stale(&self, now: SystemTime) -> bool {
        self.age(now) > Duration::from_millis(self.fresh_ms)
    }
}

/// Milliseconds since the Unix epoch at `time` (zero before it).
pub(crate) fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Bytes stored as text when they are UTF-8 (compact in JSON), as bytes otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Payload(pub(crate) Bytes);

#[derive(Serialize)]
enum PayloadRef<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
}

#[derive(Deserialize)]
enum PayloadOwned {
    Text(String),
    Bytes(Vec<u8>),
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => PayloadRef::Text(text),
            Err(_) => PayloadRef::Bytes(&self.0),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Payload(match PayloadOwned::deserialize(deserializer)? {
            PayloadOwned::Text(text) => Bytes::from(text),
            PayloadOwned::Bytes(bytes) => Bytes::from(bytes),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_binary_payloads_round_trip_through_the_cache() {
        let cache = rtc::TaggedCache::builder().in_memory().build().unwrap();
        for bytes in [
            &b"<p>caf\xc3\xa9</p>"[..],
            &[0, 159, 146, 150, 255][..],
            b"",
        ] {
            let payload = Payload(Bytes::copy_from_slice(bytes));
            assert!(cache.set("p", &payload, rtc::NO_TAGS, rtc::Lifetime::Never));
            assert_eq!(cache.get::<Payload>("p", rtc::NO_TAGS), Ok(payload));
        }
    }

    #[test]
    fn the_header_map_keeps_repeated_headers_and_the_age_counts_from_the_store() {
        let stored = StoredResponse {
            status: 200,
            headers: vec![
                ("vary".into(), Payload(Bytes::from_static(b"accept"))),
                ("x-a".into(), Payload(Bytes::from_static(b"1"))),
                ("x-a".into(), Payload(Bytes::from_static(b"2"))),
            ],
            body: Payload::default(),
            etag: "\"e\"".into(),
            stored_at_ms: 10_000,
            fresh_ms: 1_000,
            header_map: OnceLock::new(),
        };
        assert_eq!(stored.header_map().get_all("x-a").iter().count(), 2);
        let at = |ms| UNIX_EPOCH + Duration::from_millis(ms);
        assert_eq!(stored.age(at(10_500)), Duration::from_millis(500));
        assert!(!stored.is_stale(at(11_000)));
        assert!(stored.is_stale(at(11_001)));
        assert_eq!(stored.age(at(5_000)), Duration::ZERO);
    }
}

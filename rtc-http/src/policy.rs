//! What a response's headers say about caching it: `Cache-Control`, `Set-Cookie`, `Vary`, and
//! its status.

use std::time::Duration;

use http::header::{CACHE_CONTROL, SET_COOKIE, VARY};
use http::{HeaderMap, StatusCode};

/// The `Cache-Control` directives of a response that a shared cache acts on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CacheControl {
    pub(crate) no_store: bool,
    /// `private`, with or without field names (a field-named `private` is taken whole).
    pub(crate) private: bool,
    /// `no-cache`: every use must be revalidated with the origin, which this layer does not do.
    pub(crate) no_cache: bool,
    pub(crate) max_age: Option<u64>,
    pub(crate) s_maxage: Option<u64>,
}

impl CacheControl {
    /// The directives of every `Cache-Control` header of `headers`, case-insensitively; a
    /// directive that does not parse is ignored, a repeated lifetime keeps its first value.
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let mut control = CacheControl::default();
        for value in headers.get_all(CACHE_CONTROL) {
            let Ok(value) = value.to_str() else { continue };
            for directive in split_list(value) {
                let (name, argument) = match directive.split_once('=') {
                    Some((name, argument)) => {
                        (name.trim(), Some(argument.trim().trim_matches('"')))
                    }
                    None => (directive, None),
                };
                let seconds = || argument.and_then(|argument| argument.parse::<u64>().ok());
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => control.no_store = true,
                    "private" => control.private = true,
                    "no-cache" => control.no_cache = true,
                    "max-age" => control.max_age = control.max_age.or_else(seconds),
                    "s-maxage" => control.s_maxage = control.s_maxage.or_else(seconds),
                    _ => {}
                }
            }
        }
        control
    }

    /// How long a shared cache may keep the response by its own word: `s-maxage`, else
    /// `max-age`; `None` when it says neither.
    pub(crate) fn lifetime(&self) -> Option<Duration> {
        self.s_maxage.or(self.max_age).map(Duration::from_secs)
    }
}

/// The comma-separated items of a header value, trimmed, empty ones dropped.
pub(crate) fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// The header names a response's `Vary` lists, lower-case, sorted, without repeats; `None` for
/// `Vary: *` (the response varies on more than headers: not cacheable).
pub(crate) fn vary(headers: &HeaderMap) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for value in headers.get_all(VARY) {
        let Ok(value) = value.to_str() else {
            return None;
        };
        for name in split_list(value) {
            if name == "*" {
                return None;
            }
            names.push(name.to_ascii_lowercase());
        }
    }
    names.sort_unstable();
    names.dedup();
    Some(names)
}

/// Why a response is passed to the client without being stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A server error, or the service failed: `stale_if_error` may answer instead.
    Failure,
    /// A status the layer does not cache (not 2xx, nor one it was told to cache): the key is
    /// passed through for a while without a lookup, as for `Uncacheable`.
    Status,
    /// The response says so itself (`no-store`, `private`, `no-cache`, a zero lifetime,
    /// `Set-Cookie`, `Vary: *`) or its body is too large or streamed: the key is passed
    /// through for a while without a lookup.
    Uncacheable,
}

/// Whether a response of this status and these headers may be stored; `Ok` with the lifetime
/// it gives itself, when it gives one and the layer follows it.
pub(crate) fn judge(
    status: StatusCode,
    headers: &HeaderMap,
    extra_statuses: &[StatusCode],
    follow_lifetime: bool,
) -> Result<Option<Duration>, Refusal> {
    if status.is_server_error() {
        return Err(Refusal::Failure);
    }
    if !status.is_success() && !extra_statuses.contains(&status) {
        return Err(Refusal::Status);
    }
    let control = CacheControl::of(headers);
    if control.no_store || control.private || control.no_cache || headers.contains_key(SET_COOKIE) {
        return Err(Refusal::Uncacheable);
    }
    if vary(headers).is_none() {
        return Err(Refusal::Uncacheable);
    }
    if !follow_lifetime {
        return Ok(None);
    }
    match control.lifetime() {
        Some(lifetime) if lifetime.is_zero() => Err(Refusal::Uncacheable),
        lifetime => Ok(lifetime),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn cache_control_directives_are_read_from_every_header_whatever_their_case() {
        let control = CacheControl::of(&headers(&[
            ("cache-control", "Public, MAX-AGE=60"),
            ("cache-control", "s-maxage=\"300\", max-age=5"),
        ]));
        assert_eq!(control.max_age, Some(60));
        assert_eq!(control.lifetime(), Some(Duration::from_secs(300)));
        assert!(!control.no_store && !control.private);
        let control = CacheControl::of(&headers(&[("cache-control", "private=\"x-user\"")]));
        assert!(control.private);
    }

    #[test]
    fn a_response_is_judged_by_its_status_directives_cookies_and_vary() {
        let ok = StatusCode::OK;
        assert_eq!(judge(ok, &headers(&[]), &[], false), Ok(None));
        for refused in [
            &[("cache-control", "no-store")][..],
            &[("cache-control", "private")],
            &[("cache-control", "no-cache")],
            &[("set-cookie", "session=1")],
            &[("vary", "accept, *")],
        ] {
            assert_eq!(
                judge(ok, &headers(refused), &[], false),
                Err(Refusal::Uncacheable),
                "{refused:?}"
            );
        }
        let statuses = [StatusCode::NOT_FOUND];
        assert_eq!(
            judge(StatusCode::BAD_GATEWAY, &headers(&[]), &statuses, false),
            Err(Refusal::Failure)
        );
        assert_eq!(
            judge(StatusCode::GONE, &headers(&[]), &statuses, false),
            Err(Refusal::Status)
        );
        assert_eq!(
            judge(StatusCode::NOT_FOUND, &headers(&[]), &statuses, false),
            Ok(None)
        );
    }

    #[test]
    fn the_lifetime_a_response_gives_is_followed_only_when_asked() {
        let cached = headers(&[("cache-control", "max-age=30")]);
        let ok = StatusCode::OK;
        assert_eq!(judge(ok, &cached, &[], false), Ok(None));
        assert_eq!(
            judge(ok, &cached, &[], true),
            Ok(Some(Duration::from_secs(30)))
        );
        let zero = headers(&[("cache-control", "max-age=0")]);
        assert_eq!(judge(ok, &zero, &[], true), Err(Refusal::Uncacheable));
        assert_eq!(judge(ok, &zero, &[], false), Ok(None));
    }

    #[test]
    fn vary_names_are_lower_cased_sorted_and_unique() {
        let names = vary(&headers(&[
            ("vary", "Accept-Language, accept"),
            ("vary", "ACCEPT"),
        ]));
        assert_eq!(
            names,
            Some(vec!["accept".to_owned(), "accept-language".to_owned()])
        );
        assert_eq!(vary(&headers(&[])), Some(vec![]));
    }
}

//! Conditional requests: the entity tag of a stored body, and `If-None-Match` against it.

use std::hash::{DefaultHasher, Hasher};

use http::header::IF_NONE_MATCH;
use http::HeaderMap;

use crate::policy::split_list;

/// A strong entity tag for `body`: a 64-bit hash of its bytes and its length, quoted. It is
/// made once, when the response is stored, and stored with it, so every instance serves the
/// same tag for the same entry.
pub(crate) fn etag_of(body: &[u8]) -> String {
    let mut hasher = DefaultHasher::new();
    hasher.write(body);
    format!("\"{:016x}-{:x}\"", hasher.finish(), body.len())
}

/// True when the request's `If-None-Match` names `etag` (or is `*`), compared weakly as RFC
/// 9110 asks for `If-None-Match`: `W/"x"` and `"x"` match.
pub(crate) fn none_match(request: &HeaderMap, etag: &str) -> bool {
    let ours = opaque(etag);
    request.get_all(IF_NONE_MATCH).iter().any(|value| {
        value.to_str().is_ok_and(|value| {
            split_list(value).any(|candidate| candidate == "*" || opaque(candidate) == ours)
        })
    })
}

/// An entity tag without its weakness marker.
fn opaque(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(if_none_match: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(IF_NONE_MATCH, if_none_match.parse().unwrap());
        headers
    }

    #[test]
    fn entity_tags_differ_with_the_body_and_are_quoted() {
        let tag = etag_of(b"one");
        assert!(tag.starts_with('"') && tag.ends_with('"'));
        assert_eq!(tag, etag_of(b"one"));
        assert_ne!(tag, etag_of(b"two"));
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists_and_a_star() {
        assert!(none_match(&request("\"a\""), "\"a\""));
        assert!(none_match(&request("W/\"a\""), "\"a\""));
        assert!(none_match(&request("\"b\", W/\"a\""), "W/\"a\""));
        assert!(none_match(&request("*"), "\"a\""));
        assert!(!none_match(&request("\"b\""), "\"a\""));
        assert!(!none_match(&HeaderMap::new(), "\"a\""));
    }
}

//! What a request is cached under: its method class, path and normalised query (or the
//! application's own key), then the values of the request headers the response's `Vary` names.

use http::request::Parts;
use http::{HeaderMap, Method};

/// Prefix of the keys of stored responses.
const RESPONSE_PREFIX: &str = "rtc-http:response:";
/// Prefix of the keys of manifests (what the layer learned about a key's responses).
const MANIFEST_PREFIX: &str = "rtc-http:manifest:";

/// The default key of a request: `GET` for `GET` and `HEAD` (a `HEAD` is answered from the
/// `GET`'s entry), the path, and the query with its pairs sorted, empty pairs dropped.
pub(crate) fn default_key(parts: &Parts) -> String {
    let class = if parts.method == Method::HEAD {
        Method::GET.as_str()
    } else {
        parts.method.as_str()
    };
    let path = parts.uri.path();
    match parts.uri.query().map(normalised_query) {
        Some(query) if !query.is_empty() => format!("{class} {path}?{query}"),
        _ => format!("{class} {path}"),
    }
}

/// `query` with its `&`-separated pairs sorted and empty pairs dropped, bytes kept as they are:
/// `?b=2&a=1` and `?a=1&b=2&` are one key.
fn normalised_query(query: &str) -> String {
    let mut pairs: Vec<&str> = query.split('&').filter(|pair| !pair.is_empty()).collect();
    pairs.sort_unstable();
    pairs.join("&")
}

/// The key of a request's manifest.
pub(crate) fn manifest_key(base: &str) -> String {
    format!("{MANIFEST_PREFIX}{base}")
}

/// The key of a request's response: its base key and the value of each header in `vary`
/// (lower-case names, sorted), an absent header and an empty one told apart.
pub(crate) fn response_key(base: &str, vary: &[String], headers: &HeaderMap) -> String {
    let mut key = format!("{RESPONSE_PREFIX}{base}");
    for name in vary {
        key.push('\n');
        key.push_str(name);
        let mut values = headers.get_all(name.as_str()).iter().peekable();
        if values.peek().is_none() {
            key.push_str(" absent");
            continue;
        }
        key.push(':');
        for (index, value) in values.enumerate() {
            if index > 0 {
                key.push(',');
            }
            key.push_str(&String::from_utf8_lossy(value.as_bytes()));
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(method: Method, uri: &str) -> Parts {
        Request::builder()
            .method(method)
            .uri(uri)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn head_and_get_share_a_key_and_the_query_order_does_not_matter() {
        let get = default_key(&parts(Method::GET, "/books?b=2&a=1"));
        assert_eq!(get, "GET /books?a=1&b=2");
        assert_eq!(default_key(&parts(Method::HEAD, "/books?a=1&&b=2&")), get);
        assert_eq!(default_key(&parts(Method::GET, "/books?")), "GET /books");
        assert_ne!(default_key(&parts(Method::GET, "/books?a=2")), get);
    }

    #[test]
    fn vary_headers_separate_keys_and_an_absent_header_is_not_an_empty_one() {
        let vary = vec!["accept-language".to_owned()];
        let mut headers = HeaderMap::new();
        let absent = response_key("GET /", &vary, &headers);
        headers.insert("accept-language", "".parse().unwrap());
        let empty = response_key("GET /", &vary, &headers);
        headers.insert("accept-language", "fr".parse().unwrap());
        let french = response_key("GET /", &vary, &headers);
        assert_ne!(absent, empty);
        assert_ne!(empty, french);
        assert_eq!(french, response_key("GET /", &vary, &headers));
        assert_eq!(
            response_key("GET /", &[], &headers),
            "rtc-http:response:GET /"
        );
    }
}

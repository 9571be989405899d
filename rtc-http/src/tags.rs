//! The tags of a response: from its route (known before the request goes upstream) and from its
//! handler (a [`Tags`] extension or a tag header, known only once it answered).

use std::collections::BTreeSet;

use http::response::Parts;
use http::{HeaderMap, HeaderName};

/// Tags a handler gives its response, as a response extension: the layer adds them to the
/// route's tags, so that invalidating any of them makes the stored response miss.
///
/// With axum, return `axum::Extension(Tags::new(["book:42"]))` beside the body, or insert it
/// into `response.extensions_mut()`. The layer removes it before the response leaves.
///
/// ```
/// use rtc_http::Tags;
///
/// let mut response = http::Response::new("a page");
/// response.extensions_mut().insert(Tags::new(["book:42", "author:Le Guin"]));
/// let tags = response.extensions().get::<Tags>().unwrap();
/// assert_eq!(tags.iter().collect::<Vec<_>>(), ["author:Le Guin", "book:42"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tags(BTreeSet<String>);

impl Tags {
    /// These tags (order and repeats do not matter).
    pub fn new<I, T>(tags: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Tags(tags.into_iter().map(Into::into).collect())
    }

    /// Adds a tag.
    pub fn insert(&mut self, tag: impl Into<String>) {
        self.0.insert(tag.into());
    }

    /// The tags, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T: Into<String>> FromIterator<T> for Tags {
    fn from_iter<I: IntoIterator<Item = T>>(tags: I) -> Self {
        Tags::new(tags)
    }
}

impl<T: Into<String>> Extend<T> for Tags {
    fn extend<I: IntoIterator<Item = T>>(&mut self, tags: I) {
        self.0.extend(tags.into_iter().map(Into::into));
    }
}

/// Takes the handler's tags out of `response`: its [`Tags`] extension and every value of the
/// tag header (tags separated by spaces or commas, as surrogate keys are). Both are removed, so
/// neither reaches the client.
pub(crate) fn take_handler_tags(head: &mut Parts, header: &HeaderName) -> BTreeSet<String> {
    let mut tags = head
        .extensions
        .remove::<Tags>()
        .map(|tags| tags.0)
        .unwrap_or_default();
    tags.extend(header_tags(&mut head.headers, header));
    tags
}

/// Removes `header` from `headers`, returning the tags its values held.
pub(crate) fn header_tags(headers: &mut HeaderMap, header: &HeaderName) -> Vec<String> {
    let http::header::Entry::Occupied(entry) = headers.entry(header) else {
        return Vec::new();
    };
    let mut tags = Vec::new();
    for value in entry.remove_entry_mult().1 {
        let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
        tags.extend(
            text.split(|c: char| c == ',' || c.is_ascii_whitespace())
                .filter(|tag| !tag.is_empty())
                .map(str::to_owned),
        );
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Response;

    #[test]
    fn handler_tags_come_from_the_extension_and_the_header_and_both_are_removed() {
        let header = HeaderName::from_static("surrogate-key");
        let mut response = Response::builder()
            .header("surrogate-key", "book:1  book:2")
            .header("surrogate-key", "author:x,book:1")
            .body(())
            .unwrap();
        response.extensions_mut().insert(Tags::new(["shelf"]));
        let (mut head, ()) = response.into_parts();
        let tags = take_handler_tags(&mut head, &header);
        assert_eq!(
            tags.into_iter().collect::<Vec<_>>(),
            ["author:x", "book:1", "book:2", "shelf"]
        );
        assert!(!head.headers.contains_key("surrogate-key"));
        assert!(head.extensions.get::<Tags>().is_none());
    }

    #[test]
    fn a_response_without_tags_has_none() {
        let header = HeaderName::from_static("surrogate-key");
        let (mut head, ()) = Response::new(()).into_parts();
        assert!(take_handler_tags(&mut head, &header).is_empty());
    }
}

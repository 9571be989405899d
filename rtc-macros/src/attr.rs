//! The arguments of `#[cached(...)]`.

use proc_macro2::{Span, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{token, Expr, Ident, Token};

use crate::errors::Errors;

mod kw {
    syn::custom_keyword!(tags);
    syn::custom_keyword!(lifetime);
    syn::custom_keyword!(key);
    syn::custom_keyword!(lock);
    syn::custom_keyword!(lock_timeout);
    syn::custom_keyword!(hook_userdata);
    syn::custom_keyword!(skip);
    syn::custom_keyword!(cache);
    syn::custom_keyword!(serializer);
    syn::custom_keyword!(unserializer);
}

const OPTIONS: &[&str] = &[
    "tags",
    "lifetime",
    "key",
    "lock",
    "lock_timeout",
    "hook_userdata",
    "skip",
    "cache",
    "serializer",
    "unserializer",
];

/// Names people reach for that are spelled differently here.
const ALIASES: &[(&str, &str)] = &[
    ("ttl", "lifetime"),
    ("expire", "lifetime"),
    ("expires", "lifetime"),
    ("expiry", "lifetime"),
    ("timeout", "lock_timeout"),
    ("deserializer", "unserializer"),
];

#[derive(Default)]
pub(crate) struct CachedArgs {
    pub(crate) tags: Option<Expr>,
    pub(crate) lifetime: Option<Expr>,
    pub(crate) key: Option<Expr>,
    pub(crate) lock: Option<Expr>,
    pub(crate) lock_timeout: Option<Expr>,
    pub(crate) hook_userdata: Option<Expr>,
    pub(crate) cache: Option<Expr>,
    /// The names in `skip(...)`, as written (`self` included, so that it can be reported).
    pub(crate) skip: Vec<Ident>,
    pub(crate) codec: Option<CustomCodec>,
    /// Mistakes that did not stop the parsing, reported with the function's own.
    pub(crate) problems: Errors,
}

/// `serializer = ..., unserializer = ...`, which only make sense together.
pub(crate) struct CustomCodec {
    pub(crate) serializer: Expr,
    pub(crate) unserializer: Expr,
}

impl Parse for CachedArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut args = CachedArgs::default();
        let mut skip = None;
        let mut serializer = None;
        let mut unserializer = None;
        let mut errors = Errors::default();

        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::tags) {
                option::<kw::tags>(input, &mut args.tags, &mut errors)?;
            } else if lookahead.peek(kw::lifetime) {
                option::<kw::lifetime>(input, &mut args.lifetime, &mut errors)?;
            } else if lookahead.peek(kw::key) {
                option::<kw::key>(input, &mut args.key, &mut errors)?;
            } else if lookahead.peek(kw::lock) {
                option::<kw::lock>(input, &mut args.lock, &mut errors)?;
            } else if lookahead.peek(kw::lock_timeout) {
                option::<kw::lock_timeout>(input, &mut args.lock_timeout, &mut errors)?;
            } else if lookahead.peek(kw::hook_userdata) {
                option::<kw::hook_userdata>(input, &mut args.hook_userdata, &mut errors)?;
            } else if lookahead.peek(kw::cache) {
                option::<kw::cache>(input, &mut args.cache, &mut errors)?;
            } else if lookahead.peek(kw::serializer) {
                keyed_option::<kw::serializer>(input, &mut serializer, &mut errors)?;
            } else if lookahead.peek(kw::unserializer) {
                keyed_option::<kw::unserializer>(input, &mut unserializer, &mut errors)?;
            } else if lookahead.peek(kw::skip) {
                let keyword = input.parse::<kw::skip>()?;
                let content;
                syn::parenthesized!(content in input);
                let names = content.parse_terminated(Ident::parse_any, Token![,])?;
                store(
                    &mut skip,
                    names.into_iter().collect(),
                    &keyword,
                    &mut errors,
                );
            } else if input.peek(Ident::peek_any) {
                errors.push(unknown_option(input)?);
            } else {
                return Err(lookahead.error());
            }

            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }

        args.skip = skip.unwrap_or_default();
        match (serializer, unserializer) {
            (Some((_, serializer)), Some((_, unserializer))) => {
                args.codec = Some(CustomCodec { serializer, unserializer });
            }
            (Some((keyword, _)), None) => errors.push(syn::Error::new(
                keyword,
                "`serializer` needs a matching `unserializer = <path>` (a `fn(&[u8]) -> Option<T>`): \
                 give both or neither",
            )),
            (None, Some((keyword, _))) => errors.push(syn::Error::new(
                keyword,
                "`unserializer` needs a matching `serializer = <path>` (a `fn(&T) -> Option<Vec<u8>>`): \
                 give both or neither",
            )),
            (None, None) => {}
        }
        args.problems = errors;
        Ok(args)
    }
}

/// `name = <expr>`, stored in `slot` unless it was already given.
fn option<K: Parse + ToTokens>(
    input: ParseStream,
    slot: &mut Option<Expr>,
    errors: &mut Errors,
) -> syn::Result<()> {
    let (keyword, value) = assignment::<K>(input)?;
    store(slot, value, &keyword, errors);
    Ok(())
}

/// Like [`option`], keeping the keyword's span for later messages.
fn keyed_option<K: Parse + ToTokens>(
    input: ParseStream,
    slot: &mut Option<(Span, Expr)>,
    errors: &mut Errors,
) -> syn::Result<()> {
    let (keyword, value) = assignment::<K>(input)?;
    store(slot, (keyword.span(), value), &keyword, errors);
    Ok(())
}

fn assignment<K: Parse + ToTokens>(input: ParseStream) -> syn::Result<(K, Expr)> {
    let keyword = input.parse::<K>()?;
    if !input.peek(Token![=]) {
        let message = format!("expected `{} = <expression>`", keyword.to_token_stream());
        return Err(syn::Error::new(keyword.span(), message));
    }
    input.parse::<Token![=]>()?;
    Ok((keyword, input.parse()?))
}

fn store<T>(slot: &mut Option<T>, value: T, keyword: &impl ToTokens, errors: &mut Errors) {
    if slot.is_some() {
        let message = format!(
            "expected only a single `{}` option",
            keyword.to_token_stream()
        );
        errors.spanned(keyword, message);
    } else {
        *slot = Some(value);
    }
}

/// Reports an option we don't know, then steps over its value so that the options after it are
/// still checked.
fn unknown_option(input: ParseStream) -> syn::Result<syn::Error> {
    let name = input.call(Ident::parse_any)?;
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        input.parse::<Expr>()?;
    } else if input.peek(token::Paren) {
        input.parse::<TokenTree>()?;
    }

    let written = name.unraw().to_string();
    let expected = OPTIONS
        .iter()
        .map(|option| format!("`{option}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let message = match suggestion(&written) {
        Some(option) => format!("unknown option `{written}`; did you mean `{option}`?"),
        None => format!("unknown option `{written}`; expected one of {expected}"),
    };
    Ok(syn::Error::new(name.span(), message))
}

fn suggestion(written: &str) -> Option<&'static str> {
    let written = written.to_ascii_lowercase();
    if let Some((_, option)) = ALIASES.iter().find(|(alias, _)| *alias == written) {
        return Some(option);
    }
    OPTIONS
        .iter()
        .map(|option| (edit_distance(&written, option), *option))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, option)| option)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, a) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, b) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(a != *b);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(tokens: proc_macro2::TokenStream) -> syn::Result<CachedArgs> {
        let mut args: CachedArgs = syn::parse2(tokens)?;
        std::mem::take(&mut args.problems).finish().map(|()| args)
    }

    fn messages(error: syn::Error) -> Vec<String> {
        error.into_iter().map(|error| error.to_string()).collect()
    }

    #[test]
    fn every_option_parses_in_any_order() {
        let args = parse(quote::quote! {
            skip(db), lock_timeout = 10, tags = [format!("user:{id}")], lifetime = 60,
            key = format!("k:{id}"), lock = true, hook_userdata = "x", cache = &CACHE,
            unserializer = decode, serializer = encode,
        })
        .unwrap();
        assert!(args.tags.is_some() && args.lifetime.is_some() && args.key.is_some());
        assert!(args.lock.is_some() && args.lock_timeout.is_some() && args.hook_userdata.is_some());
        assert!(args.cache.is_some() && args.codec.is_some());
        assert_eq!(args.skip, ["db"]);
    }

    #[test]
    fn several_mistakes_are_reported_together() {
        let error = parse(quote::quote!(ttl = 5, tags = [], tags = [], serializer = f))
            .err()
            .unwrap();
        assert_eq!(
            messages(error),
            [
                "unknown option `ttl`; did you mean `lifetime`?",
                "expected only a single `tags` option",
                "`serializer` needs a matching `unserializer = <path>` (a `fn(&[u8]) -> Option<T>`): \
                 give both or neither",
            ]
        );
    }

    #[test]
    fn close_misspellings_get_a_suggestion() {
        assert_eq!(suggestion("tag"), Some("tags"));
        assert_eq!(suggestion("lock_timout"), Some("lock_timeout"));
        assert_eq!(suggestion("deserializer"), Some("unserializer"));
        assert_eq!(suggestion("frobnicate"), None);
    }
}

//! The arguments of `#[cached(...)]`.

use proc_macro2::{Span, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{token, Expr, Ident, LitBool, LitStr, Token};

use crate::errors::Errors;
use crate::written::written;

mod kw {
    syn::custom_keyword!(tags);
    syn::custom_keyword!(lifetime);
    syn::custom_keyword!(jitter);
    syn::custom_keyword!(key);
    syn::custom_keyword!(name);
    syn::custom_keyword!(lock);
    syn::custom_keyword!(lock_timeout);
    syn::custom_keyword!(hook_userdata);
    syn::custom_keyword!(skip);
    syn::custom_keyword!(skip_all);
    syn::custom_keyword!(cache);
    syn::custom_keyword!(serializer);
    syn::custom_keyword!(deserializer);
    syn::custom_keyword!(codec);
    syn::custom_keyword!(compress_above);
    syn::custom_keyword!(cache_none);
    syn::custom_keyword!(cache_err);
    syn::custom_keyword!(unless);
    syn::custom_keyword!(near);
    syn::custom_keyword!(stale_if_error);
    syn::custom_keyword!(stale_while_revalidate);
    syn::custom_keyword!(stale_if_slow);
}

const OPTIONS: &[&str] = &[
    "tags",
    "lifetime",
    "jitter",
    "key",
    "name",
    "lock",
    "lock_timeout",
    "hook_userdata",
    "skip",
    "skip_all",
    "cache",
    "serializer",
    "deserializer",
    "codec",
    "compress_above",
    "cache_none",
    "cache_err",
    "unless",
    "near",
    "stale_if_error",
    "stale_while_revalidate",
    "stale_if_slow",
    "crate",
];

/// Options that were renamed, with their new name: an error that names it, never a silent alias.
const RENAMED: &[(&str, &str)] = &[
    ("unserializer", "deserializer"),
    ("timeout", "stale_if_slow"),
];

/// Names people reach for (other caching crates' among them) that are spelled differently here.
const ALIASES: &[(&str, &str)] = &[
    ("ttl", "lifetime"),
    ("time", "lifetime"),
    ("expire", "lifetime"),
    ("expires", "lifetime"),
    ("expiry", "lifetime"),
    ("fail_safe", "stale_if_error"),
    ("swr", "stale_while_revalidate"),
    ("soft_timeout", "stale_if_slow"),
    ("unserialize", "deserializer"),
    ("convert", "key"),
    ("format", "codec"),
    ("compression", "compress_above"),
    ("compress", "compress_above"),
];

/// Options of the `cached` crate that rtc covers differently, with what to write instead.
const HABITS: &[(&str, &str)] = &[
    (
        "result",
        "a function that returns a `Result` (under any name, a type alias included) caches only \
         `Ok` by itself; `cache_err = true` caches errors too",
    ),
    (
        "option",
        "a function that returns an `Option` (under any name, a type alias included) caches only \
         `Some` by itself; `cache_none = true` caches `None` too",
    ),
    (
        "returns",
        "the return type's own type decides what is cached, a type alias of `Result` or `Option` \
         included: remove `returns`",
    ),
];

#[derive(Default)]
pub(crate) struct CachedArgs {
    pub(crate) tags: Option<Expr>,
    pub(crate) lifetime: Option<Expr>,
    pub(crate) jitter: Option<Expr>,
    pub(crate) key: Option<Expr>,
    /// `name = "..."`: the function's identity in keys and its implicit tag.
    pub(crate) name: Option<LitStr>,
    pub(crate) lock: Option<Expr>,
    pub(crate) lock_timeout: Option<Expr>,
    pub(crate) hook_userdata: Option<Expr>,
    pub(crate) cache: Option<Expr>,
    pub(crate) skip: Skip,
    /// `serializer = ..., deserializer = ...`.
    pub(crate) custom_codec: Option<CustomCodec>,
    /// `codec = <rtc::Codec>`: a built-in serde format instead of the cache's.
    pub(crate) codec: Option<Expr>,
    /// `compress_above = <bytes>`: compression instead of the cache's.
    pub(crate) compress_above: Option<Expr>,
    /// `cache_none = true`: `None` is cached too.
    pub(crate) cache_none: Option<LitBool>,
    /// `cache_err = true`: `Err` is cached too.
    pub(crate) cache_err: Option<LitBool>,
    /// `unless = <predicate>`: results it matches are not stored.
    pub(crate) unless: Option<Expr>,
    /// `near = false`: never answered from the cache's near cache.
    pub(crate) near: Option<LitBool>,
    /// `stale_if_error = <secs> | false`.
    pub(crate) stale_if_error: Option<StaleWindow>,
    /// `stale_while_revalidate [= <secs> | false]`; bare, the cache's default.
    pub(crate) stale_while_revalidate: Option<StaleWindow>,
    /// `stale_if_slow [= <secs> | false]`; bare, the cache's default.
    pub(crate) stale_if_slow: Option<StaleWindow>,
    /// `crate = <path>`: where the facade is, instead of the dependency found in `Cargo.toml`.
    pub(crate) krate: Option<syn::Path>,
    /// Mistakes that did not stop the parsing, reported with the function's own.
    pub(crate) problems: Errors,
}

/// The arguments left out of the key.
#[derive(Default)]
pub(crate) enum Skip {
    /// `skip(...)`: these names, as written (`self` included, a no-op).
    #[default]
    None,
    Some(Vec<Ident>),
    /// `skip_all`.
    All,
}

impl Skip {
    pub(crate) fn names(&self) -> &[Ident] {
        match self {
            Skip::Some(names) => names,
            Skip::None | Skip::All => &[],
        }
    }
}

/// A stale option (`stale_if_error`, `stale_while_revalidate`, `stale_if_slow`): where it was
/// written, and what it says.
pub(crate) struct StaleWindow {
    pub(crate) keyword: Ident,
    pub(crate) value: Window,
}

pub(crate) enum Window {
    /// Written bare: the cache's default.
    Default,
    /// `= false`: off for this function, whatever the cache's default.
    Off,
    /// `= <seconds or Duration>`.
    Given(Expr),
}

impl StaleWindow {
    pub(crate) fn is_off(&self) -> bool {
        matches!(self.value, Window::Off)
    }
}

impl CachedArgs {
    /// The first option given that runs the computation in the background, if any (`= false`
    /// does not).
    pub(crate) fn detaching(&self) -> Option<&StaleWindow> {
        [&self.stale_while_revalidate, &self.stale_if_slow]
            .into_iter()
            .flatten()
            .find(|window| !window.is_off())
    }
}

/// `serializer = ..., deserializer = ...`, which only make sense together.
pub(crate) struct CustomCodec {
    pub(crate) serializer: Expr,
    pub(crate) deserializer: Expr,
}

impl Parse for CachedArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut args = CachedArgs::default();
        let mut skip = None;
        let mut serializer = None;
        let mut deserializer = None;
        let mut errors = Errors::default();

        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::tags) {
                option::<kw::tags>(input, &mut args.tags, &mut errors)?;
            } else if lookahead.peek(kw::lifetime) {
                option::<kw::lifetime>(input, &mut args.lifetime, &mut errors)?;
            } else if lookahead.peek(kw::jitter) {
                option::<kw::jitter>(input, &mut args.jitter, &mut errors)?;
            } else if lookahead.peek(kw::key) {
                option::<kw::key>(input, &mut args.key, &mut errors)?;
            } else if lookahead.peek(kw::name) {
                let keyword = input.parse::<kw::name>()?;
                let name = literal::<LitStr>(input, &keyword, "`name = \"<identity>\"`")?;
                if name.value().is_empty() {
                    errors.spanned(
                        &name,
                        "`name` cannot be empty: it identifies the function's entries",
                    );
                }
                store(&mut args.name, name, &keyword, &mut errors);
            } else if lookahead.peek(kw::lock_timeout) {
                option::<kw::lock_timeout>(input, &mut args.lock_timeout, &mut errors)?;
            } else if lookahead.peek(kw::lock) {
                let keyword = input.parse::<kw::lock>()?;
                let value = if input.peek(Token![=]) {
                    input.parse::<Token![=]>()?;
                    input.parse()?
                } else {
                    syn::parse_quote_spanned!(keyword.span=> true)
                };
                store(&mut args.lock, value, &keyword, &mut errors);
            } else if lookahead.peek(kw::hook_userdata) {
                option::<kw::hook_userdata>(input, &mut args.hook_userdata, &mut errors)?;
            } else if lookahead.peek(kw::near) {
                flag::<kw::near>(input, &mut args.near, &mut errors)?;
            } else if lookahead.peek(kw::cache_none) {
                flag::<kw::cache_none>(input, &mut args.cache_none, &mut errors)?;
            } else if lookahead.peek(kw::cache_err) {
                flag::<kw::cache_err>(input, &mut args.cache_err, &mut errors)?;
            } else if lookahead.peek(kw::cache) {
                let keyword = input.parse::<kw::cache>()?;
                let (_, value) = assignment(input, &keyword)?;
                if let Expr::Field(field) = &value {
                    errors.spanned(
                        field,
                        format!(
                            "`cache = {0}` would move the cache out of its owner; borrow it: `cache = &{0}`",
                            written(field)
                        ),
                    );
                }
                store(&mut args.cache, value, &keyword, &mut errors);
            } else if lookahead.peek(kw::unless) {
                option::<kw::unless>(input, &mut args.unless, &mut errors)?;
            } else if lookahead.peek(kw::stale_if_error) {
                let keyword = input.parse::<kw::stale_if_error>()?;
                let window = stale_window(input, "stale_if_error", keyword.span, false)?;
                store(&mut args.stale_if_error, window, &keyword, &mut errors);
            } else if lookahead.peek(kw::stale_while_revalidate) {
                let keyword = input.parse::<kw::stale_while_revalidate>()?;
                let window = stale_window(input, "stale_while_revalidate", keyword.span, true)?;
                store(
                    &mut args.stale_while_revalidate,
                    window,
                    &keyword,
                    &mut errors,
                );
            } else if lookahead.peek(kw::stale_if_slow) {
                let keyword = input.parse::<kw::stale_if_slow>()?;
                let window = stale_window(input, "stale_if_slow", keyword.span, true)?;
                store(&mut args.stale_if_slow, window, &keyword, &mut errors);
            } else if lookahead.peek(Token![crate]) {
                let keyword = input.parse::<Token![crate]>()?;
                if !input.peek(Token![=]) {
                    let message =
                        "expected `crate = <path>`: where `rtc` is (`crate = my::reexport`)";
                    return Err(syn::Error::new(keyword.span, message));
                }
                input.parse::<Token![=]>()?;
                let path = input.call(syn::Path::parse_mod_style)?;
                store(&mut args.krate, path, &keyword, &mut errors);
            } else if lookahead.peek(kw::codec) {
                option::<kw::codec>(input, &mut args.codec, &mut errors)?;
            } else if lookahead.peek(kw::compress_above) {
                option::<kw::compress_above>(input, &mut args.compress_above, &mut errors)?;
            } else if lookahead.peek(kw::serializer) {
                keyed_option::<kw::serializer>(input, &mut serializer, &mut errors)?;
            } else if lookahead.peek(kw::deserializer) {
                keyed_option::<kw::deserializer>(input, &mut deserializer, &mut errors)?;
            } else if lookahead.peek(kw::skip_all) {
                let keyword = input.parse::<kw::skip_all>()?;
                store(&mut skip, Skip::All, &keyword, &mut errors);
            } else if lookahead.peek(kw::skip) {
                let keyword = input.parse::<kw::skip>()?;
                let content;
                syn::parenthesized!(content in input);
                let names = content.parse_terminated(Ident::parse_any, Token![,])?;
                store(
                    &mut skip,
                    Skip::Some(names.into_iter().collect()),
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
        match (serializer, deserializer) {
            (Some((_, serializer)), Some((_, deserializer))) => {
                if let Some(codec) = &args.codec {
                    errors.spanned(
                        codec,
                        "`codec` has no effect beside `serializer`/`deserializer`, which write \
                         the value themselves: give one or the other",
                    );
                }
                args.custom_codec = Some(CustomCodec {
                    serializer,
                    deserializer,
                });
            }
            (Some((keyword, _)), None) => errors.push(syn::Error::new(
                keyword,
                "`serializer` needs a matching `deserializer = <path>` (a `fn(&[u8]) -> Option<T>`): \
                 give both or neither",
            )),
            (None, Some((keyword, _))) => errors.push(syn::Error::new(
                keyword,
                "`deserializer` needs a matching `serializer = <path>` (a `fn(&T) -> Option<Vec<u8>>`): \
                 give both or neither",
            )),
            (None, None) => {}
        }
        args.problems = errors;
        Ok(args)
    }
}

/// After the keyword of a stale option: `= <seconds>`, `= false`, or nothing (`bare`: allowed
/// for the options that take the cache's default when written bare).
fn stale_window(
    input: ParseStream,
    name: &str,
    span: Span,
    bare: bool,
) -> syn::Result<StaleWindow> {
    let keyword = Ident::new(name, span);
    if !input.peek(Token![=]) {
        if bare {
            return Ok(StaleWindow {
                keyword,
                value: Window::Default,
            });
        }
        let message = format!("expected `{name} = <seconds or Duration>`, or `{name} = false`");
        return Err(syn::Error::new(span, message));
    }
    input.parse::<Token![=]>()?;
    let value = input.parse::<Expr>()?;
    let value = match &value {
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Bool(flag),
            ..
        }) if !flag.value => Window::Off,
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Bool(flag),
            ..
        }) => {
            let message = match bare {
                true => format!("`{name} = true` is `{name}` written bare (the cache's default); write that, a length of time, or `false`"),
                false => format!("`{name}` takes a length of time (seconds or a `Duration`), or `false` to turn the cache's default off"),
            };
            return Err(syn::Error::new(flag.span, message));
        }
        _ => Window::Given(value),
    };
    Ok(StaleWindow { keyword, value })
}

/// `name`, `name = true` or `name = false`: a switch the expansion depends on, so a literal.
fn flag<K: Parse + ToTokens>(
    input: ParseStream,
    slot: &mut Option<LitBool>,
    errors: &mut Errors,
) -> syn::Result<()> {
    let keyword = input.parse::<K>()?;
    let value = if input.peek(Token![=]) {
        literal::<LitBool>(input, &keyword, "`true` or `false`")?
    } else {
        LitBool::new(true, keyword.span())
    };
    store(slot, value, &keyword, errors);
    Ok(())
}

/// `= <literal>` after `keyword`.
fn literal<L: Parse>(
    input: ParseStream,
    keyword: &impl ToTokens,
    expected: &str,
) -> syn::Result<L> {
    let (_, value) = assignment(input, keyword)?;
    syn::parse2(value.to_token_stream()).map_err(|_| {
        let message = format!("`{}` takes {expected}", keyword.to_token_stream());
        syn::Error::new_spanned(&value, message)
    })
}

/// `name = <expr>`, stored in `slot` unless it was already given.
fn option<K: Parse + ToTokens>(
    input: ParseStream,
    slot: &mut Option<Expr>,
    errors: &mut Errors,
) -> syn::Result<()> {
    let keyword = input.parse::<K>()?;
    let (_, value) = assignment(input, &keyword)?;
    store(slot, value, &keyword, errors);
    Ok(())
}

/// Like [`option`], keeping the keyword's span for later messages.
fn keyed_option<K: Parse + ToTokens>(
    input: ParseStream,
    slot: &mut Option<(Span, Expr)>,
    errors: &mut Errors,
) -> syn::Result<()> {
    let keyword = input.parse::<K>()?;
    let (span, value) = assignment(input, &keyword)?;
    store(slot, (span, value), &keyword, errors);
    Ok(())
}

/// `= <expression>` after `keyword`; the keyword's span and the expression.
fn assignment(input: ParseStream, keyword: &impl ToTokens) -> syn::Result<(Span, Expr)> {
    let span = keyword
        .to_token_stream()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |token| token.span());
    if !input.peek(Token![=]) {
        let message = format!("expected `{} = <expression>`", keyword.to_token_stream());
        return Err(syn::Error::new(span, message));
    }
    input.parse::<Token![=]>()?;
    Ok((span, input.parse()?))
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
    let habit = HABITS
        .iter()
        .find(|(habit, _)| *habit == written.to_ascii_lowercase());
    let renamed = RENAMED.iter().find(|(old, _)| *old == written);
    let message = match (habit, suggestion(&written)) {
        _ if renamed.is_some() => {
            let new = renamed.map_or("", |(_, new)| new);
            format!("`{written}` is now called `{new}`: write `{new}`")
        }
        (Some((_, instead)), _) => format!("unknown option `{written}`: {instead}"),
        (None, Some(option)) => format!("unknown option `{written}`; did you mean `{option}`?"),
        (None, None) => format!("unknown option `{written}`; expected one of {expected}"),
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
            deserializer = decode, serializer = encode, compress_above = 4096, crate = my::rtc,
        })
        .unwrap();
        assert!(args.tags.is_some() && args.lifetime.is_some() && args.key.is_some());
        assert!(args.lock.is_some() && args.lock_timeout.is_some() && args.hook_userdata.is_some());
        assert!(args.cache.is_some() && args.custom_codec.is_some());
        assert!(args.compress_above.is_some());
        assert_eq!(args.skip.names(), ["db"]);
        assert_eq!(written(&args.krate.unwrap()), "my::rtc");
        let with_codec = parse(quote::quote!(codec = rtc::Codec::Postcard)).unwrap();
        assert!(with_codec.codec.is_some());
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
                "`serializer` needs a matching `deserializer = <path>` (a `fn(&[u8]) -> Option<T>`): \
                 give both or neither",
            ]
        );
    }

    #[test]
    fn a_codec_beside_a_custom_serializer_is_an_error() {
        let error = parse(quote::quote!(
            codec = rtc::Codec::Json,
            serializer = encode,
            deserializer = decode
        ))
        .err()
        .unwrap();
        assert_eq!(
            messages(error),
            [
                "`codec` has no effect beside `serializer`/`deserializer`, which write the value \
              themselves: give one or the other"
            ]
        );
    }

    #[test]
    fn close_misspellings_get_a_suggestion() {
        assert_eq!(suggestion("tag"), Some("tags"));
        assert_eq!(suggestion("lock_timout"), Some("lock_timeout"));
        assert_eq!(suggestion("unserialize"), Some("deserializer"));
        assert_eq!(suggestion("soft_timeout"), Some("stale_if_slow"));
        assert_eq!(suggestion("frobnicate"), None);
        assert_eq!(suggestion("time"), Some("lifetime"));
        assert_eq!(suggestion("convert"), Some("key"));
        assert_eq!(suggestion("format"), Some("codec"));
        assert_eq!(suggestion("compression"), Some("compress_above"));
        assert_eq!(suggestion("fail_safe"), Some("stale_if_error"));
        assert_eq!(
            suggestion("stale_while_revalidat"),
            Some("stale_while_revalidate")
        );
    }

    #[test]
    fn stale_options_parse_with_seconds_false_and_the_background_ones_bare() {
        let args = parse(quote::quote!(
            stale_if_error = 3600,
            stale_while_revalidate,
            stale_if_slow = 0.5
        ))
        .unwrap();
        assert!(matches!(
            args.stale_if_error.as_ref().unwrap().value,
            Window::Given(_)
        ));
        let refresh = args.stale_while_revalidate.as_ref().unwrap();
        assert!(matches!(refresh.value, Window::Default));
        assert!(matches!(
            args.stale_if_slow.as_ref().unwrap().value,
            Window::Given(_)
        ));
        assert_eq!(args.detaching().unwrap().keyword, "stale_while_revalidate");
        let error = parse(quote::quote!(stale_if_slow = 1, stale_if_slow))
            .err()
            .unwrap();
        assert_eq!(
            messages(error),
            ["expected only a single `stale_if_slow` option"]
        );

        let off = parse(quote::quote!(
            stale_if_error = false,
            stale_while_revalidate = false
        ))
        .unwrap();
        assert!(off.stale_if_error.as_ref().unwrap().is_off());
        assert!(
            off.detaching().is_none(),
            "`= false` runs nothing in the background"
        );
        let error = parse(quote::quote!(stale_if_error)).err().unwrap();
        assert!(messages(error)[0].contains("`stale_if_error = false`"));
    }

    #[test]
    fn renamed_options_name_their_new_name() {
        let error = parse(quote::quote!(timeout = 1, unserializer = decode))
            .err()
            .unwrap();
        assert_eq!(
            messages(error),
            [
                "`timeout` is now called `stale_if_slow`: write `stale_if_slow`",
                "`unserializer` is now called `deserializer`: write `deserializer`",
            ]
        );
        let error = parse(quote::quote!(returns = Result)).err().unwrap();
        assert!(messages(error)[0].contains("remove `returns`"));
    }

    #[test]
    fn flags_can_be_bare() {
        let args = parse(quote::quote!(lock, skip_all, cache_none)).unwrap();
        assert!(args.lock.is_some() && args.cache_none.unwrap().value);
        assert!(matches!(args.skip, Skip::All));
        let args = parse(quote::quote!(near = false)).unwrap();
        assert!(!args.near.unwrap().value);
    }

    #[test]
    fn the_cached_crates_result_option_points_at_what_rtc_does() {
        let error = parse(quote::quote!(result = true)).err().unwrap();
        assert!(messages(error)[0].contains("`cache_err = true`"));
    }

    #[test]
    fn a_cache_moved_out_of_self_gets_a_borrow_suggested() {
        let error = parse(quote::quote!(cache = self.cache)).err().unwrap();
        assert_eq!(
            messages(error),
            ["`cache = self.cache` would move the cache out of its owner; borrow it: `cache = &self.cache`"]
        );
    }
}

//! Writes the cached function, the hidden twin that holds its body, and the `invalidate_`,
//! `invalidate_all_` and `refresh_` helpers next to it.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Attribute, FnArg, Ident, Item, ItemFn, Pat, Signature, Token, Visibility};

use crate::attr::CachedArgs;
use crate::body::{Action, Body};
use crate::errors::Errors;
use crate::signature::{is_lint_level, CachedFn};

/// The whole expansion; on any error, the item unchanged followed by every error found.
pub(crate) fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let mut args = syn::parse2::<CachedArgs>(args)
        .map_err(|error| errors.push(error))
        .ok();
    if let Some(args) = &mut args {
        errors.append(std::mem::take(&mut args.problems));
    }
    let function = parse_function(item.clone())
        .map_err(|error| errors.push(error))
        .ok();
    let skip = args.as_ref().map_or(&[][..], |args| &args.skip);
    let function = function.map(|function| CachedFn::analyze(function, skip, &mut errors));

    match (errors.finish(), args, function) {
        (Ok(()), Some(args), Some(function)) => Expansion::new(&args, &function).items(),
        (result, ..) => {
            let errors = result.err().map(|error| error.to_compile_error());
            quote!(#item #errors)
        }
    }
}

fn parse_function(item: TokenStream) -> syn::Result<ItemFn> {
    if let Ok(Item::Fn(function)) = syn::parse2(item.clone()) {
        return Ok(function);
    }
    // Point at the item's keyword rather than at its attributes or the whole item.
    let locate = |input: ParseStream| {
        input.call(Attribute::parse_outer)?;
        input.parse::<Visibility>()?;
        let span = input.span();
        let fork = input.fork();
        let bodyless = fork.parse::<Signature>().is_ok() && fork.peek(Token![;]);
        input.parse::<TokenStream>()?;
        let message = if bodyless {
            "`#[cached]` needs a function with a body"
        } else {
            "`#[cached]` can only be used on a function"
        };
        Ok(syn::Error::new(span, message))
    };
    Err(locate.parse2(item).unwrap_or_else(|error| error))
}

struct Expansion<'a> {
    function: &'a CachedFn,
    body: Body<'a>,
    /// `__rtc_uncached_<name>`, a sibling that holds the body, for functions with a receiver.
    ///
    /// Only those are certainly in an `impl` block, where the sibling is `Self::...`. Without a
    /// receiver a free function and an associated one look alike and the sibling could not be
    /// named, so their body is written inline: in the function and again in `refresh_<name>`.
    twin: Option<Ident>,
}

impl<'a> Expansion<'a> {
    fn new(args: &'a CachedArgs, function: &'a CachedFn) -> Self {
        let twin = function
            .receiver
            .is_some()
            .then(|| helper_name("__rtc_uncached_", function));
        let body = Body {
            args,
            function,
            twin: twin.clone(),
        };
        Expansion {
            function,
            body,
            twin,
        }
    }

    fn items(&self) -> TokenStream {
        let mut items = self.cached_fn();
        items.extend(self.twin_fn());
        items.extend(self.invalidate_fn());
        items.extend(self.invalidate_all_fn());
        items.extend(self.refresh_fn());
        items
    }

    /// The user's function: same attributes, visibility and signature, a body that uses the cache.
    fn cached_fn(&self) -> TokenStream {
        let item = &self.function.item;
        let attrs = item.attrs.iter().map(|attr| lint_as_allow(attr, false));
        let vis = &item.vis;
        let mut sig = item.sig.clone();
        if self.twin.is_some() {
            strip_mut(&mut sig);
        }
        let body = self.body.of(Action::Run, &sig.ident);
        quote!(#(#attrs)* #vis #sig { #body })
    }

    /// The user's function as written, renamed: what runs on a miss.
    fn twin_fn(&self) -> Option<TokenStream> {
        let item = &self.function.item;
        let twin = self.twin.clone()?;
        let attrs = self.inherited_attrs(true);
        let sig = Signature {
            ident: twin,
            abi: None,
            ..item.sig.clone()
        };
        let block = &item.block;
        Some(quote! {
            #[doc(hidden)]
            #(#attrs)*
            #sig #block
        })
    }

    fn invalidate_fn(&self) -> TokenStream {
        let name = self.function.item.sig.ident.unraw();
        let doc = format!(
            " Removes the cached result of `{name}` for these arguments; `true` when there was one."
        );
        let sig = self.invalidate_signature(helper_name("invalidate_", self.function), false);
        self.helper(
            &doc,
            &sig,
            Action::Invalidate,
            quote!(#[allow(dead_code, unused_variables)]),
        )
    }

    fn invalidate_all_fn(&self) -> TokenStream {
        let name = self.function.item.sig.ident.unraw();
        let doc = format!(
            " Makes every cached result of `{name}` miss, whatever its arguments; `false` when the \
             cache could not be reached."
        );
        let sig = self.invalidate_signature(helper_name("invalidate_all_", self.function), true);
        self.helper(
            &doc,
            &sig,
            Action::InvalidateAll,
            quote!(#[allow(dead_code)]),
        )
    }

    fn refresh_fn(&self) -> TokenStream {
        let name = self.function.item.sig.ident.unraw();
        let doc = format!(" Runs `{name}` without looking at the cache, and caches its result.");
        let mut sig = Signature {
            ident: helper_name("refresh_", self.function),
            abi: None,
            ..self.function.item.sig.clone()
        };
        if self.twin.is_some() {
            strip_mut(&mut sig);
        }
        self.helper(&doc, &sig, Action::Refresh, quote!(#[allow(dead_code)]))
    }

    /// A generated function with the same visibility as the user's, unused without a warning.
    fn helper(
        &self,
        doc: &str,
        sig: &Signature,
        action: Action,
        allow: TokenStream,
    ) -> TokenStream {
        let attrs = self.inherited_attrs(false);
        let vis = &self.function.item.vis;
        let body = self.body.of(action, &sig.ident);
        quote! {
            #[doc = #doc]
            #(#attrs)*
            #allow
            #vis #sig { #body }
        }
    }

    /// `invalidate_<name>(<same arguments>)` or `invalidate_all_<name>()`, both `-> bool`, safe,
    /// and borrowing `&self` whatever the receiver: they never run the body.
    fn invalidate_signature(&self, ident: Ident, all: bool) -> Signature {
        let mut sig = Signature {
            ident,
            abi: None,
            unsafety: None,
            output: syn::parse_quote!(-> bool),
            ..self.function.item.sig.clone()
        };
        strip_mut(&mut sig);
        for input in &mut sig.inputs {
            if let FnArg::Receiver(_) = input {
                *input = syn::parse_quote!(&self);
            }
        }
        if all {
            sig.generics = syn::Generics::default();
            sig.inputs = sig
                .inputs
                .into_iter()
                .filter(|input| matches!(input, FnArg::Receiver(_)))
                .collect();
        }
        sig
    }

    /// What generated functions take from the user's attributes: `cfg` and lint levels.
    fn inherited_attrs(&self, is_twin: bool) -> Vec<Attribute> {
        let attrs = self.function.item.attrs.iter();
        attrs
            .filter(|attr| attr.path().is_ident("cfg") || is_lint_level(attr))
            .map(|attr| lint_as_allow(attr, is_twin))
            .collect()
    }
}

fn helper_name(prefix: &str, function: &CachedFn) -> Ident {
    let ident = &function.item.sig.ident;
    format_ident!("{}{}", prefix, ident.unraw(), span = ident.span())
}

/// `mut` on an argument matters only where the body is.
fn strip_mut(sig: &mut Signature) {
    for input in &mut sig.inputs {
        match input {
            FnArg::Receiver(receiver) if receiver.reference.is_none() => receiver.mutability = None,
            FnArg::Receiver(_) => {}
            FnArg::Typed(typed) => {
                if let Pat::Ident(pat) = &mut *typed.pat {
                    pat.mutability = None;
                }
            }
        }
    }
}

/// `#[expect(...)]` as `#[allow(...)]`, other attributes unchanged; `keep_expect` for the twin,
/// which is the user's function as written. Anywhere else the expected lint may not fire: the
/// generated code uses every argument, for one.
fn lint_as_allow(attr: &Attribute, keep_expect: bool) -> Attribute {
    let mut attr = attr.clone();
    if !keep_expect && attr.path().is_ident("expect") {
        if let syn::Meta::List(list) = &mut attr.meta {
            list.path = Ident::new("allow", list.path.segments[0].ident.span()).into();
        }
    }
    attr
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::cached;

    fn item_names(expansion: proc_macro2::TokenStream) -> Vec<String> {
        let file: syn::File = syn::parse2(expansion).unwrap();
        file.items
            .iter()
            .map(|item| match item {
                syn::Item::Fn(function) => function.sig.ident.to_string(),
                syn::Item::Macro(mac) => mac.mac.path.segments.last().unwrap().ident.to_string(),
                _ => String::from("?"),
            })
            .collect()
    }

    #[test]
    fn a_function_gets_three_helpers_and_keeps_its_body_inline() {
        let expansion = cached(
            quote!(lifetime = 60),
            quote!(
                pub fn get_user(id: u64) -> u64 {
                    id
                }
            ),
        );
        assert_eq!(
            item_names(expansion),
            [
                "get_user",
                "invalidate_get_user",
                "invalidate_all_get_user",
                "refresh_get_user"
            ]
        );
    }

    #[test]
    fn a_method_keeps_its_body_in_a_hidden_twin() {
        let expansion = cached(
            quote!(),
            quote!(
                fn find(&self, id: u64) -> u64 {
                    id
                }
            ),
        );
        assert_eq!(
            item_names(expansion),
            [
                "find",
                "__rtc_uncached_find",
                "invalidate_find",
                "invalidate_all_find",
                "refresh_find"
            ]
        );
    }

    #[test]
    fn on_error_the_function_is_kept_unchanged_next_to_the_error() {
        let function = quote!(
            fn get_user(id: u64) -> u64 {
                id
            }
        );
        let expansion = cached(quote!(ttl = 60), function.clone());
        assert!(expansion.to_string().starts_with(&function.to_string()));
        assert_eq!(item_names(expansion), ["get_user", "compile_error"]);
    }
}

//! Writes the cached function, the hidden twin that holds its body, and the `invalidate_`,
//! `invalidate_all_`, `refresh_` and `key_` helpers next to it.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Attribute, FnArg, Ident, Item, ItemFn, Pat, Signature, Token, Visibility};

use crate::attr::CachedArgs;
use crate::block::ImplBlock;
use crate::body::{Action, Body};
use crate::errors::Errors;
use crate::signature::{is_lint_level, CachedFn};

/// What one `#[cached]` function becomes: items where the function was, and items beside the
/// `impl` block (the helpers of a trait method, which cannot be members of the trait impl).
#[derive(Default)]
pub(crate) struct Expanded {
    pub(crate) in_place: TokenStream,
    pub(crate) beside: TokenStream,
}

/// `#[cached(args)]` on the function `item`, declared in `block` (`None`: at module level, or
/// in an `impl` block without `#[cached]`, which looks the same from here).
pub(crate) fn cached_fn(
    args: TokenStream,
    item: TokenStream,
    block: Option<&ImplBlock>,
) -> Expanded {
    let mut errors = Errors::default();
    let mut args = syn::parse2::<CachedArgs>(args)
        .map_err(|error| errors.push(error))
        .ok();
    if let Some(args) = &mut args {
        errors.append(std::mem::take(&mut args.problems));
    }
    let function = match parse_function(item.clone()) {
        Ok(function) => function,
        Err(error) => {
            errors.push(error);
            return unchanged(item, errors);
        }
    };
    if block.is_none() && has_receiver(&function) {
        errors.push(syn::Error::new(
            proc_macro2::Span::call_site(),
            "a `#[cached]` method needs `#[cached]` on its `impl` block as well \
             (`#[cached] impl Repo { .. }`): its keys name the block's type as written, and a \
             trait method's helpers go beside the block",
        ));
        return unchanged(item, errors);
    }
    let function = CachedFn::analyze(function, args.as_ref(), &mut errors);
    let expansion = args
        .as_ref()
        .map(|args| Expansion::new(args, &function, block));
    match (errors.finish(), expansion) {
        (Ok(()), Some(expansion)) => expansion.items(),
        (result, _) => {
            // Helpers that cannot run, so that their callers do not add errors of their own.
            let fallback = CachedArgs::default();
            let stubs = Expansion::new(&fallback, &function, block).stubs();
            let mut expanded = unchanged(item, Errors::from(result.err()));
            expanded.in_place.extend(stubs.in_place);
            expanded.beside = stubs.beside;
            expanded
        }
    }
}

/// The item as written, followed by the errors found in it.
fn unchanged(item: TokenStream, errors: Errors) -> Expanded {
    let errors = errors.finish().err().map(|error| error.to_compile_error());
    Expanded {
        in_place: quote!(#item #errors),
        beside: TokenStream::new(),
    }
}

fn has_receiver(function: &ItemFn) -> bool {
    matches!(function.sig.inputs.first(), Some(FnArg::Receiver(_)))
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
            "`#[cached]` can only be used on a function or an `impl` block"
        };
        Ok(syn::Error::new(span, message))
    };
    Err(locate.parse2(item).unwrap_or_else(|error| error))
}

struct Expansion<'a> {
    function: &'a CachedFn,
    block: Option<&'a ImplBlock>,
    body: Body<'a>,
}

impl<'a> Expansion<'a> {
    fn new(args: &'a CachedArgs, function: &'a CachedFn, block: Option<&'a ImplBlock>) -> Self {
        let body = Body {
            args,
            function,
            block,
            twin: helper_name("__rtc_uncached_", function),
            private: crate::facade::private_path(args.krate.as_ref()),
        };
        Expansion {
            function,
            block,
            body,
        }
    }

    fn items(&self) -> Expanded {
        let helpers = [
            self.twin_fn(),
            self.invalidate_fn(),
            self.invalidate_all_fn(),
            self.refresh_fn(),
            self.key_fn(),
        ];
        let mut expanded = self.place(self.cached_fn(), helpers.into_iter().collect());
        if self.block.is_none() {
            let marker = self.outside_a_block_marker();
            let in_place = expanded.in_place;
            expanded.in_place = quote!(#marker #in_place);
        }
        expanded
    }

    /// The helpers with bodies that cannot run: the expansion when the attribute is wrong.
    fn stubs(&self) -> Expanded {
        let unreachable = quote!(::core::unreachable!(
            "`#[cached]` reported an error at compile time"
        ));
        // A body that never returns cannot stand for an `impl Trait`.
        let refresh = (!self.function.output.is_impl_trait).then_some("refresh_");
        let names = ["invalidate_", "invalidate_all_", "key_"];
        let stubs = names
            .into_iter()
            .chain(refresh)
            .map(|prefix| {
                let sig = self.helper_signature(prefix);
                let vis = self.helper_visibility();
                let attrs = self.inherited_attrs(false);
                quote! {
                    #[doc(hidden)]
                    #(#attrs)*
                    #[allow(dead_code, unused_variables, clippy::all)]
                    #vis #sig { #unreachable }
                }
            })
            .collect();
        self.place(TokenStream::new(), stubs)
    }

    /// The cached function where it was; the generated ones beside it, or beside the block for
    /// a trait impl.
    fn place(&self, cached: TokenStream, generated: TokenStream) -> Expanded {
        match self.block {
            Some(block) if block.trait_.is_some() => Expanded {
                in_place: cached,
                beside: generated,
            },
            _ => Expanded {
                in_place: quote!(#cached #generated),
                beside: TokenStream::new(),
            },
        }
    }

    /// For a function expanded without its `impl` block: nothing where it stands alone, and
    /// where it is in fact an associated function of a block that lacks `#[cached]`, an error
    /// whose note names the macro, which says what to do. (The attribute cannot see where its
    /// function is; the marker can: `const _` is an item of modules and blocks, not of `impl`s.)
    fn outside_a_block_marker(&self) -> TokenStream {
        let private = &self.body.private;
        let span = self.function.item.sig.ident.span();
        quote_spanned!(span=> #private::put_cached_on_the_impl_block_too!();)
    }

    /// The user's function: same attributes, visibility and signature, a body that uses the cache.
    fn cached_fn(&self) -> TokenStream {
        let item = &self.function.item;
        let attrs = item.attrs.iter().map(|attr| lint_as_allow(attr, false));
        let vis = &item.vis;
        let mut sig = item.sig.clone();
        strip_mut(&mut sig);
        let body = self.body.of(Action::Run);
        quote!(#(#attrs)* #vis #sig { #body })
    }

    /// The user's function as written, renamed: what runs on a miss and in `refresh_<name>`.
    fn twin_fn(&self) -> TokenStream {
        let item = &self.function.item;
        let attrs = self.inherited_attrs(true);
        let sig = Signature {
            ident: self.body.twin.clone(),
            abi: None,
            ..item.sig.clone()
        };
        let block = &item.block;
        // A trait method's signature is the trait's: lints on it, which Clippy does not raise in a
        // trait impl, are not the user's to fix in the twin either.
        let signature_lints = self.block.and_then(|block| block.trait_.as_ref()).map(|_| {
            quote!(#[allow(
                clippy::unused_async,
                clippy::unnecessary_wraps,
                clippy::needless_pass_by_value,
                clippy::trivially_copy_pass_by_ref
            )])
        });
        quote! {
            #[doc(hidden)]
            #(#attrs)*
            #[allow(clippy::unused_self)]
            #signature_lints
            #[inline]
            #sig #block
        }
    }

    fn invalidate_fn(&self) -> TokenStream {
        let name = self.function.item.sig.ident.unraw();
        let doc = format!(
            " Removes the cached result of `{name}` for these arguments; `true` when there was one."
        );
        self.helper(&doc, "invalidate_", Action::Invalidate)
    }

    fn invalidate_all_fn(&self) -> TokenStream {
        let name = self.function.item.sig.ident.unraw();
        let doc = format!(
            " Makes every cached result of `{name}` miss, whatever its arguments; `false` when the \
             cache could not be reached."
        );
        self.helper(&doc, "invalidate_all_", Action::InvalidateAll)
    }

    fn refresh_fn(&self) -> TokenStream {
        let name = self.function.item.sig.ident.unraw();
        let doc = format!(" Runs `{name}` without looking at the cache, and caches its result.");
        self.helper(&doc, "refresh_", Action::Refresh)
    }

    fn key_fn(&self) -> TokenStream {
        let name = self.function.item.sig.ident.unraw();
        let doc = format!(
            " The key a call of `{name}` with these arguments reads and writes; `None` when they \
             cannot be serialized (the call then runs uncached)."
        );
        self.helper(&doc, "key_", Action::Key)
    }

    /// A generated function, unused without a warning.
    fn helper(&self, doc: &str, prefix: &str, action: Action) -> TokenStream {
        let attrs = self.inherited_attrs(false);
        let vis = self.helper_visibility();
        let sig = self.helper_signature(prefix);
        let body = self.body.of(action);
        quote! {
            #[doc = #doc]
            #(#attrs)*
            #[allow(dead_code, unused_variables)]
            #vis #sig { #body }
        }
    }

    /// The function's own, or `pub` for a trait method's (a trait impl has no visibility).
    fn helper_visibility(&self) -> Visibility {
        match self.block {
            Some(block) if block.trait_.is_some() => syn::parse_quote!(pub),
            _ => self.function.item.vis.clone(),
        }
    }

    /// - `refresh_<name>`: the function's signature.
    /// - `invalidate_<name>` and `key_<name>`: its arguments but the skipped ones that `key`
    ///   and `tags` do not name, and `&self` whatever the receiver: they never run the body.
    ///   `key_<name>` is never `async`: it does no I/O.
    /// - `invalidate_all_<name>`: `&self` at most.
    fn helper_signature(&self, prefix: &str) -> Signature {
        let item_sig = &self.function.item.sig;
        let mut sig = Signature {
            ident: helper_name(prefix, self.function),
            abi: None,
            ..item_sig.clone()
        };
        strip_mut(&mut sig);
        sig.constness = None;
        if prefix == "refresh_" {
            return sig;
        }
        sig.unsafety = None;
        sig.output = match prefix {
            "key_" => {
                sig.asyncness = None;
                syn::parse_quote!(-> ::core::option::Option<::std::string::String>)
            }
            _ => syn::parse_quote!(-> bool),
        };
        let all = prefix == "invalidate_all_";
        if all {
            sig.generics = syn::Generics::default();
        }
        let mut args = self.function.args.iter();
        sig.inputs = sig
            .inputs
            .into_iter()
            .filter_map(|input| match input {
                FnArg::Receiver(_) => Some(syn::parse_quote!(&self)),
                FnArg::Typed(_) => {
                    let identifies = args.next().is_none_or(|arg| arg.identifies);
                    (!all && identifies).then_some(input)
                }
            })
            .collect();
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

    use super::cached_fn;

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
    fn a_function_gets_its_body_once_in_a_twin_and_four_helpers() {
        let expansion = cached_fn(
            quote!(lifetime = 60),
            quote!(
                pub fn get_user(id: u64) -> u64 {
                    id
                }
            ),
            None,
        );
        assert_eq!(
            item_names(expansion.in_place),
            [
                "put_cached_on_the_impl_block_too",
                "get_user",
                "__rtc_uncached_get_user",
                "invalidate_get_user",
                "invalidate_all_get_user",
                "refresh_get_user",
                "key_get_user"
            ]
        );
    }

    #[test]
    fn on_error_the_function_is_kept_unchanged_next_to_the_error_and_stub_helpers() {
        let function = quote!(
            fn get_user(id: u64) -> u64 {
                id
            }
        );
        let expansion = cached_fn(quote!(ttl = 60), function.clone(), None).in_place;
        assert!(expansion.to_string().starts_with(&function.to_string()));
        assert_eq!(
            item_names(expansion),
            [
                "get_user",
                "compile_error",
                "invalidate_get_user",
                "invalidate_all_get_user",
                "key_get_user",
                "refresh_get_user"
            ]
        );
    }

    #[test]
    fn a_method_without_cached_on_its_block_is_refused() {
        let expansion = cached_fn(
            quote!(),
            quote!(
                fn find(&self, id: u64) -> u64 {
                    id
                }
            ),
            None,
        );
        assert_eq!(item_names(expansion.in_place), ["find", "compile_error"]);
    }
}

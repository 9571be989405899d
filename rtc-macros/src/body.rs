//! The bodies of the generated functions: build an `::rtc::__private::Call` and hand it the work.
//!
//! Generated code names only `::rtc::__private::...`, `::core` and `::std`, and its locals start
//! with `__rtc_`. The user's expressions (`tags`, `key`, ...) are evaluated in the function's
//! body, before the body's own code runs: `cache` and `hook_userdata`, then the others in the
//! order of `Call`'s fields.

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Expr, GenericParam, Ident};

use crate::attr::CachedArgs;
use crate::signature::{CachedFn, OutputKind};

/// What a generated function does with the cache.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// The decorated function: a hit, or the body's result, stored.
    Run,
    /// `refresh_<name>`: the body's result, stored.
    Refresh,
    /// `invalidate_<name>`: removes the entry of these arguments.
    Invalidate,
    /// `invalidate_all_<name>`: makes every entry of the function miss.
    InvalidateAll,
}

pub(crate) struct Body<'a> {
    pub(crate) args: &'a CachedArgs,
    pub(crate) function: &'a CachedFn,
    /// The sibling holding the body, if there is one (see `Expansion::twin`).
    pub(crate) twin: Option<Ident>,
}

impl Body<'_> {
    /// The statements of the generated function named `enclosing`.
    pub(crate) fn of(&self, action: Action, enclosing: &Ident) -> TokenStream {
        let args = self.args;
        let computes = matches!(action, Action::Run | Action::Refresh);
        let per_call = action != Action::InvalidateAll;
        let none = quote!(::core::option::Option::None);
        let some = |value: TokenStream| quote!(::core::option::Option::Some(#value));

        // Borrowed by the `Call`, so they need a place of their own.
        let mut locals = TokenStream::new();
        let cache = match &args.cache {
            Some(cache) => {
                locals.extend(quote!(let __rtc_cache = #cache;));
                respan(some(quote!(&*__rtc_cache)), cache)
            }
            None => none.clone(),
        };
        // Only a call that computes reaches the hook.
        let hook_userdata = match &args.hook_userdata {
            Some(userdata) if computes => {
                locals.extend(quote!(let __rtc_userdata = #userdata;));
                respan(some(quote!(&__rtc_userdata)), userdata)
            }
            _ => none.clone(),
        };

        let site = self.site(enclosing);
        let key_args = match &args.key {
            None if per_call => self.args_json(),
            _ => none.clone(),
        };
        let key = match &args.key {
            Some(key) if per_call => some(call(quote!(::rtc::__private::custom_key), key)),
            _ => none.clone(),
        };
        let tags = match &args.tags {
            Some(tags) if per_call => call(quote!(::rtc::__private::tags), tags),
            _ => quote!(::std::vec::Vec::new()),
        };
        let lifetime = match &args.lifetime {
            Some(seconds) if computes => some(seconds_of(seconds)),
            _ => none,
        };
        let lock = match &args.lock {
            Some(lock) if computes => lock.to_token_stream(),
            _ => quote!(false),
        };
        let lock_timeout = match &args.lock_timeout {
            Some(seconds) if computes => seconds_of(seconds),
            _ => quote!(::rtc::__private::Duration::from_secs(5)),
        };
        let finish = self.finish(action);
        quote! {
            #locals
            let __rtc_call = ::rtc::__private::Call {
                site: #site,
                cache: #cache,
                args: #key_args,
                key: #key,
                tags: #tags,
                lifetime: #lifetime,
                lock: #lock,
                lock_timeout: #lock_timeout,
                hook_userdata: #hook_userdata,
            };
            #finish
        }
    }

    /// The call into the runtime that ends the function.
    fn finish(&self, action: Action) -> TokenStream {
        let is_async = self.function.is_async();
        let (method, value) = match (action, is_async) {
            (Action::Invalidate, false) => return quote!(__rtc_call.invalidate()),
            (Action::Invalidate, true) => return quote!(__rtc_call.invalidate_async().await),
            (Action::InvalidateAll, false) => return quote!(__rtc_call.invalidate_all()),
            (Action::InvalidateAll, true) => {
                return quote!(__rtc_call.invalidate_all_async().await)
            }
            (Action::Run, false) => (quote!(run), self.result()),
            (Action::Run, true) => (quote!(run_async), self.result()),
            (Action::Refresh, false) => (quote!(refresh), self.result()),
            (Action::Refresh, true) => (quote!(refresh_async), self.result()),
        };
        let (outcome, unwrap) = match self.function.output.kind {
            OutputKind::Result | OutputKind::Option => (value, None),
            OutputKind::AsIs => (quote!(::rtc::__private::AsIs(#value)), Some(quote!(.0))),
        };
        let codec = self.codec();
        if is_async {
            quote!(__rtc_call.#method(#codec, async move { #outcome }).await #unwrap)
        } else {
            quote!(__rtc_call.#method(#codec, move || #outcome) #unwrap)
        }
    }

    fn site(&self, enclosing: &Ident) -> TokenStream {
        let function_name = self.function.item.sig.ident.unraw().to_string();
        let method = self.function.receiver.is_some();
        let class_name = if method {
            quote!(::core::any::type_name::<Self>())
        } else {
            // An associated function without receiver must not share entries with a namesake of
            // another type. An item declared in it has the path "<module>::<Type>::<function>::.."
            // (no type for a free function), from which `type_name` gives what `Self` would.
            let suffix = format!("::{}::__RtcScope", enclosing.unraw());
            quote! {{
                #[allow(dead_code)]
                struct __RtcScope;
                match ::core::any::type_name::<__RtcScope>().strip_suffix(#suffix) {
                    ::core::option::Option::Some(__rtc_type) if __rtc_type != ::core::module_path!() => {
                        __rtc_type
                    }
                    _ => "",
                }
            }}
        };
        quote! {
            ::rtc::__private::Site {
                filepath: ::core::file!(),
                module_path: ::core::module_path!(),
                class_name: #class_name,
                function_name: #function_name,
                method: #method,
            }
        }
    }

    /// The key arguments, then the function's type and const parameters (so that `f::<A>` and
    /// `f::<B>` do not share entries), as a JSON array; `None` when one does not serialize.
    ///
    /// Serialized one by one, so that "`T` does not implement `Serialize`" points at the argument,
    /// once, rather than at a tuple of them all.
    fn args_json(&self) -> TokenStream {
        let arguments = self
            .function
            .key_args()
            .map(|ident| quote_spanned!(ident.span()=> ::rtc::__private::args_json(&#ident)));
        let generics =
            self.function
                .item
                .sig
                .generics
                .params
                .iter()
                .filter_map(|param| match param {
                    GenericParam::Type(param) => {
                        let ident = &param.ident;
                        Some(
                            quote!(::rtc::__private::args_json(::core::any::type_name::<#ident>())),
                        )
                    }
                    GenericParam::Const(param) => {
                        let ident = &param.ident;
                        Some(quote!(::rtc::__private::args_json(&#ident)))
                    }
                    GenericParam::Lifetime(_) => None,
                });
        let parts = arguments.chain(generics);
        quote! {
            ::core::iter::Iterator::collect::<
                ::core::option::Option<::std::vec::Vec<::std::string::String>>
            >(::core::iter::IntoIterator::into_iter([#(#parts),*]))
            .map(|__rtc_parts| ::std::format!("[{}]", __rtc_parts.join(",")))
        }
    }

    /// Spanned at the cached type, so that "`T` does not implement `Serialize`" points there.
    fn codec(&self) -> TokenStream {
        let value = &self.function.output.value;
        match &self.args.codec {
            Some(codec) => {
                let (serializer, unserializer) = (&codec.serializer, &codec.unserializer);
                quote_spanned! {value.span()=>
                    ::rtc::__private::Codec::<#value>::custom(#serializer, #unserializer)
                }
            }
            None => quote_spanned!(value.span()=> ::rtc::__private::Codec::<#value>::json()),
        }
    }

    /// The expression that runs the body, in the closure (sync) or the async block given to the
    /// runtime.
    fn result(&self) -> TokenStream {
        let function = self.function;
        let ty = &function.output.ty;
        let Some(twin) = &self.twin else {
            // In a closure or block of its own, where `return` and `?` keep their meaning.
            let block = &function.item.block;
            return if function.is_async() {
                quote! {{
                    // Pins the block's output type, which `?` in the body needs to infer.
                    fn __rtc_output<R, F: ::core::future::Future<Output = R>>(future: F) -> F {
                        future
                    }
                    __rtc_output::<#ty, _>(async move #block).await
                }}
            } else {
                quote!((move || -> #ty #block)())
            };
        };
        let generics = function
            .item
            .sig
            .generics
            .params
            .iter()
            .filter_map(|param| match param {
                GenericParam::Type(param) => Some(&param.ident),
                GenericParam::Const(param) => Some(&param.ident),
                GenericParam::Lifetime(_) => None,
            });
        let generics: Vec<_> = generics.collect();
        let turbofish = (!generics.is_empty()).then(|| quote!(::<#(#generics),*>));
        let args = function.arg_names();
        let await_ = function.is_async().then(|| quote!(.await));
        let call = quote!(Self::#twin #turbofish(self, #(#args),*) #await_);
        if function.is_unsafe() {
            quote!(unsafe { #call })
        } else {
            call
        }
    }
}

/// `lifetime`/`lock_timeout`: whole seconds, a `u64`.
fn seconds_of(seconds: &Expr) -> TokenStream {
    call(quote!(::rtc::__private::Duration::from_secs), seconds)
}

/// `function(argument)`, spanned so that an error about the call underlines `argument`.
fn call(function: TokenStream, argument: &Expr) -> TokenStream {
    let function = respan(function, argument);
    let mut argument = Group::new(Delimiter::Parenthesis, argument.to_token_stream());
    argument.set_span(last_span(argument.stream()));
    quote!(#function #argument)
}

/// Generated `tokens` made to cover the user's `over`: an error about the expression they form
/// underlines `over` rather than the whole attribute.
fn respan(tokens: TokenStream, over: &impl ToTokens) -> TokenStream {
    let over = over.to_token_stream();
    let first = over
        .clone()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |token| token.span());
    let last = last_span(over);
    let mut spans = std::iter::once(first).chain(std::iter::repeat(last));
    tokens
        .into_iter()
        .map(|token| set_span(token, spans.next().unwrap_or(last)))
        .collect()
}

fn last_span(tokens: TokenStream) -> Span {
    tokens
        .into_iter()
        .last()
        .map_or_else(Span::call_site, |token| token.span())
}

fn set_span(mut token: TokenTree, span: Span) -> TokenTree {
    if let TokenTree::Group(group) = &token {
        let stream = group
            .stream()
            .into_iter()
            .map(|token| set_span(token, span))
            .collect();
        let mut group = Group::new(group.delimiter(), stream);
        group.set_span(span);
        return group.into();
    }
    token.set_span(span);
    token
}

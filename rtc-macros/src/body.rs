//! The bodies of the generated functions: build an `rtc::__private::Call` and hand it the work.
//!
//! Generated code names only the facade's `__private` module (`::rtc::__private`, or wherever
//! `crate::facade` found it), `::core` and `::std`, and its locals start with `__rtc_`. The user's expressions (`tags`, `key`, ...) are evaluated in the function's
//! body, before the body's own code runs: `cache` and `hook_userdata`, then the others in the
//! order of `Call`'s fields.

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Expr, GenericParam, Ident};

use crate::attr::{CachedArgs, StaleWindow, Window};
use crate::block::ImplBlock;
use crate::keyed_tags;
use crate::signature::CachedFn;

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
    /// `key_<name>`: the key of these arguments.
    Key,
}

pub(crate) struct Body<'a> {
    pub(crate) args: &'a CachedArgs,
    pub(crate) function: &'a CachedFn,
    /// The `#[cached]` impl block the function is in, if any.
    pub(crate) block: Option<&'a ImplBlock>,
    /// `__rtc_uncached_<name>`, the function as written, renamed: a sibling of the function, or
    /// an associated function of the block's type.
    pub(crate) twin: Ident,
    /// The path of the facade's support module: `::rtc::__private`, or under the name the
    /// application gave the dependency (see `crate::facade`).
    pub(crate) private: TokenStream,
}

impl Body<'_> {
    /// The statements of a generated function.
    pub(crate) fn of(&self, action: Action) -> TokenStream {
        let args = self.args;
        let private = &self.private;
        let computes = matches!(action, Action::Run | Action::Refresh);
        let per_call = action != Action::InvalidateAll;
        let uses_cache = action != Action::Key;
        let none = quote!(::core::option::Option::None);
        let some = |value: TokenStream| quote!(::core::option::Option::Some(#value));

        // Borrowed by the `Call`, so they need a place of their own.
        let mut locals = TokenStream::new();
        if computes {
            let shape = self.shape();
            locals.extend(quote!(let __rtc_shape = #shape;));
        }
        let cache = match &args.cache {
            Some(cache) if uses_cache => {
                locals.extend(quote!(let __rtc_cache = #cache;));
                respan(some(quote!(&*__rtc_cache)), cache)
            }
            _ => none.clone(),
        };
        // Only a call that computes reaches the hook.
        let hook_userdata = match &args.hook_userdata {
            Some(userdata) if computes => {
                locals.extend(quote!(let __rtc_userdata = #userdata;));
                respan(some(quote!(&__rtc_userdata)), userdata)
            }
            _ => none.clone(),
        };

        let keyed = action == Action::Run && self.tags_follow_key();
        let site = self.site(keyed);
        let key_args = match &args.key {
            // Written by the statements before the near lookup (below).
            None if keyed => quote!(__rtc_json.finish()),
            None if per_call => self.args_json(),
            // Shown to the hook only.
            Some(_) if computes => {
                let json = self.optional_args_json();
                quote!((#json).map(#private::JsonArgs::from))
            }
            _ => none.clone(),
        };
        let key = match &args.key {
            Some(key) if per_call => some(call(quote!(#private::custom_key), key)),
            _ => none.clone(),
        };
        let tags = match &args.tags {
            Some(tags) if per_call && uses_cache => match tags {
                Expr::Array(array) if !array.elems.is_empty() => {
                    // One by one, so that "users" and format!(..) can be mixed, and an error
                    // points at the element.
                    let elements = array
                        .elems
                        .iter()
                        .map(|tag| call(quote!(#private::tag), tag));
                    quote! {
                        <#private::Tags as ::core::iter::FromIterator<::std::string::String>>::from_iter(
                            [#(#elements),*]
                        )
                    }
                }
                tags => call(quote!(#private::tags), tags),
            },
            _ => quote!(#private::Tags::new()),
        };
        let duration = |option: &Option<Expr>| match option {
            Some(value) if computes => some(duration_of(value, private)),
            _ => none.clone(),
        };
        let lifetime = match &args.lifetime {
            Some(value) if computes => lifetime_of(value, private),
            _ => quote!(#private::Lifetime::Default),
        };
        let jitter = duration(&args.jitter);
        let lock = match &args.lock {
            Some(lock) if computes => lock.to_token_stream(),
            _ => quote!(false),
        };
        let lock_timeout = match &args.lock_timeout {
            Some(seconds) if computes => duration_of(seconds, private),
            _ => quote!(#private::Duration::from_secs(5)),
        };
        let window =
            |option: &Option<StaleWindow>| match option.as_ref().map(|option| &option.value) {
                Some(Window::Given(value)) if computes => some(duration_of(value, private)),
                // A window that serves nothing: the cache's default is off for this function.
                Some(Window::Off) if computes => some(quote!(#private::Duration::ZERO)),
                _ => none.clone(),
            };
        let stale_if_error = window(&args.stale_if_error);
        let stale_while_revalidate = window(&args.stale_while_revalidate);
        let timeout = window(&args.stale_if_slow);
        let background = computes && args.detaching().is_some();
        if keyed {
            // The near entry is looked up before the tags are built (see `keyed_tags`).
            let codec = self.codec();
            let answer = quote!(#private::Shape::cached(__rtc_shape, __rtc_value));
            // The arguments' JSON is read where it was written (moved first, the bytes just
            // written would be copied, a stall on the path of a hit).
            let pushes = self.json_pushes();
            locals = quote! {
                static __RTC_KEYED_TAGS: #private::KeyedTags =
                    #private::KeyedTags::new();
                #locals
                let __rtc_site = #site;
                #pushes
                let __rtc_codec = #codec;
                let mut __rtc_near = ::core::option::Option::None;
                __rtc_site.near_answer(#cache, __rtc_json.closed(), &__rtc_codec, &mut __rtc_near);
                if let ::core::option::Option::Some(__rtc_value) = __rtc_near {
                    return #answer;
                }
            };
        }
        let site = match keyed {
            true => quote!(__rtc_site),
            false => site,
        };
        let finish = self.finish(action, keyed);
        quote! {
            #locals
            let __rtc_call = #private::Call {
                site: #site,
                cache: #cache,
                args: #key_args,
                key: #key,
                tags: #tags,
                lifetime: #lifetime,
                lock: #lock,
                lock_timeout: #lock_timeout,
                hook_userdata: #hook_userdata,
                jitter: #jitter,
                stale: #private::StaleOptions {
                    if_error: #stale_if_error,
                    while_revalidate: #stale_while_revalidate,
                    timeout: #timeout,
                    background: #background,
                },
            };
            #finish
        }
    }

    /// Whether the tags are made from the key arguments alone, with a generated key, on a
    /// function that may be answered from the near cache (see `keyed_tags`).
    fn tags_follow_key(&self) -> bool {
        let args = self.args;
        args.key.is_none()
            && args.near.as_ref().is_none_or(|near| near.value)
            && args
                .tags
                .as_ref()
                .is_some_and(|tags| keyed_tags::follow_from(tags, self.function.key_args()))
    }

    /// The call into the runtime that ends the function (`codec_bound`: the codec is the local
    /// `__rtc_codec`).
    fn finish(&self, action: Action, codec_bound: bool) -> TokenStream {
        let is_async = self.function.is_async();
        let method = match (action, is_async) {
            (Action::Key, _) => return quote!(__rtc_call.key()),
            (Action::Invalidate, false) => return quote!(__rtc_call.invalidate()),
            (Action::Invalidate, true) => return quote!(__rtc_call.invalidate_async().await),
            (Action::InvalidateAll, false) => return quote!(__rtc_call.invalidate_all()),
            (Action::InvalidateAll, true) => {
                return quote!(__rtc_call.invalidate_all_async().await)
            }
            // The computation may outlive the call (checked by `CachedFn::analyze`).
            (Action::Run, false) if self.args.detaching().is_some() => quote!(run_detached),
            (Action::Run, true) if self.args.detaching().is_some() => quote!(run_detached_async),
            (Action::Run, false) => quote!(run),
            (Action::Run, true) => quote!(run_async),
            (Action::Refresh, false) => quote!(refresh),
            (Action::Refresh, true) => quote!(refresh_async),
        };
        let private = &self.private;
        let value = self.result();
        let (mut outcome, mut field) = (
            quote!(#private::Shape::outcome(__rtc_shape, #value)),
            quote!(),
        );
        if let Some(unless) = &self.args.unless {
            outcome = quote! {{
                let __rtc_value = #value;
                let __rtc_store = !#private::skips(&__rtc_value, #unless);
                #private::Unless {
                    outcome: #private::Shape::outcome(__rtc_shape, __rtc_value),
                    store: __rtc_store,
                }
            }};
            field = quote!(.outcome);
        }
        let codec = match codec_bound {
            true => quote!(__rtc_codec),
            false => self.codec(),
        };
        let returned = if is_async {
            quote!(__rtc_call.#method(#codec, async move { #outcome }).await #field)
        } else {
            quote!(__rtc_call.#method(#codec, move || #outcome) #field)
        };
        quote!(#private::Shape::returned(__rtc_shape, #returned))
    }

    /// Where the function is and what its keys are made of (see `Site::identity`); `keyed`:
    /// its tags follow from its key, and the site's mark is the static `__RTC_KEYED_TAGS`.
    fn site(&self, keyed: bool) -> TokenStream {
        let private = &self.private;
        let function_name = self.function.item.sig.ident.unraw().to_string();
        let method = self.function.receiver.is_some();
        let impl_type = self.block.map(ImplBlock::impl_type).unwrap_or_default();
        let identity = match (&self.args.name, self.block) {
            (Some(name), _) => quote!(#name),
            (None, Some(block)) => {
                let owner = format!("::{}::{function_name}", block.owner());
                quote!(::core::concat!(::core::module_path!(), #owner))
            }
            (None, None) => {
                let function = format!("::{function_name}");
                quote!(::core::concat!(::core::module_path!(), #function))
            }
        };
        let keyed_tags = match keyed {
            true => quote!(::core::option::Option::Some(&__RTC_KEYED_TAGS)),
            false => quote!(::core::option::Option::None),
        };
        quote! {
            #private::Site {
                file: ::core::file!(),
                module_path: ::core::module_path!(),
                impl_type: #impl_type,
                function_name: #function_name,
                is_method: #method,
                identity: #identity,
                keyed_tags: #keyed_tags,
            }
        }
    }

    /// The type and const parameters of the function and its `impl` block, so that `f::<A>`
    /// and `f::<B>`, or `Repo::<A>::f` and `Repo::<B>::f`, do not share entries.
    fn generic_params(&self) -> impl Iterator<Item = &GenericParam> {
        let block = self.block.map(|block| &block.generics.params);
        self.function
            .item
            .sig
            .generics
            .params
            .iter()
            .chain(block.into_iter().flatten())
    }

    /// The key arguments, then the generic parameters (type names from `type_name`), as a JSON
    /// array; `None` when one does not serialize.
    ///
    /// Serialized one by one, so that "`T` cannot be part of a key" points at the argument, once,
    /// rather than at a tuple of them all.
    fn args_json(&self) -> TokenStream {
        let pushes = self.json_pushes();
        quote! {{
            #pushes
            __rtc_json.finish()
        }}
    }

    /// The statements that write the key arguments and generic parameters into the local
    /// `JsonArray` `__rtc_json`.
    fn json_pushes(&self) -> TokenStream {
        let private = &self.private;
        let arguments = self
            .function
            .key_args()
            .map(|ident| quote_spanned!(ident.span()=> __rtc_json.push(&#ident);));
        let generics = self.generic_params().filter_map(|param| match param {
            GenericParam::Type(param) => {
                let ident = &param.ident;
                Some(quote!(__rtc_json.push(::core::any::type_name::<#ident>());))
            }
            GenericParam::Const(param) => {
                let ident = &param.ident;
                Some(quote!(__rtc_json.push(&#ident);))
            }
            GenericParam::Lifetime(_) => None,
        });
        let pushes: Vec<TokenStream> = arguments.chain(generics).collect();
        quote! {
            let mut __rtc_json = #private::JsonArray::new();
            #(#pushes)*
        }
    }

    /// With `key = ...`, the key arguments as the hook's `function_args`: `None` when one is not
    /// `Serialize`, which it need not be.
    fn optional_args_json(&self) -> TokenStream {
        let private = &self.private;
        let arguments = self.function.key_args().map(|ident| {
            quote! {{
                #[allow(unused_imports)]
                use #private::{SerializableArgument as _, UnserializableArgument as _};
                (&#private::OptionalArgument(&#ident)).argument_json()
            }}
        });
        json_array(arguments)
    }

    /// Which part of the return value is cached: asked of the return type's type (see
    /// `rtc_core::decorate::shape`), or the whole value with `cache_err`/`cache_none`, which
    /// check that the type is a `Result`/an `Option`. With `stale_if_error` alone, checked to be
    /// a shape that can fail.
    fn shape(&self) -> TokenStream {
        let private = &self.private;
        let ty = &self.function.output.ty;
        let whole = |switch: &syn::LitBool, check: TokenStream| {
            let check = respan(check, switch);
            quote!(#check(#private::AsIsShape::<#ty>::new()))
        };
        let switches = [
            (&self.args.cache_err, quote!(#private::caches_errors)),
            (&self.args.cache_none, quote!(#private::caches_none)),
        ];
        let mut checks = TokenStream::new();
        let mut shape = None;
        for (switch, check) in switches {
            let Some(switch) = switch else { continue };
            let checked = whole(switch, check);
            if switch.value && shape.is_none() {
                shape = Some(checked);
            } else {
                checks.extend(quote!(let _ = #checked;));
            }
        }
        let shape = shape.unwrap_or_else(|| {
            quote! {{
                #[allow(unused_imports)]
                use #private::{ShapeAsIs as _, ShapeOfOption as _, ShapeOfResult as _};
                (&#private::ShapeProbe::<#ty>::new()).shape()
            }}
        });
        // Without `stale_if_slow` (which serves a stale value within `stale_if_error` when the
        // body is slow, whatever it returns), `stale_if_error` needs failures to replace.
        let slow = self.args.stale_if_slow.as_ref();
        let shape = match &self.args.stale_if_error {
            Some(window) if !window.is_off() && slow.is_none_or(StaleWindow::is_off) => {
                let fails = respan(quote!(#private::fails), &window.keyword);
                quote!(#fails(#shape))
            }
            _ => shape,
        };
        quote!({ #checks #shape })
    }

    /// Spanned at the cached type, so that "`T` does not implement `Serialize`" points there.
    fn codec(&self) -> TokenStream {
        let private = &self.private;
        let value = &self.function.output.value;
        let codec = match (&self.args.custom_codec, &self.args.codec) {
            (Some(custom), _) => {
                let (serializer, deserializer) = (&custom.serializer, &custom.deserializer);
                quote_spanned! {value.span()=>
                    #private::custom_codec(__rtc_shape, #serializer, #deserializer)
                }
            }
            (None, Some(codec)) => {
                let codec = quote_spanned!(codec.span()=> ::core::option::Option::Some::<#private::Codec>(#codec));
                quote_spanned!(value.span()=> #private::serde_codec(__rtc_shape, #codec))
            }
            (None, None) => quote_spanned! {value.span()=>
                #private::serde_codec(__rtc_shape, ::core::option::Option::None)
            },
        };
        let codec = match &self.args.compress_above {
            Some(bytes) => quote_spanned!(bytes.span()=> #codec.compress_above(#bytes)),
            None => codec,
        };
        if self.args.near.as_ref().is_some_and(|near| !near.value) {
            return codec;
        }
        // Values that are `Clone + Send + Sync + 'static` are kept decoded in the near cache;
        // the probe's method resolves to "not shared" for every other type. The probe's type
        // comes from the shape, known by then.
        quote! {{
            #[allow(unused_imports)]
            use #private::{NearShared as _, NearUnshared as _};
            let __rtc_probe = #private::near_probe(__rtc_shape);
            #codec.near((&__rtc_probe).sharing())
        }}
    }

    /// The call of the twin that runs the body.
    fn result(&self) -> TokenStream {
        let function = self.function;
        let twin = &self.twin;
        let generics: Vec<_> = function
            .item
            .sig
            .generics
            .params
            .iter()
            .filter_map(|param| match param {
                GenericParam::Type(param) => Some(&param.ident),
                GenericParam::Const(param) => Some(&param.ident),
                GenericParam::Lifetime(_) => None,
            })
            .collect();
        let turbofish = (!generics.is_empty()).then(|| quote!(::<#(#generics),*>));
        let receiver = function.receiver.as_ref().map(|_| quote!(self,));
        let args = function.arg_names();
        let path = match self.block {
            Some(_) => quote!(Self::#twin),
            None => quote!(#twin),
        };
        let await_ = function.is_async().then(|| quote!(.await));
        let call = quote!(#path #turbofish(#receiver #(#args),*) #await_);
        if function.is_unsafe() {
            quote!(unsafe { #call })
        } else {
            call
        }
    }
}

/// `parts`, each an `Option<String>` of JSON, as one `Option<String>` JSON array.
fn json_array(parts: impl Iterator<Item = TokenStream>) -> TokenStream {
    quote! {
        ::core::iter::Iterator::collect::<
            ::core::option::Option<::std::vec::Vec<::std::string::String>>
        >(::core::iter::IntoIterator::into_iter([#(#parts),*]))
        .map(|__rtc_parts| ::std::format!("[{}]", __rtc_parts.join(",")))
    }
}

/// `jitter`, `lock_timeout` and the stale windows: whole seconds or a `Duration`. A literal is
/// converted here, so that `60` needs no type; the generated code keeps the macro's span, so
/// lints on it do not point at the user's literal.
fn duration_of(value: &Expr, private: &TokenStream) -> TokenStream {
    if let Expr::Lit(literal) = value {
        match &literal.lit {
            syn::Lit::Int(int) => {
                return quote!(#private::Duration::from_secs(#int));
            }
            // Checked by `CachedFn::analyze`: finite, not negative, not too long.
            syn::Lit::Float(float) => {
                return quote!(#private::Duration::from_secs_f64(#float));
            }
            _ => {}
        }
    }
    quote!(#private::duration(#value))
}

/// `lifetime`: whole seconds, a `Duration` or an `rtc::Lifetime` (a literal zero is refused by
/// `CachedFn::analyze`).
fn lifetime_of(value: &Expr, private: &TokenStream) -> TokenStream {
    match value {
        Expr::Lit(literal) if matches!(literal.lit, syn::Lit::Int(_) | syn::Lit::Float(_)) => {
            let duration = duration_of(value, private);
            quote!(#private::Lifetime::After(#duration))
        }
        _ => quote!(#private::lifetime(#value)),
    }
}

/// `function(argument)`, spanned so that an error about the call underlines `argument`.
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

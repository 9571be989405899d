//! What the macro needs to know about the decorated function, and the checks on it.

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::visit::Visit;
use syn::{
    Attribute, FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, Receiver, Signature,
    Token, Type,
};

use crate::attr::{CachedArgs, Detaching, Skip};
use crate::errors::Errors;
use crate::written::written;

pub(crate) struct CachedFn {
    pub(crate) item: ItemFn,
    pub(crate) receiver: Option<Receiver>,
    pub(crate) args: Vec<Arg>,
    pub(crate) output: Output,
}

/// One argument other than the receiver.
pub(crate) struct Arg {
    pub(crate) ident: Ident,
    /// Left out of the generated key by `skip(...)` or `skip_all`.
    pub(crate) skipped: bool,
    /// Taken by `invalidate_<name>` and `key_<name>`: not skipped, or named in `key` or `tags`,
    /// which those evaluate.
    pub(crate) identifies: bool,
}

/// The return type, and which part of it is cached.
pub(crate) struct Output {
    /// The type stored in the cache: `T` of `Result<T, E>` and `Option<T>`, else `ty`.
    pub(crate) value: Type,
    pub(crate) kind: OutputKind,
    /// `impl Trait` appears in it (an error).
    pub(crate) is_impl_trait: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputKind {
    /// `Result<T, ..>`: only `Ok` is cached.
    Result,
    /// `Option<T>`: only `Some` is cached.
    Option,
    /// Everything else, and `Result`/`Option` with `cache_err`/`cache_none`, is cached as it is.
    AsIs,
}

impl CachedFn {
    /// Checks `item` and the options that depend on it (`args`, when they parsed), reporting
    /// every problem to `errors`.
    pub(crate) fn analyze(item: ItemFn, args: Option<&CachedArgs>, errors: &mut Errors) -> Self {
        let sig = &item.sig;
        if let Some(constness) = &sig.constness {
            errors.spanned(
                constness,
                "`#[cached]` cannot be used on a `const fn`: the cache is read at run time; remove `const`",
            );
        }
        if let Some(variadic) = &sig.variadic {
            errors.spanned(
                variadic,
                "`#[cached]` cannot be used on a variadic function",
            );
        }

        let mut receiver = None;
        let mut arguments = Vec::new();
        let mut mutable_borrows = Vec::new();
        for input in &sig.inputs {
            match input {
                FnArg::Receiver(found) => receiver = Some(found.clone()),
                FnArg::Typed(typed) => match &*typed.pat {
                    Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
                        if let Type::Reference(reference) = &*typed.ty {
                            if reference.mutability.is_some() {
                                mutable_borrows.push((pat.ident.clone(), typed.ty.clone()));
                            }
                        }
                        arguments.push(Arg {
                            ident: pat.ident.clone(),
                            skipped: false,
                            identifies: true,
                        });
                    }
                    pattern => errors.spanned(
                        pattern,
                        "arguments of a `#[cached]` function must be plain names (`name: Type`), so that \
                         they can be passed on and used in `key` and `tags`; destructure it in the body instead",
                    ),
                },
            }
        }

        let skip = args.map_or(&Skip::None, |args| &args.skip);
        if let Skip::All = skip {
            for arg in &mut arguments {
                arg.skipped = true;
            }
        }
        let names = skip.names();
        for (i, name) in names.iter().enumerate() {
            if name == "self" {
                // The receiver is never part of the key: nothing to do.
            } else if names[..i].contains(name) {
                errors.spanned(name, format!("`{name}` is already skipped"));
            } else if let Some(arg) = arguments
                .iter_mut()
                .find(|arg| arg.ident.unraw() == name.unraw())
            {
                arg.skipped = true;
            } else {
                errors.spanned(name, not_an_argument(name, &sig.ident, &arguments));
            }
        }

        for (ident, ty) in mutable_borrows {
            let skipped = arguments
                .iter()
                .any(|arg| arg.ident == ident && arg.skipped);
            if args.is_some() && !skipped {
                errors.spanned(
                    ty,
                    format!(
                        "`{ident}` is borrowed mutably, but on a cache hit the body does not run and \
                         would not change it; if it does not affect the result, leave it out of the key \
                         with `skip({ident})`, else do not cache this function"
                    ),
                );
            }
        }

        if let Some(args) = args {
            let mentioned = mentioned_names(args);
            for arg in &mut arguments {
                arg.identifies = !arg.skipped || mentioned.contains(&arg.ident.unraw().to_string());
            }
        }

        if let Some(args) = args {
            check_float_seconds(args, errors);
            if let Some(detaching) = args.detaching() {
                check_owned(sig, detaching, errors);
            }
        }
        let output = Output::of(&sig.output, args, errors);
        CachedFn {
            item,
            receiver,
            args: arguments,
            output,
        }
    }

    pub(crate) fn is_async(&self) -> bool {
        self.item.sig.asyncness.is_some()
    }

    pub(crate) fn is_unsafe(&self) -> bool {
        self.item.sig.unsafety.is_some()
    }

    /// The arguments that make up the generated key.
    pub(crate) fn key_args(&self) -> impl Iterator<Item = &Ident> {
        self.args
            .iter()
            .filter(|arg| !arg.skipped)
            .map(|arg| &arg.ident)
    }

    pub(crate) fn arg_names(&self) -> impl Iterator<Item = &Ident> {
        self.args.iter().map(|arg| &arg.ident)
    }
}

/// `stale_while_revalidate` and `timeout` run the computation on after the call returned (a
/// background refresh, a late value stored), on a thread or a task of its own: it cannot
/// borrow anything from its caller.
fn check_owned(sig: &Signature, detaching: &Detaching, errors: &mut Errors) {
    let option = &detaching.keyword;
    for input in &sig.inputs {
        let (borrowed, instead) = match input {
            FnArg::Receiver(receiver) => (
                format!("`{}`", written(receiver)),
                "take `self` by value (a handle that is cheap to clone, such as one holding an \
                 `Arc`)",
            ),
            FnArg::Typed(typed) => (
                format!("`{}: {}`", written(&typed.pat), written(&typed.ty)),
                "take it by value (an owned type such as `String`, `Vec<T>` or an `Arc<T>`)",
            ),
        };
        let borrows = match input {
            FnArg::Receiver(receiver) => receiver.reference.is_some() || borrows(&receiver.ty),
            FnArg::Typed(typed) => borrows(&typed.ty),
        };
        if borrows {
            errors.spanned(
                input,
                format!(
                    "`{option}` lets the computation go on after the call has returned (a \
                     background refresh, or a late value that is stored), so the function cannot \
                     borrow from its caller, and {borrowed} is borrowed; {instead}, or leave \
                     `{option}` out (`stale_if_error` needs no background and works here)"
                ),
            );
        }
    }
}

/// True when `ty` holds a reference or a lifetime other than `'static`.
fn borrows(ty: &Type) -> bool {
    #[derive(Default)]
    struct FindBorrow(bool);
    impl Visit<'_> for FindBorrow {
        fn visit_type_reference(&mut self, reference: &syn::TypeReference) {
            let lifetime = reference.lifetime.as_ref();
            self.0 |= lifetime.is_none_or(|lifetime| lifetime.ident != "static");
            self.visit_type(&reference.elem);
        }
        fn visit_lifetime(&mut self, lifetime: &syn::Lifetime) {
            self.0 |= lifetime.ident != "static";
        }
    }
    let mut finder = FindBorrow::default();
    finder.visit_type(ty);
    finder.0
}

/// A float literal of seconds becomes a `Duration` at run time, which must not panic.
fn check_float_seconds(args: &CachedArgs, errors: &mut Errors) {
    let detaching = [&args.stale_while_revalidate, &args.timeout]
        .into_iter()
        .flatten()
        .filter_map(|option| option.value.as_ref());
    let options = [
        &args.lifetime,
        &args.jitter,
        &args.lock_timeout,
        &args.stale_if_error,
    ];
    for option in options.into_iter().flatten().chain(detaching) {
        let syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Float(float),
            ..
        }) = option
        else {
            continue;
        };
        let valid = float
            .base10_parse::<f64>()
            .is_ok_and(|seconds| std::time::Duration::try_from_secs_f64(seconds).is_ok());
        if !valid {
            errors.spanned(
                float,
                "expected a number of seconds that a `Duration` can hold",
            );
        }
    }
}

/// The identifiers in `key = ...` and `tags = ...`, which `invalidate_<name>` evaluates.
fn mentioned_names(args: &CachedArgs) -> Vec<String> {
    fn collect(tokens: TokenStream, names: &mut Vec<String>) {
        for token in tokens {
            match token {
                TokenTree::Ident(ident) => names.push(ident.unraw().to_string()),
                TokenTree::Group(group) => collect(group.stream(), names),
                _ => {}
            }
        }
    }
    let mut names = Vec::new();
    for expr in [&args.key, &args.tags].into_iter().flatten() {
        collect(expr.to_token_stream(), &mut names);
    }
    names
}

fn not_an_argument(name: &Ident, function: &Ident, args: &[Arg]) -> String {
    let mut message = format!("`{name}` is not an argument of `{function}`");
    if !args.is_empty() {
        let names = args
            .iter()
            .map(|arg| format!("`{}`", arg.ident))
            .collect::<Vec<_>>();
        message += &format!("; its arguments are {}", names.join(", "));
    }
    message
}

impl Output {
    fn of(output: &syn::ReturnType, args: Option<&CachedArgs>, errors: &mut Errors) -> Self {
        let ty = match output {
            syn::ReturnType::Default => syn::parse_quote!(()),
            syn::ReturnType::Type(_, ty) => (**ty).clone(),
        };
        let impl_trait = impl_trait_in(&ty);
        if let Some(impl_token) = impl_trait {
            errors.spanned(
                impl_token,
                "a `#[cached]` function cannot return `impl Trait`: the cached value is read back from \
                 the cache, so it needs a concrete type that implements `Serialize` and `DeserializeOwned`",
            );
        }
        let (mut kind, mut value) = match args.and_then(|args| args.returns.as_ref()) {
            Some(returns) => {
                let kind = if returns == "Result" {
                    OutputKind::Result
                } else {
                    OutputKind::Option
                };
                (
                    kind,
                    syn::parse_quote!(<#ty as ::rtc::__private::Outcome>::Value),
                )
            }
            None => {
                let (kind, value) = classify(&ty);
                (kind, value.clone())
            }
        };
        let switches = args.map(|args| {
            [
                (&args.cache_err, OutputKind::Result),
                (&args.cache_none, OutputKind::Option),
            ]
        });
        for (switch, applies_to) in switches.into_iter().flatten() {
            let Some(switch) = switch else { continue };
            if kind == applies_to {
                if switch.value {
                    kind = OutputKind::AsIs;
                    value = ty.clone();
                }
            } else {
                let (written, alias) = if applies_to == OutputKind::Result {
                    ("Result<T, E>", "returns = Result")
                } else {
                    ("Option<T>", "returns = Option")
                };
                errors.spanned(
                    switch,
                    format!(
                        "`{}` applies to a function that returns `{written}`; for a type alias of it, \
                         add `{alias}`",
                        if applies_to == OutputKind::Result { "cache_err" } else { "cache_none" }
                    ),
                );
            }
        }
        Output {
            value,
            kind,
            is_impl_trait: impl_trait.is_some(),
        }
    }
}

/// Decided on the last path segment as written: a type alias of `Result` is cached as it is.
fn classify(ty: &Type) -> (OutputKind, &Type) {
    let inner = match ty {
        Type::Group(group) => return classify(&group.elem),
        Type::Paren(paren) => return classify(&paren.elem),
        Type::Path(path) if path.qself.is_none() => path.path.segments.last(),
        _ => None,
    };
    let Some(segment) = inner else {
        return (OutputKind::AsIs, ty);
    };
    let PathArguments::AngleBracketed(generics) = &segment.arguments else {
        return (OutputKind::AsIs, ty);
    };
    let types: Vec<&Type> = generics
        .args
        .iter()
        .filter_map(|arg| match arg {
            GenericArgument::Type(ty) => Some(ty),
            _ => None,
        })
        .collect();
    match (segment.ident.to_string().as_str(), types.as_slice()) {
        ("Result", [value] | [value, _]) => (OutputKind::Result, value),
        ("Option", [value]) => (OutputKind::Option, value),
        _ => (OutputKind::AsIs, ty),
    }
}

fn impl_trait_in(ty: &Type) -> Option<Token![impl]> {
    #[derive(Default)]
    struct FindImplTrait(Option<Token![impl]>);
    impl Visit<'_> for FindImplTrait {
        fn visit_type_impl_trait(&mut self, found: &syn::TypeImplTrait) {
            self.0.get_or_insert(found.impl_token);
        }
    }
    let mut finder = FindImplTrait::default();
    finder.visit_type(ty);
    finder.0
}

/// Lint levels, which apply to generated code that repeats the signature too.
pub(crate) fn is_lint_level(attr: &Attribute) -> bool {
    ["allow", "warn", "deny", "forbid", "expect"]
        .iter()
        .any(|level| attr.path().is_ident(level))
}

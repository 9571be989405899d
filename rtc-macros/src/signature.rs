//! What the macro needs to know about the decorated function, and the checks on it.

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::visit::Visit;
use syn::{
    Attribute, FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, Receiver, Signature,
    Token, Type,
};

use crate::attr::{CachedArgs, Skip, StaleWindow, Window};
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

/// The return type. Which part of it is cached is decided by its type where the generated code
/// is compiled (`rtc::__private::ShapeProbe`), not by how it is written here.
pub(crate) struct Output {
    /// The return type as written (`()` for none).
    pub(crate) ty: Type,
    /// Where "cannot be cached" errors point: `T` of a `Result<T, ..>` or `Option<T>` written so,
    /// else the whole return type.
    pub(crate) value: Type,
    /// `impl Trait` appears in it (an error).
    pub(crate) is_impl_trait: bool,
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
        let mut types = Vec::new();
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
                        types.push((pat.ident.clone(), (*typed.ty).clone()));
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

        if let Some(tags) = args.and_then(|args| args.tags.as_ref()) {
            check_tags(tags, &types, errors);
        }
        if let Some(args) = args {
            check_literal_seconds(args, errors);
            if let Some(detaching) = args.detaching() {
                check_owned(sig, detaching, errors);
            }
        }
        let output = Output::of(&sig.output, errors);
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

/// `stale_while_revalidate` and `stale_if_slow` run the computation on after the call returned
/// (a background refresh, a late value stored), on a thread or a task of its own: it cannot
/// borrow anything from its caller.
fn check_owned(sig: &Signature, detaching: &StaleWindow, errors: &mut Errors) {
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

/// Literal lengths of time: a float becomes a `Duration` at run time, which must not panic; zero
/// is never "off" nor "forever", so it is refused where no entry or window could use it.
fn check_literal_seconds(args: &CachedArgs, errors: &mut Errors) {
    let given = |window: &Option<StaleWindow>| match window {
        Some(StaleWindow {
            keyword,
            value: Window::Given(value),
        }) => Some((keyword.to_string(), value.clone())),
        _ => None,
    };
    let named = |name: &str, value: &Option<syn::Expr>| {
        value.as_ref().map(|value| (name.to_owned(), value.clone()))
    };
    let options = [
        named("lifetime", &args.lifetime),
        named("jitter", &args.jitter),
        named("lock_timeout", &args.lock_timeout),
        given(&args.stale_if_error),
        given(&args.stale_while_revalidate),
        given(&args.stale_if_slow),
    ];
    for (name, value) in options.into_iter().flatten() {
        let syn::Expr::Lit(syn::ExprLit { lit, .. }) = &value else {
            continue;
        };
        let seconds = match lit {
            syn::Lit::Int(int) => int.base10_parse::<u64>().ok().map(|seconds| seconds as f64),
            syn::Lit::Float(float) => float
                .base10_parse::<f64>()
                .ok()
                .filter(|seconds| std::time::Duration::try_from_secs_f64(*seconds).is_ok()),
            _ => continue,
        };
        match seconds {
            None if matches!(lit, syn::Lit::Float(_)) => errors.spanned(
                lit,
                "expected a number of seconds that a `Duration` can hold",
            ),
            Some(0.0) => {
                if let Some(message) = zero_message(&name) {
                    errors.spanned(lit, message);
                }
            }
            _ => {}
        }
    }
}

/// Why a literal zero cannot be `name`'s value, and what to write instead.
fn zero_message(name: &str) -> Option<String> {
    match name {
        "lifetime" => Some(
            "a `lifetime` of zero would expire every entry as it is written, and zero does not \
             mean \"never\" in rtc: write `lifetime = rtc::Lifetime::Never` for entries that never \
             expire, or leave `lifetime` out for the cache's default"
                .to_owned(),
        ),
        "stale_if_error" | "stale_while_revalidate" | "stale_if_slow" => Some(format!(
            "a window of zero serves nothing, and zero does not mean \"off\" in rtc: write \
             `{name} = false` to turn the cache's default off for this function, or leave \
             `{name}` out"
        )),
        _ => None,
    }
}

/// A tag that is an argument of a type that is plainly not a string (`tags = [id]` with
/// `id: u64`): an error that shows the `format!` to write. Other types are left to the
/// compiler, whose error says what a tag can be.
fn check_tags(tags: &syn::Expr, types: &[(Ident, Type)], errors: &mut Errors) {
    let elements: Vec<&syn::Expr> = match tags {
        syn::Expr::Array(array) => array.elems.iter().collect(),
        tag => vec![tag],
    };
    for element in elements {
        let syn::Expr::Path(path) = element else {
            continue;
        };
        let Some(name) = path.path.get_ident() else {
            continue;
        };
        let Some((_, ty)) = types.iter().find(|(ident, _)| ident == name) else {
            continue;
        };
        let mut ty = ty;
        while let Type::Reference(reference) = ty {
            ty = &reference.elem;
        }
        let Type::Path(ty) = ty else { continue };
        let Some(ty) = ty.path.get_ident().map(ToString::to_string) else {
            continue;
        };
        const NOT_STRINGS: &[&str] = &[
            "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize",
            "f32", "f64", "bool", "char",
        ];
        if NOT_STRINGS.contains(&ty.as_str()) {
            let name = name.unraw();
            errors.spanned(
                element,
                format!(
                    "a tag is a string, and `{name}` is a `{ty}`: make a tag of it with `format!`, \
                     e.g. `format!(\"{name}:{{{name}}}\")`"
                ),
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
    fn of(output: &syn::ReturnType, errors: &mut Errors) -> Self {
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
        let value = cached_part(&ty).clone();
        Output {
            ty,
            value,
            is_impl_trait: impl_trait.is_some(),
        }
    }
}

/// For error spans only: `T` of a type written `Result<T, ..>` or `Option<T>`, else `ty`.
fn cached_part(ty: &Type) -> &Type {
    let segment = match ty {
        Type::Group(group) => return cached_part(&group.elem),
        Type::Paren(paren) => return cached_part(&paren.elem),
        Type::Path(path) if path.qself.is_none() => path.path.segments.last(),
        _ => None,
    };
    let Some(segment) = segment else {
        return ty;
    };
    let PathArguments::AngleBracketed(generics) = &segment.arguments else {
        return ty;
    };
    let first = generics.args.iter().find_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    });
    match (segment.ident.to_string().as_str(), first) {
        ("Result" | "Option", Some(value)) => value,
        _ => ty,
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

//! `#[cached]` on an `impl` block: expands the block's `#[cached(...)]` functions knowing the
//! block's type as written, and puts the helpers of a trait impl's functions in an inherent
//! `impl` beside it.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::visit_mut::VisitMut;
use syn::{Attribute, ImplItem, ItemImpl, Meta, Path, PathArguments, Type};

use crate::block::ImplBlock;
use crate::errors::Errors;
use crate::expand::cached_fn;

/// `#[cached(args)]` on the `impl` block `block`.
pub(crate) fn cached_impl(args: TokenStream, mut item: ItemImpl) -> TokenStream {
    let mut errors = Errors::default();
    if !args.is_empty() {
        errors.spanned(
            &args,
            "`#[cached]` on an `impl` block takes no options; give them to its functions' `#[cached(...)]`",
        );
    }
    let block = ImplBlock {
        self_ty: (*item.self_ty).clone(),
        trait_: item.trait_.as_ref().map(|(_, path, _)| path.clone()),
        generics: item.generics.clone(),
    };

    let mut beside = TokenStream::new();
    let mut items = TokenStream::new();
    for impl_item in std::mem::take(&mut item.items) {
        let ImplItem::Fn(mut function) = impl_item else {
            impl_item.to_tokens(&mut items);
            continue;
        };
        let Some(position) = function.attrs.iter().position(is_cached) else {
            function.to_tokens(&mut items);
            continue;
        };
        let attr = function.attrs.remove(position);
        let args = match attr.meta {
            Meta::Path(_) => TokenStream::new(),
            Meta::List(list) => list.tokens,
            Meta::NameValue(name_value) => {
                errors.spanned(&name_value, "expected `#[cached]` or `#[cached(...)]`");
                TokenStream::new()
            }
        };
        if let Some(trait_) = &block.trait_ {
            // In the inherent impl beside, `Self::Error` no longer says which trait it is from.
            QualifySelf(trait_).visit_impl_item_fn_mut(&mut function);
        }
        let expanded = cached_fn(args, function.into_token_stream(), Some(&block));
        items.extend(expanded.in_place);
        beside.extend(expanded.beside);
    }

    let ItemImpl {
        attrs,
        defaultness,
        unsafety,
        generics,
        trait_,
        self_ty,
        ..
    } = &item;
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    let trait_ = trait_
        .as_ref()
        .map(|(bang, path, for_)| quote!(#bang #path #for_));
    let errors = errors.finish().err().map(|error| error.to_compile_error());
    let mut output = quote! {
        #(#attrs)*
        #defaultness #unsafety impl #impl_generics #trait_ #self_ty #where_clause {
            #items
        }
        #errors
    };
    if let (false, Some(trait_)) = (beside.is_empty(), &block.trait_) {
        // In a block of its own, where the trait can be imported for the bodies' method calls.
        let trait_ = without_arguments(trait_);
        output.extend(quote! {
            const _: () = {
                #[allow(unused_imports)]
                use #trait_ as _;
                #[allow(private_interfaces, private_bounds)]
                impl #impl_generics #self_ty #where_clause {
                    #beside
                }
            };
        });
    }
    output
}

/// `#[cached]`, `#[cached(...)]` or `#[rtc::cached(...)]`.
fn is_cached(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "cached")
}

fn without_arguments(path: &Path) -> Path {
    let mut path = path.clone();
    for segment in &mut path.segments {
        segment.arguments = PathArguments::None;
    }
    path
}

/// Rewrites `Self::Item` as `<Self as Trait>::Item` in types.
struct QualifySelf<'a>(&'a Path);

impl VisitMut for QualifySelf<'_> {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::Path(path) = ty {
            let segments = &path.path.segments;
            if path.qself.is_none() && segments.len() >= 2 && segments[0].ident == "Self" {
                let rest = segments.iter().skip(1);
                let trait_ = self.0;
                *ty = syn::parse_quote!(<Self as #trait_>::#(#rest)::*);
            }
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    #[test]
    fn a_trait_impl_keeps_its_methods_and_gets_helpers_beside_it() {
        let item: ItemImpl = syn::parse_quote! {
            impl Users for Repo<T> {
                #[cached(tags = ["users"])]
                fn find(&self, id: u64) -> Result<u64, Self::Error> {
                    Ok(id)
                }
                fn other(&self) {}
            }
        };
        let file: syn::File = syn::parse2(cached_impl(quote!(), item)).unwrap();
        let syn::Item::Impl(trait_impl) = &file.items[0] else {
            panic!("the trait impl first")
        };
        let names: Vec<_> = trait_impl
            .items
            .iter()
            .map(|item| match item {
                ImplItem::Fn(function) => function.sig.ident.to_string(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(names, ["find", "other"]);
        let beside = file.items[1].to_token_stream().to_string();
        for helper in [
            "__rtc_uncached_find",
            "invalidate_find",
            "refresh_find",
            "key_find",
        ] {
            assert!(beside.contains(helper), "{helper} in {beside}");
        }
        assert!(beside.contains("< Self as Users > :: Error"), "{beside}");
    }
}
